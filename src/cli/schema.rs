//! `recspec schema`: the JSON Lines row format a spec's inputs expect.

use super::{compile, Exit, Hparams};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The spec whose inputs define the rows.
    file: PathBuf,
    #[command(flatten)]
    hparams: Hparams,
    /// Apply the data set's data.toml dims first.
    #[arg(long)]
    data: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let (_, checked) = compile(&args.file, args.data.as_deref(), None, &args.hparams.overrides()?)?;
    let Some(graph) = checked.graph else { return Ok(Exit::Findings) };
    print!("{}", recspec::data::Schema::from_graph(&graph)?.describe());
    Ok(Exit::Ok)
}
