//! Ids kept from an earlier data set (`recspec import --keep-ids-from DIR`): every item, user
//! and feature-set vocabulary value that had an id there keeps it, and values first seen in this
//! import's training split are numbered after the largest kept id, by training count. So a data
//! set imported tomorrow numbers yesterday's items as yesterday's did, and a model trained on
//! either reads the same row of its tables for the same item.
//!
//! What is read: `vocab/item.jsonl` (`id`, `key`), `vocab/user.jsonl` (`user`, `key`: the users
//! whose `user` is below data.toml's `U` were numbered), and `features.json` (vocabularies
//! in id order). A file that is missing, malformed, or whose ids are not 1, 2, ... once each is an
//! error naming the file and line: an artifact that does not match is never half used.

use super::extras::{Fitted, Stats};
use super::mapping::{ExtraKind, Mapping};
use super::vocab::{CategoricalIds, Values};
use super::ImportError;
use crate::features::{Ids, Scaling};
use std::collections::HashMap;
use std::path::Path;

/// Kept ids: key (or value) -> id, by vocabulary.
#[derive(Debug, Default)]
pub struct Prior {
    pub items: HashMap<String, u32>,
    pub users: HashMap<String, u32>,
    /// A feature set's vocabularies by input name, values in id order (id 1 first).
    pub extras: HashMap<String, Vec<String>>,
    /// The `fields` ids, by column and value.
    pub fields: Option<CategoricalIds>,
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

/// Which lines of a `vocab/*.jsonl` file hold numbered keys.
#[derive(Clone, Copy)]
enum Numbered {
    /// Every line (items).
    All,
    /// Lines whose id is below the vocabulary size (users: the others are row keys of users
    /// without an id).
    Below(u64),
}

/// The lines of `vocab/user.jsonl` that hold user ids: those whose `user` is below the data
/// set's user vocabulary size `U` (its data.toml). That holds users with training events and
/// users who kept an earlier data set's id without training events in this one; the others'
/// `user` is a row key from `U` up.
fn numbered_users(dir: &Path) -> Result<Numbered, ImportError> {
    let file = dir.join("data.toml");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| bad(&file, format!("cannot read the earlier data set's sizes: {e}")))?;
    let doc: toml::Table = toml::from_str(&text).map_err(|e| bad(&file, format!("not TOML: {}", e.message())))?;
    match doc.get("hparams").and_then(|h| h.get("U")).and_then(toml::Value::as_integer) {
        Some(u) if u >= 1 => Ok(Numbered::Below(u as u64)),
        _ => Err(bad(
            &file,
            "no user vocabulary size `U` under [hparams]; this is not a data set recspec import wrote".into(),
        )),
    }
}

/// A `vocab/*.jsonl` file's ids by key: each line's `key` and its id in the field `id`, of the
/// lines `which` selects.
fn kept_ids(file: &Path, id: &str, which: Numbered) -> Result<HashMap<String, u32>, ImportError> {
    kept_ids_of(file, &objects(file)?, id, which)
}

/// [`kept_ids`] of a file's lines already read.
fn kept_ids_of(file: &Path, lines: &[Line], id: &str, which: Numbered) -> Result<HashMap<String, u32>, ImportError> {
    let mut pairs = vec![];
    for (line, o) in lines {
        let line = *line;
        let n =
            field(file, line, o, id)?.as_u64().ok_or_else(|| bad(file, format!("line {line}: `{id}` is not an id")))?;
        if matches!(which, Numbered::Below(size) if n >= size) {
            continue;
        }
        let key = field(file, line, o, "key")?
            .as_str()
            .ok_or_else(|| bad(file, format!("line {line}: `key` is not text")))?;
        pairs.push((line, key.to_string(), n));
    }
    numbered(file, pairs)
}

/// Every id an import gave, read without its definition: what a warm start compares between the
/// data set a run was trained on and the one it continues on. A file the data set lacks gives
/// nothing (a simulated data set has no vocabularies; hashed items have no ids).
#[derive(Debug, Default)]
pub struct GivenIds {
    pub items: HashMap<String, u32>,
    pub users: HashMap<String, u32>,
    /// `fields` and `profile` ids, by (column, value); `None`: a column's out-of-vocabulary id.
    pub columns: [HashMap<(String, Option<String>), u32>; 2],
    /// The counted vocabularies of `features.json`, by input, values in id order (id 1 first).
    pub vocabularies: Vec<(String, Vec<String>)>,
}

/// Reads [`GivenIds`] from the data set `dir`, with the readers `--keep-ids-from` uses.
pub fn given_ids(dir: &Path) -> Result<GivenIds, ImportError> {
    let mut ids = GivenIds::default();
    let item_file = dir.join("vocab/item.jsonl");
    if item_file.exists() {
        let lines = objects(&item_file)?;
        // Hashed items are written with their bucket, not an id.
        if lines.first().is_some_and(|(_, o)| o.contains_key("id")) {
            ids.items = kept_ids_of(&item_file, &lines, "id", Numbered::All)?;
        }
    }
    let user_file = dir.join("vocab/user.jsonl");
    if user_file.exists() {
        ids.users = kept_ids(&user_file, "user", numbered_users(dir)?)?;
    }
    for (name, by_value) in ["fields", "profile"].into_iter().zip(&mut ids.columns) {
        let file = dir.join(format!("vocab/{name}.jsonl"));
        if !file.exists() {
            continue;
        }
        let lines = objects(&file)?;
        let mut columns: Vec<String> = vec![];
        for (line, o) in &lines {
            let column = field(&file, *line, o, "column")?.as_str().unwrap_or_default().to_string();
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        let base = lines.iter().filter_map(|(_, o)| o.get("id").and_then(serde_json::Value::as_u64)).min();
        let read = categorical(&file, &columns, base.unwrap_or(0) as u32)?;
        for (c, column) in columns.iter().enumerate() {
            by_value.insert((column.clone(), None), read.offsets[c]);
            for ((value, _), id) in read.columns[c].entries.iter().zip(&read.absolute[c]) {
                by_value.insert((column.clone(), Some(value.clone())), *id);
            }
        }
    }
    let artifact = dir.join("features.json");
    if artifact.exists() {
        let stored = read_artifact(&artifact)?;
        ids.vocabularies = stored.features.into_iter().filter_map(|f| Some((f.input, f.vocabulary?))).collect();
    }
    Ok(ids)
}

/// Reads the ids of the earlier data set `dir` that `m` can keep.
pub fn load(dir: &Path, m: &Mapping) -> Result<Prior, ImportError> {
    if m.profile.is_some() {
        return Err(bad(
            &m.file,
            "--keep-ids-from: `profile` ids come after the user ids, which grow; keeping them is not supported yet"
                .into(),
        ));
    }
    let mut prior = Prior::default();
    if let Some(c) = &m.fields {
        let names: Vec<String> = c.columns.iter().map(|c| c.name.clone()).collect();
        prior.fields = Some(categorical(&dir.join(format!("vocab/{}.jsonl", c.key)), &names, 0)?);
    }
    if m.item_buckets.is_none() {
        prior.items = kept_ids(&dir.join("vocab/item.jsonl"), "id", Numbered::All)?;
    }
    prior.users = kept_ids(&dir.join("vocab/user.jsonl"), "user", numbered_users(dir)?)?;
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
        let stored = read_artifact(&file)?;
        for input in counted {
            prior.extras.insert(input.to_string(), stored.vocabulary(&file, input)?);
        }
    }
    Ok(prior)
}

/// A data set's `features.json` (written by `extras::artifact`), numbers kept as their text
/// so that they are read back exactly (`str::parse` rounds correctly).
#[derive(serde::Deserialize)]
struct Artifact {
    version: u64,
    features: Vec<StoredFeature>,
}

#[derive(serde::Deserialize)]
struct StoredFeature {
    input: String,
    kind: String,
    #[serde(default)]
    vocabulary: Option<Vec<String>>,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    mean: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    std: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    min: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    max: Option<Box<serde_json::value::RawValue>>,
}

fn read_artifact(file: &Path) -> Result<Artifact, ImportError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(file, format!("cannot read the data set's fitted features: {e}")))?;
    let doc: Artifact =
        serde_json::from_str(&text).map_err(|e| bad(file, format!("not a fitted-features file: {e}")))?;
    if doc.version != 1 {
        return Err(bad(file, format!("version {} is not one this recspec reads (1)", doc.version)));
    }
    Ok(doc)
}

impl Artifact {
    fn entry(&self, file: &Path, input: &str) -> Result<&StoredFeature, ImportError> {
        self.features.iter().find(|f| f.input == input).ok_or_else(|| {
            bad(file, format!("nothing fitted for feature `{input}`: the data set was made by another feature set"))
        })
    }

    fn vocabulary(&self, file: &Path, input: &str) -> Result<Vec<String>, ImportError> {
        self.entry(file, input)?.vocabulary.clone().ok_or_else(|| {
            bad(file, format!("no vocabulary for feature `{input}`: the data set was made by another feature set"))
        })
    }

    fn stats(&self, file: &Path, input: &str, kind: &str) -> Result<Stats, ImportError> {
        let f = self.entry(file, input)?;
        if f.kind != kind {
            return Err(bad(file, format!("feature `{input}` was fitted as {}, not {kind}", f.kind)));
        }
        let number = |name: &str, raw: &Option<Box<serde_json::value::RawValue>>| {
            raw.as_ref()
                .and_then(|r| r.get().parse::<f64>().ok())
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(file, format!("feature `{input}`: `{name}` is missing or not a finite number")))
        };
        let count = f.count.ok_or_else(|| bad(file, format!("feature `{input}`: no `count`")))?;
        if count == 0 {
            return Ok(Stats::default());
        }
        Ok(Stats::stored(
            count,
            number("mean", &f.mean)?,
            number("std", &f.std)?,
            number("min", &f.min)?,
            number("max", &f.max)?,
        ))
    }
}

/// Everything a data set's import fitted, read back: what [`super::online`] builds rows with.
pub(crate) struct Fit {
    /// Item key -> vocabulary id (empty with hashed items, whose keys are written as they are).
    pub items: HashMap<String, u32>,
    /// The item keys the data set knows, in vocabulary order (hashed: in `item.jsonl` order).
    pub item_keys: Vec<String>,
    /// User key -> vocabulary id (users with training events).
    pub users: HashMap<String, u32>,
    /// User key -> the `user` its rows were written with (every user of the log).
    pub user_rows: HashMap<String, u64>,
    pub fields: Option<CategoricalIds>,
    pub profile: Option<CategoricalIds>,
    /// One per extra of the mapping, in its order.
    pub extras: Vec<Fitted>,
}

/// A `fields` or `profile` vocabulary file (`vocab/KEY.jsonl`: per column its out-of-vocabulary
/// line, `value` null, then its values in id order), checked against the ids
/// [`CategoricalIds::new`] gives them from `base`.
fn categorical(file: &Path, columns: &[String], base: u32) -> Result<CategoricalIds, ImportError> {
    let mut per_column: Vec<Vec<String>> = vec![vec![]; columns.len()];
    // Each column's out-of-vocabulary id, and its values' ids in file order.
    let mut offsets: Vec<Option<u32>> = vec![None; columns.len()];
    let mut absolute: Vec<Vec<u32>> = vec![vec![]; columns.len()];
    let mut ids: Vec<(usize, u64)> = vec![];
    let mut column = None;
    for (line, o) in objects(file)? {
        let name = field(file, line, &o, "column")?.as_str().unwrap_or("");
        let c = columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| bad(file, format!("line {line}: column `{name}` is not one the mapping reads")))?;
        let id = field(file, line, &o, "id")?
            .as_u64()
            .ok_or_else(|| bad(file, format!("line {line}: `id` is not an id")))?;
        ids.push((line, id));
        match field(file, line, &o, "value")? {
            serde_json::Value::Null if offsets[c].is_none() => {
                column = Some(c);
                offsets[c] = Some(id as u32);
            }
            serde_json::Value::String(v) if column == Some(c) => {
                per_column[c].push(v.clone());
                absolute[c].push(id as u32);
            }
            _ => return Err(bad(file, format!("line {line}: expected column `{name}`'s null line before its values"))),
        }
    }
    // Every id from `base` up once: one range per column in a fresh import, the earlier ranges
    // then the new values' ids after `--keep-ids-from`.
    let n = ids.len() as u64;
    let mut seen = vec![false; ids.len()];
    for (line, id) in &ids {
        match id.checked_sub(base as u64).filter(|i| *i < n).map(|i| &mut seen[i as usize]) {
            Some(s @ false) => *s = true,
            _ => {
                return Err(bad(
                    file,
                    format!(
                        "line {line}: id {id} is not one of {base}..{} once each; this is not a vocabulary recspec import wrote",
                        base as u64 + n
                    ),
                ))
            }
        }
    }
    // (The ids were cast to u32 as read; the check above holds every one below base + n.)
    if let Some(c) = offsets.iter().position(Option::is_none) {
        return Err(bad(file, format!("column `{}` has no out-of-vocabulary line (`\"value\": null`)", columns[c])));
    }
    let offsets = offsets.into_iter().flatten().collect();
    let columns = per_column.into_iter().map(|v| Values::keeping(&v, HashMap::new())).collect();
    Ok(CategoricalIds { offsets, columns, absolute, size: base + n as u32 })
}

/// Reads what the import of the data set `dir` with mapping `m` fitted.
pub(crate) fn fitted(dir: &Path, m: &Mapping) -> Result<Fit, ImportError> {
    let item_file = dir.join("vocab/item.jsonl");
    let (items, item_keys) = match m.item_buckets {
        None => {
            let items = kept_ids(&item_file, "id", Numbered::All)?;
            let mut keys: Vec<(&u32, &String)> = items.iter().map(|(k, id)| (id, k)).collect();
            keys.sort();
            let keys = keys.into_iter().map(|(_, k)| k.clone()).collect();
            (items, keys)
        }
        Some(_) => {
            let mut keys = vec![];
            for (line, o) in objects(&item_file)? {
                let key = field(&item_file, line, &o, "key")?;
                keys.push(
                    key.as_str().ok_or_else(|| bad(&item_file, format!("line {line}: `key` is not text")))?.to_string(),
                );
            }
            (HashMap::new(), keys)
        }
    };
    let user_file = dir.join("vocab/user.jsonl");
    let user_lines = objects(&user_file)?;
    let users = kept_ids_of(&user_file, &user_lines, "user", numbered_users(dir)?)?;
    let mut user_rows = HashMap::new();
    for (line, o) in &user_lines {
        let line = *line;
        let row = field(&user_file, line, o, "user")?.as_u64();
        let key = field(&user_file, line, o, "key")?.as_str();
        let (Some(row), Some(key)) = (row, key) else {
            return Err(bad(&user_file, format!("line {line}: expected a numeric `user` and a text `key`")));
        };
        user_rows.insert(key.to_string(), row);
    }
    let names = |c: &super::mapping::Categorical| c.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let fields = m
        .fields
        .as_ref()
        .map(|c| categorical(&dir.join(format!("vocab/{}.jsonl", c.key)), &names(c), 0))
        .transpose()?;
    let base = users.len() as u32 + 1;
    let profile = m
        .profile
        .as_ref()
        .map(|c| categorical(&dir.join(format!("vocab/{}.jsonl", c.key)), &names(c), base))
        .transpose()?;
    let file = dir.join("features.json");
    let stored = if file.exists() { Some(read_artifact(&file)?) } else { None };
    let mut extras = vec![];
    for x in &m.extras {
        let needed = || stored.as_ref().ok_or_else(|| bad(&file, format!("missing; feature `{}` was fitted", x.key)));
        extras.push(match &x.kind {
            ExtraKind::Categorical { ids: Ids::Vocabulary { .. }, .. }
            | ExtraKind::Tokens { ids: Ids::Vocabulary { .. }, .. } => {
                Fitted::Vocabulary(Values::keeping(&needed()?.vocabulary(&file, &x.key)?, HashMap::new()))
            }
            ExtraKind::Numeric { scaling: scaling @ (Scaling::ZScore | Scaling::MinMax), .. } => {
                Fitted::Stats(needed()?.stats(&file, &x.key, scaling.name())?)
            }
            ExtraKind::Categorical { .. }
            | ExtraKind::Tokens { .. }
            | ExtraKind::Numeric { .. }
            | ExtraKind::Bucketize { .. }
            | ExtraKind::Cross { .. } => Fitted::Nothing,
        });
    }
    Ok(Fit { items, item_keys, users, user_rows, fields, profile, extras })
}
