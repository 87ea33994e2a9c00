//! `recspec fmt`: the formatter's properties over every spec we have, and the command.

use crate::cli::{code, recspec, stderr, stdout};
use crate::copy_tree;
use crate::Scratch;
use recspec::source::FileId;
use recspec::syntax::{parse_tree, Rule, SyntaxNode};
use std::path::Path;

/// The token texts of a text, without trailing commas (which the formatter adds and removes)
/// and with renamed argument names in their current spelling.
fn tokens(tree: &SyntaxNode, text: &str) -> Vec<String> {
    let mut all = vec![];
    tree.tokens(&mut all);
    let mut out = vec![];
    for (i, t) in all.iter().enumerate() {
        let next = all.get(i + 1).map(|n| n.rule);
        if t.rule == Rule::comma && matches!(next, Some(Rule::rparen | Rule::rbracket)) {
            continue;
        }
        let mut token = &text[t.start..t.end];
        if t.rule == Rule::arg_name {
            // `recspec fmt` writes an op's earlier argument spellings in the current one.
            token = recspec::ops::RENAMED_ARGS.iter().find(|(old, _)| *old == token).map_or(token, |r| r.1);
        }
        out.push(token.to_string());
    }
    out
}

/// Checks what formatting must keep, for a text that parses: the same tokens (up to trailing
/// commas), the same comments in the same order, and a fixed point. Returns the formatted text
/// (None when the text does not parse).
pub fn check_properties(name: &str, text: &str) -> Option<String> {
    let tree = parse_tree(FileId(0), text).ok()?;
    let out = recspec::fmt::format(FileId(0), text)
        .unwrap_or_else(|d| panic!("{name}: parsed but did not format: {}", d.message));
    let again = parse_tree(FileId(0), &out)
        .unwrap_or_else(|d| panic!("{name}: formatted text does not parse: {}\n{out}", d.message));
    assert_eq!(
        tokens(&tree, text),
        tokens(&again, &out),
        "{name}: tokens changed\n--- input\n{text}\n--- output\n{out}"
    );
    assert_eq!(
        recspec::fmt::comments(text, &tree),
        recspec::fmt::comments(&out, &again),
        "{name}: comments changed\n--- input\n{text}\n--- output\n{out}"
    );
    let twice = recspec::fmt::format(FileId(0), &out).expect("formatted text formats");
    assert_eq!(out, twice, "{name}: not idempotent\n--- input\n{text}");
    Some(out)
}

fn graph(path: &Path) -> Option<String> {
    let (_, checked) = recspec::compile_file(path, &[]).unwrap();
    checked.graph.map(|g| recspec::render::emit(&g, recspec::render::Emit::Graph).unwrap())
}

/// Every spec folder, formatted as a whole in a copy (so imports see formatted libraries too),
/// compiles to byte-identical graphs; every file keeps its tokens and comments and is a fixed
/// point; and the shipped specs are already formatted.
#[test]
fn formatting_keeps_tokens_comments_and_graphs() {
    let tmp = Scratch::new("fmt");
    let mut graphs = 0;
    for dir in ["specs", "std", "tests/data/ok", "bench/movielens"] {
        let copy = tmp.join(dir);
        copy_tree(&crate::root().join(dir), &copy);
        // `recspec fmt`'s own file search (an error when a folder holds no spec).
        let files =
            recspec::app::snapshot::spec_files(&[crate::root().join(dir)]).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let out = check_properties(&f.display().to_string(), &text).expect("corpus specs parse");
            if dir != "tests/data/ok" {
                assert_eq!(out, text, "{} is not formatted: run `recspec fmt {}`", f.display(), dir);
            }
            std::fs::write(copy.join(f.strip_prefix(crate::root().join(dir)).unwrap()), out).unwrap();
        }
        for f in &files {
            let formatted = copy.join(f.strip_prefix(crate::root().join(dir)).unwrap());
            let before = graph(&crate::relative(f));
            assert_eq!(before, graph(&formatted), "{}: the graph changed", f.display());
            graphs += usize::from(before.is_some());
        }
    }
    assert!(graphs >= 18, "only {graphs} specs compiled to graphs");
}

#[test]
fn fmt_checks_writes_and_refuses_syntax_errors() {
    let dir = Scratch::new("cli-fmt");
    let messy = dir.join("messy.recspec");
    std::fs::write(&messy, "model m{dim D=4; // size\ninput x:float[B,D];output y=x;}\n").unwrap();
    let d = dir.to_str().unwrap();

    let o = recspec(&["fmt", "--check", d]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stdout(&o).contains("+  dim D = 4;  // size"), "a diff: {}", stdout(&o));
    assert!(stderr(&o).contains("1 file not formatted, 0 unchanged"), "{}", stderr(&o));

    let o = recspec(&["fmt", d]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(&messy).unwrap();
    assert_eq!(text, "model m {\n  dim D = 4;  // size\n  input x: float[B, D];\n  output y = x;\n}\n");
    assert_eq!(code(&recspec(&["fmt", "--check", d])), 0);

    std::fs::write(dir.join("broken.recspec"), "model m {\n  dim D = ;\n}\n").unwrap();
    let o = recspec(&["fmt", d]);
    assert_eq!(code(&o), 1, "a syntax error is a finding");
    assert!(stderr(&o).contains("broken.recspec:2:"), "located diagnostic: {}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("broken.recspec")).unwrap(),
        "model m {\n  dim D = ;\n}\n",
        "left alone"
    );

    let empty = dir.join("none");
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(code(&recspec(&["fmt", empty.to_str().unwrap()])), 2, "nothing to format is an error");
}

#[test]
fn fmt_reads_standard_input() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recspec"))
        .args(["fmt", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"model m { dim D=4; }").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "model m {\n  dim D = 4;\n}\n");
}
