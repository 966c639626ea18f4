//! `ls -w` and `grep -w` against a real ZooKeeper with in-test pods: the first drawing, a
//! redraw when a pod registers (a ZooKeeper watch) and when a pod's `/info` changes, nothing
//! printed while nothing changes, the end after `--watch-for`, and through the portal a watch
//! streamed until the client leaves, which kills it.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::tools_support;

use serde_json::json;
use support::portal::{Events, Portal, running, wait_until};
use support::{DEADLINE, Proc, ocho};
use tools_support::{FakePod, Zk, run};

#[test]
fn ls_redraws_when_a_pod_registers_or_changes_and_only_then() {
    let zk = Zk::new("w-ls");
    let first = FakePod::answering("127.0.0.1", "running", "leader", json!({"status": "ok"}));
    zk.register("w.web", 1, &first.addr, json!({}));

    let mut cmd = ocho();
    cmd.args(["ls", "-w", "--watch-for", "60", "--zk", &zk.hosts]);
    let watch = Proc::spawn("ls -w", cmd);
    watch.wait_for("the first drawing", DEADLINE, |l| l.starts_with("1 pod, 100% replies"));
    let row = watch.wait_for("the cluster's row", DEADLINE, |l| l.starts_with("w.web"));
    assert!(row.contains("1/1"), "{row}");

    // A second pod registers: seen through the watch, the table is drawn again.
    let second = FakePod::answering("127.0.0.1", "running", "follower", json!({}));
    zk.register("w.web", 2, &second.addr, json!({}));
    watch.wait_for("the redraw's marker", DEADLINE, |l| {
        l.starts_with("--- ") && l.ends_with(" UTC ---")
    });
    watch.wait_for("the new count", DEADLINE, |l| l.starts_with("2 pods, 100% replies"));

    // A process stops: only `/info` says so, which the watch asks again by itself.
    second.set("process", json!("stopped"));
    watch.wait_for("the row with one pod running", DEADLINE, |l| {
        l.starts_with("w.web") && l.contains("1/2")
    });
    let marks = watch.lines().iter().filter(|l| l.starts_with("--- ")).count();
    assert!(marks >= 2, "a redraw for each change: {}", watch.tail());
}

#[test]
fn a_watch_without_changes_draws_once_and_ends_after_watch_for() {
    let zk = Zk::new("w-once");
    let pod = FakePod::answering("127.0.0.1", "running", "leader", json!({}));
    zk.register("o.db", 0, &pod.addr, json!({}));
    // Longer than the pods' re-ask period (2 s): rounds happen, nothing is printed again.
    let (code, out, err) = run(&["grep", "-w", "--watch-for", "5", "--zk", &zk.hosts]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("<*> -> 100% replies (1 pod total) ->"), "{out}");
    assert!(!out.contains("--- "), "redrawn without a change: {out}");
    assert_eq!(out.matches("o.db #0").count(), 1, "{out}");
}

#[test]
fn watch_usage_errors() {
    for (args, needle) in [
        (vec!["ls", "--watch-for", "5"], "--watch-for goes with -w"),
        (vec!["grep", "-w", "-o", "json"], "-w redraws text"),
        (vec!["ls", "-w", "--watch-for", "0"], "--watch-for must be a positive number"),
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn through_the_portal_a_watch_streams_each_drawing_until_the_client_leaves() {
    let zk = Zk::new("w-portal");
    let pod = FakePod::answering("127.0.0.1", "running", "leader", json!({}));
    zk.register("p.web", 0, &pod.addr, json!({}));
    let portal = Portal::start(&[], &[("OCHOPOD_ZK", zk.hosts.as_str())]);
    let conn = portal.open(
        "POST",
        "/shell",
        &[("X-Shell", "grep -w p.web"), ("Accept", "application/x-ndjson"), ("X-Timeout", "300")],
        b"",
    );
    let mut events = Events::new(conn);
    let mut next_line = || events.next().unwrap()["line"].as_str().unwrap_or_default().to_string();
    assert!(next_line().starts_with("<p.web> -> 100% replies (1 pod total)"));
    let later = FakePod::answering("127.0.0.1", "running", "follower", json!({}));
    zk.register("p.web", 1, &later.addr, json!({}));
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("p.web #1")) {
        seen.push(next_line());
    }
    assert!(seen.iter().any(|l| l.starts_with("--- ")), "{seen:?}");
    let tools = portal.children();
    assert_eq!(tools.len(), 1);
    drop(events);
    wait_until("the watch to be killed", || !running(tools[0]));
}
