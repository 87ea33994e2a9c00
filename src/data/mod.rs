//! Multi-feedback example files: the JSON Lines and Parquet formats, their schema derived from a
//! compiled graph, and the streaming loader that turns rows into host-side batches.
//!
//! A split is `NAME.jsonl`, `NAME.parquet` ([`DataFormat`]) or a folder `NAME/` of such shards
//! ([`shards`], read in name order); both formats become the same JSON value per row, checked by
//! one validator, so they accept the same data with the same messages.
//!
//! # JSON Lines
//!
//! One JSON object per line (UTF-8). Keys follow the graph's inputs by name:
//!
//! - `"user"`: a non-negative integer, required on every row (per-user GAUC); `"time"`: an
//!   optional integer, ignored by the loader.
//! - every `input`, `seq` and `side` declaration gets a key named exactly like it (`item`, `fields`,
//!   `clicks`, `clicks.dwell`). Masks (`clicks.mask`) are not stored: they follow from the
//!   sequence lengths.
//! - Feature `[B]`: a scalar; `[B, K]`: an array of K numbers; more dims: a flat row-major array of
//!   their product.
//! - Sequence `[B, T]`: an array of 0..=T ids, most recent last, not padded; the loader pads with
//!   id 0 and sets the mask true on positions `0..len`. Sequence `[B, T, K...]`: an array of 0..=T
//!   entries, each an array of prod(K...) numbers.
//! - Side `seq.name` `[B, T, K...]`: exactly one entry per element of its sequence, each a number
//!   when prod(K...) == 1 and an array of prod(K...) numbers otherwise; padded with 0.0.
//! - `"labels": {"click": 1, ...}`: every label stream of the graph, each 0 or 1 (`0.0`/`1.0` too).
//! - `"weights": {"w": 1.0}`: every weight stream, a finite number >= 0; no default.
//! - Ids are integers in `0..vocab`; floats are numbers that fit in an `f32`.
//! - Unknown keys (and unknown labels or weights) are ignored, so one data set serves every spec
//!   that reads a subset of its streams. Lines holding only whitespace are skipped.
//!
//! # Parquet
//!
//! One row per example, one top-level column per key above, named exactly like it (`user`,
//! `time`, `item`, `fields`, `clicks`, `clicks.dwell`), and one column per label and weight
//! stream named `labels.NAME` and `weights.NAME` (flat columns, not a struct). Types:
//!
//! - ids and `user`: any integer type (INT32, INT64, unsigned); floats: FLOAT or DOUBLE (integers
//!   are accepted too); labels: integers or floats 0/1, or BOOLEAN.
//! - a scalar feature `[B]` is a plain column; `[B, K]` and sequences are `LIST<...>` of the
//!   same values; `[B, T, K...]` sequences and side features with prod(K...) > 1 are
//!   `LIST<LIST<...>>`. Lengths and padding follow the JSON Lines rules.
//! - Same rules as JSON Lines: ids in `0..vocab`, lengths <= T, finite floats, labels 0/1. A
//!   column the schema reads that the file lacks is an error for the whole file; other columns
//!   are never read. Errors name `file:row`, the row counted from 1 in file order.
//! - Any compression the `parquet` crate reads with its `snap` and `zstd` features (snappy,
//!   zstd, uncompressed). `recspec convert` writes this layout from JSON Lines and back.

mod loader;
mod parquet;
mod row;
pub(crate) use row::hashed_value;
#[cfg(test)]
mod tests;

pub use loader::{count_rows, shards, shuffle_seed, shuffle_shards, Loader};
pub use parquet::column_names as parquet_columns;
pub use parquet::write::{jsonl_to_parquet, parquet_to_jsonl};
pub use parquet::ParquetRows;

use crate::ir::{Graph, InputRole};
use crate::lower::{lower, Bindings, Program};
use crate::types::DType;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Top-level keys the format itself uses; no input may be named like them.
pub(crate) const RESERVED_KEYS: [&str; 4] = ["user", "time", "labels", "weights"];

/// The on-disk format of a split, told by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataFormat {
    JsonLines,
    Parquet,
}

impl DataFormat {
    pub const ALL: [DataFormat; 2] = [DataFormat::JsonLines, DataFormat::Parquet];

    /// The extension of a split in this format (`train.jsonl`, `train.parquet`).
    pub fn extension(self) -> &'static str {
        match self {
            DataFormat::JsonLines => "jsonl",
            DataFormat::Parquet => "parquet",
        }
    }

    /// `.parquet` is Parquet; anything else is read as JSON Lines.
    pub(crate) fn of_path(path: &std::path::Path) -> DataFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") => DataFormat::Parquet,
            _ => DataFormat::JsonLines,
        }
    }
}

/// The JSON layout of one data set, derived from a compiled graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// Stored inputs (features, sequences, side features) in graph order; masks are derived.
    pub fields: Vec<FieldSchema>,
    /// Label streams: the program's (`Program::labels`, in its order) and any a caller adds after
    /// them (`recspec eval --labels`).
    pub labels: Vec<String>,
    pub weights: Vec<String>,
    /// One entry per program input, in slot order (`Program::inputs`): what fills the slot.
    pub inputs: Vec<SchemaInput>,
}

/// One of the program's input slots and what fills it.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaInput {
    pub name: String,
    /// `None` for an input the schema's reader does not read ([`Schema::reading_only`]): its
    /// slot stays empty in the batches.
    pub source: Option<InputSource>,
}

/// Where a batch's value for an input slot comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// The stored field `Schema::fields[i]`.
    Field(usize),
    /// The mask of the sequence field `Schema::fields[i]`: which of its positions hold an element.
    Mask(usize),
    /// The per-example weight stream `Schema::weights[i]`.
    Weight(usize),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldSchema {
    pub name: String,
    pub kind: FieldKind,
    pub role: InputRole,
    /// Non-batch dims, evaluated (`[T, K...]` for sequences and side features).
    pub shape: Vec<usize>,
    /// For a side feature: its sequence; for a sequence: itself.
    pub sequence: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Ids {
        vocab: i64,
    },
    /// Raw ids, any integer or string, hashed into `buckets` ids ([`hash_bucket`]).
    HashedIds {
        buckets: i64,
    },
    Floats,
}

/// A raw id of a hashed input: an integer or a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawId<'a> {
    Int(i64),
    Str(&'a str),
}

/// The bucket of a raw id in `0..buckets`: SplitMix64's output function applied to the id's 64
/// bits (an integer's two's complement; for a string, the FNV-1a 64-bit hash of its UTF-8
/// bytes), modulo `buckets`. Deterministic across runs, machines and the generated PyTorch
/// trainer (`recspec_torch.data.hash_bucket`); two ids share a bucket with probability
/// 1 / buckets (docs/scale.md).
pub fn hash_bucket(id: RawId<'_>, buckets: i64) -> i64 {
    let bits = match id {
        RawId::Int(i) => i as u64,
        RawId::Str(s) => s.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)),
    };
    let z = crate::rng::mix64(bits.wrapping_add(crate::rng::GOLDEN_GAMMA));
    (z % buckets.max(1) as u64) as i64
}

impl FieldSchema {
    /// Numbers per example in the padded batch buffer.
    pub(crate) fn row_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// For sequences and side features: T, the padded length.
    pub fn max_len(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Numbers per sequence element (prod of the dims after T); 1 for `[B, T]`.
    pub(crate) fn elem_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The JSON layout of this key, in words.
    pub fn layout(&self) -> String {
        let what = match self.kind {
            FieldKind::Ids { vocab } => format!("ids in 0..{vocab}"),
            FieldKind::HashedIds { buckets } => format!("raw ids (integers or strings) hashed into {buckets} buckets"),
            FieldKind::Floats => "numbers".to_string(),
        };
        let one = match self.kind {
            FieldKind::Ids { vocab } => format!("an id in 0..{vocab}"),
            FieldKind::HashedIds { buckets } => {
                format!("a raw id (an integer or a string) hashed into {buckets} buckets")
            }
            FieldKind::Floats => "a number".to_string(),
        };
        let seq = self.sequence.as_deref().unwrap_or("?");
        match self.role {
            InputRole::Sequence if self.elem_len() == 1 => {
                format!("array of 0..={} {what}, most recent last (mask `{}.mask` derived)", self.max_len(), self.name)
            }
            InputRole::Sequence => format!(
                "array of 0..={} entries, each an array of {} {what}, most recent last (mask `{}.mask` derived)",
                self.max_len(),
                self.elem_len(),
                self.name
            ),
            InputRole::Side if self.elem_len() == 1 => format!("array with {one} per element of `{seq}`"),
            InputRole::Side => {
                format!("array with one entry per element of `{seq}`, each an array of {} {what}", self.elem_len())
            }
            _ if self.shape.is_empty() => one,
            _ if self.shape.len() == 1 => format!("array of {} {what}", self.row_len()),
            _ => {
                let shape: Vec<String> = self.shape.iter().map(usize::to_string).collect();
                format!("flat array of {} {what} (shape [{}], row-major)", self.row_len(), shape.join(", "))
            }
        }
    }
}

/// Why a model's inputs have no on-disk layout.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaError {
    /// An input is named like a key the format itself uses.
    ReservedKey(String),
    /// A non-batch axis of an input is not a positive constant.
    NotASize {
        input: String,
        extent: String,
    },
    /// An input's row length overflows.
    Overflow(String),
    IdsWithoutVocab(String),
    /// A mask-typed model input (masks are derived from sequences, never stored).
    MaskInput(String),
    SideWithoutSequence {
        side: String,
        sequence: String,
    },
    SideLengthMismatch {
        side: String,
        sequence: String,
    },
    NoTimeAxis(String),
    /// The graph did not lower (a compiler bug).
    Lower(crate::lower::LowerError),
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::ReservedKey(name) => {
                write!(f, "input `{name}` uses a key the data format reserves ({})", RESERVED_KEYS.join(", "))
            }
            SchemaError::NotASize { input, extent } => {
                write!(f, "input `{input}`: dimension {extent} must be a positive size for the data format")
            }
            SchemaError::Overflow(name) => write!(f, "input `{name}`: its row length overflows"),
            SchemaError::IdsWithoutVocab(name) => write!(f, "input `{name}` holds ids without a vocabulary"),
            SchemaError::MaskInput(name) => write!(f, "input `{name}`: mask-typed inputs cannot be stored"),
            SchemaError::SideWithoutSequence { side, sequence } => {
                write!(f, "side feature `{side}` has no sequence `{sequence}` before it")
            }
            SchemaError::SideLengthMismatch { side, sequence } => {
                write!(f, "side feature `{side}` and sequence `{sequence}` disagree on T")
            }
            SchemaError::NoTimeAxis(name) => write!(f, "sequence `{name}` has no time axis"),
            SchemaError::Lower(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl std::error::Error for SchemaError {}

impl Schema {
    /// The data layout a compiled graph reads (lowered at its own hyperparameters).
    pub fn from_graph(g: &Graph) -> Result<Schema, SchemaError> {
        Schema::from_program(&lower(g, &Bindings::of(g)).map_err(SchemaError::Lower)?)
    }

    /// The data layout a lowered program reads.
    pub fn from_program(program: &Program) -> Result<Schema, SchemaError> {
        let mut fields: Vec<FieldSchema> = vec![];
        let mut weights = vec![];
        let mut inputs = vec![];
        for input in program.inputs() {
            let role = input.role.unwrap_or(InputRole::Feature);
            let name = &input.name;
            let source = match role {
                // A sequence's mask input (`clicks.mask`) follows the sequence.
                InputRole::Mask => InputSource::Mask(
                    fields
                        .iter()
                        .position(|f| f.role == InputRole::Sequence && name.strip_suffix(".mask") == Some(&f.name))
                        .ok_or_else(|| SchemaError::MaskInput(name.clone()))?,
                ),
                InputRole::Weight => {
                    weights.push(name.clone());
                    InputSource::Weight(weights.len() - 1)
                }
                _ => InputSource::Field(fields.len()),
            };
            inputs.push(SchemaInput { name: name.clone(), source: Some(source) });
            if matches!(role, InputRole::Mask | InputRole::Weight) {
                continue;
            }
            if RESERVED_KEYS.contains(&name.as_str()) {
                return Err(SchemaError::ReservedKey(name.clone()));
            }
            let mut shape = vec![];
            let mut total: usize = 1;
            for e in input.shape.iter().skip(1) {
                let v = e
                    .constant()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| SchemaError::NotASize { input: name.clone(), extent: e.to_string() })?;
                total = total.checked_mul(v).ok_or_else(|| SchemaError::Overflow(name.clone()))?;
                shape.push(v);
            }
            let kind = match (input.dtype, input.vocab) {
                (DType::Id, Some(v)) if input.hashed => FieldKind::HashedIds { buckets: v as i64 },
                (DType::Id, Some(v)) => FieldKind::Ids { vocab: v as i64 },
                (DType::Id, None) => return Err(SchemaError::IdsWithoutVocab(name.clone())),
                (DType::Float, _) => FieldKind::Floats,
                (DType::Mask, _) => return Err(SchemaError::MaskInput(name.clone())),
            };
            let sequence = match role {
                InputRole::Sequence => Some(name.clone()),
                InputRole::Side => {
                    let seq = name.split_once('.').map(|(s, _)| s.to_string()).unwrap_or_default();
                    let Some(owner) = fields.iter().find(|f| f.name == seq && f.role == InputRole::Sequence) else {
                        return Err(SchemaError::SideWithoutSequence { side: name.clone(), sequence: seq });
                    };
                    if owner.shape.first() != shape.first() {
                        return Err(SchemaError::SideLengthMismatch { side: name.clone(), sequence: seq });
                    }
                    Some(seq)
                }
                _ => None,
            };
            if role == InputRole::Sequence && shape.is_empty() {
                return Err(SchemaError::NoTimeAxis(name.clone()));
            }
            fields.push(FieldSchema { name: name.clone(), kind, role, shape, sequence });
        }
        Ok(Schema { fields, labels: program.labels.clone(), weights, inputs })
    }

    /// The schema of a reader that needs only the inputs whose slots `read` accepts, and no
    /// labels or weights (serving). A sequence is kept, with its mask, when either is read.
    pub fn reading_only(&self, read: impl Fn(usize) -> bool) -> Schema {
        let mut keep = vec![false; self.fields.len()];
        for (slot, input) in self.inputs.iter().enumerate() {
            if let (true, Some(InputSource::Field(i) | InputSource::Mask(i))) = (read(slot), input.source) {
                keep[i] = true;
            }
        }
        let mut renumbered = vec![None; self.fields.len()];
        let mut fields = vec![];
        for (i, f) in self.fields.iter().enumerate().filter(|(i, _)| keep[*i]) {
            renumbered[i] = Some(fields.len());
            fields.push(f.clone());
        }
        let inputs = self
            .inputs
            .iter()
            .map(|input| SchemaInput {
                name: input.name.clone(),
                source: match input.source {
                    Some(InputSource::Field(i)) => renumbered[i].map(InputSource::Field),
                    Some(InputSource::Mask(i)) => renumbered[i].map(InputSource::Mask),
                    Some(InputSource::Weight(_)) | None => None,
                },
            })
            .collect();
        Schema { fields, labels: vec![], weights: vec![], inputs }
    }

    /// The input slot of an input by name.
    pub fn input(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }

    /// The Parquet columns this schema reads: `user`, each stored input, `labels.NAME`,
    /// `weights.NAME`.
    pub fn columns(&self) -> Vec<String> {
        let mut out = vec!["user".to_string()];
        out.extend(self.fields.iter().map(|f| f.name.clone()));
        out.extend(self.labels.iter().map(|l| format!("labels.{l}")));
        out.extend(self.weights.iter().map(|w| format!("weights.{w}")));
        out
    }

    /// What one of [`Schema::columns`] holds, in words.
    pub(crate) fn describe_column(&self, column: &str) -> String {
        if column == "user" {
            return "non-negative integers".into();
        }
        if column.starts_with("labels.") {
            return "0 or 1".into();
        }
        if column.starts_with("weights.") {
            return "finite numbers >= 0".into();
        }
        self.field(column).map(FieldSchema::layout).unwrap_or_default()
    }

    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Human-readable description of the format (`recspec schema SPEC`): one line per key, then
    /// an example row.
    pub fn describe(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("user".into(), "non-negative integer, required (groups rows per user for GAUC)".into()),
            ("time".into(), "integer, optional (ignored by the loader)".into()),
        ];
        for f in &self.fields {
            rows.push((f.name.clone(), f.layout()));
        }
        for l in &self.labels {
            rows.push((format!("labels.{l}"), "0 or 1, required, in the object \"labels\"".into()));
        }
        for w in &self.weights {
            rows.push((format!("weights.{w}"), "finite number >= 0, required, in the object \"weights\"".into()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0).max(3);
        let mut out = String::from("JSON Lines: one example per line, UTF-8. Keys:\n");
        for (k, v) in rows {
            out.push_str(&format!("  {k:width$}  {v}\n"));
        }
        out.push_str("Masks are derived from sequence lengths. Unknown keys, labels and weights are ignored.\n");
        out.push_str(
            "Parquet (SPLIT.parquet instead of SPLIT.jsonl): the same keys as columns, `labels.NAME` and \
             `weights.NAME` as flat columns, arrays as LIST columns; `recspec convert` writes it.\n",
        );
        out.push_str("Example row:\n");
        out.push_str(&self.example_row());
        out.push('\n');
        out
    }

    /// One valid row (sequences of length min(2, T)), as compact JSON.
    pub(crate) fn example_row(&self) -> String {
        let num = |kind: FieldKind, i: usize| match kind {
            FieldKind::Ids { vocab } => ((i as i64 + 1) % vocab).to_string(),
            FieldKind::HashedIds { .. } => format!("\"id-{}\"", i + 1),
            FieldKind::Floats => format!("{}", 0.5 * (i as f64 + 1.0)),
        };
        let arr = |kind: FieldKind, n: usize| {
            let v: Vec<String> = (0..n).map(|i| num(kind, i)).collect();
            format!("[{}]", v.join(","))
        };
        let seq_len = |f: &FieldSchema| f.max_len().min(2);
        let mut parts = vec!["\"user\":42".to_string(), "\"time\":1700000000".to_string()];
        for f in &self.fields {
            let value = match f.role {
                InputRole::Sequence | InputRole::Side => {
                    let owner = f.sequence.as_deref().and_then(|s| self.field(s)).unwrap_or(f);
                    let entries: Vec<String> = (0..seq_len(owner))
                        .map(|i| if f.elem_len() == 1 { num(f.kind, i) } else { arr(f.kind, f.elem_len()) })
                        .collect();
                    format!("[{}]", entries.join(","))
                }
                _ if f.shape.is_empty() => num(f.kind, 0),
                _ => arr(f.kind, f.row_len()),
            };
            parts.push(format!("{}:{value}", json_str(&f.name)));
        }
        let obj = |names: &[String], v: &dyn Fn(usize) -> &'static str| {
            let kv: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("{}:{}", json_str(n), v(i))).collect();
            format!("{{{}}}", kv.join(","))
        };
        parts.push(format!("\"labels\":{}", obj(&self.labels, &|i| if i == 0 { "1" } else { "0" })));
        if !self.weights.is_empty() {
            parts.push(format!("\"weights\":{}", obj(&self.weights, &|_| "1.0")));
        }
        format!("{{{}}}", parts.join(","))
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Streams the JSON rows of a JSON Lines file to `f` with their 1-based line numbers, until `f`
/// says stop; blank lines and a leading byte-order mark are skipped. A malformed line, or a
/// message `f` returns about a row, is a [`DataError`] naming `file:line`.
pub(crate) fn for_each_json_row(
    path: &std::path::Path,
    mut f: impl FnMut(usize, serde_json::Value) -> Result<bool, String>,
) -> Result<(), DataError> {
    use std::io::BufRead;
    let error = |row: usize, message: String| DataError { file: path.to_path_buf(), row, message };
    let file = std::fs::File::open(path).map_err(|e| error(0, format!("cannot read: {e}")))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| error(i + 1, format!("cannot read: {e}")))?;
        let text = if i == 0 { line.trim_start_matches('\u{feff}') } else { &line };
        if text.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(text).map_err(|e| error(i + 1, format!("malformed JSON: {e}")))?;
        if !f(i + 1, v).map_err(|message| error(i + 1, message))? {
            break;
        }
    }
    Ok(())
}

/// Streams the rows of a split in either format (by extension), or of a folder's shards one
/// after another, to `f` as JSON values with their 1-based row numbers in their file, as
/// [`for_each_json_row`] does for JSON Lines; `f` returning `false` stops the stream.
pub fn for_each_row(
    path: &std::path::Path,
    mut f: impl FnMut(usize, serde_json::Value) -> Result<bool, String>,
) -> Result<(), DataError> {
    let mut go_on = true;
    for shard in shards(path)? {
        for_each_file_row(&shard, |row, value| {
            go_on = f(row, value)?;
            Ok(go_on)
        })?;
        if !go_on {
            break;
        }
    }
    Ok(())
}

fn for_each_file_row(
    path: &std::path::Path,
    mut f: impl FnMut(usize, serde_json::Value) -> Result<bool, String>,
) -> Result<(), DataError> {
    if DataFormat::of_path(path) == DataFormat::JsonLines {
        return for_each_json_row(path, f);
    }
    let mut rows = ParquetRows::open(path, None, &|_| String::new())?;
    while let Some((row, value)) = rows.next_row()? {
        let error = |message: String| DataError { file: path.to_path_buf(), row, message };
        if !f(row, value.map_err(error)?).map_err(error)? {
            break;
        }
    }
    Ok(())
}

/// What a split holds, before training reads it: rows that parse, and per label stream the rows
/// where it is positive.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LabelScan {
    pub rows: usize,
    pub positives: BTreeMap<String, usize>,
}

/// Counts the rows of a split (JSON Lines or Parquet) and the positives of `labels`, reading only each row's
/// `labels` object. Lines that do not parse are not counted (the loader reports them, with their
/// line, when it reaches them).
pub(crate) fn scan_labels(path: &std::path::Path, labels: &[&str]) -> Result<LabelScan, DataError> {
    scan(path, labels, usize::MAX)
}

/// Whether a split holds a row that parses (for Parquet: any row); reads up to the first one.
pub(crate) fn has_rows(path: &std::path::Path) -> Result<bool, DataError> {
    Ok(scan(path, &[], 1)?.rows > 0)
}

/// [`scan_labels`] for Parquet: every row counts; only the label columns the file has are read.
fn scan_parquet(path: &std::path::Path, labels: &[&str], max_rows: usize) -> Result<LabelScan, DataError> {
    let mut scan = LabelScan { rows: 0, positives: labels.iter().map(|l| (l.to_string(), 0)).collect() };
    let have = parquet::column_names(path)?;
    let wanted: Vec<String> = labels.iter().map(|l| format!("labels.{l}")).filter(|c| have.contains(c)).collect();
    if wanted.is_empty() || max_rows < usize::MAX {
        scan.rows = parquet::count_rows(path)?.min(max_rows);
        return Ok(scan);
    }
    let mut rows = ParquetRows::open(path, Some(&wanted), &|_| String::new())?;
    while let Some((_, value)) = rows.next_row()? {
        scan.rows += 1;
        let Ok(value) = value else { continue };
        for (name, count) in scan.positives.iter_mut() {
            if value["labels"][name.as_str()].as_f64().is_some_and(|v| v > 0.5) {
                *count += 1;
            }
        }
    }
    Ok(scan)
}

/// [`scan_labels`], stopping after `max_rows` rows, over a split's shards.
fn scan(path: &std::path::Path, labels: &[&str], max_rows: usize) -> Result<LabelScan, DataError> {
    let mut total = LabelScan { rows: 0, positives: labels.iter().map(|l| (l.to_string(), 0)).collect() };
    for shard in shards(path)? {
        if total.rows >= max_rows {
            break;
        }
        // usize::MAX stays "every row" (scan_parquet then reads the label columns)
        let left = if max_rows == usize::MAX { usize::MAX } else { max_rows - total.rows };
        let one = scan_file(&shard, labels, left)?;
        total.rows += one.rows;
        for (name, count) in one.positives {
            *total.positives.entry(name).or_default() += count;
        }
    }
    Ok(total)
}

/// [`scan`] of one file.
fn scan_file(path: &std::path::Path, labels: &[&str], max_rows: usize) -> Result<LabelScan, DataError> {
    use std::io::BufRead;
    if DataFormat::of_path(path) == DataFormat::Parquet {
        return scan_parquet(path, labels, max_rows);
    }
    #[derive(serde::Deserialize)]
    struct LabelsOnly {
        #[serde(default)]
        labels: BTreeMap<String, serde_json::Value>,
    }
    let error = |row: usize, message: String| DataError { file: path.to_path_buf(), row, message };
    let file = std::fs::File::open(path).map_err(|e| error(0, format!("cannot read: {e}")))?;
    let mut scan = LabelScan { rows: 0, positives: labels.iter().map(|l| (l.to_string(), 0)).collect() };
    let mut line = Vec::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line_no = 0;
    while scan.rows < max_rows {
        line.clear();
        line_no += 1;
        if reader.read_until(b'\n', &mut line).map_err(|e| error(line_no, format!("cannot read: {e}")))? == 0 {
            return Ok(scan);
        }
        let text = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&line);
        let Ok(row) = serde_json::from_slice::<LabelsOnly>(text) else { continue };
        scan.rows += 1;
        for (name, count) in scan.positives.iter_mut() {
            if row.labels.get(name).and_then(serde_json::Value::as_f64).is_some_and(|v| v > 0.5) {
                *count += 1;
            }
        }
    }
    Ok(scan)
}

/// Builds one batch from rows already parsed (serving): the row's index and the message of the
/// first invalid row. A row without `user` counts as user 0.
pub(crate) fn batch_from_rows(schema: &Schema, rows: &[serde_json::Value]) -> Result<HostBatch, (usize, String)> {
    let mut builder = row::BatchBuilder::new(schema, rows.len());
    for (i, row) in rows.iter().enumerate() {
        let mut row = row.clone();
        if let serde_json::Value::Object(obj) = &mut row {
            obj.entry("user").or_insert(serde_json::Value::from(0));
        }
        builder.append(schema, &row).map_err(|m| (i, m))?;
    }
    Ok(builder.take(schema))
}

/// One host-side batch, keyed by the program's slots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostBatch {
    pub len: usize,
    pub users: Vec<u64>,
    /// One column per program input, indexed by input slot (`Program::inputs`,
    /// [`Schema::inputs`]). A loader fills every slot its schema reads (all of them, unless the
    /// schema is [`Schema::reading_only`]); a batch made by hand may leave out inputs the program
    /// never reads.
    pub inputs: Vec<Option<Column>>,
    /// One per label stream, indexed like [`Schema::labels`] (so by `LabelId` for the program's
    /// streams).
    pub labels: Vec<Vec<f32>>,
}

/// One input's values in a batch: a row-major flat buffer and its full shape (batch axis first).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub data: ColumnData,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    Ids(Vec<i64>),
    /// Float inputs, side features and weight streams.
    Floats(Vec<f32>),
    /// Sequence masks: `[B, T]`.
    Mask(Vec<bool>),
}

impl Column {
    pub fn ids(data: Vec<i64>, shape: Vec<usize>) -> Column {
        Column { data: ColumnData::Ids(data), shape }
    }

    pub fn floats(data: Vec<f32>, shape: Vec<usize>) -> Column {
        Column { data: ColumnData::Floats(data), shape }
    }

    pub fn mask(data: Vec<bool>, shape: Vec<usize>) -> Column {
        Column { data: ColumnData::Mask(data), shape }
    }
}

/// A bad row (or an I/O failure, row 0) in a data file.
#[derive(Clone, Debug, PartialEq)]
pub struct DataError {
    pub file: PathBuf,
    /// 1-based line number; 0 when the error is not about one line.
    pub row: usize,
    pub message: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row {
            0 => write!(f, "{}: {}", self.file.display(), self.message),
            row => write!(f, "{}:{row}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for DataError {}

/// What a loader has read so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoaderStats {
    /// Valid rows delivered in batches (or pending in the next one).
    pub rows: usize,
    /// Rows rejected by validation.
    pub bad_rows: usize,
    /// The row number (1-based) of the last valid row delivered; 0 before the first.
    pub last_row: usize,
    /// The first [`MAX_KEPT_ERRORS`] bad rows.
    pub first_errors: Vec<DataError>,
}

pub(crate) const MAX_KEPT_ERRORS: usize = 20;
