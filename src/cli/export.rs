//! `recspec export`: a run's weights and memory state as a safetensors file keyed by recspec
//! parameter keys (`f_c/attended/query.weight`), the format the generated PyTorch module loads
//! with `load_recspec_state_dict`; or with `--format onnx` its inference graph and weights as
//! one ONNX file (`recspec::app::export`).

use super::Exit;
use recspec::app::export::{export, ExportFormat};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The run directory whose last completed epoch to export.
    run: PathBuf,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// safetensors (the weights) or onnx (inference graph and weights; needs a Python with
    /// torch and onnx, `RECSPEC_PYTHON`).
    #[arg(long, default_value = "safetensors", value_parser = parse_format)]
    format: ExportFormat,
}

fn parse_format(s: &str) -> Result<ExportFormat, String> {
    ExportFormat::parse(s).ok_or_else(|| format!("expected safetensors or onnx, found `{s}`"))
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let tensors = export(&args.run, args.format, &args.out)?;
    match args.format {
        ExportFormat::Safetensors => eprintln!("wrote {} ({tensors} tensors)", args.out.display()),
        ExportFormat::Onnx => eprintln!(
            "wrote {} (the inference graph: inputs and outputs by name, dynamic batch; {tensors} parameter tensors)",
            args.out.display()
        ),
    }
    Ok(Exit::Ok)
}
