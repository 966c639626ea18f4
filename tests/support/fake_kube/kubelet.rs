//! The fake kubelet for node `fake-node` (docs/fake-kubernetes.md §15): binding (the scheduler's
//! part), pod addresses 127.0.0.N, Running status, canned logs and delete confirmation. Process
//! mode's per-pod supervisors are in process.rs; this pass decides when they start and stop.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::jiff::Timestamp;

use super::events;
use super::status::now_time;
use super::store::{Key, State};

pub const NODE: &str = "fake-node";
/// The labels of `fake-node`, as a real kubelet registers them; a pod whose `nodeSelector`
/// asks for anything else cannot be scheduled.
pub const NODE_LABELS: &[(&str, &str)] = &[
    ("kubernetes.io/hostname", NODE),
    ("kubernetes.io/os", "linux"),
    ("kubernetes.io/arch", "amd64"),
    ("beta.kubernetes.io/os", "linux"),
    ("beta.kubernetes.io/arch", "amd64"),
];
/// The scheduler's message for a pod no node fits (kube-scheduler v1.36, one node).
pub const UNSCHEDULABLE: &str = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
pub const HOST_IP: &str = "127.0.0.1";

/// What plays the node (docs/fake-kubernetes.md §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kubelet {
    /// Pods stay Pending with no `spec.nodeName`; deletes are immediate.
    #[default]
    Off,
    /// Pods are bound to `fake-node` but nothing confirms: graceful deletes stay Terminating.
    Bound,
    /// Bound, Running with a pod IP, ten canned log lines per container, deletes confirmed.
    Status,
    /// Status plus one local process per container (images registered with `register_image`).
    Process,
}

/// Work for the process supervisors, decided under the state lock and done outside it.
pub enum Action {
    Start(Key, String),
    Stop(String, i64),
}

/// Per-kubelet memory between passes.
#[derive(Default)]
pub struct Memory {
    /// Pod uid → when its deletion was first seen (for the confirmation delay).
    deleting_since: HashMap<String, Instant>,
}

pub struct Ctx<'a> {
    pub mode: Kubelet,
    pub confirm_delay: Duration,
    pub images: &'a HashMap<String, std::path::PathBuf>,
    /// Images whose pull fails (status and process modes), see `FakeKube::refuse_image`.
    pub unpullable: &'a HashSet<String>,
    /// Uids with a live supervisor, and whether it was already told to stop.
    pub supervised: &'a HashMap<String, bool>,
}

pub fn reconcile(state: &mut State, ctx: &Ctx, mem: &mut Memory) -> Vec<Action> {
    let mut actions = Vec::new();
    if ctx.mode == Kubelet::Off {
        return actions;
    }
    let pods: Vec<Pod> = state.pods.values().cloned().collect();
    let mut live = HashSet::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        live.insert(uid.clone());
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if node.is_none() {
            if pod.metadata.deletion_timestamp.is_none() {
                schedule(state, &pod);
            }
            continue;
        }
        if node.as_deref() != Some(NODE) || ctx.mode == Kubelet::Bound {
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            match ctx.supervised.get(&uid) {
                Some(false) => {
                    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30);
                    actions.push(Action::Stop(uid, grace));
                }
                Some(true) => {}
                None => {
                    let since = *mem.deleting_since.entry(uid.clone()).or_insert_with(Instant::now);
                    if since.elapsed() >= ctx.confirm_delay {
                        confirm_delete(state, &ns, &name, &uid);
                    }
                }
            }
            continue;
        }
        let started = pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some();
        match ctx.mode {
            Kubelet::Status if !started => {
                if let Some(image) = refused(&pod, ctx.unpullable) {
                    fail_pull(state, &pod, &image, "not found in the registry");
                    continue;
                }
                let Some(ip) = allocate_ip(state, &uid, false) else {
                    continue;
                };
                let status = running_status(&pod, &ip);
                state.modify::<Pod>(&ns, &name, |p| p.status = Some(status));
                canned_logs(state, &pod);
                for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                    let started = format!("Started container {}", c.name);
                    events::record(state, &pod, events::NORMAL, "Started", &started, "kubelet");
                }
            }
            Kubelet::Process if !ctx.supervised.contains_key(&uid) => {
                let spec = pod.spec.clone().unwrap_or_default();
                let missing = spec
                    .containers
                    .iter()
                    .find(|c| !ctx.images.contains_key(c.image.as_deref().unwrap_or("")));
                let missing =
                    missing.and_then(|c| c.image.clone()).or(refused(&pod, ctx.unpullable));
                if let Some(image) = missing {
                    fail_pull(
                        state,
                        &pod,
                        &image,
                        "not registered with the fake kubelet (FakeKube::register_image)",
                    );
                    continue;
                }
                let Some(ip) = allocate_ip(state, &uid, true) else {
                    continue;
                };
                state.ip_held.insert(uid.clone());
                let mut status = waiting_status(&pod, "ContainerCreating", "");
                set_addresses(&mut status, &ip);
                state.modify::<Pod>(&ns, &name, |p| p.status = Some(status));
                actions.push(Action::Start((ns, name), uid));
            }
            _ => {}
        }
    }
    for (uid, stopping) in ctx.supervised {
        if !live.contains(uid) && !stopping {
            actions.push(Action::Stop(uid.clone(), 0));
        }
    }
    mem.deleting_since.retain(|uid, _| live.contains(uid));
    actions
}

/// The scheduler's part: bind the pod to `fake-node` when its `nodeSelector` fits the node's
/// labels, else mark it unschedulable (condition `PodScheduled` False, reason `Unschedulable`)
/// and record `FailedScheduling`, as kube-scheduler does; once, not on every pass.
fn schedule(state: &mut State, pod: &Pod) {
    let (ns, name) = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    let fits = selector.iter().all(|(k, v)| NODE_LABELS.iter().any(|(nk, nv)| nk == k && nv == v));
    if fits {
        state.modify::<Pod>(&ns, &name, |p| {
            p.spec.get_or_insert_with(Default::default).node_name = Some(NODE.into())
        });
        let message = format!("Successfully assigned {ns}/{name} to {NODE}");
        events::record(state, pod, events::NORMAL, "Scheduled", &message, "default-scheduler");
        return;
    }
    let marked = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"));
    if marked {
        return;
    }
    state.modify::<Pod>(&ns, &name, |p| {
        let status = p.status.get_or_insert_with(Default::default);
        status.conditions = Some(vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(UNSCHEDULABLE.into()),
            last_transition_time: Some(now_time()),
            ..Default::default()
        }]);
    });
    events::record(
        state,
        pod,
        events::WARNING,
        "FailedScheduling",
        UNSCHEDULABLE,
        "default-scheduler",
    );
}

/// The first image of the pod that the fake registry refuses.
fn refused(pod: &Pod, unpullable: &HashSet<String>) -> Option<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.image.clone())
        .find(|i| unpullable.contains(i))
}

/// A failed pull, as the kubelet reports it: every container waiting with `ErrImagePull`, and
/// the `Pulling` and `Failed` events. Once: fresh timestamps would only churn watches.
fn fail_pull(state: &mut State, pod: &Pod, image: &str, why: &str) {
    if waiting_reason(pod) == Some("ErrImagePull") {
        return;
    }
    let (ns, name) = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let message = format!("failed to pull and unpack image {image:?}: {why}");
    let status = waiting_status(pod, "ErrImagePull", &message);
    state.modify::<Pod>(&ns, &name, |p| p.status = Some(status));
    events::record(
        state,
        pod,
        events::NORMAL,
        "Pulling",
        &format!("Pulling image {image:?}"),
        "kubelet",
    );
    let failed = format!("Failed to pull image {image:?}: {message}");
    events::record(state, pod, events::WARNING, "Failed", &failed, "kubelet");
    events::record(state, pod, events::WARNING, "Failed", "Error: ErrImagePull", "kubelet");
}

/// What a real kubelet sends once the containers are gone: DELETE with grace 0 and a uid
/// precondition. Done in-process (not recorded as a request).
pub fn confirm_delete(state: &mut State, ns: &str, name: &str, uid: &str) {
    if state.pod(ns, name).is_some_and(|p| p.metadata.uid.as_deref() == Some(uid)) {
        state.remove::<Pod>(ns, name);
    }
}

/// Addresses held by live processes of every fake in this test binary: tests run in parallel,
/// and two process-mode fakes must not start two servers on the same 127.0.0.N:port.
static PROCESS_IPS: std::sync::Mutex<std::collections::BTreeSet<u8>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The lowest free 127.0.0.N (N ≥ 2) for this pod, or the one it already has. `process`: also
/// free among the processes of other fakes in this test binary (then `release_process_ip`) and
/// with its port 8080 free on the machine.
pub fn allocate_ip(state: &mut State, uid: &str, process: bool) -> Option<String> {
    if let Some((n, _)) = state.ips.iter().find(|(_, u)| *u == uid) {
        return Some(format!("127.0.0.{n}"));
    }
    let mut global = PROCESS_IPS.lock().unwrap_or_else(|p| p.into_inner());
    // A process-mode pod's agent listens on its address's port 8080 (Ochopod's control port):
    // another process of the machine may hold that one (seen: port 8080 of the second loopback
    // address), so skip it.
    let busy = |n: &u8| std::net::TcpListener::bind((format!("127.0.0.{n}"), 8080)).is_err();
    let taken = |n: &u8| state.ips.contains_key(n) || (process && (global.contains(n) || busy(n)));
    let n = (2u8..=254).find(|n| !taken(n))?;
    if process {
        global.insert(n);
    }
    state.ips.insert(n, uid.to_string());
    Some(format!("127.0.0.{n}"))
}

/// Gives a process-mode address back once the pod's processes are gone.
pub fn release_process_ip(state: &mut State, uid: &str) {
    let mut global = PROCESS_IPS.lock().unwrap_or_else(|p| p.into_inner());
    state.ips.retain(|n, u| {
        let keep = u != uid;
        if !keep {
            global.remove(n);
        }
        keep
    });
}

pub fn set_addresses(status: &mut PodStatus, ip: &str) {
    status.host_ip = Some(HOST_IP.into());
    status.host_ips = Some(vec![HostIP { ip: HOST_IP.into() }]);
    status.pod_ip = Some(ip.into());
    status.pod_ips = Some(vec![PodIP { ip: ip.into() }]);
    status.start_time.get_or_insert_with(now_time);
}

pub fn conditions(ready: bool) -> Vec<PodCondition> {
    let t = |b: bool| if b { "True" } else { "False" };
    [
        ("PodReadyToStartContainers", true),
        ("Initialized", true),
        ("Ready", ready),
        ("ContainersReady", ready),
        ("PodScheduled", true),
    ]
    .into_iter()
    .map(|(ty, ok)| PodCondition {
        type_: ty.into(),
        status: t(ok).into(),
        last_transition_time: Some(now_time()),
        ..Default::default()
    })
    .collect()
}

fn base_status(pod: &Pod) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    PodStatus {
        qos_class: old.qos_class.or(Some("BestEffort".into())),
        start_time: old.start_time,
        ..Default::default()
    }
}

pub fn container_status(pod: &Pod, name: &str, image: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: String::new(),
        container_id: Some(format!("fake://{}/{name}", pod.metadata.uid.as_deref().unwrap_or(""))),
        ..Default::default()
    }
}

fn running_status(pod: &Pod, ip: &str) -> PodStatus {
    let mut status = base_status(pod);
    status.phase = Some("Running".into());
    set_addresses(&mut status, ip);
    status.conditions = Some(conditions(true));
    let spec = pod.spec.clone().unwrap_or_default();
    status.container_statuses = Some(
        spec.containers
            .iter()
            .map(|c| ContainerStatus {
                ready: true,
                started: Some(true),
                restart_count: 0,
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning { started_at: Some(now_time()) }),
                    ..Default::default()
                }),
                ..container_status(pod, &c.name, c.image.as_deref().unwrap_or(""))
            })
            .collect(),
    );
    status
}

/// The waiting reason of the pod's first container, if it is waiting.
fn waiting_reason(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .as_deref()
}

/// Pending with every container waiting for `reason`.
pub fn waiting_status(pod: &Pod, reason: &str, message: &str) -> PodStatus {
    let mut status = base_status(pod);
    status.phase = Some("Pending".into());
    if let Some(old) = pod.status.as_ref() {
        status.pod_ip = old.pod_ip.clone();
        status.pod_ips = old.pod_ips.clone();
        status.host_ip = old.host_ip.clone();
        status.host_ips = old.host_ips.clone();
    }
    status.conditions = Some(conditions(false));
    let spec = pod.spec.clone().unwrap_or_default();
    status.container_statuses = Some(
        spec.containers
            .iter()
            .map(|c| ContainerStatus {
                started: Some(false),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.into()),
                        message: (!message.is_empty()).then(|| message.into()),
                    }),
                    ..Default::default()
                }),
                ..container_status(pod, &c.name, c.image.as_deref().unwrap_or(""))
            })
            .collect(),
    );
    status
}

fn canned_logs(state: &mut State, pod: &Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = Timestamp::now();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let buf = state.logs.entry((ns.clone(), name.clone(), c.name.clone())).or_default();
        for i in 1..=10 {
            buf.push(now, format!("fake log line {i} from {ns}/{name}/{}", c.name));
        }
    }
}
