//! One validated tool run and its answer: a JSON object once the tool is done, or an NDJSON
//! stream written over the raw connection as the tool produces output. Owns the request's
//! temporary directory and concurrency slot until the run is over, and logs and counts it.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rouille::{Response, Upgrade};
use serde_json::json;

use super::exec::{self, Limits, Stream};
use super::routes::{Access, State, log, refused};
use crate::serve::Liveness;

/// Decrements the in-flight count when the run is over, however it ends.
pub struct Slot(Arc<State>);

impl Slot {
    /// Counts one more run in flight; returns the slot and the count including it.
    pub fn take(state: &Arc<State>) -> (Slot, usize) {
        let n = state.metrics.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        (Slot(Arc::clone(state)), n)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A validated tool run waiting to happen.
pub struct Run {
    pub state: Arc<State>,
    pub words: Vec<String>,
    /// Who asked: its name goes to the log, its scope to the tool.
    pub who: Arc<super::access::Who>,
    /// The least role of the tool: above viewer, its journal record is on disk before the reply.
    pub needs: super::access::Role,
    /// Uploaded files: name and hex SHA-256, for the journal.
    pub uploads: Vec<(String, String)>,
    pub dir: Option<tempfile::TempDir>,
    pub limits: Limits,
    pub peer: SocketAddr,
    pub method: String,
    pub slot: Option<Slot>,
    pub started: Instant,
}

impl Run {
    /// Runs the tool; `half_closed` is called while the client has sent FIN without being known
    /// gone (a stream writes a probe then: the reset that answers it tells a closed client).
    fn execute(
        &mut self,
        half_closed: &dyn Fn(),
        sink: &mut dyn FnMut(Stream, &[u8]) -> bool,
    ) -> Result<exec::ToolRun, String> {
        let (peers, peer) = (&self.state.peers, self.peer);
        let dir = self.dir.as_ref().expect("a run executes once");
        let stop_at = &self.state.stop_at;
        let interrupt = || {
            if stop_at.get().is_some_and(|t| Instant::now() >= *t) {
                return Some(exec::Killed::Shutdown);
            }
            match peers.liveness(&peer) {
                Liveness::Gone => Some(exec::Killed::Disconnect),
                Liveness::HalfClosed => {
                    half_closed();
                    None
                }
                Liveness::Alive => None,
            }
        };
        let mut env: Vec<(&str, String)> =
            self.who.scope_env().map(|scope| ("OCHO_SCOPE", scope)).into_iter().collect();
        if let Some(journal) = &self.state.journal {
            // `ocho audit` run through the portal reads the portal's journal.
            env.push((crate::audit::VAR, journal.path().display().to_string()));
        }
        let result = exec::run(&self.words, dir.path(), &self.limits, &env, &interrupt, sink)
            .map_err(|err| format!("portal: {}", crate::error::chain(&err)));
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if let Err(err) = dir.close() {
                eprintln!("portal: cannot remove {}: {err}", path.display());
            }
        }
        self.slot.take();
        result
    }

    /// Counts, journals and logs the run, before the end of the reply is sent.
    fn finish(&self, status: u16, code: Option<i32>, killed: Option<&str>, bytes: usize) {
        self.state.metrics.observe(&self.words[0], status, self.started.elapsed());
        let uploads: Vec<_> =
            self.uploads.iter().map(|(n, d)| json!({"name": n, "sha256": d})).collect();
        super::routes::journal(
            &self.state,
            json!({"who": self.who.name, "peer": self.peer.to_string(), "path": "/shell",
                "tool": self.words[0], "argv": self.words, "uploads": uploads,
                "status": status, "code": code, "killed": killed,
                "ms": self.started.elapsed().as_millis() as u64}),
            self.needs > super::access::Role::Viewer,
        );
        log(&Access {
            peer: &self.peer,
            who: &self.who.name,
            method: &self.method,
            path: "/shell",
            tool: &self.words[0],
            status,
            code,
            bytes: Some(bytes),
            started: self.started,
        });
    }

    /// Runs the tool and answers with one JSON object.
    pub fn reply(mut self) -> Response {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = self.execute(&|| {}, &mut |stream, line| {
            match stream {
                Stream::Out => out.extend_from_slice(line),
                Stream::Err => err.extend_from_slice(line),
            }
            true
        });
        let run = match result {
            Ok(run) => run,
            Err(message) => {
                let response = refused(500, &message);
                self.finish(500, None, None, out.len() + err.len());
                return response;
            }
        };
        let mut err = String::from_utf8_lossy(&err).into_owned();
        if let Some(killed) = run.killed {
            if !err.is_empty() && !err.ends_with('\n') {
                err.push('\n');
            }
            err.push_str(&killed.describe(&self.limits));
            err.push('\n');
        }
        let status = match run.killed {
            Some(exec::Killed::Deadline) => 408,
            // Nobody reads it; nginx's "client closed request" for the log and the metrics.
            Some(exec::Killed::Disconnect) => 499,
            Some(exec::Killed::Shutdown) => 503,
            _ => 200,
        };
        let body = json!({
            "ok": run.code == 0 && run.killed.is_none(),
            "code": run.code,
            "ms": run.elapsed.as_millis() as u64,
            "out": String::from_utf8_lossy(&out),
            "err": err,
            "killed": run.killed.map(exec::Killed::name),
        });
        self.finish(
            status,
            Some(run.code),
            run.killed.map(exec::Killed::name),
            out.len() + err.len(),
        );
        Response::json(&body).with_status_code(status)
    }
}

impl Upgrade for Run {
    /// Streams NDJSON over the raw connection, one flushed line per event, then closes it. While
    /// the client has half-closed, an empty line now and then finds out whether it still reads.
    fn build(&mut self, socket: Box<dyn rouille::ReadWrite + Send>) {
        let socket = RefCell::new(socket);
        let send = |event: serde_json::Value| {
            let mut text = event.to_string();
            text.push('\n');
            let mut socket = socket.borrow_mut();
            socket.write_all(text.as_bytes()).and_then(|()| socket.flush()).is_ok()
        };
        let probe = || {
            let _ = socket.borrow_mut().write_all(b"\n");
        };
        let mut bytes = 0;
        let result = self.execute(&probe, &mut |stream, line| {
            bytes += line.len();
            let text = String::from_utf8_lossy(line);
            let text = text.strip_suffix('\n').unwrap_or(&text);
            send(json!({"stream": stream.name(), "line": text}))
        });
        let (last, code, killed) = match result {
            Ok(run) => {
                let mut last = json!({"exit": run.code, "ms": run.elapsed.as_millis() as u64});
                if let Some(killed) = run.killed {
                    last["killed"] = json!(killed.name());
                    last["error"] = json!(killed.describe(&self.limits));
                }
                (last, Some(run.code), run.killed.map(exec::Killed::name))
            }
            Err(message) => (json!({"exit": null, "error": message}), None, None),
        };
        // Journaled (on disk for state-changing tools) before the client learns the outcome.
        self.finish(200, code, killed, bytes);
        // The end of the body is the end of the connection: the server closes it on return.
        send(last);
    }
}
