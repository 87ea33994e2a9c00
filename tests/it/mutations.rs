//! Mutations of dfn.recspec: what a user's typical edit mistakes produce.

use recspec::ast::{ExprKind, StmtKind};
use recspec::diag::Code;

fn dfn() -> String {
    std::fs::read_to_string(crate::root().join("specs/dfn.recspec")).unwrap()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

#[test]
fn deleting_any_let_is_an_error_at_its_first_use() {
    let text = dfn();
    let file = recspec::syntax::parse(Default::default(), &text).unwrap();
    let model = &file.models[0];
    let mut checked_lets = 0;
    for (i, stmt) in model.body.iter().enumerate() {
        let StmtKind::Let { name, .. } = &stmt.kind else {
            continue;
        };
        // The first later use of the name.
        let mut first_use = None;
        for later in &model.body[i + 1..] {
            let exprs: Vec<&recspec::ast::Expr> = match &later.kind {
                StmtKind::Let { value, .. } | StmtKind::Output { value, .. } | StmtKind::Loss { value, .. } => {
                    vec![value]
                }
                _ => vec![],
            };
            for e in exprs {
                e.walk(&mut |x| {
                    if let ExprKind::Name(n) = &x.kind {
                        if n == &name.name && first_use.is_none() {
                            first_use = Some(x.span.start as usize);
                        }
                    }
                });
            }
            if first_use.is_some() {
                break;
            }
        }
        let use_offset = first_use.unwrap_or_else(|| panic!("`{}` is never used in dfn.recspec", name.name));
        let (start, end) = (stmt.span.start as usize, stmt.span.end as usize);
        let mutated = format!("{}{}", &text[..start], &text[end..]);
        let expected_line = line_of(&mutated, use_offset - (end - start));
        let (program, checked) = recspec::compile_str("dfn.recspec", &mutated, &[]);
        assert!(checked.has_errors(), "deleting `{}` was accepted", name.name);
        let at_use = checked.diagnostics.iter().any(|d| {
            d.is_error()
                && d.code == Code::Undefined
                && d.primary
                    .as_ref()
                    .is_some_and(|p| program.sources.line_col(p.span.file, p.span.start).0 == expected_line)
        });
        assert!(
            at_use,
            "deleting `{}`: no undefined-name error at line {expected_line}:\n{}",
            name.name,
            recspec::diag::render(&program.sources, &checked.diagnostics)
        );
        checked_lets += 1;
    }
    assert!(checked_lets >= 15, "dfn.recspec has {checked_lets} lets");
}

fn error_with_two_locations(mutated: &str, code: Code) {
    let (program, checked) = recspec::compile_str("dfn.recspec", mutated, &[]);
    let rendered = recspec::diag::render(&program.sources, &checked.diagnostics);
    let d = checked.diagnostics.iter().find(|d| d.code == code).unwrap_or_else(|| panic!("no {code:?}:\n{rendered}"));
    let primary = d.primary.as_ref().unwrap();
    let lines: std::collections::BTreeSet<usize> = std::iter::once(primary.span)
        .chain(d.secondary.iter().map(|s| s.span))
        .map(|s| program.sources.line_col(s.file, s.start).0)
        .collect();
    assert!(lines.len() >= 2, "expected labels on two lines:\n{rendered}");
    assert!(
        d.secondary.iter().any(|s| s.message.contains("bound to")),
        "expected a dimension binding note:\n{rendered}"
    );
}

#[test]
fn concatenating_disagreeing_dims_names_both_locations() {
    let text = dfn()
        .replace("dim FV = 100000;", "dim FV = 100000;\n  dim E = 32;")
        .replace("Embedding(vocab: FV, dim: D)(fields)", "Embedding(vocab: FV, dim: E)(fields)");
    error_with_two_locations(&text, Code::ShapeMismatch);
}

#[test]
fn attending_with_another_sequence_mask_names_both_locations() {
    let text = dfn()
        .replace("seq dislikes: id[B, T] vocab V;", "dim T2 = 20;\n  seq dislikes: id[B, T2] vocab V;")
        .replace("(t, u, unclicks.mask);\n  let f_d", "(t, u, dislikes.mask);\n  let f_d");
    error_with_two_locations(&text, Code::ShapeMismatch);
}

#[test]
fn overrides_change_shapes_and_are_validated() {
    use recspec::overrides::{Override, OverrideValue};
    let set = |name: &str, value: OverrideValue| Override::new(name, value, &format!("--set {name}"));
    let (_, checked) = recspec::compile_str(
        "dfn.recspec",
        &dfn(),
        &[set("D", OverrideValue::Int(32)), set("lambda_d", OverrideValue::Float(5.0))],
    );
    let g = checked.graph.expect("compiles with D=32");
    assert_eq!(g.dims.iter().find(|d| d.name == "D").unwrap().value, 32);
    assert_eq!(g.losses.iter().find(|l| l.name == "dislike").unwrap().weight, 5.0);
    assert_eq!(g.instance("items").unwrap().param_count(), 100000 * 32);

    let (_, checked) = recspec::compile_str("dfn.recspec", &dfn(), &[set("DD", OverrideValue::Int(32))]);
    let d = checked.diagnostics.iter().find(|d| d.code == Code::BadOverride).expect("unknown override rejected");
    assert!(d.message.contains("did you mean `D`"), "{}", d.message);
    let (_, checked) = recspec::compile_str("dfn.recspec", &dfn(), &[set("D", OverrideValue::Float(1.5))]);
    assert!(checked.diagnostics.iter().any(|d| d.code == Code::BadOverride));
    // D = 30 is not divisible by the 4 heads.
    let (_, checked) = recspec::compile_str("dfn.recspec", &dfn(), &[set("D", OverrideValue::Int(30))]);
    assert!(checked.diagnostics.iter().any(|d| d.code == Code::BadValue && d.message.contains("heads")));
}
