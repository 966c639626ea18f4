//! Pods and RCs as the store sees them: defaults applied on create, the validation subset that
//! answers 422 (docs/fake-kubernetes.md §6), and which part of each object an update may touch.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::core::v1::{
    Container, Event, Pod, PodSpec, PodStatus, ReplicationController, ReplicationControllerStatus,
};
use serde_json::{Value, json};

use super::select::{is_dns1123_label, is_dns1123_subdomain, is_label_value};
use super::status::Cause;
use super::store::{Key, Obj, State};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Field paths a `valueFrom.fieldRef` may name (docs/fake-kubernetes.md §6).
const FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

pub fn field_ref_supported(path: &str) -> bool {
    FIELD_REFS.contains(&path)
        || ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .any(|p| path.starts_with(p) && path.ends_with("']"))
}

impl Obj for Pod {
    const FIELDS: &'static [&'static str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
    ];
    const GENERATION: bool = false;

    fn table(s: &State) -> &BTreeMap<Key, Pod> {
        &s.pods
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<Key, Pod> {
        &mut s.pods
    }

    fn prepare_create(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        default_pod_spec(spec);
        let qos = if spec.containers.iter().any(|c| {
            c.resources.as_ref().is_some_and(|r| {
                r.limits.as_ref().is_some_and(|l| !l.is_empty())
                    || r.requests.as_ref().is_some_and(|l| !l.is_empty())
            })
        }) {
            "Burstable"
        } else {
            "BestEffort"
        };
        self.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some(qos.into()),
            ..Default::default()
        });
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_meta(&self.metadata, &mut causes);
        match &self.spec {
            Some(spec) => validate_pod_spec(spec, "spec", &mut causes),
            None => causes.push(Cause::required("spec")),
        }
        causes
    }

    fn validate_update(&self, old: &Pod) -> Vec<Cause> {
        let mut causes = self.validate();
        // A pod's spec is immutable except container images (and a few fields we do not model).
        let strip = |p: &Pod| {
            let mut s = p.spec.clone().unwrap_or_default();
            for c in s.containers.iter_mut() {
                c.image = None;
            }
            s.active_deadline_seconds = None;
            s
        };
        if strip(self) != strip(old) {
            causes.push(Cause::with(
                "spec",
                "FieldValueForbidden",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
        causes
    }

    fn spec_json(&self) -> Value {
        json!(self.spec)
    }
    fn copy_status(&mut self, from: &Pod) {
        self.status = from.status.clone();
    }
    fn copy_spec(&mut self, from: &Pod) {
        self.spec = from.spec.clone();
    }
}

impl Obj for ReplicationController {
    const FIELDS: &'static [&'static str] =
        &["metadata.name", "metadata.namespace", "status.replicas"];
    const GENERATION: bool = true;

    fn table(s: &State) -> &BTreeMap<Key, ReplicationController> {
        &s.rcs
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<Key, ReplicationController> {
        &mut s.rcs
    }

    fn prepare_create(&mut self) {
        let spec = self.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        let template_labels =
            spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
        if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
            spec.selector = template_labels.clone();
        }
        if self.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            self.metadata.labels = template_labels;
        }
        if let Some(ps) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
            default_pod_spec(ps);
        }
        self.status = Some(ReplicationControllerStatus { replicas: 0, ..Default::default() });
    }

    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_meta(&self.metadata, &mut causes);
        let Some(spec) = &self.spec else {
            causes.push(Cause::required("spec"));
            return causes;
        };
        if let Some(r) = spec.replicas.filter(|r| *r < 0) {
            causes.push(Cause::invalid(
                "spec.replicas",
                &json!(r),
                "must be greater than or equal to 0",
            ));
        }
        let Some(template) = &spec.template else {
            causes.push(Cause::required("spec.template"));
            return causes;
        };
        let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        validate_labels(&labels, "spec.template.metadata.labels", &mut causes);
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() {
            causes.push(Cause::required("spec.selector"));
        } else if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                &json!(labels),
                "`selector` does not match template `labels`",
            ));
        }
        match &template.spec {
            Some(ps) => {
                if ps.restart_policy.as_deref() != Some("Always") {
                    causes.push(Cause::with(
                        "spec.template.spec.restartPolicy",
                        "FieldValueNotSupported",
                        format!(
                            "Unsupported value: {}: supported values: \"Always\"",
                            json!(ps.restart_policy)
                        ),
                    ));
                }
                validate_pod_spec(ps, "spec.template.spec", &mut causes);
            }
            None => causes.push(Cause::required("spec.template.spec")),
        }
        causes
    }

    fn validate_update(&self, _old: &ReplicationController) -> Vec<Cause> {
        self.validate()
    }

    fn spec_json(&self) -> Value {
        json!(self.spec)
    }
    fn copy_status(&mut self, from: &ReplicationController) {
        self.status = from.status.clone();
    }
    fn copy_spec(&mut self, from: &ReplicationController) {
        self.spec = from.spec.clone();
    }
}

/// core/v1 Events, as the scheduler and the kubelet record them (what `kubectl describe` shows
/// under Events). Field selectors as in the real server's event strategy
/// (kubernetes/kubernetes `pkg/registry/core/event/strategy.go`), `source` left out.
impl Obj for Event {
    const FIELDS: &'static [&'static str] = &[
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "type",
    ];
    const GENERATION: bool = false;

    fn table(s: &State) -> &BTreeMap<Key, Event> {
        &s.events
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<Key, Event> {
        &mut s.events
    }
    fn prepare_create(&mut self) {}
    fn validate(&self) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_meta(&self.metadata, &mut causes);
        if self.involved_object.namespace != self.metadata.namespace {
            causes.push(Cause::invalid(
                "involvedObject.namespace",
                &json!(self.involved_object.namespace),
                "does not match event.namespace",
            ));
        }
        causes
    }
    fn validate_update(&self, _old: &Event) -> Vec<Cause> {
        self.validate()
    }
    fn spec_json(&self) -> Value {
        json!(null)
    }
    fn copy_status(&mut self, _from: &Event) {}
    fn copy_spec(&mut self, _from: &Event) {}
}

fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.scheduler_name.get_or_insert_with(|| "default-scheduler".into());
    spec.security_context.get_or_insert_with(Default::default);
    for c in spec.containers.iter_mut() {
        default_container(c);
    }
}

fn default_container(c: &mut Container) {
    c.termination_message_path.get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy.get_or_insert_with(|| "File".into());
    let image = c.image.clone().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or("");
    let latest = !last.contains(':') || last.ends_with(":latest");
    let latest = latest && !image.contains('@');
    c.image_pull_policy
        .get_or_insert_with(|| if latest { "Always" } else { "IfNotPresent" }.into());
    c.resources.get_or_insert_with(Default::default);
    for p in c.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
    }
}

fn validate_meta(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    causes: &mut Vec<Cause>,
) {
    let name = meta.name.clone().unwrap_or_default();
    if !is_dns1123_subdomain(&name) {
        causes.push(Cause::invalid("metadata.name", &json!(name), SUBDOMAIN_MSG));
    }
    validate_labels(&meta.labels.clone().unwrap_or_default(), "metadata.labels", causes);
}

fn validate_labels(labels: &BTreeMap<String, String>, field: &str, causes: &mut Vec<Cause>) {
    for (k, v) in labels {
        let name = k.rsplit('/').next().unwrap_or("");
        let prefix_ok = k.rsplit_once('/').is_none_or(|(p, _)| is_dns1123_subdomain(p));
        if name.is_empty() || !is_label_value(name) || !prefix_ok {
            causes.push(Cause::invalid(
                field,
                &json!(k),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ));
        }
        if v.len() > 63 {
            causes.push(Cause::invalid(field, &json!(v), "must be no more than 63 characters"));
        } else if !is_label_value(v) {
            causes.push(Cause::invalid(field, &json!(v), LABEL_VALUE_MSG));
        }
    }
}

fn validate_pod_spec(spec: &PodSpec, at: &str, causes: &mut Vec<Cause>) {
    if spec.containers.is_empty() {
        causes.push(Cause::required(format!("{at}.containers")));
    }
    let mut seen = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let f = format!("{at}.containers[{i}]");
        if c.name.is_empty() {
            causes.push(Cause::required(format!("{f}.name")));
        } else if !is_dns1123_label(&c.name) {
            causes.push(Cause::invalid(format!("{f}.name"), &json!(c.name), LABEL_MSG));
        } else if !seen.insert(c.name.clone()) {
            causes.push(Cause::with(
                format!("{f}.name"),
                "FieldValueDuplicate",
                format!("Duplicate value: {}", json!(c.name)),
            ));
        }
        if c.image.as_deref().unwrap_or("").trim().is_empty() {
            causes.push(Cause::required(format!("{f}.image")));
        }
        for (j, p) in c.ports.iter().flatten().enumerate() {
            if !(1..=65535).contains(&p.container_port) {
                causes.push(Cause::invalid(
                    format!("{f}.ports[{j}].containerPort"),
                    &json!(p.container_port),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(n) = p.name.as_deref()
                && (!is_dns1123_label(n) || n.len() > 15)
            {
                causes.push(Cause::invalid(
                    format!("{f}.ports[{j}].name"),
                    &json!(n),
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ));
            }
        }
        for (j, e) in c.env.iter().flatten().enumerate() {
            if e.name.is_empty() {
                causes.push(Cause::required(format!("{f}.env[{j}].name")));
            }
            if let Some(fr) = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref())
                && !field_ref_supported(&fr.field_path)
            {
                causes.push(Cause::with(
                    format!("{f}.env[{j}].valueFrom.fieldRef.fieldPath"),
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: {}: supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
                        json!(fr.field_path)
                    ),
                ));
            }
        }
    }
}
