//! Output formats, as kubectl users type them: `-o json|yaml|wide|name` on the query tools
//! against a real ZooKeeper with in-test pods, `-j` as the short form of `-o json`, deploy's
//! overrides on `-O` (and `-o FILE` refused with a hint), and the usage errors of bad formats.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::tools_support;

use serde_json::{Value, json};
use tools_support::{FakePod, Zk, run};

/// `fmt.web`: a leader and a follower; `fmt.db`: a leader whose process is stopped.
struct World {
    zk: Zk,
    _pods: Vec<FakePod>,
}

fn world(ns: &str) -> World {
    let zk = Zk::new(&format!("o-{ns}"));
    let leader = FakePod::answering(
        "127.0.0.1",
        "running",
        "leader",
        json!({"status": "probe ok", "ports": {"8080": 31000}, "public": "203.0.113.9",
               "task": "web-1"}),
    );
    let follower = FakePod::answering("127.0.0.1", "running", "follower", json!({}));
    let db = FakePod::answering("127.0.0.1", "stopped", "leader", json!({"status": "probe ok"}));
    zk.register(&format!("{ns}.web"), 1, &leader.addr, json!({}));
    zk.register(&format!("{ns}.web"), 2, &follower.addr, json!({}));
    zk.register(&format!("{ns}.db"), 0, &db.addr, json!({}));
    World { zk, _pods: vec![leader, follower, db] }
}

#[test]
fn ls_and_grep_in_every_format() {
    let w = world("fmt");
    let zk = w.zk.hosts.as_str();

    // -o json is -j: the same value (one line: stdout is a pipe here).
    let (code, json_out, err) = run(&["ls", "--zk", zk, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let (_, j_out, _) = run(&["ls", "--zk", zk, "-j"]);
    assert_eq!(json_out, j_out);
    assert_eq!(json_out.lines().count(), 1, "{json_out}");
    let value: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(value["fmt.web"]["running"], 2);
    assert_eq!(value["fmt.web"]["leader"], "fmt.web #1");

    // YAML carries the same value.
    let (code, yaml_out, _) = run(&["ls", "--zk", zk, "-o", "yaml"]);
    assert_eq!(code, 0);
    assert!(yaml_out.starts_with("fmt.db:\n"), "{yaml_out}");
    assert_eq!(serde_yaml::from_str::<Value>(&yaml_out).unwrap(), value);

    // Names: one cluster per line, sorted; pods for grep.
    let (_, names, _) = run(&["ls", "--zk", zk, "-o", "name"]);
    assert_eq!(names, "fmt.db\nfmt.web\n");
    let (_, names, _) = run(&["grep", "--zk", zk, "-o", "name"]);
    assert_eq!(names, "fmt.db #0\nfmt.web #1\nfmt.web #2\n");

    // Text: no leading empty line; a stopped cluster does not show its stale probe.
    let (_, text, _) = run(&["ls", "--zk", zk]);
    assert!(text.starts_with("3 pods, 100% replies ->\n\n"), "{text:?}");
    let db_row = text.lines().find(|l| l.starts_with("fmt.db")).unwrap();
    assert!(db_row.contains("0/1") && db_row.contains("* no process running"), "{db_row}");
    assert_eq!(value["fmt.db"]["status"], "* no process running");

    // Wide: the extra columns, and the plain text's columns unchanged.
    let (_, wide, _) = run(&["ls", "--zk", zk, "-o", "wide"]);
    let header = wide.lines().nth(2).unwrap();
    assert!(header.contains("leader") && header.contains("unanswered"), "{wide}");
    let web_row = wide.lines().find(|l| l.starts_with("fmt.web")).unwrap();
    assert!(web_row.contains("fmt.web #1") && web_row.trim_end().ends_with('0'), "{web_row}");
    let (_, grep_wide, _) = run(&["grep", "--zk", zk, "-o", "wide", "fmt.web"]);
    let row = grep_wide.lines().find(|l| l.starts_with("fmt.web #1")).unwrap();
    for cell in ["203.0.113.9", "8080→31000", "web-1", "probe ok"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    let (_, grep_text, _) = run(&["grep", "--zk", zk, "fmt.web"]);
    assert!(!grep_text.contains("203.0.113.9"), "{grep_text}");
    assert!(grep_text.starts_with("<fmt.web> -> 100% replies"), "{grep_text:?}");
}

#[test]
fn bad_formats_are_usage_errors_before_anything_is_contacted() {
    // No ZooKeeper at all: a usage error must come first, with exit 2.
    let nowhere = support::refusing_addr();
    for (args, needle) in [
        (vec!["ls", "--zk", nowhere, "-o", "xml"], "-o takes json, yaml, wide or name"),
        (vec!["grep", "--zk", nowhere, "-j", "-o", "yaml"], "-j is -o json"),
        (vec!["kill", "-o", "table", "--force", "x"], "-o takes json, yaml, wide or name"),
        (vec!["deploy", "--dry-run", "-o", "over.yml", "x.yml"], "-O/--overrides"),
        (vec!["log", "--zk", nowhere, "-f", "-o", "name"], "-o name"),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        // One prefix style: `ocho <mode>: `, the mode named once.
        let prefix = format!("ocho {}: ", args[0]);
        assert!(err.starts_with(&prefix), "{args:?}: {err}");
        assert!(!err[prefix.len()..].starts_with(&format!("{}: ", args[0])), "{err}");
    }
}

#[test]
fn deploy_dry_run_prints_yaml_json_or_names_and_takes_overrides_on_dash_capital_o() {
    let dir = tempfile::tempdir().unwrap();
    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/definitions/good/minimal.yaml");
    let over = dir.path().join("over.yml");
    std::fs::write(&over, "default.a:\n  extra: 7\n").unwrap();
    let over = over.to_str().unwrap();

    let (code, yaml, err) = run(&["deploy", "--dry-run", "-O", over, "-o", "yaml", good]);
    assert_eq!(code, 0, "{err}");
    let rcs: Value = serde_yaml::from_str(&yaml).unwrap();
    let rc = &rcs[0];
    assert_eq!(rc["kind"], "ReplicationController");
    let (code, json_out, _) = run(&["deploy", "--dry-run", "-O", over, "-o", "json", good]);
    assert_eq!(code, 0);
    let rcs_json: Value = serde_json::from_str(&json_out).unwrap();
    // The same object in both formats (the RC names differ: each run draws its suffix).
    let container = "/spec/template/spec/containers/0";
    for field in ["image", "ports", "env/8"] {
        let at = format!("{container}/{field}");
        assert_eq!(rcs_json[0].pointer(&at), rc.pointer(&at), "{at}");
    }
    let (_, names, _) = run(&["deploy", "--dry-run", "-o", "name", good]);
    assert_eq!(names.lines().count(), 1, "{names}");
    assert!(names.starts_with("ochopod-default-a-"), "{names}");

    // The override reached the pod's settings (the `pod` variable).
    let env = rc.pointer(&format!("{container}/env")).unwrap().as_array().unwrap();
    let pod = env.iter().find(|e| e["name"] == "pod").unwrap();
    assert_eq!(pod["value"], r#"{"extra":7}"#);
}

#[test]
fn through_the_portal_json_is_indented_for_a_client_on_a_terminal() {
    let w = world("fmtp");
    let portal = crate::support::portal::Portal::start(&[], &[("OCHOPOD_ZK", w.zk.hosts.as_str())]);
    let out = |headers: &[(&str, &str)]| {
        let reply = portal.shell("ls -o json", headers);
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["out"].as_str().unwrap().to_string()
    };
    // The tool writes to a pipe: one line, unless the client says it reads on a terminal.
    let piped = out(&[]);
    assert_eq!(piped.lines().count(), 1, "{piped}");
    let shown = out(&[("X-Terminal", "1")]);
    assert!(shown.starts_with("{\n  \"fmtp.db\": {\n"), "{shown}");
    let same: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(same, serde_json::from_str::<Value>(&piped).unwrap());
}
