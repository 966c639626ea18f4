//! `ocho portal`: the proxy's HTTP face (rouille, one thread per request). Owns the server: its
//! options, the shared state, the "listening on ADDR" readiness line, the open-portal warning and
//! the graceful drain on SIGTERM/SIGINT/SIGQUIT (docs/platform.md §5.2). Routes live in
//! `routes.rs`, tool execution in `exec.rs`, credentials in `auth.rs`, the web terminal in `web/`.

mod access;
mod access_log;
mod auth;
mod exec;
mod metrics;
mod reply;
mod routes;
mod state;
pub mod upload;
mod web;

/// `/tools`' listing, also `ocho cli`'s own when a portal does not answer it.
pub use routes::tools_json;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::serve;
use crate::supervise::signals;

/// serve the portal: run tools for HTTP clients
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "portal",
    example = "{command_name} --bind 127.0.0.1:9000\n    serve the tools on this machine only (loopback needs no token)",
    example = "{command_name} --token-file /etc/ocho/token\n    serve on every address; clients send the token held in /etc/ocho/token",
    example = "{command_name} --tokens-file tokens.yml --tls-cert tls.crt --tls-key tls.key\n    serve HTTPS only, to named tokens with their roles and scopes"
)]
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
    /// tools running at once; more requests get 503 (default 32; env OCHO_MAX_CONCURRENT)
    #[argh(
        option,
        default = "std::env::var(\"OCHO_MAX_CONCURRENT\").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MAX_CONCURRENT)"
    )]
    pub max_concurrent: usize,
    /// open connections; one more closes the connection idle longest, or gets 503 (default 512,
    /// lowered to fit the open-file limit)
    #[argh(option, default = "512")]
    pub max_connections: usize,
    /// directory for request directories, emptied at start (default $TMPDIR/ocho-portal.PORT)
    #[argh(option)]
    pub work_dir: Option<PathBuf>,
    /// file holding the token clients must present, re-read when it changes (env
    /// OCHO_TOKEN_FILE; else the token itself in env OCHO_TOKEN)
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// YAML list of named tokens ({name, sha256, role: viewer|operator|admin, scope: [globs]}),
    /// re-read when it changes (env OCHO_TOKENS_FILE); see the README's security section
    #[argh(option)]
    pub tokens_file: Option<PathBuf>,
    /// serve without credentials on an address other than loopback: anyone who reaches it runs
    /// tools with the proxy's rights (env OCHO_INSECURE_NO_AUTH=1)
    #[argh(switch)]
    pub insecure_no_auth: bool,
    /// also accept Ochothon's sha1 X-Signature, which covers neither time nor uploads and can be
    /// replayed (env OCHO_LEGACY_SIGNATURES=1)
    #[argh(switch)]
    pub legacy_signatures: bool,
    /// a host name clients may address the portal by (repeatable; env OCHO_ALLOWED_HOSTS,
    /// comma-separated); IP addresses and localhost are always accepted
    #[argh(option)]
    pub allowed_host: Vec<String>,
    /// PEM certificate chain: serve HTTPS only, re-read when the file changes (env
    /// OCHO_TLS_CERT; needs --tls-key)
    #[argh(option)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert, re-read when it changes (env OCHO_TLS_KEY)
    #[argh(option)]
    pub tls_key: Option<PathBuf>,
    /// append-only audit journal (JSON lines, hash-chained) of every tool run and every
    /// refusal for credentials or role (env OCHO_AUDIT); `ocho audit` reads it
    #[argh(option)]
    pub audit: Option<PathBuf>,
    /// bytes of the journal file before it is rotated, the chain continuing (default 64 MiB)
    #[argh(option, default = "64 << 20")]
    pub audit_max_bytes: u64,
    /// seconds requests in flight may go on after SIGTERM before their tools are stopped
    /// (default 10; under `ocho init`'s share of its grace)
    #[argh(option, default = "10.0")]
    pub drain: f64,
}

/// Serves until SIGTERM, SIGINT or SIGQUIT, then finishes the requests in flight and exits 0.
/// Exits 1 if the HTTP server stops by itself, so that `ocho init` starts a new portal.
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
    let token_file = args.token_file.clone().or_else(|| {
        std::env::var_os("OCHO_TOKEN_FILE").filter(|v| !v.is_empty()).map(PathBuf::from)
    });
    let tokens_file = args.tokens_file.clone().or_else(|| {
        std::env::var_os("OCHO_TOKENS_FILE").filter(|v| !v.is_empty()).map(PathBuf::from)
    });
    let keys = auth::Keys::load(token_file.as_deref(), tokens_file.as_deref())?;
    let max_concurrent = args.max_concurrent.max(1);
    let open = keys.is_open();
    let flag = |on: bool, var: &str| {
        on || matches!(std::env::var(var).as_deref(), Ok("1" | "true" | "yes"))
    };
    let insecure = flag(args.insecure_no_auth, "OCHO_INSECURE_NO_AUTH");
    let mut allowed_hosts = args.allowed_host.clone();
    if let Ok(list) = std::env::var("OCHO_ALLOWED_HOSTS") {
        allowed_hosts
            .extend(list.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from));
    }
    let limits = serve::Limits {
        max_connections: args.max_connections.max(1),
        // Multipart framing adds a little to the files themselves.
        max_body: args.max_upload + 64 * 1024,
        // Room for a few uploads of the largest size at once; more wait (503) for their turn.
        body_budget: (4 * (args.max_upload + 64 * 1024)).max(64 << 20),
        ..serve::Limits::default()
    };
    let env_path = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from);
    let tls_cert = args.tls_cert.clone().or_else(|| env_path("OCHO_TLS_CERT"));
    let tls_key = args.tls_key.clone().or_else(|| env_path("OCHO_TLS_KEY"));
    let certs = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => Some(serve::tls::Certs::load(cert, key).map_err(Error::Usage)?),
        (None, None) => None,
        _ => {
            return Err(Error::Usage(
                "--tls-cert and --tls-key (OCHO_TLS_CERT, OCHO_TLS_KEY) go together".into(),
            ));
        }
    };
    let mut server = serve::Server::bind(&args.bind, limits)
        .map_err(|e| Error::Failed(format!("cannot listen on {}: {e}", args.bind)))?;
    if let Some(certs) = certs {
        server = server.with_tls(certs, &["/healthz", "/readyz"]);
    }
    let addr = server.local_addr();
    if open && !addr.ip().is_loopback() && !insecure {
        return Err(Error::Usage(format!(
            "refusing to serve {addr} without credentials: give --token-file or --tokens-file (or OCHO_TOKEN_FILE, OCHO_TOKENS_FILE, OCHO_TOKEN), bind to a loopback address, or pass --insecure-no-auth"
        )));
    }
    let work = work_dir(args.work_dir.as_deref(), addr.port())?;
    let audit = args.audit.clone().or_else(|| {
        std::env::var_os(crate::audit::VAR).filter(|v| !v.is_empty()).map(PathBuf::from)
    });
    let journal = audit
        .as_deref()
        .map(|path| crate::audit::Journal::open(path, args.audit_max_bytes))
        .transpose()?;
    let state = Arc::new(state::State {
        limits: exec::Limits {
            timeout: Duration::from_secs_f64(args.timeout),
            max_output: args.max_output,
            kill_grace: exec::KILL_GRACE,
        },
        max_upload: args.max_upload,
        max_concurrent,
        keys,
        journal,
        nonces: auth::Nonces::default(),
        legacy_signatures: flag(args.legacy_signatures, "OCHO_LEGACY_SIGNATURES"),
        allowed_hosts,
        metrics: metrics::Metrics::default(),
        peers: server.peers(),
        tmp: work.clone(),
        stop_at: std::sync::OnceLock::new(),
    });
    let handler_state = Arc::clone(&state);
    let running =
        server.start("portal", Arc::new(move |request| routes::routes(&handler_state, request)));
    if open && insecure && !addr.ip().is_loopback() {
        eprintln!(
            "WARNING: --insecure-no-auth: no credentials on {addr}: anyone who reaches it can run tools with the proxy's rights"
        );
    } else if open {
        eprintln!(
            "WARNING: no token (--token-file or OCHO_TOKEN): anyone on this host can run tools through {addr}"
        );
    }
    if let Some(cert) = &tls_cert {
        eprintln!("HTTPS only, certificate {}", cert.display());
    }
    eprintln!("listening on {addr}");
    loop {
        match sigs.wait(Duration::from_millis(200)) {
            Ok(got)
                if got
                    .iter()
                    .any(|s| matches!(s, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)) =>
            {
                break;
            }
            Ok(got) if got.contains(&Signal::SIGHUP) => {
                eprintln!("SIGHUP: reading the token file again");
                state.keys.reload();
            }
            Ok(_) => {}
            Err(err) => {
                eprintln!("portal: {}", crate::error::chain(&err));
                break;
            }
        }
        if running.failed() {
            return Err(Error::Failed(
                "the HTTP server stopped; exiting so that it is restarted".into(),
            ));
        }
    }
    eprintln!(
        "stopping: draining requests in flight (tools still running in {drain:?} are stopped)"
    );
    let _ = state.stop_at.set(std::time::Instant::now() + drain);
    running.stop_and_join();
    if let Err(err) = std::fs::remove_dir(&work) {
        eprintln!("portal: cannot remove {}: {err}", work.display());
    }
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Tools running at once by default. A tool mostly waits on ZooKeeper, the pods or the API
/// server: measured (`make bench`), one running tool is about 2.5 MB resident, of which 0.3 MB
/// private (the rest is the shared binary), and `grep` over 200 pods takes ~50 ms of mostly
/// waiting; 32 of them fit easily in the proxy's 512 MiB beside the JVM, where the old default
/// (2 × cores + 2) sent half the requests at concurrency 8 to 503 on a 2-core node.
pub const DEFAULT_MAX_CONCURRENT: usize = 32;

/// The portal's own directory for request directories: `DIR` or `$TMPDIR/ocho-portal.PORT`,
/// mode 0700, emptied at start (what a crash or an OOM kill left behind goes at once).
fn work_dir(dir: Option<&std::path::Path>, port: u16) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = match dir {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("ocho-portal.{port}")),
    };
    let io = |what, source| Error::io(what, &dir, source);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {
            for entry in std::fs::read_dir(&dir).map_err(|e| io("list", e))? {
                let path = entry.map_err(|e| io("list", e))?.path();
                let gone = if path.is_dir() && !path.is_symlink() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                gone.map_err(|e| Error::io("remove leftover", &path, e))?;
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| io("restrict", e))?;
        }
        Ok(_) => return Err(Error::Failed(format!("{}: not a directory", dir.display()))),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io("create", e))?,
    }
    Ok(dir)
}
