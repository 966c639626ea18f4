//! `ocho init` as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`), with small
//! shell fixtures standing in for the JVM (`--java`) so that signal handling is observable, and
//! the real JVM for the clean-shutdown case. unshare forwards no signals, so tests signal the
//! inner init by its host pid.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns fail loudly by design

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use support::{DEADLINE, Proc, free_port, ocho};

/// `ocho init ARGS` as PID 1 of a new PID namespace; returns the owner of `unshare` and the host
/// pid of the inner init.
fn pid1(args: &[&str]) -> (Proc, Pid) {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_ocho"))
        .arg("init")
        .args(args);
    let proc = Proc::spawn("init", cmd);
    proc.wait_for_line("init: started", DEADLINE);
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", proc.pid()))
        .expect("read unshare's children");
    let inner = children.split_whitespace().next().expect("unshare has a child").parse().unwrap();
    (proc, Pid::from_raw(inner))
}

/// A fixture script standing in for `java`: it receives the JVM's arguments and ignores them.
fn fixture(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Flags that make init supervise only the fixture, on a port nothing listens on.
fn fixture_args<'a>(java: &'a Path, data: &'a Path, port: &'a str, grace: &'a str) -> Vec<&'a str> {
    vec![
        "--no-portal",
        "--zk-classpath",
        "/bin/sh", // any existing file: the fixture ignores its classpath
        "--zk-bind",
        "127.0.0.1",
        "--zk-port",
        port,
        "--grace",
        grace,
        "--java",
        java.to_str().unwrap(),
        "--zk-data",
        data.to_str().unwrap(),
    ]
}

fn signal(pid: Pid, signal: Signal) {
    nix::sys::signal::kill(pid, signal).expect("signal the inner init");
}

/// Children of `pid` over all its threads, with their state letter from /proc/PID/stat.
fn children(pid: Pid) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return found };
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in list.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            let state =
                stat.rsplit(')').next().and_then(|s| s.trim().chars().next()).unwrap_or('?');
            found.push((child.parse().unwrap(), state));
        }
    }
    found
}

#[test]
fn init_is_pid_1_and_never_forwards_hup_usr1_usr2_to_the_zookeeper_child() {
    let dir = tempfile::tempdir().unwrap();
    let java = fixture(
        dir.path(),
        "java",
        r#"for s in HUP USR1 USR2; do trap "echo got $s" $s; done
trap 'echo got TERM; kill $nap 2>/dev/null; exit 0' TERM
echo fixture ready
while :; do sleep 1000 & nap=$!; wait $nap; done"#,
    );
    let port = free_port().to_string();
    let (mut init, inner) = pid1(&fixture_args(&java, &dir.path().join("data"), &port, "10"));
    init.wait_for_line("zookeeper: fixture ready", DEADLINE);
    assert!(!init.lines().iter().any(|l| l.contains("subreaper")), "PID 1 is no subreaper");
    signal(inner, Signal::SIGHUP);
    init.wait_for_line(
        "init: SIGHUP received: no portal running; zookeeper is not signalled",
        DEADLINE,
    );
    for name in ["USR1", "USR2"] {
        signal(inner, if name == "USR1" { Signal::SIGUSR1 } else { Signal::SIGUSR2 });
        init.wait_for_line(&format!("init: SIG{name} received: ignored"), DEADLINE);
    }
    // TERM is forwarded, and the fixture's traps run in arrival order: had any of the three been
    // forwarded, its "got" line would come first.
    signal(inner, Signal::SIGTERM);
    init.wait_for_line("zookeeper: got TERM", DEADLINE);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
    init.wait_for_line("init: stopped cleanly", DEADLINE);
    let lines = init.lines();
    for name in ["HUP", "USR1", "USR2"] {
        let got = format!("zookeeper: got {name}");
        assert!(
            !lines.iter().any(|l| l.contains(&got)),
            "{name} reached the child:\n{}",
            init.tail()
        );
    }
}

#[test]
fn children_start_with_an_empty_signal_mask_and_no_ignored_signals() {
    let dir = tempfile::tempdir().unwrap();
    // No trap: the default disposition of SIGTERM must end the fixture when init forwards it.
    let java = fixture(
        dir.path(),
        "java",
        // Builtins only: a shell transiently blocks every signal while it forks, so a `grep`
        // reading the shell's status could catch that moment instead of the inherited mask.
        "while read -r key value; do case $key in SigBlk:|SigIgn:) echo \"$key $value\";; esac; done < /proc/self/status
sleep 1000 &
echo fixture ready
wait",
    );
    let port = free_port().to_string();
    let (mut init, inner) = pid1(&fixture_args(&java, &dir.path().join("data"), &port, "10"));
    init.wait_for_line("zookeeper: fixture ready", DEADLINE);
    let lines = init.lines();
    for mask in ["SigBlk", "SigIgn"] {
        let line = lines.iter().find(|l| l.contains(mask)).unwrap_or_else(|| panic!("no {mask}"));
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    signal(inner, Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
    init.wait_for_line("zookeeper exited with signal SIGTERM", DEADLINE);
    // Its `sleep` (started before "ready") outlived it, holding the output pipe: init ends such
    // strays before exiting.
    init.wait_for_line(
        "init: zookeeper left processes behind: SIGKILL to its process group",
        DEADLINE,
    );
}

#[test]
fn orphans_of_a_double_forking_child_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    // Each subshell forks a short sleep and exits at once: the sleeps become orphans of PID 1.
    let java = fixture(
        dir.path(),
        "java",
        "for i in 1 2 3 4 5; do (sleep 0.2 &); done\necho orphans made\nwhile :; do sleep 1000 & wait $!; done",
    );
    let port = free_port().to_string();
    let (mut init, inner) = pid1(&fixture_args(&java, &dir.path().join("data"), &port, "10"));
    init.wait_for_line("zookeeper: orphans made", DEADLINE);
    // Probe with a deadline: only the fixture itself may remain, and nothing may be a zombie.
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        let kids = children(inner);
        if kids.len() == 1 && kids.iter().all(|(_, state)| *state != 'Z') {
            break;
        }
        assert!(std::time::Instant::now() < end, "orphans not reaped: {kids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(inner, Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
}

#[test]
fn a_crashing_child_is_restarted_with_growing_delays() {
    let dir = tempfile::tempdir().unwrap();
    let java = fixture(dir.path(), "java", "echo crashing; exit 3");
    let port = free_port().to_string();
    let (mut init, inner) = pid1(&fixture_args(&java, &dir.path().join("data"), &port, "10"));
    let delay = |n: usize| -> f64 {
        let line = init.wait_for_nth("a restart", n, DEADLINE, |l| l.contains("restarting in"));
        assert!(line.contains("exited unexpectedly with exit status 3"), "{line}");
        line.rsplit("restarting in ").next().unwrap().trim_end_matches('s').parse().unwrap()
    };
    let delays: Vec<f64> = (1..=3).map(delay).collect();
    for (got, base) in delays.iter().zip([1.0, 2.0, 4.0]) {
        assert!((base * 0.9..=base * 1.1).contains(got), "delays {delays:?}");
    }
    signal(inner, Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_at_the_deadline_and_init_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let java = fixture(
        dir.path(),
        "java",
        "trap '' TERM\necho stubborn ready\nwhile :; do sleep 1000 & wait $!; done",
    );
    let port = free_port().to_string();
    let (mut init, inner) = pid1(&fixture_args(&java, &dir.path().join("data"), &port, "1.5"));
    init.wait_for_line("zookeeper: stubborn ready", DEADLINE);
    signal(inner, Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(1), "{}", init.tail());
    init.wait_for_line("init: zookeeper still running at its deadline: SIGKILL", DEADLINE);
    init.wait_for_line("grace of 1.5s ran out: killed zookeeper", DEADLINE);
}

#[test]
fn sigterm_with_a_real_zookeeper_and_portal_exits_0_in_order() {
    support::require_zookeeper();
    let dir = tempfile::tempdir().unwrap();
    let (zk_port, portal_port) = (free_port().to_string(), free_port());
    let portal = format!("127.0.0.1:{portal_port}");
    let data = dir.path().join("data");
    let (mut init, inner) = pid1(&[
        "--zk-bind",
        "127.0.0.1",
        "--zk-port",
        &zk_port,
        "--zk-heap",
        "128m",
        "--portal-bind",
        &portal,
        "--zk-data",
        data.to_str().unwrap(),
    ]);
    init.wait_for_line("zookeeper ready on", Duration::from_secs(60));
    init.wait_for_line(&format!("portal: listening on {portal}"), DEADLINE);
    let java: Vec<i32> = children(inner).iter().map(|(pid, _)| *pid).collect();
    assert_eq!(java.len(), 2, "zookeeper and portal: {java:?}");
    signal(inner, Signal::SIGTERM);
    assert_eq!(init.expect_exit(DEADLINE).code(), Some(0), "{}", init.tail());
    let lines = init.lines();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap_or(usize::MAX);
    assert!(
        at("init: portal exited with exit status 0")
            < at("init: zookeeper exited with exit status 143")
    );
    for pid in java {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid} survived");
    }
}

#[test]
fn a_missing_or_unexecutable_child_program_exits_127_or_126() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port().to_string();
    let missing = dir.path().join("no-such-java");
    let out = ocho().arg("init").args(fixture_args(&missing, &data, &port, "5")).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot execute zookeeper"));

    let not_exec = dir.path().join("java");
    std::fs::write(&not_exec, "not a program").unwrap();
    let out = ocho().arg("init").args(fixture_args(&not_exec, &data, &port, "5")).output().unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", String::from_utf8_lossy(&out.stderr));
}
