//! The ZooKeeper side of the tools: registered pods ([`Pod`]) of the clusters matching some
//! globs ([`lookup`]), read with pipelined requests, sorted by cluster and numeric `seq`,
//! tolerant of vanished nodes and unreadable registrations (docs/protocol.md §1.3, §6.1).

use std::collections::BTreeSet;

use super::{Glob, ROOT, text};
use crate::error::Result;
use crate::ochopod::{Registration, paths};
use crate::zk::Session;

/// One registered pod, from its ZooKeeper registration (docs/protocol.md §1.3).
#[derive(Debug, Clone)]
pub struct Pod {
    /// Qualified cluster name `<namespace>.<cluster>`, the znode under [`ROOT`].
    pub cluster: String,
    pub seq: u64,
    /// The pod's identity: the registration node name before its first `.`.
    pub uuid: String,
    /// The registration node name.
    pub znode: String,
    pub registration: Registration,
}

impl Pod {
    /// `<namespace>.<cluster> #<seq>`, the key every tool prints.
    pub fn key(&self) -> String {
        format!("{} #{}", self.cluster, self.seq)
    }

    /// A registration field as text (`""` when absent; numbers are rendered).
    pub fn field(&self, name: &str) -> String {
        text(self.registration.0.get(name))
    }

    /// `ip:port` of the control port: `ports[port]`, where `port` is a string key.
    pub fn control(&self) -> std::result::Result<String, String> {
        let port = self.field("port");
        let port = if port.is_empty() { "8080".to_string() } else { port };
        let mapped = self.registration.mapped_port(&port);
        let ip = self.field("ip");
        match mapped {
            None => Err(format!("control port {port} not in its ports")),
            Some(_) if ip.is_empty() => Err("no ip in its registration".into()),
            Some(mapped) if ip.contains(':') => Ok(format!("[{ip}]:{mapped}")),
            Some(mapped) => Ok(format!("{ip}:{mapped}")),
        }
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

/// Finds the pods of every cluster matching one of `globs` and inside the run's scope. A cluster without `pods`, a node
/// vanishing mid-scan and an unreadable registration are tolerated (the last is reported in
/// [`Lookup::skipped`]).
pub fn lookup(zk: &Session, globs: &[Glob], indices: Option<&BTreeSet<u64>>) -> Result<Lookup> {
    let mut found = Lookup::default();
    // A scoped run (the portal's OCHO_SCOPE) sees only the clusters inside its scope.
    let scope = super::scope::current()?;
    let mut clusters = zk.children(ROOT)?.unwrap_or_default();
    clusters.retain(|c| {
        globs.iter().any(|g| g.matches(c)) && super::scope::allows(scope.as_deref(), c)
    });
    clusters.sort();
    let dirs: Vec<String> = clusters.iter().map(|c| paths::pods(c)).collect();
    let listed = zk.children_many(&dirs.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut nodes = Vec::new();
    for ((cluster, dir), znodes) in clusters.iter().zip(&dirs).zip(listed) {
        for znode in znodes.unwrap_or_default() {
            nodes.push((cluster, format!("{dir}/{znode}"), znode));
        }
    }
    let paths: Vec<&str> = nodes.iter().map(|(_, path, _)| path.as_str()).collect();
    let data = zk.get_many(&paths)?;
    for ((cluster, path, znode), data) in nodes.into_iter().zip(data) {
        // `None`: the pod vanished since the listing.
        let Some(data) = data else { continue };
        match Registration::read(&data) {
            Ok(registration) => {
                // `read` checked that the seq is a non-negative number.
                let seq = registration.seq().unwrap_or_default() as u64;
                if indices.is_some_and(|set| !set.contains(&seq)) {
                    continue;
                }
                let uuid = paths::pod_uuid(&znode).to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_need_a_json_object_with_seq() {
        assert!(Registration::read(b"").unwrap_err().starts_with("empty"));
        assert!(Registration::read(b"[1]").is_err());
        assert!(Registration::read(b"{\"ip\": \"1.2.3.4\"}").unwrap_err().contains("no seq"));
        assert!(Registration::read(b"{\"seq\": -1}").is_err());
        assert_eq!(Registration::read(b"{\"seq\": 7}").unwrap().seq(), Some(7));
        assert_eq!(Registration::read(b"{\"seq\": \"8\"}").unwrap().seq(), Some(8));
    }

    #[test]
    fn the_control_address_comes_from_ports_by_the_string_port() {
        let reg = |v: serde_json::Value| Pod {
            cluster: "a.b".into(),
            seq: 1,
            uuid: "u".into(),
            znode: "u.0000000001".into(),
            registration: Registration(v.as_object().cloned().unwrap()),
        };
        let pod =
            reg(serde_json::json!({"ip": "10.0.0.1", "port": "8080", "ports": {"8080": 31000}}));
        assert_eq!(pod.control().unwrap(), "10.0.0.1:31000");
        assert_eq!(pod.key(), "a.b #1");
        let pod =
            reg(serde_json::json!({"ip": "10.0.0.1", "port": "9001", "ports": {"8080": 8080}}));
        assert!(pod.control().unwrap_err().contains("9001"));
    }
}
