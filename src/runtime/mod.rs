//! The burn runtime: compiled graphs become trainable models.
//!
//! [`plan`] evaluates a graph's shapes and owns parameter layout and initialisation, [`exec`]
//! runs the forward pass, [`train`] and [`eval`] drive the data, and [`serve`] ranks items. The
//! runtime knows no run directories: the training loop hands checkpoints to a sink (see
//! `crate::app`). The backend is picked at run time by the `Device`: `flex` (pure-Rust CPU, the
//! default), `ndarray`, or libtorch with the `tch` feature.

pub mod eval;
pub mod exec;
pub mod plan;
pub mod serve;
pub mod tensor;
pub mod train;

use burn::prelude::Device;

/// The devices a user can ask for with `--device`.
pub const DEVICES: &[&str] = &["cpu", "ndarray", "tch-cpu", "cuda"];

/// Parses `--device`: `cpu` (burn-flex), `ndarray`, and with the `tch` feature `tch-cpu` and
/// `cuda` (libtorch).
pub fn parse_device(name: &str) -> Result<Device, String> {
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
        "tch-cpu" | "cuda" => Err(format!(
            "--device {name} needs libtorch: rebuild with `cargo build --release --features tch` (see README)"
        )),
        other => Err(format!("unknown device `{other}`; choose one of {}", DEVICES.join(", "))),
    }
}
