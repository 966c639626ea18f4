//! `ocho deploy FILE…`: one ReplicationController per container definition. Every definition is
//! read, validated and built before the first API call; `--dry-run` stops there and prints the
//! objects; `--dry-run=server` and `--diff` ([`preview`]) ask the server or compare with the
//! live RCs and create nothing. File arguments may be globs, expanded here against the working directory (the
//! original only got that from the shell every line went through, which `ocho` never uses).

mod preview;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::{Value, json};

use super::workload;
use crate::definition::{self, Prepare};
use crate::error::{Error, Result, chain};
use crate::k8s::objects::{self, Target};
use crate::k8s::ops::Propagation;
use crate::k8s::{Kube, is_code};

crate::tools::k8s_tool_args! {
    /// spawn one replication controller per container YAML file
    #[argh(
        subcommand,
        name = "deploy",
        example = "{command_name} web.yml\n    create one replication controller from web.yml in namespace default",
        example = "{command_name} -n staging -p 3 '*.yml'\n    deploy every YAML file here into namespace staging, 3 pods each",
        example = "{command_name} --dry-run -O prod.yml -o yaml web.yml\n    the objects, with prod.yml's settings merged in, as YAML; create nothing",
        example = "{command_name} --diff web.yml\n    show what deploying web.yml would change; create nothing",
        note = "FILE arguments are container definition YAML files, or globs (`*.yml`) expanded against the working directory. Each becomes one ReplicationController named `ochopod-<ns>-<cluster>-<UTC YYYY-MM-DD-HH-MM-SS>-<5 random chars>` (a DNS label: dots of the namespace become dashes; shortened to 63 characters from the left part when needed), labelled ochopod.io/namespace, ochopod.io/cluster and ochopod.io/application. Its one container gets the Ochopod environment (ochopod_cluster, ochopod_namespace, ochopod_application, ochopod_zk, ochopod_port, ochopod_ports, ochopod_debug, ochopod_start, ochopod_depends_on, pod = settings JSON, POD_IP, POD_NAME, NODE_NAME), never a credential. The definition's `command` and `args` become the container's command and args unchanged: with an image whose entrypoint is `ocho pod … --`, give only `args`, the workload the agent starts.\n\nOutput: one line per failed definition on stderr (`<file>: <reason>`; with --wait the pods registered, configured and dead, and what became of the RC), one stdout line per RC created (`<file>: <rc> created|left behind|deleted again (--strict) (<N> pod(s))`), then `<P>% success / spawned <N> pod(s)` (the pods of the RCs still there). --wait gives up early once every new pod reports its process dead. With -j one JSON object: {{\"<file>\": {{\"ok\": bool, \"up\": [seq… with --wait], \"created\": bool, \"deleted\": bool, \"application\": \"<rc name>\", \"replicas\": N, \"error\": \"…\", \"warnings\": [\"…\"]}}}}; the server's warnings also go to stderr as `<file>: warning: <text>`. Objects are created with strict field validation: a field the server does not know (a typo in `verbatim`) fails the definition, naming its path. --dry-run (or --dry-run=client) prints the objects (YAML documents; a JSON array with -j) and calls nothing. --dry-run=server (or --server-dry-run) sends each object with dryRun=All: the server validates and admits it as for real and stores nothing; stdout `<file>: <rc> validated by the server (dry run, nothing created)`, -j {{\"<file>\": {{\"ok\", \"application\", \"error\", \"warnings\", \"dry_run\": \"server\"}}}}. --diff compares each definition with the newest live RC of its cluster (image, replicas, command, args, ports, env, settings key by key; ochopod_application is per RC and left out) and creates nothing: `<file>: <cluster> against <rc>:` then one `  <what>: <live> -> <new>` (`+`/`-` for added and removed) per change, `no change against <rc>`, or `<cluster> is not deployed: would create <rc>`; -j {{\"<file>\": {{\"cluster\", \"live\": \"<rc>\"|null, \"changes\": [\"…\"]}}}}; exit 1 when something would change (as kubectl diff). --dry-run, --dry-run=server, --diff and --wait exclude each other. Exit 0 when every definition was deployed, 1 otherwise, 2 on a usage error."
    )]
    pub struct Args {
        /// container definition files or globs
        #[argh(positional)]
        pub files: Vec<String>,
        /// ochopod namespace (default "default")
        #[argh(option, short = 'n', default = "String::from(\"default\")")]
        pub namespace: String,
        /// replicas of each controller (default: the definition's `replicas`, else 1)
        #[argh(option, short = 'p')]
        pub pods: Option<i32>,
        /// override file: <ns>.<cluster> → settings deep-merged into `settings` (repeatable)
        #[argh(option, short = 'O')]
        pub overrides: Vec<String>,
        /// suffix appended to each cluster name (<cluster>-<suffix>)
        #[argh(option, short = 's')]
        pub suffix: Option<String>,
        /// image tag to use instead of the definition's
        #[argh(option, short = 'r')]
        pub release: Option<String>,
        /// print the objects that would be created and call nothing (also --dry-run=client)
        #[argh(switch)]
        pub dry_run: bool,
        /// send the objects with dryRun=All: the server validates them (admission included) and
        /// creates nothing (also --dry-run=server)
        #[argh(switch)]
        pub server_dry_run: bool,
        /// show what deploying would change against the cluster's live RCs (image, replicas,
        /// command, args, ports, env, settings) and create nothing
        #[argh(switch)]
        pub diff: bool,
        /// wait until the pods are registered in ZooKeeper and the cluster is configured
        #[argh(switch)]
        pub wait: bool,
        /// seconds to wait with --wait (default 60, at least 5)
        #[argh(option, short = 't', default = "60.0")]
        pub timeout: f64,
        /// with --wait: delete what was created when the wait fails
        #[argh(switch)]
        pub strict: bool,
        /// where pods reach ZooKeeper, host:port,… (env OCHO_ZK_PUBLIC; default
        /// ocho-proxy.<k8s namespace>.svc:2181, the proxy Service)
        #[argh(option)]
        pub zk_public: Option<String>,
    }
    zk = "zookeeper hosts for --wait, host:port,… (env OCHOPOD_ZK; default 127.0.0.1:2181)";
}

/// Name of the proxy's Service, which gives pods their default ZooKeeper address.
pub const PROXY_SERVICE: &str = "ocho-proxy";

/// The outcome of one definition.
#[derive(Debug)]
struct Item {
    file: String,
    rc: Option<ReplicationController>,
    /// What the typed model dropped from the definition's `verbatim` (sent anyway).
    extra: Value,
    replicas: i32,
    error: Option<String>,
    up: Vec<u64>,
    /// What the server warned about this definition's object.
    warnings: Vec<String>,
    /// Its RC was created (it may have been deleted again: `deleted`).
    created: bool,
    /// Its RC was deleted again (`--strict` after a failed wait).
    deleted: bool,
}

/// Runs the tool.
pub fn run(mut args: Args) -> Result<ExitCode> {
    args.choose_format()?;
    if args.files.is_empty() {
        return Err(Error::Usage("deploy: give at least one container definition file".into()));
    }
    definition::check_namespace(&args.namespace).map_err(|e| Error::Usage(e.to_string()))?;
    crate::tools::k8s_timeout(args.timeout)?;
    let exclusive = [args.server_dry_run, args.dry_run, args.diff, args.wait];
    if exclusive.iter().filter(|f| **f).count() > 1 {
        return Err(Error::Usage(
            "deploy: give at most one of --dry-run, --dry-run=server, --diff and --wait".into(),
        ));
    }
    if args.wait && !args.dry_run {
        // Before any thread: an interrupt must not leave an RC behind that --strict promised
        // to delete, nor end the tool without saying what it left.
        super::interrupt::arm()?;
    }
    let overrides = definition::load_overrides(&args.overrides)?;
    let access = args.access();

    // Building a client reads the configuration only; nothing is sent before `create`.
    // A dry run needs no configuration, unless a --context was asked for by name.
    let kube = match Kube::connect(&access) {
        Err(e) if args.context.is_some() => return Err(e),
        other => other,
    };
    let k8s_ns = match &kube {
        Ok(k) => k.namespace().to_string(),
        Err(_) if args.dry_run => args.k8s_namespace.clone().unwrap_or_else(|| "default".into()),
        Err(_) => String::new(),
    };
    let zk = args
        .zk_public
        .clone()
        .or_else(|| std::env::var("OCHO_ZK_PUBLIC").ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| format!("{PROXY_SERVICE}.{k8s_ns}.svc:2181"));

    let mut items = Vec::new();
    // A file named twice (`deploy a.yml *.yml`) is deployed once.
    let mut seen = std::collections::BTreeSet::new();
    for pattern in &args.files {
        match expand(Path::new("."), pattern) {
            Ok(files) => {
                for file in files.into_iter().filter(|f| seen.insert(f.clone())) {
                    items.push(build(&args, &overrides, &file, &k8s_ns, &zk));
                }
            }
            Err(reason) => items.push(Item {
                file: pattern.clone(),
                rc: None,
                extra: Value::Null,
                replicas: 0,
                error: Some(reason),
                up: vec![],
                warnings: vec![],
                created: false,
                deleted: false,
            }),
        }
    }

    if args.dry_run {
        return print_dry_run(&items, args.json);
    }
    if args.server_dry_run {
        return preview::server_dry_run(kube?, &mut items, args.json);
    }
    if args.diff {
        return preview::print_diff(&kube?, &mut items, args.json);
    }

    match kube {
        Ok(kube) => {
            submit(&kube, &mut items);
            if args.wait {
                wait(&kube, &args, &mut items)?;
            }
        }
        Err(err) => {
            // No client at all: nothing is created. Say what else was wrong, then fail once.
            print_failures(&items);
            return Err(err);
        }
    }
    report(&items, args.json)
}

/// Reads, prepares and builds one definition; failures become the item's error.
fn build(
    args: &Args,
    overrides: &serde_json::Map<String, Value>,
    file: &Path,
    k8s_ns: &str,
    zk: &str,
) -> Item {
    let name = file.display().to_string();
    let built = (|| -> Result<(ReplicationController, Value, i32)> {
        let mut def = definition::load(file)?;
        let opts = Prepare {
            namespace: &args.namespace,
            suffix: args.suffix.as_deref(),
            release: args.release.as_deref(),
            overrides: Some(overrides),
        };
        let wrap = |source: definition::Invalid| source.of(file);
        def.prepare(&opts).map_err(wrap)?;
        super::scope::check_cluster(&format!("{}.{}", args.namespace, def.cluster))?;
        let replicas = args.pods.or(def.replicas).unwrap_or(1);
        if !(0..=10_000).contains(&replicas) {
            return Err(Error::Usage(format!("-p {replicas}: give 0 to 10000 pods")));
        }
        let target = Target {
            namespace: args.namespace.clone(),
            application: objects::rc_name(
                &args.namespace,
                &def.cluster,
                SystemTime::now(),
                crate::random::u64(),
            ),
            replicas,
            zk: zk.to_string(),
        };
        let mut rc = objects::build(&def, &target).map_err(wrap)?;
        rc.metadata.namespace = Some(k8s_ns.to_string());
        let extra = objects::dropped_by_model(&def, &rc);
        objects::check_limits(&objects::wire(&rc, &extra)).map_err(wrap)?;
        Ok((rc, extra, replicas))
    })();
    match built {
        Ok((rc, extra, replicas)) => Item {
            file: name,
            rc: Some(rc),
            extra,
            replicas,
            error: None,
            up: vec![],
            warnings: vec![],
            created: false,
            deleted: false,
        },
        Err(e) => Item {
            file: name,
            rc: None,
            extra: Value::Null,
            replicas: 0,
            // The line already starts with the file's name: the reason alone follows it.
            error: Some(match &e {
                Error::Definition { source, .. } => chain(source.as_ref()),
                e => chain(e),
            }),
            up: vec![],
            warnings: vec![],
            created: false,
            deleted: false,
        },
    }
}

/// Creates the RCs, one after the other. A name clash (409) gets a fresh random part and one
/// more try; an unreachable API stops the run so no later item is half-tried.
fn submit(kube: &Kube, items: &mut [Item]) {
    let mut unreachable: Option<String> = None;
    for item in items.iter_mut() {
        let Some(rc) = item.rc.as_mut() else { continue };
        if let Some(earlier) = &unreachable {
            item.error = Some(format!(
                "not submitted: the API server could not be reached for {earlier} (see there)"
            ));
            continue;
        }
        let mut attempt = 0;
        loop {
            let created = kube.create_rc(&objects::wire(rc, &item.extra));
            item.warnings.extend(kube.take_warnings());
            match created {
                Ok(created) => {
                    *rc = created;
                    item.created = true;
                    break;
                }
                Err(e) if is_code(&e, 409) && attempt < 3 => {
                    attempt += 1;
                    rename(rc);
                }
                Err(e) => {
                    if matches!(e, Error::K8s { .. }) {
                        unreachable = Some(item.file.clone());
                    }
                    item.error = Some(chain(&e));
                    break;
                }
            }
        }
    }
}

/// `--wait`: blocks until each created RC's pods are registered and configured (in their
/// cluster's snapshot), printing progress; a timeout fails the item, and with `--strict` its RC
/// is deleted again (propagation Background).
fn wait(kube: &Kube, args: &Args, items: &mut [Item]) -> Result<()> {
    let pending = items.iter().any(|i| i.error.is_none());
    if !pending {
        return Ok(());
    }
    let zk = crate::zk::Session::connect(&args.zk, std::time::Duration::from_secs(10))?;
    let deadline = std::time::Instant::now() + crate::tools::k8s_timeout(args.timeout)?;
    for item in items.iter_mut().filter(|i| i.error.is_none()) {
        let Some(rc) = &item.rc else { continue };
        let app = rc.metadata.name.clone().unwrap_or_default();
        let cluster = workload::qualified(rc).unwrap_or_default();
        let want = item.replicas as usize;
        let (file, quiet) = (item.file.clone(), args.json);
        // First the pods of this RC, registered and in the cluster's snapshot; then the `wait`
        // tool's own readiness (every pod's process running, a settled leader).
        let waited = workload::wait_for(
            &zk,
            &cluster,
            deadline,
            Some((&app, want)),
            |pods| {
                let mine = pods.iter().filter(|p| p.field("application") == app).count();
                if !quiet {
                    println!("{file}: {mine}/{want} {} registered", crate::tools::pods(want));
                }
            },
            |pods, configured| workload::settled(pods, configured, &app, want),
        )?;
        let mut ok = waited.ok;
        if ok && want > 0 {
            let target = super::wait::Target {
                globs: vec![super::Glob(cluster.clone())],
                min_pods: want,
                pod_timeout: std::time::Duration::from_secs(5),
                parallel: workload::PARALLEL,
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let statuses = super::wait::until_ready(&zk, &target, left, &mut |status| {
                if !quiet {
                    println!("{file}: {}", status.state);
                }
            })?;
            ok = statuses.iter().all(|s| s.ready);
        }
        item.up =
            waited.pods.iter().filter(|p| p.field("application") == app).map(|p| p.seq).collect();
        if !ok {
            let timeout = crate::tools::k8s_timeout(args.timeout)?;
            let mut reason =
                if let Some(signal) = super::interrupt::received().filter(|_| waited.ok) {
                    format!(
                        "{app}: registered and configured, not yet ready: {}",
                        super::interrupt::describe(signal)
                    )
                } else if waited.ok {
                    format!(
                        "{app}: registered and configured, but not ready after {}s",
                        timeout.as_secs()
                    )
                } else {
                    workload::wait_failure(&app, &waited, want, timeout)
                };
            if args.strict {
                match kube.delete_rc(&app, Propagation::Background) {
                    Ok(_) => {
                        item.deleted = true;
                        reason.push_str("; deleted (--strict)");
                    }
                    Err(e) => reason.push_str(&format!(
                        "; --strict delete failed, {app} is left behind: {}",
                        chain(&e)
                    )),
                }
            } else {
                reason.push_str(&format!("; {app} is left behind (without --strict)"));
            }
            item.error = Some(reason);
        }
    }
    Ok(())
}

/// Gives an RC a new name (new random part), keeping labels and env consistent with it.
fn rename(rc: &mut ReplicationController) {
    let labels = rc.metadata.labels.clone().unwrap_or_default();
    let ns = labels.get(objects::LABEL_NAMESPACE).cloned().unwrap_or_default();
    let cluster = labels.get(objects::LABEL_CLUSTER).cloned().unwrap_or_default();
    let name = objects::rc_name(&ns, &cluster, SystemTime::now(), crate::random::u64());
    objects::set_application(rc, &name);
}

fn print_dry_run(items: &[Item], as_json: bool) -> Result<ExitCode> {
    let rcs: Vec<Value> =
        items.iter().filter_map(|i| Some(objects::wire(i.rc.as_ref()?, &i.extra))).collect();
    if as_json {
        print!("{}", crate::tools::output::structured(&Value::Array(rcs)));
    } else {
        for rc in &rcs {
            let text = serde_yaml::to_string(rc)
                .map_err(|e| Error::Failed(format!("render the objects as YAML: {e}")))?;
            print!("---\n{text}");
        }
    }
    print_failures(items);
    Ok(if items.iter().all(|i| i.error.is_none()) { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_failures(items: &[Item]) {
    for item in items {
        for warning in &item.warnings {
            eprintln!("{}: warning: {warning}", item.file);
        }
        if let Some(error) = &item.error {
            eprintln!("{}: {error}", item.file);
        }
    }
}

fn report(items: &[Item], as_json: bool) -> Result<ExitCode> {
    let ok = items.iter().filter(|i| i.error.is_none()).count();
    let name = |item: &Item| item.rc.as_ref().and_then(|rc| rc.metadata.name.clone());
    if as_json {
        let mut out = serde_json::Map::new();
        for item in items {
            let mut entry = json!({ "ok": item.error.is_none(), "up": item.up,
                "created": item.created, "deleted": item.deleted });
            if item.created {
                entry["application"] = json!(name(item));
                entry["replicas"] = json!(item.replicas);
            }
            if let Some(e) = &item.error {
                entry["error"] = json!(e);
            }
            entry["warnings"] = json!(item.warnings);
            out.insert(item.file.clone(), entry);
        }
        print!("{}", crate::tools::output::structured(&Value::Object(out)));
    } else {
        print_failures(items);
        // Every RC this run created, and whether it is still there.
        for item in items.iter().filter(|i| i.created) {
            let rc = name(item).unwrap_or_default();
            let fate = match (item.deleted, item.error.is_some()) {
                (true, _) => "deleted again (--strict)",
                (false, true) => "left behind",
                (false, false) => "created",
            };
            let pods = crate::tools::pods(item.replicas.unsigned_abs() as usize);
            println!("{}: {rc} {fate} ({} {pods})", item.file, item.replicas);
        }
        let spawned: i32 =
            items.iter().filter(|i| i.created && !i.deleted).map(|i| i.replicas).sum();
        let pods = crate::tools::pods(spawned.unsigned_abs() as usize);
        println!(
            "{}% success / spawned {spawned} {pods}",
            crate::tools::output::percent(ok, items.len())
        );
    }
    Ok(if ok == items.len() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Expands one FILE argument. Without glob characters it is taken as is (a missing file is
/// reported when read); otherwise its last component is matched against the entries of its
/// directory (relative to `base`), hidden files only by a pattern starting with `.`, sorted.
pub fn expand(base: &Path, pattern: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(vec![path.to_path_buf()]);
    };
    if !name.contains(['*', '?', '[']) {
        return Ok(vec![path.to_path_buf()]);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if dir.and_then(|d| d.to_str()).is_some_and(|d| d.contains(['*', '?', '['])) {
        return Err("globs are only expanded in the last path component".into());
    }
    let listing = base.join(dir.unwrap_or(Path::new(".")));
    let entries = crate::confine::files_in("definition glob", &listing).map_err(|e| chain(&e))?;
    let mut found: Vec<PathBuf> = entries
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| !n.starts_with('.') || name.starts_with('.'))
        .filter(|n| fnmatch(name, n))
        .map(|n| dir.map_or_else(|| PathBuf::from(&n), |d| d.join(&n)))
        .collect();
    found.sort();
    if found.is_empty() {
        return Err("no file matches".into());
    }
    Ok(found)
}

/// Shell-style match of a whole file name (the agent's and tools' own matcher).
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    crate::ochopod::glob::matches(pattern, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_follows_the_shell() {
        assert!(fnmatch("*.yml", "zk.yml"));
        assert!(!fnmatch("*.yml", "zk.yaml"));
        assert!(fnmatch("zk?.y*", "zk1.yaml"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[!a-c]x", "bx"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("[*]", "*"));
    }

    #[test]
    fn globs_expand_in_the_given_directory_sorted_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yml", "a.yml", ".hidden.yml", "c.txt"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/d.yml"), "").unwrap();
        let got = expand(dir.path(), "*.yml").unwrap();
        assert_eq!(got, [PathBuf::from("a.yml"), PathBuf::from("b.yml")]);
        assert_eq!(expand(dir.path(), "sub/*.yml").unwrap(), [PathBuf::from("sub/d.yml")]);
        assert_eq!(expand(dir.path(), "plain.yml").unwrap(), [PathBuf::from("plain.yml")]);
        assert_eq!(expand(dir.path(), "*.json").unwrap_err(), "no file matches");
        assert!(expand(dir.path(), "*/*.yml").is_err());
    }

    #[test]
    fn percentages_reach_100_only_when_all_succeed() {
        assert_eq!(crate::tools::output::percent(1, 2), 50);
        assert_eq!(crate::tools::output::percent(2, 3), 66);
        assert_eq!(crate::tools::output::percent(3, 3), 100);
        assert_eq!(crate::tools::output::percent(0, 0), 0);
    }
}
