//! `ocho init` as a supervisor: real ZooKeeper, real portal, real signals.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns fail loudly by design

use crate::support;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::{DEADLINE, Proc, ZooKeeper, free_port, ocho};

#[test]
fn init_runs_zookeeper_and_portal_and_stops_cleanly_on_sigterm() {
    support::require_zookeeper();
    let dir = tempfile::tempdir().unwrap();
    let (zk_port, portal_port) = (free_port(), free_port());
    let mut cmd = ocho();
    cmd.args(["init", "--zk-bind", "127.0.0.1", "--grace", "15"])
        .args(["--zk-port", &zk_port.to_string()])
        .args(["--portal-bind", &format!("127.0.0.1:{portal_port}")])
        .arg("--zk-data")
        .arg(dir.path());
    let mut init = Proc::spawn("init", cmd);
    init.wait_for_line(&format!("zookeeper ready on 127.0.0.1:{zk_port}"), Duration::from_secs(60));
    init.wait_for_line(&format!("portal: listening on 127.0.0.1:{portal_port}"), DEADLINE);

    let status =
        ocho().args(["zk-status", "--zk", &format!("127.0.0.1:{zk_port}")]).output().unwrap();
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("Mode: standalone"));
    assert!(dir.path().join("zoo.cfg").is_file());
    // The portal's audit journal lives on the data volume by default.
    let cli = ocho()
        .args(["cli", &format!("127.0.0.1:{portal_port}"), "args", "audited"])
        .env_remove("OCHOPOD_TOKEN")
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let journal = std::fs::read_to_string(dir.path().join("audit/journal.jsonl")).unwrap();
    assert!(journal.contains("\"audited\""), "{journal}");

    init.signal(Signal::SIGTERM);
    let exit = init.expect_exit(DEADLINE);
    assert_eq!(exit.code(), Some(0), "{}", init.tail());
    let lines = init.lines();
    let portal_gone = lines.iter().position(|l| l.contains("init: portal exited")).unwrap();
    let zk_gone = lines
        .iter()
        .position(|l| l.contains("init: zookeeper exited with exit status 143"))
        .unwrap();
    assert!(portal_gone < zk_gone, "portal must stop before zookeeper:\n{}", init.tail());
}

#[test]
fn zk_status_fails_when_nothing_serves() {
    let out =
        ocho().args(["zk-status", "--zk", &format!("127.0.0.1:{}", free_port())]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("probe zookeeper at"));
}

#[test]
fn the_zookeeper_fixture_serves_clients() {
    let zk = ZooKeeper::start();
    let out = ocho().args(["zk-status", "--zk", &zk.addr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn zookeeper_killed_with_sigkill_is_restarted_and_announced_ready_again() {
    let zk = ZooKeeper::start();
    let started = zk.proc.wait_for_line("init: started zookeeper (pid ", DEADLINE);
    let pid: i32 = started.rsplit("(pid ").next().unwrap().trim_end_matches(')').parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let line = zk.proc.wait_for_line("init: zookeeper exited unexpectedly", DEADLINE);
    assert!(line.contains("signal SIGKILL") && line.contains("restarting in"), "{line}");
    zk.proc
        .wait_for_nth("the second start", 2, DEADLINE, |l| l.contains("init: started zookeeper"));
    zk.proc.wait_for_nth("ready again", 2, Duration::from_secs(60), |l| {
        l.contains(&format!("zookeeper ready on {}", zk.addr))
    });
    let out = ocho().args(["zk-status", "--zk", &zk.addr]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn no_zk_runs_only_the_portal_against_an_external_ensemble() {
    let zk = ZooKeeper::start();
    let portal = format!("127.0.0.1:{}", free_port());
    let mut cmd = ocho();
    cmd.args(["init", "--no-zk", "--zk", &zk.addr, "--portal-bind", &portal, "--grace", "10"]);
    let mut init = Proc::spawn("init", cmd);
    init.wait_for_line(&format!("portal: listening on {portal}"), DEADLINE);
    // The portal child was told where the external ensemble is.
    let line = init.wait_for_line("init: started portal (pid ", DEADLINE);
    let pid: i32 = line.rsplit("(pid ").next().unwrap().trim_end_matches(')').parse().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let wanted = format!("OCHOPOD_ZK={}", zk.addr);
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes()),
        "portal env lacks {wanted}"
    );
    init.signal(Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
    assert!(!init.lines().iter().any(|l| l.contains("started zookeeper")), "{}", init.tail());
}

/// Kills a pid the test found, whatever happens to the test.
struct Stray(i32);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Gone, or a zombie waiting for whoever inherited it.
    stat.is_empty() || stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z'))
}

fn until_gone(pid: i32, what: &str) {
    let end = std::time::Instant::now() + DEADLINE;
    while !gone(pid) {
        assert!(std::time::Instant::now() < end, "{what} (pid {pid}) outlived init");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nothing_outlives_a_subreaper_init_killed_with_sigkill() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A child whose grandchild double-forks into a session (and process group) of its own, and a
    // second one that stays in the child's group.
    let java = dir.path().join("java");
    std::fs::write(
        &java,
        "#!/bin/sh\n\
         ( setsid sh -c 'echo escaped $$; exec sleep 1000' & )\n\
         ( sh -c 'echo stayed $$; exec sleep 1000' & )\n\
         echo fixture ready $$\n\
         while :; do sleep 1000 & wait $!; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = ocho();
    cmd.args(["init", "--no-portal", "--zk-classpath", "/bin/sh", "--zk-bind", "127.0.0.1"])
        .args(["--zk-port", &free_port().to_string(), "--grace", "5"])
        .arg("--java")
        .arg(&java)
        .arg("--zk-data")
        .arg(dir.path().join("data"));
    let init = Proc::spawn("init", cmd);
    let number = |line: String| -> i32 { line.rsplit(' ').next().unwrap().parse().unwrap() };
    let escaped = Stray(number(init.wait_for_line("zookeeper: escaped ", DEADLINE)));
    let stayed = Stray(number(init.wait_for_line("zookeeper: stayed ", DEADLINE)));
    let child = Stray(number(init.wait_for_line("zookeeper: fixture ready ", DEADLINE)));
    init.wait_for_line("guardian pid", DEADLINE);
    // The escaped grandchild leads a group init only knows from its scan of the tree.
    init.wait_for_line(&format!("init: tracking process group {0} (pid {0})", escaped.0), DEADLINE);
    init.signal(Signal::SIGKILL);
    for (pid, what) in [
        (child.0, "the child"),
        (stayed.0, "the grandchild in its group"),
        (escaped.0, "the grandchild that called setsid"),
    ] {
        until_gone(pid, what);
    }
}
