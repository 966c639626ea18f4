//! `ocho portal`: the proxy's HTTP face (rouille, one thread per request). This first version
//! serves `GET /healthz` and drains in-flight requests on SIGTERM/SIGINT; tool execution lands
//! with the portal issue.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use nix::sys::signal::Signal;
use rouille::{Request, Response};

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
}

/// Routes one request.
pub fn routes(request: &Request) -> Response {
    rouille::router!(request,
        (GET) (/healthz) => { Response::json(&serde_json::json!({"ok": true})) },
        _ => Response::empty_404()
    )
}

/// Serves until SIGTERM or SIGINT, then finishes the requests in flight and exits 0.
pub fn run(args: Args) -> Result<ExitCode> {
    // Before the server starts its threads, so that they inherit the mask.
    signals::block_all()?;
    let mut sigs = signals::Signals::open()?;
    let server = rouille::Server::new(&args.bind, routes)
        .map_err(|e| Error::Failed(format!("portal: cannot listen on {}: {e}", args.bind)))?;
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
    eprintln!("stopping: draining requests in flight");
    server.poll_timeout(Duration::from_millis(0));
    server.join();
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_answers_and_unknown_paths_are_404() {
        let ok = routes(&Request::fake_http("GET", "/healthz", vec![], vec![]));
        assert_eq!(ok.status_code, 200);
        let missing = routes(&Request::fake_http("GET", "/nope", vec![], vec![]));
        assert_eq!(missing.status_code, 404);
    }
}
