//! The generated PyTorch module against the burn runtime, for every shipped spec: the same
//! weights and batch give the same outputs and loss terms (eval mode), and the same gradients.
//!
//! Needs a Python with torch and safetensors: `RECSPEC_PYTHON`, or `.venv/bin/python` as the
//! README's test command sets it up.

use crate::Scratch;
use burn::prelude::*;
use recspec::config::{EmbeddingOptimizer, OptimizerKind, TrainSettings};
use recspec::data::{Column, ColumnData, HostBatch};
use recspec::lower::kernel::{AttentionKernel, LayerKernel, PoolingKernel};
use recspec::lower::{ParamRole, Program};
use recspec::overrides::Override;
use recspec::runtime::exec::{forward, DeviceBatch, Mode};
use recspec::runtime::train::{train_step, Optimizer};
use recspec::runtime::weights::Weights;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Relative error allowed for outputs and loss terms, and for gradients.
const VALUE_TOLERANCE: f32 = 1e-5;
const GRADIENT_TOLERANCE: f32 = 1e-4;

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RECSPEC_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = crate::root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the PyTorch tests need a Python with torch: set RECSPEC_PYTHON, or run the README's test command (scripts/test.sh), which creates .venv"
    );
    venv
}

/// Where `recspec_torch` is imported from: `RECSPEC_TORCH_PATH` (bench/mutate_ops.py points it
/// at mutated copies), else the repository's `python/`.
fn torch_package() -> PathBuf {
    std::env::var_os("RECSPEC_TORCH_PATH").map(PathBuf::from).unwrap_or_else(|| crate::root().join("python"))
}

fn temp(name: &str) -> Scratch {
    Scratch::new(&format!("torch-{name}"))
}

/// A batch file for `recspec_torch.check`: every input the program reads, and the labels.
fn batch_file(program: &Program, hb: &HostBatch) -> Vec<u8> {
    serialize(batch_tensors(program, hb, ""))
}

type NamedTensor = (String, Dtype, Vec<usize>, Vec<u8>);

fn serialize(tensors: Vec<NamedTensor>) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, dtype, shape, bytes)| (k.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

/// Every input the program reads, and the labels, keyed `{prefix}input:<name>` and
/// `{prefix}label:<name>`.
fn batch_tensors(program: &Program, hb: &HostBatch, prefix: &str) -> Vec<NamedTensor> {
    let mut tensors: Vec<NamedTensor> = vec![];
    for (input, column) in program.inputs().iter().zip(&hb.inputs) {
        let Some(Column { data, shape }) = column else { continue };
        let key = format!("{prefix}input:{}", input.name);
        tensors.push(match data {
            ColumnData::Ids(d) => (key, Dtype::I64, shape.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ColumnData::Floats(d) => (key, Dtype::F32, shape.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ColumnData::Mask(d) => (key, Dtype::BOOL, shape.clone(), d.iter().map(|b| u8::from(*b)).collect()),
        });
    }
    for (name, data) in program.labels.iter().zip(&hb.labels) {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((format!("{prefix}label:{name}"), Dtype::F32, vec![data.len()], bytes));
    }
    tensors
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// The largest `|x|`; infinite when `v` holds a NaN or an infinity.
fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(if x.is_finite() { x.abs() } else { f32::INFINITY }))
}

/// `max |a - b| / max(max |b|, floor)`: the error relative to the reference's scale. A gradient
/// that is zero in exact arithmetic (a bias under a softmax) is float32 noise on both sides, so
/// gradients use as floor 1e-3 of the model's largest gradient.
fn relative_error(a: &[f32], reference: &[f32], floor: f32) -> f32 {
    assert_eq!(a.len(), reference.len());
    let scale = max_abs(reference).max(floor).max(1e-12);
    if !scale.is_finite() {
        return f32::INFINITY;
    }
    crate::max_difference(a, reference) / scale
}

/// What burn computed for one spec: outputs, loss means and gradients, by the check file's keys.
fn burn_results(program: &Program, weights: &Weights, batch: &DeviceBatch) -> BTreeMap<String, Vec<f32>> {
    let pass = forward(program, weights, batch, Mode::Eval, 0);
    let mut out = BTreeMap::new();
    for o in &program.outputs {
        out.insert(format!("output:{}", o.name), pass.value(o.value).unwrap().to_host());
    }
    for (term, mean) in program.losses.iter().zip(&pass.losses) {
        out.insert(format!("loss:{}", term.name), floats(mean.clone()));
    }
    if !pass.losses.is_empty() {
        let grads = pass.total.backward();
        for (slot, tensor) in program.params.iter().zip(&weights.tensors) {
            if slot.role == ParamRole::Trained {
                if let Some(g) = tensor.val().grad(&grads) {
                    out.insert(format!("grad:{}", slot.key()), floats(g));
                }
            }
        }
    }
    out
}

/// Compares burn's results with the generated module's; returns the failures.
fn compare(spec: &str, ours: &BTreeMap<String, Vec<f32>>, torch: &SafeTensors) -> Vec<String> {
    let mut failures = vec![];
    let theirs: BTreeMap<String, Vec<f32>> = torch
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
        .collect();
    let largest_gradient =
        ours.iter().filter(|(k, _)| k.starts_with("grad:")).fold(0f32, |m, (_, v)| m.max(max_abs(v)));
    for (key, value) in ours {
        let (tolerance, floor) = if key.starts_with("grad:") {
            (GRADIENT_TOLERANCE, 1e-3 * largest_gradient)
        } else {
            (VALUE_TOLERANCE, 0.0)
        };
        match theirs.get(key) {
            // A gradient PyTorch leaves as None is zero.
            None if key.starts_with("grad:") && value.iter().all(|v| *v == 0.0) => {}
            None => failures.push(format!("{spec}: `{key}` missing from the PyTorch results")),
            Some(t) if t.len() != value.len() => {
                failures.push(format!("{spec}: `{key}` has {} values in PyTorch, {} in burn", t.len(), value.len()))
            }
            Some(t) => {
                let e = relative_error(value, t, floor);
                if e.is_nan() || e > tolerance {
                    failures.push(format!("{spec}: `{key}` relative error {e:.2e} > {tolerance:.0e}"));
                }
            }
        }
    }
    for key in theirs.keys().filter(|k| !ours.contains_key(*k)) {
        let zero = theirs[key].iter().all(|v| *v == 0.0);
        if !(key.starts_with("grad:") && zero) {
            failures.push(format!("{spec}: PyTorch has `{key}`, burn does not"));
        }
    }
    failures
}

/// The small simulated data set the comparisons run on, in a fresh temporary folder.
fn comparison_data(name: &str) -> Scratch {
    let data = temp(name);
    let cfg = recspec::simulate::SimConfig {
        users: 120,
        items: 200,
        impressions_per_user: 10,
        seq_len: 8,
        seed: 5,
        ..Default::default()
    };
    recspec::simulate::simulate(&cfg, &data).unwrap();
    data
}

/// Small widths keep every spec quick; the data set's dims come from its data.toml.
fn small_dims() -> Vec<Override> {
    [("D", 16), ("heads", 2), ("slots", 8), ("ffn", 32)]
        .into_iter()
        .map(|(k, v)| Override::int(k, v, "test").optional())
        .collect()
}

/// Every shipped spec (specs/*.recspec), sorted, then the specs of tests/data/coverage, which
/// call the ops no shipped spec calls.
fn compared_specs() -> Vec<PathBuf> {
    let mut specs = vec![];
    for dir in ["specs", "tests/data/coverage"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(crate::root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "recspec"))
            .collect();
        found.sort();
        specs.extend(found);
    }
    specs
}

#[test]
fn every_spec_matches_its_generated_pytorch_module() {
    let python = python();
    let data = comparison_data("data");
    let small = small_dims();
    let device = Device::flex().autodiff();
    let specs = compared_specs();
    let mut failures = vec![];
    for spec in &specs {
        let name = spec.file_stem().unwrap().to_string_lossy().to_string();
        let (_, checked) = recspec::app::compile_for_data(spec, Some(&data), None, &small).unwrap();
        let graph = checked.graph.unwrap_or_else(|| panic!("{name} compiles on the simulated data"));
        let program = recspec::app::lower_graph(&graph).unwrap();
        let weights = Weights::init(&program, &device, 7);
        let schema = recspec::data::Schema::from_program(&program).unwrap();
        let mut loader = recspec::data::Loader::open(&data.join("test.jsonl"), &schema, 16, false).unwrap();
        let hb = loader.next_batch().unwrap().unwrap();
        let dir = temp(&name);
        std::fs::write(dir.join("model.py"), recspec::pytorch::render(&program).unwrap()).unwrap();
        let weight_file = weights.to_safetensors(&program).unwrap();
        let back = Weights::from_safetensors(&program, &weight_file, &device).unwrap();
        for (a, b) in weights.tensors.iter().zip(&back.tensors) {
            assert_eq!(floats(a.val()), floats(b.val()), "{name}: weights survive a safetensors round trip");
        }
        std::fs::write(dir.join("weights.safetensors"), weight_file).unwrap();
        std::fs::write(dir.join("batch.safetensors"), batch_file(&program, &hb)).unwrap();
        let ours = burn_results(&program, &weights, &DeviceBatch::from_host(&hb, &device));
        let run = Command::new(&python)
            .args(["-m", "recspec_torch.check", "--model"])
            .arg(dir.join("model.py"))
            .arg("--weights")
            .arg(dir.join("weights.safetensors"))
            .arg("--batch")
            .arg(dir.join("batch.safetensors"))
            .arg("--out")
            .arg(dir.join("out.safetensors"))
            .env("PYTHONPATH", torch_package())
            .output()
            .expect("python runs");
        assert!(run.status.success(), "{name}: the generated module failed:\n{}", String::from_utf8_lossy(&run.stderr));
        let bytes = std::fs::read(dir.join("out.safetensors")).unwrap();
        let theirs = SafeTensors::deserialize(&bytes).unwrap();
        assert!(ours.keys().any(|k| k.starts_with("grad:")) || graph.losses.is_empty(), "{name}: gradients compared");
        failures.extend(compare(&name, &ours, &theirs));
        std::fs::remove_dir_all(&dir).ok();
    }
    std::fs::remove_dir_all(&data).ok();
    assert!(specs.len() >= 16, "{} specs", specs.len());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// A simulated data set of `users` users, `items` items and `impressions` rows each.
fn simulated(name: &str, users: usize, items: usize, impressions: usize, seq_len: usize) -> Scratch {
    let data = temp(name);
    let cfg = recspec::simulate::SimConfig {
        users,
        items,
        impressions_per_user: impressions,
        seq_len,
        seed: 9,
        ..Default::default()
    };
    recspec::simulate::simulate(&cfg, &data).unwrap();
    data
}

/// `recspec pytorch SPEC --data DATA --out RUN EXTRA...`: a run directory with `model.py`.
fn prepare_run(name: &str, spec: &str, data: &Path, extra: &[&str]) -> Scratch {
    use crate::cli::{code, recspec, stderr};
    let run = temp(name);
    std::fs::remove_dir_all(&run).unwrap();
    let mut args = vec!["pytorch", spec, "--data", data.to_str().unwrap(), "--out", run.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = recspec(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    run
}

/// Runs `recspec_torch.train RUN --data DATA`, under `launcher` (torchrun's module and flags)
/// or as one process; returns its stdout and stderr after asserting it succeeded.
fn train_in_pytorch(launcher: &[&str], run: &Path, data: &Path) -> String {
    train_in_pytorch_with(launcher, run, data, &[])
}

/// [`train_in_pytorch`] with more flags for the trainer.
fn train_in_pytorch_with(launcher: &[&str], run: &Path, data: &Path, flags: &[&str]) -> String {
    // torchrun's own scratch files (`torchelastic_*`) go to a directory removed afterwards.
    let tmp = Scratch::new("torch-tmp");
    let out = Command::new(python())
        .args(launcher)
        .args(["-m", "recspec_torch.train"])
        .arg(run)
        .arg("--data")
        .arg(data)
        .args(flags)
        .env("PYTHONPATH", torch_package())
        .env("OMP_NUM_THREADS", "1")
        .env("TMPDIR", tmp.as_os_str())
        .output()
        .expect("python runs");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "recspec_torch.train failed:\n{log}");
    log
}

/// `recspec pytorch` prepares a run, two `torchrun` ranks train the generated DFN on disjoint
/// shards (gloo, CPU), rank 0 writes the weights, and `recspec eval` reads them.
#[test]
fn torchrun_trains_dfn_on_two_ranks_and_recspec_evaluates_it() {
    use crate::cli::{code, recspec, stderr, stdout};
    let data = simulated("torchrun-data", 200, 300, 80, 8);
    let settings = ["--set", "D=16", "--set", "heads=2", "--batch-size", "64", "--epochs", "3", "--lr", "0.005"];
    let run = prepare_run("torchrun-run", "specs/dfn.recspec", &data, &settings);
    let (data_arg, run_arg) = (data.to_str().unwrap(), run.to_str().unwrap());
    let torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"];
    let log = train_in_pytorch(&torchrun, &run, &data);

    // Both ranks trained, on disjoint shards that together cover the training split.
    let rows = |rank: usize| -> Vec<usize> {
        let text = std::fs::read_to_string(run.join(format!("rows.rank{rank}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let (a, b) = (rows(0), rows(1));
    assert!(!a.is_empty() && !b.is_empty());
    assert!(a.iter().all(|i| i % 2 == 0) && b.iter().all(|i| i % 2 == 1), "shards are index % world");
    let train_rows = recspec::data::count_rows(&data.join("train.jsonl")).unwrap();
    assert_eq!(a.len() + b.len(), train_rows, "every training row seen once per epoch, by one rank");

    // A few hundred steps on each rank, and the loss fell.
    let epochs: Vec<serde_json::Value> = std::fs::read_to_string(run.join("torch_metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 3, "{log}");
    assert!(epochs.iter().all(|e| e["world_size"] == 2), "two ranks: {epochs:?}");
    assert!(epochs[2]["steps"].as_u64().unwrap() >= 200, "{}", epochs[2]);
    // The ranks read different rows; only averaged gradients leave them with the same weights.
    let digest = |rank: usize| std::fs::read_to_string(run.join(format!("weights.rank{rank}.sha256"))).unwrap();
    assert_eq!(digest(0).len(), 64, "{}", digest(0));
    assert_eq!(digest(0), digest(1), "the ranks' final weights are identical");
    let loss = |i: usize| epochs[i]["train_loss"].as_f64().unwrap();
    assert!(loss(2) < loss(0), "training loss fell: {} -> {}", loss(0), loss(2));

    // Rank 0's checkpoint loads into recspec.
    assert!(run.join("model.safetensors").exists());
    let o = recspec(&["eval", run_arg, "--data", data_arg]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let auc = report["report"]["streams"]["click"]["auc"].as_f64().unwrap();
    assert!(auc > 0.55, "click AUC of the torch-trained DFN in recspec: {auc}");
    std::fs::remove_dir_all(&data).ok();
}

/// Embedding tables sharded by TorchRec on two gloo ranks (`--table-sharding`), with the
/// training split a folder of shards:
/// - table-wise sharding with row-wise Adagrad computes what the replicated trainer computes
///   (same weights after 4 steps, to float rounding): the sharded lookups, TorchRec's gradient
///   averaging and fbgemm's fused update are recspec's semantics;
/// - column-wise sharding splits every table's columns over both ranks, trains for 3 epochs on
///   rows the ranks read from disjoint shards covering the split, the loss falls, and rank 0's
///   checkpoint (tables gathered whole) is what `recspec eval` reads.
#[test]
fn torchrec_shards_din_tables_on_two_ranks() {
    use crate::cli::{code, recspec, stderr, stdout};
    let data = simulated("torchrec-data", 160, 300, 40, 8);
    // train/ as 3 shards: ranks 0 and 1 read one whole each, and split the third by rows.
    let text = std::fs::read_to_string(data.join("train.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    std::fs::remove_file(data.join("train.jsonl")).unwrap();
    std::fs::create_dir(data.join("train")).unwrap();
    let third = lines.len() / 3;
    for (k, part) in [&lines[..third], &lines[third..2 * third], &lines[2 * third..]].iter().enumerate() {
        std::fs::write(data.join(format!("train/part-{k}.jsonl")), part.join("\n") + "\n").unwrap();
    }
    let settings = [
        "--set",
        "D=16",
        "--batch-size",
        "64",
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--embedding-optimizer",
        "rowwise_adagrad",
    ];
    let run = prepare_run("torchrec-run", "specs/din.recspec", &data, &settings);
    let torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"];
    let short = ["--epochs", "1", "--max-steps", "4"];
    let weights = |name: &str| {
        let path = run.join(name);
        std::fs::rename(run.join("model.safetensors"), &path).unwrap();
        path
    };

    let code_diff = "import json, math, sys\nfrom safetensors.torch import load_file\na, b = load_file(sys.argv[1]), load_file(sys.argv[2])\nassert sorted(a) == sorted(b), (sorted(a), sorted(b))\nout = {}\nfor k in a:\n    d = (a[k] - b[k]).abs().max().item()\n    ok = bool(a[k].isfinite().all() and b[k].isfinite().all()) and math.isfinite(d)\n    out[k] = d if ok else 1e30\nprint(json.dumps(out))";
    // Row-wise Adagrad (fbgemm's EXACT_ROWWISE_ADAGRAD), then Adagrad with lazy embedding
    // updates (EXACT_ADAGRAD): the run's optimizer is in run.toml.
    let config = std::fs::read_to_string(run.join("run.toml")).unwrap();
    for (optimizer, embedding_optimizer) in [("adam", "rowwise_adagrad"), ("adagrad", "lazy")] {
        let adjusted = config.replace("optimizer = \"adam\"", &format!("optimizer = \"{optimizer}\""));
        std::fs::write(run.join("run.toml"), adjusted).unwrap();
        let flags = [&short[..], &["--embedding-optimizer", embedding_optimizer]].concat();
        train_in_pytorch_with(&torchrun, &run, &data, &flags);
        let replicated = weights("replicated.safetensors");
        let log =
            train_in_pytorch_with(&torchrun, &run, &data, &[&flags[..], &["--table-sharding", "table_wise"]].concat());
        assert!(log.contains("TorchRec shards 2 tables table_wise over 2 ranks"), "{log}");
        let table_wise = weights("table_wise.safetensors");
        let diffs: std::collections::BTreeMap<String, f64> = serde_json::from_value(python_json(
            &python(),
            code_diff,
            &[replicated.display().to_string(), table_wise.display().to_string()],
        ))
        .unwrap();
        assert!(diffs.contains_key("items/table") && diffs.contains_key("field_emb/table"), "{diffs:?}");
        for (key, d) in &diffs {
            assert!(
                *d <= 1e-6,
                "{optimizer}, {embedding_optimizer}: {key}: sharded and replicated training differ by {d} after 4 steps"
            );
        }
    }
    std::fs::write(run.join("run.toml"), &config).unwrap();

    let log = train_in_pytorch_with(&torchrun, &run, &data, &["--table-sharding", "column_wise"]);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("sharding.json")).unwrap()).unwrap();
    for table in ["items/table", "field_emb/table"] {
        let shards = plan["tables"][table].as_array().unwrap_or_else(|| panic!("{plan}"));
        let ranks: Vec<u64> = shards.iter().map(|s| s["rank"].as_u64().unwrap()).collect();
        assert_eq!(ranks, [0, 1], "{table}: one column shard per rank: {plan}");
        assert_eq!(shards[0]["columns"], serde_json::json!([0, 8]), "{plan}");
    }
    let rows = |rank: usize| -> Vec<usize> {
        serde_json::from_str(&std::fs::read_to_string(run.join(format!("rows.rank{rank}.json"))).unwrap()).unwrap()
    };
    let (a, b) = (rows(0), rows(1));
    let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..lines.len()).collect::<Vec<_>>(), "every row by exactly one rank");
    assert!(a.contains(&0) && b.contains(&third), "whole shards: part-0 to rank 0, part-1 to rank 1");
    assert!(!a.contains(&third) && !b.contains(&0));
    let epochs: Vec<serde_json::Value> = std::fs::read_to_string(run.join("torch_metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 3, "{log}");
    let loss = |i: usize| epochs[i]["train_loss"].as_f64().unwrap();
    assert!(loss(2) < loss(0), "training loss fell: {} -> {}", loss(0), loss(2));
    let o = recspec(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let auc = report["report"]["streams"]["click"]["auc"].as_f64().unwrap();
    assert!(auc > 0.55, "click AUC of the TorchRec-trained DIN in recspec: {auc}");
    std::fs::remove_dir_all(&data).ok();
}

/// A model with memory state (DUMN) trains in PyTorch: the memory is written in training mode
/// without breaking the backward pass, and the written slots reach the checkpoint.
#[test]
fn dumn_trains_in_pytorch_and_writes_its_memories() {
    let data = simulated("dumn-torch-data", 80, 100, 10, 6);
    let small = ["D=16", "heads=2", "slots=8", "ffn=32"].map(|kv| ["--set", kv]).concat();
    let settings = [small, vec!["--batch-size", "32", "--epochs", "1", "--max-steps", "3"]].concat();
    let run = prepare_run("dumn-torch-run", "specs/dumn.recspec", &data, &settings);
    train_in_pytorch(&[], &run, &data);
    let (program, _) = recspec::app::RunDir::open(&run).load_program().unwrap();
    let device = Device::flex();
    let trained = recspec::app::RunDir::open(&run).load_weights(&program, &device).unwrap();
    let initial = Weights::init(&program, &device, 1);
    let slots: Vec<usize> = (0..program.params.len()).filter(|i| program.params[*i].role == ParamRole::State).collect();
    assert_eq!(slots.len(), 4, "DUMN's four memories");
    for i in slots {
        assert_ne!(floats(trained.tensors[i].val()), floats(initial.tensors[i].val()), "{}", program.params[i].key());
    }
    std::fs::remove_dir_all(&data).ok();
}

/// The program with every dropout rate 0 (the stepping comparison trains without dropout: the
/// two frameworks draw their masks from different generators).
fn without_dropout(mut program: Program) -> Program {
    use recspec::lower::Kernel;
    for step in &mut program.steps {
        match &mut step.kernel {
            Kernel::Pooling(PoolingKernel::Dropout { rate, .. }) => *rate = 0.0,
            Kernel::Layer(LayerKernel::Mlp { dropout, .. })
            | Kernel::SelfAttention(AttentionKernel { dropout, .. }) => *dropout = 0.0,
            _ => {}
        }
    }
    program
}

/// Seed-7 weights moved by up to ±0.05 each, so that biases and gains start away from their
/// initial constants.
fn perturbed(program: &Program, device: &Device) -> Weights {
    let mut rng = recspec::runtime::weights::SplitMix(99);
    let mut weights = Weights::init(program, device, 7);
    for (slot, t) in program.params.iter().zip(&mut weights.tensors) {
        let values: Vec<f32> = floats(t.val()).iter().map(|v| v + rng.uniform(-0.05, 0.05) as f32).collect();
        let n = values.len();
        let tensor = Tensor::<1>::from_data(TensorData::new(values, [n]), device);
        *t = burn::module::Param::initialized(t.id, tensor).set_require_grad(slot.role == ParamRole::Trained);
    }
    weights
}

/// Per element: fails on a non-finite value on either side, or where `|a - b| > abs + rel · |b|`.
/// Returns the first failure.
fn elementwise(key: &str, ours: &[f32], theirs: &[f32], abs: f32, rel: f32) -> Option<String> {
    if ours.len() != theirs.len() {
        return Some(format!("`{key}`: {} values in burn, {} in PyTorch", ours.len(), theirs.len()));
    }
    ours.iter().zip(theirs).enumerate().find_map(|(i, (a, b))| {
        let ok = a.is_finite() && b.is_finite() && (a - b).abs() <= abs + rel * b.abs();
        (!ok).then(|| format!("`{key}`[{i}]: burn {a}, PyTorch {b}"))
    })
}

/// Per-element tolerances of the stepping comparison: weights, and the tables' optimizer state.
const STEP_WEIGHT_ABS: f32 = 2e-6;
const STEP_WEIGHT_REL: f32 = 1e-4;
const STEP_STATE_ABS: f32 = 1e-7;
const STEP_STATE_REL: f32 = 1e-3;
const STEP_LOSS_ABS: f32 = 1e-5;
const STEP_LOSS_REL: f32 = 1e-5;
const STEPS: usize = 3;

/// Trains `program` for [`STEPS`] steps from perturbed weights in burn and in the generated
/// module, and compares each step's weighted total loss, and every weight (memory slots
/// included) and every row table's optimizer state after each step.
fn compare_steps(
    name: &str,
    program: &Program,
    hbs: &[HostBatch],
    settings: &TrainSettings,
    python: &Path,
) -> Vec<String> {
    let device = Device::flex().autodiff();
    let dir = temp(&format!("steps-{name}-{}", settings.embedding_optimizer.name()));
    let weights = perturbed(program, &device);
    std::fs::write(dir.join("model.py"), recspec::pytorch::render(program).unwrap()).unwrap();
    std::fs::write(dir.join("weights.safetensors"), weights.to_safetensors(program).unwrap()).unwrap();
    let tensors =
        hbs.iter().enumerate().flat_map(|(k, hb)| batch_tensors(program, hb, &format!("{}/", k + 1))).collect();
    std::fs::write(dir.join("batches.safetensors"), serialize(tensors)).unwrap();
    let lr = 0.01;
    let run = Command::new(python)
        .args(["-m", "recspec_torch.check", "--model"])
        .arg(dir.join("model.py"))
        .arg("--weights")
        .arg(dir.join("weights.safetensors"))
        .arg("--batches")
        .arg(dir.join("batches.safetensors"))
        .args(["--steps", &STEPS.to_string(), "--lr", &lr.to_string()])
        .args(["--optimizer", settings.optimizer.name(), "--embedding-optimizer", settings.embedding_optimizer.name()])
        .arg("--out")
        .arg(dir.join("out.safetensors"))
        .env("PYTHONPATH", torch_package())
        .output()
        .expect("python runs");
    assert!(run.status.success(), "{name}: the stepping module failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let bytes = std::fs::read(dir.join("out.safetensors")).unwrap();
    let theirs = SafeTensors::deserialize(&bytes).unwrap();
    let read = |key: &str| -> Option<Vec<f32>> {
        theirs
            .tensor(key)
            .ok()
            .map(|v| v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let rule = format!("{}, {} embedding updates", settings.optimizer.name(), settings.embedding_optimizer.name());
    let mut optim = Optimizer::new(program, settings);
    let mut weights = weights;
    let mut failures = vec![];
    let mut compared_state = 0;
    for (k, hb) in hbs.iter().enumerate().take(STEPS) {
        let step = k + 1;
        let batch = DeviceBatch::from_host(hb, &device);
        let (next, terms) = train_step(program, weights, &mut optim, lr, &batch, k as u64);
        weights = next;
        // The step's weighted total loss, before its update.
        let total: f32 = terms.iter().zip(&program.losses).map(|(t, l)| t * l.weight as f32).sum();
        let key = format!("{step}/loss");
        match read(&key) {
            None => failures.push(format!("{name}: `{key}` missing from the PyTorch results")),
            Some(theirs) => failures.extend(
                elementwise(&key, &[total], &theirs, STEP_LOSS_ABS, STEP_LOSS_REL)
                    .map(|f| format!("{name} ({rule}): {f}")),
            ),
        }
        for (slot, t) in program.params.iter().zip(&weights.tensors) {
            let key = format!("{step}/w/{}", slot.key());
            match read(&key) {
                None => failures.push(format!("{name}: `{key}` missing from the PyTorch results")),
                Some(theirs) => failures.extend(
                    elementwise(&key, &floats(t.val()), &theirs, STEP_WEIGHT_ABS, STEP_WEIGHT_REL)
                        .map(|f| format!("{name} ({rule}): {f}")),
                ),
            }
        }
        let Some(rows) = &optim.rows else { continue };
        for (slot, state) in program.params.iter().zip(&rows.tables) {
            let Some(state) = state else { continue };
            for (state_name, t) in rows.rule.state_names().iter().zip(&state.tensors) {
                let key = format!("{step}/{state_name}/{}", slot.key());
                match read(&key) {
                    None => failures.push(format!("{name}: `{key}` missing from the PyTorch results")),
                    Some(theirs) => {
                        compared_state += 1;
                        failures.extend(
                            elementwise(&key, &floats(t.clone()), &theirs, STEP_STATE_ABS, STEP_STATE_REL)
                                .map(|f| format!("{name} ({rule}): {f}")),
                        )
                    }
                }
            }
        }
    }
    if optim.rows.is_some() && program.row_tables().contains(&true) && compared_state == 0 {
        failures.push(format!("{name}: no row-table state was compared"));
    }
    std::fs::remove_dir_all(&dir).ok();
    failures
}

/// Several optimizer steps in training mode (dropout off) from weights moved away from their
/// initialisation, burn against the generated module: each step's loss, every weight and the
/// row tables' state after each step, per element. Every shipped spec with a loss, with lazy
/// Adam (the default); DIN and DFN also with the other table rules and optimizers. The DUMN
/// family's training-mode `sample_valid` draws its positions on both sides from one SplitMix
/// stream seeded by the step (`recspec_torch.ops.sample_valid` takes the generator the module's
/// `pass_rng(step)` copies from burn's), so its memory writes are compared like any weight.
#[test]
fn every_spec_trains_the_same_steps_in_burn_and_pytorch() {
    let python = python();
    let data = comparison_data("steps-data");
    let small = small_dims();
    let specs = compared_specs();
    let mut failures = vec![];
    let mut compared = 0;
    let mut dumn_family = 0;
    for spec in &specs {
        let name = spec.file_stem().unwrap().to_string_lossy().to_string();
        let (_, checked) = recspec::app::compile_for_data(spec, Some(&data), None, &small).unwrap();
        let graph = checked.graph.unwrap_or_else(|| panic!("{name} compiles on the simulated data"));
        let program = without_dropout(recspec::app::lower_graph(&graph).unwrap());
        if program.losses.is_empty() {
            continue;
        }
        let schema = recspec::data::Schema::from_program(&program).unwrap();
        let mut loader = recspec::data::Loader::open(&data.join("train.jsonl"), &schema, 16, false).unwrap();
        let hbs: Vec<HostBatch> = (0..STEPS).map(|_| loader.next_batch().unwrap().unwrap()).collect();
        dumn_family +=
            usize::from(program.steps.iter().any(|s| matches!(s.kernel, recspec::lower::Kernel::SampleValid { .. })));
        let mut rules = vec![(OptimizerKind::Adam, EmbeddingOptimizer::Lazy)];
        if name == "din" || name == "dfn" {
            rules.extend([
                (OptimizerKind::Adam, EmbeddingOptimizer::Dense),
                (OptimizerKind::Adagrad, EmbeddingOptimizer::Lazy),
                (OptimizerKind::Adam, EmbeddingOptimizer::RowwiseAdagrad),
            ]);
        }
        for (optimizer, embedding_optimizer) in rules {
            let settings = TrainSettings { optimizer, embedding_optimizer, ..TrainSettings::default() };
            failures.extend(compare_steps(&name, &program, &hbs, &settings, &python));
            compared += 1;
        }
    }
    std::fs::remove_dir_all(&data).ok();
    assert!(compared >= 15, "{compared} spec and rule pairs compared");
    assert!(dumn_family >= 3, "{dumn_family} specs with training-mode `sample_valid` compared");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// Runs a Python snippet with `recspec_torch` importable; its stdout parsed as JSON.
fn python_json(python: &Path, code: &str, args: &[String]) -> serde_json::Value {
    let out = Command::new(python)
        .args(["-c", code])
        .args(args)
        .env("PYTHONPATH", torch_package())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The shuffled training order of recspec's loader and of `recspec_torch.data.iterate` (the
/// generated trainer's reader) are the same rows in the same order, for several buffer sizes
/// and epochs: two implementations of one algorithm, run on one file.
#[test]
fn the_training_order_is_the_same_in_burn_and_pytorch() {
    let python = python();
    let dir = temp("order");
    let file = dir.join("train.jsonl");
    let rows: String = (0..53).map(|i| format!("{{\"user\": {i}}}\n{}", if i % 7 == 3 { "\n" } else { "" })).collect();
    std::fs::write(&file, rows).unwrap();
    let schema = recspec::data::Schema { fields: vec![], labels: vec![], weights: vec![], inputs: vec![] };
    let code = "import json, sys\nfrom recspec_torch.data import Schema, iterate\npath, k, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\nprint(json.dumps([i for b in iterate(path, Schema.from_inputs({}, []), 1 << 20, shuffle_buffer=k, seed=seed) for i in b.indices]))";
    for (capacity, epoch) in [(0, 1), (1, 1), (8, 1), (8, 2), (53, 3), (1000, 1)] {
        let seed = recspec::data::shuffle_seed(11, epoch, 0);
        let mut loader = recspec::data::Loader::open(&file, &schema, 7, false).unwrap().shuffled(capacity, seed);
        let mut ours = vec![];
        while let Some(b) = loader.next_batch().unwrap() {
            ours.extend(b.users);
        }
        let theirs: Vec<u64> = serde_json::from_value(python_json(
            &python,
            code,
            &[file.display().to_string(), capacity.to_string(), seed.to_string()],
        ))
        .unwrap();
        assert_eq!(ours, theirs, "buffer {capacity}, epoch {epoch}");
        assert_eq!(ours.len(), 53);
        if capacity > 1 {
            assert_ne!(ours, (0..53).collect::<Vec<u64>>(), "buffer {capacity} shuffles");
        }
    }
    // A folder of shards: the shard order is drawn first, from the same generator. (Python's
    // indices count rows across the shards in name order, like the users here.)
    let shards = dir.join("train");
    std::fs::create_dir(&shards).unwrap();
    for (name, range) in
        [("part-0.jsonl", 0..9), ("part-1.jsonl", 9..10), ("part-2.jsonl", 10..31), ("part-3.jsonl", 31..40)]
    {
        std::fs::write(shards.join(name), range.map(|i| format!("{{\"user\": {i}}}\n")).collect::<String>()).unwrap();
    }
    for (capacity, epoch) in [(0, 1), (1, 1), (1, 2), (6, 1), (100, 2)] {
        let seed = recspec::data::shuffle_seed(5, epoch, 0);
        let mut loader = recspec::data::Loader::open(&shards, &schema, 4, false).unwrap().shuffled(capacity, seed);
        let mut ours = vec![];
        while let Some(b) = loader.next_batch().unwrap() {
            ours.extend(b.users);
        }
        let args = [shards.display().to_string(), capacity.to_string(), seed.to_string()];
        let theirs: Vec<u64> = serde_json::from_value(python_json(&python, code, &args)).unwrap();
        assert_eq!(ours, theirs, "folder, buffer {capacity}, epoch {epoch}");
        assert_eq!(ours.len(), 40);
    }
}

/// Hashed ids land in the same bucket in recspec's loader and in `recspec_torch.data`.
#[test]
fn hashed_ids_hash_the_same_in_burn_and_pytorch() {
    use recspec::data::{hash_bucket, RawId};
    let python = python();
    let cases: Vec<(serde_json::Value, i64)> = vec![
        (0.into(), 1_000_003),
        ((-1).into(), 1000),
        (u64::MAX.into(), 1000),
        (123_456_789_012i64.into(), 1000),
        (i64::MIN.into(), 7),
        ("sku-123".into(), 1000),
        ("".into(), 1 << 20),
        ("é".into(), 97),
        ("a".into(), 1000),
        ("a long item key with spaces / and punctuation!".into(), 1_000_003),
    ];
    let code = "import json, sys\nfrom recspec_torch.data import hash_bucket\nprint(json.dumps([hash_bucket(raw, v) for raw, v in json.loads(sys.argv[1])]))";
    let theirs: Vec<i64> =
        serde_json::from_value(python_json(&python, code, &[serde_json::to_string(&cases).unwrap()])).unwrap();
    let ours: Vec<i64> = cases
        .iter()
        .map(|(raw, v)| match raw {
            serde_json::Value::String(s) => hash_bucket(RawId::Str(s), *v),
            n => hash_bucket(RawId::Int(n.as_i64().unwrap_or_else(|| n.as_u64().unwrap() as i64)), *v),
        })
        .collect();
    assert_eq!(ours, theirs);
    assert!(ours.iter().zip(&cases).all(|(b, (_, v))| (0..*v).contains(b)));
}

/// Per-element tolerance of the ONNX comparison: `|burn - onnxruntime| <= abs + rel · |onnxruntime|`.
const ONNX_ABS: f32 = 1e-6;
const ONNX_REL: f32 = 1e-5;

/// Every shipped spec exports to ONNX (`recspec_torch.onnx_export`, traced on 3 rows) and
/// onnxruntime computes burn-flex's outputs from the same perturbed weights, on batches of 1 and
/// 7 rows (sizes the export never saw), per element; a NaN or infinity on either side fails.
#[test]
fn every_spec_exports_to_onnx_and_onnxruntime_agrees_with_burn() {
    let python = python();
    let data = comparison_data("onnx-data");
    let small = small_dims();
    let device = Device::flex().autodiff();
    let specs = compared_specs();
    let mut failures = vec![];
    let mut compared = 0;
    for spec in &specs {
        let name = spec.file_stem().unwrap().to_string_lossy().to_string();
        let (_, checked) = recspec::app::compile_for_data(spec, Some(&data), None, &small).unwrap();
        let program = recspec::app::lower_graph(&checked.graph.unwrap()).unwrap();
        let weights = perturbed(&program, &device);
        let dir = temp(&format!("onnx-{name}"));
        std::fs::write(dir.join("model.py"), recspec::pytorch::render(&program).unwrap()).unwrap();
        std::fs::write(dir.join("weights.safetensors"), weights.to_safetensors(&program).unwrap()).unwrap();
        let module = |args: &[&std::ffi::OsStr]| {
            Command::new(&python)
                .args(["-m", "recspec_torch.onnx_export"])
                .args(args)
                .env("PYTHONPATH", torch_package())
                .output()
                .expect("python runs")
        };
        let onnx = dir.join("model.onnx");
        let o = module(&[
            "--model".as_ref(),
            dir.join("model.py").as_os_str(),
            "--weights".as_ref(),
            dir.join("weights.safetensors").as_os_str(),
            "--out".as_ref(),
            onnx.as_os_str(),
        ]);
        if !o.status.success() {
            failures.push(format!("{name}: export failed:\n{}", String::from_utf8_lossy(&o.stderr)));
            continue;
        }
        let schema = recspec::data::Schema::from_program(&program).unwrap();
        for rows in [1, 7] {
            let mut loader = recspec::data::Loader::open(&data.join("test.jsonl"), &schema, rows, false).unwrap();
            let hb = loader.next_batch().unwrap().unwrap();
            assert_eq!(hb.len, rows);
            std::fs::write(dir.join("batch.safetensors"), batch_file(&program, &hb)).unwrap();
            let o = module(&[
                "--run".as_ref(),
                onnx.as_os_str(),
                "--batch".as_ref(),
                dir.join("batch.safetensors").as_os_str(),
                "--out".as_ref(),
                dir.join("out.safetensors").as_os_str(),
            ]);
            assert!(o.status.success(), "{name}: onnxruntime failed:\n{}", String::from_utf8_lossy(&o.stderr));
            let bytes = std::fs::read(dir.join("out.safetensors")).unwrap();
            let theirs = SafeTensors::deserialize(&bytes).unwrap();
            let pass = forward(&program, &weights, &DeviceBatch::from_host(&hb, &device), Mode::Eval, 0);
            for o in &program.outputs {
                let key = format!("output:{}", o.name);
                let ours = pass.value(o.value).unwrap().to_host();
                let Ok(t) = theirs.tensor(&key) else {
                    failures.push(format!("{name}: the ONNX graph has no output `{}`", o.name));
                    continue;
                };
                let values: Vec<f32> =
                    t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                failures.extend(elementwise(&format!("{name} {rows} rows {key}"), &ours, &values, ONNX_ABS, ONNX_REL));
                compared += 1;
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    std::fs::remove_dir_all(&data).ok();
    assert!(specs.len() >= 16 && compared >= 2 * specs.len(), "{compared} outputs of {} specs", specs.len());
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// `recspec export RUN --format onnx` on a trained run: onnxruntime scores the test rows as
/// `recspec eval --predictions` does.
#[test]
fn recspec_export_onnx_scores_as_recspec_eval() {
    use crate::cli::{code, recspec, stderr};
    let data = simulated("onnx-cli-data", 80, 100, 10, 6);
    let dir = temp("onnx-cli");
    let run = dir.join("run");
    let o = recspec(&[
        "train",
        "specs/dfn.recspec",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--set",
        "D=16",
        "--set",
        "heads=2",
        "--max-steps",
        "4",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let onnx = dir.join("dfn.onnx");
    let o = Command::new(env!("CARGO_BIN_EXE_recspec"))
        .args(["export", run.to_str().unwrap(), "--format", "onnx", "--out", onnx.to_str().unwrap()])
        .env("RECSPEC_PYTHON", python())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let predictions = dir.join("predictions.jsonl");
    let o = recspec(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        predictions.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let expected: Vec<f64> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["scores"]["click"].as_f64().unwrap())
        .collect();
    // The test split's first 50 rows, as the run's program reads them, through onnxruntime.
    let (program, _) = recspec::app::RunDir::open(&run).load_program().unwrap();
    let schema = recspec::data::Schema::from_program(&program).unwrap();
    let mut loader = recspec::data::Loader::open(&data.join("test.jsonl"), &schema, 50, false).unwrap();
    let hb = loader.next_batch().unwrap().unwrap();
    std::fs::write(dir.join("batch.safetensors"), batch_file(&program, &hb)).unwrap();
    let o = Command::new(python())
        .args(["-m", "recspec_torch.onnx_export", "--run"])
        .arg(&onnx)
        .arg("--batch")
        .arg(dir.join("batch.safetensors"))
        .arg("--out")
        .arg(dir.join("out.safetensors"))
        .env("PYTHONPATH", torch_package())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(dir.join("out.safetensors")).unwrap();
    let out = SafeTensors::deserialize(&bytes).unwrap();
    let p = out.tensor("output:p").unwrap();
    let served: Vec<f32> = p.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let evaluated: Vec<f32> = expected[..50].iter().map(|x| *x as f32).collect();
    assert!(crate::max_difference(&served, &evaluated) <= 1e-5, "onnxruntime {served:?}\nrecspec eval {evaluated:?}");
    assert!(!expected.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

/// The model card's operation count (`lower::flops`) against PyTorch's own
/// (`torch.utils.flop_counter.FlopCounterMode`, which counts matrix products, forward and
/// backward, on the generated module): ours also counts element-wise work, so it is at least
/// PyTorch's and, for these matmul-bound families, at most a quarter above it.
#[test]
fn the_flop_count_agrees_with_pytorchs_flop_counter() {
    let python = python();
    let data = comparison_data("flops-data");
    let small = small_dims();
    let code = "import json, sys\nimport torch\nfrom torch.utils.flop_counter import FlopCounterMode\nfrom recspec_torch import data as data_mod\nfrom recspec_torch.train import Objective, load_model\nmodule, cls = load_model(sys.argv[1])\nschema = data_mod.Schema.from_module(module)\nbatch = next(iter(data_mod.iterate(sys.argv[2], schema, int(sys.argv[3]))))\nmodel = cls(seed=1)\nmodel.train()\nwith FlopCounterMode(display=False) as counter:\n    total, _ = Objective(model, {})(batch.inputs, batch.labels, 0)\n    forward = counter.get_total_flops()\n    total.backward()\nprint(json.dumps({'rows': len(batch.users), 'forward': forward, 'training': counter.get_total_flops()}))";
    let mut report = vec![];
    for name in ["dfn", "din", "dumn", "dlen", "retrieval_ntr"] {
        let spec = crate::root().join(format!("specs/{name}.recspec"));
        let (_, checked) = recspec::app::compile_for_data(&spec, Some(&data), None, &small).unwrap();
        let program = recspec::app::lower_graph(&checked.graph.unwrap()).unwrap();
        let dir = temp(&format!("flops-{name}"));
        std::fs::write(dir.join("model.py"), recspec::pytorch::render(&program).unwrap()).unwrap();
        let args = [dir.display().to_string(), data.join("train.jsonl").display().to_string(), "64".to_string()];
        let theirs = python_json(&python, code, &args);
        let rows = theirs["rows"].as_u64().unwrap() as usize;
        let (ours, _) = recspec::lower::flops::count(&program, rows);
        for (what, ours, theirs) in [
            ("forward", ours.forward as f64, theirs["forward"].as_f64().unwrap()),
            ("training", ours.training as f64, theirs["training"].as_f64().unwrap()),
        ] {
            let ratio = ours / theirs;
            report.push(format!("{name} {what}: ours {ours:.4e}, PyTorch {theirs:.4e}, ratio {ratio:.3}"));
            assert!(
                ratio.is_finite() && (1.0..=1.25).contains(&ratio),
                "{name} {what}: {ours} operations against PyTorch's {theirs}\n{}",
                report.join("\n")
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    std::fs::remove_dir_all(&data).ok();
    eprintln!("{}", report.join("\n"));
}

/// The Python op package's option spellings (`recspec_torch.ops.OPTIONS`) are the Rust ones
/// (`ops::options::ALL`, from `options!`): the same enums, the same spellings in the same order.
#[test]
fn the_python_option_table_is_the_rust_one() {
    let python = python();
    let theirs =
        python_json(&python, "import json\nfrom recspec_torch.ops import OPTIONS\nprint(json.dumps(OPTIONS))", &[]);
    let ours: serde_json::Map<String, serde_json::Value> = recspec::ops::options::ALL
        .iter()
        .map(|(name, spellings)| (name.to_string(), serde_json::json!(spellings)))
        .collect();
    assert_eq!(theirs, serde_json::Value::Object(ours));
}
