//! Hyperparameter overrides: named values that replace a spec's dim and param defaults.
//!
//! They come from `--set K=V`, a run config's `[hparams]` table, or a data set's `data.toml`.
//! The checker applies them ([`crate::check::check`]); this module only holds the values, so
//! the checker, the config reader and the application share them without depending on each
//! other.

/// A hyperparameter override.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub name: String,
    pub value: OverrideValue,
    /// Where it came from, for messages: `--set D=32`, `run.toml:4`.
    pub origin: String,
    /// Whether the spec must declare `name`. `--set` and run configs are required (an unknown
    /// name is an error); a data set's dims are optional, since a data set describes more dims
    /// than any one model uses. A used override is type-checked either way.
    pub required: bool,
}

impl Override {
    /// A required override: the spec must declare `name`.
    pub fn new(name: &str, value: OverrideValue, origin: &str) -> Override {
        Override { name: name.to_string(), value, origin: origin.to_string(), required: true }
    }

    /// A required integer override (tests and tools).
    pub fn int(name: &str, value: i64, origin: &str) -> Override {
        Override::new(name, OverrideValue::Int(value), origin)
    }

    /// The same override, applied only when the spec declares its name.
    pub fn optional(self) -> Override {
        Override { required: false, ..self }
    }
}

/// The value of an override.
#[derive(Clone, Debug, PartialEq)]
pub enum OverrideValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl OverrideValue {
    /// Parses a command-line value: int, float, bool, or a bare option name.
    pub fn parse(s: &str) -> OverrideValue {
        if let Ok(v) = s.parse::<i64>() {
            OverrideValue::Int(v)
        } else if let Some(v) = s.parse::<f64>().ok().filter(|v| v.is_finite()) {
            OverrideValue::Float(v)
        } else if s == "true" || s == "false" {
            OverrideValue::Bool(s == "true")
        } else {
            OverrideValue::Str(s.to_string())
        }
    }
}
