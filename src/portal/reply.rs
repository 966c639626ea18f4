//! One validated tool run and its answer: a JSON object once the tool is done, or an NDJSON
//! stream written over the raw connection as the tool produces output (a usage error the tool
//! finds at once is a 400 either way). Owns the request's
//! temporary directory and concurrency slot until the run is over, and logs and counts it.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rouille::{Response, Upgrade};
use serde_json::json;

use super::access_log::{Access, log};
use super::exec::{self, Limits, Stream};
use super::state::State;
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
    /// The client reads on a terminal (`X-Terminal: 1`): the tool formats for one.
    pub terminal: bool,
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
        if self.terminal {
            env.push((crate::tools::output::TERMINAL, "1".into()));
        }
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
        super::state::journal(
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
            Some(_) => 200,
            // A usage error found by the tool is answered as the portal's parser answers one.
            None if run.code == 2 => 400,
            None => 200,
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

/// How long a streamed run may stay silent on stdout before its head is sent: a tool finds a
/// usage error before it contacts anything, so within this time its exit 2 becomes a 400 like
/// the parser's; a tool that is quiet for longer (`wait`) is streamed as 200 from then on.
pub const HEAD_WAIT: Duration = Duration::from_secs(2);

/// What the tool's thread hands to the connection's writer.
enum Event {
    Line(Stream, Vec<u8>),
    /// Write an empty line: the reset that answers it tells a closed client.
    Probe,
    /// The last line of the stream, after the run was counted and journaled.
    Done(serde_json::Value),
}

/// The status of a streamed reply, decided once, by whichever side knows first: the head
/// waiting for output (a stream) or the tool's thread at the tool's end (a usage error, 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Stream,
    Usage,
}

/// Decides `want` unless the other side already decided; returns what stands.
fn decide(head: &Mutex<Option<Head>>, want: Head) -> Head {
    let mut head = head.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *head.get_or_insert(want)
}

impl Run {
    /// Starts the tool on its own thread and answers once its first stdout line arrives, it
    /// exits, or [`HEAD_WAIT`] passes: a tool's usage error (exit 2, nothing on stdout) is a 400
    /// with the whole run as one JSON object, as the portal's own parse errors are; anything else
    /// is an NDJSON stream over the raw connection (rouille's upgrade path, so each line is
    /// written as it comes; the body ends when the portal closes the connection, RFC 9112 §6.3).
    pub fn stream(self) -> Response {
        let (tx, rx) = mpsc::sync_channel(256);
        let head = Arc::new(Mutex::new(None));
        let theirs = Arc::clone(&head);
        let spawned = std::thread::Builder::new()
            .name("tool".into())
            .spawn(move || self.run_for_stream(&tx, &theirs));
        if let Err(err) = spawned {
            // The run was dropped with the closure: its directory and slot are released.
            return refused(503, &format!("portal: cannot start the tool's thread: {err}"));
        }
        let deadline = Instant::now() + HEAD_WAIT;
        let mut buffered = Vec::new();
        loop {
            // Once the tool's thread has decided on a usage error, only its Done is awaited:
            // block for it rather than poll with a deadline already past.
            let settled = head.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some();
            let wait = if settled {
                Duration::from_secs(3600)
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match rx.recv_timeout(wait) {
                // Nothing to probe before the head is out.
                Ok(Event::Probe) => {}
                Ok(Event::Line(stream, line)) => {
                    let out = stream == Stream::Out;
                    buffered.push(Event::Line(stream, line));
                    if out && decide(&head, Head::Stream) == Head::Stream {
                        break;
                    }
                }
                Ok(Event::Done(last)) => {
                    if decide(&head, Head::Stream) == Head::Usage {
                        return usage_reply(&buffered, &last);
                    }
                    buffered.push(Event::Done(last));
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if decide(&head, Head::Stream) == Head::Stream {
                        break;
                    }
                    // The tool ended as a usage error meanwhile: its Done is on the way.
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut response = Response::text("")
            .with_unique_header("Content-Type", "application/x-ndjson")
            .with_unique_header("Cache-Control", "no-cache")
            .with_unique_header("X-Content-Type-Options", "nosniff");
        response.upgrade = Some(Box::new(Streamed { buffered, rx }));
        response
    }

    /// The tool's thread: runs it, passing each line on, then counts and journals the run
    /// before the client can learn its outcome.
    fn run_for_stream(mut self, tx: &SyncSender<Event>, head: &Mutex<Option<Head>>) {
        let probe = || {
            let _ = tx.try_send(Event::Probe);
        };
        let mut bytes = 0;
        let result = self.execute(&probe, &mut |stream, line| {
            bytes += line.len();
            // Fails once the writer is gone (the client left): the tool is then killed.
            tx.send(Event::Line(stream, line.to_vec())).is_ok()
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
        let usage = code == Some(2) && killed.is_none();
        let status = match decide(head, if usage { Head::Usage } else { Head::Stream }) {
            Head::Usage => 400,
            Head::Stream => 200,
        };
        self.finish(status, code, killed, bytes);
        let _ = tx.send(Event::Done(last));
    }
}

/// A usage error found by the tool, answered as the portal answers its own: 400 and the run
/// as one JSON object.
fn usage_reply(events: &[Event], last: &serde_json::Value) -> Response {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for event in events {
        if let Event::Line(stream, line) = event {
            match stream {
                Stream::Out => out.extend_from_slice(line),
                Stream::Err => err.extend_from_slice(line),
            }
        }
    }
    Response::json(&json!({
        "ok": false,
        "code": 2,
        "ms": last["ms"],
        "out": String::from_utf8_lossy(&out),
        "err": String::from_utf8_lossy(&err),
        "killed": null,
    }))
    .with_status_code(400)
}

/// The writer of a streamed reply: what was buffered while the head waited, then every event
/// as it comes, one flushed NDJSON line each; returning drops the receiver, which kills a tool
/// still writing (the client is gone).
struct Streamed {
    buffered: Vec<Event>,
    rx: Receiver<Event>,
}

impl Upgrade for Streamed {
    fn build(&mut self, mut socket: Box<dyn rouille::ReadWrite + Send>) {
        // What was buffered while the head waited leaves with the head, in one write; then each
        // line as it comes; the last one with the close, which the server sends on return.
        let buffered = std::mem::take(&mut self.buffered);
        for event in buffered {
            match write_event(&mut *socket, event) {
                Some(true) => continue,
                Some(false) | None => return,
            }
        }
        if socket.flush().is_err() {
            return;
        }
        for event in self.rx.iter() {
            if write_event(&mut *socket, event) != Some(true) || socket.flush().is_err() {
                return;
            }
        }
    }
}

/// Writes one event of a stream: `Some(true)` to go on, `Some(false)` after the last line,
/// `None` when the client is gone.
fn write_event(socket: &mut dyn rouille::ReadWrite, event: Event) -> Option<bool> {
    let (bytes, more) = match event {
        Event::Line(stream, line) => {
            let text = String::from_utf8_lossy(&line);
            let text = text.strip_suffix('\n').unwrap_or(&text);
            (json!({"stream": stream.name(), "line": text}).to_string() + "\n", true)
        }
        Event::Probe => ("\n".to_string(), true),
        // The end of the body is the end of the connection.
        Event::Done(last) => (last.to_string() + "\n", false),
    };
    socket.write_all(bytes.as_bytes()).ok().map(|()| more)
}

/// The reply for a line refused before anything ran, in the `/shell` shape.
pub(super) fn refused(status: u16, message: &str) -> Response {
    let mut err = message.to_string();
    if !err.ends_with('\n') {
        err.push('\n');
    }
    Response::json(&json!({"ok": false, "code": 2, "ms": 0, "out": "", "err": err}))
        .with_status_code(status)
}
