//! Feature sets (`features NAME { ... }`, docs/features.md): checked with the model they fill,
//! carried by the graph, and named in its renderings.

use crate::cli::{code, recspec, stderr, stdout};
use crate::{root, Scratch};
use recspec::features::{Column, FeatureKind, Ids, Scaling};
use recspec::overrides::{Override, OverrideValue};
use std::path::Path;

const MOVIELENS: &str = "bench/movielens/features.recspec";

fn with_features(spec: &Path, features: &Path, overrides: &[Override]) -> recspec::check::Checked {
    recspec::compile_file_with_features(spec, Some(features), overrides).expect("readable files").1
}

fn seed_specs() -> Vec<std::path::PathBuf> {
    let mut specs: Vec<_> = std::fs::read_dir(root().join("specs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "recspec"))
        .collect();
    specs.sort();
    specs
}

/// MovieLens' feature set makes every input and label of every seed spec, with the widths and
/// lengths it binds: the seed specs train on it unchanged.
#[test]
fn movielens_features_fill_every_seed_spec() {
    let specs = seed_specs();
    assert!(specs.len() >= 14, "{specs:?}");
    for spec in specs {
        let checked = with_features(&spec, &root().join(MOVIELENS), &[]);
        let rendered: Vec<String> = checked.diagnostics.iter().map(|d| d.message.clone()).collect();
        assert!(checked.diagnostics.is_empty(), "{}: {rendered:#?}", spec.display());
        let graph = checked.graph.unwrap();
        let set = graph.features.as_ref().expect("the graph carries the feature set");
        assert_eq!(set.name, "movielens");
        for input in graph.inputs.iter().filter(|i| i.role != recspec::ir::InputRole::Mask) {
            assert!(set.feature(&input.name).is_some(), "{}: `{}` has no feature", spec.display(), input.name);
        }
        // The set's dims bind the model's (F = 6 fields, T = 30, P = 4), as data.toml's do.
        for (name, value) in &set.dims {
            if let Some(d) = graph.dims.iter().find(|d| d.name == *name) {
                assert_eq!(d.value, *value, "{}: dim {name}", spec.display());
            }
        }
    }
}

/// The checker reads every kind into its typed form: columns by table, scalings, id schemes.
#[test]
fn every_feature_kind_is_typed() {
    let g = crate::graph(&root().join("tests/data/ok/features.recspec"));
    let set = g.features.unwrap();
    let kind = |name: &str| set.feature(name).unwrap_or_else(|| panic!("no feature {name}")).kind.clone();
    assert_eq!(kind("item"), FeatureKind::Item { ids: Ids::Vocabulary { min_count: 1 } });
    assert_eq!(
        kind("device"),
        FeatureKind::Categorical {
            column: Column::Event("device".into()),
            ids: Ids::Vocabulary { min_count: 5 },
            vocab: Some("DV".into())
        }
    );
    assert_eq!(
        kind("city"),
        FeatureKind::Categorical {
            column: Column::User("city".into()),
            ids: Ids::Hashed { buckets: 1000 },
            vocab: None
        }
    );
    assert_eq!(
        kind("price"),
        FeatureKind::Numeric {
            column: Column::Item("price".into()),
            scaling: Scaling::ZScore,
            missing: Some(0.0),
            na: vec![]
        }
    );
    assert_eq!(
        kind("age"),
        FeatureKind::Bucketize {
            column: Column::User("age".into()),
            boundaries: vec![18.0, 25.0, 35.0, 45.0, 50.0, 56.0],
            missing: Some(0),
            na: vec![]
        }
    );
    assert_eq!(
        kind("genres"),
        FeatureKind::Tokens {
            column: Column::Item("genres".into()),
            sep: "|".into(),
            max: 4,
            ids: Ids::Vocabulary { min_count: 1 },
            vocab: Some("GV".into())
        }
    );
    assert_eq!(
        kind("device_x_category"),
        FeatureKind::Cross {
            columns: vec![Column::Event("device".into()), Column::Item("category".into())],
            buckets: 10000
        }
    );
    assert_eq!(
        kind("clicks"),
        FeatureKind::History {
            when: "action == 'click' or action == 'like'".into(),
            length: 20,
            dim: Some("T".into())
        }
    );
    assert_eq!(kind("clicks.dwell"), FeatureKind::SideColumn { column: "dwell".into(), log1p: true });
    assert_eq!(set.labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["click", "dislike"]);
    assert_eq!(set.split, recspec::features::Split::Time { valid: 0.1, test: 0.2 });
}

/// `--set` still wins over the feature set's dims, and then the checker holds the feature to
/// the width the user asked for: F = 7 is not the 6 columns MovieLens' fields make.
#[test]
fn set_overrides_the_feature_dims_and_is_checked_against_them() {
    let spec = root().join("specs/dfn.recspec");
    let set_f = Override::new("F", OverrideValue::Int(7), "--set F=7");
    let checked = with_features(&spec, &root().join(MOVIELENS), &[set_f]);
    let errors: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{} {}", d.code.as_str(), d.message))
        .collect();
    assert_eq!(
        errors,
        ["E0034 feature `fields` cannot fill input `fields`: it makes 6 ids per row (one per column), the input's axis 1 is F = 7"]
    );
    assert!(checked.graph.is_none());
}

/// A feature set without the model is checked on its own (its statements, not the fit).
#[test]
fn a_feature_file_checks_alone_and_with_a_spec_from_the_command_line() {
    let o = recspec(&["check", MOVIELENS]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let o = recspec(&["check", "specs/dlen.recspec", "--features", MOVIELENS]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = recspec(&["compile", "specs/dlen.recspec", "--features", MOVIELENS, "--emit", "graph"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let graph = stdout(&o);
    assert!(graph.contains("\nfeatures movielens\n"), "{graph}");
    assert!(graph.contains("  side history.disliked = flag(\"rating:float <= 2\")\n"), "{graph}");
    assert!(graph.contains("  F = 6  (overridden)\n"), "the set binds F: {graph}");

    // A feature set that misses an input the model reads: one located error, exit 1.
    let dir = Scratch::new("features-cli");
    let text = std::fs::read_to_string(root().join(MOVIELENS)).unwrap();
    let broken = dir.join("features.recspec");
    std::fs::write(&broken, text.replace("  feature profile = profile(", "  feature profiles = profile(")).unwrap();
    let o = recspec(&["check", "specs/dlen.recspec", "--features", broken.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("error[E0033]: input `profile` has no feature in the feature set"), "{err}");
    assert!(err.contains("specs/dlen.recspec:"), "located in the spec: {err}");
    assert!(err.contains("did you mean `profiles`?"), "{err}");

    // A missing feature file is a usage error naming it.
    let o = recspec(&["check", "specs/dlen.recspec", "--features", "no/such/features.recspec"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no/such/features.recspec"), "{}", stderr(&o));
}

/// The model card lists every feature, with `|` escaped inside the table.
#[test]
fn the_model_card_has_a_features_table() {
    let g = crate::graph(&root().join("tests/data/ok/features.recspec"));
    let card = recspec::render::emit(&g, recspec::render::Emit::Summary).unwrap();
    assert!(card.contains("## Features\n"), "{card}");
    assert!(
        card.contains("| `genres` | `tokens(\"item.genres\", sep: \"\\|\", max: 4, vocab: GV)` | yes |\n"),
        "{card}"
    );
    assert!(
        card.contains("| `age` | `bucketize(\"user.age\", [18.0, 25.0, 35.0, 45.0, 50.0, 56.0], missing: 0)` |  |\n"),
        "{card}"
    );
    assert!(card.contains("- `split time(valid: 0.1, test: 0.2)`\n"), "{card}");
    // A spec without a feature set has no such section (every earlier card is unchanged).
    let plain = recspec::render::emit(&crate::graph(&root().join("specs/dfn.recspec")), recspec::render::Emit::Summary)
        .unwrap();
    assert!(!plain.contains("## Features"));
}

/// A warm start (`recspec train --init-from`): parameters of the same shape are copied, a table
/// that grew keeps the earlier rows first and fresh rows after them, a parameter the earlier
/// model lacked starts fresh; a table that shrank or a changed shape is refused by name.
#[test]
fn a_warm_start_copies_what_fits_and_grows_tables() {
    use recspec::runtime::weights::{WarmStart, Weights};
    let spec = root().join("tests/data/import/ranker.recspec");
    let program = |v: i64, d: i64| {
        let set = |k: &str, x: i64| Override::new(k, OverrideValue::Int(x), "test");
        let (_, checked) = recspec::compile_file(&spec, &[set("V", v), set("D", d)]).unwrap();
        let g = checked.graph.expect("the ranker compiles");
        recspec::lower::lower(&g, &recspec::lower::Bindings::of(&g)).unwrap()
    };
    let device = burn::prelude::Device::flex();
    let values = |p: &recspec::lower::Program, w: &Weights, key: &str| -> Vec<f32> {
        let i = p.params.iter().position(|s| s.key() == key).unwrap();
        w.tensors[i].val().into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
    };
    let (small, big) = (program(48, 8), program(50, 8));
    let earlier = Weights::init(&small, &device, 7);
    let bytes = earlier.to_safetensors(&small).unwrap();
    let plan = WarmStart::plan(&big, &bytes).unwrap();
    assert_eq!(plan.grown, [("items/table".to_string(), 48, 50)]);
    assert!(plan.fresh.is_empty() && plan.copied.len() + 1 == big.params.len(), "{plan:?}");

    let started = Weights::warm_start(&big, &device, 1, &bytes).unwrap();
    let fresh = Weights::init(&big, &device, 1);
    let (old, new, init) = (
        values(&small, &earlier, "items/table"),
        values(&big, &started, "items/table"),
        values(&big, &fresh, "items/table"),
    );
    assert_eq!(new[..48 * 8], old[..], "the earlier rows first");
    assert_eq!(new[48 * 8..], init[48 * 8..], "fresh rows after them");
    assert!(old[..8] != init[..8], "the two initialisations differ (else the test proves nothing)");
    for slot in big.params.iter().filter(|s| s.key() != "items/table") {
        assert_eq!(values(&big, &started, &slot.key()), values(&small, &earlier, &slot.key()), "{}", slot.key());
    }

    // Smaller or reshaped: refused, naming the parameter.
    let back = WarmStart::plan(&small, &big_bytes(&big, &device)).unwrap_err().to_string();
    assert!(back.contains("`items/table` has 50 rows in the earlier run but 48 now"), "{back}");
    let reshaped = WarmStart::plan(&program(50, 4), &bytes).unwrap_err().to_string();
    assert!(reshaped.contains("is [48, 8] in the earlier run but [50, 4] now"), "{reshaped}");
}

fn big_bytes(p: &recspec::lower::Program, device: &burn::prelude::Device) -> Vec<u8> {
    recspec::runtime::weights::Weights::init(p, device, 3).to_safetensors(p).unwrap()
}
