//! External merge sort: records are buffered up to a fixed count, each full buffer is sorted
//! and spilled to a chunk file, and the chunks are merged k-way into one sorted file that can
//! be read any number of times. Memory holds one buffer while spilling and one record per
//! chunk while merging, whatever the number of records.

use crate::files::FileError;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// A record that can be spilled to a file and read back; its `Ord` is the sort order.
pub trait Spill: Ord + Sized {
    fn write_to(&self, w: &mut impl Write) -> io::Result<()>;
    /// Reads one record, or `None` at the end of the file (before its first byte).
    fn read_from(r: &mut impl BufRead) -> io::Result<Option<Self>>;
}

/// Collects records, spilling every `capacity` of them as a sorted chunk under `dir`.
pub(crate) struct Sorter<T: Spill> {
    dir: PathBuf,
    capacity: usize,
    buffer: Vec<T>,
    chunks: Vec<PathBuf>,
}

/// The sorted records, in one file under the sorter's directory.
pub struct Sorted<T: Spill> {
    path: PathBuf,
    pub records: usize,
    /// Chunk files spilled before the merge (1 when everything fit in one buffer).
    pub chunks: usize,
    record: PhantomData<T>,
}

impl<T: Spill> Sorter<T> {
    /// A sorter spilling to `dir` (which must exist) every `capacity` records (at least 1).
    pub fn new(dir: &Path, capacity: usize) -> Sorter<T> {
        Sorter { dir: dir.to_path_buf(), capacity: capacity.max(1), buffer: vec![], chunks: vec![] }
    }

    pub fn push(&mut self, record: T) -> Result<(), FileError> {
        self.buffer.push(record);
        if self.buffer.len() >= self.capacity {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), FileError> {
        let path = self.dir.join(format!("chunk-{}.bin", self.chunks.len()));
        let mut records = std::mem::take(&mut self.buffer);
        records.sort();
        write_all(&path, records.iter())?;
        self.chunks.push(path);
        Ok(())
    }

    /// Sorts what is left, merges every chunk into `sorted.bin` and removes the chunks.
    pub fn finish(mut self) -> Result<Sorted<T>, FileError> {
        if !self.buffer.is_empty() || self.chunks.is_empty() {
            self.spill()?;
        }
        let path = self.dir.join("sorted.bin");
        let chunks = self.chunks.len();
        let records = if chunks == 1 {
            std::fs::rename(&self.chunks[0], &path).map_err(FileError::renaming(&self.chunks[0], &path))?;
            Sorted::<T> { path: path.clone(), records: 0, chunks, record: PhantomData }.iter()?.count()
        } else {
            merge::<T>(&self.chunks, &path)?
        };
        for chunk in &self.chunks {
            let _ = std::fs::remove_file(chunk);
        }
        Ok(Sorted { path, records, chunks, record: PhantomData })
    }
}

fn write_all<'a, T: Spill + 'a>(path: &Path, records: impl Iterator<Item = &'a T>) -> Result<usize, FileError> {
    let file = File::create(path).map_err(FileError::at("create", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut n = 0;
    for r in records {
        r.write_to(&mut w).map_err(FileError::at("write", path))?;
        n += 1;
    }
    w.flush().map_err(FileError::at("write", path))?;
    Ok(n)
}

/// The head record of one chunk in the merge; ties keep chunk order (chunks hold earlier
/// records first), so the merge is stable.
struct Head<T>(T, usize);

impl<T: Ord> PartialEq for Head<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl<T: Ord> Eq for Head<T> {}
impl<T: Ord> PartialOrd for Head<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Ord> Ord for Head<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// K-way merge of sorted chunk files into `out`; the number of records written.
fn merge<T: Spill>(chunks: &[PathBuf], out: &Path) -> Result<usize, FileError> {
    let mut readers = vec![];
    let mut heap = BinaryHeap::new();
    for (i, path) in chunks.iter().enumerate() {
        let mut r = BufReader::with_capacity(1 << 16, File::open(path).map_err(FileError::at("read", path))?);
        if let Some(first) = T::read_from(&mut r).map_err(FileError::at("read", path))? {
            heap.push(Reverse(Head(first, i)));
        }
        readers.push(r);
    }
    let file = File::create(out).map_err(FileError::at("create", out))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut n = 0;
    while let Some(Reverse(Head(record, i))) = heap.pop() {
        record.write_to(&mut w).map_err(FileError::at("write", out))?;
        n += 1;
        if let Some(next) = T::read_from(&mut readers[i]).map_err(FileError::at("read", &chunks[i]))? {
            heap.push(Reverse(Head(next, i)));
        }
    }
    w.flush().map_err(FileError::at("write", out))?;
    Ok(n)
}

impl<T: Spill> Sorted<T> {
    /// Reads the records in order from the start.
    pub fn iter(&self) -> Result<SortedIter<T>, FileError> {
        let file = File::open(&self.path).map_err(FileError::at("read", &self.path))?;
        Ok(SortedIter { path: self.path.clone(), reader: BufReader::with_capacity(1 << 16, file), record: PhantomData })
    }
}

pub struct SortedIter<T> {
    path: PathBuf,
    reader: BufReader<File>,
    record: PhantomData<T>,
}

impl<T: Spill> Iterator for SortedIter<T> {
    type Item = Result<T, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        T::read_from(&mut self.reader).map_err(FileError::at("read", &self.path)).transpose()
    }
}

/// Little-endian fields of spilled records.
pub mod codec {
    use std::io::{self, BufRead, Read, Write};

    pub(crate) fn put_u32(w: &mut impl Write, x: u32) -> io::Result<()> {
        w.write_all(&x.to_le_bytes())
    }

    pub(crate) fn put_u64(w: &mut impl Write, x: u64) -> io::Result<()> {
        w.write_all(&x.to_le_bytes())
    }

    pub(crate) fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
        put_u32(w, u32::try_from(s.len()).map_err(|_| io::Error::other("a value longer than 4 GiB"))?)?;
        w.write_all(s.as_bytes())
    }

    /// True at the end of the input.
    pub(crate) fn at_end(r: &mut impl BufRead) -> io::Result<bool> {
        Ok(r.fill_buf()?.is_empty())
    }

    pub(crate) fn get_u32(r: &mut impl Read) -> io::Result<u32> {
        let mut b = [0; 4];
        r.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub(crate) fn get_u64(r: &mut impl Read) -> io::Result<u64> {
        let mut b = [0; 8];
        r.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn get_str(r: &mut impl Read) -> io::Result<String> {
        let n = get_u32(r)? as usize;
        let mut b = vec![0; n];
        r.read_exact(&mut b)?;
        String::from_utf8(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a spilled value is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::codec::*;
    use super::*;

    /// A key with a payload that the order ignores, to see that equal keys keep input order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Rec {
        key: u32,
        seq: u64,
        text: String,
    }

    impl PartialOrd for Rec {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Rec {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.key.cmp(&other.key)
        }
    }

    impl Spill for Rec {
        fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
            put_u32(w, self.key)?;
            put_u64(w, self.seq)?;
            put_str(w, &self.text)
        }
        fn read_from(r: &mut impl BufRead) -> io::Result<Option<Self>> {
            if at_end(r)? {
                return Ok(None);
            }
            Ok(Some(Rec { key: get_u32(r)?, seq: get_u64(r)?, text: get_str(r)? }))
        }
    }

    fn sort(name: &str, records: &[Rec], capacity: usize) -> (Vec<Rec>, usize, tempfile::TempDir) {
        let d = tempfile::Builder::new().prefix(&format!("recspec-sort-{name}-")).tempdir().unwrap();
        let mut s = Sorter::new(d.path(), capacity);
        for r in records {
            s.push(r.clone()).unwrap();
        }
        let sorted = s.finish().unwrap();
        let out: Vec<Rec> = sorted.iter().unwrap().map(Result::unwrap).collect();
        assert_eq!(sorted.records, out.len());
        let again: Vec<Rec> = sorted.iter().unwrap().map(Result::unwrap).collect();
        assert_eq!(out, again, "the sorted file reads again");
        (out, sorted.chunks, d)
    }

    #[test]
    fn many_chunks_merge_into_the_stable_sorted_order() {
        let mut x: u64 = 42;
        let records: Vec<Rec> = (0..2_000u64)
            .map(|seq| {
                x = crate::simulate::Rng::new(x).next_u64();
                Rec { key: (x % 50) as u32, seq, text: "é".repeat((x % 4) as usize) }
            })
            .collect();
        let mut want = records.clone();
        want.sort_by_key(|r| r.key);
        for capacity in [1, 7, 64, 1999, 2000, 5000] {
            let (got, chunks, d) = sort(&format!("c{capacity}"), &records, capacity);
            assert_eq!(chunks, records.len().div_ceil(capacity));
            assert!(got.iter().zip(&want).all(|(a, b)| a.key == b.key && a.seq == b.seq), "capacity {capacity}");
            let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left, vec![std::ffi::OsString::from("sorted.bin")], "chunks are removed");
        }
    }

    #[test]
    fn nothing_to_sort_is_an_empty_file() {
        let (got, chunks, _dir) = sort("empty", &[], 3);
        assert!(got.is_empty());
        assert_eq!(chunks, 1);
    }
}
