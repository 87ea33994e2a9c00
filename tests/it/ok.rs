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

/// Every valid spec (tests/data/ok, specs/ and the examples' specs) lowers to a program whose
/// steps read exactly the values their graph nodes read, with every parameter laid out.
#[test]
fn valid_specs_lower_to_programs() {
    let mut files = 0;
    for dir in ["tests/data/ok", "specs", "examples/sasrec"] {
        for entry in std::fs::read_dir(crate::root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "recspec") {
                continue;
            }
            files += 1;
            let (checked, _) = compile(&path, &[]);
            let graph = checked.graph.unwrap();
            let program = recspec::lower::lower(&graph, &recspec::lower::Bindings::of(&graph))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(program.steps.len(), graph.nodes.len());
            for (step, node) in program.steps.iter().zip(&graph.nodes) {
                let mut read: Vec<&str> =
                    step.kernel.operands().iter().map(|v| program.value(*v).name.as_str()).collect();
                let mut sources: Vec<&str> = node.operands.iter().map(|o| o.source.as_str()).collect();
                read.sort();
                sources.sort();
                assert_eq!(read, sources, "{}: node {}", path.display(), node.name);
            }
            let params: usize = graph.instances.iter().map(|i| i.params.len()).sum();
            assert_eq!(program.params.len(), params, "{}", path.display());
            assert_eq!(program.trainable_count() as i64, graph.total_params(), "{}", path.display());
        }
    }
    assert!(files >= 20, "{files}");
}
