//! End to end on the CPU default: simulate, train a small DFN into a run directory, validate,
//! reload, resume.

use crate::Scratch;
use recspec::app::train::{train, TrainOptions};
use recspec::app::{AppError, RunDir};
use recspec::config::TrainSettings;
use recspec::lower::{lower, Bindings, Program};
use recspec::runtime::train::TrainReport;
use recspec::runtime::weights::Weights;
use recspec::simulate::{simulate, SimConfig};
use std::path::Path;

fn temp(name: &str) -> Scratch {
    Scratch::new(name)
}

fn small_data(dir: &Path) {
    let cfg =
        SimConfig { users: 300, items: 300, impressions_per_user: 80, seq_len: 10, seed: 3, ..SimConfig::default() };
    simulate(&cfg, dir).unwrap();
}

fn dfn_plan(data: &Path) -> Program {
    let spec = crate::root().join("specs/dfn.recspec");
    let small =
        [recspec::overrides::Override::int("D", 16, "test"), recspec::overrides::Override::int("heads", 2, "test")];
    let (_, checked) = recspec::app::compile_for_data(&spec, Some(data), None, &small).unwrap();
    lowered(checked.graph.expect("dfn compiles on the simulated data"))
}

fn lowered(graph: recspec::ir::Graph) -> Program {
    lower(&graph, &Bindings::of(&graph)).unwrap()
}

/// Trains `plan` into the run directory `out` (continuing the run there, if any).
fn train_run(plan: Program, data: &Path, out: &Path, epochs: usize) -> Result<TrainReport, AppError> {
    std::fs::create_dir_all(out).unwrap();
    let settings = TrainSettings { lr: 0.005, batch_size: 128, epochs, max_steps: None, ..TrainSettings::default() };
    let options = TrainOptions {
        device: recspec::runtime::parse_device("cpu").unwrap(),
        skip_bad_rows: false,
        extra_labels: vec![],
        progress: false,
        init_from: None,
    };
    train(&RunDir::open(out), plan, settings, data, options)
}

#[test]
fn dfn_learns_reloads_bit_identically_and_resumes() {
    let data = temp("train-data");
    let out = temp("train-run");
    small_data(&data);
    let plan = dfn_plan(&data);
    let report = train_run(plan.clone(), &data, &out, 3).unwrap();
    assert_eq!(report.epochs, 3);
    assert!(report.steps >= 400, "a few hundred steps: {}", report.steps);
    let losses = &report.epoch_losses;
    assert!(losses[2] < losses[1] && losses[1] < losses[0], "training loss fell: {losses:?}");
    let click = report.valid.as_ref().unwrap().streams["click"].auc.unwrap();
    assert!(click > 0.6, "validation click AUC {click}");

    // Reloading gives bit-identical predictions on the same backend.
    let device = recspec::runtime::parse_device("cpu").unwrap();
    let trained = report.weights.expect("final weights");
    let reloaded = RunDir::open(&out).load_weights(&plan, &device).unwrap();
    let schema = recspec::data::Schema::from_program(&plan).unwrap();
    let mut loader = recspec::data::Loader::open(&data.join("test.jsonl"), &schema, 100, false).unwrap();
    let hb = loader.next_batch().unwrap().unwrap();
    let batch = recspec::runtime::exec::DeviceBatch::from_host(&hb, &device);
    let a = recspec::runtime::eval::predict(&plan, &trained, &batch, &plan.labels);
    let b = recspec::runtime::eval::predict(&plan, &reloaded, &batch, &plan.labels);
    assert_eq!(a, b);
    assert!(!a["click"].is_empty());

    // A fourth epoch resumes after the three completed ones.
    let resumed = train_run(plan, &data, &out, 4).unwrap();
    assert_eq!(resumed.epochs, 4);
    assert_eq!(resumed.epoch_losses.len(), 1, "only the missing epoch ran");
    let state = RunDir::open(&out).load_state().unwrap().unwrap();
    assert_eq!(state.history.len(), 4);
    std::fs::remove_dir_all(&data).ok();
}

#[test]
fn a_non_finite_loss_stops_training_with_the_term_named() {
    let data = temp("nan-data");
    std::fs::create_dir_all(&data).unwrap();
    let rows: String =
        (0..40).map(|i| format!("{{\"user\": {i}, \"x\": [1e30], \"labels\": {{\"click\": {}}}}}\n", i % 2)).collect();
    std::fs::write(data.join("train.jsonl"), &rows).unwrap();
    std::fs::write(data.join("valid.jsonl"), &rows).unwrap();
    let spec = "model m {\n dim K = 1;\n input x: float[B, K];\n label click;\n let big = x * 1e30;\n output p = sigmoid(Linear(out: 1)(big - big));\n loss click_loss = bce(p, label: click);\n}\n";
    let (_, checked) = recspec::compile_str("nan.recspec", spec, &[]);
    let plan = lowered(checked.graph.unwrap());
    let out = temp("nan-run");
    let err = train_run(plan, &data, &out, 1).err().expect("training must stop").to_string();
    assert!(err.contains("loss term `click_loss`") && err.contains("NaN"), "{err}");
    std::fs::remove_dir_all(&data).ok();
}

/// DUMN end to end at small sizes: its four memories are written during training, saved in the
/// checkpoint, and a reload predicts bit-identically.
#[test]
fn dumn_trains_and_checkpoints_its_memories() {
    let data = temp("dumn-data");
    let out = temp("dumn-run");
    small_data(&data);
    let spec = crate::root().join("specs/dumn.recspec");
    let small = ["D", "heads", "slots", "ffn"]
        .into_iter()
        .zip([16, 2, 16, 32])
        .map(|(k, v)| recspec::overrides::Override::int(k, v, "test"))
        .collect::<Vec<_>>();
    let (_, checked) = recspec::app::compile_for_data(&spec, Some(&data), None, &small).unwrap();
    let plan = lowered(checked.graph.expect("dumn compiles on the simulated data"));
    let device = recspec::runtime::parse_device("cpu").unwrap();
    let initial = Weights::init(&plan, &device, 1);
    let report = train_run(plan.clone(), &data, &out, 2).unwrap();
    let losses = &report.epoch_losses;
    assert!(losses.iter().all(|l| l.is_finite()) && losses[1] < losses[0], "training loss fell: {losses:?}");
    let trained = report.weights.expect("final weights");
    let reloaded = RunDir::open(&out).load_weights(&plan, &device).unwrap();
    for m in ["m_c/return", "m_u/return", "m_l/return", "m_d/return"] {
        let i = plan.param(m, "slots").unwrap().0;
        let host = |w: &Weights| w.tensors[i].val().into_data().try_to_vec::<f32>().unwrap();
        assert_ne!(host(&initial), host(&trained), "{m} was written during training");
        assert_eq!(host(&trained), host(&reloaded), "{m} is restored from the checkpoint");
    }
    let schema = recspec::data::Schema::from_program(&plan).unwrap();
    let mut loader = recspec::data::Loader::open(&data.join("test.jsonl"), &schema, 100, false).unwrap();
    let batch = recspec::runtime::exec::DeviceBatch::from_host(&loader.next_batch().unwrap().unwrap(), &device);
    let a = recspec::runtime::eval::predict(&plan, &trained, &batch, &plan.labels);
    assert_eq!(a, recspec::runtime::eval::predict(&plan, &reloaded, &batch, &plan.labels));
    std::fs::remove_dir_all(&data).ok();
}
