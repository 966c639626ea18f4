//! `ocho reset`: `/reset` — each pod drops and re-creates its ZooKeeper registration (its
//! coordinator restarts, leadership may move); the managed process is untouched.

use std::process::ExitCode;

use std::collections::HashSet;
use std::time::Instant;

use super::{Pod, Verdict, control, tool_args};
use crate::error::Result;
use crate::zk::Session;

tool_args! {
    /// re-register pods in zookeeper; their process is untouched
    #[argh(
        subcommand,
        name = "reset",
        example = "{command_name} zookeeper -i 1\n    register pod #1 of zookeeper again; its process keeps running",
        example = "{command_name} --force web\n    register every pod of web again",
        note = "Posts /reset (the pod answers at once), then waits, with ZooKeeper watches, until \
                every pod that answered has registered again (a new registration node with its \
                uuid); within -t, else the pods that did not are named (`did not finish`).\n\
                Needs --force unless -i picks pods.\n\
                A glob matching no pod is a failure.\n\
                Text: per glob `<GLOB> -> P% replies, N pods reset (T pods total)`, then the pods that did not answer.\n\
                JSON (-j): {{\"<glob>\": {{\"ok\": bool, \"reset\": [seq, …], \"failed\": {{\"<pod>\": \"<reason>\"}}, \"refused\": {{\"<pod>\": \"<reason>\"}}}}, …}}"
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// act on every pod of the globs (without -i)
        #[argh(switch)]
        pub force: bool,
    }
    timeout = "10.0", "seconds each pod has to answer (default 10)";
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    common.require_force("reset", args.force)?;
    let globs = super::Glob::required("reset", &args.clusters)?;
    let zk = common.connect()?;
    let found = super::lookup(&zk, &globs, common.indices.as_ref())?;
    let started = Instant::now();
    let answers = super::fan_out(&found.pods, common.parallel, |pod| {
        super::post(pod, "/reset", b"", common.timeout)
    });
    let mut verdicts: Vec<Verdict> = answers.iter().map(control::verdict).collect();
    let waiting: Vec<&Pod> = found
        .pods
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| **v == Verdict::Done)
        .map(|(p, _)| p)
        .collect();
    let back = reregistered(&zk, &waiting, started + common.timeout)?;
    drop(zk);
    for (pod, verdict) in found.pods.iter().zip(verdicts.iter_mut()) {
        if *verdict == Verdict::Done && !back.contains(&pod.znode) {
            *verdict = Verdict::Unfinished(format!(
                "reset, but not registered again within {:.1}s",
                common.timeout.as_secs_f64()
            ));
        }
    }
    Ok(control::report(&common, &globs, &found.pods, &verdicts, "reset", &found.skipped))
}

/// The old registration nodes of `pods` whose pod registered again (a node with its uuid and
/// another name), waiting with child watches until all did or `deadline` passes.
fn reregistered(zk: &Session, pods: &[&Pod], deadline: Instant) -> Result<HashSet<String>> {
    let mut back = HashSet::new();
    let mut clusters: Vec<&str> = pods.iter().map(|p| p.cluster.as_str()).collect();
    clusters.sort();
    clusters.dedup();
    for cluster in clusters {
        let dir = crate::ochopod::paths::pods(cluster);
        let mine: Vec<&&Pod> = pods.iter().filter(|p| p.cluster == cluster).collect();
        loop {
            let (children, watcher) = match zk.watch_children(&dir)? {
                Some((children, watcher)) => (children, Some(watcher)),
                None => (Vec::new(), None),
            };
            for pod in &mine {
                let prefix = format!("{}.", pod.uuid);
                if children.iter().any(|c| c.starts_with(&prefix) && *c != pod.znode) {
                    back.insert(pod.znode.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if mine.iter().all(|p| back.contains(&p.znode)) || left.is_zero() {
                break;
            }
            let Some(watcher) = watcher else { break };
            if !zk.wait_for(watcher, left) {
                break;
            }
        }
    }
    Ok(back)
}
