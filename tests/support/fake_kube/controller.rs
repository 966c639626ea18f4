//! The replication manager (spec §11) and the garbage collector (spec §13), as passes over the
//! store that the fake's background thread runs after every change.

use std::cmp::Reverse;
use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Pod, ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

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
            surplus.sort_by_key(|p| {
                let rank = match phase(p) {
                    "Pending" => 0,
                    "Running" => 2,
                    _ => 1,
                };
                let created = p
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|u| state.created.get(u))
                    .copied()
                    .unwrap_or(0);
                (
                    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
                    rank,
                    is_ready(p),
                    Reverse(created),
                )
            });
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
