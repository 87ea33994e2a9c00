//! The PyTorch back end: renders a lowered [`Program`] as a self-contained Python module (one
//! `nn.Module`) through `templates/pytorch.py.j2`.
//!
//! Every step becomes one call into the hand-written package `python/recspec_torch` (one
//! function per [`Kernel`], reproducing the burn kernels), so the generated file stays a readable
//! list of the model's steps. Parameters keep their recspec keys (`f_c/attended/query.weight`)
//! in `PARAMS`, which is how weights move between the two back ends (safetensors). Memory slots
//! are buffers, written back after a training pass.
//!
//! Architecture invariant: this module reads a `Program` only, like the burn runtime; the two
//! back ends never import each other.

use crate::lower::kernel::*;
use crate::lower::kernel::{
    AttentionKernel, GeometryKernel, LayerKernel, LayoutKernel, LossKernel, MemoryKernel, PoolingKernel,
};
use crate::lower::{Extent, InitRule, LabelId, ParamId, ParamRole, Program, ValueId};
use crate::render::{render_builtin, RenderError};
use crate::types::DType;
use serde::Serialize;
use std::collections::HashSet;

/// The template's view of a program.
#[derive(Serialize)]
struct ModuleView {
    model: String,
    class_name: String,
    params: Vec<ParamView>,
    inputs: Vec<InputView>,
    labels: Vec<String>,
    /// Label stream -> (value, "probability" | "logit") of the first loss term scoring it.
    scores: Vec<(String, String, &'static str)>,
    steps: Vec<StepView>,
    outputs: Vec<(String, String)>,
    losses: Vec<LossView>,
    /// Keys of the embedding tables (`Program::row_tables`).
    row_tables: Vec<String>,
    /// Inputs declared `vocab V hashed`.
    hashed_inputs: Vec<String>,
    /// Embedding tables looked up only by inputs' ids, with those inputs
    /// (`Program::input_lookups`): the tables TorchRec can shard.
    input_lookups: Vec<(String, Vec<String>)>,
    /// The steps the declared outputs need (`Program::needed_steps`), for `infer`.
    infer_steps: Vec<StepView>,
    /// The inputs those steps read, in input order.
    infer_inputs: Vec<InputView>,
}

#[derive(Serialize)]
struct ParamView {
    key: String,
    attr: String,
    shape: String,
    state: bool,
    init: String,
}

#[derive(Serialize)]
struct InputView {
    name: String,
    var: String,
    dtype: &'static str,
    role: &'static str,
    /// A Python tuple with `None` for the batch axis.
    shape: String,
    vocab: Option<usize>,
}

#[derive(Serialize)]
struct StepView {
    /// The node name, as a comment.
    name: String,
    /// The Python statement.
    code: String,
}

#[derive(Serialize)]
struct LossView {
    name: String,
    var: String,
    weight: String,
}

/// Renders `program` as a Python module.
pub fn render(program: &Program) -> Result<String, RenderError> {
    let names = Names::new(program);
    let params = program
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| ParamView {
            key: p.key(),
            attr: names.param(ParamId(i)),
            shape: tuple(p.shape.iter().map(|d| d.to_string())),
            state: p.role == ParamRole::State,
            init: match p.init {
                InitRule::Constant(v) => format!("(\"constant\", {})", float(v as f64)),
                InitRule::Normal { std } => format!("(\"normal\", {})", float(std)),
                InitRule::Uniform { bound } => format!("(\"uniform\", {})", float(bound)),
            },
        })
        .collect();
    let input_view = |(i, v): (usize, &crate::lower::ValueInfo)| InputView {
        name: v.name.clone(),
        var: names.value(ValueId(i)),
        dtype: dtype(v.dtype),
        role: v.role.map_or("feature", |r| r.name()),
        shape: tuple(v.shape.iter().map(|e| if *e == Extent::BATCH { "None".into() } else { extent(*e) })),
        vocab: v.vocab,
    };
    let inputs = program.inputs().iter().enumerate().map(input_view).collect();
    let steps: Vec<StepView> = program
        .steps
        .iter()
        .map(|s| StepView { name: s.name.clone(), code: statement(program, &names, &s.kernel, s.out) })
        .collect();
    let outputs_values: Vec<ValueId> = program.outputs.iter().map(|o| o.value).collect();
    let needed = program.needed_steps(&outputs_values);
    let infer_steps: Vec<StepView> = steps
        .iter()
        .zip(&needed)
        .filter(|(_, n)| **n)
        .map(|(s, _)| StepView { name: s.name.clone(), code: s.code.clone() })
        .collect();
    let read: HashSet<ValueId> = program
        .steps
        .iter()
        .zip(&needed)
        .filter(|(_, n)| **n)
        .flat_map(|(s, _)| s.kernel.operands())
        .chain(outputs_values.iter().copied())
        .collect();
    let infer_inputs =
        program.inputs().iter().enumerate().filter(|(i, _)| read.contains(&ValueId(*i))).map(input_view).collect();
    let mut scores: Vec<(String, String, &'static str)> = vec![];
    for step in program.losses.iter().filter_map(|l| program.producer(l.value)) {
        let (label, value, kind) = match &step.kernel {
            Kernel::Loss(LossKernel::ProbabilityLoss { p, label, .. }) => (label, p, "probability"),
            Kernel::Loss(LossKernel::BceLogits { logit, label, .. }) => (label, logit, "logit"),
            _ => continue,
        };
        let label = &program.labels[label.0];
        if !scores.iter().any(|s| &s.0 == label) {
            scores.push((label.clone(), names.value(*value), kind));
        }
    }
    let outputs = program.outputs.iter().map(|o| (o.name.clone(), names.value(o.value))).collect();
    let losses = program
        .losses
        .iter()
        .map(|l| LossView { name: l.name.clone(), var: names.value(l.value), weight: float(l.weight) })
        .collect();
    let view = ModuleView {
        model: program.model.clone(),
        class_name: class_name(&program.model),
        params,
        inputs,
        labels: program.labels.clone(),
        scores,
        steps,
        outputs,
        losses,
        row_tables: program
            .params
            .iter()
            .zip(program.row_tables())
            .filter(|(_, rows)| *rows)
            .map(|(p, _)| p.key())
            .collect(),
        hashed_inputs: program.inputs().iter().filter(|v| v.hashed).map(|v| v.name.clone()).collect(),
        infer_steps,
        infer_inputs,
        input_lookups: program
            .params
            .iter()
            .zip(program.input_lookups())
            .filter_map(|(p, inputs)| Some((p.key(), inputs?.iter().map(|v| program.value(*v).name.clone()).collect())))
            .collect(),
    };
    render_builtin("pytorch.py", minijinja::context! { m => view })
}

/// Python identifiers for values and parameters: the name with every other character made `_`,
/// made unique with a numeric suffix.
struct Names {
    values: Vec<String>,
    params: Vec<String>,
}

impl Names {
    fn new(program: &Program) -> Names {
        let mut taken = HashSet::new();
        let mut unique = |base: String| {
            let mut name = base.clone();
            let mut n = 1;
            while !taken.insert(name.clone()) {
                n += 1;
                name = format!("{base}_{n}");
            }
            name
        };
        let values = program.values.iter().map(|v| unique(identifier(&v.name))).collect();
        let params = program.params.iter().map(|p| unique(format!("w_{}", identifier(&p.key())))).collect();
        Names { values, params }
    }

    fn value(&self, id: ValueId) -> String {
        self.values[id.0].clone()
    }

    fn param(&self, id: ParamId) -> String {
        self.params[id.0].clone()
    }
}

fn identifier(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || is_keyword(&s) {
        s.insert(0, '_');
    }
    s
}

fn is_keyword(s: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
        "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
        "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "B", "rng", "train", "self", "inputs",
        "labels", "step", "ops", "torch", "nn", "w",
    ];
    KEYWORDS.contains(&s)
}

fn class_name(model: &str) -> String {
    let mut out = String::new();
    for part in model.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Model");
    }
    out
}

fn dtype(d: DType) -> &'static str {
    match d {
        DType::Float => "float",
        DType::Id => "id",
        DType::Mask => "mask",
    }
}

/// A float literal Python reads back exactly.
fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else if v > 0.0 {
        "float(\"inf\")".into()
    } else if v < 0.0 {
        "float(\"-inf\")".into()
    } else {
        "float(\"nan\")".into()
    }
}

/// A size as a Python expression in the batch size `B` (`Extent`'s display is one).
fn extent(e: Extent) -> String {
    e.to_string()
}

fn tuple(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    match items.len() {
        1 => format!("({},)", items[0]),
        _ => format!("({})", items.join(", ")),
    }
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

fn boolean(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The names the Python statements use, for one step writing `out`.
struct Py<'a> {
    program: &'a Program,
    names: &'a Names,
    out: ValueId,
}

impl Py<'_> {
    fn v(&self, id: &ValueId) -> String {
        self.names.value(*id)
    }

    fn p(&self, id: &ParamId) -> String {
        format!("self.{}", self.names.param(*id))
    }

    fn opt_v(&self, id: &Option<ValueId>) -> String {
        id.as_ref().map_or("None".to_string(), |i| self.v(i))
    }

    fn dense(&self, d: &Dense) -> String {
        format!("({}, {})", self.p(&d.weight), self.p(&d.bias))
    }

    fn label(&self, l: &LabelId) -> String {
        format!("labels[{}]", quoted(&self.program.labels[l.0]))
    }

    fn list(&self, xs: &[ValueId]) -> String {
        format!("[{}]", xs.iter().map(|x| self.v(x)).collect::<Vec<_>>().join(", "))
    }

    fn layout(&self, kernel: &LayoutKernel) -> String {
        match kernel {
            LayoutKernel::Binary { op, a, b } => {
                format!("ops.binary({}, {}, {})", quoted(arithmetic(*op)), self.v(a), self.v(b))
            }
            LayoutKernel::Scalar { op, x, scalar, side } => format!(
                "ops.scalar({}, {}, {}, left={})",
                quoted(arithmetic(*op)),
                self.v(x),
                float(*scalar),
                boolean(*side == ScalarSide::Left)
            ),
            LayoutKernel::Neg { x } => format!("ops.neg({})", self.v(x)),
            LayoutKernel::Concat { xs, axis } => format!("ops.concat({}, {axis})", self.list(xs)),
            LayoutKernel::Stack { xs, axis } => format!("ops.stack({}, {axis})", self.list(xs)),
            LayoutKernel::Slice { x, axis, start, len } => {
                format!("ops.slice_({}, {axis}, {}, {})", self.v(x), extent(*start), extent(*len))
            }
            LayoutKernel::Index { x, axis, index } => {
                format!("ops.index({}, {axis}, {})", self.v(x), extent(*index))
            }
            LayoutKernel::Repeat { x, axis, times } => {
                format!("ops.repeat({}, {axis}, {})", self.v(x), extent(*times))
            }
            LayoutKernel::Reshape { x } => {
                let shape = tuple(self.program.value(self.out).shape.iter().map(|e| extent(*e)));
                format!("ops.reshape({}, {shape})", self.v(x))
            }
            LayoutKernel::FullMask { x } => format!("ops.full_mask({})", self.v(x)),
            LayoutKernel::ToFloat { x } => format!("ops.to_float({})", self.v(x)),
            LayoutKernel::Keep { mask, where_ } => format!("ops.keep({}, {})", self.v(mask), self.v(where_)),
            LayoutKernel::Nonempty { mask } => format!("ops.nonempty({})", self.v(mask)),
        }
    }

    fn pooling(&self, kernel: &PoolingKernel) -> String {
        match kernel {
            PoolingKernel::Activation { x, act } => {
                format!("ops.activation({}, {})", self.v(x), quoted(act.name()))
            }
            PoolingKernel::Softmax { x, axis } => format!("ops.softmax({}, {axis})", self.v(x)),
            PoolingKernel::MaskedSoftmax { x, mask } => {
                format!("ops.masked_softmax({}, {})", self.v(x), self.v(mask))
            }
            PoolingKernel::Dropout { x, rate } => {
                format!("ops.dropout({}, {}, train)", self.v(x), float(*rate))
            }
            PoolingKernel::Pool { x, mask, mode, include_padding } => format!(
                "ops.pool({}, {}, {}, include_padding={})",
                self.v(x),
                self.v(mask),
                quoted(mode.name()),
                boolean(*include_padding)
            ),
            PoolingKernel::AttentionPool { values, scores, mask, norm, temperature } => format!(
                "ops.attention_pool({}, {}, {}, {}, {})",
                self.v(values),
                self.v(scores),
                self.v(mask),
                quoted(norm.name()),
                float(*temperature)
            ),
            PoolingKernel::Reduce { x, axis, reduction } => {
                let r = match reduction {
                    Reduction::Sum => "sum",
                    Reduction::Mean => "mean",
                };
                format!("ops.reduce({}, {axis}, {})", self.v(x), quoted(r))
            }
        }
    }

    fn geometry(&self, kernel: &GeometryKernel) -> String {
        match kernel {
            GeometryKernel::Dot { a, b } => format!("ops.dot({}, {})", self.v(a), self.v(b)),
            GeometryKernel::Cosine { a, b } => format!("ops.cosine({}, {})", self.v(a), self.v(b)),
            GeometryKernel::Project { a, onto, keep } => {
                format!("ops.project({}, {}, along={})", self.v(a), self.v(onto), boolean(*keep == Projection::Along))
            }
            GeometryKernel::Fm { x, reduce } => format!("ops.fm({}, {})", self.v(x), boolean(*reduce)),
            GeometryKernel::ItemLogits { s, table } => format!("ops.item_logits({}, {})", self.v(s), self.p(table)),
        }
    }

    fn layer(&self, kernel: &LayerKernel) -> String {
        match kernel {
            LayerKernel::Embedding { ids, table } => format!("ops.embedding({}, {})", self.v(ids), self.p(table)),
            LayerKernel::PositionEmbedding { x, table, mode } => {
                format!("ops.position_embedding({}, {}, {})", self.v(x), self.p(table), quoted(mode.name()))
            }
            LayerKernel::Linear { x, weight, bias } => {
                format!(
                    "ops.linear({}, {}, {})",
                    self.v(x),
                    self.p(weight),
                    bias.as_ref().map_or("None".into(), |b| self.p(b))
                )
            }
            LayerKernel::Mlp { x, layers, act, out_act, dropout } => format!(
                "ops.mlp({}, [{}], {}, {}, {}, train)",
                self.v(x),
                layers.iter().map(|d| self.dense(d)).collect::<Vec<_>>().join(", "),
                quoted(act.name()),
                quoted(out_act.name()),
                float(*dropout)
            ),
            LayerKernel::LayerNorm { x, norm, eps } => {
                format!(
                    "ops.layer_norm({}, {}, {}, {})",
                    self.v(x),
                    self.p(&norm.gamma),
                    self.p(&norm.beta),
                    float(*eps)
                )
            }
            LayerKernel::Wide { ids, weight, bias } => {
                format!("ops.wide({}, {}, {})", self.v(ids), self.p(weight), self.p(bias))
            }
        }
    }

    fn loss(&self, kernel: &LossKernel) -> String {
        match kernel {
            LossKernel::ProbabilityLoss { p: prob, label: l, weight, positives_only } => {
                format!(
                    "ops.probability_loss({}, {}, {}, {})",
                    self.v(prob),
                    self.label(l),
                    self.opt_v(weight),
                    boolean(*positives_only)
                )
            }
            LossKernel::BceLogits { logit, label: l, weight } => {
                format!("ops.bce_logits({}, {}, {})", self.v(logit), self.label(l), self.opt_v(weight))
            }
            LossKernel::Distribution { p: prob, target: t, label: l, weight, loss } => {
                let kind = match loss {
                    DistributionLoss::CrossEntropy => "cross_entropy",
                    DistributionLoss::NotToRecommend => "not_to_recommend",
                };
                format!(
                    "ops.distribution_loss({}, {}, {}, {}, {})",
                    self.v(prob),
                    self.opt_v(t),
                    l.as_ref().map_or("None".into(), |l| self.label(l)),
                    self.opt_v(weight),
                    quoted(kind)
                )
            }
            LossKernel::Triplet { anchor, positive, negative, margin, distance, weight } => format!(
                "ops.triplet({}, {}, {}, {}, {}, {})",
                self.v(anchor),
                self.v(positive),
                self.v(negative),
                float(*margin),
                quoted(distance.name()),
                self.opt_v(weight)
            ),
        }
    }
}

/// The Python statement of one step: one `ops` call per kernel, each family in its own method of
/// [`Py`] (every match exhaustive).
fn statement(program: &Program, names: &Names, kernel: &Kernel, out: ValueId) -> String {
    let py = Py { program, names, out };
    let target = names.value(out);
    let call = match kernel {
        Kernel::Layout(k) => py.layout(k),
        Kernel::Pooling(k) => py.pooling(k),
        Kernel::Geometry(k) => py.geometry(k),
        Kernel::Layer(k) => py.layer(k),
        Kernel::Loss(k) => py.loss(k),
        Kernel::SampleValid { x, mask } => format!("ops.sample_valid({}, {}, train, rng)", py.v(x), py.v(mask)),
        Kernel::SampledLogits { s, target, table, samples, logq } => {
            format!(
                "ops.sampled_logits({}, {}, {}, {samples}, {}, rng)",
                py.v(s),
                py.v(target),
                py.p(table),
                boolean(*logq)
            )
        }
        Kernel::SelfAttention(AttentionKernel {
            x,
            mask,
            heads,
            scale,
            residual,
            dropout,
            query,
            key,
            value,
            out: o,
            norm,
        }) => {
            format!(
                "ops.self_attention({}, {}, {heads}, {}, {}, {}, train, {}, {}, {}, {}, {})",
                py.v(x),
                py.v(mask),
                quoted(scale.name()),
                boolean(*residual),
                float(*dropout),
                py.dense(query),
                py.dense(key),
                py.dense(value),
                py.dense(o),
                norm.as_ref().map_or("None".into(), |n| format!("({}, {})", py.p(&n.gamma), py.p(&n.beta)))
            )
        }
        Kernel::Gru { x, mask, input, hidden, output } => {
            format!(
                "ops.gru({}, {}, {}, {}, {})",
                py.v(x),
                py.v(mask),
                py.dense(input),
                py.dense(hidden),
                quoted(output.name())
            )
        }
        Kernel::Mmoe { x, experts, tasks, layers, gates, act } => format!(
            "ops.mmoe({}, {experts}, {tasks}, [{}], {}, {})",
            py.v(x),
            layers.iter().map(|d| py.dense(d)).collect::<Vec<_>>().join(", "),
            py.dense(gates),
            quoted(act.name())
        ),
        Kernel::Memory(MemoryKernel { key, write, slots, read_key, write_key, erase, add, persist, output }) => {
            // The slots are read from `state` (this pass's newest write) and written back to it.
            let slot = quoted(&py.program.params[slots.0].key());
            return format!(
                "{target}, new_slots = ops.memory({}, {}, state[{slot}], {}, {}, {}, {}, {}, {}, train)\n        if new_slots is not None:\n            state[{slot}] = new_slots",
                py.v(key),
                py.v(write),
                py.dense(read_key),
                py.dense(write_key),
                py.dense(erase),
                py.dense(add),
                boolean(*persist),
                quoted(output.name())
            );
        }
    };
    format!("{target} = {call}")
}

fn arithmetic(op: Arithmetic) -> &'static str {
    match op {
        Arithmetic::Add => "add",
        Arithmetic::Sub => "sub",
        Arithmetic::Mul => "mul",
        Arithmetic::Div => "div",
    }
}
