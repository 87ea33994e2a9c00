//! Graph → Program: value and parameter slots, evaluated shapes and init rules, and one typed
//! kernel per node. Every attribute is read here, once, and a missing or malformed one is an
//! error naming the node.

use super::kernel::*;
use super::*;
use crate::ir::{Attr, Init, Instance, Node};
use crate::lower::kernel::{
    AttentionKernel, GeometryKernel, LayerKernel, LayoutKernel, LossKernel, MemoryKernel, PoolingKernel,
};
use crate::ops::options::*;

pub(super) struct Builder<'g> {
    graph: &'g Graph,
    bindings: &'g Bindings,
    values: Vec<ValueInfo>,
    slots: HashMap<&'g str, ValueId>,
    params: Vec<ParamSlot>,
}

impl<'g> Builder<'g> {
    pub(super) fn new(graph: &'g Graph, bindings: &'g Bindings) -> Result<Builder<'g>, LowerError> {
        let mut b = Builder { graph, bindings, values: vec![], slots: HashMap::new(), params: vec![] };
        for input in &graph.inputs {
            let id = b.push_value(&input.name, &input.ty, Some(input.role))?;
            b.values[id.0].hashed = input.hashed;
        }
        for inst in &graph.instances {
            b.lay_out(inst)?;
        }
        Ok(b)
    }

    pub(super) fn finish(mut self) -> Result<Program, LowerError> {
        let input_count = self.values.len();
        let mut steps = vec![];
        for node in &self.graph.nodes {
            let kernel = NodeReader { node, b: &self }.kernel()?;
            let out = self.push_value(&node.name, &node.ty, None)?;
            steps.push(Step { name: node.name.clone(), op: node.op, kernel, out });
        }
        let find = |what: &str, source: &str| {
            self.slots
                .get(source)
                .copied()
                .ok_or_else(|| LowerError::Dangling { what: what.to_string(), source: source.to_string() })
        };
        let outputs = self
            .graph
            .outputs
            .iter()
            .map(|o| Ok(OutputSlot { name: o.name.clone(), value: find(&format!("output `{}`", o.name), &o.source)? }))
            .collect::<Result<_, LowerError>>()?;
        let losses = self
            .graph
            .losses
            .iter()
            .map(|l| {
                let value = find(&format!("loss `{}`", l.name), &l.node)?;
                Ok(LossTerm { name: l.name.clone(), value, weight: l.weight })
            })
            .collect::<Result<_, LowerError>>()?;
        Ok(Program {
            model: self.graph.model.clone(),
            values: self.values,
            input_count,
            params: self.params,
            steps,
            outputs,
            losses,
            labels: self.graph.labels.clone(),
            weight_streams: self.graph.weights.clone(),
        })
    }

    fn push_value(
        &mut self,
        name: &'g str,
        ty: &crate::types::TensorType,
        role: Option<InputRole>,
    ) -> Result<ValueId, LowerError> {
        if let Some(d) = ty.shape.iter().chain(&ty.vocab).find(|d| self.bindings.overflows(d)) {
            return Err(LowerError::TooLarge { at: format!("value `{name}`"), dim: d.to_string() });
        }
        let dim_error = |problem: String| LowerError::Dim { at: format!("`{name}`"), problem };
        let shape =
            ty.shape.iter().map(|d| self.bindings.extent(d)).collect::<Result<Shape, String>>().map_err(dim_error)?;
        let vocab = match &ty.vocab {
            Some(v) => Some(self.fixed(v).map_err(dim_error)?),
            None => None,
        };
        let id = ValueId(self.values.len());
        self.values.push(ValueInfo { name: name.to_string(), dtype: ty.dtype, shape, vocab, role, hashed: false });
        self.slots.insert(name, id);
        Ok(id)
    }

    fn fixed(&self, d: &Dim) -> Result<usize, String> {
        self.bindings.extent(d)?.constant().ok_or_else(|| format!("{d} depends on the batch"))
    }

    /// The parameters of an instance, shapes evaluated, init rules resolved.
    fn lay_out(&mut self, inst: &Instance) -> Result<(), LowerError> {
        for p in &inst.params {
            let at = || format!("parameter `{}/{}`", inst.name, p.name);
            if let Some(d) = p.shape.iter().find(|d| self.bindings.overflows(d)) {
                return Err(LowerError::TooLarge { at: at(), dim: d.to_string() });
            }
            let shape = p
                .shape
                .iter()
                .map(|d| self.fixed(d))
                .collect::<Result<Vec<usize>, String>>()
                .map_err(|problem| LowerError::Dim { at: at(), problem })?;
            let init = match &p.init {
                Init::Zeros => InitRule::Constant(0.0),
                Init::Ones => InitRule::Constant(1.0),
                Init::Normal { std } => InitRule::Normal { std: *std },
                Init::FanIn => {
                    let fan_in =
                        if shape.len() >= 2 { shape[shape.len() - 2] } else { shape.first().copied().unwrap_or(1) };
                    InitRule::Uniform { bound: 1.0 / (fan_in.max(1) as f64).sqrt() }
                }
                Init::UniformInvSqrt(d) => {
                    let n = self.fixed(d).map_err(|problem| LowerError::Dim { at: at(), problem })?;
                    InitRule::Uniform { bound: 1.0 / (n.max(1) as f64).sqrt() }
                }
            };
            let role = if p.state { ParamRole::State } else { ParamRole::Trained };
            self.params.push(ParamSlot {
                instance: inst.name.clone(),
                name: p.name.clone(),
                shape,
                role,
                init,
                op: inst.op,
            });
        }
        Ok(())
    }
}

/// Reads one node's operands, attributes and parameters.
struct NodeReader<'a, 'g> {
    node: &'g Node,
    b: &'a Builder<'g>,
}

type R<T> = Result<T, LowerError>;

impl NodeReader<'_, '_> {
    fn attr_error(&self, attr: &str, problem: impl Into<String>) -> LowerError {
        LowerError::Attribute { node: self.node.name.clone(), attr: attr.to_string(), problem: problem.into() }
    }

    fn attr(&self, name: &str) -> R<&Attr> {
        self.node.attrs.get(name).ok_or_else(|| self.attr_error(name, "is missing"))
    }

    fn extent(&self, name: &str) -> R<Extent> {
        match self.attr(name)? {
            Attr::Int(d) => self.b.bindings.extent(d).map_err(|e| self.attr_error(name, e)),
            other => Err(self.attr_error(name, format!("must be an integer, found {other}"))),
        }
    }

    fn count(&self, name: &str) -> R<usize> {
        self.extent(name)?.constant().ok_or_else(|| self.attr_error(name, "depends on the batch"))
    }

    /// An axis attribute of a value of rank `rank`, negative counting from the end.
    fn axis(&self, name: &str, rank: usize) -> R<usize> {
        let v = match self.attr(name)? {
            Attr::Int(d) => {
                d.as_constant().ok_or_else(|| self.attr_error(name, format!("must be a constant, found {d}")))?
            }
            other => return Err(self.attr_error(name, format!("must be an integer, found {other}"))),
        };
        let axis = if v < 0 { v + rank as i64 } else { v };
        if axis < 0 || axis >= rank as i64 {
            return Err(self.attr_error(name, format!("{v} is out of range for rank {rank}")));
        }
        Ok(axis as usize)
    }

    fn float(&self, name: &str) -> R<f64> {
        match self.attr(name)? {
            Attr::Float(v) => Ok(*v),
            other => Err(self.attr_error(name, format!("must be a float, found {other}"))),
        }
    }

    fn flag(&self, name: &str) -> R<bool> {
        match self.attr(name)? {
            Attr::Bool(v) => Ok(*v),
            other => Err(self.attr_error(name, format!("must be a bool, found {other}"))),
        }
    }

    fn symbol(&self, name: &str) -> R<&str> {
        match self.attr(name)? {
            Attr::Sym(s) => Ok(s),
            other => Err(self.attr_error(name, format!("must be an option name, found {other}"))),
        }
    }

    /// An option attribute as its enum.
    fn option<T>(&self, name: &str, parse: fn(&str) -> Option<T>, names: &[&str]) -> R<T> {
        let s = self.symbol(name)?;
        parse(s).ok_or_else(|| self.attr_error(name, format!("`{s}` is not one of {}", names.join(", "))))
    }

    fn activation(&self, name: &str) -> R<Activation> {
        self.option(name, Activation::parse, Activation::NAMES)
    }

    fn list_len(&self, name: &str) -> R<usize> {
        match self.attr(name)? {
            Attr::List(items) => Ok(items.len()),
            other => Err(self.attr_error(name, format!("must be a list, found {other}"))),
        }
    }

    fn label(&self, name: &str) -> R<LabelId> {
        let s = self.symbol(name)?;
        let i = self.b.graph.labels.iter().position(|l| l == s);
        i.map(LabelId).ok_or_else(|| self.attr_error(name, format!("names `{s}`, which is not a label stream")))
    }

    fn opt_label(&self, name: &str) -> R<Option<LabelId>> {
        if self.node.attrs.contains_key(name) {
            self.label(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The slot of an operand's source.
    fn slot(&self, source: &str) -> R<ValueId> {
        self.b
            .slots
            .get(source)
            .copied()
            .ok_or_else(|| LowerError::UnknownValue { node: self.node.name.clone(), source: source.to_string() })
    }

    fn opt_value(&self, port: &str) -> R<Option<ValueId>> {
        self.node.operands.iter().find(|o| o.port == port).map(|o| self.slot(&o.source)).transpose()
    }

    fn value(&self, port: &str) -> R<ValueId> {
        self.opt_value(port)?
            .ok_or_else(|| LowerError::Operand { node: self.node.name.clone(), port: port.to_string() })
    }

    fn rank(&self, id: ValueId) -> usize {
        self.b.values[id.0].shape.len()
    }

    fn param_of(&self, instance: &str, name: &str) -> R<ParamId> {
        let found = self.b.params.iter().position(|p| p.instance == instance && p.name == name);
        found.map(ParamId).ok_or_else(|| LowerError::Param {
            node: self.node.name.clone(),
            instance: instance.to_string(),
            param: name.to_string(),
        })
    }

    fn param(&self, name: &str) -> R<ParamId> {
        let instance = self.node.instance.as_deref().ok_or_else(|| LowerError::Param {
            node: self.node.name.clone(),
            instance: String::new(),
            param: name.to_string(),
        })?;
        self.param_of(instance, name)
    }

    fn dense(&self, prefix: &str) -> R<Dense> {
        Ok(Dense { weight: self.param(&format!("{prefix}.weight"))?, bias: self.param(&format!("{prefix}.bias"))? })
    }

    /// The table of the `Embedding` instance named by the `table` attribute.
    fn table(&self) -> R<ParamId> {
        match self.attr("table")? {
            Attr::Str(instance) => self.param_of(instance, "table"),
            other => Err(self.attr_error("table", format!("must name an Embedding instance, found {other}"))),
        }
    }

    /// The kernel of the node: one match on `Op`, exhaustive, so a new op does not compile until
    /// it lowers. Functions (ops without weights, and item scoring over a shared table) first,
    /// then weighted components (every parameter by its instance slot), then loss terms (label
    /// streams by index, optional weights).
    fn kernel(&self) -> R<Kernel> {
        use Op::*;
        let n = self.node;
        Ok(match n.op {
            Add | Sub | Mul | Div => self.arithmetic_kernel()?,
            Neg => Kernel::Layout(LayoutKernel::Neg { x: self.value("x")? }),
            Concat | Stack => self.join_kernel()?,
            Slice => self.slice_kernel()?,
            Index => self.index_kernel()?,
            Repeat => self.repeat_kernel()?,
            Unsqueeze | Squeeze | Flatten => Kernel::Layout(LayoutKernel::Reshape { x: self.value("x")? }),
            FullMask => Kernel::Layout(LayoutKernel::FullMask { x: self.value("x")? }),
            ToFloat => Kernel::Layout(LayoutKernel::ToFloat { x: self.value("x")? }),
            Keep => Kernel::Layout(LayoutKernel::Keep { mask: self.value("mask")?, where_: self.value("where")? }),
            Nonempty => Kernel::Layout(LayoutKernel::Nonempty { mask: self.value("mask")? }),
            SampleValid => Kernel::SampleValid { x: self.value("x")?, mask: self.value("mask")? },
            Sigmoid => Kernel::Pooling(PoolingKernel::Activation { x: self.value("x")?, act: Activation::Sigmoid }),
            Relu => Kernel::Pooling(PoolingKernel::Activation { x: self.value("x")?, act: Activation::Relu }),
            Tanh => Kernel::Pooling(PoolingKernel::Activation { x: self.value("x")?, act: Activation::Tanh }),
            Softmax => self.softmax_kernel()?,
            MaskedSoftmax => {
                Kernel::Pooling(PoolingKernel::MaskedSoftmax { x: self.value("x")?, mask: self.value("mask")? })
            }
            Dropout => Kernel::Pooling(PoolingKernel::Dropout { x: self.value("x")?, rate: self.float("rate")? }),
            Pool => self.pool_kernel()?,
            AttentionPool => self.attention_pool_kernel()?,
            ReduceSum | ReduceMean => self.reduce_kernel()?,
            Dot => Kernel::Geometry(GeometryKernel::Dot { a: self.value("a")?, b: self.value("b")? }),
            Cosine => Kernel::Geometry(GeometryKernel::Cosine { a: self.value("a")?, b: self.value("b")? }),
            Project => self.project_kernel()?,
            Orthogonal => self.orthogonal_kernel()?,
            Fm => Kernel::Geometry(GeometryKernel::Fm { x: self.value("x")?, reduce: self.flag("reduce")? }),
            ItemLogits => Kernel::Geometry(GeometryKernel::ItemLogits { s: self.value("s")?, table: self.table()? }),
            SampledLogits => self.sampled_logits_kernel()?,
            Embedding => Kernel::Layer(LayerKernel::Embedding { ids: self.value("ids")?, table: self.param("table")? }),
            PositionEmbedding => self.position_embedding_kernel()?,
            Linear => self.linear_kernel()?,
            Mlp => self.mlp_kernel()?,
            LayerNorm => self.layer_norm_kernel()?,
            SelfAttention => self.self_attention_kernel()?,
            Gru => self.gru_kernel()?,
            Wide => self.wide_kernel()?,
            Mmoe => self.mmoe_kernel()?,
            Memory => self.memory_kernel()?,
            Bce => Kernel::Loss(LossKernel::ProbabilityLoss {
                p: self.value("p")?,
                label: self.label("label")?,
                weight: self.opt_value("weight")?,
                positives_only: false,
            }),
            Nll => Kernel::Loss(LossKernel::ProbabilityLoss {
                p: self.value("p")?,
                label: self.label("label")?,
                weight: self.opt_value("weight")?,
                positives_only: true,
            }),
            BceLogits => Kernel::Loss(LossKernel::BceLogits {
                logit: self.value("logit")?,
                label: self.label("label")?,
                weight: self.opt_value("weight")?,
            }),
            SoftmaxCe | NotToRecommend => Kernel::Loss(LossKernel::Distribution {
                p: self.value("p")?,
                target: self.opt_value("target")?,
                label: if n.op == NotToRecommend { Some(self.label("label")?) } else { self.opt_label("label")? },
                weight: self.opt_value("weight")?,
                loss: if n.op == SoftmaxCe { DistributionLoss::CrossEntropy } else { DistributionLoss::NotToRecommend },
            }),
            Triplet => Kernel::Loss(LossKernel::Triplet {
                anchor: self.value("anchor")?,
                positive: self.value("positive")?,
                negative: self.value("negative")?,
                margin: self.float("margin")?,
                distance: self.option("distance", Distance::parse, Distance::NAMES)?,
                weight: self.opt_value("weight")?,
            }),
        })
    }

    /// The kernel of `add`, `sub`, `mul`, `div`: two tensors, or a tensor and a scalar.
    fn arithmetic_kernel(&self) -> R<Kernel> {
        use Op::*;
        let n = self.node;
        let op = match n.op {
            Add => Arithmetic::Add,
            Sub => Arithmetic::Sub,
            Mul => Arithmetic::Mul,
            _ => Arithmetic::Div,
        };
        Ok(match self.opt_value("x")? {
            None => Kernel::Layout(LayoutKernel::Binary { op, a: self.value("a")?, b: self.value("b")? }),
            Some(x) => {
                let (scalar, side) = match (n.attrs.contains_key("lhs"), n.attrs.contains_key("rhs")) {
                    (true, false) => (self.float("lhs")?, ScalarSide::Left),
                    (false, true) => (self.float("rhs")?, ScalarSide::Right),
                    _ => return Err(self.attr_error("lhs", "or `rhs`: a scalar operation needs exactly one")),
                };
                Kernel::Layout(LayoutKernel::Scalar { op, x, scalar, side })
            }
        })
    }

    /// The kernel of `concat` and `stack`.
    fn join_kernel(&self) -> R<Kernel> {
        let n = self.node;
        let xs = n.operands.iter().filter(|o| o.port == "xs").map(|o| self.slot(&o.source)).collect::<R<Vec<_>>>()?;
        let first = *xs.first().ok_or_else(|| LowerError::Operand { node: n.name.clone(), port: "xs".into() })?;
        Ok(if n.op == Op::Concat {
            Kernel::Layout(LayoutKernel::Concat { axis: self.axis("axis", self.rank(first))?, xs })
        } else {
            Kernel::Layout(LayoutKernel::Stack { axis: self.axis("axis", self.rank(first) + 1)?, xs })
        })
    }

    /// The kernel of `slice`.
    fn slice_kernel(&self) -> R<Kernel> {
        let x = self.value("x")?;
        Ok(Kernel::Layout(LayoutKernel::Slice {
            x,
            axis: self.axis("axis", self.rank(x))?,
            start: self.extent("start")?,
            len: self.extent("len")?,
        }))
    }

    /// The kernel of `index`.
    fn index_kernel(&self) -> R<Kernel> {
        let x = self.value("x")?;
        Ok(Kernel::Layout(LayoutKernel::Index {
            x,
            axis: self.axis("axis", self.rank(x))?,
            index: self.extent("index")?,
        }))
    }

    /// The kernel of `repeat`.
    fn repeat_kernel(&self) -> R<Kernel> {
        let x = self.value("x")?;
        Ok(Kernel::Layout(LayoutKernel::Repeat {
            x,
            axis: self.axis("axis", self.rank(x) + 1)?,
            times: self.extent("n")?,
        }))
    }

    /// The kernel of `softmax`.
    fn softmax_kernel(&self) -> R<Kernel> {
        let x = self.value("x")?;
        Ok(Kernel::Pooling(PoolingKernel::Softmax { x, axis: self.axis("axis", self.rank(x))? }))
    }

    /// The kernel of `pool`.
    fn pool_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Pooling(PoolingKernel::Pool {
            x: self.value("x")?,
            mask: self.value("mask")?,
            mode: self.option("mode", PoolMode::parse, PoolMode::NAMES)?,
            include_padding: self.option("padding", Padding::parse, Padding::NAMES)? == Padding::Include,
        }))
    }

    /// The kernel of `attention_pool`.
    fn attention_pool_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Pooling(PoolingKernel::AttentionPool {
            values: self.value("values")?,
            scores: self.value("scores")?,
            mask: self.value("mask")?,
            norm: self.option("norm", AttentionNorm::parse, AttentionNorm::NAMES)?,
            temperature: self.float("temperature")?,
        }))
    }

    /// The kernel of `reduce_sum` and `reduce_mean`.
    fn reduce_kernel(&self) -> R<Kernel> {
        let n = self.node;
        let x = self.value("x")?;
        let reduction = if n.op == Op::ReduceSum { Reduction::Sum } else { Reduction::Mean };
        Ok(Kernel::Pooling(PoolingKernel::Reduce { x, axis: self.axis("axis", self.rank(x))?, reduction }))
    }

    /// The kernel of `project`.
    fn project_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Geometry(GeometryKernel::Project {
            a: self.value("a")?,
            onto: self.value("onto")?,
            keep: Projection::Along,
        }))
    }

    /// The kernel of `orthogonal` (the part of `a` orthogonal to `onto`).
    fn orthogonal_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Geometry(GeometryKernel::Project {
            a: self.value("a")?,
            onto: self.value("to")?,
            keep: Projection::Orthogonal,
        }))
    }

    /// The kernel of `sampled_logits`.
    fn sampled_logits_kernel(&self) -> R<Kernel> {
        Ok(Kernel::SampledLogits {
            s: self.value("s")?,
            target: self.value("target")?,
            table: self.table()?,
            samples: self.count("samples")?,
            logq: self.flag("logq")?,
        })
    }

    /// The kernel of `PositionEmbedding`.
    fn position_embedding_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Layer(LayerKernel::PositionEmbedding {
            x: self.value("x")?,
            table: self.param("table")?,
            mode: self.option("mode", PositionMode::parse, PositionMode::NAMES)?,
        }))
    }

    /// The kernel of `Linear`.
    fn linear_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Layer(LayerKernel::Linear {
            x: self.value("x")?,
            weight: self.param("weight")?,
            bias: if self.flag("bias")? { Some(self.param("bias")?) } else { None },
        }))
    }

    /// The kernel of `MLP`.
    fn mlp_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Layer(LayerKernel::Mlp {
            x: self.value("x")?,
            layers: (0..self.list_len("units")?).map(|i| self.dense(&format!("layer{i}"))).collect::<R<_>>()?,
            act: self.activation("act")?,
            out_act: self.activation("out_act")?,
            dropout: self.float("dropout")?,
        }))
    }

    /// The kernel of `LayerNorm`.
    fn layer_norm_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Layer(LayerKernel::LayerNorm {
            x: self.value("x")?,
            norm: Norm { gamma: self.param("gamma")?, beta: self.param("beta")? },
            eps: self.float("eps")?,
        }))
    }

    /// The kernel of `SelfAttention`.
    fn self_attention_kernel(&self) -> R<Kernel> {
        Ok(Kernel::SelfAttention(AttentionKernel {
            x: self.value("x")?,
            mask: self.value("mask")?,
            heads: self.count("heads")?,
            scale: self.option("scale", AttentionScale::parse, AttentionScale::NAMES)?,
            residual: self.flag("residual")?,
            dropout: self.float("dropout")?,
            query: self.dense("query")?,
            key: self.dense("key")?,
            value: self.dense("value")?,
            out: self.dense("out")?,
            norm: if self.flag("layer_norm")? {
                Some(Norm { gamma: self.param("norm.gamma")?, beta: self.param("norm.beta")? })
            } else {
                None
            },
        }))
    }

    /// The kernel of `GRU`.
    fn gru_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Gru {
            x: self.value("x")?,
            mask: self.value("mask")?,
            input: self.dense("input")?,
            hidden: self.dense("hidden")?,
            output: self.option("output", GruOutput::parse, GruOutput::NAMES)?,
        })
    }

    /// The kernel of `Wide`.
    fn wide_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Layer(LayerKernel::Wide {
            ids: self.value("ids")?,
            weight: self.param("weight")?,
            bias: self.param("bias")?,
        }))
    }

    /// The kernel of `MMoE`.
    fn mmoe_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Mmoe {
            x: self.value("x")?,
            experts: self.count("experts")?,
            tasks: self.count("tasks")?,
            layers: (0..self.list_len("units")?).map(|i| self.dense(&format!("experts.layer{i}"))).collect::<R<_>>()?,
            gates: self.dense("gates")?,
            act: self.activation("act")?,
        })
    }

    /// The kernel of `Memory`.
    fn memory_kernel(&self) -> R<Kernel> {
        Ok(Kernel::Memory(MemoryKernel {
            key: self.value("key")?,
            write: self.value("write")?,
            slots: self.param("slots")?,
            read_key: self.dense("read_key")?,
            write_key: self.dense("write_key")?,
            erase: self.dense("erase")?,
            add: self.dense("add")?,
            persist: self.flag("persist")?,
            output: self.option("output", MemoryOutput::parse, MemoryOutput::NAMES)?,
        }))
    }
}
