//! Tests of the fake Kubernetes API server's controllers and fake kubelet (tests/support/fake_kube):
//! delete policies and garbage collection, graceful deletion, logs, process mode. Driven with the
//! real kube client over HTTPS, as the tools will drive it.
#![allow(clippy::unwrap_used)] // a failed step in a test should fail loudly

use crate::support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use serde_json::json;
use support::fake_kube::{Kubelet, is_ready, phase};

use support::fake_kube::testing::{api_err, owned_by, rc, start};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policies_and_garbage_collection() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());

    // Background: a Status back, the RC gone at once, its pods collected.
    rcs.create(&PostParams::default(), &rc("bg", "bg", 2)).await.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").iter().filter(|p| is_ready(p)).count() == 2)
        .unwrap();
    let gone = rcs.delete("bg", &DeleteParams::background()).await.unwrap();
    let status = gone.right().expect("Background deletes answer with a Status");
    assert_eq!(status.details.unwrap().kind, "replicationcontrollers");
    assert!(kube.with_state(|s| s.rc("default", "bg").is_none()));
    kube.wait_until(WAIT, |s| s.pods("default").is_empty()).unwrap();

    // Foreground: the RC comes back with a finalizer and goes once its pods are gone.
    rcs.create(&PostParams::default(), &rc("fg", "fg", 2)).await.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").iter().filter(|p| is_ready(p)).count() == 2)
        .unwrap();
    let left = rcs.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let obj = left.left().expect("Foreground answers with the object");
    assert_eq!(obj.metadata.finalizers.unwrap(), ["foregroundDeletion"]);
    assert!(obj.metadata.deletion_timestamp.is_some());
    kube.wait_until(WAIT, |s| s.pods("default").is_empty() && s.rc("default", "fg").is_none())
        .unwrap();

    // Default (no policy): Orphan for core/v1 RCs — the pods keep running, unowned.
    let created = rcs.create(&PostParams::default(), &rc("orph", "orph", 2)).await.unwrap();
    let uid = created.metadata.uid.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").iter().filter(|p| is_ready(p)).count() == 2)
        .unwrap();
    let left = rcs.delete("orph", &DeleteParams::default()).await.unwrap();
    let obj = left.left().expect("Orphan answers with the object");
    assert_eq!(obj.metadata.finalizers.unwrap(), ["orphan"]);
    kube.wait_until(WAIT, |s| s.rc("default", "orph").is_none()).unwrap();
    let pods = kube.pods("default");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert!(p.metadata.owner_references.is_none(), "{:?}", p.metadata.owner_references);
        assert!(p.metadata.deletion_timestamp.is_none());
        assert_eq!(phase(p), "Running");
    }
    // A new RC with the same selector adopts them instead of creating more.
    let adopter = rcs.create(&PostParams::default(), &rc("orph2", "orph", 2)).await.unwrap();
    let auid = adopter.metadata.uid.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").iter().filter(|p| owned_by(p, &auid)).count() == 2)
        .unwrap();
    assert_eq!(kube.pods("default").len(), 2);
    assert!(!kube.pods("default").iter().any(|p| owned_by(p, &uid)));

    // A failed uid precondition is a 409 and deletes nothing.
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("x".into()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let err = api_err(rcs.delete("orph2", &dp).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert!(err.message.contains(&format!(
        "Precondition failed: UID in precondition: x, UID in object meta: {auid}"
    )));
    let dry = DeleteParams { dry_run: true, ..DeleteParams::background() };
    rcs.delete("orph2", &dry).await.unwrap();
    assert!(kube.with_state(|s| s.rc("default", "orph2").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_pod_deletion_needs_a_kubelet() {
    // Bound, nothing confirms: the surplus pod stays Terminating and no longer counts.
    let kube = start(Kubelet::Bound);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    rcs.create(&PostParams::default(), &rc("demo", "demo", 1)).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().any(|p| p.spec.as_ref().unwrap().node_name.is_some())
    })
    .unwrap();
    let name = kube.pods("default")[0].metadata.name.clone().unwrap();
    let marked = pods.delete(&name, &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert!(marked.metadata.deletion_timestamp.is_some());
    // The controller replaces it; the old one is still there, Terminating.
    kube.wait_until(WAIT, |s| {
        s.pods("default").len() == 2
            && s.pods("default")
                .iter()
                .filter(|p| p.spec.as_ref().unwrap().node_name.is_some())
                .count()
                == 2
    })
    .unwrap();
    assert!(kube.with_state(|s| {
        s.pod("default", &name).unwrap().metadata.deletion_timestamp.is_some()
    }));
    // grace 0 removes it at once.
    pods.delete(&name, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    assert!(kube.with_state(|s| s.pod("default", &name).is_none()));

    // A pod's spec is immutable but for images: 422.
    let mut live = pods.get(&kube.pods("default")[0].metadata.name.clone().unwrap()).await.unwrap();
    let live_name = live.metadata.name.clone().unwrap();
    live.spec.as_mut().unwrap().restart_policy = Some("Never".into());
    let err = api_err(pods.replace(&live_name, &PostParams::default(), &live).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    // Foreground without a kubelet: the pods stay Terminating, so the RC stays too.
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    rcs.delete("demo", &DeleteParams::foreground()).await.unwrap();
    kube.wait_until(WAIT, |s| {
        !s.pods("default").is_empty()
            && s.pods("default").iter().all(|p| p.metadata.deletion_timestamp.is_some())
    })
    .unwrap();
    let rc =
        kube.with_state(|s| s.rc("default", "demo").cloned()).expect("the RC waits for its pods");
    assert_eq!(rc.metadata.finalizers.unwrap(), ["foregroundDeletion"]);

    // With the status kubelet the delete is confirmed and the pod disappears.
    let kube = start(Kubelet::Status);
    let pods: Api<Pod> = Api::default_namespaced(kube.client().await);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "solo"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "solo").is_some_and(is_ready)).unwrap();
    let p = kube.pods("default").remove(0);
    let st = p.status.unwrap();
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.2"));
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("fake-node"));
    pods.delete("solo", &DeleteParams::default()).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "solo").is_none()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_discovery_and_recording() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    let v = client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "36"));
    let versions = client.list_core_api_versions().await.unwrap();
    assert_eq!(versions.versions, ["v1"]);
    let res = client.list_core_api_resources("v1").await.unwrap();
    assert!(res.resources.iter().any(|r| r.name == "replicationcontrollers/scale"));

    let two: Pod = serde_json::from_value(json!({"metadata": {"name": "two"},
        "spec": {"containers": [{"name": "web", "image": "a:1"}, {"name": "sidecar", "image": "b:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &two).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "two").is_some_and(is_ready)).unwrap();
    let lp = LogParams { container: Some("web".into()), tail_lines: Some(2), ..Default::default() };
    let text = pods.logs("two", &lp).await.unwrap();
    assert_eq!(
        text,
        "fake log line 9 from default/two/web\nfake log line 10 from default/two/web\n"
    );
    let lp = LogParams {
        container: Some("sidecar".into()),
        tail_lines: Some(1),
        timestamps: true,
        ..Default::default()
    };
    let text = pods.logs("two", &lp).await.unwrap();
    let (stamp, line) = text.trim_end().split_once(' ').unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('.') && stamp.len() == 30, "{stamp}");
    assert_eq!(line, "fake log line 10 from default/two/sidecar");
    let err = api_err(pods.logs("two", &LogParams::default()).await.unwrap_err());
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "a container name must be specified for pod two, choose one of: [web sidecar]")
    );
    let lp = LogParams { container: Some("nope".into()), ..Default::default() };
    let err = api_err(pods.logs("two", &lp).await.unwrap_err());
    assert_eq!((err.code, err.message.as_str()), (400, "container nope is not valid for pod two"));
    let err = api_err(pods.logs("missing", &LogParams::default()).await.unwrap_err());
    assert_eq!(err.code, 404);

    // Requests are recorded with their query and body; fail_next injects errors.
    kube.clear_requests();
    kube.fail_next("DELETE", "/api/v1/namespaces/default/pods/", 500, 1);
    let err = api_err(pods.delete("two", &DeleteParams::background()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert!(kube.with_state(|s| s.pod("default", "two").is_some()));
    pods.delete("two", &DeleteParams::background()).await.unwrap();
    let reqs = kube.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("DELETE", "/api/v1/namespaces/default/pods/two")
        );
        assert_eq!(r.json().unwrap()["propagationPolicy"], "Background");
    }
}

/// A pod whose one container runs `script` under the registered `/bin/sh` image.
fn sh_pod(name: &str, script: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "shell"}},
        "spec": {"terminationGracePeriodSeconds": 10, "containers": [{"name": "main", "image": "test/sh:1",
            "args": ["-c", script],
            "env": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "GREETING", "value": "hello $(POD_NAME)"}]}]}}))
    .expect("pod literal")
}

/// `$$` is doubled: the kubelet expands `$(VAR)` in args and turns `$$` into `$`.
const SERVE: &str = r#"echo "POD_IP=$POD_IP POD_NAME=$POD_NAME NODE=$NODE_NAME APP=$APP GREETING=$GREETING HOST=$HOSTNAME"
echo "KUBECONFIG=$KUBECONFIG PORT=$KUBERNETES_SERVICE_PORT PWD=$(pwd)"
echo "leaked=$(env | grep -c '^CARGO')"
echo "pid=$$$$"
echo "to stderr" >&2
trap 'echo got TERM; exit 0' TERM
while true; do sleep 0.05; done"#;

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_kubelet_runs_pods_as_local_processes() {
    let kube = start(Kubelet::Process);
    kube.register_image("test/sh:1", "/bin/sh");
    let pods: Api<Pod> = Api::default_namespaced(kube.client().await);
    pods.create(&PostParams::default(), &sh_pod("web", SERVE)).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pod("default", "web").is_some_and(is_ready)
            && s.log_lines("default", "web", "main").iter().any(|l| l == "to stderr")
    })
    .unwrap();
    let pod = pods.get("web").await.unwrap();
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    // Process-mode addresses are unique across the fakes of this test binary, so not always .2.
    let n: u8 = ip.strip_prefix("127.0.0.").unwrap().parse().unwrap();
    assert!(n >= 2, "{ip}");
    let cs = &pod.status.as_ref().unwrap().container_statuses.as_ref().unwrap()[0];
    assert!(cs.state.as_ref().unwrap().running.is_some());

    let text = pods.logs("web", &LogParams::default()).await.unwrap();
    let kubeconfig = kube.kubeconfig().display().to_string();
    let port = kube.addr().port();
    assert!(
        text.contains(&format!(
            "POD_IP={ip} POD_NAME=web NODE=fake-node APP=shell GREETING=hello web HOST=web\n"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("KUBECONFIG={kubeconfig} PORT={port} PWD=")), "{text}");
    assert!(text.contains("leaked=0\n"), "the test's environment leaked: {text}");
    let pid: i32 = text.lines().find_map(|l| l.strip_prefix("pid=")).unwrap().parse().unwrap();
    assert!(pid_alive(pid));

    // Delete: SIGTERM reaches the process, which exits; the kubelet confirms; the pod goes.
    let marked = pods.delete("web", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(10));
    kube.wait_until(WAIT, |s| s.pod("default", "web").is_none()).unwrap();
    assert!(
        kube.with_state(|s| {
            s.log_lines("default", "web", "main").iter().any(|l| l == "got TERM")
        })
    );
    assert!(!pid_alive(pid), "the process was reaped");

    // A crashing container is restarted with back-off and its exit recorded.
    pods.create(&PostParams::default(), &sh_pod("crash", "echo bye; exit 3")).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pod("default", "crash").is_some_and(|p| {
            let Some(cs) = p.status.as_ref().and_then(|s| s.container_statuses.as_ref()) else {
                return false;
            };
            let cs = &cs[0];
            cs.restart_count >= 1
                && cs
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 3 && t.reason.as_deref() == Some("Error"))
        })
    })
    .unwrap();

    // A command path inside the image is mapped to a host executable.
    kube.map_command("/image/bin/hello", "/bin/echo");
    let mut mapped = sh_pod("mapped", "");
    let c = &mut mapped.spec.as_mut().unwrap().containers[0];
    c.command = Some(vec!["/image/bin/hello".into()]);
    c.args = Some(vec!["hi from $(POD_NAME)".into()]);
    c.env.as_mut().unwrap().truncate(2);
    pods.create(&PostParams::default(), &mapped).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.log_lines("default", "mapped", "main").first().map(String::as_str)
            == Some("hi from mapped")
    })
    .unwrap();

    // An unregistered image: ErrImagePull, Pending.
    let mut unknown = sh_pod("unknown", "true");
    unknown.spec.as_mut().unwrap().containers[0].image = Some("nope:1".into());
    pods.create(&PostParams::default(), &unknown).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pod("default", "unknown").is_some_and(|p| {
            let cs = p.status.as_ref().unwrap().container_statuses.as_ref();
            cs.and_then(|c| c[0].state.as_ref()?.waiting.as_ref()?.reason.clone()).as_deref()
                == Some("ErrImagePull")
        })
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_kubelet_rc_pods_get_distinct_addresses_and_die_with_the_fake() {
    let kube = start(Kubelet::Process);
    kube.register_image("test/sh:1", "/bin/sh");
    let rcs: Api<ReplicationController> = Api::default_namespaced(kube.client().await);
    let mut spec = rc("shell", "shell", 2);
    let tmpl = spec.spec.as_mut().unwrap().template.as_mut().unwrap().spec.as_mut().unwrap();
    tmpl.containers = sh_pod("x", SERVE).spec.unwrap().containers;
    rcs.create(&PostParams::default(), &spec).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| is_ready(p)).count() == 2
            && s.pods("default").iter().all(|p| {
                let n = p.metadata.name.as_deref().unwrap();
                s.log_lines("default", n, "main").iter().any(|l| l.starts_with("pid="))
            })
    })
    .unwrap();
    let mut ips: Vec<String> = kube
        .pods("default")
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 2, "distinct addresses: {ips:?}");
    assert!(ips.iter().all(|ip| ip.starts_with("127.0.0.") && ip != "127.0.0.1"), "{ips:?}");
    let pids: Vec<i32> = kube.with_state(|s| {
        s.pods("default")
            .iter()
            .map(|p| {
                let n = p.metadata.name.as_deref().unwrap();
                s.log_lines("default", n, "main")
                    .iter()
                    .find_map(|l| l.strip_prefix("pid=").map(|x| x.parse().unwrap()))
                    .unwrap()
            })
            .collect()
    });
    assert!(pids.iter().all(|p| pid_alive(*p)));
    drop(kube);
    assert!(pids.iter().all(|p| !pid_alive(*p)), "Drop kills and reaps every process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_logs_stream_process_output() {
    use futures_util::{AsyncBufReadExt, StreamExt};
    let kube = start(Kubelet::Process);
    kube.register_image("test/sh:1", "/bin/sh");
    let pods: Api<Pod> = Api::default_namespaced(kube.client().await);
    let script = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done";
    pods.create(&PostParams::default(), &sh_pod("ticker", script)).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "ticker").is_some_and(is_ready)).unwrap();
    let lp = LogParams { follow: true, tail_lines: Some(1), ..Default::default() };
    let mut lines = pods.log_stream("ticker", &lp).await.unwrap().lines();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let line = tokio::time::timeout(WAIT, lines.next()).await.unwrap().unwrap().unwrap();
        seen.push(line);
    }
    let n: Vec<u32> =
        seen.iter().map(|l| l.strip_prefix("tick ").unwrap().parse().unwrap()).collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "consecutive lines: {seen:?}");
    // Deleting the pod ends the stream.
    pods.delete("ticker", &DeleteParams { grace_period_seconds: Some(1), ..Default::default() })
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, async { while lines.next().await.is_some() {} });
    end.await.expect("the follow stream ends when the pod goes");
}

/// Another process of the machine holding a pod address's port 8080 (an agent's control port)
/// makes the kubelet pass over that address instead of starting an agent that cannot listen.
#[test]
fn process_mode_addresses_skip_one_whose_control_port_is_taken() {
    let kube = start(Kubelet::Status);
    let mut held = None;
    for _ in 0..20 {
        let first = kube.next_process_ip("probe").unwrap();
        // Parallel tests may take the address meanwhile: then try the next lowest.
        if let Ok(listener) = std::net::TcpListener::bind((first.as_str(), 8080)) {
            held = Some((first, listener));
            break;
        }
    }
    let (taken, _listener) = held.expect("an address with a free port 8080");
    let given = kube.next_process_ip("pod").unwrap();
    assert_ne!(given, taken, "{taken}:8080 is held by another process");
}
