//! `recspec simulate`: write a simulated multi-feedback data set.

use super::Exit;
use recspec::app::AppError;
use recspec::simulate::SimConfig;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The directory to write: a data set, or with `--raw` a raw log.
    #[arg(long)]
    out: PathBuf,
    /// Write the raw event log (events.csv, users.csv, items.csv) and the feature set that
    /// imports it (features.recspec) instead of a data set.
    #[arg(long)]
    raw: bool,
    /// Simulated users [default: 2000].
    #[arg(long)]
    users: Option<usize>,
    /// Items in the catalogue [default: 1000].
    #[arg(long)]
    items: Option<usize>,
    /// Impressions (rows) per user [default: 60].
    #[arg(long)]
    impressions: Option<usize>,
    /// Seed of the simulated world [default: 7].
    #[arg(long)]
    seed: Option<u64>,
    /// Max length T of each feedback sequence.
    #[arg(long)]
    seq_len: Option<usize>,
    /// Categorical fields per row.
    #[arg(long)]
    fields: Option<usize>,
    /// Probability that an impression the user would not click is clicked by accident.
    #[arg(long)]
    accidental_click_rate: Option<f64>,
    /// Probability that a liked impression is not clicked.
    #[arg(long)]
    liked_unclick_rate: Option<f64>,
    /// Multiplies every user's dislike propensity.
    #[arg(long)]
    dislike_rate_scale: Option<f64>,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let mut cfg = SimConfig::default();
    cfg.users = args.users.unwrap_or(cfg.users);
    cfg.items = args.items.unwrap_or(cfg.items);
    cfg.impressions_per_user = args.impressions.unwrap_or(cfg.impressions_per_user);
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    cfg.seq_len = args.seq_len.unwrap_or(cfg.seq_len);
    cfg.fields = args.fields.unwrap_or(cfg.fields);
    cfg.accidental_click_rate = args.accidental_click_rate.unwrap_or(cfg.accidental_click_rate);
    cfg.liked_unclick_rate = args.liked_unclick_rate.unwrap_or(cfg.liked_unclick_rate);
    cfg.dislike_rate_scale = args.dislike_rate_scale.unwrap_or(cfg.dislike_rate_scale);
    if args.raw {
        eprintln!("{}", recspec::simulate::simulate_raw(&cfg, &args.out)?);
    } else {
        eprintln!("{}", recspec::simulate::simulate(&cfg, &args.out)?);
    }
    Ok(Exit::Ok)
}
