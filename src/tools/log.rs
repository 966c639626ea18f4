//! `ocho log`: the tail of each pod's Ochopod log (`/log`, oldest line first), or with `--k8s`
//! the tail of each pod's container output as Kubernetes keeps it (`pods/log`): what a workload
//! printed before it crashed is only there.

use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::{Common, Glob, output, tool_args};
use crate::error::{Result, chain};
use crate::k8s::{Access, Kube};

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
        /// the container's own output from Kubernetes (pods/log of each pod's task) instead of
        /// the agent's log
        #[argh(switch)]
        pub k8s: bool,
        /// with --k8s: kubeconfig context (default: the current one, or the in-cluster account)
        #[argh(option)]
        pub context: Option<String>,
        /// with --k8s: kubernetes namespace (default: the context's, or the proxy's own)
        #[argh(option)]
        pub k8s_namespace: Option<String>,
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
    if args.k8s {
        return from_kubernetes(&args, &common);
    }
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
    let out = if common.json {
        scan.json(|body| Some(json!(keep(lines(body)?))))
    } else {
        scan.text(|answered| {
            let mut out = String::new();
            for (pod, body) in answered {
                let Some(all) = lines(body) else { continue };
                out += &format!("\n{} ->\n\n", pod.key());
                for line in keep(all) {
                    out += &format!("- {line}\n");
                }
                out += "\n";
            }
            out
        })
    };
    output::emit(&out);
    Ok(super::finish(&common, &scan.tally_all(), &scan.lookup.skipped))
}

/// `--k8s`: each matched pod's container log through the API, by the pod name the agent
/// registered as `task`. Pods are read one after the other: a handful of log requests does not
/// need the fan-out, and the client's runtime is single-threaded.
fn from_kubernetes(args: &Args, common: &Common) -> Result<ExitCode> {
    let zk = common.connect()?;
    let found = super::lookup::lookup(&zk, &Glob::list(&args.clusters)?, common.indices.as_ref())?;
    drop(zk);
    let access =
        Access { context: args.context.clone(), k8s_namespace: args.k8s_namespace.clone() };
    let kube = Kube::connect(&access)?;
    let tail = (!args.long).then_some(args.lines as i64);
    let logs: Vec<(String, std::result::Result<Vec<String>, String>)> = found
        .pods
        .iter()
        .map(|pod| {
            let task = pod.field("task");
            let lines = if task.is_empty() {
                Err("its registration names no Kubernetes pod (task)".to_string())
            } else {
                kube.logs(&task, tail)
                    .map(|text| text.lines().map(String::from).collect())
                    .map_err(|e| chain(&e))
            };
            (pod.key(), lines)
        })
        .collect();
    let failed: Vec<String> = logs
        .iter()
        .filter_map(|(key, l)| l.as_ref().err().map(|e| format!("{key} ({e})")))
        .collect();
    if common.json {
        let mut map = Map::new();
        for (key, lines) in &logs {
            let value = match lines {
                Ok(lines) => json!(lines),
                Err(e) => json!({"error": e}),
            };
            map.insert(key.clone(), value);
        }
        output::emit(&(output::one_line(&Value::Object(map)) + "\n"));
    } else {
        let mut out = String::new();
        for (key, lines) in &logs {
            let Ok(lines) = lines else { continue };
            out += &format!("\n{key} ->\n\n");
            for line in lines {
                out += &format!("- {line}\n");
            }
            out += "\n";
        }
        if logs.is_empty() {
            let globs = if args.clusters.is_empty() { "*".into() } else { args.clusters.join(" ") };
            out += &output::no_pods(&globs);
        }
        if !failed.is_empty() {
            out += &format!("\n{} pods without a log: {}\n", failed.len(), failed.join(", "));
        }
        output::emit(&out);
    }
    Ok(if logs.is_empty() || !failed.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
