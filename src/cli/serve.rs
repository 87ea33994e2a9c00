//! `recspec serve`: a trained run behind an HTTP JSON API (`recspec::server`).

use super::Exit;
use recspec::app::AppError;
use recspec::server::state::{Embedded, Redis, Store};
use recspec::server::{serve, Raw, ServeOptions};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The trained run directory to serve.
    run: PathBuf,
    /// The address to listen on (the loopback address unless you mean to expose the model).
    #[arg(long, default_value_t = ServeOptions::default().addr.ip())]
    host: IpAddr,
    /// The port to listen on; 0 picks a free one (printed on stderr).
    #[arg(long, default_value_t = ServeOptions::default().addr.port())]
    port: u16,
    /// Rows per forward pass at most: concurrent requests are batched together up to it.
    #[arg(long, default_value_t = ServeOptions::default().max_batch_rows)]
    max_batch_rows: usize,
    /// Milliseconds the first request of a batch waits for others to join it.
    #[arg(long, default_value_t = ServeOptions::default().max_wait.as_millis() as u64)]
    max_wait_ms: u64,
    /// Rows one request may hold (more is refused with 413).
    #[arg(long, default_value_t = ServeOptions::default().max_request_rows)]
    max_request_rows: usize,
    /// Bytes one request body may hold (more is refused with 413).
    #[arg(long, default_value_t = ServeOptions::default().max_body_bytes)]
    max_body_bytes: usize,
    #[command(flatten)]
    device: super::DeviceArg,
    /// Take raw requests (`POST /events`, `/score` and `/recommend` with a user's key), keeping
    /// each user's raw events in this file (created if missing; an embedded database). Rows are
    /// built with the fitted features the run keeps of its data set (`RUN/data`).
    #[arg(long, group = "store")]
    state: Option<PathBuf>,
    /// Keep users' raw events in Redis instead (`redis://HOST:PORT/DB`), shared by every
    /// server given the same URL and --redis-prefix.
    #[arg(long, group = "store")]
    redis: Option<String>,
    /// Build rows with this data set's fitted features instead of the run's copy (for a run
    /// trained before runs kept one).
    #[arg(long, requires = "store")]
    data: Option<PathBuf>,
    /// The feature set or mapping the data set was imported with (default: the one its
    /// data.toml records).
    #[arg(long, requires = "store")]
    features: Option<PathBuf>,
    /// The prefix of this deployment's Redis keys.
    #[arg(long, default_value = "recspec", requires = "redis")]
    redis_prefix: String,
    /// Events to store before serving (an event log in any format recspec import reads), e.g.
    /// the data set's own, to serve its users at once.
    #[arg(long, requires = "store")]
    load_events: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<Exit, AppError> {
    if args.max_batch_rows == 0 || args.max_request_rows == 0 {
        return Err(AppError::Serve("--max-batch-rows and --max-request-rows must be at least 1".into()));
    }
    let options = ServeOptions {
        addr: SocketAddr::new(args.host, args.port),
        max_batch_rows: args.max_batch_rows,
        max_wait: Duration::from_millis(args.max_wait_ms),
        max_request_rows: args.max_request_rows,
        max_body_bytes: args.max_body_bytes,
        ..ServeOptions::default()
    };
    let device = args.device.choice.device()?;
    let run = args.run.clone();
    let cannot = |e: recspec::server::state::StoreError| AppError::Serve(format!("cannot open the state: {e}"));
    let store: Option<Arc<dyn Store>> = match (&args.state, &args.redis) {
        (Some(path), _) => Some(Arc::new(Embedded::open(path).map_err(cannot)?)),
        (None, Some(url)) => Some(Arc::new(Redis::open(url, &args.redis_prefix).map_err(cannot)?)),
        (None, None) => None,
    };
    let raw = match store {
        Some(store) => {
            let data = match &args.data {
                Some(data) => data.clone(),
                None => recspec::app::RunDir::open(&args.run).fitted().ok_or_else(|| {
                    AppError::Serve(format!(
                        "{} keeps no copy of its data set's fitted features (runs trained before 2026-12-07 do not); give the data set it was trained on with --data DATA",
                        args.run.display()
                    ))
                })?,
            };
            let features = Arc::new(recspec::app::dataset::featurizer(&data, args.features.as_deref())?);
            if let Some(file) = &args.load_events {
                let n = load_events(&features, store.as_ref(), file)?;
                eprintln!("stored {n} events of {}", file.display());
            }
            Some(Raw { features, store, data, definition: args.features.clone() })
        }
        None => None,
    };
    serve(args.run, device, options, raw, |addr| {
        eprintln!(
            "serving {} on http://{addr} (POST /score, /recommend, /admin/reload; GET /health, /metrics)",
            run.display()
        );
    })?;
    Ok(Exit::Ok)
}

/// Stores every event of `file`, read as `recspec import` reads an event log (a bad row stops
/// it, naming the file and row).
fn load_events(
    features: &Arc<recspec::import::online::Featurizer>,
    store: &dyn Store,
    file: &std::path::Path,
) -> Result<usize, AppError> {
    let events = features.read_events(file)?;
    let n = events.len();
    let f = features.clone();
    store
        .append(events, &|es, e| f.insert(es, e))
        .map_err(|e| AppError::Serve(format!("cannot store the events of {}: {e}", file.display())))?;
    Ok(n)
}
