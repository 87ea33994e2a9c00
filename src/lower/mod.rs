//! Lowering: a checked [`Graph`] becomes a [`Program`] that every back end executes or renders.
//!
//! The graph keeps the spec's vocabulary (attributes by name, operands by port, dims as
//! polynomials) because renderings and diffs need it. A `Program` is what a back end needs
//! instead: every dim evaluated once (the batch stays a variable: an [`Extent`] is `a·B + c`),
//! values and parameters in numbered slots, every node as a typed [`Kernel`] whose operands are
//! slots and whose options are enums, and every parameter with its shape, role and
//! initialisation rule. Lowering reads each attribute exactly once and reports a missing or
//! malformed one as a [`LowerError`]; nothing downstream reads a name to find a value.
//!
//! Architecture invariant: a graph the checker accepted always lowers. A `LowerError` is a bug
//! in the compiler (or a graph built by hand), never a user mistake.

mod build;
pub mod flops;
pub mod kernel;
pub mod memory;

pub use kernel::{Kernel, ParamUse};

use crate::dim::{Dim, BATCH};
use crate::ir::{Graph, InputRole};
use crate::ops::Op;
use crate::types::DType;
use std::collections::HashMap;
use std::fmt;

/// The index of a value (an input or a step's output) in [`Program::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// The index of a parameter tensor in [`Program::params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub usize);

/// The index of a label stream in [`Program::labels`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelId(pub usize);

/// A size that may grow with the batch: `per_batch · B + fixed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub per_batch: usize,
    pub fixed: usize,
}

impl Extent {
    /// The batch size itself.
    pub const BATCH: Extent = Extent { per_batch: 1, fixed: 0 };

    pub const fn fixed(n: usize) -> Extent {
        Extent { per_batch: 0, fixed: n }
    }

    /// The size for a batch of `batch` examples.
    pub fn at(self, batch: usize) -> usize {
        self.per_batch * batch + self.fixed
    }

    /// The size when it does not depend on the batch.
    pub fn constant(self) -> Option<usize> {
        (self.per_batch == 0).then_some(self.fixed)
    }
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.per_batch, self.fixed) {
            (0, c) => write!(f, "{c}"),
            (1, 0) => write!(f, "{BATCH}"),
            (a, 0) => write!(f, "{a}*{BATCH}"),
            (1, c) => write!(f, "{BATCH} + {c}"),
            (a, c) => write!(f, "{a}*{BATCH} + {c}"),
        }
    }
}

/// The sizes of every axis of a value.
pub(crate) type Shape = Vec<Extent>;

/// The concrete sizes of a shape for one batch.
pub(crate) fn shape_at(shape: &[Extent], batch: usize) -> Vec<usize> {
    shape.iter().map(|e| e.at(batch)).collect()
}

/// A value slot: a graph input (with its role) or the output of a step.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// The input or node name (`clicks.mask`, `f_c/attended`).
    pub name: String,
    pub dtype: DType,
    pub shape: Shape,
    /// The vocabulary size of ids, when known.
    pub vocab: Option<usize>,
    /// `Some` for graph inputs.
    pub role: Option<InputRole>,
    /// An id input whose raw ids the loader hashes into `vocab` buckets (`vocab V hashed`).
    pub hashed: bool,
}

/// What a parameter tensor is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRole {
    /// Updated by the optimizer.
    Trained,
    /// Persistent state written by the forward pass (memory slots), not by the optimizer.
    State,
}

/// How a parameter tensor's values are drawn, with every size evaluated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitRule {
    Constant(f32),
    Normal { std: f64 },
    Uniform { bound: f64 },
}

/// A parameter tensor of the program.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSlot {
    /// The owning instance (`f_c/attended/query`).
    pub instance: String,
    /// The name within the instance (`weight`, `layer0.bias`).
    pub name: String,
    pub shape: Vec<usize>,
    pub role: ParamRole,
    pub init: InitRule,
    /// The op of the owning instance.
    pub op: Op,
}

impl ParamSlot {
    /// `instance/name`, the key in checkpoints and weight files.
    pub fn key(&self) -> String {
        format!("{}/{}", self.instance, self.name)
    }

    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// One kernel application, writing the value slot `out`.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The node name, as in the graph.
    pub name: String,
    pub op: Op,
    pub kernel: Kernel,
    pub out: ValueId,
}

/// A declared output.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSlot {
    pub name: String,
    pub value: ValueId,
}

/// A weighted loss term: the per-example values [B] of `value`, averaged and weighted.
#[derive(Clone, Debug, PartialEq)]
pub struct LossTerm {
    pub name: String,
    pub value: ValueId,
    pub weight: f64,
}

/// A model ready for a back end.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub model: String,
    /// Inputs first (in graph order), then one slot per step.
    pub values: Vec<ValueInfo>,
    /// How many of `values` are inputs.
    pub input_count: usize,
    /// Parameter tensors in instance order, each instance's in shape-rule order.
    pub params: Vec<ParamSlot>,
    /// In topological order: every operand is an input or an earlier step.
    pub steps: Vec<Step>,
    pub outputs: Vec<OutputSlot>,
    pub losses: Vec<LossTerm>,
    pub labels: Vec<String>,
    /// Per-example weight streams (inputs of role `Weight`).
    pub weight_streams: Vec<String>,
}

impl Program {
    /// The graph inputs.
    pub fn inputs(&self) -> &[ValueInfo] {
        &self.values[..self.input_count]
    }

    pub fn value(&self, id: ValueId) -> &ValueInfo {
        &self.values[id.0]
    }

    /// The slot of an input or node by name.
    pub fn find(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name).map(ValueId)
    }

    /// The slot of a declared output by name.
    pub fn output(&self, name: &str) -> Option<ValueId> {
        self.outputs.iter().find(|o| o.name == name).map(|o| o.value)
    }

    /// The step that writes `id`, if it is not an input.
    pub(crate) fn producer(&self, id: ValueId) -> Option<&Step> {
        id.0.checked_sub(self.input_count).and_then(|i| self.steps.get(i))
    }

    /// The slot of a parameter by instance and name.
    pub fn param(&self, instance: &str, name: &str) -> Option<ParamId> {
        self.params.iter().position(|p| p.instance == instance && p.name == name).map(ParamId)
    }

    pub fn trainable_count(&self) -> usize {
        self.params.iter().filter(|p| p.role == ParamRole::Trained).map(ParamSlot::numel).sum()
    }

    /// For each parameter slot: when it is an embedding table ([`Program::row_tables`]) every use
    /// of which looks rows up by the ids of a program input, with no extra rows (an `Embedding`
    /// or `wide` lookup, not sampled negatives), those inputs in first-use order; else `None`.
    /// Such a table's rows can all be looked up before the forward runs, which is how an engine
    /// that owns the tables (TorchRec) serves them.
    pub(crate) fn input_lookups(&self) -> Vec<Option<Vec<ValueId>>> {
        let mut out: Vec<Option<Vec<ValueId>>> =
            self.row_tables().into_iter().map(|rows| rows.then(Vec::new)).collect();
        for step in &self.steps {
            for (p, used) in step.kernel.params() {
                let Some(inputs) = &mut out[p.0] else { continue };
                match used {
                    ParamUse::Rows { ids, extra: 0 } if ids.0 < self.input_count => {
                        if !inputs.contains(&ids) {
                            inputs.push(ids);
                        }
                    }
                    ParamUse::Rows { .. } | ParamUse::Whole => out[p.0] = None,
                }
            }
        }
        out
    }

    /// The embedding tables: for each parameter slot, whether it is trained and every step that
    /// reads it reads rows by ids ([`ParamUse::Rows`]). Only the rows a batch looks up get a
    /// gradient, which is what row-sparse optimizers rely on.
    pub fn row_tables(&self) -> Vec<bool> {
        let mut rows = vec![false; self.params.len()];
        let mut whole = vec![false; self.params.len()];
        for step in &self.steps {
            for (p, used) in step.kernel.params() {
                match used {
                    ParamUse::Rows { .. } => rows[p.0] = true,
                    ParamUse::Whole => whole[p.0] = true,
                }
            }
        }
        self.params.iter().enumerate().map(|(i, p)| p.role == ParamRole::Trained && rows[i] && !whole[i]).collect()
    }

    /// The label streams a loss term trains on (none for a triplet loss).
    pub(crate) fn loss_labels(&self, term: &LossTerm) -> Vec<&str> {
        let needed = self.needed_steps(&[term.value]);
        let mut labels: Vec<&str> = self
            .steps
            .iter()
            .zip(needed)
            .filter(|(_, n)| *n)
            .filter_map(|(s, _)| s.kernel.label())
            .map(|l| self.labels[l.0].as_str())
            .collect();
        labels.sort_unstable();
        labels.dedup();
        labels
    }

    /// Which steps `targets` depend on, transitively (indexed like `steps`).
    pub(crate) fn needed_steps(&self, targets: &[ValueId]) -> Vec<bool> {
        let mut needed = vec![false; self.steps.len()];
        let mut stack: Vec<ValueId> = targets.to_vec();
        while let Some(v) = stack.pop() {
            let Some(i) = v.0.checked_sub(self.input_count) else { continue };
            if i < needed.len() && !needed[i] {
                needed[i] = true;
                stack.extend(self.steps[i].kernel.operands());
            }
        }
        needed
    }
}

/// The values of the named dims a graph is lowered at.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    dims: HashMap<String, i64>,
}

impl Bindings {
    /// The hyperparameter values the graph was checked at.
    pub fn of(graph: &Graph) -> Bindings {
        Bindings { dims: graph.dims.iter().map(|d| (d.name.clone(), d.value)).collect() }
    }

    /// The value of a named dim; the batch has none.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.dims.get(name).copied()
    }

    /// Whether evaluating `d` overflows 64-bit arithmetic (at batch 3, the largest batch
    /// [`Bindings::extent`] evaluates at): a spec too large to build, not a compiler bug.
    pub(crate) fn overflows(&self, d: &Dim) -> bool {
        matches!(d.eval(&|s| if s == BATCH { Some(3) } else { self.get(s) }), Err(crate::dim::EvalError::Overflow))
    }

    /// Evaluates a dim that may contain the batch to `a·B + c`.
    pub(crate) fn extent(&self, d: &Dim) -> Result<Extent, String> {
        let at = |b: i64| {
            d.eval(&|s| if s == BATCH { Some(b) } else { self.get(s) }).map_err(|e| format!("cannot evaluate {d}: {e}"))
        };
        let (one, two, three) = (at(1)?, at(2)?, at(3)?);
        let per_batch = two - one;
        let fixed = one - per_batch;
        if three != 3 * per_batch + fixed || per_batch < 0 || fixed < 0 {
            return Err(format!("{d} is not a non-negative size linear in the batch"));
        }
        Ok(Extent { per_batch: per_batch as usize, fixed: fixed as usize })
    }
}

/// Why a graph could not be lowered: a compiler bug, or a graph assembled by hand.
#[derive(Clone, Debug, PartialEq)]
pub enum LowerError {
    /// A node lacks an attribute its kernel needs, or has it with the wrong kind.
    Attribute { node: String, attr: String, problem: String },
    /// A node lacks an operand on a port its kernel needs.
    Operand { node: String, port: String },
    /// An operand names a value that is not an input or an earlier node.
    UnknownValue { node: String, source: String },
    /// A node's instance lacks a parameter its kernel needs.
    Param { node: String, instance: String, param: String },
    /// A dim or shape could not be evaluated.
    Dim { at: String, problem: String },
    /// A shape's size overflows 64-bit arithmetic: the spec is too large, not a compiler bug.
    TooLarge { at: String, dim: String },
    /// An output or loss names a node that does not exist.
    Dangling { what: String, source: String },
}

impl fmt::Display for LowerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerError::Attribute { node, attr, problem } => write!(f, "node `{node}`: attribute `{attr}` {problem}"),
            LowerError::Operand { node, port } => write!(f, "node `{node}` has no operand on port `{port}`"),
            LowerError::UnknownValue { node, source } => {
                write!(f, "node `{node}` reads `{source}`, which is not an input or an earlier node")
            }
            LowerError::Param { node, instance, param } => {
                write!(f, "node `{node}`: instance `{instance}` has no parameter `{param}`")
            }
            LowerError::Dim { at, problem } => write!(f, "{at}: {problem}"),
            LowerError::TooLarge { at, dim } => write!(
                f,
                "the model is too large to build: {at} has a dimension of size {dim}, more than 2^63 - 1 with these dims"
            ),
            LowerError::Dangling { what, source } => write!(f, "{what} reads `{source}`, which is not a node"),
        }
    }
}

impl std::error::Error for LowerError {}

/// Lowers a checked graph at the given dim values.
pub fn lower(graph: &Graph, bindings: &Bindings) -> Result<Program, LowerError> {
    build::Builder::new(graph, bindings)?.finish()
}

#[cfg(test)]
mod tests;
