//! A fake Kubernetes API server and fake kubelet for tests (what it imitates:
//! docs/fake-kubernetes.md).
//!
//! `FakeKube::start` serves core/v1 pods, RCs and namespaces over HTTPS (a CA made at start-up
//! is written into a kubeconfig) or plain HTTP, runs an RC controller and a garbage collector,
//! and optionally a kubelet for node `fake-node` that marks pods Running at 127.0.0.N or runs
//! each container as a local process. It records every request for contract asserts, and lets a
//! test inject failures, expire the watch history and close watches. Dropping it stops the
//! server and kills and waits for every process its kubelet started.

mod api;
mod controller;
mod delete;
mod events;
mod http;
mod kubelet;
mod logs;
mod objects;
pub mod patch;
mod process;
pub mod select;
pub mod status;
mod store;
pub mod testing;
mod tls;

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, ReplicationController};

#[allow(unused_imports)] // re-exports for tests; not every test binary uses each one
pub use controller::{DELETION_COST, is_ready, phase, scale_down_order};
#[allow(unused_imports)]
pub use kubelet::{Kubelet, NODE};
pub use store::State;

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct FakeOpts {
    pub kubelet: Kubelet,
    /// HTTPS with a generated CA (default) or plain HTTP.
    pub tls: bool,
    /// The bearer token clients must send.
    pub token: String,
    /// 0 picks a free port (tests run in parallel, one fake each).
    pub port: u16,
    /// How long the status kubelet waits before confirming a graceful delete.
    pub confirm_delay: Duration,
}

impl Default for FakeOpts {
    fn default() -> FakeOpts {
        FakeOpts {
            kubelet: Kubelet::Off,
            tls: true,
            token: "fake-token".into(),
            port: 0,
            confirm_delay: Duration::ZERO,
        }
    }
}

/// One request as received (before authentication), for contract asserts.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The query, form-decoded, in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct Fault {
    method: String,
    prefix: String,
    code: u16,
    left: usize,
}

struct Proc {
    ctl: std::sync::mpsc::Sender<process::Ctl>,
    stopping: bool,
    thread: Option<JoinHandle<()>>,
}

/// What the server, the reconciler thread and the process supervisors share.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    token: String,
    port: u16,
    kubeconfig: PathBuf,
    kubelet: Kubelet,
    confirm_delay: Duration,
    images: Mutex<HashMap<String, PathBuf>>,
    /// Images the fake registry does not have (`refuse_image`).
    unpullable: Mutex<HashSet<String>>,
    /// A container `command[0]` (a path inside the image) → the host executable to run.
    commands: Mutex<HashMap<String, PathBuf>>,
    procs: Mutex<HashMap<String, Proc>>,
    records: Mutex<Vec<Recorded>>,
    faults: Mutex<Vec<Fault>>,
    /// Denied (verb, resource, namespace or any).
    forbid: Mutex<Vec<(String, String, Option<String>)>>,
    /// Extra `Warning` texts for (method, path prefix).
    warns: Mutex<Vec<(String, String, String)>>,
}

/// The user named in 403 messages (the portal's scoped service account).
pub const FORBIDDEN_USER: &str = "system:serviceaccount:ocho:portal";

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the others.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` under the lock and wakes the waiters if it changed anything.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.lock();
        let before = s.rv();
        let r = f(&mut s);
        if s.rv() != before {
            self.changed.notify_all();
        }
        r
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<u16> {
        let mut faults = self.faults.lock().expect("faults lock");
        let f = faults.iter_mut().find(|f| {
            f.left > 0 && f.method.eq_ignore_ascii_case(method) && path.starts_with(&f.prefix)
        })?;
        f.left -= 1;
        let code = f.code;
        faults.retain(|f| f.left > 0);
        Some(code)
    }
}

/// A running fake cluster. Drop stops everything.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    reconciler: Option<JoinHandle<()>>,
}

impl FakeKube {
    pub fn start(opts: FakeOpts) -> std::io::Result<FakeKube> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let dir = tempfile::Builder::new().prefix("fake-kube-").tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let tls = if opts.tls { Some(tls::Tls::generate()?) } else { None };
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        tls::write_kubeconfig(&kubeconfig, addr, ca_pem.as_deref(), &opts.token)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            token: opts.token.clone(),
            port: addr.port(),
            kubeconfig,
            kubelet: opts.kubelet,
            confirm_delay: opts.confirm_delay,
            images: Mutex::new(HashMap::new()),
            unpullable: Mutex::new(HashSet::new()),
            commands: Mutex::new(HashMap::new()),
            procs: Mutex::new(HashMap::new()),
            records: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            forbid: Mutex::new(Vec::new()),
            warns: Mutex::new(Vec::new()),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_shared = shared.clone();
        let server_config = tls.map(|t| t.server);
        let server =
            std::thread::Builder::new().name("fake-kube-http".into()).spawn(move || {
                runtime.block_on(http::serve(listener, server_config, server_shared, rx))
            })?;
        let loop_shared = shared.clone();
        let reconciler = std::thread::Builder::new()
            .name("fake-kube-controllers".into())
            .spawn(move || reconcile_loop(loop_shared))?;
        Ok(FakeKube {
            shared,
            addr,
            ca_pem,
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
            reconciler: Some(reconciler),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The kubeconfig file (server, CA data, token, namespace `default`): pass it as KUBECONFIG.
    pub fn kubeconfig(&self) -> &Path {
        &self.shared.kubeconfig
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The test CA (PEM) when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kube client for this fake, built from its kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("fake kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("fake kubeconfig is valid");
        kube::Client::try_from(cfg).expect("kube client for the fake")
    }

    /// Process mode: containers with `image` run `exe` (plus the container's args) unless
    /// they set a `command`.
    pub fn register_image(&self, image: &str, exe: impl AsRef<Path>) {
        self.shared
            .images
            .lock()
            .expect("images lock")
            .insert(image.to_string(), exe.as_ref().to_path_buf());
        self.shared.changed.notify_all();
    }

    /// Status and process modes: pulling `image` fails (every container waits with
    /// `ErrImagePull`, the kubelet records `Failed` events), as with an image the registry lacks.
    pub fn refuse_image(&self, image: &str) {
        self.shared.unpullable.lock().expect("unpullable lock").insert(image.to_string());
        self.shared.changed.notify_all();
    }

    /// Process mode: a container whose `command[0]` is `in_image` (e.g. `/usr/bin/ocho`) runs
    /// `exe` instead, since the image's file system does not exist on the host.
    pub fn map_command(&self, in_image: &str, exe: impl AsRef<Path>) {
        self.shared
            .commands
            .lock()
            .expect("commands lock")
            .insert(in_image.to_string(), exe.as_ref().to_path_buf());
    }

    /// Waits until `cond` holds on the state, re-checking after every change. On timeout the
    /// error describes the pods and RCs, for the test's failure message.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&State) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        loop {
            if cond(&s) {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("timed out after {timeout:?}; {}", describe(&s)));
            }
            // Log lines do not bump the resourceVersion, so also re-check now and then.
            let wait = (deadline - now).min(Duration::from_millis(100));
            s = self.shared.changed.wait_timeout(s, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Reads the state under the lock.
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.lock())
    }

    /// The address the kubelet would give a process-mode pod `uid` now, given back at once.
    #[allow(dead_code)] // used by some of the test binaries that include the fake
    pub fn next_process_ip(&self, uid: &str) -> Option<String> {
        let mut s = self.shared.lock();
        let ip = kubelet::allocate_ip(&mut s, uid, true);
        kubelet::release_process_ip(&mut s, uid);
        ip
    }

    pub fn pods(&self, ns: &str) -> Vec<Pod> {
        self.with_state(|s| s.pods(ns).into_iter().cloned().collect())
    }

    pub fn rcs(&self, ns: &str) -> Vec<ReplicationController> {
        self.with_state(|s| s.rcs(ns).into_iter().cloned().collect())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.records.lock().expect("records lock").clone()
    }

    pub fn clear_requests(&self) {
        self.shared.records.lock().expect("records lock").clear();
    }

    /// The next `n` requests with this method and a path starting with `path_prefix` get a
    /// `Status` error with `code` (and the usual reason for it) and change nothing.
    pub fn fail_next(&self, method: &str, path_prefix: &str, code: u16, n: usize) {
        self.shared.faults.lock().expect("faults lock").push(Fault {
            method: method.to_string(),
            prefix: path_prefix.to_string(),
            code,
            left: n,
        });
    }

    /// Denies `verb` (get, list, watch, create, update, patch, delete, deletecollection) on
    /// `resource` (e.g. `pods`, `pods/log`, `replicationcontrollers/scale`) in `namespace`
    /// (`None`: everywhere) with a 403 like RBAC's.
    pub fn forbid(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        self.shared.forbid.lock().expect("forbid lock").push((
            verb.to_string(),
            resource.to_string(),
            namespace.map(str::to_string),
        ));
    }

    /// Every later request with this method and a path starting with `path_prefix` gets a
    /// `Warning: 299 - "<text>"` header (as admission webhooks and deprecations add them).
    pub fn warn(&self, method: &str, path_prefix: &str, text: &str) {
        self.shared.warns.lock().expect("warns lock").push((
            method.to_string(),
            path_prefix.to_string(),
            text.to_string(),
        ));
    }

    /// Watches from any resourceVersion up to now answer 410 Expired.
    pub fn expire_history(&self) {
        self.shared.with(State::expire_history);
    }

    /// Ends every open watch stream (clients see a clean end of stream).
    pub fn close_watches(&self) {
        self.shared.with(State::close_watches);
    }

    pub fn add_namespace(&self, name: &str) {
        self.shared.with(|s| s.add_namespace(name));
    }
}

fn describe(s: &State) -> String {
    let pods: Vec<String> = s
        .pods
        .values()
        .map(|p| {
            format!(
                "{}/{} {}{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or(""),
                phase(p),
                if p.metadata.deletion_timestamp.is_some() { " Terminating" } else { "" }
            )
        })
        .collect();
    let rcs: Vec<String> = s
        .rcs
        .values()
        .map(|r| {
            format!(
                "{} spec={:?} status={:?}",
                r.metadata.name.as_deref().unwrap_or(""),
                r.spec.as_ref().and_then(|s| s.replicas),
                r.status.as_ref().map(|s| s.replicas)
            )
        })
        .collect();
    format!("rv {}; pods: [{}]; rcs: [{}]", s.rv(), pods.join(", "), rcs.join(", "))
}

/// The controllers' thread: a pass after every change (and every 100 ms for timed work).
fn reconcile_loop(shared: Arc<Shared>) {
    let mut memory = kubelet::Memory::default();
    while !shared.stop.load(Ordering::SeqCst) {
        let supervised: HashMap<String, bool> = shared
            .procs
            .lock()
            .expect("procs lock")
            .iter()
            .map(|(uid, p)| (uid.clone(), p.stopping))
            .collect();
        let images = shared.images.lock().expect("images lock").clone();
        let unpullable = shared.unpullable.lock().expect("unpullable lock").clone();
        let ctx = kubelet::Ctx {
            mode: shared.kubelet,
            confirm_delay: shared.confirm_delay,
            images: &images,
            unpullable: &unpullable,
            supervised: &supervised,
        };
        let (actions, seen) = shared.with(|s| {
            s.prune_watches();
            controller::reconcile_rcs(s);
            controller::collect_garbage(s);
            let actions = kubelet::reconcile(s, &ctx, &mut memory);
            (actions, s.rv())
        });
        for action in actions {
            run_action(&shared, action);
        }
        let s = shared.lock();
        if s.rv() == seen && !shared.stop.load(Ordering::SeqCst) {
            drop(
                shared
                    .changed
                    .wait_timeout(s, Duration::from_millis(100))
                    .unwrap_or_else(|p| p.into_inner()),
            );
        }
    }
}

fn run_action(shared: &Arc<Shared>, action: kubelet::Action) {
    let mut procs = shared.procs.lock().expect("procs lock");
    match action {
        kubelet::Action::Start(key, uid) => {
            if procs.contains_key(&uid) || shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let (s, u) = (shared.clone(), uid.clone());
            let thread = std::thread::Builder::new()
                .name(format!("fake-kubelet-{}", key.1))
                .spawn(move || process::supervise(s, key, u, rx))
                .ok();
            procs.insert(uid, Proc { ctl: tx, stopping: false, thread });
        }
        kubelet::Action::Stop(uid, grace) => {
            if let Some(p) = procs.get_mut(&uid).filter(|p| !p.stopping) {
                p.stopping = true;
                let _ = p.ctl.send(process::Ctl::Stop(grace));
            }
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        if let Some(t) = self.reconciler.take() {
            let _ = t.join();
        }
        // Kill every process at once (no grace) and wait for each supervisor to reap its own.
        let procs: Vec<Proc> =
            self.shared.procs.lock().expect("procs lock").drain().map(|(_, p)| p).collect();
        for p in &procs {
            let _ = p.ctl.send(process::Ctl::Stop(0));
        }
        for mut p in procs {
            if let Some(t) = p.thread.take() {
                let _ = t.join();
            }
        }
    }
}
