//! `deploy --diff`: what deploying a definition would change against the live RCs of the same
//! cluster (the newest one, as `bump` and `scale` see the cluster): image, replicas, command,
//! args, ports, environment and the settings (the `pod` variable's JSON, key by key). Pure:
//! `deploy` finds the live RC and prints the lines.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, ReplicationController};
use serde_json::Value;

/// Environment variables that differ between any two deployments by construction (they name
/// the RC itself), so a difference there says nothing.
const PER_RC: &[&str] = &["ochopod_application"];
/// The variable holding the definition's `settings` as JSON.
const SETTINGS: &str = "pod";

fn container(rc: &ReplicationController) -> Container {
    rc.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first().cloned())
        .unwrap_or_default()
}

/// An environment variable's value as text: its `value`, or where it comes from.
fn env_value(var: &EnvVar) -> String {
    if let Some(value) = &var.value {
        return value.clone();
    }
    match var.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
        Some(field) => format!("(from {})", field.field_path),
        None => "(from a reference)".into(),
    }
}

fn env(c: &Container) -> BTreeMap<String, String> {
    c.env.iter().flatten().map(|v| (v.name.clone(), env_value(v))).collect()
}

fn show<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn changed(out: &mut Vec<String>, what: &str, live: String, new: String) {
    if live != new {
        out.push(format!("{what}: {live} -> {new}"));
    }
}

/// Maps keyed by name, compared entry by entry: `+ k: v`, `- k: v`, `k: a -> b`.
fn compare(
    out: &mut Vec<String>,
    what: &str,
    live: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) {
    for (k, v) in new {
        match live.get(k) {
            None => out.push(format!("+ {what} {k}: {v}")),
            Some(old) if old != v => out.push(format!("{what} {k}: {old} -> {v}")),
            Some(_) => {}
        }
    }
    for (k, v) in live {
        if !new.contains_key(k) {
            out.push(format!("- {what} {k}: {v}"));
        }
    }
}

fn settings(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    match env.get(SETTINGS).and_then(|s| serde_json::from_str::<Value>(s).ok()) {
        Some(Value::Object(map)) => map.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        _ => BTreeMap::new(),
    }
}

/// The differences between a live RC and the one a deploy would create, one line each; empty
/// when deploying would change nothing but the RC's name.
pub fn diff(live: &ReplicationController, new: &ReplicationController) -> Vec<String> {
    let mut out = Vec::new();
    let (l, n) = (container(live), container(new));
    changed(&mut out, "image", show(&l.image), show(&n.image));
    let replicas = |rc: &ReplicationController| rc.spec.as_ref().and_then(|s| s.replicas);
    changed(&mut out, "replicas", show(&replicas(live)), show(&replicas(new)));
    changed(&mut out, "command", show(&l.command), show(&n.command));
    changed(&mut out, "args", show(&l.args), show(&n.args));
    let ports = |c: &Container| -> Vec<i32> {
        let mut p: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
        p.sort_unstable();
        p
    };
    changed(&mut out, "ports", show(&ports(&l)), show(&ports(&n)));
    let (mut le, mut ne) = (env(&l), env(&n));
    compare(&mut out, "settings", &settings(&le), &settings(&ne));
    for name in PER_RC.iter().chain([&SETTINGS]) {
        le.remove(*name);
        ne.remove(*name);
    }
    compare(&mut out, "env", &le, &ne);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rc(name: &str, image: &str, replicas: i32, env: Value) -> ReplicationController {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "c", "image": image, "ports": [{"containerPort": 80}], "env": env}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn only_what_a_deploy_would_change_is_shown() {
        let live = rc(
            "a",
            "web:1",
            2,
            json!([
            {"name": "ochopod_application", "value": "a"},
            {"name": "pod", "value": "{\"greeting\":\"hi\",\"gone\":1}"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "OLD", "value": "x"}]),
        );
        let same = rc(
            "b",
            "web:1",
            2,
            json!([
            {"name": "ochopod_application", "value": "b"},
            {"name": "pod", "value": "{\"greeting\":\"hi\",\"gone\":1}"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "OLD", "value": "x"}]),
        );
        assert_eq!(diff(&live, &same), Vec::<String>::new());
        let new = rc(
            "b",
            "web:2",
            3,
            json!([
            {"name": "ochopod_application", "value": "b"},
            {"name": "pod", "value": "{\"greeting\":\"hello\"}"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NEW", "value": "y"}]),
        );
        assert_eq!(
            diff(&live, &new),
            [
                "image: \"web:1\" -> \"web:2\"",
                "replicas: 2 -> 3",
                "settings greeting: \"hi\" -> \"hello\"",
                "- settings gone: 1",
                "+ env NEW: y",
                "- env OLD: x",
            ]
        );
    }
}
