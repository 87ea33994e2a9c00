//! `recspec diff`: the structural difference of two specs' graphs.

use super::{compile, Exit, Hparams};
use clap::ValueEnum;
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    old: PathBuf,
    new: PathBuf,
    #[command(flatten)]
    hparams: Hparams,
    #[arg(long, value_enum, default_value = "text")]
    format: DiffFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let overrides = args.hparams.overrides()?;
    let (_, a) = compile(&args.old, None, &overrides)?;
    let (_, b) = compile(&args.new, None, &overrides)?;
    let (Some(ga), Some(gb)) = (a.graph, b.graph) else {
        eprintln!("error: both specs must compile to be compared");
        return Ok(Exit::Error);
    };
    let report = recspec::diff::diff(&ga, &gb);
    let text = recspec::diff::render(&report, matches!(args.format, DiffFormat::Markdown)).map_err(AppError::Render)?;
    print!("{text}");
    Ok(if report.same { Exit::Ok } else { Exit::Findings })
}
