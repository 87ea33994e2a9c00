//! `recspec import`: turn an event log into a data set, driven by a mapping file.

use super::Exit;
use recspec::app::AppError;
use recspec::import::{ImportOptions, Progress, DEFAULT_CHUNK_EVENTS};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The event log: CSV, TSV or JSON Lines (one event per row).
    events: PathBuf,
    /// The mapping file (TOML; see docs/import.md).
    #[arg(long)]
    mapping: PathBuf,
    /// The data set directory to write (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Skip bad rows (counted, the first few listed) instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
    /// No progress lines on stderr (the summary is still printed).
    #[arg(long)]
    quiet: bool,
    /// Events per sorted chunk of the external sort (its memory bound).
    #[arg(long, hide = true, default_value_t = DEFAULT_CHUNK_EVENTS)]
    chunk_events: usize,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let options = ImportOptions { skip_bad_rows: args.skip_bad_rows, chunk_events: args.chunk_events };
    let started = std::time::Instant::now();
    let quiet = args.quiet;
    let mut progress = |p: Progress| {
        if quiet {
            return;
        }
        match p {
            Progress::Read { rows } => eprintln!("import: read {rows} rows"),
            Progress::Sorting { chunks } if chunks > 1 => eprintln!("import: merging {chunks} sorted chunks"),
            Progress::Sorting { .. } => {}
            Progress::Written { rows } => eprintln!("import: wrote {rows} rows"),
        }
    };
    let summary = recspec::import::import(&args.events, &args.mapping, &args.out, &options, &mut progress)?;
    eprintln!("{summary}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
    Ok(Exit::Ok)
}
