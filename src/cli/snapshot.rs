//! `recspec snapshot`: check or update the canonical graph and model card kept beside each spec.

use super::{compile, Exit, Hparams};
use recspec::app::snapshot::{compare, snapshots, spec_files, write, Status};
use recspec::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Spec files, or folders searched for `*.recspec`.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Compare only (the default): exit 1 and print a diff where a snapshot is missing or differs.
    #[arg(long, conflicts_with = "update")]
    check: bool,
    /// Write every missing or changed snapshot.
    #[arg(long)]
    update: bool,
    #[command(flatten)]
    hparams: Hparams,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    let overrides = args.hparams.overrides()?;
    let (mut same, mut differ, mut broken) = (0, 0, 0);
    let specs = spec_files(&args.paths)?;
    for spec in specs {
        let (_, checked) = compile(&spec, None, None, &overrides)?;
        let Some(graph) = checked.graph else {
            // A block library has no graph to snapshot; a spec with errors is a finding.
            broken += usize::from(checked.has_errors());
            continue;
        };
        for s in snapshots(&spec, &graph)? {
            match compare(&s)? {
                Status::Same => same += 1,
                Status::Missing if args.update => {
                    write(&s)?;
                    eprintln!("wrote {}", s.path.display());
                }
                Status::Changed(_) if args.update => {
                    write(&s)?;
                    eprintln!("updated {}", s.path.display());
                }
                Status::Missing => {
                    differ += 1;
                    eprintln!("missing {} (write it with --update)", s.path.display());
                }
                Status::Changed(diff) => {
                    differ += 1;
                    print!("{diff}");
                }
            }
        }
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    eprintln!(
        "{same} snapshot{} unchanged, {differ} missing or changed{}",
        plural(same),
        if broken > 0 { format!(", {broken} spec{} with errors", plural(broken)) } else { String::new() }
    );
    Ok(if differ > 0 || broken > 0 { Exit::Findings } else { Exit::Ok })
}
