//! Fixtures for the `ocho pod` tests: a ZooKeeper shared by a whole test binary, a small
//! synchronous ZooKeeper client, a raw HTTP/1.0 POST, a recording fake Python pod, and a
//! launcher for agents on distinct loopback addresses.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use zookeeper_client as zkc;

use crate::support::{Proc, ocho};

#[allow(unused_imports)]
pub use crate::support::shared_zookeeper;

/// A blocking ZooKeeper client for assertions.
pub struct Zk {
    rt: tokio::runtime::Runtime,
    pub client: zkc::Client,
}

impl Zk {
    pub fn connect(addr: &str) -> Zk {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt
            .block_on(
                zkc::Client::connector()
                    .with_session_timeout(Duration::from_secs(10))
                    .connect(addr),
            )
            .unwrap();
        Zk { rt, client }
    }

    /// Runs a future of this client (its session is driven by this runtime only).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    pub fn children(&self, path: &str) -> Vec<String> {
        match self.rt.block_on(self.client.list_children(path)) {
            Ok(c) => c,
            Err(zkc::Error::NoNode) => Vec::new(),
            Err(e) => panic!("list {path}: {e}"),
        }
    }

    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.rt.block_on(self.client.get_data(path)) {
            Ok((d, _)) => Some(d),
            Err(zkc::Error::NoNode) => None,
            Err(e) => panic!("get {path}: {e}"),
        }
    }

    pub fn mkdir(&self, path: &str) {
        let opts = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
        self.rt.block_on(self.client.mkdir(path, &opts)).unwrap();
    }

    /// Creates an ephemeral sequential node; returns its full name.
    pub fn create_ephemeral_seq(&self, prefix: &str, data: &[u8]) -> String {
        let opts = zkc::CreateMode::EphemeralSequential.with_acls(zkc::Acls::anyone_all());
        let (_, n) = self.rt.block_on(self.client.create(prefix, data, &opts)).unwrap();
        format!("{prefix}{n}")
    }

    pub fn set(&self, path: &str, data: &[u8]) {
        self.rt.block_on(self.client.set_data(path, data, None)).unwrap();
    }

    /// Registrations of a cluster: (node name, parsed JSON), skipping empty data.
    pub fn registrations(&self, cluster: &str) -> Vec<(String, Value)> {
        let pods = format!("/ochopod/clusters/{cluster}/pods");
        self.children(&pods)
            .into_iter()
            .filter_map(|c| {
                let data = self.get(&format!("{pods}/{c}"))?;
                Some((c, serde_json::from_slice(&data).ok()?))
            })
            .collect()
    }
}

/// Polls `probe` until it returns `Some`, panicking with `what` at the deadline.
pub fn eventually<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < end, "deadline passed waiting for {what}");
        // Probe interval (the condition lives in another process; there is nothing to block on).
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `POST path` with an optional JSON body; returns the status, the Content-Type and the body as
/// JSON (`Value::Null` when it is not JSON).
pub fn post(addr: &str, path: &str, body: Option<&str>) -> (u16, String, Value) {
    request("POST", addr, path, body)
}

pub fn request(method: &str, addr: &str, path: &str, body: Option<&str>) -> (u16, String, Value) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or("");
    let ctype = if body.is_empty() { "" } else { "Content-Type: application/json\r\n" };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ctype, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A fake Python pod's control port: records every request (path, body) and answers 200 `{}`
/// with `text/html`, as the Kubernetes binding does.
pub struct FakePod {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

/// One request a [`FakePod`] received: path, JSON body, Content-Type.
pub type Recorded = (String, Value, Option<String>);

impl FakePod {
    pub fn start(addr: &str) -> FakePod {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&requests);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let rec = Arc::clone(&rec);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn);
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (mut len, mut ctype) = (0usize, None);
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h.trim().is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap();
                        }
                        if k.eq_ignore_ascii_case("content-type") {
                            ctype = Some(v.trim().to_string());
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    rec.lock().unwrap().push((path, body, ctype));
                    let mut conn = reader.into_inner();
                    let _ = conn.write_all(
                        b"HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
                    );
                });
            }
        });
        FakePod { requests }
    }

    pub fn paths(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|(p, _, _)| p.clone()).collect()
    }
}

/// An agent `ocho pod` on `ip:port` in cluster `ns.cluster`, identity from the environment
/// (`ochopod_*`), addresses from flags. Returns once it registered.
pub fn pod(
    zk: &str,
    ns: &str,
    cluster: &str,
    ip: &str,
    port: u16,
    extra: &[&str],
    cmd: &[&str],
) -> Proc {
    let proc = spawn_pod(zk, ns, cluster, ip, port, extra, cmd);
    proc.wait_for_line("registered as", Duration::from_secs(60));
    proc
}

/// Like [`pod`] without waiting.
pub fn spawn_pod(
    zk: &str,
    ns: &str,
    cluster: &str,
    ip: &str,
    port: u16,
    extra: &[&str],
    cmd: &[&str],
) -> Proc {
    let mut c = ocho();
    c.env("ochopod_zk", zk)
        .env("ochopod_namespace", ns)
        .env("ochopod_cluster", cluster)
        .args(["pod", "--ip", ip, "--bind", ip, "--port", &port.to_string(), "--grace", "5"])
        .args(extra)
        .arg("--")
        .args(cmd);
    Proc::spawn(&format!("pod {ip}"), c)
}
