//! The Kubernetes manifests in `k8s/`: each document deserialises into its typed k8s-openapi
//! struct and serialises back to the same tree (a misspelt or misplaced key would be dropped by
//! the typed struct and so show up as a difference), plus the safety properties the proxy relies
//! on: least privilege, non-root, read-only root, graces that nest.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every YAML document under `k8s/` and `k8s/optional/`, with the file it came from.
fn documents() -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for dir in ["k8s", "k8s/optional"] {
        let mut files: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value = Value::deserialize(doc).unwrap();
                if !value.is_null() {
                    docs.push((file.display().to_string(), value));
                }
            }
        }
    }
    docs
}

use serde::Deserialize;

fn roundtrip<T: DeserializeOwned + Serialize>(file: &str, doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, doc, "{file}: a key was lost in the typed round trip (misspelt?)");
    typed
}

#[test]
fn every_manifest_round_trips_through_its_typed_struct() {
    let docs = documents();
    let mut kinds = Vec::new();
    for (file, doc) in &docs {
        let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{file}: no kind")).to_string();
        match kind.as_str() {
            "ServiceAccount" => drop(roundtrip::<ServiceAccount>(file, doc)),
            "Role" => drop(roundtrip::<Role>(file, doc)),
            "RoleBinding" => drop(roundtrip::<RoleBinding>(file, doc)),
            "PersistentVolumeClaim" => drop(roundtrip::<PersistentVolumeClaim>(file, doc)),
            "Service" => drop(roundtrip::<Service>(file, doc)),
            "Deployment" => drop(roundtrip::<Deployment>(file, doc)),
            "Secret" => drop(roundtrip::<Secret>(file, doc)),
            other => panic!("{file}: unexpected kind {other}"),
        }
        assert!(
            doc["metadata"].get("namespace").is_none(),
            "{file}: namespace is the user's choice"
        );
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
    );
}

fn find<T: DeserializeOwned>(kind: &str) -> T {
    let (_, doc) = documents().into_iter().find(|(_, d)| d["kind"] == kind).unwrap();
    serde_json::from_value(doc).unwrap()
}

#[test]
fn the_role_is_namespaced_and_names_no_wildcard() {
    let role: Role = find("Role");
    for rule in role.rules.unwrap() {
        let groups = rule.api_groups.unwrap_or_default();
        assert_eq!(groups, [""], "core API only");
        for word in rule.verbs.iter().chain(rule.resources.iter().flatten()) {
            assert!(!word.contains('*'), "wildcard {word}");
        }
        assert!(!rule.verbs.iter().any(|v| v == "escalate" || v == "bind" || v == "impersonate"));
    }
    let binding: RoleBinding = find("RoleBinding");
    assert_eq!(binding.role_ref.kind, "Role");
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("ServiceAccount", "ocho-proxy")
    );
}

#[test]
fn the_proxy_runs_unprivileged_with_a_read_only_root_and_nested_graces() {
    let deployment: Deployment = find("Deployment");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("ocho-proxy"));
    let pod_security = pod.security_context.unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let container = &pod.containers[0];
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.capabilities.unwrap().drop.unwrap(), ["ALL"]);
    let env = container.env.clone().unwrap();
    let grace: i64 = env
        .iter()
        .find(|e| e.name == "OCHO_GRACE")
        .unwrap()
        .value
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        grace < pod.termination_grace_period_seconds.unwrap(),
        "init's grace must end before the kubelet's SIGKILL"
    );
    let probe_path =
        |p: Option<k8s_openapi::api::core::v1::Probe>| p.unwrap().http_get.unwrap().path.unwrap();
    assert_eq!(probe_path(container.liveness_probe.clone()), "/healthz");
    assert_eq!(probe_path(container.readiness_probe.clone()), "/readyz");
    let mounts: Vec<_> =
        container.volume_mounts.clone().unwrap().into_iter().map(|m| m.mount_path).collect();
    assert_eq!(
        mounts,
        ["/var/lib/zookeeper", "/tmp", "/var/run/ocho/token", "/var/run/ocho/tls"],
        "writable paths under a read-only root, the token and the TLS pair"
    );
    // The token is required and comes as a file (re-read on rotation), never an env value.
    assert!(env.iter().all(|e| e.name != "OCHO_TOKEN"), "the token must be a mounted file");
    let token_file = env.iter().find(|e| e.name == "OCHO_TOKEN_FILE").unwrap();
    assert!(token_file.value.as_deref().unwrap().starts_with("/var/run/ocho/token/"));
    let volumes = pod.volumes.clone().unwrap();
    let secret = volumes.iter().find_map(|v| v.secret.clone()).expect("the token Secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("ocho-portal-token"));
    assert_eq!(secret.optional, Some(false), "the portal token is required");
    // TLS is optional: the Secret may be missing (plain HTTP), and init reads it as a directory.
    let tls = volumes.iter().find(|v| v.name == "tls").and_then(|v| v.secret.clone()).unwrap();
    assert_eq!(tls.secret_name.as_deref(), Some("ocho-portal-tls"));
    assert_eq!(tls.optional, Some(true));
    let tls_dir = env.iter().find(|e| e.name == "OCHO_TLS_DIR").unwrap();
    assert_eq!(tls_dir.value.as_deref(), Some("/var/run/ocho/tls"));
    let hosts = env.iter().find(|e| e.name == "OCHO_ALLOWED_HOSTS").unwrap();
    assert!(hosts.value.as_deref().unwrap().contains("ocho-proxy.$(POD_NAMESPACE).svc"));
    let service: Service = find("Service");
    let ports: Vec<i32> = service.spec.unwrap().ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [9000, 2181]);
}
