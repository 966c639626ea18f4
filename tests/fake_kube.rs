//! Tests of the fake Kubernetes API server (tests/support/fake_kube), driven with the real kube
//! client over HTTPS with the fake's generated CA, as the tools will drive it.
#![allow(clippy::unwrap_used)] // a failed step in a test should fail loudly

use crate::support;

use std::time::Duration;

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::fake_kube::select::{FieldSelector, LabelSelector};
use support::fake_kube::{FakeKube, FakeOpts, Kubelet, is_ready, phase};

use support::fake_kube::testing::{api_err, owned_by, rc, start};

const WAIT: Duration = Duration::from_secs(20);

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
    let f = &["metadata.name", "spec.nodeName", "status.replicas", "status.phase"];
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

    let created = rcs.create(&PostParams::default(), &rc("demo-rc", "demo", 2)).await.unwrap();
    let m = &created.metadata;
    assert_eq!(m.namespace.as_deref(), Some("default"));
    assert_eq!(m.uid.as_ref().map(String::len), Some(36));
    assert!(m.resource_version.as_ref().unwrap().parse::<u64>().is_ok());
    assert!(m.creation_timestamp.is_some());
    assert_eq!(m.generation, Some(1));
    assert_eq!(m.labels.as_ref().unwrap()["app"], "demo", "labels default to the template's");
    assert_eq!(created.status.as_ref().unwrap().replicas, 0);
    let tspec = created.spec.as_ref().unwrap().template.as_ref().unwrap().spec.as_ref().unwrap();
    assert_eq!(tspec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(tspec.termination_grace_period_seconds, Some(30));
    let c = &tspec.containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(c.ports.as_ref().unwrap()[0].protocol.as_deref(), Some("TCP"));

    let uid = m.uid.clone().unwrap();
    kube.wait_until(WAIT, |s| {
        s.pods("default").len() == 2
            && s.rc("default", "demo-rc").unwrap().status.as_ref().unwrap().replicas == 2
    })
    .unwrap();
    for p in kube.pods("default") {
        assert!(owned_by(&p, &uid));
        let name = p.metadata.name.clone().unwrap();
        let suffix = name.strip_prefix("demo-rc-").expect("generateName prefix");
        assert_eq!(suffix.len(), 5);
        assert!(suffix.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert_eq!(phase(&p), "Pending");
        assert_eq!(p.status.as_ref().unwrap().qos_class.as_deref(), Some("BestEffort"));
    }

    // Label and field selectors, on lists of both kinds.
    rcs.create(&PostParams::default(), &rc("other-rc", "other", 1)).await.unwrap();
    kube.wait_until(WAIT, |s| s.pods("default").len() == 3).unwrap();
    let list = rcs.list(&ListParams::default().labels("app=demo")).await.unwrap();
    let names: Vec<_> = list.items.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["demo-rc"]);
    assert!(list.metadata.resource_version.is_some());
    let list = pods.list(&ListParams::default().labels("app in (demo,other)")).await.unwrap();
    assert_eq!(list.items.len(), 3);
    let list = pods.list(&ListParams::default().labels("app,app!=demo")).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let one = kube.pods("default")[0].metadata.name.clone().unwrap();
    let list =
        pods.list(&ListParams::default().fields(&format!("metadata.name={one}"))).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let list = pods.list(&ListParams::default().fields("status.phase=Running")).await.unwrap();
    assert!(list.items.is_empty());
    let err = api_err(pods.list(&ListParams::default().fields("spec.foo=x")).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert_eq!(err.message, "field label not supported: spec.foo");
    let err = api_err(pods.list(&ListParams::default().labels("a b")).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));

    // List items carry no kind/apiVersion, as on a real server.
    let raw: Value = client
        .request(http::Request::get("/api/v1/namespaces/default/pods").body(vec![]).unwrap())
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
    assert_ne!(p.status.as_ref().unwrap().replicas, 42, "status is ignored on the main resource");
    kube.wait_until(WAIT, |s| {
        s.rc("default", "demo-rc").unwrap().status.as_ref().unwrap().observed_generation == Some(2)
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

    rcs.create(&PostParams::default(), &rc("demo", "demo", 0)).await.unwrap();
    let err =
        api_err(rcs.create(&PostParams::default(), &rc("demo", "demo", 0)).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "replicationcontrollers \"demo\" already exists");

    let mut bad = rc("demo2", "demo", 1);
    bad.spec.as_mut().unwrap().template.as_mut().unwrap().spec.as_mut().unwrap().containers[0]
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
    assert!(err.message.contains("`selector` does not match template `labels`"), "{}", err.message);

    let err =
        api_err(rcs.create(&PostParams::default(), &rc("Bad_Name", "demo", 1)).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
    );

    let long = "x".repeat(64);
    let err = api_err(rcs.create(&PostParams::default(), &rc("long", &long, 1)).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(err.message.contains("must be no more than 63 characters"), "{}", err.message);

    let nope: Api<ReplicationController> = Api::namespaced(client.clone(), "nope");
    let err =
        api_err(nope.create(&PostParams::default(), &rc("demo", "demo", 1)).await.unwrap_err());
    assert_eq!((err.code, err.message.as_str()), (404, "namespaces \"nope\" not found"));

    // Stale resourceVersion on PUT → 409 Conflict; none → unconditional.
    let mut cur = rcs.get("demo").await.unwrap();
    cur.metadata.resource_version = Some("1".into());
    let err = api_err(rcs.replace("demo", &PostParams::default(), &cur).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(err.message.contains("the object has been modified"));
    cur.metadata.resource_version = None;
    rcs.replace("demo", &PostParams::default(), &cur).await.unwrap();

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
    assert_eq!((err.code, err.reason.as_str()), (415, "UnsupportedMediaType"));
    let req = http::Request::patch("/api/v1/namespaces/default/replicationcontrollers/demo")
        .header("content-type", "application/json-patch+json")
        .body(br#"[{"op":"replace","path":"/spec/replicas","value":4}]"#.to_vec())
        .unwrap();
    let patched: ReplicationController = client.request(req).await.unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(4));

    // Strategic merge patch merges containers by name: the image changes, ports and env stay.
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "demo", "image": "example/demo:2.0"}]}}}});
    let bumped = rcs.patch("demo", &PatchParams::default(), &Patch::Strategic(smp)).await.unwrap();
    let c = &bumped.spec.unwrap().template.unwrap().spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("example/demo:2.0"));
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
    assert_eq!(c.env.as_ref().unwrap()[0].name, "POD_IP");
    // A merge patch replaces the list, as RFC 7386 says (and then fails validation here).
    let mp = json!({"spec": {"template": {"spec": {"containers": [{"name": "demo"}]}}}});
    let err =
        api_err(rcs.patch("demo", &PatchParams::default(), &Patch::Merge(mp)).await.unwrap_err());
    assert_eq!(err.code, 422);

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

    // dryRun=All changes nothing, but answers with the object as it would be stored
    // (defaults applied) and still validates.
    let pp = PostParams { dry_run: true, ..Default::default() };
    // The fake's replication manager may still be writing the status of the RCs created above
    // (a resourceVersion each): a dry run that wrote would bump it every time, so of three
    // tries at least one must leave it as it was.
    let mut unchanged = 0;
    let mut dry = None;
    for _ in 0..3 {
        let before = kube.with_state(|s| s.rv());
        dry = Some(rcs.create(&pp, &rc("dry", "dry", 1)).await.unwrap());
        assert!(kube.with_state(|s| s.rc("default", "dry").is_none()));
        unchanged += usize::from(kube.with_state(|s| s.rv()) == before);
    }
    assert!(unchanged >= 1, "every dry run changed the resourceVersion");
    let dry = dry.unwrap();
    let tpl = dry.spec.unwrap().template.unwrap().spec.unwrap();
    assert_eq!(tpl.restart_policy.as_deref(), Some("Always"));
    let mut bad = rc("dry-bad", "dry", 1);
    bad.spec.as_mut().unwrap().template.as_mut().unwrap().spec.as_mut().unwrap().containers[0]
        .image = None;
    let err = api_err(rcs.create(&pp, &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    // A wrong token → 401 Unauthorized.
    let text = std::fs::read_to_string(kube.kubeconfig()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, text.replace(kube.token(), "wrong-token")).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
    let bad: Api<Pod> = Api::default_namespaced(kube::Client::try_from(cfg).unwrap());
    let err = api_err(bad.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        (err.code, err.reason.as_str(), err.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource() {
    let kube = start(Kubelet::Status);
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let created = rcs.create(&PostParams::default(), &rc("demo-rc", "demo", 1)).await.unwrap();
    kube.wait_until(WAIT, |s| {
        s.rc("default", "demo-rc").unwrap().status.as_ref().unwrap().ready_replicas == Some(1)
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
            && s.rc("default", "demo-rc").unwrap().status.as_ref().unwrap().ready_replicas
                == Some(3)
    })
    .unwrap();
    assert_eq!(rcs.get("demo-rc").await.unwrap().metadata.generation, Some(2));

    // PUT with the current resourceVersion works; a stale one conflicts.
    let mut s: Scale = rcs.get_scale("demo-rc").await.unwrap();
    s.spec.as_mut().unwrap().replicas = Some(1);
    rcs.replace_scale("demo-rc", &PostParams::default(), &s).await.unwrap();
    let err = api_err(rcs.replace_scale("demo-rc", &PostParams::default(), &s).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    kube.wait_until(WAIT, |s| s.pods("default").len() == 1).unwrap();

    s.metadata.resource_version = None;
    s.spec.as_mut().unwrap().replicas = Some(-1);
    let err = api_err(rcs.replace_scale("demo-rc", &PostParams::default(), &s).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0")
    );
    let err = api_err(rcs.get_scale("nope").await.unwrap_err());
    assert_eq!(err.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unscheduled_pod_logs_are_empty_and_plain_http_works() {
    let kube = FakeKube::start(FakeOpts { tls: false, ..Default::default() }).unwrap();
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
    let after = pods.replace_status("p", &PostParams::default(), &p).await.unwrap();
    assert_eq!(phase(&after), "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_triples_answer_403() {
    let kube = start(Kubelet::Off);
    kube.forbid("list", "pods", Some("default"));
    kube.forbid("get", "pods/log", None);
    let client = kube.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let err = api_err(pods.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "pods is forbidden: User \"system:serviceaccount:ocho:portal\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let err = api_err(pods.logs("x", &LogParams::default()).await.unwrap_err());
    assert_eq!(err.code, 403);
    let other: Api<Pod> = Api::namespaced(client, "kube-system");
    assert!(other.list(&ListParams::default()).await.unwrap().items.is_empty());
}

/// Events as the real scheduler and kubelet record them: `Scheduled` for a pod that fits the
/// node, `FailedScheduling` (Warning) with the pod's `PodScheduled` condition False, reason
/// `Unschedulable`, for one whose `nodeSelector` no node has; `Failed` events and a waiting
/// `ErrImagePull` container for an image the registry lacks. Listed by `involvedObject`
/// field selectors; a field the event strategy does not know is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_why_pods_do_not_run() {
    use k8s_openapi::api::core::v1::Event;
    let kube = start(Kubelet::Status);
    kube.refuse_image("example/missing:1.0");
    let client = kube.client().await;
    let rcs: Api<ReplicationController> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    rcs.create(&pp, &rc("ok", "ok", 1)).await.unwrap();
    let mut picky = rc("picky", "picky", 1);
    let spec = picky.spec.as_mut().unwrap().template.as_mut().unwrap().spec.as_mut().unwrap();
    spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
    rcs.create(&pp, &picky).await.unwrap();
    let mut missing = rc("missing", "missing", 1);
    let spec = missing.spec.as_mut().unwrap().template.as_mut().unwrap().spec.as_mut().unwrap();
    spec.containers[0].image = Some("example/missing:1.0".into());
    rcs.create(&pp, &missing).await.unwrap();

    let name_of = |app: &str| {
        let app = app.to_string();
        let kube = &kube;
        move || {
            kube.pods("default")
                .into_iter()
                .find(|p| p.metadata.labels.as_ref().unwrap()["app"] == app)
                .and_then(|p| p.metadata.name)
        }
    };
    let reasons = |name: String| {
        let events = events.clone();
        async move {
            let lp = ListParams::default()
                .fields(&format!("involvedObject.kind=Pod,involvedObject.name={name}"));
            let list = events.list(&lp).await.unwrap().items;
            assert!(list.iter().all(|e| e.involved_object.name.as_deref() == Some(name.as_str())));
            list.iter().map(|e| e.reason.clone().unwrap_or_default()).collect::<Vec<_>>()
        }
    };
    kube.wait_until(WAIT, |s| s.pods("default").len() == 3 && s.rv() > 0).unwrap();
    let (ok, picky, missing) =
        (name_of("ok")().unwrap(), name_of("picky")().unwrap(), name_of("missing")().unwrap());
    kube.wait_until(WAIT, |s| {
        s.pod("default", &ok).is_some_and(|p| phase(p) == "Running")
            && s.pod("default", &missing).is_some_and(|p| {
                p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).any(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("ErrImagePull")
                })
            })
    })
    .unwrap();
    assert!(reasons(ok.clone()).await.contains(&"Scheduled".to_string()));
    assert_eq!(reasons(picky.clone()).await, ["FailedScheduling"]);
    let missing_reasons = reasons(missing.clone()).await;
    assert!(missing_reasons.contains(&"Failed".to_string()), "{missing_reasons:?}");
    let p = pods.get(&picky).await.unwrap();
    assert!(p.spec.unwrap().node_name.is_none());
    let cond = p.status.unwrap().conditions.unwrap();
    assert!(cond.iter().any(|c| c.type_ == "PodScheduled"
        && c.status == "False"
        && c.reason.as_deref() == Some("Unschedulable")));
    let bad = events.list(&ListParams::default().fields("spec.foo=x")).await.unwrap_err();
    let bad = api_err(bad);
    assert_eq!((bad.code, bad.message.as_str()), (400, "field label not supported: spec.foo"));
}
