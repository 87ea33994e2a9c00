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
    /// Simulated users.
    #[arg(long, default_value_t = SimConfig::default().users)]
    users: usize,
    /// Items in the catalogue.
    #[arg(long, default_value_t = SimConfig::default().items)]
    items: usize,
    /// Impressions (rows) per user.
    #[arg(long, default_value_t = SimConfig::default().impressions_per_user)]
    impressions: usize,
    /// Seed of the simulated world.
    #[arg(long, default_value_t = SimConfig::default().seed)]
    seed: u64,
    /// Max length T of each feedback sequence.
    #[arg(long, default_value_t = SimConfig::default().seq_len)]
    seq_len: usize,
    /// Categorical fields per row (8 base fields, then hashed crosses).
    #[arg(long, default_value_t = SimConfig::default().fields)]
    fields: usize,
    /// Probability that an impression the user would not click is clicked by accident.
    #[arg(long, default_value_t = SimConfig::default().accidental_click_rate)]
    accidental_click_rate: f64,
    /// Probability that a liked impression is not clicked.
    #[arg(long, default_value_t = SimConfig::default().liked_unclick_rate)]
    liked_unclick_rate: f64,
    /// Multiplies every user's dislike propensity.
    #[arg(long, default_value_t = SimConfig::default().dislike_rate_scale)]
    dislike_rate_scale: f64,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let cfg = SimConfig {
        users: args.users,
        items: args.items,
        impressions_per_user: args.impressions,
        seed: args.seed,
        seq_len: args.seq_len,
        fields: args.fields,
        accidental_click_rate: args.accidental_click_rate,
        liked_unclick_rate: args.liked_unclick_rate,
        dislike_rate_scale: args.dislike_rate_scale,
        ..SimConfig::default()
    };
    if args.raw {
        eprintln!("{}", recspec::simulate::simulate_raw(&cfg, &args.out)?);
    } else {
        eprintln!("{}", recspec::simulate::simulate(&cfg, &args.out)?);
    }
    Ok(Exit::Ok)
}
