//! `recspec import`: turn an event log into a data set, driven by a feature set or a mapping
//! file.

use super::Exit;
use recspec::app::AppError;
use recspec::import::{ImportOptions, Progress, DEFAULT_CHUNK_EVENTS};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("definition").required(true).args(["mapping", "features"])))]
pub struct Args {
    /// The event log: CSV, TSV, JSON Lines or Parquet (one event per row). With `--features`,
    /// the set's `source events(...)` file unless given here.
    #[arg(required_unless_present = "features")]
    events: Option<PathBuf>,
    /// The mapping file (TOML; see docs/import.md).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// A spec file with a feature set (`features NAME { ... }`, docs/features.md), checked first.
    #[arg(long, value_name = "FILE")]
    features: Option<PathBuf>,
    /// The data set directory to write (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// An earlier data set whose ids are kept: its items, users and feature vocabulary values keep
    /// their ids, new ones are numbered after them (ids stable across imports).
    #[arg(long, value_name = "DIR")]
    keep_ids_from: Option<PathBuf>,
    #[command(flatten)]
    skip_bad_rows: super::SkipBadRows,
    /// No progress lines on stderr (the summary is still printed).
    #[arg(long)]
    quiet: bool,
    /// Events per sorted chunk of the external sort (its memory bound).
    #[arg(long, hide = true, default_value_t = DEFAULT_CHUNK_EVENTS)]
    chunk_events: usize,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let options = ImportOptions {
        skip_bad_rows: args.skip_bad_rows.on,
        chunk_events: args.chunk_events,
        keep_ids_from: args.keep_ids_from.clone(),
    };
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
    let (mapping, events) = match (&args.features, &args.mapping, &args.events) {
        (Some(f), _, _) => {
            let (program, checked) = recspec::compile_file(f, &[])?;
            if !checked.diagnostics.is_empty() {
                eprint!("{}", recspec::diag::render(&program.sources, &checked.diagnostics));
            }
            let Some(set) = checked.features else {
                if !checked.has_errors() {
                    eprintln!("error: {} has no feature set (`features NAME {{ ... }}`)", f.display());
                }
                return Ok(Exit::Findings);
            };
            let events =
                args.events.clone().unwrap_or_else(|| recspec::import::mapping::relative_to(f, &set.events.file));
            (recspec::import::mapping::from_features(f, &set, &|s| program.sources.place(s))?, events)
        }
        (None, Some(m), Some(events)) => (recspec::import::mapping::load(m)?, events.clone()),
        // clap requires `--mapping` or `--features`, and EVENTS without `--features`.
        (None, _, _) => {
            eprintln!("error: give `--features FILE`, or EVENTS with `--mapping MAP.toml`");
            return Ok(Exit::Error);
        }
    };
    let summary = recspec::import::import_with(&events, &mapping, &args.out, &options, &mut progress)?;
    eprintln!("{summary}");
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
    Ok(Exit::Ok)
}
