//! `recspec simulate --raw`: the simulated raw log and its generated feature set import to the
//! rows `recspec simulate` writes directly, up to how ids are numbered, and every seed spec reads
//! that data set unchanged. This is the main job's route (README), so the data set the seed specs
//! train on there is made by feature declarations.

use super::scratch;
use crate::cli::{code, recspec, stderr};
use crate::root;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;

const SIM: [&str; 10] = ["--users", "60", "--items", "150", "--impressions", "30", "--seq-len", "5", "--fields", "10"];

fn run(args: &[&str]) {
    let o = recspec(args);
    assert_eq!(code(&o), 0, "recspec {args:?}: {}", stderr(&o));
}

fn rows(dir: &Path, split: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{split}.jsonl"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// One renumbering per id space: every simulator id meets one import id, and every import id
/// but the space's out-of-vocabulary one stands for one simulator id.
struct Renumbering {
    to_import: HashMap<(String, u64), u64>,
    to_sim: HashMap<(String, u64), u64>,
    /// The out-of-vocabulary id of each space, as the import's vocabulary files give them.
    unknown: HashSet<(String, u64)>,
    oov: usize,
}

impl Renumbering {
    /// Items and users have 0; a field's or profile column's out-of-vocabulary id is its
    /// `"value": null` line in `vocab/fields.jsonl` or `vocab/profile.jsonl`, the columns in the
    /// order the rows hold them (a profile's first entry is the user).
    fn new(data: &Path) -> Renumbering {
        let mut unknown: HashSet<(String, u64)> = [("item".to_string(), 0), ("user".to_string(), 0)].into();
        for (file, space, first) in [("fields", "field", 0), ("profile", "profile", 1)] {
            let text = std::fs::read_to_string(data.join("vocab").join(format!("{file}.jsonl"))).unwrap();
            let mut columns: Vec<String> = vec![];
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                let column = v["column"].as_str().unwrap().to_string();
                if !columns.contains(&column) {
                    columns.push(column.clone());
                }
                if v["value"].is_null() {
                    let k = first + columns.iter().position(|c| *c == column).unwrap();
                    unknown.insert((format!("{space} {k}"), v["id"].as_u64().unwrap()));
                }
            }
        }
        Renumbering { to_import: HashMap::new(), to_sim: HashMap::new(), unknown, oov: 0 }
    }

    fn same(&mut self, space: &str, sim: &Value, imported: &Value, at: &str) {
        let (s, i) = (sim.as_u64().unwrap(), imported.as_u64().unwrap());
        let before = *self.to_import.entry((space.to_string(), s)).or_insert(i);
        assert_eq!(before, i, "{at}: {space} {s} was imported as {before}, here as {i}");
        if self.unknown.contains(&(space.to_string(), i)) {
            self.oov += 1;
            return;
        }
        let back = *self.to_sim.entry((space.to_string(), i)).or_insert(s);
        assert_eq!(back, s, "{at}: {space} id {i} stands for {back} and for {s}");
    }

    fn all(&mut self, space: &str, sim: &Value, imported: &Value, at: &str) {
        let (s, i) = (sim.as_array().unwrap(), imported.as_array().unwrap());
        assert_eq!(s.len(), i.len(), "{at}: lengths differ");
        for (a, b) in s.iter().zip(i) {
            self.same(space, a, b, at);
        }
    }
}

#[test]
fn the_raw_log_imports_to_the_simulators_rows() {
    let dir = scratch("simulated");
    let (numbered, raw, imported) = (dir.join("numbered"), dir.join("raw"), dir.join("imported"));
    let at = |p: &Path| p.to_str().unwrap().to_string();
    let mut args = vec!["simulate", "--out"];
    let numbered_s = at(&numbered);
    args.push(&numbered_s);
    args.extend(SIM);
    run(&args);
    let raw_s = at(&raw);
    let mut args = vec!["simulate", "--raw", "--out", &raw_s];
    args.extend(SIM);
    run(&args);
    let set = at(&raw.join("features.recspec"));
    run(&["import", "--features", &set, "--out", &at(&imported), "--quiet"]);

    let mut ids = Renumbering::new(&imported);
    let mut compared = 0;
    for split in ["train", "valid", "test"] {
        let (a, b) = (rows(&numbered, split), rows(&imported, split));
        assert_eq!(a.len(), b.len(), "{split}: row counts");
        for (n, (x, y)) in a.iter().zip(&b).enumerate() {
            let at = format!("{split}.jsonl:{}", n + 1);
            assert_eq!(x["time"], y["time"], "{at}");
            assert_eq!(x["labels"], y["labels"], "{at}");
            ids.same("user", &x["user"], &y["user"], &at);
            ids.same("item", &x["item"], &y["item"], &at);
            for seq in ["clicks", "unclicks", "dislikes", "likes", "skips", "history"] {
                ids.all("item", &x[seq], &y[seq], &format!("{at} {seq}"));
            }
            for flag in ["clicks.skipped", "history.disliked"] {
                assert_eq!(x[flag], y[flag], "{at} {flag}");
            }
            for dwell in ["clicks.dwell", "history.dwell"] {
                let (p, q) = (x[dwell].as_array().unwrap(), y[dwell].as_array().unwrap());
                assert_eq!(p.len(), q.len(), "{at} {dwell}");
                for (u, v) in p.iter().zip(q) {
                    let (u, v) = (u.as_f64().unwrap(), v.as_f64().unwrap());
                    // The simulator rounds ln(1 + dwell), the import reads dwell rounded.
                    assert!((u - v).abs() <= 2e-3, "{at} {dwell}: {u} vs {v}");
                }
            }
            // A field's ids and a profile column's are one space each.
            let (f, g) = (x["fields"].as_array().unwrap(), y["fields"].as_array().unwrap());
            assert_eq!(f.len(), 10, "{at}: fields");
            assert_eq!(f.len(), g.len(), "{at}: fields");
            for (k, (u, v)) in f.iter().zip(g).enumerate() {
                ids.same(&format!("field {k}"), u, v, &at);
            }
            let (p, q) = (x["profile"].as_array().unwrap(), y["profile"].as_array().unwrap());
            assert_eq!(p.len(), q.len(), "{at}: profile");
            ids.same("user", &p[0], &q[0], &at);
            for (k, (u, v)) in p.iter().zip(q).enumerate().skip(1) {
                ids.same(&format!("profile {k}"), u, v, &at);
            }
            // Everything a seed spec reads is compared above; `dwell` of the impression itself
            // is written by the simulator only and read by no spec.
            for key in x.as_object().unwrap().keys() {
                assert!(key == "dwell" || y.get(key).is_some(), "{at}: the import has no `{key}`");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 60 * 30);
    // Values first seen after the training split share their space's out-of-vocabulary id;
    // the rest were renumbered one to one.
    assert_eq!(ids.unknown.len(), 2 + 10 + 3, "out-of-vocabulary ids of items, users, 10 fields and 3 profile columns");
    assert!(ids.oov < compared, "{} of {compared} ids were out of vocabulary", ids.oov);
    assert!(ids.to_sim.len() > 150, "{} ids renumbered", ids.to_sim.len());
}

/// Every seed spec reads the simulated feature set's data set: each input and label has its
/// feature, and the set's dims agree with the model's.
#[test]
fn every_seed_spec_reads_the_simulated_features() {
    let dir = scratch("simulated-specs");
    let raw = dir.join("raw");
    run(&["simulate", "--raw", "--out", raw.to_str().unwrap()]);
    let set = raw.join("features.recspec");
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("specs")).unwrap() {
        let spec = entry.unwrap().path();
        if spec.extension().is_none_or(|e| e != "recspec") {
            continue;
        }
        let o = recspec(&["check", spec.to_str().unwrap(), "--features", set.to_str().unwrap(), "--deny-warnings"]);
        assert_eq!(code(&o), 0, "{}: {}", spec.display(), stderr(&o));
        seen += 1;
    }
    assert!(seen >= 14, "{seen} specs");
    let o = recspec(&["fmt", "--check", set.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "the generated set is formatted: {}", stderr(&o));
}
