//! What the state-changing verbs (`on`, `off`, `reset`, `ping`) share: the pod-side timeout
//! segment with a longer client deadline (docs/architecture.md §7.5), and the per-glob report
//! `<GLOB> -> P% replies, N pods <verb>` with its JSON form. A glob that matches no pod is a
//! failure for these verbs (docs/architecture.md §7.10).

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Answer, Common, Glob, Pod, Tally, Verdict, output};

/// `/control/<verb>/<secs>` and the client deadline to use with it: the pod gets `-t` (rounded
/// up to whole seconds, at least 1), the client waits a quarter longer plus a second, as the
/// Ochopod leader does, so a slow pod answers 408 rather than looking silent.
pub fn control_path(verb: &str, common: &Common) -> (String, Duration) {
    let secs = common.timeout.as_secs_f64().ceil().max(1.0) as u64;
    let client = Duration::from_secs_f64(secs as f64 * 1.25 + 1.0);
    (format!("/control/{verb}/{secs}"), client)
}

/// Reason text for a 200 that the verb did not get: 408 and 410 say what they mean.
pub fn explain(answer: &Answer) -> Option<String> {
    match verdict(answer) {
        Verdict::Done => None,
        Verdict::Refused(why) | Verdict::Unfinished(why) | Verdict::Silent(why) => Some(why),
    }
}

/// A pod's answer to a verb: a JSON reply other than 200 is a refusal (the pod answered),
/// anything else a silence.
pub fn verdict(answer: &Answer) -> Verdict {
    match answer {
        Answer::Json { status: 200, .. } => Verdict::Done,
        Answer::Json { status: 408, .. } => {
            Verdict::Refused("HTTP 408, still queued on the pod".into())
        }
        Answer::Json { status: 410, .. } => Verdict::Refused("HTTP 410, pod is dead".into()),
        Answer::Json { status: 406, .. } => Verdict::Refused("HTTP 406, refused".into()),
        Answer::Json { status, .. } => Verdict::Refused(format!("HTTP {status}")),
        Answer::Failed(why) => Verdict::Silent(why.clone()),
    }
}

/// Prints the per-glob summary (`done` names what happened: "on", "off", "reset") and turns the
/// result into the exit code: 1 when a glob matched nothing or --min-replies is not met.
pub fn report(
    common: &Common,
    globs: &[Glob],
    pods: &[Pod],
    verdicts: &[Verdict],
    done: &str,
    skipped: &[String],
) -> ExitCode {
    let of = |glob: &Glob| -> Tally {
        let mut tally = Tally::default();
        for (pod, v) in pods.iter().zip(verdicts).filter(|(p, _)| glob.matches(&p.cluster)) {
            tally.judge(pod, v.clone());
        }
        tally
    };
    let seqs = |glob: &Glob| -> Vec<u64> {
        pods.iter()
            .zip(verdicts)
            .filter(|(p, v)| glob.matches(&p.cluster) && **v == Verdict::Done)
            .map(|(p, _)| p.seq)
            .collect()
    };
    let mut empty = Vec::new();
    if common.json {
        let mut map = Map::new();
        for glob in globs {
            let tally = of(glob);
            let ok = tally.total > 0 && tally.ok >= common.min_replies.needed(tally.total);
            map.insert(
                glob.0.clone(),
                json!({"ok": ok, done: seqs(glob), "failed": tally.failed_json(),
                    "refused": tally.refused_json()}),
            );
        }
        output::emit(&output::structured(&Value::Object(map)));
    }
    let mut out = String::new();
    for glob in globs {
        let tally = of(glob);
        if tally.total == 0 {
            empty.push(glob.0.clone());
            out += &output::no_pods(&glob.0);
            continue;
        }
        out += &format!(
            "\n<{}> -> {}% replies, {} {} {done} ({} {} total)\n",
            glob.0,
            tally.percent(),
            tally.ok,
            super::pods(tally.ok),
            tally.total,
            super::pods(tally.total)
        );
        output::failures(&mut out, &tally);
    }
    if !common.json {
        output::emit(&out);
    }
    let mut all = Tally::default();
    for (pod, v) in pods.iter().zip(verdicts) {
        all.judge(pod, v.clone());
    }
    let code = super::finish(common, &all, skipped);
    if !empty.is_empty() {
        eprintln!("no pods matched {}", empty.join(", "));
        return ExitCode::from(1);
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_waits_longer_than_the_pod() {
        let common = Common::new("zk", 1.0, 2.5, 4, None, &[], super::output::Format::Text)
            .expect("valid options");
        let (path, client) = control_path("off", &common);
        assert_eq!(path, "/control/off/3");
        assert_eq!(client, Duration::from_secs_f64(4.75));
    }
}
