//! `ocho deploy` without an API server behind it: `--dry-run` prints the objects and opens no
//! connection, bad definitions are refused before any call, an unreachable API creates nothing
//! and says so, and globs are expanded in the working directory. The runs against the fake API
//! server live in tests/k8s_tools.rs.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

const ZOOKEEPER: &str = "cluster: zookeeper\nimage: paugamo/k8s-ec2-zookeeper\nports: [2181, 2888, 3888]\nsettings:\n  hello:\n    world: 1234\n";

/// A kubeconfig whose API server is `server`, with a bearer token (never basic auth).
fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
         clusters:\n- name: test\n  cluster:\n    server: {server}\n\
         users:\n- name: test\n  user:\n    token: t0ken\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: ocho\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn deploy(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    support::ocho()
        .arg("deploy")
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("OCHO_ZK_PUBLIC")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A listener that counts the connections made to it.
fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn connections(l: &TcpListener) -> usize {
    std::iter::from_fn(|| l.accept().ok()).count()
}

#[test]
fn dry_run_prints_yaml_and_opens_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("zk.yaml"), ZOOKEEPER).unwrap();
    let (api, url) = listener();
    let cfg = kubeconfig(dir.path(), &url);
    let out = deploy(dir.path(), &cfg, &["zk.yaml", "-p", "3", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("---\napiVersion: v1\nkind: ReplicationController\n"), "{stdout}");
    assert!(stdout.contains("replicas: 3"), "{stdout}");
    assert!(stdout.contains("namespace: ocho\n"), "the context's namespace: {stdout}");
    assert!(stdout.contains("value: ocho-proxy.ocho.svc:2181"), "{stdout}");
    assert!(stdout.contains("name: ochopod-default-zookeeper-"), "{stdout}");
    assert_eq!(connections(&api), 0, "--dry-run must call nothing");
}

#[test]
fn dry_run_json_is_an_array_of_objects() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("zk.yaml"), ZOOKEEPER).unwrap();
    let (api, url) = listener();
    let cfg = kubeconfig(dir.path(), &url);
    let out = deploy(
        dir.path(),
        &cfg,
        &["zk.yaml", "--dry-run", "-j", "--zk-public", "10.0.0.1:2181", "-n", "team.a"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rc = &value.as_array().unwrap()[0];
    assert_eq!(rc["kind"], "ReplicationController");
    assert_eq!(rc["metadata"]["labels"]["ochopod.io/namespace"], "team.a");
    let env = &rc["spec"]["template"]["spec"]["containers"][0]["env"];
    let zk = env.as_array().unwrap().iter().find(|e| e["name"] == "ochopod_zk").unwrap();
    assert_eq!(zk["value"], "10.0.0.1:2181");
    assert_eq!(connections(&api), 0);
}

#[test]
fn globs_are_expanded_by_deploy_in_its_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yml"), "cluster: a\nimage: x\n").unwrap();
    std::fs::write(dir.path().join("b.yml"), "cluster: b\nimage: x\n").unwrap();
    std::fs::write(dir.path().join("c.txt"), "not a definition").unwrap();
    let cfg = kubeconfig(dir.path(), &format!("http://{}", support::refusing_addr()));
    let out = deploy(dir.path(), &cfg, &["*.yml", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("kind: ReplicationController").count(), 2, "{stdout}");
    assert!(stdout.contains("ochopod.io/cluster: a") && stdout.contains("ochopod.io/cluster: b"));

    let out = deploy(dir.path(), &cfg, &["*.json", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("*.json: no file matches"), "{}", text(&out.stderr));
}

#[test]
fn bad_definitions_are_refused_with_file_and_position_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "cluster: web\nimage: x\nprots: [80]\n").unwrap();
    std::fs::write(dir.path().join("caps.yaml"), "cluster: Web\nimage: x\n").unwrap();
    let (api, url) = listener();
    let cfg = kubeconfig(dir.path(), &url);
    let out = deploy(dir.path(), &cfg, &["bad.yaml", "caps.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.yaml: unknown field `prots`"), "{stderr}");
    assert!(stderr.contains("at line 3 column 1"), "{stderr}");
    assert!(!stderr.contains("definition bad.yaml"), "the file named once: {stderr}");
    assert!(stderr.contains("caps.yaml: cluster: \"Web\" is not a DNS label"));
    assert_eq!(text(&out.stdout), "0% success / spawned 0 pods\n");
    assert_eq!(connections(&api), 0, "nothing valid, nothing sent");
}

#[test]
fn an_unreachable_api_creates_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "cluster: a\nimage: x\n").unwrap();
    std::fs::write(dir.path().join("b.yaml"), "cluster: b\nimage: x\n").unwrap();
    let port = support::free_port();
    let cfg = kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let out = deploy(dir.path(), &cfg, &["a.yaml", "b.yaml", "-j"]);
    assert_eq!(out.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = value["a.yaml"]["error"].as_str().unwrap();
    assert!(a.contains("kubernetes: create replicationcontroller ocho/ochopod-default-a-"), "{a}");
    let b = value["b.yaml"]["error"].as_str().unwrap();
    assert!(b.starts_with("not submitted: "), "{b}");
    // It names the definition that hit the wall, not that definition's object as if it were b's.
    assert!(
        b.contains("could not be reached for a.yaml") && !b.contains("ochopod-default-a-"),
        "{b}"
    );
    assert_eq!(value["a.yaml"]["ok"], false);
}

#[test]
fn no_kubernetes_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "cluster: a\nimage: x\n").unwrap();
    let out = deploy(dir.path(), &dir.path().join("missing"), &["a.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("kubernetes configuration: none found"), "{stderr}");
}

#[test]
fn insecure_or_basic_auth_kubeconfigs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "cluster: a\nimage: x\n").unwrap();
    let cfg = kubeconfig(dir.path(), &format!("https://{}", support::refusing_addr()));
    let text0 = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text0.replace("    server:", "    insecure-skip-tls-verify: true\n    server:"),
    )
    .unwrap();
    let out = deploy(dir.path(), &cfg, &["a.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("insecure-skip-tls-verify"), "{}", text(&out.stderr));

    std::fs::write(&cfg, text0.replace("token: t0ken", "username: admin\n    password: secret"))
        .unwrap();
    let out = deploy(dir.path(), &cfg, &["a.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("basic auth"), "{stderr}");
    assert!(!stderr.contains("secret"), "never print the password: {stderr}");
}

#[test]
fn no_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = deploy(dir.path(), &dir.path().join("missing"), &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn context_picks_a_kubeconfig_context_and_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), "cluster: a\nimage: x\n").unwrap();
    let cfg = kubeconfig(dir.path(), &format!("http://{}", support::refusing_addr()));
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "- name: other\n  context:\n    cluster: test\n    user: test\n    namespace: two\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = deploy(dir.path(), &cfg, &["a.yaml", "--dry-run", "--context", "other"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text_of(&out.stdout).contains("namespace: two\n"));
    assert!(text_of(&out.stdout).contains("value: ocho-proxy.two.svc:2181"));

    let out = deploy(dir.path(), &cfg, &["a.yaml", "--context", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text_of(&out.stderr).contains("context nope"), "{}", text_of(&out.stderr));
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What could never run, or what the server's storage would refuse with a 500, is refused before
/// any call, after YAML aliases are expanded, naming the variable and the limit.
#[test]
fn oversized_environment_strings_and_objects_are_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(200 * 1024);
    std::fs::write(
        dir.path().join("settings.yaml"),
        format!("cluster: s\nimage: x\nsettings:\n  blob: {big}\n"),
    )
    .unwrap();
    // 100 KiB once in the file, 16 times in the object: every variable fits, the whole does not.
    let chunk = "y".repeat(100 * 1024);
    let mut aliased = format!("cluster: a\nimage: x\nenv:\n  V0: &big {chunk}\n");
    for i in 1..16 {
        aliased.push_str(&format!("  V{i}: *big\n"));
    }
    std::fs::write(dir.path().join("aliased.yaml"), &aliased).unwrap();
    let fine = format!("cluster: f\nimage: x\nenv:\n  V0: &big {chunk}\n  V1: *big\n");
    std::fs::write(dir.path().join("fine.yaml"), fine).unwrap();
    assert!(aliased.len() < 110 * 1024);

    let (api, url) = listener();
    let cfg = kubeconfig(dir.path(), &url);
    let out = deploy(dir.path(), &cfg, &["settings.yaml", "aliased.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "settings.yaml: env pod (the settings as JSON): 204816 \
             bytes as NAME=value; Linux refuses any environment string over 131072 bytes (128 KiB)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("aliased.yaml: the replicationcontroller: "));
    assert!(stderr.contains("bytes as JSON (aliases expanded); the API server's storage refuses objects over 1572864 bytes (1.5 MiB)"), "{stderr}");
    assert_eq!(text(&out.stdout), "0% success / spawned 0 pods\n");
    assert_eq!(connections(&api), 0, "nothing valid, nothing sent");

    let out = deploy(dir.path(), &cfg, &["fine.yaml", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn image_references_are_checked_against_the_reference_grammar_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up.yaml"), "cluster: web\nimage: Example/Web:1.0\n").unwrap();
    let (api, url) = listener();
    let cfg = kubeconfig(dir.path(), &url);
    let out = deploy(dir.path(), &cfg, &["up.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "up.yaml: image: \"Example/Web:1.0\" is not a valid image \
             reference: repository \"Example/Web\" must be lowercase"
        ),
        "{stderr}"
    );
    assert_eq!(connections(&api), 0);
}
