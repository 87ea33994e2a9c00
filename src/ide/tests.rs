//! The analysis layer on small specs: `$0` marks the cursor.

use super::{Analysis, CompletionKind};
use crate::source::FileId;

const SPEC: &str = r#"block Enc(heads: int, scale: symbol = sqrt_head)(x: float[B, N, D], m: mask[B, N]) -> float[B, D] {
  let h = SelfAttention(heads: heads, scale: scale)(x, m);
  return pool(h, mask: m, mode: mean, padding: exclude);
}

model m {
  dim T = 30;
  dim S = 12;
  dim D = 64;
  dim V = 1000;
  input item: id[B] vocab V;
  seq clicks: id[B, T] vocab V;
  seq skips: id[B, S] vocab V;
  label click;
  let items = Embedding(vocab: V, dim: D);
  let t = items(item);
  let enc = Enc(heads: 4);
  let a = enc(items(clicks), clicks.mask);
  let b = enc(items(skips), skips.mask);
  let wide = concat(t, a, b, 1 - sigmoid(t), axis: -1);
  output p = sigmoid(Linear(out: 1)(flatten(wide)));
  loss click = 2.0 * bce(p, label: click);
}
"#;

/// The spec with a cursor: `marker` with `$0` inside it, found once in `SPEC`.
fn cursor(marker: &str) -> (Analysis, u32) {
    let plain = marker.replace("$0", "");
    let at = SPEC.find(&plain).unwrap_or_else(|| panic!("`{plain}` not in the spec"));
    let offset = at + marker.find("$0").expect("marker has $0");
    (Analysis::of_str("test.recspec", SPEC), offset as u32)
}

fn hover(marker: &str) -> String {
    let (a, offset) = cursor(marker);
    assert!(!a.checked.has_errors(), "{:?}", a.checked.diagnostics);
    a.hover(FileId(0), offset).map(|h| h.markdown).unwrap_or_default()
}

fn text_of(a: &Analysis, span: crate::source::Span) -> &str {
    &a.spec.sources.get(span.file).text[span.start as usize..span.end as usize]
}

#[test]
fn hover_shows_types_with_evaluated_dims() {
    let h = hover("let $0t = items(item);");
    assert!(h.contains("`float[B, D=64]`"), "{h}");
    assert!(h.contains("let t = items(item);"), "{h}");
    // A use shows the same type.
    assert!(hover("concat($0t, a").contains("`float[B, D=64]`"));
    assert!(hover("input i$0tem").contains("`id[B] vocab V=1000`"));
    assert!(hover("dim $0D = 64").contains("`D=64`"));
    // A binding of a constructor: its parameter count, once it was applied.
    let h = hover("let it$0ems = Embedding");
    assert!(h.contains("`Embedding` instance `items`: 64,000 parameters"), "{h}");
    // A block instance counts everything it owns.
    let h = hover("let e$0nc = Enc");
    assert!(h.contains("`Enc` instance `enc`: 16,640 parameters"), "{h}");
    // An anonymous instance is counted at its callee, with the application's result.
    let h = hover("Lin$0ear(out: 1)");
    assert!(h.contains("x W + b over the last axis") && h.contains("`out`: an integer (required)"), "{h}");
    assert!(h.contains("`Linear` instance `p/Linear`: 257 parameters"), "{h}");
    assert!(h.contains("result: `float[B, 1]`"), "{h}");
}

#[test]
fn hover_shows_ranges_losses_and_expressions() {
    let h = hover("output $0p = sigmoid");
    assert!(h.contains("`float[B, 1], values in [0.0, 1.0]`"), "{h}");
    let h = hover("loss cl$0ick = ");
    assert!(h.contains("loss term, weight 2.0"), "{h}");
    // The `-` of `1 - sigmoid(t)`: no name there, the innermost typed expression.
    let h = hover("1 $0- sigmoid(t)");
    assert!(h.contains("`float[B, D=64], values in [0.0, 1.0]`"), "{h}");
    // The width of a concat is evaluated: 64 * 3 + 64.
    let h = hover("let wi$0de");
    assert!(h.contains("`float[B, 4*D=256]`"), "{h}");
}

#[test]
fn hover_in_a_block_names_each_application() {
    let h = hover("(x$0: float[B, N, D]");
    assert!(h.contains("in `a`: `float[B, T=30, D=64]`"), "{h}");
    assert!(h.contains("in `b`: `float[B, S=12, D=64]`"), "{h}");
    let h = hover("float[B, $0N, D], m");
    assert!(h.contains("in `a`: `T=30`") && h.contains("in `b`: `S=12`"), "{h}");
    // Every application has the same parameter value: one line.
    let h = hover("Enc($0heads: int");
    assert!(h.contains("`4`") && !h.contains("in `"), "{h}");
}

#[test]
fn hover_on_ops_arguments_and_options() {
    let h = hover("return po$0ol(");
    assert!(h.contains("**`pool`** function") && h.contains("`mode`: one of mean, sum, max = mean"), "{h}");
    let h = hover("mode: me$0an");
    assert!(h.contains("option `mean` of `mode` in `pool`; the options: mean, sum, max"), "{h}");
    let h = hover("Embedding(vocab: V, d$0im: D)");
    assert!(h.contains("argument of `Embedding`: `dim`: an integer (required)") && h.contains("`D=64`"), "{h}");
    let h = hover("Enc(he$0ads: 4)");
    assert!(h.contains("block parameter") && h.contains("heads: int"), "{h}");
}

#[test]
fn hover_on_nothing_or_a_broken_spec_is_none() {
    let (a, _) = cursor("$0block Enc");
    assert!(a.hover(FileId(0), 0).is_none());
    let broken = Analysis::of_str("broken.recspec", "model m { let x = ; }");
    assert!(broken.checked.has_errors());
    for offset in 0..22 {
        assert!(broken.hover(FileId(0), offset).is_none());
        assert!(broken.definition(FileId(0), offset).is_none());
    }
}

#[test]
fn definitions_and_references() {
    let (a, offset) = cursor("let t = $0items(item);");
    let def = a.definition(FileId(0), offset).expect("a definition");
    assert_eq!(text_of(&a, def), "items");
    assert_eq!(&SPEC[def.start as usize - 4..def.start as usize], "let ");
    let refs = a.references(FileId(0), offset, true);
    assert_eq!(refs.len(), 4, "the let and three applications");
    assert_eq!(a.references(FileId(0), offset, false).len(), 3);

    // A named argument of a block goes to the parameter; a side field to its sequence's mask is
    // not a definition, but the sequence is.
    let (a, offset) = cursor("Enc(he$0ads: 4)");
    let def = a.definition(FileId(0), offset).unwrap();
    assert_eq!(def.start as usize, SPEC.find("heads: int").unwrap());
    let (a, offset) = cursor("enc(items(clicks), cli$0cks.mask)");
    assert_eq!(a.definition(FileId(0), offset).unwrap().start as usize, SPEC.find("clicks: id").unwrap());

    // Dims: the declaration and every use, types included.
    let (a, offset) = cursor("dim $0D = 64");
    let uses: Vec<&str> = a.references(FileId(0), offset, false).iter().map(|s| text_of(&a, *s)).collect();
    assert_eq!(uses, ["D"]);
    // Block names, the label, the dimension variable of a block.
    let (a, offset) = cursor("let enc = E$0nc(");
    assert_eq!(a.definition(FileId(0), offset).unwrap().start as usize, SPEC.find("Enc(heads").unwrap());
    let (a, offset) = cursor("label: cl$0ick");
    assert_eq!(a.definition(FileId(0), offset).unwrap().start as usize, SPEC.find("click;").unwrap());
    let (a, offset) = cursor("m: mask[B, $0N]");
    assert_eq!(a.definition(FileId(0), offset).unwrap().start as usize, SPEC.find("N, D]").unwrap());
}

fn complete(marker: &str) -> Vec<(String, CompletionKind)> {
    let (a, offset) = cursor(marker);
    super::complete(&a, SPEC, offset as usize).into_iter().map(|c| (c.label, c.kind)).collect()
}

fn labels(c: &[(String, CompletionKind)], kind: CompletionKind) -> Vec<&str> {
    c.iter().filter(|(_, k)| *k == kind).map(|(l, _)| l.as_str()).collect()
}

#[test]
fn completion_of_arguments_options_and_names() {
    let c = complete("Embedding($0vocab");
    assert_eq!(labels(&c, CompletionKind::Argument), ["vocab", "dim"]);
    // Arguments already given are not offered again.
    let c = complete("Embedding(vocab: V, $0dim");
    assert_eq!(labels(&c, CompletionKind::Argument), ["dim"]);
    // An application takes the op's inputs; a block's configuration its parameters, its
    // application its ports.
    assert_eq!(labels(&complete("Linear(out: 1)($0flatten"), CompletionKind::Argument), ["x"]);
    assert_eq!(labels(&complete("Enc($0heads: 4)"), CompletionKind::Argument), ["heads", "scale"]);
    let c = complete("mode: $0mean");
    assert_eq!(labels(&c, CompletionKind::Option), ["mean", "sum", "max"]);
    // The block's symbol parameter can stand for an option.
    assert!(labels(&c, CompletionKind::Name).contains(&"scale"));
    let c = complete("label: $0click");
    assert_eq!(labels(&c, CompletionKind::Name), ["click"]);
    // Names in scope, ops and blocks in an expression.
    let c = complete("let t = $0items");
    let names = labels(&c, CompletionKind::Name);
    assert!(names.contains(&"items") && !names.contains(&"clicks.mask") && names.contains(&"D"), "{names:?}");
    assert!(labels(&c, CompletionKind::Constructor).contains(&"Linear"));
    assert!(labels(&c, CompletionKind::Function).contains(&"concat"));
    assert_eq!(labels(&c, CompletionKind::Block), ["Enc"]);
    // In a block, the block's own names.
    let c = complete("return pool($0h");
    let names = labels(&c, CompletionKind::Name);
    assert!(names.contains(&"h") && names.contains(&"heads") && !names.contains(&"items"), "{names:?}");
    // Statement starts, types, the top level.
    assert!(labels(&complete("  $0let t ="), CompletionKind::Keyword).contains(&"output"));
    assert_eq!(labels(&complete("input item: $0id"), CompletionKind::Type), ["float", "id", "mask"]);
    assert_eq!(labels(&complete("$0model m"), CompletionKind::Keyword), ["import", "block", "model"]);
}

#[test]
fn completion_works_on_text_that_does_not_parse() {
    let a = Analysis::of_str("test.recspec", SPEC);
    let at = SPEC.find("  output p").unwrap();
    let text = format!("{}  let z = Linear(out: D, $0\n{}", &SPEC[..at], &SPEC[at..]);
    let offset = text.find("$0").unwrap();
    let text = text.replace("$0", "");
    let c: Vec<String> = super::complete(&a, &text, offset).into_iter().map(|c| c.label).collect();
    assert!(c.contains(&"bias".to_string()) && !c.contains(&"out".to_string()), "{c:?}");
    assert!(super::complete(&a, "model m { // a comm", 19).is_empty());
    assert!(super::complete(&a, "model m { /* a\n comm", 20).is_empty());
    // A parenthesis in a comment opens no call.
    let after = "model m { /* Linear( */ let y = ";
    let c = super::complete(&a, after, after.len());
    assert!(c.iter().any(|c| c.label == "concat") && !c.iter().any(|c| c.kind == CompletionKind::Argument));
    let c: Vec<String> = super::complete(&a, "import \"std/", 12).into_iter().map(|c| c.label).collect();
    assert!(c.contains(&"std/attention.recspec".to_string()), "{c:?}");
}

#[test]
fn the_overlay_stands_in_for_files_on_disk() {
    let scratch = tempfile::Builder::new().prefix("recspec-ide-overlay-").tempdir().unwrap();
    let dir = scratch.path();
    let lib = dir.join("lib.recspec");
    std::fs::write(&lib, "block Id()(x: float[B, N]) -> float[B, N] {\n  return x;\n}\n").unwrap();
    // The root exists only in memory; its import is read from the overlay, not the disk.
    let root = dir.join("unsaved.recspec");
    let main = "import \"lib.recspec\";\nmodel m {\n  input x: float[B, 4];\n  output y = Id()(x);\n}\n";
    let mut overlay = crate::load::Overlay::new();
    overlay.insert(root.clone(), main.to_string());
    let a = Analysis::load(&root, &overlay).expect("the root comes from the overlay");
    assert!(!a.checked.has_errors(), "{:?}", a.checked.diagnostics);
    overlay.insert(lib.canonicalize().unwrap(), "block Id()(x: float[B, N]) -> float[B, N] {\n  return y;\n}\n".into());
    let a = Analysis::load(&root, &overlay).unwrap();
    let undefined = a.checked.diagnostics.iter().find(|d| d.code == crate::diag::Code::Undefined).expect("E0005");
    assert_eq!(
        a.spec.sources.get(undefined.primary.as_ref().unwrap().span.file).path.as_deref(),
        Some(lib.canonicalize().unwrap().as_path())
    );
    // Without an overlay the disk is read as before.
    let (_, diags) = crate::load::load_file(&lib).unwrap();
    assert!(diags.is_empty());
}

#[test]
fn an_imported_name_hovers_goes_to_its_file_and_lists_its_uses_across_files() {
    let scratch = tempfile::Builder::new().prefix("recspec-ide-imported-").tempdir().unwrap();
    let dir = scratch.path();
    let lib_text = "block Tower(units: int)(x: float[B, N]) -> float[B, 1] {\n  return Linear(out: 1)(MLP(units: [units])(x));\n}\n";
    std::fs::write(dir.join("lib.recspec"), lib_text).unwrap();
    let main = "import \"lib.recspec\";\nmodel m {\n  input x: float[B, 4];\n  let tower = Tower(units: 8);\n  output y = tower(x);\n  output z = Tower(units: 2)(x);\n}\n";
    let root = dir.join("main.recspec");
    std::fs::write(&root, main).unwrap();
    let a = Analysis::load(&root, &crate::load::Overlay::new()).unwrap();
    assert!(!a.checked.has_errors(), "{:?}", a.checked.diagnostics);
    let root_id = a.file(&root.canonicalize().unwrap()).unwrap();
    let lib_id = a.file(&dir.join("lib.recspec").canonicalize().unwrap()).unwrap();
    let at = main.find("Tower(units: 8)").unwrap() as u32 + 2;

    let def = a.definition(root_id, at).expect("the imported block's definition");
    assert_eq!(def.file, lib_id);
    assert_eq!(text_of(&a, def), "Tower");
    let uses = a.references(root_id, at, true);
    assert_eq!(uses.len(), 3, "the definition in lib.recspec and two calls in main.recspec: {uses:?}");
    assert_eq!(uses.iter().filter(|s| s.file == lib_id).count(), 1);
    let h = a.hover(root_id, at).expect("a hover").markdown;
    assert!(h.contains("block Tower(units: int)"), "{h}");
    // The named argument of the imported block goes to its parameter in the other file.
    let arg = main.find("units: 2").unwrap() as u32 + 1;
    let param = a.definition(root_id, arg).unwrap();
    assert_eq!((param.file, text_of(&a, param)), (lib_id, "units"));
    // Completion in the root offers the imported block.
    let offered = super::complete(&a, main, main.find("Tower(units: 2)").unwrap() + 1);
    assert!(offered.iter().any(|c| c.label == "Tower"), "{:?}", offered.iter().map(|c| &c.label).collect::<Vec<_>>());
}

#[test]
fn the_table_is_the_resolvers_and_the_checker_keeps_it() {
    // A name used before its definition is an error, and still a use of that definition.
    let text = "model m {\n  input x: float[B, 4];\n  output y = h;\n  let h = Linear(out: 2)(x);\n}\n";
    let (spec, diags) = crate::load::load_str("t.recspec", text);
    let checked = crate::check::check(&spec, diags, &[]);
    assert!(checked.diagnostics.iter().any(|d| d.code == crate::diag::Code::UseBeforeDef));
    let use_at = text.find("= h;").unwrap() as u32 + 2;
    let occ = checked.names.at(FileId(0), use_at).expect("the early use is in the table");
    let def = checked.names.def(&occ.symbol).expect("resolved to the binding");
    assert_eq!(def.span.start as usize, text.find("h = Linear").unwrap());
}

#[test]
fn hover_on_a_feature_shows_what_it_makes_and_the_input_it_fills() {
    let spec = r#"model m {
  dim T = 30;
  dim V = 1000;
  input item: id[B] vocab V;
  seq clicks: id[B, T] vocab V;
  input price: float[B, 1];
  label click;
  let e = Embedding(vocab: V, dim: 8);
  output p = sigmoid(Linear(out: 1)(concat(e(item), pool(e(clicks), mask: clicks.mask, mode: mean), price, axis: -1)));
  loss click = bce(p, label: click);
}

features shop {
  source events("events.csv", user: "user_id", item: "item_id", time: "ts");
  dim T = 30;
  label click = "action == 'click'";
  feature item = item();
  feature price = zscore("price", missing: 0.0);
  seq clicks = history("action == 'click'", length: T);
}
"#;
    let a = Analysis::of_str("test.recspec", spec);
    assert!(!a.checked.has_errors(), "{:?}", a.checked.diagnostics);
    let at = |marker: &str| {
        let offset = spec.find(&marker.replace("$0", "")).unwrap() + marker.find("$0").unwrap();
        a.hover(FileId(0), offset as u32).map(|h| h.markdown).unwrap_or_default()
    };
    let h = at("feature pr$0ice = zscore");
    assert!(
        h.contains("`feature price = zscore(\"price\", missing: 0.0)` fills the model's `price`: `float[B, 1]`"),
        "{h}"
    );
    let h = at("seq cl$0icks = history");
    assert!(h.contains("fills the model's `clicks`: `id[B, T=30] vocab V=1000`"), "{h}");
}
