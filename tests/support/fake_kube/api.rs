//! Routing and the REST verbs (docs/fake-kubernetes.md §4, §8, §10, §14): from a parsed request to
//! a reply, all synchronous under the store lock. Transport, authentication and recording are in
//! http.rs.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::Shared;
use super::delete::{DeleteOpts, delete_pod, delete_rc};
use super::logs::{LogReply, pod_log};
use super::patch::{PatchKind, apply};
use super::select::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause};
use super::store::{Obj, Part, State, WatchSpec, to_json};

/// A request as the API layer sees it (the path without the query; the query form-decoded).
pub struct Req {
    /// `Warning` headers for the response (the real server's `299 - "…"`), filled while handling.
    pub warnings: std::cell::RefCell<Vec<String>>,
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

pub enum Reply {
    Json(u16, Value),
    Text(String),
    /// A chunked body: what exists now, then lines from the channel until it closes or the
    /// time limit passes.
    Stream {
        content_type: &'static str,
        first: Bytes,
        rx: UnboundedReceiver<Bytes>,
        limit: Duration,
    },
}

type Res = Result<Reply, ApiError>;

const WATCH_DEFAULT: Duration = Duration::from_secs(30 * 60);

pub fn handle(shared: &Shared, req: &Req) -> Res {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let m = req.method.as_str();
    match segs.as_slice() {
        ["version"] => get_only(m, version),
        ["api"] => get_only(m, || {
            json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": format!("127.0.0.1:{}", shared.port)}]})
        }),
        ["api", "v1"] => get_only(m, resources),
        ["apis"] => {
            get_only(m, || json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
        }
        ["api", "v1", "namespaces"] => namespaces(shared, req),
        ["api", "v1", "namespaces", ns] => match m {
            "GET" => shared.with(|s| {
                s.namespaces
                    .get(*ns)
                    .map(|n| Reply::Json(200, to_json(n)))
                    .ok_or_else(|| ApiError::namespace_not_found(ns))
            }),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "pods"] => collection::<Pod>(shared, None, req),
        ["api", "v1", "replicationcontrollers"] => {
            collection::<ReplicationController>(shared, None, req)
        }
        ["api", "v1", "events"] if m == "GET" => collection::<Event>(shared, None, req),
        ["api", "v1", "namespaces", ns, "events"] if m == "GET" || m == "POST" => {
            collection::<Event>(shared, Some(ns), req)
        }
        ["api", "v1", "namespaces", ns, "events", name] if m == "GET" => {
            item::<Event>(shared, ns, name, req)
        }
        ["api", "v1", "events"]
        | ["api", "v1", "namespaces", _, "events"]
        | ["api", "v1", "namespaces", _, "events", _] => Err(ApiError::method_not_allowed()),
        ["api", "v1", "namespaces", ns, "pods"] => collection::<Pod>(shared, Some(ns), req),
        ["api", "v1", "namespaces", ns, "replicationcontrollers"] => {
            collection::<ReplicationController>(shared, Some(ns), req)
        }
        ["api", "v1", "namespaces", ns, "pods", name] => item::<Pod>(shared, ns, name, req),
        ["api", "v1", "namespaces", ns, "replicationcontrollers", name] => {
            item::<ReplicationController>(shared, ns, name, req)
        }
        ["api", "v1", "namespaces", ns, "pods", name, "status"] => {
            status::<Pod>(shared, ns, name, req)
        }
        ["api", "v1", "namespaces", ns, "replicationcontrollers", name, "status"] => {
            status::<ReplicationController>(shared, ns, name, req)
        }
        ["api", "v1", "namespaces", ns, "replicationcontrollers", name, "scale"] => {
            scale(shared, ns, name, req)
        }
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => match m {
            "GET" => shared.with(|s| match pod_log(s, ns, name, &req.query)? {
                LogReply::Text(t) => Ok(Reply::Text(t)),
                LogReply::Follow(first, rx) => Ok(Reply::Stream {
                    content_type: "text/plain",
                    first: Bytes::from(first),
                    rx,
                    limit: WATCH_DEFAULT,
                }),
            }),
            _ => Err(ApiError::method_not_allowed()),
        },
        _ => Err(ApiError::path_not_found()),
    }
}

fn get_only(method: &str, f: impl FnOnce() -> Value) -> Res {
    match method {
        "GET" => Ok(Reply::Json(200, f())),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn version() -> Value {
    json!({"major": "1", "minor": "36", "gitVersion": "v1.36.2-fake",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-08-21T00:00:00Z", "goVersion": "go1.26.6", "compiler": "gc",
           "platform": "linux/amd64"})
}

fn resources() -> Value {
    let all = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
    let sub = ["get", "patch", "update"];
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
         "verbs": ["create", "get", "list", "watch"], "shortNames": ["ev"]},
        {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["ns"]},
        {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": all,
         "shortNames": ["po"], "categories": ["all"]},
        {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
        {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": sub},
        {"name": "replicationcontrollers", "singularName": "replicationcontroller", "namespaced": true,
         "kind": "ReplicationController", "verbs": all, "shortNames": ["rc"], "categories": ["all"]},
        {"name": "replicationcontrollers/scale", "singularName": "", "namespaced": true,
         "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": sub},
        {"name": "replicationcontrollers/status", "singularName": "", "namespaced": true,
         "kind": "ReplicationController", "verbs": sub}]})
}

fn namespaces(shared: &Shared, req: &Req) -> Res {
    match req.method.as_str() {
        "GET" => shared.with(|s| {
            let items: Vec<Value> = s
                .namespaces
                .values()
                .map(|n| {
                    let mut v = to_json(n);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    v
                })
                .collect();
            Ok(Reply::Json(
                200,
                json!({"kind": "NamespaceList", "apiVersion": "v1",
                "metadata": {"resourceVersion": s.rv().to_string()}, "items": items}),
            ))
        }),
        "POST" => {
            let ns: Namespace = parse_body(req, "Namespace")?;
            let name = ns.metadata.name.clone().unwrap_or_default();
            if !super::select::is_dns1123_label(&name) {
                return Err(ApiError::invalid(
                    "Namespace",
                    None,
                    &name,
                    vec![Cause::invalid(
                        "metadata.name",
                        &json!(name),
                        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                    )],
                ));
            }
            shared.with(|s| {
                if s.namespaces.contains_key(&name) {
                    return Err(ApiError::already_exists("namespaces", &name));
                }
                s.add_namespace(&name);
                Ok(Reply::Json(201, to_json(&s.namespaces[&name])))
            })
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn dry_run(req: &Req) -> bool {
    req.query.get("dryRun").is_some_and(|d| d == "All")
}

fn selectors<T: Obj>(req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(req.query.get("labelSelector").map_or("", |s| s))
        .map_err(|e| ApiError::bad_request(&e))?;
    let fields = FieldSelector::parse(req.query.get("fieldSelector").map_or("", |s| s), T::FIELDS)
        .map_err(|e| ApiError::bad_request(&e))?;
    Ok((labels, fields))
}

/// Decodes a JSON body into `T`, refusing a body that names another kind, then checks its
/// fields against the typed model (`decoded`).
fn parse_body<T: serde::de::DeserializeOwned + serde::Serialize>(
    req: &Req,
    kind: &str,
) -> Result<T, ApiError> {
    let v: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(&format!("the request body is not valid JSON: {e}")))?;
    if let Some(k) = v.get("kind").and_then(Value::as_str).filter(|k| *k != kind) {
        return Err(ApiError::bad_request(&format!(
            "the object provided is of kind {k}, expected {kind}"
        )));
    }
    decoded(req, kind, v)
}

/// Decodes `v` into `T` as the real server does with `fieldValidation`: the fields the typed
/// model would drop are a 400 `strict decoding error` with `Strict`, a `Warning` header each
/// with `Warn` (the default), nothing with `Ignore`.
fn decoded<T: serde::de::DeserializeOwned + serde::Serialize>(
    req: &Req,
    kind: &str,
    v: Value,
) -> Result<T, ApiError> {
    let obj: T = serde_json::from_value(v.clone()).map_err(|e| {
        ApiError::bad_request(&format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}"
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&v, &to_json(&obj), "", &mut unknown);
    if unknown.is_empty() {
        return Ok(obj);
    }
    let texts: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    match req.query.get("fieldValidation").map(String::as_str) {
        Some("Strict") => Err(ApiError::bad_request(&format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: strict decoding error: {}",
            texts.join(", ")
        ))),
        Some("Ignore") => Ok(obj),
        _ => {
            req.warnings.borrow_mut().extend(texts);
            Ok(obj)
        }
    }
}

/// The paths (`spec.template.spec.containers[0].imagee`) present in `raw` but lost by the typed
/// round trip `typed`. Nulls are skipped: they decode as absent.
fn unknown_fields(raw: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, typed) {
        (Value::Object(r), Value::Object(t)) => {
            for (k, v) in r {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match t.get(k) {
                    _ if v.is_null() => {}
                    None => out.push(sub),
                    Some(tv) => unknown_fields(v, tv, &sub, out),
                }
            }
        }
        (Value::Array(r), Value::Array(t)) => {
            for (i, (rv, tv)) in r.iter().zip(t).enumerate() {
                unknown_fields(rv, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn collection<T: Obj>(shared: &Shared, ns: Option<&str>, req: &Req) -> Res {
    match req.method.as_str() {
        "GET" => {
            let (labels, fields) = selectors::<T>(req)?;
            let watch = req.query.get("watch").is_some_and(|w| w == "true" || w == "1");
            if !watch {
                return Ok(Reply::Json(200, shared.with(|s| s.list::<T>(ns, &labels, &fields))));
            }
            let initial = req.query.get("sendInitialEvents").is_some_and(|v| v == "true");
            let from = match req.query.get("resourceVersion").map(String::as_str) {
                None | Some("") | Some("0") => None,
                Some(_) if initial => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(&format!("invalid resourceVersion {rv:?}"))
                })?),
            };
            let limit = match req.query.get("timeoutSeconds") {
                Some(t) => Duration::from_secs(t.parse().map_err(|_| {
                    ApiError::bad_request(&format!("invalid timeoutSeconds {t:?}"))
                })?),
                None => WATCH_DEFAULT,
            };
            let rx = shared.with(|s| {
                s.watch(WatchSpec {
                    plural: T::URL_PATH_SEGMENT,
                    kind: T::KIND,
                    ns: ns.map(str::to_string),
                    labels,
                    fields,
                    from,
                    bookmarks: req.query.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
                })
            });
            Ok(Reply::Stream { content_type: "application/json", first: Bytes::new(), rx, limit })
        }
        "POST" => {
            let Some(ns) = ns else {
                return Err(ApiError::method_not_allowed());
            };
            let obj: T = parse_body(req, T::KIND)?;
            let created = shared.with(|s| s.create::<T>(ns, obj, dry_run(req)))?;
            let name = created.metadata().name.clone().unwrap_or_default();
            // The replication manager's create warning: its pods' names, hence their hostnames,
            // start with the RC's.
            if T::KIND == "ReplicationController" && !super::select::is_dns1123_label(&name) {
                let why = if name.contains('.') && name.len() <= 63 {
                    "must not contain dots".to_string()
                } else {
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
                };
                req.warnings.borrow_mut().push(format!(
                    "metadata.name: this is used in Pod names and hostnames, which can result in \
                     surprising behavior; a DNS label is recommended: [{why}]"
                ));
            }
            Ok(Reply::Json(201, to_json(&created)))
        }
        "DELETE" => {
            let Some(ns) = ns else {
                return Err(ApiError::method_not_allowed());
            };
            let (labels, fields) = selectors::<T>(req)?;
            let opts = DeleteOpts::parse(&req.body, &req.query)?;
            shared.with(|s| {
                let list = s.list::<T>(Some(ns), &labels, &fields);
                let mut items = Vec::new();
                for it in list["items"].as_array().into_iter().flatten() {
                    let name = it["metadata"]["name"].as_str().unwrap_or("");
                    items.push(delete_one::<T>(s, ns, name, &opts)?);
                }
                Ok(Reply::Json(
                    200,
                    json!({"kind": T::LIST_KIND, "apiVersion": "v1",
                    "metadata": {"resourceVersion": s.rv().to_string()}, "items": items}),
                ))
            })
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn delete_one<T: Obj>(
    s: &mut State,
    ns: &str,
    name: &str,
    o: &DeleteOpts,
) -> Result<Value, ApiError> {
    if T::KIND == "Pod" { delete_pod(s, ns, name, o) } else { delete_rc(s, ns, name, o) }
}

fn patch_kind(req: &Req) -> Result<PatchKind, ApiError> {
    req.content_type
        .as_deref()
        .and_then(PatchKind::from_content_type)
        .ok_or_else(ApiError::unsupported_media_type)
}

/// Applies a PATCH body to the stored object and decodes the result.
fn patched<T: Obj>(s: &State, ns: &str, name: &str, req: &Req) -> Result<T, ApiError> {
    let kind = patch_kind(req)?;
    let patch: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(&format!("the patch is not valid JSON: {e}")))?;
    let mut v = to_json(s.get::<T>(ns, name)?);
    apply(kind, &mut v, &patch).map_err(|e| ApiError::new(422, "Invalid", &e, None))?;
    decoded(req, T::KIND, v)
}

fn item<T: Obj>(shared: &Shared, ns: &str, name: &str, req: &Req) -> Res {
    let dry = dry_run(req);
    let obj = match req.method.as_str() {
        "GET" => shared.with(|s| s.get::<T>(ns, name).map(to_json))?,
        "PUT" => {
            let obj: T = parse_body(req, T::KIND)?;
            to_json(&shared.with(|s| s.update::<T>(ns, name, obj, Part::Main, dry))?)
        }
        "PATCH" => to_json(&shared.with(|s| {
            let obj = patched::<T>(s, ns, name, req)?;
            s.update::<T>(ns, name, obj, Part::Main, dry)
        })?),
        "DELETE" => {
            let opts = DeleteOpts::parse(&req.body, &req.query)?;
            shared.with(|s| delete_one::<T>(s, ns, name, &opts))?
        }
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Reply::Json(200, obj))
}

fn status<T: Obj>(shared: &Shared, ns: &str, name: &str, req: &Req) -> Res {
    let dry = dry_run(req);
    let obj = match req.method.as_str() {
        "GET" => shared.with(|s| s.get::<T>(ns, name).map(to_json))?,
        "PUT" => {
            let obj: T = parse_body(req, T::KIND)?;
            to_json(&shared.with(|s| s.update::<T>(ns, name, obj, Part::Status, dry))?)
        }
        "PATCH" => to_json(&shared.with(|s| {
            let obj = patched::<T>(s, ns, name, req)?;
            s.update::<T>(ns, name, obj, Part::Status, dry)
        })?),
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Reply::Json(200, obj))
}

fn scale_of(rc: &ReplicationController) -> Scale {
    let m = &rc.metadata;
    let selector = rc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|sel| sel.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","));
    Scale {
        metadata: ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            creation_timestamp: m.creation_timestamp.clone(),
            ..Default::default()
        },
        spec: Some(ScaleSpec { replicas: rc.spec.as_ref().and_then(|s| s.replicas) }),
        status: Some(ScaleStatus {
            replicas: rc.status.as_ref().map_or(0, |s| s.replicas),
            selector,
        }),
    }
}

fn scale(shared: &Shared, ns: &str, name: &str, req: &Req) -> Res {
    let dry = dry_run(req);
    shared.with(|s| {
        let rc = s.get::<ReplicationController>(ns, name)?.clone();
        let wanted: Scale = match req.method.as_str() {
            "GET" => return Ok(Reply::Json(200, to_json(&scale_of(&rc)))),
            "PUT" => parse_body(req, "Scale")?,
            "PATCH" => {
                let kind = patch_kind(req)?;
                let patch: Value = serde_json::from_slice(&req.body).map_err(|e| {
                    ApiError::bad_request(&format!("the patch is not valid JSON: {e}"))
                })?;
                let mut v = to_json(&scale_of(&rc));
                apply(kind, &mut v, &patch).map_err(|e| ApiError::new(422, "Invalid", &e, None))?;
                serde_json::from_value(v).map_err(|e| {
                    ApiError::bad_request(&format!("decoding the patched Scale: {e}"))
                })?
            }
            _ => return Err(ApiError::method_not_allowed()),
        };
        if let Some(rv) = wanted.metadata.resource_version.as_deref().filter(|r| !r.is_empty())
            && Some(rv) != rc.metadata.resource_version.as_deref()
        {
            return Err(ApiError::conflict("replicationcontrollers", name));
        }
        let replicas = wanted.spec.and_then(|s| s.replicas).unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "Scale",
                Some("autoscaling"),
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let set = |r: &mut ReplicationController| {
            r.spec.get_or_insert_with(Default::default).replicas = Some(replicas)
        };
        let rc = if dry {
            let mut rc = rc;
            set(&mut rc);
            rc
        } else {
            s.modify::<ReplicationController>(ns, name, set).expect("looked up above")
        };
        Ok(Reply::Json(200, to_json(&scale_of(&rc))))
    })
}
