//! `recspec diff --git REV [PATHS]` against a temporary git repository: changed, added, deleted
//! and unchanged specs, imports read at the revision, Markdown, exit codes, subdirectories.

use crate::cli::{code, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A model in its own file that imports a block library by relative path.
const SMALL: &str = r#"import "lib/tower.recspec";

model small {
  dim D = 8;
  dim V = 1000;
  input item: id[B] vocab V;
  label click;
  let e = Embedding(vocab: V, dim: D)(item);
  output p = sigmoid(Tower()(e));
  loss click = bce(p, label: click);
}
"#;

const TOWER: &str = r#"// A block library: no model, so no graph of its own.
block Tower()(x: float[B, H]) -> float[B, 1] {
  return MLP(units: [16, 1], act: relu)(x);
}
"#;

/// A git repository in a temporary folder holding DFN, DIN and FM (with the standard library's
/// attention file, as the recspec repository holds it), `small` and its library, committed.
struct Repo {
    dir: PathBuf,
}

impl Repo {
    fn new(name: &str) -> Repo {
        let dir = std::env::temp_dir().join(format!("recspec-diff-git-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Repo { dir };
        repo.git(&["init", "-q"]);
        repo.git(&["config", "user.name", "recspec tests"]);
        repo.git(&["config", "user.email", "tests@recspec.invalid"]);
        for file in ["specs/dfn.recspec", "specs/din.recspec", "specs/fm.recspec", "std/attention.recspec"] {
            repo.write(file, &std::fs::read_to_string(crate::root().join(file)).unwrap());
        }
        repo.write("specs/small.recspec", SMALL);
        repo.write("specs/lib/tower.recspec", TOWER);
        repo.commit("seed specs");
        repo
    }

    /// Runs git in the repository, isolated from the user's and the system's configuration.
    fn git(&self, args: &[&str]) -> String {
        let o = isolated(Command::new("git")).args(args).current_dir(&self.dir).output().expect("git runs");
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
        stdout(&o)
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--no-gpg-sign", "-m", message]);
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    /// Replaces `from` by `to` in `path`, which must hold `from`.
    fn edit(&self, path: &str, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.dir.join(path)).unwrap();
        assert!(text.contains(from), "{path} holds no `{from}`");
        self.write(path, &text.replacen(from, to, 1));
    }

    /// Runs `recspec` in the folder `sub` of the repository.
    fn recspec(&self, sub: &str, args: &[&str]) -> Output {
        recspec_in(&self.dir.join(sub), args)
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn isolated(mut c: Command) -> Command {
    c.env("GIT_CONFIG_NOSYSTEM", "1").env("GIT_CONFIG_GLOBAL", "/dev/null");
    c
}

fn recspec_in(dir: &Path, args: &[&str]) -> Output {
    isolated(Command::new(env!("CARGO_BIN_EXE_recspec"))).args(args).current_dir(dir).output().expect("binary runs")
}

/// The text of each `=== path ===` section, by path, and the lines after the last one.
fn sections(out: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![];
    for line in out.lines() {
        if let Some(path) = line.strip_prefix("=== ").and_then(|l| l.strip_suffix(" ===")) {
            v.push((path.to_string(), String::new()));
        } else if let Some((_, body)) = v.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    v
}

#[test]
fn changed_added_deleted_and_imported_specs() {
    let repo = Repo::new("changes");
    // The committed standard library differs from the binary's: the old side must read it from
    // git, not from the built-in copy.
    repo.edit("std/attention.recspec", "act: relu)(features)", "act: tanh)(features)");
    repo.commit("tanh scores");
    repo.edit("std/attention.recspec", "act: tanh)(features)", "act: sigmoid)(features)");
    repo.edit("specs/din.recspec", "dim D = 64;", "dim D = 32;");
    repo.edit("specs/lib/tower.recspec", "units: [16, 1]", "units: [24, 1]");
    repo.write("specs/deepfm.recspec", &std::fs::read_to_string(crate::root().join("specs/deepfm.recspec")).unwrap());
    std::fs::remove_file(repo.dir.join("specs/fm.recspec")).unwrap();

    let o = repo.recspec("", &["diff", "--git", "HEAD"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 1, "{out}{}", stderr(&o));
    assert!(out.starts_with("recspec diff against HEAD ("), "{out}");
    assert!(out.lines().next().unwrap().ends_with("): 3 changed, 1 added, 1 deleted"), "{out}");
    let s = sections(&out);
    let paths: Vec<&str> = s.iter().map(|(p, _)| p.as_str()).collect();
    // One section per model spec, in path order; the block library has none.
    assert_eq!(
        paths,
        ["specs/deepfm.recspec", "specs/dfn.recspec", "specs/din.recspec", "specs/fm.recspec", "specs/small.recspec"]
    );
    assert!(s[0].1.starts_with("added: model deepfm, "), "{}", s[0].1);
    // DFN's own file did not change; the attention file it imports did, at REV and in the work tree.
    assert!(s[1].1.contains("~ f_ud/scores\n      config act: tanh -> sigmoid"), "{}", s[1].1);
    assert!(
        s[2].1.contains("~ D\n      value 64 -> 32") && s[2].1.contains("config act: tanh -> sigmoid"),
        "{}",
        s[2].1
    );
    assert!(s[3].1.starts_with("deleted: model fm had "), "{}", s[3].1);
    // A relative import, read at REV.
    assert!(s[4].1.contains("config units: [16, 1] -> [24, 1]"), "{}", s[4].1);
    assert!(!out.contains("same architecture"), "{out}");

    // PATHS restrict the specs compared, not the changes that count.
    let o = repo.recspec("", &["diff", "--git", "HEAD", "specs/dfn.recspec", "specs/small.recspec"]);
    let paths: Vec<String> = sections(&stdout(&o)).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["specs/dfn.recspec", "specs/small.recspec"], "{}", stdout(&o));
    assert_eq!(code(&o), 1);

    let o = repo.recspec("", &["diff", "--git", "HEAD", "--format", "markdown"]);
    let md = stdout(&o);
    assert_eq!(code(&o), 1, "{md}");
    assert!(md.starts_with("**recspec** architecture diff against `HEAD` (`"), "{md}");
    for heading in ["## specs/deepfm.recspec\n", "## specs/dfn.recspec\n", "## specs/fm.recspec\n"] {
        assert!(md.contains(heading), "{heading}: {md}");
    }
    assert!(md.contains("### Architecture diff: `dfn` → `dfn`"), "{md}");
    assert!(md.contains("| ✏️ | `f_ud/scores` | config act: tanh -> sigmoid |  |"), "{md}");
    assert!(md.contains("➕ New model `deepfm`: "), "{md}");
    assert!(md.contains("➖ Deleted: model `fm` had "), "{md}");
    assert!(!md.contains("=== "), "{md}");

    // The HTML page: one section per spec, a picture per changed one, the same counts.
    let o = repo.recspec("", &["diff", "--git", "HEAD", "--format", "html"]);
    let html = stdout(&o);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<p>3 changed, 1 added, 1 deleted</p>"), "{html}");
    for spec in ["deepfm.recspec", "dfn.recspec", "din.recspec", "fm.recspec"] {
        // (minijinja's HTML escaping writes the folder's `/` as `&#x2f;`)
        assert!(html.contains(&format!("{spec} <span class=\"kind\">")), "{spec}");
    }
    assert_eq!(html.matches("<svg").count(), 3, "one overlay per changed spec");
    assert!(html.contains("changed: f_ud/scores = MLP("), "the changed MLP is marked");
}

#[test]
fn runs_from_a_subdirectory_with_paths_relative_to_it() {
    let repo = Repo::new("subdir");
    repo.edit("specs/din.recspec", "dim D = 64;", "dim D = 32;");
    repo.edit("specs/small.recspec", "dim D = 8;", "dim D = 4;");
    let o = repo.recspec("specs", &["diff", "--git", "HEAD", "din.recspec"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let s = sections(&stdout(&o));
    assert_eq!(s.len(), 1, "{}", stdout(&o));
    assert_eq!(s[0].0, "specs/din.recspec", "headings name paths from the top level");

    // Without PATHS, the whole repository, wherever the command runs.
    let o = repo.recspec("specs/lib", &["diff", "--git", "HEAD"]);
    let paths: Vec<String> = sections(&stdout(&o)).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["specs/din.recspec", "specs/small.recspec"]);

    let o = repo.recspec("specs/lib", &["diff", "--git", "HEAD", "..", "--format", "markdown"]);
    assert!(stdout(&o).contains("## specs/din.recspec\n") && stdout(&o).contains("## specs/small.recspec\n"));

    let o = repo.recspec("specs", &["diff", "--git", "HEAD", "../.."]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("is outside the git repository"), "{}", stderr(&o));
}

#[test]
fn same_architecture_exits_0() {
    let repo = Repo::new("same");
    let o = repo.recspec("", &["diff", "--git", "HEAD"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("no spec changed since HEAD ("), "{}", stdout(&o));

    // A comment in a spec and in a library it imports: compared, listed once, exit 0.
    repo.edit("specs/din.recspec", "model din {", "// reviewed\nmodel din {");
    repo.edit("specs/lib/tower.recspec", "block Tower", "// one tower\nblock Tower");
    let o = repo.recspec("", &["diff", "--git", "HEAD"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    assert!(sections(&out).is_empty(), "{out}");
    assert!(out.ends_with("\nsame architecture: specs/din.recspec, specs/small.recspec\n"), "{out}");
    let md = stdout(&repo.recspec("", &["diff", "--git", "HEAD", "--format", "markdown"]));
    assert!(md.contains("Same architecture: `specs/din.recspec`, `specs/small.recspec`."), "{md}");
    assert!(!md.contains("## "), "{md}");

    // Committed, the same change is no change.
    repo.commit("comments");
    let o = repo.recspec("", &["diff", "--git", "HEAD~1"]);
    assert_eq!(code(&o), 0);
    let o = repo.recspec("", &["diff", "--git", "HEAD"]);
    assert!(stdout(&o).starts_with("no spec changed since HEAD"), "{}", stdout(&o));
}

#[test]
fn specs_that_do_not_compile_exit_2_with_diagnostics() {
    let repo = Repo::new("broken");
    repo.edit("specs/din.recspec", "dim D = 64;", "dim D = 32;");
    repo.edit("specs/small.recspec", "Tower()(e)", "Towr()(e)");
    let o = repo.recspec("", &["diff", "--git", "HEAD"]);
    let out = stdout(&o);
    assert_eq!(code(&o), 2, "{out}");
    let s = sections(&out);
    assert_eq!(s[0].0, "specs/din.recspec");
    assert!(s[0].1.contains("value 64 -> 32"), "the other specs are still compared: {out}");
    assert_eq!(s[1].0, "specs/small.recspec");
    assert!(s[1].1.starts_with("does not compile in the work tree:\nerror[E0005]"), "{}", s[1].1);
    assert!(s[1].1.contains("┌─ specs/small.recspec:9:"), "{}", s[1].1);

    // Broken at REV and fixed in the work tree: no comparison is possible either.
    repo.commit("typo");
    repo.edit("specs/small.recspec", "Towr()(e)", "Tower()(e)");
    let o = repo.recspec("", &["diff", "--git", "HEAD", "--format", "markdown"]);
    let md = stdout(&o);
    assert_eq!(code(&o), 2, "{md}");
    assert!(md.contains("## specs/small.recspec\n\n❌ Does not compile at `HEAD`:\n\n```text\nerror[E0005]"), "{md}");
    assert!(md.contains("┌─ HEAD:specs/small.recspec:9:"), "old files are named by revision: {md}");

    // A block library that no longer parses breaks the models importing it.
    repo.edit("specs/lib/tower.recspec", "-> float[B, 1] {", "-> float[B, 1]");
    let o = repo.recspec("", &["diff", "--git", "HEAD", "specs/lib"]);
    assert_eq!(code(&o), 2);
    assert!(stdout(&o).contains("=== specs/lib/tower.recspec ===\ndoes not compile in the work tree:\nerror[E0001]"));
}

#[test]
fn git_errors_are_messages() {
    let repo = Repo::new("errors");
    let o = repo.recspec("", &["diff", "--git", "no-such-branch"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.starts_with("error: `no-such-branch` is not a revision in "), "{err}");
    assert!(err.contains(&repo.dir.display().to_string()), "{err}");
    assert!(stdout(&o).is_empty());

    let o = repo.recspec("", &["diff", "--git=-HEAD"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be empty or start with `-`"), "{}", stderr(&o));

    let o = repo.recspec("", &["diff", "--git", "HEAD", "specs/typo"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no `.recspec` file in specs/typo at HEAD or in the work tree"), "{}", stderr(&o));

    let o = repo.recspec("", &["diff", "--git", "HEAD", "--set", "D=4"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--set and --config"), "{}", stderr(&o));

    let o = repo.recspec("", &["diff", "specs/din.recspec"]);
    assert_eq!(code(&o), 2, "plain diff takes two files");
    assert!(stderr(&o).contains("OLD and NEW"), "{}", stderr(&o));

    let outside = std::env::temp_dir().join(format!("recspec-diff-git-none-{}", std::process::id()));
    std::fs::create_dir_all(&outside).unwrap();
    let o = recspec_in(&outside, &["diff", "--git", "HEAD"]);
    let _ = std::fs::remove_dir_all(&outside);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not inside a git work tree: fatal: not a git repository"), "{}", stderr(&o));
}

/// The review workflow of docs/review.md in a repository: snapshots committed beside the specs,
/// `fmt --check` and `snapshot --check` pass; an architecture change fails `snapshot --check`
/// with its diff until the snapshots are updated and committed, and `diff --git` names it.
#[test]
fn snapshot_and_fmt_checks_in_a_repository() {
    let repo = Repo::new("snapshot");
    let o = repo.recspec("", &["snapshot", "--update", "specs"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    repo.commit("snapshots");
    assert!(repo.git(&["ls-files"]).contains("specs/snapshots/dfn.graph.snap"));
    assert_eq!(code(&repo.recspec("", &["snapshot", "--check", "specs"])), 0);
    assert_eq!(code(&repo.recspec("", &["fmt", "--check", "specs"])), 0, "copied specs are formatted");

    repo.edit("specs/fm.recspec", "dim D = 64;", "dim D = 32;");
    let o = repo.recspec("specs", &["snapshot", "--check", "."]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stdout(&o).contains("+  D = 32"), "the graph diff: {}", stdout(&o));
    assert!(code(&repo.recspec("", &["diff", "--git", "HEAD"])) == 1);

    assert_eq!(code(&repo.recspec("", &["snapshot", "--update", "specs"])), 0);
    assert!(repo.git(&["status", "--porcelain"]).contains("specs/snapshots/fm.graph.snap"));
    repo.commit("D = 32");
    assert_eq!(code(&repo.recspec("", &["snapshot", "--check", "specs"])), 0);
}
