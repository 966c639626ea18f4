//! Damaged ZooKeeper data under `ocho init`, with a real ZooKeeper: 100 znodes are written and
//! the server stopped, one kind of damage is made, and init must bring ZooKeeper up ready with
//! every one of the 100 znodes, saying which file it quarantined and why. Without the repair,
//! each of these makes ZooKeeper fail at every start (or, for bytes after the preallocated tail,
//! silently skip them).
#![allow(clippy::unwrap_used)]

use crate::fixture;
use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fixture::Zk;
use nix::sys::signal::Signal;
use support::{DEADLINE, Proc, free_port, ocho};
use zookeeper_client as zkc;

const NODES: usize = 100;

fn init(data: &Path, port: u16) -> Proc {
    let mut cmd = ocho();
    cmd.args(["init", "--no-portal", "--zk-bind", "127.0.0.1", "--zk-heap", "128m"])
        .args(["--grace", "10", "--zk-port", &port.to_string()])
        .arg("--zk-data")
        .arg(data);
    Proc::spawn("init", cmd)
}

fn stop(mut proc: Proc) {
    proc.signal(Signal::SIGTERM);
    assert_eq!(proc.expect_exit(DEADLINE).code(), Some(0), "{}", proc.tail());
}

/// Starts ZooKeeper on a fresh data directory, writes /n0 … /n99, stops it; with `restart`, starts
/// and stops it once more (ZooKeeper then writes a snapshot holding the 100 znodes).
fn seeded(restart: bool) -> (tempfile::TempDir, PathBuf, u16) {
    support::require_zookeeper();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let proc = init(&data, port);
    proc.wait_for_line("zookeeper ready on", Duration::from_secs(60));
    let zk = Zk::connect(&format!("127.0.0.1:{port}"));
    let opts = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
    for i in 0..NODES {
        zk.block_on(zk.client.create(&format!("/n{i}"), b"v", &opts)).unwrap();
    }
    drop(zk);
    stop(proc);
    if restart {
        let proc = init(&data, port);
        proc.wait_for_line("zookeeper ready on", Duration::from_secs(60));
        stop(proc);
    }
    (dir, data, port)
}

fn files(dir: &Path, prefix: &str) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let zxid = u64::from_str_radix(name.strip_prefix(prefix)?, 16).ok()?;
            Some((zxid, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// The offset after the last readable record of a transaction log (16-byte header, then
/// crc(8) len(4) body 'B' records, ended by a zero length).
fn records_end(log: &[u8]) -> usize {
    let mut off = 16;
    loop {
        let len = i32::from_be_bytes(log[off + 8..off + 12].try_into().unwrap());
        if len == 0 {
            return off;
        }
        off += 12 + len as usize + 1;
    }
}

/// Restarts init on the damaged directory: ZooKeeper must become ready with every znode, the
/// damage must be named, and nothing may crash.
fn restarts_with_every_node(data: &Path, port: u16, damaged: &str) -> Proc {
    let proc = init(data, port);
    let line =
        proc.wait_for_line(&format!("zookeeper data damaged: version-2/{damaged}"), DEADLINE);
    proc.wait_for_line("zookeeper ready on", Duration::from_secs(60));
    let zk = Zk::connect(&format!("127.0.0.1:{port}"));
    let children = zk.children("/");
    for i in 0..NODES {
        assert!(
            children.contains(&format!("n{i}")),
            "/n{i} lost after repair ({line}):\n{}",
            proc.tail()
        );
    }
    drop(zk);
    assert!(
        !proc.lines().iter().any(|l| l.contains("exited unexpectedly")),
        "zookeeper crashed:\n{}",
        proc.tail()
    );
    let counted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("quarantine/damage.json")).unwrap())
            .unwrap();
    assert_eq!(counted["repairs"], 1, "{counted}");
    assert!(counted["last"][0]["file"].as_str().unwrap().ends_with(damaged), "{counted}");
    proc
}

fn quarantined(data: &Path, name: &str) -> PathBuf {
    let q = data.join("quarantine");
    let stamp = std::fs::read_dir(&q)
        .unwrap()
        .flatten()
        .find(|e| e.file_type().unwrap().is_dir())
        .unwrap_or_else(|| panic!("no quarantine directory in {}", q.display()));
    stamp.path().join(name)
}

#[test]
fn a_zero_length_trailing_log_is_quarantined() {
    let (_dir, data, port) = seeded(true);
    let v2 = data.join("version-2");
    // What a crash right after ZooKeeper created its next log leaves.
    let (snap, _) = files(&v2, "snapshot.").pop().unwrap();
    let name = format!("log.{:x}", snap + 1);
    std::fs::write(v2.join(&name), b"").unwrap();
    let proc = restarts_with_every_node(&data, port, &name);
    proc.wait_for_line("empty (0 bytes)", DEADLINE);
    assert!(quarantined(&data, &name).is_file());
    // ZooKeeper may have started a new log of that name since; never an empty one.
    assert!(std::fs::metadata(v2.join(&name)).map_or(true, |m| m.len() > 0));
    stop(proc);
}

#[test]
fn a_zero_length_snapshot_is_quarantined_and_the_logs_replayed() {
    let (_dir, data, port) = seeded(false);
    let v2 = data.join("version-2");
    let snaps = files(&v2, "snapshot.");
    assert_eq!(snaps.len(), 1, "one snapshot, taken at the first start");
    let name = snaps[0].1.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::write(&snaps[0].1, b"").unwrap();
    let proc = restarts_with_every_node(&data, port, &name);
    proc.wait_for_line("no valid snapshot left: zookeeper replays its transaction logs", DEADLINE);
    assert!(quarantined(&data, &name).is_file());
    stop(proc);
    // ZooKeeper wrote a fresh snapshot: the next start needs no repair.
    let proc = init(&data, port);
    proc.wait_for_line("zookeeper ready on", Duration::from_secs(60));
    assert!(!proc.lines().iter().any(|l| l.contains("damaged")), "{}", proc.tail());
    stop(proc);
}

#[test]
fn garbage_after_the_last_record_of_a_log_is_cut_off() {
    let (_dir, data, port) = seeded(false);
    let v2 = data.join("version-2");
    let (_, log) = files(&v2, "log.").pop().unwrap();
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&log).unwrap();
    let end = records_end(&bytes);
    // 256 bytes appended to the records (where the next record would go): a bogus length.
    let garbage: Vec<u8> = (0..256u32).map(|i| (i.wrapping_mul(151) ^ 0xa5) as u8 | 1).collect();
    bytes[end..end + 256].copy_from_slice(&garbage);
    std::fs::write(&log, &bytes).unwrap();
    let proc = restarts_with_every_node(&data, port, &name);
    proc.wait_for_line("DATA LOST OR SKIPPED", DEADLINE);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), end as u64, "truncated after the records");
    assert_eq!(std::fs::read(quarantined(&data, &name)).unwrap(), bytes, "original kept whole");
    stop(proc);
}

#[test]
fn garbage_appended_past_the_preallocated_end_of_a_log_is_reported() {
    let (_dir, data, port) = seeded(false);
    let v2 = data.join("version-2");
    let (_, log) = files(&v2, "log.").pop().unwrap();
    let name = log.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&log).unwrap();
    let end = records_end(&bytes);
    bytes.extend((0..256u32).map(|i| (i * 7 + 3) as u8));
    std::fs::write(&log, &bytes).unwrap();
    let proc = restarts_with_every_node(&data, port, &name);
    proc.wait_for_line("non-zero bytes at offset", DEADLINE);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), end as u64);
    stop(proc);
}

/// What a plain GET on the portal answers (status line and body).
fn get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn repairs_are_reported_in_readyz_and_metrics() {
    let (_dir, data, port) = seeded(true);
    let v2 = data.join("version-2");
    let (snap, _) = files(&v2, "snapshot.").pop().unwrap();
    std::fs::write(v2.join(format!("log.{:x}", snap + 1)), b"").unwrap();
    let portal = format!("127.0.0.1:{}", free_port());
    let mut cmd = ocho();
    cmd.args(["init", "--zk-bind", "127.0.0.1", "--zk-heap", "128m", "--grace", "10"])
        .args(["--zk-port", &port.to_string(), "--portal-bind", &portal, "--no-audit"])
        .arg("--zk-data")
        .arg(&data);
    let proc = Proc::spawn("init", cmd);
    proc.wait_for_line("zookeeper ready on", Duration::from_secs(60));
    proc.wait_for_line(&format!("portal: listening on {portal}"), DEADLINE);
    let ready = get(&portal, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let body: serde_json::Value =
        serde_json::from_str(ready.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["zk_data"]["repairs"], 1, "{body}");
    assert_eq!(body["zk_data"]["quarantined_files"], 1, "{body}");
    let metrics = get(&portal, "/metrics");
    assert!(metrics.contains("\nocho_zk_data_repairs_total 1\n"), "{metrics}");
    assert!(metrics.contains("\nocho_zk_data_data_lost_total 0\n"), "{metrics}");
    stop(proc);
}
