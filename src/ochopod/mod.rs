//! The Ochopod wire protocol as plain values, shared by the agent (`ocho pod`) and the operator
//! tools: ZooKeeper paths ([`paths`]), the registration record ([`Registration`]), the leader's
//! control payload ([`Payload`]), the cluster view pods compute from it ([`Cluster`]), the keys
//! of `/info` ([`INFO_KEYS`]) and the dependency naming rules ([`dependency_targets`]).
//! Nothing here talks to ZooKeeper or HTTP. Reference: docs/protocol.md.

pub mod glob;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// ZooKeeper paths of the Ochopod tree (docs/protocol.md §1.1).
pub mod paths {
    /// Parent of every cluster node.
    pub const ROOT: &str = "/ochopod/clusters";

    /// Name of a cluster node: `<namespace>.<cluster>`. Never split it back on a dot: a namespace
    /// may contain dots.
    pub fn cluster_name(namespace: &str, cluster: &str) -> String {
        format!("{namespace}.{cluster}")
    }

    /// A cluster's node.
    pub fn cluster(name: &str) -> String {
        format!("{ROOT}/{name}")
    }

    /// Parent of the registration nodes.
    pub fn pods(name: &str) -> String {
        format!("{ROOT}/{name}/pods")
    }

    /// Persistent node with the leader's configuration hash (`""` until configured).
    pub fn hash(name: &str) -> String {
        format!("{ROOT}/{name}/hash")
    }

    /// Ephemeral node of the leader: uuid → registration of the live pods.
    pub fn snapshot(name: &str) -> String {
        format!("{ROOT}/{name}/snapshot")
    }

    /// Parent of the kazoo lock contenders.
    pub fn coordinator(name: &str) -> String {
        format!("{ROOT}/{name}/coordinator")
    }

    /// The uuid of a registration node name `<uuid>.<seq10>` (text before the first dot).
    pub fn pod_uuid(node: &str) -> &str {
        node.split('.').next().unwrap_or(node)
    }
}

/// Marker of kazoo lock contender names `<hex32>__lock__<seq10>` (docs/protocol.md §1.6).
pub const LOCK_MARKER: &str = "__lock__";

/// The sort key kazoo uses for lock contenders: the text after `__lock__`. kazoo computes
/// `c[c.find('__lock__') + 8:]`; for a name without the marker `find` gives -1, hence `c[7:]`.
pub fn lock_sort_key(name: &str) -> &str {
    match name.find(LOCK_MARKER) {
        Some(at) => &name[at + LOCK_MARKER.len()..],
        None => name.get(7..).unwrap_or(""),
    }
}

/// Keys `/info` may carry (docs/protocol.md §3.3: the Kubernetes whitelist plus 1.0.7's `metrics`
/// and `dependencies`). Keys absent from a pod's state are absent from the reply.
pub const INFO_KEYS: &[&str] = &[
    "application",
    "ip",
    "node",
    "port",
    "ports",
    "process",
    "public",
    "state",
    "task",
    "status",
    "metrics",
    "dependencies",
];

/// Values of `/info` `process` (docs/protocol.md §3.3).
pub mod process {
    pub const STOPPED: &str = "stopped";
    pub const RUNNING: &str = "running";
    pub const TERMINATING: &str = "terminating";
    pub const DEAD: &str = "dead";
}

/// Values of `/info` `state` (docs/protocol.md §3.3).
pub mod state {
    pub const FOLLOWER: &str = "follower";
    pub const LEADER: &str = "leader";
    pub const PENDING: &str = "leader (configuration pending)";
    pub const CONFIGURING: &str = "leader (configuring)";
}

/// Control verbs a pod understands (docs/protocol.md §3.6). Anything else is answered 400.
pub const VERBS: &[&str] = &["check", "on", "off", "ok", "kill", "signal"];

/// One registration record (docs/protocol.md §1.3): a JSON object whose keys are the pod's hints
/// (`cluster`, `namespace`, `ip`, `port` as a string, `ports` string → integer, `seq`, …) plus any
/// `ochopod_<x>` variable as `<x>`. Kept as the raw object so that records written by Python
/// pods pass through leaders byte-for-byte equivalent; accessors read the well-known keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Registration(pub Map<String, Value>);

impl Registration {
    /// Parses a registration node's data. Empty or invalid data (a node seen between its
    /// creation and the write of its JSON, docs/protocol.md §5.9) gives `None`: readers skip it.
    pub fn parse(data: &[u8]) -> Option<Registration> {
        match serde_json::from_slice(data) {
            Ok(Value::Object(map)) if !map.is_empty() => Some(Registration(map)),
            _ => None,
        }
    }

    /// [`parse`](Self::parse) for the tools, which also need the `seq` and name what they
    /// skip: the registration, or why its data cannot be used.
    pub fn read(data: &[u8]) -> Result<Registration, &'static str> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Err("empty registration (pod still registering?)");
        }
        let Some(reg) = Registration::parse(data) else {
            return Err("registration is not a JSON object");
        };
        match reg.seq() {
            Some(seq) if seq >= 0 => Ok(reg),
            _ => Err("registration has no seq"),
        }
    }

    /// A string-valued key.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// `seq`, the pod's stable number for its process lifetime.
    /// A number, or a string of digits (tolerated from hand-written registrations).
    pub fn seq(&self) -> Option<i64> {
        let seq = self.0.get("seq")?;
        seq.as_i64().or_else(|| seq.as_str()?.parse().ok())
    }

    /// `ip`, the address other pods and tools reach the pod at.
    pub fn ip(&self) -> Option<&str> {
        self.str("ip")
    }

    /// The pod's mapping of a container port (`ports["<port>"]`), `None` when not exposed.
    pub fn mapped_port(&self, port: &str) -> Option<u16> {
        let mapped = self.0.get("ports")?.get(port)?;
        let mapped = mapped.as_u64().or_else(|| mapped.as_str()?.parse().ok())?;
        u16::try_from(mapped).ok().filter(|p| *p > 0)
    }

    /// `ip:<mapped port>` for a container port, as the leader and tools reach pods
    /// (docs/protocol.md §6.1 item 3).
    pub fn endpoint(&self, port: &str) -> Option<String> {
        Some(format!("{}:{}", self.ip()?, self.mapped_port(port)?))
    }
}

/// The leader's body for `/control/*` (docs/protocol.md §4.5): every pod, the dependencies as
/// written in `depends_on` (name → uuid → registration) and the receiving pod's uuid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub pods: BTreeMap<String, Registration>,
    pub dependencies: BTreeMap<String, BTreeMap<String, Registration>>,
    pub key: String,
}

impl Payload {
    /// Reads a request body: empty, unparsable, `null`, `[]` or `{}` mean "no payload"
    /// (docs/protocol.md §3.6); an object missing `pods`, `dependencies` or `key` is invalid
    /// (`Err`).
    pub fn from_body(body: &[u8]) -> Result<Option<Payload>, String> {
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let empty = match &value {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if empty {
            return Ok(None);
        }
        serde_json::from_value(value).map(Some).map_err(|e| format!("invalid payload: {e}"))
    }
}

/// What a pod knows of its cluster once configured (docs/protocol.md §4.2.6): the view handed to
/// templates and hooks. `index` is the position of `key` among the sorted uuids (not stable across
/// membership changes); `seq` is stable for the pod's process lifetime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    pub key: String,
    pub index: usize,
    pub seq: i64,
    pub size: usize,
    pub pods: BTreeMap<String, Registration>,
    pub dependencies: BTreeMap<String, BTreeMap<String, Registration>>,
}

impl Cluster {
    /// Builds the view; fails like Python's `_Cluster` when `key` is not in `pods` or its record
    /// has no `seq`.
    pub fn new(payload: &Payload) -> Result<Cluster, String> {
        let me = payload
            .pods
            .get(&payload.key)
            .ok_or_else(|| format!("key {} is not one of the pods", payload.key))?;
        let seq = me.seq().ok_or_else(|| format!("pod {} has no seq", payload.key))?;
        let index = payload.pods.keys().position(|k| *k == payload.key).unwrap_or(0);
        Ok(Cluster {
            key: payload.key.clone(),
            index,
            seq,
            size: payload.pods.len(),
            pods: payload.pods.clone(),
            dependencies: payload.dependencies.clone(),
        })
    }

    /// This pod's own record.
    pub fn me(&self) -> &Registration {
        &self.pods[&self.key]
    }

    /// Pods ordered by `seq` (then uuid): a stable order for ensemble member lists.
    pub fn by_seq(pods: &BTreeMap<String, Registration>) -> Vec<(&String, &Registration)> {
        let mut v: Vec<_> = pods.iter().collect();
        v.sort_by_key(|(k, r)| (r.seq().unwrap_or(i64::MAX), (*k).clone()));
        v
    }

    /// `ip:port,ip:port,…` over `pods` for a container port, in `seq` order (Python's
    /// `grep()`); fails naming a pod that does not expose the port.
    pub fn grep(pods: &BTreeMap<String, Registration>, port: &str) -> Result<String, String> {
        let mut out = Vec::new();
        for (uuid, pod) in Self::by_seq(pods) {
            out.push(
                pod.endpoint(port)
                    .ok_or_else(|| format!("pod {uuid} does not expose port {port}"))?,
            );
        }
        Ok(out.join(","))
    }
}

/// Where a `depends_on` entry points (docs/protocol.md §4.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// One cluster node name (`<ns>.<cluster>`).
    Exact(String),
    /// A shell-style pattern over cluster node names; the own cluster is excluded.
    Pattern(String),
    /// The entry names the pod's own cluster: ignored.
    Own,
}

/// Resolves a `depends_on` entry for a pod of `own` (`<ns>.<cluster>`) in `namespace`: relative
/// `x` → `<ns>.x`, absolute `/ns.x` → `ns.x`, any `*` makes it a pattern.
pub fn dependency_targets(entry: &str, namespace: &str, own: &str) -> Dependency {
    let target = match entry.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("{namespace}.{entry}"),
    };
    if entry.contains('*') {
        Dependency::Pattern(target)
    } else if target == own {
        Dependency::Own
    } else {
        Dependency::Exact(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(v: Value) -> Registration {
        Registration::parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn empty_or_invalid_registrations_are_skipped() {
        assert!(Registration::parse(b"").is_none());
        assert!(Registration::parse(b"{}").is_none());
        assert!(Registration::parse(b"not json").is_none());
        let r = reg(json!({"ip": "10.0.0.1", "port": "8080", "ports": {"8080": 31000}, "seq": 3}));
        assert_eq!(r.seq(), Some(3));
        assert_eq!(r.endpoint("8080").as_deref(), Some("10.0.0.1:31000"));
        assert_eq!(r.endpoint("2181"), None);
    }

    #[test]
    fn payloads_follow_the_no_payload_rules() {
        for body in [&b""[..], b"null", b"[]", b"{}", b"garbage"] {
            assert_eq!(Payload::from_body(body), Ok(None), "{body:?}");
        }
        assert!(Payload::from_body(br#"{"pods": {}}"#).is_err());
        let p = Payload::from_body(
            br#"{"pods": {"a": {"seq": 1, "ip": "1.1.1.1"}}, "dependencies": {}, "key": "a"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.key, "a");
    }

    #[test]
    fn cluster_view_has_index_seq_size_and_grep() {
        let pods: BTreeMap<String, Registration> = [
            ("b", json!({"ip": "10.0.0.2", "ports": {"2181": 2181}, "seq": 0})),
            ("a", json!({"ip": "10.0.0.1", "ports": {"2181": 2181}, "seq": 7})),
            ("c", json!({"ip": "10.0.0.3", "ports": {"2181": 2181}, "seq": 2})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), reg(v)))
        .collect();
        let payload =
            Payload { pods: pods.clone(), dependencies: BTreeMap::new(), key: "c".into() };
        let view = Cluster::new(&payload).unwrap();
        assert_eq!((view.index, view.seq, view.size), (2, 2, 3));
        assert_eq!(
            Cluster::grep(&pods, "2181").unwrap(),
            "10.0.0.2:2181,10.0.0.3:2181,10.0.0.1:2181"
        );
        assert!(Cluster::grep(&pods, "2888").is_err());
        let bad = Payload { key: "zz".into(), ..payload };
        assert!(Cluster::new(&bad).is_err());
    }

    #[test]
    fn dependencies_resolve_relative_absolute_and_wildcards() {
        let own = "default.web";
        assert_eq!(
            dependency_targets("zk", "default", own),
            Dependency::Exact("default.zk".into())
        );
        assert_eq!(
            dependency_targets("/ops.zk", "default", own),
            Dependency::Exact("ops.zk".into())
        );
        assert_eq!(
            dependency_targets("*-db", "default", own),
            Dependency::Pattern("default.*-db".into())
        );
        assert_eq!(dependency_targets("web", "default", own), Dependency::Own);
    }

    #[test]
    fn lock_contenders_sort_by_their_sequence() {
        let mut names = [
            "ffff0000000000000000000000000000__lock__0000000012",
            "0000aaaa000000000000000000000000__lock__0000000003",
        ];
        names.sort_by_key(|n| lock_sort_key(n));
        assert!(names[0].ends_with("0003"));
        assert_eq!(paths::pod_uuid("3070464b-aaaa.0000000001"), "3070464b-aaaa");
    }
}
