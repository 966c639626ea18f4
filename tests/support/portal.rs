//! A running `ocho portal` on a free loopback port with its own temporary directory (TMPDIR),
//! and a minimal raw HTTP/1.1 client for the tests (so that a test controls the connection:
//! reading a stream line by line, or dropping it half-way).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{DEADLINE, Proc, ocho};

/// Talks HTTP to a portal at `addr`.
pub struct Client {
    pub addr: String,
}

/// A portal owned by a test; derefs to its [`Client`].
pub struct Portal {
    pub client: Client,
    pub proc: Proc,
    /// The portal's TMPDIR: request directories are made here.
    pub tmp: tempfile::TempDir,
}

impl Portal {
    /// Starts `ocho portal --bind 127.0.0.1:0 <extra>` with `env` added.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Portal {
        Portal::start_with(extra, env, |_| {})
    }

    /// Like [`Portal::start`], with a last say on the command (limits, say).
    pub fn start_with(
        extra: &[&str],
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Portal {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut cmd = ocho();
        cmd.args(["portal", "--bind", "127.0.0.1:0"]).args(extra).env("TMPDIR", tmp.path());
        for var in ["OCHO_TOKEN", "OCHO_TOKEN_FILE", "OCHO_INSECURE_NO_AUTH", "OCHO_ALLOWED_HOSTS"]
        {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        adjust(&mut cmd);
        let proc = Proc::spawn("portal", cmd);
        let line = proc.wait_for_line("listening on ", DEADLINE);
        let addr = line.rsplit(' ').next().expect("address").to_string();
        Portal { client: Client { addr }, proc, tmp }
    }

    /// Entries left in the portal's TMPDIR, and in its own directory of request directories
    /// (`ocho-portal.PORT`, which is the portal's to keep while it runs).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for entry in std::fs::read_dir(self.tmp.path()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("ocho-portal.") && entry.path().is_dir() {
                left.extend(
                    std::fs::read_dir(entry.path())
                        .unwrap()
                        .map(|e| format!("{name}/{}", e.unwrap().file_name().to_string_lossy())),
                );
            } else {
                left.push(name);
            }
        }
        left
    }

    /// The portal's child processes (tools running, or zombies not yet waited for).
    pub fn children(&self) -> Vec<i32> {
        children_of(self.proc.pid())
    }
}

impl std::ops::Deref for Portal {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Client {
    /// Sends a request and reads the whole reply.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut conn = self.open(method, path, headers, body);
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).expect("read reply");
        Reply::parse(&raw)
    }

    /// `POST /shell` with `X-Shell: line`.
    pub fn shell(&self, line: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("X-Shell", line)];
        all.extend_from_slice(headers);
        self.request("POST", "/shell", &all, b"")
    }

    /// Sends a request (`Connection: close`) and returns the connection, reply unread.
    pub fn open(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> TcpStream {
        let mut conn = TcpStream::connect(&self.addr).expect("connect to the portal");
        conn.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(body).unwrap();
        conn
    }
}

/// Child pids of `pid` (all its threads).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut kids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return kids };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            kids.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    kids
}

/// True while `pid` exists and is not a zombie.
pub fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits (with a deadline) until `pred` holds, polling: for process states, which have no
/// event to wait on.
pub fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let end = std::time::Instant::now() + DEADLINE;
    while !pred() {
        assert!(std::time::Instant::now() < end, "deadline passed waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A parsed reply.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(raw: &[u8]) -> Reply {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
            body = dechunk(&body);
        }
        Reply { status, headers, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}

/// Reads an NDJSON stream event by event from a connection whose reply head is unread.
pub struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    /// Reads the head (checks 200 and NDJSON); the body runs to the connection's end.
    pub fn new(conn: TcpStream) -> Events {
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-type:") {
                assert!(lower.contains("application/x-ndjson"), "{line}");
            }
            assert!(!lower.starts_with("content-length:"), "{line}");
        }
        Events { reader }
    }

    /// The next event, or `None` at the end of the stream.
    pub fn next(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).expect("one JSON object per line"))
    }
}

/// A `multipart/form-data` body with one file part per `(field name, data)`; returns the
/// content type and the body.
pub fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend_from_slice(
            format!("--B0undary\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"x\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--B0undary--\r\n");
    ("multipart/form-data; boundary=B0undary".into(), body)
}

/// `%XX` for everything but ASCII letters and digits.
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}
