//! `ocho poll`: each pod's metrics (`/info` → `metrics`, what its `sanity_check()` returned).

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Glob, output, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's metrics
    #[argh(
        subcommand,
        name = "poll",
        note = "Only pods whose /info has `metrics` are listed. Text: per glob\n\
                `<GLOB> -> P% replies (T pods total) ->` and a table pod | metrics (one-line\n\
                JSON), then the pods that did not answer.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": <metrics object>, …}}; a pod that did not\n\
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
    if common.json {
        let mut map = Map::new();
        for (pod, answer) in scan.lookup.pods.iter().zip(&scan.answers) {
            match answer.ok() {
                Some(info) => {
                    if let Some(metrics) = info.get("metrics") {
                        map.insert(pod.key(), metrics.clone());
                    }
                }
                None => {
                    map.insert(pod.key(), json!({"error": answer.problem()}));
                }
            }
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
                    let metrics = answer.ok()?.get("metrics")?;
                    Some(vec![pod.key(), output::one_line(metrics)])
                })
                .collect();
            out += &output::header(&glob.0, &tally);
            out += "\n";
            out += &output::table(&["pod", "metrics"], &rows);
            output::failures(&mut out, &tally);
        }
        output::emit(&out);
    }
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
