//! Events about pods, recorded as the real components record them (core/v1 `Event`, what
//! `kubectl describe pod` lists): the scheduler's `Scheduled` and `FailedScheduling`, the
//! kubelet's `Pulling`, `Failed`, `Started`. A repeat of the same reason and message on the same
//! object raises `count` and `lastTimestamp` instead of adding an event, as the real event
//! recorder's aggregation does.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

use super::kubelet::NODE;
use super::status::{now_time, random_u64};
use super::store::State;

/// `Normal` or `Warning`, the two event types.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Records (or counts again) an event about `pod` from `component` (`default-scheduler`,
/// `kubelet`).
pub fn record(
    state: &mut State,
    pod: &Pod,
    kind: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone();
    let same = state.events.iter().find(|((n, _), e)| {
        *n == ns
            && e.involved_object.uid == uid
            && e.reason.as_deref() == Some(reason)
            && e.message.as_deref() == Some(message)
    });
    if let Some(((_, key), _)) = same {
        let key = key.clone();
        state.modify::<Event>(&ns, &key, |e| {
            e.count = Some(e.count.unwrap_or(1) + 1);
            e.last_timestamp = Some(now_time());
        });
        return;
    }
    let host = (component == "kubelet").then(|| NODE.to_string());
    let event = Event {
        metadata: ObjectMeta {
            // The recorder names events `<object>.<hex of the time in nanoseconds>`.
            name: Some(format!("{name}.{:016x}", random_u64())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid,
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        type_: Some(kind.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
        source: Some(EventSource { component: Some(component.into()), host: host.clone() }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(host.unwrap_or_default()),
        first_timestamp: Some(now_time()),
        last_timestamp: Some(now_time()),
        event_time: None::<MicroTime>,
        count: Some(1),
        ..Default::default()
    };
    state.create::<Event>(&ns, event, false).expect("an event of an existing pod's namespace");
}
