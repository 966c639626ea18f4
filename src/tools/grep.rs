//! `ocho grep`: one table row per pod from its `/info`: address, node, process and state.

use std::process::ExitCode;

use serde_json::json;

use super::{Glob, output, text, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's address, node, process and state
    #[argh(
        subcommand,
        name = "grep",
        example = "{command_name}\n    every pod of every cluster: address, node, process and state",
        example = "{command_name} 'web*' -j\n    the pods of the clusters whose name starts with web, as JSON",
        example = "{command_name} zookeeper -i 1,2\n    only pods #1 and #2 of cluster zookeeper (in any namespace)",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->` and a table \
                pod | pod IP | node | process | state, sorted by cluster and seq, then the pods \
                that did not answer, named with the reason. Exit 1 unless --min-replies is met.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": {{\"ip\", \"node\", \"process\", \"state\"}}, …}}; \
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
    let fields = ["ip", "node", "process", "state"];
    let out = if common.json {
        scan.json(|info| {
            Some(fields.iter().map(|f| (f.to_string(), json!(text(info.get(*f))))).collect())
        })
    } else {
        scan.text(|answered| {
            let rows: Vec<Vec<String>> = answered
                .into_iter()
                .map(|(pod, info)| {
                    std::iter::once(pod.key())
                        .chain(fields.iter().map(|f| text(info.get(*f))))
                        .collect()
                })
                .collect();
            "\n".to_string() + &output::table(&["pod", "pod IP", "node", "process", "state"], &rows)
        })
    };
    output::emit(&out);
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
