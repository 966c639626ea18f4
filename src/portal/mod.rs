//! `ocho portal`: the proxy's HTTP face (rouille, one thread per request). Owns the server: its
//! options, the shared state, the "listening on ADDR" readiness line, the open-portal warning and
//! the graceful drain on SIGTERM/SIGINT/SIGQUIT (platform notes §5.2). Routes live in
//! `routes.rs`, tool execution in `exec.rs`, credentials in `auth.rs`, the web terminal in `web/`.

mod auth;
mod exec;
mod metrics;
mod reply;
mod routes;
mod upload;
mod web;
pub(crate) mod words;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::supervise::signals;

/// serve the portal: run tools for HTTP clients
#[derive(FromArgs, ArgsInfo)]
#[argh(subcommand, name = "portal")]
pub struct Args {
    /// address to listen on (env OCHO_PORTAL_BIND; default 0.0.0.0:9000)
    #[argh(
        option,
        default = "std::env::var(\"OCHO_PORTAL_BIND\").unwrap_or_else(|_| \"0.0.0.0:9000\".into())"
    )]
    pub bind: String,
    /// deadline of one tool run in seconds, unless the request's X-Timeout says otherwise
    /// (default 120)
    #[argh(option, default = "120.0")]
    pub timeout: f64,
    /// bytes of stdout + stderr a tool may write before it is killed (default 4 MiB)
    #[argh(option, default = "4 << 20")]
    pub max_output: usize,
    /// total bytes of uploaded files per request (default 16 MiB)
    #[argh(option, default = "16 << 20")]
    pub max_upload: usize,
    /// tools running at once; more requests get 503 (default 2 x cores + 2)
    #[argh(option)]
    pub max_concurrent: Option<usize>,
    /// file holding the token clients must present (default: env OCHO_TOKEN; neither: open)
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// seconds requests in flight may go on after SIGTERM before their tools are stopped
    /// (default 10; under `ocho init`'s share of its grace)
    #[argh(option, default = "10.0")]
    pub drain: f64,
}

/// Serves until SIGTERM, SIGINT or SIGQUIT, then finishes the requests in flight and exits 0.
pub fn run(args: Args) -> Result<ExitCode> {
    // Before the server starts its threads, so that they inherit the mask.
    signals::block_all()?;
    let mut sigs = signals::Signals::open()?;
    if !(args.timeout > 0.0 && args.timeout <= routes::MAX_TIMEOUT_SECS) {
        return Err(Error::Usage(format!(
            "--timeout must be in (0, {}] seconds",
            routes::MAX_TIMEOUT_SECS
        )));
    }
    let drain = Duration::try_from_secs_f64(args.drain)
        .map_err(|_| Error::Usage(format!("--drain {}: not a duration", args.drain)))?;
    let token = auth::Token::load(args.token_file.as_deref())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_concurrent = args.max_concurrent.unwrap_or(2 * cores + 2).max(1);
    let open = token.is_none();
    let mut state = routes::State {
        limits: exec::Limits {
            timeout: Duration::from_secs_f64(args.timeout),
            max_output: args.max_output,
        },
        max_upload: args.max_upload,
        max_concurrent,
        token,
        metrics: metrics::Metrics::default(),
        port: 0,
        tmp: std::env::temp_dir(),
        stop_at: std::sync::OnceLock::new(),
    };
    // The port is known once bound; the state is built before, so bind first, then fill it in
    // through a cell the handler reads.
    let shared: Arc<std::sync::OnceLock<Arc<routes::State>>> = Arc::default();
    let handler_state = Arc::clone(&shared);
    let server = rouille::Server::new(&args.bind, move |request| {
        let state = handler_state.get().expect("state is set before the first poll");
        routes::routes(state, request)
    })
    .map_err(|e| Error::Failed(format!("portal: cannot listen on {}: {e}", args.bind)))?;
    state.port = server.server_addr().port();
    let _ = shared.set(Arc::new(state));
    if open {
        eprintln!(
            "portal: WARNING: no token (--token-file or OCHO_TOKEN): anyone who reaches {} can run tools",
            server.server_addr()
        );
    }
    eprintln!("listening on {}", server.server_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        loop {
            match sigs.wait(Duration::from_secs(1)) {
                Ok(got)
                    if got.iter().any(|s| {
                        matches!(s, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
                    }) =>
                {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(_) => {}
                Err(err) => {
                    eprintln!("portal: {}", crate::error::chain(&err));
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    });
    while !stop.load(Ordering::SeqCst) {
        server.poll_timeout(Duration::from_millis(100));
    }
    eprintln!(
        "stopping: draining requests in flight (tools still running in {drain:?} are stopped)"
    );
    if let Some(state) = shared.get() {
        let _ = state.stop_at.set(std::time::Instant::now() + drain);
    }
    server.poll_timeout(Duration::from_millis(0));
    server.join();
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
