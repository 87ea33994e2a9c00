//! `recspec export`: a run's weights as safetensors (keyed by recspec parameter keys, what the
//! generated PyTorch module loads), or its inference graph with those weights as ONNX.
//!
//! ONNX goes through the PyTorch back end: the run's `Program` is rendered as the generated
//! module (whose `infer` runs only the steps the declared outputs need), and
//! `recspec_torch.onnx_export` traces it with `torch.onnx.export`. Every kernel thus has one
//! Python implementation, the one the equivalence tests hold to burn's, rather than a third one
//! written as ONNX nodes; the price is a Python with torch and onnx at export time (the test
//! command's `.venv` has them). The test command checks every shipped spec's export against
//! burn-flex with onnxruntime.

use super::{AppError, RunDir};
use crate::files::FileError;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `recspec export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Safetensors,
    Onnx,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "safetensors" => Some(ExportFormat::Safetensors),
            "onnx" => Some(ExportFormat::Onnx),
            _ => None,
        }
    }
}

/// Writes the run's last completed epoch to `out` in `format`; returns the number of
/// parameter tensors written.
pub fn export(run: &Path, format: ExportFormat, out: &Path) -> Result<usize, AppError> {
    let dir = RunDir::open(run);
    let (program, _) = dir.load_program()?;
    let device = crate::runtime::parse_device("cpu")?;
    let weights = dir.load_weights(&program, &device)?;
    let bytes = weights.to_safetensors(&program)?;
    match format {
        ExportFormat::Safetensors => std::fs::write(out, bytes).map_err(FileError::at("write", out))?,
        ExportFormat::Onnx => {
            let scratch = out.with_file_name(format!(".recspec-export-{}", std::process::id()));
            std::fs::create_dir_all(&scratch).map_err(FileError::at("create", &scratch))?;
            let result = onnx(&program, &bytes, &scratch, out);
            let _ = std::fs::remove_dir_all(&scratch);
            result?;
        }
    }
    Ok(program.params.len())
}

/// Renders the module, writes the weights, and runs `recspec_torch.onnx_export` on them.
fn onnx(program: &crate::lower::Program, weights: &[u8], scratch: &Path, out: &Path) -> Result<(), AppError> {
    let model = scratch.join("model.py");
    let module =
        crate::pytorch::render(program).map_err(|e| AppError::Export(format!("cannot render the module: {e}")))?;
    std::fs::write(&model, module).map_err(FileError::at("write", &model))?;
    let weight_file = scratch.join("weights.safetensors");
    std::fs::write(&weight_file, weights).map_err(FileError::at("write", &weight_file))?;
    let python = std::env::var_os("RECSPEC_PYTHON").map(PathBuf::from).unwrap_or_else(|| "python3".into());
    let package = recspec_torch_path()?;
    let output = Command::new(&python)
        .args(["-m", "recspec_torch.onnx_export", "--model"])
        .arg(&model)
        .arg("--weights")
        .arg(&weight_file)
        .arg("--out")
        .arg(out)
        .env("PYTHONPATH", &package)
        .output()
        .map_err(|e| {
            AppError::Export(format!(
                "cannot run {} ({e}); the ONNX export needs a Python with torch and onnx: set RECSPEC_PYTHON",
                python.display()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.contains("Warning") && !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(12)..].join("\n");
        return Err(AppError::Export(format!(
            "the ONNX export of model `{}` failed (python -m recspec_torch.onnx_export with {}):\n{tail}",
            program.model,
            python.display()
        )));
    }
    Ok(())
}

/// Where `recspec_torch` lives: `RECSPEC_TORCH_PATH`, else the `python/` folder of the recspec
/// checkout the binary was built in (found from the executable's path upwards), else `python/`
/// under the current directory.
fn recspec_torch_path() -> Result<PathBuf, AppError> {
    if let Some(p) = std::env::var_os("RECSPEC_TORCH_PATH") {
        return Ok(PathBuf::from(p));
    }
    let has_package = |dir: &Path| dir.join("recspec_torch").join("__init__.py").is_file();
    let from_exe =
        std::env::current_exe().ok().and_then(|exe| exe.ancestors().map(|a| a.join("python")).find(|p| has_package(p)));
    let candidates = from_exe.into_iter().chain(std::env::current_dir().ok().map(|d| d.join("python")));
    for dir in candidates {
        if has_package(&dir) {
            return Ok(dir);
        }
    }
    Err(AppError::Export(
        "cannot find the recspec_torch package (python/ in the recspec repository): set RECSPEC_TORCH_PATH to it"
            .into(),
    ))
}
