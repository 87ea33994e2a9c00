//! Expression evaluation: arithmetic, field access, argument binding, op and block application.

use super::args::Bound;
use super::hover::HoverInfo;
use super::value::{Callee, Instance, Tensor, Value};
use super::{scalar_attr, Checker, Scope};
use crate::ast::{self, Arg, BinOp, DType, Expr, ExprKind};
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::dim::Dim;
use crate::ir::{self, Attr, InputRole, Node, Operand, ParamTensor};
use crate::ops::shape::{infer, Call, TableArg, TensorArg};
use crate::ops::{self, Op, LAYERS, MAX_LAYERS, SELECT};
use crate::source::Span;
use crate::types::{Range, TensorType};
use std::collections::BTreeMap;

impl Checker<'_> {
    /// Evaluates an expression and records its value for hovers.
    pub(super) fn eval(&mut self, scope: &Scope, e: &Expr) -> Value {
        let v = self.eval_expr(scope, e);
        self.record(e.span, &v);
        v
    }

    fn eval_expr(&mut self, scope: &Scope, e: &Expr) -> Value {
        match &e.kind {
            ExprKind::Int(v) => Value::Int(Dim::constant(*v)),
            ExprKind::Float(v) if !v.is_finite() => self.error(
                Diagnostic::error(Code::BadValue, "this number is too large for a 64-bit float")
                    .at(e.span, "overflows to infinity")
                    .with_help("floats must be finite; the largest is about 1.8e308"),
            ),
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

    pub(super) fn dtype_error(&mut self, op: &str, t: &Tensor, span: Span) -> Value {
        let d = Diagnostic::error(Code::DTypeMismatch, format!("`{op}` needs float tensors, found {}", t.ty))
            .at(span, format!("this is {}", t.ty))
            .with_help(if t.ty.dtype == DType::Id { "embed ids first" } else { "convert with to_float(...)" });
        self.error(d)
    }

    fn binary(&mut self, span: Span, op: BinOp, (a, sa): (Value, Span), (b, sb): (Value, Span)) -> Value {
        let ir_op = operator_op(op);
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
                let v = match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                };
                if !v.is_finite() {
                    return self.error(
                        Diagnostic::error(Code::BadValue, format!("this arithmetic gives {v}, not a finite number"))
                            .at(span, if y == 0.0 && op == BinOp::Div { "division by zero" } else { "not finite" }),
                    );
                }
                Value::Float(v)
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
        let ir_op = operator_op(op);
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
        if matches!(&callee.kind, ExprKind::Name(n) if n == SELECT && !scope.contains_key(n)) {
            return self.select(scope, e, args);
        }
        if matches!(&callee.kind, ExprKind::Name(n) if n == LAYERS && !scope.contains_key(n)) {
            return self.layers(scope, e, args);
        }
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
            Value::Instance(inst) => self.apply_instance(scope, e, callee.span, *inst, args),
            Value::Layers(layers) => self.apply_layers(scope, e, callee.span, *layers, args),
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

    /// Applies a configured instance; `callee_span` is where it is named (for hovers).
    fn apply_instance(&mut self, scope: &Scope, e: &Expr, callee_span: Span, inst: Instance, args: &[Arg]) -> Value {
        match inst.callee.clone() {
            Callee::Op(op) => {
                let Some(mut b) = self.bind(scope, op.name(), op.inputs(), args, e.span) else {
                    return Value::Poison;
                };
                b.attrs = inst.attrs.clone();
                self.apply_op(e.span, op, b, Some((inst, callee_span)))
            }
            Callee::Block(name) => self.apply_block(scope, (e.span, callee_span), &name, inst, args),
        }
    }

    /// `layers(n, Component(config))`: the count and the component, checked; applying the value
    /// makes the copies ([`Self::apply_layers`]).
    fn layers(&mut self, scope: &Scope, e: &Expr, args: &[Arg]) -> Value {
        const USAGE: &str = "write `layers(n, Component(config))`, e.g. `layers(2, SelfAttention(heads: 4))`";
        let [count, component] = args else {
            return self.error(
                Diagnostic::error(
                    Code::MissingArgument,
                    format!("`layers` takes a count and a configured component, found {} arguments", args.len()),
                )
                .at(e.span, "two arguments expected")
                .with_help(USAGE),
            );
        };
        if let Some(n) = count.name.as_ref().or(component.name.as_ref()) {
            return self.error(
                Diagnostic::error(Code::UnknownArgument, format!("`layers` has no argument `{}`", n.name))
                    .at(n.span, "arguments of `layers` are positional")
                    .with_help(USAGE),
            );
        }
        let n = match self.eval(scope, &count.value) {
            Value::Int(d) => match d.as_constant() {
                Some(k) if (0..=MAX_LAYERS).contains(&k) => k as usize,
                Some(k) => {
                    return self.error(
                        Diagnostic::error(Code::BadValue, format!("`layers` makes 0 to {MAX_LAYERS} copies, not {k}"))
                            .at(count.value.span, "out of range"),
                    )
                }
                None => {
                    return self.error(
                        Diagnostic::error(Code::BadValue, format!("the count of `layers` must be known, found `{d}`"))
                            .at(count.value.span, "depends on the batch"),
                    )
                }
            },
            Value::Poison => return Value::Poison,
            other => {
                let msg = format!("the count of `layers` is an integer, found {}", other.describe());
                return self.error(Diagnostic::error(Code::KindMismatch, msg).at(count.value.span, "not an integer"));
            }
        };
        match self.eval(scope, &component.value) {
            Value::Instance(inst) if inst.name.is_none() => {
                Value::Layers(Box::new(super::value::Layers { count: n, proto: *inst, name: None }))
            }
            Value::Poison => Value::Poison,
            other => {
                let (label, help) = match &other {
                    Value::Instance(_) => (
                        "an instance with weights of its own",
                        "`layers` makes new copies: configure the component here, e.g. `layers(2, Linear(out: D))`",
                    ),
                    Value::Callable(_) => ("not configured", "call it with its configuration: `Name(...)` or `Name()`"),
                    _ => ("not a component", USAGE),
                };
                let msg = format!("`layers` repeats a configured component, found {}", other.describe());
                self.error(Diagnostic::error(Code::KindMismatch, msg).at(component.value.span, label).with_help(help))
            }
        }
    }

    /// Applies `count` copies of a component in sequence: copy k is named `BINDING/layerK` (its
    /// weights too, or `NAME/layerK` when the layers were bound by `let`), and gets the output of
    /// copy k-1 as its first input and the other arguments as given. The arguments are evaluated
    /// once, before the first copy.
    fn apply_layers(
        &mut self,
        scope: &Scope,
        e: &Expr,
        callee_span: Span,
        layers: super::value::Layers,
        args: &[Arg],
    ) -> Value {
        // Evaluated arguments are bound to names a spec cannot write; the first one is then
        // rebound to each copy's output.
        let hidden = |i: usize| format!("%input{i}");
        if args.is_empty() {
            return self
                .error(Diagnostic::error(Code::MissingArgument, "layers need an input").at(e.span, "no input given"));
        }
        let mut scope = scope.clone();
        let mut args = args.to_vec();
        for (i, a) in args.iter_mut().enumerate() {
            match self.eval(&scope, &a.value) {
                Value::Poison => return Value::Poison,
                v @ Value::Tensor(_) => {
                    scope.insert(hidden(i), v);
                    a.value = Expr { kind: ExprKind::Name(hidden(i)), span: a.value.span };
                }
                // Reported by the first copy's application.
                _ => {}
            }
        }
        if layers.count == 0 {
            return self.eval(&scope, &args[0].value);
        }
        let saved = self.ctx.clone();
        let mut out = Value::Poison;
        for k in 1..=layers.count {
            self.ctx.binding = format!("{}/layer{k}", saved.binding);
            self.ctx.root = e.span;
            let mut inst = layers.proto.clone();
            inst.name = layers.name.as_ref().map(|n| format!("{n}/layer{k}"));
            let first_diag = self.diags.len();
            out = self.apply_instance(&scope, e, callee_span, inst, &args);
            if k > 1 {
                let input = match scope.get(&hidden(0)) {
                    Some(Value::Tensor(t)) => format!(" ({})", t.ty),
                    _ => String::new(),
                };
                for d in &mut self.diags[first_diag..] {
                    d.secondary.push(crate::diag::SpanLabel {
                        span: e.span,
                        message: format!(
                            "in layer {k} of {}, applied to the output of layer {}{input}",
                            layers.count,
                            k - 1
                        ),
                    });
                }
            }
            match &out {
                Value::Tensor(_) => {}
                Value::Poison => break,
                other => {
                    let msg = format!("layers must make tensors, but layer {k} made {}", other.describe());
                    out = self.error(Diagnostic::error(Code::KindMismatch, msg).at(e.span, "not a tensor"));
                    break;
                }
            }
            scope.insert(hidden(0), out.clone());
            args[0].value.kind = ExprKind::Name(hidden(0));
        }
        self.ctx = saved;
        out
    }

    /// `select(option, a: expr, b: expr, ...)`: elaborates only the branch named by the option's
    /// value, so a symbol parameter switches structure (`--set encoder=attention`). The other
    /// branches are name-resolved but never built.
    fn select(&mut self, scope: &Scope, e: &Expr, args: &[Arg]) -> Value {
        let Some((first, branches)) = args.split_first().filter(|(f, _)| f.name.is_none()) else {
            return self.error(
                Diagnostic::error(Code::BadOption, "`select` needs an option value first")
                    .at(e.span, "write select(option, name: expr, ...)"),
            );
        };
        let mut names: Vec<&str> = vec![];
        for b in branches {
            let Some(n) = &b.name else {
                return self.error(
                    Diagnostic::error(Code::BadOption, "every branch of `select` is named by an option")
                        .at(b.value.span, "unnamed branch")
                        .with_help("write `option_name: expression`"),
                );
            };
            if names.contains(&n.name.as_str()) {
                return self.error(
                    Diagnostic::error(Code::BadOption, format!("branch `{}` appears twice", n.name))
                        .at(n.span, "second branch of this name"),
                );
            }
            names.push(&n.name);
        }
        let chosen = match self.eval(scope, &first.value) {
            Value::Sym(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Poison => return Value::Poison,
            other => {
                return self.error(
                    Diagnostic::error(
                        Code::BadOption,
                        format!("`select` chooses by an option or bool, found {}", other.describe()),
                    )
                    .at(first.value.span, "not an option"),
                )
            }
        };
        let Some(branch) = branches.iter().find(|b| b.name.as_ref().is_some_and(|n| n.name == chosen)) else {
            return self.error(
                Diagnostic::error(Code::BadOption, format!("`select` has no branch for `{chosen}`"))
                    .at(first.value.span, format!("is `{chosen}`"))
                    .with_help(match did_you_mean(&chosen, names.iter().copied()) {
                        Some(h) => format!("{h} (branches: {})", names.join(", ")),
                        None => format!("branches: {}", names.join(", ")),
                    }),
            );
        };
        // The chosen expression takes the place of the whole `select` for node naming.
        if self.ctx.root == e.span {
            self.ctx.root = branch.value.span;
        }
        self.eval(scope, &branch.value)
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

    /// Applies a primitive (a function, or a configured constructor `inst`, written at the
    /// span paired with it) to bound arguments.
    fn apply_op(&mut self, span: Span, op: Op, b: Bound, inst: Option<(Instance, Span)>) -> Value {
        let inferred = match self.infer_op(op, span, &b.tensors, &b.attrs, &b.attr_spans, b.table.as_ref()) {
            Some(i) => i,
            None => return Value::Poison,
        };
        if let Some(d) = batch_dependent(op, span, &inferred) {
            return self.error(d);
        }
        let mut attrs = b.attrs;
        let mut operands = b.operands;
        if let Some(t) = &b.table {
            attrs.insert("table".into(), Attr::Str(t.name.clone()));
        }
        let name = self.node_name(span, op.name());
        let mut instance = None;
        if let Some((inst, inst_span)) = inst {
            let owner = inst.name.clone().unwrap_or_else(|| self.anonymous_owner(&name));
            let info = HoverInfo::Instance { callee: op.name().to_string(), owner: Some(owner.clone()) };
            self.hover.push(inst_span, info, &self.ctx.node_prefix);
            match self.graph.instance(&owner) {
                Some(existing) if !same_params(&existing.params, &inferred.params) => {
                    let before: Vec<String> = existing
                        .params
                        .iter()
                        .map(|p| format!("{} {}", p.name, crate::types::shape_str(&p.shape)))
                        .collect();
                    let now: Vec<String> = inferred
                        .params
                        .iter()
                        .map(|p| format!("{} {}", p.name, crate::types::shape_str(&p.shape)))
                        .collect();
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

    pub(super) fn register_instance(
        &mut self,
        name: &str,
        op: Op,
        attrs: &BTreeMap<String, Attr>,
        params: Vec<ops::shape::ParamSpec>,
    ) {
        if self.graph.instance(name).is_some() {
            return;
        }
        let params = params
            .into_iter()
            .map(|p| {
                let count = p
                    .shape
                    .iter()
                    .try_fold(1i64, |acc, d| self.eval_dim(d).ok().and_then(|v| acc.checked_mul(v)))
                    .unwrap_or(0);
                ParamTensor { name: p.name, shape: p.shape, count, state: p.state, init: p.init }
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
}

fn same_params(a: &[ParamTensor], b: &[ops::shape::ParamSpec]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.name == y.name && x.shape == y.shape)
}

/// A weight whose shape depends on the batch, or an output that grows faster than linearly
/// with it: neither can be laid out before a batch arrives.
fn batch_dependent(op: Op, span: Span, inferred: &ops::shape::Inferred) -> Option<Diagnostic> {
    use crate::dim::BATCH;
    if let Some(p) = inferred.params.iter().find(|p| p.shape.iter().any(|d| d.symbols().iter().any(|s| s == BATCH))) {
        let shape = crate::types::shape_str(&p.shape);
        return Some(
            Diagnostic::error(
                Code::BatchDependentSize,
                format!("{}: weight `{}` would be {shape}, which depends on the batch size {BATCH}", op.name(), p.name),
            )
            .at(span, "weights are sized before any batch arrives")
            .with_help("size weights with dims (`dim D = 64;`), never with B"),
        );
    }
    if inferred.ty.shape.iter().any(|d| !d.linear_in(BATCH)) {
        return Some(
            Diagnostic::error(
                Code::BatchDependentSize,
                format!(
                    "{}: the result {} grows faster than linearly with the batch size {BATCH}",
                    op.name(),
                    inferred.ty
                ),
            )
            .at(span, "this size is not of the form a*B + c"),
        );
    }
    None
}

/// The IR op an arithmetic operator lowers to.
fn operator_op(op: BinOp) -> Op {
    match op {
        BinOp::Add => Op::Add,
        BinOp::Sub => Op::Sub,
        BinOp::Mul => Op::Mul,
        BinOp::Div => Op::Div,
    }
}
