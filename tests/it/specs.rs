//! Every spec in specs/ compiles without diagnostics; its graph and model card are snapshotted.

use crate::{compile, settings};
use recspec::render::{emit, Emit};

#[test]
fn seed_specs_compile_clean_and_match_snapshots() {
    let settings = settings();
    let mut seen = 0;
    insta::glob!("../../specs", "*.recspec", |path| {
        seen += 1;
        let (checked, diags) = compile(path, &[]);
        assert!(checked.diagnostics.is_empty(), "{} has diagnostics:\n{diags}", path.display());
        let graph = checked.graph.expect("graph");
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        settings.bind(|| {
            insta::assert_snapshot!(format!("spec_graph_{name}"), emit(&graph, Emit::Graph).unwrap());
            insta::assert_snapshot!(format!("spec_summary_{name}"), emit(&graph, Emit::Summary).unwrap());
        });
    });
    assert!(seen >= 4, "expected the seed specs, found {seen}");
}

#[test]
fn dot_and_json_render_every_node() {
    let (checked, _) = compile(&crate::root().join("specs/dfn.recspec"), &[]);
    let graph = checked.graph.unwrap();
    let dot = emit(&graph, Emit::Dot).unwrap();
    let json: serde_json::Value = serde_json::from_str(&emit(&graph, Emit::Json).unwrap()).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), graph.nodes.len());
    assert_eq!(json["totals"]["params"].as_i64().unwrap(), graph.total_params());
    for n in &graph.nodes {
        assert!(dot.contains(&format!("\"{}\" [label=", n.name)), "dot lacks node {}", n.name);
    }
    assert!(dot.starts_with("digraph \"dfn\" {"));
}

#[test]
fn dfn_follows_the_paper() {
    let (checked, _) = compile(&crate::root().join("specs/dfn.recspec"), &[]);
    let g = checked.graph.unwrap();
    // One item table for the target and all three sequences.
    let table_users = g.nodes.iter().filter(|n| n.instance.as_deref() == Some("items")).count();
    assert_eq!(table_users, 4);
    // Three separate transformers (eqs. 1-5), two external attentions (eqs. 6-8).
    for f in ["f_c", "f_u", "f_d"] {
        assert!(g.instance(&format!("{f}/attended")).is_some(), "{f} has its own attention weights");
    }
    assert!(g.instance("f_ud/scores").is_some() && g.instance("f_uc/scores").is_some());
    // Loss weights 1:1:10 (eq. 15).
    let weights: Vec<(String, f64)> = g.losses.iter().map(|l| (l.name.clone(), l.weight)).collect();
    assert_eq!(weights, vec![("click".into(), 1.0), ("unclick".into(), 1.0), ("dislike".into(), 10.0)]);
    // FM over m fields plus the 5 feedback vectors (eq. 11).
    assert_eq!(g.node("features").unwrap().ty.to_string(), "float[B, F + 5, D]");
    assert_eq!(g.node("y").unwrap().ty.to_string(), "float[B, D + F + 16]");
}

#[test]
fn the_readme_example_compiles_clean() {
    let readme = std::fs::read_to_string(crate::root().join("README.md")).unwrap();
    let start = readme.find("```recspec\n").expect("README has a recspec example") + "```recspec\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let (program, checked) = recspec::compile_str("README.md", &readme[start..end], &[]);
    assert!(checked.diagnostics.is_empty(), "{}", recspec::diag::render(&program.sources, &checked.diagnostics));
}
