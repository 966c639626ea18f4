//! `ocho ls`: one line per cluster: running/total pods and the leader's `status`.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::Scan;
use super::watch::Round;
use super::{Answer, Common, Glob, Pod, output, text, tool_args};
use crate::error::Result;

tool_args! {
    /// list clusters: running/total pods and the leader's status
    #[argh(
        subcommand,
        name = "ls",
        example = "{command_name}\n    every cluster that has pods: running/total and the leader's status",
        example = "{command_name} --all 'default.*'\n    the clusters of namespace default, also those left without pods",
        example = "{command_name} -o wide\n    also each cluster's leader and how many pods did not answer",
        example = "{command_name} -w\n    the same table, drawn again whenever it changes (Ctrl-C ends it)",
        note = "Text: `<N> pods, P% replies ->`, then a table cluster | ok | status where ok is \
                running/total (total counts every registered pod, answering or not) and status \
                is the leader's (`* no process running` when no pod runs its process). Clusters \
                with no registered pod (killed ones, left in zookeeper) are hidden, and counted \
                in a last line, unless --all (they show 0/0). Then the pods that did not answer. \
                Without any pod the header is `0 pods ->`. Exit 1 unless --min-replies is met. \
                -o wide adds leader | unanswered (pods that did not answer).\n\
                JSON (-j): {{\"<ns.cluster>\": {{\"total\": int, \"running\": int, \"status\": str, \
                \"leader\": \"<ns.cluster #seq>\"|null, \"unanswered\": {{\"<pod>\": \"<reason>\"}}}}, …}}"
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (default *; a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// also list clusters with no registered pod (0/0)
        #[argh(switch)]
        pub all: bool,
        /// redraw when something changes (ZooKeeper watches; the pods are asked again every 2 s)
        #[argh(switch, short = 'w')]
        pub watch: bool,
        /// with -w: stop after this many seconds (default: until interrupted)
        #[argh(option)]
        pub watch_for: Option<f64>,
    }
    timeout = "5.0", "seconds each pod has to answer (default 5)";
}

/// What `ls` shows for one cluster.
struct Row {
    total: usize,
    running: usize,
    status: String,
    leader: Option<String>,
    tally: super::Tally,
}

fn summarise(pods: &[(&Pod, &Answer)]) -> Row {
    let infos: Vec<(&Pod, &Value)> = pods.iter().filter_map(|(p, a)| Some((*p, a.ok()?))).collect();
    let running = infos.iter().filter(|(_, i)| text(i.get("process")) == "running").count();
    let leader = infos.iter().find(|(_, i)| text(i.get("state")).starts_with("leader"));
    // The leader's status; failing that, any non-empty status (a pod that led before).
    let status = leader
        .map(|(_, i)| text(i.get("status")))
        .filter(|s| !s.is_empty())
        .or_else(|| infos.iter().map(|(_, i)| text(i.get("status"))).find(|s| !s.is_empty()))
        .unwrap_or_default();
    // A probe's last answer says nothing once no process runs (`off`, a crash): say that.
    let status =
        if running == 0 && !infos.is_empty() { "* no process running".to_string() } else { status };
    Row {
        total: pods.len(),
        running,
        status,
        leader: leader.map(|(p, _)| p.key()),
        tally: super::Tally::of(pods.iter().copied()),
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    let globs = Glob::list(&args.clusters)?;
    let lasting = super::watch::bound(args.watch, args.watch_for)?;
    if args.watch {
        let zk = common.connect()?;
        return super::watch::watch(&zk, &globs, lasting, &mut |zk| {
            round(&args, &common, super::scan_on(zk, &common, globs.clone(), "/info")?)
        });
    }
    let drawn = round(&args, &common, super::scan(&common, globs, "/info")?)?;
    output::emit(&drawn.out);
    for note in &drawn.notes {
        eprintln!("{note}");
    }
    Ok(drawn.code)
}

/// One listing on an open session.
fn round(args: &Args, common: &Common, scan: Scan) -> Result<Round> {
    let pairs: Vec<(&Pod, &Answer)> = scan.lookup.pods.iter().zip(&scan.answers).collect();
    let mut rows: Vec<(String, Row)> = scan
        .lookup
        .clusters
        .iter()
        .map(|c| {
            let pods: Vec<_> = pairs.iter().filter(|(p, _)| &p.cluster == c).copied().collect();
            (c.clone(), summarise(&pods))
        })
        .collect();
    let before = rows.len();
    if !args.all {
        rows.retain(|(_, r)| r.total > 0);
    }
    let hidden = before - rows.len();
    let all = scan.tally_all();
    let mut out;
    if common.json {
        let map: Map<String, Value> = rows
            .iter()
            .map(|(c, r)| {
                let value = json!({
                    "total": r.total,
                    "running": r.running,
                    "status": r.status,
                    "leader": r.leader,
                    "unanswered": r.tally.failed_json(),
                });
                (c.clone(), value)
            })
            .collect();
        out = output::structured(&Value::Object(map));
    } else if all.total == 0 && rows.is_empty() && hidden == 0 {
        out = "0 pods\n".into();
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(c, r)| {
                let mut row =
                    vec![c.clone(), format!("{}/{}", r.running, r.total), r.status.clone()];
                if output::wide() {
                    row.push(r.leader.clone().unwrap_or_else(|| "-".into()));
                    row.push(r.tally.failed.len().to_string());
                }
                row
            })
            .collect();
        out = if all.total == 0 {
            "\n0 pods ->\n\n".to_string()
        } else {
            format!("\n{} {}, {}% replies ->\n\n", all.total, super::pods(all.total), all.percent())
        };
        if !table.is_empty() {
            let mut header = vec!["cluster", "ok", "status"];
            if output::wide() {
                header.extend(["leader", "unanswered"]);
            }
            out += &output::table(&header, &table);
        }
        output::failures(&mut out, &all);
        if hidden > 0 {
            let clusters = if hidden == 1 { "cluster" } else { "clusters" };
            out += &format!("\n{hidden} {clusters} without pods not shown (--all shows them)\n");
        }
    }
    let (notes, code) = super::outcome(common, &all, &scan.lookup.skipped);
    Ok(Round { out, notes, code })
}
