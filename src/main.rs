//! The `recspec` command line: parses the arguments, runs one command (`cli::*`), and renders
//! its error once.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc keeps freed pages for reuse. With the system allocator a training step's large
/// tensors came from fresh pages every time (mmap or heap growth, then a page fault per page,
/// then trimmed back): 10-15% of a step in the kernel, more for the GRU's many small steps.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the 16th option of `mimalloc.h`, in v2
/// and v3 alike; the sys crate names no constant for it). By default mimalloc hands pages that
/// stayed free for 10 ms back to the kernel, and a training step then faults them in again, a
/// zeroed 2 MiB huge page at a time: DUMN took 7,335 page faults in a 5-step `recspec bench`,
/// 601 with purging off, and trains 5-8% faster (measured side by side, 2026-12-02, Intel Xeon).
/// The memory stays with the process (peak RSS +1-4%), as a training process wants it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed pages in the process (see [`MI_OPTION_PURGE_DELAY`]), unless the user set
/// `MIMALLOC_PURGE_DELAY` themselves.
fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator; purging reads it on each decision.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

/// A declarative model-spec compiler for multi-feedback recommendation models.
#[derive(Parser)]
#[command(name = "recspec", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check specs: exit 0 when clean, 1 on spec errors, 2 on usage or I/O errors.
    Check(cli::check::Args),
    /// Compile a spec and print its graph.
    Compile(cli::compile::Args),
    /// Structural diff of two specs, or (--git REV) of every spec changed since a git revision:
    /// exit 0 same architecture, 1 different, 2 error.
    Diff(cli::diff::Args),
    /// Check (or --update) the canonical graph and model card kept beside each spec in
    /// `snapshots/`: exit 0 all unchanged, 1 missing or changed (with a diff), 2 error.
    Snapshot(cli::snapshot::Args),
    /// Rewrite spec files in the canonical layout (or --check them: exit 1 when any is not
    /// formatted, with a diff); `-` formats standard input to standard output.
    Fmt(cli::fmt::Args),
    /// Print the on-disk row format (JSON Lines) a spec's inputs expect.
    Schema(cli::schema::Args),
    /// Simulate users with latent preferences and write a multi-feedback data set.
    Simulate(cli::simulate::Args),
    /// Import an event log (CSV, TSV, JSON Lines or Parquet, plus user and item tables) as a data set,
    /// driven by a mapping file.
    Import(cli::import::Args),
    /// Rewrite a data set's splits as Parquet or JSON Lines (other files copied) into --out.
    Convert(cli::convert::Args),
    /// Train a spec on a data set; checkpoints and metrics go to --out.
    Train(cli::train::Args),
    /// Prepare a run directory for training with the generated PyTorch module (model.py) under
    /// `python -m recspec_torch.train` or torchrun.
    Pytorch(cli::pytorch::Args),
    /// Write a run's weights (and memory state) as safetensors keyed by recspec parameter keys.
    Export(cli::export::Args),
    /// Measure one spec's training and inference speed and peak memory; one JSON line.
    Bench(cli::bench::Args),
    /// Evaluate a trained run on a data split; JSON on stdout.
    Eval(cli::eval::Args),
    /// One self-contained HTML page of a run (or several overlaid): loss per step, validation
    /// metrics per epoch, settings, model card, architecture.
    Report(cli::report::Args),
    /// Top-K items for each history in a JSON Lines or Parquet file (one row per history holding
    /// the inputs the model's item scores depend on); JSON Lines on stdout.
    Recommend(cli::recommend::Args),
    /// Serve a trained run over HTTP: POST /score and /recommend (JSON rows in, scores out,
    /// concurrent requests batched), GET /health and /metrics (Prometheus), POST /admin/reload.
    Serve(cli::serve::Args),
    /// Serve the Language Server Protocol on stdin and stdout (diagnostics, hover, go to
    /// definition, references, completion) for editors.
    Lsp(cli::lsp::Args),
    /// Responsiveness to dislikes by counterfactual simulation (NTR paper, section 4), and how
    /// often disliked items or creators are recommended again on held-out rows; JSON on stdout.
    Responsiveness(cli::responsiveness::Args),
}

fn main() -> ExitCode {
    // Output piped into a reader that stops early (`recspec compile ... | head`) ends the process
    // quietly, as for any Unix tool, instead of panicking in `print!` on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_pages();
    let result = match Cli::parse().command {
        Command::Check(args) => cli::check::run(args),
        Command::Compile(args) => cli::compile::run(args),
        Command::Diff(args) => cli::diff::run(args),
        Command::Report(args) => cli::report::run(args),
        Command::Snapshot(args) => cli::snapshot::run(args),
        Command::Fmt(args) => cli::fmt::run(args),
        Command::Schema(args) => cli::schema::run(args),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Import(args) => cli::import::run(args),
        Command::Convert(args) => cli::convert::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Pytorch(args) => cli::pytorch::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Recommend(args) => cli::recommend::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Responsiveness(args) => cli::responsiveness::run(args),
        Command::Lsp(args) => cli::lsp::run(args),
    };
    let exit = result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        cli::Exit::Error
    });
    ExitCode::from(exit as u8)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and every argument, positional or flag, says what it is in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        let cli = super::Cli::command();
        let mut missing = vec![];
        for command in cli.get_subcommands() {
            if command.get_about().is_none() {
                missing.push(format!("recspec {}", command.get_name()));
            }
            for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
                let empty = arg.get_help().is_none_or(|h| h.to_string().trim().is_empty());
                if empty && !["help", "version"].contains(&arg.get_id().as_str()) {
                    missing.push(format!("recspec {} {}", command.get_name(), arg.get_id()));
                }
            }
        }
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    }
}
