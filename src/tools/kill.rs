//! `ocho kill GLOB…`: graceful first (`/control/kill` until every pod answers 410 or the
//! timeout passes, so each workload's finalize runs), then through Kubernetes: the cluster's
//! ReplicationControllers are deleted with propagation Background, so the garbage collector
//! removes every pod, answering or not (the server's default for core/v1 RCs, Orphan, would
//! leave them all running). RCs are found through each pod's `application` and by label, which
//! also catches pods that never registered. With `-i`, only those pods go and their RC is
//! scaled down accordingly. An empty match is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use super::workload::{self, Killed};
use super::{Glob, Pod, lookup};
use crate::error::{Error, Result, chain};
use crate::k8s::Kube;
use crate::k8s::ops::Propagation;
use crate::zk::Session;

crate::tools::k8s_tool_args! {
    /// stop clusters gracefully, then delete their replication controllers and pods
    #[argh(
        subcommand,
        name = "kill",
        example = "{command_name} --force web\n    stop every pod of web gracefully, then delete its replication\n    controllers",
        example = "{command_name} -i 2,3 web\n    remove only pods #2 and #3 of web; the others keep running",
        example = "{command_name} --force 'test-*'\n    remove every cluster whose name starts with test-",
        note = "Each GLOB matches `<namespace>.<cluster>` (a bare name matches any namespace). Every matched pod gets `POST /control/kill/<secs>` until it answers 410 or -t passes; then the RCs of the cluster (each pod's `application`, plus every RC labelled for the cluster) are deleted with propagation Background, so Kubernetes removes every pod, silent ones included. With -i SEQ…, only those pods are killed; then they are marked as the first to go (annotation controller.kubernetes.io/pod-deletion-cost) and their RC's replicas lowered by as many, so its controller removes exactly them and starts no replacement; the tool waits (up to -t) until their registrations are gone. Without -i, --force is required.\n\nOutput: per-pod problems on stderr (`<glob>: <pod key>: <reason>`), a stdout line `<glob>: deleted <rc>` per RC deleted, and (without -i) once the cluster's last pod is gone `<glob>: removed <cluster> from zookeeper` (its nodes deleted, so `ls` no longer lists it; waits up to -t), then `<P>% success / killed <N> pod(s)` (P over globs). With -j: {{\"<glob>\": {{\"ok\": bool, \"down\": [seq…], \"graceful\": [seq…], \"deleted\": [\"<rc>\"…], \"forgotten\": [\"<cluster>\"…], \"problems\": [\"…\"], \"warnings\": [\"<server warning>\"]}}}}; server warnings also go to stderr as `<item>: warning: <text>`. Exit 0 when every glob succeeded, 1 otherwise (a glob matching nothing fails), 2 on a usage error."
    )]
    pub struct Args {
        /// cluster globs
        #[argh(positional)]
        pub globs: Vec<String>,
        /// only the pods with these seq numbers (repeatable, or comma separated)
        #[argh(option, short = 'i')]
        pub indices: Vec<String>,
        /// required to kill whole clusters (without -i)
        #[argh(switch)]
        pub force: bool,
        /// seconds allowed for the graceful kill (default 60, at least 5)
        #[argh(option, short = 't', default = "60.0")]
        pub timeout: f64,
    }
    zk = "zookeeper hosts, host:port,… (env OCHOPOD_ZK; default 127.0.0.1:2181)";
}

/// What happened to one glob.
#[derive(Debug, Default)]
struct Outcome {
    down: Vec<u64>,
    graceful: Vec<u64>,
    deleted: Vec<String>,
    /// Clusters whose ZooKeeper nodes were removed once their last pod was gone.
    forgotten: Vec<String>,
    /// Lines for the text output about ZooKeeper.
    notes: Vec<String>,
    problems: Vec<String>,
    failed: bool,
    warnings: Vec<String>,
}

/// Runs the tool.
pub fn run(mut args: Args) -> Result<ExitCode> {
    args.choose_format()?;
    let globs = Glob::required("kill", &args.globs)?;
    let indices = super::parse_indices(&args.indices)?;
    if indices.is_none() && !args.force {
        return Err(Error::Usage(
            "kill: give --force to kill whole clusters, or -i to pick pods".into(),
        ));
    }
    let timeout = super::k8s_timeout(args.timeout)?;
    let (kube, zk) = workload::clients(&args.access(), &args.zk)?;

    let mut outcomes = Vec::new();
    for glob in &globs {
        let mut outcome = kill(&kube, &zk, glob, indices.as_ref(), timeout).unwrap_or_else(|e| {
            Outcome { problems: vec![chain(&e)], failed: true, ..Default::default() }
        });
        outcome.warnings = kube.take_warnings();
        outcomes.push((glob, outcome));
    }
    report(&outcomes, args.json)
}

fn kill(
    kube: &Kube,
    zk: &Session,
    glob: &Glob,
    indices: Option<&BTreeSet<u64>>,
    timeout: Duration,
) -> Result<Outcome> {
    let pods: Vec<Pod> = lookup(zk, std::slice::from_ref(glob), indices)?.pods;
    let by_label =
        if indices.is_none() { workload::rcs_by_cluster(kube, glob)? } else { BTreeMap::new() };
    let mut outcome = Outcome::default();
    if pods.is_empty() && by_label.is_empty() {
        outcome.failed = true;
        outcome.problems.push("no pods found: the cluster is either invalid or empty".into());
        return Ok(outcome);
    }

    for (pod, killed) in pods.iter().zip(workload::graceful_kill(&pods, timeout)) {
        match killed {
            Killed::Dead => outcome.graceful.push(pod.seq),
            Killed::NotConfirmed(why) => outcome.problems.push(format!(
                "{}: no graceful kill ({why}); deleted through kubernetes",
                pod.key()
            )),
        }
    }

    let fresh = workload::reconnect(zk)?;
    let zk = &fresh;
    if indices.is_some() {
        let chosen: Vec<&Pod> = pods.iter().collect();
        let problems =
            workload::remove_pods(kube, zk, &chosen, std::time::Instant::now() + timeout);
        outcome.failed = !problems.is_empty();
        outcome.problems.extend(problems);
        outcome.down = pods.iter().map(|p| p.seq).collect();
        return Ok(outcome);
    }

    let mut apps: BTreeSet<String> =
        pods.iter().map(|p| p.field("application")).filter(|a| !a.is_empty()).collect();
    apps.extend(by_label.values().flatten().map(workload::name));
    for pod in pods.iter().filter(|p| p.field("application").is_empty()) {
        outcome.failed = true;
        outcome.problems.push(format!(
            "{}: no application in its registration (not made by deploy?): not deleted",
            pod.key()
        ));
    }
    // RCs already gone (registrations outlive their pods until the ZooKeeper session expires)
    // count as done but are not reported as deleted.
    let mut done = Vec::new();
    for app in apps {
        match kube.delete_rc(&app, Propagation::Background) {
            Ok(existed) => {
                if existed {
                    outcome.deleted.push(app.clone());
                }
                done.push(app);
            }
            Err(e) => {
                outcome.failed = true;
                outcome.problems.push(chain(&e));
            }
        }
    }
    outcome.down =
        pods.iter().filter(|p| done.contains(&p.field("application"))).map(|p| p.seq).collect();
    if !outcome.failed {
        let mut clusters: BTreeSet<String> = pods.iter().map(|p| p.cluster.clone()).collect();
        clusters.extend(by_label.keys().cloned());
        let deadline = std::time::Instant::now() + timeout;
        for cluster in clusters {
            let left = workload::forget_cluster(zk, &cluster, deadline)?;
            if left.is_empty() {
                outcome.notes.push(format!("removed {cluster} from zookeeper"));
                outcome.forgotten.push(cluster);
            } else {
                let keys: Vec<String> = left.iter().map(Pod::key).collect();
                outcome.notes.push(format!(
                    "kept {cluster} in zookeeper: still registered after {}s: {}",
                    timeout.as_secs(),
                    keys.join(", ")
                ));
            }
        }
    }
    Ok(outcome)
}

fn report(outcomes: &[(&Glob, Outcome)], as_json: bool) -> Result<ExitCode> {
    let killed: usize = outcomes.iter().map(|(_, o)| o.down.len()).sum();
    let items = outcomes
        .iter()
        .map(|(glob, o)| workload::Item {
            name: glob.0.clone(),
            failed: o.failed,
            problems: o.problems.clone(),
            fields: json!({"down": o.down,
                "graceful": o.graceful,
                "deleted": o.deleted,
                "forgotten": o.forgotten}),
            warnings: o.warnings.clone(),
            notes: o
                .deleted
                .iter()
                .map(|rc| format!("deleted {rc}"))
                .chain(o.notes.iter().cloned())
                .collect(),
        })
        .collect();
    Ok(workload::report(items, as_json, |p| {
        format!("{p}% success / killed {killed} {}", super::pods(killed))
    }))
}
