//! The operator's tools (`grep`, `info`, `log`, `ls`, `port`, `poll`, `on`, `off`, `reset`,
//! `ping`, `wait`) against a real ZooKeeper with hand-written registrations and in-test HTTP pods,
//! including one pod that hangs and one whose address does not answer.
// See: issue 5

mod support;
mod tools_support;

use serde_json::{Value, json};
use tools_support::{FakePod, Zk, run};

/// A cluster `<ns>.web` with two answering pods (seq 2 leader, seq 10 follower), one that hangs
/// (seq 3) and one that is not there (seq 4); `<ns>.db` with one leader carrying metrics; a stale
/// `<ns>.old` without pods; and an empty registration (a pod caught mid-registration).
struct World {
    zk: Zk,
    pods: Vec<FakePod>,
}

fn world(ns: &str, net: u8) -> World {
    let zk = Zk::new(&format!("t-{ns}"));
    let ip = |n: u8| format!("127.0.{net}.{n}");
    let web = format!("{ns}.web");
    let leader = FakePod::answering(
        &ip(2),
        "running",
        "leader",
        json!({"status": "probe ok (2 pods)", "ports": {"8080": 8080, "5432": 15432},
               "public": "203.0.113.7", "application": "web-é"}),
    );
    let follower = FakePod::answering(&ip(3), "running", "follower", json!({}));
    let hanging = FakePod::hanging(&ip(4));
    let absent = FakePod::absent(&ip(5));
    let db = FakePod::answering(
        &ip(6),
        "running",
        "leader",
        json!({"metrics": {"uptime": "0.52 hours", "pid": 31}, "status": ""}),
    );
    zk.register(&web, 2, &leader.addr, json!({}));
    zk.register(&web, 10, &follower.addr, json!({}));
    zk.register(&web, 3, &hanging.addr, json!({}));
    zk.register(&web, 4, &absent.addr, json!({}));
    zk.register(&format!("{ns}.db"), 0, &db.addr, json!({}));
    zk.put(
        &format!("/ochopod/clusters/{web}/pods/ffffffff-0000-4000-8000-000000000000.0000000099"),
        b"",
    );
    zk.stale_cluster(&format!("{ns}.old"));
    World { zk, pods: vec![leader, follower, hanging, absent, db] }
}

#[test]
fn grep_names_the_pods_that_did_not_answer_and_fails_below_the_threshold() {
    let w = world("grep", 1);
    let (code, out, err) = run(&["grep", "--zk", &w.zk.hosts, "-t", "1", "web"]);
    assert_eq!(
        out,
        "\n<web> -> 50% replies (4 pods total) ->\n\n\
         pod           |  pod IP     |  node    |  process  |  state   \n\
         \x20             |             |          |           |          \n\
         grep.web #2   |  127.0.1.2  |  node-1  |  running  |  leader  \n\
         grep.web #10  |  127.0.1.3  |  node-1  |  running  |  follower\n\
         \n2 pods did not answer: grep.web #3 (timed out), grep.web #4 (connection refused)\n"
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2 of 4 pods replied, 4 needed"), "{err}");
    assert!(err.contains("empty registration"), "{err}");

    let (code, _, _) =
        run(&["grep", "--zk", &w.zk.hosts, "-t", "1", "--min-replies", "50%", "web"]);
    assert_eq!(code, 0);
    let (code, _, _) = run(&["grep", "--zk", &w.zk.hosts, "-t", "1", "--min-replies", "3", "web"]);
    assert_eq!(code, 1);

    let (code, out, _) = run(&["grep", "--zk", &w.zk.hosts, "-t", "1", "-j", "grep.web"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        json!({
            "grep.web #2": {"ip": "127.0.1.2", "node": "node-1", "process": "running", "state": "leader"},
            "grep.web #10": {"ip": "127.0.1.3", "node": "node-1", "process": "running", "state": "follower"},
            "grep.web #3": {"error": "timed out"},
            "grep.web #4": {"error": "connection refused"},
        })
    );
    drop(w.pods);
}
