//! Writing data sets as Parquet (and back): a JSON Lines file becomes one Parquet file whose
//! columns are inferred from all its rows, in two passes (types, then data) with memory bounded
//! by one row group.
//!
//! Each top-level key becomes a column of the same name; the `labels` and `weights` objects
//! become one column per stream (`labels.click`). Integers are INT64, other numbers DOUBLE
//! (exact, so both formats load to the same batches), strings UTF-8 text, booleans BOOLEAN;
//! arrays are LIST columns (nested for arrays of arrays). A key missing from some rows, or null,
//! makes its column optional.

use super::super::{for_each_json_row, DataError};
use super::ParquetRows;
use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Rows per row group written.
pub(crate) const ROW_GROUP_ROWS: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leaf {
    /// Only nulls seen.
    Unknown,
    Bool,
    Int,
    Float,
    Text,
}

impl Leaf {
    /// What a message calls these values.
    fn describe(self) -> &'static str {
        match self {
            Leaf::Unknown => "null",
            Leaf::Bool => "boolean",
            Leaf::Int => "integer",
            Leaf::Float => "float",
            Leaf::Text => "string",
        }
    }
}

/// One column's inferred type.
struct Column {
    name: String,
    /// List nesting, once a scalar has been seen.
    depth: Option<usize>,
    /// The least nesting that arrays seen so far imply.
    min_depth: usize,
    leaf: Leaf,
    /// Rows holding a non-null value.
    present: usize,
    elements_nullable: bool,
}

/// Each row's columns: top-level keys, with `labels` and `weights` objects flattened.
fn columns_of(row: &Value) -> Result<Vec<(String, &Value)>, String> {
    let Value::Object(obj) = row else {
        return Err("expected a JSON object per line".into());
    };
    let mut out = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("labels" | "weights", Value::Object(m)) => {
                out.extend(m.iter().map(|(s, x)| (format!("{k}.{s}"), x)));
            }
            _ => out.push((k.clone(), v)),
        }
    }
    Ok(out)
}

impl Column {
    fn observe(&mut self, v: &Value, level: usize) -> Result<(), String> {
        let name = &self.name;
        let leaf = match v {
            Value::Null => {
                if level > 0 {
                    self.elements_nullable = true;
                }
                return Ok(());
            }
            Value::Array(items) => {
                if self.depth.is_some_and(|d| d <= level) {
                    return Err(format!("`{name}`: an array here, a single value in earlier rows"));
                }
                self.min_depth = self.min_depth.max(level + 1);
                return items.iter().try_for_each(|x| self.observe(x, level + 1));
            }
            Value::Object(_) => return Err(format!("`{name}`: objects cannot be stored as a column")),
            Value::Bool(_) => Leaf::Bool,
            Value::Number(n) if n.is_i64() => Leaf::Int,
            Value::Number(_) => Leaf::Float,
            Value::String(_) => Leaf::Text,
        };
        if self.depth.is_some_and(|d| d != level) || self.min_depth > level {
            return Err(format!("`{name}`: values nested differently from earlier rows"));
        }
        self.depth = Some(level);
        self.leaf = match (self.leaf, leaf) {
            (a, b) if a == b => a,
            (Leaf::Unknown, b) => b,
            (Leaf::Int, Leaf::Float) | (Leaf::Float, Leaf::Int) => Leaf::Float,
            (a, b) => {
                return Err(format!(
                    "`{name}`: holds {} values and, in earlier rows, {} values",
                    b.describe(),
                    a.describe()
                ))
            }
        };
        Ok(())
    }

    fn depth(&self) -> usize {
        self.depth.unwrap_or(self.min_depth)
    }

    fn parquet_type(&self, rows: usize) -> Result<Type, parquet::errors::ParquetError> {
        let top = if self.present < rows { Repetition::OPTIONAL } else { Repetition::REQUIRED };
        let elements = if self.elements_nullable { Repetition::OPTIONAL } else { Repetition::REQUIRED };
        let (physical, logical) = match self.leaf {
            Leaf::Unknown | Leaf::Int => (Physical::INT64, None),
            Leaf::Float => (Physical::DOUBLE, None),
            Leaf::Bool => (Physical::BOOLEAN, None),
            Leaf::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        };
        let mut node = Type::primitive_type_builder(if self.depth() == 0 { &self.name } else { "element" }, physical)
            .with_repetition(if self.depth() == 0 { top } else { elements })
            .with_logical_type(logical)
            .build()?;
        for level in (0..self.depth()).rev() {
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(node)])
                .build()?;
            node = Type::group_type_builder(if level == 0 { &self.name } else { "element" })
                .with_repetition(if level == 0 { top } else { elements })
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .build()?;
        }
        Ok(node)
    }
}

enum Values {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Text(Vec<ByteArray>),
}

/// One column's buffered levels and values for the row group being written.
struct Shredded {
    depth: usize,
    nullable: bool,
    elements_nullable: bool,
    defs: Vec<i16>,
    reps: Vec<i16>,
    values: Values,
}

impl Shredded {
    fn new(c: &Column, rows: usize) -> Shredded {
        let values = match c.leaf {
            Leaf::Unknown | Leaf::Int => Values::Int(vec![]),
            Leaf::Float => Values::Float(vec![]),
            Leaf::Bool => Values::Bool(vec![]),
            Leaf::Text => Values::Text(vec![]),
        };
        Shredded {
            depth: c.depth(),
            nullable: c.present < rows,
            elements_nullable: c.elements_nullable,
            defs: vec![],
            reps: vec![],
            values,
        }
    }

    /// Appends one value's definition and repetition levels (Dremel shredding) and leaves.
    fn shred(&mut self, v: Option<&Value>, level: usize, mut def: i16, rep: i16) {
        let nullable = if level == 0 { self.nullable } else { self.elements_nullable };
        let present = v.filter(|v| !v.is_null());
        if nullable {
            if present.is_none() {
                self.defs.push(def);
                self.reps.push(rep);
                return;
            }
            def += 1;
        }
        let Some(v) = present else { return };
        if level < self.depth {
            let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
            if items.is_empty() {
                self.defs.push(def);
                self.reps.push(rep);
            }
            for (i, x) in items.iter().enumerate() {
                self.shred(Some(x), level + 1, def + 1, if i == 0 { rep } else { level as i16 + 1 });
            }
            return;
        }
        self.defs.push(def);
        self.reps.push(rep);
        match &mut self.values {
            Values::Bool(b) => b.push(v.as_bool().unwrap_or_default()),
            Values::Int(b) => b.push(v.as_i64().unwrap_or_default()),
            Values::Float(b) => b.push(v.as_f64().unwrap_or_default()),
            Values::Text(b) => b.push(ByteArray::from(v.as_str().unwrap_or_default())),
        }
    }

    fn write(&mut self, w: &mut ColumnWriter<'_>) -> Result<(), parquet::errors::ParquetError> {
        let defs = (self.nullable || self.elements_nullable || self.depth > 0).then_some(self.defs.as_slice());
        let reps = (self.depth > 0).then_some(self.reps.as_slice());
        match (&self.values, w) {
            (Values::Bool(v), ColumnWriter::BoolColumnWriter(w)) => w.write_batch(v, defs, reps)?,
            (Values::Int(v), ColumnWriter::Int64ColumnWriter(w)) => w.write_batch(v, defs, reps)?,
            (Values::Float(v), ColumnWriter::DoubleColumnWriter(w)) => w.write_batch(v, defs, reps)?,
            (Values::Text(v), ColumnWriter::ByteArrayColumnWriter(w)) => w.write_batch(v, defs, reps)?,
            _ => return Err(parquet::errors::ParquetError::General("column type mismatch".into())),
        };
        self.defs.clear();
        self.reps.clear();
        match &mut self.values {
            Values::Bool(v) => v.clear(),
            Values::Int(v) => v.clear(),
            Values::Float(v) => v.clear(),
            Values::Text(v) => v.clear(),
        }
        Ok(())
    }
}

/// Writes the rows of the JSON Lines file `src` as the Parquet file `dst` (snappy); the number
/// of rows. A row that is not an object, or a key whose values change kind between rows, is an
/// error naming `src:line`.
pub fn jsonl_to_parquet(src: &Path, dst: &Path) -> Result<usize, DataError> {
    let mut columns: Vec<Column> = vec![];
    let mut rows = 0;
    for_each_json_row(src, |_, row| {
        rows += 1;
        for (name, v) in columns_of(&row)? {
            let i = match columns.iter().position(|c| c.name == name) {
                Some(i) => i,
                None => {
                    columns.push(Column {
                        name,
                        depth: None,
                        min_depth: 0,
                        leaf: Leaf::Unknown,
                        present: 0,
                        elements_nullable: false,
                    });
                    columns.len() - 1
                }
            };
            columns[i].present += usize::from(!v.is_null());
            columns[i].observe(v, 0)?;
        }
        Ok(true)
    })?;
    let out_error = |message: String| DataError { file: dst.to_path_buf(), row: 0, message };
    let parquet_error =
        |e: parquet::errors::ParquetError| out_error(format!("cannot write Parquet: {}", super::clean(&e)));
    let fields = columns
        .iter()
        .map(|c| c.parquet_type(rows).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(parquet_error)?;
    let schema = Type::group_type_builder("recspec").with_fields(fields).build().map_err(parquet_error)?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    let file = std::fs::File::create(dst).map_err(|e| out_error(format!("cannot create: {e}")))?;
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props)).map_err(parquet_error)?;
    let mut shredded: Vec<Shredded> = columns.iter().map(|c| Shredded::new(c, rows)).collect();
    let mut pending = 0;
    let flush = |shredded: &mut Vec<Shredded>,
                 writer: &mut SerializedFileWriter<std::fs::File>|
     -> Result<(), parquet::errors::ParquetError> {
        let mut group = writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = group.next_column()? {
            shredded[i].write(col.untyped())?;
            col.close()?;
            i += 1;
        }
        group.close()?;
        Ok(())
    };
    let mut write_error = None;
    for_each_json_row(src, |_, row| {
        let cols = columns_of(&row)?;
        for (c, s) in columns.iter().zip(&mut shredded) {
            s.shred(cols.iter().find(|(n, _)| *n == c.name).map(|(_, v)| *v), 0, 0, 0);
        }
        pending += 1;
        if pending == ROW_GROUP_ROWS {
            pending = 0;
            if let Err(e) = flush(&mut shredded, &mut writer) {
                write_error = Some(e);
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if let Some(e) = write_error {
        return Err(parquet_error(e));
    }
    if pending > 0 {
        flush(&mut shredded, &mut writer).map_err(parquet_error)?;
    }
    writer.close().map_err(parquet_error)?;
    Ok(rows)
}

/// Writes the rows of the Parquet file `src` as the JSON Lines file `dst`, `labels.x` and
/// `weights.x` columns folded back into objects; the number of rows.
pub fn parquet_to_jsonl(src: &Path, dst: &Path) -> Result<usize, DataError> {
    let mut rows = ParquetRows::open(src, None, &|_| String::new())?;
    let out_error =
        |e: std::io::Error| DataError { file: dst.to_path_buf(), row: 0, message: format!("cannot write: {e}") };
    let mut out = std::io::BufWriter::new(std::fs::File::create(dst).map_err(out_error)?);
    let mut n = 0;
    while let Some((row, value)) = rows.next_row()? {
        let value = value.map_err(|message| DataError { file: src.to_path_buf(), row, message })?;
        serde_json::to_writer(&mut out, &value).map_err(|e| out_error(e.into()))?;
        out.write_all(b"\n").map_err(out_error)?;
        n += 1;
    }
    out.flush().map_err(out_error)?;
    Ok(n)
}
