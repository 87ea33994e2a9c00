//! The streaming loader: reads a split row by row (JSON Lines line by line, Parquet row group by
//! row group, a folder of shards shard by shard) into batches of rows validated by one validator,
//! [`BatchBuilder`].

use super::parquet::ParquetRows;
use super::row::BatchBuilder;
use super::{DataError, DataFormat, HostBatch, LoaderStats, Schema, MAX_KEPT_ERRORS};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest accepted line; longer lines are bad rows (memory stays bounded by this).
pub(crate) const MAX_LINE_BYTES: usize = 64 << 20;

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

/// A non-blank row waiting in the shuffle buffer: its shard (an index into the loader's shards),
/// its row number in the shard, and its JSON value or why it is not one.
type BufferedRow = (usize, usize, Result<serde_json::Value, String>);

/// Permutes a folder's shards for a shuffled epoch: Fisher–Yates from the last position down,
/// `j = rng.below(i + 1)` (no draw for a one-file split). `recspec_torch.data.shuffle_shards` is
/// the same function.
pub fn shuffle_shards<T>(shards: &mut [T], rng: &mut crate::rng::SplitMix) {
    for i in (1..shards.len()).rev() {
        let j = rng.below(i + 1);
        shards.swap(i, j);
    }
}

/// Opens one shard by its extension.
fn open_source(path: &Path, schema: &Schema) -> Result<Source, DataError> {
    Ok(match DataFormat::of_path(path) {
        DataFormat::JsonLines => Source::JsonLines { reader: open_reader(path)?, line: vec![], line_no: 0 },
        DataFormat::Parquet => {
            let describe = |name: &str| schema.describe_column(name);
            Source::Parquet(Box::new(ParquetRows::open(path, Some(&schema.columns()), &describe)?))
        }
    })
}

/// Streams a split (one file or a folder of shards, [`shards`]): memory holds one line (or one
/// Parquet row group), the shuffle buffer if any, and one batch, never the file.
pub struct Loader {
    /// The shards in reading order; `shards[current]` is open in `source` (when `Some`).
    shards: Vec<PathBuf>,
    current: usize,
    /// The shard rows come from now (errors name it), and its index in `shards`.
    path: PathBuf,
    row_shard: usize,
    /// (shard index, row number) of each row of the last batch.
    batch_rows: Vec<(usize, usize)>,
    source: Option<Source>,
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

/// The files of a split: the file itself, or for a folder its shards — the files directly inside
/// whose extension is `.jsonl` or `.parquet`, sorted by name (so `part-00000`, `part-00001`, ...
/// are read in order). Names starting with `.` or `_` are skipped (`_SUCCESS`, `.part-0.crc`:
/// what Spark and Hadoop write beside their shards). Anything else in the folder — another file,
/// a nested folder — is an error rather than data silently left unread, and so is a folder
/// without shards.
pub fn shards(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let error = |message: String| DataError { file: path.to_path_buf(), row: 0, message };
    let entries = std::fs::read_dir(path).map_err(|e| error(format!("cannot read the folder: {e}")))?;
    let mut shards = vec![];
    for entry in entries {
        let entry = entry.map_err(|e| error(format!("cannot read the folder: {e}")))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let shard = entry.path();
        let known = shard
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| DataFormat::ALL.iter().any(|f| e.eq_ignore_ascii_case(f.extension())));
        if shard.is_dir() {
            return Err(error(format!(
                "`{name}` is a folder; a split's shards are files directly inside its folder (nested folders are not read)"
            )));
        }
        if !known {
            return Err(error(format!(
                "`{name}` is not a shard (`.jsonl` or `.parquet`); move it out, or prefix its name with `_` to keep it there unread"
            )));
        }
        shards.push(shard);
    }
    if shards.is_empty() {
        return Err(error("the folder holds no shards (`.jsonl` or `.parquet` files)".into()));
    }
    shards.sort();
    Ok(shards)
}

/// Counts the rows of a split, valid or not, without validating them: non-blank lines of a JSON
/// Lines file, the row count a Parquet file's footer declares, summed over a folder's shards.
pub fn count_rows(path: &Path) -> Result<usize, DataError> {
    shards(path)?.iter().map(|shard| count_file_rows(shard)).sum()
}

fn count_file_rows(path: &Path) -> Result<usize, DataError> {
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
    /// Opens a split: a data file, JSON Lines or Parquet by its extension
    /// ([`DataFormat::of_path`]), or a folder of such shards ([`shards`]), read one after another
    /// in name order. Errors (row 0) are I/O errors, a zero batch size, a folder that is not a
    /// split, and for a Parquet shard a file that is not Parquet or lacks a column the schema
    /// reads (for the first shard here, for the others when the loader reaches them).
    pub fn open(path: &Path, schema: &Schema, batch_size: usize, skip_bad_rows: bool) -> Result<Loader, DataError> {
        if batch_size == 0 {
            return Err(DataError {
                file: path.to_path_buf(),
                row: 0,
                message: "batch size must be at least 1".into(),
            });
        }
        let shards = shards(path)?;
        let source = open_source(&shards[0], schema)?;
        Ok(Loader {
            path: shards[0].clone(),
            row_shard: 0,
            batch_rows: vec![],
            shards,
            current: 0,
            source: Some(source),
            shuffle: None,
            schema: schema.clone(),
            batch_size,
            skip_bad_rows,
            done: false,
            builder: BatchBuilder::new(schema, batch_size),
            stats: LoaderStats::default(),
        })
    }

    /// The same stream in a seeded pseudo-random order (`capacity` 0: file order, unchanged):
    /// a folder's shards in an order drawn first (Fisher–Yates, [`shuffle_shards`]), then a
    /// shuffle buffer of `capacity` rows over their concatenation, drawing from the same
    /// generator. Blank lines are dropped before the buffer; rows are validated as they leave it,
    /// so a bad row is still named by its own shard and row number. Call it before the first
    /// batch.
    pub fn shuffled(mut self, capacity: usize, seed: u64) -> Loader {
        if capacity > 0 {
            let mut rng = crate::rng::SplitMix(seed);
            let first = self.shards[0].clone();
            shuffle_shards(&mut self.shards, &mut rng);
            if self.shards[0] != first {
                self.source = None; // opened when the first row is read
                self.path = self.shards[0].clone();
            }
            self.shuffle =
                Some(Shuffle { capacity, rng, buffer: Vec::with_capacity(capacity.min(1 << 16)), source_done: false });
        }
        self
    }

    /// The next row of the shards in order, `Ok(None)` after the last one's last row.
    fn next_source_row(&mut self) -> Result<Option<SourceRow>, DataError> {
        loop {
            let source = match &mut self.source {
                Some(source) => source,
                None => self.source.insert(open_source(&self.shards[self.current], &self.schema)?),
            };
            if let Some(row) = source.next(&self.path)? {
                return Ok(Some(row));
            }
            if self.current + 1 == self.shards.len() {
                return Ok(None);
            }
            self.current += 1;
            self.path = self.shards[self.current].clone();
            self.row_shard = self.current;
            self.source = None;
        }
    }

    /// The next non-blank row of the shards, for the shuffle buffer: its shard, its row number,
    /// and its JSON value or why it is not one.
    fn next_buffered_row(&mut self) -> Result<Option<BufferedRow>, DataError> {
        loop {
            match self.next_source_row()? {
                None => return Ok(None),
                Some((_, Ok(None))) => continue, // a blank line
                Some((row, Ok(Some(v)))) => return Ok(Some((self.current, row, Ok(v)))),
                Some((row, Err(m))) => return Ok(Some((self.current, row, Err(m)))),
            }
        }
    }

    /// The next row of the stream, through the shuffle buffer when there is one, with the shard
    /// it came from (`self.path` is set to it).
    fn next_row(&mut self) -> Result<Option<SourceRow>, DataError> {
        if self.shuffle.is_none() {
            return self.next_source_row();
        }
        let mut shuffle = self.shuffle.take().expect("checked above");
        let out = self.draw(&mut shuffle);
        self.shuffle = Some(shuffle);
        let Some((shard, row, value)) = out? else { return Ok(None) };
        self.path = self.shards[shard].clone();
        self.row_shard = shard;
        Ok(Some((row, value.map(Some))))
    }

    fn draw(&mut self, shuffle: &mut Shuffle) -> Result<Option<BufferedRow>, DataError> {
        while !shuffle.source_done && shuffle.buffer.len() < shuffle.capacity {
            match self.next_buffered_row()? {
                Some(row) => shuffle.buffer.push(row),
                None => shuffle.source_done = true,
            }
        }
        if shuffle.buffer.is_empty() {
            return Ok(None);
        }
        let j = shuffle.rng.below(shuffle.buffer.len());
        Ok(Some(if shuffle.source_done {
            shuffle.buffer.swap_remove(j)
        } else {
            match self.next_buffered_row()? {
                Some(row) => std::mem::replace(&mut shuffle.buffer[j], row),
                None => {
                    shuffle.source_done = true;
                    shuffle.buffer.swap_remove(j)
                }
            }
        }))
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn stats(&self) -> &LoaderStats {
        &self.stats
    }

    /// Where each row of the last batch came from: its file (shard) and 1-based row number.
    pub(crate) fn batch_rows(&self) -> impl Iterator<Item = (&Path, usize)> + '_ {
        self.batch_rows.iter().map(|(shard, row)| (self.shards[*shard].as_path(), *row))
    }

    /// The next batch of up to `batch_size` valid rows; `Ok(None)` at the end of the file.
    ///
    /// Without `skip_bad_rows` the first bad row is returned as `Err` (the valid rows read before
    /// it stay pending, so calling again continues after the bad line). With `skip_bad_rows` bad
    /// rows are counted in [`Loader::stats`] and skipped. An I/O error ends the stream.
    pub fn next_batch(&mut self) -> Result<Option<HostBatch>, DataError> {
        if self.builder.len() == 0 {
            self.batch_rows.clear();
        }
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
                        self.batch_rows.push((self.row_shard, row));
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
