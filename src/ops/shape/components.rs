//! Shape rules of the weighted components and item scoring.

use super::*;
use crate::ops::Op::*;

pub(super) fn item_scores(call: &Call) -> R<Inferred> {
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
    let mut ty = TensorType::float(vec![s.ty.shape[0].clone(), c(1).add(&n)]);
    ty.target_first = true;
    out(ty)
}

pub(super) fn embedding(call: &Call) -> R<Inferred> {
    let ids = call.t("ids");
    call.dtype_arg(ids, DType::Id)?;
    let (vocab, dim) = (call.dim("vocab"), call.dim("dim"));
    call.positive("vocab", &vocab)?;
    call.positive("dim", &dim)?;
    check_vocab(call, ids, &vocab, "this Embedding", call.attr_span("vocab"))?;
    let mut shape = ids.ty.shape.clone();
    shape.push(dim.clone());
    Ok(Inferred { ty: TensorType::float(shape), params: embedding_params(vocab, dim) })
}

pub(super) fn position_embedding(call: &Call) -> R<Inferred> {
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
    let last = if call.option("mode", PositionMode::parse) == Some(PositionMode::Concat) {
        x.ty.shape[2].add(&dim)
    } else {
        if x.ty.shape[2] != dim {
            let d = call
                .err(Code::ShapeMismatch, format!("mode add needs dim {} to equal the item dim {}", dim, x.ty.shape[2]))
                .at(call.attr_span("dim"), format!("dim is {dim}"))
                .with_label(x.span, format!("x is {}", x.ty));
            return Err(call.notes(d, &[&x.ty.shape[2], &dim]));
        }
        dim.clone()
    };
    let shape = vec![x.ty.shape[0].clone(), x.ty.shape[1].clone(), last];
    Ok(Inferred {
        ty: TensorType::float(shape),
        params: vec![param("table", vec![len, dim], Init::Normal { std: TABLE_STD })],
    })
}

pub(super) fn linear(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    call.min_rank(x, 2)?;
    let (din, o) = (x.ty.shape.last().cloned().unwrap_or_default(), call.dim("out"));
    call.positive("out", &o)?;
    let mut params = vec![param("weight", vec![din, o.clone()], Init::FanIn)];
    if matches!(call.attrs.get("bias"), Some(Attr::Bool(true))) {
        params.push(param("bias", vec![o.clone()], Init::Zeros));
    }
    Ok(Inferred { ty: TensorType::float(with_last(&x.ty.shape, o)), params })
}

pub(super) fn mlp(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    call.min_rank(x, 2)?;
    call.rate("dropout")?;
    let units = call.dims("units");
    if units.is_empty() {
        return Err(call.err(Code::BadValue, "`units` needs at least one layer").at(call.attr_span("units"), "empty"));
    }
    let mut params = vec![];
    let mut din = x.ty.shape.last().cloned().unwrap_or_default();
    for (i, u) in units.iter().enumerate() {
        call.positive("units", u)?;
        params.extend(dense(&format!("layer{i}"), din.clone(), u.clone()));
        din = u.clone();
    }
    let ty =
        TensorType::float(with_last(&x.ty.shape, din)).with_range(act_range(call.option("out_act", Activation::parse)));
    Ok(Inferred { ty, params })
}

pub(super) fn layer_norm(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    let d = x.ty.shape.last().cloned().unwrap_or_default();
    Ok(Inferred {
        ty: TensorType::float(x.ty.shape.clone()),
        params: vec![param("gamma", vec![d.clone()], Init::Ones), param("beta", vec![d], Init::Zeros)],
    })
}

pub(super) fn self_attention(call: &Call) -> R<Inferred> {
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
        params.extend(dense(w, d.clone(), d.clone()));
    }
    if matches!(call.attrs.get("layer_norm"), Some(Attr::Bool(true))) {
        params.push(param("norm.gamma", vec![d.clone()], Init::Ones));
        params.push(param("norm.beta", vec![d.clone()], Init::Zeros));
    }
    Ok(Inferred { ty: TensorType::float(x.ty.shape.clone()), params })
}

pub(super) fn gru(call: &Call) -> R<Inferred> {
    let (x, mask) = (call.t("x"), call.t("mask"));
    call.float_arg(x)?;
    call.rank(x, 3, "[B, N, D]")?;
    call.seq_mask(x, mask)?;
    let h = call.dim("hidden");
    call.positive("hidden", &h)?;
    let din = x.ty.shape[2].clone();
    let h3 = c(3).mul(&h);
    // PyTorch's GRU initialisation: every tensor uniform in ±1/sqrt(hidden).
    let init = Init::UniformInvSqrt(h.clone());
    let params = vec![
        param("input.weight", vec![din, h3.clone()], init.clone()),
        param("hidden.weight", vec![h.clone(), h3.clone()], init.clone()),
        param("input.bias", vec![h3.clone()], init.clone()),
        param("hidden.bias", vec![h3], init),
    ];
    let shape = if call.option("output", GruOutput::parse) == Some(GruOutput::All) {
        vec![x.ty.shape[0].clone(), x.ty.shape[1].clone(), h]
    } else {
        vec![x.ty.shape[0].clone(), h]
    };
    Ok(Inferred { ty: TensorType::float(shape).with_range(Range { lo: -1.0, hi: 1.0 }), params })
}

pub(super) fn wide(call: &Call) -> R<Inferred> {
    let ids = call.t("ids");
    call.dtype_arg(ids, DType::Id)?;
    call.rank(ids, 2, "[B, F]")?;
    let vocab = call.dim("vocab");
    call.positive("vocab", &vocab)?;
    check_vocab(call, ids, &vocab, "this Wide", call.attr_span("vocab"))?;
    let params = vec![
        param("weight", vec![vocab, c(1)], Init::Zeros),
        param("bias", vec![ids.ty.shape[1].clone()], Init::Zeros),
    ];
    Ok(Inferred { ty: TensorType::float(ids.ty.shape.clone()), params })
}

pub(super) fn mmoe(call: &Call) -> R<Inferred> {
    let x = call.t("x");
    call.float_arg(x)?;
    call.rank(x, 2, "[B, D]")?;
    let (experts, tasks, units) = (call.dim("experts"), call.dim("tasks"), call.dims("units"));
    call.positive("experts", &experts)?;
    call.positive("tasks", &tasks)?;
    if units.is_empty() {
        return Err(call.err(Code::BadValue, "`units` needs at least one layer").at(call.attr_span("units"), "empty"));
    }
    let mut params = vec![];
    let mut din = x.ty.shape[1].clone();
    for (i, u) in units.iter().enumerate() {
        call.positive("units", u)?;
        params.push(param(
            &format!("experts.layer{i}.weight"),
            vec![experts.clone(), din.clone(), u.clone()],
            Init::FanIn,
        ));
        params.push(param(&format!("experts.layer{i}.bias"), vec![experts.clone(), u.clone()], Init::Zeros));
        din = u.clone();
    }
    params.push(param("gates.weight", vec![tasks.clone(), x.ty.shape[1].clone(), experts.clone()], Init::FanIn));
    params.push(param("gates.bias", vec![tasks.clone(), experts], Init::Zeros));
    let ty = TensorType::float(vec![x.ty.shape[0].clone(), tasks, din])
        .with_range(act_range(call.option("act", Activation::parse)));
    Ok(Inferred { ty, params })
}

pub(super) fn memory(call: &Call) -> R<Inferred> {
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
    let mut params = vec![ParamSpec {
        name: "slots".into(),
        shape: vec![slots, dim.clone()],
        state: true,
        init: Init::Normal { std: 0.1 },
    }];
    params.extend(dense("read_key", k, dim.clone()));
    params.extend(dense("write_key", w.clone(), dim.clone()));
    params.extend(dense("erase", w.clone(), dim.clone()));
    params.extend(dense("add", w, dim.clone()));
    let shape = if call.option("output", MemoryOutput::parse) == Some(MemoryOutput::Both) {
        vec![key.ty.shape[0].clone(), c(2), dim]
    } else {
        vec![key.ty.shape[0].clone(), dim]
    };
    Ok(Inferred { ty: TensorType::float(shape), params })
}
