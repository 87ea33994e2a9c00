//! `recspec check`: compile specs and count their errors and warnings.

use super::{compile, Exit, FeatureFile, Hparams};
use recspec::app::{memory, AppError};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The spec files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    hparams: Hparams,
    #[command(flatten)]
    features: FeatureFile,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
    /// Also print each model's parameters and the memory a training step needs (at the run
    /// config's batch size and optimizer, or batch 256 with Adam).
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let overrides = args.hparams.overrides()?;
    let settings = match (&args.hparams.config, args.verbose) {
        (Some(p), true) => {
            let config = recspec::config::load_run_config(p)?;
            recspec::app::settings::merge_train_settings(config.train.as_ref(), &Default::default())?
        }
        _ => Default::default(),
    };
    let (mut errors, mut warnings) = (0, 0);
    for f in &args.files {
        let (_, checked) = compile(f, None, args.features.features.as_deref(), &overrides)?;
        let e = checked.diagnostics.iter().filter(|d| d.is_error()).count();
        errors += e;
        warnings += checked.diagnostics.len() - e;
        if let (true, Some(graph)) = (args.verbose, &checked.graph) {
            let program = recspec::app::lower_graph(graph)?;
            let m = memory::for_training(&program, settings.batch_size, &settings);
            eprintln!("{}: model `{}`: {}", f.display(), program.model, memory::line(&program, &m, settings.optimizer));
        }
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
