//! Parquet data files: each row read as the JSON value the row validator reads (so both formats
//! share one validation path and one set of messages), and data sets written from JSON rows
//! ([`write`]).
//!
//! Reading streams row group by row group and only the columns asked for; memory holds one
//! row group's pages of those columns, never the file.

pub mod write;

use super::DataError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::Field;
use parquet::schema::types::Type;
use serde_json::{Map, Number, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Top-level columns whose names start like this are folded into one JSON object per prefix
/// (`labels.click` -> `{"labels": {"click": ..}}`), the shape the row validator reads.
const GROUPED: [&str; 2] = ["labels", "weights"];

/// The rows of one Parquet file as JSON objects, with 1-based row numbers.
pub struct ParquetRows {
    path: PathBuf,
    rows: RowIter<'static>,
    row: usize,
    total: usize,
    /// The row after each row group's last (cumulative row counts), to name a failing group.
    group_ends: Vec<usize>,
}

fn file_error(path: &Path, message: String) -> DataError {
    DataError { file: path.to_path_buf(), row: 0, message }
}

/// Opens and checks a file's footer; the reader knows the schema and row count.
fn open_reader(path: &Path) -> Result<SerializedFileReader<std::fs::File>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| file_error(path, format!("cannot open: {e}")))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(file_error(path, "is empty (0 bytes), not a Parquet file".into()));
    }
    SerializedFileReader::new(file)
        .map_err(|e| file_error(path, format!("not a readable Parquet file (truncated or corrupt?): {}", clean(&e))))
}

thread_local! {
    /// Set while [`quietly`] runs: the panic hook stays silent on this thread.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `Err` without the panic message on stderr: the `parquet`
/// crate panics on some corrupt pages, and a corrupt file is bad input, not a crash. The hook
/// is installed once and stays silent only on a thread inside `quietly`; every other panic is
/// reported as before.
fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                default(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result
}

/// A Parquet error as one line, without the crate's "Parquet error: " prefix.
fn clean(e: &parquet::errors::ParquetError) -> String {
    let text = e.to_string();
    text.strip_prefix("Parquet error: ").unwrap_or(&text).to_string()
}

/// The number of rows a Parquet file declares in its footer.
pub fn count_rows(path: &Path) -> Result<usize, DataError> {
    Ok(open_reader(path)?.metadata().file_metadata().num_rows().max(0) as usize)
}

/// The top-level column names of a Parquet file, in file order.
pub fn column_names(path: &Path) -> Result<Vec<String>, DataError> {
    let reader = open_reader(path)?;
    let names = reader.metadata().file_metadata().schema().get_fields().iter().map(|f| f.name().to_string()).collect();
    Ok(names)
}

impl ParquetRows {
    /// Opens `path` reading only the top-level columns `wanted` (all columns when `None`).
    /// A wanted column the file lacks is an error naming it (`describe` says what it should
    /// hold); a file that is empty, truncated or not Parquet is an error too.
    pub fn open(
        path: &Path,
        wanted: Option<&[String]>,
        describe: &dyn Fn(&str) -> String,
    ) -> Result<ParquetRows, DataError> {
        let reader = open_reader(path)?;
        let total = reader.metadata().file_metadata().num_rows().max(0) as usize;
        let group_ends = reader
            .metadata()
            .row_groups()
            .iter()
            .scan(0usize, |end, g| {
                *end = end.saturating_add(g.num_rows().max(0) as usize);
                Some(*end)
            })
            .collect();
        let root = reader.metadata().file_metadata().schema().clone();
        let projection = match wanted {
            None => None,
            Some(names) => {
                let mut fields: Vec<Arc<Type>> = vec![];
                let mut missing = vec![];
                for name in names {
                    match root.get_fields().iter().find(|f| f.name() == name) {
                        Some(f) => fields.push(f.clone()),
                        None => missing.push(format!("`{name}` ({})", describe(name))),
                    }
                }
                if !missing.is_empty() {
                    let have: Vec<&str> = root.get_fields().iter().map(|f| f.name()).collect();
                    return Err(file_error(
                        path,
                        format!(
                            "missing column {}; the file has: {}",
                            missing.join(", missing column "),
                            have.join(", ")
                        ),
                    ));
                }
                Some(
                    Type::group_type_builder(root.name())
                        .with_fields(fields)
                        .build()
                        .map_err(|e| file_error(path, clean(&e)))?,
                )
            }
        };
        let rows = RowIter::from_file_into(Box::new(reader))
            .project(projection)
            .map_err(|e| file_error(path, format!("cannot read the columns: {}", clean(&e))))?;
        Ok(ParquetRows { path: path.to_path_buf(), rows, row: 0, total, group_ends })
    }

    /// Rows the footer declares.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The next row: its 1-based number and its JSON object, or why this row cannot become one
    /// (a non-finite float; the caller may skip it). `Err` is a file that cannot be read on
    /// (corrupt pages); `Ok(None)` is the end.
    #[allow(clippy::type_complexity)]
    pub(crate) fn next_row(&mut self) -> Result<Option<(usize, Result<Value, String>)>, DataError> {
        let next = quietly(|| self.rows.next());
        let row = self.row + 1;
        let group = self.group_ends.iter().position(|end| row <= *end);
        let within = match group {
            Some(g) => format!(
                "row group {g} (rows {}-{})",
                if g == 0 { 1 } else { self.group_ends[g - 1] + 1 },
                self.group_ends[g]
            ),
            None => "past the rows the footer declares".to_string(),
        };
        let error = |message: String| DataError { file: self.path.clone(), row, message };
        match next {
            Err(_) => Err(error(format!("cannot decode {within}: the file is corrupt"))),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => Err(error(format!("cannot read {within}: {}", clean(&e)))),
            Ok(Some(Ok(r))) => {
                self.row = row;
                Ok(Some((row, row_value(r.into_columns()))))
            }
        }
    }
}

/// A Parquet row as the JSON object of the same row in JSON Lines.
fn row_value(columns: Vec<(String, Field)>) -> Result<Value, String> {
    let mut obj = Map::with_capacity(columns.len());
    for (name, field) in columns {
        let group = name.split_once('.').filter(|(g, _)| GROUPED.contains(g));
        let v = match field_value(field) {
            Ok(v) => v,
            Err((path, x)) => {
                let index: String = path.iter().rev().map(|i| format!("[{i}]")).collect();
                return Err(format!("`{name}{index}`: {x} is not a finite 32-bit float"));
            }
        };
        match group {
            Some((g, stream)) => {
                let v = match v {
                    Value::Bool(b) => Value::from(u8::from(b)),
                    v => v,
                };
                let entry = obj.entry(g.to_string()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(stream.to_string(), v);
                }
            }
            None => {
                obj.insert(name, v);
            }
        }
    }
    Ok(Value::Object(obj))
}

fn float(x: f64) -> Result<Value, (Vec<usize>, f64)> {
    Number::from_f64(x).map(Value::Number).ok_or((vec![], x))
}

/// A Parquet value as JSON; a non-finite float is `Err` with its list indices (innermost
/// first). Dates and timestamps become their integer counts; decimals and binary, text.
fn field_value(f: Field) -> Result<Value, (Vec<usize>, f64)> {
    Ok(match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(b),
        Field::Byte(n) => n.into(),
        Field::Short(n) => n.into(),
        Field::Int(n) => n.into(),
        Field::Long(n) => n.into(),
        Field::UByte(n) => n.into(),
        Field::UShort(n) => n.into(),
        Field::UInt(n) => n.into(),
        Field::ULong(n) => n.into(),
        Field::Float16(x) => float(f64::from(x))?,
        Field::Float(x) => float(f64::from(x))?,
        Field::Double(x) => float(x)?,
        Field::Date(n) | Field::TimeMillis(n) => n.into(),
        Field::TimeMicros(n) | Field::TimestampMillis(n) | Field::TimestampMicros(n) => n.into(),
        Field::Str(s) => Value::String(s),
        Field::Decimal(_) | Field::Bytes(_) => Value::String(f.to_string()),
        Field::Group(row) => {
            let mut obj = Map::new();
            for (k, v) in row.into_columns() {
                obj.insert(k, field_value(v)?);
            }
            Value::Object(obj)
        }
        Field::ListInternal(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, e) in list.elements().iter().enumerate() {
                out.push(field_value(e.clone()).map_err(|(mut path, x)| {
                    path.push(i);
                    (path, x)
                })?);
            }
            Value::Array(out)
        }
        Field::MapInternal(map) => {
            let mut obj = Map::new();
            for (k, v) in map.entries() {
                let key = match k {
                    Field::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                obj.insert(key, field_value(v.clone())?);
            }
            Value::Object(obj)
        }
    })
}
