//! Evaluation: streams a data file through a model and computes per-stream metrics.

use super::exec::{forward, DeviceBatch};
use super::plan::{Plan, Weights};
use super::tensor::Val;
use crate::data::{Loader, Schema};
use crate::ir::{Attr, Node};
use crate::metrics;
use crate::ops::Op;
use burn::prelude::*;
use burn::tensor::activation;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How a label stream is scored.
#[derive(Clone, Debug, PartialEq)]
enum Scorer {
    /// The probability a loss term on this stream uses (node name).
    Node(String),
    /// sigmoid of a logit node (`bce_logits`).
    SigmoidOf(String),
    /// 1 - the primary output: streams without a loss, e.g. dislike for a click-only model.
    OneMinus(String),
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
}

fn operand<'a>(n: &'a Node, port: &str) -> Option<&'a str> {
    n.operands.iter().find(|o| o.port == port).map(|o| o.source.as_str())
}

/// The retrieval heads of a model: each `softmax_ce` loss with the node that scores the whole
/// corpus and the target input. A full softmax scores with its own distribution; a sampled one
/// (target in column 0) with an output of `item_logits` over the same table, if the spec has one.
pub fn retrieval_heads(plan: &Plan) -> Vec<(&Node, String, String)> {
    let g = &plan.graph;
    let mut out = vec![];
    for n in g.losses.iter().filter_map(|l| g.node(&l.node)).filter(|n| n.op == Op::SoftmaxCe) {
        let Some(p) = operand(n, "p") else { continue };
        if let Some(target) = operand(n, "target") {
            out.push((n, p.to_string(), target.to_string()));
            continue;
        }
        let sampled = g.node(p).and_then(|s| operand(s, "x")).and_then(|x| g.node(x));
        let Some(sampled) = sampled.filter(|s| s.op == Op::SampledLogits) else { continue };
        let full = g
            .outputs
            .iter()
            .filter_map(|o| g.node(&o.source))
            .find(|o| o.op == Op::ItemLogits && o.attrs.get("table") == sampled.attrs.get("table"));
        if let (Some(full), Some(target)) = (full, operand(sampled, "target")) {
            out.push((n, full.name.clone(), target.to_string()));
        }
    }
    out
}

/// Chooses a scorer for every label stream of the schema: the output named in `chosen`, else the
/// probability of a loss on the stream, else 1 - the primary output.
fn scorers(plan: &Plan, labels: &[String], chosen: &BTreeMap<String, String>) -> BTreeMap<String, Scorer> {
    let g = &plan.graph;
    let primary = g
        .outputs
        .iter()
        .find(|o| g.node(&o.source).is_some_and(|n| per_example(&n.ty.shape)))
        .map(|o| o.source.clone());
    let mut out = BTreeMap::new();
    for label in labels {
        let loss_node = g.losses.iter().filter_map(|l| g.node(&l.node)).find(|n| {
            matches!(n.op, Op::Bce | Op::Nll | Op::BceLogits)
                && [n.attrs.get("label"), n.attrs.get("on")]
                    .into_iter()
                    .flatten()
                    .any(|a| a == &Attr::Sym(label.clone()))
        });
        let named = chosen.get(label).and_then(|o| g.outputs.iter().find(|x| &x.name == o));
        let scorer = match loss_node {
            _ if named.is_some() => named.map(|o| Scorer::Node(o.source.clone())),
            Some(n) if n.op == Op::BceLogits => operand(n, "logit").map(|s| Scorer::SigmoidOf(s.to_string())),
            Some(n) => operand(n, "p").map(|s| Scorer::Node(s.to_string())),
            None => primary.clone().map(Scorer::OneMinus),
        };
        if let Some(s) = scorer {
            out.insert(label.clone(), s);
        }
    }
    out
}

fn per_example(shape: &[crate::dim::Dim]) -> bool {
    shape.len() == 1 || (shape.len() == 2 && shape[1].as_constant() == Some(1))
}

fn host(v: &Val) -> Vec<f32> {
    match v {
        Val::F(x) => x.t.clone().into_data().convert::<f32>().as_slice::<f32>().map(|s| s.to_vec()).unwrap_or_default(),
        Val::M(m) => host(&Val::F(m.float())),
        Val::I(i) => {
            i.t.clone()
                .into_data()
                .convert::<i64>()
                .as_slice::<i64>()
                .map(|s| s.iter().map(|x| *x as f32).collect())
                .unwrap_or_default()
        }
    }
}

fn score(s: &Scorer, values: &std::collections::HashMap<String, Val>) -> Vec<f32> {
    match s {
        Scorer::Node(n) => host(&values[n]),
        Scorer::SigmoidOf(n) => match &values[n] {
            Val::F(x) => host(&Val::F(x.clone().map(activation::sigmoid))),
            other => host(other),
        },
        Scorer::OneMinus(n) => host(&values[n]).into_iter().map(|p| 1.0 - p).collect(),
    }
}

/// Per-example scores of every label stream for one batch (eval mode).
pub fn predict(plan: &Plan, w: &Weights, batch: &DeviceBatch, labels: &[String]) -> BTreeMap<String, Vec<f32>> {
    let fwd = forward(plan, w, batch, false, 0);
    scorers(plan, labels, &BTreeMap::new()).into_iter().map(|(label, s)| (label, score(&s, &fwd.values))).collect()
}

fn describe(s: &Scorer) -> String {
    match s {
        Scorer::Node(n) => n.clone(),
        Scorer::SigmoidOf(n) => format!("sigmoid({n})"),
        Scorer::OneMinus(n) => format!("1 - {n}"),
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
}

impl EvalOptions {
    /// Options from the command line's `--labels`: `name` reports a stream the spec does not
    /// declare; `name=output` scores the stream by a per-example output of the model.
    pub fn new(
        batch_size: usize,
        skip_bad_rows: bool,
        labels: &[String],
        ks: Vec<usize>,
    ) -> Result<EvalOptions, String> {
        let mut extra_labels = vec![];
        let mut scored_by = BTreeMap::new();
        for entry in labels {
            match entry.split_once('=') {
                Some((label, output)) if !label.trim().is_empty() && !output.trim().is_empty() => {
                    scored_by.insert(label.trim().to_string(), output.trim().to_string());
                }
                Some(_) => return Err(format!("--labels: `{entry}` is not `label` or `label=output`")),
                None => extra_labels.push(entry.trim().to_string()),
            }
        }
        Ok(EvalOptions { batch_size, skip_bad_rows, extra_labels, scored_by, ks })
    }
}

/// Evaluates a model on a data file.
pub fn evaluate(
    plan: &Plan,
    w: &Weights,
    file: &Path,
    opts: &EvalOptions,
    device: &Device,
) -> Result<EvalReport, String> {
    let mut schema = Schema::from_graph(&plan.graph)?;
    for l in &opts.extra_labels {
        if !schema.labels.contains(l) {
            schema.labels.push(l.clone());
        }
    }
    for (label, output) in &opts.scored_by {
        let found = plan.graph.outputs.iter().find(|o| &o.name == output);
        let node = found.and_then(|o| plan.graph.node(&o.source));
        if !node.is_some_and(|n| per_example(&n.ty.shape)) {
            let outputs: Vec<&str> = plan.graph.outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(format!(
                "cannot score label `{label}` by `{output}`: the model has no per-example output of that name (outputs: {})",
                outputs.join(", ")
            ));
        }
        if !schema.labels.contains(label) {
            schema.labels.push(label.clone());
        }
    }
    let chosen = scorers(plan, &schema.labels, &opts.scored_by);
    let mut loader = Loader::open(file, &schema, opts.batch_size, opts.skip_bad_rows).map_err(|e| e.to_string())?;
    let mut scores: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut labels: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut users = vec![];
    let retrieval_losses = retrieval_heads(plan);
    let mut retrieval: BTreeMap<String, RetrievalMetrics> = BTreeMap::new();
    while let Some(hb) = loader.next_batch().map_err(|e| e.to_string())? {
        let batch = DeviceBatch::from_host(&hb, device);
        let fwd = forward(plan, w, &batch, false, 0);
        for (label, s) in &chosen {
            scores.entry(label.clone()).or_default().extend(score(s, &fwd.values));
            labels.entry(label.clone()).or_default().extend(hb.labels.get(label).cloned().unwrap_or_default());
        }
        users.extend(hb.users.iter().copied());
        for (n, p, target) in &retrieval_losses {
            let probs = host(&fwd.values[p.as_str()]);
            let targets = batch.host_ids.get(target).cloned().unwrap_or_default();
            let on = match n.attrs.get("on") {
                Some(Attr::Sym(l)) => hb.labels.get(l).cloned(),
                _ => None,
            };
            let vocab = probs.len() / hb.len.max(1);
            let entry = retrieval.entry(n.name.clone()).or_default();
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
    for (label, s) in &chosen {
        let (sc, lb) = (scores.remove(label).unwrap_or_default(), labels.remove(label).unwrap_or_default());
        let g = metrics::gauc(&sc, &lb, &users);
        report.streams.insert(
            label.clone(),
            StreamMetrics {
                scored_by: describe(s),
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
