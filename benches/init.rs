//! `make bench`, issue 2: size of the static binary, RSS of `ocho init` itself while ZooKeeper
//! runs, exec → "zookeeper ready" against a bare start of init's own JVM command line and
//! `zoo.cfg`, measured after each init run and probed the same way, SIGTERM →
//! exit, and ZooKeeper SIGKILLed → ready again. Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{Proc, free_port, ocho, ocho_bin};

const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Probes `srvr` every 5 ms until the answer names a `Mode:` (ZooKeeper serves), the way
/// `ocho init` itself probes before it says "zookeeper ready"; returns the time since `t0`.
fn until_serving(addr: &str, t0: Instant) -> Duration {
    let end = t0 + Duration::from_secs(60);
    loop {
        if let Ok(mut conn) = TcpStream::connect(addr) {
            let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
            let mut answer = String::new();
            if conn.write_all(b"srvr").is_ok()
                && conn.read_to_string(&mut answer).is_ok()
                && answer.lines().any(|l| l.starts_with("Mode: "))
            {
                return t0.elapsed();
            }
        }
        assert!(Instant::now() < end, "zookeeper at {addr} never served");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The JVM's command line as `ocho init` ran it (`/proc/<pid>/cmdline`).
fn cmdline(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The baseline: the JVM command line and `zoo.cfg` that init used, started directly with a
/// data directory and port of its own, until `srvr` names a mode.
fn jvm_alone(argv: &[String], zoo_cfg: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg: String = zoo_cfg
        .lines()
        .map(|line| match line.split_once('=') {
            Some(("dataDir", _)) => format!("dataDir={}\n", dir.path().display()),
            Some(("clientPort", _)) => format!("clientPort={port}\n"),
            _ => format!("{line}\n"),
        })
        .collect();
    let path = dir.path().join("zoo.cfg");
    std::fs::write(&path, cfg).unwrap();
    let (last, args) = argv[1..].split_last().unwrap();
    assert!(last.ends_with("zoo.cfg"), "init's JVM ends with its zoo.cfg: {argv:?}");
    let mut cmd = Command::new(&argv[0]);
    cmd.current_dir("/").args(args).arg(&path);
    let t0 = Instant::now();
    let _java = Proc::spawn("java", cmd);
    until_serving(&format!("127.0.0.1:{port}"), t0).as_secs_f64() * 1e3
}

fn init_cmd(dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = ocho();
    cmd.args(["init", "--no-portal", "--zk-bind", "127.0.0.1", "--zk-heap", "256m"])
        .args(["--zk-port", &port.to_string()])
        .arg("--zk-data")
        .arg(dir);
    cmd
}

fn main() {
    support::require_zookeeper();
    let bin = ocho_bin();
    let size = std::fs::metadata(&bin).unwrap().len();
    println!("binary: {bin}");
    println!("size: {:.2} MB ({size} bytes; target <= 10 MB)", size as f64 / 1e6);

    let (mut jvm, mut ready, mut stop, mut again, mut rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let t0 = Instant::now();
        let mut init = Proc::spawn("init", init_cmd(dir.path(), port));
        init.wait_for_line("zookeeper ready on", Duration::from_secs(60));
        ready.push(t0.elapsed().as_secs_f64() * 1e3);
        rss.push(support::memory(init.pid() as u32));

        let started = init.wait_for_line("init: started zookeeper (pid ", Duration::from_secs(5));
        let java: i32 =
            started.rsplit("(pid ").next().unwrap().trim_end_matches(')').parse().unwrap();
        // The baseline of this run, started once init is gone (two JVMs at once would share
        // the CPU): init's own JVM command and configuration.
        let (argv, zoo_cfg) =
            (cmdline(java), std::fs::read_to_string(dir.path().join("zoo.cfg")).unwrap());
        let t1 = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(java), Signal::SIGKILL).unwrap();
        init.wait_for_nth("ready again", 2, Duration::from_secs(60), |l| {
            l.contains("zookeeper ready on")
        });
        again.push(t1.elapsed().as_secs_f64() * 1e3);

        let t2 = Instant::now();
        init.signal(Signal::SIGTERM);
        init.expect_exit(Duration::from_secs(30));
        stop.push(t2.elapsed().as_secs_f64() * 1e3);
        jvm.push(jvm_alone(&argv, &zoo_cfg));
    }
    let (jvm, ready) = (median(jvm), median(ready));
    println!(
        "jvm alone, init's command line and zoo.cfg, start -> srvr Mode: (baseline): {jvm:.0} ms (median of {RUNS})"
    );
    println!(
        "ocho init exec -> 'zookeeper ready': {ready:.0} ms, {:+.0} ms vs baseline (target: baseline + <= 100 ms)",
        ready - jvm
    );
    rss.sort_by_key(|m| m.rss);
    println!("RSS of ocho init while zookeeper runs: {} (target <= 5 MB)", rss[rss.len() / 2]);
    println!("SIGTERM -> exit: {:.0} ms (target <= 1000 ms)", median(stop));
    println!(
        "zookeeper SIGKILLed -> ready again: {:.0} ms, includes the 1 s (+-10%) first backoff (target <= 2500 ms)",
        median(again)
    );
}
