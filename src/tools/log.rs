//! `ocho log`: the tail of each pod's Ochopod log (`/log`, oldest line first), or with `--k8s`
//! the tail of each pod's container output as Kubernetes keeps it (`pods/log`): what a workload
//! printed before it crashed is only there. With `-f` it follows them, each line prefixed with
//! its pod: the agent's `/log` is a bounded ring with no stream and no offset, so it is asked
//! again every [`FOLLOW_EVERY`] and the new lines are those after the longest overlap between
//! the end of the last answer and the start of this one; `--k8s -f` reads Kubernetes'
//! `follow=true` streams, which end with their containers.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Common, Glob, output, tool_args};
use crate::error::{Error, Result, chain};
use crate::k8s::{Access, Kube};

tool_args! {
    /// show the tail of each pod's ochopod log
    #[argh(
        subcommand,
        name = "log",
        example = "{command_name} zookeeper -n 10\n    the last 10 lines of each zookeeper pod's log",
        example = "{command_name} -f 'web*'\n    follow the logs of the web clusters, each line prefixed by its pod;\n    Ctrl-C stops",
        example = "{command_name} --k8s -f zookeeper\n    follow the containers' own output, from Kubernetes",
        example = "{command_name} -l web -i 2\n    the whole log of pod #2 of web",
        note = "Text: per glob `<GLOB> -> P% replies (T pods total) ->`, then per pod \
                `<ns.cluster #seq> ->`, an empty line and the last lines each prefixed by `- `, \
                then the pods that did not answer. Exit 1 unless --min-replies is met.\n\
                JSON (-j): {{\"<ns.cluster #seq>\": [\"<line>\", …], …}} (lines without their \
                newline); a pod that did not answer has {{\"error\": \"<reason>\"}} instead.\n\
                \n\
                -f: the last lines of every pod, then each new line as it comes, as \
                `[<ns.cluster #seq>] <line>` (-j: one {{\"pod\", \"line\"}} object per line). The \
                agents' logs are asked again every second (pods that join are followed too); \
                it runs until interrupted (through the portal, until the request's deadline: \
                `ocho cli --timeout`). With --k8s it reads Kubernetes' log streams and ends \
                when every container has ended."
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
        /// follow: keep showing new lines as they come, each prefixed with its pod
        #[argh(switch, short = 'f')]
        pub follow: bool,
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
    if args.follow && output::format() == output::Format::Name {
        return Err(Error::Usage("-f follows log lines: -o name has no names to list".into()));
    }
    if args.k8s {
        return from_kubernetes(&args, &common);
    }
    if args.follow {
        return follow(&args, &common);
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
    if args.follow {
        return follow_kubernetes(&access, &found.pods, tail, common.json);
    }
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
        output::emit(&output::structured(&Value::Object(map)));
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
            let pods = super::pods(failed.len());
            out += &format!("\n{} {pods} without a log: {}\n", failed.len(), failed.join(", "));
        }
        output::emit(&out);
    }
    Ok(if logs.is_empty() || !failed.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// How often `-f` asks every pod for its log again.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// One followed line: `[<pod>] <line>`, or with -j `{"pod", "line"}`.
fn followed(pod: &str, line: &str, json: bool) -> String {
    if json {
        output::record(&json!({"pod": pod, "line": line}))
    } else {
        format!("[{pod}] {line}\n")
    }
}

/// The lines of `new` that `old` did not show: those after the longest run that ends `old` and
/// starts `new` (the ring drops lines at its start and adds them at its end). `true` when the
/// two do not overlap at all, so lines may have come and gone between the two answers.
fn new_lines<'a>(old: &[String], new: &'a [String]) -> (&'a [String], bool) {
    for start in 0..old.len() {
        let rest = &old[start..];
        if new.len() >= rest.len() && new[..rest.len()] == *rest {
            return (&new[rest.len()..], false);
        }
    }
    (new, !old.is_empty())
}

/// `-f` on the agents' logs: asks every pod again every [`FOLLOW_EVERY`], until stdout closes.
fn follow(args: &Args, common: &Common) -> Result<ExitCode> {
    let globs = Glob::list(&args.clusters)?;
    // By uuid: the pod's key, and its last answer.
    let mut seen: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut silent: BTreeMap<String, String> = BTreeMap::new();
    let mut first = true;
    loop {
        let scan = super::scan(common, globs.clone(), "/log")?;
        let mut out = String::new();
        let mut here = BTreeMap::new();
        for (pod, answer) in scan.lookup.pods.iter().zip(&scan.answers) {
            let key = pod.key();
            here.insert(pod.uuid.clone(), ());
            let Some(all) = answer.ok().and_then(lines) else {
                let why = answer.problem().unwrap_or_else(|| "reply is not a list of lines".into());
                if silent.insert(pod.uuid.clone(), why.clone()).as_ref() != Some(&why) {
                    eprintln!("[{key}] no log: {why}");
                }
                continue;
            };
            silent.remove(&pod.uuid);
            let (fresh, gap) = match seen.get(&pod.uuid) {
                Some((_, old)) => new_lines(old, &all),
                None if args.long => (&all[..], false),
                None => (&all[all.len().saturating_sub(args.lines)..], false),
            };
            if gap {
                eprintln!("[{key}] (lines may be missing: its log turned over between two reads)");
            }
            for line in fresh {
                out += &followed(&key, line, common.json);
            }
            seen.insert(pod.uuid.clone(), (key, all));
        }
        seen.retain(|uuid, (key, _)| {
            let stays = here.contains_key(uuid);
            if !stays {
                eprintln!("[{key}] gone");
            }
            stays
        });
        if first && scan.lookup.pods.is_empty() {
            let globs = if args.clusters.is_empty() { "*".into() } else { args.clusters.join(" ") };
            eprint!("{}", output::no_pods(&globs).trim_start());
            eprintln!("(following: pods that register will be shown)");
        }
        first = false;
        let mut stdout = std::io::stdout().lock();
        if stdout.write_all(out.as_bytes()).and_then(|()| stdout.flush()).is_err() {
            // Nobody reads any more (a closed pipe).
            return Ok(ExitCode::SUCCESS);
        }
        drop(stdout);
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// `--k8s -f`: every pod's container log stream at once, until all have ended.
fn follow_kubernetes(
    access: &Access,
    pods: &[super::lookup::Pod],
    tail: Option<i64>,
    json: bool,
) -> Result<ExitCode> {
    let mut failed: Vec<String> = Vec::new();
    let mut named = Vec::new();
    for pod in pods {
        match pod.field("task") {
            task if task.is_empty() => failed
                .push(format!("{} (its registration names no Kubernetes pod (task))", pod.key())),
            task => named.push((pod.key(), task)),
        }
    }
    if pods.is_empty() {
        output::emit(&output::no_pods("*"));
        return Ok(ExitCode::from(1));
    }
    let kube = Kube::connect_streaming(access)?;
    let broken = kube.follow_logs(&named, tail, |pod, line| {
        let mut stdout = std::io::stdout().lock();
        let _ =
            stdout.write_all(followed(pod, line, json).as_bytes()).and_then(|()| stdout.flush());
    });
    failed.extend(broken.iter().map(|(key, e)| format!("{key} ({})", chain(e))));
    if !failed.is_empty() {
        eprintln!(
            "{} {} without a log: {}",
            failed.len(),
            super::pods(failed.len()),
            failed.join(", ")
        );
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::new_lines;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn new_lines_are_those_after_the_overlap() {
        let show = |old: &[&str], new: &[&str]| {
            let (new, old) = (v(new), v(old));
            let (fresh, gap) = new_lines(&old, &new);
            (fresh.to_vec(), gap)
        };
        assert_eq!(show(&["a", "b"], &["a", "b", "c"]), (v(&["c"]), false));
        assert_eq!(show(&["a", "b"], &["a", "b"]), (v(&[]), false));
        // The ring dropped its first line as it gained one.
        assert_eq!(show(&["a", "b", "c"], &["b", "c", "d"]), (v(&["d"]), false));
        // Repeated lines are counted as a run.
        assert_eq!(show(&["x", "a", "a"], &["a", "a", "a"]), (v(&["a"]), false));
        assert_eq!(show(&["a", "a"], &["a", "a", "a"]), (v(&["a"]), false));
        // No overlap: everything is new, and lines may be missing.
        assert_eq!(show(&["a", "b"], &["c", "d"]), (v(&["c", "d"]), true));
        assert_eq!(show(&[], &["a"]), (v(&["a"]), false));
    }
}
