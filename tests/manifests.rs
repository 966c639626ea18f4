//! The Kubernetes manifests in `k8s/`: each document deserialises into its typed k8s-openapi
//! struct and serialises back to the same tree (a misspelt or misplaced key would be dropped by
//! the typed struct and so show up as a difference), plus the safety properties the proxy relies
//! on: least privilege, non-root, read-only root, graces that nest. `k8s/ha/` (the highly
//! available proxy, with k8s/'s ServiceAccount and Role) is checked the same way, plus what an
//! ensemble needs: members that find each other before they are ready, one down at a time.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every YAML document under `k8s/` and `k8s/optional/`, with the file it came from.
fn documents() -> Vec<(String, Value)> {
    documents_in(&["k8s", "k8s/optional"])
}

/// Every YAML document of the directories `dirs`, with the file it came from.
fn documents_in(dirs: &[&str]) -> Vec<(String, Value)> {
    let mut docs = Vec::new();
    for dir in dirs {
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

/// Round-trips one manifest document through its k8s-openapi type (a field the type does not
/// know fails) and checks it leaves the namespace to the user; returns its kind.
fn typed(file: &str, doc: &Value) -> String {
    let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{file}: no kind")).to_string();
    match kind.as_str() {
        "ServiceAccount" => drop(roundtrip::<ServiceAccount>(file, doc)),
        "Role" => drop(roundtrip::<Role>(file, doc)),
        "RoleBinding" => drop(roundtrip::<RoleBinding>(file, doc)),
        "PersistentVolumeClaim" => drop(roundtrip::<PersistentVolumeClaim>(file, doc)),
        "Service" => drop(roundtrip::<Service>(file, doc)),
        "Deployment" => drop(roundtrip::<Deployment>(file, doc)),
        "Secret" => drop(roundtrip::<Secret>(file, doc)),
        "StatefulSet" => drop(roundtrip::<StatefulSet>(file, doc)),
        "PodDisruptionBudget" => drop(roundtrip::<PodDisruptionBudget>(file, doc)),
        other => panic!("{file}: unexpected kind {other}"),
    }
    assert!(doc["metadata"].get("namespace").is_none(), "{file}: namespace is the user's choice");
    kind
}

#[test]
fn every_manifest_round_trips_through_its_typed_struct() {
    let docs = documents();
    let mut kinds = Vec::new();
    for (file, doc) in &docs {
        kinds.push(typed(file, doc));
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

fn find_ha<T: DeserializeOwned>(kind: &str) -> Vec<T> {
    documents_in(&["k8s/ha"])
        .into_iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, doc)| serde_json::from_value(doc).unwrap())
        .collect()
}

#[test]
fn every_ha_manifest_round_trips_through_its_typed_struct() {
    let docs = documents_in(&["k8s/ha"]);
    let mut kinds = Vec::new();
    for (file, doc) in &docs {
        kinds.push(typed(file, doc));
    }
    kinds.sort();
    assert_eq!(kinds, ["PodDisruptionBudget", "Service", "Service", "StatefulSet"]);
}

#[test]
fn the_ha_proxy_is_three_members_that_find_each_other_and_go_down_one_at_a_time() {
    let [sts]: [StatefulSet; 1] = find_ha("StatefulSet").try_into().ok().unwrap();
    let name = sts.metadata.name.clone().unwrap();
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"), "no OrderedReady deadlock");
    let update = spec.update_strategy.unwrap();
    assert_eq!(update.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(update.rolling_update.unwrap().partition, Some(0));
    let labels = spec.template.metadata.clone().unwrap().labels.unwrap();
    assert_eq!(spec.selector.match_labels.clone().unwrap(), labels);

    // One volume per member, mounted where init keeps ZooKeeper's data.
    let claims = spec.volume_claim_templates.clone().unwrap();
    assert_eq!(claims.len(), 1);
    let claim = claims[0].metadata.name.clone().unwrap();
    let pod = spec.template.spec.clone().unwrap();
    let container = &pod.containers[0];
    let mounts = container.volume_mounts.clone().unwrap();
    assert!(mounts.iter().any(|m| m.name == claim && m.mount_path == "/var/lib/zookeeper"));
    assert!(pod.volumes.clone().unwrap().iter().all(|v| v.name != claim), "a template, not a PVC");

    // Anti-affinity across nodes, preferred so a small cluster still runs three.
    let anti = pod.affinity.clone().unwrap().pod_anti_affinity.unwrap();
    assert!(anti.required_during_scheduling_ignored_during_execution.is_none());
    let preferred = anti.preferred_during_scheduling_ignored_during_execution.unwrap();
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    assert_eq!(term.label_selector.clone().unwrap().match_labels.unwrap(), labels);

    // The single proxy's identity and confinement, unchanged.
    let single: Deployment = find("Deployment");
    let single_pod = single.spec.unwrap().template.spec.unwrap();
    let account: ServiceAccount = find("ServiceAccount");
    assert_eq!(pod.service_account_name, account.metadata.name);
    assert_eq!(pod.service_account_name, single_pod.service_account_name);
    assert_eq!(pod.security_context, single_pod.security_context);
    assert_eq!(container.security_context, single_pod.containers[0].security_context);
    assert_eq!(container.image, single_pod.containers[0].image);
    assert_eq!(container.liveness_probe, single_pod.containers[0].liveness_probe);
    assert_eq!(container.readiness_probe, single_pod.containers[0].readiness_probe);
    assert_eq!(pod.termination_grace_period_seconds, single_pod.termination_grace_period_seconds);

    // The members: the pods' stable names under the headless Service, in ordinal order (init
    // takes its id, ordinal + 1, from its host name), quorum ports on every address.
    let env = container.env.clone().unwrap();
    let value = |var: &str| {
        env.iter().find(|e| e.name == var).and_then(|e| e.value.clone()).unwrap_or_default()
    };
    let peers = spec.service_name.clone().unwrap();
    let expected: Vec<String> =
        (0..3).map(|k| format!("{name}-{k}.{peers}.$(POD_NAMESPACE).svc")).collect();
    assert_eq!(value("OCHO_ZK_MEMBERS"), expected.join(","));
    assert_eq!(value("OCHO_ZK_QUORUM_LISTEN_ALL"), "1");
    assert!(env.iter().all(|e| e.name != "OCHO_ZK_ID"), "the id comes from the host name");
    assert!(value("OCHO_GRACE").parse::<i64>().unwrap() < 30);
    let ports: Vec<(String, i32)> = container
        .ports
        .clone()
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.container_port))
        .collect();
    for port in [("zookeeper", 2181), ("quorum", 2888), ("election", 3888), ("portal", 9000)] {
        assert!(ports.contains(&(port.0.to_string(), port.1)), "{port:?} in {ports:?}");
    }

    // The headless Service publishes members before they are ready; the client Service keeps
    // the single proxy's name and ports.
    let services: Vec<Service> = find_ha("Service");
    let headless = services.iter().find(|s| s.metadata.name.as_deref() == Some(&peers)).unwrap();
    let hs = headless.spec.clone().unwrap();
    assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
    assert_eq!(hs.publish_not_ready_addresses, Some(true));
    assert_eq!(hs.selector.unwrap(), labels);
    let mut peer_ports: Vec<i32> = hs.ports.unwrap().iter().map(|p| p.port).collect();
    peer_ports.sort();
    assert_eq!(peer_ports, [2181, 2888, 3888]);
    let client = services.iter().find(|s| s.metadata.name.as_deref() != Some(&peers)).unwrap();
    let single_service: Service = find("Service");
    assert_eq!(client.metadata.name, single_service.metadata.name, "deployed pods keep it");
    let cs = client.spec.clone().unwrap();
    assert_eq!(cs.selector.clone().unwrap(), labels);
    let ports: Vec<i32> = cs.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [9000, 2181]);

    // Voluntary disruptions take one member at a time.
    let [pdb]: [PodDisruptionBudget; 1] = find_ha("PodDisruptionBudget").try_into().ok().unwrap();
    let pdb = pdb.spec.unwrap();
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert!(pdb.min_available.is_none());
    assert_eq!(pdb.selector.unwrap().match_labels.unwrap(), labels);
}
