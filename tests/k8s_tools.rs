//! deploy, kill, scale and bump against the fake Kubernetes API server (tests/support/fake_kube,
//! HTTPS with its own CA, bearer token), a real ZooKeeper (the tools' shared one, a chroot per
//! test) and stand-in Ochopod pods: an "agents" thread registers every Running pod of the fake
//! in ZooKeeper, as `ocho pod` would, with a fake control port that answers 410 to
//! `/control/kill`, and writes the cluster's snapshot as a leader would after configuring.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::tools_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use serde_json::{Value, json};
use support::fake_kube::{FakeKube, FakeOpts, Kubelet, phase};
use tools_support::FakePod;
use zookeeper_client as zkc;

const WEB: &str = "cluster: web\nimage: example/web:1.0\nports: [80]\nsettings:\n  greeting: hi\n";
const DB: &str = "cluster: db\nimage: example/db:1.0\n";
const WAIT: Duration = Duration::from_secs(60);

/// A fake API server for one test. When the test ends (and has not already failed), every
/// request the tools made must have been granted by the proxy's Role (k8s/20-role.yaml).
/// The stand-in agents thread ([`Agents`]) is the test harness, not a tool: its own request
/// (an unfiltered pod list, which no tool makes) is declared here and left out of the check.
struct Checked(FakeKube, std::cell::Cell<bool>);

impl Checked {
    fn harness_lists_pods(&self) {
        self.1.set(true);
    }
}

impl std::ops::Deref for Checked {
    type Target = FakeKube;
    fn deref(&self) -> &FakeKube {
        &self.0
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let granted = role_grants();
        for r in self.0.requests() {
            let harness =
                self.1.get() && r.method == "GET" && r.path == "/api/v1/namespaces/default/pods";
            if harness && r.query.is_empty() {
                continue;
            }
            if let Some(access) = rbac_access(&r.method, &r.path, r.param("watch").is_some()) {
                assert!(
                    granted.contains(&access),
                    "{} {} needs {access:?}: not in the Role",
                    r.method,
                    r.path
                );
            }
        }
    }
}

fn fake(kubelet: Kubelet) -> Checked {
    let kube = FakeKube::start(FakeOpts { kubelet, ..Default::default() })
        .expect("start the fake API server");
    Checked(kube, std::cell::Cell::new(false))
}

/// Runs `ocho ARGS` in `dir` against the fake; returns (code, stdout, stderr).
fn ocho(kube: &FakeKube, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = support::ocho()
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", kube.kubeconfig())
        .env_remove("OCHO_ZK_PUBLIC")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn definitions(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn live(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect()
}

fn label<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> &'a str {
    meta.labels.as_ref().and_then(|l| l.get(key)).map(String::as_str).unwrap_or("")
}

fn replicas(rc: &ReplicationController) -> i32 {
    rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
}

/// Stand-in agents: registers each Running pod of the fake in ZooKeeper under its cluster
/// (from the RC's `ochopod.io/qualified` annotation) with `application` and `task` as
/// `ocho pod` would, behind a fake control port on `127.0.<net>.N` that answers 410; removes
/// registrations of pods that are gone or terminating; writes each cluster's snapshot.
struct Agents {
    pub hosts: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Agents {
    fn start(kube: &Checked, chroot: &str) -> Agents {
        kube.harness_lists_pods();
        let zk = tools_support::Zk::new(chroot);
        let hosts = zk.hosts.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (kubeconfig, flag, zk_hosts) =
            (kube.kubeconfig().to_path_buf(), stop.clone(), hosts.clone());
        // The thread reads the fake through its own API (the same way tools do), so it needs no
        // handle on the FakeKube.
        let thread = std::thread::spawn(move || agents_loop(&kubeconfig, &zk_hosts, &flag));
        Agents { hosts, stop, thread: Some(thread) }
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agents_loop(kubeconfig: &Path, hosts: &str, stop: &AtomicBool) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (addr, chroot) = hosts.split_once('/').unwrap();
    let zk = rt.block_on(zkc::Client::connect(&format!("{addr}/{chroot}"))).unwrap();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let client = rt.block_on(async {
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        kube::Client::try_from(cfg).unwrap()
    });
    let api: kube::Api<Pod> = kube::Api::namespaced(client, "default");
    // pod name → (znode path, uuid, cluster, its fake control port)
    let mut known: BTreeMap<String, (String, String, String, FakePod)> = BTreeMap::new();
    let mut seq = 0u64;
    let persistent = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
    while !stop.load(Ordering::SeqCst) {
        let Ok(list) = rt.block_on(api.list(&Default::default())) else { continue };
        let mut current = BTreeMap::new();
        for pod in list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let app = label(&pod.metadata, "ochopod.io/application").to_string();
            let ns = label(&pod.metadata, "ochopod.io/namespace").to_string();
            let cluster = label(&pod.metadata, "ochopod.io/cluster").to_string();
            let image = pod.spec.as_ref().and_then(|s| s.containers[0].image.clone());
            // A release that "does not start": its pods never register; one whose workload
            // ends at once: they register, and their process is dead.
            let broken = image.as_ref().is_some_and(|i| i.ends_with(":broken"));
            let dead = image.as_ref().is_some_and(|i| i.ends_with(":dead"));
            if app.is_empty()
                || broken
                || phase(&pod) != "Running"
                || pod.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            current.insert(name, (app, ns, cluster, dead));
        }
        for (name, (app, ns, cluster, dead)) in &current {
            if known.contains_key(name) {
                continue;
            }
            seq += 1;
            let fake = FakePod::answering(
                support::free_loopback(1, 1).ip(),
                if *dead { "dead" } else { "running" },
                "leader",
                json!({}),
            );
            fake.state.lock().unwrap().control_status = 410;
            let (ip, port) = fake.addr.rsplit_once(':').unwrap();
            let qualified = format!("{ns}.{cluster}");
            let uuid = format!("00000000-0000-4000-8000-{seq:012}");
            let reg = json!({"cluster": cluster, "namespace": ns, "application": app, "task": name,
                             "port": "8080", "ip": ip, "ports": {"8080": port.parse::<u16>().unwrap()},
                             "seq": seq, "node": "fake-node", "public": "", "fwk": "k8s"});
            let dir = format!("/ochopod/clusters/{qualified}/pods");
            rt.block_on(zk.mkdir(&dir, &persistent)).unwrap();
            let path = format!("{dir}/{uuid}.{seq:010}");
            rt.block_on(zk.create(&path, reg.to_string().as_bytes(), &persistent)).unwrap();
            known.insert(name.clone(), (path, uuid, qualified, fake));
        }
        let gone: Vec<String> =
            known.keys().filter(|n| !current.contains_key(*n)).cloned().collect();
        for name in gone {
            let (path, ..) = known.remove(&name).unwrap();
            let _ = rt.block_on(zk.delete(&path, None));
        }
        let mut snapshots: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
        for (_, uuid, qualified, _) in known.values() {
            snapshots.entry(qualified).or_default().insert(uuid.clone(), json!({}));
        }
        for (qualified, map) in snapshots {
            let path = format!("/ochopod/clusters/{qualified}/snapshot");
            let data = Value::Object(map).to_string();
            if rt.block_on(zk.set_data(&path, data.as_bytes(), None)).is_err() {
                let _ = rt.block_on(zk.create(&path, data.as_bytes(), &persistent));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deploy_creates_one_rc_per_definition_whose_pods_run() {
    let kube = fake(Kubelet::Status);
    let dir = definitions(&[("web.yaml", WEB), ("db.yaml", DB)]);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "*.yaml", "-p", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("100% success / spawned 4 pods\n"), "{out}");
    assert_eq!(out.matches(" created (2 pods)\n").count(), 2, "every RC named: {out}");
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| phase(p) == "Running").count() == 4
    })
    .unwrap();
    let rcs = kube.rcs("default");
    assert_eq!(rcs.len(), 2);
    for rc in &rcs {
        let name = rc.metadata.name.clone().unwrap();
        assert!(name.len() <= 63 && name.starts_with("ochopod-default-"), "{name}");
        assert_eq!(label(&rc.metadata, "ochopod.io/application"), name);
        let env =
            &rc.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap().containers
                [0]
            .env;
        let text = serde_json::to_string(env).unwrap();
        assert!(text.contains("ocho-proxy.default.svc:2181"), "{text}");
        assert!(
            !text.contains("fake-token") && !text.to_uppercase().contains("KUBERNETES"),
            "{text}"
        );
    }
    let posts: Vec<_> = kube.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(posts.iter().all(
        |r| r.method == "POST" && r.path == "/api/v1/namespaces/default/replicationcontrollers"
    ));
}

#[test]
fn dry_run_sends_no_request_to_the_api() {
    let kube = fake(Kubelet::Off);
    let dir = definitions(&[("web.yaml", WEB)]);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind: ReplicationController"));
    assert!(kube.requests().is_empty(), "{:?}", kube.requests());
}

#[test]
fn api_errors_name_the_object_and_keep_the_server_message() {
    let kube = fake(Kubelet::Off);
    let dir = definitions(&[("web.yaml", WEB), ("db.yaml", DB)]);
    kube.fail_next("POST", "/api/v1/namespaces/default/replicationcontrollers", 403, 1);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "db.yaml", "web.yaml"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("web.yaml: ochopod-default-web-"), "{out}");
    assert!(out.ends_with(" created (1 pod)\n50% success / spawned 1 pod\n"), "{out}");
    assert!(
        err.starts_with(
            "db.yaml: kubernetes: create replicationcontroller default/ochopod-default-db-"
        ),
        "{err}"
    );
    assert!(err.contains(": 403 Forbidden: "), "{err}");
    assert_eq!(kube.rcs("default").len(), 1);

    kube.fail_next("POST", "/api/v1/namespaces/default/replicationcontrollers", 422, 1);
    let (code, _, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("web.yaml: kubernetes: create replicationcontroller default/"), "{err}");
    assert!(err.contains(": 422 Invalid: "), "{err}");

    let (code, _, err) =
        ocho(&kube, dir.path(), &["deploy", "web.yaml", "--k8s-namespace", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("404 NotFound: namespaces \"nope\" not found"), "{err}");
}

#[test]
fn a_name_clash_gets_a_new_name_and_one_more_try() {
    let kube = fake(Kubelet::Off);
    let dir = definitions(&[("web.yaml", WEB)]);
    kube.fail_next("POST", "/api/v1/namespaces/default/replicationcontrollers", 409, 1);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let posts: Vec<String> = kube
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.json().unwrap()["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(posts.len(), 2);
    assert_ne!(posts[0], posts[1], "the retry must use a fresh name");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["web.yaml"]["application"], posts[1].as_str());
    assert_eq!(reply["web.yaml"]["ok"], true);
}

/// The RC name `deploy -j` reports for `file`.
fn deployed(kube: &FakeKube, dir: &Path, file: &str, pods: &str) -> String {
    let (code, out, err) = ocho(kube, dir, &["deploy", file, "-p", pods, "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    reply[file]["application"].as_str().unwrap().to_string()
}

fn registered(kube: &FakeKube, agents: &Agents, cluster: &str, n: usize) {
    let hosts = agents.hosts.clone();
    let _ = kube;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, out, _) = tools_support::run(&["ls", "--zk", &hosts, "-j"]);
        let count = serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v[cluster]["total"].as_u64())
            .unwrap_or(0);
        if count as usize == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{cluster}: {count} registered, want {n}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deploy_wait_returns_once_the_pods_are_registered_and_configured() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_deploy_wait");
    let dir = definitions(&[("web.yaml", WEB)]);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["deploy", "web.yaml", "-p", "3", "--wait", "-t", "60", "--zk", &agents.hosts],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("web.yaml: 3/3 pods registered\n"), "{out}");
    assert!(out.ends_with("100% success / spawned 3 pods\n"), "{out}");
}

#[test]
fn deploy_wait_strict_deletes_what_it_created_on_timeout() {
    let kube = fake(Kubelet::Off); // pods never run, so nothing registers
    let zk = tools_support::Zk::new("k8s_deploy_strict");
    let dir = definitions(&[("web.yaml", WEB)]);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["deploy", "web.yaml", "--wait", "--strict", "-t", "5", "--zk", &zk.hosts],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("0 of 1 pod registered, 0 configured after 5s; deleted (--strict)"),
        "{err}"
    );
    let deletes: Vec<_> = kube.requests().into_iter().filter(|r| r.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].json().unwrap()["propagationPolicy"], "Background");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty()).unwrap();
}

#[test]
fn kill_is_graceful_then_deletes_the_rcs_with_background_propagation() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_kill");
    let dir = definitions(&[("web.yaml", WEB)]);
    let app = deployed(&kube, dir.path(), "web.yaml", "2");
    registered(&kube, &agents, "default.web", 2);

    let (code, _, err) = ocho(&kube, dir.path(), &["kill", "default.web", "--zk", &agents.hosts]);
    assert_eq!(code, 2, "whole clusters need --force: {err}");

    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "default.web", "--force", "--zk", &agents.hosts, "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["default.web"]["ok"], true, "{out}");
    assert_eq!(reply["default.web"]["deleted"], json!([app]));
    // Its last pod gone, the cluster left ZooKeeper: `ls`, even with --all, no longer lists it.
    assert_eq!(reply["default.web"]["forgotten"], json!(["default.web"]), "{out}");
    let (_, ls, _) = tools_support::run(&["ls", "--all", "-j", "--zk", &agents.hosts]);
    assert_eq!(ls, "{}\n");
    assert_eq!(reply["default.web"]["graceful"].as_array().unwrap().len(), 2, "{out}");
    let delete = kube.requests().into_iter().find(|r| r.method == "DELETE").unwrap();
    assert_eq!(delete.path, format!("/api/v1/namespaces/default/replicationcontrollers/{app}"));
    assert_eq!(delete.json().unwrap()["propagationPolicy"], "Background");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty() && s.pods("default").is_empty()).unwrap();
}

#[test]
fn kill_finds_rcs_by_label_when_no_pod_registered_and_fails_on_an_empty_match() {
    let kube = fake(Kubelet::Off);
    let zk = tools_support::Zk::new("k8s_kill_label");
    let dir = definitions(&[("web.yaml", WEB)]);
    deployed(&kube, dir.path(), "web.yaml", "2");
    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "*.web", "--force", "--zk", &zk.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty() && s.pods("default").is_empty()).unwrap();

    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "default.nothing", "--force", "--zk", &zk.hosts]);
    assert_eq!(code, 1);
    assert_eq!(out, "0% success / killed 0 pods\n");
    assert!(err.contains("default.nothing: no pods found"), "{err}");
}

#[test]
fn kill_some_pods_removes_them_and_lowers_their_rc() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_kill_i");
    let dir = definitions(&[("web.yaml", WEB)]);
    let app = deployed(&kube, dir.path(), "web.yaml", "3");
    registered(&kube, &agents, "default.web", 3);
    let (_, ls, _) = tools_support::run(&["grep", "default.web", "--zk", &agents.hosts, "-j"]);
    let seq = serde_json::from_str::<Value>(&ls)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .rsplit('#')
        .next()
        .unwrap()
        .to_string();
    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "default.web", "-i", &seq, "--zk", &agents.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "100% success / killed 1 pod\n");
    kube.wait_until(WAIT, |s| {
        s.rc("default", &app).is_some_and(|rc| replicas(rc) == 2)
            && live(&s.pods("default").into_iter().cloned().collect::<Vec<_>>()).len() == 2
    })
    .unwrap();
    assert!(kube.requests().iter().any(|r| r.method == "PATCH" && r.path.ends_with("/scale")));
}

#[test]
fn scale_goes_through_the_scale_subresource_both_ways() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_scale");
    let dir = definitions(&[("web.yaml", WEB)]);
    let app = deployed(&kube, dir.path(), "web.yaml", "1");
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["scale", "default.web", "-f", "@3", "--wait", "--zk", &agents.hosts, "-t", "60"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("100% success (+2 pods)\n"), "{out}");
    assert_eq!(replicas(&kube.rcs("default")[0]), 3);
    assert!(kube.requests().iter().any(|r| r.method == "PATCH"
        && r.path == format!("/api/v1/namespaces/default/replicationcontrollers/{app}/scale")));

    let (code, out, err) =
        ocho(&kube, dir.path(), &["scale", "default.web", "-f", "-2", "--zk", &agents.hosts, "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["default.web"]["delta"], -2);
    kube.wait_until(WAIT, |s| {
        s.rc("default", &app).is_some_and(|rc| replicas(rc) == 1)
            && live(&s.pods("default").into_iter().cloned().collect::<Vec<_>>()).len() == 1
    })
    .unwrap();
    registered(&kube, &agents, "default.web", 1);

    let (code, _, err) =
        ocho(&kube, dir.path(), &["scale", "default.web", "-f", "3", "--zk", &agents.hosts]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn bump_rolls_the_cluster_onto_a_new_rc_with_the_new_tag() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_bump");
    let dir = definitions(&[("web.yaml", WEB)]);
    let old = deployed(&kube, dir.path(), "web.yaml", "2");
    registered(&kube, &agents, "default.web", 2);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["bump", "default.web", "-r", "2.0", "--zk", &agents.hosts, "-t", "60"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.ends_with("100% success (2 pods)\n"), "{out}");
    kube.wait_until(WAIT, |s| {
        let rcs = s.rcs("default");
        rcs.len() == 1
            && rcs[0].metadata.name.as_deref() != Some(old.as_str())
            && live(&s.pods("default").into_iter().cloned().collect::<Vec<_>>()).len() == 2
    })
    .unwrap();
    let rc = kube.rcs("default").remove(0);
    let new = rc.metadata.name.clone().unwrap();
    let image = rc.spec.unwrap().template.unwrap().spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("example/web:2.0"));

    // -j: one object per cluster; a second bump to the same tag rolls onto yet another RC.
    registered(&kube, &agents, "default.web", 2);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["bump", "default.web", "-r", "2.0", "--zk", &agents.hosts, "-t", "60", "-j"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    let web = &reply["default.web"];
    assert_eq!(web["ok"], true, "{out}");
    assert_eq!(web["up"].as_array().map(Vec::len), Some(2), "{out}");
    assert_eq!(web["problems"], json!([]), "{out}");
    let application = web["application"].as_str().unwrap();
    assert!(application.starts_with("ochopod-default-web-") && application != new, "{out}");
}

/// The whole flow with real `ocho pod` agents run by the fake's process kubelet (one process per
/// pod on its own 127.0.0.N, env from the RC template with the downward API resolved):
/// deploy --wait → grep → scale --wait → bump → kill.
#[test]
fn end_to_end_with_real_agents_deploy_grep_scale_bump_kill() {
    let kube = fake(Kubelet::Process);
    let exe = support::ocho_bin();
    kube.register_image("ocho:1.0", &exe);
    kube.register_image("ocho:2.0", &exe);
    let zk = tools_support::Zk::new("k8s_e2e");
    // The agent binds its own pod address so pods can share the control port; `$(POD_IP)` is
    // expanded by the kubelet from the variable deploy defines before the definition's env.
    let web = "cluster: web\nimage: ocho:1.0\nports: [80]\nsettings: {greeting: hi}\n\
               env: {OCHO_BIND: \"$(POD_IP)\"}\nargs: [pod, --, sleep, \"600\"]\n";
    let dir = definitions(&[("web.yaml", web)]);
    let zk_args = ["--zk", zk.hosts.as_str()];
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &[
            "deploy",
            "web.yaml",
            "-p",
            "2",
            "--wait",
            "-t",
            "120",
            "--zk-public",
            &zk.hosts,
            zk_args[0],
            zk_args[1],
        ],
    );
    assert_eq!(code, 0, "deploy: {out}{err}\n{}", describe(&kube));
    assert!(out.contains("web.yaml: 2/2 pods registered\n"), "{out}");
    assert!(out.contains("web.yaml: ready (2 pods running, leader default.web #"), "{out}");
    assert!(out.ends_with("100% success / spawned 2 pods\n"), "{out}");

    let (code, out, err) =
        ocho(&kube, dir.path(), &["grep", "default.web", zk_args[0], zk_args[1], "-j"]);
    assert_eq!(code, 0, "grep: {out}{err}");
    let pods: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pods.as_object().unwrap().len(), 2, "{out}");

    // status joins the pods Kubernetes has with their registrations.
    let (code, out, err) =
        ocho(&kube, dir.path(), &["status", "default.web", "-j", zk_args[0], zk_args[1]]);
    assert_eq!(code, 0, "status: {out}{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let pods = status["default.web"]["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{out}");
    assert!(
        pods.iter().all(|p| p["registered"]["seq"].is_u64() && p["phase"] == "Running"),
        "{out}"
    );

    // The containers' own output through pods/log: each agent logs its start on stderr.
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["log", "--k8s", "default.web", "-n", "200", "-j", zk_args[0], zk_args[1]],
    );
    assert_eq!(code, 0, "log --k8s: {out}{err}");
    let logs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(logs.as_object().unwrap().len(), 2, "{out}");
    for lines in logs.as_object().unwrap().values() {
        let lines = lines.as_array().unwrap_or_else(|| panic!("{out}"));
        assert!(lines.iter().any(|l| l.as_str().unwrap().contains("listening on")), "{out}");
    }

    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["scale", "default.web", "-f", "@3", "--wait", "-t", "120", zk_args[0], zk_args[1]],
    );
    assert_eq!(code, 0, "scale: {out}{err}\n{}", describe(&kube));

    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["bump", "default.web", "-r", "2.0", "-t", "120", zk_args[0], zk_args[1]],
    );
    assert_eq!(code, 0, "bump: {out}{err}\n{}", describe(&kube));
    assert!(out.ends_with("100% success (3 pods)\n"), "{out}");
    let rcs = kube.rcs("default");
    assert_eq!(rcs.len(), 1);
    let image =
        rcs[0].spec.clone().unwrap().template.unwrap().spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("ocho:2.0"));

    // log --k8s -f: each container's stream (follow=true), prefixed with its pod, until the
    // containers end (kill, below).
    let mut follow = support::ocho();
    follow
        .args(["log", "--k8s", "-f", "default.web", "-n", "1", zk_args[0], zk_args[1]])
        .env("KUBECONFIG", kube.kubeconfig())
        .env_remove("OCHO_ZK_PUBLIC");
    let mut follow = support::Proc::spawn("log --k8s -f", follow);
    follow.wait_for_nth("a line of each of the 3 pods", 3, support::DEADLINE, |l| {
        l.starts_with("[default.web #")
    });

    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "default.web", "--force", "-j", zk_args[0], zk_args[1]]);
    assert_eq!(code, 0, "kill: {out}{err}");
    let ended = follow.expect_exit(support::DEADLINE);
    let prefixed: std::collections::BTreeSet<String> = follow
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("[default.web #")?.split(']').next().map(String::from))
        .collect();
    assert_eq!(prefixed.len(), 3, "{}", follow.tail());
    assert!(ended.success() || ended.code() == Some(1), "{ended:?}: {}", follow.tail());
    let reply: Value = serde_json::from_str(&out).unwrap();
    // Registrations of the pods bump removed may linger until their ZooKeeper sessions expire;
    // the three live pods at least were killed gracefully, and only the live RC was deleted.
    assert_eq!(reply["default.web"]["ok"], true, "{out}");
    assert!(reply["default.web"]["graceful"].as_array().unwrap().len() >= 3, "{out}");
    assert_eq!(reply["default.web"]["deleted"].as_array().unwrap().len(), 1, "{out}");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty() && s.pods("default").is_empty()).unwrap();

    // k8s/20-role.yaml against what the tools asked in this whole flow: every request allowed,
    // and no grant the tools never used (least privilege both ways).
    let granted = role_grants();
    let mut used = std::collections::BTreeSet::new();
    for r in kube.requests() {
        let Some(access) = rbac_access(&r.method, &r.path, r.param("watch").is_some()) else {
            continue;
        };
        assert!(
            granted.contains(&access),
            "{} {} needs {access:?}, which the Role does not grant",
            r.method,
            r.path
        );
        used.insert(access);
    }
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(unused.is_empty(), "the Role grants what no tool used: {unused:?}");
}

/// (resource, verb) pairs granted by the proxy's Role.
fn role_grants() -> std::collections::BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/20-role.yaml"))
            .unwrap();
    let role: k8s_openapi::api::rbac::v1::Role = serde_yaml::from_str(&text).unwrap();
    let mut grants = std::collections::BTreeSet::new();
    for rule in role.rules.unwrap() {
        for resource in rule.resources.unwrap() {
            for verb in &rule.verbs {
                grants.insert((resource.clone(), verb.clone()));
            }
        }
    }
    grants
}

/// The RBAC (resource, verb) a request to the core API needs, as the API server's request-info
/// resolver computes it; `None` for non-resource paths (discovery), which every identity may read.
fn rbac_access(method: &str, path: &str, watch: bool) -> Option<(String, String)> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    // <ns>/<resource>[/<name>[/<subresource>]]
    let (resource, named) = match parts.as_slice() {
        [_, resource] => (resource.to_string(), false),
        [_, resource, _] => (resource.to_string(), true),
        [_, resource, _, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((resource, verb.to_string()))
}

fn describe(kube: &FakeKube) -> String {
    kube.pods("default")
        .iter()
        .map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let logs = kube.with_state(|s| s.log_lines("default", &name, "web").join("\n"));
            format!("--- {name} ({}):\n{logs}", phase(p))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bump_strict_rolls_back_when_the_new_pods_never_come_up() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_bump_strict");
    let dir = definitions(&[("web.yaml", WEB)]);
    let old = deployed(&kube, dir.path(), "web.yaml", "2");
    registered(&kube, &agents, "default.web", 2);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["bump", "default.web", "-r", "broken", "--strict", "-t", "5", "--zk", &agents.hosts],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("0 of 1 pod registered, 0 configured after 5s"), "{err}");
    assert!(out.contains(": rolled back: deleted ochopod-default-web-"), "{out}");
    assert!(out.ends_with(&format!(", {old} back to 2\n0% success (0 pods)\n")), "{out}");
    kube.wait_until(WAIT, |s| {
        let rcs = s.rcs("default");
        rcs.len() == 1
            && rcs[0].metadata.name.as_deref() == Some(old.as_str())
            && replicas(rcs[0]) == 2
    })
    .unwrap();
}

/// A registered pod that does not answer is not dropped: it is named, and still removed through
/// Kubernetes with the rest of its RC.
#[test]
fn kill_names_silent_pods_and_still_removes_them() {
    let kube = fake(Kubelet::Status);
    let zk = tools_support::Zk::new("k8s_kill_silent");
    let dir = definitions(&[("web.yaml", WEB)]);
    let app = deployed(&kube, dir.path(), "web.yaml", "1");
    kube.wait_until(WAIT, |s| s.pods("default").iter().any(|p| phase(p) == "Running")).unwrap();
    let task = kube.pods("default")[0].metadata.name.clone().unwrap();
    let silent = FakePod::absent(support::free_loopback(1, 1).ip());
    zk.register("default.web", 7, &silent.addr, json!({"application": app, "task": task}));
    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "default.web", "--force", "-t", "5", "--zk", &zk.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "default.web: deleted {app}\ndefault.web: kept default.web in zookeeper: still \
             registered after 5s: default.web #7\n100% success / killed 1 pod\n"
        )
    );
    assert!(err.contains("default.web: default.web #7: no graceful kill ("), "{err}");
    assert!(err.contains("; deleted through kubernetes"), "{err}");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty() && s.pods("default").is_empty()).unwrap();
}

/// seq → pod name (`task`) of every registration of `cluster`, read from ZooKeeper.
fn tasks(hosts: &str, cluster: &str) -> BTreeMap<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let zk = zkc::Client::connect(hosts).await.unwrap();
        let dir = format!("/ochopod/clusters/{cluster}/pods");
        let mut found = BTreeMap::new();
        for child in zk.list_children(&dir).await.unwrap_or_default() {
            let Ok((data, _)) = zk.get_data(&format!("{dir}/{child}")).await else { continue };
            let reg: Value = serde_json::from_slice(&data).unwrap();
            found.insert(reg["seq"].as_u64().unwrap(), reg["task"].as_str().unwrap().to_string());
        }
        found
    })
}

fn live_names(kube: &FakeKube) -> Vec<String> {
    live(&kube.pods("default")).iter().map(|p| p.metadata.name.clone().unwrap()).collect()
}

/// Removing chosen pods (`kill -i`, `scale` down, `bump`) never makes the RC controller start a
/// replacement: deleting a pod first, with its RC still wanting it, does at once. The chosen pods
/// are the ones that go, and the fake creates exactly the pods the tools asked for.
#[test]
fn removing_chosen_pods_starts_no_replacement_and_removes_exactly_them() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_no_churn");
    let dir = definitions(&[("web.yaml", WEB)]);
    let app = deployed(&kube, dir.path(), "web.yaml", "4");
    registered(&kube, &agents, "default.web", 4);
    let created = || kube.with_state(|s| s.pods_created("default").len());
    assert_eq!(created(), 4);

    // kill -i: the pod with the second seq, not the newest nor the oldest.
    let before = tasks(&agents.hosts, "default.web");
    let (&seq, victim) = before.iter().nth(1).unwrap();
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["kill", "default.web", "-i", &seq.to_string(), "--zk", &agents.hosts],
    );
    assert_eq!(code, 0, "{out}{err}");
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().all(|p| p.metadata.name.as_ref() != Some(victim))
            && s.rc("default", &app).is_some_and(|rc| replicas(rc) == 3)
    })
    .unwrap();
    assert_eq!(created(), 4, "a replacement pod was created");
    assert_eq!(live_names(&kube).len(), 3);
    assert!(!tasks(&agents.hosts, "default.web").contains_key(&seq), "still registered");
    assert_eq!(kube.with_state(|s| replicas(s.rc("default", &app).unwrap())), 3);

    // scale down by 2: the two newest by seq go, nothing else.
    let before = tasks(&agents.hosts, "default.web");
    let newest: Vec<&String> = before.values().rev().take(2).collect();
    let (code, out, err) =
        ocho(&kube, dir.path(), &["scale", "default.web", "-f", "-2", "--zk", &agents.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    let left = live_names(&kube);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(newest.iter().all(|n| !left.contains(n)), "{newest:?} should be gone: {left:?}");
    assert_eq!(created(), 4, "a replacement pod was created");

    // bump --step 1 with two pods: exactly two new pods, and no old one outlives the roll.
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["scale", "default.web", "-f", "@2", "--wait", "--zk", &agents.hosts],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(created(), 5);
    let old = live_names(&kube);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["bump", "default.web", "-r", "2.0", "--zk", &agents.hosts, "-t", "60"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(created(), 7, "bump made replacements: {}", describe(&kube));
    let now = live_names(&kube);
    assert!(old.iter().all(|n| !now.contains(n)), "old pods left: {now:?}");
    assert!(
        tasks(&agents.hosts, "default.web").values().all(|t| now.contains(t)),
        "an old pod is still registered"
    );
}

/// A typo in `verbatim` is refused by the server, naming its path, and nothing is created; a
/// real field there reaches the RC.
#[test]
fn a_verbatim_typo_is_an_error_naming_its_path() {
    let kube = fake(Kubelet::Off);
    let typo = format!("{WEB}verbatim:\n  spec:\n    nodeSelectr: {{disk: ssd}}\n");
    let good = "cluster: db\nimage: example/db:1.0\nverbatim:\n  spec:\n    nodeSelector: {disk: ssd}\n    tolerations: [{key: k, operator: Exists}]\n";
    let dir = definitions(&[("web.yaml", &typo), ("db.yaml", good)]);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "db.yaml"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("web.yaml: kubernetes: create replicationcontroller default/")
            && err.contains(
                ": 400 BadRequest: ReplicationController in version \"v1\" cannot be handled as a \
                 ReplicationController: strict decoding error: unknown field \
                 \"spec.template.spec.nodeSelectr\""
            ),
        "{err}"
    );
    let rcs = kube.rcs("default");
    assert_eq!(rcs.len(), 1, "only db.yaml's RC");
    let spec = rcs[0].spec.clone().unwrap().template.unwrap().spec.unwrap();
    assert_eq!(spec.node_selector.unwrap()["disk"], "ssd");
    assert_eq!(spec.tolerations.unwrap().len(), 1);
    let post = kube.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.param("fieldValidation"), Some("Strict"));
}

/// The server's warnings reach the operator (stderr, and `-j`); RC names are DNS labels, so a
/// deploy draws none of the real server's dotted-name warnings.
#[test]
fn server_warnings_reach_the_operator_and_rc_names_draw_none() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_warnings");
    let dir = definitions(&[("web.yaml", WEB)]);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "-p", "1", "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["web.yaml"]["warnings"], json!([]), "{out}");
    assert!(!err.contains("warning"), "{err}");
    let app = reply["web.yaml"]["application"].as_str().unwrap().to_string();
    assert!(!app.contains('.'), "{app}");
    registered(&kube, &agents, "default.web", 1);

    let text = "autoscaling/v1 Scale is watched by an admission policy";
    kube.warn("PATCH", "/api/v1/namespaces/default/replicationcontrollers/", text);
    let (code, out, err) =
        ocho(&kube, dir.path(), &["scale", "default.web", "-f", "+1", "--zk", &agents.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains(&format!("default.web: warning: {text}\n")), "{err}");
    let (code, out, err) =
        ocho(&kube, dir.path(), &["scale", "default.web", "-f", "+1", "--zk", &agents.hosts, "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["default.web"]["warnings"], json!([text]), "{out}");
}

/// Pods that register but whose workload is dead end the wait at once, and say so; what is left
/// behind or rolled back is named.
#[test]
fn waits_give_up_early_on_dead_pods_and_name_what_they_leave() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_dead");
    let dead = "cluster: web\nimage: example/web:dead\n";
    let dir = definitions(&[("dead.yaml", dead), ("web.yaml", WEB)]);
    // A timeout this test never reaches: only giving up early lets it finish.
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["deploy", "dead.yaml", "-p", "2", "--wait", "-t", "3600", "--zk", &agents.hosts],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("2 of 2 pods registered, ")
            && err.contains(" configured, 2 dead: gave up early, the new pods are dead"),
        "{err}"
    );
    assert!(err.contains("is left behind (without --strict)"), "{err}");
    assert!(
        out.contains("dead.yaml: ochopod-default-web-") && out.contains(" left behind (2 pods)\n"),
        "{out}"
    );
    assert!(out.ends_with("0% success / spawned 2 pods\n"), "{out}");
    let (code, out, err) =
        ocho(&kube, dir.path(), &["kill", "default.web", "--force", "--zk", &agents.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("default.web: deleted ochopod-default-web-"), "{out}");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty() && s.pods("default").is_empty()).unwrap();
    registered(&kube, &agents, "default.web", 0);

    let old = deployed(&kube, dir.path(), "web.yaml", "2");
    registered(&kube, &agents, "default.web", 2);
    let (code, out, err) = ocho(
        &kube,
        dir.path(),
        &["bump", "default.web", "-r", "dead", "--strict", "-t", "3600", "--zk", &agents.hosts],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(" configured, 1 dead: gave up early"), "{err}");
    assert!(out.contains(&format!(", {old} back to 2\n")), "{out}");
    kube.wait_until(WAIT, |s| {
        let rcs = s.rcs("default");
        rcs.len() == 1 && rcs[0].metadata.name.as_deref() == Some(old.as_str())
    })
    .unwrap();
}

/// `status` joins what Kubernetes knows with ZooKeeper: registered pods with their seq and
/// state, and every pod that never registered with the reason Kubernetes gives (the
/// scheduler's Unschedulable, the kubelet's ErrImagePull and their events, a running pod whose
/// agent is silent); a scoped run sees only its clusters. The Role check of `fake` covers the
/// pod and event lists.
#[test]
fn status_w_redraws_as_a_cluster_comes_up() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_status_w");
    let dir = definitions(&[("web.yaml", WEB)]);
    let mut cmd = support::ocho();
    cmd.args(["status", "-w", "--watch-for", "120", "web", "--zk", &agents.hosts])
        .current_dir(dir.path())
        .env("KUBECONFIG", kube.kubeconfig())
        .env_remove("OCHO_ZK_PUBLIC");
    let watch = support::Proc::spawn("status -w", cmd);
    watch.wait_for("the first drawing", WAIT, |l| l.contains("no pods found"));
    deployed(&kube, dir.path(), "web.yaml", "2");
    watch.wait_for("both pods registered", WAIT, |l| {
        l.contains("default.web -> 2/2 pods registered")
    });
    assert!(watch.lines().iter().any(|l| l.starts_with("--- ")), "{}", watch.tail());
}

#[test]
fn status_shows_every_pod_kubernetes_has_and_why_unregistered_ones_did_not_register() {
    let kube = fake(Kubelet::Status);
    kube.refuse_image("example/db:9.9");
    let agents = Agents::start(&kube, "k8s_status");
    let cache = "cluster: cache\nimage: example/cache:1.0\nverbatim:\n  spec:\n    nodeSelector: {disk: ssd}\n";
    let dir = definitions(&[
        ("web.yaml", WEB),
        ("db.yaml", "cluster: db\nimage: example/db:9.9\n"),
        ("cache.yaml", cache),
        ("mute.yaml", "cluster: mute\nimage: example/mute:broken\n"),
    ]);
    for (file, pods) in
        [("web.yaml", "2"), ("db.yaml", "1"), ("cache.yaml", "1"), ("mute.yaml", "1")]
    {
        deployed(&kube, dir.path(), file, pods);
    }
    registered(&kube, &agents, "default.web", 2);
    let waiting = |p: &&Pod, reason: &str| {
        p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).any(|c| {
            c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.as_deref())
                == Some(reason)
        })
    };
    kube.wait_until(WAIT, |s| {
        let pods = s.pods("default");
        let of = |c: &str| {
            pods.iter()
                .copied()
                .filter(|p| label(&p.metadata, "ochopod.io/cluster") == c)
                .collect::<Vec<_>>()
        };
        of("db").iter().any(|p| waiting(p, "ErrImagePull"))
            && of("cache").iter().any(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.conditions.iter().flatten())
                    .any(|c| c.type_ == "PodScheduled" && c.status == "False")
            })
            && of("mute").iter().any(|p| phase(p) == "Running")
    })
    .unwrap();

    let (code, out, err) = ocho(&kube, dir.path(), &["status", "-j", "--zk", &agents.hosts]);
    assert_eq!(code, 1, "unregistered pods make status fail: {out}{err}");
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let web = &status["default.web"];
    assert_eq!(web["rcs"][0]["image"], "example/web:1.0", "{out}");
    assert_eq!(web["rcs"][0]["desired"], 2, "{out}");
    let pods = web["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{out}");
    for p in pods {
        assert!(p["registered"]["seq"].is_u64(), "{out}");
        assert_eq!(p["registered"]["state"], "leader", "{out}");
        assert_eq!(
            (&p["phase"], &p["state"], &p["not_registered"]),
            (&json!("Running"), &json!("running"), &Value::Null),
            "{out}"
        );
    }
    let only = |cluster: &str| -> Value {
        let pods = status[cluster]["pods"].as_array().unwrap_or_else(|| panic!("{cluster}: {out}"));
        assert_eq!(pods.len(), 1, "{out}");
        assert!(pods[0]["registered"].is_null(), "{out}");
        pods[0].clone()
    };
    let db = only("default.db");
    assert_eq!((&db["state"], &db["reason"]), (&json!("waiting"), &json!("ErrImagePull")), "{out}");
    assert!(db["not_registered"].as_str().unwrap().starts_with("ErrImagePull: "), "{out}");
    let reasons: Vec<&str> =
        db["events"].as_array().unwrap().iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert!(reasons.contains(&"Failed"), "{out}");
    let cache = only("default.cache");
    assert!(
        cache["not_registered"]
            .as_str()
            .unwrap()
            .starts_with("Unschedulable: 0/1 nodes are available"),
        "{out}"
    );
    assert_eq!(cache["events"][0]["reason"], "FailedScheduling", "{out}");
    let mute = only("default.mute");
    assert!(mute["not_registered"].as_str().unwrap().contains("agent has not registered"), "{out}");

    // Text: one table per cluster, the reason in the ochopod column, the events after it.
    let (code, out, err) = ocho(&kube, dir.path(), &["status", "db", "--zk", &agents.hosts]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("default.db -> 0/1 pod registered"), "{out}");
    assert!(out.contains("not registered: ErrImagePull: "), "{out}");
    assert!(out.contains(": Warning Failed (x"), "{out}");
    let (code, out, err) = ocho(&kube, dir.path(), &["status", "web", "--zk", &agents.hosts]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("default.web -> 2/2 pods registered"), "{out}");

    // A scoped token sees only its clusters, from Kubernetes as from ZooKeeper.
    let out = support::ocho()
        .args(["status", "-j", "--zk", &agents.hosts])
        .current_dir(dir.path())
        .env("KUBECONFIG", kube.kubeconfig())
        .env("OCHO_SCOPE", r#"["default.db"]"#)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let scoped: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(scoped.as_object().unwrap().keys().collect::<Vec<_>>(), ["default.db"], "{text}");

    // Bad input: a clear error and exit 2.
    let (code, _, err) = ocho(&kube, dir.path(), &["status", "--events", "x"]);
    assert_eq!(code, 2, "{err}");
}

/// SIGTERM (what the portal sends on a client disconnect or its deadline) and SIGINT (Ctrl-C)
/// during `deploy --wait --strict` no longer end the tool with its RC left behind: the wait
/// stops, the RC is deleted as --strict promised, and the report says it was interrupted.
#[test]
fn an_interrupted_deploy_wait_strict_deletes_its_rc_and_says_so() {
    use nix::sys::signal::Signal;
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_deploy_interrupt");
    let dir = definitions(&[("web.yaml", "cluster: web\nimage: example/web:broken\n")]);
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let mut cmd = support::ocho();
        cmd.args(["deploy", "web.yaml", "-p", "2", "--wait", "--strict", "-t", "600"])
            .args(["--zk", &agents.hosts])
            .current_dir(dir.path())
            .env("KUBECONFIG", kube.kubeconfig())
            .env_remove("OCHO_ZK_PUBLIC");
        let mut proc = support::Proc::spawn("deploy", cmd);
        proc.wait_for_line("web.yaml: 0/2 pods registered", WAIT);
        kube.wait_until(WAIT, |s| s.rcs("default").len() == 1).unwrap();
        proc.signal(signal);
        // Well within the portal's grace for such tools (10 s).
        let status = proc.expect_exit(Duration::from_secs(8));
        let out = proc.lines().join("\n");
        assert_eq!(status.code(), Some(1), "{signal}: {out}");
        assert!(out.contains(&format!("interrupted ({})", signal.as_str())), "{out}");
        assert!(out.contains("deleted (--strict)"), "{out}");
        assert!(out.contains("deleted again (--strict)"), "{out}");
        kube.wait_until(WAIT, |s| s.rcs("default").is_empty()).unwrap();
    }
}

/// Interrupted during a roll, `bump --strict` still rolls back (the new RC deleted, the old
/// one at its replicas) and says so; `scale --wait` stops waiting and says what it set.
#[test]
fn interrupted_bump_strict_rolls_back_and_scale_says_it_was_interrupted() {
    use nix::sys::signal::Signal;
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_bump_interrupt");
    let dir = definitions(&[("web.yaml", WEB)]);
    let old = deployed(&kube, dir.path(), "web.yaml", "2");
    registered(&kube, &agents, "default.web", 2);
    let spawn = |name: &str, args: &[&str]| {
        let mut cmd = support::ocho();
        cmd.args(args)
            .args(["--zk", &agents.hosts])
            .current_dir(dir.path())
            .env("KUBECONFIG", kube.kubeconfig());
        support::Proc::spawn(name, cmd)
    };
    let mut bump = spawn("bump", &["bump", "default.web", "-r", "broken", "--strict", "-t", "600"]);
    // The roll is under way once the new RC wants its first pod.
    kube.wait_until(WAIT, |s| {
        s.rcs("default")
            .iter()
            .any(|rc| rc.metadata.name.as_deref() != Some(old.as_str()) && replicas(rc) == 1)
    })
    .unwrap();
    bump.signal(Signal::SIGTERM);
    let status = bump.expect_exit(Duration::from_secs(8));
    let out = bump.lines().join("\n");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("interrupted (SIGTERM)"), "{out}");
    assert!(out.contains("rolled back: deleted "), "{out}");
    kube.wait_until(WAIT, |s| {
        let rcs = s.rcs("default");
        rcs.len() == 1
            && rcs[0].metadata.name.as_deref() == Some(old.as_str())
            && replicas(rcs[0]) == 2
    })
    .unwrap();

    let mute = definitions(&[("mute.yaml", "cluster: mute\nimage: example/mute:broken\n")]);
    deployed(&kube, mute.path(), "mute.yaml", "1");
    let mut scale = spawn("scale", &["scale", "default.mute", "-f", "@3", "--wait", "-t", "600"]);
    scale.wait_for_line("default.mute: 0 pods registered", WAIT);
    scale.signal(Signal::SIGINT);
    let status = scale.expect_exit(Duration::from_secs(8));
    let out = scale.lines().join("\n");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("replicas set to 3; interrupted (SIGINT) while waiting"), "{out}");
}

fn image_of(rc: &ReplicationController) -> String {
    rc.spec.clone().unwrap().template.unwrap().spec.unwrap().containers[0].image.clone().unwrap()
}

/// `bump` records revisions on the RCs it makes; `--history` lists them and `--undo` rolls back
/// onto the previous revision's image with the same rolling procedure, as a new revision
/// (kubectl rollout history/undo); `--to-revision` picks one; bad combinations are usage errors.
#[test]
fn bump_history_lists_revisions_and_undo_rolls_back_to_the_previous_image() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_bump_undo");
    let dir = definitions(&[("web.yaml", WEB)]);
    let first = deployed(&kube, dir.path(), "web.yaml", "2");
    registered(&kube, &agents, "default.web", 2);
    let zk = ["--zk", agents.hosts.as_str()];
    let bump = |extra: &[&str]| {
        let mut args = vec!["bump", "default.web", "-t", "60", zk[0], zk[1]];
        args.extend_from_slice(extra);
        ocho(&kube, dir.path(), &args)
    };
    // Nothing to undo on a freshly deployed cluster.
    let (code, out, err) = bump(&["--undo"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--undo: no earlier revision"), "{err}");

    let (code, out, err) = bump(&["-r", "2.0"]);
    assert_eq!(code, 0, "{out}{err}");
    registered(&kube, &agents, "default.web", 2);
    let (code, out, err) = bump(&["--history", "-j"]);
    assert_eq!(code, 0, "{out}{err}");
    let history: Value = serde_json::from_str(&out).unwrap();
    let revisions = history["default.web"].as_array().unwrap();
    assert_eq!(revisions.len(), 2, "{out}");
    assert_eq!(
        (&revisions[0]["revision"], &revisions[0]["image"]),
        (&json!(1), &json!("example/web:1.0"))
    );
    assert_eq!(revisions[0]["rc"], first.as_str());
    assert_eq!(
        (&revisions[1]["revision"], &revisions[1]["image"]),
        (&json!(2), &json!("example/web:2.0"))
    );
    assert_eq!(revisions[1]["replaced"], first.as_str());

    let (code, out, err) = bump(&["--undo"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("default.web: undo: rolling back to example/web:1.0\n"), "{out}");
    assert!(out.ends_with("100% success (2 pods)\n"), "{out}");
    kube.wait_until(WAIT, |s| s.rcs("default").len() == 1).unwrap();
    assert_eq!(image_of(&kube.rcs("default")[0]), "example/web:1.0");
    registered(&kube, &agents, "default.web", 2);
    let (code, out, err) = bump(&["--history"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("default.web ->"), "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with(['1', '2', '3'])).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[2].starts_with("3 ") && rows[2].contains("example/web:1.0"), "{out}");

    // --to-revision: back onto 2.0.
    let (code, out, err) = bump(&["--undo", "--to-revision", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    kube.wait_until(WAIT, |s| s.rcs("default").len() == 1).unwrap();
    assert_eq!(image_of(&kube.rcs("default")[0]), "example/web:2.0");

    for bad in [&["-r", "3.0", "--undo"][..], &[][..], &["--to-revision", "1"][..]] {
        let (code, _, err) = bump(bad);
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
    let (code, _, err) = bump(&["--undo", "--to-revision", "9"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no revision 9 (known: 1, 2, 3, 4)"), "{err}");
}

/// `deploy --dry-run=server` sends each object with `dryRun=All`: the server validates it
/// (strict decoding included) and nothing is stored; what it refuses fails the definition.
#[test]
fn a_server_dry_run_validates_on_the_server_and_creates_nothing() {
    let kube = fake(Kubelet::Status);
    let typo = format!("{WEB}verbatim:\n  spec:\n    nodeSelectr: {{disk: ssd}}\n");
    let dir = definitions(&[("web.yaml", WEB), ("typo.yaml", &typo)]);
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "--dry-run=server"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("web.yaml: ochopod-default-web-"), "{out}");
    assert!(out.contains("validated by the server (dry run, nothing created)"), "{out}");
    let posts: Vec<_> = kube.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].param("dryRun"), Some("All"));
    assert_eq!(posts[0].param("fieldValidation"), Some("Strict"));

    let (code, out, err) =
        ocho(&kube, dir.path(), &["deploy", "typo.yaml", "web.yaml", "--dry-run=server", "-j"]);
    assert_eq!(code, 1, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["web.yaml"]["ok"], true, "{out}");
    assert_eq!(reply["typo.yaml"]["ok"], false, "{out}");
    let error = reply["typo.yaml"]["error"].as_str().unwrap();
    assert!(error.contains("unknown field \"spec.template.spec.nodeSelectr\""), "{out}");
    assert!(kube.rcs("default").is_empty() && kube.pods("default").is_empty());

    let (code, _, err) =
        ocho(&kube, dir.path(), &["deploy", "web.yaml", "--dry-run=server", "--wait"]);
    assert_eq!(code, 2, "{err}");
}

/// `deploy --diff` compares each definition with the newest live RC of its cluster (image,
/// replicas, env, settings, …), creates nothing, and exits 1 when something would change.
#[test]
fn deploy_diff_shows_what_would_change_against_the_live_rc() {
    let kube = fake(Kubelet::Status);
    let changed =
        "cluster: web\nimage: example/web:2.0\nports: [80]\nsettings:\n  greeting: hello\n";
    let dir = definitions(&[("web.yaml", WEB), ("db.yaml", DB)]);
    std::fs::create_dir_all(dir.path().join("next")).unwrap();
    std::fs::write(dir.path().join("next/web.yaml"), changed).unwrap();
    let live = deployed(&kube, dir.path(), "web.yaml", "2");
    let (code, out, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "-p", "2", "--diff"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("web.yaml: default.web: no change against {live}\n"));

    let (code, out, err) =
        ocho(&kube, dir.path(), &["deploy", "next/web.yaml", "db.yaml", "-p", "3", "--diff"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("next/web.yaml: default.web against {live}:\n")), "{out}");
    assert!(out.contains("  image: \"example/web:1.0\" -> \"example/web:2.0\"\n"), "{out}");
    assert!(out.contains("  replicas: 2 -> 3\n"), "{out}");
    assert!(out.contains("  settings greeting: \"hi\" -> \"hello\"\n"), "{out}");
    assert!(
        out.contains("db.yaml: default.db is not deployed: would create ochopod-default-db-"),
        "{out}"
    );

    let (code, out, err) =
        ocho(&kube, dir.path(), &["deploy", "next/web.yaml", "-p", "2", "--diff", "-j"]);
    assert_eq!(code, 1, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["next/web.yaml"]["live"], live.as_str(), "{out}");
    assert_eq!(reply["next/web.yaml"]["changes"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(kube.rcs("default").len(), 1, "--diff creates nothing");
    let (code, _, err) = ocho(&kube, dir.path(), &["deploy", "web.yaml", "--diff", "--wait"]);
    assert_eq!(code, 2, "{err}");
}

/// Through the portal: at the request's deadline the portal sends SIGTERM, and
/// `deploy --wait --strict` still deletes the RC it created, within the portal's grace for
/// such tools, and says so in the reply.
#[test]
fn the_portals_deadline_leaves_no_rc_behind_after_deploy_wait_strict() {
    let kube = fake(Kubelet::Status);
    let agents = Agents::start(&kube, "k8s_portal_interrupt");
    let dir = definitions(&[("web.yaml", "cluster: web\nimage: example/web:broken\n")]);
    let kubeconfig = kube.kubeconfig().to_string_lossy().into_owned();
    let portal = support::portal::Portal::start(&[], &[("KUBECONFIG", kubeconfig.as_str())]);
    let out = support::ocho()
        .args(["cli", "--proxy", &portal.addr, "--timeout", "3"])
        .args(["deploy", "web.yaml", "-p", "2", "--wait", "--strict", "-t", "600"])
        .args(["--zk", &agents.hosts])
        .current_dir(dir.path())
        .env_remove("OCHOPOD_TOKEN")
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("interrupted (SIGTERM)"), "{text}");
    assert!(text.contains("deleted (--strict)"), "{text}");
    kube.wait_until(WAIT, |s| s.rcs("default").is_empty()).unwrap();
}
