//! DELETE with DeleteOptions (docs/fake-kubernetes.md §13): preconditions, dry run, propagation
//! policies with the Orphan default for core/v1 RCs, and graceful pod deletion. The garbage
//! collector that finishes what these start is in controller.rs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::status::ApiError;
use super::store::{State, to_json};

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// DeleteOptions from the JSON body and/or the query string.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOpts {
    pub fn parse(body: &[u8], q: &BTreeMap<String, String>) -> Result<DeleteOpts, ApiError> {
        let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(&format!("invalid DeleteOptions body: {e}")))?
        };
        let s = |v: &Value| v.as_str().map(str::to_string);
        let mut o = DeleteOpts {
            propagation: s(&v["propagationPolicy"]),
            orphan_dependents: v["orphanDependents"].as_bool(),
            grace: v["gracePeriodSeconds"].as_i64(),
            uid: s(&v["preconditions"]["uid"]),
            resource_version: s(&v["preconditions"]["resourceVersion"]),
            dry_run: v["dryRun"].as_array().is_some_and(|a| a.iter().any(|x| x == "All")),
        };
        if let Some(p) = q.get("propagationPolicy") {
            o.propagation = Some(p.clone());
        }
        if let Some(g) = q.get("gracePeriodSeconds") {
            o.grace = Some(g.parse().map_err(|_| {
                ApiError::bad_request(&format!("invalid gracePeriodSeconds {g:?}"))
            })?);
        }
        if q.get("dryRun").is_some_and(|d| d == "All") {
            o.dry_run = true;
        }
        if let Some(p) = o.propagation.as_deref()
            && !["Orphan", "Background", "Foreground"].contains(&p)
        {
            return Err(ApiError::invalid(
                "DeleteOptions",
                None,
                "",
                vec![super::status::Cause::with(
                    "propagationPolicy",
                    "FieldValueNotSupported",
                    format!(
                        "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                )],
            ));
        }
        Ok(o)
    }
}

fn check_preconditions(
    meta: &ObjectMeta,
    o: &DeleteOpts,
    plural: &str,
    name: &str,
) -> Result<(), ApiError> {
    let actual_uid = meta.uid.clone().unwrap_or_default();
    if let Some(uid) = o.uid.as_ref().filter(|u| **u != actual_uid) {
        return Err(ApiError::conflict_with(
            plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual_uid}"
            ),
        ));
    }
    let actual_rv = meta.resource_version.clone().unwrap_or_default();
    if let Some(rv) = o.resource_version.as_ref().filter(|r| **r != actual_rv) {
        return Err(ApiError::conflict_with(
            plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual_rv}"
            ),
        ));
    }
    Ok(())
}

fn success(plural: &str, name: &str, uid: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
           "details": {"name": name, "kind": plural, "uid": uid}})
}

/// DELETE of an RC: a Status when it is gone at once, else the object with its finalizers.
pub fn delete_rc(
    state: &mut State,
    ns: &str,
    name: &str,
    o: &DeleteOpts,
) -> Result<Value, ApiError> {
    let rc = state.get::<ReplicationController>(ns, name)?.clone();
    check_preconditions(&rc.metadata, o, "replicationcontrollers", name)?;
    // kubernetes pkg/registry/core/replicationcontroller/strategy.go: v1 defaults to Orphan.
    let policy = match (o.propagation.as_deref(), o.orphan_dependents) {
        (Some(p), _) => p,
        (None, Some(false)) => "Background",
        _ => "Orphan",
    };
    let uid = rc.metadata.uid.clone().unwrap_or_default();
    let mut finalizers = rc.metadata.finalizers.clone().unwrap_or_default();
    finalizers.retain(|f| f != ORPHAN && f != FOREGROUND);
    match policy {
        "Orphan" => finalizers.push(ORPHAN.into()),
        "Foreground" => finalizers.push(FOREGROUND.into()),
        _ => {}
    }
    if finalizers.is_empty() {
        if !o.dry_run {
            state.remove::<ReplicationController>(ns, name);
        }
        return Ok(success("replicationcontrollers", name, &uid));
    }
    let mark = |r: &mut ReplicationController| {
        r.metadata.deletion_timestamp.get_or_insert_with(|| Time(Timestamp::now()));
        r.metadata.deletion_grace_period_seconds = Some(0);
        r.metadata.finalizers = Some(finalizers.clone());
    };
    if o.dry_run {
        let mut rc = rc;
        mark(&mut rc);
        return Ok(to_json(&rc));
    }
    let rc = state.modify::<ReplicationController>(ns, name, mark).expect("looked up above");
    Ok(to_json(&rc))
}

/// DELETE of a pod: immediate when grace is 0, the pod was never scheduled or has finished;
/// otherwise only marked, until a kubelet confirms. Always answers with the object.
pub fn delete_pod(
    state: &mut State,
    ns: &str,
    name: &str,
    o: &DeleteOpts,
) -> Result<Value, ApiError> {
    let pod = state.get::<Pod>(ns, name)?.clone();
    check_preconditions(&pod.metadata, o, "pods", name)?;
    let spec = pod.spec.clone().unwrap_or_default();
    let grace = o.grace.unwrap_or(spec.termination_grace_period_seconds.unwrap_or(30)).max(0);
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    let immediate =
        grace == 0 || spec.node_name.is_none() || phase == "Succeeded" || phase == "Failed";
    if immediate {
        if o.dry_run {
            return Ok(to_json(&pod));
        }
        let gone = state.remove::<Pod>(ns, name).expect("looked up above");
        return Ok(to_json(&gone));
    }
    let deadline = Timestamp::now() + SignedDuration::from_secs(grace);
    let shorter = pod.metadata.deletion_timestamp.as_ref().is_none_or(|t| deadline < t.0);
    if !shorter {
        return Ok(to_json(&pod));
    }
    let mark = |p: &mut Pod| {
        p.metadata.deletion_timestamp = Some(Time(deadline));
        p.metadata.deletion_grace_period_seconds = Some(grace);
    };
    if o.dry_run {
        let mut pod = pod;
        mark(&mut pod);
        return Ok(to_json(&pod));
    }
    let pod = state.modify::<Pod>(ns, name, mark).expect("looked up above");
    Ok(to_json(&pod))
}
