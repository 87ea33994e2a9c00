//! The component catalogue: every primitive op, its argument signature, and (in [`shape`]) its
//! one shape rule.
//!
//! Lower-case ops are functions, called once: `concat(a, b, axis: -1)`. Capitalised ops are
//! constructors: `Linear(out: D)` makes an instance that owns weights, and applying the instance,
//! `Linear(out: D)(x)`, makes a node. Binding the instance with `let` shares its weights between
//! applications.

pub mod options;
pub mod shape;

use options::*;

use serde::Serialize;

/// Argument kinds a signature can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// One tensor.
    Tensor,
    /// All remaining positional tensors (at least one).
    Tensors,
    /// A symbolic integer (dimension expression).
    Int,
    Float,
    Bool,
    /// One of a fixed set of option names.
    Sym(&'static [&'static str]),
    /// A list of symbolic integers.
    IntList,
    /// The name of a declared label stream.
    Label,
    /// An `Embedding` instance whose table is reused.
    Table,
}

impl ArgKind {
    pub fn describe(self) -> String {
        match self {
            ArgKind::Tensor | ArgKind::Tensors => "a tensor".into(),
            ArgKind::Int => "an integer".into(),
            ArgKind::Float => "a float".into(),
            ArgKind::Bool => "a bool".into(),
            ArgKind::Sym(opts) => format!("one of {}", opts.join(", ")),
            ArgKind::IntList => "a list of integers".into(),
            ArgKind::Label => "a label stream name".into(),
            ArgKind::Table => "an Embedding instance".into(),
        }
    }
}

/// A default for an argument; `Required` has none, `Absent` makes it optional without a value.
#[derive(Clone, Copy, Debug)]
pub enum Default {
    Required,
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    Sym(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub kind: ArgKind,
    pub default: Default,
}

const fn req(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec { name, kind, default: Default::Required }
}
const fn opt(name: &'static str, kind: ArgKind) -> ArgSpec {
    ArgSpec { name, kind, default: Default::Absent }
}
const fn int(name: &'static str, v: i64) -> ArgSpec {
    ArgSpec { name, kind: ArgKind::Int, default: Default::Int(v) }
}
const fn float(name: &'static str, v: f64) -> ArgSpec {
    ArgSpec { name, kind: ArgKind::Float, default: Default::Float(v) }
}
const fn boolean(name: &'static str, v: bool) -> ArgSpec {
    ArgSpec { name, kind: ArgKind::Bool, default: Default::Bool(v) }
}
const fn sym(name: &'static str, opts: &'static [&'static str]) -> ArgSpec {
    ArgSpec { name, kind: ArgKind::Sym(opts), default: Default::Sym(opts[0]) }
}

const T: ArgKind = ArgKind::Tensor;
const ACTS: &[&str] = Activation::NAMES;
const OUT_ACTS: &[&str] = OUTPUT_ACTIVATIONS;

macro_rules! ops {
    ($( $variant:ident => $name:literal, $ctor:literal, $loss:literal, [$($c:expr),*], [$($i:expr),*], $doc:literal; )*) => {
        /// Every primitive op of the language.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum Op { $($variant),* }

        impl Op {
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];

            /// The spelling in spec files and in compiled graphs.
            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),* }
            }

            /// Whether the op is a constructor that owns weights (`Linear(...)(x)`).
            pub(crate) fn is_constructor(self) -> bool {
                match self { $(Op::$variant => $ctor),* }
            }

            /// Whether the op is a loss term, allowed only in `loss` statements.
            pub(crate) fn is_loss(self) -> bool {
                match self { $(Op::$variant => $loss),* }
            }

            /// Constructor configuration (empty for functions).
            pub fn config(self) -> &'static [ArgSpec] {
                match self { $(Op::$variant => { const S: &[ArgSpec] = &[$($c),*]; S }),* }
            }

            /// Arguments of the application (for functions: all arguments).
            pub fn inputs(self) -> &'static [ArgSpec] {
                match self { $(Op::$variant => { const S: &[ArgSpec] = &[$($i),*]; S }),* }
            }

            /// One line saying what the op computes.
            pub fn doc(self) -> &'static str {
                match self { $(Op::$variant => $doc),* }
            }
        }
    };
}

ops! {
    // Element-wise arithmetic, written with operators; a scalar operand becomes `lhs`/`rhs`.
    Add => "add", false, false, [], [req("a", T), req("b", T)], "a + b, same shapes";
    Sub => "sub", false, false, [], [req("a", T), req("b", T)], "a - b, same shapes";
    Mul => "mul", false, false, [], [req("a", T), req("b", T)], "a * b, same shapes";
    Div => "div", false, false, [], [req("a", T), req("b", T)], "a / b, same shapes";
    Neg => "neg", false, false, [], [req("x", T)], "-x";
    // Shape manipulation.
    Concat => "concat", false, false, [], [req("xs", ArgKind::Tensors), int("axis", -1)], "joins tensors along an axis";
    Stack => "stack", false, false, [], [req("xs", ArgKind::Tensors), int("axis", 1)], "stacks same-shaped tensors along a new axis";
    Slice => "slice", false, false, [], [req("x", T), req("axis", ArgKind::Int), req("start", ArgKind::Int), req("len", ArgKind::Int)], "x[start : start+len] along axis";
    Index => "index", false, false, [], [req("x", T), req("axis", ArgKind::Int), req("index", ArgKind::Int)], "picks one position along an axis, removing it";
    Repeat => "repeat", false, false, [], [req("x", T), req("axis", ArgKind::Int), req("n", ArgKind::Int)], "inserts a new axis of size n (explicit broadcast)";
    Unsqueeze => "unsqueeze", false, false, [], [req("x", T), req("axis", ArgKind::Int)], "inserts an axis of size 1";
    Squeeze => "squeeze", false, false, [], [req("x", T), req("axis", ArgKind::Int)], "removes an axis of size 1";
    Flatten => "flatten", false, false, [], [req("x", T), int("from", 1)], "merges the axes from `from` to the last";
    FullMask => "full_mask", false, false, [], [req("x", T)], "an all-valid mask shaped like x without its last axis";
    ToFloat => "to_float", false, false, [], [req("x", T)], "mask or ids to 0/1 floats";
    Keep => "keep", false, false, [], [req("mask", T), req("where", T)], "the mask's valid positions where `where` > 0.5 (drops positions from a sequence)";
    Nonempty => "nonempty", false, false, [], [req("mask", T)], "1.0 where a row of the mask has a valid position, else 0.0";
    // Activations and normalisation.
    Sigmoid => "sigmoid", false, false, [], [req("x", T)], "logistic function, values in [0, 1]";
    Relu => "relu", false, false, [], [req("x", T)], "max(x, 0)";
    Tanh => "tanh", false, false, [], [req("x", T)], "hyperbolic tangent, values in [-1, 1]";
    Softmax => "softmax", false, false, [], [req("x", T), int("axis", -1)], "softmax along an axis";
    MaskedSoftmax => "masked_softmax", false, false, [], [req("x", T), req("mask", T)], "softmax over the last axis where mask is set; padding gets 0";
    Dropout => "dropout", false, false, [], [req("x", T), req("rate", ArgKind::Float)], "inverted dropout during training";
    // Pooling and attention.
    Pool => "pool", false, false, [], [req("x", T), req("mask", T), sym("mode", PoolMode::NAMES), sym("padding", Padding::NAMES)], "pools axis 1 over valid positions (padding: include also counts padded ones)";
    AttentionPool => "attention_pool", false, false, [], [req("values", T), req("scores", T), req("mask", T), sym("norm", AttentionNorm::NAMES), float("temperature", 1.0)], "sum of values weighted by normalised scores over valid positions";
    SampleValid => "sample_valid", false, false, [], [req("x", T), req("mask", T)], "one valid position of axis 1 per row: uniform at random in training, the last valid one in evaluation; zeros where none is valid";
    ReduceSum => "reduce_sum", false, false, [], [req("x", T), req("axis", ArgKind::Int)], "sum along an axis";
    ReduceMean => "reduce_mean", false, false, [], [req("x", T), req("axis", ArgKind::Int)], "mean along an axis";
    // Vector geometry.
    Dot => "dot", false, false, [], [req("a", T), req("b", T)], "inner product over the last axis";
    Cosine => "cosine", false, false, [], [req("a", T), req("b", T)], "cosine similarity over the last axis";
    Project => "project", false, false, [], [req("a", T), req("onto", T)], "(a.b/|b|)(b/|b|): the component of a along b";
    Orthogonal => "orthogonal", false, false, [], [req("a", T), req("to", T)], "a - project(a, onto: to)";
    // Feature interaction.
    Fm => "fm", false, false, [], [req("x", T), boolean("reduce", false)], "FM bi-interaction 0.5((sum v)^2 - sum v^2) over axis 1";
    // Item scoring.
    ItemLogits => "item_logits", false, false, [], [req("s", T), req("table", ArgKind::Table)], "s . v_y for every item y of an embedding table";
    SampledLogits => "sampled_logits", false, false, [], [req("s", T), req("table", ArgKind::Table), req("target", T), req("samples", ArgKind::Int), boolean("logq", true)], "logits of the target (column 0) and uniformly sampled negatives, with logQ correction";
    // Weighted components.
    Embedding => "Embedding", true, false, [req("vocab", ArgKind::Int), req("dim", ArgKind::Int)], [req("ids", T)], "a learnable table of vocab x dim vectors";
    PositionEmbedding => "PositionEmbedding", true, false, [req("len", ArgKind::Int), req("dim", ArgKind::Int), sym("mode", PositionMode::NAMES)], [req("x", T)], "learned position vectors added to or concatenated with axis-1 items";
    Linear => "Linear", true, false, [req("out", ArgKind::Int), boolean("bias", true)], [req("x", T)], "x W + b over the last axis";
    Mlp => "MLP", true, false, [req("units", ArgKind::IntList), sym("act", ACTS), sym("out_act", OUT_ACTS), float("dropout", 0.0)], [req("x", T)], "stacked Linear layers; `act` between layers, `out_act` after the last";
    LayerNorm => "LayerNorm", true, false, [float("eps", 1e-5)], [req("x", T)], "normalises the last axis, learned scale and shift";
    SelfAttention => "SelfAttention", true, false, [req("heads", ArgKind::Int), sym("scale", AttentionScale::NAMES), boolean("residual", false), boolean("layer_norm", false), float("dropout", 0.0)], [req("x", T), req("mask", T)], "multi-head scaled dot-product self-attention; padded keys are masked";
    Gru => "GRU", true, false, [req("hidden", ArgKind::Int), sym("output", GruOutput::NAMES)], [req("x", T), req("mask", T)], "gated recurrent unit over axis 1; the last valid state or all states";
    Wide => "Wide", true, false, [req("vocab", ArgKind::Int)], [req("ids", T)], "per-field linear: one learned scalar per id plus a per-field bias, [B, F]";
    Mmoe => "MMoE", true, false, [req("experts", ArgKind::Int), req("units", ArgKind::IntList), req("tasks", ArgKind::Int), sym("act", ACTS)], [req("x", T)], "multi-gate mixture of experts: one softmax gate per task";
    Memory => "Memory", true, false, [req("slots", ArgKind::Int), req("dim", ArgKind::Int), boolean("persist", true), sym("output", MemoryOutput::NAMES)], [req("key", T), req("write", T)], "slot memory: cosine-addressed read r of the memory before the write, then an erase/add write; `both` also returns the write-addressed summary q of the written memory as [B, 2, dim], the only path that trains the write weights; state persists across batches";
    // Losses (per-example values; a `loss` statement averages and weights them).
    Bce => "bce", false, true, [], [req("p", T), req("label", ArgKind::Label), opt("weight", T)], "-(y log p + (1-y) log(1-p)) for a probability p";
    BceLogits => "bce_logits", false, true, [], [req("logit", T), req("label", ArgKind::Label), opt("weight", T)], "binary cross-entropy on an unbounded logit";
    Nll => "nll", false, true, [], [req("p", T), req("label", ArgKind::Label), opt("weight", T)], "-y log p: log loss only on examples whose label is 1";
    SoftmaxCe => "softmax_ce", false, true, [], [req("p", T), opt("target", T), opt("label", ArgKind::Label), opt("weight", T)], "-r log p(target) for a softmax distribution (a sampled softmax has its target in column 0: no `target`)";
    NotToRecommend => "not_to_recommend", false, true, [], [req("p", T), opt("target", T), req("label", ArgKind::Label), opt("weight", T)], "-w log(1 - p(target)) for a softmax distribution (sampled: no `target`)";
    Triplet => "triplet", false, true, [], [req("anchor", T), req("positive", T), req("negative", T), float("margin", 0.1), sym("distance", Distance::NAMES), opt("weight", T)], "max(d(a, p) - d(a, n) + margin, 0)";
}

/// The built-in `select(option, name: expr, ...)`: picks one branch by an option's value.
pub(crate) const SELECT: &str = "select";

/// `layers(n, Component(config))`: `n` copies of a configured component (op or block), each
/// with its own weights, applied in sequence: the first input of copy k+1 is the output of copy
/// k, the other inputs go to every copy. A built-in like `select`, not an op.
pub(crate) const LAYERS: &str = "layers";

/// The most copies `layers` makes: each is elaborated like a written-out application.
pub(crate) const MAX_LAYERS: i64 = 1024;

/// Argument names the language accepted before, as `(earlier, current)`: a call may still use
/// the earlier one (with a W0101 warning). Every loss names its label stream `label:`; `nll`,
/// `softmax_ce` and `not_to_recommend` used to say `on:`.
pub const RENAMED_ARGS: &[(&str, &str)] = &[("on", "label")];

/// The spec an argument called `name` binds to, and whether `name` is an earlier spelling.
pub(crate) fn arg_spec(specs: &'static [ArgSpec], name: &str) -> Option<(&'static ArgSpec, bool)> {
    if let Some(s) = specs.iter().find(|s| s.name == name) {
        return Some((s, false));
    }
    let current = RENAMED_ARGS.iter().find(|(earlier, _)| *earlier == name)?.1;
    specs.iter().find(|s| s.name == current).map(|s| (s, true))
}

/// The current spelling of argument `name` in a call of the op `callee`, when `name` is an
/// earlier one (what `recspec fmt` rewrites); None for anything else, blocks included.
pub(crate) fn renamed_arg(callee: &str, name: &str) -> Option<&'static str> {
    let op = Op::by_name(callee)?;
    [op.config(), op.inputs()].into_iter().find_map(|specs| match arg_spec(specs, name) {
        Some((s, true)) => Some(s.name),
        _ => None,
    })
}

impl Op {
    /// Looks an op up by its spelling. Operator-only ops (`add`...) are not callable by name.
    pub(crate) fn by_name(name: &str) -> Option<Op> {
        Op::ALL.iter().copied().find(|op| op.name() == name && !op.is_operator())
    }

    pub(crate) fn is_operator(self) -> bool {
        matches!(self, Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Neg)
    }

    /// All callable names, for "did you mean".
    pub fn callable_names() -> impl Iterator<Item = &'static str> {
        Op::ALL.iter().filter(|op| !op.is_operator()).map(|op| op.name())
    }
}
