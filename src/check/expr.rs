//! Expression evaluation: arithmetic, field access, argument binding, op and block application.

use super::value::{Callee, Instance, Tensor, Value};
use super::{scalar_attr, Checker, Scope};
use crate::ast::{self, Arg, BinOp, DType, Expr, ExprKind, ValueKind};
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::dim::Dim;
use crate::ir::{self, Attr, InputRole, Node, Operand, ParamTensor};
use crate::ops::shape::{infer, Call, TableArg, TensorArg};
use crate::ops::{self, ArgKind, ArgSpec, Op};
use crate::resolve::positional_spec;
use crate::source::Span;
use crate::types::{Range, TensorType};
use std::collections::{BTreeMap, HashMap};

/// Arguments bound to a signature.
#[derive(Default)]
struct Bound {
    tensors: Vec<TensorArg>,
    operands: Vec<Operand>,
    attrs: BTreeMap<String, Attr>,
    attr_spans: BTreeMap<String, Span>,
    table: Option<TableArg>,
}

impl Checker<'_> {
    pub(super) fn eval(&mut self, scope: &Scope, e: &Expr) -> Value {
        match &e.kind {
            ExprKind::Int(v) => Value::Int(Dim::constant(*v)),
            ExprKind::Float(v) => Value::Float(*v),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::List(items) => Value::List(items.iter().map(|x| self.eval(scope, x)).collect()),
            ExprKind::Name(n) => match scope.get(n) {
                Some(v) => v.clone(),
                None => match Op::by_name(n) {
                    Some(op) => Value::Callable(Callee::Op(op)),
                    None if self.blocks.contains_key(n.as_str()) => Value::Callable(Callee::Block(n.clone())),
                    // The resolver reported the undefined name.
                    None => Value::Poison,
                },
            },
            ExprKind::Neg(x) => match self.eval(scope, x) {
                Value::Int(d) => Value::Int(d.neg()),
                Value::Float(v) => Value::Float(-v),
                Value::Tensor(t) => {
                    let ty = TensorType::float(t.ty.shape.clone()).with_range(t.ty.range.negate());
                    if t.ty.dtype != DType::Float {
                        return self.dtype_error("-", &t, x.span);
                    }
                    self.node(
                        e.span,
                        Op::Neg,
                        BTreeMap::new(),
                        vec![Operand { port: "x".into(), source: t.source }],
                        ty,
                        None,
                    )
                }
                Value::Poison => Value::Poison,
                other => self.error(
                    Diagnostic::error(Code::KindMismatch, format!("cannot negate {}", other.describe()))
                        .at(x.span, "not a number or tensor"),
                ),
            },
            ExprKind::Binary(op, a, b) => {
                let (va, vb) = (self.eval(scope, a), self.eval(scope, b));
                self.binary(e.span, *op, (va, a.span), (vb, b.span))
            }
            ExprKind::Field(base, field) => self.field(scope, base, field),
            ExprKind::Call(callee, args) => self.call(scope, e, callee, args),
        }
    }

    fn dtype_error(&mut self, op: &str, t: &Tensor, span: Span) -> Value {
        let d = Diagnostic::error(Code::DTypeMismatch, format!("`{op}` needs float tensors, found {}", t.ty))
            .at(span, format!("this is {}", t.ty))
            .with_help(if t.ty.dtype == DType::Id { "embed ids first" } else { "convert with to_float(...)" });
        self.error(d)
    }

    fn binary(&mut self, span: Span, op: BinOp, (a, sa): (Value, Span), (b, sb): (Value, Span)) -> Value {
        let ir_op = match op {
            BinOp::Add => Op::Add,
            BinOp::Sub => Op::Sub,
            BinOp::Mul => Op::Mul,
            BinOp::Div => Op::Div,
        };
        match (a, b) {
            (Value::Poison, _) | (_, Value::Poison) => Value::Poison,
            (Value::Int(x), Value::Int(y)) => Value::Int(match op {
                BinOp::Add => x.add(&y),
                BinOp::Sub => x.sub(&y),
                BinOp::Mul => x.mul(&y),
                BinOp::Div => {
                    if y.as_constant() == Some(0) {
                        return self.error(Diagnostic::error(Code::BadDim, "division by zero").at(sb, "zero"));
                    }
                    x.div(&y)
                }
            }),
            (x @ (Value::Int(_) | Value::Float(_)), y @ (Value::Int(_) | Value::Float(_))) => {
                let (Some(x), Some(y)) = (self.number(&x, sa), self.number(&y, sb)) else { return Value::Poison };
                Value::Float(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                })
            }
            (Value::Tensor(x), Value::Tensor(y)) => {
                let args = [
                    TensorArg { port: "a", ty: x.ty.clone(), span: sa },
                    TensorArg { port: "b", ty: y.ty.clone(), span: sb },
                ];
                let ty = match self.infer_op(ir_op, span, &args, &BTreeMap::new(), &BTreeMap::new(), None) {
                    Some(inferred) => inferred.ty,
                    None => return Value::Poison,
                };
                let range = match op {
                    BinOp::Add => self.convex_range(&x.source, &y.source).unwrap_or(x.ty.range.plus(y.ty.range)),
                    BinOp::Sub => x.ty.range.minus(y.ty.range),
                    BinOp::Mul => x.ty.range.times(y.ty.range),
                    BinOp::Div => Range::ANY,
                };
                let operands = vec![
                    Operand { port: "a".into(), source: x.source },
                    Operand { port: "b".into(), source: y.source },
                ];
                self.node(span, ir_op, BTreeMap::new(), operands, ty.with_range(range), None)
            }
            (Value::Tensor(t), s) if matches!(s, Value::Int(_) | Value::Float(_)) => {
                self.scalar_op(span, op, (t, sa), (s, sb), false)
            }
            (s, Value::Tensor(t)) if matches!(s, Value::Int(_) | Value::Float(_)) => {
                self.scalar_op(span, op, (t, sb), (s, sa), true)
            }
            (Value::Loss(_), _) | (_, Value::Loss(_)) => self.error(
                Diagnostic::error(
                    Code::NotALoss,
                    "loss terms can only be weighted in a `loss` statement: `loss name = w * term;`",
                )
                .at(span, "arithmetic on a loss term")
                .with_help("write one `loss` statement per term; the total is their weighted sum"),
            ),
            (x, y) => {
                let msg = format!("cannot apply `{}` to {} and {}", op.symbol(), x.describe(), y.describe());
                self.error(Diagnostic::error(Code::KindMismatch, msg).at(span, "unsupported operands"))
            }
        }
    }

    /// A tensor combined with a scalar; `scalar_left` for `1 - p`, not `p - 1`.
    fn scalar_op(
        &mut self,
        span: Span,
        op: BinOp,
        (t, ts): (Tensor, Span),
        (s, ss): (Value, Span),
        scalar_left: bool,
    ) -> Value {
        let Some(c) = self.number(&s, ss) else {
            return Value::Poison;
        };
        if t.ty.dtype != DType::Float {
            return self.dtype_error(op.symbol(), &t, ts);
        }
        let p = Range::point(c);
        let range = match (op, scalar_left) {
            (BinOp::Add, _) => t.ty.range.plus(p),
            (BinOp::Sub, true) => p.minus(t.ty.range),
            (BinOp::Sub, false) => t.ty.range.minus(p),
            (BinOp::Mul, _) => t.ty.range.times(p),
            (BinOp::Div, false) if c != 0.0 => t.ty.range.times(Range::point(1.0 / c)),
            (BinOp::Div, _) => Range::ANY,
        };
        let ir_op = match op {
            BinOp::Add => Op::Add,
            BinOp::Sub => Op::Sub,
            BinOp::Mul => Op::Mul,
            BinOp::Div => Op::Div,
        };
        let ty = TensorType::float(t.ty.shape.clone()).with_range(range);
        let attrs = scalar_attr(if scalar_left { "lhs" } else { "rhs" }, c);
        self.node(span, ir_op, attrs, vec![Operand { port: "x".into(), source: t.source }], ty, None)
    }

    fn number(&mut self, v: &Value, span: Span) -> Option<f64> {
        match v {
            Value::Float(f) => Some(*f),
            Value::Int(d) => match self.eval_dim(d) {
                Ok(x) => Some(x as f64),
                Err(e) => {
                    self.error(Diagnostic::error(Code::BadDim, format!("{d}: {e}")).at(span, "cannot be evaluated"));
                    None
                }
            },
            _ => None,
        }
    }

    /// `x*g + y*(1-g)` with g in [0, 1] is a convex combination: its range is the hull of x and y.
    fn convex_range(&self, a: &str, b: &str) -> Option<Range> {
        let mul_parts = |name: &str| -> Option<(String, String)> {
            let n = self.graph.node(name)?;
            (n.op == Op::Mul && n.operands.len() == 2)
                .then(|| (n.operands[0].source.clone(), n.operands[1].source.clone()))
        };
        let complement_of = |name: &str| -> Option<String> {
            let n = self.graph.node(name)?;
            (n.op == Op::Sub && n.attrs.get("lhs") == Some(&Attr::Float(1.0))).then(|| n.operands[0].source.clone())
        };
        let (a1, a2) = mul_parts(a)?;
        let (b1, b2) = mul_parts(b)?;
        for (x, g) in [(&a1, &a2), (&a2, &a1)] {
            for (y, h) in [(&b1, &b2), (&b2, &b1)] {
                if complement_of(h).as_deref() == Some(g.as_str()) && self.source_range(g).is_probability() {
                    return Some(self.source_range(x).hull(self.source_range(y)));
                }
            }
        }
        None
    }

    fn source_range(&self, source: &str) -> Range {
        if let Some(n) = self.graph.node(source) {
            return n.ty.range;
        }
        self.graph.inputs.iter().find(|i| i.name == source).map_or(Range::ANY, |i| i.ty.range)
    }

    fn field(&mut self, scope: &Scope, base: &Expr, field: &ast::Ident) -> Value {
        let v = self.eval(scope, base);
        let t = match v {
            Value::Tensor(t) => t,
            Value::Poison => return Value::Poison,
            other => {
                let msg = format!("`.{}` needs a sequence input, found {}", field.name, other.describe());
                return self.error(Diagnostic::error(Code::BadSide, msg).at(base.span, "not a sequence"));
            }
        };
        let is_seq = self.graph.inputs.iter().any(|i| i.name == t.source && i.role == InputRole::Sequence);
        if !is_seq {
            let msg = format!("`.{}`: only sequence inputs have fields, and `{}` is not one", field.name, t.source);
            return self.error(
                Diagnostic::error(Code::BadSide, msg)
                    .at(base.span, "not a sequence input")
                    .with_help("declare it with `seq name: id[B, T] vocab V;`"),
            );
        }
        let full = format!("{}.{}", t.source, field.name);
        if let Some(input) = self.graph.inputs.iter().find(|i| i.name == full) {
            return Value::Tensor(Tensor { ty: input.ty.clone(), source: full });
        }
        let prefix = format!("{}.", t.source);
        let fields: Vec<String> =
            self.graph.inputs.iter().filter_map(|i| i.name.strip_prefix(&prefix).map(str::to_string)).collect();
        let mut d = Diagnostic::error(Code::BadSide, format!("sequence `{}` has no field `{}`", t.source, field.name))
            .at(field.span, "unknown field");
        d = match did_you_mean(&field.name, fields.iter().map(String::as_str)) {
            Some(h) => d.with_help(h),
            None => d.with_help(format!("fields of `{}`: {}", t.source, fields.join(", "))),
        };
        self.error(d)
    }

    fn call(&mut self, scope: &Scope, e: &Expr, callee: &Expr, args: &[Arg]) -> Value {
        match self.eval(scope, callee) {
            Value::Callable(Callee::Op(op)) if op.is_constructor() => {
                let Some(bound) = self.bind(scope, op.name(), op.config(), args, e.span) else {
                    return Value::Poison;
                };
                Value::Instance(Box::new(Instance {
                    callee: Callee::Op(op),
                    name: None,
                    attrs: bound.attrs,
                    block_args: BTreeMap::new(),
                }))
            }
            Value::Callable(Callee::Op(op)) => {
                if op.is_loss() && !self.in_loss {
                    return self.error(
                        Diagnostic::error(
                            Code::NotALoss,
                            format!("`{}` is a loss term; it can only be used in a `loss` statement", op.name()),
                        )
                        .at(callee.span, "loss term outside `loss`"),
                    );
                }
                let Some(b) = self.bind(scope, op.name(), op.inputs(), args, e.span) else {
                    return Value::Poison;
                };
                self.apply_op(e.span, op, b, None)
            }
            Value::Callable(Callee::Block(name)) => self.configure_block(scope, &name, args, e.span),
            Value::Instance(inst) => match inst.callee.clone() {
                Callee::Op(op) => {
                    let Some(mut b) = self.bind(scope, op.name(), op.inputs(), args, e.span) else {
                        return Value::Poison;
                    };
                    b.attrs = inst.attrs.clone();
                    self.apply_op(e.span, op, b, Some(*inst))
                }
                Callee::Block(name) => self.apply_block(scope, e.span, &name, *inst, args),
            },
            Value::Poison => Value::Poison,
            other => {
                let msg = format!("{} cannot be called", other.describe());
                let mut d = Diagnostic::error(Code::NotCallable, msg).at(callee.span, "not a component");
                if matches!(other, Value::Tensor(_)) {
                    d = d.with_help("only components, blocks and configured instances can be applied");
                }
                self.error(d)
            }
        }
    }

    /// Binds call arguments to a signature, evaluating each by its declared kind.
    fn bind(
        &mut self,
        scope: &Scope,
        what: &str,
        specs: &'static [ArgSpec],
        args: &[Arg],
        call_span: Span,
    ) -> Option<Bound> {
        let mut b = Bound::default();
        let mut ok = true;
        let mut given: HashMap<&str, Span> = HashMap::new();
        let mut positional = 0;
        for arg in args {
            let spec = match &arg.name {
                Some(n) => match specs.iter().find(|s| s.name == n.name) {
                    Some(s) => s,
                    None => {
                        ok = false;
                        let mut d =
                            Diagnostic::error(Code::UnknownArgument, format!("`{what}` has no argument `{}`", n.name))
                                .at(n.span, "unknown argument");
                        d = match did_you_mean(&n.name, specs.iter().map(|s| s.name)) {
                            Some(h) => d.with_help(h),
                            None => d.with_help(format!(
                                "arguments of `{what}`: {}",
                                specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                            )),
                        };
                        self.diags.push(d);
                        continue;
                    }
                },
                None => {
                    positional += 1;
                    match positional_spec(specs, positional - 1) {
                        Some(s) => s,
                        None => {
                            ok = false;
                            self.diags.push(
                                Diagnostic::error(
                                    Code::UnknownArgument,
                                    format!("`{what}` takes at most {} arguments", specs.len()),
                                )
                                .at(arg.value.span, "extra argument"),
                            );
                            continue;
                        }
                    }
                }
            };
            if spec.kind != ArgKind::Tensors {
                if let Some(prev) = given.insert(spec.name, arg.value.span) {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            Code::DuplicateArgument,
                            format!("argument `{}` of `{what}` is given twice", spec.name),
                        )
                        .at(arg.value.span, "given again")
                        .with_label(prev, "first given here"),
                    );
                    continue;
                }
            } else {
                given.insert(spec.name, arg.value.span);
            }
            ok &= self.bind_one(scope, what, spec, &arg.value, &mut b);
        }
        let missing: Vec<&str> = specs
            .iter()
            .filter(|s| matches!(s.default, ops::Default::Required) && !given.contains_key(s.name))
            .map(|s| s.name)
            .collect();
        if !missing.is_empty() {
            ok = false;
            let list = missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
            self.diags.push(
                Diagnostic::error(Code::MissingArgument, format!("`{what}` is missing {list}"))
                    .at(call_span, format!("missing {list}"))
                    .with_help(format!("`{what}` takes {}", signature_text(specs))),
            );
        }
        for s in specs {
            if given.contains_key(s.name) {
                continue;
            }
            let attr = match s.default {
                ops::Default::Int(v) => Attr::Int(Dim::constant(v)),
                ops::Default::Float(v) => Attr::Float(v),
                ops::Default::Bool(v) => Attr::Bool(v),
                ops::Default::Sym(v) => Attr::Sym(v.to_string()),
                ops::Default::Required | ops::Default::Absent => continue,
            };
            b.attrs.insert(s.name.to_string(), attr);
        }
        ok.then_some(b)
    }

    fn bind_one(&mut self, scope: &Scope, what: &str, spec: &ArgSpec, e: &Expr, b: &mut Bound) -> bool {
        let wrong = |v: &Value| {
            Diagnostic::error(
                Code::KindMismatch,
                format!(
                    "argument `{}` of `{what}` must be {}, found {}",
                    spec.name,
                    spec.kind.describe(),
                    v.describe()
                ),
            )
        };
        match spec.kind {
            ArgKind::Tensor | ArgKind::Tensors => match self.eval(scope, e) {
                Value::Tensor(t) => {
                    b.tensors.push(TensorArg { port: spec.name, ty: t.ty, span: e.span });
                    b.operands.push(Operand { port: spec.name.to_string(), source: t.source });
                    true
                }
                Value::Poison => false,
                v => {
                    self.diags.push(wrong(&v).at(e.span, "not a tensor"));
                    false
                }
            },
            ArgKind::Label => match &e.kind {
                ExprKind::Name(n) if self.labels.contains(n) => {
                    b.attrs.insert(spec.name.to_string(), Attr::Sym(n.clone()));
                    b.attr_spans.insert(spec.name.to_string(), e.span);
                    true
                }
                // Unknown labels were reported by the resolver.
                ExprKind::Name(_) => false,
                _ => {
                    let d = Diagnostic::error(
                        Code::KindMismatch,
                        format!("argument `{}` of `{what}` must name a label stream", spec.name),
                    )
                    .at(e.span, "not a label name");
                    self.diags.push(d);
                    false
                }
            },
            ArgKind::Sym(options) => {
                let chosen = match &e.kind {
                    ExprKind::Name(n) => match scope.get(n) {
                        Some(Value::Sym(s)) => s.clone(),
                        _ => n.clone(),
                    },
                    _ => {
                        let v = self.eval(scope, e);
                        self.diags.push(wrong(&v).at(e.span, "not an option name"));
                        return false;
                    }
                };
                if !options.contains(&chosen.as_str()) {
                    let mut d = Diagnostic::error(
                        Code::BadOption,
                        format!("`{chosen}` is not an option of `{}` in `{what}`", spec.name),
                    )
                    .at(e.span, format!("expected one of {}", options.join(", ")));
                    if let Some(h) = did_you_mean(&chosen, options.iter().copied()) {
                        d = d.with_help(h);
                    }
                    self.diags.push(d);
                    return false;
                }
                b.attrs.insert(spec.name.to_string(), Attr::Sym(chosen));
                b.attr_spans.insert(spec.name.to_string(), e.span);
                true
            }
            ArgKind::Table => match self.eval(scope, e) {
                Value::Instance(inst) if inst.callee == Callee::Op(Op::Embedding) && inst.name.is_some() => {
                    let name = inst.name.clone().unwrap_or_default();
                    let vocab = attr_dim(&inst.attrs, "vocab");
                    let dim = attr_dim(&inst.attrs, "dim");
                    self.register_instance(
                        &name,
                        Op::Embedding,
                        &inst.attrs,
                        vec![("table".into(), vec![vocab.clone(), dim.clone()], false)],
                    );
                    b.table = Some(TableArg { name, vocab, dim, span: e.span });
                    true
                }
                Value::Poison => false,
                v => {
                    self.diags.push(
                        wrong(&v)
                            .at(e.span, "not a named Embedding")
                            .with_help("bind the table first: `let items = Embedding(vocab: V, dim: D);`"),
                    );
                    false
                }
            },
            ArgKind::Int | ArgKind::Float | ArgKind::Bool | ArgKind::IntList => {
                let v = self.eval(scope, e);
                let attr = match (spec.kind, &v) {
                    (_, Value::Poison) => return false,
                    (ArgKind::Int, Value::Int(d)) => Attr::Int(d.clone()),
                    (ArgKind::Float, Value::Float(f)) => Attr::Float(*f),
                    (ArgKind::Float, Value::Int(d)) if d.as_constant().is_some() => {
                        Attr::Float(d.as_constant().unwrap_or(0) as f64)
                    }
                    (ArgKind::Bool, Value::Bool(x)) => Attr::Bool(*x),
                    (ArgKind::IntList, Value::List(items)) if items.iter().all(|i| matches!(i, Value::Int(_))) => {
                        Attr::List(items.iter().filter_map(Value::to_attr).collect())
                    }
                    (ArgKind::IntList, Value::List(items)) if items.iter().any(|i| matches!(i, Value::Poison)) => {
                        return false
                    }
                    _ => {
                        self.diags.push(wrong(&v).at(e.span, format!("expected {}", spec.kind.describe())));
                        return false;
                    }
                };
                b.attrs.insert(spec.name.to_string(), attr);
                b.attr_spans.insert(spec.name.to_string(), e.span);
                true
            }
        }
    }

    fn infer_op(
        &mut self,
        op: Op,
        span: Span,
        tensors: &[TensorArg],
        attrs: &BTreeMap<String, Attr>,
        attr_spans: &BTreeMap<String, Span>,
        table: Option<&TableArg>,
    ) -> Option<ops::shape::Inferred> {
        let notes = |d: &Dim| self.dim_notes(d);
        let eval = |d: &Dim| self.eval_dim(d).ok();
        let call = Call { op, span, tensors, attrs, attr_spans, table, dim_notes: &notes, eval: &eval };
        match infer(&call) {
            Ok(i) => Some(i),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    /// Applies a primitive (a function, or a configured constructor `inst`) to bound arguments.
    fn apply_op(&mut self, span: Span, op: Op, b: Bound, inst: Option<Instance>) -> Value {
        let inferred = match self.infer_op(op, span, &b.tensors, &b.attrs, &b.attr_spans, b.table.as_ref()) {
            Some(i) => i,
            None => return Value::Poison,
        };
        let mut attrs = b.attrs;
        let mut operands = b.operands;
        if let Some(t) = &b.table {
            attrs.insert("table".into(), Attr::Str(t.name.clone()));
        }
        let name = self.node_name(span, op.name());
        let mut instance = None;
        if let Some(inst) = inst {
            let owner = inst.name.clone().unwrap_or_else(|| {
                let relative = name.strip_prefix(&self.ctx.node_prefix).unwrap_or(&name).to_string();
                format!("{}{}", self.ctx.inst_prefix, relative)
            });
            match self.graph.instance(&owner) {
                Some(existing) if !same_params(&existing.params, &inferred.params) => {
                    let before: Vec<String> = existing
                        .params
                        .iter()
                        .map(|p| format!("{} {}", p.name, crate::types::shape_str(&p.shape)))
                        .collect();
                    let now: Vec<String> =
                        inferred.params.iter().map(|(n, s, _)| format!("{n} {}", crate::types::shape_str(s))).collect();
                    let d = Diagnostic::error(
                        Code::SharedWeightMismatch,
                        format!("`{owner}` shares its weights between applications, but its first application made weights {} and this one needs {}", before.join(", "), now.join(", ")),
                    )
                    .at(span, "applied to an input of another size")
                    .with_help("give this application its own instance, or make the inputs agree");
                    return self.error(d);
                }
                Some(_) => {}
                None => self.register_instance(&owner, op, &inst.attrs, inferred.params),
            }
            instance = Some(owner);
        }
        if op == Op::SampledLogits || op == Op::ItemLogits {
            operands.retain(|o| o.port != "table");
        }
        let ty = inferred.ty;
        if op.is_loss() {
            self.push_node(Node { name: name.clone(), op, attrs, operands, ty, instance });
            return Value::Loss(name);
        }
        self.push_node(Node { name: name.clone(), op, attrs, operands, ty: ty.clone(), instance });
        Value::Tensor(Tensor { ty, source: name })
    }

    fn register_instance(
        &mut self,
        name: &str,
        op: Op,
        attrs: &BTreeMap<String, Attr>,
        params: Vec<ops::shape::ParamShape>,
    ) {
        if self.graph.instance(name).is_some() {
            return;
        }
        let params = params
            .into_iter()
            .map(|(pname, shape, state)| {
                let count = shape
                    .iter()
                    .try_fold(1i64, |acc, d| self.eval_dim(d).ok().and_then(|v| acc.checked_mul(v)))
                    .unwrap_or(0);
                ParamTensor { name: pname, shape, count, state }
            })
            .collect();
        self.graph.instances.push(ir::Instance { name: name.to_string(), op, attrs: attrs.clone(), params });
    }

    fn node(
        &mut self,
        span: Span,
        op: Op,
        attrs: BTreeMap<String, Attr>,
        operands: Vec<Operand>,
        ty: TensorType,
        instance: Option<String>,
    ) -> Value {
        let name = self.node_name(span, op.name());
        self.push_node(Node { name: name.clone(), op, attrs, operands, ty: ty.clone(), instance });
        Value::Tensor(Tensor { ty, source: name })
    }

    fn push_node(&mut self, node: Node) {
        self.graph.nodes.push(node);
    }

    fn configure_block(&mut self, scope: &Scope, name: &str, args: &[Arg], span: Span) -> Value {
        let Some(block) = self.blocks.get(name).copied() else {
            return Value::Poison;
        };
        let mut values = BTreeMap::new();
        let mut ok = true;
        let mut positional = 0;
        for arg in args {
            let param = match &arg.name {
                Some(n) => block.params.iter().find(|p| p.name.name == n.name),
                None => {
                    positional += 1;
                    block.params.get(positional - 1)
                }
            };
            let Some(param) = param else {
                ok = false;
                let span = arg.name.as_ref().map_or(arg.value.span, |n| n.span);
                let label =
                    arg.name.as_ref().map_or("extra argument".to_string(), |n| format!("no parameter `{}`", n.name));
                let mut d = Diagnostic::error(Code::UnknownArgument, format!("block `{name}` has no such parameter"))
                    .at(span, label);
                let names: Vec<&str> = block.params.iter().map(|p| p.name.name.as_str()).collect();
                if let Some(h) = arg.name.as_ref().and_then(|n| did_you_mean(&n.name, names.iter().copied())) {
                    d = d.with_help(h);
                } else {
                    d = d.with_help(format!("parameters of `{name}`: {}", names.join(", ")));
                }
                self.diags.push(d);
                continue;
            };
            if values.contains_key(&param.name.name) {
                ok = false;
                self.diags.push(
                    Diagnostic::error(
                        Code::DuplicateArgument,
                        format!("parameter `{}` is given twice", param.name.name),
                    )
                    .at(arg.value.span, "given again"),
                );
                continue;
            }
            let v = match (&param.kind, &arg.value.kind) {
                (ValueKind::Symbol, ExprKind::Name(n)) => match scope.get(n) {
                    Some(Value::Sym(s)) => Value::Sym(s.clone()),
                    _ => Value::Sym(n.clone()),
                },
                _ => self.eval(scope, &arg.value),
            };
            match self.fit_param(param, v, arg.value.span) {
                Some(v) => {
                    values.insert(param.name.name.clone(), v);
                }
                None => ok = false,
            }
        }
        for p in &block.params {
            if values.contains_key(&p.name.name) {
                continue;
            }
            match &p.default {
                Some(d) => {
                    let v = match (&p.kind, &d.kind) {
                        (ValueKind::Symbol, ExprKind::Name(n)) => Value::Sym(n.clone()),
                        _ => self.eval(&Scope::new(), d),
                    };
                    if let Some(v) = self.fit_param(p, v, d.span) {
                        values.insert(p.name.name.clone(), v);
                    }
                }
                None => {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            Code::MissingArgument,
                            format!("block `{name}` needs parameter `{}`", p.name.name),
                        )
                        .at(span, format!("missing `{}`", p.name.name))
                        .with_label(p.name.span, "declared here without a default"),
                    );
                }
            }
        }
        if !ok {
            return Value::Poison;
        }
        Value::Instance(Box::new(Instance {
            callee: Callee::Block(name.to_string()),
            name: None,
            attrs: BTreeMap::new(),
            block_args: values,
        }))
    }

    fn fit_param(&mut self, p: &ast::ParamDecl, v: Value, span: Span) -> Option<Value> {
        let fits = match (p.kind, &v) {
            (_, Value::Poison) => return None,
            (ValueKind::Int, Value::Int(_))
            | (ValueKind::Float, Value::Float(_))
            | (ValueKind::Bool, Value::Bool(_))
            | (ValueKind::Symbol, Value::Sym(_))
            | (ValueKind::List, Value::List(_)) => true,
            (ValueKind::Float, Value::Int(d)) if d.as_constant().is_some() => {
                return Some(Value::Float(d.as_constant().unwrap_or(0) as f64))
            }
            _ => false,
        };
        if fits {
            return Some(v);
        }
        let msg = format!("parameter `{}` is {} but got {}", p.name.name, p.kind.name(), v.describe());
        self.error(
            Diagnostic::error(Code::KindMismatch, msg)
                .at(span, format!("expected {}", p.kind.name()))
                .with_label(p.name.span, "declared here"),
        );
        None
    }

    fn apply_block(&mut self, scope: &Scope, span: Span, name: &str, inst: Instance, args: &[Arg]) -> Value {
        let Some(block) = self.blocks.get(name).copied() else {
            return Value::Poison;
        };
        if self.block_stack.iter().any(|b| b == name) {
            // The resolver reported the cycle.
            return Value::Poison;
        }
        // Bind ports.
        let mut inputs: BTreeMap<String, (Tensor, Span)> = BTreeMap::new();
        let mut ok = true;
        let mut positional = 0;
        for arg in args {
            let port = match &arg.name {
                Some(n) => block.ports.iter().find(|p| p.name.name == n.name),
                None => {
                    positional += 1;
                    block.ports.get(positional - 1)
                }
            };
            let Some(port) = port else {
                ok = false;
                let label = arg.name.as_ref().map_or("extra input".to_string(), |n| format!("no input `{}`", n.name));
                let ports: Vec<&str> = block.ports.iter().map(|p| p.name.name.as_str()).collect();
                self.diags.push(
                    Diagnostic::error(Code::UnknownArgument, format!("block `{name}` has no such input"))
                        .at(arg.name.as_ref().map_or(arg.value.span, |n| n.span), label)
                        .with_help(format!("inputs of `{name}`: {}", ports.join(", "))),
                );
                continue;
            };
            match self.eval(scope, &arg.value) {
                Value::Tensor(t) => {
                    if inputs.insert(port.name.name.clone(), (t, arg.value.span)).is_some() {
                        ok = false;
                        self.diags.push(
                            Diagnostic::error(
                                Code::DuplicateArgument,
                                format!("input `{}` is given twice", port.name.name),
                            )
                            .at(arg.value.span, "given again"),
                        );
                    }
                }
                Value::Poison => ok = false,
                v => {
                    ok = false;
                    self.diags.push(
                        Diagnostic::error(
                            Code::KindMismatch,
                            format!(
                                "input `{}` of block `{name}` must be a tensor, found {}",
                                port.name.name,
                                v.describe()
                            ),
                        )
                        .at(arg.value.span, "not a tensor"),
                    );
                }
            }
        }
        if !ok {
            return Value::Poison;
        }
        let missing: Vec<&str> =
            block.ports.iter().filter(|p| !inputs.contains_key(&p.name.name)).map(|p| p.name.name.as_str()).collect();
        if !missing.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("block `{name}` is missing input {}", missing.join(", ")),
                )
                .at(span, "missing inputs"),
            );
            return Value::Poison;
        }
        if !ok {
            return Value::Poison;
        }
        // The block's own scope: parameters, then dimension variables bound by matching ports.
        let mut inner = Scope::new();
        inner.insert(crate::resolve::BATCH.to_string(), Value::Int(Dim::sym(crate::resolve::BATCH)));
        for (k, v) in &inst.block_args {
            inner.insert(k.clone(), v.clone());
        }
        for port in &block.ports {
            let (t, arg_span) = inputs[&port.name.name].clone();
            if !self.match_port(&mut inner, name, port, &t, arg_span) {
                ok = false;
            }
        }
        if !ok {
            return Value::Poison;
        }
        for port in &block.ports {
            let (t, _) = inputs[&port.name.name].clone();
            inner.insert(port.name.name.clone(), Value::Tensor(t));
        }
        let app_name = self.node_name(span, name);
        self.node_names.remove(&app_name);
        let owner = inst.name.clone().unwrap_or_else(|| {
            let relative = app_name.strip_prefix(&self.ctx.node_prefix).unwrap_or(&app_name).to_string();
            format!("{}{}", self.ctx.inst_prefix, relative)
        });
        let saved = self.ctx.clone();
        self.ctx.node_prefix = format!("{app_name}/");
        self.ctx.inst_prefix = format!("{owner}/");
        self.block_stack.push(name.to_string());
        let first_diag = self.diags.len();
        let mut result = Value::Poison;
        for stmt in &block.body {
            match &stmt.kind {
                ast::StmtKind::Let { name: n, value } => {
                    let v = self.binding(&n.name, value, &inner);
                    inner.insert(n.name.clone(), v);
                }
                ast::StmtKind::Return { value } => {
                    self.ctx.binding = app_name.clone();
                    self.ctx.root = value.span;
                    result = self.eval(&inner, value);
                }
                // Other statements are misplaced in blocks (reported by the resolver).
                _ => {}
            }
        }
        self.block_stack.pop();
        self.ctx = saved;
        let result = self.check_return(block, &inner, result);
        for d in &mut self.diags[first_diag..] {
            d.secondary.push(crate::diag::SpanLabel { span, message: format!("in this application of `{name}`") });
        }
        result
    }

    /// Binds dimension variables of a port type to the argument's dims, or checks them.
    fn match_port(&mut self, inner: &mut Scope, block: &str, port: &ast::Port, t: &Tensor, arg_span: Span) -> bool {
        if port.ty.dtype != t.ty.dtype {
            let d = Diagnostic::error(
                Code::DTypeMismatch,
                format!(
                    "input `{}` of block `{block}` must be {}, found {}",
                    port.name.name,
                    port.ty.dtype.name(),
                    t.ty
                ),
            )
            .at(arg_span, format!("this is {}", t.ty))
            .with_label(port.ty.span, "declared here");
            self.error(d);
            return false;
        }
        if port.ty.dims.len() != t.ty.rank() {
            let d = Diagnostic::error(
                Code::RankMismatch,
                format!(
                    "input `{}` of block `{block}` needs {} axes, found {}",
                    port.name.name,
                    port.ty.dims.len(),
                    t.ty
                ),
            )
            .at(arg_span, format!("{} axes", t.ty.rank()))
            .with_label(port.ty.span, "declared here");
            self.error(d);
            return false;
        }
        for (i, (expr, actual)) in port.ty.dims.iter().zip(&t.ty.shape).enumerate() {
            let expected = match &expr.kind {
                ExprKind::Name(n) if !inner.contains_key(n) => {
                    inner.insert(n.clone(), Value::Int(actual.clone()));
                    continue;
                }
                _ => match self.eval(inner, expr) {
                    Value::Int(d) => d,
                    _ => return false,
                },
            };
            if &expected != actual {
                let d = Diagnostic::error(
                    Code::ShapeMismatch,
                    format!(
                        "axis {i} of input `{}` of block `{block}` must be {expected}, found {actual}",
                        port.name.name
                    ),
                )
                .at(arg_span, format!("this is {}", t.ty))
                .with_label(expr.span, format!("expects {expected}"));
                let d = self.dim_note_diag(d, actual);
                self.error(d);
                return false;
            }
        }
        true
    }

    fn check_return(&mut self, block: &ast::BlockDef, inner: &Scope, result: Value) -> Value {
        let t = match &result {
            Value::Tensor(t) => t.clone(),
            Value::Poison => return Value::Poison,
            other => {
                let msg = format!("block `{}` must return a tensor, found {}", block.name.name, other.describe());
                return self
                    .error(Diagnostic::error(Code::ReturnMismatch, msg).at(block.ret.span, "declared return type"));
            }
        };
        let Some(expected) = self.tensor_type(inner, &block.ret) else {
            return Value::Poison;
        };
        if expected.dtype != t.ty.dtype || expected.shape != t.ty.shape {
            let ret_span = block
                .body
                .iter()
                .rev()
                .find(|s| matches!(s.kind, ast::StmtKind::Return { .. }))
                .map_or(block.span, |s| s.span);
            let d = Diagnostic::error(
                Code::ReturnMismatch,
                format!("block `{}` returns {} but declares {}", block.name.name, t.ty, expected),
            )
            .at(ret_span, format!("returns {}", t.ty))
            .with_label(block.ret.span, format!("declared {expected}"));
            return self.error(d);
        }
        result
    }
}

fn attr_dim(attrs: &BTreeMap<String, Attr>, name: &str) -> Dim {
    match attrs.get(name) {
        Some(Attr::Int(d)) => d.clone(),
        _ => Dim::default(),
    }
}

fn same_params(a: &[ParamTensor], b: &[ops::shape::ParamShape]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, (name, shape, _))| &x.name == name && &x.shape == shape)
}

fn signature_text(specs: &[ArgSpec]) -> String {
    specs
        .iter()
        .map(|s| match s.default {
            ops::Default::Required => format!("{}: {}", s.name, s.kind.describe()),
            _ => format!("{}?", s.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
