//! `recspec serve`: a trained run behind an HTTP JSON API (axum on tokio).
//!
//! - `POST /score` `{"rows": [ROW, ...]}` → `{"model", "streams", "scores": [[p, ...], ...]}`:
//!   per row, the probability of every label stream the model scores, rows in the data set's
//!   row format (labels and weights not needed).
//! - `POST /recommend` `{"rows": [HISTORY, ...], "k": 10, "exclude_consumed": false}` →
//!   `{"model", "output", "items": [[{"item", "score"}, ...], ...]}` for runs with an
//!   item-scoring output.
//! - With `--data` (raw requests, [`Raw`]): `POST /events` `{"events": [EVENT, ...]}` stores raw
//!   events (the event log's columns, as the data set's features read them) in each user's
//!   state ([`state`]); `POST /score` `{"user": KEY, "items": [KEY, ...], "context": {...}}`
//!   builds each candidate's row from the user's stored events with the import's own code
//!   ([`crate::import::online`]) and answers `{"model", "streams", "scores", "items"}`;
//!   `POST /recommend` `{"user": KEY, "k", "exclude_consumed", "context"}` answers item keys;
//!   `GET /state?user=KEY` shows the user's stored events.
//! - `GET /health`: the model served; `GET /metrics`: Prometheus text (requests and errors by
//!   endpoint and status, latency and batch-size histograms).
//! - `POST /admin/reload` `{"run": PATH, "data": DATA}` (both optional): loads a run (the same
//!   one when no path is given) and swaps it in; requests queued before the swap are answered by
//!   the old model, none is dropped. A raw server swaps the fitted features with it: the new
//!   run's copy of its data set's (`RUN/data`), or DATA's; the users' events are raw keys and
//!   stay as they are.
//!
//! Concurrent requests are batched by one worker thread that owns the model ([`model::work`]).
//! Bad requests get a 4xx JSON `{"error": message}` naming the row (0-based, in the request)
//! and the field; the server keeps serving.

pub mod model;
pub mod state;

use crate::app::AppError;
use crate::import::online::{Featurizer, RawEvent, Request};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use burn::prelude::Device;
use model::{Answer, Ask, Batching, Job, Message, Model, Refusal};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Rows per forward pass at most (requests are batched together up to it).
    pub max_batch_rows: usize,
    /// How long the first request of a batch waits for others.
    pub max_wait: Duration,
    /// Rows one request may hold.
    pub max_request_rows: usize,
    /// Bytes one request body may hold.
    pub max_body_bytes: usize,
    /// Largest `k` of `/recommend`.
    pub max_k: usize,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch_rows: 256,
            max_wait: Duration::from_millis(2),
            max_request_rows: 1024,
            max_body_bytes: 16 << 20,
            max_k: 1000,
        }
    }
}

/// The server's metrics, registered in their own registry.
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    latency: HistogramVec,
    batch_rows: prometheus::Histogram,
    reloads: prometheus::IntCounter,
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("recspec_requests_total", "HTTP requests answered, by endpoint and status code"),
            &["endpoint", "status"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("recspec_request_errors_total", "requests answered with a 4xx or 5xx status, by endpoint"),
            &["endpoint"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("recspec_request_duration_seconds", "time from request to response, by endpoint")
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 14).expect("valid buckets")),
            &["endpoint"],
        )
        .expect("valid metric");
        let batch_rows = prometheus::Histogram::with_opts(
            HistogramOpts::new("recspec_batch_rows", "rows per forward pass (requests batched together)")
                .buckets(prometheus::exponential_buckets(1.0, 2.0, 12).expect("valid buckets")),
        )
        .expect("valid metric");
        let reloads = prometheus::IntCounter::new("recspec_model_reloads_total", "models swapped in by /admin/reload")
            .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(latency.clone()),
            Box::new(batch_rows.clone()),
            Box::new(reloads.clone()),
        ] {
            registry.register(m).expect("metric names are distinct");
        }
        Metrics { registry, requests, errors, latency, batch_rows, reloads }
    }

    fn record(&self, endpoint: &str, status: StatusCode, started: Instant) {
        self.requests.with_label_values(&[endpoint, status.as_str()]).inc();
        if status.is_client_error() || status.is_server_error() {
            self.errors.with_label_values(&[endpoint]).inc();
        }
        self.latency.with_label_values(&[endpoint]).observe(started.elapsed().as_secs_f64());
    }
}

/// Raw requests: the data set's fitted features that build rows, and the users' events.
pub struct Raw {
    pub features: Arc<Featurizer>,
    pub store: Arc<dyn state::Store>,
    /// The data set the features were fitted on (the run's copy, `RUN/data`, or `--data`).
    pub data: PathBuf,
    /// The feature set or mapping given with `--features`, kept for reloads (default: the one
    /// each data set's data.toml records).
    pub definition: Option<PathBuf>,
}

/// A raw server's state: the users' events, and the fitted features of the model served now.
struct RawState {
    store: Arc<dyn state::Store>,
    definition: Option<PathBuf>,
    fitted: Mutex<Fitted>,
}

/// The fitted features that number the rows of the model of `generation`. A reload replaces
/// both together: a row is only ever read by the model whose data set numbered it.
#[derive(Clone)]
struct Fitted {
    features: Arc<Featurizer>,
    data: PathBuf,
    generation: u64,
}

impl RawState {
    fn fitted(&self) -> Fitted {
        match self.fitted.lock() {
            Ok(f) => f.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// How often a raw request is built again because a reload swapped the model in between.
const RAW_TRIES: usize = 8;

struct Shared {
    raw: Option<RawState>,
    worker: Mutex<Sender<Message>>,
    options: ServeOptions,
    metrics: Metrics,
    device: Device,
    /// The run served and its description, for `/health` and reloads.
    current: Mutex<(PathBuf, Value)>,
    generation: std::sync::atomic::AtomicU64,
    /// Held through a reload.
    reloading: tokio::sync::Mutex<()>,
}

/// A refused request: its status and message, answered as JSON `{"error": message}`.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError { status, message: message.into() }
}

/// Serves `run` until interrupted (SIGINT or SIGTERM); `ready` is called with the bound
/// address once the server accepts connections.
pub fn serve(
    run: PathBuf,
    device: Device,
    options: ServeOptions,
    raw: Option<Raw>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), AppError> {
    let model = Model::load(&run, &device)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AppError::Serve(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|e| AppError::Serve(format!("cannot listen on {}: {e}", options.addr)))?;
        let addr = listener.local_addr().map_err(|e| AppError::Serve(format!("no local address: {e}")))?;
        let metrics = Metrics::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let batching = Batching { max_batch_rows: options.max_batch_rows, max_wait: options.max_wait };
        let batch_rows = metrics.batch_rows.clone();
        let description = model.describe();
        let worker = std::thread::Builder::new()
            .name("recspec-model".into())
            .spawn(move || model::work(model, rx, batching, |n| batch_rows.observe(n as f64)))
            .map_err(|e| AppError::Serve(format!("cannot start the model thread: {e}")))?;
        let raw = raw.map(|r| RawState {
            store: r.store,
            definition: r.definition,
            fitted: Mutex::new(Fitted { features: r.features, data: r.data, generation: 1 }),
        });
        let shared = Arc::new(Shared {
            raw,
            worker: Mutex::new(tx),
            options: options.clone(),
            metrics,
            device,
            current: Mutex::new((run, description)),
            generation: std::sync::atomic::AtomicU64::new(1),
            reloading: tokio::sync::Mutex::new(()),
        });
        let app = router(shared.clone());
        ready(addr);
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown()).await;
        drop(shared);
        let _ = worker.join();
        served.map_err(|e| AppError::Serve(format!("the server stopped: {e}")))
    })
}

/// The fitted features a reload to `run` serves with: those of the data set `data` when the
/// request names one, else the run's own copy (`RUN/data`); a run without one keeps the current
/// features only when it is the run served now.
async fn reload_features(
    raw: &RawState,
    run: &std::path::Path,
    current: &std::path::Path,
    data: Option<PathBuf>,
) -> Result<(Arc<Featurizer>, PathBuf), ApiError> {
    let Some(data) = data.or_else(|| crate::app::RunDir::open(run).fitted()) else {
        if run == current {
            let now = raw.fitted();
            return Ok((now.features, now.data));
        }
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} keeps no copy of its data set's fitted features (runs trained before 2026-12-07 do not); name the data set it was trained on: {{\"run\": ..., \"data\": DATA}}",
                run.display()
            ),
        ));
    };
    let definition = raw.definition.clone();
    let dir = data.clone();
    let features = tokio::task::spawn_blocking(move || crate::app::dataset::featurizer(&dir, definition.as_deref()))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("loading stopped: {e}")))?
        .map_err(|e| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot load the fitted features of {}: {e}", data.display()),
            )
        })?;
    Ok((Arc::new(features), data))
}

/// The routes, with the body limit applied.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/score", post(score))
        .route("/events", post(events))
        .route("/state", get(user_state))
        .route("/recommend", post(recommend))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(reload))
        // Bodies are read by `read_body`, which applies --max-body-bytes itself.
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn shutdown() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// The request body as JSON: a 413 past the size limit, a 400 for anything but JSON.
///
/// A body over the limit is read on (and dropped) up to four times the limit, so that the client,
/// still sending, receives the 413 instead of a reset connection; past that the connection is
/// closed.
async fn read_json(body: Body, limit: usize) -> Result<Value, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let (mut bytes, mut seen) = (Vec::new(), 0usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            bytes.extend_from_slice(&data);
        } else if seen > limit.saturating_mul(4) {
            break;
        }
    }
    if seen > limit {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes (--max-body-bytes)"),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))
}

/// A 413 when a request holds more than `max` rows, items or events (`--max-request-rows`).
fn at_most(n: usize, max: usize, what: &str) -> Result<(), ApiError> {
    if n > max {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request has {n} {what}; at most {max} per request (--max-request-rows)"),
        ));
    }
    Ok(())
}

/// The `rows` array of a request body.
fn rows_of(body: &mut Value, max: usize) -> Result<Vec<Value>, ApiError> {
    let Some(object) = body.as_object_mut() else {
        return Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON object with a `rows` array"));
    };
    let rows = match object.remove("rows") {
        Some(Value::Array(rows)) => rows,
        Some(_) => return Err(error(StatusCode::BAD_REQUEST, "`rows` must be an array of row objects")),
        None => return Err(error(StatusCode::BAD_REQUEST, "the body has no `rows` array")),
    };
    at_most(rows.len(), max, "rows")?;
    if let Some(i) = rows.iter().position(|r| !r.is_object()) {
        return Err(error(StatusCode::BAD_REQUEST, format!("row {i}: expected an object of the row's inputs")));
    }
    Ok(rows)
}

/// Sends a job to the worker and waits for its answer: `None` when the job's rows were built
/// for the model of generation `expect` and another one is served now.
async fn ask_job(
    shared: &Shared,
    ask: Ask,
    rows: Vec<Value>,
    expect: Option<u64>,
) -> Result<Option<(Answer, u64)>, ApiError> {
    let (reply, answer) = oneshot::channel();
    let job = Job { ask, rows, expect, reply };
    let sent = shared.worker.lock().map(|w| w.send(Message::Job(job)).is_ok()).unwrap_or(false);
    if !sent {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the model thread has stopped"));
    }
    match answer.await {
        Ok(Ok((answer, _batch, generation))) => Ok(Some((answer, generation))),
        Ok(Err(Refusal::BadRow { row, message })) => {
            Err(error(StatusCode::BAD_REQUEST, format!("row {row}: {message}")))
        }
        Ok(Err(Refusal::Unsupported(message))) => Err(error(StatusCode::NOT_FOUND, message)),
        Ok(Err(Refusal::Stale)) => Ok(None),
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "the model thread dropped the request")),
    }
}

/// Sends a job of numbered rows (read by whichever model is served) and waits for its answer.
async fn ask(shared: &Shared, ask: Ask, rows: Vec<Value>) -> Result<(Answer, u64), ApiError> {
    ask_job(shared, ask, rows, None)
        .await?
        .ok_or_else(|| error(StatusCode::INTERNAL_SERVER_ERROR, "a numbered request was refused as stale"))
}

/// A raw request answered: rows built with the fitted features of the model that answered
/// them. When a reload swaps the model between building and answering, the rows are built
/// again with the new model's features (at most [`RAW_TRIES`] times).
async fn ask_raw(
    shared: &Shared,
    ask: impl Fn() -> Ask,
    body: &Value,
    items: &[String],
) -> Result<(Answer, u64, Value, Fitted), ApiError> {
    let raw = raw_of(shared)?;
    for _ in 0..RAW_TRIES {
        let fitted = raw.fitted();
        let rows = raw_rows(raw, &fitted, body, items).await?;
        let first = rows.first().cloned().unwrap_or(Value::Null);
        if let Some((answer, generation)) = ask_job(shared, ask(), rows, Some(fitted.generation)).await? {
            return Ok((answer, generation, first, fitted));
        }
    }
    Err(error(StatusCode::SERVICE_UNAVAILABLE, "the model was reloaded while this request was being answered; retry"))
}

fn model_name(shared: &Shared) -> Value {
    shared.current.lock().map(|c| c.1["model"].clone()).unwrap_or(Value::Null)
}

async fn score(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let started = Instant::now();
    let response = async {
        let mut body = read_json(body, shared.options.max_body_bytes).await?;
        let (answered, items) = match body.get("user") {
            Some(_) => {
                raw_of(&shared)?; // a 404 before the body is read further, as for /events
                let items = item_keys(&body, shared.options.max_request_rows)?;
                let answered = match items.is_empty() {
                    true => None,
                    false => {
                        let (answer, generation, _, _) = ask_raw(&shared, || Ask::Score, &body, &items).await?;
                        Some((answer, generation))
                    }
                };
                (answered, Some(items))
            }
            None => {
                let rows = rows_of(&mut body, shared.options.max_request_rows)?;
                let answered = match rows.is_empty() {
                    true => None,
                    false => Some(ask(&shared, Ask::Score, rows).await?),
                };
                (answered, None)
            }
        };
        let (streams, scores, generation) = match answered {
            None => (Value::Null, vec![], Value::Null),
            Some((Answer::Scores { streams, rows }, generation)) => (json!(streams), rows, json!(generation)),
            Some((Answer::Lists { .. } | Answer::ItemScores { .. }, _)) => {
                unreachable!("a score job is answered with scores")
            }
        };
        let mut answer = json!({
            "model": model_name(&shared), "generation": generation, "streams": streams, "scores": scores,
        });
        if let Some(items) = items {
            answer["items"] = json!(items);
        }
        Ok::<Response, ApiError>(Json(answer).into_response())
    }
    .await
    .unwrap_or_else(IntoResponse::into_response);
    shared.metrics.record("/score", response.status(), started);
    response
}

/// The raw-request part of a server, or a 404 saying how to get one.
fn raw_of(shared: &Shared) -> Result<&RawState, ApiError> {
    shared.raw.as_ref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "this server takes numbered rows only; raw requests need a store for the users' events (recspec serve RUN --state FILE)",
        )
    })
}

/// A key given as text or a number, as text.
fn key_text(v: &Value, what: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            format!("`{what}` must be a non-empty key (text or a number), found {v}"),
        )),
    }
}

/// Reads a store on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, state::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("the store task stopped: {e}")))?
        .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, format!("the user state store failed: {e}")))
}

/// A raw request's rows: one per candidate item (`items`), built with `fitted` from the user's
/// stored events and the body's `context`.
async fn raw_rows(raw: &RawState, fitted: &Fitted, body: &Value, items: &[String]) -> Result<Vec<Value>, ApiError> {
    let user = key_text(&body["user"], "user")?;
    let empty = serde_json::Map::new();
    let context = match body.get("context") {
        None => &empty,
        Some(Value::Object(c)) => c,
        Some(v) => return Err(error(StatusCode::BAD_REQUEST, format!("`context` must be an object, found {v}"))),
    };
    let store = raw.store.clone();
    let who = user.clone();
    let history = blocking(move || store.events(&who)).await?;
    let rows = fitted
        .features
        .rows(&Request { user: &user, items, context }, &history)
        .map_err(|why| error(StatusCode::BAD_REQUEST, why))?;
    rows.iter()
        .map(|r| serde_json::from_str(r))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("a built row is not JSON: {e}")))
}

/// A raw `/score` body's candidates: the `items` array's keys.
fn item_keys(body: &Value, max: usize) -> Result<Vec<String>, ApiError> {
    let Some(items) = body.get("items").and_then(Value::as_array) else {
        return Err(error(StatusCode::BAD_REQUEST, "a raw request needs `items`: an array of item keys"));
    };
    at_most(items.len(), max, "items")?;
    items.iter().enumerate().map(|(i, v)| key_text(v, &format!("items[{i}]"))).collect()
}

/// A raw `/recommend` (`{"user", "k", "exclude_consumed", "context"}`): the user's row from
/// their stored events, every item's score, and the catalogue's keys ranked by them
/// ([`Featurizer::rank`]); answers `{"model", "output", "items": [{"item": KEY, "score"}]}`.
async fn raw_recommend(shared: &Shared, body: &Value, k: usize, exclude_consumed: bool) -> Result<Response, ApiError> {
    let Some(placeholder) = raw_of(shared)?.fitted().features.item_keys().first().cloned() else {
        return Err(error(StatusCode::NOT_FOUND, "the data set numbered no item; there is nothing to recommend"));
    };
    // The row's candidate item is not what a retrieval output reads; any known key fills it
    // (a key of every later data set too, since they keep their earlier ids).
    match ask_raw(shared, || Ask::ItemScores, body, &[placeholder]).await? {
        (Answer::ItemScores { output, rows, consumed }, generation, row, fitted) => {
            let picks = fitted.features.rank(&rows[0], &row, &consumed, k, exclude_consumed);
            let items: Vec<Value> =
                picks.into_iter().map(|(item, score)| json!({ "item": item, "score": score })).collect();
            let answer =
                json!({ "model": model_name(shared), "generation": generation, "output": output, "items": items });
            Ok(Json(answer).into_response())
        }
        (Answer::Scores { .. } | Answer::Lists { .. }, ..) => {
            unreachable!("an item-scores job is answered with scores")
        }
    }
}

/// `GET /state?user=KEY`: the user's stored raw events, oldest first (what their rows are built
/// from), as `{"user", "events": [{"time", "columns"}]}`.
async fn user_state(
    State(shared): State<Arc<Shared>>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let started = Instant::now();
    let response = async {
        let raw = raw_of(&shared)?;
        let Some(user) = query.get("user").filter(|u| !u.is_empty()).cloned() else {
            return Err(error(StatusCode::BAD_REQUEST, "give the user's key: /state?user=KEY"));
        };
        let store = raw.store.clone();
        let who = user.clone();
        let events = blocking(move || store.events(&who)).await?;
        Ok(Json(json!({ "user": user, "events": events })).into_response())
    }
    .await
    .unwrap_or_else(IntoResponse::into_response);
    shared.metrics.record("/state", response.status(), started);
    response
}

/// `POST /events`: stores raw events, all of a request or none; each is checked as the import
/// checks a row of the event log, and a bad one is named by its position and field.
async fn events(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let started = Instant::now();
    let response = async {
        let raw = raw_of(&shared)?;
        let features = raw.fitted().features;
        let body = read_json(body, shared.options.max_body_bytes).await?;
        let Some(list) = body.get("events").and_then(Value::as_array) else {
            return Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON object with an `events` array"));
        };
        at_most(list.len(), shared.options.max_request_rows, "events")?;
        let mut parsed: Vec<(String, RawEvent)> = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let Some(object) = v.as_object() else {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("event {i}: expected an object of the event's columns"),
                ));
            };
            parsed.push(
                features
                    .parse_event(object)
                    .map_err(|why| error(StatusCode::BAD_REQUEST, format!("event {i}: {why}")))?,
            );
        }
        let n = parsed.len();
        let store = raw.store.clone();
        blocking(move || store.append(parsed, &|es, e| features.insert(es, e))).await?;
        Ok(Json(json!({ "stored": n })).into_response())
    }
    .await
    .unwrap_or_else(IntoResponse::into_response);
    shared.metrics.record("/events", response.status(), started);
    response
}

async fn recommend(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let started = Instant::now();
    let response = async {
        let mut body = read_json(body, shared.options.max_body_bytes).await?;
        let raw = body.get("user").is_some();
        let rows = if raw { vec![] } else { rows_of(&mut body, shared.options.max_request_rows)? };
        let k = match body.get("k") {
            None => 10,
            Some(v) => match v.as_u64() {
                Some(k) if k >= 1 && k as usize <= shared.options.max_k => k as usize,
                _ => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        format!("`k` must be an integer in 1..={}, found {v}", shared.options.max_k),
                    ))
                }
            },
        };
        let exclude_consumed = match body.get("exclude_consumed") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("`exclude_consumed` must be true or false, found {v}"),
                ))
            }
        };
        if raw {
            return raw_recommend(&shared, &body, k, exclude_consumed).await;
        }
        let (output, items, generation) = if rows.is_empty() {
            (Value::Null, vec![], Value::Null)
        } else {
            match ask(&shared, Ask::Recommend { k, exclude_consumed }, rows).await? {
                (Answer::Lists { output, rows }, generation) => (json!(output), rows, json!(generation)),
                (Answer::Scores { .. } | Answer::ItemScores { .. }, _) => {
                    unreachable!("a recommend job is answered with lists")
                }
            }
        };
        let answer =
            json!({ "model": model_name(&shared), "generation": generation, "output": output, "items": items });
        Ok(Json(answer).into_response())
    }
    .await
    .unwrap_or_else(IntoResponse::into_response);
    shared.metrics.record("/recommend", response.status(), started);
    response
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let started = Instant::now();
    let (run, description) = shared.current.lock().map(|c| c.clone()).unwrap_or_default();
    let generation = shared.generation.load(std::sync::atomic::Ordering::Relaxed);
    let raw = match &shared.raw {
        None => Value::Null,
        Some(r) => {
            let store = r.store.clone();
            let users = blocking(move || store.users()).await.ok();
            let fitted = r.fitted();
            json!({ "data": fitted.data.display().to_string(), "users": users, "columns": fitted.features.columns() })
        }
    };
    let response = Json(json!({
        "status": "ok",
        "run": run.display().to_string(),
        "generation": generation,
        "served": description,
        "raw": raw,
    }))
    .into_response();
    shared.metrics.record("/health", response.status(), started);
    response
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut text = String::new();
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_utf8(&shared.metrics.registry.gather(), &mut text) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}")).into_response(),
    }
}

async fn reload(State(shared): State<Arc<Shared>>, body: Body) -> Response {
    let started = Instant::now();
    let response = async {
        let bytes = axum::body::to_bytes(body, 1 << 16)
            .await
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}")))?;
        let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?
        };
        let path_of = |field: &str| match body.get(field) {
            None => Ok(None),
            Some(Value::String(p)) => Ok(Some(PathBuf::from(p))),
            Some(v) => Err(error(StatusCode::BAD_REQUEST, format!("`{field}` must be a path, found {v}"))),
        };
        let (run, data) = (path_of("run")?, path_of("data")?);
        if data.is_some() && shared.raw.is_none() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "`data` is for a server of raw requests (started with --state or --redis)",
            ));
        }
        // One reload at a time: generations, fitted features and models are swapped in order.
        let _reloading = shared.reloading.lock().await;
        let current = shared.current.lock().map(|c| c.0.clone()).unwrap_or_default();
        let run = run.unwrap_or_else(|| current.clone());
        let device = shared.device.clone();
        let path = run.clone();
        let loaded = tokio::task::spawn_blocking(move || Model::load(&path, &device))
            .await
            .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("loading stopped: {e}")))?
            .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot load {}: {e}", run.display())))?;
        let features = match &shared.raw {
            Some(raw) => Some(reload_features(raw, &run, &current, data).await?),
            None => None,
        };
        let mut loaded = loaded;
        // Numbered before the swap, so that the new model's answers carry it.
        let generation = shared.generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        loaded.generation = generation;
        // The new model's features first: rows built with them wait for the swap (their job
        // is refused as stale by the old model and built again), and rows built with the old
        // ones are refused by the new model.
        if let (Some(raw), Some((features, data))) = (&shared.raw, features) {
            if let Ok(mut f) = raw.fitted.lock() {
                *f = Fitted { features, data, generation };
            }
        }
        let description = loaded.describe();
        let (done, swapped) = oneshot::channel();
        let sent = shared.worker.lock().map(|w| w.send(Message::Swap(Box::new(loaded), done)).is_ok()).unwrap_or(false);
        if !sent || swapped.await.is_err() {
            return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the model thread has stopped"));
        }
        if let Ok(mut c) = shared.current.lock() {
            *c = (run.clone(), description.clone());
        }
        shared.metrics.reloads.inc();
        let data = shared.raw.as_ref().map(|r| r.fitted().data.display().to_string());
        Ok(Json(
            json!({ "run": run.display().to_string(), "generation": generation, "served": description, "data": data }),
        )
        .into_response())
    }
    .await
    .unwrap_or_else(IntoResponse::into_response);
    shared.metrics.record("/admin/reload", response.status(), started);
    response
}
