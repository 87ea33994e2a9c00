//! The typed ops of a [`Program`](super::Program): one variant per kernel, with its operands as
//! value slots, its parameters as parameter slots, and its attributes as typed fields.
//!
//! Shapes below use `B` for the batch and name the other axes; a back end may rely on them, since
//! the checker proved them and the lowering only copies them.

use super::{Extent, LabelId, ParamId, ValueId};
use crate::ops::options::{
    Activation, AttentionNorm, AttentionScale, Distance, GruOutput, MemoryOutput, PoolMode, PositionMode,
};

/// An element-wise arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// Which side of a scalar operation the constant is on: `2 - x` is `Left`, `x - 2` `Right`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarSide {
    Left,
    Right,
}

/// A reduction along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
}

/// What `project`/`orthogonal` keep of `a` relative to `onto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// The component of `a` along `onto`.
    Along,
    /// `a` minus that component.
    Orthogonal,
}

/// Which per-position log loss a distribution loss takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistributionLoss {
    /// `-log p(target)`.
    CrossEntropy,
    /// `-log(1 - p(target))`: the not-to-recommend loss.
    NotToRecommend,
}

/// A dense layer `x W + b`: W is [in, out], b is [out].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    pub weight: ParamId,
    pub bias: ParamId,
}

/// A learned scale and shift of a layer normalisation, both [D].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Norm {
    pub gamma: ParamId,
    pub beta: ParamId,
}

/// How a kernel reads a parameter ([`Kernel::params`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamUse {
    /// Rows picked by the ids in `ids`, and `extra` more (sampled negatives): an embedding
    /// lookup, whose gradient is non-zero only at those rows.
    Rows { ids: ValueId, extra: usize },
    /// All of it.
    Whole,
}

/// One kernel application. Every op of the catalogue lowers to exactly one variant; kernels of
/// one family are one enum, so a family's interpreter, FLOP count and memory rule each match
/// it exhaustively, without a catch-all.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// Element-wise arithmetic, joins, slices and reshapes, masks.
    Layout(LayoutKernel),
    /// Activations, softmaxes, dropout, pooling and reductions.
    Pooling(PoolingKernel),
    /// Products of vectors: dot, cosine, projection, factorisation machine, item logits.
    Geometry(GeometryKernel),
    /// Parameterised layers: embeddings, linear, MLP, layer norm, wide.
    Layer(LayerKernel),
    /// Per-example losses.
    Loss(LossKernel),
    /// x [B, N, D], mask [B, N] → [B, D]: a random valid position in training, the last valid one
    /// in evaluation; zeros where none is valid.
    SampleValid { x: ValueId, mask: ValueId },
    /// s [B, D], target ids [B] or [B, 1], table [V, D] → [B, 1 + samples], target in column 0.
    SampledLogits { s: ValueId, target: ValueId, table: ParamId, samples: usize, logq: bool },
    /// x [B, N, D], mask [B, N] → [B, N, D]; D divisible by `heads`.
    SelfAttention(AttentionKernel),
    /// x [B, N, In], mask [B, N] → [B, H] (last) or [B, N, H] (all). `input` is [In, 3H],
    /// `hidden` [H, 3H], gates in the order reset, update, candidate.
    Gru { x: ValueId, mask: ValueId, input: Dense, hidden: Dense, output: GruOutput },
    /// x [B, In] → [B, tasks, Out]. Expert layers are [experts, in, out] with biases
    /// [experts, out]; the gates [tasks, In, experts] with biases [tasks, experts].
    Mmoe { x: ValueId, experts: usize, tasks: usize, layers: Vec<Dense>, gates: Dense, act: Activation },
    /// key [B, K], write [B, W], slots [S, M] (state) → [B, M] (read) or [B, 2, M] (both).
    Memory(MemoryKernel),
}

/// Element-wise arithmetic, joins, slices and reshapes, masks.
#[derive(Clone, Debug, PartialEq)]
pub enum LayoutKernel {
    /// `a op b`, same shapes.
    Binary {
        op: Arithmetic,
        a: ValueId,
        b: ValueId,
    },
    /// `scalar op x` or `x op scalar`.
    Scalar {
        op: Arithmetic,
        x: ValueId,
        scalar: f64,
        side: ScalarSide,
    },
    Neg {
        x: ValueId,
    },
    /// Joins `xs` along `axis` (all axes but `axis` agree).
    Concat {
        xs: Vec<ValueId>,
        axis: usize,
    },
    /// Stacks same-shaped `xs` along a new axis `axis` of the output.
    Stack {
        xs: Vec<ValueId>,
        axis: usize,
    },
    /// `x[start : start + len]` along `axis`.
    Slice {
        x: ValueId,
        axis: usize,
        start: Extent,
        len: Extent,
    },
    /// `x[index]` along `axis`, removing the axis.
    Index {
        x: ValueId,
        axis: usize,
        index: Extent,
    },
    /// Inserts a new axis `axis` of size `times`.
    Repeat {
        x: ValueId,
        axis: usize,
        times: Extent,
    },
    /// The same elements viewed at the output shape (unsqueeze, squeeze, flatten).
    Reshape {
        x: ValueId,
    },
    /// An all-valid mask shaped like `x` without its last axis.
    FullMask {
        x: ValueId,
    },
    /// Ids or a mask as 0/1 floats.
    ToFloat {
        x: ValueId,
    },
    /// `mask` [B, N] and `where_` [B, N] > 0.5.
    Keep {
        mask: ValueId,
        where_: ValueId,
    },
    /// mask [B, N] → [B]: 1.0 where a row has a valid position.
    Nonempty {
        mask: ValueId,
    },
}

/// Activations, softmaxes, dropout, pooling and reductions.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolingKernel {
    Activation {
        x: ValueId,
        act: Activation,
    },
    Softmax {
        x: ValueId,
        axis: usize,
    },
    /// x [.., N], mask [.., N]: softmax over valid positions, padding gets 0.
    MaskedSoftmax {
        x: ValueId,
        mask: ValueId,
    },
    Dropout {
        x: ValueId,
        rate: f64,
    },
    /// x [B, N, ..], mask [B, N] → [B, ..].
    Pool {
        x: ValueId,
        mask: ValueId,
        mode: PoolMode,
        include_padding: bool,
    },
    /// values [B, N, D], scores [B, N], mask [B, N] → [B, D].
    AttentionPool {
        values: ValueId,
        scores: ValueId,
        mask: ValueId,
        norm: AttentionNorm,
        temperature: f64,
    },
    Reduce {
        x: ValueId,
        axis: usize,
        reduction: Reduction,
    },
}

/// Products of vectors: dot, cosine, projection, factorisation machine, item logits.
#[derive(Clone, Debug, PartialEq)]
pub enum GeometryKernel {
    /// a, b [.., D] → [..].
    Dot { a: ValueId, b: ValueId },
    /// a, b [.., D] → [..].
    Cosine { a: ValueId, b: ValueId },
    /// a, onto [.., D] → [.., D].
    Project { a: ValueId, onto: ValueId, keep: Projection },
    /// x [B, F, D] → [B, D], or [B] when `reduce`.
    Fm { x: ValueId, reduce: bool },
    /// s [B, D], table [V, D] → [B, V].
    ItemLogits { s: ValueId, table: ParamId },
}

/// Parameterised layers: embeddings, linear, MLP, layer norm, wide.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKernel {
    /// ids [..] → [.., D].
    Embedding { ids: ValueId, table: ParamId },
    /// x [B, N, D], table [N, E] → [B, N, D] (add, E = D) or [B, N, D + E] (concat).
    PositionEmbedding { x: ValueId, table: ParamId, mode: PositionMode },
    /// x [.., In] → [.., Out].
    Linear { x: ValueId, weight: ParamId, bias: Option<ParamId> },
    /// x [.., In] → [.., Out]; `act` and dropout between layers, `out_act` after the last.
    Mlp { x: ValueId, layers: Vec<Dense>, act: Activation, out_act: Activation, dropout: f64 },
    /// x [.., D] → [.., D].
    LayerNorm { x: ValueId, norm: Norm, eps: f64 },
    /// ids [B, F], weight [V, 1], bias [F] → [B, F].
    Wide { ids: ValueId, weight: ParamId, bias: ParamId },
}

/// Per-example losses.
#[derive(Clone, Debug, PartialEq)]
pub enum LossKernel {
    /// p [B] or [B, 1] in [0, 1] → [B]: `-(y log p + (1 - y) log(1 - p))`, or `-y log p` when
    /// `positives_only` (`nll`).
    ProbabilityLoss { p: ValueId, label: LabelId, weight: Option<ValueId>, positives_only: bool },
    /// logit [B] or [B, 1] → [B].
    BceLogits { logit: ValueId, label: LabelId, weight: Option<ValueId> },
    /// p [B, V] a distribution; target ids [B] or, when absent, column 0 → [B], times the label
    /// stream when one is given.
    Distribution {
        p: ValueId,
        target: Option<ValueId>,
        label: Option<LabelId>,
        weight: Option<ValueId>,
        loss: DistributionLoss,
    },
    /// anchor, positive, negative [B, D] → [B].
    Triplet {
        anchor: ValueId,
        positive: ValueId,
        negative: ValueId,
        margin: f64,
        distance: Distance,
        weight: Option<ValueId>,
    },
}

/// x [B, N, D], mask [B, N] → [B, N, D]; D divisible by `heads`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionKernel {
    pub x: ValueId,
    pub mask: ValueId,
    pub heads: usize,
    pub scale: AttentionScale,
    pub residual: bool,
    pub dropout: f64,
    pub query: Dense,
    pub key: Dense,
    pub value: Dense,
    pub out: Dense,
    pub norm: Option<Norm>,
}

/// key [B, K], write [B, W], slots [S, M] (state) → [B, M] (read) or [B, 2, M] (both).
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryKernel {
    pub key: ValueId,
    pub write: ValueId,
    pub slots: ParamId,
    pub read_key: Dense,
    pub write_key: Dense,
    pub erase: Dense,
    pub add: Dense,
    pub persist: bool,
    pub output: MemoryOutput,
}

impl Kernel {
    /// The label stream a loss kernel reads, if any.
    pub fn label(&self) -> Option<LabelId> {
        match self {
            Kernel::Loss(LossKernel::ProbabilityLoss { label, .. })
            | Kernel::Loss(LossKernel::BceLogits { label, .. }) => Some(*label),
            Kernel::Loss(LossKernel::Distribution { label, .. }) => *label,
            _ => None,
        }
    }

    /// Every parameter the kernel reads and how: by rows (a lookup by ids) or whole.
    pub fn params(&self) -> Vec<(ParamId, ParamUse)> {
        use Kernel::*;
        use ParamUse::Whole;
        let dense = |d: &Dense| [(d.weight, Whole), (d.bias, Whole)];
        let norm = |n: &Norm| [(n.gamma, Whole), (n.beta, Whole)];
        match self {
            Layout(LayoutKernel::Binary { .. })
            | Layout(LayoutKernel::Scalar { .. })
            | Layout(LayoutKernel::Neg { .. })
            | Layout(LayoutKernel::Concat { .. })
            | Layout(LayoutKernel::Stack { .. })
            | Layout(LayoutKernel::Slice { .. })
            | Layout(LayoutKernel::Index { .. })
            | Layout(LayoutKernel::Repeat { .. })
            | Layout(LayoutKernel::Reshape { .. })
            | Layout(LayoutKernel::FullMask { .. })
            | Layout(LayoutKernel::ToFloat { .. })
            | Layout(LayoutKernel::Keep { .. })
            | Layout(LayoutKernel::Nonempty { .. })
            | SampleValid { .. }
            | Pooling(PoolingKernel::Activation { .. })
            | Pooling(PoolingKernel::Softmax { .. })
            | Pooling(PoolingKernel::MaskedSoftmax { .. })
            | Pooling(PoolingKernel::Dropout { .. })
            | Pooling(PoolingKernel::Pool { .. })
            | Pooling(PoolingKernel::AttentionPool { .. })
            | Pooling(PoolingKernel::Reduce { .. })
            | Geometry(GeometryKernel::Dot { .. })
            | Geometry(GeometryKernel::Cosine { .. })
            | Geometry(GeometryKernel::Project { .. })
            | Geometry(GeometryKernel::Fm { .. })
            | Loss(LossKernel::ProbabilityLoss { .. })
            | Loss(LossKernel::BceLogits { .. })
            | Loss(LossKernel::Distribution { .. })
            | Loss(LossKernel::Triplet { .. }) => vec![],
            Geometry(GeometryKernel::ItemLogits { table, .. })
            | Layer(LayerKernel::PositionEmbedding { table, .. }) => vec![(*table, Whole)],
            SampledLogits { table, target, samples, .. } => {
                vec![(*table, ParamUse::Rows { ids: *target, extra: *samples })]
            }
            Layer(LayerKernel::Embedding { table, ids }) => vec![(*table, ParamUse::Rows { ids: *ids, extra: 0 })],
            Layer(LayerKernel::Wide { weight, bias, ids }) => {
                vec![(*weight, ParamUse::Rows { ids: *ids, extra: 0 }), (*bias, Whole)]
            }
            Layer(LayerKernel::Linear { weight, bias, .. }) => {
                let mut v = vec![(*weight, Whole)];
                v.extend(bias.map(|b| (b, Whole)));
                v
            }
            Layer(LayerKernel::Mlp { layers, .. }) => layers.iter().flat_map(dense).collect(),
            Layer(LayerKernel::LayerNorm { norm: n, .. }) => norm(n).to_vec(),
            SelfAttention(AttentionKernel { query, key, value, out, norm: n, .. }) => {
                let mut v: Vec<_> = [query, key, value, out].into_iter().flat_map(dense).collect();
                v.extend(n.iter().flat_map(norm));
                v
            }
            Gru { input, hidden, .. } => dense(input).into_iter().chain(dense(hidden)).collect(),
            Mmoe { layers, gates, .. } => layers.iter().chain([gates]).flat_map(dense).collect(),
            Memory(MemoryKernel { slots, read_key, write_key, erase, add, .. }) => {
                let mut v = vec![(*slots, Whole)];
                v.extend([read_key, write_key, erase, add].into_iter().flat_map(dense));
                v
            }
        }
    }

    /// Every value the kernel reads, in a fixed order.
    pub fn operands(&self) -> Vec<ValueId> {
        use Kernel::*;
        let mut v = match self {
            Layout(LayoutKernel::Binary { a, b, .. })
            | Geometry(GeometryKernel::Dot { a, b })
            | Geometry(GeometryKernel::Cosine { a, b }) => vec![*a, *b],
            Geometry(GeometryKernel::Project { a, onto, .. }) => vec![*a, *onto],
            Layout(LayoutKernel::Concat { xs, .. }) | Layout(LayoutKernel::Stack { xs, .. }) => xs.clone(),
            Layout(LayoutKernel::Scalar { x, .. })
            | Layout(LayoutKernel::Neg { x })
            | Layout(LayoutKernel::Slice { x, .. })
            | Layout(LayoutKernel::Index { x, .. })
            | Layout(LayoutKernel::Repeat { x, .. })
            | Layout(LayoutKernel::Reshape { x })
            | Layout(LayoutKernel::FullMask { x })
            | Layout(LayoutKernel::ToFloat { x })
            | Pooling(PoolingKernel::Activation { x, .. })
            | Pooling(PoolingKernel::Softmax { x, .. })
            | Pooling(PoolingKernel::Dropout { x, .. })
            | Pooling(PoolingKernel::Reduce { x, .. })
            | Geometry(GeometryKernel::Fm { x, .. })
            | Layer(LayerKernel::PositionEmbedding { x, .. })
            | Layer(LayerKernel::Linear { x, .. })
            | Layer(LayerKernel::Mlp { x, .. })
            | Layer(LayerKernel::LayerNorm { x, .. })
            | Mmoe { x, .. } => vec![*x],
            Layout(LayoutKernel::Keep { mask, where_ }) => vec![*mask, *where_],
            Layout(LayoutKernel::Nonempty { mask }) => vec![*mask],
            SampleValid { x, mask }
            | Pooling(PoolingKernel::MaskedSoftmax { x, mask })
            | Pooling(PoolingKernel::Pool { x, mask, .. })
            | SelfAttention(AttentionKernel { x, mask, .. })
            | Gru { x, mask, .. } => vec![*x, *mask],
            Pooling(PoolingKernel::AttentionPool { values, scores, mask, .. }) => vec![*values, *scores, *mask],
            Geometry(GeometryKernel::ItemLogits { s, .. }) => vec![*s],
            SampledLogits { s, target, .. } => vec![*s, *target],
            Layer(LayerKernel::Embedding { ids, .. }) | Layer(LayerKernel::Wide { ids, .. }) => vec![*ids],
            Memory(MemoryKernel { key, write, .. }) => vec![*key, *write],
            Loss(LossKernel::ProbabilityLoss { p, .. }) | Loss(LossKernel::Distribution { p, .. }) => vec![*p],
            Loss(LossKernel::BceLogits { logit, .. }) => vec![*logit],
            Loss(LossKernel::Triplet { anchor, positive, negative, .. }) => vec![*anchor, *positive, *negative],
        };
        if let Loss(LossKernel::Distribution { target: Some(t), .. }) = self {
            v.push(*t);
        }
        if let Loss(LossKernel::ProbabilityLoss { weight: Some(w), .. })
        | Loss(LossKernel::BceLogits { weight: Some(w), .. })
        | Loss(LossKernel::Distribution { weight: Some(w), .. })
        | Loss(LossKernel::Triplet { weight: Some(w), .. }) = self
        {
            v.push(*w);
        }
        v
    }
}
