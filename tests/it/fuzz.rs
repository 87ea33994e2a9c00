//! Random and mutated text through parser and checker: no input may panic.

use crate::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};

const TOKENS: &[&str] = &[
    "model",
    "block",
    "let",
    "dim",
    "param",
    "input",
    "seq",
    "side",
    "label",
    "weight",
    "output",
    "loss",
    "return",
    "import",
    "vocab",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    ":",
    ".",
    "=",
    "->",
    "+",
    "-",
    "*",
    "/",
    "B",
    "D",
    "T",
    "x",
    "y",
    "0",
    "1",
    "-1",
    "64",
    "0.5",
    "1e9",
    "99999999999999999999",
    "\"std/attention.recspec\"",
    "id",
    "float",
    "mask",
    "int",
    "symbol",
    "Linear",
    "Embedding",
    "MLP",
    "SelfAttention",
    "GRU",
    "Memory",
    "MMoE",
    "concat",
    "stack",
    "pool",
    "fm",
    "sigmoid",
    "softmax",
    "bce",
    "nll",
    "not_to_recommend",
    "triplet",
    "item_logits",
    "axis",
    "out",
    "units",
    "heads",
    "mask",
    "label",
    "on",
    "\n",
    " ",
    "é",
    "//",
    "/*",
];

fn check_no_panic(text: &str) {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (program, checked) = recspec::compile_str("fuzz.recspec", text, &[]);
        let _ = recspec::diag::render(&program.sources, &checked.diagnostics);
        if let Some(g) = &checked.graph {
            let _ = recspec::render::emit(g, recspec::render::Emit::Graph);
        }
        // Whatever parses formats without losing a token or a comment, to a fixed point.
        crate::format::check_properties("fuzz.recspec", text);
    }));
    assert!(result.is_ok(), "panic on input:\n{text}");
}

#[test]
fn random_token_streams_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..1500 {
        let n = rng.below(60);
        let text: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect::<Vec<_>>().join(" ");
        check_no_panic(&text);
    }
}

#[test]
fn mutated_specs_never_panic() {
    let mut sources = vec![];
    for dir in ["specs", "tests/data/ok", "tests/data/err"] {
        for e in std::fs::read_dir(crate::root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "recspec") {
                sources.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    let mut rng = Rng(0xfeed_beef_0000_0042);
    for _ in 0..1500 {
        let base = &sources[rng.below(sources.len())];
        let mut chars: Vec<char> = base.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let len = chars.len().max(1);
            let at = rng.below(len);
            match rng.below(4) {
                0 => {
                    let end = (at + 1 + rng.below(12)).min(chars.len());
                    chars.drain(at.min(end)..end);
                }
                1 => {
                    let tok: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                    let at = at.min(chars.len());
                    chars.splice(at..at, tok);
                }
                2 => {
                    let end = (at + rng.below(20)).min(chars.len());
                    let piece: Vec<char> = chars[at.min(end)..end].to_vec();
                    let to = rng.below(chars.len().max(1)).min(chars.len());
                    chars.splice(to..to, piece);
                }
                _ => {
                    if at < chars.len() {
                        chars[at] = ['0', '9', 'x', '(', ')', ';', ',', '[', ']', '-'][rng.below(10)];
                    }
                }
            }
        }
        check_no_panic(&chars.into_iter().collect::<String>());
    }
}
