//! File-system failures, named by what was being done to which file.

use std::fmt;
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
    pub fn renaming(from: &Path, to: &Path) -> impl FnOnce(std::io::Error) -> FileError {
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
