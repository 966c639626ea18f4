//! `ocho info`: each pod's `/info` reply in full, as indented JSON with sorted keys.

use std::process::ExitCode;

use super::{Glob, output, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's /info in full
    #[argh(
        subcommand,
        name = "info",
        example = "{command_name} zookeeper\n    the whole /info of each pod of cluster zookeeper",
        example = "{command_name} default.web -i 3\n    only pod #3 of default.web",
        example = "{command_name} -o yaml 'web*'\n    every pod of the web clusters, as YAML",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->`, then `- <ns.cluster #seq>` \
                and the pod's /info as JSON (4-space indent, sorted keys), then the pods that did \
                not answer. Exit 1 unless --min-replies is met.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": <the /info object>, …}}; a pod that did not \
                answer has {{\"error\": \"<reason>\"}} instead."
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
    let out = if common.json {
        scan.json(|info| Some(info.clone()))
    } else {
        scan.text(|answered| {
            let entries: Vec<String> = answered
                .into_iter()
                .map(|(pod, info)| format!("{}\n{}\n", pod.key(), output::pretty(info)))
                .collect();
            if entries.is_empty() {
                String::new()
            } else {
                format!("\n- {}\n", entries.join("\n- "))
            }
        })
    };
    output::emit(&out);
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
