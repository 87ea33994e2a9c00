//! `recspec serve` as users run it: the real binary on the loopback address, real HTTP clients
//! on threads, bounded in requests and seconds. Answers are checked against `recspec eval
//! --predictions` and `recspec recommend` on the same rows; bad requests get 4xx answers naming
//! the row and field while the server keeps serving; a reload under load drops nothing.

mod raw;

use crate::cli::{code, recspec, stderr};
use crate::Scratch;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory for one test's files.
fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("serve-{name}"))
}

/// A running `recspec serve`, stopped on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts `recspec serve RUN --port 0 EXTRA...` and waits for its address on stderr.
    fn start(run: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_recspec"))
            .arg("serve")
            .arg(run)
            .args(["--port", "0"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("recspec serve starts");
        // The address is on the line that says it serves (earlier lines report loading).
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("http://") {
            line.clear();
        }
        let Some(addr) = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()) else {
            let _ = child.kill();
            panic!("recspec serve did not start: {line}");
        };
        assert!(addr.starts_with("127.0.0.1:"), "loopback only: {line}");
        Server { child, base: format!("http://{addr}") }
    }

    /// `(status, JSON body)` of a POST with a raw body.
    fn post(&self, agent: &ureq::Agent, path: &str, body: &str) -> (u16, Value) {
        let response = agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}")))
    }

    fn get(&self, agent: &ureq::Agent, path: &str) -> String {
        agent.get(&format!("{}{path}", self.base)).call().unwrap().into_body().read_to_string().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent that returns 4xx and 5xx answers instead of errors, with a bounded wait.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A small simulated data set and a DIN run trained on it for a few steps with `seed`.
fn trained_run(dir: &Path, name: &str, spec: &str, seed: &str) -> PathBuf {
    let data = dir.join("data");
    if !data.exists() {
        let o = recspec(&[
            "simulate",
            "--out",
            data.to_str().unwrap(),
            "--users",
            "120",
            "--items",
            "200",
            "--impressions",
            "20",
            "--seq-len",
            "8",
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let run = dir.join(name);
    let o = recspec(&[
        "train",
        spec,
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--set",
        "D=16",
        "--epochs",
        "1",
        "--max-steps",
        "8",
        "--seed",
        seed,
        "--quiet",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    run
}

/// The test split's rows, and `recspec eval --predictions` scores of each (stream -> score).
fn test_rows_and_predictions(dir: &Path, run: &Path) -> (Vec<Value>, Vec<Value>) {
    let data = dir.join("data");
    let predictions = dir.join(format!("{}.predictions.jsonl", run.file_name().unwrap().to_string_lossy()));
    let o = recspec(&[
        "eval",
        run.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--predictions",
        predictions.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let rows = lines(&data.join("test.jsonl"));
    let scored = lines(&predictions);
    assert_eq!(rows.len(), scored.len(), "eval scored every test row");
    for (i, p) in scored.iter().enumerate() {
        assert_eq!(p["row"].as_u64(), Some(i as u64 + 1), "predictions in file order: {p}");
    }
    (rows, scored.into_iter().map(|p| p["scores"].clone()).collect())
}

/// Requests per client in the load test.
const REQUESTS: usize = 100;

/// Client `c`'s requests: runs of 1..=9 consecutive test rows, by a fixed pattern.
fn requests_of(c: usize, rows: usize) -> Vec<(usize, usize)> {
    (0..REQUESTS).map(|r| ((c * 7919 + r * 104_729) % rows, 1 + (c + 3 * r) % 9)).collect()
}

/// One request of the load test: its latency in seconds, and its first row, row count and answer
/// (or why it failed).
type Timed = (f64, Result<(usize, usize, Value), String>);

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// The number of a Prometheus sample (`name{labels} value`) in `/metrics` text.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{metrics}"))
}

/// 8 concurrent clients × 100 requests of 1–9 rows: every answer is 200 and equals `recspec
/// eval`'s score of the same rows, requests were batched together, and the metrics count them.
#[test]
fn serve_answers_concurrent_clients_as_recspec_eval_scores_the_rows() {
    let dir = scratch("load");
    let run = trained_run(&dir, "din", "specs/din.recspec", "1");
    let (rows, expected) = test_rows_and_predictions(&dir, &run);
    let server = Server::start(&run, &["--max-wait-ms", "5", "--max-batch-rows", "64"]);
    let clients = 8;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let results: Vec<Vec<Timed>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let (server, rows) = (&server, &rows);
                s.spawn(move || {
                    let agent = agent();
                    let mut out = vec![];
                    for (start, n) in requests_of(c, rows.len()) {
                        if Instant::now() > deadline {
                            out.push((0.0, Err("the run took longer than its 120 s bound".to_string())));
                            break;
                        }
                        let n = n.min(rows.len() - start);
                        let body = json!({ "rows": &rows[start..start + n] }).to_string();
                        let t = Instant::now();
                        let (status, answer) = server.post(&agent, "/score", &body);
                        let elapsed = t.elapsed().as_secs_f64();
                        out.push((
                            elapsed,
                            if status == 200 { Ok((start, n, answer)) } else { Err(format!("{status}: {answer}")) },
                        ));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let all: Vec<_> = results.into_iter().flatten().collect();
    let failures: Vec<&String> = all.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert_eq!(all.len(), clients * REQUESTS);
    let mut worst = 0f32;
    let mut total_rows = 0;
    for (_, result) in &all {
        let (start, n, answer) = result.as_ref().unwrap();
        assert_eq!(answer["streams"], json!(["click"]), "{answer}");
        let got = answer["scores"].as_array().unwrap();
        assert_eq!(got.len(), *n, "{answer}");
        for (i, row) in got.iter().enumerate() {
            let served = row[0].as_f64().unwrap() as f32;
            let eval = expected[start + i]["click"].as_f64().unwrap() as f32;
            worst = worst.max(crate::max_difference(&[served], &[eval]));
        }
        total_rows += n;
    }
    assert!(worst <= 1e-5, "served and evaluated scores differ by {worst}");
    let mut latencies: Vec<f64> = all.iter().map(|(t, _)| *t).collect();
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "serve load: {} requests ({total_rows} rows) from {clients} clients in {wall:.2} s: {:.0} requests/s, latency p50 {:.1} ms, p99 {:.1} ms; largest score difference from recspec eval {worst:e}",
        all.len(),
        all.len() as f64 / wall,
        1e3 * quantile(&latencies, 0.5),
        1e3 * quantile(&latencies, 0.99)
    );

    let metrics = server.get(&agent(), "/metrics");
    assert_eq!(
        sample(&metrics, "recspec_requests_total{endpoint=\"/score\",status=\"200\"}"),
        (clients * REQUESTS) as f64
    );
    assert_eq!(sample(&metrics, "recspec_batch_rows_sum"), total_rows as f64, "every row in one forward pass");
    let passes = sample(&metrics, "recspec_batch_rows_count");
    assert!(
        passes < (clients * REQUESTS) as f64,
        "concurrent requests were batched: {passes} passes for {} requests",
        clients * REQUESTS
    );
    assert!(metrics.contains("recspec_request_duration_seconds_bucket{endpoint=\"/score\""), "{metrics}");
    drop(server);
}

/// Bad requests get a 4xx with a message naming the row and field; the server keeps serving and
/// counts them as errors.
#[test]
fn bad_requests_get_4xx_answers_and_the_server_keeps_serving() {
    let dir = scratch("bad");
    let run = trained_run(&dir, "din", "specs/din.recspec", "1");
    let (rows, expected) = test_rows_and_predictions(&dir, &run);
    let server = Server::start(&run, &["--max-request-rows", "16", "--max-body-bytes", "200000"]);
    let agent = agent();
    let with = |key: &str, value: Value| {
        let mut row = rows[0].clone();
        match value {
            Value::Null => {
                row.as_object_mut().unwrap().remove(key);
            }
            v => row[key] = v,
        }
        json!({ "rows": [rows[1].clone(), row] }).to_string()
    };
    let big = json!({ "rows": vec![rows[0].clone(); 17] }).to_string();
    let huge = format!("{{\"rows\": [], \"padding\": \"{}\"}}", "x".repeat(300_000));
    for (path, body, status, want) in [
        ("/score", "{\"rows\": [".to_string(), 400, "malformed JSON: EOF while parsing"),
        ("/score", "[1, 2]".to_string(), 400, "the body must be a JSON object with a `rows` array"),
        ("/score", "{\"row\": []}".to_string(), 400, "the body has no `rows` array"),
        ("/score", "{\"rows\": [3]}".to_string(), 400, "row 0: expected an object"),
        ("/score", with("item", Value::Null), 400, "row 1: missing key `item`"),
        ("/score", with("item", json!(1_000_000)), 400, "row 1: `item`"),
        ("/score", with("clicks", json!("none")), 400, "row 1: `clicks`"),
        ("/score", big, 413, "the request has 17 rows; at most 16 per request"),
        ("/score", huge, 413, "the request body is larger than 200000 bytes"),
        ("/recommend", json!({ "rows": [rows[0].clone()] }).to_string(), 404, "has no output scoring the item corpus"),
        (
            "/recommend",
            json!({ "rows": [rows[0].clone()], "k": 0 }).to_string(),
            400,
            "`k` must be an integer in 1..=1000",
        ),
    ] {
        let (got, answer) = server.post(&agent, path, &body);
        let message = answer["error"].as_str().unwrap_or_else(|| panic!("{path}: no error message: {answer}"));
        assert_eq!(got, status, "{path} {body:.80}: {answer}");
        assert!(message.contains(want), "{path}: expected {want:?} in {message:?}");
        for debug in ["Some(", "None", "Error {", "panicked"] {
            assert!(!message.contains(debug), "debug text in {message}");
        }
        // ... and a good request is still answered, with the right score.
        let (ok, answer) = server.post(&agent, "/score", &json!({ "rows": [rows[2].clone()] }).to_string());
        assert_eq!(ok, 200, "{answer}");
        let served = answer["scores"][0][0].as_f64().unwrap() as f32;
        assert!(crate::max_difference(&[served], &[expected[2]["click"].as_f64().unwrap() as f32]) <= 1e-5);
    }
    let metrics = server.get(&agent, "/metrics");
    assert_eq!(sample(&metrics, "recspec_request_errors_total{endpoint=\"/score\"}"), 9.0);
    assert_eq!(sample(&metrics, "recspec_request_errors_total{endpoint=\"/recommend\"}"), 2.0);
    drop(server);
}

/// A run swapped in by `/admin/reload` while 4 clients keep sending: no request fails, and after
/// the reload the scores are the new run's.
#[test]
fn a_reload_under_load_drops_no_request() {
    let dir = scratch("reload");
    let first = trained_run(&dir, "first", "specs/din.recspec", "1");
    let second = trained_run(&dir, "second", "specs/din.recspec", "2");
    let (rows, _) = test_rows_and_predictions(&dir, &first);
    let (_, after) = test_rows_and_predictions(&dir, &second);
    let server = Server::start(&first, &[]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Per client, the generation of the model that answered each request, in order.
    let (timelines, reload): (Vec<Vec<u64>>, _) = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|c| {
                let (server, rows, stop) = (&server, &rows, &stop);
                s.spawn(move || {
                    let agent = agent();
                    let mut timeline = vec![];
                    let until = Instant::now() + Duration::from_secs(60);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                        let start = (c * 31 + timeline.len() * 7) % (rows.len() - 3);
                        let (status, answer) =
                            server.post(&agent, "/score", &json!({ "rows": &rows[start..start + 3] }).to_string());
                        assert_eq!(status, 200, "during the reload: {answer}");
                        timeline.push(answer["generation"].as_u64().unwrap());
                    }
                    timeline
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let reload =
            server.post(&agent(), "/admin/reload", &json!({ "run": second.display().to_string() }).to_string());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (clients.into_iter().map(|h| h.join().unwrap()).collect(), reload)
    });
    assert_eq!(reload.0, 200, "{}", reload.1);
    assert_eq!(reload.1["generation"], 2);
    let answered: usize = timelines.iter().map(Vec::len).sum();
    assert!(answered >= 8, "clients kept being answered: {answered}");
    // Each answer names the model that gave it: every client saw the old one, then the new one,
    // never the old one again. (Whether a request was queued at the very instant of the swap is
    // not observable from outside: loading a small run takes milliseconds.)
    let all: Vec<u64> = timelines.iter().flatten().copied().collect();
    assert!(all.contains(&1) && all.contains(&2), "both models answered");
    for timeline in &timelines {
        let first_new = timeline.iter().position(|g| *g == 2).unwrap_or(timeline.len());
        assert!(timeline[first_new..].iter().all(|g| *g == 2), "a client saw the old model after the new one");
    }
    let (status, answer) = server.post(&agent(), "/score", &json!({ "rows": &rows[..5] }).to_string());
    assert_eq!(status, 200);
    for i in 0..5 {
        let served = answer["scores"][i][0].as_f64().unwrap() as f32;
        let new = after[i]["click"].as_f64().unwrap() as f32;
        assert!(crate::max_difference(&[served], &[new]) <= 1e-5, "row {i} scored by the second run");
    }
    let (status, answer) = server.post(&agent(), "/admin/reload", "{\"run\": \"/nonexistent/run\"}");
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("cannot load /nonexistent/run"), "{answer}");
    drop(server);
}

/// `/recommend` on a retrieval run gives the lists `recspec recommend` gives for the same
/// histories.
#[test]
fn recommend_answers_as_recspec_recommend_ranks() {
    let dir = scratch("recommend");
    let run = trained_run(&dir, "ntr", "specs/retrieval_ntr.recspec", "1");
    let histories = dir.join("data/test.jsonl");
    let o = recspec(&["recommend", run.to_str().unwrap(), "--user-history", histories.to_str().unwrap(), "--k", "5"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lists: Vec<Value> = crate::cli::stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rows: Vec<Value> = std::fs::read_to_string(&histories)
        .unwrap()
        .lines()
        .take(20)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let server = Server::start(&run, &[]);
    let (status, answer) = server.post(&agent(), "/score", &json!({ "rows": [rows[0].clone()] }).to_string());
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("scores no label stream"), "{answer}");
    let (status, answer) = server.post(&agent(), "/recommend", &json!({ "rows": rows, "k": 5 }).to_string());
    assert_eq!(status, 200, "{answer}");
    for (i, list) in answer["items"].as_array().unwrap().iter().enumerate() {
        let items: Vec<i64> = list.as_array().unwrap().iter().map(|p| p["item"].as_i64().unwrap()).collect();
        let want: Vec<i64> = lists[i]["items"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        assert_eq!(items, want, "row {i}");
    }
    drop(server);
}

/// Batch invariance, bounded: the same row scored alone and inside batches of other rows (sizes
/// 2 to 200, the row at different positions) gets scores within 1e-6 of each other. Batched
/// matrix products may sum in another order for another batch size, so equality to the last bit
/// is not promised; the bound is.
#[test]
fn a_rows_score_does_not_depend_on_its_batch_beyond_1e_6() {
    for spec in ["din", "dfn", "dlen"] {
        let dir = scratch(&format!("invariance-{spec}"));
        let run = trained_run(&dir, spec, &format!("specs/{spec}.recspec"), "3");
        let worst = worst_batch_difference(&dir, &run);
        eprintln!("batch invariance, {spec}: largest difference {worst:e}");
    }
}

/// The largest difference between a row's score alone and in other batches (asserting 1e-6).
fn worst_batch_difference(dir: &Path, run: &Path) -> f32 {
    let (rows, _) = test_rows_and_predictions(dir, run);
    let server = Server::start(run, &["--max-wait-ms", "0"]);
    let agent = agent();
    let score = |batch: &[Value]| -> Vec<f64> {
        let (status, answer) = server.post(&agent, "/score", &json!({ "rows": batch }).to_string());
        assert_eq!(status, 200, "{answer}");
        answer["scores"].as_array().unwrap().iter().map(|s| s[0].as_f64().unwrap()).collect()
    };
    let mut worst = 0f32;
    for target in [0, 7, 31] {
        let alone = score(&rows[target..target + 1])[0] as f32;
        for (size, at) in [(2, 1), (8, 0), (33, 17), (64, 63), (200, 100)] {
            let mut batch: Vec<Value> = (0..size).map(|i| rows[(target + 1 + i * 13) % rows.len()].clone()).collect();
            batch[at] = rows[target].clone();
            let got = score(&batch)[at] as f32;
            let d = crate::max_difference(&[got], &[alone]);
            assert!(d <= 1e-6, "row {target} alone {alone}, in a batch of {size} at {at}: {got}");
            worst = worst.max(d);
        }
    }
    worst
}
