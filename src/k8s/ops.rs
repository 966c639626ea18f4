//! The API operations the tools apply, each a thin blocking call on [`Kube`] that names its
//! object in errors: create an RC, list RCs and pods by label, read and set the `scale`
//! subresource, mark pods for the next scale-down, delete RCs with an explicit propagation
//! policy, read logs, list pods and their events (`status`). Objects are built in [`super::objects`], never here.

use k8s_openapi::api::core::v1::{Event, Pod, ReplicationController};
use kube::api::{Api, ListParams, LogParams};

use serde_json::{Value, json};

use super::{Kube, api_error, is_code};

/// The annotation a ReplicationController's scale-down ranks ready pods by (lowest first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
use crate::error::{Error, Result};

/// How dependents of a deleted RC are handled. Core/v1 RCs default to Orphan on the server, so
/// every delete here names its policy: a `kill` that sent none would leave every pod running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // the complete set, so no caller falls back on the server's default
pub enum Propagation {
    /// The RC goes at once; the garbage collector deletes its pods (what `kill` uses).
    Background,
    /// The pods go first, then the RC.
    Foreground,
    /// The RC goes; its pods keep running, unowned (what `bump` and `scale` never want).
    Orphan,
}

impl Kube {
    fn rcs(&self) -> Api<ReplicationController> {
        Api::namespaced(self.client(), self.namespace())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client(), self.namespace())
    }

    /// Creates an RC from its wire form ([`super::objects::wire`]) with strict field validation,
    /// so a field the server does not know is a 400 naming its path instead of being dropped;
    /// returns the RC as the server stored it.
    pub fn create_rc(&self, rc: &Value) -> Result<ReplicationController> {
        let name = rc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let what = format!("create replicationcontroller {}/{name}", self.namespace());
        let path = format!("{}?fieldValidation=Strict", self.path("replicationcontrollers", ""));
        self.send(&what, json_request(http::Method::POST, &path, None, rc)?)
    }

    /// The same create with `dryRun=All`: the server decodes, defaults, validates and admits
    /// the RC as for real, answers with it, and stores nothing.
    pub fn create_rc_dry_run(&self, rc: &Value) -> Result<ReplicationController> {
        let name = rc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let what = format!("dry-run create replicationcontroller {}/{name}", self.namespace());
        let path = format!(
            "{}?fieldValidation=Strict&dryRun=All",
            self.path("replicationcontrollers", "")
        );
        self.send(&what, json_request(http::Method::POST, &path, None, rc)?)
    }

    /// `/api/v1/namespaces/<ns>/<resource>[/<rest>]`.
    fn path(&self, resource: &str, rest: &str) -> String {
        let ns = self.namespace();
        if rest.is_empty() {
            format!("/api/v1/namespaces/{ns}/{resource}")
        } else {
            format!("/api/v1/namespaces/{ns}/{resource}/{rest}")
        }
    }

    /// RCs matching a label selector (`k=v,k2=v2`).
    pub fn list_rcs(&self, selector: &str) -> Result<Vec<ReplicationController>> {
        let what = format!("list replicationcontrollers in {} ({selector})", self.namespace());
        self.block_on(self.rcs().list(&ListParams::default().labels(selector)))
            .map(|l| l.items)
            .map_err(|e| api_error(what, e))
    }

    /// Pods matching a label selector.
    pub fn list_pods(&self, selector: &str) -> Result<Vec<Pod>> {
        let what = format!("list pods in {} ({selector})", self.namespace());
        self.block_on(self.pods().list(&ListParams::default().labels(selector)))
            .map(|l| l.items)
            .map_err(|e| api_error(what, e))
    }

    /// The core/v1 events about one pod (what `kubectl describe pod` lists), by the pod's name
    /// and uid, so a former pod of the same name does not count.
    pub fn pod_events(&self, name: &str, uid: &str) -> Result<Vec<Event>> {
        let what = format!("list events of pod {}/{name}", self.namespace());
        let mut fields = format!("involvedObject.kind=Pod,involvedObject.name={name}");
        if !uid.is_empty() {
            fields += &format!(",involvedObject.uid={uid}");
        }
        let api: Api<Event> = Api::namespaced(self.client(), self.namespace());
        self.block_on(api.list(&ListParams::default().fields(&fields)))
            .map(|l| l.items)
            .map_err(|e| api_error(what, e))
    }

    /// The RC's desired replica count, read through its `scale` subresource.
    pub fn get_scale(&self, rc: &str) -> Result<i32> {
        let what = format!("get replicationcontroller {}/{rc}/scale", self.namespace());
        self.block_on(self.rcs().get_scale(rc))
            .map(|s| s.spec.and_then(|s| s.replicas).unwrap_or(0))
            .map_err(|e| api_error(what, e))
    }

    /// Sets the RC's replica count through its `scale` subresource (a merge patch, as
    /// `kubectl scale` sends).
    pub fn set_scale(&self, rc: &str, replicas: i32) -> Result<()> {
        let what = format!("scale replicationcontroller {}/{rc} to {replicas}", self.namespace());
        let patch = json!({ "spec": { "replicas": replicas } });
        let path = self.path("replicationcontrollers", &format!("{rc}/scale"));
        self.send::<Value>(&what, json_request(http::Method::PATCH, &path, Some(MERGE), &patch)?)
            .map(|_| ())
    }

    /// Deletes an RC with the given propagation. A missing RC is not an error (already gone):
    /// returns false then.
    pub fn delete_rc(&self, name: &str, propagation: Propagation) -> Result<bool> {
        let what = format!("delete replicationcontroller {}/{name}", self.namespace());
        let policy = match propagation {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        };
        let options =
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy});
        let path = self.path("replicationcontrollers", name);
        // The answer is a Status when the RC went at once, the RC itself while finalizers run:
        // both mean the deletion was accepted.
        match self.send::<Value>(&what, json_request(http::Method::DELETE, &path, None, &options)?)
        {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, 404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes a pod the first its controller removes on the next scale-down: the
    /// `pod-deletion-cost` annotation at its lowest. (The controller still removes unscheduled,
    /// pending and unready pods before any ready one.) A missing pod → false.
    pub fn mark_first_to_go(&self, name: &str) -> Result<bool> {
        let what = format!("mark pod {}/{name} for removal", self.namespace());
        let patch = json!({
            "metadata": { "annotations": { DELETION_COST: i32::MIN.to_string() } }
        });
        let path = self.path("pods", name);
        match self
            .send::<Value>(&what, json_request(http::Method::PATCH, &path, Some(MERGE), &patch)?)
        {
            Ok(_) => Ok(true),
            Err(e) if is_code(&e, 404) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The last `tail` lines of a pod's (only) container.
    pub fn logs(&self, pod: &str, tail: Option<i64>) -> Result<String> {
        let what = format!("read the log of pod {}/{pod}", self.namespace());
        let params = LogParams { tail_lines: tail, ..Default::default() };
        self.block_on(self.pods().logs(pod, &params)).map_err(|e| api_error(what, e))
    }
}

const MERGE: &str = "application/merge-patch+json";

/// A request with a JSON body (`content_type`, default `application/json`).
fn json_request(
    method: http::Method,
    path: &str,
    content_type: Option<&str>,
    body: &Value,
) -> Result<http::Request<Vec<u8>>> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type.unwrap_or("application/json"))
        .header(http::header::ACCEPT, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
        .map_err(|e| Error::Failed(format!("build the request for {path}: {e}")))
}
