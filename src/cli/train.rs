//! `recspec train`: train a spec on a data set into a run directory, or continue one.

use super::{compile, Exit, Hparams};
use recspec::app::settings::{merge_train_settings, TrainFlags};
use recspec::app::train::{start_run, train, trainable_graph, TrainOptions};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    hparams: Hparams,
    /// Continue a run that was interrupted, after its last completed epoch.
    #[arg(long)]
    resume: bool,
    /// Skip (and count) malformed rows instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
    /// cpu (burn-flex), ndarray, or with the `tch` feature tch-cpu and cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of initialisation, dropout and sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Extra label streams to report in validation, comma-separated: `name` (scored as 1 - p)
    /// or `name=output`.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let config = match &args.hparams.config {
        Some(p) => recspec::config::load_run_config(p)?,
        None => Default::default(),
    };
    let flags = TrainFlags {
        epochs: args.epochs,
        max_steps: args.max_steps,
        lr: args.lr,
        batch_size: args.batch_size,
        seed: args.seed,
    };
    let settings = merge_train_settings(config.train.as_ref(), &flags)?;
    let (program, checked) = compile(&args.file, Some(&args.data), &args.hparams.overrides()?)?;
    let Some(graph) = checked.graph else { return Ok(Exit::Findings) };
    let graph = trainable_graph(&args.file, graph, &config.loss_weights)?;
    let dir = start_run(&args.out, args.resume, &args.file, &program, &graph, &settings, &args.data)?;
    let plan = recspec::app::lower_graph(&graph)?;
    eprintln!(
        "training {} ({} parameters) on {} with {}",
        args.file.display(),
        recspec::render::thousands(plan.trainable_count() as i64),
        args.data.display(),
        settings
    );
    let options = TrainOptions {
        device: recspec::runtime::parse_device(&args.device)?,
        skip_bad_rows: args.skip_bad_rows,
        extra_labels: args.labels,
        progress: !args.quiet,
    };
    let report = train(&dir, plan, settings, &args.data, options)?;
    eprintln!(
        "done: {} epochs, {} steps, loss {:.4} -> {:.4}, {:.0} samples/s; run in {}",
        report.epochs,
        report.steps,
        report.first_loss.unwrap_or(f64::NAN),
        report.last_loss.unwrap_or(f64::NAN),
        report.samples_per_sec,
        args.out.display()
    );
    if let Some(v) = &report.valid {
        println!("{}", recspec::runtime::train::summary(v));
    }
    Ok(Exit::Ok)
}
