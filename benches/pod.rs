//! `cargo bench --bench pod`: numbers for the Ochopod agent against a real ZooKeeper. Prints, never
//! asserts: idle RSS of the agent, start → registered, and how long a 5-pod cluster takes to be
//! configured after its last pod registered (damper 0), and how long after the leader's own
//! "configured" log timestamp `ocho wait` returns, and `ls` of a 3-pod cluster of real agents
//! through `ocho portal` (the headline figure: ZooKeeper behind a portal re-exec) against the
//! same `ocho ls` run directly. `make bench` sets `OCHO_BIN` to the static musl binary, which
//! then plays every part.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An agent whose stderr lines arrive with their arrival time.
struct Agent {
    child: Child,
    lines: Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Agent {
    fn start(zk: &str, ns: &str, ip: &str, port: u16) -> Agent {
        Agent::start_with(zk, ns, ip, port, &[])
    }

    fn start_with(zk: &str, ns: &str, ip: &str, port: u16, extra: &[&str]) -> Agent {
        // OCHO_BIN measures another build, e.g. the static musl binary of `make static`.
        let bin = std::env::var("OCHO_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ocho").into());
        let mut child = Command::new(bin)
            .env("ochopod_zk", zk)
            .env("ochopod_namespace", ns)
            .env("ochopod_cluster", "bench")
            .args(["pod", "--ip", ip, "--bind", ip, "--port", &port.to_string(), "--grace", "2"])
            .args(extra)
            .args(["--", "sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Agent { child, lines, seen: Vec::new() }
    }

    /// Time of the first line containing `needle`.
    fn when(&mut self, needle: &str) -> Instant {
        if let Some((t, _)) = self.seen.iter().find(|(_, l)| l.contains(needle)) {
            return *t;
        }
        loop {
            let (t, line) = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no line with {needle}"));
            let hit = line.contains(needle);
            self.seen.push((t, line));
            if hit {
                return t;
            }
        }
    }

    fn memory(&self) -> support::Memory {
        support::memory(self.child.id())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let zk = support::ZooKeeper::start();
    // Loopback addresses whose control port is free now (the agents bind ip:port): one for
    // the single pods, one for `wait`, five for the 5-pod cluster, three for `ls`.
    let spot = support::free_loopback(10, 1);
    let port = spot.ports[0];

    // Start → registered, and idle RSS of a configured single-pod cluster.
    let mut registered = Vec::new();
    let mut rss = Vec::new();
    for i in 0..5 {
        let t0 = Instant::now();
        let mut agent = Agent::start(&zk.addr, &format!("one{i}"), &spot.ips[0], port);
        registered.push(agent.when("registered as").duration_since(t0).as_secs_f64() * 1e3);
        agent.when("configured 1 pods");
        // Idle: a few leader ticks after the configuration.
        std::thread::sleep(Duration::from_secs(3));
        rss.push(agent.memory());
    }
    println!("pod: start -> registered, median of 5: {:.1} ms", median(registered));
    rss.sort_by_key(|m| m.rss);
    println!(
        "pod: agent RSS idle (leader, configured), median of 5: {} (target <= 4 MB)",
        rss[rss.len() / 2]
    );

    // A 5-pod cluster: last registration → the leader's "configured 5 pods".
    let mut configured = Vec::new();
    for round in 0..3 {
        let mut agents: Vec<Agent> = (0..5)
            .map(|i| Agent::start(&zk.addr, &format!("five{round}"), &spot.ips[2 + i], port))
            .collect();
        let last = agents.iter_mut().map(|a| a.when("registered as")).max().unwrap();
        let done = agents
            .iter_mut()
            .find_map(|a| {
                a.when("lifecycle: started");
                a.seen
                    .iter()
                    .any(|(_, l)| l.contains("leader of"))
                    .then(|| a.when("configured 5 pods"))
            })
            .unwrap();
        configured.push(done.saturating_duration_since(last).as_secs_f64() * 1e3);
    }
    println!(
        "pod: 5-pod cluster configured after its last registration (damper 0): {}",
        configured.iter().map(|ms| format!("{ms:.0} ms")).collect::<Vec<_>>().join(", ")
    );

    // `ocho wait` started before the pod exists; the pod configures itself after a 1 s damper.
    // Lag: wait's return against the timestamp of the leader's "configured" line in its /log.
    let mut lags = Vec::new();
    for round in 0..5 {
        let cluster = format!("wait{round}.bench");
        let zk_addr = zk.addr.clone();
        let glob = cluster.clone();
        let waiting = std::thread::spawn(move || {
            let out = support::ocho().args(["wait", "--zk", &zk_addr, "-t", "60", &glob]).output();
            (out.unwrap().status.success(), SystemTime::now())
        });
        let mut agent = Agent::start_with(
            &zk.addr,
            &format!("wait{round}"),
            &spot.ips[1],
            port,
            &["--damper", "1"],
        );
        agent.when("configured 1 pods");
        let (ok, returned) = waiting.join().unwrap();
        assert!(ok, "wait failed");
        let log =
            support::ocho().args(["log", "--zk", &zk.addr, "-j", "-l", &cluster]).output().unwrap();
        let log: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
        let line = log[format!("{cluster} #0")]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l.as_str())
            .find(|l| l.contains("configured 1 pods"))
            .unwrap()
            .to_string();
        let since = returned.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        lags.push((since % 86_400_000 - ms_of_day(&line)).rem_euclid(86_400_000) as f64);
    }
    let max = lags.iter().cloned().fold(0.0, f64::max);
    println!(
        "wait: returned after the leader's configured timestamp, median of 5: {:.0} ms, max {max:.0} ms (target < 100 ms)",
        median(lags)
    );

    ls_through_the_portal(&zk.addr, &spot.ips[7..10], port);
}

/// `ls` of a configured 3-pod cluster of real agents: through an open `ocho portal` on a free
/// loopback port (one HTTP request, one re-exec, one ZooKeeper session per call), and run
/// directly, 200 sequential calls each.
fn ls_through_the_portal(zk: &str, ips: &[String], port: u16) {
    const CALLS: usize = 200;
    let mut agents: Vec<Agent> = ips.iter().map(|ip| Agent::start(zk, "three", ip, port)).collect();
    for agent in &mut agents {
        agent.when("registered as");
    }
    agents.iter_mut().find_map(|a| {
        a.when("lifecycle: started");
        a.seen.iter().any(|(_, l)| l.contains("leader of")).then(|| a.when("configured 3 pods"))
    });
    let portal = support::portal::Portal::start(&[], &[("OCHOPOD_ZK", zk)]);
    let through = || {
        let reply = portal.shell("ls -j three.bench", &[]).json();
        assert_eq!(reply["code"], 0, "{reply}");
        assert!(reply["out"].as_str().unwrap().contains("three"), "{reply}");
    };
    let direct = || {
        let out = support::ocho().args(["ls", "-j", "--zk", zk, "three.bench"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let timed = |once: &dyn Fn()| {
        (0..10).for_each(|_| once());
        let mut ms: Vec<f64> = (0..CALLS)
            .map(|_| {
                let t0 = Instant::now();
                once();
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (ms[CALLS / 2], ms[CALLS * 99 / 100])
    };
    let (d50, d99) = timed(&direct);
    let (p50, p99) = timed(&through);
    println!(
        "ls, 3 real agents, {CALLS} sequential calls: direct p50 {d50:.2} ms p99 {d99:.2} ms; \
         through the portal p50 {p50:.2} ms p99 {p99:.2} ms (goal <= 10 ms p50)"
    );
    drop(portal);
    drop(agents);
}

/// Milliseconds since midnight UTC of a `/log` line (`YYYY-MM-DD HH:MM:SS,mmm - …`).
fn ms_of_day(line: &str) -> i64 {
    let clock = &line[11..23];
    let n = |r: std::ops::Range<usize>| clock[r].parse::<i64>().unwrap();
    ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
}
