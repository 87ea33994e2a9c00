//! What the checker inferred at each source span, kept beside the graph for editors (hover).
//!
//! The checker records a [`HoverInfo`] wherever it already has a value in hand: every evaluated
//! expression, every binding name, block parameters and ports at each application, and the
//! dimension variables a port binds. Recording is one push per value; nothing is formatted or
//! evaluated until an editor asks. The IR never sees this table.

use super::value::{Callee, Value};
use crate::dim::Dim;
use crate::ir::Graph;
use crate::source::Span;
use crate::types::TensorType;
use std::collections::BTreeMap;

/// A value the checker computed, reduced to what a hover shows.
#[derive(Clone, Debug, PartialEq)]
pub enum HoverInfo {
    Tensor(TensorType),
    Int(Dim),
    Float(f64),
    Bool(bool),
    /// An option value (`mean`, a symbol parameter).
    Sym(String),
    /// A configured component or block: its op or block name and its weight owner, once known.
    Instance {
        callee: String,
        owner: Option<String>,
    },
    /// A loss term; at a `loss` statement's name, with the statement's weight.
    Loss {
        weight: Option<f64>,
    },
    /// A feature set's statement, at its name: what it makes and the model input it fills
    /// (`None` in a file of features alone).
    Feature {
        statement: String,
        input: String,
        call: String,
        fills: Option<TensorType>,
    },
}

impl HoverInfo {
    /// The hover view of a value; `None` for values a hover has nothing to say about.
    pub fn of(v: &Value) -> Option<HoverInfo> {
        Some(match v {
            Value::Tensor(t) => HoverInfo::Tensor(t.ty.clone()),
            Value::Int(d) => HoverInfo::Int(d.clone()),
            Value::Float(f) => HoverInfo::Float(*f),
            Value::Bool(b) => HoverInfo::Bool(*b),
            Value::Sym(s) => HoverInfo::Sym(s.clone()),
            Value::Instance(i) => HoverInfo::Instance { callee: callee_name(&i.callee), owner: i.name.clone() },
            Value::Layers(l) => HoverInfo::Instance {
                callee: format!("layers({}, {})", l.count, callee_name(&l.proto.callee)),
                owner: None,
            },
            Value::Loss(_) => HoverInfo::Loss { weight: None },
            Value::Str(_) | Value::List(_) | Value::Callable(_) | Value::Poison => return None,
        })
    }
}

fn callee_name(c: &Callee) -> String {
    match c {
        Callee::Op(op) => op.name().to_string(),
        Callee::Block(b) => b.clone(),
    }
}

/// One recorded fact: where, what, and the block application it was seen in (`f_c`), if any.
#[derive(Clone, Debug)]
pub struct HoverEntry {
    pub span: Span,
    pub info: HoverInfo,
    /// The node prefix of the enclosing block application without its trailing `/`; empty at
    /// model level. A block body is checked once per application, so it has one entry each.
    pub application: String,
}

/// The side table of a check: facts by span, the model's dim values and every weight owner's
/// parameter count (kept even when errors drop the graph).
#[derive(Clone, Debug, Default)]
pub struct HoverTable {
    pub entries: Vec<HoverEntry>,
    /// Model dims and their values, for `D=64`.
    pub dims: BTreeMap<String, i64>,
    /// Weight owners (`items`, `f_c/joint`) and their trainable parameter counts (memory state
    /// excluded, as in the model card).
    pub instances: BTreeMap<String, i64>,
}

impl HoverTable {
    pub(super) fn record(&mut self, span: Span, v: &Value, application: &str) {
        if let Some(info) = HoverInfo::of(v) {
            self.push(span, info, application);
        }
    }

    pub(super) fn push(&mut self, span: Span, info: HoverInfo, application: &str) {
        let application = application.strip_suffix('/').unwrap_or(application).to_string();
        self.entries.push(HoverEntry { span, info, application });
    }

    /// Copies the dims and parameter counts out of the (possibly invalid) graph.
    pub(super) fn finish(&mut self, graph: &Graph) {
        self.dims = graph.dims.iter().map(|d| (d.name.clone(), d.value)).collect();
        self.instances = graph
            .instances
            .iter()
            .map(|i| (i.name.clone(), i.params.iter().filter(|p| !p.state).map(|p| p.count).sum()))
            .collect();
    }

    /// Every fact recorded exactly at `span`.
    pub fn at(&self, span: Span) -> impl Iterator<Item = &HoverEntry> {
        self.entries.iter().filter(move |e| e.span == span)
    }

    /// The parameter count of a weight owner, including everything owned under it
    /// (`enc/...` for a block instance `enc`); `None` when it owns nothing.
    pub fn parameters(&self, owner: &str) -> Option<i64> {
        let prefix = format!("{owner}/");
        let mut found = false;
        let mut total = 0i64;
        for (name, count) in &self.instances {
            if name == owner || name.starts_with(&prefix) {
                found = true;
                total = total.saturating_add(*count);
            }
        }
        found.then_some(total)
    }
}
