//! Named tokens with roles and scopes, through the real portal: every tool allowed and refused
//! for each role, `/tools` and `whoami` showing who the caller is, scopes on each tool family
//! (query tools see only their clusters, state-changing tools and deploy refuse before
//! contacting anything), and a tokens file edited under a running portal.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::tools_support;

use serde_json::{Value, json};
use support::portal::Portal;
use tools_support::{FakePod, Zk};

fn sha256(token: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tokens file entry; the token of `name` is `<name>-secret`.
fn entry(name: &str, role: &str, scope: Option<&str>) -> String {
    let mut text = format!("- name: {name}\n  sha256: {}\n  role: {role}\n", sha256(&secret(name)));
    if let Some(scope) = scope {
        text.push_str(&format!("  scope: [\"{scope}\"]\n"));
    }
    text
}

fn secret(name: &str) -> String {
    format!("{name}-secret")
}

fn bearer(name: &str) -> String {
    format!("Bearer {}", secret(name))
}

/// Writes the tokens file the way the kubelet updates a Secret (a new file renamed over).
fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct World {
    zk: Zk,
    prod: FakePod,
    staging: FakePod,
    portal: Portal,
    _dir: tempfile::TempDir,
}

/// `prod.web` and `staging.web`, one answering pod each, and a portal with viewer, operator and
/// admin tokens, plus a scoped operator and a scoped admin (scope `prod.*`).
fn world(chroot: &str) -> World {
    let zk = Zk::new(chroot);
    let net = support::free_loopback(2, 1);
    let prod = FakePod::answering(&net.ips[0], "running", "leader", json!({}));
    let staging = FakePod::answering(&net.ips[1], "running", "leader", json!({}));
    zk.register("prod.web", 1, &prod.addr, json!({}));
    zk.register("staging.web", 1, &staging.addr, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yml");
    let text = [
        entry("vera", "viewer", None),
        entry("otto", "operator", None),
        entry("ada", "admin", None),
        entry("alice", "viewer", Some("prod.*")),
        entry("pete", "operator", Some("prod.*")),
        entry("sam", "admin", Some("prod.*")),
    ]
    .concat();
    std::fs::write(&tokens, text).unwrap();
    let portal = Portal::start(
        &["--tokens-file", tokens.to_str().unwrap()],
        &[("OCHOPOD_ZK", &zk.hosts), ("KUBECONFIG", "/nonexistent/kubeconfig")],
    );
    World { zk, prod, staging, portal, _dir: dir }
}

fn run(portal: &Portal, who: &str, line: &str) -> (u16, Value) {
    let reply = portal.shell(line, &[("Authorization", &bearer(who))]);
    (reply.status, reply.json())
}

/// Every tool, with the least role it needs and a line that runs quickly (an unknown cluster
/// for the state-changing ones: allowed means the tool ran, whatever it then found).
const TOOLS: &[(&str, &str)] = &[
    ("grep nosuch.x", "viewer"),
    ("info nosuch.x", "viewer"),
    ("log nosuch.x", "viewer"),
    ("ls nosuch.x", "viewer"),
    ("status nosuch.x", "viewer"),
    ("port 8080 nosuch.x", "viewer"),
    ("poll nosuch.x", "viewer"),
    ("wait nosuch.x -t 1", "viewer"),
    ("on nosuch.x --force", "operator"),
    ("off nosuch.x --force", "operator"),
    ("reset nosuch.x --force", "operator"),
    ("ping hello nosuch.x --force", "operator"),
    ("scale nosuch.x -f 1", "operator"),
    ("bump nosuch.x -r 2", "operator"),
    ("deploy nosuch.yml", "admin"),
    ("kill nosuch.x --force", "admin"),
    ("exec --force nosuch.x show", "admin"),
    ("audit -n 1", "admin"),
    ("args x", "admin"),
];

#[test]
fn each_role_runs_its_tools_and_is_refused_the_others_with_what_the_line_needed() {
    let w = world("acl-roles");
    let rank = |r: &str| ["viewer", "operator", "admin"].iter().position(|x| *x == r).unwrap();
    // Every tool of the portal is in the table.
    let all = w.portal.request("GET", "/tools", &[("Authorization", &bearer("ada"))], b"").json();
    let names: Vec<&str> =
        all["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in &names {
        assert!(TOOLS.iter().any(|(l, _)| l.split(' ').next() == Some(name)), "{name} untested");
    }
    for (who, role) in [("vera", "viewer"), ("otto", "operator"), ("ada", "admin")] {
        for (line, needs) in TOOLS {
            let (status, body) = run(&w.portal, who, line);
            if rank(role) >= rank(needs) {
                assert_ne!(status, 403, "{who} ({role}) may run {line}: {body}");
                assert!(body.get("code").is_some(), "{line} ran: {body}");
            } else {
                assert_eq!(status, 403, "{who} ({role}) may not run {line}: {body}");
                let err = body["err"].as_str().unwrap();
                let tool = line.split(' ').next().unwrap();
                assert!(
                    err.contains(&format!("{tool} needs the {needs} role; {who} is {role}")),
                    "{err}"
                );
            }
        }
        // help is everyone's; /tools lists what the caller may run, and who it is.
        assert_eq!(run(&w.portal, who, "help").0, 200);
        let tools =
            w.portal.request("GET", "/tools", &[("Authorization", &bearer(who))], b"").json();
        assert_eq!(tools["who"], json!({"name": who, "role": role}), "{tools}");
        let listed: Vec<&str> = tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for (line, needs) in TOOLS {
            let tool = line.split(' ').next().unwrap();
            assert_eq!(
                listed.contains(&tool),
                rank(role) >= rank(needs),
                "{who}: {tool} {listed:?}"
            );
        }
    }
    // The log and the metrics carry the token's name, never the token.
    let log = w.portal.proc.lines().join("\n");
    assert!(log.contains(" vera POST /shell ls "), "{log}");
    assert!(!log.contains("secret"), "a token leaked into the log");
    let metrics =
        w.portal.request("GET", "/metrics", &[("Authorization", &bearer("ada"))], b"").text();
    assert!(metrics.contains("ocho_portal_authenticated_total{token=\"otto\"}"), "{metrics}");
    assert!(metrics.contains("ocho_portal_rejected_total{reason=\"role\"}"), "{metrics}");
    assert!(!metrics.contains("secret"));
    // An unknown token is refused outright.
    assert_eq!(w.portal.shell("ls", &[("Authorization", "Bearer nobody")]).status, 403);
    drop(w.zk);
}

#[test]
fn a_scope_limits_what_each_tool_family_sees_and_touches() {
    let w = world("acl-scope");
    // Query tools: only the clusters inside the scope.
    for line in ["ls -j", "grep -j", "info", "wait -j -t 5"] {
        let (status, body) = run(&w.portal, "alice", line);
        let out = body["out"].as_str().unwrap();
        assert_eq!(status, 200, "{line}: {body}");
        assert!(out.contains("prod.web"), "{line}: {out}");
        assert!(!out.contains("staging"), "{line} shows an out-of-scope cluster: {out}");
        let (_, all) = run(&w.portal, "vera", line);
        assert!(all["out"].as_str().unwrap().contains("staging.web"), "{line}: {all}");
    }
    // State-changing tools: out-of-scope globs refused before any pod is contacted.
    let before = w.staging.seen().len();
    for line in [
        "ping hello staging.web --force",
        "ping hello * --force",
        "ping hello web --force",
        "off -i 1 staging.*",
        "on -i 1 prod*",
        "reset staging.web --force",
        "scale staging.web -f 2",
        "bump staging.web -r 3",
    ] {
        let (status, body) = run(&w.portal, "pete", line);
        // The tool's usage error (exit 2), answered 400 as the portal's parser answers one.
        assert_eq!((status, body["code"].as_i64()), (400, Some(2)), "{line}: {body}");
        assert!(body["err"].as_str().unwrap().contains("beyond this token's scope"), "{body}");
    }
    for line in ["kill staging.web --force", "kill * -i 1"] {
        let (_, body) = run(&w.portal, "sam", line);
        assert_eq!(body["code"].as_i64(), Some(2), "{line}: {body}");
        assert!(body["err"].as_str().unwrap().contains("beyond this token's scope"), "{body}");
    }
    assert_eq!(w.staging.seen().len(), before, "an out-of-scope pod was contacted");
    // Inside the scope the same tools run.
    let (_, body) = run(&w.portal, "pete", "off prod.web --force");
    assert_eq!(body["code"].as_i64(), Some(0), "{body}");
    assert!(!w.prod.seen().is_empty());
    // The scope reaches the tool through its environment, which the client cannot set.
    let (_, body) = run(&w.portal, "sam", "args --env");
    assert!(body["out"].as_str().unwrap().contains("OCHO_SCOPE"), "{body}");
    let (_, body) = run(&w.portal, "ada", "args --env");
    assert!(!body["out"].as_str().unwrap().contains("OCHO_SCOPE"), "{body}");

    // deploy: the definition's <namespace>.<cluster>, after -n and -s, must be in scope.
    let defs = tempfile::tempdir().unwrap();
    std::fs::write(defs.path().join("web.yml"), "cluster: web\nimage: nginx\nports: [80]\n")
        .unwrap();
    let cli = |line: &[&str]| {
        let out = support::ocho()
            .arg("cli")
            .arg(&w.portal.addr)
            .args(line)
            .current_dir(defs.path())
            .env("OCHOPOD_TOKEN", secret("sam"))
            .env_remove("OCHOPOD_PROXY")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let (code, out, err) = cli(&["deploy", "-n", "staging", "--dry-run", "web.yml"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("staging.web is outside this token's scope"), "{err}");
    let (code, out, err) = cli(&["deploy", "-n", "prod", "--dry-run", "web.yml"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("ochopod.io/cluster: web"), "{out}");
    let (code, _, err) = cli(&["deploy", "-n", "prod", "-s", "x", "--dry-run", "web.yml"]);
    assert_eq!(code, Some(0), "prod.web-x is inside prod.*: {err}");
    // whoami shows the name, role and scope.
    let (code, out, _) = cli(&["whoami"]);
    assert_eq!((code, out.trim()), (Some(0), "sam (admin), scope prod.*"));
    drop(w.zk);
}

#[test]
fn tokens_are_rotated_and_revoked_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yml");
    std::fs::write(&tokens, [entry("bob", "viewer", None), entry("eve", "admin", None)].concat())
        .unwrap();
    let portal = Portal::start(&["--tokens-file", tokens.to_str().unwrap()], &[]);
    let status = |who: &str, line: &str| run(&portal, who, line).0;
    assert_eq!(status("bob", "args x"), 403);
    assert_eq!(status("eve", "args x"), 200);
    // eve removed, bob promoted: both at once.
    write(&tokens, &entry("bob", "admin", None));
    assert_eq!(status("eve", "args x"), 403, "a removed token must stop at once");
    assert_eq!(status("bob", "args x"), 200);
    // A broken file refuses everyone (503), never opens the portal, and says why in the log.
    write(&tokens, "- name: bob\n  role: admin\n");
    assert_eq!(status("bob", "args x"), 503);
    portal.proc.wait_for_line("sha256", support::DEADLINE);
    write(&tokens, &entry("bob", "viewer", None));
    assert_eq!(status("bob", "ls"), 200);
    assert_eq!(status("bob", "args x"), 403);
    // --token-file is one admin named default, next to the named tokens.
    let single = dir.path().join("token");
    std::fs::write(&single, "plain-token\n").unwrap();
    let both = Portal::start(
        &["--token-file", single.to_str().unwrap(), "--tokens-file", tokens.to_str().unwrap()],
        &[],
    );
    let who = |auth: &str| {
        both.request("GET", "/tools", &[("Authorization", auth)], b"").json()["who"].clone()
    };
    assert_eq!(who("Bearer plain-token"), json!({"name": "default", "role": "admin"}));
    assert_eq!(who(&bearer("bob")), json!({"name": "bob", "role": "viewer"}));
}

#[test]
fn a_broken_tokens_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yml");
    std::fs::write(&tokens, "- name: x\n  sha256: 00\n  role: viewer\n").unwrap();
    let out = support::ocho()
        .args(["portal", "--bind", "127.0.0.1:0", "--tokens-file", tokens.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex"));
}
