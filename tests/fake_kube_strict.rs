//! The fake takes request bodies as a real API server does: with `fieldValidation`, a field the
//! model does not know is a 400 `strict decoding error` naming its path with `Strict`, a
//! `Warning` header with `Warn` (the default) and nothing with `Ignore`; objects too big for etcd
//! are a 500 worded as etcd's, bodies over 3 MiB a 413.
#![allow(clippy::unwrap_used)]

use crate::support;

use serde_json::{Value, json};
use support::fake_kube::Kubelet;
use support::fake_kube::testing::{rc, start};

/// POSTs `body` to the RC collection with `query`; returns (code, warnings, body).
async fn post(
    kube: &support::fake_kube::FakeKube,
    query: &str,
    body: &Value,
) -> (u16, Vec<String>, Value) {
    let client = kube.client().await;
    let req =
        http::Request::post(format!("/api/v1/namespaces/default/replicationcontrollers{query}"))
            .header("content-type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
    let res = client.send(req).await.unwrap();
    let code = res.status().as_u16();
    let warnings =
        res.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let bytes = res.into_body().collect_bytes().await.unwrap();
    (code, warnings, serde_json::from_slice(&bytes).unwrap())
}

fn with_typos(name: &str) -> Value {
    let mut v = serde_json::to_value(rc(name, name, 0)).unwrap();
    v["spec"]["template"]["spec"]["nodeSelectr"] = json!({"disk": "ssd"});
    v["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
    v["spec"]["template"]["spec"]["nodeName"] = Value::Null; // a null is no unknown field
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_follow_field_validation() {
    let kube = start(Kubelet::Off);
    let (code, warnings, body) = post(&kube, "?fieldValidation=Strict", &with_typos("a")).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["reason"], "BadRequest");
    assert_eq!(
        body["message"],
        "ReplicationController in version \"v1\" cannot be handled as a ReplicationController: \
         strict decoding error: unknown field \"spec.template.spec.containers[0].imagee\", \
         unknown field \"spec.template.spec.nodeSelectr\""
    );
    assert!(warnings.is_empty());
    assert!(kube.rcs("default").is_empty(), "nothing stored");

    let (code, warnings, _) = post(&kube, "", &with_typos("b")).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"spec.template.spec.containers[0].imagee\"""#,
            r#"299 - "unknown field \"spec.template.spec.nodeSelectr\"""#
        ]
    );
    let stored = serde_json::to_value(&kube.rcs("default")[0]).unwrap();
    assert!(stored["spec"]["template"]["spec"].get("nodeSelectr").is_none(), "dropped");

    let (code, warnings, _) = post(&kube, "?fieldValidation=Ignore", &with_typos("c")).await;
    assert_eq!((code, warnings.len()), (201, 0));

    // A known field passes Strict.
    let mut ok = serde_json::to_value(rc("d", "d", 0)).unwrap();
    ok["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    let (code, warnings, body) = post(&kube, "?fieldValidation=Strict", &ok).await;
    assert_eq!((code, warnings.len()), (201, 0), "{body}");
    assert_eq!(body["spec"]["template"]["spec"]["nodeSelector"]["disk"], "ssd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_too_big_for_etcd_are_refused_as_a_real_server_does() {
    let kube = start(Kubelet::Off);
    let sized = |name: &str, kib: usize| {
        let mut v = serde_json::to_value(rc(name, name, 0)).unwrap();
        // An env value: no validation limit, unlike annotations (256 KiB in all).
        v["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "BLOB", "value": "x".repeat(kib * 1024)}]);
        v
    };
    let (code, _, body) = post(&kube, "", &sized("a", 1400)).await;
    assert_eq!(code, 201, "{body}");
    let (code, _, body) = post(&kube, "", &sized("b", 1700)).await;
    assert_eq!((code, body["message"].as_str()), (500, Some("etcdserver: request is too large")));
    let (code, _, body) = post(&kube, "", &sized("c", 2200)).await;
    assert_eq!(code, 500);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max ("
        ) && message.ends_with(" vs. 2097152)"),
        "{message}"
    );
    let (code, _, body) = post(&kube, "", &sized("d", 3100)).await;
    assert_eq!((code, body["reason"].as_str()), (413, Some("RequestEntityTooLarge")));
    assert_eq!(kube.rcs("default").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rc_names_that_are_no_dns_label_draw_the_real_warning() {
    let kube = start(Kubelet::Off);
    let dotted = serde_json::to_value(rc("ochopod.default.web-1", "w1", 0)).unwrap();
    let (code, warnings, _) = post(&kube, "", &dotted).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        [
            r#"299 - "metadata.name: this is used in Pod names and hostnames, which can result in surprising behavior; a DNS label is recommended: [must not contain dots]""#
        ]
    );
    let label = serde_json::to_value(rc("ochopod-default-web-1", "w2", 0)).unwrap();
    let (code, warnings, _) = post(&kube, "", &label).await;
    assert_eq!((code, warnings.len()), (201, 0));
}
