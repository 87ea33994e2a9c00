//! `recspec fmt`: rewrite spec files in the canonical layout, or `--check` that they are.

use super::Exit;
use recspec::app::format::{format_file, format_text, write, Formatted};
use recspec::app::snapshot::spec_files;
use recspec::app::{unified_diff, AppError};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Spec files, or folders searched for `*.recspec`; `-` formats standard input to standard
    /// output.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write nothing: list the files that are not formatted, with a diff, and exit 1 if any.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    if args.paths.len() == 1 && args.paths[0].as_os_str() == "-" {
        return stdin(args.check);
    }
    let files = spec_files(&args.paths)?;
    let (mut same, mut changed, mut invalid) = (0, 0, 0);
    for path in &files {
        let (old, formatted) = format_file(path)?;
        match formatted {
            Formatted::Same => same += 1,
            Formatted::Invalid(diagnostic) => {
                invalid += 1;
                eprint!("{diagnostic}");
            }
            Formatted::Changed(text) if args.check => {
                changed += 1;
                let name = path.display().to_string();
                print!("{}", unified_diff(&old, &text, &name, &format!("{name} (formatted)")));
            }
            Formatted::Changed(text) => {
                changed += 1;
                write(path, &text)?;
                eprintln!("formatted {}", path.display());
            }
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let verb = if args.check { "not formatted" } else { "formatted" };
    eprintln!(
        "{changed} file{} {verb}, {same} unchanged{}",
        plural(changed),
        if invalid > 0 { format!(", {invalid} with syntax errors") } else { String::new() }
    );
    Ok(if invalid > 0 || (args.check && changed > 0) { Exit::Findings } else { Exit::Ok })
}

fn stdin(check: bool) -> Result<Exit, AppError> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(recspec::files::FileError::at("read", Path::new("<stdin>")))?;
    match format_text("<stdin>", &text) {
        Formatted::Invalid(diagnostic) => {
            eprint!("{diagnostic}");
            Ok(Exit::Findings)
        }
        Formatted::Same if check => Ok(Exit::Ok),
        Formatted::Changed(_) if check => Ok(Exit::Findings),
        Formatted::Same => {
            print!("{text}");
            Ok(Exit::Ok)
        }
        Formatted::Changed(out) => {
            print!("{out}");
            Ok(Exit::Ok)
        }
    }
}
