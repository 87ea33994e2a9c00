//! Row-sparse training of embedding tables (`runtime::rows`): the three rules against an
//! independent f64 implementation over several steps, lazy Adam against burn's dense Adam on a
//! real model, lazy Adagrad equal to dense Adagrad, and resuming with the tables' state.

use crate::max_difference;
use crate::Scratch;
use burn::prelude::*;
use recspec::config::{EmbeddingOptimizer, OptimizerKind, TrainSettings};
use recspec::lower::{lower, Bindings, ParamId, Program};
use recspec::runtime::exec::DeviceBatch;
use recspec::runtime::rows::{RowLookup, RowOptimizer, RowRule, BETA_1, BETA_2, EPSILON, ROWWISE_EPSILON};
use recspec::runtime::train::{train_step, Optimizer};
use recspec::runtime::weights::{SplitMix, Weights};
use std::path::Path;

/// Fails on any non-finite value on either side, and where `|a - b| > abs + rel · |b|`.
fn assert_close(what: &str, actual: &[f32], expected: &[f64], abs: f64, rel: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (a, b)) in actual.iter().zip(expected).enumerate() {
        let (a, b) = (*a as f64, *b);
        assert!(a.is_finite() && b.is_finite(), "{what}[{i}]: non-finite ({a} vs {b})");
        assert!((a - b).abs() <= abs + rel * b.abs(), "{what}[{i}]: {a} vs expected {b}");
    }
}

#[test]
fn assert_close_fails_on_nan_and_infinity() {
    for (a, b) in [(f32::NAN, 0.0), (0.0, f64::NAN), (f32::INFINITY, f64::INFINITY), (1.0, f64::NEG_INFINITY)] {
        let failed = std::panic::catch_unwind(|| assert_close("x", &[a], &[b], 1.0, 1.0)).is_err();
        assert!(failed, "{a} vs {b} must fail");
    }
    assert_close("x", &[1.0], &[1.0 + 1e-7], 1e-6, 0.0);
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

const TINY: &str = "model m {
  dim V = 7;
  dim D = 3;
  input item: id[B] vocab V;
  label click;
  let e = Embedding(vocab: V, dim: D)(item);
  output p = sigmoid(Linear(out: 1)(e));
  loss l = bce(p, label: click);
}
";

fn tiny() -> Program {
    let (_, checked) = recspec::compile_str("tiny.recspec", TINY, &[]);
    let graph = checked.graph.expect("the tiny spec compiles");
    lower(&graph, &Bindings::of(&graph)).unwrap()
}

/// The reference: the rules of docs/scale.md in f64 over a [V, D] table.
struct Reference {
    rule: RowRule,
    w: Vec<f64>,
    s1: Vec<f64>,
    s2: Vec<f64>,
    t: i32,
    d: usize,
}

impl Reference {
    fn step(&mut self, ids: &[i64], grads: &[f64], lr: f64) {
        let d = self.d;
        let mut g: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
        for (k, id) in ids.iter().enumerate() {
            let row = g.entry(*id as usize).or_insert_with(|| vec![0.0; d]);
            for j in 0..d {
                row[j] += grads[k * d + j];
            }
        }
        self.t += 1;
        let (b1, b2) = (BETA_1 as f64, BETA_2 as f64);
        for (r, g) in g {
            let mean_sq = g.iter().map(|x| x * x).sum::<f64>() / d as f64;
            if self.rule == RowRule::RowwiseAdagrad {
                self.s1[r] += mean_sq;
            }
            for (j, &gj) in g.iter().enumerate() {
                let i = r * d + j;
                let step = match self.rule {
                    RowRule::LazyAdam => {
                        self.s1[i] = b1 * self.s1[i] + (1.0 - b1) * gj;
                        self.s2[i] = b2 * self.s2[i] + (1.0 - b2) * gj * gj;
                        let m_hat = self.s1[i] / (1.0 - b1.powi(self.t));
                        let v_hat = self.s2[i] / (1.0 - b2.powi(self.t));
                        m_hat / (v_hat.sqrt() + EPSILON as f64)
                    }
                    RowRule::LazyAdagrad => {
                        self.s1[i] += gj * gj;
                        gj / (self.s1[i].sqrt() + EPSILON as f64)
                    }
                    RowRule::RowwiseAdagrad => gj / (self.s1[r].sqrt() + ROWWISE_EPSILON as f64),
                };
                self.w[i] -= lr * step;
            }
        }
    }
}

/// Four steps of two lookups each into one [7, 3] table, with repeated ids in a step and rows
/// looked up in one step but not the next; the loss is `Σ rows · C` with fixed random C, so the
/// gradient of each looked-up row is its C.
fn rule_matches_reference(rule: RowRule) {
    let program = tiny();
    let table = ParamId(program.row_tables().iter().position(|r| *r).expect("the tiny spec has a table"));
    let device = Device::flex().autodiff();
    let inner = device.clone().inner();
    let mut weights = Weights::init(&program, &device, 3);
    let initial: Vec<f32> = floats(weights.tensors[table.0].val());
    let (v, d) = (7, 3);
    let mut reference = Reference {
        rule,
        w: initial.iter().map(|x| *x as f64).collect(),
        s1: vec![0.0; if rule == RowRule::RowwiseAdagrad { v } else { v * d }],
        s2: vec![0.0; v * d],
        t: 0,
        d,
    };
    let mut optim = RowOptimizer::new(rule, &program);
    let mut rng = SplitMix(11);
    let steps: [[&[i64]; 2]; 4] =
        [[&[1, 3, 3, 5], &[3, 6]], [&[0, 1], &[1]], [&[5, 2, 2], &[2, 6, 0]], [&[4], &[4, 4]]];
    let lr = 0.05;
    let mut touched = std::collections::BTreeSet::new();
    for (k, lookups_ids) in steps.iter().enumerate() {
        let mut lookups = vec![];
        let mut loss = Tensor::<1>::zeros([1], &device);
        let (mut all_ids, mut all_grads) = (vec![], vec![]);
        for ids in lookups_ids {
            let n = ids.len();
            let c: Vec<f32> = (0..n * d).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
            let ids_t = Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [n]), &inner);
            let rows = weights.tensors[table.0]
                .val()
                .inner()
                .reshape([v, d])
                .select(0, ids_t.clone())
                .autodiff()
                .require_grad();
            let c_t = Tensor::<2>::from_data(TensorData::new(c.clone(), [n, d]), &device);
            loss = loss + (rows.clone() * c_t).sum();
            lookups.push(RowLookup { param: table, ids: ids_t, rows });
            all_ids.extend_from_slice(ids);
            all_grads.extend(c.iter().map(|x| *x as f64));
            touched.extend(ids.iter().copied());
        }
        let mut grads = loss.backward();
        optim.step(&program, &mut weights, lookups, &mut grads, lr);
        reference.step(&all_ids, &all_grads, lr);
        let what = format!("{rule:?} step {}", k + 1);
        let w = floats(weights.tensors[table.0].val());
        assert_close(&format!("{what}: table"), &w, &reference.w, 1e-6, 1e-5);
        let state = optim.tables[table.0].as_ref().expect("the table has state");
        assert_eq!(state.steps, k as u64 + 1, "{what}: step count");
        assert_close(&format!("{what}: state 0"), &floats(state.tensors[0].clone()), &reference.s1, 1e-7, 1e-5);
        if rule == RowRule::LazyAdam {
            assert_close(&format!("{what}: state 1"), &floats(state.tensors[1].clone()), &reference.s2, 1e-9, 1e-5);
        }
        for r in (0..v).filter(|r| !touched.contains(&(*r as i64))) {
            assert_eq!(w[r * d..(r + 1) * d], initial[r * d..(r + 1) * d], "{what}: row {r} was never looked up");
        }
    }
    assert!(touched.len() == v, "every row is looked up by the end");
}

#[test]
fn lazy_adam_matches_the_rule_over_several_steps() {
    rule_matches_reference(RowRule::LazyAdam);
}

#[test]
fn lazy_adagrad_matches_the_rule_over_several_steps() {
    rule_matches_reference(RowRule::LazyAdagrad);
}

#[test]
fn rowwise_adagrad_matches_the_rule_over_several_steps() {
    rule_matches_reference(RowRule::RowwiseAdagrad);
}

fn temp(name: &str) -> Scratch {
    Scratch::new(&format!("rows-{name}"))
}

/// A small simulated data set in a fresh temporary folder.
fn small_data(name: &str) -> Scratch {
    let data = temp(name);
    let cfg = recspec::simulate::SimConfig {
        users: 60,
        items: 150,
        impressions_per_user: 8,
        seq_len: 6,
        seed: 4,
        ..Default::default()
    };
    recspec::simulate::simulate(&cfg, &data).unwrap();
    data
}

/// Training on burn-flex, quietly.
fn cpu_options() -> recspec::app::train::TrainOptions {
    recspec::app::train::TrainOptions {
        device: recspec::runtime::parse_device("cpu").unwrap(),
        skip_bad_rows: false,
        extra_labels: vec![],
        progress: false,
        init_from: None,
    }
}

fn din(data: &Path) -> Program {
    let spec = crate::root().join("specs/din.recspec");
    let small = [recspec::overrides::Override::int("D", 8, "test")];
    let (_, checked) = recspec::app::compile_for_data(&spec, Some(data), None, &small).unwrap();
    let graph = checked.graph.expect("din compiles on the simulated data");
    lower(&graph, &Bindings::of(&graph)).unwrap()
}

fn batches(program: &Program, data: &Path, n: usize) -> Vec<recspec::data::HostBatch> {
    let schema = recspec::data::Schema::from_program(program).unwrap();
    let mut loader = recspec::data::Loader::open(&data.join("train.jsonl"), &schema, 32, false).unwrap();
    (0..n).map(|_| loader.next_batch().unwrap().unwrap()).collect()
}

/// `steps` training steps from seed-7 weights with `settings`; the weights after each step.
fn run(program: &Program, hbs: &[recspec::data::HostBatch], settings: &TrainSettings) -> Vec<Vec<Vec<f32>>> {
    let device = Device::flex().autodiff();
    let mut weights = Weights::init(program, &device, 7);
    let mut optim = Optimizer::new(program, settings);
    let mut after = vec![];
    for (i, hb) in hbs.iter().enumerate() {
        let batch = DeviceBatch::from_host(hb, &device);
        let (next, terms) = train_step(program, weights, &mut optim, 0.01, &batch, i as u64);
        assert!(terms.iter().all(|v| v.is_finite()));
        weights = next;
        after.push(weights.tensors.iter().map(|t| floats(t.val())).collect());
    }
    after
}

/// On DIN (three sequences and the target share the item table; a field table), lazy Adam and
/// burn's dense Adam agree on every weight after one step; after the second step they differ
/// exactly at rows the first step looked up and the second did not. Lazy Adagrad equals dense
/// Adagrad at every step. The dense runs use burn's own gradient of the whole table, so this
/// checks the row leaves and the per-row sums end to end.
#[test]
fn lazy_updates_agree_with_dense_where_the_rules_say() {
    let data = small_data("din-data");
    let program = din(&data);
    let tables: Vec<usize> = program.row_tables().iter().enumerate().filter(|(_, r)| **r).map(|(i, _)| i).collect();
    assert!(tables.len() >= 2, "din has an item and a field table: {tables:?}");
    let hbs = batches(&program, &data, 3);
    let settings =
        |optimizer, embedding_optimizer| TrainSettings { optimizer, embedding_optimizer, ..TrainSettings::default() };
    let lazy = run(&program, &hbs, &settings(OptimizerKind::Adam, EmbeddingOptimizer::Lazy));
    let dense = run(&program, &hbs, &settings(OptimizerKind::Adam, EmbeddingOptimizer::Dense));
    for (p, (a, b)) in lazy[0].iter().zip(&dense[0]).enumerate() {
        let diff = max_difference(a, b);
        assert!(diff <= 1e-6, "step 1, {}: lazy and dense Adam differ by {diff}", program.params[p].key());
    }
    let items = program.params.iter().position(|p| p.instance == "items").expect("din's item table");
    let d = *program.params[items].shape.last().unwrap();
    let initial = floats(Weights::init(&program, &Device::flex().autodiff(), 7).tensors[items].val());
    let row = |w: &[f32], r: usize| w[r * d..(r + 1) * d].to_vec();
    let (mut kept, mut never) = (0, 0);
    for r in 0..initial.len() / d {
        let (l1, l2) = (row(&lazy[0][items], r), row(&lazy[1][items], r));
        let (d1, d2) = (row(&dense[0][items], r), row(&dense[1][items], r));
        if l1 != row(&initial, r) && l2 == l1 {
            // Looked up in step 1, not in step 2: lazy Adam keeps it, dense Adam moves it on.
            assert!(d2 != d1, "row {r}: dense Adam moves a row by its momentum");
            kept += 1;
        } else if l1 == row(&initial, r) && l2 == l1 {
            // Never looked up: neither moves it.
            assert_eq!(d2, row(&initial, r), "row {r}: dense Adam with zero moments keeps it");
            never += 1;
        }
    }
    assert!(kept > 0 && never > 0, "rows looked up only in step 1 ({kept}) and never ({never})");

    let lazy = run(&program, &hbs, &settings(OptimizerKind::Adagrad, EmbeddingOptimizer::Lazy));
    let dense = run(&program, &hbs, &settings(OptimizerKind::Adagrad, EmbeddingOptimizer::Dense));
    for step in 0..3 {
        for (p, (a, b)) in lazy[step].iter().zip(&dense[step]).enumerate() {
            let diff = max_difference(a, b);
            assert!(
                diff <= 1e-6,
                "step {}, {}: lazy and dense Adagrad differ by {diff}",
                step + 1,
                program.params[p].key()
            );
        }
    }
}

/// A run resumed after its first epoch ends where the same run trained without a stop ends: the
/// tables' optimizer state (moments, step counts) is in the checkpoint.
#[test]
fn a_resumed_run_continues_the_tables_state_exactly() {
    use recspec::app::train::train;
    use recspec::app::RunDir;
    let data = small_data("resume-data");
    let program = din(&data);
    let options = cpu_options;
    let settings =
        |epochs| TrainSettings { lr: 0.01, batch_size: 32, epochs, max_steps: Some(6), ..TrainSettings::default() };
    let straight = temp("straight");
    let stopped = temp("stopped");
    std::fs::create_dir_all(&straight).unwrap();
    std::fs::create_dir_all(&stopped).unwrap();
    let a = train(&RunDir::open(&straight), program.clone(), settings(2), &data, options()).unwrap();
    train(&RunDir::open(&stopped), program.clone(), settings(1), &data, options()).unwrap();
    assert!(RunDir::open(&stopped).rows_file(1).exists(), "the first epoch's table state is saved");
    let b = train(&RunDir::open(&stopped), program.clone(), settings(2), &data, options()).unwrap();
    let (a, b) = (a.weights.unwrap(), b.weights.unwrap());
    for (p, (x, y)) in a.tensors.iter().zip(&b.tensors).enumerate() {
        assert_eq!(floats(x.val()), floats(y.val()), "{} after resuming", program.params[p].key());
    }
}

/// A spec with hashed ids trains on rows of raw ids (strings and large integers) and scores
/// rows whose ids it never saw: they land in buckets like any other.
#[test]
fn hashed_ids_train_on_raw_ids_and_score_unseen_ones() {
    use recspec::app::train::train;
    use recspec::app::RunDir;
    let spec = "model m {
  dim T = 4;
  dim D = 8;
  dim V = 5003;
  input item: id[B] vocab V hashed;
  seq clicks: id[B, T] vocab V hashed;
  label click;
  let items = Embedding(vocab: V, dim: D);
  output p = sigmoid(dot(items(item), pool(items(clicks), mask: clicks.mask, mode: mean)));
  loss click = bce(p, label: click);
}
";
    let (_, checked) = recspec::compile_str("hashed.recspec", spec, &[]);
    let graph = checked.graph.expect("the hashed spec compiles");
    let program = lower(&graph, &Bindings::of(&graph)).unwrap();
    let data = temp("hashed-data");
    std::fs::create_dir_all(&data).unwrap();
    // Users like items of their own kind: item keys are strings, histories mix strings and
    // 64-bit integers.
    let row = |u: usize, item: &str, click: u8| {
        format!(
            "{{\"user\": {u}, \"item\": \"{item}\", \"clicks\": [\"sku-{}\", {}], \"labels\": {{\"click\": {click}}}}}\n",
            u % 2,
            9_000_000_000_000_000_000u64 + (u % 2) as u64
        )
    };
    let rows = |n: usize| -> String {
        (0..n).map(|u| row(u, &format!("sku-{}", (u + u / 2) % 2), u8::from((u + u / 2) % 2 == u % 2))).collect()
    };
    std::fs::write(data.join("train.jsonl"), rows(256)).unwrap();
    std::fs::write(data.join("valid.jsonl"), rows(64)).unwrap();
    let out = temp("hashed-run");
    std::fs::create_dir_all(&out).unwrap();
    let settings = TrainSettings { lr: 0.05, batch_size: 32, epochs: 3, ..TrainSettings::default() };
    let options = cpu_options();
    let report = train(&RunDir::open(&out), program.clone(), settings, &data, options).unwrap();
    let auc = report.valid.as_ref().unwrap().streams["click"].auc.unwrap();
    assert!(auc > 0.9, "the model learns from hashed ids: valid AUC {auc}");
    // Ids never seen in training: scored, finite, in [0, 1].
    let unseen = data.join("unseen.jsonl");
    std::fs::write(
        &unseen,
        "{\"user\": 1, \"item\": \"brand-new\", \"clicks\": [-42, \"also-new\"], \"labels\": {\"click\": 1}}\n",
    )
    .unwrap();
    let schema = recspec::data::Schema::from_program(&program).unwrap();
    let hb = recspec::data::Loader::open(&unseen, &schema, 4, false).unwrap().next_batch().unwrap().unwrap();
    let device = recspec::runtime::parse_device("cpu").unwrap();
    let batch = DeviceBatch::from_host(&hb, &device);
    let p = recspec::runtime::eval::predict(&program, &report.weights.unwrap(), &batch, &program.labels);
    assert!(p["click"].iter().all(|x| x.is_finite() && (0.0..=1.0).contains(x)), "{p:?}");
    for dir in [&data, &out] {
        std::fs::remove_dir_all(dir).ok();
    }
}

/// Parallel initialisation gives the values of one sequential SplitMix stream, across block
/// boundaries, for normal and uniform rules.
#[test]
fn large_tables_initialise_in_parallel_to_the_sequential_values() {
    use recspec::lower::InitRule;
    use recspec::runtime::weights::initial_values;
    let n = (1 << 21) + 12_345;
    for rule in [InitRule::Normal { std: 0.05 }, InitRule::Uniform { bound: 0.1 }, InitRule::Constant(0.5)] {
        let mut rng = SplitMix(77);
        let sequential: Vec<f32> = (0..n)
            .map(|_| match rule {
                InitRule::Normal { std } => (rng.normal() * std) as f32,
                InitRule::Uniform { bound } => rng.uniform(-bound, bound) as f32,
                InitRule::Constant(c) => c,
            })
            .collect();
        assert!(initial_values(rule, n, 77) == sequential, "{rule:?}");
    }
}
