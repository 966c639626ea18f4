//! `ocho grep`: one table row per pod from its `/info`: address, node, process and state.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Glob, output, text, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's address, node, process and state
    #[argh(
        subcommand,
        name = "grep",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->` and a table\n\
                pod | pod IP | node | process | state, sorted by cluster and seq, then the pods\n\
                that did not answer, named with the reason. Exit 1 unless --min-replies is met.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": {{\"ip\", \"node\", \"process\", \"state\"}}, …}};\n\
                a pod that did not answer has {{\"error\": \"<reason>\"}} instead."
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (default *; a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
    }
    timeout = "5.0", "seconds each pod has to answer (default 5)";
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    let scan = super::scan(&common, Glob::list(&args.clusters)?, "/info")?;
    if common.json {
        let mut map = Map::new();
        for (pod, answer) in scan.lookup.pods.iter().zip(&scan.answers) {
            let value = match answer.ok() {
                Some(info) => json!({
                    "ip": text(info.get("ip")),
                    "node": text(info.get("node")),
                    "process": text(info.get("process")),
                    "state": text(info.get("state")),
                }),
                None => json!({"error": answer.problem()}),
            };
            map.insert(pod.key(), value);
        }
        output::emit(&(output::one_line(&Value::Object(map)) + "\n"));
    } else {
        let mut out = String::new();
        for glob in &scan.globs {
            let tally = scan.tally(glob);
            if tally.total == 0 {
                out += &output::no_pods(&glob.0);
                continue;
            }
            let rows: Vec<Vec<String>> = scan
                .of(glob)
                .filter_map(|(pod, answer)| {
                    let info = answer.ok()?;
                    Some(vec![
                        pod.key(),
                        text(info.get("ip")),
                        text(info.get("node")),
                        text(info.get("process")),
                        text(info.get("state")),
                    ])
                })
                .collect();
            out += &output::header(&glob.0, &tally);
            out += "\n";
            out += &output::table(&["pod", "pod IP", "node", "process", "state"], &rows);
            output::failures(&mut out, &tally);
        }
        output::emit(&out);
    }
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
