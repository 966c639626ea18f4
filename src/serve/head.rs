//! Reading one request head (request line and header fields) with every size bounded and the
//! whole head under one deadline. Pure parsing of each line is separate from the reading, so the
//! rules are unit tested without sockets.
//!
//! What is accepted: `METHOD SP origin-form SP HTTP/1.x`, header fields `name: value` with a
//! token name and a value of visible UTF-8 characters, spaces and tabs; lines may end with CRLF
//! or a bare LF (RFC 9112 §2.2 lets a recipient accept LF alone); up to a few empty lines before
//! the request line are ignored. Refused: obsolete line folding, whitespace before the colon,
//! control characters, a version other than 1.0/1.1 (505), and any bound passed (414, 431, 408).

use std::io::{self, BufRead};
use std::time::Instant;

/// Why a head was refused: the status to answer with (the connection is closed after it).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// 400 with this reason.
    Bad(&'static str),
    /// 414: the request line is longer than the limit.
    LineTooLong,
    /// 431: a header line, the header count or their total size is over its limit.
    HeadersTooLarge,
    /// 505: a version of HTTP other than 1.0 and 1.1.
    Version,
    /// 408: the head did not arrive in time.
    Timeout,
    /// The peer closed mid-head, or the socket failed: nothing can be answered.
    Gone,
}

impl Refused {
    /// The status and the reason sent in the body.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refused::Bad(why) => (400, why),
            Refused::LineTooLong => (414, "request line too long"),
            Refused::HeadersTooLarge => (431, "request header fields too large"),
            Refused::Version => (505, "HTTP version not supported: use HTTP/1.1"),
            Refused::Timeout => (408, "request head not received in time"),
            Refused::Gone => (400, "connection closed"),
        }
    }
}

/// Bounds of one head.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Bytes of the request line, and of each header line (without its line end).
    pub max_line: usize,
    /// Header fields.
    pub max_fields: usize,
    /// Bytes of all header lines together.
    pub max_bytes: usize,
}

/// A request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub fields: Vec<(String, String)>,
}

impl Head {
    /// The value of the only field named `name` (case-insensitive); the first if repeated.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All values of the fields named `name`.
    pub fn fields<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when a `Connection` field lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.fields("Connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// Reads one line into `line` (without its LF or CRLF), at most `max` bytes. `Ok(false)`: the
/// peer closed before sending anything. `set_deadline` is called before each read with the time
/// left, so that a peer dripping bytes cannot stretch the deadline.
pub fn read_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
    deadline: Instant,
    set_deadline: &dyn Fn(std::time::Duration) -> io::Result<()>,
    too_long: Refused,
) -> Result<bool, Refused> {
    line.clear();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Refused::Timeout);
        }
        set_deadline(left).map_err(|_| Refused::Gone)?;
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(Refused::Timeout);
            }
            Err(_) => return Err(Refused::Gone),
        };
        if buf.is_empty() {
            return if line.is_empty() { Ok(false) } else { Err(Refused::Gone) };
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max + 1 {
            return Err(too_long);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take + usize::from(done));
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max {
                return Err(too_long);
            }
            return Ok(true);
        }
    }
}

/// Reads a whole head. `Ok(None)`: the peer closed (or was idle past the deadline) before its
/// first byte, which ends a kept-alive connection quietly.
pub fn read(
    reader: &mut impl BufRead,
    bounds: &Bounds,
    deadline: Instant,
    set_deadline: &dyn Fn(std::time::Duration) -> io::Result<()>,
) -> Result<Option<Head>, Refused> {
    let mut line = Vec::new();
    // RFC 9112 §2.2: ignore at least one empty line before the request line.
    let mut blank = 0;
    loop {
        match read_line(
            reader,
            &mut line,
            bounds.max_line,
            deadline,
            set_deadline,
            Refused::LineTooLong,
        ) {
            Ok(false) => return Ok(None),
            Err(Refused::Timeout) if line.is_empty() && blank == 0 => return Ok(None),
            Err(e) => return Err(e),
            Ok(true) if line.is_empty() && blank < 4 => blank += 1,
            Ok(true) => break,
        }
    }
    let (method, target, minor) = request_line(&line)?;
    let mut fields = Vec::new();
    let mut total = 0;
    loop {
        if !read_line(
            reader,
            &mut line,
            bounds.max_line,
            deadline,
            set_deadline,
            Refused::HeadersTooLarge,
        )? {
            return Err(Refused::Gone);
        }
        if line.is_empty() {
            break;
        }
        total += line.len();
        if fields.len() == bounds.max_fields || total > bounds.max_bytes {
            return Err(Refused::HeadersTooLarge);
        }
        fields.push(field(&line)?);
    }
    Ok(Some(Head { method, target, minor, fields }))
}

/// `METHOD SP TARGET SP HTTP/1.x`.
pub fn request_line(line: &[u8]) -> Result<(String, String, u8), Refused> {
    let text = std::str::from_utf8(line).map_err(|_| Refused::Bad("request line is not ASCII"))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(Refused::Bad("malformed method"));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.len() == 8
            && v.starts_with("HTTP/")
            && v.as_bytes()[5].is_ascii_digit()
            && v.as_bytes()[6] == b'.'
            && v.as_bytes()[7].is_ascii_digit() =>
        {
            return Err(Refused::Version);
        }
        _ => return Err(Refused::Bad("malformed HTTP version")),
    };
    let origin_form = target.starts_with('/') || (target == "*" && method == "OPTIONS");
    if !origin_form || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refused::Bad("malformed request target"));
    }
    Ok((method.to_string(), target.to_string(), minor))
}

/// `name: value` (optional whitespace around the value).
pub fn field(line: &[u8]) -> Result<(String, String), Refused> {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(Refused::Bad("obsolete header line folding"));
    }
    let colon =
        line.iter().position(|&b| b == b':').ok_or(Refused::Bad("header line without ':'"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().copied().all(is_tchar) {
        return Err(Refused::Bad("malformed header name"));
    }
    let value =
        std::str::from_utf8(value).map_err(|_| Refused::Bad("header value is not UTF-8"))?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Refused::Bad("control character in a header value"));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    Ok((name, value.trim_matches([' ', '\t']).to_string()))
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const BOUNDS: Bounds = Bounds { max_line: 64, max_fields: 3, max_bytes: 100 };

    fn parse(raw: &[u8]) -> Result<Option<Head>, Refused> {
        let mut reader = io::BufReader::with_capacity(7, raw);
        read(&mut reader, &BOUNDS, Instant::now() + Duration::from_secs(5), &|_| Ok(()))
    }

    #[test]
    fn a_head_with_crlf_or_bare_lf() {
        for raw in [
            &b"GET /shell?line=ls HTTP/1.1\r\nHost: a\r\nX-Shell:  ls -j \r\n\r\n"[..],
            b"\r\nGET /shell?line=ls HTTP/1.1\nHost: a\nX-Shell:ls -j\n\n",
        ] {
            let head = parse(raw).unwrap().unwrap();
            assert_eq!(
                (head.method.as_str(), head.target.as_str(), head.minor),
                ("GET", "/shell?line=ls", 1)
            );
            assert_eq!(head.field("x-shell"), Some("ls -j"));
            assert_eq!(head.field("host"), Some("a"));
        }
        assert_eq!(parse(b"").unwrap(), None);
        assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap().minor, 0);
    }

    #[test]
    fn versions_other_than_1_x_get_505_and_garbage_400() {
        assert_eq!(parse(b"GET /healthz HTTP/2.0\r\n\r\n"), Err(Refused::Version));
        assert_eq!(parse(b"GET /healthz HTTP/0.9\r\n\r\n"), Err(Refused::Version));
        for bad in [
            &b"GET /healthz\r\n\r\n"[..],
            b"GET  /healthz HTTP/1.1\r\n\r\n",
            b"GET /healthz HTTP/1.1 x\r\n\r\n",
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"GET / HTTPS/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(Refused::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bounds_give_414_and_431() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64));
        assert_eq!(parse(long.as_bytes()), Err(Refused::LineTooLong));
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(64));
        assert_eq!(parse(long.as_bytes()), Err(Refused::HeadersTooLarge));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n"),
            Err(Refused::HeadersTooLarge)
        );
        let many = format!("GET / HTTP/1.1\r\na: {0}\r\nb: {0}\r\n\r\n", "x".repeat(50));
        assert_eq!(parse(many.as_bytes()), Err(Refused::HeadersTooLarge));
        // Exactly at the limit is fine.
        let exact = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64 - 15));
        assert!(parse(exact.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn malformed_fields_are_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\nX : 1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(Refused::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A head cut short cannot be answered.
        assert_eq!(parse(b"GET / HTTP/1.1\r\nX: 1\r\n"), Err(Refused::Gone));
        let head = parse(b"GET / HTTP/1.1\r\nX: \xc3\xbc\r\nConnection: keep-alive, Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.field("x"), Some("ü"));
        assert!(head.connection_has("close"));
    }
}
