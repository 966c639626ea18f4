//! `ocho bump GLOB -r RELEASE`: a rolling image update. A new ReplicationController is made
//! from the newest one's pod template with the image tag replaced; then, `--step` pods at a time,
//! the new RC grows and, once its pods are registered and configured, as many of the oldest old
//! pods are killed gracefully and removed. The old RCs are deleted at the end. With `--strict`,
//! a failed step rolls back: the new RC goes and the old ones get their replicas back.
//! `--undo` rolls onto an earlier revision's image the same way, `--history` lists revisions
//! (recorded on the RCs, see [`super::revision`]).

use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::workload::{self, Killed};
use super::{Glob, Pod, revision};
use crate::definition;
use crate::error::{Error, Result, chain};
use crate::k8s::objects::{self, LABEL_CLUSTER, LABEL_NAMESPACE};
use crate::k8s::ops::Propagation;
use crate::k8s::{Kube, is_code};
use crate::zk::Session;

crate::tools::k8s_tool_args! {
    /// roll clusters to a new image tag, a few pods at a time
    #[argh(
        subcommand,
        name = "bump",
        example = "{command_name} -r 1.4.2 web\n    roll web to image tag 1.4.2, one pod at a time",
        example = "{command_name} -r 1.4.2 --step 3 --strict web\n    three pods at a time; roll back when a step fails",
        example = "{command_name} --history web\n    list web's revisions: image, replication controller, when",
        example = "{command_name} --undo web\n    go back to the previous revision's image",
        note = "GLOB matches `<namespace>.<cluster>` (a bare name matches any namespace); each matched cluster is bumped on its own. A new RC is created from the newest RC's pod template with the image tag set to RELEASE (a registry port is kept), at 0 replicas. Then, --step pods at a time: the new RC grows by the step; once its pods are registered in ZooKeeper and configured by their leader (in the cluster's snapshot), as many of the oldest old pods get `/control/kill` until 410, are marked as the first to go (pod-deletion-cost) and their RC lowered, so its controller removes exactly them; the step ends once their registrations are gone. At the end the old RCs are deleted (propagation Background). Each wait lasts at most -t seconds. With --strict, a failure rolls back: the new RC is deleted and the old RCs get their replicas back. SIGTERM or SIGINT ends the roll between steps (the rollback still runs with --strict).\n\nRevisions: each new RC carries the cluster's history in the annotation ochopod.io/revisions (revision, image, rc, replaced, at; the last 10; an RC of deploy is revision 1). --history lists them (-j: {{\"<cluster>\": [{{\"revision\", \"image\", \"rc\", \"replaced\", \"at\"}}…]}}) and changes nothing; --undo rolls onto the previous revision's image (the latest with another image than the current), or --to-revision N's, with the same procedure, recording a new revision. Give exactly one of -r, --undo, --history.\n\nA step gives up early once its new pods report their process dead. Output: problems on stderr, then one stdout line per RC created, deleted, left behind or rolled back (`<cluster>: created <rc>`, `<cluster>: rolled back: deleted <rc>, <old> back to N`), then `<P>% success (<N> pods)`. With -j: {{\"<cluster>\": {{\"ok\": bool, \"application\": \"<new rc>\", \"up\": [seq…], \"deleted\": [\"<old rc>\"…], \"rolled_back\": bool, \"problems\": [\"…\"], \"warnings\": [\"<server warning>\"]}}}}; server warnings also go to stderr as `<item>: warning: <text>`. Exit 0 when every cluster was rolled, 1 otherwise or when nothing matched, 2 on usage errors."
    )]
    pub struct Args {
        /// cluster glob
        #[argh(positional)]
        pub glob: String,
        /// the new image tag
        #[argh(option, short = 'r')]
        pub release: Option<String>,
        /// roll back to the previous revision's image (or --to-revision's), the same way
        #[argh(switch)]
        pub undo: bool,
        /// with --undo: the revision to go back to (see --history)
        #[argh(option)]
        pub to_revision: Option<u32>,
        /// list each cluster's revisions (revision, image, rc, replaced, when); changes nothing
        #[argh(switch)]
        pub history: bool,
        /// pods replaced at a time (default 1)
        #[argh(option, default = "1")]
        pub step: i32,
        /// roll back when a step fails
        #[argh(switch)]
        pub strict: bool,
        /// seconds each step may wait (default 60, at least 5)
        #[argh(option, short = 't', default = "60.0")]
        pub timeout: f64,
    }
    zk = "zookeeper hosts, host:port,… (env OCHOPOD_ZK; default 127.0.0.1:2181)";
}

#[derive(Debug, Default)]
struct Outcome {
    application: String,
    up: Vec<u64>,
    /// What was done to RCs, for the text output.
    notes: Vec<String>,
    /// Old RCs deleted at the end.
    deleted: Vec<String>,
    rolled_back: bool,
    problems: Vec<String>,
    failed: bool,
    warnings: Vec<String>,
}

/// The image a bump rolls `newest`'s cluster onto: its image re-tagged with `-r`, or with
/// `--undo` the image of the revision to go back to.
fn target_image(newest: &ReplicationController, args: &Args) -> Result<String> {
    if let Some(release) = &args.release {
        let image = revision::image(newest);
        return definition::with_tag(&image, release)
            .ok_or_else(|| Error::Usage(format!("-r {release}: not a valid image tag")));
    }
    let history = revision::history(newest);
    revision::undo_target(&history, args.to_revision)
        .map(|r| r.image.clone())
        .map_err(|why| Error::Failed(format!("--undo: {why}")))
}

/// The new RC: the newest one's template with the container's image set to `image`, a fresh
/// name, 0 replicas, none of the server-set fields of the old object, and the revisions so far
/// plus itself ([`revision::record`]).
pub fn next_rc(
    newest: &ReplicationController,
    image: &str,
    now: SystemTime,
    random: u64,
) -> Result<ReplicationController> {
    let labels = newest.metadata.labels.clone().unwrap_or_default();
    let (Some(ns), Some(cluster)) = (labels.get(LABEL_NAMESPACE), labels.get(LABEL_CLUSTER)) else {
        return Err(Error::Failed(format!("{}: not labelled by deploy", workload::name(newest))));
    };
    let mut rc = ReplicationController {
        metadata: ObjectMeta {
            labels: newest.metadata.labels.clone(),
            annotations: newest.metadata.annotations.clone(),
            namespace: newest.metadata.namespace.clone(),
            ..Default::default()
        },
        spec: newest.spec.clone(),
        status: None,
    };
    let spec = rc.spec.get_or_insert_default();
    spec.replicas = Some(0);
    let container = spec
        .template
        .as_mut()
        .and_then(|t| t.spec.as_mut())
        .and_then(|s| s.containers.first_mut())
        .ok_or_else(|| Error::Failed(format!("{}: no container", workload::name(newest))))?;
    container.image = Some(image.to_string());
    objects::set_application(&mut rc, &objects::rc_name(ns, cluster, now, random));
    revision::record(&mut rc, newest, now);
    Ok(rc)
}

/// Runs the tool.
pub fn run(mut args: Args) -> Result<ExitCode> {
    args.choose_format()?;
    let glob = Glob::required("bump", std::slice::from_ref(&args.glob))?.remove(0);
    let modes = [args.release.is_some(), args.undo, args.history];
    if modes.iter().filter(|m| **m).count() != 1 {
        return Err(Error::Usage("bump: give one of -r TAG, --undo or --history".into()));
    }
    if args.to_revision.is_some() && !args.undo {
        return Err(Error::Usage("bump: --to-revision goes with --undo".into()));
    }
    if let Some(release) = &args.release
        && definition::with_tag("x", release).is_none()
    {
        return Err(Error::Usage(format!("-r {release}: not a valid image tag")));
    }
    if args.step < 1 {
        return Err(Error::Usage("--step: give at least 1".into()));
    }
    // Before any thread: an interrupt ends the roll between steps, and --strict still rolls
    // back.
    super::interrupt::arm()?;
    let (kube, zk) = workload::clients(&args.access(), &args.zk)?;
    let clusters = workload::rcs_by_cluster(&kube, &glob)?;
    if args.history {
        return print_history(&clusters, &glob, args.json);
    }
    if clusters.is_empty() {
        eprintln!("{}: no replication controller found for this cluster glob", glob.0);
        print!(
            "{}",
            if args.json {
                super::output::structured(&json!({}))
            } else {
                "0% success (0 pods)\n".into()
            }
        );
        return Ok(ExitCode::from(1));
    }
    let mut outcomes = Vec::new();
    for (cluster, rcs) in &clusters {
        let mut outcome = bump(&kube, &zk, cluster, rcs, &args);
        outcome.warnings = kube.take_warnings();
        outcomes.push((cluster.clone(), outcome));
    }
    let up: usize = outcomes.iter().map(|(_, o)| o.up.len()).sum();
    let items = outcomes
        .into_iter()
        .map(|(cluster, o)| workload::Item {
            name: cluster,
            failed: o.failed,
            problems: o.problems,
            fields: json!({"application": o.application, "up": o.up, "deleted": o.deleted,
                "rolled_back": o.rolled_back}),
            warnings: o.warnings,
            notes: o.notes,
        })
        .collect();
    Ok(workload::report(items, args.json, |p| format!("{p}% success ({up} pods)")))
}

fn bump(
    kube: &Kube,
    zk: &Session,
    cluster: &str,
    rcs: &[ReplicationController],
    args: &Args,
) -> Outcome {
    let mut outcome = Outcome::default();
    let old: Vec<(String, i32)> =
        rcs.iter().map(|rc| (workload::name(rc), workload::replicas(rc))).collect();
    let newest = rcs.last().expect("rcs_by_cluster never returns an empty group");
    let created = (|| -> Result<(String, String)> {
        let image = target_image(newest, args)?;
        for _ in 0..3 {
            let rc = next_rc(newest, &image, SystemTime::now(), crate::random::u64())?;
            match kube.create_rc(&objects::wire(&rc, &serde_json::Value::Null)) {
                Ok(rc) => return Ok((workload::name(&rc), image)),
                Err(e) if is_code(&e, 409) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Failed("three name clashes in a row creating the new rc".into()))
    })();
    let (app, image) = match created {
        Ok(made) => made,
        Err(e) => {
            outcome.failed = true;
            outcome.problems.push(chain(&e));
            return outcome;
        }
    };
    outcome.application = app.clone();
    outcome.notes.push(format!("created {app}"));
    if args.undo {
        outcome.notes.push(format!("undo: rolling back to {image}"));
    }
    match roll(kube, zk, cluster, &app, &old, args) {
        Ok(up) => {
            outcome.up = up;
            for (name, _) in &old {
                match kube.delete_rc(name, Propagation::Background) {
                    Ok(_) => {
                        outcome.notes.push(format!("deleted {name}"));
                        outcome.deleted.push(name.clone());
                    }
                    Err(e) => {
                        outcome.failed = true;
                        outcome.notes.push(format!("{name} left behind (delete failed)"));
                        outcome.problems.push(chain(&e));
                    }
                }
            }
        }
        Err(e) => {
            outcome.failed = true;
            outcome.problems.push(chain(&e));
            if args.strict {
                let problems = rollback(kube, &app, &old);
                if problems.is_empty() {
                    outcome.rolled_back = true;
                    let restored: Vec<String> =
                        old.iter().map(|(n, r)| format!("{n} back to {r}")).collect();
                    outcome
                        .notes
                        .push(format!("rolled back: deleted {app}, {}", restored.join(", ")));
                } else {
                    outcome.notes.push(format!("rollback incomplete: {app} may be left behind"));
                    outcome.problems.extend(problems);
                }
            } else {
                let olds: Vec<&str> = old.iter().map(|(n, _)| n.as_str()).collect();
                outcome.notes.push(format!(
                    "{app} left behind with the pods it has, next to {} (no --strict: no \
                     rollback)",
                    olds.join(", ")
                ));
            }
        }
    }
    outcome
}

/// Moves the cluster onto `app`, `--step` pods at a time; returns the seqs of its pods.
fn roll(
    kube: &Kube,
    zk: &Session,
    cluster: &str,
    app: &str,
    old: &[(String, i32)],
    args: &Args,
) -> Result<Vec<u64>> {
    let total: i32 = old.iter().map(|(_, n)| n).sum();
    let old_names: Vec<&String> = old.iter().map(|(n, _)| n).collect();
    let timeout = super::k8s_timeout(args.timeout)?;
    let mut moved = 0;
    let mut pods: Vec<Pod> = Vec::new();
    let interrupted = |moved: i32| {
        super::interrupt::received().map(|signal| {
            Error::Failed(format!(
                "{} with {moved} of {total} pod(s) moved to {app}",
                super::interrupt::describe(signal)
            ))
        })
    };
    while moved < total {
        if let Some(e) = interrupted(moved) {
            return Err(e);
        }
        let n = args.step.min(total - moved);
        kube.set_scale(app, moved + n)?;
        let deadline = Instant::now() + timeout;
        let step_zk = workload::reconnect(zk)?;
        let zk = &step_zk;
        let waited = workload::wait_for(
            zk,
            cluster,
            deadline,
            Some((app, n as usize)),
            |_| {},
            |pods, configured| workload::settled(pods, configured, app, (moved + n) as usize),
        )?;
        if !waited.ok {
            return Err(Error::Failed(workload::wait_failure(
                app,
                &waited,
                (moved + n) as usize,
                timeout,
            )));
        }
        let seen = waited.pods;
        pods = seen;
        if !args.json {
            println!(
                "{cluster}: {} of {total} {} on {app}",
                moved + n,
                super::pods(total.unsigned_abs() as usize)
            );
        }
        let olds: Vec<Pod> =
            pods.iter().filter(|p| old_names.contains(&&p.field("application"))).cloned().collect();
        let chosen = super::scale::choose(&olds, n as usize, true);
        let owned: Vec<Pod> = chosen.iter().map(|p| (*p).clone()).collect();
        for (pod, killed) in owned.iter().zip(workload::graceful_kill(&owned, timeout)) {
            if let Killed::NotConfirmed(why) = killed {
                eprintln!("{cluster}: {}: no graceful kill ({why})", pod.key());
            }
        }
        let fresh = workload::reconnect(zk)?;
        let problems = workload::remove_pods(kube, &fresh, &chosen, Instant::now() + timeout);
        if let Some(e) = interrupted(moved) {
            return Err(e);
        }
        if !problems.is_empty() {
            return Err(Error::Failed(problems.join("; ")));
        }
        moved += n;
    }
    Ok(pods.iter().filter(|p| p.field("application") == app).map(|p| p.seq).collect())
}

/// `--history`: per cluster, the revisions recorded on its newest RC, oldest first.
fn print_history(
    clusters: &std::collections::BTreeMap<String, Vec<ReplicationController>>,
    glob: &Glob,
    as_json: bool,
) -> Result<ExitCode> {
    if clusters.is_empty() {
        eprintln!("{}: no replication controller found for this cluster glob", glob.0);
    }
    let histories: Vec<(&String, Vec<revision::Revision>)> =
        clusters.iter().filter_map(|(c, rcs)| Some((c, revision::history(rcs.last()?)))).collect();
    if as_json {
        let map: serde_json::Map<String, serde_json::Value> =
            histories.iter().map(|(c, h)| ((*c).clone(), json!(h))).collect();
        print!("{}", super::output::structured(&serde_json::Value::Object(map)));
    } else {
        let mut out = String::new();
        for (cluster, history) in &histories {
            out += &format!("\n{cluster} ->\n\n");
            let rows: Vec<Vec<String>> = history
                .iter()
                .map(|r| {
                    vec![
                        r.revision.to_string(),
                        r.image.clone(),
                        r.rc.clone(),
                        r.replaced.clone().unwrap_or_default(),
                        r.at.clone(),
                    ]
                })
                .collect();
            out += &super::output::table(&["revision", "image", "rc", "replaced", "at"], &rows);
        }
        super::output::emit(&out);
    }
    Ok(if clusters.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Undoes a failed roll: the new RC goes, the old ones get their replicas back.
fn rollback(kube: &Kube, app: &str, old: &[(String, i32)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, replicas) in old {
        if let Err(e) = kube.set_scale(name, *replicas) {
            problems.push(format!("rollback: {}", chain(&e)));
        }
    }
    if let Err(e) = kube.delete_rc(app, Propagation::Background) {
        problems.push(format!("rollback: {}", chain(&e)));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::objects::{LABEL_APPLICATION, Target};
    use std::path::Path;

    #[test]
    fn the_next_rc_keeps_the_template_and_changes_tag_name_and_replicas() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/definitions/good/full.yaml");
        let def = definition::load(&path).unwrap();
        let target = Target {
            namespace: "default".into(),
            application: "ochopod-default-web-old".into(),
            replicas: 3,
            zk: "zk:2181".into(),
        };
        let mut old = objects::build(&def, &target).unwrap();
        old.metadata.resource_version = Some("42".into());
        old.metadata.uid = Some("uid".into());
        let image = definition::with_tag(&revision::image(&old), "2.0").unwrap();
        let new = next_rc(&old, &image, SystemTime::UNIX_EPOCH, 0).unwrap();
        assert_eq!(
            new.metadata.name.as_deref(),
            Some("ochopod-default-web-1970-01-01-00-00-00-bbbbb")
        );
        assert_eq!(
            (new.metadata.uid.as_ref(), new.metadata.resource_version.as_ref()),
            (None, None)
        );
        let spec = new.spec.unwrap();
        assert_eq!(spec.replicas, Some(0));
        let tpl = spec.template.unwrap();
        assert_eq!(
            tpl.metadata.unwrap().labels.unwrap()[LABEL_APPLICATION],
            "ochopod-default-web-1970-01-01-00-00-00-bbbbb"
        );
        let c = &tpl.spec.unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.local:5000/team/web:2.0"));
        assert_eq!(c.args, Some(vec!["web-server".into(), "--port".into(), "80".into()]));
    }
}
