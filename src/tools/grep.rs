//! `ocho grep`: one table row per pod from its `/info`: address, node, process and state.

use std::process::ExitCode;

use serde_json::json;

use super::Scan;
use super::watch::Round;
use super::{Common, Glob, output, text, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's address, node, process and state
    #[argh(
        subcommand,
        name = "grep",
        example = "{command_name}\n    every pod of every cluster: address, node, process and state",
        example = "{command_name} 'web*' -o json\n    the pods of the clusters whose name starts with web, as JSON",
        example = "{command_name} -o wide\n    also each pod's public IP, ports, task and status",
        example = "{command_name} -w --watch-for 300 zookeeper\n    the pods of cluster zookeeper, redrawn on each change for 5 minutes",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->` and a table \
                pod | pod IP | node | process | state, sorted by cluster and seq, then the pods \
                that did not answer, named with the reason. Exit 1 unless --min-replies is met.\n\
                -o wide adds public IP | ports (container→exposed) | task | status.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": {{\"ip\", \"node\", \"process\", \"state\"}}, …}}; \
                a pod that did not answer has {{\"error\": \"<reason>\"}} instead."
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (default *; a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// redraw when something changes (ZooKeeper watches; the pods are asked again every 2 s)
        #[argh(switch, short = 'w')]
        pub watch: bool,
        /// with -w: stop after this many seconds (default: until interrupted)
        #[argh(option)]
        pub watch_for: Option<f64>,
    }
    timeout = "5.0", "seconds each pod has to answer (default 5)";
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    let globs = Glob::list(&args.clusters)?;
    let lasting = super::watch::bound(args.watch, args.watch_for)?;
    if args.watch {
        let zk = common.connect()?;
        return super::watch::watch(&zk, &globs, lasting, &mut |zk| {
            round(&common, super::scan_on(zk, &common, globs.clone(), "/info")?)
        });
    }
    let drawn = round(&common, super::scan(&common, globs, "/info")?)?;
    output::emit(&drawn.out);
    for note in &drawn.notes {
        eprintln!("{note}");
    }
    Ok(drawn.code)
}

/// One table on an open session.
fn round(common: &Common, scan: Scan) -> Result<Round> {
    let fields = ["ip", "node", "process", "state"];
    let out = if common.json {
        scan.json(|info| {
            Some(fields.iter().map(|f| (f.to_string(), json!(text(info.get(*f))))).collect())
        })
    } else {
        let wide = output::wide();
        scan.text(|answered| {
            let rows: Vec<Vec<String>> = answered
                .into_iter()
                .map(|(pod, info)| {
                    let mut row: Vec<String> = std::iter::once(pod.key())
                        .chain(fields.iter().map(|f| text(info.get(*f))))
                        .collect();
                    if wide {
                        row.extend([
                            text(info.get("public")),
                            ports(info.get("ports")),
                            text(info.get("task")),
                            text(info.get("status")),
                        ]);
                    }
                    row
                })
                .collect();
            let mut header = vec!["pod", "pod IP", "node", "process", "state"];
            if wide {
                header.extend(["public IP", "ports", "task", "status"]);
            }
            "\n".to_string() + &output::table(&header, &rows)
        })
    };
    let (notes, code) = super::outcome(common, &scan.tally_all(), &scan.lookup.skipped);
    Ok(Round { out, notes, code })
}

/// The `ports` hint (container port → where it is exposed) as `8080→31000,9000→9000`.
fn ports(value: Option<&serde_json::Value>) -> String {
    let Some(serde_json::Value::Object(map)) = value else { return String::new() };
    let mut pairs: Vec<(u64, String)> = map
        .iter()
        .map(|(k, v)| (k.parse().unwrap_or(u64::MAX), format!("{k}→{}", text(Some(v)))))
        .collect();
    pairs.sort();
    pairs.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_listed_by_container_port() {
        let hint = json!({"9000": 31001, "8080": "31000", "80": 80});
        assert_eq!(ports(Some(&hint)), "80→80,8080→31000,9000→31001");
        assert_eq!(ports(None), "");
        assert_eq!(ports(Some(&json!("x"))), "");
    }
}
