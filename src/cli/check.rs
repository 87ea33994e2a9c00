//! `recspec check`: compile specs and count their errors and warnings.

use super::{compile, Exit, Hparams};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    hparams: Hparams,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let overrides = args.hparams.overrides()?;
    let (mut errors, mut warnings) = (0, 0);
    for f in &args.files {
        let (_, checked) = compile(f, None, &overrides)?;
        let e = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        errors += e;
        warnings += checked.diagnostics.len() - e;
    }
    let s = |n: usize| if n == 1 { "" } else { "s" };
    eprintln!(
        "checked {} file{}: {errors} error{}, {warnings} warning{}",
        args.files.len(),
        s(args.files.len()),
        s(errors),
        s(warnings)
    );
    Ok(if errors > 0 || (args.deny_warnings && warnings > 0) { Exit::Findings } else { Exit::Ok })
}
