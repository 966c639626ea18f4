//! Tests of the fake Kubernetes API server (tests/support/fake_kube), driven with the real kube
//! client over HTTPS with the fake's generated CA, as the tools will drive it.
#![allow(clippy::unwrap_used)] // a failed step in a test should fail loudly

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{
    Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::Status;
use serde_json::{Value, json};
use support::fake_kube::select::{FieldSelector, LabelSelector};
use support::fake_kube::{FakeKube, FakeOpts, Kubelet, is_ready, phase};

const WAIT: Duration = Duration::from_secs(20);

fn start(kubelet: Kubelet) -> FakeKube {
    FakeKube::start(FakeOpts {
        kubelet,
        ..Default::default()
    })
    .expect("start the fake API server")
}

fn rc(name: &str, app: &str, replicas: i32) -> ReplicationController {
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

fn api_err(e: kube::Error) -> Box<Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn owned_by(p: &Pod, rc_uid: &str) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == rc_uid && r.controller == Some(true))
}

/// The next watch event, with a deadline.
async fn next<S, K>(s: &mut S) -> WatchEvent<K>
where
    S: futures_util::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin,
{
    tokio::time::timeout(WAIT, s.next())
        .await
        .expect("a watch event before the deadline")
        .expect("the stream is open")
        .expect("a decodable event")
}

#[test]
fn selector_parsing_and_matching() {
    let obj =
        json!({"metadata": {"labels": {"app": "demo", "tier": "web", "example.com/role": "x"}}});
    for (sel, want) in [
        ("app=demo", true),
        ("app==demo", true),
        ("app != demo", false),
        ("app!=other", true),
        ("tier in (web, api)", true),
        ("tier notin (web)", false),
        ("gone notin (a)", true),
        ("app,!gone", true),
        ("!app", false),
        ("example.com/role=x,app=demo", true),
        ("app=demo,tier=api", false),
    ] {
        let s = LabelSelector::parse(sel).expect(sel);
        assert_eq!(s.matches_object(&obj), want, "{sel}");
    }
    for bad in ["app in web", "a b", "Bad Key=x", "app=(", "k in ()"] {
        assert!(LabelSelector::parse(bad).is_err(), "{bad}");
    }
    let obj =
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n"}, "status": {"replicas": 2}});
    let f = &[
        "metadata.name",
        "spec.nodeName",
        "status.replicas",
        "status.phase",
    ];
    let sel = |s: &str| FieldSelector::parse(s, f).expect(s);
    assert!(sel("spec.nodeName=n,metadata.name!=q").matches_object(&obj));
    assert!(sel("status.replicas=2").matches_object(&obj));
    assert!(sel("status.phase=").matches_object(&obj));
    assert_eq!(
        FieldSelector::parse("spec.foo=x", f).unwrap_err(),
        "field label not supported: spec.foo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_create_sets_server_fields_and_controller_makes_owned_pods() {
    let kube = start(Kubelet::Off);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    let created = rcs
        .create(&PostParams::default(), &rc("demo-rc", "demo", 2))
        .await
        .unwrap();
    let m = &created.metadata;
    assert_eq!(m.namespace.as_deref(), Some("default"));
    assert_eq!(m.uid.as_ref().map(String::len), Some(36));
    assert!(m.resource_version.as_ref().unwrap().parse::<u64>().is_ok());
    assert!(m.creation_timestamp.is_some());
    assert_eq!(m.generation, Some(1));
    assert_eq!(
        m.labels.as_ref().unwrap()["app"],
        "demo",
        "labels default to the template's"
    );
    assert_eq!(created.status.as_ref().unwrap().replicas, 0);
    let tspec = created
        .spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(tspec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(tspec.termination_grace_period_seconds, Some(30));
    let c = &tspec.containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        c.ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );

    let uid = m.uid.clone().unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").len() == 2
            && s.rc("default", "demo-rc")
                .unwrap()
                .status
                .as_ref()
                .unwrap()
                .replicas
                == 2
    })
    .unwrap();
    for p in kube.pods("default") {
        assert!(owned_by(&p, &uid));
        let name = p.metadata.name.clone().unwrap();
        let suffix = name.strip_prefix("demo-rc-").expect("generateName prefix");
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
        assert_eq!(phase(&p), "Pending");
        assert_eq!(
            p.status.as_ref().unwrap().qos_class.as_deref(),
            Some("BestEffort")
        );
    }

    // Label and field selectors, on lists of both kinds.
    rcs.create(&PostParams::default(), &rc("other-rc", "other", 1))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").len() == 3)
        .unwrap();
    let list = rcs
        .list(&ListParams::default().labels("app=demo"))
        .await
        .unwrap();
    let names: Vec<_> = list
        .items
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["demo-rc"]);
    assert!(list.metadata.resource_version.is_some());
    let list = pods
        .list(&ListParams::default().labels("app in (demo,other)"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3);
    let list = pods
        .list(&ListParams::default().labels("app,app!=demo"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let one = kube.pods("default")[0].metadata.name.clone().unwrap();
    let list = pods
        .list(&ListParams::default().fields(&format!("metadata.name={one}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let list = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap();
    assert!(list.items.is_empty());
    let err = api_err(
        pods.list(&ListParams::default().fields("spec.foo=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert_eq!(err.message, "field label not supported: spec.foo");
    let err = api_err(
        pods.list(&ListParams::default().labels("a b"))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));

    // List items carry no kind/apiVersion, as on a real server.
    let raw: Value = client
        .request(
            http::Request::get("/api/v1/namespaces/default/pods")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(raw["kind"], "PodList");
    assert!(raw["items"][0].get("kind").is_none());
    assert!(raw["items"][0].get("apiVersion").is_none());

    // Generation: +1 on a spec change, not on a label-only change; status only through /status.
    let p = rcs
        .patch(
            "demo-rc",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(1));
    let p = rcs
        .patch(
            "demo-rc",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 3}, "status": {"replicas": 42}})),
        )
        .await
        .unwrap();
    assert_eq!(p.metadata.generation, Some(2));
    assert_ne!(
        p.status.as_ref().unwrap().replicas,
        42,
        "status is ignored on the main resource"
    );
    kube.wait_until(WAIT, |s| {
        s.rc("default", "demo-rc")
            .unwrap()
            .status
            .as_ref()
            .unwrap()
            .observed_generation
            == Some(2)
            && s.pods("default").len() == 4
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_real_status_bodies() {
    let kube = start(Kubelet::Off);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());

    let err = api_err(rcs.get("demo").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "replicationcontrollers \"demo\" not found");
    assert_eq!(err.details.as_ref().unwrap().kind, "replicationcontrollers");

    rcs.create(&PostParams::default(), &rc("demo", "demo", 0))
        .await
        .unwrap();
    let err = api_err(
        rcs.create(&PostParams::default(), &rc("demo", "demo", 0))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        err.message,
        "replicationcontrollers \"demo\" already exists"
    );

    let mut bad = rc("demo2", "demo", 1);
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .as_mut()
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = None;
    let err = api_err(rcs.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "ReplicationController \"demo2\" is invalid: spec.template.spec.containers[0].image: Required value"
    );
    let d = err.details.as_ref().unwrap();
    assert_eq!(d.kind, "ReplicationController");
    assert_eq!(d.causes[0].reason, "FieldValueRequired");
    assert_eq!(d.causes[0].field, "spec.template.spec.containers[0].image");

    let mut bad = rc("demo3", "demo", 1);
    bad.spec.as_mut().unwrap().selector = Some([("app".into(), "nope".into())].into());
    let err = api_err(rcs.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("`selector` does not match template `labels`"),
        "{}",
        err.message
    );

    let err = api_err(
        rcs.create(&PostParams::default(), &rc("Bad_Name", "demo", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
    );

    let long = "x".repeat(64);
    let err = api_err(
        rcs.create(&PostParams::default(), &rc("long", &long, 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.contains("must be no more than 63 characters"),
        "{}",
        err.message
    );

    let nope: Api<ReplicationController> = Api::namespaced(client.clone(), "nope");
    let err = api_err(
        nope.create(&PostParams::default(), &rc("demo", "demo", 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );

    // Stale resourceVersion on PUT → 409 Conflict; none → unconditional.
    let mut cur = rcs.get("demo").await.unwrap();
    cur.metadata.resource_version = Some("1".into());
    let err = api_err(
        rcs.replace("demo", &PostParams::default(), &cur)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("the object has been modified"));
    cur.metadata.resource_version = None;
    rcs.replace("demo", &PostParams::default(), &cur)
        .await
        .unwrap();

    // Server-side apply is refused loudly; JSON patch works.
    let err = api_err(
        rcs.patch(
            "demo",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    let req = http::Request::patch("/api/v1/namespaces/default/replicationcontrollers/demo")
        .header("content-type", "application/json-patch+json")
        .body(br#"[{"op":"replace","path":"/spec/replicas","value":4}]"#.to_vec())
        .unwrap();
    let patched: ReplicationController = client.request(req).await.unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(4));

    // Unknown paths and verbs.
    let err = api_err(
        client
            .request::<Value>(http::Request::get("/api/v1/nothing").body(vec![]).unwrap())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "the server could not find the requested resource")
    );
    let err = api_err(
        client
            .request::<Value>(http::Request::post("/version").body(vec![]).unwrap())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (405, "MethodNotAllowed"));

    // dryRun=All changes nothing.
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    rcs.create(&pp, &rc("dry", "dry", 1)).await.unwrap();
    assert!(kube.with_state(|s| s.rc("default", "dry").is_none()));

    // A wrong token → 401 Unauthorized.
    let text = std::fs::read_to_string(kube.kubeconfig()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, text.replace(kube.token(), "wrong-token")).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let bad: Api<Pod> = Api::default_namespaced(kube::Client::try_from(cfg).unwrap());
    let err = api_err(bad.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (err.code, err.reason.as_str(), err.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_events_bookmarks_and_expiry() {
    let kube = start(Kubelet::Off);
    let client = kube.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod = |name: &str, app: &str| -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
        .unwrap()
    };
    pods.create(&PostParams::default(), &pod("first", "demo"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("unrelated", "other"))
        .await
        .unwrap();

    let wp = WatchParams::default().labels("app=demo");
    let mut stream = Box::pin(pods.watch(&wp, "0").await.unwrap());
    match next(&mut stream).await {
        WatchEvent::Added(p) => assert_eq!(p.metadata.name.as_deref(), Some("first")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    let bookmark_rv = match next(&mut stream).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.metadata.annotations["k8s.io/initial-events-end"], "true");
            b.metadata.resource_version
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    };

    pods.create(&PostParams::default(), &pod("second", "demo"))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &pod("ignored", "other"))
        .await
        .unwrap();
    match next(&mut stream).await {
        WatchEvent::Added(p) => assert_eq!(p.metadata.name.as_deref(), Some("second")),
        other => panic!("expected ADDED second, got {other:?}"),
    }
    pods.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"a": "b"}}})),
    )
    .await
    .unwrap();
    match next(&mut stream).await {
        WatchEvent::Modified(p) => assert_eq!(p.metadata.annotations.unwrap()["a"], "b"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    // A label change out of the selector is a DELETED for this watch.
    pods.patch(
        "second",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    match next(&mut stream).await {
        WatchEvent::Deleted(p) => assert_eq!(p.metadata.name.as_deref(), Some("second")),
        other => panic!("expected DELETED (selector transition), got {other:?}"),
    }
    // No kubelet: delete is immediate.
    pods.delete("first", &DeleteParams::default())
        .await
        .unwrap();
    let deleted_rv = match next(&mut stream).await {
        WatchEvent::Deleted(p) => p.metadata.resource_version.unwrap(),
        other => panic!("expected DELETED, got {other:?}"),
    };
    assert!(deleted_rv.parse::<u64>().unwrap() > bookmark_rv.parse::<u64>().unwrap());

    // Replay from a resourceVersion.
    let mut replay = Box::pin(pods.watch(&wp, &bookmark_rv).await.unwrap());
    match next(&mut replay).await {
        WatchEvent::Added(p) => assert_eq!(p.metadata.name.as_deref(), Some("second")),
        other => panic!("expected replayed ADDED, got {other:?}"),
    }

    // close_watches ends the streams cleanly.
    kube.close_watches();
    let end = tokio::time::timeout(WAIT, async { while stream.next().await.is_some() {} });
    end.await.expect("the stream ends after close_watches");

    // After expire_history an old resourceVersion gets a 410 ERROR event, then the end.
    kube.expire_history();
    let mut old = Box::pin(pods.watch(&wp, &bookmark_rv).await.unwrap());
    match next(&mut old).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected ERROR 410, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, old.next())
            .await
            .unwrap()
            .is_none()
    );

    // The recorded watch request looks like kube's.
    let w = kube
        .requests()
        .into_iter()
        .find(|r| r.param("watch") == Some("true"))
        .unwrap();
    assert_eq!(w.path, "/api/v1/namespaces/default/pods");
    assert_eq!(w.param("labelSelector"), Some("app=demo"));
    assert_eq!(w.param("allowWatchBookmarks"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let created = rcs
        .create(&PostParams::default(), &rc("demo-rc", "demo", 1))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| {
        s.rc("default", "demo-rc")
            .unwrap()
            .status
            .as_ref()
            .unwrap()
            .ready_replicas
            == Some(1)
    })
    .unwrap();

    let scale = rcs.get_scale("demo-rc").await.unwrap();
    assert_eq!(scale.metadata.uid, created.metadata.uid);
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(1));
    let st = scale.status.as_ref().unwrap();
    assert_eq!((st.replicas, st.selector.as_deref()), (1, Some("app=demo")));

    let s = rcs
        .patch_scale(
            "demo-rc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().replicas, Some(3));
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| is_ready(p)).count() == 3
            && s.rc("default", "demo-rc")
                .unwrap()
                .status
                .as_ref()
                .unwrap()
                .ready_replicas
                == Some(3)
    })
    .unwrap();
    assert_eq!(
        rcs.get("demo-rc").await.unwrap().metadata.generation,
        Some(2)
    );

    // PUT with the current resourceVersion works; a stale one conflicts.
    let mut s: Scale = rcs.get_scale("demo-rc").await.unwrap();
    s.spec.as_mut().unwrap().replicas = Some(1);
    rcs.replace_scale("demo-rc", &PostParams::default(), &s)
        .await
        .unwrap();
    let err = api_err(
        rcs.replace_scale("demo-rc", &PostParams::default(), &s)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    kube.wait_until(WAIT, |s| s.pods("default").len() == 1)
        .unwrap();

    s.metadata.resource_version = None;
    s.spec.as_mut().unwrap().replicas = Some(-1);
    let err = api_err(
        rcs.replace_scale("demo-rc", &PostParams::default(), &s)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    );
    let err = api_err(rcs.get_scale("nope").await.unwrap_err());
    assert_eq!(err.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policies_and_garbage_collection() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());

    // Background: a Status back, the RC gone at once, its pods collected.
    rcs.create(&PostParams::default(), &rc("bg", "bg", 2))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| is_ready(p)).count() == 2
    })
    .unwrap();
    let gone = rcs.delete("bg", &DeleteParams::background()).await.unwrap();
    let status = gone
        .right()
        .expect("Background deletes answer with a Status");
    assert_eq!(status.details.unwrap().kind, "replicationcontrollers");
    assert!(kube.with_state(|s| s.rc("default", "bg").is_none()));
    kube.wait_until(WAIT, |s| s.pods("default").is_empty())
        .unwrap();

    // Foreground: the RC comes back with a finalizer and goes once its pods are gone.
    rcs.create(&PostParams::default(), &rc("fg", "fg", 2))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| is_ready(p)).count() == 2
    })
    .unwrap();
    let left = rcs.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let obj = left.left().expect("Foreground answers with the object");
    assert_eq!(obj.metadata.finalizers.unwrap(), ["foregroundDeletion"]);
    assert!(obj.metadata.deletion_timestamp.is_some());
    kube.wait_until(WAIT, |s| {
        s.pods("default").is_empty() && s.rc("default", "fg").is_none()
    })
    .unwrap();

    // Default (no policy): Orphan for core/v1 RCs — the pods keep running, unowned.
    let created = rcs
        .create(&PostParams::default(), &rc("orph", "orph", 2))
        .await
        .unwrap();
    let uid = created.metadata.uid.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| is_ready(p)).count() == 2
    })
    .unwrap();
    let left = rcs.delete("orph", &DeleteParams::default()).await.unwrap();
    let obj = left.left().expect("Orphan answers with the object");
    assert_eq!(obj.metadata.finalizers.unwrap(), ["orphan"]);
    kube.wait_until(WAIT, |s| s.rc("default", "orph").is_none())
        .unwrap();
    let pods = kube.pods("default");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert!(
            p.metadata.owner_references.is_none(),
            "{:?}",
            p.metadata.owner_references
        );
        assert!(p.metadata.deletion_timestamp.is_none());
        assert_eq!(phase(p), "Running");
    }
    // A new RC with the same selector adopts them instead of creating more.
    let adopter = rcs
        .create(&PostParams::default(), &rc("orph2", "orph", 2))
        .await
        .unwrap();
    let auid = adopter.metadata.uid.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default")
            .iter()
            .filter(|p| owned_by(p, &auid))
            .count()
            == 2
    })
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
    let dry = DeleteParams {
        dry_run: true,
        ..DeleteParams::background()
    };
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
    rcs.create(&PostParams::default(), &rc("demo", "demo", 1))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default")
            .iter()
            .any(|p| p.spec.as_ref().unwrap().node_name.is_some())
    })
    .unwrap();
    let name = kube.pods("default")[0].metadata.name.clone().unwrap();
    let marked = pods
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
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
        s.pod("default", &name)
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    }));
    // grace 0 removes it at once.
    pods.delete(
        &name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(kube.with_state(|s| s.pod("default", &name).is_none()));

    // With the status kubelet the delete is confirmed and the pod disappears.
    let kube = start(Kubelet::Status);
    let pods: Api<Pod> = Api::default_namespaced(kube.client().await);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "solo"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "solo").is_some_and(is_ready))
        .unwrap();
    let p = kube.pods("default").remove(0);
    let st = p.status.unwrap();
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.2"));
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(p.spec.unwrap().node_name.as_deref(), Some("fake-node"));
    pods.delete("solo", &DeleteParams::default()).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "solo").is_none())
        .unwrap();
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
    assert!(
        res.resources
            .iter()
            .any(|r| r.name == "replicationcontrollers/scale")
    );

    let two: Pod = serde_json::from_value(json!({"metadata": {"name": "two"},
        "spec": {"containers": [{"name": "web", "image": "a:1"}, {"name": "sidecar", "image": "b:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &two).await.unwrap();
    kube.wait_until(WAIT, |s| s.pod("default", "two").is_some_and(is_ready))
        .unwrap();
    let lp = LogParams {
        container: Some("web".into()),
        tail_lines: Some(2),
        ..Default::default()
    };
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
    assert!(
        stamp.ends_with('Z') && stamp.contains('.') && stamp.len() == 30,
        "{stamp}"
    );
    assert_eq!(line, "fake log line 10 from default/two/sidecar");
    let err = api_err(pods.logs("two", &LogParams::default()).await.unwrap_err());
    assert_eq!(
        (err.code, err.message.as_str()),
        (
            400,
            "a container name must be specified for pod two, choose one of: [web sidecar]"
        )
    );
    let lp = LogParams {
        container: Some("nope".into()),
        ..Default::default()
    };
    let err = api_err(pods.logs("two", &lp).await.unwrap_err());
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "container nope is not valid for pod two")
    );
    let err = api_err(
        pods.logs("missing", &LogParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);

    // Requests are recorded with their query and body; fail_next injects errors.
    kube.clear_requests();
    kube.fail_next("DELETE", "/api/v1/namespaces/default/pods/", 500, 1);
    let err = api_err(
        pods.delete("two", &DeleteParams::background())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert!(kube.with_state(|s| s.pod("default", "two").is_some()));
    pods.delete("two", &DeleteParams::background())
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unscheduled_pod_logs_are_empty_and_plain_http_works() {
    let kube = FakeKube::start(FakeOpts {
        tls: false,
        ..Default::default()
    })
    .unwrap();
    assert!(kube.url().starts_with("http://"));
    let pods: Api<Pod> = Api::default_namespaced(kube.client().await);
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(pods.logs("p", &LogParams::default()).await.unwrap(), "");
    // Status writes go through /status only.
    let mut p = pods.get("p").await.unwrap();
    p.status.as_mut().unwrap().phase = Some("Running".into());
    p.metadata.resource_version = None;
    let after = pods
        .replace_status("p", &PostParams::default(), &p)
        .await
        .unwrap();
    assert_eq!(phase(&after), "Running");
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
    pods.create(&PostParams::default(), &sh_pod("web", SERVE))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| {
        s.pod("default", "web").is_some_and(is_ready)
            && s.log_lines("default", "web", "main")
                .iter()
                .any(|l| l == "to stderr")
    })
    .unwrap();
    let pod = pods.get("web").await.unwrap();
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert_eq!(ip, "127.0.0.2");
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
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
    assert!(
        text.contains(&format!("KUBECONFIG={kubeconfig} PORT={port} PWD=")),
        "{text}"
    );
    assert!(
        text.contains("leaked=0\n"),
        "the test's environment leaked: {text}"
    );
    let pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));

    // Delete: SIGTERM reaches the process, which exits; the kubelet confirms; the pod goes.
    let marked = pods
        .delete("web", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(10));
    kube.wait_until(WAIT, |s| s.pod("default", "web").is_none())
        .unwrap();
    assert!(kube.with_state(|s| {
        s.log_lines("default", "web", "main")
            .iter()
            .any(|l| l == "got TERM")
    }));
    assert!(!pid_alive(pid), "the process was reaped");

    // A crashing container is restarted with back-off and its exit recorded.
    pods.create(&PostParams::default(), &sh_pod("crash", "echo bye; exit 3"))
        .await
        .unwrap();
    kube.wait_until(WAIT, |s| {
        s.pod("default", "crash").is_some_and(|p| {
            let Some(cs) = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
            else {
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

    // An unregistered image: ErrImagePull, Pending.
    let mut unknown = sh_pod("unknown", "true");
    unknown.spec.as_mut().unwrap().containers[0].image = Some("nope:1".into());
    pods.create(&PostParams::default(), &unknown).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pod("default", "unknown").is_some_and(|p| {
            let cs = p.status.as_ref().unwrap().container_statuses.as_ref();
            cs.and_then(|c| c[0].state.as_ref()?.waiting.as_ref()?.reason.clone())
                .as_deref()
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
    let tmpl = spec
        .spec
        .as_mut()
        .unwrap()
        .template
        .as_mut()
        .unwrap()
        .spec
        .as_mut()
        .unwrap();
    tmpl.containers = sh_pod("x", SERVE).spec.unwrap().containers;
    rcs.create(&PostParams::default(), &spec).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").iter().filter(|p| is_ready(p)).count() == 2
            && s.pods("default").iter().all(|p| {
                let n = p.metadata.name.as_deref().unwrap();
                s.log_lines("default", n, "main")
                    .iter()
                    .any(|l| l.starts_with("pid="))
            })
    })
    .unwrap();
    let mut ips: Vec<String> = kube
        .pods("default")
        .iter()
        .map(|p| p.status.as_ref().unwrap().pod_ip.clone().unwrap())
        .collect();
    ips.sort();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3"]);
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
    assert!(
        pids.iter().all(|p| !pid_alive(*p)),
        "Drop kills and reaps every process"
    );
}
