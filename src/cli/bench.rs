//! `recspec bench`: one spec's training and inference speed and peak memory as a JSON line.

use super::{compile, Exit, Hparams};
use recspec::app::bench::{bench, BenchSettings};
use recspec::app::{memory, AppError};
use recspec::config::EmbeddingOptimizer;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The spec to measure.
    file: PathBuf,
    /// The data set whose training split supplies the batches.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    hparams: Hparams,
    /// Rows per batch.
    #[arg(long, default_value_t = recspec::config::TrainSettings::default().batch_size)]
    batch_size: usize,
    /// Timed training steps and inference batches.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed training steps before them.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Time more steps and inference batches until they add up to at least this many seconds.
    #[arg(long, default_value_t = 0.0)]
    min_seconds: f64,
    #[command(flatten)]
    device: super::DeviceArg,
    /// How embedding tables are updated: lazy, rowwise_adagrad or dense.
    #[arg(long, default_value = recspec::config::TrainSettings::default().embedding_optimizer.name(), value_parser = super::parse_embedding_optimizer)]
    embedding_optimizer: EmbeddingOptimizer,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    if args.batch_size == 0 || args.steps == 0 {
        return Err(
            recspec::runtime::RuntimeError::Options("--batch-size and --steps must be at least 1".into()).into()
        );
    }
    if !(args.min_seconds.is_finite() && args.min_seconds >= 0.0) {
        let message = format!("--min-seconds must be a finite number of seconds, at least 0, got {}", args.min_seconds);
        return Err(recspec::runtime::RuntimeError::Options(message).into());
    }
    let (_, checked) = compile(&args.file, Some(&args.data), None, &args.hparams.overrides()?)?;
    let Some(graph) = checked.graph else { return Ok(Exit::Findings) };
    let program = recspec::app::lower_graph(&graph)?;
    let train = recspec::config::TrainSettings { embedding_optimizer: args.embedding_optimizer, ..Default::default() };
    memory::check_fits(&program, args.batch_size, &train, memory::available_for(args.device.choice))?;
    let settings = BenchSettings {
        batch_size: args.batch_size,
        steps: args.steps,
        warmup: args.warmup,
        min_seconds: args.min_seconds,
        device: args.device.choice,
        embedding_optimizer: args.embedding_optimizer,
    };
    let name = args.file.file_stem().map_or("spec".into(), |s| s.to_string_lossy().to_string());
    let report = bench(&name, &program, &args.data, &settings)?;
    println!("{}", serde_json::to_string(&report).map_err(AppError::Json)?);
    Ok(Exit::Ok)
}
