//! Pure builders: a validated [`Definition`] → the typed `ReplicationController` that `deploy`
//! creates, plus the naming rules every tool shares (RC names, labels, annotations). No client,
//! no clock, no randomness of its own: callers pass the time and the random part, so the output
//! is a value tests compare against golden YAML.
//!
//! What a workload container gets, and never more (no credential of any kind, unlike the
//! original, which copied the master's admin password into every pod):
//! `ochopod_cluster`, `ochopod_namespace`, `ochopod_application` (the RC name), `ochopod_zk`,
//! `ochopod_port` (control port), `ochopod_ports` (the definition's port numbers, comma separated,
//! e.g. `2181,2888,3888`, without the control port unless listed), `ochopod_debug`, `ochopod_start`, `ochopod_depends_on` (comma separated,
//! only when set), `pod` (settings JSON), `POD_IP`, `POD_NAME`, `NODE_NAME` (downward API), then
//! the definition's own `env`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec,
    ReplicationController, ReplicationControllerSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};

use crate::definition::{Definition, Invalid};

/// Label: the Ochopod namespace (`deploy -n`).
pub const LABEL_NAMESPACE: &str = "ochopod.io/namespace";
/// Label: the Ochopod cluster name.
pub const LABEL_CLUSTER: &str = "ochopod.io/cluster";
/// Label: the RC name (`$ochopod_application`); also the RC's selector.
pub const LABEL_APPLICATION: &str = "ochopod.io/application";
/// Annotation: `<namespace>.<cluster>`, the ZooKeeper cluster node name, whatever its length.
pub const ANNOTATION_QUALIFIED: &str = "ochopod.io/qualified";

/// Longest Kubernetes name `deploy` generates: RC names are also label values (≤ 63).
pub const MAX_NAME: usize = 63;

/// Where and how one definition is deployed.
#[derive(Debug, Clone)]
pub struct Target {
    /// Ochopod namespace (`-n`), validated by `definition::check_namespace`.
    pub namespace: String,
    /// Name of the RC, from [`rc_name`].
    pub application: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `ochopod_zk`: where pods reach the proxy's ZooKeeper.
    pub zk: String,
}

/// The RC name `ochopod-<ns>-<cluster>-<YYYY-MM-DD-HH-MM-SS>-<random>` (dots of the namespace
/// become dashes), shortened from the left part when it would pass [`MAX_NAME`]: the time and
/// random part always stay, so two deploys in the same second do not collide; the full identity
/// is in the labels and annotations. A DNS label, not only a subdomain: pod names, hence
/// hostnames, start with it, and the API server warns about dots in it.
pub fn rc_name(namespace: &str, cluster: &str, now: SystemTime, random: u64) -> String {
    let tail = format!("-{}-{}", timestamp(now), random_part(random));
    let mut head = format!("ochopod-{}-{cluster}", namespace.replace('.', "-"));
    head.truncate(MAX_NAME - tail.len());
    let head = head.trim_end_matches(['.', '-']);
    format!("{head}{tail}")
}

/// UTC `YYYY-MM-DD-HH-MM-SS` (the original used the portal's local time).
pub fn timestamp(now: SystemTime) -> String {
    let t = crate::clock::Utc::of(now);
    format!(
        "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Five characters from Kubernetes' own `generateName` alphabet (no vowels, no confusables).
fn random_part(mut random: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| {
            let c = ALPHABET[(random % ALPHABET.len() as u64) as usize];
            random /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// The labels that identify a workload of `deploy`, on the RC and on each pod.
pub fn identity_labels(namespace: &str, cluster: &str, app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAMESPACE.to_string(), namespace.to_string()),
        (LABEL_CLUSTER.to_string(), cluster.to_string()),
        (LABEL_APPLICATION.to_string(), app.to_string()),
    ])
}

/// Builds the ReplicationController for one definition.
pub fn build(def: &Definition, target: &Target) -> Result<ReplicationController, Invalid> {
    let app = &target.application;
    let mut labels = def.labels.clone();
    labels.extend(identity_labels(&target.namespace, &def.cluster, app));
    let mut annotations = def.annotations.clone();
    annotations
        .insert(ANNOTATION_QUALIFIED.to_string(), format!("{}.{}", target.namespace, def.cluster));
    let meta = ObjectMeta {
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        ..Default::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(meta.clone()),
        spec: Some(PodSpec { containers: vec![container(def, target)], ..Default::default() }),
    };
    let template = merge_verbatim(template, &def.verbatim)?;
    Ok(ReplicationController {
        metadata: ObjectMeta { name: Some(app.clone()), ..meta },
        spec: Some(ReplicationControllerSpec {
            replicas: Some(target.replicas),
            selector: Some(BTreeMap::from([(LABEL_APPLICATION.to_string(), app.clone())])),
            template: Some(template),
            ..Default::default()
        }),
        status: None,
    })
}

/// Renames an RC (a new name after a clash, or the new RC of `bump`): its name, selector,
/// application labels and the container's `ochopod_application` all follow.
pub fn set_application(rc: &mut ReplicationController, name: &str) {
    rc.metadata.name = Some(name.to_string());
    rc.metadata.labels.get_or_insert_default().insert(LABEL_APPLICATION.into(), name.into());
    if let Some(meta) = template_meta(rc) {
        meta.labels.get_or_insert_default().insert(LABEL_APPLICATION.into(), name.into());
    }
    if let Some(spec) = rc.spec.as_mut() {
        spec.selector = Some(BTreeMap::from([(LABEL_APPLICATION.to_string(), name.to_string())]));
        let containers =
            spec.template.as_mut().and_then(|t| t.spec.as_mut()).map(|s| &mut s.containers);
        for c in containers.into_iter().flatten() {
            for e in c.env.iter_mut().flatten().filter(|e| e.name == "ochopod_application") {
                e.value = Some(name.to_string());
            }
        }
    }
}

fn template_meta(rc: &mut ReplicationController) -> Option<&mut ObjectMeta> {
    rc.spec.as_mut()?.template.as_mut()?.metadata.as_mut()
}

fn container(def: &Definition, target: &Target) -> Container {
    let value = |name: &str, value: String| EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    };
    let field = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                api_version: None,
            }),
            ..Default::default()
        }),
    };
    // Numbers only, each once: the agent registers `ports` as {"<port>": <port>}, which has no
    // protocol (a port open for TCP and UDP is one entry).
    let mut ports_env: Vec<String> = Vec::new();
    for p in &def.ports {
        if !ports_env.contains(&p.number.to_string()) {
            ports_env.push(p.number.to_string());
        }
    }
    let mut env = vec![
        value("ochopod_cluster", def.cluster.clone()),
        value("ochopod_namespace", target.namespace.clone()),
        value("ochopod_application", target.application.clone()),
        value("ochopod_zk", target.zk.clone()),
        value("ochopod_port", def.control_port.to_string()),
        value("ochopod_ports", ports_env.join(",")),
        value("ochopod_debug", def.debug.to_string()),
        value("ochopod_start", def.start.to_string()),
    ];
    if !def.depends_on.is_empty() {
        env.push(value("ochopod_depends_on", def.depends_on.join(",")));
    }
    env.push(value("pod", Value::Object(def.settings.clone()).to_string()));
    env.push(field("POD_IP", "status.podIP"));
    env.push(field("POD_NAME", "metadata.name"));
    env.push(field("NODE_NAME", "spec.nodeName"));
    env.extend(def.env.iter().map(|(k, v)| value(k, v.clone())));

    let mut ports: Vec<ContainerPort> = def
        .ports
        .iter()
        .map(|p| ContainerPort {
            container_port: i32::from(p.number),
            protocol: Some(if p.udp { "UDP" } else { "TCP" }.to_string()),
            ..Default::default()
        })
        .collect();
    if !def.ports.iter().any(|p| p.number == def.control_port && !p.udp) {
        ports.push(ContainerPort {
            container_port: i32::from(def.control_port),
            protocol: Some("TCP".to_string()),
            name: Some("ochopod".to_string()),
            ..Default::default()
        });
    }
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Container {
        name: def.cluster.clone(),
        image: Some(def.image.clone()),
        command: list(&def.command),
        args: list(&def.args),
        env: Some(env),
        ports: Some(ports),
        resources: def.resources.clone(),
        ..Default::default()
    }
}

/// Deep-merges `verbatim` into the generated template: mappings merge recursively, lists are
/// appended to, except `spec.containers`, whose entries merge into the container at the same
/// index; on any other conflict the generated value wins, so identity, env and selector labels
/// cannot be overridden by accident.
fn merge_verbatim(
    template: PodTemplateSpec,
    verbatim: &Map<String, Value>,
) -> Result<PodTemplateSpec, Invalid> {
    if verbatim.is_empty() {
        return Ok(template);
    }
    let bad =
        |e: serde_json::Error| Invalid::Field { field: "verbatim".into(), why: e.to_string() };
    let mut merged = serde_json::to_value(&template).map_err(bad)?;
    merge_under(&mut merged, &Value::Object(verbatim.clone()), "");
    serde_json::from_value(merged).map_err(bad)
}

/// The parts of `def`'s `verbatim` that the typed model of `rc` (built from `def`) dropped:
/// fields this client's Kubernetes model does not know, a typo or a field newer than it. They
/// are sent anyway ([`wire`]), so the server, asked for strict field validation, accepts a real
/// field and refuses a typo naming its path, instead of the typo vanishing. Shaped like the
/// pod template: objects hold only dropped keys; a list holds `null` where nothing was dropped.
/// `Null` when nothing was.
pub fn dropped_by_model(def: &Definition, rc: &ReplicationController) -> Value {
    let Some(template) = rc.spec.as_ref().and_then(|s| s.template.as_ref()) else {
        return Value::Null;
    };
    if def.verbatim.is_empty() {
        return Value::Null;
    }
    let typed = serde_json::to_value(template).unwrap_or(Value::Null);
    dropped(&Value::Object(def.verbatim.clone()), &typed, "")
}

fn dropped(extra: &Value, typed: &Value, path: &str) -> Value {
    match (extra, typed) {
        (Value::Object(e), Value::Object(t)) => {
            let mut out = Map::new();
            for (key, value) in e.iter().filter(|(_, v)| !v.is_null()) {
                let sub = match t.get(key) {
                    None => value.clone(),
                    Some(existing) => dropped(value, existing, &format!("{path}/{key}")),
                };
                if !sub.is_null() {
                    out.insert(key.clone(), sub);
                }
            }
            if out.is_empty() { Value::Null } else { Value::Object(out) }
        }
        (Value::Array(e), Value::Array(t)) => {
            // As merged: containers index by index, every other list appended at the end.
            let offset =
                if path == "/spec/containers" { 0 } else { t.len().saturating_sub(e.len()) };
            let mut out = vec![Value::Null; t.len()];
            for (i, value) in e.iter().enumerate() {
                if let Some(existing) = t.get(i + offset) {
                    out[i + offset] = dropped(value, existing, &format!("{path}/{i}"));
                }
            }
            if out.iter().all(Value::is_null) { Value::Null } else { Value::Array(out) }
        }
        _ => Value::Null,
    }
}

/// The JSON sent for `rc`: its typed form with `dropped` (from [`dropped_by_model`]) put back
/// into the pod template.
pub fn wire(rc: &ReplicationController, dropped: &Value) -> Value {
    let mut v = serde_json::to_value(rc).unwrap_or(Value::Null);
    if !dropped.is_null()
        && let Some(template) = v.pointer_mut("/spec/template")
    {
        overlay(template, dropped);
    }
    v
}

fn overlay(target: &mut Value, extra: &Value) {
    match (target, extra) {
        (Value::Object(t), Value::Object(e)) => {
            for (key, value) in e {
                match t.get_mut(key) {
                    Some(existing) => overlay(existing, value),
                    None => {
                        t.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(e)) => {
            for (existing, value) in t.iter_mut().zip(e) {
                overlay(existing, value);
            }
        }
        _ => {}
    }
}

/// Linux refuses to start a program with any one environment or argument string
/// (`NAME=value` and its terminating NUL) longer than this (`MAX_ARG_STRLEN`, 128 KiB).
pub const MAX_EXEC_STRING: usize = 128 * 1024;
/// The largest object `deploy` sends, as JSON: etcd refuses requests over 1.5 MiB (its default
/// `--max-request-bytes`), and the API server's own client anything over 2 MiB.
pub const MAX_OBJECT: usize = 1536 * 1024;

/// Checks what the server would accept but the object could never run, or what the server's
/// storage would refuse with a 500: each environment string and argument of each container at
/// most [`MAX_EXEC_STRING`], the object ([`wire`] form, YAML aliases long expanded) at most
/// [`MAX_OBJECT`]. The first problem names the variable (or argument) and the limit.
pub fn check_limits(wire: &Value) -> Result<(), Invalid> {
    let kib = |n: usize| n / 1024;
    let containers = wire.pointer("/spec/template/spec/containers").and_then(Value::as_array);
    for (i, c) in containers.into_iter().flatten().enumerate() {
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            let name = e.get("name").and_then(Value::as_str).unwrap_or("");
            let value = e.get("value").and_then(Value::as_str).unwrap_or("");
            let size = name.len() + 1 + value.len() + 1;
            if size > MAX_EXEC_STRING {
                let field = if name == "pod" {
                    "env pod (the settings as JSON)".to_string()
                } else {
                    format!("env {name}")
                };
                return Err(Invalid::Field {
                    field,
                    why: format!(
                        "{size} bytes as NAME=value; Linux refuses any environment string over \
                         {MAX_EXEC_STRING} bytes ({} KiB), so the container could not start",
                        kib(MAX_EXEC_STRING)
                    ),
                });
            }
        }
        for key in ["command", "args"] {
            for (j, a) in c.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
                let size = a.as_str().map_or(0, str::len) + 1;
                if size > MAX_EXEC_STRING {
                    return Err(Invalid::Field {
                        field: format!("containers[{i}].{key}[{j}]"),
                        why: format!(
                            "{size} bytes; Linux refuses any argument over {MAX_EXEC_STRING} \
                             bytes ({} KiB), so the container could not start",
                            kib(MAX_EXEC_STRING)
                        ),
                    });
                }
            }
        }
    }
    let size = serde_json::to_vec(wire).map_or(0, |v| v.len());
    if size > MAX_OBJECT {
        return Err(Invalid::Field {
            field: "the replicationcontroller".into(),
            why: format!(
                "{size} bytes as JSON (aliases expanded); the API server's storage refuses \
                 objects over {MAX_OBJECT} bytes (1.5 MiB)"
            ),
        });
    }
    Ok(())
}

fn merge_under(generated: &mut Value, extra: &Value, path: &str) {
    match (generated, extra) {
        (Value::Object(g), Value::Object(e)) => {
            for (key, value) in e {
                let sub = format!("{path}/{key}");
                match g.get_mut(key) {
                    Some(existing) => merge_under(existing, value, &sub),
                    None => {
                        g.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (Value::Array(g), Value::Array(e)) if path == "/spec/containers" => {
            for (i, value) in e.iter().enumerate() {
                match g.get_mut(i) {
                    Some(existing) => merge_under(existing, value, &format!("{path}/{i}")),
                    None => g.push(value.clone()),
                }
            }
        }
        (Value::Array(g), Value::Array(e)) => g.extend(e.iter().cloned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    const T0: u64 = 1_430_726_585; // 2015-05-04 08:03:05 UTC, the original's sample

    fn fixture(name: &str) -> Definition {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/definitions/good")
            .join(name);
        definition::load(&path).unwrap()
    }

    fn target(def: &Definition, ns: &str, replicas: i32) -> Target {
        let now = UNIX_EPOCH + Duration::from_secs(T0);
        Target {
            namespace: ns.into(),
            application: rc_name(ns, &def.cluster, now, 12345),
            replicas,
            zk: "ocho-proxy.ocho.svc:2181".into(),
        }
    }

    /// Compares with `tests/fixtures/golden/<name>`; `OCHO_BLESS=1` rewrites the file.
    fn golden(name: &str, rc: &ReplicationController) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden").join(name);
        let got = serde_yaml::to_string(rc).unwrap();
        if std::env::var_os("OCHO_BLESS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with OCHO_BLESS=1)", path.display()));
        assert_eq!(got, want, "{} differs (OCHO_BLESS=1 to accept)", path.display());
    }

    #[test]
    fn timestamps_are_utc_civil_time() {
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(T0)), "2015-05-04-08-03-05");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01-00-00-00");
        assert_eq!(timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29-00-00-00");
    }

    #[test]
    fn rc_names_fit_63_characters_and_stay_dns_names() {
        let now = UNIX_EPOCH + Duration::from_secs(T0);
        let short = rc_name("default", "zookeeper", now, 0);
        assert_eq!(short, "ochopod-default-zookeeper-2015-05-04-08-03-05-bbbbb");
        let long = rc_name("team.production", &"c".repeat(63), now, 7);
        assert_eq!(long.len(), MAX_NAME);
        assert!(long.starts_with("ochopod-team-production-ccc"), "{long}");
        // A DNS label: what pod names (hence hostnames) start with, no dots.
        for name in [&short, &long] {
            assert!(crate::definition::check_dns_label("name", name).is_ok(), "{name}");
        }
        assert!(long.ends_with("-2015-05-04-08-03-05-kbbbb"), "{long}");
        // Truncation never leaves a dot or dash before the time part.
        let cut = rc_name("ab", &"x".repeat(26), now, 0);
        assert!(!cut.contains(".-") && !cut.contains("--"), "{cut}");
        assert_ne!(rc_name("a", "b", now, 1), rc_name("a", "b", now, 2));
    }

    #[test]
    fn the_original_demo_builds_the_golden_rc() {
        let def = fixture("zookeeper.yaml");
        golden("zookeeper-rc.yaml", &build(&def, &target(&def, "default", 3)).unwrap());
    }

    #[test]
    fn every_field_builds_the_golden_rc() {
        let def = fixture("full.yaml");
        golden("full-rc.yaml", &build(&def, &target(&def, "team.prod", 2)).unwrap());
    }

    #[test]
    fn env_carries_identity_and_downward_api_but_no_credential() {
        let def = fixture("zookeeper.yaml");
        let rc = build(&def, &target(&def, "default", 1)).unwrap();
        let spec = rc.spec.unwrap().template.unwrap().spec.unwrap();
        assert_eq!(spec.containers.len(), 1);
        let env = spec.containers[0].env.clone().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).cloned();
        assert_eq!(get("pod").unwrap().value.unwrap(), r#"{"hello":{"world":1234}}"#);
        assert_eq!(get("ochopod_ports").unwrap().value.unwrap(), "2181,2888,3888");
        assert_eq!(get("ochopod_port").unwrap().value.unwrap(), "8080");
        assert_eq!(get("ochopod_debug").unwrap().value.unwrap(), "false");
        let path = |n: &str| get(n).unwrap().value_from.unwrap().field_ref.unwrap().field_path;
        assert_eq!(path("POD_IP"), "status.podIP");
        assert_eq!(path("POD_NAME"), "metadata.name");
        assert_eq!(path("NODE_NAME"), "spec.nodeName");
        for e in &env {
            let n = e.name.to_ascii_uppercase();
            assert!(
                !["KUBERNETES", "TOKEN", "PASSWORD", "PWD", "SECRET"].iter().any(|s| n.contains(s)),
                "{n}"
            );
        }
    }

    #[test]
    fn selector_matches_template_labels_and_labels_fit() {
        let def = fixture("full.yaml");
        let rc = build(&def, &target(&def, "team.prod", 1)).unwrap();
        let spec = rc.spec.unwrap();
        let labels = spec.template.unwrap().metadata.unwrap().labels.unwrap();
        for (k, v) in spec.selector.unwrap() {
            assert_eq!(labels.get(&k), Some(&v));
        }
        assert!(labels.values().all(|v| v.len() <= 63));
        assert_eq!(labels["tier"], "frontend");
    }

    #[test]
    fn verbatim_merges_under_the_generated_template() {
        let def = fixture("full.yaml");
        let rc = build(&def, &target(&def, "team.prod", 1)).unwrap();
        let spec = rc.spec.unwrap().template.unwrap().spec.unwrap();
        assert_eq!(spec.node_selector.unwrap()["disk"], "ssd");
        assert_eq!(spec.containers.len(), 1);
        let c = &spec.containers[0];
        assert_eq!(c.name, "web");
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, "/data");
        assert_eq!(spec.volumes.unwrap()[0].name, "data");
    }

    #[test]
    fn verbatim_cannot_replace_generated_values() {
        let mut def = fixture("minimal.yaml");
        def.verbatim = serde_json::from_str(
            r#"{"metadata": {"labels": {"ochopod.io/application": "x"}},
                "spec": {"containers": [{"name": "other", "image": "evil"}]}}"#,
        )
        .unwrap();
        let t = target(&def, "default", 1);
        let rc = build(&def, &t).unwrap();
        let tpl = rc.spec.unwrap().template.unwrap();
        assert_eq!(tpl.metadata.unwrap().labels.unwrap()[LABEL_APPLICATION], t.application);
        let c = &tpl.spec.unwrap().containers[0];
        assert_eq!((c.name.as_str(), c.image.as_deref()), ("a", Some("b")));
    }

    #[test]
    fn fields_the_model_drops_are_kept_for_the_wire_at_their_place() {
        let mut def = fixture("full.yaml");
        def.verbatim = serde_json::from_str(
            r#"{"spec": {"nodeSelectr": {"disk": "ssd"}, "nodeSelector": {"disk": "ssd"},
                         "containers": [{"imagee": "x", "tty": true}],
                         "tolerations": [{"key": "k", "operator": "Exists", "effct": "NoSchedule"}]},
                "metadata": {"labelz": {"a": "b"}}}"#,
        )
        .unwrap();
        let rc = build(&def, &target(&def, "default", 1)).unwrap();
        let extra = dropped_by_model(&def, &rc);
        assert_eq!(
            extra,
            serde_json::json!({"metadata": {"labelz": {"a": "b"}},
                "spec": {"nodeSelectr": {"disk": "ssd"}, "containers": [{"imagee": "x"}],
                         "tolerations": [{"effct": "NoSchedule"}]}})
        );
        let sent = wire(&rc, &extra);
        let spec = &sent["spec"]["template"]["spec"];
        assert_eq!(spec["nodeSelectr"]["disk"], "ssd");
        assert_eq!(spec["nodeSelector"]["disk"], "ssd");
        assert_eq!(spec["containers"][0]["imagee"], "x");
        assert_eq!(spec["containers"][0]["tty"], true);
        assert_eq!(spec["containers"][0]["name"], "web");
        assert_eq!(spec["tolerations"][0]["effct"], "NoSchedule");
        assert_eq!(sent["spec"]["template"]["metadata"]["labelz"]["a"], "b");
        let plain = fixture("minimal.yaml");
        let rc = build(&plain, &target(&plain, "default", 1)).unwrap();
        assert!(dropped_by_model(&plain, &rc).is_null());
        assert_eq!(wire(&rc, &Value::Null), serde_json::to_value(&rc).unwrap());
    }

    #[test]
    fn renaming_keeps_selector_labels_and_env_in_step() {
        let def = fixture("zookeeper.yaml");
        let mut rc = build(&def, &target(&def, "default", 1)).unwrap();
        set_application(&mut rc, "ochopod-default-zookeeper-new");
        let name = "ochopod-default-zookeeper-new".to_string();
        assert_eq!(rc.metadata.name.as_ref(), Some(&name));
        assert_eq!(rc.metadata.labels.as_ref().unwrap()[LABEL_APPLICATION], name);
        let spec = rc.spec.unwrap();
        assert_eq!(spec.selector.unwrap()[LABEL_APPLICATION], name);
        let tpl = spec.template.unwrap();
        assert_eq!(tpl.metadata.unwrap().labels.unwrap()[LABEL_APPLICATION], name);
        let env = tpl.spec.unwrap().containers[0].env.clone().unwrap();
        let app = env.iter().find(|e| e.name == "ochopod_application").unwrap();
        assert_eq!(app.value.as_ref(), Some(&name));
    }

    #[test]
    fn udp_ports_carry_their_protocol_and_the_control_port_is_added_once() {
        let def = fixture("full.yaml");
        let rc = build(&def, &target(&def, "x", 1)).unwrap();
        let c = rc.spec.unwrap().template.unwrap().spec.unwrap().containers.remove(0);
        let ports: Vec<(i32, String)> =
            c.ports.unwrap().into_iter().map(|p| (p.container_port, p.protocol.unwrap())).collect();
        assert_eq!(
            ports,
            [(80, "TCP".into()), (53, "UDP".into()), (9000, "TCP".into()), (8081, "TCP".into())]
        );
    }
}
