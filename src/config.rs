//! Run configuration files (TOML) and `--set K=V` overrides.
//!
//! A run config is the place for everything a run needs besides the spec. Today it holds
//! hyperparameter overrides:
//!
//! ```toml
//! [hparams]
//! D = 32
//! lambda_dislike = 5.0
//! ```

use crate::check::{Override, OverrideValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RunConfigFile {
    #[serde(default)]
    hparams: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// A parsed run configuration.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunConfig {
    pub overrides: Vec<Override>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses run-config text; errors name the file and line.
pub fn parse_run_config(name: &str, text: &str) -> Result<RunConfig, String> {
    let file: RunConfigFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| format!(":{}", line_of(text, s.start))).unwrap_or_default();
        format!("{name}{line}: {}", e.message())
    })?;
    let mut overrides = vec![];
    for (key, value) in file.hparams {
        let origin = format!("{name}:{}", line_of(text, key.span().start));
        let v = match value.get_ref() {
            toml::Value::Integer(i) => OverrideValue::Int(*i),
            toml::Value::Float(f) => OverrideValue::Float(*f),
            toml::Value::Boolean(b) => OverrideValue::Bool(*b),
            toml::Value::String(s) => OverrideValue::Str(s.clone()),
            other => {
                return Err(format!(
                    "{origin}: hparam `{}` must be a number, bool or option name, found {}",
                    key.get_ref(),
                    other.type_str()
                ))
            }
        };
        overrides.push(Override { name: key.into_inner(), value: v, origin });
    }
    Ok(RunConfig { overrides })
}

/// Reads and parses a run config file.
pub fn load_run_config(path: &Path) -> Result<RunConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_run_config(&path.display().to_string(), &text)
}

/// Parses `K=V` from the command line.
pub fn parse_set(s: &str) -> Result<Override, String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("--set {s}: expected NAME=VALUE"))?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("--set {s}: `{k}` is not a name"));
    }
    Ok(Override { name: k.to_string(), value: OverrideValue::parse(v.trim()), origin: format!("--set {s}") })
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
        let e = parse_run_config("run.toml", "[hparams]\nD = 1\n[trian]\nx = 1\n").unwrap_err();
        assert!(e.starts_with("run.toml:3"), "{e}");
        let e = parse_run_config("run.toml", "[hparams]\nD = [1, 2]\n").unwrap_err();
        assert!(e.starts_with("run.toml:2"), "{e}");
        let e = parse_run_config("run.toml", "[hparams\n").unwrap_err();
        assert!(e.starts_with("run.toml:1"), "{e}");
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
