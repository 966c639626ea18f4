//! What every request of the portal shares ([`State`]: limits, credentials, the journal, the
//! metrics, the open connections) and the journal's append.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::auth::{Keys, Nonces};
use super::exec::Limits;
use super::metrics::Metrics;

/// Everything the routes share.
pub struct State {
    /// Default limits (`--timeout`, `--max-output`).
    pub limits: Limits,
    pub max_upload: usize,
    pub max_concurrent: usize,
    /// The token, re-read when its file changes.
    pub keys: Keys,
    /// The audit journal (`--audit`), if any.
    pub journal: Option<crate::audit::Journal>,
    /// Nonces of v2 signatures already used.
    pub nonces: Nonces,
    /// Ochothon's replayable `sha1=` signatures are accepted (`--legacy-signatures`).
    pub legacy_signatures: bool,
    /// Host names (besides IP literals and `localhost`) requests may be addressed to.
    pub allowed_hosts: Vec<String>,
    pub metrics: Metrics,
    /// The server's open connections: is a request's client still there?
    pub peers: Arc<crate::serve::Peers>,
    /// The portal's own directory, where request directories are made.
    pub tmp: PathBuf,
    /// Set when the portal starts stopping: tools still running then are stopped.
    pub stop_at: std::sync::OnceLock<Instant>,
}

/// Appends one record to the audit journal, if there is one; on disk before it returns when
/// `sync`. A failure is logged, and refuses state-changing tools until an append succeeds.
pub fn journal(state: &State, record: serde_json::Value, sync: bool) {
    use std::sync::atomic::Ordering;
    let (Some(journal), serde_json::Value::Object(fields)) = (&state.journal, record) else {
        return;
    };
    match journal.append(fields, sync) {
        Ok(()) => journal.failed.store(false, Ordering::SeqCst),
        Err(err) => {
            journal.failed.store(true, Ordering::SeqCst);
            state.metrics.reject("audit");
            eprintln!("portal: audit journal: {}", crate::error::chain(&err));
        }
    }
}
