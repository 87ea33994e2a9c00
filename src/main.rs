//! The `recspec` command line: check, compile and diff model specs.

use clap::{Parser, Subcommand, ValueEnum};
use recspec::check::{Checked, Override};
use recspec::diag;
use recspec::render::{self, Emit};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        hparams: Hparams,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compile a spec and print its graph.
    Compile {
        file: PathBuf,
        #[command(flatten)]
        hparams: Hparams,
        #[arg(long, value_enum, default_value = "graph")]
        emit: EmitArg,
        /// Render with this minijinja template instead (it receives `g`, the graph view).
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// Structural diff of two specs: exit 0 same architecture, 1 different, 2 error.
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[command(flatten)]
        hparams: Hparams,
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
}

#[derive(clap::Args)]
struct Hparams {
    /// Override a dim or param: `--set D=32` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// A TOML run config whose [hparams] table overrides dims and params.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum EmitArg {
    Graph,
    Json,
    Dot,
    Summary,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
}

/// Exit codes shared by all commands.
const OK: u8 = 0;
const USER_ERROR: u8 = 1;
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            USAGE_ERROR
        }
    };
    ExitCode::from(code)
}

fn overrides(h: &Hparams) -> Result<Vec<Override>, String> {
    // The config file comes first so that `--set` wins.
    let mut out = match &h.config {
        Some(p) => recspec::config::load_run_config(p)?.overrides,
        None => vec![],
    };
    for s in &h.set {
        out.push(recspec::config::parse_set(s)?);
    }
    Ok(out)
}

/// Compiles one file and prints its diagnostics to stderr.
fn compile(path: &Path, overrides: &[Override]) -> Result<Checked, String> {
    let (program, checked) = recspec::compile_file(path, overrides)?;
    if !checked.diagnostics.is_empty() {
        eprint!("{}", diag::render(&program.sources, &checked.diagnostics));
    }
    Ok(checked)
}

fn counts(c: &Checked) -> (usize, usize) {
    let errors = c.diagnostics.iter().filter(|d| d.is_error()).count();
    (errors, c.diagnostics.len() - errors)
}

fn run(command: Command) -> Result<u8, String> {
    match command {
        Command::Check { files, hparams, deny_warnings } => {
            let overrides = overrides(&hparams)?;
            let (mut errors, mut warnings) = (0, 0);
            for f in &files {
                let checked = compile(f, &overrides)?;
                let (e, w) = counts(&checked);
                errors += e;
                warnings += w;
            }
            let s = |n: usize| if n == 1 { "" } else { "s" };
            eprintln!(
                "checked {} file{}: {errors} error{}, {warnings} warning{}",
                files.len(),
                s(files.len()),
                s(errors),
                s(warnings)
            );
            Ok(if errors > 0 || (deny_warnings && warnings > 0) { USER_ERROR } else { OK })
        }
        Command::Compile { file, hparams, emit, template } => {
            let checked = compile(&file, &overrides(&hparams)?)?;
            let Some(graph) = checked.graph else {
                if !checked.has_errors() {
                    eprintln!("error: {} has no model to compile", file.display());
                    return Ok(USAGE_ERROR);
                }
                return Ok(USER_ERROR);
            };
            let text = match template {
                Some(t) => render::render_user(&t, minijinja::context! { g => render::GraphView::new(&graph) })?,
                None => render::emit(
                    &graph,
                    match emit {
                        EmitArg::Graph => Emit::Graph,
                        EmitArg::Json => Emit::Json,
                        EmitArg::Dot => Emit::Dot,
                        EmitArg::Summary => Emit::Summary,
                    },
                )?,
            };
            print!("{text}");
            Ok(OK)
        }
        Command::Diff { old, new, hparams, format } => {
            let overrides = overrides(&hparams)?;
            let a = compile(&old, &overrides)?;
            let b = compile(&new, &overrides)?;
            let (Some(ga), Some(gb)) = (a.graph, b.graph) else {
                eprintln!("error: both specs must compile to be compared");
                return Ok(USAGE_ERROR);
            };
            let report = recspec::diff::diff(&ga, &gb);
            print!("{}", recspec::diff::render(&report, matches!(format, DiffFormat::Markdown))?);
            Ok(if report.same { OK } else { USER_ERROR })
        }
    }
}
