//! `ocho on`: `/control/on` without a payload — restart each pod's last configured process.
//! A pod that was never configured answers such an `on` with 406 and kills itself (docs/protocol.md
//! §5.1), so `on` first checks each pod and refuses the ones it cannot prove were configured.

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::{Answer, Pod, Verdict, control, text, tool_args};
use crate::error::Result;

tool_args! {
    /// switch pods on: restart their last configured process
    #[argh(
        subcommand,
        name = "on",
        example = "{command_name} web -i 2\n    start the process of pod #2 of web again",
        example = "{command_name} --force web -t 120\n    start it on every pod of web, each given two minutes",
        note = "Posts /control/on/<t> without a payload. A pod that was never configured would \
                kill itself on that, so each pod is checked first (/info): it is sent `on` only \
                when its process runs (a no-op), its /info says configured, or its uuid is in \
                its cluster's snapshot (it took part in a configuration). Others are refused \
                and reported as refused (apart from pods that did not answer), unless \
                --unconfigured; a pod that then answers 406 killed itself, and is reported so.\n\
                Needs --force unless -i picks pods. A glob matching no pod is a failure.\n\
                Text: per glob `<GLOB> -> P% replies, N pods on (T pods total)`, then the pods that failed.\n\
                JSON (-j): {{\"<glob>\": {{\"ok\": bool, \"on\": [seq, …], \"failed\": {{\"<pod>\": \"<reason>\"}}, \"refused\": {{\"<pod>\": \"<reason>\"}}}}, …}}"
    )]
    pub struct Args {
        /// cluster globs on <namespace>.<cluster> (a bare name also matches *.name)
        #[argh(positional)]
        pub clusters: Vec<String>,
        /// act on every pod of the globs (without -i)
        #[argh(switch)]
        pub force: bool,
        /// also send `on` to pods that may never have been configured (they die of it)
        #[argh(switch)]
        pub unconfigured: bool,
    }
    timeout = "60.0", "seconds the pod may take to start its process (default 60)";
}

/// `None` when a payload-less `on` is safe for this pod, else why not.
fn unsafe_reason(pod: &Pod, info: &Answer, configured: &HashSet<String>) -> Option<String> {
    let Some(info) = info.ok() else {
        return Some(format!("not checked: {}", info.problem().unwrap_or_default()));
    };
    match text(info.get("process")).as_str() {
        "running" => return None,
        "dead" => return Some("pod is dead".into()),
        _ => {}
    }
    if info.get("configured").and_then(Value::as_bool) == Some(true)
        || configured.contains(&pod.uuid)
    {
        return None;
    }
    Some(
        "never configured: on without a payload would kill it (--unconfigured to send anyway)"
            .into(),
    )
}

pub fn run(args: Args) -> Result<ExitCode> {
    let common = args.common()?;
    common.require_force("on", args.force)?;
    let globs = super::Glob::required("on", &args.clusters)?;
    let zk = common.connect()?;
    let found = super::lookup(&zk, &globs, common.indices.as_ref())?;
    // Checked also with --unconfigured, to say afterwards why a pod answered 406.
    let mut snapshots = BTreeMap::new();
    for pod in &found.pods {
        if !snapshots.contains_key(&pod.cluster) {
            snapshots.insert(
                pod.cluster.clone(),
                super::workload::configured(&zk, &pod.cluster)?.into_iter().collect(),
            );
        }
    }
    // `/info` answers at once on a live pod; the long -t is for the `on` itself.
    let check = common.timeout.min(Duration::from_secs(10));
    let infos =
        super::fan_out(&found.pods, common.parallel, |pod| super::post(pod, "/info", b"", check));
    let doubts: Vec<Option<String>> = found
        .pods
        .iter()
        .zip(&infos)
        .map(|(pod, info)| unsafe_reason(pod, info, &snapshots[&pod.cluster]))
        .collect();
    drop(zk);
    let targets: Vec<(&Pod, &Option<String>)> = found.pods.iter().zip(&doubts).collect();
    let (path, client) = control::control_path("on", &common);
    let verdicts = super::fan_out(&targets, common.parallel, |(pod, doubt)| match doubt {
        Some(why) if !args.unconfigured => Verdict::Refused(format!("not sent: {why}")),
        _ => on_verdict(&super::post(pod, &path, b"", client), doubt.is_some()),
    });
    Ok(control::report(&common, &globs, &found.pods, &verdicts, "on", &found.skipped))
}

/// The verdict on an `on`: a 406 means the pod refused and then killed itself (Ochopod's
/// answer to a failed `on`), which is said in so many words.
fn on_verdict(answer: &Answer, doubted: bool) -> Verdict {
    match answer {
        Answer::Json { status: 406, .. } if doubted => Verdict::Refused(
            "HTTP 406: it was never configured, so it refused and killed itself".into(),
        ),
        Answer::Json { status: 406, .. } => Verdict::Refused(
            "HTTP 406: its configuration failed, so it refused and killed itself".into(),
        ),
        other => control::verdict(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    #[test]
    fn a_bare_on_goes_only_to_pods_known_to_be_configured() {
        let pod = Pod {
            cluster: "a.b".into(),
            seq: 1,
            uuid: "u1".into(),
            znode: "u1.0000000001".into(),
            registration: crate::ochopod::Registration(Map::new()),
        };
        let info = |v: Value| Answer::Json { status: 200, body: v };
        let none = HashSet::new();
        let known: HashSet<String> = ["u1".to_string()].into();
        assert_eq!(unsafe_reason(&pod, &info(json!({"process": "running"})), &none), None);
        assert_eq!(unsafe_reason(&pod, &info(json!({"process": "stopped"})), &known), None);
        let configured = json!({"process": "stopped", "configured": true});
        assert_eq!(unsafe_reason(&pod, &info(configured), &none), None);
        assert!(
            unsafe_reason(&pod, &info(json!({"process": "stopped"})), &none)
                .unwrap()
                .starts_with("never configured")
        );
        assert_eq!(
            unsafe_reason(&pod, &info(json!({"process": "dead"})), &known).as_deref(),
            Some("pod is dead")
        );
        assert!(
            unsafe_reason(&pod, &Answer::Failed("timed out".into()), &known)
                .unwrap()
                .contains("timed out")
        );
    }
}
