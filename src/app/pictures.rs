//! The self-contained HTML pages: a model's architecture (`compile --emit html`), the review
//! diff of two specs or of a git revision (`diff --format html`). The run report is
//! [`super::report`]. Every page is one file: inline SVG and CSS, no script, no network.

use super::git_diff::{GitDiff, Outcome};
use super::memory::{for_training, CARD_BATCH};
use super::AppError;
use crate::config::TrainSettings;
use crate::diff::DiffReport;
use crate::ir::Graph;
use crate::lower::memory::Bytes;
use crate::picture;
use crate::render::{render_builtin, thousands};
use serde::Serialize;

/// The architecture picture of `graph`, as an SVG file.
pub fn architecture_svg(graph: &Graph) -> Result<String, AppError> {
    Ok(picture::architecture(graph)?)
}

/// The architecture page: the picture, its legend and the model card.
pub fn architecture_page(graph: &Graph) -> Result<String, AppError> {
    let card = super::memory::model_card(graph)?;
    Ok(render_builtin(
        "architecture.html",
        minijinja::context! {
            model => graph.model,
            svg => picture::architecture(graph)?,
            card => picture::markdown_html(&card),
        },
    )?)
}

/// One row of a diff page's header: a quantity before and after.
#[derive(Serialize)]
struct Delta {
    what: &'static str,
    old: String,
    new: String,
    delta: String,
    /// `up`, `down` or `same`, for the colour.
    sign: &'static str,
}

fn delta(what: &'static str, old: i128, new: i128, show: impl Fn(i128) -> String) -> Delta {
    let d = new - old;
    let sign = match d.cmp(&0) {
        std::cmp::Ordering::Greater => "up",
        std::cmp::Ordering::Less => "down",
        std::cmp::Ordering::Equal => "same",
    };
    let shown = if d > 0 {
        format!("+{}", show(d))
    } else if d < 0 {
        format!("−{}", show(-d))
    } else {
        "0".into()
    };
    Delta { what, old: show(old), new: show(new), delta: shown, sign }
}

/// One compared spec on a diff page.
#[derive(Serialize)]
struct Compared {
    title: String,
    kind: &'static str,
    header: Vec<Delta>,
    svg: String,
    report: Option<DiffReport>,
    /// Added or deleted models, in a line; rendered diagnostics of a spec that does not compile.
    notes: Vec<String>,
}

fn compared(title: String, old: &Graph, new: &Graph, report: DiffReport) -> Result<Compared, AppError> {
    let train = TrainSettings::default();
    let (a, b) = (super::lower_graph(old)?, super::lower_graph(new)?);
    let (ma, mb) = (for_training(&a, CARD_BATCH, &train), for_training(&b, CARD_BATCH, &train));
    let bytes = |n: i128| Bytes(n.unsigned_abs()).to_string();
    let count = |n: i128| thousands(n.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
    let header = vec![
        delta("trainable parameters", report.old_params as i128, report.new_params as i128, count),
        delta("nodes", report.old_nodes as i128, report.new_nodes as i128, count),
        delta(
            "memory of one training step (batch 256, Adam)",
            ma.training_total() as i128,
            mb.training_total() as i128,
            bytes,
        ),
        delta("memory of one inference batch", ma.inference_total() as i128, mb.inference_total() as i128, bytes),
    ];
    Ok(Compared {
        title,
        kind: "changed",
        header,
        svg: picture::overlay(old, new)?,
        report: Some(report),
        notes: vec![],
    })
}

fn diff_html(title: &str, summary: &str, specs: &[Compared]) -> Result<String, AppError> {
    Ok(render_builtin("diff.html", minijinja::context! { title, summary, specs })?)
}

/// The review page of `recspec diff OLD NEW --format html`.
pub fn diff_page(old_name: &str, new_name: &str, old: &Graph, new: &Graph) -> Result<String, AppError> {
    let report = crate::diff::diff(old, new);
    let summary = if report.same { "same architecture".to_string() } else { format!("{} changes", report.count) };
    let title = format!("{old_name} → {new_name}");
    diff_html(&title.clone(), &summary, &[compared(title, old, new, report)?])
}

/// The review page of `recspec diff --git REV --format html`: one picture per changed spec.
pub fn git_diff_page(diff: &GitDiff) -> Result<String, AppError> {
    let mut specs = vec![];
    for s in &diff.specs {
        let note = |kind: &'static str, notes: Vec<String>| Compared {
            title: s.path.clone(),
            kind,
            header: vec![],
            svg: String::new(),
            report: None,
            notes,
        };
        specs.push(match &s.outcome {
            Outcome::Same => continue,
            Outcome::Changed { report, old, new } => compared(s.path.clone(), old, new, report.clone())?,
            Outcome::Added(m) => note(
                "added",
                vec![format!("new model `{}`: {} parameters, {} nodes", m.name, thousands(m.params), m.nodes)],
            ),
            Outcome::Deleted(Some(m)) => note(
                "deleted",
                vec![format!("model `{}` removed ({} parameters, {} nodes)", m.name, thousands(m.params), m.nodes)],
            ),
            Outcome::Deleted(None) => note("deleted", vec!["removed (it did not compile at the revision)".into()]),
            Outcome::Broken(failures) => note(
                "broken",
                failures
                    .iter()
                    .map(|f| {
                        let side = if f.at_rev { diff.rev.as_str() } else { "the work tree" };
                        format!("does not compile in {side}:\n{}", f.diagnostics)
                    })
                    .collect(),
            ),
        });
    }
    let title = format!("specs changed since {} ({})", diff.rev, diff.commit);
    diff_html(&title, &diff.summary(), &specs)
}
