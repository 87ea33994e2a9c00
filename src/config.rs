//! Run configuration files (TOML) and `--set K=V` overrides.
//!
//! A run config is the place for everything a run needs besides the spec and the data:
//!
//! ```toml
//! [hparams]          # dim and param overrides
//! D = 32
//! [train]            # all optional; defaults in `TrainSettings::default()`
//! optimizer = "adam" # or "adagrad"
//! lr = 0.001
//! batch_size = 256
//! epochs = 2
//! seed = 1
//! max_steps = 500    # per epoch
//! embedding_optimizer = "lazy" # or "rowwise_adagrad" or "dense" (docs/scale.md)
//! shuffle_buffer = 10000 # rows; 0 reads the file in order
//! [loss_weights]     # override the weight of named loss terms
//! dislike = 5.0
//! ```
//!
//! Data sets written by `recspec simulate` and `recspec import` carry a `data.toml` in the same
//! format; its `[simulation]` or `[import]` table is informational and ignored here.

use crate::overrides::{Override, OverrideValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Why a run config or a `--set` could not be read. `file` is the name messages use.
#[derive(Debug)]
pub enum ConfigError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Malformed TOML or an unknown key; `line` when the parser knows it.
    Syntax {
        file: String,
        line: Option<usize>,
        message: String,
    },
    BadOptimizer {
        file: String,
        found: String,
    },
    BadEmbeddingOptimizer {
        file: String,
        found: String,
    },
    BadLearningRate {
        file: String,
        found: f64,
    },
    /// A `[train]` count (`batch_size`, `epochs`, `max_steps`) of zero.
    ZeroCount {
        file: String,
        key: &'static str,
    },
    BadLossWeight {
        file: String,
        loss: String,
        found: f64,
    },
    /// An `[hparams]` value that is not a number, bool or option name; `origin` is `file:line`.
    BadHparam {
        origin: String,
        name: String,
        found: String,
    },
    /// `--set` without `=`.
    SetSyntax {
        arg: String,
    },
    /// `--set` whose left side is not a name.
    SetName {
        arg: String,
        name: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            ConfigError::Syntax { file, line: Some(line), message } => write!(f, "{file}:{line}: {message}"),
            ConfigError::Syntax { file, line: None, message } => write!(f, "{file}: {message}"),
            ConfigError::BadOptimizer { file, found } => {
                write!(f, "{file}: [train] optimizer must be \"adam\" or \"adagrad\", found \"{found}\"")
            }
            ConfigError::BadEmbeddingOptimizer { file, found } => write!(
                f,
                "{file}: [train] embedding_optimizer must be \"lazy\", \"rowwise_adagrad\" or \"dense\", found \"{found}\""
            ),
            ConfigError::BadLearningRate { file, found } => {
                write!(f, "{file}: [train] lr must be a positive number, found {found}")
            }
            ConfigError::ZeroCount { file, key } => write!(f, "{file}: [train] {key} must be at least 1"),
            ConfigError::BadLossWeight { file, loss, found } => {
                write!(f, "{file}: [loss_weights] {loss} must be a non-negative number, found {found}")
            }
            ConfigError::BadHparam { origin, name, found } => {
                write!(f, "{origin}: hparam `{name}` must be a number, bool or option name, found {found}")
            }
            ConfigError::SetSyntax { arg } => write!(f, "--set {arg}: expected NAME=VALUE"),
            ConfigError::SetName { arg, name } => write!(f, "--set {arg}: `{name}` is not a name"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RunConfigFile {
    #[serde(default)]
    hparams: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    train: Option<TrainSection>,
    #[serde(default)]
    loss_weights: BTreeMap<String, f64>,
    #[serde(default)]
    simulation: Option<toml::Table>,
    #[serde(default)]
    import: Option<toml::Table>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct TrainSection {
    optimizer: Option<String>,
    lr: Option<f64>,
    batch_size: Option<usize>,
    epochs: Option<usize>,
    seed: Option<u64>,
    max_steps: Option<usize>,
    embedding_optimizer: Option<String>,
    shuffle_buffer: Option<usize>,
}

/// Which optimizer trains the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adagrad,
}

impl OptimizerKind {
    /// The spelling in run configs.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adagrad => "adagrad",
        }
    }

    /// How many tensors of a parameter's size the optimizer keeps per parameter.
    pub(crate) fn state_tensors(self) -> usize {
        match self {
            OptimizerKind::Adam => 2,
            OptimizerKind::Adagrad => 1,
        }
    }
}

/// How the optimizer updates embedding tables: parameters whose every use is a row lookup
/// (`lower::Program::row_tables`). The exact update rules are in docs/scale.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingOptimizer {
    /// The `optimizer`'s rule applied only to the rows a step looked up, with their moments;
    /// other rows and their optimizer state are left as they are (lazy Adam, like PyTorch's
    /// `SparseAdam`; for Adagrad this equals the dense update).
    #[default]
    Lazy,
    /// TorchRec's (fbgemm's) exact row-wise Adagrad: one accumulator per row, the mean of the
    /// row's squared gradient added to it; only looked-up rows change.
    RowwiseAdagrad,
    /// Tables are ordinary parameters: a dense gradient and a dense update of every row.
    Dense,
}

impl EmbeddingOptimizer {
    /// The spelling in run configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EmbeddingOptimizer::Lazy => "lazy",
            EmbeddingOptimizer::RowwiseAdagrad => "rowwise_adagrad",
            EmbeddingOptimizer::Dense => "dense",
        }
    }

    /// Parses the spelling of [`name`](Self::name).
    pub fn parse(s: &str) -> Option<EmbeddingOptimizer> {
        [EmbeddingOptimizer::Lazy, EmbeddingOptimizer::RowwiseAdagrad, EmbeddingOptimizer::Dense]
            .into_iter()
            .find(|e| e.name() == s)
    }
}

/// Training settings, from `[train]` with defaults.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainSettings {
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
    /// Stop each epoch after this many steps (for quick runs); `None` reads the whole file.
    pub max_steps: Option<usize>,
    /// How embedding tables are updated.
    pub embedding_optimizer: EmbeddingOptimizer,
    /// Rows in the training order's shuffle buffer (`data::Loader::shuffled`, seeded by the seed
    /// and the epoch); 0 reads the training file in order (time-ordered training).
    pub shuffle_buffer: usize,
}

/// The default shuffle buffer: about a minute of a two-core run's rows, and a few tens of MB of
/// buffered rows.
pub(crate) const DEFAULT_SHUFFLE_BUFFER: usize = 10_000;

impl std::fmt::Display for TrainSettings {
    /// `adam, lr 0.005, batch 256, 3 epochs, seed 1` (and `, at most 40 steps per epoch`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let optimizer = self.optimizer.name();
        let epochs = if self.epochs == 1 { "epoch" } else { "epochs" };
        write!(
            f,
            "{optimizer}, lr {}, batch {}, {} {epochs}, seed {}",
            self.lr, self.batch_size, self.epochs, self.seed
        )?;
        if let Some(m) = self.max_steps {
            write!(f, ", at most {m} steps per epoch")?;
        }
        if self.shuffle_buffer == 0 {
            write!(f, ", file order")?;
        }
        if self.embedding_optimizer != EmbeddingOptimizer::Lazy {
            write!(f, ", {} embedding updates", self.embedding_optimizer.name())?;
        }
        Ok(())
    }
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            optimizer: OptimizerKind::Adam,
            lr: 0.001,
            batch_size: 256,
            epochs: 2,
            seed: 1,
            max_steps: None,
            embedding_optimizer: EmbeddingOptimizer::Lazy,
            shuffle_buffer: DEFAULT_SHUFFLE_BUFFER,
        }
    }
}

/// A parsed run configuration.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunConfig {
    pub overrides: Vec<Override>,
    /// Present when the file has a `[train]` table; fields it omits keep their defaults.
    pub train: Option<TrainSettings>,
    pub loss_weights: BTreeMap<String, f64>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses run-config text; errors name the file and line.
pub(crate) fn parse_run_config(name: &str, text: &str) -> Result<RunConfig, ConfigError> {
    let file: RunConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: name.to_string(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    })?;
    let mut overrides = vec![];
    let _informational = (file.simulation, file.import);
    let train = match file.train {
        None => None,
        Some(t) => {
            let mut s = TrainSettings::default();
            if let Some(o) = t.optimizer {
                s.optimizer = match o.as_str() {
                    "adam" => OptimizerKind::Adam,
                    "adagrad" => OptimizerKind::Adagrad,
                    other => {
                        return Err(ConfigError::BadOptimizer { file: name.to_string(), found: other.to_string() })
                    }
                };
            }
            if let Some(e) = t.embedding_optimizer {
                s.embedding_optimizer = EmbeddingOptimizer::parse(&e)
                    .ok_or_else(|| ConfigError::BadEmbeddingOptimizer { file: name.to_string(), found: e.clone() })?;
            }
            if let Some(lr) = t.lr {
                if !(lr.is_finite() && lr > 0.0) {
                    return Err(ConfigError::BadLearningRate { file: name.to_string(), found: lr });
                }
                s.lr = lr;
            }
            for (key, v) in [("batch_size", t.batch_size), ("epochs", t.epochs), ("max_steps", t.max_steps)] {
                if v == Some(0) {
                    return Err(ConfigError::ZeroCount { file: name.to_string(), key });
                }
            }
            s.batch_size = t.batch_size.unwrap_or(s.batch_size);
            s.epochs = t.epochs.unwrap_or(s.epochs);
            s.seed = t.seed.unwrap_or(s.seed);
            s.max_steps = t.max_steps.or(s.max_steps);
            s.shuffle_buffer = t.shuffle_buffer.unwrap_or(s.shuffle_buffer);
            Some(s)
        }
    };
    for (k, w) in &file.loss_weights {
        if !(w.is_finite() && *w >= 0.0) {
            return Err(ConfigError::BadLossWeight { file: name.to_string(), loss: k.clone(), found: *w });
        }
    }
    for (key, value) in file.hparams {
        let origin = format!("{name}:{}", line_of(text, key.span().start));
        let v = match value.get_ref() {
            toml::Value::Integer(i) => OverrideValue::Int(*i),
            toml::Value::Float(f) => OverrideValue::Float(*f),
            toml::Value::Boolean(b) => OverrideValue::Bool(*b),
            toml::Value::String(s) => OverrideValue::Str(s.clone()),
            other => {
                return Err(ConfigError::BadHparam {
                    origin,
                    name: key.get_ref().clone(),
                    found: other.type_str().to_string(),
                })
            }
        };
        overrides.push(Override::new(key.get_ref(), v, &origin));
    }
    Ok(RunConfig { overrides, train, loss_weights: file.loss_weights })
}

/// Reads and parses a run config file.
pub fn load_run_config(path: &Path) -> Result<RunConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse_run_config(&path.display().to_string(), &text)
}

/// Parses `K=V` from the command line.
pub fn parse_set(s: &str) -> Result<Override, ConfigError> {
    let (k, v) = s.split_once('=').ok_or_else(|| ConfigError::SetSyntax { arg: s.to_string() })?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::SetName { arg: s.to_string(), name: k.to_string() });
    }
    Ok(Override::new(k, OverrideValue::parse(v.trim()), &format!("--set {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hparams_parse_with_lines() {
        let c = parse_run_config("run.toml", "# run\n[hparams]\nD = 32\nlambda = 0.5\n").unwrap();
        assert_eq!(c.overrides.len(), 2);
        let d = c.overrides.iter().find(|o| o.name == "D").unwrap();
        assert_eq!(d.value, OverrideValue::Int(32));
        assert_eq!(d.origin, "run.toml:3");
    }

    #[test]
    fn unknown_sections_and_bad_values_name_the_line() {
        let e = parse_run_config("run.toml", "[hparams]\nD = 1\n[trian]\nx = 1\n").unwrap_err().to_string();
        assert!(e.starts_with("run.toml:3"), "{e}");
        let e = parse_run_config("run.toml", "[hparams]\nD = [1, 2]\n").unwrap_err().to_string();
        assert!(e.starts_with("run.toml:2"), "{e}");
        let e = parse_run_config("run.toml", "[hparams\n").unwrap_err().to_string();
        assert!(e.starts_with("run.toml:1"), "{e}");
    }

    #[test]
    fn train_section_and_loss_weights() {
        let c = parse_run_config(
            "r.toml",
            "[train]\nlr = 0.01\noptimizer = \"adagrad\"\n[loss_weights]\ndislike = 5.0\n[simulation]\nseed = 3\n",
        )
        .unwrap();
        let t = c.train.unwrap();
        assert_eq!((t.optimizer, t.lr, t.batch_size), (OptimizerKind::Adagrad, 0.01, 256));
        assert_eq!(c.loss_weights["dislike"], 5.0);
        assert!(parse_run_config("r.toml", "[train]\nlr = -1.0\n").is_err());
        assert!(parse_run_config("r.toml", "[train]\noptimizer = \"sgd\"\n").is_err());
        assert!(parse_run_config("r.toml", "[train]\nepochs = 0\n").is_err());
        assert!(parse_run_config("r.toml", "[train]\nlearning_rate = 0.1\n")
            .unwrap_err()
            .to_string()
            .starts_with("r.toml:2"));
    }

    #[test]
    fn set_parses_kinds() {
        assert_eq!(parse_set("D=32").unwrap().value, OverrideValue::Int(32));
        assert_eq!(parse_set("lr=0.5").unwrap().value, OverrideValue::Float(0.5));
        assert_eq!(parse_set("res=true").unwrap().value, OverrideValue::Bool(true));
        assert_eq!(parse_set("act=relu").unwrap().value, OverrideValue::Str("relu".into()));
        assert!(parse_set("D").is_err());
        assert!(parse_set("=3").is_err());
    }
}
