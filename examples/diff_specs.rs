//! Diff two specs with the library and walk the report: a review gate that a pull request
//! changing a model must pass.
//!
//! ```sh
//! cargo run --release --example diff_specs
//! ```
//!
//! The base is `specs/dfn.recspec`; two proposed changes are made from its text in memory (in a
//! real gate they would be the spec at the pull request's base and head). The gate blocks a change
//! that grows the parameters by more than a budget or removes a label stream the data pipeline
//! feeds, and lists loss changes for the reviewer. `recspec diff OLD NEW --format markdown`
//! prints the same report for a pull-request comment.

use recspec::diff::{diff, render, ChangeKind, DiffReport};
use recspec::ir::Graph;
use recspec::render::thousands;
use std::path::Path;

const BASE: &str = "specs/dfn.recspec";

/// Parameter growth a change may bring without a separate sign-off: 5% of the base model.
const GROWTH_BUDGET: f64 = 0.05;

/// What the gate decided about one change.
#[derive(Debug)]
struct Verdict {
    /// Reasons the change may not merge as it is.
    blocking: Vec<String>,
    /// What the reviewer should look at.
    notes: Vec<String>,
}

/// The review policy, reading the report section by section.
fn review(report: &DiffReport) -> Verdict {
    let mut verdict = Verdict { blocking: vec![], notes: vec![] };
    let budget = (report.old_params as f64 * GROWTH_BUDGET).round() as i64;
    if report.param_delta > budget {
        verdict.blocking.push(format!(
            "parameters grow by {} ({} -> {}), over the budget of {} ({}% of the base)",
            thousands(report.param_delta),
            thousands(report.old_params),
            thousands(report.new_params),
            thousands(budget),
            GROWTH_BUDGET * 100.0
        ));
    }
    for section in &report.sections {
        for change in &section.changes {
            match (section.title.as_str(), change.kind) {
                ("labels", ChangeKind::Removed) => {
                    verdict.blocking.push(format!("{} is removed; the data pipeline still writes it", change.name))
                }
                ("losses", kind) => verdict.notes.push(format!(
                    "loss `{}` {}: {}",
                    change.name,
                    kind_word(kind),
                    change.details.join("; ")
                )),
                _ => {}
            }
        }
    }
    // The three components that move the parameter count most, for the reviewer.
    let mut by_size: Vec<_> = report
        .sections
        .iter()
        .filter(|s| s.title == "instances")
        .flat_map(|s| &s.changes)
        .filter(|c| c.param_delta != 0)
        .collect();
    by_size.sort_by_key(|c| std::cmp::Reverse(c.param_delta.abs()));
    for c in by_size.iter().take(3) {
        verdict.notes.push(format!("{} `{}`: {} parameters", kind_word(c.kind), c.name, signed(c.param_delta)));
    }
    verdict
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", thousands(n))
    } else {
        thousands(n)
    }
}

fn kind_word(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
    }
}

/// Compiles spec text held in memory; a spec with errors is a bug in this example.
fn compile(name: &str, text: &str) -> Graph {
    let (loaded, checked) = recspec::compile_str(name, text, &[]);
    match checked.graph {
        Some(graph) => graph,
        None => panic!("{name} does not compile:\n{}", recspec::diag::render(&loaded.sources, &checked.diagnostics)),
    }
}

/// A proposed change: the base text with each `(from, to)` replaced once.
fn variant(base: &str, edits: &[(&str, &str)]) -> String {
    let mut text = base.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "the base spec holds `{from}`");
        text = text.replacen(from, to, 1);
    }
    text
}

fn main() {
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("the repository root exists");
    let (loaded, checked) = recspec::compile_file(Path::new(BASE), &[]).expect("specs/dfn.recspec is readable");
    let base_graph = checked.graph.unwrap_or_else(|| {
        panic!("{BASE} does not compile:\n{}", recspec::diag::render(&loaded.sources, &checked.diagnostics))
    });
    let base_text = std::fs::read_to_string(BASE).expect("specs/dfn.recspec is readable");

    // A deeper Deep part and the paper's 1:1:10 loss weights made 1:1:1: small, but the loss
    // change needs the reviewer's eye.
    let deeper = variant(
        &base_text,
        &[("units: [32, 16]", "units: [64, 32, 16]"), ("param lambda_d: float = 10.0", "param lambda_d: float = 1.0")],
    );
    // Wider embeddings everywhere, and the unclick stream dropped.
    let wider = variant(
        &base_text,
        &[
            ("dim D = 64;", "dim D = 96;"),
            ("label click, unclick, dislike;", "label click, dislike;"),
            ("  loss unclick = lambda_u * nll(1 - p, label: unclick);\n", ""),
            ("  param lambda_u: float = 1.0;\n", ""),
        ],
    );

    let mut decisions = vec![];
    for (name, text) in [("dfn_deeper.recspec", &deeper), ("dfn_wider.recspec", &wider)] {
        let report = diff(&base_graph, &compile(name, text));
        println!("=== {BASE} -> {name}: {} changes", report.count);
        print!("{}", render(&report, false).expect("the built-in diff template renders"));
        let verdict = review(&report);
        for n in &verdict.notes {
            println!("  note: {n}");
        }
        for b in &verdict.blocking {
            println!("  BLOCKED: {b}");
        }
        println!("  gate: {}\n", if verdict.blocking.is_empty() { "pass" } else { "fail" });
        decisions.push((report, verdict));
    }

    // What the gate must decide, so that this example fails if the diff stops reporting it.
    let (deeper_report, deeper_verdict) = &decisions[0];
    assert!(deeper_verdict.blocking.is_empty(), "{deeper_verdict:?}");
    assert!(deeper_report.param_delta > 0, "a deeper MLP adds parameters");
    assert!(
        deeper_verdict.notes.iter().any(|n| n.contains("loss `dislike` changed") && n.contains("10.0 -> 1.0")),
        "{deeper_verdict:?}"
    );
    let (wider_report, wider_verdict) = &decisions[1];
    assert!(wider_report.param_delta as f64 > 0.4 * wider_report.old_params as f64, "D 64 -> 96 adds half the weights");
    assert!(wider_verdict.blocking.iter().any(|b| b.contains("over the budget")), "{wider_verdict:?}");
    assert!(wider_verdict.blocking.iter().any(|b| b.contains("label unclick")), "{wider_verdict:?}");
}
