//! `recspec eval`: evaluate a trained run on a data split, optionally against a baseline run.

use super::{print_json, Exit};
use recspec::app::eval::{eval, EvalRequest};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The run directory to evaluate.
    run: PathBuf,
    /// The data set directory.
    #[arg(long)]
    data: PathBuf,
    /// The split to score: train, valid or test.
    #[arg(long, default_value = "test")]
    split: String,
    /// Another run to compute RelaImpr against.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Extra label streams to report, comma-separated: `name` (scored as 1 - p) or
    /// `name=output` (scored by that output, e.g. `positive=p_up`).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The cut-offs of recall@K and NDCG@K for retrieval heads, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    k: Vec<usize>,
    #[command(flatten)]
    device: super::DeviceArg,
    #[command(flatten)]
    skip_bad_rows: super::SkipBadRows,
    /// Also write every row's scores to this JSON Lines file: `{"file", "row", "scores": {stream: p}}`.
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let request = EvalRequest {
        run: &args.run,
        data: &args.data,
        split: &args.split,
        baseline: args.baseline.as_deref(),
        labels: &args.labels,
        ks: args.k,
        skip_bad_rows: args.skip_bad_rows.on,
        device: args.device.choice.device()?,
        predictions: args.predictions.as_deref(),
    };
    print_json(&eval(&request)?)?;
    Ok(Exit::Ok)
}
