//! The operator's tools, one file per subcommand. This branch holds the Kubernetes-facing ones
//! (deploy, kill, scale, bump).
//!
//! The shared pieces below (glob matching on `<namespace>.<cluster>`, the ZooKeeper lookup of
//! registered pods, the fan-out and `post` to pods) are copied verbatim from the `tools` branch's
//! work in progress, which owns them: on merging `tools`, its `mod.rs` replaces this one and only
//! the `pub mod` lines of this branch are kept.

pub mod bump;
pub mod deploy;
pub mod kill;
pub mod scale;
pub mod workload;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::http::Request;
use crate::zk::Session;

/// Where Ochopod pods register (spec ochopod §1.1).
pub const ROOT: &str = "/ochopod/clusters";

/// Largest reply body read from a pod (`/log` is at most about 32 KiB on Python pods).
const MAX_REPLY: usize = 4 * 1024 * 1024;

/// A cluster glob: shell-style `fnmatch` on the whole `<namespace>.<cluster>` name; a pattern
/// without a dot also matches `*.<pattern>` (so `zookeeper` finds `default.zookeeper`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl Glob {
    /// The globs of a tool's positionals, `*` when there are none.
    pub fn list(words: &[String]) -> Result<Vec<Glob>> {
        if words.is_empty() {
            return Ok(vec![Glob("*".into())]);
        }
        words
            .iter()
            .map(|w| {
                if w.is_empty() || w.contains('/') || w.chars().any(char::is_control) {
                    Err(Error::Usage(format!("not a cluster glob: {w:?}")))
                } else {
                    Ok(Glob(w.clone()))
                }
            })
            .collect()
    }

    /// The globs of a state-changing verb: at least one, never an implicit `*`.
    pub fn required(tool: &str, words: &[String]) -> Result<Vec<Glob>> {
        if words.is_empty() {
            return Err(Error::Usage(format!("{tool} needs at least one cluster glob")));
        }
        Glob::list(words)
    }

    pub fn matches(&self, name: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let text: Vec<char> = name.chars().collect();
        if fnmatch(&pattern, &text) {
            return true;
        }
        // A bare name: try it as the cluster part under any namespace.
        !self.0.contains('.')
            && name
                .char_indices()
                .filter(|(_, c)| *c == '.')
                .any(|(i, _)| fnmatch(&pattern, &name[i + 1..].chars().collect::<Vec<_>>()))
    }
}

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[set]`, `[!set]`; a `[` without `]` is literal.
fn fnmatch(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class(&p[pi..], t[ti]) {
                Some((len, true)) => Some(len),
                Some((_, false)) => None,
                None => (t[ti] == '[').then_some(1),
            },
            Some(c) => (*c == t[ti]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ti += 1;
            }
            (None, Some((sp, st))) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class at the start of `p` (`[…]`); returns the class length and the
/// verdict, or `None` when there is no closing `]`.
fn class(p: &[char], c: char) -> Option<(usize, bool)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut hit = false;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && i > start {
            return Some((i + 1, hit != negate));
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            hit |= ch <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= ch == c;
            i += 1;
        }
    }
}

/// One registered pod, from its ZooKeeper registration (spec ochopod §1.3).
#[derive(Debug, Clone)]
pub struct Pod {
    /// Qualified cluster name `<namespace>.<cluster>`, the znode under [`ROOT`].
    pub cluster: String,
    pub seq: u64,
    /// The pod's identity: the registration node name before its first `.`.
    pub uuid: String,
    /// The registration node name.
    pub znode: String,
    pub registration: Map<String, Value>,
}

impl Pod {
    /// `<namespace>.<cluster> #<seq>`, the key every tool prints.
    pub fn key(&self) -> String {
        format!("{} #{}", self.cluster, self.seq)
    }

    /// A registration field as text (`""` when absent; numbers are rendered).
    pub fn field(&self, name: &str) -> String {
        text(self.registration.get(name))
    }

    /// `ip:port` of the control port: `ports[port]`, where `port` is a string key.
    pub fn control(&self) -> std::result::Result<String, String> {
        let port = self.field("port");
        let port = if port.is_empty() { "8080".to_string() } else { port };
        let mapped = self
            .registration
            .get("ports")
            .and_then(|p| p.get(&port))
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .filter(|p| *p > 0 && *p <= u64::from(u16::MAX));
        let ip = self.field("ip");
        match mapped {
            None => Err(format!("control port {port} not in its ports")),
            Some(_) if ip.is_empty() => Err("no ip in its registration".into()),
            Some(mapped) if ip.contains(':') => Ok(format!("[{ip}]:{mapped}")),
            Some(mapped) => Ok(format!("{ip}:{mapped}")),
        }
    }
}

/// A JSON value as display text: strings bare, `null`/absent empty, others as JSON.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// What a ZooKeeper scan found.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Matched cluster names, sorted (stale clusters without pods included).
    pub clusters: Vec<String>,
    /// Matched pods sorted by cluster then numeric `seq`, after `-i`.
    pub pods: Vec<Pod>,
    /// Registration nodes that could not be read (empty, not JSON, no seq): `path: reason`.
    pub skipped: Vec<String>,
}

/// Finds the pods of every cluster matching one of `globs`. A cluster without `pods`, a node
/// vanishing mid-scan and an unreadable registration are tolerated (the last is reported in
/// [`Lookup::skipped`]).
pub fn lookup(zk: &Session, globs: &[Glob], indices: Option<&BTreeSet<u64>>) -> Result<Lookup> {
    let mut found = Lookup::default();
    let mut clusters = zk.children(ROOT)?.unwrap_or_default();
    clusters.retain(|c| globs.iter().any(|g| g.matches(c)));
    clusters.sort();
    for cluster in &clusters {
        let dir = format!("{ROOT}/{cluster}/pods");
        for znode in zk.children(&dir)?.unwrap_or_default() {
            let path = format!("{dir}/{znode}");
            let Some(data) = zk.get(&path)? else { continue };
            match parse_registration(&data) {
                Ok((seq, registration)) => {
                    if indices.is_some_and(|set| !set.contains(&seq)) {
                        continue;
                    }
                    let uuid = znode.split('.').next().unwrap_or_default().to_string();
                    found.pods.push(Pod {
                        cluster: cluster.clone(),
                        seq,
                        uuid,
                        znode,
                        registration,
                    });
                }
                Err(reason) => found.skipped.push(format!("{path}: {reason}")),
            }
        }
    }
    found.pods.sort_by(|a, b| (&a.cluster, a.seq, &a.znode).cmp(&(&b.cluster, b.seq, &b.znode)));
    found.clusters = clusters;
    Ok(found)
}

fn parse_registration(data: &[u8]) -> std::result::Result<(u64, Map<String, Value>), String> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err("empty registration (pod still registering?)".into());
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
        return Err("registration is not a JSON object".into());
    };
    let seq = map.get("seq").and_then(|s| s.as_u64().or_else(|| s.as_str()?.parse().ok()));
    match seq {
        Some(seq) => Ok((seq, map)),
        None => Err("registration has no seq".into()),
    }
}

/// A pod's answer to one request.
#[derive(Debug, Clone)]
#[allow(dead_code)] // read by the query tools of the `tools` branch
pub enum Answer {
    /// The pod replied with a JSON body (any status).
    Json { status: u16, body: Value },
    /// No usable reply: silence, a non-JSON body, or the pod cannot be addressed. The text says
    /// why (`did not answer (timed out)`, `HTTP 500, not JSON`, …).
    Failed(String),
}

#[allow(dead_code)]
impl Answer {
    /// The body of a 200 reply.
    pub fn ok(&self) -> Option<&Value> {
        match self {
            Answer::Json { status: 200, body } => Some(body),
            _ => None,
        }
    }

    /// Why this is not a 200 reply (`None` for a 200).
    pub fn problem(&self) -> Option<String> {
        match self {
            Answer::Json { status: 200, .. } => None,
            Answer::Json { status, .. } => Some(format!("HTTP {status}")),
            Answer::Failed(why) => Some(why.clone()),
        }
    }
}

/// Runs `f` over `items` on at most `parallel` threads; results keep the order of `items`.
pub fn fan_out<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let workers = parallel.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every slot is filled once the scope has joined its workers")
        })
        .collect()
}

/// `POST http://<ip>:<ports[port]><path>` with a JSON body (or none), parsed as JSON whatever
/// the Content-Type.
pub fn post(pod: &Pod, path: &str, body: &[u8], timeout: Duration) -> Answer {
    let addr = match pod.control() {
        Ok(addr) => addr,
        Err(why) => return Answer::Failed(why),
    };
    match Request::post_json(&addr, path, body, timeout).send(MAX_REPLY) {
        Ok(reply) => match reply.json() {
            Some(body) => Answer::Json { status: reply.status, body },
            None => Answer::Failed(format!("HTTP {}, reply is not JSON", reply.status)),
        },
        Err(err) if err.is_silence() => Answer::Failed(format!("did not answer ({err})")),
        Err(err) => Answer::Failed(format!("bad reply ({err})")),
    }
}
