//! The `git` command line, as `recspec diff --git` uses it: the repository around a folder, the
//! files of a revision and of the work tree, what changed between them, and a file's text at a
//! revision. No library: `git` runs as a process, and its failures become [`GitError`]s.
//!
//! Paths are relative to the repository's top level, `/`-separated, as git prints them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// A git command failed, or a path lies outside the repository.
#[derive(Debug)]
pub enum GitError {
    /// The `git` program could not be started.
    NotInstalled(std::io::Error),
    NotARepository {
        dir: PathBuf,
        message: String,
    },
    BadRevision {
        rev: String,
        top: PathBuf,
        message: String,
    },
    PathOutside {
        path: PathBuf,
        top: PathBuf,
    },
    Failed {
        command: String,
        message: String,
    },
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitError::NotInstalled(e) => write!(f, "cannot run `git` (is it installed and on PATH?): {e}"),
            GitError::NotARepository { dir, message } => {
                write!(f, "{} is not inside a git work tree: {message}", dir.display())
            }
            GitError::BadRevision { rev, top, message } => {
                write!(f, "`{rev}` is not a revision in {}: {message}", top.display())
            }
            GitError::PathOutside { path, top } => {
                write!(f, "{} is outside the git repository {}", path.display(), top.display())
            }
            GitError::Failed { command, message } => write!(f, "`{command}` failed: {message}"),
        }
    }
}

impl std::error::Error for GitError {}

/// A git work tree: its top level, and the folder a command was run from.
pub struct Repo {
    pub top: PathBuf,
    /// The folder the command runs in, relative to `top` (empty at the top level).
    pub prefix: PathBuf,
}

impl Repo {
    /// The work tree holding `dir`.
    pub(crate) fn discover(dir: &Path) -> Result<Repo, GitError> {
        let run = |arg: &str| {
            output(Command::new("git").current_dir(dir).args(["rev-parse", arg]))?
                .map_err(|message| GitError::NotARepository { dir: dir.to_path_buf(), message })
        };
        let top = PathBuf::from(first_line(&run("--show-toplevel")?));
        let prefix = PathBuf::from(first_line(&run("--show-prefix")?));
        Ok(Repo { top, prefix })
    }

    /// The full commit id `rev` names.
    pub fn commit(&self, rev: &str) -> Result<String, GitError> {
        let bad = |message: String| GitError::BadRevision { rev: rev.to_string(), top: self.top.clone(), message };
        if rev.is_empty() || rev.starts_with('-') {
            return Err(bad("a revision cannot be empty or start with `-`".into()));
        }
        let out = output(self.command().args(["rev-parse", "--verify", "--quiet"]).arg(format!("{rev}^{{commit}}")))?;
        match out {
            Ok(id) if !id.trim().is_empty() => Ok(first_line(&id)),
            _ => Err(bad("no commit by that name (try a branch, a tag or a commit id; in CI, fetch it first)".into())),
        }
    }

    /// Every file in the tree of `commit`.
    pub(crate) fn files_at(&self, commit: &str) -> Result<BTreeSet<String>, GitError> {
        self.names(&["ls-tree", "-r", "-z", "--name-only", "--full-tree", commit])
    }

    /// Every file in the work tree that git tracks or would track (untracked but not ignored).
    pub(crate) fn work_tree_files(&self) -> Result<BTreeSet<String>, GitError> {
        let mut names = self.names(&["ls-files", "-z", "--cached", "--others", "--exclude-standard"])?;
        names.retain(|n| self.top.join(n).is_file());
        Ok(names)
    }

    /// The files that differ between `commit` and the work tree: modified, added (untracked
    /// ones too, unless ignored) and deleted.
    pub(crate) fn changed_since(&self, commit: &str) -> Result<BTreeSet<String>, GitError> {
        let mut names = self.names(&["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", commit, "--"])?;
        names.extend(self.names(&["ls-files", "-z", "--others", "--exclude-standard"])?);
        Ok(names)
    }

    /// The text of `path` at `commit`.
    pub(crate) fn read_at(&self, commit: &str, path: &str) -> Result<String, GitError> {
        let spec = format!("{commit}:{path}");
        let bytes = bytes(self.command().args(["cat-file", "blob", &spec]))?;
        String::from_utf8(bytes).map_err(|_| GitError::Failed {
            command: format!("git cat-file blob {spec}"),
            message: "the file is not UTF-8 text".into(),
        })
    }

    /// `path` (relative to the folder the command runs in, or absolute) relative to the top level.
    pub fn relative(&self, path: &Path) -> Result<PathBuf, GitError> {
        let outside = || GitError::PathOutside { path: path.to_path_buf(), top: self.top.clone() };
        if path.is_absolute() {
            let canonical_top = self.top.canonicalize().unwrap_or_else(|_| self.top.clone());
            let inside = path
                .strip_prefix(&self.top)
                .ok()
                .map(Path::to_path_buf)
                .or_else(|| path.canonicalize().ok()?.strip_prefix(&canonical_top).ok().map(Path::to_path_buf));
            return inside.map(|p| normalize(&p)).ok_or_else(outside);
        }
        let joined = normalize(&self.prefix.join(path));
        if joined.starts_with("..") {
            return Err(outside());
        }
        Ok(joined)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("git");
        c.current_dir(&self.top);
        c
    }

    fn names(&self, args: &[&str]) -> Result<BTreeSet<String>, GitError> {
        let out = bytes(self.command().args(args))?;
        Ok(out.split(|b| *b == 0).filter(|n| !n.is_empty()).map(|n| String::from_utf8_lossy(n).into_owned()).collect())
    }
}

/// A path with `.` and `name/..` folded away, without touching the file system.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Runs `command`: its stdout, or git's message when it exits with failure.
fn output(command: &mut Command) -> Result<Result<String, String>, GitError> {
    let out = command.output().map_err(GitError::NotInstalled)?;
    if out.status.success() {
        Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Ok(Err(message(&out.stderr)))
    }
}

/// Runs `command` that should succeed: its stdout as bytes.
fn bytes(command: &mut Command) -> Result<Vec<u8>, GitError> {
    let out = command.output().map_err(GitError::NotInstalled)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    Err(GitError::Failed { command: format!("git {}", args.join(" ")), message: message(&out.stderr) })
}

/// git's own words, on one line.
fn message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        "git exited with an error".into()
    } else {
        lines.join("; ")
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::Path;

    #[test]
    fn normalize_folds_dots_lexically() {
        let n = |p: &str| normalize(Path::new(p)).display().to_string();
        assert_eq!(n("specs/../std/attention.recspec"), "std/attention.recspec");
        assert_eq!(n("./specs/./lib/mtl.recspec"), "specs/lib/mtl.recspec");
        assert_eq!(n("specs/lib/../../.."), "..");
        assert_eq!(n("../x.recspec"), "../x.recspec");
        assert_eq!(n(""), "");
    }
}
