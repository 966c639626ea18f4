//! Process mode of the fake kubelet (docs/fake-kubernetes.md §15): one supervisor thread per pod
//! runs each container as a local process with a kubelet-like environment, feeds its output to the
//! log buffers, restarts it with back-off, and on deletion sends SIGTERM, waits the grace period,
//! sends SIGKILL and confirms the delete. Every process started here is killed and waited for.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::Shared;
use super::kubelet::{
    HOST_IP, NODE, conditions, confirm_delete, container_status, release_process_ip,
};
use super::status::now_time;
use super::store::Key;

pub enum Ctl {
    /// The pod is being deleted: SIGTERM, wait up to this many seconds, SIGKILL.
    Stop(i64),
}

const TICK: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

struct Run {
    container: Container,
    child: Option<Child>,
    started: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    restarts: i32,
    last: Option<ContainerStateTerminated>,
    restart_at: Option<Instant>,
    backoff: Duration,
    ready: bool,
    /// Set when the container must not (re)start: config error or restart policy.
    stuck: Option<(String, String)>,
    done: bool,
}

/// The supervisor of one pod; returns when the pod is deleted or the fake shuts down.
pub fn supervise(shared: Arc<Shared>, key: Key, uid: String, ctl: Receiver<Ctl>) {
    let (ns, name) = key.clone();
    let Some(pod) = shared.with(|s| s.pod(&ns, &name).cloned()) else {
        finish(&shared, &key, &uid);
        return;
    };
    let workdir = tempfile::Builder::new().prefix(&format!("fake-pod-{name}-")).tempdir().ok();
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
    let mut runs: Vec<Run> = spec
        .containers
        .iter()
        .map(|c| Run {
            container: c.clone(),
            child: None,
            started: None,
            restarts: 0,
            last: None,
            restart_at: Some(Instant::now()),
            backoff: Duration::from_secs(1),
            ready: false,
            stuck: None,
            done: false,
        })
        .collect();
    let grace = loop {
        let mut changed = false;
        for run in runs.iter_mut().filter(|r| !r.done && r.stuck.is_none()) {
            if run.child.is_none() && run.restart_at.is_some_and(|t| Instant::now() >= t) {
                run.restart_at = None;
                changed = true;
                if run.last.is_some() {
                    run.restarts += 1;
                }
                match spawn(
                    &shared,
                    &pod,
                    &run.container,
                    workdir.as_ref().map(|d| d.path().into()),
                ) {
                    Ok(child) => {
                        run.child = Some(child);
                        run.started = Some(now_time());
                        run.ready = probe_port(&run.container).is_none();
                    }
                    Err(why) => run.stuck = Some(why),
                }
            }
            if let Some(child) = run.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                changed = true;
                run.child = None;
                run.ready = false;
                let code = exit.code().unwrap_or(
                    128 + std::os::unix::process::ExitStatusExt::signal(&exit).unwrap_or(0),
                );
                run.last = Some(terminated(&pod, &run.container, code, run.started.clone()));
                shared.with(|s| {
                    if let Some(buf) =
                        s.logs.get_mut(&(ns.clone(), name.clone(), run.container.name.clone()))
                    {
                        buf.close();
                    }
                });
                let again = policy == "Always" || (policy == "OnFailure" && code != 0);
                if again {
                    run.restart_at = Some(Instant::now() + run.backoff);
                    run.backoff = (run.backoff * 2).min(MAX_BACKOFF);
                } else {
                    run.done = true;
                }
            }
            if run.child.is_some() && !run.ready {
                let ip = pod_ip(&shared, &key);
                if let (Some(port), Some(ip)) = (probe_port(&run.container), ip) {
                    let addr = SocketAddr::new(ip.parse().expect("127.0.0.N"), port);
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                        run.ready = true;
                        changed = true;
                    }
                }
            }
        }
        if changed {
            write_status(&shared, &key, &uid, &runs);
        }
        match ctl.recv_timeout(TICK) {
            Ok(Ctl::Stop(grace)) => break grace,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break 0,
        }
    };
    terminate(&mut runs, grace);
    drop(workdir);
    finish(&shared, &key, &uid);
}

/// After the processes are gone: confirm the delete and release the address.
fn finish(shared: &Shared, key: &Key, uid: &str) {
    shared.with(|s| {
        confirm_delete(s, &key.0, &key.1, uid);
        s.ip_held.remove(uid);
        release_process_ip(s, uid);
    });
    shared.procs.lock().expect("procs lock").remove(uid);
    shared.changed.notify_all();
}

/// SIGTERM to every process group, up to `grace` seconds, then SIGKILL; waits for every exit.
fn terminate(runs: &mut [Run], grace: i64) {
    let children: Vec<&mut Child> = runs.iter_mut().filter_map(|r| r.child.as_mut()).collect();
    for c in &children {
        let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64);
    let mut left: Vec<&mut Child> = children;
    while !left.is_empty() && Instant::now() < deadline {
        left.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in left.iter_mut() {
        let _ = killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
        let _ = c.wait();
    }
}

fn probe_port(c: &Container) -> Option<u16> {
    let probe = c.readiness_probe.as_ref()?;
    let port =
        probe.tcp_socket.as_ref().map(|t| &t.port).or(probe.http_get.as_ref().map(|h| &h.port))?;
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

fn pod_ip(shared: &Shared, key: &Key) -> Option<String> {
    shared.with(|s| s.pod(&key.0, &key.1).and_then(|p| p.status.as_ref()?.pod_ip.clone()))
}

fn terminated(
    pod: &Pod,
    c: &Container,
    code: i32,
    started: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: code,
        reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
        started_at: started,
        finished_at: Some(now_time()),
        container_id: Some(format!(
            "fake://{}/{}",
            pod.metadata.uid.as_deref().unwrap_or(""),
            c.name
        )),
        ..Default::default()
    }
}

fn write_status(shared: &Shared, key: &Key, uid: &str, runs: &[Run]) {
    shared.with(|s| {
        let Some(pod) = s.pod(&key.0, &key.1).cloned() else {
            return;
        };
        if pod.metadata.uid.as_deref() != Some(uid) {
            return;
        }
        let statuses: Vec<ContainerStatus> = runs
            .iter()
            .map(|r| {
                let waiting = |reason: &str, message: Option<String>| ContainerState {
                    waiting: Some(ContainerStateWaiting { reason: Some(reason.into()), message }),
                    ..Default::default()
                };
                let state = if r.child.is_some() {
                    ContainerState {
                        running: Some(ContainerStateRunning { started_at: r.started.clone() }),
                        ..Default::default()
                    }
                } else if let Some((reason, message)) = &r.stuck {
                    waiting(reason, Some(message.clone()))
                } else if r.done {
                    ContainerState { terminated: r.last.clone(), ..Default::default() }
                } else {
                    waiting("CrashLoopBackOff", None)
                };
                ContainerStatus {
                    ready: r.ready,
                    started: Some(r.child.is_some()),
                    restart_count: r.restarts,
                    state: Some(state),
                    last_state: r
                        .last
                        .clone()
                        .filter(|_| !r.done)
                        .map(|t| ContainerState { terminated: Some(t), ..Default::default() }),
                    ..container_status(
                        &pod,
                        &r.container.name,
                        r.container.image.as_deref().unwrap_or(""),
                    )
                }
            })
            .collect();
        let ever = runs.iter().any(|r| r.started.is_some());
        let phase = if runs.iter().all(|r| r.done) {
            let ok = runs.iter().all(|r| r.last.as_ref().is_some_and(|t| t.exit_code == 0));
            if ok { "Succeeded" } else { "Failed" }
        } else if ever {
            "Running"
        } else {
            "Pending"
        };
        let ready = runs.iter().all(|r| r.ready);
        s.modify::<Pod>(&key.0, &key.1, |p| {
            let st = p.status.get_or_insert_with(Default::default);
            st.phase = Some(phase.into());
            st.conditions = Some(conditions(ready));
            st.container_statuses = Some(statuses);
        });
    });
}

/// Starts one container: argv, a kubelet-like environment, own process group, output piped
/// into the log buffer. Err is a (waiting reason, message) pair for the container status.
fn spawn(
    shared: &Arc<Shared>,
    pod: &Pod,
    c: &Container,
    workdir: Option<PathBuf>,
) -> Result<Child, (String, String)> {
    let key = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    // Resolve against the stored pod: the address was written after `pod` was read.
    let current = shared.with(|s| s.pod(&key.0, &key.1).cloned()).unwrap_or_else(|| pod.clone());
    let image = c.image.clone().unwrap_or_default();
    let exe = shared.images.lock().expect("images lock").get(&image).cloned().ok_or_else(|| {
        ("ErrImagePull".to_string(), format!("image {image:?} is not registered"))
    })?;
    let env = environment(shared, &current, c)?;
    let expand = |s: &String| expand_vars(s, &env);
    let command: Vec<String> = c.command.iter().flatten().map(expand).collect();
    let args: Vec<String> = c.args.iter().flatten().map(expand).collect();
    let (program, rest) = match command.split_first() {
        Some((p, rest)) => {
            let mapped = shared.commands.lock().expect("commands lock").get(p).cloned();
            let program = mapped.unwrap_or_else(|| PathBuf::from(p));
            (program, rest.iter().chain(args.iter()).cloned().collect::<Vec<_>>())
        }
        None => (exe, args),
    };
    let mut cmd = Command::new(&program);
    cmd.args(&rest)
        .env_clear()
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = workdir {
        cmd.current_dir(dir);
    }
    // SAFETY: the closure only calls sigprocmask, which is async-signal-safe; it undoes a
    // blocked mask inherited from a test or the example (which blocks SIGINT/SIGTERM).
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        ("RunContainerError".to_string(), format!("exec {}: {e}", program.display()))
    })?;
    let log_key = (key.0.clone(), key.1.clone(), c.name.clone());
    if let Some(out) = child.stdout.take() {
        pump(shared.clone(), log_key.clone(), out);
    }
    if let Some(err) = child.stderr.take() {
        pump(shared.clone(), log_key, err);
    }
    Ok(child)
}

/// Copies a pipe into the container's log buffer, line by line, stamped on arrival.
fn pump(shared: Arc<Shared>, key: (String, String, String), pipe: impl Read + Send + 'static) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.by_ref().take(64 * 1024).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line =
                        String::from_utf8_lossy(&buf).trim_end_matches(['\n', '\r']).to_string();
                    shared.with(|s| {
                        s.logs.entry(key.clone()).or_default().push(Timestamp::now(), line)
                    });
                    shared.changed.notify_all();
                }
            }
        }
    });
}

/// The container environment as a kubelet builds it (docs/fake-kubernetes.md §15).
fn environment(
    shared: &Shared,
    pod: &Pod,
    c: &Container,
) -> Result<BTreeMap<String, String>, (String, String)> {
    let mut env = BTreeMap::new();
    if let Ok(path) = std::env::var("PATH") {
        env.insert("PATH".to_string(), path);
    }
    env.insert("HOSTNAME".into(), pod.metadata.name.clone().unwrap_or_default());
    env.insert("KUBERNETES_SERVICE_HOST".into(), HOST_IP.into());
    env.insert("KUBERNETES_SERVICE_PORT".into(), shared.port.to_string());
    env.insert("KUBECONFIG".into(), shared.kubeconfig.to_string_lossy().into_owned());
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (_, Some(from)) => match &from.field_ref {
                Some(f) => field_value(pod, &f.field_path),
                None => {
                    return Err((
                        "CreateContainerConfigError".into(),
                        format!("env {}: only fieldRef is supported by the fake kubelet", e.name),
                    ));
                }
            },
            (Some(v), None) => expand_vars(v, &env),
            (None, None) => String::new(),
        };
        env.insert(e.name.clone(), value);
    }
    Ok(env)
}

fn field_value(pod: &Pod, path: &str) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let m = &pod.metadata;
    let keyed = |prefix: &str, map: &Option<BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|k| k.strip_suffix("']"))
            .and_then(|k| map.as_ref()?.get(k).cloned())
            .unwrap_or_default()
    };
    match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_else(|| NODE.into()),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.podIP" => status.pod_ip.unwrap_or_default(),
        "status.podIPs" => {
            status.pod_ips.iter().flatten().map(|i| i.ip.clone()).collect::<Vec<_>>().join(",")
        }
        "status.hostIP" => status.host_ip.unwrap_or_default(),
        "status.hostIPs" => {
            status.host_ips.iter().flatten().map(|i| i.ip.clone()).collect::<Vec<_>>().join(",")
        }
        p if p.starts_with("metadata.labels['") => keyed("metadata.labels['", &m.labels),
        p if p.starts_with("metadata.annotations['") => {
            keyed("metadata.annotations['", &m.annotations)
        }
        _ => String::new(),
    }
}

/// Kubernetes `$(VAR)` expansion against the variables defined so far; `$$` escapes.
fn expand_vars(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(end) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&tail[..end + 3]),
            }
            rest = &tail[end + 3..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}
