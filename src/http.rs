//! A small blocking HTTP/1.1 client for plain-HTTP peers on the pod network: the tools and the
//! agent's leader talk to Ochopod control ports, `ocho cli` talks to the portal. One connection
//! per request (`Connection: close`, as Ochopod pods answer anyway), an overall deadline per
//! request, bounded headers and bodies, `Content-Length`, chunked and read-to-close bodies.
//! HTTPS (rustls) only where asked for ([`Request::open_tls`], `ocho cli https://…`); redirects
//! are out of scope.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Headers beyond this are a protocol error (a real peer sends a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

/// A peer that does not accept a connection within this is down, whatever the request's
/// deadline (long deadlines are for slow answers, such as a portal running a tool).
const MAX_CONNECT: Duration = Duration::from_secs(10);

/// Why a request failed. [`HttpError::is_silence`] tells "the peer did not answer" apart from
/// "the peer answered badly".
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    Timeout,
    #[error("i/o error")]
    Io(#[source] io::Error),
    #[error("malformed reply: {0}")]
    Malformed(String),
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    #[error("TLS: {0}")]
    Tls(String),
}

impl HttpError {
    /// True when the peer never produced a reply (refused, timed out, unreachable).
    pub fn is_silence(&self) -> bool {
        matches!(self, HttpError::Refused | HttpError::Timeout | HttpError::Resolve(_))
            || matches!(self, HttpError::Io(e) if e.kind() != io::ErrorKind::InvalidData)
    }

    fn from_io(err: io::Error) -> Self {
        if let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            return HttpError::Tls(tls.to_string());
        }
        match err.kind() {
            io::ErrorKind::ConnectionRefused => HttpError::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout,
            _ => HttpError::Io(err),
        }
    }
}

/// Status and headers (names lower-cased) of a reply.
pub type Head = (u16, Vec<(String, String)>);

/// A complete reply.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON whatever the `Content-Type` (Python pods say `text/html`).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// First value of header `name` (case-insensitive) in lower-cased `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

/// One request to send.
pub struct Request<'a> {
    pub method: &'a str,
    /// `host:port` (IPv6 as `[::1]:port`).
    pub addr: &'a str,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    /// Whole-request deadline: connect, send and receive.
    pub timeout: Duration,
}

impl<'a> Request<'a> {
    /// A `POST` with a JSON body (`Content-Type: application/json`), or no body at all.
    pub fn post_json(addr: &'a str, path: &'a str, body: &'a [u8], timeout: Duration) -> Self {
        let headers = if body.is_empty() {
            Vec::new()
        } else {
            vec![("Content-Type".into(), "application/json".into())]
        };
        Request { method: "POST", addr, path, headers, body, timeout }
    }

    /// Sends the request and reads the whole reply, refusing bodies over `max_body` bytes.
    pub fn send(&self, max_body: usize) -> Result<Response, HttpError> {
        let ((status, _), mut body) = self.open()?;
        let mut buf = Vec::new();
        let n = (&mut body)
            .take(max_body as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(HttpError::from_io)?;
        if n > max_body {
            return Err(HttpError::TooLarge(max_body));
        }
        Ok(Response { status, body: buf })
    }

    /// Sends the request and returns the status, the headers and a reader over the body, for
    /// replies consumed as they arrive (streamed output).
    pub fn open(&self) -> Result<(Head, Body), HttpError> {
        self.open_tls(None)
    }

    /// [`Request::open`], over TLS with `tls` when given (the server's name is the host of
    /// `addr`, its certificate checked against the configuration's roots).
    pub fn open_tls(&self, tls: Option<&TlsConfig>) -> Result<(Head, Body), HttpError> {
        self.open_watched(tls, |_| {})
    }

    /// [`Request::open_tls`], handing the socket to `connected` as soon as it is connected,
    /// for a caller that must be able to cut the request short from elsewhere (`ocho cli`'s
    /// Ctrl-C shuts the socket down from a signal handler).
    pub fn open_watched(
        &self,
        tls: Option<&TlsConfig>,
        connected: impl FnOnce(&TcpStream),
    ) -> Result<(Head, Body), HttpError> {
        let deadline = Instant::now() + self.timeout;
        let target = resolve(self.addr)?;
        let stream = TcpStream::connect_timeout(&target, self.timeout.min(MAX_CONNECT))
            .map_err(HttpError::from_io)?;
        // A request leaves in a few writes (over TLS the handshake's last message, then the
        // request): none waits for the ACK of the one before (Nagle's algorithm), as curl's don't.
        let _ = stream.set_nodelay(true);
        connected(&stream);
        let tls = match tls {
            Some(config) => {
                let host = host_of(self.addr);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|_| HttpError::Tls(format!("{host} is not a server name")))?;
                let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                Some(Box::new(conn))
            }
            None => None,
        };
        let mut conn = Deadlined { stream, tls, deadline };
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: ocho/{}\r\n",
            self.method,
            self.path,
            self.addr,
            env!("CARGO_PKG_VERSION")
        );
        if !self.body.is_empty() || matches!(self.method, "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
                return Err(HttpError::Malformed(format!("invalid request header {name:?}")));
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        match conn.tls.as_mut() {
            // A request that fits is handed to rustls before the handshake: it holds it and
            // sends it once the server is verified, after the client's Finished, in the same
            // write (one segment instead of two). Not 0-RTT data: nothing, and no token, leaves
            // before the server's certificate verifies.
            Some(tls) if head.len() + self.body.len() <= EARLY_BYTES => {
                let mut held = tls.writer();
                held.write_all(head.as_bytes()).map_err(HttpError::from_io)?;
                held.write_all(self.body).map_err(HttpError::from_io)?;
            }
            _ => {
                conn.write_all(head.as_bytes()).map_err(HttpError::from_io)?;
                conn.write_all(self.body).map_err(HttpError::from_io)?;
            }
        }
        conn.flush().map_err(HttpError::from_io)?;
        let mut reader = BufReader::new(conn);
        let (status, headers) = read_head(&mut reader)?;
        let body = if self.method == "HEAD" || status == 204 || status == 304 {
            Body(BodyKind::Length(reader.take(0)))
        } else if header(&headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            Body(BodyKind::Chunked { inner: reader, left: 0, done: false })
        } else if let Some(len) = header(&headers, "content-length") {
            let len: u64 = len
                .trim()
                .parse()
                .map_err(|_| HttpError::Malformed(format!("content-length {len:?}")))?;
            Body(BodyKind::Length(reader.take(len)))
        } else {
            Body(BodyKind::Close(reader))
        };
        Ok(((status, headers), body))
    }
}

/// The largest request handed to rustls before its handshake ends, well under the 64 KiB it
/// holds; a larger one is written once the handshake is done.
const EARLY_BYTES: usize = 16 * 1024;

/// TLS client settings: the roots a server's certificate must chain to.
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// Roots from the PEM file `ca`, else the system's; an error when there are none.
pub fn tls_config(ca: Option<&std::path::Path>) -> Result<TlsConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in certs {
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no PEM certificate in it", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no trusted roots on this system: give the portal's CA with --ca FILE (or $OCHOPOD_CA)".into());
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::serve::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The host of `host:port` or `[v6]:port`.
fn host_of(addr: &str) -> &str {
    match addr.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, HttpError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| HttpError::Resolve(addr.to_string()))
}

fn read_head(reader: &mut impl BufRead) -> Result<Head, HttpError> {
    let mut total = 0;
    let mut line = String::new();
    let mut next_line = |line: &mut String| -> Result<(), HttpError> {
        line.clear();
        let n =
            reader.take((MAX_HEAD - total) as u64).read_line(line).map_err(HttpError::from_io)?;
        total += n;
        if n == 0 {
            return Err(HttpError::Malformed("connection closed before the reply".into()));
        }
        if !line.ends_with('\n') {
            return Err(HttpError::TooLarge(MAX_HEAD));
        }
        Ok(())
    };
    next_line(&mut line)?;
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(HttpError::Malformed(format!("status line {:?}", line.trim_end())));
    };
    let status: u16 = code
        .parse()
        .ok()
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| HttpError::Malformed(format!("status line {:?}", line.trim_end())))?;
    let mut headers = Vec::new();
    loop {
        next_line(&mut line)?;
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        let Some((name, value)) = text.split_once(':') else {
            return Err(HttpError::Malformed(format!("header {text:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok((status, headers))
}

/// A socket whose every read and write respects one overall deadline.
struct Deadlined {
    stream: TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    deadline: Instant,
}

impl Deadlined {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(io::Error::from(io::ErrorKind::TimedOut)) } else { Ok(left) }
    }

    /// Bounds the socket's next reads and writes by what is left of the deadline. Over TLS any
    /// call may do both: the handshake runs inside the first write or flush, and reads.
    fn arm(&self, read: bool, write: bool) -> io::Result<()> {
        let left = self.remaining()?;
        let tls = self.tls.is_some();
        if read || tls {
            self.stream.set_read_timeout(Some(left))?;
        }
        if write || tls {
            self.stream.set_write_timeout(Some(left))?;
        }
        Ok(())
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(true, false)?;
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(&mut **tls, &mut self.stream).read(buf),
            None => self.stream.read(buf),
        }
    }
}

impl Write for Deadlined {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(false, true)?;
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(&mut **tls, &mut self.stream).write(buf),
            None => self.stream.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.arm(false, true)?;
        match &mut self.tls {
            Some(tls) => rustls::Stream::new(&mut **tls, &mut self.stream).flush(),
            None => self.stream.flush(),
        }
    }
}

/// The body of a reply, decoded as it is read.
pub struct Body(BodyKind);

enum BodyKind {
    Length(io::Take<BufReader<Deadlined>>),
    Chunked { inner: BufReader<Deadlined>, left: u64, done: bool },
    Close(BufReader<Deadlined>),
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.0 {
            BodyKind::Length(r) => r.read(buf),
            BodyKind::Close(r) => r.read(buf),
            BodyKind::Chunked { inner, left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut size = String::new();
                    inner.take(1024).read_line(&mut size)?;
                    let hex = size.trim().split(';').next().unwrap_or("");
                    *left = u64::from_str_radix(hex, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    if *left == 0 {
                        *done = true;
                        return Ok(0);
                    }
                }
                let want = buf.len().min(*left as usize);
                let n = inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated chunk"));
                }
                *left -= n as u64;
                if *left == 0 {
                    let mut crlf = String::new();
                    inner.take(2).read_line(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with a canned reply; returns the address and the request it got.
    fn serve_once(reply: &'static [u8]) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            conn.write_all(reply).unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (addr, handle)
    }

    /// A server that accepts and never answers the ClientHello: the request ends at its
    /// deadline, as it does over plain HTTP, instead of waiting for ever in the handshake.
    #[test]
    fn a_tls_handshake_that_never_ends_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(crate::serve::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let client = std::thread::spawn(move || {
            let request = Request {
                method: "GET",
                addr: &addr,
                path: "/healthz",
                headers: vec![],
                body: b"",
                timeout: Duration::from_millis(300),
            };
            let _ = tx.send(request.open_tls(Some(&config)).map(|_| ()));
        });
        let (_silent, _) = listener.accept().unwrap();
        let ended = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            matches!(ended, Ok(Err(HttpError::Timeout))),
            "still in the handshake, or another end: {ended:?}"
        );
        client.join().unwrap();
    }

    #[test]
    fn posts_json_and_reads_a_sized_reply() {
        let (addr, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n{\"ok\": true}\nEXTRA");
        let reply =
            Request::post_json(&addr, "/info", b"{}", Duration::from_secs(5)).send(1024).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json().unwrap(), serde_json::json!({"ok": true}));
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /info HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Content-Type: application/json\r\n"), "{request}");
        assert!(request.contains("Content-Length: 2\r\n"), "{request}");
    }

    #[test]
    fn decodes_chunked_bodies() {
        let (addr, _server) = serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n");
        let reply = Request::post_json(&addr, "/", b"", Duration::from_secs(5)).send(1024).unwrap();
        assert_eq!(reply.body, b"abcdefg");
    }

    #[test]
    fn reads_to_close_and_caps_the_body() {
        let (addr, _server) = serve_once(b"HTTP/1.0 410 Gone\r\n\r\n0123456789");
        let err = Request::post_json(&addr, "/", b"", Duration::from_secs(5)).send(4).unwrap_err();
        assert!(matches!(err, HttpError::TooLarge(4)), "{err:?}");
    }

    #[test]
    fn silence_is_told_apart_from_bad_answers() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err =
            Request::post_json(&format!("127.0.0.1:{port}"), "/", b"", Duration::from_secs(2))
                .send(10)
                .unwrap_err();
        assert!(err.is_silence(), "{err:?}");

        // A peer that accepts and never answers: the deadline ends the request.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let started = Instant::now();
        let err =
            Request::post_json(&addr, "/", b"", Duration::from_millis(300)).send(10).unwrap_err();
        assert!(matches!(err, HttpError::Timeout), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(20));
        drop(listener);

        let (addr, _server) = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n");
        let err = Request::post_json(&addr, "/", b"", Duration::from_secs(5)).send(10).unwrap_err();
        assert!(matches!(err, HttpError::Malformed(_)) && !err.is_silence(), "{err:?}");
    }
}
