//! Tabular input files (the event log, the user and item tables) behind one reader interface:
//! [`open`] resolves the columns a mapping needs against the file once, and a
//! [`RecordReader`] then yields each record's values of exactly those columns, in that order,
//! with its row number. CSV, TSV, JSON Lines and Parquet are implemented; Parquet reads only
//! the wanted columns.
//!
//! Row numbers are 1-based. In JSON Lines a row is a line (blank lines are skipped but
//! counted); in Parquet, a row in file order. In CSV and TSV a row is a record, the header being row 1: the line number, unless
//! blank lines or quoted line breaks come before the record.

use super::ImportError;
use crate::data::{DataError, ParquetRows};
use crate::files::FileError;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// A text layout of tabular data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header line and `"` quoting.
    Csv,
    /// Tab-separated, with a header line and no quoting (a `"` is an ordinary character).
    Tsv,
    /// One JSON object per line; column names are keys.
    JsonLines,
    /// Apache Parquet; top-level columns, values as text (lists of values as a token sequence).
    Parquet,
}

impl Format {
    pub const NAMES: [&'static str; 4] = ["csv", "tsv", "jsonl", "parquet"];

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "jsonl" => Some(Format::JsonLines),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The format a file's extension implies: `.csv`; `.tsv`, `.tab` and RecBole's atomic files
    /// `.inter`, `.user`, `.item`; `.jsonl`, `.ndjson`; `.parquet`.
    pub(crate) fn of_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" | "inter" | "user" | "item" => Some(Format::Tsv),
            "jsonl" | "ndjson" => Some(Format::JsonLines),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// How a mapping says one file is laid out; unset parts follow from the file name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub format: Option<Format>,
    /// A single ASCII byte; for CSV and TSV only.
    pub delimiter: Option<u8>,
}

/// A column a reader must deliver, and who asked for it (for "no such column" messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub name: String,
    /// Where the mapping names it: `[labels] click (map.toml:7)`.
    pub origin: String,
}

/// The records of one file, each as the values of the wanted columns.
pub trait RecordReader {
    /// Reads the next record's values into `values` (cleared first) and returns its row number,
    /// or `None` at the end. A record that cannot be read is `ImportError::Row` (the caller
    /// may skip it and go on); any other error ends the file.
    fn next_record(&mut self, values: &mut Vec<String>) -> Result<Option<usize>, ImportError>;
}

/// Opens `path` for reading the `wanted` columns. Fails when the format is unknown, the file
/// is empty or its header lacks a wanted column.
pub fn open(path: &Path, layout: &Layout, wanted: &[Wanted]) -> Result<Box<dyn RecordReader>, ImportError> {
    let format = layout.format.or_else(|| Format::of_path(path)).ok_or_else(|| ImportError::Input {
        file: path.to_path_buf(),
        message:
            "cannot tell the format from the file name; set `format` to one of csv, tsv, jsonl, parquet in the mapping"
                .into(),
    })?;
    if format == Format::Parquet {
        return Parquet::open(path, wanted).map(|r| Box::new(r) as Box<dyn RecordReader>);
    }
    let file = File::open(path).map_err(FileError::at("read", path))?;
    let reader = BufReader::with_capacity(1 << 16, file);
    match format {
        Format::JsonLines => Ok(Box::new(JsonLines {
            path: path.to_path_buf(),
            lines: reader,
            line: vec![],
            line_no: 0,
            wanted: wanted.to_vec(),
        })),
        Format::Parquet => unreachable!("opened above"),
        Format::Csv | Format::Tsv => {
            let delimiter = layout.delimiter.unwrap_or(if format == Format::Csv { b',' } else { b'\t' });
            Delimited::open(path, reader, format == Format::Csv, delimiter, wanted)
                .map(|r| Box::new(r) as Box<dyn RecordReader>)
        }
    }
}

fn bad_row(path: &Path, row: usize, message: String) -> ImportError {
    ImportError::Row(DataError { file: path.to_path_buf(), row, message })
}

struct Delimited {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    /// Header position of each wanted column.
    index: Vec<usize>,
    width: usize,
    record: csv::ByteRecord,
}

impl Delimited {
    fn open(
        path: &Path,
        input: BufReader<File>,
        quoting: bool,
        delimiter: u8,
        wanted: &[Wanted],
    ) -> Result<Delimited, ImportError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(quoting)
            .flexible(true)
            .has_headers(true)
            .from_reader(input);
        let input_error = |message: String| ImportError::Input { file: path.to_path_buf(), message };
        let header = reader.byte_headers().map_err(|e| csv_error(path, 1, e))?.clone();
        let mut names = vec![];
        for (i, raw) in header.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| input_error("the header line is not UTF-8".into()))?;
            names.push(if i == 0 { name.trim_start_matches('\u{feff}') } else { name });
        }
        if names.is_empty() || names == [""] {
            return Err(input_error("is empty: expected a header line naming the columns".into()));
        }
        let mut index = vec![];
        for w in wanted {
            let hits: Vec<usize> = names.iter().enumerate().filter(|(_, n)| **n == w.name).map(|(i, _)| i).collect();
            match hits[..] {
                [i] => index.push(i),
                [] => {
                    return Err(input_error(format!(
                        "no column `{}` in the header (named by {}); the columns are: {}",
                        w.name,
                        w.origin,
                        names.join(", ")
                    )))
                }
                _ => {
                    return Err(input_error(format!(
                        "the header names column `{}` {} times (named by {})",
                        w.name,
                        hits.len(),
                        w.origin
                    )))
                }
            }
        }
        Ok(Delimited { path: path.to_path_buf(), reader, index, width: names.len(), record: csv::ByteRecord::new() })
    }
}

fn csv_error(path: &Path, row: usize, e: csv::Error) -> ImportError {
    let row = e.position().map(|p| p.record() as usize + 1).unwrap_or(row);
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8", err.field() + 1),
        _ => format!("cannot parse the record: {e}"),
    };
    match e.into_kind() {
        csv::ErrorKind::Io(source) => FileError::at("read", path)(source).into(),
        _ => bad_row(path, row, message),
    }
}

impl RecordReader for Delimited {
    fn next_record(&mut self, values: &mut Vec<String>) -> Result<Option<usize>, ImportError> {
        values.clear();
        let more = self.reader.read_byte_record(&mut self.record).map_err(|e| csv_error(&self.path, 0, e))?;
        if !more {
            return Ok(None);
        }
        let row = self.record.position().map(|p| p.record() as usize + 1).unwrap_or(0);
        if self.record.len() != self.width {
            let n = self.record.len();
            return Err(bad_row(&self.path, row, format!("has {n} fields, the header has {}", self.width)));
        }
        for &i in &self.index {
            let text = std::str::from_utf8(&self.record[i])
                .map_err(|_| bad_row(&self.path, row, format!("field {} is not UTF-8", i + 1)))?;
            values.push(text.to_string());
        }
        Ok(Some(row))
    }
}

struct JsonLines {
    path: PathBuf,
    lines: BufReader<File>,
    line: Vec<u8>,
    line_no: usize,
    wanted: Vec<Wanted>,
}

/// A JSON value as column text: strings as they are, numbers and booleans as written, `null`
/// as empty text, an array of those as its elements joined by spaces (a token sequence).
pub(crate) fn json_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> =
                items.iter().map(|x| if x.is_array() { None } else { json_text(x) }).collect();
            Some(parts?.join(" "))
        }
        Value::Object(_) => None,
    }
}

impl RecordReader for JsonLines {
    fn next_record(&mut self, values: &mut Vec<String>) -> Result<Option<usize>, ImportError> {
        values.clear();
        loop {
            self.line.clear();
            let n = self.lines.read_until(b'\n', &mut self.line).map_err(FileError::at("read", &self.path))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if !self.line.iter().all(u8::is_ascii_whitespace) {
                break;
            }
        }
        let row = self.line_no;
        let text = std::str::from_utf8(&self.line).map_err(|_| bad_row(&self.path, row, "is not UTF-8".into()))?;
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text.trim_start_matches('\u{feff}'))
                .map_err(|e| bad_row(&self.path, row, format!("is not a JSON object: {e}")))?;
        for w in &self.wanted {
            let v = object
                .get(&w.name)
                .ok_or_else(|| bad_row(&self.path, row, format!("has no key `{}` (named by {})", w.name, w.origin)))?;
            let text = json_text(v).ok_or_else(|| {
                bad_row(&self.path, row, format!("key `{}` holds an object or nested array, not a value", w.name))
            })?;
            values.push(text);
        }
        Ok(Some(row))
    }
}

struct Parquet {
    path: PathBuf,
    rows: ParquetRows,
    wanted: Vec<Wanted>,
}

impl Parquet {
    fn open(path: &Path, wanted: &[Wanted]) -> Result<Parquet, ImportError> {
        let input_error = |e: DataError| ImportError::Input { file: path.to_path_buf(), message: e.message };
        let names = crate::data::parquet_columns(path).map_err(input_error)?;
        if let Some(w) = wanted.iter().find(|w| !names.contains(&w.name)) {
            return Err(ImportError::Input {
                file: path.to_path_buf(),
                message: format!(
                    "no column `{}` (named by {}); the columns are: {}",
                    w.name,
                    w.origin,
                    names.join(", ")
                ),
            });
        }
        let mut columns: Vec<String> = vec![];
        for w in wanted {
            if !columns.contains(&w.name) {
                columns.push(w.name.clone());
            }
        }
        let rows = ParquetRows::open(path, Some(&columns), &|_| String::new()).map_err(input_error)?;
        Ok(Parquet { path: path.to_path_buf(), rows, wanted: wanted.to_vec() })
    }
}

impl RecordReader for Parquet {
    fn next_record(&mut self, values: &mut Vec<String>) -> Result<Option<usize>, ImportError> {
        values.clear();
        let next = self.rows.next_row().map_err(|e| ImportError::Input {
            file: self.path.clone(),
            message: format!("row {}: {}", e.row, e.message),
        })?;
        let Some((row, object)) = next else { return Ok(None) };
        let object = object.map_err(|m| bad_row(&self.path, row, m))?;
        for w in &self.wanted {
            let text = json_text(&object[w.name.as_str()]).ok_or_else(|| {
                bad_row(&self.path, row, format!("column `{}` holds a struct or nested list, not a value", w.name))
            })?;
            values.push(text);
        }
        Ok(Some(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(names: &[&str]) -> Vec<Wanted> {
        names.iter().map(|n| Wanted { name: n.to_string(), origin: "a test".into() }).collect()
    }

    fn read_all(path: impl AsRef<Path>, layout: &Layout, names: &[&str]) -> Result<Vec<(usize, Vec<String>)>, String> {
        let mut r = open(path.as_ref(), layout, &wanted(names)).map_err(|e| e.to_string())?;
        let mut out = vec![];
        let mut values = vec![];
        while let Some(row) = r.next_record(&mut values).map_err(|e| e.to_string())? {
            out.push((row, values.clone()));
        }
        Ok(out)
    }

    /// A file holding `text`, named `recspec-import-events-…-{name}`, removed when dropped.
    fn temp(name: &str, text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().prefix("recspec-import-events-").suffix(&format!("-{name}")).tempfile();
        let file = file.unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn csv_tsv_and_json_lines_project_the_wanted_columns_with_line_numbers() {
        let csv = temp("a.csv", "\u{feff}u,i,\"t\"\n1,\"x, y\",5\n\n2,z,6\n");
        let rows = read_all(&csv, &Layout::default(), &["t", "i"]).unwrap();
        assert_eq!(rows, vec![(2, vec!["5".into(), "x, y".into()]), (3, vec!["6".into(), "z".into()])], "records");
        let tsv = temp("a.inter", "u:token\ti:token\n1\t\"q\n");
        assert_eq!(read_all(&tsv, &Layout::default(), &["i:token"]).unwrap(), vec![(2, vec!["\"q".to_string()])]);
        let jsonl = temp(
            "a.jsonl",
            "{\"u\": 1, \"g\": [\"A\", \"B\"], \"n\": null}\n\n{\"u\": \"2\", \"g\": [], \"n\": 1.5}\n",
        );
        let rows = read_all(&jsonl, &Layout::default(), &["u", "g", "n"]).unwrap();
        assert_eq!(rows[0], (1, vec!["1".into(), "A B".into(), "".into()]));
        assert_eq!(rows[1], (3, vec!["2".into(), "".into(), "1.5".into()]));
    }

    #[test]
    fn missing_columns_empty_files_and_bad_records_are_named() {
        let csv = temp("b.csv", "u,i\n1,2\n3\n");
        let e = read_all(&csv, &Layout::default(), &["u", "x"]).unwrap_err();
        assert!(e.ends_with("b.csv: no column `x` in the header (named by a test); the columns are: u, i"), "{e}");
        let e = read_all(&csv, &Layout::default(), &["u"]).unwrap_err();
        assert!(e.ends_with("b.csv:3: has 1 fields, the header has 2"), "{e}");
        let e = read_all(temp("c.csv", ""), &Layout::default(), &["u"]).unwrap_err();
        assert!(e.ends_with("c.csv: is empty: expected a header line naming the columns"), "{e}");
        let e = read_all(temp("d.jsonl", "{\"u\": 1}\n[1]\n"), &Layout::default(), &["u"]).unwrap_err();
        assert!(e.contains("d.jsonl:2: is not a JSON object"), "{e}");
        let bytes = temp("h.jsonl", "");
        std::fs::write(&bytes, b"{\"u\": 1}\n{\"u\": \"\xff\"}\n{\"u\": 3}\n").unwrap();
        let mut r = open(bytes.path(), &Layout::default(), &wanted(&["u"])).unwrap();
        let mut values = vec![];
        assert_eq!(r.next_record(&mut values).unwrap(), Some(1));
        assert!(r.next_record(&mut values).unwrap_err().to_string().ends_with("h.jsonl:2: is not UTF-8"));
        assert_eq!(r.next_record(&mut values).unwrap(), Some(3), "reading goes on after a bad row");
        let e = read_all(temp("e.jsonl", "{\"v\": 1}\n"), &Layout::default(), &["u"]).unwrap_err();
        assert!(e.ends_with("e.jsonl:1: has no key `u` (named by a test)"), "{e}");
        let e = read_all(temp("f.txt", "u\n"), &Layout::default(), &["u"]).unwrap_err();
        assert!(e.contains("cannot tell the format"), "{e}");
        let semicolons = Layout { format: Some(Format::Csv), delimiter: Some(b';') };
        assert_eq!(read_all(temp("g.txt", "u;i\n1;2\n"), &semicolons, &["i"]).unwrap(), vec![(2, vec!["2".into()])]);
    }
}
