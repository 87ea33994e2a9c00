//! One shape rule per op: from argument types and attributes to the output type and the
//! parameter tensors the op owns. The graph builder calls [`infer`] for every node, so a graph
//! with inconsistent shapes cannot be built.

use super::Op;
use crate::ast::DType;
use crate::diag::{Code, Diagnostic, SpanLabel};
use crate::dim::Dim;
use crate::ir::Attr;
use crate::source::Span;
use crate::types::{Range, TensorType};
use std::collections::BTreeMap;

/// A tensor argument as the rule sees it.
#[derive(Clone, Debug)]
pub struct TensorArg {
    pub port: &'static str,
    pub ty: TensorType,
    pub span: Span,
}

/// The embedding table passed to `item_logits` / `sampled_logits`.
#[derive(Clone, Debug)]
pub struct TableArg {
    pub name: String,
    pub vocab: Dim,
    pub dim: Dim,
    pub span: Span,
}

/// Everything a shape rule may look at.
pub struct Call<'a> {
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

/// A parameter tensor: name, shape, and whether it is persistent state rather than trained.
pub type ParamShape = (String, Vec<Dim>, bool);

/// The result of a shape rule.
pub struct Inferred {
    pub ty: TensorType,
    pub params: Vec<ParamShape>,
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
            [b] => *b == Dim::sym("B"),
            [b, one] => *b == Dim::sym("B") && *one == c(1),
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

fn p(name: &str, shape: Vec<Dim>) -> ParamShape {
    (name.to_string(), shape, false)
}

fn with_last(shape: &[Dim], last: Dim) -> Vec<Dim> {
    let mut s = shape.to_vec();
    if let Some(l) = s.last_mut() {
        *l = last;
    }
    s
}

fn act_range(act: &str) -> Range {
    match act {
        "sigmoid" => Range::UNIT,
        "relu" => Range { lo: 0.0, hi: f64::INFINITY },
        "tanh" => Range { lo: -1.0, hi: 1.0 },
        _ => Range::ANY,
    }
}

/// The shape rule of every op.
pub fn infer(call: &Call) -> R<Inferred> {
    use Op::*;
    match call.op {
        Add | Sub | Mul | Div => {
            let (a, b) = (call.t("a"), call.t("b"));
            call.float_arg(a)?;
            call.float_arg(b)?;
            call.same_shape(a, b)?;
            out(TensorType::float(a.ty.shape.clone()))
        }
        Neg => {
            let x = call.t("x");
            call.float_arg(x)?;
            out(TensorType::float(x.ty.shape.clone()).with_range(x.ty.range.negate()))
        }
        Concat => {
            let xs = call.all("xs");
            let first = xs[0];
            let axis = call.axis("axis", first.ty.rank())?;
            let mut total = Dim::default();
            let mut range = first.ty.range;
            for x in &xs {
                if first.ty.dtype == DType::Mask {
                    call.dtype_arg(x, DType::Mask)?;
                } else {
                    call.float_arg(x)?;
                }
                if x.ty.rank() != first.ty.rank() {
                    return Err(call
                        .err(
                            Code::RankMismatch,
                            format!("all inputs need {} axes like the first, found {}", first.ty.rank(), x.ty),
                        )
                        .at(x.span, format!("{} axes", x.ty.rank()))
                        .with_label(first.span, format!("{} axes", first.ty.rank())));
                }
                for (i, (d0, d)) in first.ty.shape.iter().zip(&x.ty.shape).enumerate() {
                    if i != axis && d0 != d {
                        return Err(call.mismatch(
                            &format!("inputs must agree on axis {i} (all but the concat axis {axis})"),
                            first,
                            d0,
                            x,
                            d,
                        ));
                    }
                }
                total = total.add(&x.ty.shape[axis]);
                range = range.hull(x.ty.range);
            }
            let mut shape = first.ty.shape.clone();
            shape[axis] = total;
            if first.ty.dtype == DType::Mask {
                return out(TensorType::mask(shape));
            }
            out(TensorType::float(shape).with_range(range))
        }
        Stack => {
            let xs = call.all("xs");
            let first = xs[0];
            let axis = call.axis("axis", first.ty.rank() + 1)?;
            let mut range = first.ty.range;
            for x in &xs {
                call.float_arg(x)?;
                call.same_shape(first, x)?;
                range = range.hull(x.ty.range);
            }
            let mut shape = first.ty.shape.clone();
            shape.insert(axis, c(xs.len() as i64));
            out(TensorType::float(shape).with_range(range))
        }
        Slice => {
            let x = call.t("x");
            let axis = call.axis("axis", x.ty.rank())?;
            let (start, len) = (call.dim("start"), call.dim("len"));
            call.positive("len", &len)?;
            if let (Some(s), Some(l), Some(n)) =
                (start.as_constant(), len.as_constant(), x.ty.shape[axis].as_constant())
            {
                if s < 0 || s + l > n {
                    return Err(call
                        .err(Code::BadValue, format!("slice {s}..{} is outside axis {axis} of size {n}", s + l))
                        .at(call.span, "out of bounds"));
                }
            }
            let mut ty = x.ty.clone();
            ty.shape[axis] = len;
            ty.distribution = false;
            out(ty)
        }
        Index => {
            let x = call.t("x");
            let axis = call.axis("axis", x.ty.rank())?;
            let i = call.dim("index");
            if let (Some(i), Some(n)) = (i.as_constant(), x.ty.shape[axis].as_constant()) {
                if i < 0 || i >= n {
                    return Err(call
                        .err(Code::BadValue, format!("index {i} is outside axis {axis} of size {n}"))
                        .at(call.attr_span("index"), "out of bounds"));
                }
            }
            let mut ty = x.ty.clone();
            ty.shape.remove(axis);
            ty.distribution &= axis + 1 < x.ty.rank();
            out(ty)
        }
        Repeat => {
            let x = call.t("x");
            let axis = call.axis("axis", x.ty.rank() + 1)?;
            let n = call.dim("n");
            call.positive("n", &n)?;
            let mut ty = x.ty.clone();
            ty.shape.insert(axis, n);
            out(ty)
        }
        Unsqueeze => {
            let x = call.t("x");
            let axis = call.axis("axis", x.ty.rank() + 1)?;
            let mut ty = x.ty.clone();
            ty.shape.insert(axis, c(1));
            out(ty)
        }
        Squeeze => {
            let x = call.t("x");
            let axis = call.axis("axis", x.ty.rank())?;
            if x.ty.shape[axis] != c(1) {
                return Err(call
                    .err(Code::ShapeMismatch, format!("axis {axis} has size {}, not 1", x.ty.shape[axis]))
                    .at(x.span, format!("x is {}", x.ty)));
            }
            let mut ty = x.ty.clone();
            ty.shape.remove(axis);
            out(ty)
        }
        Flatten => {
            let x = call.t("x");
            let from = call.axis("from", x.ty.rank())?;
            let mut ty = x.ty.clone();
            let merged = x.ty.shape[from..].iter().fold(c(1), |acc, d| acc.mul(d));
            ty.shape.truncate(from);
            ty.shape.push(merged);
            ty.distribution = false;
            out(ty)
        }
        FullMask => {
            let x = call.t("x");
            call.min_rank(x, 2)?;
            out(TensorType::mask(x.ty.shape[..x.ty.rank() - 1].to_vec()))
        }
        ToFloat => {
            let x = call.t("x");
            let range = if x.ty.dtype == DType::Mask { Range::UNIT } else { Range::ANY };
            out(TensorType::float(x.ty.shape.clone()).with_range(range))
        }
        Sigmoid | Relu | Tanh => {
            let x = call.t("x");
            call.float_arg(x)?;
            out(TensorType::float(x.ty.shape.clone()).with_range(act_range(&call.op.name().to_ascii_lowercase())))
        }
        Softmax => {
            let x = call.t("x");
            call.float_arg(x)?;
            let axis = call.axis("axis", x.ty.rank())?;
            let mut ty = TensorType::float(x.ty.shape.clone()).with_range(Range::UNIT);
            ty.distribution = axis + 1 == x.ty.rank();
            out(ty)
        }
        MaskedSoftmax => {
            let (x, mask) = (call.t("x"), call.t("mask"));
            call.float_arg(x)?;
            call.dtype_arg(mask, DType::Mask)?;
            if x.ty.shape != mask.ty.shape {
                return Err(call
                    .err(Code::ShapeMismatch, format!("`x` is {} but `mask` is {}; they must match", x.ty, mask.ty))
                    .at(mask.span, format!("mask is {}", mask.ty))
                    .with_label(x.span, format!("x is {}", x.ty)));
            }
            let mut ty = TensorType::float(x.ty.shape.clone()).with_range(Range::UNIT);
            ty.distribution = true;
            out(ty)
        }
        Dropout => {
            let x = call.t("x");
            call.float_arg(x)?;
            call.rate("rate")?;
            let range = if x.ty.range.lo >= 0.0 { Range { lo: 0.0, hi: f64::INFINITY } } else { Range::ANY };
            out(TensorType::float(x.ty.shape.clone()).with_range(range))
        }
        Pool => {
            let (x, mask) = (call.t("x"), call.t("mask"));
            call.float_arg(x)?;
            call.min_rank(x, 3)?;
            call.seq_mask(x, mask)?;
            let mut shape = x.ty.shape.clone();
            shape.remove(1);
            let range = if call.sym("mode") == "sum" { Range::ANY } else { x.ty.range };
            if call.sym("mode") == "max" && call.sym("padding") == "include" {
                return Err(call
                    .err(Code::BadOption, "max pooling cannot include padding")
                    .at(call.attr_span("padding"), "use padding: exclude"));
            }
            out(TensorType::float(shape).with_range(range))
        }
        AttentionPool => {
            let (v, s, mask) = (call.t("values"), call.t("scores"), call.t("mask"));
            call.float_arg(v)?;
            call.float_arg(s)?;
            call.rank(v, 3, "[B, N, D]")?;
            call.rank(s, 2, "[B, N]")?;
            for i in 0..2 {
                if v.ty.shape[i] != s.ty.shape[i] {
                    return Err(call.mismatch(
                        &format!("scores must score every value (axis {i})"),
                        v,
                        &v.ty.shape[i],
                        s,
                        &s.ty.shape[i],
                    ));
                }
            }
            call.seq_mask(v, mask)?;
            if call.float("temperature") <= 0.0 {
                return Err(call
                    .err(Code::BadValue, "`temperature` must be positive")
                    .at(call.attr_span("temperature"), "not positive"));
            }
            let range = if call.sym("norm") == "softmax" { v.ty.range } else { Range::ANY };
            out(TensorType::float(vec![v.ty.shape[0].clone(), v.ty.shape[2].clone()]).with_range(range))
        }
        ReduceSum | ReduceMean => {
            let x = call.t("x");
            call.float_arg(x)?;
            let axis = call.axis("axis", x.ty.rank())?;
            let mut shape = x.ty.shape.clone();
            shape.remove(axis);
            let range = if call.op == ReduceMean { x.ty.range } else { Range::ANY };
            out(TensorType::float(shape).with_range(range))
        }
        Dot | Cosine => {
            let (a, b) = (call.t("a"), call.t("b"));
            call.float_arg(a)?;
            call.float_arg(b)?;
            call.same_shape(a, b)?;
            let mut shape = a.ty.shape.clone();
            shape.pop();
            let range = if call.op == Cosine { Range { lo: -1.0, hi: 1.0 } } else { Range::ANY };
            out(TensorType::float(shape).with_range(range))
        }
        Project | Orthogonal => {
            let a = call.t("a");
            let b = call.opt_t("onto").or_else(|| call.opt_t("to")).expect("bound tensor port");
            call.float_arg(a)?;
            call.float_arg(b)?;
            call.same_shape(a, b)?;
            out(TensorType::float(a.ty.shape.clone()))
        }
        Fm => {
            let x = call.t("x");
            call.float_arg(x)?;
            call.rank(x, 3, "[B, F, D]")?;
            let last =
                if matches!(call.attrs.get("reduce"), Some(Attr::Bool(true))) { c(1) } else { x.ty.shape[2].clone() };
            out(TensorType::float(vec![x.ty.shape[0].clone(), last]))
        }
        ItemLogits | SampledLogits => {
            let s = call.t("s");
            call.float_arg(s)?;
            call.rank(s, 2, "[B, D]")?;
            let table = call.table.expect("bound table");
            if s.ty.shape[1] != table.dim {
                let d = call
                    .err(
                        Code::ShapeMismatch,
                        format!(
                            "the user state has {} but the item table `{}` has vectors of {}",
                            s.ty.shape[1], table.name, table.dim
                        ),
                    )
                    .at(s.span, format!("s is {}", s.ty))
                    .with_label(table.span, format!("`{}` has dim {}", table.name, table.dim));
                return Err(call.notes(d, &[&s.ty.shape[1], &table.dim]));
            }
            if call.op == ItemLogits {
                return out(TensorType::float(vec![s.ty.shape[0].clone(), table.vocab.clone()]));
            }
            let target = call.t("target");
            call.dtype_arg(target, DType::Id)?;
            call.per_example(target)?;
            check_vocab(call, target, &table.vocab, &table.name, table.span)?;
            let n = call.dim("samples");
            call.positive("samples", &n)?;
            out(TensorType::float(vec![s.ty.shape[0].clone(), c(1).add(&n)]))
        }
        Embedding => {
            let ids = call.t("ids");
            call.dtype_arg(ids, DType::Id)?;
            let (vocab, dim) = (call.dim("vocab"), call.dim("dim"));
            call.positive("vocab", &vocab)?;
            call.positive("dim", &dim)?;
            check_vocab(call, ids, &vocab, "this Embedding", call.attr_span("vocab"))?;
            let mut shape = ids.ty.shape.clone();
            shape.push(dim.clone());
            Ok(Inferred { ty: TensorType::float(shape), params: vec![p("table", vec![vocab, dim])] })
        }
        PositionEmbedding => {
            let x = call.t("x");
            call.float_arg(x)?;
            call.rank(x, 3, "[B, N, D]")?;
            let (len, dim) = (call.dim("len"), call.dim("dim"));
            if x.ty.shape[1] != len {
                let d = call
                    .err(
                        Code::ShapeMismatch,
                        format!("the sequence has {} positions but the table has len {}", x.ty.shape[1], len),
                    )
                    .at(x.span, format!("x is {}", x.ty))
                    .with_label(call.attr_span("len"), format!("len is {len}"));
                return Err(call.notes(d, &[&x.ty.shape[1], &len]));
            }
            let last = if call.sym("mode") == "concat" {
                x.ty.shape[2].add(&dim)
            } else {
                if x.ty.shape[2] != dim {
                    let d = call
                        .err(
                            Code::ShapeMismatch,
                            format!("mode add needs dim {} to equal the item dim {}", dim, x.ty.shape[2]),
                        )
                        .at(call.attr_span("dim"), format!("dim is {dim}"))
                        .with_label(x.span, format!("x is {}", x.ty));
                    return Err(call.notes(d, &[&x.ty.shape[2], &dim]));
                }
                dim.clone()
            };
            let shape = vec![x.ty.shape[0].clone(), x.ty.shape[1].clone(), last];
            Ok(Inferred { ty: TensorType::float(shape), params: vec![p("table", vec![len, dim])] })
        }
        Linear => {
            let x = call.t("x");
            call.float_arg(x)?;
            call.min_rank(x, 2)?;
            let (din, o) = (x.ty.shape.last().cloned().unwrap_or_default(), call.dim("out"));
            call.positive("out", &o)?;
            let mut params = vec![p("weight", vec![din, o.clone()])];
            if matches!(call.attrs.get("bias"), Some(Attr::Bool(true))) {
                params.push(p("bias", vec![o.clone()]));
            }
            Ok(Inferred { ty: TensorType::float(with_last(&x.ty.shape, o)), params })
        }
        Mlp => {
            let x = call.t("x");
            call.float_arg(x)?;
            call.min_rank(x, 2)?;
            call.rate("dropout")?;
            let units = call.dims("units");
            if units.is_empty() {
                return Err(call
                    .err(Code::BadValue, "`units` needs at least one layer")
                    .at(call.attr_span("units"), "empty"));
            }
            let mut params = vec![];
            let mut din = x.ty.shape.last().cloned().unwrap_or_default();
            for (i, u) in units.iter().enumerate() {
                call.positive("units", u)?;
                params.push(p(&format!("layer{i}.weight"), vec![din.clone(), u.clone()]));
                params.push(p(&format!("layer{i}.bias"), vec![u.clone()]));
                din = u.clone();
            }
            let ty = TensorType::float(with_last(&x.ty.shape, din)).with_range(act_range(call.sym("out_act")));
            Ok(Inferred { ty, params })
        }
        LayerNorm => {
            let x = call.t("x");
            call.float_arg(x)?;
            let d = x.ty.shape.last().cloned().unwrap_or_default();
            Ok(Inferred {
                ty: TensorType::float(x.ty.shape.clone()),
                params: vec![p("gamma", vec![d.clone()]), p("beta", vec![d])],
            })
        }
        SelfAttention => {
            let (x, mask) = (call.t("x"), call.t("mask"));
            call.float_arg(x)?;
            call.rank(x, 3, "[B, N, D]")?;
            call.seq_mask(x, mask)?;
            call.rate("dropout")?;
            let heads = call.dim("heads");
            call.positive("heads", &heads)?;
            let d = x.ty.shape[2].clone();
            if let (Some(dv), Some(hv)) = ((call.eval)(&d), (call.eval)(&heads)) {
                if dv % hv != 0 {
                    return Err(call
                        .err(Code::BadValue, format!("model dim {dv} is not divisible by {hv} heads"))
                        .at(call.attr_span("heads"), "heads"));
                }
            }
            let mut params = vec![];
            for w in ["query", "key", "value", "out"] {
                params.push(p(&format!("{w}.weight"), vec![d.clone(), d.clone()]));
                params.push(p(&format!("{w}.bias"), vec![d.clone()]));
            }
            if matches!(call.attrs.get("layer_norm"), Some(Attr::Bool(true))) {
                params.push(p("norm.gamma", vec![d.clone()]));
                params.push(p("norm.beta", vec![d.clone()]));
            }
            Ok(Inferred { ty: TensorType::float(x.ty.shape.clone()), params })
        }
        Gru => {
            let (x, mask) = (call.t("x"), call.t("mask"));
            call.float_arg(x)?;
            call.rank(x, 3, "[B, N, D]")?;
            call.seq_mask(x, mask)?;
            let h = call.dim("hidden");
            call.positive("hidden", &h)?;
            let din = x.ty.shape[2].clone();
            let h3 = c(3).mul(&h);
            let params = vec![
                p("input.weight", vec![din, h3.clone()]),
                p("hidden.weight", vec![h.clone(), h3.clone()]),
                p("input.bias", vec![h3.clone()]),
                p("hidden.bias", vec![h3]),
            ];
            let shape = if call.sym("output") == "all" {
                vec![x.ty.shape[0].clone(), x.ty.shape[1].clone(), h]
            } else {
                vec![x.ty.shape[0].clone(), h]
            };
            Ok(Inferred { ty: TensorType::float(shape).with_range(Range { lo: -1.0, hi: 1.0 }), params })
        }
        Wide => {
            let ids = call.t("ids");
            call.dtype_arg(ids, DType::Id)?;
            call.rank(ids, 2, "[B, F]")?;
            let vocab = call.dim("vocab");
            call.positive("vocab", &vocab)?;
            check_vocab(call, ids, &vocab, "this Wide", call.attr_span("vocab"))?;
            let params = vec![p("weight", vec![vocab, c(1)]), p("bias", vec![ids.ty.shape[1].clone()])];
            Ok(Inferred { ty: TensorType::float(ids.ty.shape.clone()), params })
        }
        Mmoe => {
            let x = call.t("x");
            call.float_arg(x)?;
            call.rank(x, 2, "[B, D]")?;
            let (experts, tasks, units) = (call.dim("experts"), call.dim("tasks"), call.dims("units"));
            call.positive("experts", &experts)?;
            call.positive("tasks", &tasks)?;
            if units.is_empty() {
                return Err(call
                    .err(Code::BadValue, "`units` needs at least one layer")
                    .at(call.attr_span("units"), "empty"));
            }
            let mut params = vec![];
            let mut din = x.ty.shape[1].clone();
            for (i, u) in units.iter().enumerate() {
                params.push(p(&format!("experts.layer{i}.weight"), vec![experts.clone(), din.clone(), u.clone()]));
                params.push(p(&format!("experts.layer{i}.bias"), vec![experts.clone(), u.clone()]));
                din = u.clone();
            }
            params.push(p("gates.weight", vec![tasks.clone(), x.ty.shape[1].clone(), experts.clone()]));
            params.push(p("gates.bias", vec![tasks.clone(), experts]));
            let ty = TensorType::float(vec![x.ty.shape[0].clone(), tasks, din]).with_range(act_range(call.sym("act")));
            Ok(Inferred { ty, params })
        }
        Memory => {
            let (key, write) = (call.t("key"), call.t("write"));
            call.float_arg(key)?;
            call.float_arg(write)?;
            call.rank(key, 2, "[B, K]")?;
            call.rank(write, 2, "[B, W]")?;
            if key.ty.shape[0] != write.ty.shape[0] {
                return Err(call.mismatch(
                    "key and write must have the same batch",
                    key,
                    &key.ty.shape[0],
                    write,
                    &write.ty.shape[0],
                ));
            }
            let (slots, dim) = (call.dim("slots"), call.dim("dim"));
            call.positive("slots", &slots)?;
            call.positive("dim", &dim)?;
            let (k, w) = (key.ty.shape[1].clone(), write.ty.shape[1].clone());
            let params = vec![
                ("slots".to_string(), vec![slots, dim.clone()], true),
                p("key.weight", vec![k, dim.clone()]),
                p("key.bias", vec![dim.clone()]),
                p("erase.weight", vec![w.clone(), dim.clone()]),
                p("erase.bias", vec![dim.clone()]),
                p("add.weight", vec![w, dim.clone()]),
                p("add.bias", vec![dim.clone()]),
            ];
            Ok(Inferred { ty: TensorType::float(vec![key.ty.shape[0].clone(), dim]), params })
        }
        Bce | Nll => {
            let prob = call.t("p");
            call.float_arg(prob)?;
            call.per_example(prob)?;
            require_probability(call, prob)?;
            loss_weight(call)
        }
        BceLogits => {
            let z = call.t("logit");
            call.float_arg(z)?;
            call.per_example(z)?;
            loss_weight(call)
        }
        SoftmaxCe | NotToRecommend => {
            let (prob, target) = (call.t("p"), call.t("target"));
            call.float_arg(prob)?;
            call.rank(prob, 2, "[B, V]")?;
            if !prob.ty.distribution {
                return Err(call
                    .err(
                        Code::NotADistribution,
                        format!(
                            "`p` must be a softmax distribution over items, but it is {} with range {}",
                            prob.ty, prob.ty.range
                        ),
                    )
                    .at(prob.span, "not a distribution")
                    .with_help("pass softmax(item_logits(s, table: ...)) or masked_softmax(...)"));
            }
            call.dtype_arg(target, DType::Id)?;
            call.per_example(target)?;
            check_vocab(call, target, &prob.ty.shape[1], "`p`", prob.span)?;
            loss_weight(call)
        }
        Triplet => {
            let (a, pos, neg) = (call.t("anchor"), call.t("positive"), call.t("negative"));
            for t in [a, pos, neg] {
                call.float_arg(t)?;
                call.rank(t, 2, "[B, D]")?;
            }
            call.same_shape(a, pos)?;
            call.same_shape(a, neg)?;
            if call.float("margin") < 0.0 {
                return Err(call
                    .err(Code::BadValue, "`margin` must not be negative")
                    .at(call.attr_span("margin"), "negative"));
            }
            out(TensorType::float(vec![a.ty.shape[0].clone()]).with_range(Range { lo: 0.0, hi: f64::INFINITY }))
        }
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
    out(TensorType::float(vec![Dim::sym("B")]).with_range(Range { lo: 0.0, hi: f64::INFINITY }))
}
