//! `recspec import` on the fixture in `tests/data/import` (written by its `make_fixture.py`):
//! sequences re-derived from the event log independently of the importer, splits, vocabulary
//! bounds, determinism across chunk sizes and input formats, and training on the result.
//! Bad input is in `import/errors.rs`.

mod errors;
mod features;
pub(crate) mod online;
mod simulated;

use crate::cli::{code, recspec, stderr};
use crate::Scratch;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

pub const FIXTURE: &str = "tests/data/import";

/// The sequences of the fixture's mappings and their length T.
const SEQUENCES: [&str; 6] = ["clicks", "unclicks", "likes", "dislikes", "skips", "history"];
const T: usize = 6;

/// A fresh directory for one test's outputs.
pub fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("import-{name}"))
}

/// `recspec import [EVENTS] --features SET --out OUT --quiet EXTRA...`.
pub fn import_set(events: Option<&Path>, set: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import"];
    args.extend(events.map(|e| e.to_str().unwrap()));
    args.extend(["--features", set.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    args.extend_from_slice(extra);
    recspec(&args)
}

/// `recspec train SPEC --data DATA --out RUN`, one epoch of at most `steps` steps, quietly.
pub fn train_briefly(spec: &Path, data: &Path, run: &Path, steps: &str, extra: &[&str]) -> Output {
    let mut args = vec!["train", spec.to_str().unwrap(), "--data", data.to_str().unwrap()];
    args.extend(["--out", run.to_str().unwrap(), "--max-steps", steps, "--epochs", "1", "--quiet"]);
    args.extend_from_slice(extra);
    recspec(&args)
}

/// The fixture's event log as two days in `dir`: `day1.csv` its first `lines` lines (header
/// included; the file's order, not time order), `day2.csv` all of it.
pub fn write_two_days(dir: &Path, lines: usize) {
    let events = std::fs::read_to_string(Path::new(FIXTURE).join("events.csv")).unwrap();
    let day1: String = events.lines().take(lines).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("day1.csv"), day1).unwrap();
    std::fs::write(dir.join("day2.csv"), &events).unwrap();
}

/// Copies the fixture's `files` into `dir` (a feature set's sources are relative to it).
pub fn copy_fixture_files(dir: &Path, files: &[&str]) {
    for f in files {
        std::fs::copy(Path::new(FIXTURE).join(f), dir.join(f)).unwrap();
    }
}

/// `recspec import EVENTS --mapping MAPPING --out OUT --quiet EXTRA...`.
pub fn import(events: &Path, mapping: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "import",
        events.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    recspec(&args)
}

/// Imports the fixture's events with one of its mappings; the import must succeed.
fn import_fixture(mapping: &str, out: &Path, extra: &[&str]) -> Output {
    let o = import(&Path::new(FIXTURE).join("events.csv"), &Path::new(FIXTURE).join(mapping), out, extra);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    o
}

/// One event of the fixture, read with nothing of the importer.
#[derive(Clone, Debug)]
pub(super) struct Event {
    row: usize,
    user: String,
    item: String,
    time: i64,
    action: String,
    dwell: Option<f64>,
    device: String,
}

impl Event {
    fn clicked(&self) -> bool {
        self.action == "click" || self.action == "like"
    }

    /// Whether the event enters a sequence: the `when` rules of the fixture's mappings.
    fn enters(&self, sequence: &str) -> bool {
        match sequence {
            "clicks" => self.clicked(),
            "unclicks" => self.action == "none",
            "likes" => self.action == "like",
            "dislikes" => self.action == "dislike",
            "skips" => self.clicked() && self.dwell.unwrap() < 5.0,
            "history" => self.action != "none",
            _ => unreachable!("{sequence}"),
        }
    }

    /// The label rules of the fixture's mappings.
    fn labels(&self) -> BTreeMap<&'static str, i64> {
        let d = self.dwell.unwrap_or(0.0);
        let c = self.clicked();
        [
            ("click", c),
            ("unclick", self.action == "none"),
            ("like", self.action == "like"),
            ("dislike", self.action == "dislike"),
            ("skip", c && d < 5.0),
            ("engaged", c && d >= 5.0),
            ("follow", self.action == "like" && d >= 60.0),
            ("push", false),
            ("comment", false),
        ]
        .into_iter()
        .map(|(k, v)| (k, i64::from(v)))
        .collect()
    }
}

/// The fixture's events in file order (row = line number).
pub(super) fn fixture_events() -> Vec<Event> {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("events.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("user_id,item_id,ts,action,dwell,device"));
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            Event {
                row: i + 2,
                user: f[0].into(),
                item: f[1].into(),
                time: f[2].parse().unwrap(),
                action: f[3].into(),
                dwell: (!f[4].is_empty()).then(|| f[4].parse().unwrap()),
                device: f[5].into(),
            }
        })
        .collect()
}

/// Each user's events by time, ties in file order.
fn by_user(events: &[Event]) -> HashMap<String, Vec<Event>> {
    let mut out: HashMap<String, Vec<Event>> = HashMap::new();
    for e in events {
        out.entry(e.user.clone()).or_default().push(e.clone());
    }
    for v in out.values_mut() {
        v.sort_by_key(|e| (e.time, e.row));
    }
    out
}

/// An imported data set as files, read back.
pub struct DataSet {
    pub hparams: HashMap<String, i64>,
    /// Rows of train, valid, test.
    pub splits: [Vec<Value>; 3],
    item_ids: HashMap<String, i64>,
    user_keys: HashMap<i64, String>,
}

fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

impl DataSet {
    pub fn load(dir: &Path) -> DataSet {
        let toml: toml::Table = std::fs::read_to_string(dir.join("data.toml")).unwrap().parse().unwrap();
        let hparams =
            toml["hparams"].as_table().unwrap().iter().map(|(k, v)| (k.clone(), v.as_integer().unwrap())).collect();
        let splits = ["train", "valid", "test"].map(|s| jsonl(&dir.join(format!("{s}.jsonl"))));
        let item_ids = jsonl(&dir.join("vocab/item.jsonl"))
            .iter()
            .filter_map(|v| Some((v["key"].as_str().unwrap().to_string(), v.get("id")?.as_i64().unwrap())))
            .collect();
        let user_keys = jsonl(&dir.join("vocab/user.jsonl"))
            .iter()
            .map(|v| (v["user"].as_i64().unwrap(), v["key"].as_str().unwrap().to_string()))
            .collect();
        DataSet { hparams, splits, item_ids, user_keys }
    }

    pub fn rows(&self) -> impl Iterator<Item = &Value> {
        self.splits.iter().flatten()
    }

    /// The id an item key is written as (0: not in the training split).
    fn item(&self, key: &str) -> i64 {
        self.item_ids.get(key).copied().unwrap_or(0)
    }

    fn user(&self, row: &Value) -> &str {
        &self.user_keys[&row["user"].as_i64().unwrap()]
    }
}

pub(super) fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|x| x.as_i64().unwrap()).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Every sequence of every row is exactly the last T events of the same user with a strictly
/// earlier time that its rule admits, oldest first, ties in file order; the side features
/// follow those events. Re-derived from events.csv, for both split methods, with a chunk size
/// small enough that the external sort merges dozens of chunks.
#[test]
fn sequences_hold_exactly_the_users_strictly_earlier_events() {
    let events = fixture_events();
    let users = by_user(&events);
    for mapping in ["mapping.toml", "mapping_llo.toml"] {
        let out = scratch(&format!("leak-{}", mapping.trim_end_matches(".toml")));
        let o = import_fixture(mapping, &out, &["--chunk-events", "7"]);
        assert!(stderr(&o).contains("(45 sorted chunks)"), "{}", stderr(&o));
        let d = DataSet::load(&out);
        let mut tied_rows = 0;
        for row in d.rows() {
            let user = &users[d.user(row)];
            let t = row["time"].as_i64().unwrap();
            tied_rows += usize::from(user.iter().filter(|e| e.time == t && e.action != "none").count() > 1);
            for seq in SEQUENCES {
                let earlier: Vec<&Event> = user.iter().filter(|e| e.time < t && e.enters(seq)).collect();
                let want = &earlier[earlier.len().saturating_sub(T)..];
                let ids: Vec<i64> = want.iter().map(|e| d.item(&e.item)).collect();
                assert_eq!(ints(&row[seq]), ids, "{mapping}: `{seq}` of {} at {t}", d.user(row));
            }
            let history: Vec<&Event> = user.iter().filter(|e| e.time < t && e.enters("history")).collect();
            let history = &history[history.len().saturating_sub(T)..];
            let disliked: Vec<f64> = history.iter().map(|e| f64::from(u8::from(e.action == "dislike"))).collect();
            assert_eq!(floats(&row["history.disliked"]), disliked);
            let raw: Vec<f64> = history.iter().map(|e| e.dwell.unwrap()).collect();
            assert_eq!(floats(&row["history.raw_dwell"]), raw);
            for (got, e) in floats(&row["history.dwell"]).iter().zip(history) {
                assert!((got - e.dwell.unwrap().ln_1p()).abs() < 1e-5, "log1p dwell");
            }
            let clicks: Vec<&Event> = user.iter().filter(|e| e.time < t && e.clicked()).collect();
            let skipped: Vec<f64> = clicks[clicks.len().saturating_sub(T)..]
                .iter()
                .map(|e| f64::from(u8::from(e.dwell.unwrap() < 5.0)))
                .collect();
            assert_eq!(floats(&row["clicks.skipped"]), skipped);
        }
        assert!(tied_rows > 10, "the fixture has rows tied in time with their user's other events: {tied_rows}");
        std::fs::remove_dir_all(&out).ok();
    }
}

/// Every event is written once, with its item's id (0 outside the training vocabulary) and its
/// labels; every vocabulary is built on the training split only and every id is below its dim.
#[test]
fn rows_labels_and_vocabularies_follow_the_training_split() {
    let events = fixture_events();
    let out = scratch("vocab");
    import_fixture("mapping.toml", &out, &[]);
    let d = DataSet::load(&out);
    let h = |k: &str| d.hparams[k];
    let mut written: Vec<(String, i64, i64, BTreeMap<String, i64>)> = d
        .rows()
        .map(|r| {
            let labels =
                r["labels"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap())).collect();
            (d.user(r).to_string(), r["time"].as_i64().unwrap(), r["item"].as_i64().unwrap(), labels)
        })
        .collect();
    let mut want: Vec<(String, i64, i64, BTreeMap<String, i64>)> = events
        .iter()
        .map(|e| {
            (e.user.clone(), e.time, d.item(&e.item), e.labels().into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        })
        .collect();
    written.sort();
    want.sort();
    assert_eq!(written, want, "one row per event, with its item and labels");

    let train_items: std::collections::BTreeSet<i64> =
        d.splits[0].iter().map(|r| r["item"].as_i64().unwrap()).collect();
    assert_eq!(train_items, (1..h("V")).collect(), "the item vocabulary is exactly the training items");
    let held_out_oov = d.splits[1..].iter().flatten().filter(|r| r["item"] == 0).count();
    assert!(held_out_oov >= 5, "late items are out of vocabulary in valid/test: {held_out_oov}");
    let train_users: std::collections::BTreeSet<i64> =
        d.splits[0].iter().map(|r| r["profile"][0].as_i64().unwrap()).collect();
    assert_eq!(train_users, (1..h("U")).collect(), "the user vocabulary is exactly the training users");

    for r in d.rows() {
        for key in std::iter::once("item").chain(SEQUENCES) {
            let ids = if key == "item" { vec![r[key].as_i64().unwrap()] } else { ints(&r[key]) };
            assert!(ids.iter().all(|id| (0..h("V")).contains(id)), "{key} below V: {r}");
        }
        let fields = ints(&r["fields"]);
        assert_eq!(fields.len() as i64, h("F"));
        assert!(fields.iter().all(|id| (0..h("FV")).contains(id)), "{r}");
        let profile = ints(&r["profile"]);
        assert_eq!(profile.len() as i64, h("P"));
        assert!(profile[0] < h("U") && profile[1..].iter().all(|id| (h("U")..h("PV")).contains(id)), "{r}");
    }
    for (key, n) in [("fields", h("F")), ("profile", h("P"))] {
        let columns: Vec<std::collections::BTreeSet<i64>> =
            (0..n as usize).map(|c| d.rows().map(|r| r[key][c].as_i64().unwrap()).collect()).collect();
        for a in 0..columns.len() {
            for b in a + 1..columns.len() {
                assert!(columns[a].is_disjoint(&columns[b]), "{key}: columns {a} and {b} share ids");
            }
        }
    }
    let single = d.rows().filter(|r| d.user(r) == "u99").collect::<Vec<_>>();
    assert_eq!(single.len(), 1, "the user with one event has one row");
    let oov: Vec<i64> = jsonl(&out.join("vocab/profile.jsonl"))
        .iter()
        .filter(|v| v["value"].is_null())
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ints(&single[0]["profile"])[1..], oov, "u99 has no users.csv row: the profile's OOV ids");

    let items = jsonl(&out.join("items.jsonl"));
    assert_eq!(items.len() as i64, h("V"), "items.jsonl lists every item id");
    assert!(items
        .iter()
        .enumerate()
        .all(|(i, v)| v["item"] == i as i64 && v["cluster"].is_i64() && v["creator"].is_i64()));
    assert_eq!(items[0]["cluster"], 0, "the OOV item has the OOV cluster");
}

/// The time split cuts the sorted events once: train before valid before test, ties never
/// straddling a cut; leave-last-out holds out each user's last two events (with 3 or more).
#[test]
fn splits_follow_their_method() {
    let events = fixture_events();
    let out = scratch("split-time");
    import_fixture("mapping.toml", &out, &[]);
    let d = DataSet::load(&out);
    let times = |s: usize| d.splits[s].iter().map(|r| r["time"].as_i64().unwrap()).collect::<Vec<_>>();
    let (train, valid, test) = (times(0), times(1), times(2));
    assert!(train.iter().max() < valid.iter().min() && valid.iter().max() < test.iter().min());
    let mut sorted: Vec<i64> = events.iter().map(|e| e.time).collect();
    sorted.sort();
    let n = sorted.len();
    let at_test = n - (n as f64 * 0.15).round() as usize;
    let at_valid = at_test - (n as f64 * 0.15).round() as usize;
    let (cut_valid, cut_test) = (sorted[at_valid], sorted[at_test]);
    assert_eq!(train.len(), sorted.iter().filter(|t| **t < cut_valid).count());
    assert_eq!(test.len(), sorted.iter().filter(|t| **t >= cut_test).count());
    assert!(train.windows(2).all(|w| w[0] <= w[1]), "rows are written in time order");
    std::fs::remove_dir_all(&out).ok();

    let out = scratch("split-llo");
    let o = import_fixture("mapping_llo.toml", &out, &[]);
    assert!(stderr(&o).contains("split: leave_last_out"), "{}", stderr(&o));
    let d = DataSet::load(&out);
    for (user, evs) in by_user(&events) {
        let split_of = |s: usize| {
            d.splits[s].iter().filter(|r| d.user(r) == user).map(|r| r["time"].as_i64().unwrap()).collect::<Vec<_>>()
        };
        let (valid, test) = (split_of(1), split_of(2));
        if evs.len() < 3 {
            assert!(valid.is_empty() && test.is_empty(), "{user} has {} events: train only", evs.len());
        } else {
            assert_eq!(test, [evs[evs.len() - 1].time], "{user}: the last event is test");
            assert_eq!(valid, [evs[evs.len() - 2].time], "{user}: the one before is valid");
        }
    }
}

/// The fixture's events as JSON objects with the CSV's columns (`dwell` null where empty).
pub fn fixture_events_json() -> Vec<Value> {
    fixture_events()
        .iter()
        .map(|e| {
            let dwell = e.dwell.map_or(Value::Null, |d| serde_json::json!(d));
            serde_json::json!({"user_id": e.user, "item_id": e.item, "ts": e.time, "action": e.action, "dwell": dwell, "device": e.device})
        })
        .collect()
}

/// Every file of a data set directory, by relative path.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "vocab"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.insert(format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Two imports write the same bytes, whatever the chunk size; JSON Lines input gives the same
/// data set as CSV; nothing is left in the scratch directory.
#[test]
fn imports_are_deterministic_across_chunk_sizes_and_formats() {
    let (a, b) = (scratch("det-a"), scratch("det-b"));
    import_fixture("mapping.toml", &a, &[]);
    import_fixture("mapping.toml", &b, &["--chunk-events", "3"]);
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between chunk sizes");
    }
    assert!(!a.join(".import-tmp").exists(), "the scratch directory is removed");
    assert!(fa.keys().all(|k| !k.ends_with(".tmp")), "{:?}", fa.keys());

    let dir = scratch("det-jsonl");
    let jsonl: String = fixture_events_json().iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join("events.jsonl"), jsonl).unwrap();
    let c = scratch("det-c");
    let o = import(&dir.join("events.jsonl"), &Path::new(FIXTURE).join("mapping.toml"), &c, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let fc = files(&c);
    for name in fa.keys().filter(|k| !k.ends_with("data.toml")) {
        assert!(fa[name] == fc[name], "{name} differs between CSV and JSON Lines input");
    }
}

/// The seed specs train on an imported data set unchanged, its data.toml supplying the dims.
#[test]
fn seed_specs_train_on_imported_data() {
    let out = scratch("train");
    import_fixture("mapping.toml", &out, &[]);
    for spec in ["dfn", "retrieval_ntr"] {
        let run = out.join(format!("run-{spec}"));
        let o = recspec(&[
            "train",
            &format!("specs/{spec}.recspec"),
            "--data",
            out.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--epochs",
            "1",
            "--max-steps",
            "3",
            "--batch-size",
            "32",
            "--quiet",
        ]);
        assert_eq!(code(&o), 0, "{spec}: {}", stderr(&o));
    }
}

/// The fixture's mapping with `[output] item_buckets = buckets` (and without items.jsonl's
/// cluster and creator, which need item ids), written to `dir` with absolute table paths.
fn hashed_mapping(dir: &Path, buckets: &str) -> PathBuf {
    let fixture = crate::root().join(FIXTURE);
    let text = std::fs::read_to_string(fixture.join("mapping.toml"))
        .unwrap()
        .replace("cluster = \"genres\"\n", "")
        .replace("creator = \"creator\"\n", "")
        .replace("file = \"users.csv\"", &format!("file = {:?}", fixture.join("users.csv").display().to_string()))
        .replace("file = \"items.tsv\"", &format!("file = {:?}", fixture.join("items.tsv").display().to_string()));
    let path = dir.join("hashed.toml");
    std::fs::write(&path, format!("{text}\n[output]\nitem_buckets = {buckets}\n")).unwrap();
    path
}

/// `[output] item_buckets`: rows hold the raw item keys (the loader hashes them, `vocab V
/// hashed`), so items first seen after the training split keep their own bucket instead of
/// sharing id 0. Everything else is the numbered import's: each row's item and sequences map
/// back to it key for key.
#[test]
fn hashed_item_keys_keep_items_first_seen_after_training_apart() {
    use recspec::data::{hash_bucket, RawId};
    let dir = scratch("hashed");
    let (numbered, hashed) = (dir.join("numbered"), dir.join("hashed"));
    let o = import(&Path::new(FIXTURE).join("events.csv"), &hashed_mapping(&dir, "4096"), &hashed, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let e = stderr(&o);
    let plain =
        std::fs::read_to_string(dir.join("hashed.toml")).unwrap().replace("[output]\nitem_buckets = 4096\n", "");
    std::fs::write(dir.join("plain.toml"), plain).unwrap();
    let o = import(&Path::new(FIXTURE).join("events.csv"), &dir.join("plain.toml"), &numbered, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let (a, b) = (DataSet::load(&numbered), DataSet::load(&hashed));
    assert_eq!(b.hparams["V"], 4096);
    let key = |v: &Value| v.as_str().unwrap_or_else(|| panic!("a raw key: {v}")).to_string();
    let mut late_keys = 0;
    for (split, (ra, rb)) in a.splits.iter().zip(&b.splits).enumerate() {
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(rb) {
            assert_eq!(
                (&x["user"], &x["time"], &x["labels"], &x["fields"]),
                (&y["user"], &y["time"], &y["labels"], &y["fields"])
            );
            assert_eq!(x["item"].as_i64().unwrap(), a.item(&key(&y["item"])), "{y}");
            if split > 0 && x["item"] == 0 {
                late_keys += 1;
                let bucket = hash_bucket(RawId::Str(&key(&y["item"])), 4096);
                assert!(bucket > 0, "a late item has a bucket of its own: {y}");
            }
            for s in SEQUENCES {
                let keys: Vec<String> = y[s].as_array().unwrap().iter().map(key).collect();
                assert_eq!(ints(&x[s]), keys.iter().map(|k| a.item(k)).collect::<Vec<_>>(), "{s}: {y}");
            }
        }
    }
    assert!(late_keys >= 5, "items first seen after training: {late_keys}");

    // vocab/item.jsonl gives each training item's bucket; the summary counts shared buckets.
    let items = jsonl(&hashed.join("vocab/item.jsonl"));
    let mut per_bucket: HashMap<i64, usize> = HashMap::new();
    for v in &items {
        let bucket = v["bucket"].as_i64().unwrap();
        assert_eq!(bucket, hash_bucket(RawId::Str(v["key"].as_str().unwrap()), 4096), "{v}");
        *per_bucket.entry(bucket).or_default() += 1;
    }
    let shared = items.iter().filter(|v| per_bucket[&v["bucket"].as_i64().unwrap()] > 1).count();
    assert_eq!(items.len() as i64, a.hparams["V"] - 1, "every training item");
    let toml: toml::Table = std::fs::read_to_string(hashed.join("data.toml")).unwrap().parse().unwrap();
    assert_eq!(toml["import"]["item_buckets"].as_integer(), Some(4096));
    assert_eq!(toml["import"]["training_items_sharing_a_bucket"].as_integer(), Some(shared as i64));
    assert!(e.contains(&format!("item keys hashed into 4096 buckets: {shared} of {}", items.len())), "{e}");

    // A spec whose item inputs are declared hashed trains on it.
    let spec = dir.join("hashed.recspec");
    std::fs::write(
        &spec,
        "model hashed {\n  dim T = 6;\n  dim V = 10;\n  dim D = 8;\n  input item: id[B] vocab V hashed;\n  seq clicks: id[B, T] vocab V hashed;\n  label click;\n  let items = Embedding(vocab: V, dim: D);\n  output p = sigmoid(dot(items(item), pool(items(clicks), mask: clicks.mask, mode: mean)));\n  loss click = bce(p, label: click);\n}\n",
    )
    .unwrap();
    let run = dir.join("run");
    let o = recspec(&[
        "train",
        spec.to_str().unwrap(),
        "--data",
        hashed.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--max-steps",
        "3",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
