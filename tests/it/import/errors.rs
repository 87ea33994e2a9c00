//! `recspec import` on bad input: every error names its file and row (or mapping line), exits
//! with 2, and shows no Rust debug text; `--skip-bad-rows` skips and counts bad rows.

use super::{files, import, scratch, FIXTURE};
use crate::cli::{code, stderr};
use crate::Scratch;
use std::path::Path;

/// A scratch copy of the fixture directory, for editing.
fn copy_fixture(name: &str) -> Scratch {
    let dir = scratch(name);
    super::copy_fixture_files(&dir, &["events.csv", "users.csv", "items.tsv", "mapping.toml", "mapping_llo.toml"]);
    dir
}

/// Replaces `from` (which must occur) by `to` in a file.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn assert_no_debug_text(text: &str) {
    for pattern in ["Some(", "None", "Os {", "kind:", "Error {", "\\\"", "panicked", "[\""] {
        assert!(!text.contains(pattern), "debug text {pattern:?} in: {text}");
    }
}

/// Imports `events` of `dir` with its `mapping`; it must fail with exit code 2 and a message
/// containing `want`.
fn fails(dir: &Path, events: &str, mapping: &str, want: &str) {
    let out = dir.join("out");
    let o = import(&dir.join(events), &dir.join(mapping), &out, &[]);
    let e = stderr(&o);
    assert_eq!(code(&o), 2, "{e}");
    assert!(e.contains(want), "expected {want:?} in: {e}");
    assert!(e.starts_with("error: "), "{e}");
    assert_no_debug_text(&e);
}

#[test]
fn bad_rows_stop_the_import_unless_skipped_and_counted() {
    let dir = copy_fixture("bad-rows");
    let path = dir.join("events.csv");
    let mut lines: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(String::from).collect();
    lines.insert(4, "u01,i001,soon,click,3.0,web".into());
    lines.insert(8, "u01,i002,1000100,click".into());
    lines.insert(11, "u02,i003,1000100,click,fast,web".into());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let p = path.display();
    fails(&dir, "events.csv", "mapping.toml", &format!("error: {p}:5: the time column `ts` is \"soon\", not a number"));

    let skipped = dir.join("skipped");
    let o = import(&path, &dir.join("mapping.toml"), &skipped, &["--skip-bad-rows"]);
    let e = stderr(&o);
    assert_eq!(code(&o), 0, "{e}");
    assert!(e.contains("315 imported, 3 bad rows skipped"), "{e}");
    assert!(e.contains(&format!("{p}:9: has 4 fields, the header has 6")), "{e}");
    let rule = format!(
        "{p}:12: [labels] skip ({}:15): column `dwell` is \"fast\", not a number",
        dir.join("mapping.toml").display()
    );
    assert!(e.contains(&rule), "{e}");
    assert_no_debug_text(&e);
    let clean = dir.join("clean");
    let o = import(&Path::new(FIXTURE).join("events.csv"), &dir.join("mapping.toml"), &clean, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (a, b) = (files(&clean), files(&skipped));
    for name in a.keys().filter(|k| !k.ends_with("data.toml")) {
        assert!(a[name] == b[name], "{name}: skipping the bad rows imports the clean file");
    }
    assert!(String::from_utf8_lossy(&b["/data.toml"]).contains("bad_rows = 3"));
}

#[test]
fn inputs_that_cannot_be_imported_are_named() {
    let dir = copy_fixture("inputs");
    let events = dir.join("events.csv");
    let text = std::fs::read_to_string(&events).unwrap();
    let header = text.lines().next().unwrap().to_string();

    std::fs::write(dir.join("empty.csv"), "").unwrap();
    fails(&dir, "empty.csv", "mapping.toml", "empty.csv: is empty: expected a header line naming the columns");
    std::fs::write(dir.join("header.csv"), format!("{header}\n")).unwrap();
    fails(&dir, "header.csv", "mapping.toml", "header.csv: no events to import");
    let one_time: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let mut f: Vec<&str> = l.split(',').collect();
            if i > 0 {
                f[2] = "5";
            }
            format!("{}\n", f.join(","))
        })
        .collect();
    std::fs::write(dir.join("one_time.csv"), one_time).unwrap();
    fails(&dir, "one_time.csv", "mapping.toml", "the train split would be empty");
    let two_each: String = std::iter::once(header.as_str())
        .chain(text.lines().filter(|l| l.starts_with("u01,")).take(2))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("two.csv"), two_each).unwrap();
    fails(&dir, "two.csv", "mapping_llo.toml", "the valid split would be empty: leave_last_out holds out");

    edit(&dir.join("mapping.toml"), "time = \"ts\"", "time = \"timestamp\"");
    let m = dir.join("mapping.toml").display().to_string();
    fails(&dir, "events.csv", "mapping.toml", &format!("events.csv: no column `timestamp` in the header (named by [events] time ({m}:8)); the columns are: user_id, item_id, ts, action, dwell, device"));
    edit(&dir.join("mapping.toml"), "time = \"timestamp\"", "time = \"ts\"");
    edit(&dir.join("mapping.toml"), "push = \"false\"", "push = \"shares > 0\"");
    fails(
        &dir,
        "events.csv",
        "mapping.toml",
        &format!("no column `shares` in the header (named by [labels] push ({m}:18))"),
    );
    edit(&dir.join("mapping.toml"), "push = \"shares > 0\"", "push = \"action == \\\"push\\\" or\"");
    fails(
        &dir,
        "events.csv",
        "mapping.toml",
        &format!("{m}:18: [labels] push: at character 20 of the rule: expected a comparison"),
    );
    edit(&dir.join("mapping.toml"), "push = \"action == \\\"push\\\" or\"", "push = \"false\"");

    std::fs::write(dir.join("users.csv"), std::fs::read_to_string(dir.join("users.csv")).unwrap() + "u01,25-34,F\n")
        .unwrap();
    fails(
        &dir,
        "events.csv",
        "mapping.toml",
        "users.csv:33: key \"u01\" (column `user_id`) is already the key of row 2",
    );
    edit(&dir.join("mapping.toml"), "file = \"users.csv\"", "file = \"nobody.csv\"");
    fails(&dir, "events.csv", "mapping.toml", "cannot read ");
}
