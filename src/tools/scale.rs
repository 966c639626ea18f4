//! `ocho scale GLOB -f @N|+N|-N|xF`: changes the number of pods of each matched cluster through
//! the `scale` subresource of its ReplicationControllers. Growing adds to the newest RC;
//! shrinking picks the pods to remove (newest `seq` first, oldest with `--fifo`), kills them
//! gracefully, marks them as the first to go and lowers their own RC's replicas, so a cluster spread over several
//! RCs (during or after a `bump`) shrinks where its chosen pods are.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use super::workload::{self, Killed};
use super::{Glob, Pod};
use crate::error::{Error, Result, chain};
use crate::k8s::Kube;
use crate::zk::Session;

crate::tools::k8s_tool_args! {
    /// change the number of pods of clusters
    #[argh(
        subcommand,
        name = "scale",
        example = "{command_name} -f @5 web\n    make web exactly 5 pods",
        example = "{command_name} -f +2 --wait web\n    add 2 pods to web and wait until they are configured",
        example = "{command_name} -f x0.5 --fifo web\n    halve web, removing the oldest pods first",
        note = "GLOB matches `<namespace>.<cluster>` (a bare name matches any namespace); each matched cluster is scaled on its own. -f gives the target: @N (exactly N), +N / -N (relative), xF (current × F, rounded down). The current count is the sum of the replicas of the cluster's RCs. Up: the newest RC gets the extra replicas. Down: the newest pods by seq (oldest with --fifo) get `/control/kill` until 410, are marked as the first to go (annotation controller.kubernetes.io/pod-deletion-cost) and their RC's replicas are lowered, so the controller removes exactly those pods and replaces none; the tool waits until their registrations are gone. --wait blocks until the pods registered in ZooKeeper match the target and the cluster is configured.\n\nOutput: problems on stderr, then `<P>% success (<delta with sign> pods)`. With -j: {{\"<cluster>\": {{\"ok\": bool, \"delta\": int, \"replicas\": int, \"problems\": [\"…\"], \"warnings\": [\"<server warning>\"]}}}}; server warnings also go to stderr as `<item>: warning: <text>`. Exit 0 when every cluster reached its target, 1 otherwise or when nothing matched, 2 on a usage error."
    )]
    pub struct Args {
        /// cluster glob
        #[argh(positional)]
        pub glob: String,
        /// target: @N, +N, -N or xF
        #[argh(option, short = 'f')]
        pub factor: String,
        /// remove the oldest pods first instead of the newest
        #[argh(switch)]
        pub fifo: bool,
        /// wait until the cluster has the target number of configured pods
        #[argh(switch)]
        pub wait: bool,
        /// seconds for the graceful kill and --wait (default 60, at least 5)
        #[argh(option, short = 't', default = "60.0")]
        pub timeout: f64,
    }
    zk = "zookeeper hosts, host:port,… (env OCHOPOD_ZK; default 127.0.0.1:2181)";
}

/// A parsed `-f`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Factor {
    /// `@N`
    Absolute(i32),
    /// `+N` / `-N`
    Relative(i32),
    /// `xF`
    Times(f64),
}

impl Factor {
    /// Parses `@N`, `+N`, `-N` or `xF`.
    pub fn parse(text: &str) -> Result<Factor> {
        let bad = || Error::Usage(format!("-f {text}: give @N, +N, -N or xF"));
        let t = text.trim();
        let factor = if let Some(n) = t.strip_prefix('@') {
            Factor::Absolute(n.parse().map_err(|_| bad())?)
        } else if let Some(n) = t.strip_prefix('+') {
            Factor::Relative(n.parse().map_err(|_| bad())?)
        } else if let Some(n) = t.strip_prefix('-') {
            Factor::Relative(-n.parse::<i32>().map_err(|_| bad())?)
        } else if let Some(f) = t.strip_prefix('x') {
            Factor::Times(f.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        match factor {
            Factor::Absolute(n) if n < 0 => Err(bad()),
            Factor::Times(f) if !(f.is_finite() && f >= 0.0) => Err(bad()),
            f => Ok(f),
        }
    }

    /// The target for a cluster of `current` pods, never below 0 nor above 10000.
    pub fn target(self, current: i32) -> i32 {
        let t = match self {
            Factor::Absolute(n) => n,
            Factor::Relative(d) => current.saturating_add(d),
            Factor::Times(f) => (f64::from(current) * f).floor().min(1e6) as i32,
        };
        t.clamp(0, 10_000)
    }
}

/// Picks `count` pods to remove: highest seq first, or lowest with `fifo`.
pub fn choose(pods: &[Pod], count: usize, fifo: bool) -> Vec<&Pod> {
    let mut sorted: Vec<&Pod> = pods.iter().collect();
    sorted.sort_by_key(|p| p.seq);
    if !fifo {
        sorted.reverse();
    }
    sorted.truncate(count);
    sorted
}

#[derive(Debug, Default)]
struct Outcome {
    delta: i32,
    replicas: i32,
    problems: Vec<String>,
    failed: bool,
    warnings: Vec<String>,
}

/// Runs the tool.
pub fn run(mut args: Args) -> Result<ExitCode> {
    args.choose_format()?;
    let glob = Glob::required("scale", std::slice::from_ref(&args.glob))?.remove(0);
    let factor = Factor::parse(&args.factor)?;
    // Before any thread: an interrupt stops the waits, never the marking and lowering of the
    // chosen pods (pods killed gracefully but left in their RC would stay, dead).
    super::interrupt::arm()?;
    let timeout = super::k8s_timeout(args.timeout)?;
    let (kube, zk) = workload::clients(&args.access(), &args.zk)?;

    let clusters = workload::rcs_by_cluster(&kube, &glob)?;
    if clusters.is_empty() {
        eprintln!("{}: no replication controller found for this cluster glob", glob.0);
        if args.json {
            print!("{}", super::output::structured(&json!({})));
        } else {
            println!("0% success (+0 pods)");
        }
        return Ok(ExitCode::from(1));
    }
    let mut outcomes = Vec::new();
    for (cluster, rcs) in &clusters {
        let mut outcome =
            scale(&kube, &zk, cluster, rcs, factor, &args, timeout).unwrap_or_else(|e| Outcome {
                problems: vec![chain(&e)],
                failed: true,
                ..Default::default()
            });
        outcome.warnings = kube.take_warnings();
        outcomes.push((cluster.clone(), outcome));
    }
    let delta: i32 = outcomes.iter().map(|(_, o)| o.delta).sum();
    let items = outcomes
        .into_iter()
        .map(|(cluster, o)| workload::Item {
            name: cluster,
            failed: o.failed,
            problems: o.problems,
            fields: json!({"delta": o.delta, "replicas": o.replicas}),
            warnings: o.warnings,
            notes: Vec::new(),
        })
        .collect();
    Ok(workload::report(items, args.json, |p| format!("{p}% success ({delta:+} pods)")))
}

fn scale(
    kube: &Kube,
    zk: &Session,
    cluster: &str,
    rcs: &[k8s_openapi::api::core::v1::ReplicationController],
    factor: Factor,
    args: &Args,
    timeout: Duration,
) -> Result<Outcome> {
    let deadline = Instant::now() + timeout;
    let mut current = 0;
    for rc in rcs {
        current += kube.get_scale(&workload::name(rc))?;
    }
    let target = factor.target(current);
    let mut outcome = Outcome { delta: target - current, replicas: target, ..Default::default() };
    let names: Vec<String> = rcs.iter().map(workload::name).collect();
    if target > current {
        let newest = names.last().expect("rcs_by_cluster never returns an empty group");
        let now = kube.get_scale(newest)?;
        kube.set_scale(newest, now + (target - current))?;
    } else if target < current {
        let pods: Vec<Pod> = workload::pods_of(zk, cluster)?
            .into_iter()
            .filter(|p| names.contains(&p.field("application")))
            .collect();
        let remove = (current - target) as usize;
        let chosen = choose(&pods, remove, args.fifo);
        let owned: Vec<Pod> = chosen.iter().map(|p| (*p).clone()).collect();
        for (pod, killed) in owned.iter().zip(workload::graceful_kill(&owned, timeout)) {
            if let Killed::NotConfirmed(why) = killed {
                outcome.problems.push(format!("{}: no graceful kill ({why})", pod.key()));
            }
        }
        let fresh = workload::reconnect(zk)?;
        outcome.problems.extend(workload::remove_pods(kube, &fresh, &chosen, deadline));
        // Pods that never registered cannot be chosen; the rest comes off the newest RCs and
        // the controller picks which pods go.
        let mut missing = remove.saturating_sub(chosen.len()) as i32;
        for name in names.iter().rev() {
            if missing == 0 {
                break;
            }
            let now = kube.get_scale(name)?;
            let cut = now.min(missing);
            if cut > 0 {
                kube.set_scale(name, now - cut)?;
                missing -= cut;
            }
        }
        outcome.failed = !outcome.problems.is_empty();
    }
    if args.wait && !outcome.failed {
        let zk = &workload::reconnect(zk)?;
        let waited = workload::wait_for(
            zk,
            cluster,
            deadline,
            None,
            |pods| {
                if !args.json {
                    println!("{cluster}: {} {} registered", pods.len(), super::pods(pods.len()));
                }
            },
            |pods, configured| {
                let mine: Vec<&Pod> =
                    pods.iter().filter(|p| names.contains(&p.field("application"))).collect();
                mine.len() == target as usize && mine.iter().all(|p| configured.contains(&p.uuid))
            },
        )?;
        if let Some(signal) = waited.interrupted {
            outcome.failed = true;
            outcome.problems.push(format!(
                "replicas set to {target}; {} while waiting for the pods",
                super::interrupt::describe(signal)
            ));
        } else if !waited.ok {
            let mine: Vec<&Pod> =
                waited.pods.iter().filter(|p| names.contains(&p.field("application"))).collect();
            let configured = mine.iter().filter(|p| waited.configured.contains(&p.uuid)).count();
            outcome.failed = true;
            outcome.problems.push(format!(
                "timed out after {}s with {} pod(s) registered, {configured} configured, \
                 waiting for {target}",
                timeout.as_secs(),
                mine.len()
            ));
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn factors_parse_and_give_targets() {
        assert_eq!(Factor::parse("@3").unwrap().target(1), 3);
        assert_eq!(Factor::parse("+2").unwrap().target(1), 3);
        assert_eq!(Factor::parse("-2").unwrap().target(1), 0);
        assert_eq!(Factor::parse("x1.5").unwrap().target(3), 4);
        assert_eq!(Factor::parse("x0").unwrap().target(3), 0);
        for bad in ["3", "@-1", "x-1", "xnan", "+", "@x", ""] {
            assert!(Factor::parse(bad).is_err(), "{bad}");
        }
    }

    fn pod(seq: u64) -> Pod {
        Pod {
            cluster: "default.web".into(),
            seq,
            uuid: format!("u{seq}"),
            znode: format!("u{seq}.{seq:010}"),
            registration: crate::ochopod::Registration(Map::new()),
        }
    }

    #[test]
    fn newest_pods_go_first_unless_fifo() {
        let pods = [pod(3), pod(10), pod(2)];
        let seqs = |v: Vec<&Pod>| v.iter().map(|p| p.seq).collect::<Vec<_>>();
        assert_eq!(seqs(choose(&pods, 2, false)), [10, 3]);
        assert_eq!(seqs(choose(&pods, 2, true)), [2, 3]);
        assert_eq!(seqs(choose(&pods, 5, false)).len(), 3);
    }
}
