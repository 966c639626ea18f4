//! The fake's replication manager as a real one behaves on a scale-down: a deleted pod is
//! replaced at once while the replicas are unchanged, and the surplus is picked by the real
//! ranking (scheduling, phase, readiness, `controller.kubernetes.io/pod-deletion-cost`, then age
//! in power-of-two buckets), so a tool that wants particular pods gone has to mark them.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::cmp::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::fake_kube::testing::{rc, start};
use support::fake_kube::{DELETION_COST, Kubelet, is_ready, scale_down_order};

const WAIT: Duration = Duration::from_secs(20);

fn live_names(kube: &support::fake_kube::FakeKube) -> Vec<String> {
    kube.pods("default")
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_replaced_at_once_while_replicas_are_unchanged() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    rcs.create(&PostParams::default(), &rc("web", "web", 3)).await.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").iter().filter(|p| is_ready(p)).count() == 3)
        .unwrap();
    let victim = live_names(&kube).remove(1);
    pods.delete(&victim, &DeleteParams::default()).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods_created("default").len() == 4
            && s.pods("default").iter().filter(|p| is_ready(p)).count() == 3
            && s.pod("default", &victim).is_none()
    })
    .unwrap();
    assert!(!live_names(&kube).contains(&victim));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_removes_the_pods_with_the_lowest_deletion_cost_and_creates_none() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    rcs.create(&PostParams::default(), &rc("web", "web", 4)).await.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").iter().filter(|p| is_ready(p)).count() == 4)
        .unwrap();
    let names = live_names(&kube);
    // Whichever pods are marked go, old or new.
    let marked = [names[0].clone(), names[2].clone()];
    for name in &marked {
        let patch = json!({"metadata": {"annotations": {DELETION_COST: "-2147483648"}}});
        pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
    rcs.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").len() == 2).unwrap();
    let mut left = live_names(&kube);
    left.sort();
    let mut want = vec![names[1].clone(), names[3].clone()];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(kube.with_state(|s| s.pods_created("default").len()), 4, "no pod was created");
}

fn pod(name: &str, node: bool, phase: &str, ready: bool, created_ago: i64) -> Pod {
    let now = Timestamp::now();
    let at = |secs: i64| (now - SignedDuration::from_secs(secs)).to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name, "uid": format!("uid-{name}"),
                     "creationTimestamp": at(created_ago)},
        "spec": {"containers": [{"name": "c", "image": "x:1"}],
                 "nodeName": if node { Some("fake-node") } else { None }},
        "status": {"phase": phase, "conditions": [{"type": "Ready",
            "status": if ready { "True" } else { "False" }, "lastTransitionTime": at(created_ago)}]}
    }))
    .unwrap()
}

fn with_cost(mut p: Pod, cost: &str) -> Pod {
    p.metadata.annotations = Some([(DELETION_COST.to_string(), cost.to_string())].into());
    p
}

fn order(pods: &[Pod]) -> Vec<String> {
    let now = Timestamp::now();
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| scale_down_order(a, b, now));
    sorted.into_iter().map(|p| p.metadata.name.unwrap()).collect()
}

#[test]
fn the_ranking_is_the_real_controllers() {
    // Scheduling, phase and readiness come before the deletion cost.
    let pods = [
        with_cost(pod("ready", true, "Running", true, 100), "-100"),
        pod("unready", true, "Running", false, 100),
        pod("pending", true, "Pending", false, 100),
        pod("unscheduled", false, "Pending", false, 100),
    ];
    assert_eq!(order(&pods), ["unscheduled", "pending", "unready", "ready"]);

    // Between ready pods: the lowest cost first, whatever the age; a bad value counts as 0.
    let pods = [
        pod("new", true, "Running", true, 10),
        with_cost(pod("old", true, "Running", true, 5000), "-5"),
        with_cost(pod("bad", true, "Running", true, 10), "many"),
        with_cost(pod("dear", true, "Running", true, 10), "7"),
    ];
    let got = order(&pods);
    assert_eq!(got[0], "old");
    assert_eq!(got[3], "dear");

    // Same cost: the newer (by power-of-two age bucket) goes first.
    let pods = [pod("a-old", true, "Running", true, 4000), pod("b-new", true, "Running", true, 3)];
    assert_eq!(order(&pods), ["b-new", "a-old"]);
    // Ages in one bucket tie and go by uid, not by which is newer.
    let pods = [pod("z", true, "Running", true, 40), pod("y", true, "Running", true, 50)];
    let now = Timestamp::now();
    assert_eq!(scale_down_order(&pods[1], &pods[0], now), Ordering::Less, "uid-y < uid-z");
}
