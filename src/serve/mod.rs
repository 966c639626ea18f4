//! The HTTP/1.1 server under the portal and the agent's control port: our own accept loop and
//! connection threads that enforce every limit a client can push, then hand a complete request
//! to a synchronous rouille handler (`Fn(&rouille::Request) -> rouille::Response`) and write its
//! response. rouille keeps the routing, the request and response types and the handler model;
//! tiny_http, which rouille runs on, is not used: its faults were in exactly this layer (a
//! connection leaked for ever on an HTTP/2.0 request line, an accept thread that panicked when
//! file descriptors ran out, header lines of any length, no time limits).
//!
//! Guarantees, all before the handler (and so before any authentication) runs:
//! - at most `max_connections` open connections; one more is answered 503 and closed at once;
//! - the request line and each header line at most `max_line` bytes (414 / 431), at most
//!   `max_fields` fields and `max_head` bytes of them (431), all received within `head_timeout`
//!   (408), the next request on a kept-alive connection within `idle_timeout` (closed quietly);
//! - HTTP/1.0 and 1.1 only: any other version gets its 505 and the connection is closed;
//! - a body only with a valid `Content-Length` (411 for `Transfer-Encoding`), at most `max_body`
//!   bytes (413), the bodies of all connections together within `body_budget` (503), each read
//!   within `body_timeout` and the whole body at a minimum rate (408); a body shorter than its
//!   length is a 400 and the handler never sees it;
//! - running out of file descriptors never stops the accept loop: it sheds connections and backs
//!   off. If the loop ends anyway, [`Running::failed`] says so and the owner should exit.

mod head;
mod peer;
pub mod tls;

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rouille::{Request, Response};

pub use peer::{Liveness, Peers};

/// Every bound of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_line: usize,
    pub max_fields: usize,
    pub max_head: usize,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    /// Bytes per second a body must arrive at, on average, after the first `body_timeout`.
    pub min_body_rate: usize,
    pub max_body: usize,
    pub body_budget: usize,
    /// Requests served on one connection before it is closed.
    pub max_requests: usize,
    /// Longest a reply write may block on a client that does not read.
    pub write_timeout: Duration,
}

impl Limits {
    /// nginx's defaults where it has one (8 KiB lines; its 60 s body read timeout is 10 s here).
    pub const DEFAULT: Limits = Limits {
        max_connections: 512,
        max_line: 8 * 1024,
        max_fields: 100,
        max_head: 32 * 1024,
        head_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(15),
        body_timeout: Duration::from_secs(10),
        min_body_rate: 16 * 1024,
        max_body: 1 << 20,
        body_budget: 64 << 20,
        max_requests: 1000,
        write_timeout: Duration::from_secs(30),
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// A handler, as rouille's.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A bound listener, not yet serving.
pub struct Server {
    listener: TcpListener,
    limits: Limits,
    peers: Arc<Peers>,
    tls: Option<Arc<tls::Certs>>,
    plain_paths: &'static [&'static str],
}

/// What the accept loop and the connection threads share.
struct Shared {
    limits: Limits,
    peers: Arc<Peers>,
    handler: Arc<Handler>,
    /// HTTPS only, with these certificates.
    tls: Option<Arc<tls::Certs>>,
    /// With `tls`: the paths a plain-HTTP request may still reach (the probes).
    plain_paths: &'static [&'static str],
    stopping: AtomicBool,
    /// Body bytes held by all connections.
    buffered: AtomicUsize,
    /// Open connections, and a condition to wait for them all to end.
    open: Mutex<usize>,
    closed: Condvar,
    /// What `name:` prefixes the server's own log lines.
    name: &'static str,
}

/// A serving server.
pub struct Running {
    shared: Arc<Shared>,
    accept: std::thread::JoinHandle<io::Error>,
}

/// Connections over the limit while evicted ones wind down.
const EVICTION_HEADROOM: usize = 32;

/// Longest the accept loop waits for evicted connections to end before refusing a new one.
const EVICTION_WAIT: Duration = Duration::from_millis(200);

/// Descriptors kept back for the process's own needs (a tool's pipes, files, the log).
const RESERVED_FDS: u64 = 64;

impl Server {
    /// Binds `addr` (`host:port`, port 0 for any). Raises the soft limit on open files to the
    /// hard one and lowers `max_connections` to what the limit allows.
    pub fn bind(addr: &str, mut limits: Limits) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        limits.max_connections = limits.max_connections.min(fd_allowance()).max(1);
        Ok(Server { listener, limits, peers: Arc::default(), tls: None, plain_paths: &[] })
    }

    /// Serves HTTPS only, with `certs` (re-read when their files change). A connection that
    /// speaks plain HTTP instead (its first byte is not a TLS handshake record) may only reach
    /// `plain_paths` — liveness and readiness probes, which carry nothing secret and which
    /// Kubernetes' `httpGet` sends without TLS — and gets 400 for anything else, as nginx
    /// answers plain HTTP on its HTTPS port.
    pub fn with_tls(mut self, certs: tls::Certs, plain_paths: &'static [&'static str]) -> Server {
        self.tls = Some(Arc::new(certs));
        self.plain_paths = plain_paths;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The open connections, for handlers that need to know whether a client is still there.
    pub fn peers(&self) -> Arc<Peers> {
        Arc::clone(&self.peers)
    }

    /// Starts the accept loop on its own thread; `name` prefixes the server's log lines.
    pub fn start(self, name: &'static str, handler: Arc<Handler>) -> Running {
        let shared = Arc::new(Shared {
            limits: self.limits,
            peers: self.peers,
            handler,
            tls: self.tls,
            plain_paths: self.plain_paths,
            stopping: AtomicBool::new(false),
            buffered: AtomicUsize::new(0),
            open: Mutex::new(0),
            closed: Condvar::new(),
            name,
        });
        let looping = Arc::clone(&shared);
        let listener = self.listener;
        let accept = std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(&listener, &looping))
            .expect("cannot start the accept thread");
        Running { shared, accept }
    }
}

impl Running {
    /// True once the accept loop has ended (it only does on a fatal listener error, or after
    /// [`Running::stop`]).
    pub fn failed(&self) -> bool {
        self.accept.is_finished() && !self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Stops accepting and closes the connections that wait for a next request; requests being
    /// handled go on. Then waits until every connection has ended.
    pub fn stop_and_join(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let err = self.accept.join();
        if let Ok(err) = err
            && err.kind() != io::ErrorKind::Interrupted
        {
            eprintln!("{}: accept loop: {err}", self.shared.name);
        }
        let mut open = self.shared.lock_open();
        loop {
            self.shared.peers.close_idle();
            if *open == 0 {
                return;
            }
            open = match self.shared.closed.wait_timeout(open, Duration::from_millis(100)) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

impl Shared {
    fn lock_open(&self) -> std::sync::MutexGuard<'_, usize> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Connections the open-file limit leaves room for: each needs its socket, and a request may
/// hold a few more (a tool's pipes).
fn fd_allowance() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return usize::MAX };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    (soft.saturating_sub(RESERVED_FDS) / 2).max(1) as usize
}

/// Accepts until stopped. Errors that mean "not now" (no descriptor or memory left, a
/// connection reset before it was accepted) never end it.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) -> io::Error {
    // One descriptor kept in reserve: when the process runs out, giving it back lets us accept
    // the waiting connection and close it, instead of leaving the client to hang (the same
    // trick as libuv's and nginx's).
    let mut spare = std::fs::File::open("/dev/null").ok();
    let mut backoff = Duration::from_millis(5);
    let mut warned = Instant::now() - Duration::from_secs(60);
    while !shared.stopping.load(Ordering::SeqCst) {
        let mut fds = [nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
        match listener.accept() {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                admit(stream, peer, shared);
            }
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(
                        nix::libc::EMFILE
                            | nix::libc::ENFILE
                            | nix::libc::ENOBUFS
                            | nix::libc::ENOMEM
                    )
                ) =>
            {
                if warned.elapsed() >= Duration::from_secs(10) {
                    eprintln!("{}: {e}: shedding connections", shared.name);
                    warned = Instant::now();
                }
                drop(spare.take());
                if let Ok((stream, _)) = listener.accept() {
                    refuse(&stream, 503, "server out of resources; retry");
                }
                spare = std::fs::File::open("/dev/null").ok();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e)
                if e.raw_os_error() == Some(nix::libc::EPROTO)
                    || e.raw_os_error() == Some(nix::libc::EPERM) => {}
            Err(e) => return e,
        }
    }
    io::Error::from(io::ErrorKind::Interrupted)
}

/// Starts a thread for a new connection, or answers 503 and closes it when the server is full.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    {
        let mut open = shared.lock_open();
        let max = shared.limits.max_connections;
        // At the limit, the connection idle longest makes room; the threads of those evicted
        // take a moment to end, hence a little headroom, and a short wait for them when a flood
        // outruns it (on a loaded host), before refusing outright.
        let give_up = Instant::now() + EVICTION_WAIT;
        let room = loop {
            if *open < max {
                break true;
            }
            if *open < max + EVICTION_HEADROOM {
                break shared.peers.evict_oldest_idle();
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            open = match shared.closed.wait_timeout(open, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        if !room {
            drop(open);
            refuse(&stream, 503, "too many connections; retry");
            return;
        }
        *open += 1;
    }
    let conn = Arc::clone(shared);
    // Small stacks: a connection thread parses a head and calls the handler.
    let spawned = std::thread::Builder::new().stack_size(512 * 1024).spawn(move || {
        connection(stream, peer, &conn);
        let mut open = conn.lock_open();
        *open -= 1;
        conn.closed.notify_all();
    });
    if spawned.is_err() {
        let mut open = shared.lock_open();
        *open -= 1;
    }
}

/// Answers `status` on a connection we will not serve, without waiting on the client.
fn refuse(stream: &TcpStream, status: u16, why: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(&simple(status, why, true));
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// A small JSON error reply, in the portal's `{"ok": false, "error": …}` shape.
fn simple(status: u16, why: &str, close: bool) -> Vec<u8> {
    let body = serde_json::json!({"ok": false, "error": why}).to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if status == 503 {
        head.push_str("Retry-After: 1\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Reads and writes through a shared connection (a handler's upgrade holds it too; the peer
/// registry holds its socket).
struct Io(Arc<tls::Conn>);

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Keepalive probes find a client whose host vanished (no FIN, no reset) within about 25 s.
fn tune(stream: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = setsockopt(stream, sockopt::KeepAlive, &true);
    let _ = setsockopt(stream, sockopt::TcpKeepIdle, &10);
    let _ = setsockopt(stream, sockopt::TcpKeepInterval, &5);
    let _ = setsockopt(stream, sockopt::TcpKeepCount, &3);
}

/// Serves the requests of one connection until it closes, fails a limit, or the server stops.
fn connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    tune(&stream);
    let limits = &shared.limits;
    let tcp = Arc::new(stream);
    let _ = tcp.set_write_timeout(Some(limits.write_timeout));
    // On an HTTPS server, a connection whose first byte is not a TLS handshake record (0x16)
    // speaks plain HTTP: it is served without TLS, for the probe paths only.
    let plain = shared.tls.is_some() && {
        let _ = tcp.set_read_timeout(Some(limits.head_timeout));
        let mut first = [0u8; 1];
        matches!(tcp.peek(&mut first), Ok(1) if first[0] != 0x16)
    };
    let certs = if plain { None } else { shared.tls.as_deref() };
    let Ok(stream) = tls::Conn::new(Arc::clone(&tcp), certs) else { return };
    let stream = Arc::new(stream);
    shared.peers.insert(peer, Arc::clone(&tcp));
    let mut reader = BufReader::with_capacity(16 * 1024, Io(Arc::clone(&stream)));
    let bounds = head::Bounds {
        max_line: limits.max_line,
        max_fields: limits.max_fields,
        max_bytes: limits.max_head,
    };
    let set_deadline =
        |left: Duration| tcp.set_read_timeout(Some(left.max(Duration::from_millis(1))));
    // Set when the reply refused a request whose input may still be arriving.
    let mut refused_with_input = false;
    for served in 0..limits.max_requests {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let wait = if served == 0 { limits.head_timeout } else { limits.idle_timeout };
        // A kept-alive connection waits `idle_timeout` for the first byte of its next request,
        // then, like a new one, `head_timeout` for the rest.
        let head = match head::read(&mut reader, &bounds, Instant::now() + wait, &set_deadline) {
            Ok(Some(head)) => head,
            Ok(None) => break,
            Err(head::Refused::Gone) => break,
            Err(refused) => {
                let (status, why) = refused.status();
                let _ = Io(Arc::clone(&stream)).write_all(&simple(status, why, true));
                refused_with_input = true;
                break;
            }
        };
        shared.peers.set_busy(&peer, true);
        let outcome = if plain && !plain_allowed(&head.target, shared.plain_paths) {
            let why = "this port speaks HTTPS only: use https://";
            let _ = Io(Arc::clone(&stream)).write_all(&simple(400, why, true));
            Outcome::Refused
        } else {
            serve_one(&stream, &mut reader, peer, head, shared, &set_deadline)
        };
        shared.peers.set_busy(&peer, false);
        match outcome {
            Outcome::KeepAlive => {}
            Outcome::Close => break,
            Outcome::Refused => {
                refused_with_input = true;
                break;
            }
        }
    }
    shared.peers.remove(&peer);
    if refused_with_input {
        // The refusal goes out before the lingering close stops our sending side.
        let _ = stream.flush();
        linger(&tcp);
    }
    stream.shutdown();
}

/// Whether a plain-HTTP request to an HTTPS server may go on: its path (query left out) is one
/// of `paths`.
fn plain_allowed(target: &str, paths: &[&str]) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    paths.contains(&path)
}

/// After refusing a request whose client may still be sending (a huge header, a body we will
/// not read), closing at once would answer its next bytes with a reset that can destroy our
/// reply before the client reads it. Like nginx's lingering close: stop writing, then read and
/// drop what comes for a moment (bounded in time and bytes), then close.
fn linger(stream: &TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let until = Instant::now() + LINGER;
    let mut drained = 0;
    let mut buf = [0u8; 16 * 1024];
    while drained < LINGER_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*stream).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// How long, and how much, a lingering close reads.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

/// What happens to a connection after one request.
enum Outcome {
    KeepAlive,
    Close,
    /// Refused before its body was read: close with a linger.
    Refused,
}

/// Body bytes reserved against the server's budget, given back when dropped.
struct Reserved<'a>(&'a AtomicUsize, usize);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::SeqCst);
    }
}

fn reserve<'a>(buffered: &'a AtomicUsize, n: usize, budget: usize) -> Option<Reserved<'a>> {
    buffered
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
            (used + n <= budget).then_some(used + n)
        })
        .ok()
        .map(|_| Reserved(buffered, n))
}

/// Reads the body, calls the handler, writes its response; true to keep the connection.
fn serve_one(
    stream: &Arc<tls::Conn>,
    reader: &mut BufReader<Io>,
    peer: SocketAddr,
    head: head::Head,
    shared: &Shared,
    set_deadline: &dyn Fn(Duration) -> io::Result<()>,
) -> Outcome {
    let limits = &shared.limits;
    let answer = |status: u16, why: &str| {
        let _ = Io(Arc::clone(stream)).write_all(&simple(status, why, true));
        Outcome::Refused
    };
    if head.minor == 1 && head.fields("Host").count() != 1 {
        return answer(400, "HTTP/1.1 needs exactly one Host header");
    }
    if head.field("Transfer-Encoding").is_some() {
        return answer(411, "send the body with a Content-Length (no Transfer-Encoding)");
    }
    let Some(len) = content_length(&head) else {
        return answer(400, "bad Content-Length");
    };
    if len > limits.max_body {
        return answer(413, &format!("request body over {} bytes", limits.max_body));
    }
    let Some(reserved) = reserve(&shared.buffered, len, limits.body_budget) else {
        return answer(503, "busy receiving other uploads; retry");
    };
    if len > 0 && head.minor == 1 {
        match head.field("Expect") {
            Some(e)
                if e.eq_ignore_ascii_case("100-continue")
                    && Io(Arc::clone(stream))
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .and_then(|()| stream.flush())
                        .is_err() =>
            {
                return Outcome::Close;
            }
            Some(e) if e.eq_ignore_ascii_case("100-continue") => {}
            Some(_) => return answer(417, "only 'Expect: 100-continue' is understood"),
            None => {}
        }
    }
    let body = match read_body(reader, len, limits, set_deadline) {
        Ok(body) => body,
        Err(BodyError::Short(got)) => {
            return answer(
                400,
                &format!("request body shorter than its Content-Length ({got} of {len} bytes)"),
            );
        }
        Err(BodyError::Timeout) => return answer(408, "request body not received in time"),
    };
    let keep_alive = head.minor == 1 && !head.connection_has("close");
    let is_head = head.method == "HEAD";
    let request = Request::fake_http_from(peer, head.method, head.target, head.fields, body);
    let handler = Arc::clone(&shared.handler);
    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&request)))
        .unwrap_or_else(|_| {
            eprintln!("{}: a handler panicked; answered 500", shared.name);
            Response::json(&serde_json::json!({"ok": false, "error": "internal error"}))
                .with_status_code(500)
        });
    drop(request);
    drop(reserved);
    let keep_alive = keep_alive && !shared.stopping.load(Ordering::SeqCst);
    match write_response(stream, response, is_head, keep_alive) {
        Ok(true) => Outcome::KeepAlive,
        _ => Outcome::Close,
    }
}

/// The body's length: 0 without the field; `None` unless every value is the same number.
fn content_length(head: &head::Head) -> Option<usize> {
    let mut lengths = head.fields("Content-Length");
    let Some(first) = lengths.next() else { return Some(0) };
    let digits = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
    let n = first.parse::<usize>().ok().filter(|_| digits)?;
    lengths.all(|other| other == first).then_some(n)
}

enum BodyError {
    /// The peer closed after this many bytes.
    Short(usize),
    Timeout,
}

/// Exactly `len` bytes, each read within `body_timeout`, all of them at `min_body_rate`.
fn read_body(
    reader: &mut BufReader<Io>,
    len: usize,
    limits: &Limits,
    set_deadline: &dyn Fn(Duration) -> io::Result<()>,
) -> Result<Vec<u8>, BodyError> {
    let mut body = vec![0; len];
    let allowed =
        limits.body_timeout + Duration::from_secs((len / limits.min_body_rate.max(1)) as u64);
    let deadline = Instant::now() + allowed;
    let mut got = 0;
    while got < len {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || set_deadline(left.min(limits.body_timeout)).is_err() {
            return Err(BodyError::Timeout);
        }
        match reader.read(&mut body[got..]) {
            Ok(0) => return Err(BodyError::Short(got)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(BodyError::Timeout);
            }
            Err(_) => return Err(BodyError::Short(got)),
        }
    }
    Ok(body)
}

/// Header fields the server sets itself; a handler's own are dropped.
const HOP_BY_HOP: &[&str] =
    &["connection", "content-length", "transfer-encoding", "trailer", "upgrade", "keep-alive"];

/// Writes `response`; true when the connection can serve another request.
fn write_response(
    stream: &Arc<tls::Conn>,
    response: Response,
    is_head: bool,
    keep_alive: bool,
) -> io::Result<bool> {
    let Response { status_code, headers, data, upgrade } = response;
    let (mut body, len) = data.into_reader_and_size();
    let keep_alive = keep_alive && len.is_some() && upgrade.is_none();
    let mut head =
        format!("HTTP/1.1 {status_code} {}\r\nDate: {}\r\n", reason(status_code), http_date());
    for (name, value) in &headers {
        let bad = value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']);
        if !bad && !HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    if let (Some(len), None) = (len, &upgrade) {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = io::BufWriter::with_capacity(16 * 1024, Io(Arc::clone(stream)));
    out.write_all(head.as_bytes())?;
    if let Some(mut upgrade) = upgrade {
        // The handler takes over the connection: a body delimited by its close. The head waits
        // for the handler's first flush, to leave with its first lines.
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        upgrade.build(Box::new(Io(Arc::clone(stream))));
        return Ok(false);
    }
    if !is_head {
        io::copy(&mut body, &mut out)?;
    }
    if keep_alive {
        out.flush()?;
    } else {
        // Sent with the close (over TLS, in one write with its close_notify).
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
    }
    Ok(keep_alive)
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7).
fn http_date() -> String {
    let now = std::time::SystemTime::now();
    let t = crate::clock::Utc::of(now);
    let days = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        t.day,
        MONTHS[(t.month - 1).clamp(0, 11) as usize],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// The reason phrase of a status code.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        let date = http_date();
        // e.g. "Wed, 02 Dec 2026 09:01:40 GMT"
        assert_eq!(date.len(), 29, "{date}");
        assert!(date.ends_with(" GMT") && date.as_bytes()[3] == b',', "{date}");
    }

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let used = AtomicUsize::new(0);
        let a = reserve(&used, 60, 100).unwrap();
        assert!(reserve(&used, 50, 100).is_none());
        let b = reserve(&used, 40, 100).unwrap();
        drop(a);
        assert_eq!(used.load(Ordering::SeqCst), 40);
        drop(b);
        assert!(reserve(&used, 100, 100).is_some());
    }
}
