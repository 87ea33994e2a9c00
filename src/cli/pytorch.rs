//! `recspec pytorch`: a run directory for training with the generated PyTorch module instead of
//! recspec's own runtime (the spec, its settings and graph, and `model.py`).
//!
//! `python -m recspec_torch.train DIR --data DATA` (or under `torchrun`) trains `model.py` and
//! writes `DIR/model.safetensors`, which `recspec eval`, `recommend` and `responsiveness` read.

use super::train::{start, RunArgs};
use super::Exit;
use recspec::app::train::Started;
use recspec::app::AppError;
use recspec::files::FileError;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let Some(Started { dir, program, .. }) = start(&args.run, false, None)? else {
        return Ok(Exit::Findings);
    };
    let module = dir.path().join("model.py");
    std::fs::write(&module, recspec::pytorch::render(&program)?).map_err(FileError::at("write", &module))?;
    eprintln!(
        "wrote {} ({} parameters); train it with\n  PYTHONPATH=python torchrun --standalone --nproc_per_node 2 -m recspec_torch.train {} --data {}",
        module.display(),
        recspec::render::thousands(program.trainable_count() as i64),
        dir.path().display(),
        args.run.data.display()
    );
    Ok(Exit::Ok)
}
