//! `recspec responsiveness`: responsiveness to dislikes by counterfactual simulation, and the
//! re-recommendation rate of disliked items and creators.

use super::{print_json, Exit};
use recspec::app::recommend::recommender;
use recspec::app::responsiveness::{choose_dwell, history_len, measure, Settings};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The trained retrieval run directory.
    run: PathBuf,
    /// The simulated data set the run was trained on (items.jsonl, test split).
    #[arg(long)]
    data: PathBuf,
    /// Simulated users (trajectories).
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// k: the step at which the history branches.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// K: length of each recommendation list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Seed of the simulated choices and the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also branch into a skip (a short view).
    #[arg(long)]
    skip_branch: bool,
    /// Leave out items already in the trajectory's history.
    #[arg(long)]
    exclude_consumed: bool,
    /// The history sequence input, with `.dwell` and `.disliked` side features.
    #[arg(long, default_value = "history")]
    history: String,
    /// Where trajectories start: `empty` (the paper) or `test` (held-out histories, one per user).
    #[arg(long, default_value = "empty", value_parser = ["empty", "test"])]
    start: String,
    /// Seconds of a long view (each consumed step, the positive and dislike branches) [default:
    /// the median dwell of the training histories' steps not disliked].
    #[arg(long, value_name = "SECONDS")]
    long_view: Option<f64>,
    /// Seconds of the skip branch's short view [default: the 10th percentile of that dwell].
    #[arg(long, value_name = "SECONDS")]
    skip_view: Option<f64>,
    /// The output that scores every item, when the model has several.
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    device: super::DeviceArg,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let device = args.device.choice.device()?;
    let rec = recommender(&args.run, args.output.as_deref(), device)?;
    let settings = Settings {
        users: args.users,
        steps: args.steps,
        top: args.top,
        seed: args.seed,
        skip_branch: args.skip_branch,
        max_len: history_len(&rec, &args.history)?,
        dwell: choose_dwell(&args.data, &args.history, args.seed, args.long_view, args.skip_view)?,
        history: args.history,
        exclude_consumed: args.exclude_consumed,
    };
    print_json(&measure(&rec, &args.data, &settings, args.start == "test")?)?;
    Ok(Exit::Ok)
}
