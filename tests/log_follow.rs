//! `ocho log -f` against real agents (`ocho pod`) and a real ZooKeeper: the last lines of each
//! pod, then its new lines as they come, each prefixed with its pod, run directly and streamed
//! through a real portal by `ocho cli`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::fixture;
use crate::support;

use fixture::{pod, post};
use support::portal::Portal;
use support::{DEADLINE, Proc, free_loopback, ocho, shared_zookeeper};

#[test]
fn log_follow_shows_new_lines_of_every_pod_with_its_prefix_directly_and_through_the_portal() {
    let zk = shared_zookeeper();
    let lb = free_loopback(2, 1);
    let agents: Vec<Proc> = lb
        .ips
        .iter()
        .map(|ip| pod(zk, "follow", "web", ip, lb.port(), &[], &["sleep", "600"]))
        .collect();
    assert_eq!(agents.len(), 2);

    let mut direct = ocho();
    direct.args(["log", "-f", "-n", "2", "follow.web"]).env("OCHOPOD_ZK", zk);
    let direct = Proc::spawn("log -f", direct);
    // Both pods' last two lines come first, prefixed (nothing else writes to their logs yet).
    direct.wait_for_nth("both pods' tails", 4, DEADLINE, |l| l.starts_with("[follow.web #"));
    let prefixes: std::collections::BTreeSet<String> = direct
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("[follow.web #")?.split(']').next().map(String::from))
        .collect();
    assert_eq!(prefixes.len(), 2, "{}", direct.tail());

    let portal = Portal::start(&[], &[("OCHOPOD_ZK", zk)]);
    let mut remote = ocho();
    remote
        .args(["cli", "--timeout", "600", &portal.addr, "log", "-f", "-n", "1", "follow.web"])
        .env_remove("OCHOPOD_PROXY")
        .env_remove("OCHOPOD_TOKEN");
    let remote = Proc::spawn("cli log -f", remote);
    remote.wait_for("a streamed tail", DEADLINE, |l| l.starts_with("[follow.web #"));

    // A new line in one agent's log shows up in both followers, under that pod only.
    for (n, ip) in lb.ips.iter().enumerate() {
        let (status, _, _) = post(&format!("{ip}:{}", lb.port()), "/reset", None);
        assert_eq!(status, 200);
        for follower in [&direct, &remote] {
            follower.wait_for_nth("reset requested over http", n + 1, DEADLINE, |l| {
                l.starts_with("[follow.web #") && l.contains("reset requested over http")
            });
        }
    }
    let shown: Vec<String> =
        remote.lines().into_iter().filter(|l| l.contains("reset requested over http")).collect();
    let pods: std::collections::BTreeSet<&str> =
        shown.iter().map(|l| l.split(']').next().unwrap()).collect();
    assert_eq!(pods.len(), 2, "one new line per pod, each under its own prefix: {shown:?}");
}
