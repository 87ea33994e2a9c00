//! The mapping file (TOML) of `recspec import`, read into a typed [`Mapping`]: which columns
//! of the event log and the user and item tables become which keys of the data set. Every
//! mistake is an `ImportError::Mapping` naming `MAP.toml:line`; unknown keys are rejected.
//! [`file`] is the file's shape, [`validate`] checks it. The format is documented in
//! `docs/import.md`.

mod features;
mod file;
#[cfg(test)]
mod tests;
mod validate;

pub use features::from_features;

use super::events::{Layout, Wanted};
use super::rule::Rule;
use super::ImportError;
use std::path::{Path, PathBuf};

/// The longest sequence a mapping may ask for (the simulator's limit too).
pub(crate) const MAX_SEQUENCE_LENGTH: i64 = 10_000;

/// The most buckets `[output] item_buckets` may ask for (2^40: a table of that many rows is
/// already far beyond one machine; ids stay exact in every integer type the data path uses).
pub(crate) const MAX_ITEM_BUCKETS: i64 = 1 << 40;

/// A read and validated mapping.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The mapping file, as given.
    pub file: PathBuf,
    pub events: Layout,
    /// The event columns to read, by slot: every value an event carries is `values[slot]`.
    pub columns: Vec<Wanted>,
    pub user: usize,
    pub item: usize,
    pub time: usize,
    /// Every rule (labels, sequence `when`s, flag side features), by rule slot.
    pub rules: Vec<NamedRule>,
    pub labels: Vec<Label>,
    pub sequences: Vec<Sequence>,
    /// Float side features over all sequences (their `Side::Column::float` slots).
    pub floats: usize,
    /// Slots of the event columns that categorical fields read, by value index.
    pub values: Vec<usize>,
    pub fields: Option<Categorical>,
    pub profile: Option<Categorical>,
    pub users: Option<Table>,
    pub items: Option<Table>,
    /// Positions in `items.columns` of the cluster and creator columns.
    pub cluster: Option<usize>,
    pub creator: Option<usize>,
    pub split: Split,
    /// `[output] item_buckets`: item keys are written raw and hashed into this many buckets by
    /// the loader (`vocab V hashed`), instead of numbered by their training counts.
    pub item_buckets: Option<u64>,
    /// `[output] item_min_count`: items with fewer training events share the out-of-vocabulary
    /// id 0 (unless an earlier data set numbered them, `--keep-ids-from`); 1 numbers every
    /// training item.
    pub item_min_count: u64,
    /// Output key of the impressed item, and the dim names of the item and user vocabularies.
    pub item_key: String,
    pub item_dim: String,
    pub user_dim: String,
    /// Features only a feature set declares (numeric, buckets, tokens, crosses, categorical
    /// columns of their own), each written under its own key.
    pub extras: Vec<Extra>,
}

/// A feature beyond the mapping file's kinds, from a feature set (`docs/features.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Extra {
    /// The row key: the model input it fills.
    pub key: String,
    pub kind: ExtraKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExtraKind {
    /// One id per row: numbered on the training split (`vocab_dim` gets the size) or hashed.
    Categorical { source: ValueSource, ids: crate::features::Ids, vocab_dim: Option<String> },
    /// One float per row, scaled; `missing` is written where the cell is empty or the joined
    /// row is absent.
    /// `na`: texts read as missing, besides an empty cell.
    Numeric { source: ValueSource, scaling: crate::features::Scaling, missing: f64, na: Vec<String> },
    /// The number of boundaries at or below the value; `missing` where there is none.
    Bucketize { source: ValueSource, boundaries: Vec<f64>, missing: u64, na: Vec<String> },
    /// The cell's tokens (split at `sep`, empty ones dropped, the first `max` kept), as ids.
    Tokens { source: ValueSource, sep: String, max: usize, ids: crate::features::Ids, vocab_dim: Option<String> },
    /// The values joined and hashed into `buckets` ids.
    Cross { sources: Vec<ValueSource>, buckets: u64 },
}

impl ExtraKind {
    /// The columns it reads.
    pub fn sources(&self) -> Vec<ValueSource> {
        match self {
            ExtraKind::Categorical { source, .. }
            | ExtraKind::Numeric { source, .. }
            | ExtraKind::Bucketize { source, .. }
            | ExtraKind::Tokens { source, .. } => vec![*source],
            ExtraKind::Cross { sources, .. } => sources.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NamedRule {
    /// `[labels] click (map.toml:7)`.
    pub origin: String,
    pub rule: Rule,
    /// A flag side feature's rule is evaluated only where its sequence's `when` (this earlier
    /// rule slot) holds, and is false elsewhere.
    pub gate: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Label {
    pub name: String,
    pub rule: usize,
}

#[derive(Clone, Debug)]
pub struct Sequence {
    pub name: String,
    pub length: usize,
    /// The dim its length is written as (`T`); sequences sharing one have equal lengths.
    pub dim: String,
    /// Rule slot: which earlier events enter.
    pub when: usize,
    pub sides: Vec<Side>,
}

#[derive(Clone, Debug)]
pub struct Side {
    pub name: String,
    pub kind: SideKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SideKind {
    /// A float column of the event (read only for events that enter the sequence).
    Column { slot: usize, float: usize, transform: Transform },
    /// 1.0 where a rule holds for the event, else 0.0.
    Flag { rule: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    None,
    /// `ln(1 + x)` (the simulator's dwell feature); needs x > -1.
    Log1p,
}

/// Categorical ids written as one array per row (`fields`, `profile`).
#[derive(Clone, Debug)]
pub struct Categorical {
    pub key: String,
    /// Dim names of the array length and of the shared id space.
    pub size_dim: String,
    pub vocab_dim: String,
    pub columns: Vec<CategoricalColumn>,
}

#[derive(Clone, Debug)]
pub struct CategoricalColumn {
    /// As the mapping spells it: `age`, `user.age:token`.
    pub name: String,
    pub source: ValueSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSource {
    /// An event column, by value index.
    Event(usize),
    /// A column of the user table or the item table, by its position in `Table::columns`.
    User(usize),
    Item(usize),
}

/// A user or item table: the rows joined to events by key.
#[derive(Clone, Debug)]
pub struct Table {
    pub file: PathBuf,
    pub layout: Layout,
    pub key: Wanted,
    /// The columns joined (besides the key).
    pub columns: Vec<Wanted>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    /// One global time cut: the events of the last `valid + test` of the time order.
    Time { valid: f64, test: f64 },
    /// Each user's last event is test, the one before valid (users with at least 3 events).
    LeaveLastOut,
}

/// `file` as the mapping (or feature set) at `definition` names it: relative to its folder
/// unless absolute.
pub fn relative_to(definition: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() {
        p
    } else {
        definition.parent().unwrap_or(Path::new("")).join(p)
    }
}

/// Reads and validates a mapping file.
pub fn load(path: &Path) -> Result<Mapping, ImportError> {
    let text = std::fs::read_to_string(path).map_err(crate::files::FileError::at("read", path))?;
    parse(path, &text)
}

/// Validates mapping text; `path` names it in messages and anchors the table files.
pub fn parse(path: &Path, text: &str) -> Result<Mapping, ImportError> {
    validate::validate(path, text)
}
