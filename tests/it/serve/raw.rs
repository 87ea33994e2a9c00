//! Raw requests, proven to score as evaluation did: a fresh server is given the training and
//! validation events of the import fixture (`--load-events`); then each test event, in time
//! order, is scored by a raw request (`{"user", "items", "context"}`) and posted to `/events`.
//! Every score must equal `recspec eval --predictions` on that event's test row. The server
//! builds the rows itself, from raw keys and its stored events; nothing of the data set's rows
//! reaches it.

use super::{agent, Server};
use crate::cli::{code, recspec, stderr};
use crate::Scratch;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

const FIXTURE: &str = "tests/data/import";

/// The fixture's events in the import's order (time, then file row), as objects of text.
fn events_in_time_order() -> (Vec<String>, Vec<Map<String, Value>>) {
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

fn csv_of(headers: &[String], events: &[Map<String, Value>]) -> String {
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(headers).unwrap();
    for e in events {
        w.write_record(headers.iter().map(|h| e[h].as_str().unwrap())).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Imports the fixture with `set`, trains `spec` a few steps, and checks raw serving against
/// `recspec eval --predictions` on every test event; returns the largest difference.
fn raw_scores_equal_eval(dir: &Path, set: &Path, spec: &str) -> f32 {
    let data = dir.join("data");
    let o = recspec(&["import", "--features", set.to_str().unwrap(), "--out", data.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let run = dir.join("run");
    let o = recspec(&[
        "train",
        spec,
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--max-steps",
        "6",
        "--batch-size",
        "32",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let predictions = dir.join("predictions.jsonl");
    let o = recspec(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        predictions.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let predictions = lines(&predictions);

    let (headers, events) = events_in_time_order();
    let earlier = lines(&data.join("train.jsonl")).len() + lines(&data.join("valid.jsonl")).len();
    assert_eq!(events.len() - earlier, predictions.len(), "one test row per remaining event");
    let before: PathBuf = dir.join("before.csv");
    std::fs::write(&before, csv_of(&headers, &events[..earlier])).unwrap();
    let state = dir.join("state.redb");
    let server = Server::start(
        &run,
        &[
            "--data",
            data.to_str().unwrap(),
            "--features",
            set.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--load-events",
            before.to_str().unwrap(),
        ],
    );
    let agent = agent();
    let mut worst = 0f32;
    let mut streams_seen = 0;
    for (n, (event, expected)) in events[earlier..].iter().zip(&predictions).enumerate() {
        let mut context = event.clone();
        let user = context.remove("user_id").unwrap();
        let item = context.remove("item_id").unwrap();
        let body = json!({ "user": user, "items": [item], "context": context }).to_string();
        let (status, answer) = server.post(&agent, "/score", &body);
        assert_eq!(status, 200, "test event {n}: {answer}");
        assert_eq!(answer["items"], json!([item]), "{answer}");
        let streams = answer["streams"].as_array().unwrap();
        for (s, score) in streams.iter().zip(answer["scores"][0].as_array().unwrap()) {
            let served = score.as_f64().unwrap() as f32;
            let eval = expected["scores"][s.as_str().unwrap()].as_f64().unwrap() as f32;
            let d = crate::max_difference(&[served], &[eval]);
            assert!(d <= 1e-6, "test event {n}, stream {s}: served {served}, recspec eval {eval}");
            worst = worst.max(d);
            streams_seen += 1;
        }
        let (status, answer) = server.post(&agent, "/events", &json!({ "events": [event] }).to_string());
        assert_eq!((status, &answer["stored"]), (200, &json!(1)), "{answer}");
    }
    assert!(streams_seen >= predictions.len(), "every test event was compared");
    worst
}

#[test]
fn raw_requests_score_every_test_event_as_recspec_eval_does() {
    let fixture = crate::root().join(FIXTURE);
    let dir = Scratch::new("serve-raw-dfn");
    let dfn = raw_scores_equal_eval(&dir, &fixture.join("features.recspec"), "specs/dfn.recspec");
    let dir = Scratch::new("serve-raw-ranker");
    let ranker_set = fixture.join("ranker.recspec");
    let ranker = raw_scores_equal_eval(&dir, &ranker_set, ranker_set.to_str().unwrap());
    eprintln!("raw serving vs recspec eval, largest score difference: DFN {dfn:e}, ranker {ranker:e}");
}

/// Bad events get a 400 naming the event and field, store nothing of their request, and the
/// server keeps serving; acknowledged events survive `kill -9` and a restart on the same state.
#[test]
fn bad_events_are_refused_and_acknowledged_events_survive_a_kill() {
    let dir = Scratch::new("serve-raw-kill");
    let fixture = crate::root().join(FIXTURE);
    let set = fixture.join("ranker.recspec");
    let data = dir.join("data");
    let o = recspec(&["import", "--features", set.to_str().unwrap(), "--out", data.to_str().unwrap(), "--quiet"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let run = dir.join("run");
    let o = recspec(&[
        "train",
        set.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let state = dir.join("state.redb");
    let args = ["--data", data.to_str().unwrap(), "--state", state.to_str().unwrap()];
    let server = Server::start(&run, &args);
    let agent = agent();
    let event = |item: &str, ts: i64| json!({"user_id": "u04", "item_id": item, "ts": ts, "action": "click", "dwell": "12", "device": "tablet"});
    let score_body = json!({"user": "u04", "items": ["i001", "i002"], "context": {"device": "tablet"}}).to_string();
    let (_, fresh) = server.post(&agent, "/score", &score_body);
    for (bad, says) in [
        (json!({"user_id": "u04", "item_id": "i001", "ts": "soon"}), "event 1: the time column `ts` is \"soon\""),
        (json!({"user_id": "u04", "item_id": "i001", "ts": 5, "colour": "red"}), "event 1: `colour` is not a column"),
        (json!({"user_id": "u04", "item_id": "i001"}), "event 1: no `ts`"),
        (json!({"user_id": "u04", "item_id": "i001", "ts": 5, "dwell": [[1]]}), "event 1: `dwell` must be text"),
        (json!({"user_id": "u04", "item_id": "i001", "ts": 5, "action": "click", "dwell": "x"}), "`dwell`"),
    ] {
        let (status, answer) =
            server.post(&agent, "/events", &json!({ "events": [event("i009", 10), bad] }).to_string());
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (_, unchanged) = server.post(&agent, "/score", &score_body);
    assert_eq!(unchanged["scores"], fresh["scores"], "a refused request stored nothing");
    let (status, answer) = server.post(&agent, "/score", r#"{"user": "u04", "items": "i001"}"#);
    assert_eq!(status, 400, "{answer}");
    // Acknowledged events, then a kill without warning.
    for k in 0..5 {
        let (status, answer) =
            server.post(&agent, "/events", &json!({ "events": [event(&format!("i00{k}"), 100 + k)] }).to_string());
        assert_eq!(status, 200, "{answer}");
    }
    let (_, before) = server.post(&agent, "/score", &score_body);
    assert_ne!(before["scores"], fresh["scores"], "the clicks changed the user's history");
    drop(server); // SIGKILL
    let server = Server::start(&run, &args);
    let (_, after) = server.post(&agent, "/score", &score_body);
    assert_eq!(after["scores"], before["scores"], "every acknowledged event survived the kill");
    let health: Value = serde_json::from_str(&server.get(&agent, "/health")).unwrap();
    assert_eq!(health["raw"]["users"], json!(1), "{health}");
}
