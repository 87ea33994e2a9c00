//! The commands of the `recspec` binary, one module each, and what they share: the
//! hyperparameter flags, compiling with diagnostics on stderr, and exit codes.
//!
//! Each command module has its clap `Args` and a `run(args) -> Result<Exit, AppError>`; the
//! error is rendered once, by `main`.

pub mod bench;
pub mod check;
pub mod compile;
pub mod convert;
pub mod diff;
pub mod eval;
pub mod export;
pub mod fmt;
pub mod import;
pub mod lsp;
pub mod pytorch;
pub mod recommend;
pub mod report;
pub mod responsiveness;
pub mod schema;
pub mod serve;
pub mod simulate;
pub mod snapshot;
pub mod train;

use recspec::app::AppError;
use recspec::check::Checked;
use recspec::load::LoadedSpec;
use recspec::overrides::Override;
use std::path::{Path, PathBuf};

/// `--device`: where a command runs its model (every command that runs one flattens this).
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct DeviceArg {
    /// cpu (burn-flex), ndarray, or with the `tch` feature tch-cpu and cuda.
    #[arg(long = "device", value_name = "DEVICE", default_value = "cpu")]
    pub choice: recspec::runtime::DeviceChoice,
}

/// `--skip-bad-rows` of the commands that read rows (import, train, eval).
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct SkipBadRows {
    /// Skip bad rows (and count them) instead of stopping at the first.
    #[arg(long = "skip-bad-rows")]
    pub on: bool,
}

/// How a command ended: the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Spec errors, or a diff found changes.
    Findings = 1,
    /// Usage, I/O, data and run errors (also every `Err`).
    Error = 2,
}

/// The flags that override a spec's dims and params.
#[derive(clap::Args)]
pub struct Hparams {
    /// Override a dim or param: `--set D=32` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// A TOML run config whose [hparams] table overrides dims and params.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl Hparams {
    /// The overrides in the order they apply: the run config first, so that `--set` wins.
    pub fn overrides(&self) -> Result<Vec<Override>, AppError> {
        let mut out = match &self.config {
            Some(p) => recspec::config::load_run_config(p)?.overrides,
            None => vec![],
        };
        out.extend(self.set_overrides()?);
        Ok(out)
    }

    /// The `--set` overrides alone, for a caller that reads the run config itself.
    pub fn set_overrides(&self) -> Result<Vec<Override>, AppError> {
        self.set.iter().map(|s| Ok(recspec::config::parse_set(s)?)).collect()
    }
}

/// `--features FILE`: a feature set checked with the spec.
#[derive(clap::Args)]
pub struct FeatureFile {
    /// A file with a feature set (`features NAME { ... }`), checked with the spec as if the spec
    /// imported it: every input and label must have its feature (docs/features.md).
    #[arg(long, value_name = "FILE")]
    pub features: Option<PathBuf>,
}

/// Compiles a spec (for the data set `data`, when given; with the feature set file `features`)
/// and prints its diagnostics to stderr.
pub fn compile(
    spec: &Path,
    data: Option<&Path>,
    features: Option<&Path>,
    overrides: &[Override],
) -> Result<(LoadedSpec, Checked), AppError> {
    let (program, checked) = recspec::app::compile_for_data(spec, data, features, overrides)?;
    if !checked.diagnostics.is_empty() {
        eprint!("{}", recspec::diag::render(&program.sources, &checked.diagnostics));
    }
    Ok((program, checked))
}

/// Prints a JSON document to stdout, pretty.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), AppError> {
    let text = serde_json::to_string_pretty(value).map_err(AppError::Json)?;
    println!("{text}");
    Ok(())
}

/// `--embedding-optimizer`'s values.
fn parse_embedding_optimizer(s: &str) -> Result<recspec::config::EmbeddingOptimizer, String> {
    recspec::config::EmbeddingOptimizer::parse(s)
        .ok_or_else(|| format!("expected lazy, rowwise_adagrad or dense, found `{s}`"))
}
