//! `ocho status`: what Kubernetes and ZooKeeper each know about a cluster, side by side. Per
//! matched cluster: its RCs (image, desired/current/ready), then every pod Kubernetes has
//! (phase, container state and reason, restarts, latest events) joined by name with the Ochopod
//! registration whose `task` it is (seq, and the pod's own `state` and `process` from `/info`).
//! A pod that never registered is shown with the reason Kubernetes gives (Unschedulable,
//! ErrImagePull, CrashLoopBackOff, OOMKilled, …); a registration without a pod is shown too.
//! Read-only: lists RCs, pods and events, posts `/info`. The diagnosis of one pod
//! ([`diagnose`]) is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod as KubePod, ReplicationController};
use serde_json::{Map, Value, json};

use super::watch::Round;
use super::workload::{self, PARALLEL};
use super::{Answer, Glob, Pod, fan_out, lookup, output, post, scope, text};
use crate::error::{Result, chain};
use crate::k8s::Kube;
use crate::k8s::objects::{LABEL_CLUSTER, LABEL_NAMESPACE};
use crate::zk::Session;

crate::tools::k8s_tool_args! {
    /// show each cluster's replication controllers and pods as kubernetes and zookeeper see them
    #[argh(
        subcommand,
        name = "status",
        example = "{command_name} default.web\n    why is a pod of default.web not running? its RCs, pods and events",
        example = "{command_name} web --events 10\n    the same with the last 10 events of each pod",
        example = "{command_name} -w web\n    the same, drawn again whenever it changes (Ctrl-C ends it)",
        example = "{command_name} -o yaml\n    every cluster, as YAML",
        note = "Each GLOB matches `<namespace>.<cluster>` (a bare name matches any namespace; default *). Read-only: lists the clusters' replication controllers, pods and events, and asks each registered pod its /info.\n\nText: per cluster `<ns.cluster> -> R/K pod(s) registered`, the RCs (rc | image | desired | current | ready), the pods (pod | phase | state | restarts | ochopod), where state is the container's (running, waiting: <reason>, terminated: <reason>, last: <reason> when it restarted) and ochopod is `#<seq> <state>` for a registered pod, else `not registered: <reason>`; then the latest events of each pod (`<pod>: <type> <reason> (xN, <age>): <message>`) and registrations that match no pod.\n\nJSON (-j): {{\"<ns.cluster>\": {{\"rcs\": [{{\"name\", \"image\", \"desired\", \"current\", \"ready\"}}], \"pods\": [{{\"name\", \"rc\", \"phase\", \"ready\": bool, \"state\", \"reason\", \"message\", \"restarts\", \"last_terminated\", \"node\", \"ip\", \"terminating\": bool, \"registered\": {{\"seq\", \"state\", \"process\"}}|null, \"not_registered\": \"<reason>\"|null, \"events\": [{{\"type\", \"reason\", \"message\", \"count\", \"last\"}}], \"events_error\": str|null}}], \"unmatched\": [{{\"seq\", \"task\"}}]}}}}.\n\nExit 0 when every pod Kubernetes has is registered, 1 when one is not, a registration has no pod or nothing matched, 2 on a usage error."
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (default *; a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// events shown per pod, latest last (default 3; 0 reads none)
        #[argh(option, default = "3")]
        pub events: usize,
        /// seconds each registered pod has to answer /info (default 5)
        #[argh(option, short = 't', default = "5.0")]
        pub timeout: f64,
        /// redraw when something changes (ZooKeeper watches; Kubernetes and the pods are read
        /// again every 2 s)
        #[argh(switch, short = 'w')]
        pub watch: bool,
        /// with -w: stop after this many seconds (default: until interrupted)
        #[argh(option)]
        pub watch_for: Option<f64>,
    }
    zk = "zookeeper hosts, host:port,… (env OCHOPOD_ZK; default 127.0.0.1:2181)";
}

/// What Kubernetes says about one pod, reduced to what an operator reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Diagnosis {
    pub phase: String,
    pub ready: bool,
    /// `running`, `waiting`, `terminated`, or empty before any container status exists.
    pub state: String,
    /// The reason behind the state: the container's waiting or terminated reason, or the
    /// scheduler's (`Unschedulable`); empty when running.
    pub reason: String,
    pub message: String,
    pub restarts: i32,
    /// Why the container last ended (`OOMKilled`, `Error`, …), when it restarted.
    pub last_terminated: String,
    pub terminating: bool,
    pub scheduled: bool,
}

fn first_container(pod: &KubePod) -> Option<&ContainerStatus> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    // The container that explains most: the first not ready one, else the first.
    statuses.iter().find(|c| !c.ready).or(statuses.first())
}

/// Reads a pod's phase, conditions and container statuses.
pub fn diagnose(pod: &KubePod) -> Diagnosis {
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let condition = |ty: &str| conditions.iter().find(|c| c.type_ == ty);
    let mut d = Diagnosis {
        phase: status.phase.clone().unwrap_or_default(),
        ready: condition("Ready").is_some_and(|c| c.status == "True"),
        restarts: status.container_statuses.iter().flatten().map(|c| c.restart_count).sum(),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        scheduled: pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some(),
        ..Default::default()
    };
    if let Some(c) = first_container(pod) {
        let state = c.state.clone().unwrap_or_default();
        if let Some(w) = state.waiting {
            d.state = "waiting".into();
            d.reason = w.reason.unwrap_or_default();
            d.message = w.message.unwrap_or_default();
        } else if let Some(t) = state.terminated {
            d.state = "terminated".into();
            d.reason = t.reason.unwrap_or_default();
            d.message = t.message.unwrap_or_else(|| format!("exit code {}", t.exit_code));
        } else if state.running.is_some() {
            d.state = "running".into();
        }
        if let Some(t) = c.last_state.as_ref().and_then(|l| l.terminated.as_ref()) {
            d.last_terminated = t.reason.clone().unwrap_or_else(|| format!("exit {}", t.exit_code));
        }
    }
    if let Some(c) = condition("PodScheduled").filter(|c| c.status == "False") {
        d.reason = c.reason.clone().unwrap_or_else(|| "Unschedulable".into());
        d.message = c.message.clone().unwrap_or_default();
    }
    if d.reason.is_empty() && matches!(d.phase.as_str(), "Failed" | "Succeeded") {
        d.reason = status.reason.clone().unwrap_or_else(|| d.phase.clone());
        d.message = status.message.clone().unwrap_or_default();
    }
    d
}

/// Why a pod Kubernetes has is not registered in ZooKeeper, as far as Kubernetes can tell.
/// `warning` is the latest Warning event's `reason: message`, the last resort.
pub fn unregistered_reason(d: &Diagnosis, warning: Option<&str>) -> String {
    let with = |reason: &str, message: &str| {
        if message.is_empty() { reason.to_string() } else { format!("{reason}: {message}") }
    };
    let mut why = if d.terminating {
        "terminating".to_string()
    } else if !d.reason.is_empty() && d.reason != "ContainerCreating" {
        with(&d.reason, &d.message)
    } else if !d.scheduled {
        "not scheduled yet".to_string()
    } else if d.state == "waiting" || d.state.is_empty() {
        "container not started yet".to_string()
    } else if d.state == "running" {
        "running, but its agent has not registered (not started yet, or cannot reach \
         zookeeper: see ocho log --k8s)"
            .to_string()
    } else {
        with(&d.phase, "")
    };
    if !d.last_terminated.is_empty() {
        why += &format!(" (last exit: {}, {} restart(s))", d.last_terminated, d.restarts);
    }
    if let Some(w) = warning.filter(|_| d.reason.is_empty() && !d.terminating) {
        why += &format!("; latest warning: {w}");
    }
    why
}

/// One pod's row: the Kubernetes side and, when registered, the Ochopod side.
struct Row {
    name: String,
    rc: String,
    node: String,
    ip: String,
    diagnosis: Diagnosis,
    events: Vec<Event>,
    /// Why the events could not be read.
    events_error: Option<String>,
    /// (registration, its /info answer).
    registered: Option<(Pod, Answer)>,
}

impl Row {
    fn ochopod(&self) -> String {
        match &self.registered {
            Some((pod, answer)) => match answer.ok() {
                Some(info) => format!("#{} {}", pod.seq, text(info.get("state"))),
                None => format!("#{} ({})", pod.seq, answer.problem().unwrap_or_default()),
            },
            None => format!("not registered: {}", self.not_registered()),
        }
    }

    fn not_registered(&self) -> String {
        let warning =
            self.events.iter().rev().find(|e| e.type_.as_deref() == Some("Warning")).map(|e| {
                format!(
                    "{}: {}",
                    e.reason.as_deref().unwrap_or(""),
                    e.message.as_deref().unwrap_or("")
                )
            });
        unregistered_reason(&self.diagnosis, warning.as_deref())
    }

    fn state(&self) -> String {
        let d = &self.diagnosis;
        let mut s = if d.reason.is_empty() || d.state == "running" {
            d.state.clone()
        } else if d.state.is_empty() {
            d.reason.clone()
        } else {
            format!("{}: {}", d.state, d.reason)
        };
        if !d.last_terminated.is_empty() {
            s += &format!(" (last: {})", d.last_terminated);
        }
        if d.terminating {
            s += " (terminating)";
        }
        s
    }

    fn json(&self) -> Value {
        let d = &self.diagnosis;
        let registered = self.registered.as_ref().map(|(pod, answer)| {
            let info = answer.ok();
            json!({
                "seq": pod.seq,
                "state": info.map(|i| text(i.get("state"))),
                "process": info.map(|i| text(i.get("process"))),
                "error": answer.problem(),
            })
        });
        let events: Vec<Value> = self.events.iter().map(event_json).collect();
        json!({
            "name": self.name,
            "rc": self.rc,
            "phase": d.phase,
            "ready": d.ready,
            "state": d.state,
            "reason": d.reason,
            "message": d.message,
            "restarts": d.restarts,
            "last_terminated": d.last_terminated,
            "node": self.node,
            "ip": self.ip,
            "terminating": d.terminating,
            "registered": registered,
            "not_registered": self.registered.is_none().then(|| self.not_registered()),
            "events": events,
            "events_error": self.events_error,
        })
    }
}

/// When an event last happened: its `lastTimestamp`, else `eventTime`, else when it was made.
fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn event_json(e: &Event) -> Value {
    json!({
        "type": e.type_,
        "reason": e.reason,
        "message": e.message,
        "count": e.count.unwrap_or(1),
        "last": event_time(e).map(|t| t.to_string()),
    })
}

fn event_line(e: &Event) -> String {
    let age = event_time(e)
        .map(|t| {
            let secs = k8s_openapi::jiff::Timestamp::now().as_second() - t.as_second();
            format!("{}s ago", secs.max(0))
        })
        .unwrap_or_else(|| "?".into());
    format!(
        "{} {} (x{}, {age}): {}",
        e.type_.as_deref().unwrap_or(""),
        e.reason.as_deref().unwrap_or(""),
        e.count.unwrap_or(1),
        e.message.as_deref().unwrap_or("")
    )
}

/// One cluster's report.
#[derive(Default)]
struct Cluster {
    rcs: Vec<ReplicationController>,
    rows: Vec<Row>,
    /// Registrations whose `task` names no pod Kubernetes has.
    unmatched: Vec<Pod>,
}

fn rc_json(rc: &ReplicationController) -> Value {
    let status = rc.status.clone().unwrap_or_default();
    json!({
        "name": workload::name(rc),
        "image": image(rc),
        "desired": workload::replicas(rc),
        "current": status.replicas,
        "ready": status.ready_replicas.unwrap_or(0),
    })
}

fn image(rc: &ReplicationController) -> String {
    rc.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// The RC that controls a pod (its controller owner reference), by name.
fn owner(pod: &KubePod) -> String {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.name.clone())
        .unwrap_or_default()
}

/// `<namespace>.<cluster>` from a pod's identity labels.
fn qualified(pod: &KubePod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    Some(format!("{}.{}", labels.get(LABEL_NAMESPACE)?, labels.get(LABEL_CLUSTER)?))
}

pub fn run(mut args: Args) -> Result<ExitCode> {
    args.choose_format()?;
    let globs = Glob::list(&args.clusters)?;
    let timeout = super::seconds("-t", args.timeout)?;
    let scope = scope::current()?;
    let lasting = super::watch::bound(args.watch, args.watch_for)?;
    let access = args.access();
    let kube = Kube::connect(&access)?;
    let zk = Session::connect(&args.zk, Duration::from_secs(10))?;
    let see = |zk: &Session| round(&args, &kube, zk, &globs, scope.as_deref(), timeout);
    if args.watch {
        // Kubernetes' side (RCs, pods, events) is read again with the pods, every 2 s.
        return super::watch::watch(&zk, &globs, lasting, &mut |zk| see(zk));
    }
    let drawn = see(&zk)?;
    drop(zk);
    output::emit(&drawn.out);
    Ok(drawn.code)
}

/// One report on open clients.
fn round(
    args: &Args,
    kube: &Kube,
    zk: &Session,
    globs: &[Glob],
    scope: Option<&[Glob]>,
    timeout: Duration,
) -> Result<Round> {
    let wanted = |c: &str| globs.iter().any(|g| g.matches(c)) && scope::allows(scope, c);
    // The ZooKeeper lookup applies the scope itself.
    let found = lookup(zk, globs, None)?;
    let answers = fan_out(&found.pods, PARALLEL, |pod| post(pod, "/info", b"", timeout));

    let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
    for (name, rcs) in workload::rcs_by_cluster(kube, &Glob("*".into()))? {
        if wanted(&name) {
            clusters.entry(name).or_default().rcs = rcs;
        }
    }
    let mut registrations: BTreeMap<String, (Pod, Answer)> = BTreeMap::new();
    let mut nameless = Vec::new();
    for (pod, answer) in found.pods.into_iter().zip(answers) {
        let task = pod.field("task");
        clusters.entry(pod.cluster.clone()).or_default();
        if task.is_empty() {
            nameless.push(pod);
        } else {
            registrations.insert(task, (pod, answer));
        }
    }
    for pod in kube.list_pods(LABEL_CLUSTER)? {
        let Some(cluster) = qualified(&pod).filter(|c| wanted(c)) else { continue };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // Events are the explanation, not the subject: a server that refuses them (a Role
        // from before `status`) leaves the rest of the report standing.
        let (mut events, events_error) = match args.events {
            0 => (Vec::new(), None),
            _ => match kube.pod_events(&name, &uid) {
                Ok(events) => (events, None),
                Err(e) => (Vec::new(), Some(chain(&e))),
            },
        };
        events.sort_by_key(event_time);
        events.drain(..events.len().saturating_sub(args.events));
        let status = pod.status.clone().unwrap_or_default();
        let row = Row {
            rc: owner(&pod),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
            ip: status.pod_ip.unwrap_or_default(),
            diagnosis: diagnose(&pod),
            events,
            events_error,
            registered: registrations.remove(&name),
            name,
        };
        clusters.entry(cluster).or_default().rows.push(row);
    }
    for (pod, _) in registrations
        .into_values()
        .chain(nameless.into_iter().map(|p| (p, Answer::Failed(String::new()))))
    {
        clusters.entry(pod.cluster.clone()).or_default().unmatched.push(pod);
    }
    // A cluster ZooKeeper still lists but that has neither RCs, pods nor registrations (a
    // killed one) says nothing.
    clusters.retain(|_, c| !(c.rcs.is_empty() && c.rows.is_empty() && c.unmatched.is_empty()));
    for c in clusters.values_mut() {
        c.rows.sort_by(|a, b| {
            let seq = |r: &Row| r.registered.as_ref().map(|(p, _)| p.seq).unwrap_or(u64::MAX);
            (seq(a), &a.name).cmp(&(seq(b), &b.name))
        });
        c.unmatched.sort_by_key(|p| p.seq);
    }
    let healthy = !clusters.is_empty()
        && clusters
            .values()
            .all(|c| c.unmatched.is_empty() && c.rows.iter().all(|r| r.registered.is_some()));
    let out = if args.json {
        let mut map = Map::new();
        for (name, c) in &clusters {
            let unmatched: Vec<Value> = c
                .unmatched
                .iter()
                .map(|p| json!({"seq": p.seq, "task": p.field("task")}))
                .collect();
            map.insert(
                name.clone(),
                json!({
                    "rcs": c.rcs.iter().map(rc_json).collect::<Vec<_>>(),
                    "pods": c.rows.iter().map(Row::json).collect::<Vec<_>>(),
                    "unmatched": unmatched,
                }),
            );
        }
        output::structured(&Value::Object(map))
    } else {
        render(&clusters, &args.clusters)
    };
    let code = if healthy { ExitCode::SUCCESS } else { ExitCode::from(1) };
    Ok(Round { out, notes: Vec::new(), code })
}

fn render(clusters: &BTreeMap<String, Cluster>, globs: &[String]) -> String {
    if clusters.is_empty() {
        let globs = if globs.is_empty() { "*".into() } else { globs.join(" ") };
        return output::no_pods(&globs);
    }
    let mut out = String::new();
    for (name, c) in clusters {
        let registered = c.rows.iter().filter(|r| r.registered.is_some()).count();
        let pods = super::pods(c.rows.len());
        out += &format!("\n{name} -> {registered}/{} {pods} registered\n\n", c.rows.len());
        if !c.rcs.is_empty() {
            let rows: Vec<Vec<String>> = c
                .rcs
                .iter()
                .map(|rc| {
                    let v = rc_json(rc);
                    ["name", "image", "desired", "current", "ready"]
                        .iter()
                        .map(|k| text(v.get(*k)))
                        .collect()
                })
                .collect();
            out += &output::table(&["rc", "image", "desired", "current", "ready"], &rows);
            out += "\n";
        }
        if !c.rows.is_empty() {
            let rows: Vec<Vec<String>> = c
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.diagnosis.phase.clone(),
                        r.state(),
                        r.diagnosis.restarts.to_string(),
                        r.ochopod(),
                    ]
                })
                .collect();
            out += &output::table(&["pod", "phase", "state", "restarts", "ochopod"], &rows);
        }
        let with_events: Vec<&Row> =
            c.rows.iter().filter(|r| !r.events.is_empty() || r.events_error.is_some()).collect();
        if !with_events.is_empty() {
            out += "\nevents ->\n";
            for r in with_events {
                for e in &r.events {
                    out += &format!("- {}: {}\n", r.name, event_line(e));
                }
                if let Some(error) = &r.events_error {
                    out += &format!("- {}: events not readable: {error}\n", r.name);
                }
            }
        }
        if !c.unmatched.is_empty() {
            let seqs: BTreeSet<String> = c
                .unmatched
                .iter()
                .map(|p| format!("#{} (task {:?})", p.seq, p.field("task")))
                .collect();
            out += &format!(
                "\nregistered without a kubernetes pod: {}\n",
                seqs.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> KubePod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn an_unschedulable_pod_says_why_the_scheduler_refused_it() {
        let mut p = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}));
        p.spec.as_mut().unwrap().node_name = None;
        let d = diagnose(&p);
        assert_eq!((d.reason.as_str(), d.scheduled), ("Unschedulable", false));
        assert_eq!(unregistered_reason(&d, None), "Unschedulable: 0/3 nodes are available");
    }

    #[test]
    fn a_crash_loop_names_its_last_exit_and_restarts() {
        let d = diagnose(&pod(json!({"phase": "Running", "containerStatuses": [{"name": "c",
            "image": "i", "imageID": "", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})));
        assert_eq!(d.state, "waiting");
        assert_eq!(d.last_terminated, "OOMKilled");
        assert_eq!(
            unregistered_reason(&d, None),
            "CrashLoopBackOff: back-off 40s (last exit: OOMKilled, 4 restart(s))"
        );
    }

    #[test]
    fn image_pull_failures_and_plain_running_pods() {
        let d = diagnose(&pod(json!({"phase": "Pending", "containerStatuses": [{"name": "c",
            "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}}}]})));
        assert_eq!(unregistered_reason(&d, None), "ImagePullBackOff: Back-off pulling");
        let d = diagnose(&pod(json!({"phase": "Running", "containerStatuses": [{"name": "c",
            "image": "i", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}}]})));
        assert_eq!(d.state, "running");
        assert!(
            unregistered_reason(&d, Some("Unhealthy: probe failed")).contains("latest warning")
        );
    }
}
