//! `recspec export`: a run's weights and memory state as a safetensors file keyed by recspec
//! parameter keys (`f_c/attended/query.weight`), the format the generated PyTorch module loads
//! with `load_recspec_state_dict`.

use super::Exit;
use recspec::app::{AppError, RunDir};
use recspec::files::FileError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The run directory whose last completed epoch to export.
    run: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let dir = RunDir::open(&args.run);
    let (program, _) = dir.load_program()?;
    let device = recspec::runtime::parse_device("cpu")?;
    let weights = dir.load_weights(&program, &device)?;
    let bytes = weights.to_safetensors(&program)?;
    std::fs::write(&args.out, bytes).map_err(FileError::at("write", &args.out))?;
    eprintln!("wrote {} ({} tensors)", args.out.display(), program.params.len());
    Ok(Exit::Ok)
}
