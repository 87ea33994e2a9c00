//! `recspec serve`: a trained run behind an HTTP JSON API (`recspec::server`).

use super::Exit;
use recspec::app::AppError;
use recspec::runtime::DeviceChoice;
use recspec::server::{serve, ServeOptions};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The trained run directory to serve.
    run: PathBuf,
    /// The address to listen on (the loopback address unless you mean to expose the model).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The port to listen on; 0 picks a free one (printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Rows per forward pass at most: concurrent requests are batched together up to it.
    #[arg(long, default_value_t = 256)]
    max_batch_rows: usize,
    /// Milliseconds the first request of a batch waits for others to join it.
    #[arg(long, default_value_t = 2)]
    max_wait_ms: u64,
    /// Rows one request may hold (more is refused with 413).
    #[arg(long, default_value_t = 1024)]
    max_request_rows: usize,
    /// Bytes one request body may hold (more is refused with 413).
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// cpu (burn-flex), ndarray, or with the `tch` feature tch-cpu and cuda.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
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
    let device = args.device.device()?;
    let run = args.run.clone();
    serve(args.run, device, options, |addr| {
        eprintln!(
            "serving {} on http://{addr} (POST /score, /recommend, /admin/reload; GET /health, /metrics)",
            run.display()
        );
    })?;
    Ok(Exit::Ok)
}
