//! `ocho log`: the tail of each pod's Ochopod log (`/log`, oldest line first).

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Glob, output, tool_args};
use crate::error::Result;

tool_args! {
    /// show the tail of each pod's ochopod log
    #[argh(
        subcommand,
        name = "log",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->`, then per pod\n\
                `<ns.cluster #seq> ->`, an empty line and the last lines each prefixed by `- `,\n\
                then the pods that did not answer. Exit 1 unless --min-replies is met.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": [\"<line>\", …], …}} (lines without their\n\
                newline); a pod that did not answer has {{\"error\": \"<reason>\"}} instead."
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (default *; a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// lines to show from the end of each log (default 64)
        #[argh(option, short = 'n', default = "64")]
        pub lines: usize,
        /// the whole log
        #[argh(switch, short = 'l')]
        pub long: bool,
    }
    timeout = "5.0", "seconds each pod has to answer (default 5)";
}

/// The lines of a `/log` reply (a JSON array of strings), without their newlines.
fn lines(body: &Value) -> Option<Vec<String>> {
    body.as_array()?
        .iter()
        .map(|l| l.as_str().map(|s| s.trim_end_matches(['\n', '\r']).to_string()))
        .collect()
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    let mut scan = super::scan(&common, Glob::list(&args.clusters)?, "/log")?;
    // A 200 whose body is not an array of strings is as useless as no answer.
    for answer in &mut scan.answers {
        if answer.ok().is_some_and(|b| lines(b).is_none()) {
            *answer = super::Answer::Failed("HTTP 200, reply is not a list of lines".into());
        }
    }
    let keep = |all: Vec<String>| -> Vec<String> {
        if args.long { all } else { all[all.len().saturating_sub(args.lines)..].to_vec() }
    };
    if common.json {
        let mut map = Map::new();
        for (pod, answer) in scan.lookup.pods.iter().zip(&scan.answers) {
            let value = match answer.ok().and_then(lines) {
                Some(all) => json!(keep(all)),
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
            out += &output::header(&glob.0, &tally);
            for (pod, answer) in scan.of(glob) {
                let Some(all) = answer.ok().and_then(lines) else { continue };
                out += &format!("\n{} ->\n\n", pod.key());
                for line in keep(all) {
                    out += &format!("- {line}\n");
                }
                out += "\n";
            }
            output::failures(&mut out, &tally);
        }
        output::emit(&out);
    }
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}
