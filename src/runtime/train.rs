//! The training loop: epochs over a streamed data file, validation after each epoch, a
//! checkpoint handed to an [`EpochSink`] after each epoch, resume from a [`Checkpoint`], and a
//! clear stop on a non-finite loss.
//!
//! The loop knows no files besides the data it reads: where checkpoints go, and how a run is
//! resumed, is the sink's business (the application's run directory).

use super::eval::{evaluate, EvalOptions, EvalReport};
use super::exec::{forward_rows, DeviceBatch};
use super::rows::{RowOptimizer, RowRule};
use super::weights::Weights;
use super::RuntimeError;
use crate::config::{OptimizerKind, TrainSettings};
use crate::data::{shuffle_seed, Loader, Schema};
use crate::lower::Program;
use burn::module::{Module, Param};
use burn::optim::{AdaGradConfig, AdamConfig, GradientsParams};
use burn::prelude::*;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Rows per batch when validating after an epoch.
pub(crate) const VALID_BATCH_SIZE: usize = 1024;
use std::time::Instant;

/// Everything a training run needs.
pub struct TrainJob {
    pub program: Program,
    pub settings: TrainSettings,
    /// The training rows, read once per epoch: a file or a folder of shards.
    pub train_file: PathBuf,
    /// The validation rows, evaluated after every epoch (a file or a folder of shards).
    pub valid_file: PathBuf,
    pub device: Device,
    pub skip_bad_rows: bool,
    /// Extra label streams to report in validation (scored as 1 - the primary output).
    pub extra_labels: Vec<String>,
    pub progress: bool,
    /// An earlier run's weights (safetensors) to start from instead of fresh ones
    /// ([`Weights::warm_start`]); a resumed run starts from its own checkpoint instead.
    pub init: Option<Vec<u8>>,
}

/// What a finished run reports.
pub struct TrainReport {
    pub epochs: usize,
    pub steps: u64,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub samples_per_sec: f64,
    pub valid: Option<EvalReport>,
    pub bad_rows: usize,
    /// Mean training loss of each epoch run by this call.
    pub epoch_losses: Vec<f64>,
    /// The trained weights (inference copy).
    pub weights: Option<Weights>,
}

/// burn's optimizer for the parameters the settings name (with the row optimizer's constants).
fn dense_optimizer(s: &TrainSettings) -> burn::optim::ModuleOptimizer {
    use super::rows::{BETA_1, BETA_2, EPSILON};
    match s.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_beta_1(BETA_1).with_beta_2(BETA_2).with_epsilon(EPSILON).init(),
        OptimizerKind::Adagrad => AdaGradConfig::new().with_epsilon(EPSILON).init(),
    }
}

/// The optimizers of a run: burn's for dense parameters, and, unless the settings train
/// embedding tables densely, a [`RowOptimizer`] for the program's row tables.
pub struct Optimizer {
    pub dense: burn::optim::ModuleOptimizer,
    pub rows: Option<RowOptimizer>,
    /// `Program::row_tables` when `rows` is set, else empty.
    row_tables: Vec<bool>,
}

impl Optimizer {
    pub fn new(program: &Program, s: &TrainSettings) -> Optimizer {
        let rows = RowRule::of(s).map(|rule| RowOptimizer::new(rule, program));
        let row_tables = if rows.is_some() { program.row_tables() } else { vec![] };
        Optimizer { dense: dense_optimizer(s), rows, row_tables }
    }

    /// The dense optimizer's state (burnpack bytes) and the row optimizer's (safetensors bytes,
    /// empty without one).
    pub(crate) fn to_bytes(&self, program: &Program) -> Result<(Vec<u8>, Vec<u8>), RuntimeError> {
        let dense = self
            .dense
            .into_bytes()
            .map_err(|e| RuntimeError::Checkpoint(format!("cannot serialise optimizer: {e}")))?
            .to_vec();
        let rows = match &self.rows {
            Some(r) => r.to_safetensors(program)?,
            None => vec![],
        };
        Ok((dense, rows))
    }

    /// Restores the state written by [`to_bytes`](Self::to_bytes); `rows` may be empty (a
    /// checkpoint without row state: the tables start from fresh state).
    pub fn load(
        self,
        program: &Program,
        dense: Vec<u8>,
        rows: &[u8],
        device: &Device,
    ) -> Result<Optimizer, RuntimeError> {
        let Optimizer { dense: d, rows: mut row_optim, row_tables } = self;
        let d = d
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(dense))
            .map_err(|e| RuntimeError::Checkpoint(format!("the optimizer checkpoint: {e}")))?;
        if let (Some(r), false) = (&mut row_optim, rows.is_empty()) {
            r.load_safetensors(program, rows, &device.clone().inner())?;
        }
        Ok(Optimizer { dense: d, rows: row_optim, row_tables })
    }
}

/// One optimizer step on `batch`: the forward pass in training mode (`step` seeds sampling),
/// backward, the update with learning rate `lr` (row tables through the row optimizer), and
/// memory state written back. Returns the new weights and every loss term's unweighted value,
/// indexed like `Program::losses`; a non-finite value means the caller must not keep the step.
pub fn train_step(
    program: &Program,
    weights: Weights,
    optim: &mut Optimizer,
    lr: f64,
    batch: &DeviceBatch,
    step: u64,
) -> (Weights, Vec<f32>) {
    crate::runtime::cpu::on_pool(|| {
        let mut fwd = forward_rows(program, &weights, batch, step, &optim.row_tables);
        let terms = fwd.losses.iter().map(|value| value.clone().into_scalar()).collect();
        let mut grads = fwd.total.backward();
        let lookups = std::mem::take(&mut fwd.lookups);
        let mut weights = weights;
        if let Some(rows) = &mut optim.rows {
            rows.step(program, &mut weights, lookups, &mut grads, lr);
        }
        let grads = GradientsParams::from_grads(grads, &weights);
        let mut weights = optim.dense.step(lr, weights, grads);
        for (param, value) in fwd.state {
            let id = weights.tensors[param.0].id;
            weights.tensors[param.0] = Param::initialized(id, value.detach()).set_require_grad(false);
        }
        (weights, terms)
    })
}

/// How far a run has come: completed epochs and optimizer steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub epochs_done: usize,
    pub steps: u64,
}

/// The state of training after a completed epoch: where it stands and the serialised weights
/// and optimizer state (burnpack bytes). Resuming from it continues exactly where it stopped.
pub struct Checkpoint {
    pub position: Position,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    /// The row optimizer's state (safetensors bytes); empty when tables are trained densely.
    pub rows: Vec<u8>,
}

/// Receives every completed epoch, in order. An implementation must make the checkpoint
/// durable before it returns: a run killed afterwards resumes from it.
pub trait EpochSink {
    /// What the sink fails with; runtime failures of the loop convert into it.
    type Error: From<RuntimeError>;

    /// `metrics` is the epoch's metrics line (`epoch`, `steps`, `train_loss`, `seconds`, `valid`).
    fn epoch_done(&mut self, checkpoint: Checkpoint, metrics: serde_json::Value) -> Result<(), Self::Error>;

    /// Every finished step's losses, before the next step starts (the run report's curves).
    fn step_done(&mut self, step: StepLosses<'_>) -> Result<(), Self::Error>;
}

/// One training step's losses as the loop computed them.
pub struct StepLosses<'a> {
    /// The step's number since the run started, from 1.
    pub step: u64,
    pub epoch: usize,
    /// The weighted sum the optimizer minimised.
    pub total: f64,
    /// Each loss term's unweighted mean, indexed like `losses`.
    pub terms: &'a [f32],
    /// The program's loss terms (name, weight).
    pub losses: &'a [crate::lower::LossTerm],
}

/// Serialises weights to burnpack bytes.
pub(crate) fn weights_to_bytes(w: &Weights) -> Result<Vec<u8>, RuntimeError> {
    let bytes = w
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| RuntimeError::Checkpoint(format!("cannot serialise weights: {e}")))?;
    Ok(bytes.to_vec())
}

/// Weights for `program` on `device` from burnpack bytes written by [`weights_to_bytes`].
pub(crate) fn weights_from_bytes(program: &Program, bytes: Vec<u8>, device: &Device) -> Result<Weights, RuntimeError> {
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| RuntimeError::Checkpoint(format!("not a checkpoint: {e}")))?;
    Weights::zeros(program, device)
        .try_load_record(record)
        .map_err(|e| RuntimeError::Checkpoint(format!("does not fit this model: {e}")))
}

/// Trains a model from scratch, or from `start`, up to `job.settings.epochs`; hands every
/// completed epoch to `sink`.
///
/// The loop runs on a thread of rayon's global pool (`cpu::on_pool`), so that the kernels' work
/// and the loop's own work share the pool's threads and what a step allocates is freed by the
/// thread that allocated it.
pub fn train<S>(job: TrainJob, start: Option<Checkpoint>, sink: &mut S) -> Result<TrainReport, S::Error>
where
    S: EpochSink + Send,
    S::Error: Send,
{
    crate::runtime::cpu::on_pool(move || train_here(job, start, sink))
}

fn train_here<S: EpochSink>(job: TrainJob, start: Option<Checkpoint>, sink: &mut S) -> Result<TrainReport, S::Error> {
    if job.program.losses.is_empty() {
        let model = &job.program.model;
        return Err(
            RuntimeError::Model(format!("model `{model}` has no `loss` statement: there is nothing to train")).into()
        );
    }
    let ad = job.device.clone().autodiff();
    job.device.seed(job.settings.seed);
    let schema = Schema::from_program(&job.program).map_err(RuntimeError::from)?;
    let (train_file, valid_file) = (&job.train_file, &job.valid_file);
    let mut state = start.as_ref().map(|c| c.position).unwrap_or_default();
    let mut optim = Optimizer::new(&job.program, &job.settings);
    let mut weights = match start {
        Some(c) => {
            let epoch = c.position.epochs_done;
            let w = weights_from_bytes(&job.program, c.model, &ad)
                .map_err(|e| RuntimeError::Checkpoint(format!("the model checkpoint of epoch {epoch}: {e}")))?;
            optim = optim
                .load(&job.program, c.optimizer, &c.rows, &ad)
                .map_err(|e| RuntimeError::Checkpoint(format!("epoch {epoch}: {e}")))?;
            w
        }
        None => match &job.init {
            Some(earlier) => Weights::warm_start(&job.program, &ad, job.settings.seed, earlier)?,
            None => Weights::init(&job.program, &ad, job.settings.seed),
        },
    };
    // the progress bar's total; an unreadable split fails in the loader below, with its message
    let rows_hint = crate::data::count_rows(train_file).unwrap_or(0);
    let mut report = TrainReport {
        epochs: state.epochs_done,
        steps: state.steps,
        first_loss: None,
        last_loss: None,
        samples_per_sec: 0.0,
        valid: None,
        bad_rows: 0,
        epoch_losses: vec![],
        weights: None,
    };
    let opts = EvalOptions::new(VALID_BATCH_SIZE, job.skip_bad_rows, &job.extra_labels, vec![10, 50])?;
    let (mut samples, mut busy) = (0usize, 0f64);
    for epoch in state.epochs_done + 1..=job.settings.epochs {
        let mut loader = Loader::open(train_file, &schema, job.settings.batch_size, job.skip_bad_rows)
            .map_err(RuntimeError::from)?
            .shuffled(job.settings.shuffle_buffer, shuffle_seed(job.settings.seed, epoch, 0));
        let mut epoch_steps = 0usize;
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        let started = Instant::now();
        let mut bar = Progress::new(
            job.progress,
            epoch,
            job.settings.epochs,
            rows_hint,
            job.settings.max_steps.map(|m| m * job.settings.batch_size),
        );
        while let Some(hb) = loader.next_batch().map_err(RuntimeError::from)? {
            if job.settings.max_steps.is_some_and(|m| epoch_steps >= m) {
                break;
            }
            let t0 = Instant::now();
            let batch = DeviceBatch::from_host(&hb, &ad);
            let (next, terms) = train_step(&job.program, weights, &mut optim, job.settings.lr, &batch, state.steps);
            weights = next;
            let mut step_loss = 0.0;
            for (term, v) in job.program.losses.iter().zip(&terms) {
                if !v.is_finite() {
                    return Err(RuntimeError::Diverged {
                        loss: term.name.clone(),
                        value: *v,
                        epoch,
                        step: state.steps + 1,
                        row: loader.stats().last_row,
                    }
                    .into());
                }
                step_loss += term.weight * *v as f64;
            }
            busy += t0.elapsed().as_secs_f64();
            samples += hb.len;
            state.steps += 1;
            epoch_steps += 1;
            let losses = &job.program.losses;
            sink.step_done(StepLosses { step: state.steps, epoch, total: step_loss, terms: &terms, losses })?;
            loss_sum += step_loss;
            loss_n += 1;
            report.first_loss.get_or_insert(step_loss);
            report.last_loss = Some(step_loss);
            bar.update(loader.stats().rows, loss_sum / loss_n as f64, samples as f64 / busy.max(1e-9));
        }
        bar.finish();
        report.bad_rows += loader.stats().bad_rows;
        if loader.stats().bad_rows > 0 {
            eprintln!(
                "skipped {} bad rows in {}; first: {}",
                loader.stats().bad_rows,
                train_file.display(),
                loader.stats().first_errors.first().map(|e| e.to_string()).unwrap_or_default()
            );
        }
        let valid = evaluate(&job.program, &weights.valid(), valid_file, &opts, &job.device)?;
        let line = serde_json::json!({
            "epoch": epoch,
            "steps": state.steps,
            "train_loss": loss_sum / loss_n.max(1) as f64,
            "seconds": started.elapsed().as_secs_f64(),
            "valid": valid,
        });
        eprintln!("epoch {epoch}: train loss {:.4}, {}", loss_sum / loss_n.max(1) as f64, summary(&valid));
        state.epochs_done = epoch;
        let (optimizer, rows) = optim.to_bytes(&job.program)?;
        let checkpoint = Checkpoint { position: state, model: weights_to_bytes(&weights)?, optimizer, rows };
        sink.epoch_done(checkpoint, line)?;
        report.epochs = epoch;
        report.valid = Some(valid);
        report.epoch_losses.push(loss_sum / loss_n.max(1) as f64);
    }
    report.steps = state.steps;
    report.weights = Some(weights.valid());
    report.samples_per_sec = samples as f64 / busy.max(1e-9);
    Ok(report)
}

/// One line of validation metrics.
pub fn summary(r: &EvalReport) -> String {
    let mut parts = vec![];
    for (name, m) in &r.streams {
        if let Some(a) = m.auc {
            parts.push(format!("{name} AUC {a:.4}"));
        }
    }
    for (name, m) in &r.retrieval {
        if let Some(v) = m.recall.get("@10") {
            parts.push(format!("{name} recall@10 {v:.4}"));
        }
    }
    format!("valid {}", parts.join(", "))
}

/// A progress line on stderr: redrawn in place on a terminal, every 10% otherwise.
struct Progress {
    enabled: bool,
    tty: bool,
    epoch: usize,
    epochs: usize,
    total: usize,
    last_tenth: usize,
    started: Instant,
    last_draw: Instant,
}

impl Progress {
    fn new(enabled: bool, epoch: usize, epochs: usize, rows: usize, cap: Option<usize>) -> Progress {
        let total = cap.map_or(rows, |c| c.min(rows.max(1)));
        let now = Instant::now();
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            epoch,
            epochs,
            total: total.max(1),
            last_tenth: 0,
            started: now,
            last_draw: now,
        }
    }

    fn update(&mut self, rows: usize, loss: f64, rate: f64) {
        if !self.enabled {
            return;
        }
        let frac = (rows as f64 / self.total as f64).min(1.0);
        let line = format!(
            "epoch {}/{} [{:<30}] {:>5.1}% loss {loss:.4} {rate:>8.0} samples/s {:>5.0}s",
            self.epoch,
            self.epochs,
            "#".repeat((frac * 30.0) as usize),
            frac * 100.0,
            self.started.elapsed().as_secs_f64()
        );
        if self.tty {
            if self.last_draw.elapsed().as_millis() > 200 {
                eprint!("\r{line}");
                self.last_draw = Instant::now();
            }
        } else if (frac * 10.0) as usize > self.last_tenth {
            self.last_tenth = (frac * 10.0) as usize;
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}
