//! Who this pod is: the registration hints from defaults, `ochopod_*` variables and flags
//! (docs/protocol.md §1.3, §2), the pod address, the `ports` map, and the random identities (a UUID
//! v4 per process, kazoo's 32-hex lock prefix).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Args;
use crate::error::{Error, Result};

/// 32 random lower-case hex characters (kazoo's lock prefix, `uuid4().hex`).
pub fn random_hex32() -> String {
    random_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A random UUID version 4 in canonical form.
pub fn random_uuid() -> String {
    let mut b = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn random_bytes() -> [u8; 16] {
    use std::io::Read;
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        // No /dev in the container: std's randomly keyed hashers still differ per draw.
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&crate::random::u64().to_le_bytes());
        }
    }
    b
}

pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The first non-loopback IPv4 address of the host.
fn first_address() -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        let ip = a.address.as_ref().and_then(|s| s.as_sockaddr_in()).map(|s| s.ip());
        if let Some(ip) = ip.filter(|ip| !ip.is_loopback()) {
            return Some(ip.to_string());
        }
    }
    None
}

/// Parses `--ports` (`2181,2888:32888`) into the registration's `ports`, adding the control port.
fn parse_ports(text: &str, control: u16) -> Result<BTreeMap<String, u16>> {
    let mut ports = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (c, m) = item.split_once(':').unwrap_or((item, item));
        let c: u16 =
            c.parse().map_err(|_| Error::Usage(format!("invalid port '{item}' in --ports")))?;
        let m: u16 =
            m.parse().map_err(|_| Error::Usage(format!("invalid port '{item}' in --ports")))?;
        ports.insert(c.to_string(), m);
    }
    ports.entry(control.to_string()).or_insert(control);
    Ok(ports)
}

/// The hints (registration record without `seq`, docs/protocol.md §1.3 and §2): defaults, then
/// every `ochopod_<x>` variable as `<x>`, then the flags, then the binding's own keys.
pub fn hints(args: &Args, vars: &[(String, String)]) -> Result<(Map<String, Value>, u16)> {
    let mut h = Map::new();
    for (k, v) in [
        ("cluster", ""),
        ("debug", "true"),
        ("local", "false"),
        ("namespace", "default"),
        ("port", "8080"),
        ("application", ""),
        ("start", "true"),
    ] {
        h.insert(k.into(), json!(v));
    }
    for (k, v) in vars {
        if let Some(key) = k.strip_prefix("ochopod_").filter(|k| !k.is_empty()) {
            h.insert(key.into(), json!(v));
        }
    }
    let flags = [
        ("cluster", &args.cluster),
        ("namespace", &args.namespace),
        ("application", &args.application),
        ("port", &args.port),
        ("debug", &args.debug),
        ("start", &args.start),
        ("zk", &args.zk),
    ];
    for (k, v) in flags {
        if let Some(v) = v {
            h.insert(k.into(), json!(v));
        }
    }
    let get = |h: &Map<String, Value>, k: &str| {
        h.get(k).and_then(Value::as_str).unwrap_or("").to_string()
    };
    let var =
        |name: &str| vars.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.clone());
    let task = args
        .task
        .clone()
        .or_else(|| var("POD_NAME"))
        .or_else(|| var("HOSTNAME"))
        .or_else(|| nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()))
        .unwrap_or_default();
    if get(&h, "cluster").is_empty() {
        h.insert("cluster".into(), json!(task));
    }
    for key in ["cluster", "namespace"] {
        let v = get(&h, key);
        if v.is_empty() || v.contains('/') {
            return Err(Error::Usage(format!(
                "invalid {key} '{v}' (set --{key} or ochopod_{key})"
            )));
        }
    }
    if get(&h, "zk").trim().is_empty() {
        return Err(Error::Usage("no zookeeper: set --zk or ochopod_zk (host:port,…)".into()));
    }
    let port: u16 = get(&h, "port").parse().ok().filter(|p| *p != 0).ok_or_else(|| {
        Error::Usage(format!("invalid control port '{}' (--port, ochopod_port)", get(&h, "port")))
    })?;
    let ip = args
        .ip
        .clone()
        .or_else(|| var("POD_IP"))
        .or_else(first_address)
        .ok_or_else(|| Error::Usage("no pod address: set --ip or POD_IP".into()))?;
    let ports_text = args.ports.clone().or_else(|| var("ochopod_ports")).unwrap_or_default();
    h.insert("ports".into(), json!(parse_ports(&ports_text, port)?));
    h.insert("task".into(), json!(task));
    h.insert("ip".into(), json!(ip));
    if !h.contains_key("public") {
        h.insert("public".into(), json!(ip));
    }
    let node = args.node.clone().or_else(|| var("NODE_NAME")).unwrap_or_default();
    h.insert("node".into(), json!(node));
    h.insert("fwk".into(), json!("ocho"));
    h.remove("seq");
    Ok((h, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::Args;

    fn args(words: &[&str]) -> Args {
        match crate::cli::parse_words(&[&["pod"], words].concat()) {
            crate::cli::Parsed::Run(crate::cli::Mode::Pod(a)) => a,
            _ => panic!("not pod args: {words:?}"),
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn hints_follow_the_spec_keys() {
        let a = args(&["--ip", "10.1.2.3", "--", "sleep", "1"]);
        let v = vars(&[
            ("ochopod_cluster", "zk"),
            ("ochopod_zk", "zk-0:2181"),
            ("ochopod_ports", "2181,2888,3888"),
            ("ochopod_extra", "x"),
            ("ochopod_application", "ochopod.default.zk-2026"),
            ("POD_NAME", "zk-abc"),
            ("NODE_NAME", "node-1"),
        ]);
        let (h, port) = hints(&a, &v).unwrap();
        assert_eq!(port, 8080);
        assert_eq!(h["cluster"], "zk");
        assert_eq!(h["namespace"], "default");
        assert_eq!(h["port"], "8080");
        assert_eq!(h["ports"], json!({"2181": 2181, "2888": 2888, "3888": 3888, "8080": 8080}));
        assert_eq!(h["task"], "zk-abc");
        assert_eq!(h["node"], "node-1");
        assert_eq!(h["ip"], "10.1.2.3");
        assert_eq!(h["public"], "10.1.2.3");
        assert_eq!(h["extra"], "x");
        assert_eq!(h["debug"], "true");
        assert_eq!(h["start"], "true");
        assert_eq!(h["local"], "false");
        assert!(!h.contains_key("seq"));
    }

    #[test]
    fn bad_identity_is_a_usage_error() {
        let a = args(&["--ip", "1.2.3.4", "--", "x"]);
        for v in [
            vars(&[("ochopod_cluster", "c")]),
            vars(&[("ochopod_cluster", "c"), ("ochopod_zk", "h"), ("ochopod_port", "nope")]),
            vars(&[("ochopod_cluster", "c"), ("ochopod_zk", "h"), ("ochopod_ports", "80,x")]),
        ] {
            assert!(matches!(hints(&a, &v), Err(Error::Usage(_))), "{v:?}");
        }
    }

    #[test]
    fn uuids_are_version_4() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, random_uuid());
        assert_eq!(random_hex32().len(), 32);
    }
}
