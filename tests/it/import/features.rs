//! `recspec import --features`: a feature set drives the import through the same builder as a
//! mapping file, so the fixture's set and its mapping write the same data set.

use super::{files, import_fixture, import_set, scratch, train_briefly, write_two_days, FIXTURE};
use crate::cli::{code, recspec, stderr};
use std::path::Path;

#[test]
fn a_feature_set_imports_exactly_what_its_mapping_does() {
    let dir = scratch("features-same");
    let (by_mapping, by_features) = (dir.join("mapping"), dir.join("features"));
    import_fixture("mapping.toml", &by_mapping, &[]);
    let set = Path::new(FIXTURE).join("features.recspec");
    let o = import_set(None, &set, &by_features, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (a, b) = (files(&by_mapping), files(&by_features));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a.len() >= 10, "{:?}", a.keys());
    for (name, bytes) in &a {
        if name == "/data.toml" {
            // Only the line naming what defined the data set differs.
            let text = |x: &[u8]| {
                String::from_utf8(x.to_vec())
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("mapping = "))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert_eq!(text(bytes), text(&b[name]));
            assert!(String::from_utf8_lossy(&b[name]).contains("mapping = \"tests/data/import/features.recspec\""));
        } else {
            assert!(*bytes == b[name], "{name} differs");
        }
    }

    // EVENTS given on the command line replaces the set's `source events(...)` file.
    let moved = dir.join("moved.csv");
    std::fs::copy(Path::new(FIXTURE).join("events.csv"), &moved).unwrap();
    let again = dir.join("again");
    let o = import_set(Some(&moved), &set, &again, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(files(&again)["/train.jsonl"] == a["/train.jsonl"]);
}

#[test]
fn a_feature_set_is_checked_before_any_data_is_read() {
    let dir = scratch("features-refused");
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("features.recspec")).unwrap();

    // A malformed set: the checker's located error, exit 1, nothing written.
    let bad = dir.join("bad.recspec");
    std::fs::write(&bad, text.replace("length: T);\n  side clicks.dwell", "length: 0);\n  side clicks.dwell")).unwrap();
    let out = dir.join("out");
    let o = import_set(None, &bad, &out, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("error[E0029]: length must be a positive integer"), "{}", stderr(&o));
    assert!(!out.exists());

    // A file without a feature set.
    let o = import_set(None, Path::new("specs/dfn.recspec"), &out, &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("specs/dfn.recspec has no feature set"), "{}", stderr(&o));
}

/// An error found when the set is turned into an import names the set's file and the line of
/// the statement it comes from: a rule's column missing from the event log, a joined table's
/// column missing from its table.
#[test]
fn import_errors_name_the_statement_of_the_set() {
    let dir = scratch("features-lines");
    super::copy_fixture_files(&dir, &["events.csv", "users.csv", "items.tsv"]);
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("features.recspec")).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (from, to, says) in [
        (
            "label click = \"action == 'click' or",
            "label click = \"colour == 'red' or",
            "no column `colour` in the header (named by [labels] click",
        ),
        (
            "feature fields = fields([\"device\", \"user.age\"",
            "feature fields = fields([\"device\", \"user.agee\"",
            "no column `agee` in the header (named by [fields] columns",
        ),
    ] {
        let set = dir.join("set.recspec");
        std::fs::write(&set, text.replace(from, to)).unwrap();
        let o = import_set(None, &set, &dir.join("out"), &[]);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        let at = format!("set.recspec:{})", line_of(from));
        assert!(stderr(&o).contains(says) && stderr(&o).contains(&at), "{at}: {}", stderr(&o));
    }
}

/// `--keep-ids-from` with `fields`: every field value keeps its id, and values first seen in
/// the later import are numbered after the earlier data set's largest id, so earlier ids never
/// move; the rows use those ids, and a third import keeps the second's.
#[test]
fn field_ids_are_kept_across_imports() {
    let dir = scratch("features-keep-fields");
    super::copy_fixture_files(&dir, &["users.csv", "items.tsv"]);
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("features.recspec")).unwrap();
    let set = dir.join("fields.recspec");
    std::fs::write(&set, text.replace("  feature profile = profile([\"user.age\", \"user.gender\"]);\n", "")).unwrap();
    write_two_days(&dir, 120);
    let (first, kept, again) = (dir.join("first"), dir.join("kept"), dir.join("again"));
    for (day, out, extra) in [
        ("day1.csv", &first, vec![]),
        ("day2.csv", &kept, vec!["--keep-ids-from", first.to_str().unwrap()]),
        ("day2.csv", &again, vec!["--keep-ids-from", kept.to_str().unwrap()]),
    ] {
        let o = import_set(Some(&dir.join(day)), &set, out, &extra);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    // (column, value) -> id; a column's out-of-vocabulary id under the value "".
    let ids = |d: &Path| -> std::collections::BTreeMap<(String, String), u64> {
        std::fs::read_to_string(d.join("vocab/fields.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                let value = v["value"].as_str().unwrap_or_default().to_string();
                ((v["column"].as_str().unwrap().to_string(), value), v["id"].as_u64().unwrap())
            })
            .collect()
    };
    let (a, b) = (ids(&first), ids(&kept));
    for (key, id) in &a {
        assert_eq!(b.get(key), Some(id), "{key:?} keeps its id");
    }
    let new: Vec<u64> = b.iter().filter(|(k, _)| !a.contains_key(*k)).map(|(_, id)| *id).collect();
    assert!(!new.is_empty(), "day 2 brings field values day 1 did not have");
    assert!(new.iter().all(|id| *id as usize >= a.len()), "new values come after every earlier id: {new:?}");
    assert_eq!(ids(&again), b, "kept again, nothing moves");
    // The rows hold those ids, and FV covers them.
    let data = super::DataSet::load(&kept);
    assert_eq!(data.hparams["FV"], b.len() as i64);
    let by_id: std::collections::HashMap<u64, &(String, String)> = b.iter().map(|(k, id)| (*id, k)).collect();
    let mut sorted = super::fixture_events();
    sorted.sort_by_key(|e| (e.time, e.row));
    for (row, e) in data.rows().zip(&sorted) {
        let device = row["fields"][0].as_u64().unwrap();
        let (column, value) = by_id[&device];
        assert_eq!(column, "device", "row {}", e.row);
        assert!(value.is_empty() || *value == e.device, "row {}: device {} written as {value:?}", e.row, e.device);
    }
    // A warm start checks the field ids too: on the kept data set it starts, on one whose
    // field ids moved (two device values swapped) it is refused, naming a value.
    let train = |data: &Path, run: &str, extra: &[&str]| {
        train_briefly(Path::new("specs/fm.recspec"), data, &dir.join(run), "2", extra)
    };
    let o = train(&first, "run1", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let earlier = dir.join("run1");
    let o = train(&kept, "run2", &["--init-from", earlier.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("and {} feature values have the ids", a.len())), "{}", stderr(&o));
    let moved = dir.join("moved");
    std::fs::create_dir_all(moved.join("vocab")).unwrap();
    for f in
        ["data.toml", "train.jsonl", "valid.jsonl", "test.jsonl", "items.jsonl", "vocab/item.jsonl", "vocab/user.jsonl"]
    {
        std::fs::copy(kept.join(f), moved.join(f)).unwrap();
    }
    let fields = std::fs::read_to_string(kept.join("vocab/fields.jsonl")).unwrap();
    let (phone, web) = (a[&("device".to_string(), "phone".to_string())], a[&("device".to_string(), "web".to_string())]);
    let swapped = fields
        .replace(&format!("\"id\":{phone},"), "\"id\":PHONE,")
        .replace(&format!("\"id\":{web},"), &format!("\"id\":{phone},"))
        .replace("\"id\":PHONE,", &format!("\"id\":{web},"));
    assert_ne!(swapped, fields);
    std::fs::write(moved.join("vocab/fields.jsonl"), swapped).unwrap();
    let o = train(&moved, "run3", &["--init-from", earlier.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("`device` value \""), "{}", stderr(&o));
}

/// `item(min_count: 3)`: items with fewer than 3 training events share id 0, in the impressed
/// item and in every sequence; the others are numbered by count as without it.
#[test]
fn item_min_count_leaves_rare_items_out_of_vocabulary() {
    let dir = scratch("features-item-min-count");
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("features.recspec")).unwrap();
    super::copy_fixture_files(&dir, &["events.csv", "users.csv", "items.tsv"]);
    let set = dir.join("thresholded.recspec");
    std::fs::write(&set, text.replace("feature item = item();", "feature item = item(min_count: 3);")).unwrap();
    let (plain, thresholded) = (dir.join("plain"), dir.join("thresholded"));
    for (set, out) in [(&Path::new(FIXTURE).join("features.recspec"), &plain), (&set, &thresholded)] {
        let o = import_set(None, set, out, &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let vocab = |d: &Path| -> Vec<(String, u64)> {
        std::fs::read_to_string(d.join("vocab/item.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["key"].as_str().unwrap().to_string(), v["train_events"].as_u64().unwrap()))
            .collect()
    };
    let (all, kept) = (vocab(&plain), vocab(&thresholded));
    let frequent: Vec<(String, u64)> = all.iter().filter(|(_, n)| *n >= 3).cloned().collect();
    assert_eq!(kept, frequent, "the items with 3 or more training events, in the same order");
    assert!(frequent.len() < all.len() && !frequent.is_empty(), "{} of {}", frequent.len(), all.len());
    let (a, b) = (super::DataSet::load(&plain), super::DataSet::load(&thresholded));
    assert_eq!(b.hparams["V"], kept.len() as i64 + 1);
    // Ids of the plain import (1-based positions in `all`) as ids of the thresholded one.
    let id = |plain_id: i64| -> i64 {
        let Some((key, _)) = usize::try_from(plain_id - 1).ok().and_then(|i| all.get(i)) else { return 0 };
        kept.iter().position(|(k, _)| k == key).map_or(0, |i| i as i64 + 1)
    };
    let mut zeroed = 0;
    for (x, y) in a.rows().zip(b.rows()) {
        assert_eq!(y["item"].as_i64().unwrap(), id(x["item"].as_i64().unwrap()), "{x} / {y}");
        zeroed += usize::from(y["item"] == 0 && x["item"] != 0);
        let ids = |r: &serde_json::Value| {
            r["clicks"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(ids(y), ids(x).into_iter().map(id).collect::<Vec<_>>(), "{x} / {y}");
    }
    assert!(zeroed > 0, "some rows' items fell below the count");
}

/// A table file of the fixture (CSV or TSV) as key -> column -> value.
fn table(name: &str, sep: char) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join(name)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(sep).collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(sep).collect();
            (f[0].to_string(), header.iter().zip(&f).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        })
        .collect()
}

/// Ids numbered by descending training count, ties by text, from 1 (0: everything else).
fn numbering(counts: &std::collections::HashMap<String, u64>) -> std::collections::HashMap<String, i64> {
    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter().enumerate().map(|(i, (k, _))| (k.clone(), i as i64 + 1)).collect()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(got.is_finite() && (got - want).abs() <= 1e-5 * want.abs().max(1.0), "{what}: {got} != {want}");
}

/// Every kind beyond the mapping's, re-derived from the fixture's files without the importer:
/// vocabularies and statistics from the training split only, scalings, buckets, hashing,
/// tokens and crosses per row; the fitted artifact; and a model reading them all trains.
#[test]
fn every_feature_kind_imports_as_defined() {
    let dir = scratch("features-kinds");
    let out = dir.join("data");
    let spec = Path::new(FIXTURE).join("ranker.recspec");
    let o = import_set(None, &spec, &out, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let data = super::DataSet::load(&out);
    let rows: Vec<&serde_json::Value> = data.rows().collect();
    let mut events = super::fixture_events();
    events.sort_by_key(|e| (e.time, e.row));
    assert_eq!(rows.len(), events.len());
    let train = &events[..data.splits[0].len()];
    let users = table("users.csv", ',');
    let items = table("items.tsv", '\t');

    let mut devices = std::collections::HashMap::new();
    let mut genres = std::collections::HashMap::new();
    for e in train {
        *devices.entry(e.device.clone()).or_insert(0u64) += 1;
        if let Some(i) = items.get(&e.item) {
            for g in i["genres"].split_whitespace().take(2) {
                *genres.entry(g.to_string()).or_insert(0u64) += 1;
            }
        }
    }
    let (device_ids, genre_ids) = (numbering(&devices), numbering(&genres));
    assert_eq!(data.hparams["DV"], devices.len() as i64 + 1);
    assert_eq!(data.hparams["GV"], genres.len() as i64 + 1);
    let dwells: Vec<f64> = train.iter().filter_map(|e| e.dwell).collect();
    let n = dwells.len() as f64;
    let mean = dwells.iter().sum::<f64>() / n;
    let std = (dwells.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
    let (lo, hi) = dwells.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), d| (a.min(*d), b.max(*d)));
    assert!(std > 1.0 && hi > lo, "the fixture's dwell varies");

    let hash = |text: &str, buckets: i64| recspec::data::hash_bucket(recspec::data::RawId::Str(text), buckets);
    let mut unseen_devices = 0;
    for (row, e) in rows.iter().zip(&events) {
        let what = |k: &str| format!("row {} ({k})", e.row);
        assert_eq!(row["time"].as_i64(), Some(e.time));
        let device = device_ids.get(&e.device).copied().unwrap_or(0);
        unseen_devices += usize::from(device == 0);
        assert_eq!(row["device"].as_i64(), Some(device), "{}", what("device"));
        let user = users.get(&e.user);
        let age = user.map_or("", |u| u["age"].as_str());
        assert_eq!(row["age"].as_i64(), Some(hash(age, 16)), "{}", what("age"));
        let gender = user.map_or("", |u| u["gender"].as_str());
        let crossed = hash(&format!("{}\u{1f}{gender}", e.device), 32);
        assert_eq!(row["device_x_gender"].as_i64(), Some(crossed), "{}", what("cross"));
        let f = |k: &str| row[k].as_f64().unwrap_or_else(|| panic!("{}: {}", what(k), row[k]));
        match e.dwell {
            Some(d) => {
                close(f("dwell_z"), (d - mean) / std, &what("dwell_z"));
                close(f("dwell_01"), (d - lo) / (hi - lo), &what("dwell_01"));
                close(f("dwell_log"), d.ln_1p(), &what("dwell_log"));
                let bucket = [5.0, 30.0, 60.0].iter().filter(|b| **b <= d).count() as i64;
                assert_eq!(row["dwell_bucket"].as_i64(), Some(bucket), "{}", what("bucket"));
            }
            None => {
                assert_eq!((f("dwell_z"), f("dwell_01"), f("dwell_log")), (-1.0, 0.0, 0.0), "{}", what("missing"));
                assert_eq!(row["dwell_bucket"].as_i64(), Some(0), "{}", what("missing bucket"));
            }
        }
        let tokens: Vec<i64> = items
            .get(&e.item)
            .map(|i| i["genres"].split_whitespace().take(2).map(|g| genre_ids.get(g).copied().unwrap_or(0)).collect())
            .unwrap_or_default();
        assert_eq!(super::ints(&row["genres"]), tokens, "{}", what("genres"));
    }
    assert!(data.splits[0].iter().all(|r| r["device"].as_i64() != Some(0)), "training devices are in the vocabulary");
    let _ = unseen_devices;

    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("features.json")).unwrap()).unwrap();
    assert_eq!(artifact["version"], 1);
    let fitted =
        |input: &str| artifact["features"].as_array().unwrap().iter().find(|f| f["input"] == input).cloned().unwrap();
    close(fitted("dwell_z")["mean"].as_f64().unwrap(), mean, "artifact mean");
    close(fitted("dwell_z")["std"].as_f64().unwrap(), std, "artifact std");
    let mut vocabulary: Vec<(&String, &i64)> = device_ids.iter().collect();
    vocabulary.sort_by_key(|(_, id)| **id);
    let names: Vec<&str> = vocabulary.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(fitted("device")["vocabulary"], serde_json::json!(names));

    // The model that declares these features trains on them.
    let run = dir.join("run");
    let o = recspec(&[
        "train",
        spec.to_str().unwrap(),
        "--data",
        out.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// Bad values of a feature set's own features: named by file, row (or table key), feature and
/// column, skippable where they are rows of the event log; never a panic or a silent value.
#[test]
fn bad_feature_values_are_named() {
    let dir = scratch("features-bad");
    super::copy_fixture_files(&dir, &["events.csv", "users.csv", "items.tsv", "ranker.recspec"]);
    let events = std::fs::read_to_string(dir.join("events.csv")).unwrap();
    let set = dir.join("ranker.recspec");
    let run = |extra: &[&str]| import_set(None, &set, &dir.join("out"), extra);
    // Row 2 is a `none` event: no sequence reads its dwell, only the numeric features do.
    assert!(events.lines().nth(1).unwrap().starts_with("u04,i036,1000500,none,,"));
    let p = dir.join("events.csv").display().to_string();
    for (bad, shown) in [("fast", "\"fast\""), ("NaN", "\"NaN\""), ("inf", "\"inf\"")] {
        std::fs::write(
            dir.join("events.csv"),
            events.replacen("u04,i036,1000500,none,,", &format!("u04,i036,1000500,none,{bad},"), 1),
        )
        .unwrap();
        let o = run(&[]);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        let want = format!("error: {p}:2: feature `dwell_z`: column `dwell` is {shown}, not a number");
        assert_eq!(stderr(&o).trim(), want, "{}", stderr(&o));
    }
    let o = run(&["--skip-bad-rows"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("1 bad rows skipped"), "{}", stderr(&o));
    std::fs::write(dir.join("events.csv"), &events).unwrap();
    let kept = std::fs::read(dir.join("out/train.jsonl")).unwrap();

    // A column the events lack: named with the feature that reads it.
    let text = std::fs::read_to_string(&set).unwrap();
    std::fs::write(&set, text.replace("zscore(\"dwell\"", "zscore(\"speed\"")).unwrap();
    let o = run(&[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no column `speed` in the header (named by feature `dwell_z`"), "{}", stderr(&o));

    // Text in a numeric column of a joined table: the table, the key, the feature.
    std::fs::write(&set, text.replace("zscore(\"dwell\"", "zscore(\"user.age\"")).unwrap();
    let o = run(&[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let users = dir.join("users.csv").display().to_string();
    assert!(
        stderr(&o).contains(&format!("{users}: key \"u"))
            && stderr(&o).contains("feature `dwell_z`: column `age` is \""),
        "{}",
        stderr(&o)
    );
    assert!(std::fs::read(dir.join("out/train.jsonl")).unwrap() == kept, "a failed import keeps the earlier data set");
}

/// `--keep-ids-from`: a second import of a longer log keeps every item, user and vocabulary id
/// the first gave and numbers new ones after them; without it ids move. A data set that does not
/// match is refused by file and line.
#[test]
fn ids_are_kept_across_imports() {
    let dir = scratch("features-keep");
    super::copy_fixture_files(&dir, &["users.csv", "items.tsv", "ranker.recspec"]);
    write_two_days(&dir, 200);
    let set = dir.join("ranker.recspec");
    let (first, kept, fresh) = (dir.join("first"), dir.join("kept"), dir.join("fresh"));
    let again = dir.join("again");
    for (day, out, extra) in [
        ("day1.csv", &first, vec![]),
        ("day2.csv", &kept, vec!["--keep-ids-from", first.to_str().unwrap()]),
        ("day2.csv", &fresh, vec![]),
        // A kept data set is itself an earlier one: ids are kept day after day.
        ("day2.csv", &again, vec!["--keep-ids-from", kept.to_str().unwrap()]),
    ] {
        let o = import_set(Some(&dir.join(day)), &set, out, &extra);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    // day1 is the file's first lines, not its earliest events: some users' training events of
    // day 1 are validation or test events of day 2, yet they keep their ids.
    let users = |d: &Path| std::fs::read_to_string(d.join("vocab/user.jsonl")).unwrap();
    assert!(users(&kept).contains("\"train_events\":0"), "a user without training events on day 2");
    assert_eq!(users(&again), users(&kept));
    let ids = |d: &Path| -> std::collections::HashMap<String, i64> {
        std::fs::read_to_string(d.join("vocab/item.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["key"].as_str().unwrap().to_string(), v["id"].as_i64().unwrap()))
            .collect()
    };
    let (a, b, c) = (ids(&first), ids(&kept), ids(&fresh));
    assert!(a.len() >= 40, "{}", a.len());
    for (key, id) in &a {
        assert_eq!(b.get(key), Some(id), "item {key} keeps its id");
    }
    let new: Vec<i64> = b.iter().filter(|(k, _)| !a.contains_key(*k)).map(|(_, id)| *id).collect();
    assert!(!new.is_empty() && new.iter().all(|id| *id > a.len() as i64), "new items come after: {new:?}");
    assert!(a.iter().any(|(k, id)| c.get(k) != Some(id)), "without --keep-ids-from the ids move (the test can fail)");
    // Rows use the kept numbering, and the data set's sizes cover it.
    let data = super::DataSet::load(&kept);
    assert_eq!(data.hparams["V"], b.len() as i64 + 1);
    let mut sorted = super::fixture_events();
    sorted.sort_by_key(|e| (e.time, e.row));
    for (row, e) in data.rows().zip(&sorted) {
        assert_eq!(row["item"].as_i64(), Some(b.get(&e.item).copied().unwrap_or(0)), "row {}", e.row);
    }
    // A feature's vocabulary keeps its ids too: the earlier values come first, in their order.
    let vocabulary = |d: &Path, input: &str| -> Vec<serde_json::Value> {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("features.json")).unwrap()).unwrap();
        let f = doc["features"].as_array().unwrap().iter().find(|f| f["input"] == input).unwrap().clone();
        f["vocabulary"].as_array().unwrap().clone()
    };
    for input in ["device", "genres"] {
        let (old, now) = (vocabulary(&first, input), vocabulary(&kept, input));
        assert_eq!(now[..old.len()], old[..], "{input}");
    }
    // A run on the first data set warm-starts a run on the kept one: the item table grows.
    let train = |data: &Path, run: &str, extra: &[&str]| train_briefly(&set, data, &dir.join(run), "3", extra);
    let o = train(&first, "run1", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let earlier = dir.join("run1");
    let o = train(&kept, "run2", &["--init-from", earlier.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let grown = format!("(items/table {} -> {} rows)", a.len() + 1, b.len() + 1);
    assert!(stderr(&o).contains(&format!("warm start from {}: ", earlier.display())), "{}", stderr(&o));
    assert!(stderr(&o).contains(&grown), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("ids kept: {} items, ", a.len())), "{}", stderr(&o));
    // The earlier run kept its data set's ids, and a warm start on a data set that moved them
    // is refused, naming a key, before a run directory is made.
    let copied = std::fs::read(earlier.join("data/vocab/item.jsonl")).unwrap();
    assert!(copied == std::fs::read(first.join("vocab/item.jsonl")).unwrap());
    let o = train(&fresh, "run3", &["--init-from", earlier.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("does not keep the ids its weights were trained with: item \""), "{}", stderr(&o));
    assert!(!dir.join("run3").exists());

    // What cannot be kept is refused by file and line, before anything is written.
    let out = dir.join("refused");
    let item_file = first.join("vocab/item.jsonl");
    let text = std::fs::read_to_string(&item_file).unwrap();
    std::fs::write(&item_file, text.replacen("\"id\":2,", "\"id\":1,", 1)).unwrap();
    let o = import_set(Some(&dir.join("day2.csv")), &set, &out, &["--keep-ids-from", first.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}: line 2: id 1 is not one of 1..=", item_file.display())),
        "{}",
        stderr(&o)
    );
    let o = import_set(
        Some(&dir.join("day2.csv")),
        &set,
        &out,
        &["--keep-ids-from", dir.join("nothing").to_str().unwrap()],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing/vocab/item.jsonl: cannot read"), "{}", stderr(&o));
    let fixture_set = Path::new(FIXTURE).join("features.recspec");
    let o = import_set(None, &fixture_set, &out, &["--keep-ids-from", kept.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("`profile` ids come after the user ids, which grow"), "{}", stderr(&o));
    assert!(!out.exists());
}
