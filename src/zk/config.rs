//! `zoo.cfg` (and `myid`) for the ZooKeeper that `ocho init` runs, rendered from flags (pure):
//! standalone by default, or one member of an ensemble (`--zk-members`, [`Ensemble`]).

use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// What varies in the proxy's ZooKeeper configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `dataDir`: snapshots and transaction logs.
    pub data_dir: PathBuf,
    /// `clientPortAddress`.
    pub bind: IpAddr,
    /// `clientPort`.
    pub port: u16,
    /// `None`: standalone. `Some`: this server is one member of an ensemble.
    pub ensemble: Option<Ensemble>,
}

/// Default quorum (follower → leader) port of a member, as ZooKeeper's documentation uses.
pub const QUORUM_PORT: u16 = 2888;
/// Default leader-election port of a member.
pub const ELECTION_PORT: u16 = 3888;

/// One entry of `--zk-members`: `HOST[:QUORUM:ELECTION]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// A DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    pub quorum: u16,
    pub election: u16,
}

impl Member {
    /// `host` as it goes before `:port` (IPv6 in brackets).
    fn host_for_port(&self) -> String {
        if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() }
    }
}

/// The ensemble this server belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// Every member, this one included; member `i` (0-based) has server id `i + 1`.
    pub members: Vec<Member>,
    /// This server's id, 1..=members.len() (`myid`).
    pub id: usize,
    /// `quorumListenOnAllIPs`: bind the quorum and election ports on every address rather than
    /// on the address of this member's own entry. Kubernetes needs it: a pod's own stable DNS
    /// name may not resolve to its address yet when ZooKeeper binds (the name is published
    /// once the pod runs), and the Service routes to the pod's IP anyway.
    pub listen_all: bool,
}

impl Ensemble {
    /// The members' client addresses `host:port,…`, in `--zk-members` order: the connect string
    /// of clients that must survive the loss of any member.
    pub fn client_hosts(&self, port: u16) -> String {
        let hosts: Vec<String> =
            self.members.iter().map(|m| format!("{}:{port}", m.host_for_port())).collect();
        hosts.join(",")
    }
}

/// Parses `--zk-members`: `HOST[:QUORUM:ELECTION],…` (an IPv6 address in brackets), at least 3
/// and an odd count, every host once. Errors name `flag` (the flag or its environment variable).
pub fn parse_members(spec: &str, flag: &str) -> Result<Vec<Member>> {
    let usage = |why: String| Error::Usage(format!("invalid {flag} '{spec}': {why}"));
    let mut members: Vec<Member> = Vec::new();
    for (i, entry) in spec.split(',').map(str::trim).enumerate() {
        let member = parse_member(entry)
            .map_err(|why| usage(format!("entry {} '{entry}': {why}", i + 1)))?;
        if let Some(j) = members.iter().position(|m| m.host.eq_ignore_ascii_case(&member.host)) {
            // Every member serves its clients on the same --zk-port, so two members need two
            // addresses: the same host twice is a mistake, never a second member.
            return Err(usage(format!(
                "entries {} and {} are the same member {} (every member needs its own host:                  all of them serve clients on --zk-port)",
                j + 1,
                i + 1,
                member.host
            )));
        }
        members.push(member);
    }
    match members.len() {
        n if n < 3 => Err(usage(format!(
            "{n} member(s): an ensemble needs at least 3 (one ZooKeeper without --zk-members \
             is the standalone proxy)"
        ))),
        n if n % 2 == 0 => Err(usage(format!(
            "{n} members: use an odd count (3 or 5): {n} members tolerate no more member \
             losses than {}",
            n - 1
        ))),
        _ => Ok(members),
    }
}

fn parse_member(entry: &str) -> std::result::Result<Member, String> {
    if entry.is_empty() {
        return Err("empty entry".into());
    }
    let (host, rest) = if let Some(inner) = entry.strip_prefix('[') {
        let (host, rest) = inner.split_once(']').ok_or("'[' without ']'")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{host}' in brackets is not an IPv6 address"));
        }
        (host, rest)
    } else {
        let host = entry.split(':').next().unwrap_or_default();
        (host, &entry[host.len()..])
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(ok_char) {
        return Err(format!("'{host}' is not a host name or IP address"));
    }
    let port = |p: &str, what: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{what} port '{p}' is not a number in 1-65535"))
    };
    let (quorum, election) = match rest {
        "" => (QUORUM_PORT, ELECTION_PORT),
        _ => {
            let ports: Vec<&str> = rest[1..].split(':').collect();
            if !rest.starts_with(':') || ports.len() != 2 {
                return Err("expected HOST or HOST:QUORUM:ELECTION (both ports, or neither)".into());
            }
            (port(ports[0], "quorum")?, port(ports[1], "election")?)
        }
    };
    if quorum == election {
        return Err(format!("quorum and election ports are both {quorum}"));
    }
    Ok(Member { host: host.to_string(), quorum, election })
}

/// The StatefulSet ordinal + 1 from a host name `name-K` (its first DNS label): pod `ocho-0`
/// is server 1.
pub fn id_from_hostname(hostname: &str) -> Option<usize> {
    let label = hostname.split('.').next()?;
    let (name, ordinal) = label.rsplit_once('-')?;
    if name.is_empty() || ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ordinal.parse::<usize>().ok()?.checked_add(1)
}

/// Renders `zoo.cfg`.
///
/// - `admin.enableServer=false`: the Jetty admin server would otherwise bind 8080, the Ochopod
///   control port.
/// - `maxClientCnxns=0`: every tool the portal runs connects from the same address, and the
///   default of 60 per address would refuse them under load.
/// - Autopurge keeps the data volume bounded; it only runs under `QuorumPeerMain`.
///
/// An ensemble member adds one `server.N=host:quorum:election;client` line per member. Each
/// line carries that member's client address (what `conf` and `/zookeeper/config` show); for
/// this member it is `clientPortAddress:clientPort` itself, because ZooKeeper replaces
/// `clientPortAddress` by the client address of its own line (a resolved host name there would
/// stop it listening on a wildcard or loopback bind). Dynamic reconfiguration stays off, so
/// ZooKeeper never rewrites this file.
pub fn render(cfg: &ServerConfig) -> String {
    let mut out = format!(
        "# written by ocho init at every start of ZooKeeper; edits are overwritten\n\
         tickTime=2000\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={data}\n\
         clientPort={port}\n\
         clientPortAddress={bind}\n\
         maxClientCnxns=0\n\
         admin.enableServer=false\n\
         4lw.commands.whitelist=srvr,ruok,mntr,stat,conf\n\
         autopurge.snapRetainCount=3\n\
         autopurge.purgeInterval=1\n",
        data = cfg.data_dir.display(),
        port = cfg.port,
        bind = cfg.bind,
    );
    if let Some(ens) = &cfg.ensemble {
        out.push_str(&format!(
            "# member {id} of an ensemble of {n}\nquorumListenOnAllIPs={all}\nreconfigEnabled=false\n",
            id = ens.id,
            n = ens.members.len(),
            all = ens.listen_all,
        ));
        for (i, m) in ens.members.iter().enumerate() {
            let client = if i + 1 == ens.id {
                let bind = match cfg.bind {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    IpAddr::V4(v4) => v4.to_string(),
                };
                format!("{bind}:{}", cfg.port)
            } else {
                format!("{}:{}", m.host_for_port(), cfg.port)
            };
            out.push_str(&format!(
                "server.{}={}:{}:{};{client}\n",
                i + 1,
                m.host_for_port(),
                m.quorum,
                m.election
            ));
        }
    }
    out
}

/// Writes `zoo.cfg` into the data directory (creating it), atomically: a reader never sees
/// a half-written file.
pub fn write(cfg: &ServerConfig) -> Result<PathBuf> {
    let dir = &cfg.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|source| Error::io("create data directory", dir, source))?;
    // `myid` first: a member that found zoo.cfg naming servers but no myid would not start.
    if let Some(ens) = &cfg.ensemble {
        replace(&dir.join("myid"), &format!("{}\n", ens.id))?;
    }
    let path = dir.join("zoo.cfg");
    replace(&path, &render(cfg))?;
    Ok(path)
}

/// Writes `path` through a temporary file renamed into place.
fn replace(path: &std::path::Path, text: &str) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(|source| Error::io("write", &tmp, source))?;
    std::fs::rename(&tmp, path).map_err(|source| Error::io("rename into place", path, source))
}

/// Checks a `-Xmx` heap size such as `256m`, `1g` or `262144k`.
pub fn check_heap(heap: &str) -> Result<()> {
    let digits = heap.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    let suffixes = heap.len() - digits.len();
    if digits.is_empty() || suffixes > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Usage(format!(
            "invalid heap size '{heap}': expected a number with an optional k, m or g suffix"
        )));
    }
    Ok(())
}

/// The address a local client uses to reach a server bound to `bind` (`0.0.0.0` → loopback).
pub fn client_addr(bind: IpAddr, port: u16) -> String {
    let host = if bind.is_unspecified() {
        match bind {
            IpAddr::V4(_) => "127.0.0.1".to_string(),
            IpAddr::V6(_) => "[::1]".to_string(),
        }
    } else if bind.is_ipv6() {
        format!("[{bind}]")
    } else {
        bind.to_string()
    };
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_configuration() {
        let cfg = ServerConfig {
            data_dir: "/var/lib/zookeeper".into(),
            bind: "0.0.0.0".parse().unwrap(),
            port: 2181,
            ensemble: None,
        };
        let expected = "# written by ocho init at every start of ZooKeeper; edits are overwritten
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper
clientPort=2181
clientPortAddress=0.0.0.0
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr,stat,conf
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
";
        assert_eq!(render(&cfg), expected);
    }

    #[test]
    fn write_replaces_the_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig {
            data_dir: dir.path().join("zk"),
            bind: "127.0.0.1".parse().unwrap(),
            port: 12181,
            ensemble: None,
        };
        let path = write(&cfg).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&cfg));
        std::fs::write(&path, "junk").unwrap();
        write(&cfg).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&cfg));
        assert!(!cfg.data_dir.join(".zoo.cfg.tmp").exists());
        assert!(!cfg.data_dir.join("myid").exists(), "a standalone server has no myid");
    }

    fn ensemble(spec: &str, id: usize, listen_all: bool) -> Ensemble {
        Ensemble { members: parse_members(spec, "--zk-members").unwrap(), id, listen_all }
    }

    #[test]
    fn a_member_renders_every_server_line_and_its_own_client_address() {
        let cfg = ServerConfig {
            data_dir: "/d".into(),
            bind: "127.0.3.2".parse().unwrap(),
            port: 2200,
            ensemble: Some(ensemble("127.0.3.1:2901:3901,127.0.3.2:2902:3902,z.ns.svc", 2, false)),
        };
        let text = render(&cfg);
        let standalone = render(&ServerConfig { ensemble: None, ..cfg.clone() });
        let tail = text.strip_prefix(&standalone).expect("the standalone settings come first");
        assert_eq!(
            tail,
            "# member 2 of an ensemble of 3
quorumListenOnAllIPs=false
reconfigEnabled=false
server.1=127.0.3.1:2901:3901;127.0.3.1:2200
server.2=127.0.3.2:2902:3902;127.0.3.2:2200
server.3=z.ns.svc:2888:3888;z.ns.svc:2200
"
        );
        assert!(text.contains("initLimit=10\nsyncLimit=5\n"), "a quorum needs both:\n{text}");
        let ens = cfg.ensemble.as_ref().unwrap();
        assert_eq!(ens.client_hosts(2200), "127.0.3.1:2200,127.0.3.2:2200,z.ns.svc:2200");
    }

    #[test]
    fn kubernetes_members_listen_on_all_addresses_and_keep_a_wildcard_client_bind() {
        let spec = "ocho-0.peers:2888:3888,ocho-1.peers,[fd00::3]:2888:3888";
        let cfg = ServerConfig {
            data_dir: "/var/lib/zookeeper".into(),
            bind: "0.0.0.0".parse().unwrap(),
            port: 2181,
            ensemble: Some(ensemble(spec, 1, true)),
        };
        let text = render(&cfg);
        assert!(text.contains("quorumListenOnAllIPs=true\n"), "{text}");
        assert!(text.contains("server.1=ocho-0.peers:2888:3888;0.0.0.0:2181\n"), "{text}");
        assert!(text.contains("server.2=ocho-1.peers:2888:3888;ocho-1.peers:2181\n"), "{text}");
        assert!(text.contains("server.3=[fd00::3]:2888:3888;[fd00::3]:2181\n"), "{text}");
    }

    #[test]
    fn write_puts_the_member_id_in_myid() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig {
            data_dir: dir.path().join("zk"),
            bind: "127.0.0.1".parse().unwrap(),
            port: 12181,
            ensemble: Some(ensemble("a,b,c", 3, false)),
        };
        write(&cfg).unwrap();
        assert_eq!(std::fs::read_to_string(cfg.data_dir.join("myid")).unwrap(), "3\n");
        assert!(!cfg.data_dir.join(".myid.tmp").exists());
    }

    #[test]
    fn members_take_default_ports_and_brackets() {
        let got = parse_members(" a.b , 10.0.0.2:1:2,[::1]:3:4 ", "--zk-members").unwrap();
        assert_eq!(
            got,
            [
                Member { host: "a.b".into(), quorum: 2888, election: 3888 },
                Member { host: "10.0.0.2".into(), quorum: 1, election: 2 },
                Member { host: "::1".into(), quorum: 3, election: 4 },
            ]
        );
        assert_eq!(parse_members("a,b,c,d,e", "f").unwrap().len(), 5);
    }

    #[test]
    fn bad_member_lists_are_refused_naming_the_flag_and_the_reason() {
        for (spec, why) in [
            ("a,b", "at least 3"),
            ("a", "at least 3"),
            ("a,b,c,d", "odd count"),
            ("a,b,A", "same member"),
            ("a:1:2,b,a:3:4", "entries 1 and 3"),
            ("a,,c", "empty entry"),
            ("a,b:2888,c", "both ports, or neither"),
            ("a,b:1:2:3,c", "both ports, or neither"),
            ("a,b:x:3888,c", "quorum port 'x'"),
            ("a,b:2888:0,c", "election port '0'"),
            ("a,b:2888:2888,c", "both 2888"),
            ("a,b c,d", "not a host"),
            ("a,[b]:1:2,c", "not an IPv6"),
            ("a,[::1,c", "without ']'"),
            ("a,b;2181,c", "not a host"),
        ] {
            let err = parse_members(spec, "--zk-members").unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{spec}: {err}");
            let text = err.to_string();
            assert!(text.contains("--zk-members") && text.contains(why), "{spec}: {text}");
        }
    }

    #[test]
    fn statefulset_ordinals_give_ids_from_one() {
        assert_eq!(id_from_hostname("ocho-0"), Some(1));
        assert_eq!(id_from_hostname("ocho-proxy-2.ocho-peers.ns.svc"), Some(3));
        for bad in ["ocho", "ocho-", "-1", "ocho-x", "ocho-1a", ""] {
            assert_eq!(id_from_hostname(bad), None, "{bad}");
        }
    }

    #[test]
    fn heap_sizes() {
        for good in ["256m", "1g", "1G", "262144k", "1048576"] {
            check_heap(good).unwrap();
        }
        for bad in ["", "m", "256mb", "-1m", "1.5g", "256 m"] {
            assert!(check_heap(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_clients_reach_a_wildcard_bind_on_loopback() {
        assert_eq!(client_addr("0.0.0.0".parse().unwrap(), 2181), "127.0.0.1:2181");
        assert_eq!(client_addr("127.0.0.5".parse().unwrap(), 1), "127.0.0.5:1");
        assert_eq!(client_addr("::".parse().unwrap(), 2181), "[::1]:2181");
    }
}
