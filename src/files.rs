//! File-system failures, named by what was being done to which file, and files written under a
//! temporary name and renamed into place once complete.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file could not be read, written, created or renamed.
#[derive(Debug)]
pub enum FileError {
    /// `action` is "read", "write" or "create".
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
}

impl FileError {
    /// The error of doing `action` to `path`, for `map_err`.
    pub fn at(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_path_buf();
        move |source| FileError::Io { action, path, source }
    }

    /// The error of renaming `from` to `to`, for `map_err`.
    pub(crate) fn renaming(from: &Path, to: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        move |source| FileError::Rename { from, to, source }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { action, path, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            FileError::Rename { from, to, source } => {
                write!(f, "cannot rename {} to {}: {source}", from.display(), to.display())
            }
        }
    }
}

impl std::error::Error for FileError {}

/// A file written as `name.tmp` in `dir`; [`Staged::finish`] flushes it and returns the
/// temporary and final paths, for the caller to rename once every file of a set is complete.
pub(crate) struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    w: BufWriter<File>,
}

impl Staged {
    pub(crate) fn create(dir: &Path, name: &str) -> Result<Staged, FileError> {
        let dest = dir.join(name);
        let tmp = dir.join(format!("{name}.tmp"));
        let f = File::create(&tmp).map_err(FileError::at("create", &tmp))?;
        Ok(Staged { tmp, dest, w: BufWriter::with_capacity(1 << 20, f) })
    }

    /// Where the file is written until it is renamed.
    pub fn temporary(&self) -> &Path {
        &self.tmp
    }

    pub fn write(&mut self, s: &str) -> Result<(), FileError> {
        self.w.write_all(s.as_bytes()).map_err(FileError::at("write", &self.tmp))
    }

    /// Flushes and syncs the file: `(temporary path, final path)`.
    pub fn finish(self) -> Result<(PathBuf, PathBuf), FileError> {
        let f = self.w.into_inner().map_err(|e| FileError::at("write", &self.tmp)(e.into_error()))?;
        f.sync_all().map_err(FileError::at("write", &self.tmp))?;
        Ok((self.tmp, self.dest))
    }
}
