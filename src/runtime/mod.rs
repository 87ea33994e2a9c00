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

/// A device a user can ask for with `--device`: its name, the burn [`Device`] it opens, and
/// whether the model's tensors live in this machine's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// burn-flex, the pure-Rust CPU back end and the default (`cpu`, also `flex`).
    Cpu,
    /// burn-ndarray (`ndarray`), kept for the back-end comparison benchmark.
    Ndarray,
    /// libtorch on the CPU (`tch-cpu`; the `tch` feature).
    TchCpu,
    /// libtorch on the first CUDA GPU (`cuda`; the `tch` feature).
    Cuda,
}

impl DeviceChoice {
    /// Every choice, in the order `--device`'s error lists them.
    pub const ALL: [DeviceChoice; 4] =
        [DeviceChoice::Cpu, DeviceChoice::Ndarray, DeviceChoice::TchCpu, DeviceChoice::Cuda];

    /// The name `--device` takes (and `recspec bench` reports).
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Ndarray => "ndarray",
            DeviceChoice::TchCpu => "tch-cpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// Whether the model's tensors live in this machine's memory, so that a run can be checked
    /// against it (`app::memory`); libtorch's CUDA device holds them in GPU memory instead.
    pub fn in_host_memory(self) -> bool {
        match self {
            DeviceChoice::Cpu | DeviceChoice::Ndarray | DeviceChoice::TchCpu => true,
            DeviceChoice::Cuda => false,
        }
    }

    /// Opens the device; the libtorch ones need a build with the `tch` feature.
    pub fn device(self) -> Result<Device, RuntimeError> {
        match self {
            DeviceChoice::Cpu => Ok(Device::flex()),
            // Deprecated upstream in favour of flex; kept for the backend comparison benchmark.
            #[allow(deprecated)]
            DeviceChoice::Ndarray => Ok(Device::ndarray()),
            // burn-tch is deprecated upstream; it is the libtorch route this project was asked for.
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            DeviceChoice::TchCpu => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            DeviceChoice::Cuda => Ok(Device::libtorch_cuda(0)),
            #[cfg(not(feature = "tch"))]
            DeviceChoice::TchCpu | DeviceChoice::Cuda => Err(RuntimeError::Options(format!(
                "--device {self} needs libtorch: rebuild with `cargo build --release --features tch` (see docs/training.md, \"Backends\")"
            ))),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = RuntimeError;

    fn from_str(name: &str) -> Result<DeviceChoice, RuntimeError> {
        if name == "flex" {
            return Ok(DeviceChoice::Cpu);
        }
        DeviceChoice::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = DeviceChoice::ALL.iter().map(|d| d.name()).collect();
            RuntimeError::Options(format!("unknown device `{name}`; choose one of {}", names.join(", ")))
        })
    }
}

/// Parses `--device` and opens it: `cpu` (burn-flex), `ndarray`, and with the `tch` feature
/// `tch-cpu` and `cuda` (libtorch).
pub fn parse_device(name: &str) -> Result<Device, RuntimeError> {
    name.parse::<DeviceChoice>()?.device()
}
