//! What each signal to `ocho init` does to a real ZooKeeper JVM and its sessions: HUP, USR1 and
//! USR2 never reach the JVM (HotSpot would end or crash), HUP reaches the portal only, and a
//! client's session with its ephemeral node survives all three.
#![allow(clippy::unwrap_used)]

use crate::fixture;
use crate::support;

use std::path::Path;
use std::time::Duration;

use fixture::Zk;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{DEADLINE, Proc, free_port, ocho};
use zookeeper_client as zkc;

fn pid_in(line: &str) -> i32 {
    line.rsplit("(pid ").next().unwrap().trim_end_matches(')').parse().unwrap()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
}

/// The ephemeral owner of `path` as another session sees it, or None when the node is gone.
fn owner(zk: &Zk, path: &str) -> Option<i64> {
    zk.block_on(zk.client.check_stat(path)).unwrap().map(|stat| stat.ephemeral_owner)
}

#[test]
fn hup_usr1_usr2_to_init_leave_zookeeper_and_its_sessions_alone() {
    support::require_zookeeper();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (zk_port, portal_port) = (free_port(), free_port());
    let addr = format!("127.0.0.1:{zk_port}");
    let mut cmd = ocho();
    cmd.args(["init", "--zk-bind", "127.0.0.1", "--zk-heap", "128m", "--grace", "15"])
        .args(["--zk-port", &zk_port.to_string()])
        .args(["--portal-bind", &format!("127.0.0.1:{portal_port}")])
        .arg("--zk-data")
        .arg(&data);
    let mut init = Proc::spawn("init", cmd);
    let jvm = pid_in(&init.wait_for_line("init: started zookeeper (pid ", DEADLINE));
    let portal = pid_in(&init.wait_for_line("init: started portal (pid ", DEADLINE));
    init.wait_for_line(&format!("zookeeper ready on {addr}"), Duration::from_secs(60));
    init.wait_for_line("portal: listening on", DEADLINE);

    // The JVM does not run in the data directory.
    let cwd = std::fs::read_link(format!("/proc/{jvm}/cwd")).unwrap();
    assert_eq!(cwd, Path::new("/"), "JVM cwd");

    let holder = Zk::connect(&addr);
    let session = holder.client.session_id().0;
    let opts = zkc::CreateMode::Ephemeral.with_acls(zkc::Acls::anyone_all());
    holder.block_on(holder.client.create("/held", b"x", &opts)).unwrap();
    let observer = Zk::connect(&addr);
    assert_eq!(owner(&observer, "/held"), Some(session));

    for (signal, ack) in [
        (Signal::SIGHUP, "init: SIGHUP received: forwarded to the portal (reload)"),
        (Signal::SIGUSR1, "init: SIGUSR1 received: ignored"),
        (Signal::SIGUSR2, "init: SIGUSR2 received: ignored"),
    ] {
        init.signal(signal);
        init.wait_for_line(ack, DEADLINE);
        // A round trip through the holder's own session, then the node seen from another one.
        assert_eq!(holder.get("/held").as_deref(), Some(&b"x"[..]), "after {signal}");
        assert_eq!(owner(&observer, "/held"), Some(session), "after {signal}");
        assert!(alive(jvm), "the JVM died after {signal}:\n{}", init.tail());
        assert!(alive(portal), "the portal died after {signal}:\n{}", init.tail());
    }

    init.signal(Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
    let lines = init.lines();
    assert!(
        !lines.iter().any(|l| l.contains("exited unexpectedly")),
        "a child ended on a signal:\n{}",
        init.tail()
    );
    // Exactly one exit of the first JVM, by the SIGTERM of the shutdown.
    assert!(lines.iter().any(|l| l.contains("init: zookeeper exited with exit status 143")));
    assert_eq!(lines.iter().filter(|l| l.contains("init: started zookeeper")).count(), 1);
    // No crash report anywhere on the data volume.
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with("hs_err"), "{name} in {}", d.display());
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}
