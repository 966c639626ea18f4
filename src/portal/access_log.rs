//! The portal's access log: one line per request on stderr, naming the token, never the token
//! itself nor the line's arguments.

use std::net::SocketAddr;
use std::time::Instant;

/// What an access-log line says about a request.
pub struct Access<'a> {
    pub peer: &'a SocketAddr,
    /// The token's name (`-` before authentication, or on an open portal).
    pub who: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The tool word, `help`, or `-`.
    pub tool: &'a str,
    pub status: u16,
    /// The tool's exit code, if one ran (or 2 for a refused line).
    pub code: Option<i32>,
    /// Bytes of tool output, if one ran.
    pub bytes: Option<usize>,
    pub started: Instant,
}

/// One access-log line on stderr: time, peer, token name, method, path, tool, HTTP status, exit
/// code, ms, output bytes. Never the line's arguments nor any credential.
pub fn log(a: &Access) {
    use std::io::Write;
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let line = format!(
        "{} {} {} {} {} {} {} {} {}ms {}\n",
        utc_now(),
        a.peer,
        a.who,
        a.method,
        a.path,
        a.tool,
        a.status,
        dash(a.code.map(|c| c.to_string())),
        a.started.elapsed().as_millis(),
        dash(a.bytes.map(|b| format!("{b}B"))),
    );
    // One write: `eprintln!` writes each piece on its own (stderr has no buffer), about 25
    // system calls a request, and another process writing the same log (init, beside the
    // portal in a container) could land between them.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// ISO 8601 UTC time of now, second precision.
pub fn utc_now() -> String {
    let t = crate::clock::Utc::now();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}
