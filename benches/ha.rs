//! `cargo bench --bench ha`: the highly available proxy, three real `ocho init` members (real
//! ZooKeeper JVMs, real portals) and two real agents, all `OCHO_BIN` (the static binary under
//! `make bench`). Prints, never asserts:
//! - the baseline: `ls` through a member's portal while every member serves (p50);
//! - after `kill -9` of the member leading ZooKeeper: the time to the first `ls` answered
//!   through a surviving portal, and to both agents' sessions resumed (their own log line);
//! - a rolling restart of the three members (SIGTERM, start, ready, one at a time) with one
//!   `ls` every 100 ms against the whole ensemble: calls answered and failed.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/ensemble.rs"]
mod ensemble;
#[path = "../tests/support/pod.rs"]
mod fixture;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use ensemble::{Caller, Ensemble, SLEEPER, START, leader};
use support::portal::Client;
use support::{DEADLINE, free_loopback};

/// One `ls` through a portal: whether it answered with the cluster.
fn ls_ok(portal: &Client) -> bool {
    let reply = portal.shell("ls", &[]);
    reply.status == 200 && {
        let v = reply.json();
        v["ok"] == true && v["out"].as_str().unwrap_or_default().contains("ha.b.web")
    }
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut ens = Ensemble::start();
    let net = free_loopback(2, 1);
    let first = fixture::pod(&ens.hosts(), "ha.b", "web", &net.ips[0], net.port(), &[], SLEEPER);
    first.wait_for_line("leader of ha.b.web", DEADLINE);
    let second = fixture::pod(&ens.hosts(), "ha.b", "web", &net.ips[1], net.port(), &[], SLEEPER);
    second.wait_for_line("registered as", DEADLINE);

    let old = leader(&ens, &[0, 1, 2]);
    let survivor = (0..3).find(|i| *i != old).unwrap();
    let portal = ens.portal(survivor);
    let steady: Vec<Duration> = (0..30)
        .map(|_| {
            let t = Instant::now();
            assert!(ls_ok(&portal), "ls through member {} failed", survivor + 1);
            t.elapsed()
        })
        .collect();
    println!("ha: ls through a member's portal, every member serving: p50 {:?}", p50(steady));

    let killed = Instant::now();
    ens.kill(old);
    let end = killed + START;
    while !ls_ok(&portal) {
        assert!(Instant::now() < end, "no ls answered after the leader's loss");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answered = killed.elapsed();
    for agent in [&first, &second] {
        agent.wait_for_line("zookeeper session resumed", START);
    }
    let resumed = killed.elapsed();
    println!(
        "ha: kill -9 of the ZooKeeper leader member -> first ls answered through a survivor in {:.2}s, both agents' sessions resumed in {:.2}s (re-registrations: {})",
        answered.as_secs_f64(),
        resumed.as_secs_f64(),
        [&first, &second]
            .iter()
            .map(|a| a.lines().iter().filter(|l| l.contains("registered as")).count() - 1)
            .sum::<usize>()
    );
    ens.spawn(old);
    assert!(ens.wait_serving(&[old]), "member {} met a port in use", old + 1);

    // The rolling restart, with a caller as the tests make it.
    let caller = Caller::start(&ens.hosts(), "ha.b.web");
    let rolled = ens.roll();
    let (ok, failed) = caller.stop();
    let failed = failed.len() as u32;
    let total = ok + failed;
    println!(
        "ha: rolling restart of 3 members in {:.1}s, one ls every 100 ms: {ok} of {total} answered ({:.1}%), {failed} failed",
        rolled.as_secs_f64(),
        100.0 * f64::from(ok) / f64::from(total.max(1))
    );
}
