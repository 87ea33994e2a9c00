//! Valid inputs beyond the seed specs: each compiles with no diagnostics at all.

use crate::{compile, settings};
use recspec::render::{emit, Emit};

#[test]
fn valid_specs_have_no_diagnostics() {
    let settings = settings();
    let mut files = 0;
    insta::glob!("../data/ok", "*.recspec", |path| {
        files += 1;
        let (checked, rendered) = compile(path, &[]);
        assert!(checked.diagnostics.is_empty(), "{}:\n{rendered}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        settings.bind(|| {
            insta::assert_snapshot!(format!("ok_{name}"), emit(&checked.graph.unwrap(), Emit::Graph).unwrap())
        });
    });
    assert!(files >= 4);
}
