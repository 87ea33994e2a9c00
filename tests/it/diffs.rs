//! Diff cases: each directory in tests/data/diff holds old.recspec and new.recspec; the text and
//! Markdown diffs are snapshotted.

use crate::{graph, root, settings};
use recspec::diff::{diff, render};

#[test]
fn diff_cases_match_snapshots() {
    let settings = settings();
    let mut cases: Vec<_> = std::fs::read_dir(root().join("tests/data/diff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let report = diff(&graph(&case.join("old.recspec")), &graph(&case.join("new.recspec")));
        let same_expected = name.starts_with("same_");
        assert_eq!(report.same, same_expected, "case {name}");
        settings.bind(|| {
            insta::assert_snapshot!(format!("diff_{name}"), render(&report, false).unwrap());
            insta::assert_snapshot!(format!("diff_{name}_md"), render(&report, true).unwrap());
        });
    }
}

#[test]
fn din_to_dfn_lists_the_feedback_components() {
    let report = diff(&graph(&root().join("specs/din.recspec")), &graph(&root().join("specs/dfn.recspec")));
    assert!(!report.same);
    let all: Vec<String> = report
        .sections
        .iter()
        .flat_map(|s| s.changes.iter().map(move |c| format!("{} {:?} {}", s.title, c.kind, c.name)))
        .collect();
    for expected in [
        "nodes Added f_c/attended",
        "nodes Added f_ud",
        "instances Added wide",
        "losses Added dislike",
        "labels Added label dislike",
        "nodes Removed interest",
    ] {
        assert!(all.iter().any(|x| x == expected), "missing `{expected}` in {all:#?}");
    }
    assert_eq!(report.param_delta, report.new_params - report.old_params);
}

#[test]
fn a_spec_is_the_same_as_itself() {
    let g = graph(&root().join("specs/dfn.recspec"));
    let report = diff(&g, &g);
    assert!(report.same);
    assert_eq!(report.count, 0);
}

/// docs/diffs.md shows the current output of `recspec diff` for the documented spec pairs.
#[test]
fn the_documented_diffs_are_current() {
    let page = std::fs::read_to_string(root().join("docs/diffs.md")).unwrap();
    for (old, new) in [("dumn", "dumn_one_memory"), ("dumn", "dumn_no_fp"), ("mmoe", "dlen")] {
        let spec = |name: &str| graph(&root().join(format!("specs/{name}.recspec")));
        let text = render(&diff(&spec(old), &spec(new)), false).unwrap();
        assert!(
            page.contains(&format!("```text\n{text}```")),
            "docs/diffs.md is stale for {old} -> {new}: run `bash bench/docs_diffs.sh > docs/diffs.md`"
        );
    }
}
