//! Helpers shared by the fake's own tests (tests/fake_kube*.rs): a fake per test, an RC
//! literal, and small accessors for what the real client returns.

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::core::Status;
use serde_json::json;

use super::{FakeKube, FakeOpts, Kubelet};

pub fn start(kubelet: Kubelet) -> FakeKube {
    FakeKube::start(FakeOpts { kubelet, ..Default::default() }).expect("start the fake API server")
}

pub fn rc(name: &str, app: &str, replicas: i32) -> ReplicationController {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"app": app},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "demo", "image": "example/demo:1.0",
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}}}
    }))
    .expect("RC literal")
}

pub fn api_err(e: kube::Error) -> Box<Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn owned_by(p: &Pod, rc_uid: &str) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == rc_uid && r.controller == Some(true))
}
