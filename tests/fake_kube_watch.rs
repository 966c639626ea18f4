//! Watch tests of the fake Kubernetes API server (tests/support/fake_kube): initial events,
//! bookmarks, live events, selector transitions, replay, 410 after expiry, timeouts, and freeing
//! a watch whose client went away. Driven with the real kube client over HTTPS.
#![allow(clippy::unwrap_used)] // a failed step in a test should fail loudly

use crate::support;

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::fake_kube::Kubelet;

use support::fake_kube::testing::start;

const WAIT: Duration = Duration::from_secs(20);

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
    pods.create(&PostParams::default(), &pod("first", "demo")).await.unwrap();
    pods.create(&PostParams::default(), &pod("unrelated", "other")).await.unwrap();

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

    pods.create(&PostParams::default(), &pod("second", "demo")).await.unwrap();
    pods.create(&PostParams::default(), &pod("ignored", "other")).await.unwrap();
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
    pods.delete("first", &DeleteParams::default()).await.unwrap();
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
    assert!(tokio::time::timeout(WAIT, old.next()).await.unwrap().is_none());

    // The recorded watch request looks like kube's.
    let w = kube.requests().into_iter().find(|r| r.param("watch") == Some("true")).unwrap();
    assert_eq!(w.path, "/api/v1/namespaces/default/pods");
    assert_eq!(w.param("labelSelector"), Some("app=demo"));
    assert_eq!(w.param("allowWatchBookmarks"), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_end_on_timeout_and_are_freed_on_disconnect() {
    let kube = start(Kubelet::Off);
    let pods: Api<Pod> = Api::default_namespaced(kube.client().await);
    let mut short = Box::pin(pods.watch(&WatchParams::default().timeout(1), "0").await.unwrap());
    let end = tokio::time::timeout(WAIT, async { while short.next().await.is_some() {} });
    end.await.expect("timeoutSeconds ends the watch");

    let stream = pods.watch(&WatchParams::default(), "0").await.unwrap();
    kube.wait_until(WAIT, |s| s.watch_count() == 1).unwrap();
    drop(stream);
    // hyper notices the closed connection without any event to write; the reconcile pass
    // then drops the watcher.
    kube.wait_until(WAIT, |s| s.watch_count() == 0).unwrap();
}
