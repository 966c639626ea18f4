//! The in-memory object store: pods, RCs and namespaces, one global resourceVersion counter,
//! the server-set fields (docs/fake-kubernetes.md §3), optimistic concurrency, the event history
//! and the open watches (docs/fake-kubernetes.md §9). Everything here runs under the fake's single
//! mutex.

use std::collections::{BTreeMap, HashSet, VecDeque};

use bytes::Bytes;
use k8s_openapi::api::core::v1::Event as KubeEvent;
use k8s_openapi::api::core::v1::{Namespace, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ListableResource, Metadata, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::logs::LogBuf;
use super::select::{FieldSelector, LabelSelector};
use super::status::{ApiError, Cause, name_suffix, now_time, uuid_v4};

/// (namespace, name).
pub type Key = (String, String);

/// How many events the watch history keeps before older resourceVersions expire.
const HISTORY: usize = 20_000;

/// What the store needs from a kind beyond the k8s-openapi traits (implemented in objects.rs).
pub trait Obj:
    Resource
    + ListableResource
    + Metadata<Ty = ObjectMeta>
    + Clone
    + PartialEq
    + Serialize
    + DeserializeOwned
    + Send
    + 'static
{
    /// Fields a `fieldSelector` may use.
    const FIELDS: &'static [&'static str];
    /// Whether `metadata.generation` tracks spec changes.
    const GENERATION: bool;
    fn table(s: &State) -> &BTreeMap<Key, Self>;
    fn table_mut(s: &mut State) -> &mut BTreeMap<Key, Self>;
    /// Defaults and a cleared status, as on create.
    fn prepare_create(&mut self);
    fn validate(&self) -> Vec<Cause>;
    fn validate_update(&self, old: &Self) -> Vec<Cause>;
    fn spec_json(&self) -> Value;
    fn copy_status(&mut self, from: &Self);
    fn copy_spec(&mut self, from: &Self);
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    Main,
    Status,
}

struct Event {
    rv: u64,
    plural: &'static str,
    ns: String,
    typ: &'static str,
    old: Option<Value>,
    obj: Value,
}

struct Watcher {
    plural: &'static str,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    tx: UnboundedSender<Bytes>,
}

/// What a watch asks for.
pub struct WatchSpec {
    pub plural: &'static str,
    pub kind: &'static str,
    pub ns: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `None`: send the current objects first (resourceVersion absent or 0).
    pub from: Option<u64>,
    pub bookmarks: bool,
}

/// The whole state of the fake cluster. Tests see it in `FakeKube::wait_until` closures.
pub struct State {
    rv: u64,
    pub(crate) pods: BTreeMap<Key, Pod>,
    pub(crate) rcs: BTreeMap<Key, ReplicationController>,
    pub(crate) namespaces: BTreeMap<String, Namespace>,
    pub(crate) events: BTreeMap<Key, KubeEvent>,
    history: VecDeque<Event>,
    /// The history holds every event with rv > floor.
    floor: u64,
    watchers: Vec<Watcher>,
    /// (namespace, pod, container) → log lines.
    pub(crate) logs: BTreeMap<(String, String, String), LogBuf>,
    /// Every pod ever created, in order (tests count replacements with it).
    pub(crate) created: Vec<Key>,
    /// Pod addresses 127.0.0.N in use: N → pod uid.
    pub(crate) ips: BTreeMap<u8, String>,
    /// Pod uids whose address a live process still holds (process-mode kubelet).
    pub(crate) ip_held: HashSet<String>,
}

impl State {
    pub(crate) fn new() -> State {
        let mut s = State {
            rv: 1,
            pods: BTreeMap::new(),
            rcs: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            events: BTreeMap::new(),
            history: VecDeque::new(),
            floor: 1,
            watchers: Vec::new(),
            logs: BTreeMap::new(),
            created: Vec::new(),
            ips: BTreeMap::new(),
            ip_held: HashSet::new(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            s.add_namespace(ns);
        }
        s
    }

    /// The current resourceVersion (the store's global counter).
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn pods(&self, ns: &str) -> Vec<&Pod> {
        self.pods.iter().filter(|((n, _), _)| n == ns).map(|(_, p)| p).collect()
    }

    pub fn rcs(&self, ns: &str) -> Vec<&ReplicationController> {
        self.rcs.iter().filter(|((n, _), _)| n == ns).map(|(_, r)| r).collect()
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<&Pod> {
        self.pods.get(&(ns.to_string(), name.to_string()))
    }

    pub fn rc(&self, ns: &str, name: &str) -> Option<&ReplicationController> {
        self.rcs.get(&(ns.to_string(), name.to_string()))
    }

    /// The log lines (without timestamps) of one container.
    /// The names of every pod ever created in `ns` (deleted ones included), oldest first.
    pub fn pods_created(&self, ns: &str) -> Vec<String> {
        self.created.iter().filter(|(n, _)| n == ns).map(|(_, p)| p.clone()).collect()
    }

    pub fn log_lines(&self, ns: &str, pod: &str, container: &str) -> Vec<String> {
        self.logs
            .get(&(ns.into(), pod.into(), container.into()))
            .map(|b| b.lines().map(|(_, l)| l.to_string()).collect())
            .unwrap_or_default()
    }

    /// Open watch streams.
    pub fn watch_count(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }

    /// Forgets watches whose client went away (also done on every event).
    pub(crate) fn prune_watches(&mut self) {
        self.watchers.retain(|w| !w.tx.is_closed());
    }

    pub(crate) fn add_namespace(&mut self, name: &str) {
        let rv = self.next_rv();
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(uuid_v4()),
                resource_version: Some(rv.to_string()),
                creation_timestamp: Some(now_time()),
                labels: Some(
                    [("kubernetes.io/metadata.name".to_string(), name.to_string())].into(),
                ),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::NamespaceSpec {
                finalizers: Some(vec!["kubernetes".into()]),
            }),
            status: Some(k8s_openapi::api::core::v1::NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
        };
        self.namespaces.insert(name.into(), ns);
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub(crate) fn get<T: Obj>(&self, ns: &str, name: &str) -> Result<&T, ApiError> {
        T::table(self)
            .get(&(ns.to_string(), name.to_string()))
            .ok_or_else(|| ApiError::not_found(T::URL_PATH_SEGMENT, name))
    }

    /// List items (no kind/apiVersion, as a real server sends them), ordered by namespace
    /// then name, with the list's resourceVersion.
    pub(crate) fn list<T: Obj>(
        &self,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Value {
        let items: Vec<Value> = T::table(self)
            .iter()
            .filter(|((n, _), _)| ns.is_none_or(|want| want == n))
            .map(|(_, o)| to_json(o))
            .filter(|v| labels.matches_object(v) && fields.matches_object(v))
            .map(|mut v| {
                if let Some(m) = v.as_object_mut() {
                    m.remove("kind");
                    m.remove("apiVersion");
                }
                v
            })
            .collect();
        json!({"kind": T::LIST_KIND, "apiVersion": "v1",
               "metadata": {"resourceVersion": self.rv.to_string()}, "items": items})
    }

    pub(crate) fn create<T: Obj>(
        &mut self,
        ns: &str,
        mut obj: T,
        dry_run: bool,
    ) -> Result<T, ApiError> {
        if !self.namespaces.contains_key(ns) {
            return Err(ApiError::namespace_not_found(ns));
        }
        let meta = obj.metadata_mut();
        match &meta.namespace {
            Some(n) if n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => meta.namespace = Some(ns.to_string()),
        }
        if meta.name.as_deref().unwrap_or("").is_empty() {
            match meta.generate_name.as_deref() {
                Some(prefix) if !prefix.is_empty() => {
                    let cut: String = prefix.chars().take(58).collect();
                    meta.name = Some(format!("{cut}{}", name_suffix()));
                }
                _ => {
                    return Err(ApiError::invalid(
                        T::KIND,
                        None,
                        "",
                        vec![Cause::with(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
            }
        }
        let name = meta.name.clone().expect("set above");
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.resource_version = None;
        meta.managed_fields = None;
        obj.prepare_create();
        let causes = obj.validate();
        if !causes.is_empty() {
            return Err(ApiError::invalid(T::KIND, None, &name, causes));
        }
        let key = (ns.to_string(), name.clone());
        if T::table(self).contains_key(&key) {
            return Err(ApiError::already_exists(T::URL_PATH_SEGMENT, &name));
        }
        let meta = obj.metadata_mut();
        meta.uid = Some(uuid_v4());
        meta.creation_timestamp = Some(now_time());
        meta.generation = T::GENERATION.then_some(1);
        if dry_run {
            return Ok(obj);
        }
        fits_in_etcd(&obj)?;
        let rv = self.next_rv();
        obj.metadata_mut().resource_version = Some(rv.to_string());
        if T::KIND == Pod::KIND {
            self.created.push(key.clone());
        }
        T::table_mut(self).insert(key, obj.clone());
        self.emit("ADDED", None, &obj);
        Ok(obj)
    }

    /// PUT semantics: optimistic concurrency on `metadata.resourceVersion` when given, immutable
    /// metadata kept, `status` (Main) or `spec` and metadata (Status) taken from the stored object.
    pub(crate) fn update<T: Obj>(
        &mut self,
        ns: &str,
        name: &str,
        mut new: T,
        part: Part,
        dry_run: bool,
    ) -> Result<T, ApiError> {
        let old = self.get::<T>(ns, name)?.clone();
        let plural = T::URL_PATH_SEGMENT;
        let nm = new.metadata_mut();
        if let Some(n) = nm.name.as_deref().filter(|n| *n != name) {
            return Err(ApiError::bad_request(&format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if nm.namespace.as_deref().is_some_and(|n| n != ns) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(rv) = nm.resource_version.as_deref().filter(|rv| !rv.is_empty())
            && Some(rv) != old.metadata().resource_version.as_deref()
        {
            return Err(ApiError::conflict(plural, name));
        }
        let om = old.metadata();
        nm.name = om.name.clone();
        nm.namespace = om.namespace.clone();
        nm.uid = om.uid.clone();
        nm.creation_timestamp = om.creation_timestamp.clone();
        nm.deletion_timestamp = om.deletion_timestamp.clone();
        nm.deletion_grace_period_seconds = om.deletion_grace_period_seconds;
        nm.generate_name = om.generate_name.clone();
        nm.managed_fields = None;
        match part {
            Part::Main => new.copy_status(&old),
            Part::Status => {
                new.copy_spec(&old);
                *new.metadata_mut() = old.metadata().clone();
            }
        }
        let causes = new.validate_update(&old);
        if !causes.is_empty() {
            return Err(ApiError::invalid(T::KIND, None, name, causes));
        }
        if dry_run {
            return Ok(new);
        }
        fits_in_etcd(&new)?;
        Ok(self.commit(&old, new))
    }

    /// Internal writes (controller, garbage collector, kubelet): no validation.
    pub(crate) fn modify<T: Obj>(
        &mut self,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut T),
    ) -> Option<T> {
        let old = T::table(self).get(&(ns.to_string(), name.to_string()))?.clone();
        let mut new = old.clone();
        f(&mut new);
        Some(self.commit(&old, new))
    }

    /// Stores `new` over `old` unless nothing changed; bumps resourceVersion (and generation on
    /// a spec change), emits MODIFIED, and removes an object whose deletion only waited for
    /// finalizers.
    fn commit<T: Obj>(&mut self, old: &T, mut new: T) -> T {
        new.metadata_mut().resource_version = old.metadata().resource_version.clone();
        new.metadata_mut().generation = old.metadata().generation;
        if new == *old {
            return new;
        }
        if T::GENERATION && new.spec_json() != old.spec_json() {
            new.metadata_mut().generation = Some(old.metadata().generation.unwrap_or(0) + 1);
        }
        let rv = self.next_rv();
        new.metadata_mut().resource_version = Some(rv.to_string());
        let key = key_of(&new);
        T::table_mut(self).insert(key.clone(), new.clone());
        self.emit("MODIFIED", Some(old), &new);
        let m = new.metadata();
        if m.deletion_timestamp.is_some()
            && m.deletion_grace_period_seconds == Some(0)
            && m.finalizers.as_ref().is_none_or(Vec::is_empty)
        {
            return self.remove::<T>(&key.0, &key.1).unwrap_or(new);
        }
        new
    }

    /// Removes an object: DELETED event carrying the last state with the deletion's rv.
    pub(crate) fn remove<T: Obj>(&mut self, ns: &str, name: &str) -> Option<T> {
        let mut obj = T::table_mut(self).remove(&(ns.to_string(), name.to_string()))?;
        let rv = self.next_rv();
        obj.metadata_mut().resource_version = Some(rv.to_string());
        let uid = obj.metadata().uid.clone().unwrap_or_default();
        if T::KIND == Pod::KIND {
            // As on a real server, the last state of a deleted pod carries the deletion marks.
            let m = obj.metadata_mut();
            m.deletion_timestamp.get_or_insert_with(now_time);
            m.deletion_grace_period_seconds = Some(0);
            for (_, buf) in self
                .logs
                .range_mut((ns.to_string(), name.to_string(), String::new())..)
                .take_while(|((n, p, _), _)| n == ns && p == name)
            {
                buf.close();
            }
            if !self.ip_held.contains(&uid) {
                self.ips.retain(|_, u| *u != uid);
            }
        }
        self.emit("DELETED", None, &obj);
        Some(obj)
    }

    fn emit<T: Obj>(&mut self, typ: &'static str, old: Option<&T>, obj: &T) {
        let event = Event {
            rv: self.rv,
            plural: T::URL_PATH_SEGMENT,
            ns: obj.metadata().namespace.clone().unwrap_or_default(),
            typ,
            old: old.map(to_json),
            obj: to_json(obj),
        };
        self.watchers.retain(|w| match render(w, &event) {
            Some(line) => w.tx.send(line).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.history.push_back(event);
        while self.history.len() > HISTORY {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.rv;
            }
        }
    }

    /// Opens a watch: initial events or the history replay, then live events.
    pub(crate) fn watch(&mut self, spec: WatchSpec) -> UnboundedReceiver<Bytes> {
        let (tx, rx) = unbounded_channel();
        let w = Watcher {
            plural: spec.plural,
            ns: spec.ns,
            labels: spec.labels,
            fields: spec.fields,
            tx,
        };
        match spec.from {
            Some(from) if from < self.floor => {
                let status = ApiError::new(
                    410,
                    "Expired",
                    &format!("too old resource version: {from} ({})", self.floor),
                    None,
                );
                let _ = w.tx.send(line(json!({"type": "ERROR", "object": status.body})));
                return rx; // the sender drops here: the stream ends after the ERROR event
            }
            Some(from) => {
                for e in self.history.iter().filter(|e| e.rv > from) {
                    if let Some(l) = render(&w, e) {
                        let _ = w.tx.send(l);
                    }
                }
            }
            None => {
                let objects: Vec<Value> = match spec.plural {
                    "pods" => self.pods.values().map(to_json).collect(),
                    _ => self.rcs.values().map(to_json).collect(),
                };
                for o in objects.into_iter().filter(|o| matches(&w, o)) {
                    let _ = w.tx.send(line(json!({"type": "ADDED", "object": o})));
                }
                if spec.bookmarks {
                    let _ = w.tx.send(line(json!({"type": "BOOKMARK", "object": {
                        "kind": spec.kind, "apiVersion": "v1",
                        "metadata": {"resourceVersion": self.rv.to_string(),
                                     "annotations": {"k8s.io/initial-events-end": "true"}}}})));
                }
            }
        }
        self.watchers.push(w);
        rx
    }

    /// Later watches from any resourceVersion up to now get 410 Expired.
    pub(crate) fn expire_history(&mut self) {
        self.history.clear();
        self.floor = self.rv;
    }

    /// Ends every open watch stream.
    pub(crate) fn close_watches(&mut self) {
        self.watchers.clear();
    }
}

/// etcd's request limit (`--max-request-bytes`, 1.5 MiB by default).
pub const ETCD_MAX_REQUEST: usize = 1536 * 1024;
/// The API server's gRPC client refuses to send a larger message to etcd (2 MiB).
pub const ETCD_MAX_SEND: usize = 2 << 20;

/// Storage errors for objects too big to write, as a real server answers them (a 500 without a
/// reason). The stored size is approximated by the JSON encoding (the real server stores
/// protobuf, somewhat smaller).
fn fits_in_etcd<T: Serialize>(obj: &T) -> Result<(), ApiError> {
    let size = serde_json::to_vec(obj).map_or(0, |v| v.len());
    let message = if size > ETCD_MAX_SEND {
        format!(
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max \
             ({size} vs. {ETCD_MAX_SEND})"
        )
    } else if size > ETCD_MAX_REQUEST {
        "etcdserver: request is too large".to_string()
    } else {
        return Ok(());
    };
    Err(ApiError::new(500, "", &message, None))
}

pub(crate) fn to_json<T: Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).expect("k8s-openapi objects serialise")
}

pub(crate) fn key_of<T: Obj>(obj: &T) -> Key {
    let m = obj.metadata();
    (m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

fn line(v: Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn matches(w: &Watcher, obj: &Value) -> bool {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
    w.ns.as_deref().is_none_or(|want| want == ns)
        && w.labels.matches_object(obj)
        && w.fields.matches_object(obj)
}

/// The line a watcher gets for an event, with selector transitions (docs/fake-kubernetes.md §9).
fn render(w: &Watcher, e: &Event) -> Option<Bytes> {
    if w.plural != e.plural || w.ns.as_deref().is_some_and(|n| n != e.ns) {
        return None;
    }
    let now = matches(w, &e.obj);
    let typ = match (e.typ, e.old.as_ref().map(|o| matches(w, o))) {
        ("MODIFIED", Some(true)) if now => "MODIFIED",
        ("MODIFIED", Some(true)) => "DELETED",
        ("MODIFIED", _) if now => "ADDED",
        ("MODIFIED", _) => return None,
        (t, _) if now => t,
        _ => return None,
    };
    Some(line(json!({"type": typ, "object": e.obj})))
}
