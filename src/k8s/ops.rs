//! The API operations the tools apply, each a thin blocking call on [`Kube`] that names its
//! object in errors: create an RC, list RCs and pods by label, read and set the `scale`
//! subresource, mark pods for the next scale-down, delete RCs with an explicit propagation
//! policy, read logs. Objects are built in [`super::objects`], never here.

use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams};

use super::{Kube, api_error};

/// The annotation a ReplicationController's scale-down ranks ready pods by (lowest first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
use crate::error::Result;

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
    pub fn create_rc(&self, rc: &serde_json::Value) -> Result<ReplicationController> {
        let name = rc.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or("");
        let what = format!("create replicationcontroller {}/{name}", self.namespace());
        let path = format!(
            "/api/v1/namespaces/{}/replicationcontrollers?fieldValidation=Strict",
            self.namespace()
        );
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(rc).unwrap_or_default())
            .map_err(|e| crate::error::Error::Failed(format!("{what}: {e}")))?;
        self.send(&what, request)
    }

    /// RCs matching a label selector (`k=v,k2=v2`).
    pub fn list_rcs(&self, selector: &str) -> Result<Vec<ReplicationController>> {
        let what = format!("list replicationcontrollers in {} ({selector})", self.namespace());
        self.block_on(self.rcs().list(&ListParams::default().labels(selector)))
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
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.block_on(self.rcs().patch_scale(rc, &PatchParams::default(), &Patch::Merge(&patch)))
            .map(|_| ())
            .map_err(|e| api_error(what, e))
    }

    /// Deletes an RC with the given propagation. A missing RC is not an error (already gone):
    /// returns false then.
    pub fn delete_rc(&self, name: &str, propagation: Propagation) -> Result<bool> {
        let what = format!("delete replicationcontroller {}/{name}", self.namespace());
        let params = match propagation {
            Propagation::Background => DeleteParams::background(),
            Propagation::Foreground => DeleteParams::foreground(),
            Propagation::Orphan => DeleteParams::orphan(),
        };
        // The answer is a Status when the RC went at once, the RC itself while finalizers run:
        // both mean the deletion was accepted.
        match self.block_on(self.rcs().delete(name, &params)) {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_error(what, e)),
        }
    }

    /// Makes a pod the first its controller removes on the next scale-down: the
    /// `pod-deletion-cost` annotation at its lowest. (The controller still removes unscheduled,
    /// pending and unready pods before any ready one.) A missing pod → false.
    pub fn mark_first_to_go(&self, name: &str) -> Result<bool> {
        let what = format!("mark pod {}/{name} for removal", self.namespace());
        let patch = serde_json::json!({
            "metadata": { "annotations": { DELETION_COST: i32::MIN.to_string() } }
        });
        match self.block_on(self.pods().patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_error(what, e)),
        }
    }

    /// The last `tail` lines of a pod's (only) container.
    pub fn logs(&self, pod: &str, tail: Option<i64>) -> Result<String> {
        let what = format!("read the log of pod {}/{pod}", self.namespace());
        let params = LogParams { tail_lines: tail, ..Default::default() };
        self.block_on(self.pods().logs(pod, &params)).map_err(|e| api_error(what, e))
    }
}
