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

/// One kernel application. Every op of the catalogue lowers to exactly one variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
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
    /// x [B, N, D], mask [B, N] → [B, D]: a random valid position in training, the last valid one
    /// in evaluation; zeros where none is valid.
    SampleValid {
        x: ValueId,
        mask: ValueId,
    },
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
    /// a, b [.., D] → [..].
    Dot {
        a: ValueId,
        b: ValueId,
    },
    /// a, b [.., D] → [..].
    Cosine {
        a: ValueId,
        b: ValueId,
    },
    /// a, onto [.., D] → [.., D].
    Project {
        a: ValueId,
        onto: ValueId,
        keep: Projection,
    },
    /// x [B, F, D] → [B, D], or [B] when `reduce`.
    Fm {
        x: ValueId,
        reduce: bool,
    },
    /// s [B, D], table [V, D] → [B, V].
    ItemLogits {
        s: ValueId,
        table: ParamId,
    },
    /// s [B, D], target ids [B] or [B, 1], table [V, D] → [B, 1 + samples], target in column 0.
    SampledLogits {
        s: ValueId,
        target: ValueId,
        table: ParamId,
        samples: usize,
        logq: bool,
    },
    /// ids [..] → [.., D].
    Embedding {
        ids: ValueId,
        table: ParamId,
    },
    /// x [B, N, D], table [N, E] → [B, N, D] (add, E = D) or [B, N, D + E] (concat).
    PositionEmbedding {
        x: ValueId,
        table: ParamId,
        mode: PositionMode,
    },
    /// x [.., In] → [.., Out].
    Linear {
        x: ValueId,
        weight: ParamId,
        bias: Option<ParamId>,
    },
    /// x [.., In] → [.., Out]; `act` and dropout between layers, `out_act` after the last.
    Mlp {
        x: ValueId,
        layers: Vec<Dense>,
        act: Activation,
        out_act: Activation,
        dropout: f64,
    },
    /// x [.., D] → [.., D].
    LayerNorm {
        x: ValueId,
        norm: Norm,
        eps: f64,
    },
    /// x [B, N, D], mask [B, N] → [B, N, D]; D divisible by `heads`.
    SelfAttention {
        x: ValueId,
        mask: ValueId,
        heads: usize,
        scale: AttentionScale,
        residual: bool,
        dropout: f64,
        query: Dense,
        key: Dense,
        value: Dense,
        out: Dense,
        norm: Option<Norm>,
    },
    /// x [B, N, In], mask [B, N] → [B, H] (last) or [B, N, H] (all). `input` is [In, 3H],
    /// `hidden` [H, 3H], gates in the order reset, update, candidate.
    Gru {
        x: ValueId,
        mask: ValueId,
        input: Dense,
        hidden: Dense,
        output: GruOutput,
    },
    /// ids [B, F], weight [V, 1], bias [F] → [B, F].
    Wide {
        ids: ValueId,
        weight: ParamId,
        bias: ParamId,
    },
    /// x [B, In] → [B, tasks, Out]. Expert layers are [experts, in, out] with biases
    /// [experts, out]; the gates [tasks, In, experts] with biases [tasks, experts].
    Mmoe {
        x: ValueId,
        experts: usize,
        tasks: usize,
        layers: Vec<Dense>,
        gates: Dense,
        act: Activation,
    },
    /// key [B, K], write [B, W], slots [S, M] (state) → [B, M] (read) or [B, 2, M] (both).
    Memory {
        key: ValueId,
        write: ValueId,
        slots: ParamId,
        read_key: Dense,
        write_key: Dense,
        erase: Dense,
        add: Dense,
        persist: bool,
        output: MemoryOutput,
    },
    /// p [B] or [B, 1] in [0, 1] → [B]: `-(y log p + (1 - y) log(1 - p))`, or `-y log p` when
    /// `positives_only` (`nll`).
    ProbabilityLoss {
        p: ValueId,
        label: LabelId,
        weight: Option<ValueId>,
        positives_only: bool,
    },
    /// logit [B] or [B, 1] → [B].
    BceLogits {
        logit: ValueId,
        label: LabelId,
        weight: Option<ValueId>,
    },
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

impl Kernel {
    /// The label stream a loss kernel reads, if any.
    pub fn label(&self) -> Option<LabelId> {
        match self {
            Kernel::ProbabilityLoss { label, .. } | Kernel::BceLogits { label, .. } => Some(*label),
            Kernel::Distribution { label, .. } => *label,
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
            Binary { .. }
            | Scalar { .. }
            | Neg { .. }
            | Concat { .. }
            | Stack { .. }
            | Slice { .. }
            | Index { .. }
            | Repeat { .. }
            | Reshape { .. }
            | FullMask { .. }
            | ToFloat { .. }
            | Keep { .. }
            | Nonempty { .. }
            | SampleValid { .. }
            | Activation { .. }
            | Softmax { .. }
            | MaskedSoftmax { .. }
            | Dropout { .. }
            | Pool { .. }
            | AttentionPool { .. }
            | Reduce { .. }
            | Dot { .. }
            | Cosine { .. }
            | Project { .. }
            | Fm { .. }
            | ProbabilityLoss { .. }
            | BceLogits { .. }
            | Distribution { .. }
            | Triplet { .. } => vec![],
            ItemLogits { table, .. } | PositionEmbedding { table, .. } => vec![(*table, Whole)],
            SampledLogits { table, target, samples, .. } => {
                vec![(*table, ParamUse::Rows { ids: *target, extra: *samples })]
            }
            Embedding { table, ids } => vec![(*table, ParamUse::Rows { ids: *ids, extra: 0 })],
            Wide { weight, bias, ids } => vec![(*weight, ParamUse::Rows { ids: *ids, extra: 0 }), (*bias, Whole)],
            Linear { weight, bias, .. } => {
                let mut v = vec![(*weight, Whole)];
                v.extend(bias.map(|b| (b, Whole)));
                v
            }
            Mlp { layers, .. } => layers.iter().flat_map(dense).collect(),
            LayerNorm { norm: n, .. } => norm(n).to_vec(),
            SelfAttention { query, key, value, out, norm: n, .. } => {
                let mut v: Vec<_> = [query, key, value, out].into_iter().flat_map(dense).collect();
                v.extend(n.iter().flat_map(norm));
                v
            }
            Gru { input, hidden, .. } => dense(input).into_iter().chain(dense(hidden)).collect(),
            Mmoe { layers, gates, .. } => layers.iter().chain([gates]).flat_map(dense).collect(),
            Memory { slots, read_key, write_key, erase, add, .. } => {
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
            Binary { a, b, .. } | Dot { a, b } | Cosine { a, b } => vec![*a, *b],
            Project { a, onto, .. } => vec![*a, *onto],
            Concat { xs, .. } | Stack { xs, .. } => xs.clone(),
            Scalar { x, .. }
            | Neg { x }
            | Slice { x, .. }
            | Index { x, .. }
            | Repeat { x, .. }
            | Reshape { x }
            | FullMask { x }
            | ToFloat { x }
            | Activation { x, .. }
            | Softmax { x, .. }
            | Dropout { x, .. }
            | Reduce { x, .. }
            | Fm { x, .. }
            | PositionEmbedding { x, .. }
            | Linear { x, .. }
            | Mlp { x, .. }
            | LayerNorm { x, .. }
            | Mmoe { x, .. } => vec![*x],
            Keep { mask, where_ } => vec![*mask, *where_],
            Nonempty { mask } => vec![*mask],
            SampleValid { x, mask }
            | MaskedSoftmax { x, mask }
            | Pool { x, mask, .. }
            | SelfAttention { x, mask, .. }
            | Gru { x, mask, .. } => vec![*x, *mask],
            AttentionPool { values, scores, mask, .. } => vec![*values, *scores, *mask],
            ItemLogits { s, .. } => vec![*s],
            SampledLogits { s, target, .. } => vec![*s, *target],
            Embedding { ids, .. } | Wide { ids, .. } => vec![*ids],
            Memory { key, write, .. } => vec![*key, *write],
            ProbabilityLoss { p, .. } | Distribution { p, .. } => vec![*p],
            BceLogits { logit, .. } => vec![*logit],
            Triplet { anchor, positive, negative, .. } => vec![*anchor, *positive, *negative],
        };
        if let Distribution { target: Some(t), .. } = self {
            v.push(*t);
        }
        if let ProbabilityLoss { weight: Some(w), .. }
        | BceLogits { weight: Some(w), .. }
        | Distribution { weight: Some(w), .. }
        | Triplet { weight: Some(w), .. } = self
        {
            v.push(*w);
        }
        v
    }
}
