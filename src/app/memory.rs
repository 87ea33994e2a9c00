//! Memory before training: the model card's memory section, `check --verbose`, and the refusal
//! to train a model that cannot fit.

use super::AppError;
use crate::config::{EmbeddingOptimizer, OptimizerKind, TrainSettings};
use crate::ir::Graph;
use crate::lower::flops::{self, Count};
use crate::lower::memory::{estimate, Bytes, MemoryEstimate, OptimizerSlots, TableSlots};
use crate::lower::Program;
use crate::render::{thousands, ComputeView, MemoryView};
use crate::runtime::DeviceChoice;
use std::fmt;

/// The batch size the model card's memory section assumes (the training default).
pub(crate) const CARD_BATCH: usize = 256;

/// The estimate for training `program` at `batch` examples with `train`'s optimizers.
pub fn for_training(program: &Program, batch: usize, train: &TrainSettings) -> MemoryEstimate {
    estimate(program, batch, slots(train))
}

/// What the optimizers of `train` keep (`runtime::rows` for the tables).
fn slots(train: &TrainSettings) -> OptimizerSlots {
    let dense = train.optimizer.state_tensors();
    let tables = match train.embedding_optimizer {
        EmbeddingOptimizer::Dense => None,
        EmbeddingOptimizer::Lazy => Some(TableSlots { per_element: dense, per_row: 0 }),
        EmbeddingOptimizer::RowwiseAdagrad => Some(TableSlots { per_element: 0, per_row: 1 }),
    };
    OptimizerSlots { dense, tables }
}

/// The model card's memory rows.
pub fn view(m: &MemoryEstimate, train: &TrainSettings) -> MemoryView {
    let optimizer = train.optimizer;
    let b = |n: u128| Bytes(n).to_string();
    let mut rows = vec![("parameters".to_string(), b(m.params))];
    if m.state > 0 {
        rows.push(("persistent state".to_string(), b(m.state)));
    }
    rows.push(("gradients".to_string(), b(m.gradients)));
    rows.push((format!("{} state", optimizer.name()), b(m.optimizer)));
    rows.push((
        "activations in training".to_string(),
        format!("{} ({} per example)", b(m.training_activations()), b(m.training_per_example())),
    ));
    rows.push(("**one training step**".to_string(), format!("**{}**", b(m.training_total()))));
    rows.push(("one inference batch".to_string(), b(m.inference_total())));
    MemoryView {
        batch: m.batch,
        optimizer: format!("{} ({} embedding updates)", optimizer.name(), train.embedding_optimizer.name()),
        rows,
        largest: m.largest(5).iter().map(|c| format!("`{}` {} {}", c.name, c.kind, Bytes(c.bytes))).collect(),
    }
}

/// The Markdown model card of `graph`, with its memory at [`CARD_BATCH`] and the default
/// optimizers (Adam, lazy embedding updates).
pub fn model_card(graph: &Graph) -> Result<String, AppError> {
    let program = super::lower_graph(graph)?;
    let train = TrainSettings::default();
    let m = for_training(&program, CARD_BATCH, &train);
    Ok(crate::render::summary(graph, Some(&view(&m, &train)), Some(&compute_view(&program, CARD_BATCH)))?)
}

/// The model card's compute rows: the forward pass and a training step, per example and per
/// batch, and the three steps that cost most in training.
pub(crate) fn compute_view(program: &Program, batch: usize) -> ComputeView {
    let (total, per_step) = flops::count(program, batch);
    let c = |n: u128| Count(n).to_string();
    let rows = vec![
        ("inference (forward)".to_string(), c(total.forward_per_example()), c(total.forward)),
        (
            "**one training step** (forward and backward)".to_string(),
            format!("**{}**", c(total.training_per_example())),
            format!("**{}**", c(total.training)),
        ),
    ];
    let mut steps: Vec<(usize, u128)> = per_step.iter().map(|f| f.training).enumerate().collect();
    steps.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let largest = steps
        .iter()
        .take(3)
        .filter(|(_, n)| *n > 0)
        .map(|&(i, n)| format!("`{}` {} ({})", program.steps[i].name, Count(n), share(n, total.training)))
        .collect();
    ComputeView { batch, rows, largest }
}

/// `n` as a percentage of `total`, `42%`.
fn share(n: u128, total: u128) -> String {
    format!("{:.0}%", n as f64 * 100.0 / total.max(1) as f64)
}

/// `parameters P, gradients G, adam state O, activations A`: where a training step's memory goes.
fn breakdown(m: &MemoryEstimate, optimizer: OptimizerKind) -> String {
    format!(
        "parameters {}, gradients {}, {} state {}, activations {}",
        Bytes(m.params + m.state),
        Bytes(m.gradients),
        optimizer.name(),
        Bytes(m.optimizer),
        Bytes(m.training_activations()),
    )
}

/// One line for `check --verbose`.
pub fn line(program: &Program, m: &MemoryEstimate, optimizer: OptimizerKind) -> String {
    format!(
        "{} trainable parameters; a training step at batch {} with {} needs about {} ({} = {} per \
         example); an inference batch about {}",
        thousands(program.trainable_count().min(i64::MAX as usize) as i64),
        m.batch,
        optimizer.name(),
        Bytes(m.training_total()),
        breakdown(m, optimizer),
        Bytes(m.training_per_example()),
        Bytes(m.inference_total()),
    )
}

/// A model that needs more memory than is available.
#[derive(Debug)]
pub struct TooLarge {
    pub model: String,
    pub estimate: MemoryEstimate,
    pub optimizer: OptimizerKind,
    pub available: u64,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.estimate;
        write!(
            f,
            "model `{}` needs about {} to train at batch {} ({}), but this machine has {} available",
            self.model,
            Bytes(m.training_total()),
            m.batch,
            breakdown(m, self.optimizer),
            Bytes(self.available as u128),
        )?;
        let largest: Vec<String> =
            m.largest(3).iter().map(|c| format!("`{}` ({}, {})", c.name, c.kind, Bytes(c.bytes))).collect();
        write!(f, "; the largest components are {}", largest.join(", "))?;
        if m.training_activations() > m.params + m.gradients + m.optimizer {
            write!(f, "; a smaller --batch-size needs less")?;
        }
        Ok(())
    }
}

/// Refuses a model whose training step cannot fit in `available` bytes.
pub fn check_fits(
    program: &Program,
    batch: usize,
    train: &TrainSettings,
    available: Option<u64>,
) -> Result<(), AppError> {
    let Some(available) = available else { return Ok(()) };
    let optimizer = train.optimizer;
    let estimate = for_training(program, batch, train);
    if estimate.training_total() > available as u128 {
        return Err(AppError::TooLarge(Box::new(TooLarge {
            model: program.model.clone(),
            estimate,
            optimizer,
            available,
        })));
    }
    Ok(())
}

/// The host memory a run on `device` can be checked against: `None` for a device that holds the
/// model in GPU memory, which this check does not read.
pub fn available_for(device: DeviceChoice) -> Option<u64> {
    if device.in_host_memory() {
        available_memory()
    } else {
        None
    }
}

/// The memory this machine has available for a new process (Linux: `MemAvailable`), or `None`
/// where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines().find_map(|l| {
        let kib = l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
        Some(kib * 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_devices_in_host_memory_are_checked_against_it() {
        assert!(available_memory().is_some(), "Linux reports MemAvailable");
        for device in DeviceChoice::ALL {
            assert_eq!(device.name().parse::<DeviceChoice>(), Ok(device), "`{device}` names itself");
            // libtorch's CUDA device keeps the model in GPU memory, which the check cannot read.
            assert_eq!(available_for(device).is_none(), device == DeviceChoice::Cuda, "{device}");
        }
        assert_eq!("flex".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
    }
}
