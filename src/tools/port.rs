//! `ocho port`: where a container port of each pod is reachable (pod IP, public IP, mapped port).

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Glob, output, text, tool_args};
use crate::error::{Error, Result};

tool_args! {
    /// show where a container port of each pod is reachable
    #[argh(
        subcommand,
        name = "port",
        note = "Only pods whose /info `ports` has PORT are listed. Text: per glob\n\
                `<GLOB> -> P% replies (T pods total) ->` and a table pod | pod IP | public IP | port\n\
                (the mapped port), then the pods that did not answer.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": {{\"ip\": str, \"public\": str, \"ports\": \"<mapped>\"}}, …}};\n\
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
    if common.json {
        let mut map = Map::new();
        for (pod, answer) in scan.lookup.pods.iter().zip(&scan.answers) {
            match answer.ok() {
                Some(info) => {
                    if let Some((ip, public, port)) = row(info) {
                        map.insert(pod.key(), json!({"ip": ip, "public": public, "ports": port}));
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
                    let (ip, public, port) = row(answer.ok()?)?;
                    Some(vec![pod.key(), ip, public, port])
                })
                .collect();
            out += &output::header(&glob.0, &tally);
            out += "\n";
            out += &output::table(&["pod", "pod IP", "public IP", "port"], &rows);
            output::failures(&mut out, &tally);
        }
        output::emit(&out);
    }
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
