//! `ocho port`: where a container port of each pod is reachable (pod IP, public IP, mapped port).

use std::process::ExitCode;

use serde_json::{Value, json};

use super::{Glob, output, text, tool_args};
use crate::error::{Error, Result};

tool_args! {
    /// show where a container port of each pod is reachable
    #[argh(
        subcommand,
        name = "port",
        example = "{command_name} 8080\n    where port 8080 of every pod is reachable",
        example = "{command_name} 9092 kafka -j\n    where port 9092 of the kafka pods is reachable, as JSON",
        note = "Only pods whose /info `ports` has PORT are listed. Text: per glob \
                `<GLOB> -> P% replies (T pods total) ->` and a table pod | pod IP | public IP | port \
                (the mapped port), then the pods that did not answer.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": {{\"ip\": str, \"public\": str, \"ports\": \"<mapped>\"}}, …}}; \
                a pod that did not answer has {{\"error\": \"<reason>\"}} instead."
    )]
    pub struct Args {
        /// the container port to look for
        #[argh(positional)]
        pub port: u16,
        /// cluster globs on <namespace>.<cluster> (default *; a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
    }
    timeout = "5.0", "seconds each pod has to answer (default 5)";
}

/// The mapped port of `port` in an `/info` body, if the pod exposes it.
fn mapped(info: &Value, port: u16) -> Option<String> {
    let value = info.get("ports")?.get(port.to_string())?;
    Some(text(Some(value)))
}

pub fn run(args: Args) -> Result<ExitCode> {
    if args.port == 0 {
        return Err(Error::Usage("port must be between 1 and 65535".into()));
    }
    let common = args.common()?;
    let scan = super::scan(&common, Glob::list(&args.clusters)?, "/info")?;
    let row = |info: &Value| -> Option<(String, String, String)> {
        Some((text(info.get("ip")), text(info.get("public")), mapped(info, args.port)?))
    };
    let out = if common.json {
        scan.json(|info| {
            row(info).map(|(ip, public, port)| json!({"ip": ip, "public": public, "ports": port}))
        })
    } else {
        scan.text(|answered| {
            let rows: Vec<Vec<String>> = answered
                .into_iter()
                .filter_map(|(pod, info)| {
                    let (ip, public, port) = row(info)?;
                    Some(vec![pod.key(), ip, public, port])
                })
                .collect();
            "\n".to_string() + &output::table(&["pod", "pod IP", "public IP", "port"], &rows)
        })
    };
    output::emit(&out);
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
