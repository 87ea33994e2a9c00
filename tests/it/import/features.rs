//! `recspec import --features`: a feature set drives the import through the same builder as a
//! mapping file, so the fixture's set and its mapping write the same data set.

use super::{import_fixture, scratch, FIXTURE};
use crate::cli::{code, recspec, stderr};
use std::path::Path;

/// Every file of a data set directory, by relative path.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_feature_set_imports_exactly_what_its_mapping_does() {
    let dir = scratch("features-same");
    let (by_mapping, by_features) = (dir.join("mapping"), dir.join("features"));
    import_fixture("mapping.toml", &by_mapping, &[]);
    let set = Path::new(FIXTURE).join("features.recspec");
    let o =
        recspec(&["import", "--features", set.to_str().unwrap(), "--out", by_features.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (a, b) = (files(&by_mapping), files(&by_features));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a.len() >= 10, "{:?}", a.keys());
    for (name, bytes) in &a {
        if name == "data.toml" {
            // Only the line naming what defined the data set differs.
            let text = |x: &[u8]| {
                String::from_utf8(x.to_vec())
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("mapping = "))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(text(bytes), text(&b[name]));
            assert!(String::from_utf8_lossy(&b[name]).contains("mapping = \"tests/data/import/features.recspec\""));
        } else {
            assert!(*bytes == b[name], "{name} differs");
        }
    }

    // EVENTS given on the command line replaces the set's `source events(...)` file.
    let moved = dir.join("moved.csv");
    std::fs::copy(Path::new(FIXTURE).join("events.csv"), &moved).unwrap();
    let again = dir.join("again");
    let o = recspec(&[
        "import",
        moved.to_str().unwrap(),
        "--features",
        set.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(files(&again)["train.jsonl"] == a["train.jsonl"]);
}

#[test]
fn a_feature_set_is_checked_before_any_data_is_read() {
    let dir = scratch("features-refused");
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("features.recspec")).unwrap();

    // A malformed set: the checker's located error, exit 1, nothing written.
    let bad = dir.join("bad.recspec");
    std::fs::write(&bad, text.replace("length: T);\n  side clicks.dwell", "length: 0);\n  side clicks.dwell")).unwrap();
    let out = dir.join("out");
    let o = recspec(&["import", "--features", bad.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("error[E0029]: length must be a positive integer"), "{}", stderr(&o));
    assert!(!out.exists());

    // A kind the checker accepts but the import does not make yet: refused by name, exit 2.
    let numeric = dir.join("numeric.recspec");
    std::fs::write(
        &numeric,
        text.replace("  feature item = item();", "  feature item = item();\n  feature dwell = zscore(\"dwell\");"),
    )
    .unwrap();
    let o = recspec(&["import", "--features", numeric.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("feature `dwell`: `recspec import` does not make `zscore` features yet"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    // A file without a feature set.
    let o = recspec(&["import", "--features", "specs/dfn.recspec", "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("specs/dfn.recspec has no feature set"), "{}", stderr(&o));
}
