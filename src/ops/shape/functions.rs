//! Shape rules of the functions: arithmetic, shape manipulation, activations, pooling and geometry.

use super::*;
use crate::ops::Op::*;

pub(super) fn arithmetic(call: &Call) -> R<Inferred> {
    let (a, b) = (call.t("a"), call.t("b"));
    call.same_float_shapes(a, b)?;
    out(TensorType::float(a.ty.shape.clone()))
}

pub(super) fn neg(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    out(TensorType::float(x.ty.shape.clone()).with_range(x.ty.range.negate()))
}

pub(super) fn concat(call: &Call) -> R<Inferred> {
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

pub(super) fn stack(call: &Call) -> R<Inferred> {
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

pub(super) fn slice(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    let axis = call.axis("axis", x.ty.rank())?;
    let (start, len) = (call.dim("start"), call.dim("len"));
    call.positive("len", &len)?;
    if let (Some(s), Some(l), Some(n)) = (start.as_constant(), len.as_constant(), x.ty.shape[axis].as_constant()) {
        if s < 0 || s + l > n {
            return Err(call
                .err(Code::BadValue, format!("slice {s}..{} is outside axis {axis} of size {n}", s + l))
                .at(call.span, "out of bounds"));
        }
    }
    let mut ty = x.ty.clone();
    ty.shape[axis] = len;
    ty.distribution = false;
    ty.target_first = false;
    out(ty)
}

pub(super) fn index(call: &Call) -> R<Inferred> {
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
    ty.target_first &= axis + 1 < x.ty.rank();
    out(ty)
}

pub(super) fn repeat(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    let axis = call.axis("axis", x.ty.rank() + 1)?;
    let n = call.dim("n");
    call.positive("n", &n)?;
    let mut ty = x.ty.clone();
    ty.shape.insert(axis, n);
    out(ty)
}

pub(super) fn unsqueeze(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    let axis = call.axis("axis", x.ty.rank() + 1)?;
    let mut ty = x.ty.clone();
    ty.shape.insert(axis, c(1));
    out(ty)
}

pub(super) fn squeeze(call: &Call) -> R<Inferred> {
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

pub(super) fn flatten(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    let from = call.axis("from", x.ty.rank())?;
    let mut ty = x.ty.clone();
    let merged = x.ty.shape[from..].iter().fold(c(1), |acc, d| acc.mul(d));
    ty.shape.truncate(from);
    ty.shape.push(merged);
    ty.distribution = false;
    out(ty)
}

pub(super) fn full_mask(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.min_rank(x, 2)?;
    out(TensorType::mask(x.ty.shape[..x.ty.rank() - 1].to_vec()))
}

pub(super) fn keep(call: &Call) -> R<Inferred> {
    let (mask, keep) = (call.t("mask"), call.t("where"));
    call.dtype_arg(mask, DType::Mask)?;
    call.float_arg(keep)?;
    call.same_shape(mask, keep)?;
    out(TensorType::mask(mask.ty.shape.clone()))
}

pub(super) fn nonempty(call: &Call) -> R<Inferred> {
    let mask = call.t("mask");
    call.dtype_arg(mask, DType::Mask)?;
    call.min_rank(mask, 2)?;
    out(TensorType::float(mask.ty.shape[..mask.ty.rank() - 1].to_vec()).with_range(Range::UNIT))
}

pub(super) fn sample_valid(call: &Call) -> R<Inferred> {
    let (x, mask) = (call.t("x"), call.t("mask"));
    call.float_arg(x)?;
    call.rank(x, 3, "[B, N, D]")?;
    call.seq_mask(x, mask)?;
    // Zeros for rows without a valid position: the range widens to include 0.
    let range = Range { lo: x.ty.range.lo.min(0.0), hi: x.ty.range.hi.max(0.0) };
    out(TensorType::float(vec![x.ty.shape[0].clone(), x.ty.shape[2].clone()]).with_range(range))
}

pub(super) fn to_float(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    let range = if x.ty.dtype == DType::Mask { Range::UNIT } else { Range::ANY };
    out(TensorType::float(x.ty.shape.clone()).with_range(range))
}

pub(super) fn activation(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    out(TensorType::float(x.ty.shape.clone()).with_range(act_range(Some(match call.op {
        Op::Sigmoid => Activation::Sigmoid,
        Op::Relu => Activation::Relu,
        _ => Activation::Tanh,
    }))))
}

pub(super) fn softmax(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    let axis = call.axis("axis", x.ty.rank())?;
    let mut ty = TensorType::float(x.ty.shape.clone()).with_range(Range::UNIT);
    ty.distribution = axis + 1 == x.ty.rank();
    ty.target_first = x.ty.target_first && ty.distribution;
    out(ty)
}

pub(super) fn masked_softmax(call: &Call) -> R<Inferred> {
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

pub(super) fn dropout(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    call.rate("rate")?;
    let range = if x.ty.range.lo >= 0.0 { Range { lo: 0.0, hi: f64::INFINITY } } else { Range::ANY };
    out(TensorType::float(x.ty.shape.clone()).with_range(range))
}

pub(super) fn pool(call: &Call) -> R<Inferred> {
    let (x, mask) = (call.t("x"), call.t("mask"));
    call.float_arg(x)?;
    call.min_rank(x, 3)?;
    call.seq_mask(x, mask)?;
    let mut shape = x.ty.shape.clone();
    shape.remove(1);
    let mode = call.option("mode", PoolMode::parse);
    let range = if mode == Some(PoolMode::Sum) { Range::ANY } else { x.ty.range };
    if mode == Some(PoolMode::Max) && call.option("padding", Padding::parse) == Some(Padding::Include) {
        return Err(call
            .err(Code::BadOption, "max pooling cannot include padding")
            .at(call.attr_span("padding"), "use padding: exclude"));
    }
    out(TensorType::float(shape).with_range(range))
}

pub(super) fn attention_pool(call: &Call) -> R<Inferred> {
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
    let range =
        if call.option("norm", AttentionNorm::parse) == Some(AttentionNorm::Softmax) { v.ty.range } else { Range::ANY };
    out(TensorType::float(vec![v.ty.shape[0].clone(), v.ty.shape[2].clone()]).with_range(range))
}

pub(super) fn reduce(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    let axis = call.axis("axis", x.ty.rank())?;
    let mut shape = x.ty.shape.clone();
    shape.remove(axis);
    let range = if call.op == ReduceMean { x.ty.range } else { Range::ANY };
    out(TensorType::float(shape).with_range(range))
}

pub(super) fn dot_or_cosine(call: &Call) -> R<Inferred> {
    let (a, b) = (call.t("a"), call.t("b"));
    call.same_float_shapes(a, b)?;
    let mut shape = a.ty.shape.clone();
    shape.pop();
    let range = if call.op == Cosine { Range { lo: -1.0, hi: 1.0 } } else { Range::ANY };
    out(TensorType::float(shape).with_range(range))
}

pub(super) fn projection(call: &Call) -> R<Inferred> {
    let a = call.t("a");
    let b = call.opt_t("onto").or_else(|| call.opt_t("to")).expect("bound tensor port");
    call.same_float_shapes(a, b)?;
    out(TensorType::float(a.ty.shape.clone()))
}

pub(super) fn fm(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    call.rank(x, 3, "[B, F, D]")?;
    let last = if matches!(call.attrs.get("reduce"), Some(Attr::Bool(true))) { c(1) } else { x.ty.shape[2].clone() };
    out(TensorType::float(vec![x.ty.shape[0].clone(), last]))
}
