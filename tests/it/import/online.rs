//! `import::online`: the rows a server builds from raw events are the import's rows. Each
//! fixture event, in time order, is turned into a row from the events posted before it (the
//! user's stored raw events, trimmed as a server trims them) and compared byte for byte with
//! the row `recspec import` wrote for it; then it is posted.

use super::{scratch, FIXTURE};
use crate::cli::{code, recspec, stderr};
use recspec::import::online::{RawEvent, Request};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// The fixture's events in the import's order (time, then file row), as JSON objects of text;
/// and the file's header.
pub(crate) fn events_in_time_order() -> (Vec<String>, Vec<Map<String, Value>>) {
    let mut reader = csv::Reader::from_path(Path::new(FIXTURE).join("events.csv")).unwrap();
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
    let mut events: Vec<(f64, usize, Map<String, Value>)> = vec![];
    for (row, record) in reader.records().enumerate() {
        let record = record.unwrap();
        let object: Map<String, Value> =
            headers.iter().zip(record.iter()).map(|(h, v)| (h.clone(), Value::String(v.to_string()))).collect();
        events.push((record[2].parse().unwrap(), row, object));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    (headers, events.into_iter().map(|(_, _, o)| o).collect())
}

/// Imports the fixture with the feature set `set` and replays its events through a featurizer
/// loaded from the data set: every row must be the import's.
fn replay_gives_the_import_rows(name: &str, set_path: &Path) {
    let out = scratch(&format!("online-{name}"));
    let set = name;
    let o = recspec(&["import", "--features", set_path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let set_path = &set_path.to_path_buf();
    let imported: Vec<String> = ["train", "valid", "test"]
        .iter()
        .flat_map(|s| {
            std::fs::read_to_string(out.join(format!("{s}.jsonl")))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let f = recspec::app::dataset::featurizer(&out, Some(set_path)).unwrap();
    let (_, events) = events_in_time_order();
    assert_eq!(events.len(), imported.len());
    let mut state: HashMap<String, Vec<RawEvent>> = HashMap::new();
    let mut longest = 0;
    for (n, (object, want)) in events.iter().zip(&imported).enumerate() {
        let user = object["user_id"].as_str().unwrap().to_string();
        let items = vec![object["item_id"].as_str().unwrap().to_string()];
        let mut context = object.clone();
        context.remove("user_id");
        context.remove("item_id");
        let history = state.entry(user.clone()).or_default();
        let rows = f.rows(&Request { user: &user, items: &items, context: &context }, history).unwrap();
        assert_eq!(&rows[0], want, "{set}: event {n} (user {user})");
        let (posted_user, raw) = f.parse_event(object).unwrap();
        assert_eq!(posted_user, user);
        f.insert(history, raw);
        longest = longest.max(history.len());
    }
    // Users have more events than the sequences keep, so the stored events were trimmed.
    let most = events.iter().fold(HashMap::new(), |mut m: HashMap<&str, usize>, e| {
        *m.entry(e["user_id"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert!(longest < *most.values().max().unwrap(), "{set}: kept {longest} events, every one of the busiest user's");
}

#[test]
fn a_featurizer_over_raw_events_writes_the_import_rows() {
    let fixture = crate::root().join(FIXTURE);
    // The mapping's kinds (fields, profile, six sequences with sides), with sequences of 2 so that
    // a user's stored events are trimmed; and the ranker's fitted kinds.
    let dir = scratch("online-sets");
    let text = std::fs::read_to_string(fixture.join("features.recspec")).unwrap().replace("dim T = 6;", "dim T = 2;");
    let short = dir.join("short.recspec");
    let mut absolute = text;
    for f in ["events.csv", "users.csv", "items.tsv"] {
        absolute = absolute.replace(&format!("\"{f}\""), &format!("{:?}", fixture.join(f).display().to_string()));
    }
    std::fs::write(&short, absolute).unwrap();
    replay_gives_the_import_rows("short", &short);
    replay_gives_the_import_rows("ranker", &fixture.join("ranker.recspec"));
}

/// Posted events are checked as the import checks a row, naming the field.
#[test]
fn bad_raw_events_are_named() {
    let out = scratch("online-bad");
    let set_path = Path::new(FIXTURE).join("ranker.recspec");
    let o = recspec(&["import", "--features", set_path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let f = recspec::app::dataset::featurizer(&out, Some(&set_path)).unwrap();
    let good = serde_json::json!({"user_id": "u04", "item_id": "i036", "ts": 1000500, "action": "click", "dwell": "7", "device": "tablet"});
    assert!(f.parse_event(good.as_object().unwrap()).is_ok());
    for (change, says) in [
        (("ts", Value::String("soon".into())), "`ts`"),
        (("dwell", Value::String("long".into())), "`dwell`"),
        (("colour", Value::String("red".into())), "`colour` is not a column"),
        (("device", serde_json::json!({"a": 1})), "`device` must be text"),
    ] {
        let mut bad = good.as_object().unwrap().clone();
        bad.insert(change.0.to_string(), change.1);
        let why = f.parse_event(&bad).unwrap_err();
        assert!(why.contains(says), "{why}");
    }
    let mut no_time = good.as_object().unwrap().clone();
    no_time.remove("ts");
    assert_eq!(f.parse_event(&no_time).unwrap_err(), "no `ts`");
}
