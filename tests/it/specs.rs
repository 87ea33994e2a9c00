//! Every spec in specs/ compiles without diagnostics; its graph and model card are snapshotted.

use crate::{compile, settings};
use recspec::app::memory::model_card;
use recspec::overrides::{Override, OverrideValue};
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
            insta::assert_snapshot!(format!("spec_summary_{name}"), model_card(&graph).unwrap());
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
    // FM over the m fields, the target item as one more field (section 3.3's item features),
    // and the 5 feedback vectors (eq. 11).
    assert_eq!(g.node("features").unwrap().ty.to_string(), "float[B, F + 6, D]");
    assert_eq!(g.node("target_field").unwrap().ty.to_string(), "float[B, 1, D]");
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

fn graph_of(name: &str, overrides: &[Override]) -> recspec::ir::Graph {
    let (checked, diags) = compile(&crate::root().join(format!("specs/{name}.recspec")), overrides);
    checked.graph.unwrap_or_else(|| panic!("{name}: {diags}"))
}

fn float_override(name: &str, v: f64) -> Override {
    Override::new(name, OverrideValue::Float(v), "test")
}

/// Nodes applying `op`, and the distinct weight owners they use.
fn applications(g: &recspec::ir::Graph, op: recspec::ops::Op) -> (usize, std::collections::BTreeSet<String>) {
    let nodes: Vec<_> = g.nodes.iter().filter(|n| n.op == op).collect();
    (nodes.len(), nodes.iter().filter_map(|n| n.instance.clone()).collect())
}

#[test]
fn dumn_and_its_ablations_follow_the_paper() {
    use recspec::ops::Op;
    let dumn = graph_of("dumn", &[]);
    // Four sequences, each with its own self-attention scaled by sqrt(T) (eq. 1).
    let (n, owners) = applications(&dumn, Op::SelfAttention);
    assert_eq!((n, owners.len()), (4, 4));
    for n in dumn.nodes.iter().filter(|n| n.op == Op::SelfAttention) {
        assert_eq!(n.attrs["scale"], recspec::ir::Attr::Sym("sqrt_len".into()));
    }
    // Purification of click by dislike and unclick by like only (eqs. 6-7).
    let purified: Vec<(String, String)> = dumn
        .nodes
        .iter()
        .filter(|n| n.op == Op::Orthogonal)
        .map(|n| (n.operands[0].source.clone(), n.operands[1].source.clone()))
        .collect();
    assert_eq!(purified, [("f_c".to_string(), "f_d".to_string()), ("f_u".into(), "f_l".into())]);
    // Four memories with their own weights and state (eqs. 8-12), read and write summary.
    let (n, owners) = applications(&dumn, Op::Memory);
    assert_eq!((n, owners.len()), (4, 4));
    assert_eq!(dumn.node("m_c").unwrap().ty.to_string(), "float[B, 2, D]");
    // L1 + four triplet losses with cosine distance, anchored on the write summaries (eqs. 16-20).
    let losses: Vec<(&str, f64)> = dumn.losses.iter().map(|l| (l.name.as_str(), l.weight)).collect();
    assert_eq!(
        losses,
        [
            ("click", 1.0),
            ("triplet_click", 1.0),
            ("triplet_unclick", 1.0),
            ("triplet_like", 1.0),
            ("triplet_dislike", 1.0)
        ]
    );
    let anchor = dumn.node("loss/triplet_like/index").unwrap();
    assert_eq!(anchor.operands[0].source, "m_l");
    assert_eq!(anchor.attrs["index"], recspec::ir::Attr::Int(recspec::dim::Dim::constant(1)));

    // Ablations.
    assert_eq!(applications(&graph_of("dumn_no_fp", &[]), Op::Orthogonal).0, 0);
    let no_umn = graph_of("dumn_no_umn", &[]);
    assert_eq!(applications(&no_umn, Op::Memory).0, 0);
    assert_eq!(no_umn.losses.len(), 1, "no memory, no triplet loss");
    let (n, owners) = applications(&graph_of("dumn_one_memory", &[]), Op::Memory);
    assert_eq!((n, owners.len()), (4, 1), "one memory applied four times shares weights and state: {owners:?}");
    let no_triplet = graph_of("dumn", &[float_override("lambda_t", 0.0)]);
    assert!(no_triplet.losses.iter().filter(|l| l.name.starts_with("triplet")).all(|l| l.weight == 0.0));
}

#[test]
fn dlen_mixes_bounded_towers_with_the_shared_latent_target() {
    let dlen = graph_of("dlen", &[]);
    for (task, alpha) in [("click", 0.13), ("like", 0.05), ("follow", 0.033), ("push", 0.032), ("comment", 0.02)] {
        let bounded = dlen.node(&format!("p_{task}/given_not")).unwrap();
        assert_eq!((bounded.ty.range.lo, bounded.ty.range.hi), (0.0, alpha), "P({task}|not UP) <= alpha");
        let p = dlen.node(&format!("p_{task}")).unwrap();
        assert!(p.ty.range.is_probability(), "P({task}) is a probability");
        // Every task's mixture uses the one shared P(UP).
        let mixed = dlen.node(&format!("p_{task}/mul")).unwrap();
        assert_eq!(mixed.operands[1].source, "p_up");
    }
    assert_eq!(dlen.losses.len(), 5);
    // An alpha above 1 no longer bounds P(k) by 1: the BCE rejects it before training.
    let (checked, diags) = compile(&crate::root().join("specs/dlen.recspec"), &[float_override("alpha_like", 1.5)]);
    assert!(checked.has_errors(), "alpha 1.5 must be rejected");
    assert!(diags.contains("probability"), "{diags}");
    // MMoE and PLE have the same tasks and input.
    for name in ["mmoe", "ple"] {
        let g = graph_of(name, &[]);
        assert_eq!(g.labels, dlen.labels);
        assert_eq!(g.node("x").unwrap().ty, dlen.node("x").unwrap().ty);
    }
    // PLE: `layers(levels - 1, ExtractionLevel())` below the last level, which has task gates only.
    let levels = |n: i64| graph_of("ple", &[Override::new("levels", OverrideValue::Int(n), "test")]);
    let mlps = |g: &recspec::ir::Graph| applications(g, recspec::ops::Op::Mlp).1.len();
    let ple = graph_of("ple", &[]);
    assert_eq!(mlps(&ple), 2 * 15 + 5, "two levels of 15 experts, and 5 towers");
    assert_eq!(mlps(&levels(1)), 15 + 5, "one level is CGC");
    assert_eq!(mlps(&levels(3)), 3 * 15 + 5);
    let gates = |g: &recspec::ir::Graph| {
        g.instances.iter().filter(|i| i.name.ends_with("/scores")).map(|i| i.name.clone()).collect::<Vec<_>>()
    };
    // The level below the last has the shared gate over all 15 experts; the last has none.
    let shared_gate = ple.instance("h/layer1/shared/scores").expect("the first level's shared gate");
    assert_eq!(shared_gate.params[0].shape.last().map(|d| d.to_string()), Some("15".into()));
    assert_eq!(gates(&ple).len(), 5 + 1 + 5);
    assert_eq!(gates(&levels(1)).len(), 5, "CGC: task gates only");
    // The second level's experts read the first level's gated streams, 64 wide.
    let expert_in = |g: &recspec::ir::Graph, owner: &str| g.instance(owner).unwrap().params[0].shape[0].to_string();
    assert_eq!(expert_in(&ple, "g/LevelExperts/Expert/return"), "64");
}

#[test]
fn retrieval_specs_switch_encoder_and_corpus_and_differ_only_in_the_dislike_signal() {
    use recspec::ops::Op;
    let sym = |name: &str, v: &str| Override::new(name, OverrideValue::Str(v.into()), "test");
    let ops = |g: &recspec::ir::Graph| g.nodes.iter().map(|n| n.op).collect::<std::collections::BTreeSet<_>>();
    let ntr = graph_of("retrieval_ntr", &[]);
    let losses: Vec<(&str, Op)> = ntr.losses.iter().map(|l| (l.name.as_str(), ntr.node(&l.node).unwrap().op)).collect();
    assert_eq!(losses, [("engaged", Op::SoftmaxCe), ("dislike", Op::NotToRecommend), ("skip", Op::NotToRecommend)]);
    assert!(ops(&ntr).contains(&Op::Gru) && !ops(&ntr).contains(&Op::SelfAttention));
    assert!(!ops(&ntr).contains(&Op::SampledLogits));
    // The switches replace structure; only the chosen branch is built.
    let attention = graph_of("retrieval_ntr", &[sym("encoder", "attention")]);
    assert!(ops(&attention).contains(&Op::SelfAttention) && !ops(&attention).contains(&Op::Gru));
    let sampled = graph_of("retrieval_ntr", &[sym("corpus", "sampled")]);
    assert!(ops(&sampled).contains(&Op::SampledLogits));
    for l in &sampled.losses {
        let n = sampled.node(&l.node).unwrap();
        assert!(n.operands.iter().all(|o| o.port != "target"), "{}: the sampled target is column 0", l.name);
    }
    assert_eq!(sampled.node("s").unwrap().op, Op::Gru, "the select's branch carries the binding's name");
    // Baselines: positives only; the feature baseline keeps the dislike input, the others drop it.
    for name in ["retrieval_positive", "retrieval_feature", "retrieval_drop"] {
        let g = graph_of(name, &[]);
        assert_eq!(g.losses.len(), 1, "{name} trains on positives only");
        let has_flag = g.inputs.iter().any(|i| i.name == "history.disliked");
        assert_eq!(has_flag, name != "retrieval_positive", "{name}");
    }
    assert!(ops(&graph_of("retrieval_drop", &[])).contains(&Op::Keep));
}

#[test]
fn experiment_specs_under_bench_compile_clean() {
    let mut seen = 0;
    for dir in ["bench", "bench/movielens"] {
        for entry in std::fs::read_dir(crate::root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "recspec") {
                seen += 1;
                let (checked, diags) = compile(&path, &[]);
                assert!(checked.diagnostics.is_empty(), "{} has diagnostics:\n{diags}", path.display());
            }
        }
    }
    assert!(seen >= 1, "expected bench/movielens/dfn_target_via_transformers.recspec");
}
