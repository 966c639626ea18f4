//! The replication manager (docs/fake-kubernetes.md §11) and the garbage collector
//! (docs/fake-kubernetes.md §13), as passes over the store that the fake's background thread runs
//! after every change.

use std::cmp::Ordering;
use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Pod, ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::delete::{DeleteOpts, FOREGROUND, ORPHAN, delete_pod};
use super::select::LabelSelector;
use super::store::{Key, State, key_of};

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// The annotation that lowers (or raises) a pod's rank when its controller scales down.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn deletion_cost(pod: &Pod) -> i32 {
    // An absent or unparsable value counts as 0, as the real controller treats it.
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let c = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = c.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    ready.last_transition_time.as_ref().map(|t| t.0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
}

/// The power-of-two bucket of an age (nanoseconds): ages in the same bucket tie.
fn age_bucket(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// Orders a controller's pods for a scale-down, the first to delete first, as the real
/// replication manager ranks them: unscheduled before scheduled; Pending, then Unknown, then
/// Running; not ready before ready; lower `pod-deletion-cost` first; then, between ready pods,
/// the more recently ready; more container restarts first; the newer. Ages compare by
/// power-of-two bucket (the real controller's logarithmic scale-down) and ties go by uid, so
/// between pods started about the same time the choice is effectively arbitrary: a tool that
/// wants particular pods gone must say so with the deletion cost.
pub fn scale_down_order(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    let assigned = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
    let by_age = |x: Option<Timestamp>, y: Option<Timestamp>| match (x, y) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) if x == y => Ordering::Equal,
        (Some(x), Some(y)) => age_bucket(x, now)
            .cmp(&age_bucket(y, now))
            .then_with(|| a.metadata.uid.cmp(&b.metadata.uid)),
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_ordinal(a).cmp(&phase_ordinal(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| {
            if is_ready(a) && is_ready(b) {
                by_age(ready_since(a), ready_since(b))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| by_age(created(a), created(b)))
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

fn pods_in(state: &State, ns: &str) -> Vec<Pod> {
    state.pods(ns).into_iter().cloned().collect()
}

/// One pass of the replication manager over every RC.
pub fn reconcile_rcs(state: &mut State) {
    let keys: Vec<Key> = state.rcs.keys().cloned().collect();
    for (ns, name) in keys {
        let Some(rc) = state.rc(&ns, &name).cloned() else {
            continue;
        };
        if rc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let spec = rc.spec.clone().unwrap_or_default();
        let uid = rc.metadata.uid.clone().unwrap_or_default();
        let selector_map = spec.selector.clone().unwrap_or_default();
        let selector = LabelSelector::from_map(&selector_map);
        let labels = |p: &Pod| p.metadata.labels.clone().unwrap_or_default();

        // Adopt matching orphans; release owned pods that stopped matching.
        for pod in pods_in(state, &ns) {
            let owner = controller_uid(&pod).map(str::to_string);
            let matching = !selector_map.is_empty() && selector.matches_map(&labels(&pod));
            let pname = pod.metadata.name.clone().unwrap_or_default();
            if owner.is_none() && matching && pod.metadata.deletion_timestamp.is_none() {
                let r = owner_ref(&rc);
                state.modify::<Pod>(&ns, &pname, |p| {
                    p.metadata.owner_references.get_or_insert_with(Vec::new).push(r)
                });
            } else if owner.as_deref() == Some(uid.as_str()) && !matching {
                state.modify::<Pod>(&ns, &pname, |p| drop_owner(&mut p.metadata, &uid));
            }
        }

        let active = active_pods(state, &ns, &uid, &selector);
        let want = spec.replicas.unwrap_or(1).max(0) as usize;
        if active.len() < want {
            let template = spec.template.clone().unwrap_or_default();
            let tmeta = template.metadata.clone().unwrap_or_default();
            for _ in active.len()..want {
                let pod = Pod {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: tmeta.labels.clone(),
                        annotations: tmeta.annotations.clone(),
                        owner_references: Some(vec![owner_ref(&rc)]),
                        ..Default::default()
                    },
                    spec: template.spec.clone(),
                    status: None,
                };
                // A template the store rejects is the RC's problem, as on a real cluster.
                let _ = state.create::<Pod>(&ns, pod, false);
            }
        } else if active.len() > want {
            let mut surplus = active.clone();
            let now = Timestamp::now();
            surplus.sort_by(|a, b| scale_down_order(a, b, now));
            for p in surplus.iter().take(active.len() - want) {
                let pname = p.metadata.name.clone().unwrap_or_default();
                let _ = delete_pod(state, &ns, &pname, &DeleteOpts::default());
            }
        }

        let active = active_pods(state, &ns, &uid, &selector);
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let fully = active
            .iter()
            .filter(|p| {
                let l = labels(p);
                template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .count() as i32;
        let ready = active.iter().filter(|p| is_ready(p)).count() as i32;
        let nonzero = |n: i32| (n > 0).then_some(n);
        let status = ReplicationControllerStatus {
            replicas: active.len() as i32,
            fully_labeled_replicas: nonzero(fully),
            ready_replicas: nonzero(ready),
            available_replicas: nonzero(ready),
            observed_generation: rc.metadata.generation,
            conditions: None,
        };
        state.modify::<ReplicationController>(&ns, &name, |r| r.status = Some(status));
    }
}

fn active_pods(state: &State, ns: &str, uid: &str, selector: &LabelSelector) -> Vec<Pod> {
    state
        .pods(ns)
        .into_iter()
        .filter(|p| controller_uid(p) == Some(uid))
        .filter(|p| selector.matches_map(&p.metadata.labels.clone().unwrap_or_default()))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .cloned()
        .collect()
}

fn owner_ref(rc: &ReplicationController) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ReplicationController".into(),
        name: rc.metadata.name.clone().unwrap_or_default(),
        uid: rc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn drop_owner(meta: &mut ObjectMeta, uid: &str) {
    if let Some(refs) = meta.owner_references.as_mut() {
        refs.retain(|r| r.uid != uid);
        if refs.is_empty() {
            meta.owner_references = None;
        }
    }
}

fn refs_to(pod: &Pod, uid: &str) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|r| r.uid == uid)
}

/// One pass of the garbage collector: the orphan and foreground finalizers of RCs being
/// deleted, and dependents whose RC owners have all vanished (background propagation).
pub fn collect_garbage(state: &mut State) {
    let deleting: Vec<ReplicationController> =
        state.rcs.values().filter(|r| r.metadata.deletion_timestamp.is_some()).cloned().collect();
    for rc in deleting {
        let (ns, name) = key_of(&rc);
        let uid = rc.metadata.uid.clone().unwrap_or_default();
        let finalizers = rc.metadata.finalizers.clone().unwrap_or_default();
        if finalizers.iter().any(|f| f == ORPHAN) {
            for pod in pods_in(state, &ns).iter().filter(|p| refs_to(p, &uid)) {
                let pname = pod.metadata.name.clone().unwrap_or_default();
                state.modify::<Pod>(&ns, &pname, |p| drop_owner(&mut p.metadata, &uid));
            }
            state.modify::<ReplicationController>(&ns, &name, |r| drop_finalizer(r, ORPHAN));
        } else if finalizers.iter().any(|f| f == FOREGROUND) {
            for pod in pods_in(state, &ns).iter().filter(|p| refs_to(p, &uid)) {
                if pod.metadata.deletion_timestamp.is_none() {
                    let pname = pod.metadata.name.clone().unwrap_or_default();
                    let _ = delete_pod(state, &ns, &pname, &DeleteOpts::default());
                }
            }
            let blocking = state.pods(&ns).into_iter().any(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid && r.block_owner_deletion == Some(true))
            });
            if !blocking {
                state
                    .modify::<ReplicationController>(&ns, &name, |r| drop_finalizer(r, FOREGROUND));
            }
        }
    }

    let live: HashSet<String> = state.rcs.values().filter_map(|r| r.metadata.uid.clone()).collect();
    let dangling: Vec<Key> = state
        .pods
        .iter()
        .filter(|(_, p)| p.metadata.deletion_timestamp.is_none())
        .filter(|(_, p)| {
            let refs: Vec<&OwnerReference> = p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .filter(|r| r.kind == "ReplicationController")
                .collect();
            !refs.is_empty() && refs.iter().all(|r| !live.contains(&r.uid))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for (ns, name) in dangling {
        let _ = delete_pod(state, &ns, &name, &DeleteOpts::default());
    }
}

fn drop_finalizer(rc: &mut ReplicationController, which: &str) {
    if let Some(f) = rc.metadata.finalizers.as_mut() {
        f.retain(|x| x != which);
        if f.is_empty() {
            rc.metadata.finalizers = None;
        }
    }
}
