//! `recspec recommend`: top-K items for every history in a JSON Lines file, as JSON Lines.

use super::Exit;
use recspec::app::recommend::{recommend, recommender};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The trained run directory.
    run: PathBuf,
    /// The histories to rank for, one per row (JSON Lines or Parquet).
    #[arg(long = "user-history")]
    user_history: PathBuf,
    /// Items per list.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Leave out items already in the history's sequences.
    #[arg(long)]
    exclude_consumed: bool,
    /// The output that scores every item, when the model has several.
    #[arg(long)]
    output: Option<String>,
    #[command(flatten)]
    device: super::DeviceArg,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let device = args.device.choice.device()?;
    let rec = recommender(&args.run, args.output.as_deref(), device)?;
    let mut out = String::new();
    for (line, list) in recommend(&rec, &args.user_history, args.k, args.exclude_consumed)? {
        let items: Vec<i64> = list.iter().map(|p| p.item).collect();
        let scores: Vec<f32> = list.iter().map(|p| p.score).collect();
        out.push_str(&serde_json::json!({ "line": line, "items": items, "scores": scores }).to_string());
        out.push('\n');
    }
    print!("{out}");
    Ok(Exit::Ok)
}
