//! Raw requests, proven to score as evaluation did: a fresh server is given the training and
//! validation events of the import fixture (`--load-events`); then each test event, in time
//! order, is scored by a raw request (`{"user", "items", "context"}`) and posted to `/events`.
//! Every score must equal `recspec eval --predictions` on that event's test row. The server
//! builds the rows itself, from raw keys and its stored events; nothing of the data set's rows
//! reaches it.

use super::{agent, Server};
use crate::cli::{code, recspec, stderr};
use crate::import::online::events_in_time_order;
use crate::Scratch;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

const FIXTURE: &str = "tests/data/import";

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

/// `recspec import --features SET --out DIR/data`, then `recspec train SPEC` on it for `steps`
/// steps into DIR/run: the data set and the run.
fn imported_and_trained(dir: &Path, set: &Path, spec: &str, steps: &str) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let o = crate::import::import_set(None, set, &data, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let run = dir.join("run");
    let o = crate::import::train_briefly(Path::new(spec), &data, &run, steps, &["--batch-size", "32"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    (data, run)
}

/// A server for the run `run` of data set `data` (imported with `features`, when given as a
/// flag), its state in DIR/state.redb filled with the fixture's training and validation events
/// (`--load-events`); the fixture's events in time order and how many of them it was given.
fn serving_earlier_events(
    dir: &Path,
    run: &Path,
    data: &Path,
    features: Option<&Path>,
) -> (Server, Vec<Map<String, Value>>, usize) {
    let (headers, events) = events_in_time_order();
    let earlier = lines(&data.join("train.jsonl")).len() + lines(&data.join("valid.jsonl")).len();
    let before = dir.join("before.csv");
    std::fs::write(&before, csv_of(&headers, &events[..earlier])).unwrap();
    let state = dir.join("state.redb");
    let mut args = vec!["--data", data.to_str().unwrap()];
    if let Some(f) = features {
        args.extend(["--features", f.to_str().unwrap()]);
    }
    args.extend(["--state", state.to_str().unwrap(), "--load-events", before.to_str().unwrap()]);
    (Server::start(run, &args), events, earlier)
}

/// Imports the fixture with `set`, trains `spec` a few steps, and checks raw serving against
/// `recspec eval --predictions` on every test event; returns the largest difference.
fn raw_scores_equal_eval(dir: &Path, set: &Path, spec: &str) -> f32 {
    let (data, run) = imported_and_trained(dir, set, spec, "6");
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

    let (server, events, earlier) = serving_earlier_events(dir, &run, &data, Some(set));
    assert_eq!(events.len() - earlier, predictions.len(), "one test row per remaining event");
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
    let (data, run) = imported_and_trained(&dir, &set, set.to_str().unwrap(), "2");
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

/// A retrieval run: raw `/recommend` for each test event (scored, then posted) answers the
/// item keys and scores `recspec recommend` gives that event's test row, with and without
/// `exclude_consumed` (the out-of-vocabulary id 0, which is no catalogue key, left out).
#[test]
fn raw_recommend_ranks_keys_as_recspec_recommend_ranks_ids() {
    let dir = Scratch::new("serve-raw-ntr");
    let set = crate::root().join(FIXTURE).join("features.recspec");
    let (data, run) = imported_and_trained(&dir, &set, "specs/retrieval_ntr.recspec", "6");
    let keys: Vec<String> =
        lines(&data.join("vocab/item.jsonl")).iter().map(|l| l["key"].as_str().unwrap().to_string()).collect();
    let k = 5;
    let expected = |exclude: bool| -> Vec<Vec<(String, f64)>> {
        let mut args = vec!["recommend", run.to_str().unwrap(), "--user-history"];
        let test = data.join("test.jsonl");
        args.push(test.to_str().unwrap());
        args.extend(["--k", "6"]);
        if exclude {
            args.push("--exclude-consumed");
        }
        let o = recspec(&args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        crate::cli::stdout(&o)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let ids = v["items"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize);
                let scores = v["scores"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap());
                ids.zip(scores).filter(|(id, _)| *id > 0).map(|(id, s)| (keys[id - 1].clone(), s)).take(k).collect()
            })
            .collect()
    };
    let (plain, excluding) = (expected(false), expected(true));
    let (server, events, earlier) = serving_earlier_events(&dir, &run, &data, None);
    assert_eq!(events.len() - earlier, plain.len());
    let agent = agent();
    let mut differed = 0;
    for (n, event) in events[earlier..].iter().enumerate() {
        let mut context = event.clone();
        let user = context.remove("user_id").unwrap();
        context.remove("item_id");
        for (exclude, want) in [(false, &plain[n]), (true, &excluding[n])] {
            let body = json!({ "user": user, "k": k, "exclude_consumed": exclude, "context": context }).to_string();
            let (status, answer) = server.post(&agent, "/recommend", &body);
            assert_eq!(status, 200, "test event {n}: {answer}");
            let got: Vec<(String, f64)> = answer["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["item"].as_str().unwrap().to_string(), p["score"].as_f64().unwrap()))
                .collect();
            assert_eq!(got.len(), want.len(), "test event {n}: {answer}");
            for ((gk, gs), (wk, ws)) in got.iter().zip(want) {
                assert_eq!(gk, wk, "test event {n}, exclude_consumed {exclude}: {got:?} vs {want:?}");
                let d = crate::max_difference(&[*gs as f32], &[*ws as f32]);
                assert!(d <= 1e-6, "test event {n}: {gk} scored {gs}, recspec recommend {ws}");
            }
        }
        differed += usize::from(plain[n] != excluding[n]);
        let (status, answer) = server.post(&agent, "/events", &json!({ "events": [event] }).to_string());
        assert_eq!(status, 200, "{answer}");
    }
    assert!(differed > 0, "excluding consumed items changed some lists");
}

/// Hashed items (`item(buckets: N)`, `vocab V hashed`): raw `/recommend` ranks the catalogue's
/// keys by their buckets' scores, and `exclude_consumed` leaves out the keys of the history,
/// not ids (the stored history holds keys). The expectation is built apart from the server's
/// ranking: every bucket's score from a numbered `/recommend` of the same user's test row (all
/// buckets, nothing excluded), the keys sorted by it, the history's keys dropped.
#[test]
fn raw_recommend_with_hashed_items_ranks_and_excludes_keys() {
    let dir = Scratch::new("serve-raw-hashed");
    let fixture = crate::root().join(FIXTURE);
    let mut set = std::fs::read_to_string(fixture.join("features.recspec"))
        .unwrap()
        .replace("feature item = item();", "feature item = item(buckets: 64);")
        .replace("  source items(\"items.tsv\", key: \"item_id\", cluster: \"genres\", creator: \"creator\");\n", "")
        .replace(", \"item.genres\", \"item.creator\"", "");
    for f in ["events.csv", "users.csv"] {
        set = set.replace(&format!("\"{f}\""), &format!("{:?}", fixture.join(f).display().to_string()));
    }
    let set_path = dir.join("hashed.recspec");
    std::fs::write(&set_path, set).unwrap();
    let spec = dir.join("ntr_hashed.recspec");
    let text = std::fs::read_to_string("specs/retrieval_ntr.recspec").unwrap().replace("vocab V;", "vocab V hashed;");
    std::fs::write(&spec, text).unwrap();
    let (data, run) = imported_and_trained(&dir, &set_path, spec.to_str().unwrap(), "4");
    let catalogue: Vec<(String, usize)> = lines(&data.join("vocab/item.jsonl"))
        .iter()
        .map(|l| (l["key"].as_str().unwrap().to_string(), l["bucket"].as_u64().unwrap() as usize))
        .collect();
    let test_rows = lines(&data.join("test.jsonl"));
    let (server, events, earlier) = serving_earlier_events(&dir, &run, &data, None);
    assert_eq!(events.len() - earlier, test_rows.len());
    let agent = agent();
    // The first test event: its row's history is the user's stored events before it.
    let event = &events[earlier];
    let row = &test_rows[0];
    let history: Vec<&str> = row["history"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert!(!history.is_empty(), "the first test user has a history: {row}");
    let (status, all) = server.post(&agent, "/recommend", &json!({ "rows": [row], "k": 64 }).to_string());
    assert_eq!(status, 200, "{all}");
    let mut bucket_score = vec![f64::NAN; 64];
    for p in all["items"][0].as_array().unwrap() {
        bucket_score[p["item"].as_u64().unwrap() as usize] = p["score"].as_f64().unwrap();
    }
    // The numbered form with exclude_consumed bans the buckets of the row's history keys.
    let consumed: std::collections::BTreeSet<usize> =
        history.iter().map(|k| recspec::data::hash_bucket(recspec::data::RawId::Str(k), 64) as usize).collect();
    let body = json!({ "rows": [row], "k": 64, "exclude_consumed": true }).to_string();
    let (status, numbered) = server.post(&agent, "/recommend", &body);
    assert_eq!(status, 200, "{numbered}");
    let buckets: Vec<usize> =
        numbered["items"][0].as_array().unwrap().iter().map(|p| p["item"].as_u64().unwrap() as usize).collect();
    assert!(consumed.iter().all(|b| !buckets.contains(b)), "consumed buckets {consumed:?} in {buckets:?}");
    assert_eq!(buckets.len(), 64 - consumed.len(), "every other bucket is ranked");
    let mut context = event.clone();
    let user = context.remove("user_id").unwrap();
    context.remove("item_id");
    for exclude in [false, true] {
        let mut want: Vec<(usize, &str, f64)> = catalogue
            .iter()
            .enumerate()
            .filter(|(_, (key, _))| !(exclude && history.contains(&key.as_str())))
            .map(|(i, (key, b))| (i, key.as_str(), bucket_score[*b]))
            .collect();
        want.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        // Every key: the consumed ones are present without the exclusion and absent with it.
        let k = catalogue.len();
        let body = json!({ "user": user, "k": k, "exclude_consumed": exclude, "context": context }).to_string();
        let (status, answer) = server.post(&agent, "/recommend", &body);
        assert_eq!(status, 200, "{answer}");
        let got: Vec<&str> = answer["items"].as_array().unwrap().iter().map(|p| p["item"].as_str().unwrap()).collect();
        let want: Vec<&str> = want.iter().map(|w| w.1).collect();
        assert_eq!(got, want, "exclude_consumed {exclude}");
        if exclude {
            assert!(got.iter().all(|k| !history.contains(k)), "{got:?} holds a consumed key");
        } else {
            assert!(got.iter().any(|k| history.contains(k)), "consumed keys are ranked without the exclusion: {got:?}");
        }
    }
}

/// A `redis-server` on a free loopback port, with no persistence, stopped on drop. A machine
/// without it fails the test (the README's test command installs it) unless
/// `RECSPEC_SKIP_REDIS=1` says to skip, loudly.
struct RedisServer {
    child: std::process::Child,
    url: String,
}

impl RedisServer {
    fn start(dir: &Path) -> Option<RedisServer> {
        let found = std::process::Command::new("redis-server").arg("--version").output().is_ok();
        if !found {
            assert!(
                std::env::var("RECSPEC_SKIP_REDIS").as_deref() == Ok("1"),
                "redis-server is not installed (apt-get install redis-server, as scripts/test.sh does); \
                 RECSPEC_SKIP_REDIS=1 skips the Redis tests"
            );
            eprintln!("!!! SKIPPED: no redis-server (RECSPEC_SKIP_REDIS=1)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(RedisServer { child, url: format!("redis://127.0.0.1:{port}/") })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two servers on one Redis see one state: events posted to either, sequentially and
/// concurrently, give both servers the scores a server with an embedded store gets from the
/// same events.
#[test]
fn two_servers_on_one_redis_score_a_user_identically() {
    let dir = Scratch::new("serve-raw-redis");
    let Some(redis) = RedisServer::start(&dir) else { return };
    let set = crate::root().join(FIXTURE).join("ranker.recspec");
    let (data, run) = imported_and_trained(&dir, &set, set.to_str().unwrap(), "4");
    let d = data.to_str().unwrap();
    let a = Server::start(&run, &["--data", d, "--redis", &redis.url, "--redis-prefix", "t"]);
    let b = Server::start(&run, &["--data", d, "--redis", &redis.url, "--redis-prefix", "t"]);
    let state = dir.join("state.redb");
    let reference = Server::start(&run, &["--data", d, "--state", state.to_str().unwrap()]);
    let agent = agent();
    let (_, events) = events_in_time_order();
    let post = |server: &Server, e: &Map<String, Value>| {
        let (status, answer) = server.post(&agent, "/events", &json!({ "events": [e] }).to_string());
        assert_eq!(status, 200, "{answer}");
    };
    // The first 120 events, alternately to either replica.
    for (i, e) in events.iter().take(120).enumerate() {
        post(if i % 2 == 0 { &a } else { &b }, e);
        post(&reference, e);
    }
    // Then 100 clicks of one user at one time (a sequence keeps every event of the latest time),
    // posted at once by four clients, two to each replica: none may be lost.
    let burst = 2_000_000;
    let click = |k: usize| -> Map<String, Value> {
        let e = json!({"user_id": "u04", "item_id": format!("i{:03}", 1 + k % 50), "ts": burst,
                       "action": "click", "dwell": "9", "device": "phone"});
        e.as_object().unwrap().clone()
    };
    std::thread::scope(|s| {
        for client in 0..4 {
            let (post, server) = (&post, if client % 2 == 0 { &a } else { &b });
            s.spawn(move || (0..100).filter(|k| k % 4 == client).for_each(|k| post(server, &click(k))));
        }
    });
    (0..100).for_each(|k| post(&reference, &click(k)));
    let at_burst = |server: &Server| -> Vec<String> {
        let state: Value = serde_json::from_str(&server.get(&agent, "/state?user=u04")).unwrap();
        let mut items: Vec<String> = state["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["time"].as_f64() == Some(burst as f64))
            .map(|e| e["columns"]["item_id"].as_str().unwrap().to_string())
            .collect();
        items.sort();
        items
    };
    let (in_a, in_b, in_reference) = (at_burst(&a), at_burst(&b), at_burst(&reference));
    assert_eq!(in_reference.len(), 100);
    assert_eq!(in_a, in_reference, "an event posted to a replica was lost");
    assert_eq!(in_b, in_a);
    let users: std::collections::BTreeSet<&str> =
        events.iter().take(120).map(|e| e["user_id"].as_str().unwrap()).chain(["u04"]).collect();
    for user in users {
        // Before the burst: the burst's order of arrival differs between the stores.
        let body =
            json!({"user": user, "items": ["i001", "i017", "i042"], "context": {"device": "phone", "ts": burst}})
                .to_string();
        let answers: Vec<Value> = [&a, &b, &reference].iter().map(|s| s.post(&agent, "/score", &body).1).collect();
        assert_eq!(answers[0]["scores"], answers[1]["scores"], "user {user}: the replicas differ");
        assert_eq!(answers[0]["scores"], answers[2]["scores"], "user {user}: Redis and the embedded store differ");
    }
    let health: Value = serde_json::from_str(&a.get(&agent, "/health")).unwrap();
    let reference_health: Value = serde_json::from_str(&reference.get(&agent, "/health")).unwrap();
    assert_eq!(health["raw"]["users"], reference_health["raw"]["users"]);
}

/// Concurrent clients mix `/events` and raw `/score` for about two seconds; then the server is
/// killed (`kill -9`) while they still send. Every request answered before the kill is a 200,
/// and after a restart on the same state file every acknowledged event is there. Each event is
/// a new user's, so that none is trimmed away.
#[test]
fn a_kill_under_mixed_load_loses_no_acknowledged_event() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let dir = Scratch::new("serve-raw-load");
    let set = crate::root().join(FIXTURE).join("ranker.recspec");
    let (data, run) = imported_and_trained(&dir, &set, set.to_str().unwrap(), "2");
    let state = dir.join("state.redb");
    let args = ["--data", data.to_str().unwrap(), "--state", state.to_str().unwrap()];
    let mut server = Server::start(&run, &args);
    let killed = AtomicBool::new(false);
    let clients = 4;
    let started = Instant::now();
    // Per client: acknowledged users, latencies, and failures before the kill.
    type Outcome = (Vec<String>, Vec<f64>, Vec<String>);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (base, killed) = (server.base.clone(), &killed);
                s.spawn(move || {
                    let agent = agent();
                    let (mut acked, mut latencies, mut failures) = (vec![], vec![], vec![]);
                    for k in 0..5000 {
                        if killed.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(30) {
                            break;
                        }
                        let user = format!("load-{c}-{k}");
                        let (path, body) = if k % 2 == 0 {
                            let e = json!({"user_id": user, "item_id": format!("i{:03}", 1 + k % 50), "ts": 5_000_000 + k,
                                           "action": "click", "dwell": "3", "device": "phone"});
                            ("/events", json!({ "events": [e] }))
                        } else {
                            ("/score", json!({"user": "u04", "items": ["i001", "i002", "i003"], "context": {"device": "phone"}}))
                        };
                        let t = Instant::now();
                        let sent = agent
                            .post(&format!("{base}{path}"))
                            .header("content-type", "application/json")
                            .send(body.to_string());
                        let was_killed = killed.load(Ordering::SeqCst);
                        match sent {
                            Ok(r) if r.status().as_u16() == 200 => {
                                latencies.push(t.elapsed().as_secs_f64());
                                if path == "/events" {
                                    acked.push(user);
                                }
                            }
                            Ok(r) => failures.push(format!("{path}: {}", r.status())),
                            Err(e) if !was_killed => failures.push(format!("{path}: {e}")),
                            Err(_) => break,
                        }
                    }
                    (acked, latencies, failures)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        killed.store(true, Ordering::SeqCst);
        let _ = server.child.kill(); // SIGKILL, mid-load
        let _ = server.child.wait();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let window = started.elapsed().as_secs_f64();
    let failures: Vec<&String> = outcomes.iter().flat_map(|o| &o.2).collect();
    assert!(failures.is_empty(), "requests failed before the kill: {failures:?}");
    let acked: Vec<&String> = outcomes.iter().flat_map(|o| &o.0).collect();
    let mut latencies: Vec<f64> = outcomes.iter().flat_map(|o| o.1.iter().copied()).collect();
    latencies.sort_by(f64::total_cmp);
    assert!(acked.len() > 20, "the load ran: {} events acknowledged", acked.len());
    eprintln!(
        "mixed load: {} answered requests from {clients} clients in {window:.1} s ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms; {} events acknowledged before kill -9",
        latencies.len(),
        latencies.len() as f64 / window,
        1e3 * super::quantile(&latencies, 0.5),
        1e3 * super::quantile(&latencies, 0.99),
        acked.len()
    );
    server = Server::start(&run, &args);
    let agent = agent();
    for user in acked {
        let state: Value = serde_json::from_str(&server.get(&agent, &format!("/state?user={user}"))).unwrap();
        assert_eq!(state["events"].as_array().map(Vec::len), Some(1), "{user}'s acknowledged event was lost");
    }
}

/// Two days of the fixture's log: day 1 is its first 200 lines, day 2 all of it, imported with
/// `--keep-ids-from` day 1 (so day 2 numbers items day 1 did not know), each with a ranker run.
struct TwoDays {
    run1: PathBuf,
    run2: PathBuf,
    /// Every event of the log, as CSV, to load into a server's state.
    every: PathBuf,
    /// A raw `/score` body for the log's last user, with day 2's new items and three old ones.
    body: String,
    items: usize,
}

fn two_days(dir: &Path) -> TwoDays {
    crate::import::copy_fixture_files(dir, &["users.csv", "items.tsv", "ranker.recspec"]);
    crate::import::write_two_days(dir, 200);
    let set = dir.join("ranker.recspec");
    let (data1, data2, run1, run2) = (dir.join("data1"), dir.join("data2"), dir.join("run1"), dir.join("run2"));
    for (day, out, extra) in
        [("day1.csv", &data1, vec![]), ("day2.csv", &data2, vec!["--keep-ids-from", data1.to_str().unwrap()])]
    {
        let o = crate::import::import_set(Some(&dir.join(day)), &set, out, &extra);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    for (data, run, seed) in [(&data1, &run1, "1"), (&data2, &run2, "2")] {
        let o = crate::import::train_briefly(&set, data, run, "4", &["--batch-size", "32", "--seed", seed]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    // Items the second data set numbered and the first did not.
    let keys = |d: &Path| -> Vec<String> {
        lines(&d.join("vocab/item.jsonl")).iter().map(|v| v["key"].as_str().unwrap().to_string()).collect()
    };
    let (known, now) = (keys(&data1), keys(&data2));
    let new: Vec<&String> = now.iter().filter(|k| !known.contains(k)).collect();
    assert!(!new.is_empty(), "day 2 brings new items");
    let (headers, all) = events_in_time_order();
    let last = all.last().unwrap();
    let user = last["user_id"].as_str().unwrap();
    let mut context = last.clone();
    for k in ["user_id", "item_id", "ts"] {
        context.remove(k);
    }
    let items: Vec<&String> = new.iter().copied().chain(known.iter().take(3)).collect();
    let body = json!({ "user": user, "items": items, "context": context }).to_string();
    let every = dir.join("every.csv");
    std::fs::write(&every, csv_of(&headers, &all)).unwrap();
    TwoDays { run1, run2, every, body, items: items.len() }
}

fn first_scores(answer: &Value) -> Vec<f32> {
    answer["scores"].as_array().unwrap().iter().map(|r| r[0].as_f64().unwrap() as f32).collect()
}

/// `/admin/reload` to a run trained on a newer data set (imported with `--keep-ids-from`, so
/// it numbers items the first did not know) swaps the fitted features with the model: the
/// stored raw events are built into rows with the new run's ids, and every score equals a fresh
/// server's on the new run and the same state. A server given the older data set's features
/// for the new run scores differently, so the comparison can fail.
#[test]
fn a_reload_swaps_the_fitted_features_and_keeps_the_users_events() {
    let dir = Scratch::new("serve-raw-reload");
    let TwoDays { run1, run2, every, body, items } = two_days(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Server A: run 1 with its own features (no --data), then reloaded to run 2.
    let state = dir.join("state.redb");
    let agent = agent();
    let server = Server::start(&run1, &["--state", &s(&state), "--load-events", &s(&every)]);
    let (status, first) = server.post(&agent, "/score", &body);
    assert_eq!((status, &first["generation"]), (200, &json!(1)), "{first}");
    let (status, reloaded) = server.post(&agent, "/admin/reload", &json!({ "run": s(&run2) }).to_string());
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(reloaded["data"], json!(s(&run2.join("data"))), "{reloaded}");
    let (status, swapped) = server.post(&agent, "/score", &body);
    assert_eq!((status, &swapped["generation"]), (200, &json!(2)), "{swapped}");
    drop(server);

    // Server B: run 2 from the start, on the same stored events.
    let server = Server::start(&run2, &["--state", &s(&state)]);
    let (status, fresh) = server.post(&agent, "/score", &body);
    assert_eq!(status, 200, "{fresh}");
    drop(server);
    // Server C: run 2 with run 1's features, which number the new items 0.
    let server = Server::start(&run2, &["--state", &s(&state), "--data", &s(&run1.join("data"))]);
    let (_, stale) = server.post(&agent, "/score", &body);
    drop(server);

    let (swapped, fresh, stale) = (first_scores(&swapped), first_scores(&fresh), first_scores(&stale));
    assert_eq!(swapped.len(), items);
    assert!(crate::max_difference(&swapped, &fresh) <= 1e-6, "reloaded {swapped:?}, fresh {fresh:?}");
    assert!(
        crate::max_difference(&stale, &fresh) > 1e-4,
        "the older features score the new items otherwise: {stale:?}"
    );
}

/// A raw request in flight when a reload swaps model and features is answered whole by one of
/// them. The model thread holds each batch open for 2 s (`--max-wait-ms`): a request sent
/// first waits there while the reload, sent 100 ms later, loads the day-2 run and installs its
/// features; the swap closes the batch, which the day-1 model answers (generation 1, day 1's
/// scores) with the rows day 1's features built. The request is answered after the reload was
/// sent and well before the batch's wait was over: it was in flight at the swap, which closed
/// its batch. A request sent after the reload gets generation 2 and day 2's scores.
#[test]
fn a_request_in_flight_at_a_reload_is_answered_by_one_model_with_its_own_features() {
    let dir = Scratch::new("serve-raw-inflight");
    let TwoDays { run1, run2, every, body, .. } = two_days(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let args = ["--state", &s(&dir.join("state.redb")), "--load-events", &s(&every), "--max-wait-ms", "2000"];
    let server = Server::start(&run1, &args);
    let agent = agent();
    let (_, day1) = server.post(&agent, "/score", &body);
    let started = std::time::Instant::now();
    let (answered, reloaded) = std::thread::scope(|scope| {
        let request = scope.spawn(|| {
            let (status, answer) = server.post(&agent, "/score", &body);
            (status, answer, started.elapsed())
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        let sent = started.elapsed();
        let (status, answer) = server.post(&agent, "/admin/reload", &json!({ "run": s(&run2) }).to_string());
        (request.join().unwrap(), (status, answer, sent))
    });
    let (status, answer, answered_at) = answered;
    let (reload_status, reload_answer, reload_sent) = reloaded;
    assert_eq!((status, reload_status), (200, 200), "{answer} {reload_answer}");
    assert!(
        reload_sent < answered_at && answered_at < std::time::Duration::from_millis(1900),
        "in flight at the swap: reload sent at {reload_sent:?}, request answered at {answered_at:?} (its batch would close at 2 s)"
    );
    assert_eq!(answer["generation"], json!(1), "{answer}");
    assert_eq!(first_scores(&answer), first_scores(&day1), "the day-1 model with day 1's features");
    let (_, after) = server.post(&agent, "/score", &body);
    assert_eq!(after["generation"], json!(2), "{after}");
    drop(server);
    let server = Server::start(&run2, &["--state", &s(&dir.join("state.redb"))]);
    let (_, day2) = server.post(&agent, "/score", &body);
    assert!(crate::max_difference(&first_scores(&after), &first_scores(&day2)) <= 1e-6, "{after} {day2}");
}

/// Raw requests under reloads that alternate between the day-1 and the day-2 run: every answer
/// carries the scores of the run of its generation (odd: day 1, even: day 2), so no row built
/// with one day's features was read by the other day's model (the model thread refuses such a
/// job and the server builds its rows again).
#[test]
fn raw_requests_during_alternating_reloads_are_scored_by_the_model_of_their_features() {
    let dir = Scratch::new("serve-raw-alternating");
    let TwoDays { run1, run2, every, body, .. } = two_days(&dir);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let agent = agent();
    let mut expected = vec![];
    for (run, state) in [(&run1, "one.redb"), (&run2, "two.redb")] {
        let server = Server::start(run, &["--state", &s(&dir.join(state)), "--load-events", &s(&every)]);
        expected.push(first_scores(&server.post(&agent, "/score", &body).1));
    }
    assert!(crate::max_difference(&expected[0], &expected[1]) > 1e-4, "the two days score differently");
    let state = dir.join("state.redb");
    let server = Server::start(&run1, &["--state", &s(&state), "--load-events", &s(&every)]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let answers = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let agent = super::agent();
                    let mut seen = vec![];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        seen.push(server.post(&agent, "/score", &body));
                    }
                    seen
                })
            })
            .collect();
        for k in 0..20 {
            std::thread::sleep(std::time::Duration::from_millis(15));
            let run = if k % 2 == 0 { &run2 } else { &run1 };
            let (status, answer) = server.post(&agent, "/admin/reload", &json!({ "run": s(run) }).to_string());
            assert_eq!(status, 200, "{answer}");
        }
        std::thread::sleep(std::time::Duration::from_millis(15));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect::<Vec<_>>()
    });
    let mut generations = std::collections::BTreeSet::new();
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        let generation = answer["generation"].as_u64().unwrap();
        let want = &expected[usize::from(generation % 2 == 0)];
        let got = first_scores(answer);
        assert!(
            crate::max_difference(&got, want) <= 1e-6,
            "generation {generation}: {got:?}, but its run scores {want:?}"
        );
        generations.insert(generation);
    }
    assert!(generations.len() >= 10, "answers came from {} generations: {generations:?}", generations.len());
    eprintln!("{} raw answers over {} generations", answers.len(), generations.len());
}
