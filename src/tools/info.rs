//! `ocho info`: each pod's `/info` reply in full, as indented JSON with sorted keys.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Glob, output, tool_args};
use crate::error::Result;

tool_args! {
    /// show each pod's /info in full
    #[argh(
        subcommand,
        name = "info",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->`, then `- <ns.cluster #seq>`\n\
                and the pod's /info as JSON (4-space indent, sorted keys), then the pods that did\n\
                not answer. Exit 1 unless --min-replies is met.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": <the /info object>, …}}; a pod that did not\n\
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
            let value = match answer.ok() {
                Some(info) => info.clone(),
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
            let entries: Vec<String> = scan
                .of(glob)
                .filter_map(|(pod, answer)| {
                    Some(format!("{}\n{}\n", pod.key(), output::pretty(answer.ok()?)))
                })
                .collect();
            out += &output::header(&glob.0, &tally);
            if !entries.is_empty() {
                out += "\n- ";
                out += &entries.join("\n- ");
                out += "\n";
            }
            output::failures(&mut out, &tally);
        }
        output::emit(&out);
    }
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
