//! `zoo.cfg` for the standalone ZooKeeper that `ocho init` runs, rendered from flags (pure).

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
}

/// Renders `zoo.cfg`.
///
/// - `admin.enableServer=false`: the Jetty admin server would otherwise bind 8080, the Ochopod
///   control port.
/// - `maxClientCnxns=0`: every tool the portal runs connects from the same address, and the
///   default of 60 per address would refuse them under load.
/// - Autopurge keeps the data volume bounded; it only runs under `QuorumPeerMain`.
pub fn render(cfg: &ServerConfig) -> String {
    format!(
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
    )
}

/// Writes `zoo.cfg` into the data directory (creating it), atomically: a reader never sees
/// a half-written file.
pub fn write(cfg: &ServerConfig) -> Result<PathBuf> {
    let dir = &cfg.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|source| Error::io("create data directory", dir, source))?;
    let path = dir.join("zoo.cfg");
    let tmp = dir.join(".zoo.cfg.tmp");
    std::fs::write(&tmp, render(cfg)).map_err(|source| Error::io("write", &tmp, source))?;
    std::fs::rename(&tmp, &path).map_err(|source| Error::io("rename into place", &path, source))?;
    Ok(path)
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
        };
        let path = write(&cfg).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&cfg));
        std::fs::write(&path, "junk").unwrap();
        write(&cfg).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&cfg));
        assert!(!cfg.data_dir.join(".zoo.cfg.tmp").exists());
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
