//! The error corpus: every file in tests/data/err must yield at least one error, and its
//! rendered diagnostics are snapshotted.

use crate::{compile, settings};

#[test]
fn every_mistake_is_reported() {
    let settings = settings();
    let mut files = 0;
    let mut codes = std::collections::BTreeSet::new();
    insta::glob!("../data/err", "*.recspec", |path| {
        files += 1;
        let (checked, rendered) = compile(path, &[]);
        assert!(checked.has_errors(), "{} produced no error:\n{rendered}", path.display());
        assert!(checked.graph.is_none());
        for d in checked.diagnostics.iter().filter(|d| d.is_error()) {
            assert!(d.primary.is_some(), "error without a location in {}: {}", path.display(), d.message);
            codes.insert(d.code);
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        settings.bind(|| insta::assert_snapshot!(format!("err_{name}"), rendered));
    });
    assert!(files >= 30, "the corpus needs at least 30 mistakes, found {files}");
    assert!(codes.len() >= 25, "the corpus should exercise most error codes, found {}", codes.len());
}

#[test]
fn the_earlier_on_spelling_still_compiles_with_a_warning() {
    let spec = |arg: &str| {
        format!(
            "model m {{\n  dim D = 4;\n  input x: float[B, D];\n  label c;\n  output p = sigmoid(Linear(out: 1)(x));\n  \
             loss c = nll(p, {arg}: c);\n}}\n"
        )
    };
    let (_, old) = recspec::compile_str("old.recspec", &spec("on"), &[]);
    let (_, new) = recspec::compile_str("new.recspec", &spec("label"), &[]);
    assert!(new.diagnostics.is_empty());
    let codes: Vec<String> = old.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["W0101"]);
    assert_eq!(old.diagnostics[0].message, "`on:` is now spelt `label:`");
    let render = |c: &recspec::check::Checked| {
        recspec::render::emit(c.graph.as_ref().unwrap(), recspec::render::Emit::Graph).unwrap()
    };
    assert_eq!(render(&old), render(&new));
    // `recspec fmt` rewrites the earlier spelling.
    let fixed = recspec::fmt::format(recspec::source::FileId(0), &spec("on")).unwrap();
    assert_eq!(fixed, spec("label"));
}
