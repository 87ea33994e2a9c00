//! `recspec bench`: training throughput, inference latency, loader throughput and peak memory of
//! one spec on one data set, as one JSON line (`bench/speed.sh` runs it beside the generated
//! PyTorch module).

use super::dataset::split_file;
use super::AppError;
use crate::config::{EmbeddingOptimizer, TrainSettings};
use crate::data::{HostBatch, Loader, Schema};
use crate::lower::Program;
use crate::runtime::exec::{forward, DeviceBatch, Mode};
use crate::runtime::train::{train_step, Optimizer};
use crate::runtime::weights::Weights;
use crate::runtime::{DeviceChoice, RuntimeError};
use burn::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// How much to measure.
pub struct BenchSettings {
    pub batch_size: usize,
    /// Timed training steps (and inference batches).
    pub steps: usize,
    /// Untimed training steps first.
    pub warmup: usize,
    /// More timed steps (and inference batches) follow `steps` until they add up to at least
    /// this many seconds: a window long enough for the machine's noise to average out.
    pub min_seconds: f64,
    /// Where to measure.
    pub device: DeviceChoice,
    /// How the training steps update embedding tables.
    pub embedding_optimizer: EmbeddingOptimizer,
}

/// One measurement, in the JSON line format `bench/speed_table.py` reads.
#[derive(Serialize)]
pub struct BenchReport {
    pub program: &'static str,
    pub spec: String,
    pub device: &'static str,
    pub batch: usize,
    pub threads: usize,
    pub params: usize,
    /// Timed training steps: at least `--steps`, more to fill `--min-seconds`.
    pub steps: usize,
    /// `lazy`, `rowwise_adagrad` or `dense` (`[train] embedding_optimizer`).
    pub embedding_optimizer: &'static str,
    pub train_samples_per_s: f64,
    pub infer_us_per_example: f64,
    pub loader_rows_per_s: f64,
    pub peak_rss_mb: f64,
    /// The training step's memory as estimated before running (`lower::memory`), in MB, to
    /// compare with the measured peak.
    pub estimate_train_mb: f64,
    /// Seconds of the timed training steps.
    pub seconds: f64,
    /// Floating-point operations of one training step per example (`lower::flops`), so that
    /// samples/s reads as GFLOP/s.
    pub train_flops_per_example: u128,
}

/// Measures `program` on `data`'s training split on `s.device`.
pub fn bench(spec: &str, program: &Program, data: &Path, s: &BenchSettings) -> Result<BenchReport, AppError> {
    let device = &s.device.device()?;
    let schema = Schema::from_program(program)?;
    let file = split_file(data, "train")?;
    // The loader: the whole split into batches.
    let started = Instant::now();
    let mut loader = Loader::open(&file, &schema, s.batch_size, false)?;
    let mut batches: Vec<HostBatch> = vec![];
    let mut rows = 0;
    while let Some(b) = loader.next_batch()? {
        rows += b.len;
        if batches.len() < s.steps + s.warmup {
            batches.push(b);
        }
    }
    let loader_rows_per_s = rows as f64 / started.elapsed().as_secs_f64();
    if batches.is_empty() {
        return Err(RuntimeError::Model(format!("{} has no rows to measure", file.display())).into());
    }
    // Both loops run on a thread of rayon's pool, as `recspec train` does.
    let Measured { train_seconds, samples, steps, infer_seconds, examples } =
        crate::runtime::cpu::on_pool(|| measure(program, &batches, s, device));

    Ok(BenchReport {
        program: "recspec",
        spec: spec.to_string(),
        device: s.device.name(),
        batch: s.batch_size,
        threads: threads(),
        params: program.trainable_count(),
        steps,
        embedding_optimizer: s.embedding_optimizer.name(),
        train_samples_per_s: samples as f64 / train_seconds.max(1e-9),
        infer_us_per_example: infer_seconds * 1e6 / examples.max(1) as f64,
        loader_rows_per_s,
        peak_rss_mb: peak_rss_mb(),
        estimate_train_mb: super::memory::for_training(
            program,
            s.batch_size,
            &TrainSettings { embedding_optimizer: s.embedding_optimizer, ..TrainSettings::default() },
        )
        .training_total() as f64
            / (1024.0 * 1024.0),
        seconds: train_seconds,
        train_flops_per_example: crate::lower::flops::count(program, s.batch_size).0.training_per_example(),
    })
}

/// What the timed loops of [`measure`] counted.
struct Measured {
    train_seconds: f64,
    samples: usize,
    steps: usize,
    infer_seconds: f64,
    examples: usize,
}

/// The timed loops over `batches` (cycling): `s.warmup` untimed training steps, then timed ones,
/// at least `s.steps` and until they add up to `s.min_seconds`; then one untimed inference pass
/// and timed ones, at least `s.steps` and `s.min_seconds`.
fn measure(program: &Program, batches: &[HostBatch], s: &BenchSettings, device: &Device) -> Measured {
    let batch_at = |i: usize| &batches[i % batches.len()];

    // Training: forward, backward and Adam, each step on its own batch.
    let autodiff = device.clone().autodiff();
    let mut weights = Weights::init(program, &autodiff, 1);
    let defaults = TrainSettings { embedding_optimizer: s.embedding_optimizer, ..TrainSettings::default() };
    let mut optim = Optimizer::new(program, &defaults);
    let (mut train_seconds, mut samples, mut steps) = (0.0, 0, 0);
    let mut i = 0;
    while i < s.warmup + s.steps || train_seconds < s.min_seconds {
        let batch = DeviceBatch::from_host(batch_at(i), &autodiff);
        let started = Instant::now();
        let (next, _) = train_step(program, weights, &mut optim, defaults.lr, &batch, i as u64);
        weights = next;
        if i >= s.warmup {
            train_seconds += started.elapsed().as_secs_f64();
            samples += batch.len;
            steps += 1;
        }
        i += 1;
    }

    // Inference: the evaluation pass, its outputs read back.
    let eval_weights = weights.valid();
    let infer = |batch: &DeviceBatch| {
        let pass = forward(program, &eval_weights, batch, Mode::Eval, 0);
        for o in &program.outputs {
            if let Some(v) = pass.value(o.value) {
                v.to_host();
            }
        }
    };
    infer(&DeviceBatch::from_host(batch_at(s.warmup), device));
    let (mut infer_seconds, mut examples) = (0.0, 0);
    let mut i = 0;
    while i < s.steps || infer_seconds < s.min_seconds {
        let batch = DeviceBatch::from_host(batch_at(s.warmup + i), device);
        let started = Instant::now();
        infer(&batch);
        infer_seconds += started.elapsed().as_secs_f64();
        examples += batch.len;
        i += 1;
    }
    Measured { train_seconds, samples, steps, infer_seconds, examples }
}

/// The worker threads the CPU backends use: `RAYON_NUM_THREADS`, else every core.
fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The process's peak resident memory (VmHWM), in MB; 0 where /proc is unavailable.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}
