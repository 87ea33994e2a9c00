//! Completion: what may be written at a cursor. The context (inside which call, after which
//! argument name, at a statement's start) comes from the text before the cursor, which need not
//! parse; names, blocks and their signatures come from an analysis, possibly of an earlier
//! version of the text.

use super::hover::{arg_text, op_doc};
use super::Analysis;
use crate::ast::{BlockDef, ValueKind};
use crate::ops::{self, ArgKind, ArgSpec, Op};
use crate::resolve::index::{DefKind, ScopeId};
use crate::stdlib;

/// What a completion inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    /// A lower-case op (`concat`).
    Function,
    /// A capitalised op that owns weights (`Linear`).
    Constructor,
    Block,
    /// A name defined in the body: dim, param, input, binding...
    Name,
    /// An argument name, inserted as `name: `.
    Argument,
    /// An option value (`mean`).
    Option,
    Keyword,
    /// An element type or a parameter kind.
    Type,
    /// A standard library file in an import.
    File,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    /// One line: a signature, a kind, a declaration.
    pub detail: String,
    /// Longer Markdown documentation (an op's catalogue entry).
    pub documentation: Option<String>,
    /// The text to insert.
    pub insert: String,
}

impl Completion {
    fn new(label: impl Into<String>, kind: CompletionKind, detail: impl Into<String>) -> Completion {
        let label = label.into();
        Completion { insert: label.clone(), label, kind, detail: detail.into(), documentation: None }
    }
}

const STATEMENT_KEYWORDS: &[&str] =
    &["let", "output", "loss", "dim", "param", "input", "seq", "side", "label", "weight", "return"];
const TOP_KEYWORDS: &[&str] = &["import", "block", "model"];
const DTYPES: &[&str] = &["float", "id", "mask"];
const VALUE_KINDS: &[&str] = &["int", "float", "bool", "symbol", "list"];

/// Completions at byte `offset` of `text`, the current text of a file of `a`.
pub fn complete(a: &Analysis, text: &str, offset: usize) -> Vec<Completion> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let (code, state) = mask(&text[..offset]);
    match state {
        LexState::Comment | LexState::BlockComment => return vec![],
        LexState::String => {
            return stdlib::names()
                .iter()
                .map(|n| Completion::new(*n, CompletionKind::File, "standard library"))
                .collect()
        }
        LexState::Code => {}
    }
    let word_start = back_over(&code, offset, is_ident);
    let before = back_over(&code, word_start, |c| c.is_ascii_whitespace());
    let prev = before.checked_sub(1).map(|i| code[i]);
    let body = enclosing_body(&code[..word_start]);
    let scope = body.as_ref().and_then(|(is_block, name)| a.index.scope_named(name, *is_block));
    let call = enclosing_call(&code, word_start).map(|open| (open, callee_of(a, &code, open, scope)));
    if body.is_none() && !matches!(call, Some((_, Callee::BlockDecl))) {
        return keywords(TOP_KEYWORDS);
    }
    if prev == Some(b':') {
        let arg = word_before(&code, before - 1);
        return match &call {
            Some((_, callee)) => argument_values(a, scope, callee, &arg),
            None => match statement_keyword(&code, before - 1).as_str() {
                "input" | "seq" | "side" => types(DTYPES),
                "param" => types(VALUE_KINDS),
                _ => values(a, scope),
            },
        };
    }
    match &call {
        Some((_, Callee::BlockDecl)) => {
            if prev == Some(b'(') || prev == Some(b',') {
                vec![]
            } else {
                let mut out = types(VALUE_KINDS);
                out.extend(types(DTYPES));
                out
            }
        }
        Some((open, callee)) if prev == Some(b'(') || prev == Some(b',') => {
            let given = given_arguments(&code[open + 1..word_start]);
            let mut out = argument_names(a, callee, &given);
            out.extend(values(a, scope));
            out
        }
        Some(_) => values(a, scope),
        None if matches!(prev, None | Some(b';' | b'{' | b'}')) => keywords(STATEMENT_KEYWORDS),
        None => values(a, scope),
    }
}

/// What the innermost open parenthesis before the cursor belongs to.
#[derive(Clone, Debug, PartialEq)]
enum Callee {
    /// An op call: a constructor's configuration (`Linear(`) or a function's or an
    /// application's inputs (`Linear(out: D)(`, `concat(`).
    Op {
        op: Op,
        config: bool,
    },
    /// A block's configuration, `Encoder(`.
    BlockConfig(String),
    /// A configured block's application, `Encoder(heads: 2)(`.
    BlockApply(String),
    /// The parameter or port list of a block being declared.
    BlockDecl,
    Unknown,
}

fn keywords(words: &[&str]) -> Vec<Completion> {
    words.iter().map(|w| Completion::new(*w, CompletionKind::Keyword, "keyword")).collect()
}

fn types(words: &[&str]) -> Vec<Completion> {
    words.iter().map(|w| Completion::new(*w, CompletionKind::Type, "type")).collect()
}

/// Names in the body, then ops and blocks.
fn values(a: &Analysis, scope: Option<ScopeId>) -> Vec<Completion> {
    let mut out = vec![];
    if let Some(scope) = scope {
        for d in a.index.defs_in(scope) {
            if matches!(d.kind, DefKind::Label | DefKind::Loss) {
                continue;
            }
            let name = match &d.symbol {
                crate::resolve::index::Symbol::Local(_, n) => n.clone(),
                _ => continue,
            };
            if !out.iter().any(|c: &Completion| c.label == name) {
                out.push(Completion::new(name, CompletionKind::Name, format!("{}: {}", d.kind.describe(), d.detail)));
            }
        }
    }
    for op in Op::ALL.iter().filter(|op| !op.is_operator()) {
        let kind = if op.is_constructor() { CompletionKind::Constructor } else { CompletionKind::Function };
        let mut c = Completion::new(op.name(), kind, op.doc());
        c.documentation = Some(op_doc(*op));
        out.push(c);
    }
    out.push(Completion::new(ops::SELECT, CompletionKind::Function, "select(option, name: expr, ...): one branch"));
    out.push(Completion::new(
        ops::LAYERS,
        CompletionKind::Function,
        "layers(n, Component(config))(x, ...): n copies with their own weights, applied in sequence",
    ));
    let mut seen = std::collections::HashSet::new();
    for b in a.spec.blocks() {
        if seen.insert(b.name.name.as_str()) {
            out.push(Completion::new(&b.name.name, CompletionKind::Block, block_header(a, b)));
        }
    }
    out
}

fn block_header(a: &Analysis, b: &BlockDef) -> String {
    a.index
        .def(&crate::resolve::index::Symbol::Block(b.name.name.clone()))
        .map_or(format!("block {}", b.name.name), |d| d.detail.clone())
}

fn block<'a>(a: &'a Analysis, name: &str) -> Option<&'a BlockDef> {
    a.spec.blocks().find(|b| b.name.name == name)
}

/// The argument names of the call not given yet, inserted as `name: `.
fn argument_names(a: &Analysis, callee: &Callee, given: &[String]) -> Vec<Completion> {
    let arg = |name: &str, detail: String| Completion {
        label: name.to_string(),
        kind: CompletionKind::Argument,
        detail,
        documentation: None,
        insert: format!("{name}: "),
    };
    let fresh = |name: &str| !given.iter().any(|g| g == name);
    match callee {
        Callee::Op { op, config } => {
            let specs = if *config { op.config() } else { op.inputs() };
            specs.iter().filter(|s| fresh(s.name)).map(|s| arg(s.name, arg_text(s))).collect()
        }
        Callee::BlockConfig(name) => block(a, name)
            .map(|b| {
                b.params
                    .iter()
                    .filter(|p| fresh(&p.name.name))
                    .map(|p| arg(&p.name.name, format!("parameter: {}", p.kind.name())))
                    .collect()
            })
            .unwrap_or_default(),
        Callee::BlockApply(name) => block(a, name)
            .map(|b| {
                b.ports.iter().filter(|p| fresh(&p.name.name)).map(|p| arg(&p.name.name, "input".into())).collect()
            })
            .unwrap_or_default(),
        Callee::BlockDecl | Callee::Unknown => vec![],
    }
}

/// What may follow `arg:` in a call: the options of a symbol argument, the label streams of a
/// label argument, else any value.
fn argument_values(a: &Analysis, scope: Option<ScopeId>, callee: &Callee, arg: &str) -> Vec<Completion> {
    let symbol_params = |a: &Analysis| -> Vec<Completion> {
        let Some(scope) = scope else { return vec![] };
        a.index
            .defs_in(scope)
            .filter(|d| matches!(d.kind, DefKind::Param | DefKind::BlockParam) && d.detail.contains("symbol"))
            .filter_map(|d| match &d.symbol {
                crate::resolve::index::Symbol::Local(_, n) => {
                    Some(Completion::new(n, CompletionKind::Name, d.detail.clone()))
                }
                _ => None,
            })
            .collect()
    };
    match callee {
        Callee::Op { op, config } => {
            let specs: &[ArgSpec] = if *config { op.config() } else { op.inputs() };
            match ops::arg_spec(specs, arg).map(|(s, _)| s.kind) {
                Some(ArgKind::Sym(options)) => {
                    let mut out: Vec<Completion> = options
                        .iter()
                        .map(|o| Completion::new(*o, CompletionKind::Option, format!("option of `{arg}`")))
                        .collect();
                    out.extend(symbol_params(a));
                    out
                }
                Some(ArgKind::Label) => scope
                    .into_iter()
                    .flat_map(|s| a.index.defs_in(s))
                    .filter(|d| d.kind == DefKind::Label)
                    .filter_map(|d| match &d.symbol {
                        crate::resolve::index::Symbol::Label(_, n) => {
                            Some(Completion::new(n, CompletionKind::Name, "label stream"))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => values(a, scope),
            }
        }
        Callee::BlockConfig(name) => {
            let is_symbol = block(a, name)
                .and_then(|b| b.params.iter().find(|p| p.name.name == arg))
                .is_some_and(|p| p.kind == ValueKind::Symbol);
            if is_symbol {
                symbol_params(a)
            } else {
                values(a, scope)
            }
        }
        Callee::BlockDecl => {
            let mut out = types(VALUE_KINDS);
            out.extend(types(DTYPES));
            out
        }
        Callee::BlockApply(_) | Callee::Unknown => values(a, scope),
    }
}

/// Where a lexer stands at the end of a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LexState {
    Code,
    /// A `//` comment.
    Comment,
    /// A `/* */` comment.
    BlockComment,
    String,
}

/// The text's bytes with comments and string contents blanked (offsets kept), and whether it
/// ends inside a comment or a string.
fn mask(text: &str) -> (Vec<u8>, LexState) {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut state = LexState::Code;
    let mut i = 0;
    while i < bytes.len() {
        let pair = (bytes[i], bytes.get(i + 1).copied());
        let opens = match (state, pair) {
            (LexState::Code, (b'/', Some(b'/'))) => Some(LexState::Comment),
            (LexState::Code, (b'/', Some(b'*'))) => Some(LexState::BlockComment),
            (LexState::BlockComment, (b'*', Some(b'/'))) => Some(LexState::Code),
            _ => None,
        };
        if let Some(next) = opens {
            out[i] = b' ';
            out[i + 1] = b' ';
            state = next;
            i += 2;
            continue;
        }
        match (state, bytes[i]) {
            (LexState::Code, b'"') => state = LexState::String,
            (LexState::Code, _) => {}
            (LexState::Comment | LexState::String, b'\n') => state = LexState::Code,
            (LexState::String, b'"') => state = LexState::Code,
            (LexState::Comment | LexState::BlockComment | LexState::String, _) => out[i] = b' ',
        }
        i += 1;
    }
    (out, state)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The start of the run of bytes satisfying `f` that ends at `end`.
fn back_over(code: &[u8], end: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut i = end;
    while i > 0 && f(code[i - 1]) {
        i -= 1;
    }
    i
}

/// The identifier ending at `end` (after skipping whitespace back).
fn word_before(code: &[u8], end: usize) -> String {
    let end = back_over(code, end, |c| c.is_ascii_whitespace());
    let start = back_over(code, end, is_ident);
    String::from_utf8_lossy(&code[start..end]).to_string()
}

/// The first word of the statement the cursor is in.
fn statement_keyword(code: &[u8], end: usize) -> String {
    let start = code[..end].iter().rposition(|c| matches!(c, b';' | b'{' | b'}')).map_or(0, |i| i + 1);
    let rest = String::from_utf8_lossy(&code[start..end]).to_string();
    rest.split_whitespace().next().unwrap_or("").to_string()
}

/// The model (`false`) or block (`true`) body the text ends in, by name.
fn enclosing_body(code: &[u8]) -> Option<(bool, String)> {
    let mut depth = 0usize;
    let mut header: Option<(bool, String)> = None;
    let mut current: Option<(bool, String)> = None;
    let mut words: Vec<String> = vec![];
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if is_ident(c) {
            let start = i;
            while i < code.len() && is_ident(code[i]) {
                i += 1;
            }
            let word = String::from_utf8_lossy(&code[start..i]).to_string();
            if depth == 0 {
                if let Some(prev) = words.last() {
                    if prev == "block" || prev == "model" {
                        header = Some((prev == "block", word.clone()));
                    }
                }
                words.push(word);
            }
            continue;
        }
        match c {
            b'{' => {
                if depth == 0 {
                    current = header.take();
                }
                depth += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    current = None;
                    words.clear();
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth == 0 {
        return None;
    }
    current
}

/// The innermost unclosed `(` of the current statement before `end`.
fn enclosing_call(code: &[u8], end: usize) -> Option<usize> {
    let mut depth = 0usize;
    for j in (0..end).rev() {
        match code[j] {
            b')' | b']' => depth += 1,
            b'(' if depth == 0 => return Some(j),
            b'[' if depth == 0 => return None,
            b'(' | b'[' => depth -= 1,
            b'{' | b'}' | b';' => return None,
            _ => {}
        }
    }
    None
}

/// What the parenthesis at `open` calls.
fn callee_of(a: &Analysis, code: &[u8], open: usize, scope: Option<ScopeId>) -> Callee {
    let end = back_over(code, open, |c| c.is_ascii_whitespace());
    if end == 0 {
        return Callee::Unknown;
    }
    let is_local = |n: &str| {
        scope.is_some_and(|s| {
            a.index.defs_in(s).any(|d| matches!(&d.symbol, crate::resolve::index::Symbol::Local(_, x) if x == n))
        })
    };
    if is_ident(code[end - 1]) {
        let name = word_before(code, end);
        let keyword = word_before(code, end - name.len());
        if keyword == "block" {
            return Callee::BlockDecl;
        }
        if is_local(&name) {
            return Callee::Unknown;
        }
        if let Some(op) = Op::by_name(&name) {
            return Callee::Op { op, config: op.is_constructor() };
        }
        if block(a, &name).is_some() {
            return Callee::BlockConfig(name);
        }
        return Callee::Unknown;
    }
    if code[end - 1] == b')' {
        let mut depth = 0usize;
        for j in (0..end - 1).rev() {
            match code[j] {
                b')' => depth += 1,
                b'(' if depth == 0 => {
                    return match callee_of(a, code, j, scope) {
                        Callee::Op { op, config: true } => Callee::Op { op, config: false },
                        Callee::BlockConfig(name) => Callee::BlockApply(name),
                        // `block X(params)(` declares ports.
                        Callee::BlockDecl => Callee::BlockDecl,
                        _ => Callee::Unknown,
                    };
                }
                b'(' => depth -= 1,
                _ => {}
            }
        }
    }
    Callee::Unknown
}

/// The argument names written so far in a call's argument text (`vocab: V, di` → `vocab`).
fn given_arguments(args: &[u8]) -> Vec<String> {
    let mut names = vec![];
    let mut depth = 0usize;
    let mut segment_start = 0;
    for (i, &c) in args.iter().enumerate().chain(std::iter::once((args.len(), &b','))) {
        match c {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                let segment = String::from_utf8_lossy(&args[segment_start..i.min(args.len())]).to_string();
                if let Some((name, _)) = segment.split_once(':') {
                    let name = name.trim();
                    if !name.is_empty() && name.bytes().all(is_ident) {
                        names.push(name.to_string());
                    }
                }
                segment_start = i + 1;
            }
            _ => {}
        }
    }
    names
}
