//! `recspec convert`: rewrite a data set's splits as Parquet or JSON Lines.

use super::Exit;
use recspec::app::AppError;
use recspec::data::DataFormat;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
enum To {
    Parquet,
    Jsonl,
}

#[derive(clap::Args)]
pub struct Args {
    /// The data set directory (train/valid/test as .jsonl or .parquet).
    data: PathBuf,
    /// The split format to write.
    #[arg(long, value_enum)]
    to: To,
    /// The directory to write (created if needed; other files of the data set are copied).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let to = match args.to {
        To::Parquet => DataFormat::Parquet,
        To::Jsonl => DataFormat::JsonLines,
    };
    for c in recspec::app::convert::convert(&args.data, to, &args.out)? {
        eprintln!("{}: {} rows -> {}", c.split, c.rows, c.file.display());
    }
    Ok(Exit::Ok)
}
