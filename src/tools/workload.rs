//! What `kill`, `scale` and `bump` share: the ReplicationControllers of an Ochopod cluster
//! (found by label, whatever registered in ZooKeeper), the graceful `/control/kill` loop, the
//! removal of chosen pods (mark them, then lower their RC's replicas so the controller removes
//! exactly those and replaces none), the wait for a cluster's pods to be registered and configured, and the way
//! their results are reported.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::{Map, Value, json};

use super::{Answer, Glob, Pod, fan_out, lookup, post};
use crate::error::Result;
use crate::k8s::objects::{ANNOTATION_QUALIFIED, LABEL_CLUSTER, LABEL_NAMESPACE};
use crate::k8s::{Access, Kube};
use crate::zk::Session;

/// Pods contacted at once.
pub const PARALLEL: usize = 32;

/// The Ochopod cluster (`<namespace>.<cluster>`) an RC of `deploy` belongs to.
/// The clients of a workload tool: Kubernetes through `access` and a ZooKeeper session on `zk`.
pub fn clients(access: &Access, zk: &str) -> Result<(Kube, Session)> {
    Ok((Kube::connect(access)?, Session::connect(zk, Duration::from_secs(10))?))
}

/// A fresh session on the same hosts. The session's client runs only while a call is in
/// progress, so after a long stretch without one (a graceful kill that waits for silent pods)
/// its server connection may have timed out; the tools reconnect after such a stretch.
pub fn reconnect(zk: &Session) -> Result<Session> {
    Session::connect(zk.hosts(), Duration::from_secs(10))
}

/// One cluster's (or glob's) result in a workload tool's report.
pub struct Item {
    /// The cluster or glob it is about.
    pub name: String,
    pub failed: bool,
    pub problems: Vec<String>,
    /// The tool's own JSON fields, as an object (`{"up": …}`, `{"delta": …}`, …).
    pub fields: Value,
    /// What the API server warned about while working on it (its `Warning` headers).
    pub warnings: Vec<String>,
    /// What was done to Kubernetes objects, one line each (`created <rc>`, `deleted <rc>`,
    /// `rolled back: …`), printed on stdout before the summary in text mode.
    pub notes: Vec<String>,
}

/// Prints the result of kill, scale or bump. With `-j`: one object
/// `{"<item>": {"ok": bool, <fields>, "problems": [...], "warnings": [...]}}`; otherwise every
/// server warning on stderr as `<item>: warning: <text>` and every problem as
/// `<item>: <problem>`, then `summary(percent of items that succeeded)` on stdout. Exit 0 only when
/// every item succeeded.
pub fn report(items: Vec<Item>, as_json: bool, summary: impl FnOnce(usize) -> String) -> ExitCode {
    let ok = items.iter().filter(|i| !i.failed).count();
    let all = items.len();
    if as_json {
        let mut out = Map::new();
        for item in items {
            let mut fields = Map::new();
            if let Value::Object(own) = item.fields {
                fields.extend(own);
            }
            fields.insert("ok".into(), json!(!item.failed));
            fields.insert("problems".into(), json!(item.problems));
            fields.insert("warnings".into(), json!(item.warnings));
            out.insert(item.name, Value::Object(fields));
        }
        print!("{}", super::output::structured(&Value::Object(out)));
    } else {
        for item in &items {
            for warning in &item.warnings {
                eprintln!("{}: warning: {warning}", item.name);
            }
            for problem in &item.problems {
                eprintln!("{}: {problem}", item.name);
            }
        }
        for item in &items {
            for note in &item.notes {
                println!("{}: {note}", item.name);
            }
        }
        println!("{}", summary(super::output::percent(ok, all)));
    }
    if ok == all { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

pub fn qualified(rc: &ReplicationController) -> Option<String> {
    if let Some(q) = rc.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_QUALIFIED)) {
        return Some(q.clone());
    }
    let labels = rc.metadata.labels.as_ref()?;
    Some(format!("{}.{}", labels.get(LABEL_NAMESPACE)?, labels.get(LABEL_CLUSTER)?))
}

/// RCs made by `deploy` whose cluster matches `glob`, grouped by cluster, each group oldest
/// first (by creation time, then name).
pub fn rcs_by_cluster(
    kube: &Kube,
    glob: &Glob,
) -> Result<BTreeMap<String, Vec<ReplicationController>>> {
    let mut found: BTreeMap<String, Vec<ReplicationController>> = BTreeMap::new();
    for rc in kube.list_rcs(LABEL_CLUSTER)? {
        if let Some(q) = qualified(&rc).filter(|q| glob.matches(q)) {
            found.entry(q).or_default().push(rc);
        }
    }
    for rcs in found.values_mut() {
        rcs.sort_by(|a, b| {
            let key = |rc: &ReplicationController| {
                (rc.metadata.creation_timestamp.clone().map(|t| t.0), rc.metadata.name.clone())
            };
            key(a).cmp(&key(b))
        });
    }
    Ok(found)
}

/// The desired replicas of an RC (its spec).
pub fn replicas(rc: &ReplicationController) -> i32 {
    rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// The name of an RC.
pub fn name(rc: &ReplicationController) -> String {
    rc.metadata.name.clone().unwrap_or_default()
}

/// How one pod took `/control/kill`.
#[derive(Debug, Clone, PartialEq)]
pub enum Killed {
    /// It answered 410: its lifecycle is gone (finalize ran).
    Dead,
    /// It never answered 410 before the deadline; the reason of its last answer.
    NotConfirmed(String),
}

/// Posts `/control/kill/<secs>` to every pod until each answers 410 or `timeout` has passed.
/// The first call blocks while the pod tears its process down; a 200 is followed by another call
/// that should see 410.
pub fn graceful_kill(pods: &[Pod], timeout: Duration) -> Vec<Killed> {
    let deadline = Instant::now() + timeout;
    fan_out(pods, PARALLEL, |pod| {
        let mut last = String::from("not tried");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Killed::NotConfirmed(last);
            }
            if let Some(signal) = super::interrupt::received() {
                return Killed::NotConfirmed(super::interrupt::describe(signal));
            }
            let secs = left.as_secs().max(1);
            // The client waits a little longer than the pod's own timeout, as the leader does.
            match post(pod, &format!("/control/kill/{secs}"), b"", left.mul_f64(1.25)) {
                Answer::Json { status: 410, .. } => return Killed::Dead,
                Answer::Json { status: 200, .. } => last = "answered 200 but not 410 yet".into(),
                Answer::Json { status, .. } => last = format!("HTTP {status}"),
                Answer::Failed(why) => {
                    last = why;
                    // A silent pod: do not spin on connection errors.
                    thread::sleep(Duration::from_millis(250).min(left));
                }
            }
        }
    })
}

/// Removes chosen pods from their RCs without letting the controller start replacements:
/// each pod (by its `task`, the Kubernetes pod name) is marked as the first to go on a
/// scale-down (`pod-deletion-cost`), then its RC's replicas are lowered by as many through the
/// `scale` subresource, so the controller itself deletes exactly those pods; then waits, up to
/// `deadline`, until their registrations are gone from ZooKeeper (their agents exited). A chosen
/// pod still registered then (the controller removed another, e.g. an unready one, first) is
/// named. Deleting first, as the original did, makes the controller
/// create a replacement at once, which is scheduled, registers and is configured before the
/// scale-down reaches it. Returns one line per problem.
pub fn remove_pods(kube: &Kube, zk: &Session, chosen: &[&Pod], deadline: Instant) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_app: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in chosen {
        by_app.entry(pod.field("application")).or_default().push(pod);
    }
    let mut marked: Vec<&Pod> = Vec::new();
    for (app, pods) in by_app {
        if app.is_empty() {
            problems.push(format!(
                "{} pod(s) without an application in their registration: not removed",
                pods.len()
            ));
            continue;
        }
        let mut mine = Vec::new();
        for pod in pods {
            let task = pod.field("task");
            if task.is_empty() {
                problems.push(format!("{}: no task (pod name) in its registration", pod.key()));
                continue;
            }
            match kube.mark_first_to_go(&task) {
                Ok(true) => mine.push(pod),
                // Gone already: its controller has replaced it, so its replicas stay.
                Ok(false) => problems.push(format!(
                    "{}: pod {task} no longer exists; replicas of {app} unchanged for it",
                    pod.key()
                )),
                Err(e) => problems.push(format!("{}: {}", pod.key(), crate::error::chain(&e))),
            }
        }
        if mine.is_empty() {
            continue;
        }
        let lowered = kube.get_scale(&app).and_then(|current| {
            let target = (current - mine.len() as i32).max(0);
            kube.set_scale(&app, target)
        });
        match lowered {
            Ok(()) => marked.extend(mine),
            Err(e) => problems.push(crate::error::chain(&e)),
        }
    }
    problems.extend(wait_gone(zk, &marked, deadline));
    problems
}

/// Waits until none of `pods` is registered any more; names those still registered at
/// `deadline`.
fn wait_gone(zk: &Session, pods: &[&Pod], deadline: Instant) -> Vec<String> {
    let mut left: Vec<&Pod> = pods.to_vec();
    loop {
        let mut clusters: Vec<&str> = left.iter().map(|p| p.cluster.as_str()).collect();
        clusters.sort_unstable();
        clusters.dedup();
        let mut registered = Vec::new();
        for cluster in clusters {
            match pods_of(zk, cluster) {
                Ok(found) => registered.extend(found.into_iter().map(|p| p.uuid)),
                Err(e) => return vec![crate::error::chain(&e)],
            }
        }
        left.retain(|p| registered.contains(&p.uuid));
        if let Some(signal) = super::interrupt::received().filter(|_| !left.is_empty()) {
            let keys: Vec<String> = left.iter().map(|p| p.key()).collect();
            return vec![format!(
                "{} before the registrations of {} were gone (their RC is scaled down)",
                super::interrupt::describe(signal),
                keys.join(", ")
            )];
        }
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    left.iter()
        .map(|pod| {
            format!(
                "{}: still registered after its RC was scaled down (its controller removes \
                 unscheduled, pending and unready pods before ready ones, whatever their \
                 deletion cost; kill it again with -i once those are gone)",
                pod.key()
            )
        })
        .collect()
}

/// Registered pods of one cluster (exact qualified name).
pub fn pods_of(zk: &Session, cluster: &str) -> Result<Vec<Pod>> {
    let glob = Glob(cluster.replace(['*', '?', '['], "?"));
    let mut found = lookup(zk, std::slice::from_ref(&glob), None)?.pods;
    found.retain(|p| p.cluster == cluster);
    Ok(found)
}

/// Once no pod of `cluster` is registered (waiting up to `deadline`), removes the cluster's
/// ZooKeeper nodes (`/ochopod/clusters/<cluster>` and everything under it), so `ls` no longer
/// lists a killed cluster. Returns the pods still registered at the deadline (nothing removed
/// then).
pub fn forget_cluster(zk: &Session, cluster: &str, deadline: Instant) -> Result<Vec<Pod>> {
    loop {
        let left = pods_of(zk, cluster)?;
        if !left.is_empty() {
            if Instant::now() >= deadline {
                return Ok(left);
            }
            thread::sleep(Duration::from_millis(250));
            continue;
        }
        delete_tree(zk, &crate::ochopod::paths::cluster(cluster))?;
        return Ok(Vec::new());
    }
}

fn delete_tree(zk: &Session, path: &str) -> Result<()> {
    for child in zk.children(path)?.unwrap_or_default() {
        delete_tree(zk, &format!("{path}/{child}"))?;
    }
    zk.delete(path)
}

/// The uuids in a cluster's `snapshot` node: the pods its leader configured last.
pub fn configured(zk: &Session, cluster: &str) -> Result<Vec<String>> {
    let data = zk.get(&crate::ochopod::paths::snapshot(cluster))?.unwrap_or_default();
    Ok(match serde_json::from_slice::<Value>(&data) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    })
}

/// What [`wait_for`] saw last.
#[derive(Debug, Default)]
pub struct Waited {
    /// The registered pods of the cluster.
    pub pods: Vec<Pod>,
    /// The uuids in the cluster's snapshot (configured by its leader).
    pub configured: Vec<String>,
    /// Whether the condition held.
    pub ok: bool,
    /// Seqs of the watched application's pods whose process is `dead` (their `/info`).
    pub dead: Vec<u64>,
    /// It stopped before the deadline because enough watched pods were dead.
    pub gave_up: bool,
    /// It stopped because the tool was interrupted ([`super::interrupt`]).
    pub interrupted: Option<nix::sys::signal::Signal>,
}

impl Waited {
    /// Registered and configured pods of `application`, and how many are dead, for a report:
    /// `2 of 3 pod(s) registered, 1 configured, 1 dead`.
    pub fn counts(&self, application: &str, want: usize) -> String {
        let mine: Vec<&Pod> =
            self.pods.iter().filter(|p| p.field("application") == application).collect();
        let configured = mine.iter().filter(|p| self.configured.contains(&p.uuid)).count();
        let mut text = format!(
            "{} of {want} {} registered, {configured} configured",
            mine.len(),
            super::pods(want)
        );
        if !self.dead.is_empty() {
            text.push_str(&format!(", {} dead", self.dead.len()));
        }
        text
    }
}

/// Why a wait for `want` pods of `application` failed: the counts, and either that the
/// watched pods are dead (given up early) or the time waited.
pub fn wait_failure(application: &str, waited: &Waited, want: usize, timeout: Duration) -> String {
    let counts = waited.counts(application, want);
    if let Some(signal) = waited.interrupted {
        format!("{application}: {counts}: {} while waiting", super::interrupt::describe(signal))
    } else if waited.gave_up {
        format!(
            "{application}: {counts}: gave up early, the new pods are dead (their workload \
             ended; see `ocho log`)"
        )
    } else {
        format!("{application}: {counts} after {}s", timeout.as_secs())
    }
}

/// Waits until `want(pods, configured)` holds for the registered pods of `cluster`, checking
/// every 250 ms up to `deadline`; `progress` sees each new count. With `watch` =
/// (application, n), it also asks that application's pods for `/info` about once a second and
/// gives up early once `n` of them report their process `dead` (a pod whose workload ended
/// stays so: waiting longer cannot help).
pub fn wait_for(
    zk: &Session,
    cluster: &str,
    deadline: Instant,
    watch: Option<(&str, usize)>,
    mut progress: impl FnMut(&[Pod]),
    want: impl Fn(&[Pod], &[String]) -> bool,
) -> Result<Waited> {
    let mut last_count = usize::MAX;
    let mut next_look = Instant::now();
    loop {
        let pods = pods_of(zk, cluster)?;
        if pods.len() != last_count {
            last_count = pods.len();
            progress(&pods);
        }
        let configured = configured(zk, cluster)?;
        let held = want(&pods, &configured);
        // A dead pod may well be registered and configured: look before saying it held.
        let mut dead = Vec::new();
        if let Some((app, n)) = watch
            && n > 0
            && (held || Instant::now() >= next_look)
        {
            next_look = Instant::now() + Duration::from_secs(1);
            let mine: Vec<Pod> =
                pods.iter().filter(|p| p.field("application") == app).cloned().collect();
            let answers =
                fan_out(&mine, PARALLEL, |p| post(p, "/info", b"", Duration::from_secs(3)));
            dead = mine
                .iter()
                .zip(&answers)
                .filter(|(_, a)| {
                    a.ok().and_then(|i| i.get("process")).and_then(Value::as_str) == Some("dead")
                })
                .map(|(p, _)| p.seq)
                .collect();
            if dead.len() >= n {
                return Ok(Waited {
                    pods,
                    configured,
                    ok: false,
                    dead,
                    gave_up: true,
                    interrupted: None,
                });
            }
        }
        if held {
            return Ok(Waited {
                pods,
                configured,
                ok: true,
                dead,
                gave_up: false,
                interrupted: None,
            });
        }
        let interrupted = super::interrupt::received();
        if Instant::now() >= deadline || interrupted.is_some() {
            return Ok(Waited { pods, configured, ok: false, dead, gave_up: false, interrupted });
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// True when exactly `count` pods of `application` are registered and every one of them is in
/// the cluster's snapshot (its leader configured them).
pub fn settled(pods: &[Pod], configured: &[String], application: &str, count: usize) -> bool {
    let mine: Vec<&Pod> = pods.iter().filter(|p| p.field("application") == application).collect();
    mine.len() == count && mine.iter().all(|p| configured.contains(&p.uuid))
}
