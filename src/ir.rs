//! The typed graph IR: what a validated spec compiles to.
//!
//! Architecture invariant: the IR holds no spans and no AST types. A `Graph` produced by
//! [`crate::check`] is fully shape-checked: every node's output type follows from its inputs by
//! the op's shape rule, so a backend never has to report a user error.

use crate::dim::Dim;
use crate::ops::Op;
use crate::types::{format_float, TensorType};
use std::collections::BTreeMap;

/// A compiled model.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub model: String,
    pub dims: Vec<DimDecl>,
    pub params: Vec<ParamDecl>,
    pub inputs: Vec<Input>,
    pub labels: Vec<String>,
    /// Per-example weight streams, float[B].
    pub weights: Vec<String>,
    /// Weight-owning component instances, in creation order.
    pub instances: Vec<Instance>,
    /// Nodes in topological order (every operand is an input or an earlier node).
    pub nodes: Vec<Node>,
    pub outputs: Vec<Output>,
    pub losses: Vec<Loss>,
    /// How a data set's raw events make the inputs and labels, when the spec has a feature set.
    pub features: Option<crate::features::FeatureSet>,
}

/// A dimension hyperparameter. `derived` holds the defining expression of a derived dim.
#[derive(Clone, Debug)]
pub struct DimDecl {
    pub name: String,
    pub value: i64,
    pub derived: Option<Dim>,
    pub overridden: bool,
}

#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: String,
    pub value: Attr,
    pub overridden: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRole {
    /// A plain input tensor.
    Feature,
    /// A padded feedback sequence of ids.
    Sequence,
    /// The validity mask of a sequence (`seq.mask`), always present.
    Mask,
    /// A per-item side feature of a sequence.
    Side,
    /// A per-example weight stream.
    Weight,
}

impl InputRole {
    pub fn name(self) -> &'static str {
        match self {
            InputRole::Feature => "feature",
            InputRole::Sequence => "sequence",
            InputRole::Mask => "mask",
            InputRole::Side => "side",
            InputRole::Weight => "weight",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Input {
    /// `item`, `clicks`, `clicks.mask`, `clicks.dwell`.
    pub name: String,
    pub role: InputRole,
    pub ty: TensorType,
    /// Ids declared `vocab V hashed`: the data holds raw ids (any integer or string) that the
    /// loader hashes into the V buckets (`data::hash_bucket`).
    pub hashed: bool,
}

/// A constant attribute of a node or instance.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(Dim),
    Float(f64),
    Bool(bool),
    Sym(String),
    Str(String),
    List(Vec<Attr>),
}

impl std::fmt::Display for Attr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attr::Int(d) => write!(f, "{d}"),
            Attr::Float(v) => write!(f, "{}", format_float(*v)),
            Attr::Bool(b) => write!(f, "{b}"),
            Attr::Sym(s) => write!(f, "{s}"),
            Attr::Str(s) => write!(f, "{s:?}"),
            Attr::List(items) => {
                let parts: Vec<String> = items.iter().map(|a| a.to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
        }
    }
}

/// A learnable (or persistent-state) tensor owned by an instance.
#[derive(Clone, Debug)]
pub struct ParamTensor {
    pub name: String,
    pub shape: Vec<Dim>,
    /// Element count at the current hyperparameter values.
    pub count: i64,
    /// Persistent state updated by the forward pass (memory slots), not by the optimizer.
    pub state: bool,
    pub init: Init,
}

/// How a parameter tensor is initialised; chosen by the op's shape rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    /// Normal with mean 0.
    Normal {
        std: f64,
    },
    /// Uniform in ±1/sqrt(fan_in), fan_in being the second-to-last axis (the only axis of a
    /// vector): the default of PyTorch's `nn.Linear`.
    FanIn,
    /// Uniform in ±1/sqrt(d) for the dim d (PyTorch's recurrent layers: d = hidden).
    UniformInvSqrt(Dim),
}

/// A component instance that owns weights; nodes applying it share them.
#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub op: Op,
    pub attrs: BTreeMap<String, Attr>,
    pub params: Vec<ParamTensor>,
}

impl Instance {
    pub fn param_count(&self) -> i64 {
        self.params.iter().filter(|p| !p.state).map(|p| p.count).sum()
    }
}

#[derive(Clone, Debug)]
pub struct Operand {
    /// The port name of the op (`x`, `mask`, `query`...).
    pub port: String,
    /// The name of an input or an earlier node.
    pub source: String,
}

#[derive(Clone, Debug)]
pub struct Node {
    /// A stable path such as `f_c/attn`; unique in the graph.
    pub name: String,
    pub op: Op,
    pub attrs: BTreeMap<String, Attr>,
    pub operands: Vec<Operand>,
    pub ty: TensorType,
    /// The weight-owning instance this node applies, if any.
    pub instance: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub source: String,
}

#[derive(Clone, Debug)]
pub struct Loss {
    pub name: String,
    /// The loss node (per-example values, float[B]).
    pub node: String,
    pub weight: f64,
}

impl Graph {
    pub(crate) fn dim_value(&self, name: &str) -> Option<i64> {
        if name == crate::dim::BATCH {
            return None;
        }
        self.dims.iter().find(|d| d.name == name).map(|d| d.value)
    }

    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn total_params(&self) -> i64 {
        self.instances.iter().map(Instance::param_count).sum()
    }

    pub(crate) fn total_state(&self) -> i64 {
        self.instances.iter().flat_map(|i| &i.params).filter(|p| p.state).map(|p| p.count).sum()
    }
}
