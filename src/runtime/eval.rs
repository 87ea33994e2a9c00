//! Evaluation: streams a data file through a model and computes per-stream metrics.

use super::exec::{forward, DeviceBatch, Forward, Mode};
use super::tensor::Value;
use super::weights::Weights;
use super::RuntimeError;
use crate::data::{Loader, Schema};
use crate::lower::kernel::DistributionLoss;
use crate::lower::kernel::{GeometryKernel, LossKernel, PoolingKernel};
use crate::lower::{Extent, Kernel, LabelId, Program, Step, ValueId};
use crate::metrics;
use burn::prelude::*;
use burn::tensor::activation;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How a label stream is scored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scorer {
    /// The probability a loss term on this stream uses, or a chosen output.
    Value(ValueId),
    /// sigmoid of a logit (`bce_logits`).
    SigmoidOf(ValueId),
    /// 1 - the primary output: streams without a loss, e.g. dislike for a click-only model.
    OneMinus(ValueId),
}

/// Metrics of one label stream.
#[derive(Serialize, Clone, Debug, Default)]
pub struct StreamMetrics {
    pub scored_by: String,
    pub examples: usize,
    pub positives: usize,
    pub auc: Option<f64>,
    pub gauc: Option<f64>,
    pub gauc_users: usize,
    pub logloss: Option<f64>,
}

/// Metrics of a retrieval head (a `softmax_ce` loss over the item corpus).
#[derive(Serialize, Clone, Debug, Default)]
pub struct RetrievalMetrics {
    pub examples: usize,
    pub recall: BTreeMap<String, f64>,
    pub ndcg: BTreeMap<String, f64>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct EvalReport {
    pub rows: usize,
    pub bad_rows: usize,
    pub streams: BTreeMap<String, StreamMetrics>,
    pub retrieval: BTreeMap<String, RetrievalMetrics>,
    /// Every row's scores, when [`EvalOptions::keep_predictions`] asked for them.
    #[serde(skip)]
    pub predictions: Option<Predictions>,
}

/// Per-row scores of an evaluation: `rows[i]` (file, 1-based row) scored `scores[stream][i]`.
#[derive(Clone, Debug, Default)]
pub struct Predictions {
    pub rows: Vec<(std::path::PathBuf, usize)>,
    pub scores: BTreeMap<String, Vec<f32>>,
}

/// A retrieval head: a `softmax_ce` loss over the item corpus, the value that scores the whole
/// corpus, and the target ids.
pub(crate) struct RetrievalHead<'p> {
    pub loss: &'p Step,
    pub scores: ValueId,
    pub target: ValueId,
    pub label: Option<LabelId>,
}

/// The retrieval heads of a model. A full softmax scores with its own distribution; a sampled
/// one (target in column 0) with an output of `item_logits` over the same table, if the spec
/// has one.
pub(crate) fn retrieval_heads(program: &Program) -> Vec<RetrievalHead<'_>> {
    let mut out = vec![];
    for step in program.losses.iter().filter_map(|l| program.producer(l.value)) {
        let Kernel::Loss(LossKernel::Distribution { p, target, label, loss: DistributionLoss::CrossEntropy, .. }) =
            &step.kernel
        else {
            continue;
        };
        if let Some(target) = target {
            out.push(RetrievalHead { loss: step, scores: *p, target: *target, label: *label });
            continue;
        }
        let sampled = match program.producer(*p).map(|s| &s.kernel) {
            Some(Kernel::Pooling(PoolingKernel::Softmax { x, .. })) => program.producer(*x).map(|s| &s.kernel),
            _ => None,
        };
        let Some(Kernel::SampledLogits { table, target, .. }) = sampled else { continue };
        let full = program.outputs.iter().find(|o| {
            matches!(program.producer(o.value).map(|s| &s.kernel), Some(Kernel::Geometry(GeometryKernel::ItemLogits { table: t, .. })) if t == table)
        });
        if let Some(full) = full {
            out.push(RetrievalHead { loss: step, scores: full.value, target: *target, label: *label });
        }
    }
    out
}

/// Chooses a scorer for every label stream of the schema: the output named in `chosen`, else the
/// probability of a loss on the stream, else 1 - the primary output.
pub(crate) fn scorers(
    program: &Program,
    labels: &[String],
    chosen: &BTreeMap<String, String>,
) -> BTreeMap<String, Scorer> {
    let primary = program.outputs.iter().find(|o| per_example(&program.value(o.value).shape)).map(|o| o.value);
    let mut out = BTreeMap::new();
    for label in labels {
        let on_label = |l: &LabelId| &program.labels[l.0] == label;
        let loss_kernel =
            program.losses.iter().filter_map(|l| program.producer(l.value)).find_map(|s| match &s.kernel {
                k @ (Kernel::Loss(LossKernel::ProbabilityLoss { label: l, .. })
                | Kernel::Loss(LossKernel::BceLogits { label: l, .. }))
                    if on_label(l) =>
                {
                    Some(k)
                }
                _ => None,
            });
        let named = chosen.get(label).and_then(|o| program.output(o));
        let scorer = match (named, loss_kernel) {
            (Some(v), _) => Some(Scorer::Value(v)),
            (None, Some(Kernel::Loss(LossKernel::BceLogits { logit, .. }))) => Some(Scorer::SigmoidOf(*logit)),
            (None, Some(Kernel::Loss(LossKernel::ProbabilityLoss { p, .. }))) => Some(Scorer::Value(*p)),
            _ => primary.map(Scorer::OneMinus),
        };
        if let Some(s) = scorer {
            out.insert(label.clone(), s);
        }
    }
    out
}

fn per_example(shape: &[Extent]) -> bool {
    shape.len() == 1 || (shape.len() == 2 && shape[1].constant() == Some(1))
}

impl Scorer {
    /// The value the score is computed from.
    pub(crate) fn value(&self) -> ValueId {
        match self {
            Scorer::Value(v) | Scorer::SigmoidOf(v) | Scorer::OneMinus(v) => *v,
        }
    }
}

/// The scores of one batch from a pass that computed `s.value()`.
pub(crate) fn score(s: &Scorer, pass: &Forward) -> Vec<f32> {
    let value = |id: &ValueId| pass.value(*id).expect("scored values are computed by a full pass");
    match s {
        Scorer::Value(v) => value(v).to_host(),
        Scorer::SigmoidOf(v) => match value(v) {
            Value::Float(x) => Value::Float(x.clone().map(activation::sigmoid)).to_host(),
            other => other.to_host(),
        },
        Scorer::OneMinus(v) => value(v).to_host().into_iter().map(|p| 1.0 - p).collect(),
    }
}

/// Per-example scores of every label stream for one batch (eval mode).
pub fn predict(
    program: &Program,
    weights: &Weights,
    batch: &DeviceBatch,
    labels: &[String],
) -> BTreeMap<String, Vec<f32>> {
    let pass = forward(program, weights, batch, Mode::Eval, 0);
    scorers(program, labels, &BTreeMap::new()).into_iter().map(|(label, s)| (label, score(&s, &pass))).collect()
}

fn describe(program: &Program, s: &Scorer) -> String {
    match s {
        Scorer::Value(v) => program.value(*v).name.clone(),
        Scorer::SigmoidOf(v) => format!("sigmoid({})", program.value(*v).name),
        Scorer::OneMinus(v) => format!("1 - {}", program.value(*v).name),
    }
}

/// How to read a data file for evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub batch_size: usize,
    pub skip_bad_rows: bool,
    /// Label streams the spec does not declare, scored as 1 - the primary output unless
    /// `scored_by` names an output for them.
    pub extra_labels: Vec<String>,
    /// Label stream -> the per-example output that scores it (`--labels positive=p_up`).
    pub scored_by: BTreeMap<String, String>,
    /// Cut-offs for recall@K and NDCG@K of retrieval heads.
    pub ks: Vec<usize>,
    /// Keep every row's scores in [`EvalReport::predictions`] (`recspec eval --predictions`).
    pub keep_predictions: bool,
}

impl EvalOptions {
    /// Options from the command line's `--labels`: `name` reports a stream the spec does not
    /// declare; `name=output` scores the stream by a per-example output of the model.
    pub fn new(
        batch_size: usize,
        skip_bad_rows: bool,
        labels: &[String],
        ks: Vec<usize>,
    ) -> Result<EvalOptions, RuntimeError> {
        let mut extra_labels = vec![];
        let mut scored_by = BTreeMap::new();
        for entry in labels {
            match entry.split_once('=') {
                Some((label, output)) if !label.trim().is_empty() && !output.trim().is_empty() => {
                    scored_by.insert(label.trim().to_string(), output.trim().to_string());
                }
                Some(_) => {
                    return Err(RuntimeError::Options(format!("--labels: `{entry}` is not `label` or `label=output`")))
                }
                None => extra_labels.push(entry.trim().to_string()),
            }
        }
        Ok(EvalOptions { batch_size, skip_bad_rows, extra_labels, scored_by, ks, keep_predictions: false })
    }
}

/// Evaluates a model on a data file.
pub fn evaluate(
    program: &Program,
    weights: &Weights,
    file: &Path,
    opts: &EvalOptions,
    device: &Device,
) -> Result<EvalReport, RuntimeError> {
    let mut schema = Schema::from_program(program)?;
    for l in &opts.extra_labels {
        if !schema.labels.contains(l) {
            schema.labels.push(l.clone());
        }
    }
    for (label, output) in &opts.scored_by {
        if !program.output(output).is_some_and(|v| per_example(&program.value(v).shape)) {
            let outputs: Vec<&str> = program.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(RuntimeError::Model(format!(
                "cannot score label `{label}` by `{output}`: the model has no per-example output of that name (outputs: {})",
                outputs.join(", ")
            )));
        }
        if !schema.labels.contains(label) {
            schema.labels.push(label.clone());
        }
    }
    let chosen = scorers(program, &schema.labels, &opts.scored_by);
    // Each scored stream's place among the batch's label columns.
    let columns: Vec<Option<usize>> =
        chosen.keys().map(|label| schema.labels.iter().position(|l| l == label)).collect();
    let mut loader = Loader::open(file, &schema, opts.batch_size, opts.skip_bad_rows)?;
    let mut scores: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut labels: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut users = vec![];
    let heads = retrieval_heads(program);
    let mut retrieval: BTreeMap<String, RetrievalMetrics> = BTreeMap::new();
    let mut rows_read = vec![];
    while let Some(hb) = loader.next_batch()? {
        if opts.keep_predictions {
            rows_read.extend(loader.batch_rows().map(|(file, row)| (file.to_path_buf(), row)));
        }
        let batch = DeviceBatch::from_host(&hb, device);
        let pass = forward(program, weights, &batch, Mode::Eval, 0);
        for ((label, s), column) in chosen.iter().zip(&columns) {
            scores.entry(label.clone()).or_default().extend(score(s, &pass));
            labels
                .entry(label.clone())
                .or_default()
                .extend(column.and_then(|c| hb.labels.get(c)).cloned().unwrap_or_default());
        }
        users.extend(hb.users.iter().copied());
        for head in &heads {
            let probs = pass.value(head.scores).map(Value::to_host).unwrap_or_default();
            let targets = batch.host_ids.get(head.target.0).cloned().flatten().unwrap_or_default();
            let on = head.label.and_then(|l| hb.labels.get(l.0).cloned());
            let vocab = probs.len() / hb.len.max(1);
            let entry = retrieval.entry(head.loss.name.clone()).or_default();
            for (i, t) in targets.iter().enumerate() {
                if on.as_ref().is_some_and(|o| o[i] < 0.5) {
                    continue;
                }
                entry.examples += 1;
                for k in &opts.ks {
                    let (r, g) = metrics::rank_metrics(&probs[i * vocab..(i + 1) * vocab], *t as usize, *k);
                    *entry.recall.entry(format!("@{k}")).or_default() += r;
                    *entry.ndcg.entry(format!("@{k}")).or_default() += g;
                }
            }
        }
    }
    let mut report = EvalReport { rows: loader.stats().rows, bad_rows: loader.stats().bad_rows, ..Default::default() };
    if opts.keep_predictions {
        report.predictions = Some(Predictions { rows: rows_read, scores: scores.clone() });
    }
    for (label, s) in &chosen {
        let (sc, lb) = (scores.remove(label).unwrap_or_default(), labels.remove(label).unwrap_or_default());
        let g = metrics::gauc(&sc, &lb, &users);
        report.streams.insert(
            label.clone(),
            StreamMetrics {
                scored_by: describe(program, s),
                examples: sc.len(),
                positives: lb.iter().filter(|y| **y > 0.5).count(),
                auc: metrics::auc(&sc, &lb),
                gauc: g.map(|x| x.0),
                gauc_users: g.map_or(0, |x| x.1),
                logloss: metrics::logloss(&sc, &lb),
            },
        );
    }
    for r in retrieval.values_mut() {
        let n = r.examples.max(1) as f64;
        r.recall.values_mut().for_each(|v| *v /= n);
        r.ndcg.values_mut().for_each(|v| *v /= n);
    }
    report.retrieval = retrieval;
    Ok(report)
}
