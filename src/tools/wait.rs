//! `ocho wait`: blocks until the matched clusters are up — pods registered and each cluster
//! configured by its leader (leader state exactly `leader`, nothing pending, every pod's process
//! `running`) — printing progress as it changes, re-checking as soon as ZooKeeper reports a
//! change under a matched cluster. [`until_ready`] is the reusable part
//! (`deploy --wait`).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Glob, Pod, output, text, tool_args};
use crate::error::{Error, Result};
use crate::zk::{Change, Session};

tool_args! {
    /// block until clusters are registered, configured and running
    #[argh(
        subcommand,
        name = "wait",
        example = "{command_name} web\n    block until web is registered, configured and running (at most 60 s)",
        example = "{command_name} --pods 3 -t 300 kafka\n    wait up to five minutes for three running kafka pods",
        example = "{command_name} -j zookeeper web\n    wait for both clusters; print the outcome as JSON",
        note = "A cluster is ready when it has at least --pods pods (default 1), every pod \
                answers /info with process `running`, and one pod is in state `leader` (not \
                pending, not configuring). Per glob, clusters without pods (left over in \
                zookeeper) are ignored once another matched cluster has pods. A change in \
                zookeeper under a matched cluster (registration, snapshot, hash) triggers a \
                re-check at once; without one, clusters are re-checked every second.\n\
                Text: a line `<ns.cluster>: <state>` whenever a cluster's state changes, then \
                `ready: <clusters>` (exit 0) or `timed out after Ns, still waiting for:` and one \
                line per cluster or glob (exit 1).\n\
                JSON (-j), printed at the end: {{\"<ns.cluster or unmatched glob>\": {{\"ready\": bool, \
                \"pods\": int, \"running\": int, \"leader\": \"<ns.cluster #seq>\"|null, \"state\": str}}, …}}"
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// pods each cluster needs before it counts as ready (default 1)
        #[argh(option, default = "1")]
        pub pods: usize,
        /// seconds each pod has to answer one /info (default 5)
        #[argh(option, default = "5.0")]
        pub pod_timeout: f64,
    }
    timeout = "60.0", "seconds to wait in all (default 60)";
}

/// Where one cluster (or a glob that matches none) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `<ns.cluster>`, or `<glob>` when the glob matches no cluster with pods.
    pub name: String,
    pub ready: bool,
    pub pods: usize,
    pub running: usize,
    pub leader: Option<String>,
    /// `ready (…)` or what is still missing.
    pub state: String,
}

/// Options of [`until_ready`].
#[derive(Debug, Clone)]
pub struct Target {
    pub globs: Vec<Glob>,
    /// Pods each cluster needs (at least 1).
    pub min_pods: usize,
    /// Per-request deadline towards pods.
    pub pod_timeout: Duration,
    pub parallel: usize,
}

/// One look at every cluster of `target`.
pub fn check(zk: &Session, target: &Target) -> Result<Vec<Status>> {
    let found = super::lookup(zk, &target.globs, None)?;
    let infos = super::fan_out(&found.pods, target.parallel, |pod| {
        super::post(pod, "/info", b"", target.pod_timeout)
    });
    let mut by_cluster: BTreeMap<&str, Vec<(&Pod, &super::Answer)>> = BTreeMap::new();
    for (pod, info) in found.pods.iter().zip(&infos) {
        by_cluster.entry(&pod.cluster).or_default().push((pod, info));
    }
    let mut out = Vec::new();
    for glob in &target.globs {
        let live: Vec<&str> = by_cluster.keys().copied().filter(|c| glob.matches(c)).collect();
        if live.is_empty() {
            out.push(Status {
                name: glob.0.clone(),
                ready: false,
                pods: 0,
                running: 0,
                leader: None,
                state: "no pods registered".into(),
            });
        }
        for cluster in live {
            if out.iter().any(|s: &Status| s.name == cluster) {
                continue;
            }
            out.push(judge(cluster, &by_cluster[cluster], target.min_pods.max(1)));
        }
    }
    Ok(out)
}

fn judge(cluster: &str, pods: &[(&Pod, &super::Answer)], min_pods: usize) -> Status {
    let silent: Vec<String> = pods
        .iter()
        .filter_map(|(p, a)| a.problem().map(|why| format!("{} ({why})", p.key())))
        .collect();
    let infos: Vec<(&Pod, &Value)> = pods.iter().filter_map(|(p, a)| Some((*p, a.ok()?))).collect();
    let running = infos.iter().filter(|(_, i)| text(i.get("process")) == "running").count();
    let leader = infos.iter().find(|(_, i)| text(i.get("state")).starts_with("leader"));
    let leader_state = leader.map(|(_, i)| text(i.get("state")));
    let mut missing = Vec::new();
    if pods.len() < min_pods {
        missing.push(format!("{}/{min_pods} pods registered", pods.len()));
    }
    if !silent.is_empty() {
        missing.push(format!("no answer from {}", silent.join(", ")));
    }
    if running < pods.len() {
        missing.push(format!("{running}/{} running", pods.len()));
    }
    match leader_state.as_deref() {
        None => missing.push("no leader".into()),
        Some("leader") => {}
        Some(other) => missing.push(other.to_string()),
    }
    let ready = missing.is_empty();
    let leader = leader.map(|(p, _)| p.key());
    let state = if ready {
        format!(
            "ready ({} {} running, leader {})",
            pods.len(),
            super::pods(pods.len()),
            leader.as_deref().unwrap_or("?")
        )
    } else {
        missing.join(", ")
    };
    Status { name: cluster.to_string(), ready, pods: pods.len(), running, leader, state }
}

/// Re-check pace without news from ZooKeeper: pods' process states live only in their `/info`.
const POLL: Duration = Duration::from_secs(1);
/// Re-check pace for [`FOLLOW`] after a ZooKeeper event on a matched cluster: the leader writes
/// `snapshot` and `hash` as it finishes a configuration, and what `/info` says follows closely.
const QUICK: Duration = Duration::from_millis(40);
const FOLLOW: Duration = Duration::from_secs(2);

/// Checks `target` until every status is ready or `timeout` passes: at once whenever
/// ZooKeeper reports a change under a matched cluster (a persistent recursive watch on
/// [`ROOT`](super::ROOT): registrations, `snapshot`, `hash`), else about once a second.
/// `progress` gets every status whose state changed. Returns the last statuses; all ready
/// means success.
pub fn until_ready(
    zk: &Session,
    target: &Target,
    timeout: Duration,
    progress: &mut dyn FnMut(&Status),
) -> Result<Vec<Status>> {
    let deadline = Instant::now() + timeout;
    // A server that cannot add persistent watches (ZooKeeper before 3.6) leaves the poll.
    let mut changes = zk.watch_tree(super::ROOT);
    let mut quick_until = Instant::now();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let round = Instant::now();
        let left = deadline.saturating_duration_since(round);
        let mut bounded = target.clone();
        bounded.pod_timeout = target.pod_timeout.min(left.max(Duration::from_millis(100)));
        let statuses = check(zk, &bounded)?;
        for status in &statuses {
            if seen.get(&status.name) != Some(&status.state) {
                seen.insert(status.name.clone(), status.state.clone());
                progress(status);
            }
        }
        let interrupted = super::interrupt::received().is_some();
        if statuses.iter().all(|s| s.ready) || Instant::now() >= deadline || interrupted {
            return Ok(statuses);
        }
        let pace = if Instant::now() < quick_until { QUICK } else { POLL };
        let wake = (round + pace).min(deadline);
        let Some(watch) = changes.as_mut() else {
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            continue;
        };
        // Node events outside the matched clusters do not count; wait on until `wake`.
        loop {
            match zk.next_change(watch, wake) {
                Change::Node(path) if !relevant(&path, &target.globs) => continue,
                Change::Node(_) | Change::Session => quick_until = Instant::now() + FOLLOW,
                Change::Quiet => {}
                // The next check reports the error.
                Change::Ended => changes = None,
            }
            break;
        }
    }
}

/// Whether a node event at `path` concerns a cluster one of `globs` matches.
pub fn relevant(path: &str, globs: &[Glob]) -> bool {
    let Some(rest) = path.strip_prefix(super::ROOT).and_then(|r| r.strip_prefix('/')) else {
        return false;
    };
    let cluster = rest.split('/').next().unwrap_or_default();
    globs.iter().any(|g| g.matches(cluster))
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    if common.indices.is_some() || args.min_replies.is_some() {
        return Err(Error::Usage("wait takes neither -i nor --min-replies".into()));
    }
    let pod_timeout = super::seconds("--pod-timeout", args.pod_timeout)?;
    let target = Target {
        globs: Glob::list(&args.clusters)?,
        min_pods: args.pods.max(1),
        pod_timeout,
        parallel: common.parallel,
    };
    let started = Instant::now();
    let zk = common.connect()?;
    let left = common.timeout.saturating_sub(started.elapsed());
    let json = common.json;
    let statuses = until_ready(&zk, &target, left, &mut |s| {
        if !json {
            output::emit(&format!("{}: {}\n", s.name, s.state));
        }
    })?;
    let ready = statuses.iter().all(|s| s.ready);
    if json {
        let map: Map<String, Value> = statuses
            .iter()
            .map(|s| {
                let value = json!({"ready": s.ready, "pods": s.pods, "running": s.running,
                                   "leader": s.leader, "state": s.state});
                (s.name.clone(), value)
            })
            .collect();
        output::emit(&output::structured(&Value::Object(map)));
    } else if ready {
        let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
        output::emit(&format!("ready: {}\n", names.join(", ")));
    } else {
        let mut out =
            format!("timed out after {}s, still waiting for:\n", common.timeout.as_secs_f64());
        for s in statuses.iter().filter(|s| !s.ready) {
            out += &format!("  {}: {}\n", s.name, s.state);
        }
        output::emit(&out);
    }
    Ok(if ready { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::Answer;

    fn pod(seq: u64) -> Pod {
        Pod {
            cluster: "a.b".into(),
            seq,
            uuid: format!("u{seq}"),
            znode: format!("u{seq}.{seq:010}"),
            registration: crate::ochopod::Registration(Map::new()),
        }
    }

    fn info(process: &str, state: &str) -> Answer {
        Answer::Json { status: 200, body: json!({"process": process, "state": state}) }
    }

    #[test]
    fn a_cluster_is_ready_when_configured_by_its_leader_and_running() {
        let (p0, p1) = (pod(0), pod(1));
        let (lead, follow) = (info("running", "leader"), info("running", "follower"));
        let ready = judge("a.b", &[(&p0, &lead), (&p1, &follow)], 2);
        assert!(ready.ready, "{ready:?}");
        assert_eq!(ready.state, "ready (2 pods running, leader a.b #0)");

        let configuring = info("stopped", "leader (configuring)");
        let s = judge("a.b", &[(&p0, &configuring)], 2);
        assert_eq!(s.state, "1/2 pods registered, 0/1 running, leader (configuring)");
        let silent = Answer::Failed("timed out".into());
        let s = judge("a.b", &[(&p0, &follow), (&p1, &silent)], 1);
        assert_eq!(s.state, "no answer from a.b #1 (timed out), 1/2 running, no leader");
        assert!(!s.ready);
    }

    #[test]
    fn only_events_under_matched_clusters_wake_the_wait() {
        let target = Target {
            globs: vec![Glob("web".into())],
            min_pods: 1,
            pod_timeout: Duration::from_secs(1),
            parallel: 1,
        };
        assert!(relevant("/ochopod/clusters/default.web/snapshot", &target.globs));
        assert!(relevant("/ochopod/clusters/a.web/pods/u.0000000001", &target.globs));
        assert!(!relevant("/ochopod/clusters/a.db/hash", &target.globs));
        assert!(!relevant("/elsewhere/a.web", &target.globs));
    }
}
