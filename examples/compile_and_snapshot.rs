//! Compile a spec with the library and snapshot-test its graph with insta, as a crate that keeps
//! its models as `.recspec` files would in its own tests.
//!
//! ```sh
//! cargo run --release --example compile_and_snapshot
//! ```
//!
//! The compiled graph of `examples/sasrec/sasrec.recspec` is compared with
//! `examples/snapshots/compile_and_snapshot__sasrec_graph.snap`; any change to the architecture
//! (a shape, a weight, an attribute, a loss) fails the run. In your crate the same lines sit in a
//! `#[test]`:
//!
//! ```ignore
//! #[test]
//! fn sasrec_graph_is_reviewed() {
//!     let (loaded, checked) = recspec::compile_file(Path::new("models/sasrec.recspec"), &[]).unwrap();
//!     let graph = checked.graph.expect(&recspec::diag::render(&loaded.sources, &checked.diagnostics));
//!     insta::assert_snapshot!(recspec::render::emit(&graph, Emit::Graph).unwrap());
//! }
//! ```
//!
//! After an intended change, review and accept it with `cargo insta review` (or rerun with
//! `INSTA_UPDATE=always`). Under `CI=true` insta writes nothing and only fails. Without Rust,
//! `recspec snapshot DIR` keeps the same text in files beside each spec.

use recspec::render::{emit, Emit};
use std::path::Path;
use std::process::ExitCode;

const SPEC: &str = "examples/sasrec/sasrec.recspec";

fn main() -> ExitCode {
    // Paths relative to the repository root, so diagnostics and snapshots name stable paths.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("the repository root exists");

    // Load, resolve and shape-check: diagnostics come back as values, all of them at once.
    let (loaded, checked) = match recspec::compile_file(Path::new(SPEC), &[]) {
        Ok(compiled) => compiled,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !checked.diagnostics.is_empty() {
        eprint!("{}", recspec::diag::render(&loaded.sources, &checked.diagnostics));
    }
    let Some(graph) = checked.graph else {
        eprintln!("{SPEC} has errors; nothing to snapshot");
        return ExitCode::from(1);
    };

    // The canonical text graph (`recspec compile --emit graph`): deterministic, in the spec's
    // vocabulary, so it only changes when the architecture does.
    let text = emit(&graph, Emit::Graph).expect("the built-in graph template renders");
    println!("{}: model `{}`, {} nodes", SPEC, graph.model, graph.nodes.len());
    insta::assert_snapshot!("sasrec_graph", text);
    println!("graph matches examples/snapshots/compile_and_snapshot__sasrec_graph.snap");

    // The same compiler on text held in memory, with a typical mistake: scoring the corpus with
    // the whole sequence of states instead of the state at the most recent item.
    let source = std::fs::read_to_string(SPEC).expect("the spec was just read");
    let wrong = source.replace("item_logits(s, table: items)", "item_logits(f, table: items)");
    let (loaded, checked) = recspec::compile_str("sasrec_wrong.recspec", &wrong, &[]);
    let report = recspec::diag::render(&loaded.sources, &checked.diagnostics);
    println!("\na mistaken copy reports, before anything runs:\n{report}");
    assert!(checked.graph.is_none() && checked.has_errors(), "the mistake is caught");
    assert!(report.contains("error[E") && report.contains("sasrec_wrong.recspec:"), "{report}");
    ExitCode::SUCCESS
}
