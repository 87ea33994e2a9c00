//! `recspec diff`: the structural difference of two specs' graphs, or of every spec changed
//! since a git revision (`--git REV`, see `recspec::app::git_diff`).

use super::{compile, Exit, Hparams};
use clap::ValueEnum;
use recspec::app::{git_diff, AppError};
use std::path::PathBuf;

#[derive(clap::Args)]
#[command(
    override_usage = "recspec diff OLD NEW [OPTIONS]\n       recspec diff --git REV [PATHS]... [--format FORMAT]"
)]
pub struct Args {
    /// OLD and NEW spec files; with --git, spec files or folders to compare (default: the whole
    /// repository).
    #[arg(value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Compare every spec whose file or imports changed between this git revision and the work
    /// tree (old versions read from git, imports at the same revision).
    #[arg(long, value_name = "REV")]
    git: Option<String>,
    #[command(flatten)]
    hparams: Hparams,
    /// Plain text, Markdown for a pull request, or one self-contained HTML page with the two
    /// architectures overlaid (added, removed and changed parts coloured).
    #[arg(long, value_enum, default_value = "text")]
    format: DiffFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
    Html,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    if let Some(rev) = &args.git {
        return run_git(rev, &args);
    }
    let [old, new] = args.files.as_slice() else {
        eprintln!("error: `recspec diff` takes two spec files, OLD and NEW (or --git REV [PATHS])");
        return Ok(Exit::Error);
    };
    let overrides = args.hparams.overrides()?;
    let (_, a) = compile(old, None, None, &overrides)?;
    let (_, b) = compile(new, None, None, &overrides)?;
    let (Some(ga), Some(gb)) = (a.graph, b.graph) else {
        eprintln!("error: both specs must compile to be compared");
        return Ok(Exit::Error);
    };
    let report = recspec::diff::diff(&ga, &gb);
    match args.format {
        DiffFormat::Html => {
            let (a, b) = (old.display().to_string(), new.display().to_string());
            print!("{}", recspec::app::pictures::diff_page(&a, &b, &ga, &gb)?)
        }
        DiffFormat::Text | DiffFormat::Markdown => {
            print!("{}", recspec::diff::render(&report, matches!(args.format, DiffFormat::Markdown))?)
        }
    }
    Ok(if report.same { Exit::Ok } else { Exit::Findings })
}

fn run_git(rev: &str, args: &Args) -> Result<Exit, AppError> {
    if !args.hparams.set.is_empty() || args.hparams.config.is_some() {
        eprintln!("error: --set and --config apply to one spec; `diff --git` compares specs as written");
        return Ok(Exit::Error);
    }
    let cwd = std::env::current_dir().map_err(recspec::files::FileError::at("read", std::path::Path::new(".")))?;
    let report = git_diff::diff_against(&cwd, rev, &args.files)?;
    match args.format {
        DiffFormat::Html => print!("{}", recspec::app::pictures::git_diff_page(&report)?),
        DiffFormat::Text | DiffFormat::Markdown => {
            print!("{}", git_diff::render(&report, matches!(args.format, DiffFormat::Markdown))?)
        }
    }
    Ok(if report.broken() {
        Exit::Error
    } else if report.changed() {
        Exit::Findings
    } else {
        Exit::Ok
    })
}
