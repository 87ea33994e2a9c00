//! Hover text: what a name is, and what the checker inferred for it (types with symbolic and
//! evaluated dims, value ranges, parameter counts), or an op's catalogue entry.

use super::Analysis;
use crate::check::hover::{HoverInfo, HoverTable};
use crate::dim::Dim;
use crate::ops::{self, ArgSpec, Op};
use crate::render::thousands;
use crate::resolve::index::{Occurrence, Symbol};
use crate::source::{FileId, Span};
use crate::types::{format_float, DType, Range, TensorType};

/// A hover: the span it describes and Markdown text.
#[derive(Clone, Debug, PartialEq)]
pub struct Hover {
    pub span: Span,
    pub markdown: String,
}

/// The hover at a byte offset: the name there, else the innermost expression the checker
/// typed; `None` when there is nothing to say.
pub fn hover(a: &Analysis, file: FileId, offset: u32) -> Option<Hover> {
    if let Some(occ) = a.index.at(file, offset) {
        if let Some(markdown) = symbol_hover(a, occ) {
            return Some(Hover { span: occ.span, markdown });
        }
    }
    let table = &a.checked.hover;
    let span = table
        .entries
        .iter()
        .map(|e| e.span)
        .filter(|s| s.file == file && s.start <= offset && offset <= s.end)
        .min_by_key(|s| s.end - s.start)?;
    let facts = facts_at(table, &[span], false);
    (!facts.is_empty()).then(|| Hover { span, markdown: facts.join("\n\n") })
}

fn symbol_hover(a: &Analysis, occ: &Occurrence) -> Option<String> {
    let table = &a.checked.hover;
    let mut parts = vec![];
    match &occ.symbol {
        Symbol::Local(..) | Symbol::Label(..) | Symbol::Loss(..) | Symbol::Block(_) => {
            if let Some(def) = a.index.def(&occ.symbol) {
                parts.push(format!("{}\n```recspec\n{}\n```", def.kind.describe(), def.detail));
                let mut facts = facts_at(table, &[occ.span], false);
                if facts.is_empty() {
                    facts = facts_at(table, &[def.span], false);
                }
                facts.extend(facts_at(table, &occ.related, true));
                parts.extend(dedup(facts));
            }
        }
        Symbol::Op(op) => {
            parts.push(op_doc(*op));
            parts.extend(facts_at(table, &occ.related, true));
        }
        Symbol::Batch => parts.push("`B`: the batch dimension, free until a batch arrives".to_string()),
        Symbol::File(id) => parts.push(format!("imported file `{}`", a.spec.sources.get(*id).name)),
        Symbol::OpArg { op, name, config } => {
            let specs = if *config { op.config() } else { op.inputs() };
            let spec = specs.iter().find(|s| s.name == *name)?;
            parts.push(format!("argument of `{}`: {}", op.name(), arg_text(spec)));
            parts.extend(facts_at(table, &occ.related, false));
        }
        Symbol::OptionValue { op, arg, value } => {
            let spec = op.config().iter().chain(op.inputs()).find(|s| s.name == *arg)?;
            let options = match spec.kind {
                ops::ArgKind::Sym(o) => o.join(", "),
                _ => String::new(),
            };
            parts.push(format!("option `{value}` of `{arg}` in `{}`; the options: {options}", op.name()));
        }
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The distinct facts recorded at these spans. A block body is checked once per application;
/// when its facts differ between applications, each line names its application.
///
/// With `results`, non-instance facts read `result: ...` (the related spans of a callee).
fn facts_at(table: &HoverTable, spans: &[Span], results: bool) -> Vec<String> {
    let mut facts: Vec<(String, &str)> = vec![];
    for span in spans {
        let entries: Vec<_> = table.at(*span).collect();
        let owned = entries.iter().any(|e| matches!(&e.info, HoverInfo::Instance { owner: Some(_), .. }));
        for e in entries {
            if owned && matches!(&e.info, HoverInfo::Instance { owner: None, .. }) {
                continue;
            }
            let mut text = info_text(table, &e.info);
            if results && !matches!(e.info, HoverInfo::Instance { .. }) {
                text = format!("result: {text}");
            }
            facts.push((text, e.application.as_str()));
        }
    }
    let distinct = dedup(facts.iter().map(|(t, _)| t.clone()).collect());
    if distinct.len() <= 1 {
        return distinct;
    }
    let mut lines = dedup(
        facts
            .into_iter()
            .map(|(text, app)| if app.is_empty() { text } else { format!("in `{app}`: {text}") })
            .collect(),
    );
    const LIMIT: usize = 8;
    if lines.len() > LIMIT {
        let more = lines.len() - LIMIT;
        lines.truncate(LIMIT);
        lines.push(format!("… {more} more"));
    }
    lines
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

/// One fact as text: `float[B, T=30, D=64]`, values in `[0.0, 1.0]`, `6,400,000 parameters`...
pub(crate) fn info_text(table: &HoverTable, info: &HoverInfo) -> String {
    match info {
        HoverInfo::Tensor(t) => format!("`{}`", type_text(table, t)),
        HoverInfo::Int(d) => format!("`{}`", dim_text(table, d)),
        HoverInfo::Float(v) => format!("`{}`", format_float(*v)),
        HoverInfo::Bool(b) => format!("`{b}`"),
        HoverInfo::Sym(s) => format!("option `{s}`"),
        HoverInfo::Instance { callee, owner: Some(owner) } => match table.parameters(owner) {
            Some(n) => format!("`{callee}` instance `{owner}`: {} parameters", thousands(n)),
            None => format!("`{callee}` instance `{owner}`: no parameters"),
        },
        HoverInfo::Instance { callee, owner: None } => format!("a configured `{callee}`"),
        HoverInfo::Loss { weight: Some(w) } => format!("loss term, weight {}", format_float(*w)),
        HoverInfo::Loss { weight: None } => "loss term".to_string(),
        HoverInfo::Feature { statement, input, call, fills: Some(t) } => {
            format!("`{statement} {input} = {call}` fills the model's `{input}`: `{}`", type_text(table, t))
        }
        HoverInfo::Feature { statement, input, call, fills: None } => {
            format!("`{statement} {input} = {call}`: no model in this file to fill")
        }
    }
}

/// A tensor type with every dim evaluated where it can be: `float[B, T + 1=31, D=64]`, then its
/// vocabulary, value range and whether it is a distribution.
pub(crate) fn type_text(table: &HoverTable, t: &TensorType) -> String {
    let dims: Vec<String> = t.shape.iter().map(|d| dim_text(table, d)).collect();
    let mut s = format!("{}[{}]", t.dtype.name(), dims.join(", "));
    if let Some(v) = &t.vocab {
        s.push_str(&format!(" vocab {}", dim_text(table, v)));
    }
    if t.dtype == DType::Float && t.range != Range::ANY {
        s.push_str(&format!(", values in {}", t.range));
    }
    if t.distribution {
        s.push_str(", a distribution over the last axis");
    }
    if t.target_first {
        s.push_str(", target in column 0");
    }
    s
}

/// A dim and its value: `31`, `D=64`, `T + 1=31`, `B`.
pub(crate) fn dim_text(table: &HoverTable, d: &Dim) -> String {
    if let Some(c) = d.as_constant() {
        return c.to_string();
    }
    match d.eval(&|s| table.dims.get(s).copied()) {
        Ok(v) => format!("{d}={v}"),
        Err(_) => d.to_string(),
    }
}

/// An op's catalogue entry: its doc line and arguments.
pub(crate) fn op_doc(op: Op) -> String {
    let kind = if op.is_constructor() {
        "constructor (owns weights)"
    } else if op.is_loss() {
        "loss term"
    } else {
        "function"
    };
    let mut s = format!("**`{}`** {kind}: {}", op.name(), op.doc());
    let list = |specs: &[ArgSpec]| specs.iter().map(|s| format!("- {}", arg_text(s))).collect::<Vec<_>>().join("\n");
    if op.is_constructor() {
        s.push_str(&format!("\n\nconfiguration:\n{}\n\ninputs:\n{}", list(op.config()), list(op.inputs())));
    } else {
        s.push_str(&format!("\n\narguments:\n{}", list(op.inputs())));
    }
    s
}

/// An argument's name, kind and default: `` `bias`: a bool = true ``.
pub(crate) fn arg_text(spec: &ArgSpec) -> String {
    let default = match spec.default {
        ops::Default::Required => " (required)".to_string(),
        ops::Default::Absent => " (optional)".to_string(),
        ops::Default::Int(v) => format!(" = {v}"),
        ops::Default::Float(v) => format!(" = {}", format_float(v)),
        ops::Default::Bool(v) => format!(" = {v}"),
        ops::Default::Sym(v) => format!(" = {v}"),
    };
    format!("`{}`: {}{default}", spec.name, spec.kind.describe())
}
