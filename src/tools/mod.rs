//! What the operator's tools share: the common options ([`Common`], declared on every tool by
//! [`tool_args!`]), glob matching on `<namespace>.<cluster>` ([`Glob`]), the ZooKeeper lookup of
//! registered pods ([`lookup`]), the bounded concurrent fan-out to pods ([`fan_out`], [`post`],
//! [`scan`]) and the reply accounting every tool reports ([`Tally`], [`Threshold`]).
//!
//! Pods that do not answer are never dropped: every [`Answer`] is kept next to its pod, counted
//! in totals and named in the output (spec ochonetes §10.9).

pub mod args;
pub mod control;
pub mod grep;
pub mod info;
pub mod log;
pub mod ls;
pub mod off;
pub mod on;
pub mod output;
pub mod ping;
pub mod poll;
pub mod port;
pub mod reset;
pub mod wait;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::http::Request;
use crate::ochopod::glob;
use crate::zk::Session;

pub use crate::ochopod::paths::ROOT;

/// Largest reply body read from a pod (`/log` is at most about 32 KiB on Python pods).
const MAX_REPLY: usize = 4 * 1024 * 1024;

/// Declares a tool's `Args` with its own fields followed by the options every tool shares, and
/// `Args::common()` turning them into a [`Common`]. `timeout` is the default of `-t` and its doc.
macro_rules! tool_args {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
        timeout = $default:literal, $doc:literal;
    ) => {
        #[derive(argh::FromArgs, argh::ArgsInfo)]
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            /// zookeeper as host[:port][,…][/chroot] (default $OCHOPOD_ZK, else 127.0.0.1:2181)
            #[argh(option, default = "crate::zk::default_hosts()")]
            pub zk: String,
            /// seconds to reach zookeeper before failing (default 10)
            #[argh(option, default = "10.0")]
            pub zk_timeout: f64,
            #[doc = $doc]
            #[argh(option, short = 't', default = $default)]
            pub timeout: f64,
            /// pods contacted at once (default 64)
            #[argh(option, default = "64")]
            pub parallel: usize,
            /// replies needed for success: a count N or a percentage P% (default: every pod)
            #[argh(option)]
            pub min_replies: Option<String>,
            /// only the pods with these seq numbers (-i 1,3 or -i 1 -i 3)
            #[argh(option, short = 'i')]
            pub indices: Vec<String>,
            /// print one line of JSON instead of text
            #[argh(switch, short = 'j')]
            pub json: bool,
        }

        impl $name {
            /// The shared options, validated.
            pub fn common(&self) -> $crate::error::Result<$crate::tools::Common> {
                $crate::tools::Common::new(
                    &self.zk,
                    self.zk_timeout,
                    self.timeout,
                    self.parallel,
                    self.min_replies.as_deref(),
                    &self.indices,
                    self.json,
                )
            }
        }
    };
}
pub(crate) use tool_args;

/// Options every tool shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub zk: String,
    pub zk_timeout: Duration,
    /// Per-pod deadline of one request (for `wait`, the whole wait).
    pub timeout: Duration,
    pub parallel: usize,
    pub min_replies: Threshold,
    /// `Some` when `-i` was given: only pods with these `seq`.
    pub indices: Option<BTreeSet<u64>>,
    pub json: bool,
}

pub fn seconds(what: &str, value: f64) -> Result<Duration> {
    if value.is_finite() && value > 0.0 && value < 1e6 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Error::Usage(format!("{what} must be a positive number of seconds, not {value}")))
    }
}

impl Common {
    pub fn new(
        zk: &str,
        zk_timeout: f64,
        timeout: f64,
        parallel: usize,
        min_replies: Option<&str>,
        indices: &[String],
        json: bool,
    ) -> Result<Self> {
        if parallel == 0 {
            return Err(Error::Usage("--parallel must be at least 1".into()));
        }
        let indices = if indices.is_empty() {
            None
        } else {
            let mut set = BTreeSet::new();
            for word in indices.iter().flat_map(|i| i.split(',')).filter(|w| !w.is_empty()) {
                let seq = word
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| Error::Usage(format!("-i takes pod seq numbers, not {word:?}")))?;
                set.insert(seq);
            }
            Some(set)
        };
        Ok(Common {
            zk: zk.to_string(),
            zk_timeout: seconds("--zk-timeout", zk_timeout)?,
            timeout: seconds("-t", timeout)?,
            parallel,
            min_replies: min_replies.map(Threshold::parse).transpose()?.unwrap_or(Threshold::All),
            indices,
            json,
        })
    }

    /// One read session for the whole run; a clear error when ZooKeeper cannot be reached.
    pub fn connect(&self) -> Result<Session> {
        Session::connect(&self.zk, self.zk_timeout)
    }

    /// Verbs that change state on every pod of a glob need `--force` unless `-i` picks pods.
    pub fn require_force(&self, tool: &str, force: bool) -> Result<()> {
        if force || self.indices.is_some() {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "{tool} acts on every pod of the glob: pass --force, or pick pods with -i"
            )))
        }
    }
}

/// What `--min-replies` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Every selected pod (the default).
    All,
    Count(usize),
    Percent(u32),
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::Usage(format!("--min-replies takes N or P% (0-100), not {text:?}"));
        match text.trim().strip_suffix('%') {
            Some(p) => {
                let p: u32 = p.trim().parse().map_err(|_| bad())?;
                if p > 100 { Err(bad()) } else { Ok(Threshold::Percent(p)) }
            }
            None => text.trim().parse().map(Threshold::Count).map_err(|_| bad()),
        }
    }

    /// Replies needed out of `total`.
    pub fn needed(self, total: usize) -> usize {
        match self {
            Threshold::All => total,
            Threshold::Count(n) => n,
            Threshold::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

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
        // A bare name is also tried as the cluster part under any namespace (`*.<name>`).
        glob::matches(&self.0, name)
            || (!self.0.contains('.')
                && name.match_indices('.').any(|(i, _)| glob::matches(&self.0, &name[i + 1..])))
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
    let mut nodes = Vec::new();
    for cluster in &clusters {
        let dir = format!("{ROOT}/{cluster}/pods");
        for znode in zk.children(&dir)?.unwrap_or_default() {
            nodes.push((cluster, format!("{dir}/{znode}"), znode));
        }
    }
    let data = get_all(zk, nodes.iter().map(|(_, path, _)| path.as_str()))?;
    for ((cluster, path, znode), data) in nodes.into_iter().zip(data) {
        // `None`: the pod vanished since the listing.
        let Some(data) = data else { continue };
        match parse_registration(&data) {
            Ok((seq, _)) if indices.is_some_and(|set| !set.contains(&seq)) => {}
            Ok((seq, registration)) => {
                let uuid = znode.split('.').next().unwrap_or_default().to_string();
                let cluster = cluster.clone();
                found.pods.push(Pod { cluster, seq, uuid, znode, registration });
            }
            Err(reason) => found.skipped.push(format!("{path}: {reason}")),
        }
    }
    found.pods.sort_by(|a, b| (&a.cluster, a.seq, &a.znode).cmp(&(&b.cluster, b.seq, &b.znode)));
    found.clusters = clusters;
    Ok(found)
}

/// Reads many nodes with one round trip's latency: every request is sent before the first
/// reply is awaited (the client sends in call order). `None` for a node that is gone.
fn get_all<'a>(zk: &Session, paths: impl Iterator<Item = &'a str>) -> Result<Vec<Option<Vec<u8>>>> {
    let pending: Vec<_> = paths.map(|p| (p, zk.client().get_data(p))).collect();
    zk.block_on(async {
        let mut out = Vec::with_capacity(pending.len());
        for (path, reply) in pending {
            out.push(match reply.await {
                Ok((data, _)) => Some(data),
                Err(zookeeper_client::Error::NoNode) => None,
                Err(source) => {
                    return Err(Error::Zk {
                        hosts: zk.hosts().to_string(),
                        what: format!("read {path}"),
                        source,
                    });
                }
            });
        }
        Ok(out)
    })
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
pub enum Answer {
    /// The pod replied with a JSON body (any status).
    Json { status: u16, body: Value },
    /// No usable reply: silence, a non-JSON body, or the pod cannot be addressed. The text says
    /// why (`timed out`, `connection refused`, `HTTP 500, reply is not JSON`, …).
    Failed(String),
}

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
        Err(err) if err.is_silence() => Answer::Failed(crate::error::chain(&err)),
        Err(err) => Answer::Failed(format!("bad reply: {}", crate::error::chain(&err))),
    }
}

/// The usual query: look the globs up, POST `path` to every pod concurrently.
pub struct Scan {
    pub globs: Vec<Glob>,
    pub lookup: Lookup,
    /// One per `lookup.pods`, same order.
    pub answers: Vec<Answer>,
}

/// Looks `globs` up and posts `path` (no body) to every selected pod.
pub fn scan(common: &Common, globs: Vec<Glob>, path: &str) -> Result<Scan> {
    let zk = common.connect()?;
    let lookup = lookup(&zk, &globs, common.indices.as_ref())?;
    drop(zk);
    let answers =
        fan_out(&lookup.pods, common.parallel, |pod| post(pod, path, b"", common.timeout));
    Ok(Scan { globs, lookup, answers })
}

impl Scan {
    /// Pods of one glob with their answers.
    pub fn of<'a>(&'a self, glob: &'a Glob) -> impl Iterator<Item = (&'a Pod, &'a Answer)> + 'a {
        self.lookup.pods.iter().zip(&self.answers).filter(move |(p, _)| glob.matches(&p.cluster))
    }

    /// Accounting over one glob.
    pub fn tally(&self, glob: &Glob) -> Tally {
        Tally::of(self.of(glob))
    }

    /// Accounting over every selected pod (each counted once).
    pub fn tally_all(&self) -> Tally {
        Tally::of(self.lookup.pods.iter().zip(&self.answers))
    }
}

/// Replies counted against pods selected.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub total: usize,
    pub ok: usize,
    /// `(pod key, reason)` of every pod without a 200 reply, in pod order.
    pub failed: Vec<(String, String)>,
}

impl Tally {
    pub fn of<'a>(pairs: impl Iterator<Item = (&'a Pod, &'a Answer)>) -> Tally {
        let mut tally = Tally::default();
        for (pod, answer) in pairs {
            tally.add(pod, answer.problem());
        }
        tally
    }

    /// Counts one pod: `problem` is `None` when it succeeded.
    pub fn add(&mut self, pod: &Pod, problem: Option<String>) {
        self.total += 1;
        match problem {
            None => self.ok += 1,
            Some(why) => self.failed.push((pod.key(), why)),
        }
    }

    /// Integer percentage of successes, 0 when nothing was selected.
    pub fn percent(&self) -> usize {
        (self.ok * 100).checked_div(self.total).unwrap_or(0)
    }

    /// `N pods did not answer: key (reason), …`, or `None` when every pod answered.
    pub fn failure_line(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let names: Vec<String> =
            self.failed.iter().map(|(key, why)| format!("{key} ({why})")).collect();
        Some(format!(
            "{} {} did not answer: {}",
            self.failed.len(),
            pods(self.failed.len()),
            names.join(", ")
        ))
    }

    /// Failed pods as a JSON object `{key: reason}`.
    pub fn failed_json(&self) -> Value {
        Value::Object(
            self.failed.iter().map(|(k, why)| (k.clone(), Value::String(why.clone()))).collect(),
        )
    }
}

/// "pod" or "pods".
pub fn pods(n: usize) -> &'static str {
    if n == 1 { "pod" } else { "pods" }
}

/// Ends a tool run: reports unreadable registrations and an unmet threshold on stderr and turns
/// the tally into the exit code (0 when enough pods answered, 1 otherwise).
pub fn finish(common: &Common, tally: &Tally, skipped: &[String]) -> ExitCode {
    for what in skipped {
        eprintln!("skipped registration {what}");
    }
    let needed = common.min_replies.needed(tally.total);
    if tally.ok >= needed {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "{} of {} {} replied, {needed} needed (--min-replies)",
            tally.ok,
            tally.total,
            pods(tally.total)
        );
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob(p.into())
    }

    #[test]
    fn globs_are_fnmatch_on_the_whole_name() {
        assert!(g("default.zookeeper").matches("default.zookeeper"));
        assert!(g("*").matches("default.ocho-proxy"));
        assert!(g("*.zoo*").matches("default.zookeeper"));
        assert!(!g("default.zoo").matches("default.zookeeper"));
        assert!(g("default.zk-?").matches("default.zk-1"));
        assert!(g("default.zk-[0-3]").matches("default.zk-2"));
        assert!(!g("default.zk-[!0-3]").matches("default.zk-2"));
        assert!(g("default.[*]").matches("default.*"));
        assert!(g("a.[b").matches("a.[b"));
        assert!(!g("Default.*").matches("default.x"));
    }

    #[test]
    fn a_bare_name_matches_under_any_namespace() {
        assert!(g("zookeeper").matches("default.zookeeper"));
        assert!(g("zookeeper").matches("a.b.zookeeper"));
        assert!(!g("zookeeper").matches("default.myzookeeper"));
        assert!(g("zoo*").matches("default.zookeeper"));
        assert!(!g("default").matches("default.zookeeper"));
    }

    #[test]
    fn thresholds_parse_counts_and_percentages() {
        assert_eq!(Threshold::parse("3").unwrap(), Threshold::Count(3));
        assert_eq!(Threshold::parse("50%").unwrap(), Threshold::Percent(50));
        assert!(Threshold::parse("101%").is_err());
        assert!(Threshold::parse("x").is_err());
        assert_eq!(Threshold::Percent(50).needed(5), 3);
        assert_eq!(Threshold::Percent(100).needed(5), 5);
        assert_eq!(Threshold::All.needed(4), 4);
        assert_eq!(Threshold::All.needed(0), 0);
    }

    #[test]
    fn registrations_need_a_json_object_with_seq() {
        assert!(parse_registration(b"").is_err());
        assert!(parse_registration(b"[1]").is_err());
        assert!(parse_registration(b"{\"ip\": \"1.2.3.4\"}").is_err());
        assert_eq!(parse_registration(b"{\"seq\": 7}").unwrap().0, 7);
    }

    #[test]
    fn the_control_address_comes_from_ports_by_the_string_port() {
        let reg = |v: Value| Pod {
            cluster: "a.b".into(),
            seq: 1,
            uuid: "u".into(),
            znode: "u.0000000001".into(),
            registration: v.as_object().cloned().unwrap(),
        };
        let pod =
            reg(serde_json::json!({"ip": "10.0.0.1", "port": "8080", "ports": {"8080": 31000}}));
        assert_eq!(pod.control().unwrap(), "10.0.0.1:31000");
        assert_eq!(pod.key(), "a.b #1");
        let pod =
            reg(serde_json::json!({"ip": "10.0.0.1", "port": "9001", "ports": {"8080": 8080}}));
        assert!(pod.control().unwrap_err().contains("9001"));
    }

    #[test]
    fn every_tool_is_registered_for_the_portal() {
        let tools =
            ["grep", "info", "log", "ls", "port", "poll", "on", "off", "reset", "ping", "wait"];
        for tool in tools {
            assert!(crate::cli::is_tool(tool), "{tool}");
            match crate::cli::parse_words(&[tool, "--help"]) {
                crate::cli::Parsed::Print { text, code: 0 } => {
                    assert!(text.contains("JSON (-j)"), "{tool} --help documents -j: {text}");
                }
                _ => panic!("{tool} --help"),
            }
        }
    }

    #[test]
    fn fan_out_keeps_order_and_bounds_threads() {
        let items: Vec<usize> = (0..100).collect();
        let out = fan_out(&items, 7, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(fan_out(&Vec::<u8>::new(), 4, |_| ()).is_empty());
    }
}
