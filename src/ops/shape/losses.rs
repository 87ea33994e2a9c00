//! Shape rules of the loss terms.

use super::*;

pub(super) fn probability_loss(call: &Call) -> R<Inferred> {
    let prob = call.t("p");
    call.float_arg(prob)?;
    call.per_example(prob)?;
    require_probability(call, prob)?;
    loss_weight(call)
}

pub(super) fn bce_logits(call: &Call) -> R<Inferred> {
    let z = call.t("logit");
    call.float_arg(z)?;
    call.per_example(z)?;
    loss_weight(call)
}

pub(super) fn distribution_loss(call: &Call) -> R<Inferred> {
    let (prob, target) = (call.t("p"), call.opt_t("target"));
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
    match (target, prob.ty.target_first) {
        (Some(target), false) => {
            call.dtype_arg(target, DType::Id)?;
            call.per_example(target)?;
            check_vocab(call, target, &prob.ty.shape[1], "`p`", prob.span)?;
        }
        (None, true) => {}
        (Some(target), true) => {
            return Err(call
                .err(Code::BadValue, "`p` is a sampled softmax: its column 0 already is each example's target")
                .at(target.span, "remove `target`")
                .with_label(prob.span, "softmax over sampled_logits(...)"));
        }
        (None, false) => {
            return Err(call
                .err(Code::MissingArgument, "a softmax over the full item corpus needs `target`")
                .at(call.span, "missing `target`")
                .with_help("only a softmax over sampled_logits(...) holds the target in column 0"));
        }
    }
    loss_weight(call)
}

pub(super) fn triplet(call: &Call) -> R<Inferred> {
    let (a, pos, neg) = (call.t("anchor"), call.t("positive"), call.t("negative"));
    for t in [a, pos, neg] {
        call.float_arg(t)?;
        call.rank(t, 2, "[B, D]")?;
    }
    call.same_shape(a, pos)?;
    call.same_shape(a, neg)?;
    if call.float("margin") < 0.0 {
        return Err(call.err(Code::BadValue, "`margin` must not be negative").at(call.attr_span("margin"), "negative"));
    }
    loss_weight(call)
}
