//! The burn back end: executes a lowered [`Program`](crate::lower::Program).
//!
//! [`weights`] holds a program's parameters as a burn `Module` and initialises them, [`exec`]
//! interprets the program's kernels, [`train`] and [`eval`] drive the data, and [`serve`] ranks
//! a corpus. The runtime knows no run directories: the training loop hands checkpoints to a sink
//! (see `crate::app`). The backend is picked at run time by the `Device`: `flex` (pure-Rust CPU,
//! the default), `ndarray`, or libtorch with the `tch` feature.

pub mod cpu;
pub mod eval;
pub mod exec;
pub mod fused;
pub mod rows;
pub mod serve;
pub mod tensor;
pub mod train;
pub mod weights;

use crate::data::{DataError, SchemaError};
use burn::prelude::Device;
use std::fmt;

/// Why the runtime could not do what was asked.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeError {
    /// A data file is missing, unreadable or holds a bad row (`file:row`).
    Data(DataError),
    /// The model's inputs have no data layout.
    Schema(SchemaError),
    /// The model cannot do what was asked (no loss to train, no output scoring items...).
    Model(String),
    /// A setting passed by the caller is malformed (`--labels`, `--device`...).
    Options(String),
    /// A checkpoint could not be written or decoded, or does not fit the model.
    Checkpoint(String),
    /// A loss term became NaN or infinite.
    Diverged { loss: String, value: f32, epoch: usize, step: u64, row: usize },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Data(e) => e.fmt(f),
            RuntimeError::Schema(e) => e.fmt(f),
            RuntimeError::Model(m) | RuntimeError::Options(m) | RuntimeError::Checkpoint(m) => f.write_str(m),
            RuntimeError::Diverged { loss, value, epoch, step, row } => write!(
                f,
                "loss term `{loss}` became {value} at epoch {epoch}, step {step} (a batch whose last row is row {row} of the training file); lower the learning rate or check the data"
            ),
        }
    }
}

impl From<DataError> for RuntimeError {
    fn from(e: DataError) -> RuntimeError {
        RuntimeError::Data(e)
    }
}

impl From<SchemaError> for RuntimeError {
    fn from(e: SchemaError) -> RuntimeError {
        RuntimeError::Schema(e)
    }
}

impl std::error::Error for RuntimeError {}

/// The devices a user can ask for with `--device`.
pub(crate) const DEVICES: &[&str] = &["cpu", "ndarray", "tch-cpu", "cuda"];

/// Parses `--device`: `cpu` (burn-flex), `ndarray`, and with the `tch` feature `tch-cpu` and
/// `cuda` (libtorch).
pub fn parse_device(name: &str) -> Result<Device, RuntimeError> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        // Deprecated upstream in favour of flex; kept for the backend comparison benchmark.
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        // burn-tch is deprecated upstream; it is the libtorch route this project was asked for.
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "tch-cpu" => Ok(Device::libtorch()),
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "cuda" => Ok(Device::libtorch_cuda(0)),
        #[cfg(not(feature = "tch"))]
        "tch-cpu" | "cuda" => Err(RuntimeError::Options(format!(
            "--device {name} needs libtorch: rebuild with `cargo build --release --features tch` (see README)"
        ))),
        other => Err(RuntimeError::Options(format!("unknown device `{other}`; choose one of {}", DEVICES.join(", ")))),
    }
}
