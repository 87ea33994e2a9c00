//! The streaming loader: reads a JSON Lines file line by line into batches of validated rows.

use super::row::BatchBuilder;
use super::{DataError, HostBatch, LoaderStats, Schema, MAX_KEPT_ERRORS};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest accepted line; longer lines are bad rows (memory stays bounded by this).
pub const MAX_LINE_BYTES: usize = 64 << 20;

enum Line {
    End,
    Text,
    TooLong,
}

/// Streams a data file: memory holds one line and one batch, never the file.
pub struct Loader {
    path: PathBuf,
    reader: BufReader<File>,
    schema: Schema,
    batch_size: usize,
    skip_bad_rows: bool,
    line_no: usize,
    done: bool,
    line: Vec<u8>,
    builder: BatchBuilder,
    stats: LoaderStats,
}

fn io_error(path: &Path, row: usize, what: &str, e: io::Error) -> DataError {
    DataError { file: path.to_path_buf(), row, message: format!("{what}: {e}") }
}

fn open_reader(path: &Path) -> Result<BufReader<File>, DataError> {
    let file = File::open(path).map_err(|e| io_error(path, 0, "cannot open", e))?;
    Ok(BufReader::with_capacity(1 << 16, file))
}

/// Reads one line into `buf` (newline included); discards the rest of an over-long line.
fn read_line(reader: &mut BufReader<File>, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let n = reader.by_ref().take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
        buf.clear();
        loop {
            let avail = reader.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            match avail.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    reader.consume(p + 1);
                    break;
                }
                None => {
                    let l = avail.len();
                    reader.consume(l);
                }
            }
        }
        return Ok(Line::TooLong);
    }
    Ok(Line::Text)
}

/// Counts the non-blank lines of a file (rows, valid or not) without parsing them.
pub fn count_rows(path: &Path) -> Result<usize, DataError> {
    let mut reader = open_reader(path)?;
    let mut buf = vec![];
    let mut rows = 0;
    let mut line_no = 0;
    loop {
        line_no += 1;
        match read_line(&mut reader, &mut buf).map_err(|e| io_error(path, line_no, "cannot read", e))? {
            Line::End => return Ok(rows),
            Line::TooLong => rows += 1,
            Line::Text => rows += usize::from(!buf.iter().all(u8::is_ascii_whitespace)),
        }
    }
}

impl Loader {
    /// Opens a data file. Errors (row 0) are I/O errors and a zero batch size.
    pub fn open(path: &Path, schema: &Schema, batch_size: usize, skip_bad_rows: bool) -> Result<Loader, DataError> {
        if batch_size == 0 {
            return Err(DataError {
                file: path.to_path_buf(),
                row: 0,
                message: "batch size must be at least 1".into(),
            });
        }
        let reader = open_reader(path)?;
        Ok(Loader {
            path: path.to_path_buf(),
            reader,
            schema: schema.clone(),
            batch_size,
            skip_bad_rows,
            line_no: 0,
            done: false,
            line: vec![],
            builder: BatchBuilder::new(schema, batch_size),
            stats: LoaderStats::default(),
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn stats(&self) -> &LoaderStats {
        &self.stats
    }

    /// The next batch of up to `batch_size` valid rows; `Ok(None)` at the end of the file.
    ///
    /// Without `skip_bad_rows` the first bad row is returned as `Err` (the valid rows read before
    /// it stay pending, so calling again continues after the bad line). With `skip_bad_rows` bad
    /// rows are counted in [`Loader::stats`] and skipped. An I/O error ends the stream.
    pub fn next_batch(&mut self) -> Result<Option<HostBatch>, DataError> {
        while !self.done && self.builder.len() < self.batch_size {
            self.line_no += 1;
            let read = read_line(&mut self.reader, &mut self.line);
            let message = match read {
                Err(e) => {
                    self.done = true;
                    return Err(io_error(&self.path, self.line_no, "cannot read", e));
                }
                Ok(Line::End) => {
                    self.done = true;
                    break;
                }
                Ok(Line::TooLong) => Some(format!("line is longer than {MAX_LINE_BYTES} bytes")),
                Ok(Line::Text) => self.parse_line(),
            };
            if let Some(message) = message {
                let err = DataError { file: self.path.clone(), row: self.line_no, message };
                self.stats.bad_rows += 1;
                if self.stats.first_errors.len() < MAX_KEPT_ERRORS {
                    self.stats.first_errors.push(err.clone());
                }
                if !self.skip_bad_rows {
                    return Err(err);
                }
            }
        }
        if self.builder.len() == 0 {
            return Ok(None);
        }
        Ok(Some(self.builder.take(&self.schema)))
    }

    /// Validates the current line into the builder; the error message of a bad row.
    fn parse_line(&mut self) -> Option<String> {
        let text = match std::str::from_utf8(&self.line) {
            Ok(t) => t,
            Err(e) => return Some(format!("line is not valid UTF-8: {e}")),
        };
        let text = if self.line_no == 1 { text.trim_start_matches('\u{feff}') } else { text };
        if text.trim().is_empty() {
            return None;
        }
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Some(format!("malformed JSON: {e}")),
        };
        match self.builder.append(&self.schema, &value) {
            Ok(()) => {
                self.stats.rows += 1;
                None
            }
            Err(m) => Some(m),
        }
    }
}
