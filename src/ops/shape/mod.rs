//! One shape rule per op: from argument types and attributes to the output type and the
//! parameter tensors the op owns. The graph builder calls [`infer`] for every node, so a graph
//! with inconsistent shapes cannot be built.

use super::options::*;
use super::Op;
use crate::diag::{Code, Diagnostic, SpanLabel};
use crate::dim::Dim;
use crate::ir::{Attr, Init};
use crate::source::Span;
use crate::types::DType;
use crate::types::{Range, TensorType};
use std::collections::BTreeMap;

mod components;
mod functions;
mod losses;

/// A tensor argument as the rule sees it.
#[derive(Clone, Debug)]
pub(crate) struct TensorArg {
    pub port: &'static str,
    pub ty: TensorType,
    pub span: Span,
}

/// The embedding table passed to `item_logits` / `sampled_logits`.
#[derive(Clone, Debug)]
pub(crate) struct TableArg {
    pub name: String,
    pub vocab: Dim,
    pub dim: Dim,
    pub span: Span,
}

/// Everything a shape rule may look at.
pub(crate) struct Call<'a> {
    pub op: Op,
    pub span: Span,
    pub tensors: &'a [TensorArg],
    pub attrs: &'a BTreeMap<String, Attr>,
    pub attr_spans: &'a BTreeMap<String, Span>,
    pub table: Option<&'a TableArg>,
    /// Secondary labels saying where the symbols of a dim were bound.
    pub dim_notes: &'a dyn Fn(&Dim) -> Vec<SpanLabel>,
    /// The value of a dim at the current hyperparameters, when it has one.
    pub eval: &'a dyn Fn(&Dim) -> Option<i64>,
}

/// A parameter tensor an op owns: its name within the instance, its shape, whether it is
/// persistent state rather than trained, and how it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamSpec {
    pub name: String,
    pub shape: Vec<Dim>,
    pub state: bool,
    pub init: Init,
}

/// The result of a shape rule.
pub(crate) struct Inferred {
    pub ty: TensorType,
    pub params: Vec<ParamSpec>,
}

type R<T> = Result<T, Diagnostic>;

fn c(v: i64) -> Dim {
    Dim::constant(v)
}

impl Call<'_> {
    fn t(&self, port: &str) -> &TensorArg {
        // Argument binding guarantees every required tensor port is present.
        self.tensors.iter().find(|a| a.port == port).expect("bound tensor port")
    }

    fn opt_t(&self, port: &str) -> Option<&TensorArg> {
        self.tensors.iter().find(|a| a.port == port)
    }

    fn all(&self, port: &str) -> Vec<&TensorArg> {
        self.tensors.iter().filter(|a| a.port == port).collect()
    }

    fn dim(&self, name: &str) -> Dim {
        match self.attrs.get(name) {
            Some(Attr::Int(d)) => d.clone(),
            _ => Dim::default(),
        }
    }

    fn dims(&self, name: &str) -> Vec<Dim> {
        match self.attrs.get(name) {
            Some(Attr::List(items)) => {
                items.iter().map(|a| if let Attr::Int(d) = a { d.clone() } else { Dim::default() }).collect()
            }
            _ => vec![],
        }
    }

    /// An option argument as its enum (argument binding has checked the spelling).
    fn option<T>(&self, name: &str, parse: fn(&str) -> Option<T>) -> Option<T> {
        parse(self.sym(name))
    }

    fn sym(&self, name: &str) -> &str {
        match self.attrs.get(name) {
            Some(Attr::Sym(s)) => s,
            _ => "",
        }
    }

    fn float(&self, name: &str) -> f64 {
        match self.attrs.get(name) {
            Some(Attr::Float(v)) => *v,
            _ => 0.0,
        }
    }

    fn attr_span(&self, name: &str) -> Span {
        self.attr_spans.get(name).copied().unwrap_or(self.span)
    }

    fn err(&self, code: Code, msg: impl Into<String>) -> Diagnostic {
        Diagnostic::error(code, format!("{}: {}", self.op.name(), msg.into()))
    }

    fn notes(&self, mut d: Diagnostic, dims: &[&Dim]) -> Diagnostic {
        let mut seen = vec![];
        for dim in dims {
            for note in (self.dim_notes)(dim) {
                if !seen.contains(&note.message) {
                    seen.push(note.message.clone());
                    d.secondary.push(note);
                }
            }
        }
        d
    }

    /// Two tensors whose dims must agree.
    fn mismatch(&self, what: &str, a: &TensorArg, da: &Dim, b: &TensorArg, db: &Dim) -> Diagnostic {
        let d = self
            .err(Code::ShapeMismatch, format!("{what}: `{}` has {da} but `{}` has {db}", a.port, b.port))
            .at(b.span, format!("{} is {}", b.port, b.ty))
            .with_label(a.span, format!("{} is {}", a.port, a.ty));
        self.notes(d, &[da, db])
    }

    fn float_arg(&self, a: &TensorArg) -> R<()> {
        if a.ty.dtype != DType::Float {
            let help = match a.ty.dtype {
                DType::Id => "ids must go through an Embedding first",
                _ => "convert a mask with to_float(...)",
            };
            return Err(self
                .err(Code::DTypeMismatch, format!("`{}` must be a float tensor, found {}", a.port, a.ty))
                .at(a.span, format!("this is {}", a.ty))
                .with_help(help));
        }
        Ok(())
    }

    fn dtype_arg(&self, a: &TensorArg, want: DType) -> R<()> {
        if a.ty.dtype != want {
            return Err(self
                .err(Code::DTypeMismatch, format!("`{}` must be an {} tensor, found {}", a.port, want.name(), a.ty))
                .at(a.span, format!("this is {}", a.ty)));
        }
        Ok(())
    }

    fn rank(&self, a: &TensorArg, want: usize, layout: &str) -> R<()> {
        if a.ty.rank() != want {
            return Err(self
                .err(Code::RankMismatch, format!("`{}` must have {want} axes {layout}, found {}", a.port, a.ty))
                .at(a.span, format!("this has {} axes", a.ty.rank())));
        }
        Ok(())
    }

    fn min_rank(&self, a: &TensorArg, want: usize) -> R<()> {
        if a.ty.rank() < want {
            return Err(self
                .err(Code::RankMismatch, format!("`{}` needs at least {want} axes, found {}", a.port, a.ty))
                .at(a.span, format!("this has {} axes", a.ty.rank())));
        }
        Ok(())
    }

    /// Resolves an axis attribute against a rank (negative counts from the end).
    fn axis(&self, name: &str, rank: usize) -> R<usize> {
        let d = self.dim(name);
        let v = d.as_constant().ok_or_else(|| {
            self.err(Code::BadAxis, format!("`{name}` must be a constant, found {d}"))
                .at(self.attr_span(name), "not a constant")
        })?;
        let r = rank as i64;
        let idx = if v < 0 { v + r } else { v };
        if idx < 0 || idx >= r {
            return Err(self
                .err(Code::BadAxis, format!("axis {v} is out of range for a tensor with {rank} axes"))
                .at(self.attr_span(name), format!("valid axes are {} to {}", -r, r - 1)));
        }
        Ok(idx as usize)
    }

    /// Two float tensors of identical shape (element-wise and vector ops).
    fn same_float_shapes(&self, a: &TensorArg, b: &TensorArg) -> R<()> {
        self.float_arg(a)?;
        self.float_arg(b)?;
        self.same_shape(a, b)
    }

    fn same_shape(&self, a: &TensorArg, b: &TensorArg) -> R<()> {
        if a.ty.rank() != b.ty.rank() {
            return Err(self
                .err(Code::RankMismatch, format!("`{}` is {} but `{}` is {}", a.port, a.ty, b.port, b.ty))
                .at(b.span, format!("{} axes", b.ty.rank()))
                .with_label(a.span, format!("{} axes", a.ty.rank()))
                .with_help("broadcast explicitly with repeat(x, axis: .., n: ..) or unsqueeze(...)"));
        }
        for (i, (da, db)) in a.ty.shape.iter().zip(&b.ty.shape).enumerate() {
            if da != db {
                return Err(self
                    .mismatch(&format!("axis {i} differs"), a, da, b, db)
                    .with_help("shapes must match exactly; broadcast explicitly with repeat(...)"));
            }
        }
        Ok(())
    }

    /// The mask must be [B, N] matching the first two axes of `x`.
    fn seq_mask(&self, x: &TensorArg, mask: &TensorArg) -> R<()> {
        self.dtype_arg(mask, DType::Mask)?;
        self.rank(mask, 2, "[B, N]")?;
        for i in 0..2 {
            if x.ty.shape[i] != mask.ty.shape[i] {
                return Err(self.mismatch(
                    &format!("axis {i} of the mask differs"),
                    x,
                    &x.ty.shape[i],
                    mask,
                    &mask.ty.shape[i],
                ));
            }
        }
        Ok(())
    }

    /// A per-example column: [B] or [B, 1].
    fn per_example(&self, a: &TensorArg) -> R<()> {
        let ok = match a.ty.shape.as_slice() {
            [b] => *b == Dim::batch(),
            [b, one] => *b == Dim::batch() && *one == c(1),
            _ => false,
        };
        if !ok {
            return Err(self
                .err(
                    Code::ShapeMismatch,
                    format!("`{}` must be one value per example, [B] or [B, 1], found {}", a.port, a.ty),
                )
                .at(a.span, format!("this is {}", a.ty)));
        }
        Ok(())
    }

    fn positive(&self, name: &str, d: &Dim) -> R<()> {
        if let Some(v) = d.as_constant() {
            if v <= 0 {
                return Err(self
                    .err(Code::BadValue, format!("`{name}` must be positive, found {v}"))
                    .at(self.attr_span(name), "not positive"));
            }
        }
        Ok(())
    }

    fn rate(&self, name: &str) -> R<f64> {
        let v = self.float(name);
        if !(0.0..1.0).contains(&v) {
            return Err(self
                .err(Code::BadValue, format!("`{name}` must be in [0, 1), found {v}"))
                .at(self.attr_span(name), "out of range"));
        }
        Ok(v)
    }
}

fn out(ty: TensorType) -> R<Inferred> {
    Ok(Inferred { ty, params: vec![] })
}

/// A trained parameter.
fn param(name: &str, shape: Vec<Dim>, init: Init) -> ParamSpec {
    ParamSpec { name: name.to_string(), shape, state: false, init }
}

/// `{prefix}.weight` [din, dout] (uniform in ±1/sqrt(din)) and `{prefix}.bias` [dout] (zeros).
fn dense(prefix: &str, din: Dim, dout: Dim) -> [ParamSpec; 2] {
    [
        param(&format!("{prefix}.weight"), vec![din, dout.clone()], Init::FanIn),
        param(&format!("{prefix}.bias"), vec![dout], Init::Zeros),
    ]
}

/// The standard deviation of embedding tables at initialisation.
const TABLE_STD: f64 = 0.05;

/// The parameters of an `Embedding` of `vocab` vectors of `dim`: its table.
pub(crate) fn embedding_params(vocab: Dim, dim: Dim) -> Vec<ParamSpec> {
    vec![param("table", vec![vocab, dim], Init::Normal { std: TABLE_STD })]
}

fn with_last(shape: &[Dim], last: Dim) -> Vec<Dim> {
    let mut s = shape.to_vec();
    if let Some(l) = s.last_mut() {
        *l = last;
    }
    s
}

fn act_range(act: Option<Activation>) -> Range {
    match act {
        Some(Activation::Sigmoid) => Range::UNIT,
        Some(Activation::Relu) => Range { lo: 0.0, hi: f64::INFINITY },
        Some(Activation::Tanh) => Range { lo: -1.0, hi: 1.0 },
        _ => Range::ANY,
    }
}

/// The shape rule of every op: one arm, one function.
pub(crate) fn infer(call: &Call) -> R<Inferred> {
    use Op::*;
    match call.op {
        Add | Sub | Mul | Div => functions::arithmetic(call),
        Neg => functions::neg(call),
        Concat => functions::concat(call),
        Stack => functions::stack(call),
        Slice => functions::slice(call),
        Index => functions::index(call),
        Repeat => functions::repeat(call),
        Unsqueeze => functions::unsqueeze(call),
        Squeeze => functions::squeeze(call),
        Flatten => functions::flatten(call),
        FullMask => functions::full_mask(call),
        ToFloat => functions::to_float(call),
        Nonempty => functions::nonempty(call),
        Keep => functions::keep(call),
        SampleValid => functions::sample_valid(call),
        Sigmoid | Relu | Tanh => functions::activation(call),
        Softmax => functions::softmax(call),
        MaskedSoftmax => functions::masked_softmax(call),
        Dropout => functions::dropout(call),
        Pool => functions::pool(call),
        AttentionPool => functions::attention_pool(call),
        ReduceSum | ReduceMean => functions::reduce(call),
        Dot | Cosine => functions::dot_or_cosine(call),
        Project | Orthogonal => functions::projection(call),
        Fm => functions::fm(call),
        ItemLogits | SampledLogits => components::item_scores(call),
        Embedding => components::embedding(call),
        PositionEmbedding => components::position_embedding(call),
        Linear => components::linear(call),
        Mlp => components::mlp(call),
        LayerNorm => components::layer_norm(call),
        SelfAttention => components::self_attention(call),
        Gru => components::gru(call),
        Wide => components::wide(call),
        Mmoe => components::mmoe(call),
        Memory => components::memory(call),
        Bce | Nll => losses::probability_loss(call),
        BceLogits => losses::bce_logits(call),
        SoftmaxCe | NotToRecommend => losses::distribution_loss(call),
        Triplet => losses::triplet(call),
    }
}

fn check_vocab(call: &Call, ids: &TensorArg, vocab: &Dim, owner: &str, owner_span: Span) -> R<()> {
    match &ids.ty.vocab {
        Some(v) if v == vocab => Ok(()),
        Some(v) => {
            let d = call
                .err(
                    Code::VocabMismatch,
                    format!("`{}` indexes a vocabulary of {v} but {owner} has {vocab} entries", ids.port),
                )
                .at(ids.span, format!("ids from a vocabulary of {v}"))
                .with_label(owner_span, format!("{vocab} entries"));
            Err(call.notes(d, &[v, vocab]))
        }
        None => Err(call
            .err(Code::VocabMismatch, format!("`{}` has no vocabulary", ids.port))
            .at(ids.span, "declare it with `vocab N`")),
    }
}

fn require_probability(call: &Call, prob: &TensorArg) -> R<()> {
    if !prob.ty.range.is_probability() {
        return Err(call
            .err(
                Code::UnboundedProbability,
                format!("`p` must be a probability in [0, 1], but its values are {}", prob.ty.range),
            )
            .at(prob.span, format!("values {}", prob.ty.range))
            .with_help("apply sigmoid(...) first, or use bce_logits(...) on the raw logit"));
    }
    Ok(())
}

fn loss_weight(call: &Call) -> R<Inferred> {
    if let Some(w) = call.opt_t("weight") {
        call.float_arg(w)?;
        call.per_example(w)?;
    }
    out(TensorType::float(vec![Dim::batch()]).with_range(Range { lo: 0.0, hi: f64::INFINITY }))
}
