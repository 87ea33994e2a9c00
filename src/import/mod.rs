//! `recspec import`: an event log (plus optional user and item tables) becomes a data set in
//! the format of [`crate::data`], driven by a mapping file ([`mapping`], `docs/import.md`).
//!
//! Three passes, with memory bounded by per-user state and the vocabularies, never by the
//! number of events:
//!
//! 1. [`read`]: every record of the events file, projected to the columns the mapping needs,
//!    its rules evaluated, goes to an external sort by (time, row) ([`sort`]: sorted chunks
//!    spilled under `OUT/.import-tmp`, then a k-way merge).
//! 2. [`vocab`]: the sorted events are split ([`split`]) and the vocabularies counted on the
//!    training split only.
//! 3. [`build`]: one row per event, in time order, with each user's sequences of strictly
//!    earlier events.
//!
//! Every file is written under a temporary name and renamed into place at the end.

pub mod build;
pub mod events;
mod extras;
pub mod mapping;
pub mod online;
mod prior;
pub use prior::{given_ids, GivenIds};
pub mod read;
pub mod rule;
pub mod sort;
pub mod split;
pub mod summary;
pub mod vocab;

pub use summary::ImportSummary;

use crate::data::DataError;
use crate::files::{FileError, Staged};
use read::{BadRows, Event};
use sort::Sorter;
use split::Splitter;
use std::fmt;
use std::path::{Path, PathBuf};
use summary::{Hparam, SequenceSummary, VocabSummary};

/// Events per sorted chunk: the sort's memory bound.
pub const DEFAULT_CHUNK_EVENTS: usize = 1 << 20;

/// Rows between two progress reports.
pub(crate) const PROGRESS_EVERY: usize = 100_000;

/// How to import.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportOptions {
    /// Skip and count bad rows instead of stopping at the first.
    pub skip_bad_rows: bool,
    /// Events per sorted chunk (at least 1); lower it to exercise the merge.
    pub chunk_events: usize,
    /// An earlier data set whose ids are kept (`--keep-ids-from`, [`prior`]).
    pub keep_ids_from: Option<PathBuf>,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions { skip_bad_rows: false, chunk_events: DEFAULT_CHUNK_EVENTS, keep_ids_from: None }
    }
}

/// Where a long import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Records read from the events file so far.
    Read { rows: usize },
    /// Every event is read; sorting (merging `chunks` chunks).
    Sorting { chunks: usize },
    /// Rows written so far.
    Written { rows: usize },
}

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// The mapping: malformed TOML, an unknown key or an invalid value (`line` 0: not known).
    Mapping {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// An input file as a whole: empty, of unknown format, without a column the mapping names.
    Input {
        file: PathBuf,
        message: String,
    },
    /// A bad row: `file:row: message`.
    Row(DataError),
    /// No events to import: an empty file, or every row bad and skipped.
    NoEvents {
        file: PathBuf,
        bad_rows: usize,
    },
    /// A split without rows.
    EmptySplit {
        split: &'static str,
        reason: String,
    },
    File(FileError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Mapping { file, line: 0, message } => write!(f, "{}: {message}", file.display()),
            ImportError::Mapping { file, line, message } => write!(f, "{}:{line}: {message}", file.display()),
            ImportError::Input { file, message } => write!(f, "{}: {message}", file.display()),
            ImportError::Row(e) => e.fmt(f),
            ImportError::NoEvents { file, bad_rows: 0 } => write!(f, "{}: no events to import", file.display()),
            ImportError::NoEvents { file, bad_rows } => {
                write!(f, "{}: no events to import (all {bad_rows} rows were bad and skipped)", file.display())
            }
            ImportError::EmptySplit { split, reason } => write!(f, "the {split} split would be empty: {reason}"),
            ImportError::File(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<FileError> for ImportError {
    fn from(e: FileError) -> ImportError {
        ImportError::File(e)
    }
}

/// Removes the import's scratch directory, and output files not renamed into place, however the
/// import ends.
struct Scratch {
    dir: PathBuf,
    temporary: Vec<PathBuf>,
}

impl Scratch {
    fn create(&mut self, dir: &Path, name: &str) -> Result<Staged, FileError> {
        let f = Staged::create(dir, name)?;
        self.temporary.push(f.temporary().to_path_buf());
        Ok(f)
    }

    fn write_file(&mut self, dir: &Path, name: &str, text: &str) -> Result<(PathBuf, PathBuf), FileError> {
        let mut f = self.create(dir, name)?;
        f.write(text)?;
        f.finish()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        for t in &self.temporary {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// Imports `events` with the mapping file `mapping` into the data set directory `out`
/// (created if missing; files of an earlier data set there are replaced). The same inputs give
/// the same bytes.
pub fn import(
    events: &Path,
    mapping: &Path,
    out: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportSummary, ImportError> {
    import_with(events, &mapping::load(mapping)?, out, options, progress)
}

/// [`import`] with a mapping already read: from a mapping file ([`mapping::load`]) or from a
/// feature set ([`mapping::from_features`]).
pub fn import_with(
    events: &Path,
    m: &mapping::Mapping,
    out: &Path,
    options: &ImportOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ImportSummary, ImportError> {
    let mapping = m.file.as_path();
    // An earlier data set's ids, read before anything is read or written.
    let prior = match &options.keep_ids_from {
        Some(dir) => prior::load(dir, m)?,
        None => prior::Prior::default(),
    };
    let mut bad = BadRows { skip: options.skip_bad_rows, ..BadRows::default() };
    let mut user_table = m.users.as_ref().map(|t| read::read_table(t, &mut bad)).transpose()?.unwrap_or_default();
    let mut item_table = m.items.as_ref().map(|t| read::read_table(t, &mut bad)).transpose()?.unwrap_or_default();

    std::fs::create_dir_all(out).map_err(FileError::at("create", out))?;
    let mut scratch = Scratch { dir: out.join(".import-tmp"), temporary: vec![] };
    let _ = std::fs::remove_dir_all(&scratch.dir);
    std::fs::create_dir_all(&scratch.dir).map_err(FileError::at("create", &scratch.dir))?;
    let mut sorter = Sorter::<Event>::new(&scratch.dir, options.chunk_events);
    let mut read = read::read_events(events, m, &mut sorter, &mut bad, progress)?;
    if read.events == 0 {
        return Err(ImportError::NoEvents { file: events.to_path_buf(), bad_rows: bad.count });
    }
    progress(Progress::Sorting { chunks: read.events.div_ceil(options.chunk_events.max(1)) });
    let sorted = sorter.finish()?;

    let cuts = match m.split {
        mapping::Split::Time { valid, test } => Some(split::time_cuts(&sorted, valid, test)?),
        mapping::Split::LeaveLastOut => None,
    };
    // Kept keys this log does not mention still own their ids: they join the key lists.
    for (kept, interner) in [(&prior.items, &mut read.items), (&prior.users, &mut read.users)] {
        let mut by_id: Vec<(&u32, &String)> = kept.iter().map(|(k, id)| (id, k)).collect();
        by_id.sort();
        for (_, key) in by_id {
            interner.intern(key);
        }
    }
    read.user_events.resize(read.users.keys.len(), 0);
    let read = read;
    let splitter = || Splitter::new(&m.split, cuts, &read.user_events);
    let joins = vocab::Joins {
        users: read.users.keys.iter().map(|k| user_table.remove(k)).collect(),
        items: read.items.keys.iter().map(|k| item_table.remove(k)).collect(),
    };
    let keys = (&read.users.keys[..], &read.items.keys[..]);
    extras::check_tables(m, &joins, keys)?;
    let vocabs = vocab::count(&sorted, m, splitter(), &joins, keys, &prior)?;
    for (i, name) in split::SPLITS.iter().enumerate() {
        if vocabs.split_events[i] == 0 {
            return Err(ImportError::EmptySplit { split: name, reason: empty_split_reason(&m.split, cuts) });
        }
    }

    let mut files =
        [scratch.create(out, "train.jsonl")?, scratch.create(out, "valid.jsonl")?, scratch.create(out, "test.jsonl")?];
    let written = build::write_rows(events, &sorted, m, splitter(), &vocabs, &joins, keys.1, &mut files, progress)?;
    let mut staged = vec![];
    for f in files {
        staged.push(f.finish()?);
    }
    let vocab_dir = out.join("vocab");
    std::fs::create_dir_all(&vocab_dir).map_err(FileError::at("create", &vocab_dir))?;
    for (name, text) in vocab::files(m, &vocabs, keys, &written.user_rows) {
        staged.push(scratch.write_file(&vocab_dir, &name, &text)?);
    }
    let mut extra_files = vec![];
    if let Some(text) = vocab::items_jsonl(&vocabs) {
        staged.push(scratch.write_file(out, "items.jsonl", &text)?);
        extra_files.push("items.jsonl".to_string());
    }
    if !m.extras.is_empty() {
        staged.push(scratch.write_file(out, "features.json", &extras::artifact(m, &vocabs.extras))?);
        extra_files.push("features.json".to_string());
    }
    let (fitted, fitted_dims) = extras::summary(m, &vocabs.extras);
    let summary = ImportSummary {
        out: out.to_path_buf(),
        mapping: mapping.to_path_buf(),
        events_file: events.to_path_buf(),
        events: read.events,
        bad_rows: bad.count,
        first_bad_rows: bad.first,
        chunks: sorted.chunks,
        split: match m.split {
            mapping::Split::Time { valid, test } => format!("time (valid {valid}, test {test})"),
            mapping::Split::LeaveLastOut => "leave_last_out".into(),
        },
        labels: m.labels.iter().map(|l| l.name.clone()).collect(),
        splits: summary::splits(&written.splits),
        vocabularies: vocabularies(m, &vocabs, read.users.keys.len(), read.items.keys.len()),
        item_collisions: m.item_buckets.map(|b| vocab::bucket_collisions(&vocabs, keys.1, b)),
        sequences: m.sequences.iter().zip(&written.lengths).map(|(s, h)| SequenceSummary::new(&s.name, h)).collect(),
        hparams: hparams(m, &vocabs, fitted_dims)?,
        extra_files,
        fitted,
    };
    staged.push(scratch.write_file(out, "data.toml", &summary.data_toml())?);
    for (tmp, dest) in &staged {
        std::fs::rename(tmp, dest).map_err(FileError::renaming(tmp, dest))?;
    }
    Ok(summary)
}

fn empty_split_reason(split: &mapping::Split, cuts: Option<split::Cuts>) -> String {
    match (split, cuts) {
        (mapping::Split::Time { .. }, Some(c)) => format!(
            "the time split puts events before time {} in train, from {} in valid and from {} in test, and events sharing a time stay in one split",
            c.valid, c.valid, c.test
        ),
        _ => "leave_last_out holds out the last two events of users with at least 3 events, and no user has 3".into(),
    }
}

fn vocabularies(m: &mapping::Mapping, v: &vocab::Vocabs, users: usize, items: usize) -> Vec<VocabSummary> {
    let mut out = vec![
        VocabSummary {
            name: if m.item_buckets.is_some() { "items (hashed)" } else { "items" }.into(),
            size: m.item_buckets.map_or(v.items.size(), |b| b as usize),
            distinct: Some(items),
        },
        VocabSummary { name: "users".into(), size: v.users.size(), distinct: Some(users) },
    ];
    for (c, ids) in [(&m.fields, &v.fields), (&m.profile, &v.profile)] {
        let (Some(c), Some(ids)) = (c, ids) else { continue };
        for (col, values) in c.columns.iter().zip(&ids.columns) {
            out.push(VocabSummary {
                name: format!("{}.{}", c.key, col.name),
                size: values.entries.len() + 1,
                distinct: None,
            });
        }
    }
    for (name, per_item) in [("cluster", &v.clusters), ("creator", &v.creators)] {
        if let Some((_, values)) = per_item {
            out.push(VocabSummary { name: name.into(), size: values.entries.len() + 1, distinct: None });
        }
    }
    out
}

fn hparams(
    m: &mapping::Mapping,
    v: &vocab::Vocabs,
    fitted: Vec<(String, usize, String)>,
) -> Result<Vec<Hparam>, ImportError> {
    let h = |name: &str, value: usize, note: String| Hparam { name: name.to_string(), value, note };
    let mut out = vec![
        match m.item_buckets {
            None => h(&m.item_dim, v.items.size(), "item vocabulary (id 0: items not in the training split)".into()),
            Some(b) => h(
                &m.item_dim,
                b as usize,
                "item hash buckets: rows hold raw item keys; declare the item inputs `vocab V hashed`".into(),
            ),
        },
        h(&m.user_dim, v.users.size(), "user vocabulary (id 0: users not in the training split)".into()),
    ];
    let mut dims: Vec<(&str, usize, Vec<&str>)> = vec![];
    for s in &m.sequences {
        match dims.iter_mut().find(|(d, _, _)| *d == s.dim) {
            Some(d) => d.2.push(&s.name),
            None => dims.push((&s.dim, s.length, vec![&s.name])),
        }
    }
    for (dim, length, names) in dims {
        out.push(h(dim, length, format!("max sequence length ({})", names.join(", "))));
    }
    if let (Some(c), Some(ids)) = (&m.fields, &v.fields) {
        let names: Vec<&str> = c.columns.iter().map(|c| c.name.as_str()).collect();
        out.push(h(&c.size_dim, c.columns.len(), format!("categorical fields: {}", names.join(", "))));
        out.push(h(
            &c.vocab_dim,
            ids.size as usize,
            "field vocabulary size (a range per field, its first id out of vocabulary)".into(),
        ));
    }
    if let (Some(c), Some(ids)) = (&m.profile, &v.profile) {
        let mut names = vec!["user id"];
        names.extend(c.columns.iter().map(|c| c.name.as_str()));
        out.push(h(&c.size_dim, c.columns.len() + 1, format!("user-profile fields: {}", names.join(", "))));
        out.push(h(&c.vocab_dim, ids.size as usize, "user-profile vocabulary size (user ids first)".into()));
    }
    for (name, value, note) in fitted {
        if out.iter().any(|h| h.name == name) {
            return Err(ImportError::Input {
                file: m.file.clone(),
                message: format!("dim `{name}` would be written twice; size one of the vocabularies by another dim"),
            });
        }
        out.push(h(&name, value, note));
    }
    Ok(out)
}
