//! `recspec eval`: evaluate a trained run on a data split, optionally against a baseline run.

use super::{print_json, Exit};
use recspec::app::eval::{eval, EvalRequest};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    run: PathBuf,
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// Another run to compute RelaImpr against.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Extra label streams to report, comma-separated: `name` (scored as 1 - p) or
    /// `name=output` (scored by that output, e.g. `positive=p_up`).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    k: Vec<usize>,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    skip_bad_rows: bool,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let request = EvalRequest {
        run: &args.run,
        data: &args.data,
        split: &args.split,
        baseline: args.baseline.as_deref(),
        labels: &args.labels,
        ks: args.k,
        skip_bad_rows: args.skip_bad_rows,
        device: recspec::runtime::parse_device(&args.device)?,
    };
    print_json(&eval(&request)?)?;
    Ok(Exit::Ok)
}
