//! `ocho poll`: each pod's metrics (`/info` → `metrics`, what its `sanity_check()` returned).

use std::process::ExitCode;

use super::{Glob, output, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's metrics
    #[argh(
        subcommand,
        name = "poll",
        example = "{command_name}\n    the metrics of every pod that reports some",
        example = "{command_name} web -i 1\n    the metrics of pod #1 of web",
        note = "Only pods whose /info has `metrics` are listed. Text: per glob \
                `<GLOB> -> P% replies (T pods total) ->` and a table pod | metrics (one-line \
                JSON), then the pods that did not answer.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": <metrics object>, …}}; a pod that did not \
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
        scan.json(|info| info.get("metrics").cloned())
    } else {
        scan.text(|answered| {
            let rows: Vec<Vec<String>> = answered
                .into_iter()
                .filter_map(|(pod, info)| {
                    Some(vec![pod.key(), output::one_line(info.get("metrics")?)])
                })
                .collect();
            "\n".to_string() + &output::table(&["pod", "metrics"], &rows)
        })
    };
    output::emit(&out);
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
