//! Fixtures of the tools' tests and bench: one ZooKeeper shared by the whole test binary (each
//! test gets its own chroot), registrations written by hand, and tiny in-process HTTP pods that
//! answer like Ochopod pods (docs/protocol.md §3) — or hang, or are not there at all.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use zookeeper_client as zkc;

use crate::support;

/// A test's own corner of the shared ZooKeeper: everything lives under `/<chroot>`, and the tools
/// are pointed at it with `--zk <addr>/<chroot>`.
pub struct Zk {
    rt: tokio::runtime::Runtime,
    client: zkc::Client,
    pub hosts: String,
}

impl Zk {
    pub fn new(chroot: &str) -> Zk {
        let addr = support::shared_zookeeper();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(zkc::Client::connect(addr)).unwrap();
        let opts = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
        rt.block_on(client.mkdir(&format!("/{chroot}/ochopod/clusters"), &opts)).unwrap();
        Zk { rt, client, hosts: format!("{addr}/{chroot}") }
    }

    fn path(&self, rel: &str) -> String {
        format!("/{}{rel}", self.hosts.split_once('/').unwrap().1)
    }

    /// Writes `data` at `rel` (under the chroot), creating parents.
    pub fn put(&self, rel: &str, data: &[u8]) {
        let path = self.path(rel);
        let opts = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
        let parent = &path[..path.rfind('/').unwrap()];
        self.rt.block_on(self.client.mkdir(parent, &opts)).unwrap();
        match self.rt.block_on(self.client.create(&path, data, &opts)) {
            Ok(_) => {}
            Err(zkc::Error::NodeExists) => {
                self.rt.block_on(self.client.set_data(&path, data, None)).unwrap();
            }
            Err(e) => panic!("create {path}: {e}"),
        }
    }

    /// Children of `rel` (under the chroot), empty when it does not exist.
    pub fn children(&self, rel: &str) -> Vec<String> {
        match self.rt.block_on(self.client.list_children(&self.path(rel))) {
            Ok(children) => children,
            Err(zkc::Error::NoNode) => Vec::new(),
            Err(e) => panic!("list {rel}: {e}"),
        }
    }

    /// Creates a cluster node without pods (as one left behind by pods that are gone).
    pub fn stale_cluster(&self, cluster: &str) {
        self.put(&format!("/ochopod/clusters/{cluster}/hash"), b"");
    }

    /// Registers a pod of `cluster` with `seq` whose control port is reachable at `addr`.
    pub fn register(&self, cluster: &str, seq: u64, addr: &str, extra: Value) -> String {
        let (ip, port) = addr.rsplit_once(':').unwrap();
        let (ns, name) = cluster.split_once('.').unwrap();
        let mut reg = json!({
            "cluster": name, "namespace": ns, "port": "8080", "ip": ip, "seq": seq,
            "ports": {"8080": port.parse::<u16>().unwrap()}, "node": "node-1",
            "public": "", "task": format!("{name}-{seq}"), "fwk": "fake",
        });
        if let (Value::Object(reg), Value::Object(extra)) = (&mut reg, extra) {
            reg.extend(extra);
        }
        let uuid = format!("00000000-0000-4000-8000-{seq:012}");
        self.put(
            &format!("/ochopod/clusters/{cluster}/pods/{uuid}.{seq:010}"),
            reg.to_string().as_bytes(),
        );
        uuid
    }

    /// Writes the cluster's snapshot: the given pod uuids were part of its last configuration.
    pub fn snapshot(&self, cluster: &str, uuids: &[&str]) {
        let map: serde_json::Map<String, Value> =
            uuids.iter().map(|u| (u.to_string(), json!({}))).collect();
        self.put(
            &format!("/ochopod/clusters/{cluster}/snapshot"),
            Value::Object(map).to_string().as_bytes(),
        );
    }
}

/// One request a fake pod received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

/// What a fake pod answers.
#[derive(Debug, Clone)]
pub struct PodState {
    pub info: Value,
    pub log: Vec<String>,
    /// Status of `/control/*` replies.
    pub control_status: u16,
    /// Body of `/control/signal` replies.
    pub signal_reply: Value,
    pub seen: Vec<Seen>,
}

/// A fake Ochopod pod: a thread per connection on its own loopback address, like the Kubernetes
/// binding (JSON bodies with `Content-Type: text/html`, `Connection: close`).
pub struct FakePod {
    pub addr: String,
    pub state: Arc<Mutex<PodState>>,
    _listener: Option<Arc<TcpListener>>,
}

/// Binds `ip:0` (a loopback address of the test's own).
fn bind(ip: &str) -> TcpListener {
    TcpListener::bind(format!("{ip}:0")).unwrap_or_else(|e| panic!("bind {ip}: {e}"))
}

impl FakePod {
    /// A pod that answers; `/info` gives `ip`, `node`, `process`, `state` plus `extra`.
    pub fn answering(ip: &str, process: &str, state: &str, extra: Value) -> FakePod {
        let listener = bind(ip);
        let addr = listener.local_addr().unwrap().to_string();
        let mut info = json!({"ip": ip, "node": "node-1", "process": process, "state": state,
                              "port": "8080", "public": ""});
        if let (Value::Object(info), Value::Object(extra)) = (&mut info, extra) {
            info.extend(extra);
        }
        let state = Arc::new(Mutex::new(PodState {
            info,
            log: (1..=70)
                .map(|i| format!("2026-11-23 12:00:{:02},000 - INFO - line {i}\n", i % 60))
                .collect(),
            control_status: 200,
            signal_reply: json!({"pong": true}),
            seen: Vec::new(),
        }));
        let listener = Arc::new(listener);
        let (l, s) = (Arc::clone(&listener), Arc::clone(&state));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { break };
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FakePod { addr, state, _listener: Some(listener) }
    }

    /// A registered pod whose HTTP endpoint accepts connections and never answers.
    pub fn hanging(ip: &str) -> FakePod {
        let listener = Arc::new(bind(ip));
        let addr = listener.local_addr().unwrap().to_string();
        let l = Arc::clone(&listener);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in l.incoming() {
                let Ok(conn) = conn else { break };
                held.push(conn);
            }
        });
        let state = Arc::new(Mutex::new(PodState {
            info: json!({}),
            log: vec![],
            control_status: 200,
            signal_reply: json!({}),
            seen: vec![],
        }));
        FakePod { addr, state, _listener: Some(listener) }
    }

    /// A registered pod whose address does not answer at all (nothing listens there).
    pub fn absent(ip: &str) -> FakePod {
        let addr = bind(ip).local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(PodState {
            info: json!({}),
            log: vec![],
            control_status: 200,
            signal_reply: json!({}),
            seen: vec![],
        }));
        FakePod { addr, state, _listener: None }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn set(&self, key: &str, value: Value) {
        self.state.lock().unwrap().info[key] = value;
    }
}

fn serve(conn: TcpStream, state: &Mutex<PodState>) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let (status, reply) = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen {
            path: path.clone(),
            content_type: headers.get("content-type").cloned(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        match path.as_str() {
            "/info" => (200, s.info.to_string()),
            "/log" => (200, json!(s.log).to_string()),
            "/reset" => (200, "{}".to_string()),
            p if p.starts_with("/control/signal") => (s.control_status, s.signal_reply.to_string()),
            p if p.starts_with("/control/") => (s.control_status, "{}".to_string()),
            _ => (404, "<html>not found</html>".to_string()),
        }
    };
    let mut conn = reader.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.0 {status} X\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

/// Runs `ocho ARGS` to completion; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = support::ocho().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
