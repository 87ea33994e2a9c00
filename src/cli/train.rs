//! `recspec train`: train a spec on a data set into a run directory, or continue one.

use super::{Exit, Hparams};
use recspec::app::settings::TrainFlags;
use recspec::app::train::{prepare, train, RunRequest, Started, TrainOptions};
use recspec::app::{memory, AppError};
use recspec::config::{EmbeddingOptimizer, TrainSettings};
use std::path::PathBuf;

/// What a run is made of: the spec, the data set, the run directory and the settings.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The spec to train.
    file: PathBuf,
    /// The data set directory (train and valid splits, data.toml).
    #[arg(long)]
    pub data: PathBuf,
    /// The run directory to write (or, with --resume, to continue).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    hparams: Hparams,
    #[arg(long, help = overlaid("Epochs to train", TrainSettings::default().epochs))]
    epochs: Option<usize>,
    /// Stop each epoch after this many steps.
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, help = overlaid("Learning rate", TrainSettings::default().lr))]
    lr: Option<f64>,
    #[arg(long, help = overlaid("Rows per batch", TrainSettings::default().batch_size))]
    batch_size: Option<usize>,
    #[arg(long, help = overlaid("Seed of initialisation, dropout and sampling", TrainSettings::default().seed))]
    seed: Option<u64>,
    #[arg(long, value_parser = super::parse_embedding_optimizer, help = overlaid(
        "How embedding tables are updated: lazy (only the rows a step looked up), rowwise_adagrad (TorchRec's row-wise Adagrad) or dense (every row, every step)",
        TrainSettings::default().embedding_optimizer.name(),
    ))]
    embedding_optimizer: Option<EmbeddingOptimizer>,
    #[arg(long, help = overlaid(
        "Rows in the shuffle buffer of the training order (seeded by --seed and the epoch); 0 reads the training file in order",
        TrainSettings::default().shuffle_buffer,
    ))]
    shuffle_buffer: Option<usize>,
}

/// The help of a flag that overlays the run config: `WHAT [default: the run config's, else X]`,
/// X read from [`TrainSettings::default`], so the help cannot drift from the default.
fn overlaid(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: the run config's, else {default}]")
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Continue a run that was interrupted, after its last completed epoch.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    skip_bad_rows: super::SkipBadRows,
    #[command(flatten)]
    device: super::DeviceArg,
    /// Extra label streams to report in validation, comma-separated: `name` (scored as 1 - p)
    /// or `name=output`.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Start from an earlier run's weights (a warm start): parameters of the same shape are
    /// copied, tables that grew keep their earlier rows first (import the data with
    /// `--keep-ids-from`), new parameters start fresh. Ignored when --resume continues a run.
    #[arg(long, value_name = "RUN")]
    init_from: Option<PathBuf>,
}

/// Prepares the run `run` asks for (`app::train::prepare`), printing the spec's diagnostics;
/// `None` when the spec has errors. The run config is read here, once.
pub fn start(run: &RunArgs, resume: bool, available: Option<u64>) -> Result<Option<Started>, AppError> {
    let config = match &run.hparams.config {
        Some(p) => recspec::config::load_run_config(p)?,
        None => Default::default(),
    };
    let request = RunRequest {
        spec: &run.file,
        data: &run.data,
        out: &run.out,
        config,
        set: run.hparams.set_overrides()?,
        flags: TrainFlags {
            epochs: run.epochs,
            max_steps: run.max_steps,
            lr: run.lr,
            batch_size: run.batch_size,
            seed: run.seed,
            embedding_optimizer: run.embedding_optimizer,
            shuffle_buffer: run.shuffle_buffer,
        },
        resume,
        available,
    };
    prepare(request, &mut |spec, diagnostics| eprint!("{}", recspec::diag::render(&spec.sources, diagnostics)))
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let available = memory::available_for(args.device.choice);
    // Before the run directory is made: a data set that moved the earlier run's ids is refused.
    let kept = match &args.init_from {
        Some(earlier) => recspec::app::train::check_kept_ids(earlier, &args.run.data)?,
        None => None,
    };
    let Some(Started { dir, program, settings }) = start(&args.run, args.resume, available)? else {
        return Ok(Exit::Findings);
    };
    let run = &args.run;
    eprintln!(
        "training {} ({} parameters) on {} with {}",
        run.file.display(),
        recspec::render::thousands(program.trainable_count() as i64),
        run.data.display(),
        settings
    );
    let device = args.device.choice.device()?;
    let init_from = match &args.init_from {
        Some(earlier) => {
            let (bytes, plan) = recspec::app::train::earlier_weights(earlier, &program, &device)?;
            let grown: Vec<String> = plan.grown.iter().map(|(k, a, b)| format!("{k} {a} -> {b} rows")).collect();
            eprintln!(
                "warm start from {}: {} parameters copied, {} tables grown{}, {} fresh{}",
                earlier.display(),
                plan.copied.len(),
                plan.grown.len(),
                if grown.is_empty() { String::new() } else { format!(" ({})", grown.join(", ")) },
                plan.fresh.len(),
                if plan.fresh.is_empty() { String::new() } else { format!(" ({})", plan.fresh.join(", ")) },
            );
            match kept {
                Some([items, users, values]) => eprintln!(
                    "ids kept: {items} items, {users} users and {values} feature values have the ids {} trained with",
                    earlier.display()
                ),
                None => eprintln!(
                    "warning: {} keeps no copy of its data set's ids (trained before runs kept one, or on data without vocabularies): the data set's ids are not checked",
                    earlier.display()
                ),
            }
            Some(bytes)
        }
        None => None,
    };
    let options = TrainOptions {
        device,
        skip_bad_rows: args.skip_bad_rows.on,
        extra_labels: args.labels,
        progress: !args.quiet,
        init_from,
    };
    let report = train(&dir, program, settings, &run.data, options)?;
    eprintln!(
        "done: {} epoch{}, {} steps, loss {:.4} -> {:.4}, {:.0} samples/s; run in {}",
        report.epochs,
        if report.epochs == 1 { "" } else { "s" },
        report.steps,
        report.first_loss.unwrap_or(f64::NAN),
        report.last_loss.unwrap_or(f64::NAN),
        report.samples_per_sec,
        run.out.display()
    );
    if let Some(v) = &report.valid {
        println!("{}", recspec::runtime::train::summary(v));
    }
    Ok(Exit::Ok)
}
