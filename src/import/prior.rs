//! Ids kept from an earlier data set (`recspec import --keep-ids-from DIR`): every item, user
//! and feature-set vocabulary value that had an id there keeps it, and values first seen in this
//! import's training split are numbered after the largest kept id, by training count. So a data
//! set imported tomorrow numbers yesterday's items as yesterday's did, and a model trained on
//! either reads the same row of its tables for the same item.
//!
//! What is read: `vocab/item.jsonl` (`id`, `key`), `vocab/user.jsonl` (`user`, `key`,
//! `train_events`: users with training events were numbered), and `features.json` (vocabularies
//! in id order). A file that is missing, malformed, or whose ids are not 1, 2, ... once each is an
//! error naming the file and line: an artifact that does not match is never half used.

use super::mapping::{ExtraKind, Mapping};
use super::ImportError;
use crate::features::Ids;
use std::collections::HashMap;
use std::path::Path;

/// Kept ids: key (or value) -> id, by vocabulary.
#[derive(Debug, Default)]
pub struct Prior {
    pub items: HashMap<String, u32>,
    pub users: HashMap<String, u32>,
    /// A feature set's vocabularies by input name, values in id order (id 1 first).
    pub extras: HashMap<String, Vec<String>>,
}

fn bad(file: &Path, message: String) -> ImportError {
    ImportError::Input { file: file.to_path_buf(), message }
}

/// A JSON object and the line it was read from.
type Line = (usize, serde_json::Map<String, serde_json::Value>);

/// The lines of a JSON Lines file as objects, each with its line number.
fn objects(file: &Path) -> Result<Vec<Line>, ImportError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(file, format!("cannot read the earlier data set's vocabulary: {e}")))?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(o)) => out.push((i + 1, o)),
            _ => return Err(bad(file, format!("line {}: not a JSON object", i + 1))),
        }
    }
    Ok(out)
}

/// Ids 1, 2, ... once each, as a key -> id map.
fn numbered(file: &Path, pairs: Vec<(usize, String, u64)>) -> Result<HashMap<String, u32>, ImportError> {
    let mut by_id: Vec<Option<String>> = vec![None; pairs.len()];
    for (line, key, id) in pairs {
        let slot = by_id.get_mut((id as usize).wrapping_sub(1));
        match slot {
            Some(s @ None) => *s = Some(key),
            _ => {
                return Err(bad(
                    file,
                    format!("line {line}: id {id} is not one of 1..={} once each; this is not a vocabulary recspec import wrote", by_id.len()),
                ))
            }
        }
    }
    Ok(by_id.into_iter().enumerate().filter_map(|(i, k)| k.map(|k| (k, i as u32 + 1))).collect())
}

fn field<'a>(
    file: &Path,
    line: usize,
    o: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<&'a serde_json::Value, ImportError> {
    o.get(key).ok_or_else(|| bad(file, format!("line {line}: no `{key}`")))
}

/// A `vocab/*.jsonl` file's ids by key: each line's `key` and its id in the field `id`; with
/// `trained_only`, only lines whose `train_events` is positive (the others were not numbered).
fn kept_ids(file: &Path, id: &str, trained_only: bool) -> Result<HashMap<String, u32>, ImportError> {
    let mut pairs = vec![];
    for (line, o) in objects(file)? {
        if trained_only && field(file, line, &o, "train_events")?.as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let n = field(file, line, &o, id)?
            .as_u64()
            .ok_or_else(|| bad(file, format!("line {line}: `{id}` is not an id")))?;
        let key = field(file, line, &o, "key")?
            .as_str()
            .ok_or_else(|| bad(file, format!("line {line}: `key` is not text")))?;
        pairs.push((line, key.to_string(), n));
    }
    numbered(file, pairs)
}

/// Reads the ids of the earlier data set `dir` that `m` can keep.
pub fn load(dir: &Path, m: &Mapping) -> Result<Prior, ImportError> {
    if let Some(section) = [("fields", m.fields.is_some()), ("profile", m.profile.is_some())].iter().find(|(_, on)| *on)
    {
        return Err(bad(
            &m.file,
            format!(
                "--keep-ids-from: `{}` ids are laid out as one range per column, which cannot grow in place; \
                 keeping them is not supported yet",
                section.0
            ),
        ));
    }
    let mut prior = Prior::default();
    if m.item_buckets.is_none() {
        prior.items = kept_ids(&dir.join("vocab/item.jsonl"), "id", false)?;
    }
    prior.users = kept_ids(&dir.join("vocab/user.jsonl"), "user", true)?;
    let counted: Vec<&str> = m
        .extras
        .iter()
        .filter(|x| {
            matches!(
                x.kind,
                ExtraKind::Categorical { ids: Ids::Vocabulary { .. }, .. }
                    | ExtraKind::Tokens { ids: Ids::Vocabulary { .. }, .. }
            )
        })
        .map(|x| x.key.as_str())
        .collect();
    if !counted.is_empty() {
        let file = dir.join("features.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| bad(&file, format!("cannot read the earlier data set's fitted features: {e}")))?;
        let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&file, format!("not JSON: {e}")))?;
        if doc["version"] != 1 {
            return Err(bad(&file, format!("version {} is not one this recspec reads (1)", doc["version"])));
        }
        for input in counted {
            let entry = doc["features"].as_array().and_then(|fs| fs.iter().find(|f| f["input"] == input));
            let Some(values) = entry.and_then(|e| e["vocabulary"].as_array()) else {
                return Err(bad(
                    &file,
                    format!(
                        "no vocabulary for feature `{input}`: the earlier data set was made by another feature set"
                    ),
                ));
            };
            let values: Option<Vec<String>> = values.iter().map(|v| v.as_str().map(str::to_string)).collect();
            let values =
                values.ok_or_else(|| bad(&file, format!("feature `{input}`: a vocabulary value is not text")))?;
            prior.extras.insert(input.to_string(), values);
        }
    }
    Ok(prior)
}
