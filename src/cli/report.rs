//! `recspec report RUN... [--out FILE]`: one self-contained HTML page of one run, or of several
//! runs overlaid in each chart (see `recspec::app::report`).

use super::Exit;
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Run directories written by `recspec train --out` (several: their curves overlaid).
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// Write the page here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let page = recspec::app::report::report(&args.runs)?;
    match &args.out {
        Some(path) => {
            recspec::app::run_dir::write_atomic(path, page.as_bytes())?;
            eprintln!("report written to {}", path.display());
        }
        None => print!("{page}"),
    }
    Ok(Exit::Ok)
}
