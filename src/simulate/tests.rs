//! Unit tests of the simulator: determinism, time split, histories, label rates, loadability.

use super::*;
use crate::data::{Loader, Schema};
use crate::overrides::{Override, OverrideValue};
use serde_json::Value;
use std::collections::BTreeMap;

/// A temporary directory removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> TmpDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TmpDir(std::env::temp_dir().join(format!("recspec-sim-{}-{tag}-{n}", std::process::id())))
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn small() -> SimConfig {
    SimConfig { users: 50, items: 200, impressions_per_user: 20, seq_len: 5, ..SimConfig::default() }
}

const SPLITS: [&str; 3] = ["train", "valid", "test"];
const FILES: [&str; 5] = ["train.jsonl", "valid.jsonl", "test.jsonl", "items.jsonl", "data.toml"];

fn rows(dir: &Path, split: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{split}.jsonl"))).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn same_seed_same_bytes() {
    let (a, b, c) = (TmpDir::new("det-a"), TmpDir::new("det-b"), TmpDir::new("det-c"));
    let sa = simulate(&small(), &a.0).unwrap();
    let sb = simulate(&small(), &b.0).unwrap();
    assert_eq!(sa.splits, sb.splits);
    for f in FILES {
        let (x, y) = (std::fs::read(a.0.join(f)).unwrap(), std::fs::read(b.0.join(f)).unwrap());
        assert!(x == y, "{f} differs between two runs with one seed");
        assert!(!a.0.join(format!("{f}.tmp")).exists());
    }
    simulate(&SimConfig { seed: 8, ..small() }, &c.0).unwrap();
    assert_ne!(std::fs::read(a.0.join("train.jsonl")).unwrap(), std::fs::read(c.0.join("train.jsonl")).unwrap());
}

#[test]
fn splits_follow_time() {
    let d = TmpDir::new("split");
    let s = simulate(&small(), &d.0).unwrap();
    let mut last_max = 0;
    let mut total = 0;
    for split in SPLITS {
        let r = rows(&d.0, split);
        assert_eq!(r.len(), s.split(split).unwrap().rows);
        total += r.len();
        let times: Vec<u64> = r.iter().map(|v| v["time"].as_u64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{split} is not in time order");
        let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        assert!(*min > last_max || last_max == 0, "{split} starts before the previous split ends");
        last_max = *max;
    }
    assert_eq!(total, 50 * 20);
    let train = s.split("train").unwrap().rows as f64 / total as f64;
    assert!((0.75..=0.81).contains(&train), "train share {train}");
    let items = std::fs::read_to_string(d.0.join("items.jsonl")).unwrap();
    assert_eq!(items.lines().count(), 200);
    assert!(s.to_string().contains("train"), "{s}");
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn last(v: &[u64], t: usize) -> Vec<u64> {
    v[v.len().saturating_sub(t)..].to_vec()
}

#[test]
fn histories_hold_earlier_impressions_of_the_same_user() {
    let d = TmpDir::new("hist");
    let cfg = small();
    simulate(&cfg, &d.0).unwrap();
    let mut all: Vec<Value> = SPLITS.iter().flat_map(|s| rows(&d.0, s)).collect();
    all.sort_by_key(|v| v["time"].as_u64().unwrap());
    let t = cfg.seq_len;
    let mut seen: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    let mut checked_nonempty = 0;
    for row in &all {
        let user = row["user"].as_u64().unwrap();
        let earlier = seen.entry(user).or_default();
        let item = |r: &&Value| r["item"].as_u64().unwrap();
        let with = |label: &str, want: u64| -> Vec<u64> {
            earlier.iter().filter(|r| r["labels"][label].as_u64() == Some(want)).map(item).collect()
        };
        assert_eq!(ids(&row["clicks"]), last(&with("click", 1), t));
        assert_eq!(ids(&row["unclicks"]), last(&with("click", 0), t));
        assert_eq!(ids(&row["dislikes"]), last(&with("dislike", 1), t));
        assert_eq!(ids(&row["likes"]), last(&with("like", 1), t));
        assert_eq!(ids(&row["skips"]), last(&with("skip", 1), t));
        let clicked: Vec<&&Value> = earlier.iter().filter(|r| r["labels"]["click"] == 1).collect();
        let clicked = &clicked[clicked.len().saturating_sub(t)..];
        let dwell = row["clicks.dwell"].as_array().unwrap();
        let skipped = row["clicks.skipped"].as_array().unwrap();
        assert_eq!((dwell.len(), skipped.len()), (clicked.len(), clicked.len()));
        for ((dw, sk), r) in dwell.iter().zip(skipped).zip(clicked) {
            let want = r["dwell"].as_f64().unwrap().ln_1p();
            assert!((dw.as_f64().unwrap() - want).abs() < 2e-3, "dwell {dw} vs {want}");
            assert_eq!(sk, &r["labels"]["skip"]);
        }
        // The interaction history: clicked or disliked items, with dwell and the dislike flag.
        let acted: Vec<&&Value> =
            earlier.iter().filter(|r| r["labels"]["click"] == 1 || r["labels"]["dislike"] == 1).collect();
        let acted = &acted[acted.len().saturating_sub(t)..];
        assert_eq!(ids(&row["history"]), acted.iter().map(|r| item(r)).collect::<Vec<_>>());
        let disliked: Vec<&Value> = row["history.disliked"].as_array().unwrap().iter().collect();
        let dwell = row["history.dwell"].as_array().unwrap();
        for ((flag, dw), r) in disliked.iter().zip(dwell).zip(acted) {
            assert_eq!(*flag, &r["labels"]["dislike"]);
            assert!((dw.as_f64().unwrap() - r["dwell"].as_f64().unwrap().ln_1p()).abs() < 2e-3);
        }
        checked_nonempty += usize::from(!clicked.is_empty());
        earlier.push(row);
    }
    assert!(checked_nonempty > 100);
}

#[test]
fn label_rates_are_plausible() {
    let d = TmpDir::new("rates");
    let cfg = SimConfig { users: 100, impressions_per_user: 30, ..small() };
    let s = simulate(&cfg, &d.0).unwrap();
    let rows: usize = s.splits.iter().map(|x| x.rows).sum();
    let rate = |i: usize| s.splits.iter().map(|x| x.counts[i]).sum::<usize>() as f64 / rows as f64;
    let (click, unclick, like, dislike, skip) = (rate(0), rate(1), rate(2), rate(3), rate(4));
    assert!((0.15..=0.6).contains(&click), "click rate {click}");
    assert!((click + unclick - 1.0).abs() < 1e-9);
    assert!((0.002..=0.08).contains(&dislike), "dislike rate {dislike}");
    assert!(like > 0.01 && like < click, "like rate {like}");
    assert!(skip > 0.005 && skip < click, "skip rate {skip}");
    let positive = rate(8);
    assert!(positive >= click && positive < click + 0.05, "positive rate {positive}");
}

/// DLEN's premise: the further actions follow the same latent preference as the genuine click,
/// each user with their own habits; without a preference they are rare noise.
#[test]
fn further_actions_follow_preference_with_per_user_habits() {
    let d = TmpDir::new("habits");
    simulate(&SimConfig { users: 300, impressions_per_user: 40, ..small() }, &d.0).unwrap();
    let all: Vec<Value> = SPLITS.iter().flat_map(|s| rows(&d.0, s)).collect();
    let label = |r: &Value, k: &str| r["labels"][k].as_u64().unwrap() == 1;
    for action in ["follow", "push", "comment"] {
        let rate = |clicked: bool| {
            let group: Vec<&Value> = all.iter().filter(|r| label(r, "click") == clicked).collect();
            group.iter().filter(|r| label(r, action)).count() as f64 / group.len() as f64
        };
        let (with, without) = (rate(true), rate(false));
        assert!(with > 0.03 && with > 10.0 * without, "{action}: {with} after a click, {without} without");
        // Per-user habits: the users' action rates among their clicks spread widely.
        let mut per_user: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for r in all.iter().filter(|r| label(r, "click")) {
            let e = per_user.entry(r["user"].as_u64().unwrap()).or_default();
            e.0 += 1.0;
            e.1 += f64::from(u8::from(label(r, action)));
        }
        let rates: Vec<f64> = per_user.values().filter(|(n, _)| *n >= 5.0).map(|(n, k)| k / n).collect();
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let sd = (rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64).sqrt();
        assert!(sd > 0.5 * mean, "{action}: per-user rates barely vary (mean {mean}, sd {sd})");
    }
    for r in &all {
        let profile: Vec<u64> = r["profile"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(profile[0], r["user"].as_u64().unwrap());
        assert!(profile.windows(2).all(|w| w[0] < w[1]), "profile fields use disjoint id ranges");
    }
}

/// The `[hparams]` of data.toml as overrides (through the run-config reader), keeping those the
/// spec declares (dfn has no `U`).
fn overrides(dir: &Path, spec_dims: &[String]) -> Vec<Override> {
    let text = std::fs::read_to_string(dir.join("data.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    assert!(table["simulation"]["train_rows"].as_integer().unwrap() > 0);
    let hp = table["hparams"].as_table().unwrap();
    assert_eq!(hp.keys().cloned().collect::<Vec<_>>(), ["F", "FV", "P", "PV", "T", "U", "V"]);
    let config = crate::config::load_run_config(&dir.join("data.toml")).unwrap();
    assert_eq!(config.overrides.len(), 7);
    assert!(config.overrides.iter().all(|o| matches!(o.value, OverrideValue::Int(v) if v > 0)));
    config.overrides.into_iter().filter(|o| spec_dims.contains(&o.name)).collect()
}

fn load_every_split(dir: &Path, spec: &str, text: Option<&str>) {
    let compile = |o: &[Override]| match text {
        Some(t) => crate::compile_str(spec, t, o).1,
        None => crate::compile_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join(spec), o).unwrap().1,
    };
    let plain = compile(&[]);
    let graph = plain.graph.unwrap_or_else(|| panic!("{spec}: {:#?}", plain.diagnostics));
    let dims: Vec<String> = graph.dims.iter().map(|d| d.name.clone()).collect();
    let checked = compile(&overrides(dir, &dims));
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
    let schema = Schema::from_graph(&checked.graph.unwrap()).unwrap();
    for split in SPLITS {
        let path = dir.join(format!("{split}.jsonl"));
        let mut loader = Loader::open(&path, &schema, 64, false).unwrap();
        let mut n = 0;
        while let Some(b) = loader.next_batch().unwrap_or_else(|e| panic!("{e}")) {
            n += b.len;
        }
        assert_eq!(n, rows(dir, split).len());
    }
}

#[test]
fn rows_load_against_dfn() {
    let d = TmpDir::new("dfn");
    simulate(&SimConfig { fields: 12, ..small() }, &d.0).unwrap();
    load_every_split(&d.0, "specs/dfn.recspec", None);
}

const EVERY_STREAM: &str = r#"
model every_stream {
  dim T = 30;
  dim V = 100;
  dim F = 3;
  dim FV = 100;
  dim D = 4;
  dim P = 4;
  dim PV = 100;
  input item: id[B] vocab V;
  input fields: id[B, F] vocab FV;
  input dwell: float[B];
  seq clicks: id[B, T] vocab V;
  side clicks.dwell: float[B, T];
  side clicks.skipped: float[B, T, 1];
  seq unclicks: id[B, T] vocab V;
  seq dislikes: id[B, T] vocab V;
  seq likes: id[B, T] vocab V;
  seq skips: id[B, T] vocab V;
  seq history: id[B, T] vocab V;
  side history.dwell: float[B, T];
  side history.disliked: float[B, T];
  input profile: id[B, P] vocab PV;
  label click, unclick, like, dislike, skip, follow, push, comment, positive, engaged;

  let e = Embedding(vocab: V, dim: D);
  let extra = concat(unsqueeze(clicks.dwell, axis: 2), clicks.skipped, axis: -1);
  let x = concat(e(item), flatten(Embedding(vocab: FV, dim: D)(fields), from: 1), unsqueeze(dwell, axis: 1),
                 pool(e(clicks), mask: clicks.mask, mode: mean), pool(extra, mask: clicks.mask, mode: mean),
                 pool(e(unclicks), mask: unclicks.mask, mode: mean), pool(e(dislikes), mask: dislikes.mask, mode: mean),
                 pool(e(likes), mask: likes.mask, mode: mean), pool(e(skips), mask: skips.mask, mode: mean),
                 flatten(Embedding(vocab: PV, dim: D)(profile), from: 1),
                 pool(concat(e(history), unsqueeze(history.dwell, axis: 2), unsqueeze(history.disliked, axis: 2), axis: -1),
                      mask: history.mask, mode: mean), axis: -1);
  output p = sigmoid(Linear(out: 1)(x));
  loss click = bce(p, label: click);
  loss unclick = nll(1 - p, on: unclick);
  loss like = nll(p, on: like);
  loss dislike = nll(1 - p, on: dislike);
  loss skip = nll(1 - p, on: skip);
  loss follow = nll(p, on: follow);
  loss push = nll(p, on: push);
  loss comment = nll(p, on: comment);
  loss positive = bce(p, label: positive);
  loss engaged = nll(p, on: engaged);
}
"#;

#[test]
fn rows_load_with_every_stream() {
    let d = TmpDir::new("every");
    simulate(&SimConfig { fields: 5, ..small() }, &d.0).unwrap();
    load_every_split(&d.0, "every_stream.recspec", Some(EVERY_STREAM));
}

#[test]
fn bad_configs_are_errors() {
    let d = TmpDir::new("bad");
    assert!(simulate(&SimConfig { users: 0, ..small() }, &d.0).unwrap_err().to_string().contains("users"));
    assert!(simulate(&SimConfig { accidental_click_rate: 1.5, ..small() }, &d.0).is_err());
    assert!(simulate(&SimConfig { drift: f64::NAN, ..small() }, &d.0).is_err());
    // A world smaller than its clusters and creators still simulates.
    let tiny =
        SimConfig { users: 3, items: 2, clusters: 5, creators: 1, impressions_per_user: 4, fields: 1, ..small() };
    assert_eq!(simulate(&tiny, &d.0).unwrap().splits.iter().map(|s| s.rows).sum::<usize>(), 12);
}

#[test]
fn default_config_speed() {
    let d = TmpDir::new("default");
    let start = std::time::Instant::now();
    let s = simulate(&SimConfig::default(), &d.0).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let rows: usize = s.splits.iter().map(|x| x.rows).sum();
    let bytes: u64 = FILES.iter().map(|f| std::fs::metadata(d.0.join(f)).unwrap().len()).sum();
    eprintln!("{s}\ndefault config: {rows} rows in {secs:.2} s ({:.0} rows/s), {bytes} bytes", rows as f64 / secs);
    assert_eq!(rows, 2000 * 60);
}

#[test]
fn the_raw_log_is_deterministic_and_complete() {
    let (a, b) = (TmpDir::new("raw-a"), TmpDir::new("raw-b"));
    let cfg = SimConfig { fields: 10, ..small() };
    let sa = simulate_raw(&cfg, &a.0).unwrap();
    simulate_raw(&cfg, &b.0).unwrap();
    assert_eq!(sa.events, 50 * 20);
    for f in ["events.csv", "users.csv", "items.csv", "features.recspec"] {
        let (x, y) = (std::fs::read(a.0.join(f)).unwrap(), std::fs::read(b.0.join(f)).unwrap());
        assert!(x == y, "{f} differs between two runs with one seed");
        assert!(!a.0.join(format!("{f}.tmp")).exists());
    }
    let events = std::fs::read_to_string(a.0.join("events.csv")).unwrap();
    let header: Vec<&str> = events.lines().next().unwrap().split(',').collect();
    assert_eq!(header.len(), EVENT_COLUMNS.len() + 2, "{header:?}");
    assert_eq!(header[13..], ["cross_8", "cross_9"]);
    assert_eq!(events.lines().count(), 1 + 50 * 20);
    assert!(events.lines().skip(1).all(|l| l.split(',').count() == header.len()));
    assert_eq!(std::fs::read_to_string(a.0.join("users.csv")).unwrap().lines().count(), 1 + 50);
    assert_eq!(std::fs::read_to_string(a.0.join("items.csv")).unwrap().lines().count(), 1 + 200);
    let set = std::fs::read_to_string(a.0.join("features.recspec")).unwrap();
    assert!(set.contains("dim T = 5;") && set.contains("dim F = 10;") && set.contains("\"cross_9\","), "{set}");
}
