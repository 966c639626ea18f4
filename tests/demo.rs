//! `make demo`'s script (demo/run.sh) against a real ZooKeeper: its three real agents register
//! in one cluster and `ocho ls` shows them; stopping the script stops them.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::support;

use std::process::Command;

use support::{DEADLINE, Proc, free_loopback, ocho, ocho_bin, shared_zookeeper};

#[test]
fn the_demo_registers_three_pods_that_ls_shows() {
    let zk = shared_zookeeper();
    let lb = free_loopback(3, 1);
    let mut script = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/demo/run.sh"));
    script
        .env("OCHO", ocho_bin())
        .env("ZK", zk)
        .env("DEMO_NAMESPACE", "demotest")
        .env("DEMO_IPS", lb.ips.join(" "))
        .env("DEMO_PORT", lb.port().to_string());
    let demo = Proc::spawn("demo", script);
    demo.wait_for_line("demo ready: 3 pods in cluster demotest.demo", DEADLINE);

    let ran = ocho().args(["ls", "demotest.*"]).env("OCHOPOD_ZK", zk).output().unwrap();
    let out = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(ran.status.code(), Some(0), "{out}{}", String::from_utf8_lossy(&ran.stderr));
    let row = out.lines().find(|l| l.contains("demotest.demo")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("3/3"), "three pods running: {out}");

    let ran = ocho().args(["grep", "demotest.demo", "-j"]).env("OCHOPOD_ZK", zk).output().unwrap();
    let pods: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(pods.as_object().unwrap().len(), 3, "{pods}");
}
