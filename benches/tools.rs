//! `make bench`, issue 5: `grep` and `info` over 200 registered pods (in-process fake Ochopod
//! pods on their own loopback addresses, registrations in a real ZooKeeper), all answering, and
//! with 10% that accept connections and never answer (`-t 1`). Prints figures; asserts nothing
//! about time. The same runs go directly and through `ocho portal` (one re-exec per request).
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "../tests/tools_support/mod.rs"]
mod tools_support;

use std::time::Instant;

use serde_json::json;
use tools_support::{FakePod, Zk};

const PODS: usize = 200;
const RUNS: usize = 9;

fn median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[v.len() - 1])
}

/// Runs `ocho ARGS` RUNS times; prints p50 and max wall time in ms.
fn measure(label: &str, args: &[&str], expect_code: i32) {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let out = support::ocho().args(args).output().unwrap();
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            out.status.code(),
            Some(expect_code),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (p50, max) = median(times);
    println!("{label:<44} p50 {p50:7.1} ms   max {max:7.1} ms   ({RUNS} runs)");
}

/// Leaves `n` sockets in TIME-WAIT on this host: a listener closes each connection first.
fn make_time_wait(n: usize) -> usize {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((conn, _)) = listener.accept() else { break };
            drop(conn);
        }
    });
    for _ in 0..n {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        let _ = std::io::Read::read(&mut conn, &mut [0]);
    }
    closer.join().unwrap();
    let count = |table: &str| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some("06"))
            .count()
    };
    count("/proc/net/tcp") + count("/proc/net/tcp6")
}

/// p50 / p99 in ms of `run` called 48 times by 8 threads at once.
fn concurrent(run: impl Fn() + Sync) -> (f64, f64) {
    let times = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..6 {
                    let t0 = Instant::now();
                    run();
                    times.lock().unwrap().push(t0.elapsed().as_secs_f64() * 1000.0);
                }
            });
        }
    });
    let mut v = times.into_inner().unwrap();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.5), at(0.99))
}

/// `grep` over every pod at concurrency 8, directly and through the portal, with 20,000
/// TIME-WAIT sockets on the host (the disconnect check must not depend on them).
fn time_wait(portal: &support::portal::Portal, hosts: &str) {
    let waiting = make_time_wait(20_000);
    let (d50, d99) = concurrent(|| {
        let out = support::ocho().args(["grep", "--zk", hosts, "bench.ok"]).output().unwrap();
        assert!(out.status.success());
    });
    let (p50, p99) = concurrent(|| {
        assert_eq!(portal.shell("grep bench.ok", &[]).json()["ok"], true);
    });
    println!(
        "grep, {PODS} pods, concurrency 8, {waiting} sockets in TIME-WAIT on the host (48 runs):"
    );
    println!("  direct  p50 {d50:7.1} ms   p99 {d99:7.1} ms");
    println!(
        "  portal  p50 {p50:7.1} ms   p99 {p99:7.1} ms   (p99 {:+.1} ms vs direct; goal <= +50)",
        p99 - d99
    );
}

fn main() {
    support::require_zookeeper();
    let zk = Zk::new("bench");
    // `bench.ok`: 200 answering pods. `bench.mixed`: 180 of them plus 20 that hang.
    let mut pods = Vec::new();
    for i in 0..PODS + PODS / 10 {
        let ip = format!("127.0.{}.{}", 20 + i / 200, 2 + i % 200);
        if i < PODS {
            let state = if i == 0 { "leader" } else { "follower" };
            let pod = FakePod::answering(&ip, "running", state, json!({}));
            zk.register("bench.ok", i as u64, &pod.addr, json!({}));
            if i < PODS - PODS / 10 {
                zk.register("bench.mixed", i as u64, &pod.addr, json!({}));
            }
            pods.push(pod);
        } else {
            let pod = FakePod::hanging(&ip);
            zk.register("bench.mixed", i as u64, &pod.addr, json!({}));
            pods.push(pod);
        }
    }
    println!(
        "bench.ok: {PODS} answering pods; bench.mixed: {PODS} pods, {} of them hang",
        PODS / 10
    );
    let hosts = zk.hosts.as_str();
    for _ in 0..2 {
        let _ = support::ocho().args(["grep", "--zk", hosts, "bench.ok"]).output().unwrap();
    }
    measure(&format!("grep, {PODS} pods, all answer"), &["grep", "--zk", hosts, "bench.ok"], 0);
    measure(&format!("info, {PODS} pods, all answer"), &["info", "--zk", hosts, "bench.ok"], 0);
    measure(
        &format!("grep -j, {PODS} pods, all answer"),
        &["grep", "-j", "--zk", hosts, "bench.ok"],
        0,
    );
    measure(
        &format!("grep, {PODS} pods, 10% hang, -t 1"),
        &["grep", "--zk", hosts, "-t", "1", "bench.mixed"],
        1,
    );
    measure(
        &format!("info, {PODS} pods, 10% hang, -t 1"),
        &["info", "--zk", hosts, "-t", "1", "bench.mixed"],
        1,
    );
    measure(
        &format!("grep, {PODS} pods, --parallel 8"),
        &["grep", "--zk", hosts, "--parallel", "8", "bench.ok"],
        0,
    );
    let portal = support::portal::Portal::start(&[], &[("OCHOPOD_ZK", hosts)]);
    let via = |label: &str, line: &str, ok: bool| {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let t0 = Instant::now();
            let reply = portal.shell(line, &[]).json();
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(reply["ok"], ok, "{label}: {reply}");
        }
        let (p50, max) = median(times);
        println!("{label:<44} p50 {p50:7.1} ms   max {max:7.1} ms   ({RUNS} runs)");
    };
    via(&format!("portal: grep, {PODS} pods, all answer"), "grep bench.ok", true);
    via(&format!("portal: info, {PODS} pods, all answer"), "info bench.ok", true);
    via(&format!("portal: grep, {PODS} pods, 10% hang, -t 1"), "grep -t 1 bench.mixed", false);
    via(&format!("portal: info, {PODS} pods, 10% hang, -t 1"), "info -t 1 bench.mixed", false);
    time_wait(&portal, hosts);
    drop(pods);
}
