//! `recspec train`: train a spec on a data set into a run directory, or continue one.

use super::{compile, Exit, Hparams};
use recspec::app::settings::{merge_train_settings, TrainFlags};
use recspec::app::train::{check_splits, start_run, train, trainable_graph, TrainOptions};
use recspec::app::{memory, AppError, RunDir};
use recspec::config::{EmbeddingOptimizer, TrainSettings};
use recspec::lower::Program;
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
    /// Epochs to train [default: the run config's, else 2].
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop each epoch after this many steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Learning rate [default: the run config's, else 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// Rows per batch [default: the run config's, else 256].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of initialisation, dropout and sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// How embedding tables are updated: lazy (only the rows a step looked up, the default),
    /// rowwise_adagrad (TorchRec's row-wise Adagrad) or dense (every row, every step).
    #[arg(long, value_parser = super::parse_embedding_optimizer)]
    embedding_optimizer: Option<EmbeddingOptimizer>,
    /// Rows in the shuffle buffer of the training order (seeded by --seed and the epoch; the
    /// default 10000); 0 reads the training file in order.
    #[arg(long)]
    shuffle_buffer: Option<usize>,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Continue a run that was interrupted, after its last completed epoch.
    #[arg(long)]
    resume: bool,
    /// Skip (and count) malformed rows instead of stopping at the first.
    #[arg(long)]
    skip_bad_rows: bool,
    /// cpu (burn-flex), ndarray, or with the `tch` feature tch-cpu and cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Extra label streams to report in validation, comma-separated: `name` (scored as 1 - p)
    /// or `name=output`.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// A run directory ready to train in: the spec compiled for the data set, its settings merged,
/// the spec, settings and graph saved. `Err(exit)` when the spec has errors.
pub struct Started {
    pub dir: RunDir,
    pub program: Program,
    pub settings: TrainSettings,
}

/// Compiles `run.file` for its data set and prepares `run.out` (a new run, or with `resume` the
/// same run continued). With `available` bytes of memory, a model whose training step needs
/// more is refused before anything is written.
pub fn start(run: &RunArgs, resume: bool, available: Option<u64>) -> Result<Result<Started, Exit>, AppError> {
    let config = match &run.hparams.config {
        Some(p) => recspec::config::load_run_config(p)?,
        None => Default::default(),
    };
    let flags = TrainFlags {
        epochs: run.epochs,
        max_steps: run.max_steps,
        lr: run.lr,
        batch_size: run.batch_size,
        seed: run.seed,
        embedding_optimizer: run.embedding_optimizer,
        shuffle_buffer: run.shuffle_buffer,
    };
    let settings = merge_train_settings(config.train.as_ref(), &flags)?;
    let (loaded, checked) = compile(&run.file, Some(&run.data), &run.hparams.overrides()?)?;
    let Some(graph) = checked.graph else { return Ok(Err(Exit::Findings)) };
    let graph = trainable_graph(&run.file, graph, &config.loss_weights)?;
    let program = recspec::app::lower_graph(&graph)?;
    memory::check_fits(&program, settings.batch_size, &settings, available)?;
    check_splits(&program, &run.data)?;
    let dir = start_run(&run.out, resume, &run.file, &loaded, &graph, &settings, &run.data)?;
    Ok(Ok(Started { dir, program, settings }))
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let available = memory::available_for(&args.device);
    let Started { dir, program, settings } = match start(&args.run, args.resume, available)? {
        Ok(started) => started,
        Err(exit) => return Ok(exit),
    };
    let run = &args.run;
    eprintln!(
        "training {} ({} parameters) on {} with {}",
        run.file.display(),
        recspec::render::thousands(program.trainable_count() as i64),
        run.data.display(),
        settings
    );
    let options = TrainOptions {
        device: recspec::runtime::parse_device(&args.device)?,
        skip_bad_rows: args.skip_bad_rows,
        extra_labels: args.labels,
        progress: !args.quiet,
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
