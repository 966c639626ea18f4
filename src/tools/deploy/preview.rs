//! `deploy`'s previews, which create nothing: `--dry-run=server` (the server validates each
//! object with `dryRun=All`) and `--diff` (each definition against its cluster's live RC).

use std::process::ExitCode;

use serde_json::{Value, json};

use super::{Item, print_failures};
use crate::error::{Result, chain};
use crate::k8s::Kube;
use crate::k8s::objects;
use crate::tools::workload;

/// `--dry-run=server`: each object is sent as a create with `dryRun=All` (and strict field
/// validation), so the server checks it as it would for real, admission included, and stores
/// nothing. Prints `<file>: <rc> validated by the server (dry run, nothing created)` per object
/// and the usual failures; with -j `{"<file>": {"ok", "application", "error", "warnings"}}`.
pub(super) fn server_dry_run(kube: Kube, items: &mut [Item], as_json: bool) -> Result<ExitCode> {
    for item in items.iter_mut() {
        let Some(rc) = item.rc.as_ref() else { continue };
        let checked = kube.create_rc_dry_run(&objects::wire(rc, &item.extra));
        item.warnings.extend(kube.take_warnings());
        if let Err(e) = checked {
            item.error = Some(chain(&e));
        }
    }
    let ok = items.iter().filter(|i| i.error.is_none()).count();
    let name = |item: &Item| item.rc.as_ref().and_then(|rc| rc.metadata.name.clone());
    if as_json {
        let mut out = serde_json::Map::new();
        for item in items.iter() {
            let entry = json!({"ok": item.error.is_none(), "application": name(item),
                "error": item.error, "warnings": item.warnings, "dry_run": "server"});
            out.insert(item.file.clone(), entry);
        }
        print!("{}", crate::tools::output::structured(&Value::Object(out)));
    } else {
        print_failures(items);
        for item in items.iter().filter(|i| i.error.is_none()) {
            let rc = name(item).unwrap_or_default();
            println!("{}: {rc} validated by the server (dry run, nothing created)", item.file);
        }
        println!(
            "{}% success / spawned 0 pods (server dry run)",
            crate::tools::output::percent(ok, items.len())
        );
    }
    Ok(if ok == items.len() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `--diff`: per definition, the differences against the newest live RC of its cluster
/// (`<file>: <cluster> against <rc>:` then `  <line>` each), or that the cluster is new. Exit 0
/// when nothing would change, 1 when something would (as `kubectl diff`) or on a failure.
pub(super) fn print_diff(kube: &Kube, items: &mut [Item], as_json: bool) -> Result<ExitCode> {
    let mut out = serde_json::Map::new();
    let mut changes = false;
    for item in items.iter_mut() {
        let Some(rc) = item.rc.as_ref() else { continue };
        let cluster = workload::qualified(rc).unwrap_or_default();
        let live = match workload::rcs_by_cluster(kube, &crate::tools::Glob(cluster.clone())) {
            Ok(mut found) => found.remove(&cluster).and_then(|mut rcs| rcs.pop()),
            Err(e) => {
                item.error = Some(chain(&e));
                continue;
            }
        };
        let entry = match &live {
            None => {
                changes = true;
                if !as_json {
                    println!(
                        "{}: {cluster} is not deployed: would create {} ({} pod(s))",
                        item.file,
                        workload::name(rc),
                        item.replicas
                    );
                }
                json!({"cluster": cluster, "live": null, "changes": ["new cluster"]})
            }
            Some(live) => {
                let lines = crate::tools::diff::diff(live, rc);
                changes |= !lines.is_empty();
                if !as_json {
                    let against = workload::name(live);
                    if lines.is_empty() {
                        println!("{}: {cluster}: no change against {against}", item.file);
                    } else {
                        println!("{}: {cluster} against {against}:", item.file);
                        for line in &lines {
                            println!("  {line}");
                        }
                    }
                }
                json!({"cluster": cluster, "live": workload::name(live), "changes": lines})
            }
        };
        out.insert(item.file.clone(), entry);
    }
    for item in items.iter().filter(|i| i.error.is_some()) {
        out.insert(item.file.clone(), json!({"error": item.error}));
    }
    if as_json {
        print!("{}", crate::tools::output::structured(&Value::Object(out)));
    } else {
        print_failures(items);
    }
    let failed = items.iter().any(|i| i.error.is_some());
    Ok(if changes || failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
