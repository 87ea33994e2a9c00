//! The streaming loader: reads a split row by row (JSON Lines line by line, Parquet row group by
//! row group) into batches of rows validated by one validator, [`BatchBuilder`].

use super::parquet::ParquetRows;
use super::row::BatchBuilder;
use super::{DataError, DataFormat, HostBatch, LoaderStats, Schema, MAX_KEPT_ERRORS};
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

/// Where rows come from: the formats behind one interface.
enum Source {
    JsonLines { reader: BufReader<File>, line: Vec<u8>, line_no: usize },
    Parquet(Box<ParquetRows>),
}

/// One row read from a source: its 1-based row number and the row's JSON value, `None` for a
/// blank line, or the message of a row that could not be read as JSON.
type SourceRow = (usize, Result<Option<serde_json::Value>, String>);

impl Source {
    /// The next row; `Ok(None)` at the end. `Err` ends the stream (I/O, corrupt file).
    fn next(&mut self, path: &Path) -> Result<Option<SourceRow>, DataError> {
        match self {
            Source::JsonLines { reader, line, line_no } => {
                *line_no += 1;
                let message = match read_line(reader, line).map_err(|e| io_error(path, *line_no, "cannot read", e))? {
                    Line::End => return Ok(None),
                    Line::TooLong => Err(format!("line is longer than {MAX_LINE_BYTES} bytes")),
                    Line::Text => parse_line(line, *line_no),
                };
                Ok(Some((*line_no, message)))
            }
            Source::Parquet(rows) => Ok(rows.next_row()?.map(|(row, v)| (row, v.map(Some)))),
        }
    }
}

/// A JSON Lines line as a JSON value (`None` when blank), or why it is not one.
fn parse_line(line: &[u8], line_no: usize) -> Result<Option<serde_json::Value>, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("line is not valid UTF-8: {e}"))?;
    let text = if line_no == 1 { text.trim_start_matches('\u{feff}') } else { text };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text).map(Some).map_err(|e| format!("malformed JSON: {e}"))
}

/// The generator seed of the training order of `epoch` (1-based) on `rank` for a run's `seed`;
/// `recspec_torch.data.shuffle_seed` is the same function.
pub fn shuffle_seed(seed: u64, epoch: usize, rank: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ (rank as u64).wrapping_mul(0x8CB9_2BA7_2F3D_8DD7)
}

/// A seeded shuffle buffer between the source and the batches ([`Loader::shuffled`]): it holds up
/// to `capacity` unvalidated rows; each row out is `buffer[j]` for a drawn `j`, replaced by the
/// next row of the source, or swap-removed once the source is done. One draw per row, before
/// the read. `recspec_torch.data.iterate` implements the same algorithm.
struct Shuffle {
    capacity: usize,
    rng: crate::rng::SplitMix,
    buffer: Vec<BufferedRow>,
    source_done: bool,
}

/// A non-blank row waiting in the shuffle buffer: its row number and its JSON value, or why it
/// is not one.
type BufferedRow = (usize, Result<serde_json::Value, String>);

/// Streams a data file: memory holds one line (or one Parquet row group), the shuffle buffer if
/// any, and one batch, never the file.
pub struct Loader {
    path: PathBuf,
    source: Source,
    shuffle: Option<Shuffle>,
    schema: Schema,
    batch_size: usize,
    skip_bad_rows: bool,
    done: bool,
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

/// Counts the rows of a split, valid or not, without validating them: non-blank lines of a JSON
/// Lines file, the row count a Parquet file's footer declares.
pub fn count_rows(path: &Path) -> Result<usize, DataError> {
    if DataFormat::of_path(path) == DataFormat::Parquet {
        return super::parquet::count_rows(path);
    }
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
    /// Opens a data file, JSON Lines or Parquet by its extension ([`DataFormat::of_path`]).
    /// Errors (row 0) are I/O errors, a zero batch size, and for Parquet a file that is not
    /// Parquet or lacks a column the schema reads.
    pub fn open(path: &Path, schema: &Schema, batch_size: usize, skip_bad_rows: bool) -> Result<Loader, DataError> {
        if batch_size == 0 {
            return Err(DataError {
                file: path.to_path_buf(),
                row: 0,
                message: "batch size must be at least 1".into(),
            });
        }
        let source = match DataFormat::of_path(path) {
            DataFormat::JsonLines => Source::JsonLines { reader: open_reader(path)?, line: vec![], line_no: 0 },
            DataFormat::Parquet => {
                let describe = |name: &str| schema.describe_column(name);
                Source::Parquet(Box::new(ParquetRows::open(path, Some(&schema.columns()), &describe)?))
            }
        };
        Ok(Loader {
            path: path.to_path_buf(),
            source,
            shuffle: None,
            schema: schema.clone(),
            batch_size,
            skip_bad_rows,
            done: false,
            builder: BatchBuilder::new(schema, batch_size),
            stats: LoaderStats::default(),
        })
    }

    /// The same stream in a seeded pseudo-random order: a shuffle buffer of `capacity` rows
    /// (`0`: file order, unchanged). Blank lines are dropped before the buffer; rows are
    /// validated as they leave it, so a bad row is still named by its own row number.
    pub fn shuffled(mut self, capacity: usize, seed: u64) -> Loader {
        if capacity > 0 {
            self.shuffle = Some(Shuffle {
                capacity,
                rng: crate::rng::SplitMix(seed),
                buffer: Vec::with_capacity(capacity.min(1 << 16)),
                source_done: false,
            });
        }
        self
    }

    /// The next row of the stream, through the shuffle buffer when there is one.
    fn next_row(&mut self) -> Result<Option<SourceRow>, DataError> {
        let Some(shuffle) = &mut self.shuffle else { return self.source.next(&self.path) };
        let next_row = |source: &mut Source| -> Result<Option<BufferedRow>, DataError> {
            loop {
                match source.next(&self.path)? {
                    None => return Ok(None),
                    Some((_, Ok(None))) => continue, // a blank line
                    Some((row, Ok(Some(v)))) => return Ok(Some((row, Ok(v)))),
                    Some((row, Err(m))) => return Ok(Some((row, Err(m)))),
                }
            }
        };
        while !shuffle.source_done && shuffle.buffer.len() < shuffle.capacity {
            match next_row(&mut self.source)? {
                Some(row) => shuffle.buffer.push(row),
                None => shuffle.source_done = true,
            }
        }
        if shuffle.buffer.is_empty() {
            return Ok(None);
        }
        let j = shuffle.rng.below(shuffle.buffer.len());
        let out = if shuffle.source_done {
            shuffle.buffer.swap_remove(j)
        } else {
            match next_row(&mut self.source)? {
                Some(row) => std::mem::replace(&mut shuffle.buffer[j], row),
                None => {
                    shuffle.source_done = true;
                    shuffle.buffer.swap_remove(j)
                }
            }
        };
        Ok(Some((out.0, out.1.map(Some))))
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
            let (row, value) = match self.next_row() {
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Ok(Some(next)) => next,
            };
            let message = match value {
                Ok(None) => None,
                Ok(Some(v)) => match self.builder.append(&self.schema, &v) {
                    Ok(()) => {
                        self.stats.rows += 1;
                        self.stats.last_row = row;
                        None
                    }
                    Err(m) => Some(m),
                },
                Err(m) => Some(m),
            };
            if let Some(message) = message {
                let err = DataError { file: self.path.clone(), row, message };
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
}
