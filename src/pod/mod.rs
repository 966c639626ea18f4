//! `ocho pod [options] -- CMD [ARGS…]`: the Ochopod agent, wire-compatible with Python Ochopod
//! pods (docs/protocol.md). PID 1 (or subreaper) of the workload container. Threads:
//! the main thread blocks signals, reaps every child ([`reaper`]) and handles SIGTERM; the
//! lifecycle actor ([`lifecycle`]) owns the workload; the control port ([`server`], rouille)
//! queues verbs to it; the coordinator ([`coordinator`], one ZooKeeper session at a time, through
//! the blocking facade `src/zk/member.rs`) registers the pod, elects a leader and configures the
//! cluster ([`leader`]).

mod coordinator;
mod hooks;
mod identity;
mod leader;
mod lifecycle;
mod log;
mod md5;
mod reaper;
mod server;
mod template;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::ochopod::{INFO_KEYS, paths, process, state};
use crate::supervise::signals;
use crate::zk::member::Flag;

/// run CMD as an Ochopod pod: register in ZooKeeper, serve the control port, elect a leader
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "pod",
    example = "{command_name} --zk 127.0.0.1:2181 --cluster web -- python3 -m http.server 8000\n    run a web server as a pod of cluster default.web, registered in ZooKeeper",
    example = "{command_name} --cluster web --probe ./health.sh -- ./server\n    as leader, run ./health.sh every minute: its first line is the status\n    that `ocho ls` shows",
    example = "{command_name} --cluster web --tool shell=/bin/sh -- ./server\n    let `ocho exec web shell …` run /bin/sh on this pod"
)]
pub struct Args {
    /// zookeeper hosts, host[:port],… (env ochopod_zk)
    #[argh(option)]
    pub zk: Option<String>,
    /// cluster name (env ochopod_cluster; default the task name)
    #[argh(option)]
    pub cluster: Option<String>,
    /// namespace (env ochopod_namespace; default "default")
    #[argh(option)]
    pub namespace: Option<String>,
    /// application (workload) name (env ochopod_application)
    #[argh(option)]
    pub application: Option<String>,
    /// control port shared by every pod of the cluster (env ochopod_port; default 8080)
    #[argh(option)]
    pub port: Option<String>,
    /// address the control port listens on (env OCHO_BIND; default 0.0.0.0)
    #[argh(option)]
    pub bind: Option<String>,
    /// address other pods reach this pod at (env POD_IP; default the first non-loopback address)
    #[argh(option)]
    pub ip: Option<String>,
    /// container ports to register, comma-separated PORT or PORT:MAPPED (env ochopod_ports);
    /// the control port is always added
    #[argh(option)]
    pub ports: Option<String>,
    /// pod name (env POD_NAME, else HOSTNAME)
    #[argh(option)]
    pub task: Option<String>,
    /// node name (env NODE_NAME)
    #[argh(option)]
    pub node: Option<String>,
    /// debug flag registered ("true" or "false") for the tools (env ochopod_debug; default true)
    #[argh(option)]
    pub debug: Option<String>,
    /// with "false" the workload stays stopped after its first configuration until an explicit
    /// on (env ochopod_start; default true)
    #[argh(option)]
    pub start: Option<String>,
    /// seconds between SIGTERM and SIGKILL when stopping the workload (default 20)
    #[argh(option, default = "20.0")]
    pub grace: f64,
    /// timeout in seconds the leader puts in its control requests (default 60)
    #[argh(option, default = "60")]
    pub timeout: u64,
    /// seconds the leader waits after a change before configuring (default 0)
    #[argh(option, default = "0.0")]
    pub damper: f64,
    /// leader: send control requests one pod at a time
    #[argh(switch)]
    pub sequential: bool,
    /// leader: send off to every pod before on
    #[argh(switch)]
    pub full_shutdown: bool,
    /// leader: seconds between --probe runs (default 60)
    #[argh(option, default = "60.0")]
    pub probe_every: f64,
    /// another cluster this one depends on: name, /namespace.name or a wildcard (repeatable;
    /// env ochopod_depends_on, comma separated, as `deploy` writes it)
    #[argh(option)]
    pub depends_on: Vec<String>,
    /// restart the workload on every configuration, not only when dependencies change
    #[argh(switch)]
    pub strict: bool,
    /// seconds between --sanity runs (default 60)
    #[argh(option, default = "60.0")]
    pub check_every: f64,
    /// consecutive failed sanity checks before the workload is stopped (default 1)
    #[argh(option, default = "1")]
    pub checks: u32,
    /// render a template before each start, given as SRC:DEST (repeatable; language in
    /// README)
    #[argh(option)]
    pub template: Vec<String>,
    /// hook: gets the cluster JSON, prints KEY=VALUE overrides; non-zero refuses (406)
    #[argh(option)]
    pub configure: Option<String>,
    /// hook: gets the cluster JSON at check; non-zero refuses (406)
    #[argh(option)]
    pub can_configure: Option<String>,
    /// hook (leader): gets the cluster JSON, its first output line becomes the status
    #[argh(option)]
    pub probe: Option<String>,
    /// hook: sanity check of the workload (env OCHO_PID), prints metrics JSON; non-zero fails
    #[argh(option)]
    pub sanity: Option<String>,
    /// hook: answers /control/signal, gets the payload, prints the reply JSON
    #[argh(option)]
    pub signal: Option<String>,
    /// hook: gets the cluster JSON at ok (after a configuration succeeded on every pod);
    /// non-zero answers 500
    #[argh(option)]
    pub configured: Option<String>,
    /// never SIGKILL the workload when stopping it: after --grace it is left running and
    /// forgotten (Ochopod's soft)
    #[argh(switch)]
    pub soft: bool,
    /// copy the workload's stdout and stderr, line by line, into the pod's log (/log and the
    /// agent's stderr; Ochopod's pipe_subprocess)
    #[argh(switch)]
    pub pipe_subprocess: bool,
    /// a tool POST /exec may run, as TAG=PROG (repeatable; Ochopod 1.0.7's tools): the header
    /// `X-Shell: TAG ARGS…` runs PROG ARGS… in a directory holding the uploaded files
    #[argh(option)]
    pub tool: Vec<String>,
    /// seconds a hook may run before it is killed (default 60)
    #[argh(option, default = "60.0")]
    pub hook_timeout: f64,
    /// the workload and its arguments (after --)
    #[argh(positional, greedy)]
    pub cmd: Vec<String>,
}

/// What every thread of the agent shares: the log, the published state (`/info`) and the
/// requests between threads.
pub struct Shared {
    pub log: log::Log,
    record: Map<String, Value>,
    depends_on: Vec<String>,
    status: Mutex<Status>,
    dead: AtomicBool,
    /// Set once a leader's `on` with a payload configured this pod (`/info` `configured`).
    configured: AtomicBool,
    workload: AtomicI32,
    shutting_down: AtomicBool,
    /// Raised by `/reset` and by the main thread at shutdown; they cut the coordinator's
    /// ZooKeeper calls short (`src/zk/member.rs`).
    pub reset: Flag,
    pub shutdown: Flag,
    coordinator_done: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

struct Status {
    process: &'static str,
    state: &'static str,
    /// Absent until the pod leads once (docs/protocol.md §3.3).
    status: Option<String>,
    metrics: Value,
}

impl Shared {
    /// Fresh state: `stopped`, `follower`, no `status`. `done` hears when the coordinator ended.
    fn new(
        record: Map<String, Value>,
        depends_on: Vec<String>,
        done: std::sync::mpsc::Sender<()>,
    ) -> Self {
        Shared {
            log: log::Log::default(),
            record,
            depends_on,
            status: Mutex::new(Status {
                process: process::STOPPED,
                state: state::FOLLOWER,
                status: None,
                metrics: json!({}),
            }),
            dead: AtomicBool::new(false),
            configured: AtomicBool::new(false),
            workload: AtomicI32::new(0),
            shutting_down: AtomicBool::new(false),
            reset: Flag::new(),
            shutdown: Flag::new(),
            coordinator_done: Mutex::new(Some(done)),
        }
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
    fn set_configured(&self) {
        self.configured.store(true, Ordering::SeqCst);
    }
    fn set_dead(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }
    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
    fn set_workload(&self, pid: Option<i32>) {
        self.workload.store(pid.unwrap_or(0), Ordering::SeqCst);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn set_process(&self, p: &'static str) {
        let mut s = self.lock();
        s.process = p;
        if p != process::RUNNING && p != process::DEAD {
            s.metrics = json!({});
        }
    }
    fn set_metrics(&self, m: Value) {
        self.lock().metrics = m;
    }
    /// Publishes the leader's `state`, and `status` when given.
    fn set_leader(&self, st: &'static str, status: Option<String>) {
        let mut s = self.lock();
        s.state = st;
        if let Some(status) = status {
            s.status = Some(status);
        }
    }
    /// Back to follower; `status` becomes `""` if the pod led. Returns whether it led.
    fn stop_leading(&self) -> bool {
        let mut s = self.lock();
        let led = s.state != state::FOLLOWER;
        s.state = state::FOLLOWER;
        if s.status.is_some() {
            s.status = Some(String::new());
        }
        led
    }
    fn request_reset(&self) {
        self.reset.raise();
    }
    fn coordinator_done(&self) {
        if let Some(tx) = self.coordinator_done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }

    /// The pod's own `ip` as registered (`--ip`, `POD_IP`, or the first non-loopback IPv4).
    fn own_ip(&self) -> String {
        self.record.get("ip").and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// The `/info` object: whitelisted registration keys plus the live state.
    fn info(&self) -> Value {
        let mut info = Map::new();
        for key in INFO_KEYS {
            if let Some(v) = self.record.get(*key) {
                info.insert(key.to_string(), v.clone());
            }
        }
        let s = self.lock();
        info.insert("process".into(), json!(s.process));
        info.insert("state".into(), json!(s.state));
        if let Some(status) = &s.status {
            info.insert("status".into(), json!(status));
        }
        info.insert("metrics".into(), s.metrics.clone());
        info.insert("configured".into(), json!(self.configured.load(Ordering::SeqCst)));
        info.insert("dependencies".into(), json!(self.depends_on));
        Value::Object(info)
    }
}

fn seconds(what: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(Error::Usage(format!("invalid --{what} '{v}': expected seconds >= 0")))
    }
}

/// `--tool TAG=PROG` flags as `(tag, program)`; a tag is one word (the first of `X-Shell`).
fn tools(flags: &[String]) -> Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((tag, prog)) if !tag.is_empty() && !tag.contains(' ') && !prog.is_empty() => {
                Ok((tag.to_string(), prog.to_string()))
            }
            _ => Err(Error::Usage(format!("invalid --tool {f:?}: expected TAG=PROG"))),
        })
        .collect()
}

/// Runs the agent until SIGTERM/SIGINT/SIGQUIT; exits with the workload's status.
/// Dependencies from the flags, else from `ochopod_depends_on` (comma separated): flags win, so a
/// command line can override what the definition deployed.
fn dependencies(flags: &[String], env: Option<String>) -> Vec<String> {
    if !flags.is_empty() {
        return flags.to_vec();
    }
    env.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect()
}

pub fn run(mut args: Args) -> Result<ExitCode> {
    // Before any thread (the ZooKeeper client's runtime and reactor, rouille's): threads
    // inherit the mask (docs/platform.md §4.1).
    signals::block_all()?;
    let mut sigs = signals::Signals::open()?;
    if nix::unistd::getpid().as_raw() != 1 {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|source| Error::Sys { what: "become child subreaper", source })?;
        // Still single-threaded: the guardian is forked before any thread exists. It kills
        // every process group of the workload's tree if the agent dies, SIGKILL included.
        crate::supervise::guard::start("pod")?;
    }
    if args.cmd.is_empty() {
        return Err(Error::Usage("no workload: ocho pod [options] -- CMD [ARGS…]".into()));
    }
    let vars: Vec<(String, String)> = std::env::vars().collect();
    args.depends_on = dependencies(&args.depends_on, std::env::var("ochopod_depends_on").ok());
    let (record, port) = identity::hints(&args, &vars)?;
    let templates =
        args.template.iter().map(|t| template::parse_flag(t)).collect::<Result<Vec<_>>>()?;
    let grace = seconds("grace", args.grace)?;
    let damper = seconds("damper", args.damper)?;
    let probe_every = seconds("probe-every", args.probe_every)?;
    let check_every = seconds("check-every", args.check_every)?;
    let hook_timeout = seconds("hook-timeout", args.hook_timeout)?;
    let bind = args
        .bind
        .clone()
        .or_else(|| identity::env("OCHO_BIND"))
        .unwrap_or_else(|| "0.0.0.0".into());
    let settings: Value =
        identity::env("pod").and_then(|p| serde_json::from_str(&p).ok()).unwrap_or(json!({}));
    let get = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (namespace, cluster) = (get("namespace"), get("cluster"));
    let name = paths::cluster_name(&namespace, &cluster);
    let workload_env = vec![("ochopod".to_string(), Value::Object(record.clone()).to_string())];

    let (done_tx, done_rx) = channel();
    let shared = Arc::new(Shared::new(record.clone(), args.depends_on.clone(), done_tx));
    let reaper = reaper::Reaper::default();
    let uuid = identity::random_uuid();
    shared.log.info(format!("pod {uuid} of {name}, workload: {}", args.cmd.join(" ")));

    let addr =
        if bind.contains(':') { format!("[{bind}]:{port}") } else { format!("{bind}:{port}") };
    let (tx, rx) = channel();
    let exec = server::Exec {
        tools: tools(&args.tool)?,
        reaper: reaper.clone(),
        env: workload_env.clone(),
        timeout: hook_timeout,
    };
    let (terminate_tx, terminate_rx) = channel();
    let ctx = server::Ctx {
        shared: Arc::clone(&shared),
        lifecycle: Mutex::new(tx.clone()),
        exec,
        terminate: Mutex::new(Some(terminate_tx)),
    };
    let http = crate::serve::Server::bind(&addr, server::LIMITS)
        .map_err(|e| Error::Failed(format!("cannot listen on {addr}: {e}")))?;
    shared.log.info(format!("listening on {}", http.local_addr()));
    // Serves for the life of the agent, unless the pod itself POSTs /terminate: then this
    // thread stops it (the reply to /terminate is written first: a request being handled
    // finishes) and the port is closed; the agent and its workload go on.
    let running = http.start("pod", Arc::new(move |req| server::routes(req, &ctx)));
    let log_shared = Arc::clone(&shared);
    std::thread::spawn(move || {
        if terminate_rx.recv().is_ok() {
            running.stop_and_join();
            log_shared.log.info("control port closed (terminate)");
        } else {
            std::mem::forget(running);
        }
    });

    let life_cfg = lifecycle::Config {
        cmd: args.cmd.clone(),
        grace,
        strict: args.strict,
        start: get("start") == "true",
        check_every,
        checks: args.checks.max(1),
        templates,
        configure: args.configure.clone(),
        can_configure: args.can_configure.clone(),
        configured: args.configured.clone(),
        soft: args.soft,
        pipe: args.pipe_subprocess,
        sanity: args.sanity.clone(),
        signal: args.signal.clone(),
        hook_timeout,
        env: workload_env.clone(),
        settings,
    };
    let life =
        lifecycle::Lifecycle::new(life_cfg, Arc::clone(&shared), reaper.clone(), tx.clone(), rx);
    std::thread::spawn(move || life.run());

    let coord = coordinator::Coordinator {
        hosts: get("zk"),
        namespace,
        name,
        uuid,
        record,
        seq: None,
        leader: coordinator::LeaderConfig {
            round: leader::Round {
                port: port.to_string(),
                timeout: args.timeout,
                sequential: args.sequential,
                full_shutdown: args.full_shutdown,
            },
            damper,
            probe_every,
            depends_on: args.depends_on.clone(),
            probe: args.probe.clone(),
            hook_timeout,
            env: workload_env,
        },
        shared: Arc::clone(&shared),
        reaper: reaper.clone(),
    };
    std::thread::spawn(move || coord.run());

    supervise(&mut sigs, &shared, &reaper, &tx, &done_rx)
}

/// The main thread: reap, forward signals, and stop in order on TERM/INT/QUIT (workload first,
/// then the ZooKeeper session so our nodes vanish at once).
fn supervise(
    sigs: &mut signals::Signals,
    shared: &Shared,
    reaper: &reaper::Reaper,
    lifecycle: &std::sync::mpsc::Sender<lifecycle::Msg>,
    coordinator_done: &Receiver<()>,
) -> Result<ExitCode> {
    let mut stopping: Option<Receiver<u8>> = None;
    loop {
        for signal in sigs.wait(Duration::from_millis(500))? {
            match signal {
                Signal::SIGCHLD => {}
                Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT if stopping.is_none() => {
                    shared.log.info(format!("{} received: stopping", signal.as_str()));
                    shared.shutting_down.store(true, Ordering::SeqCst);
                    let (tx, rx) = channel();
                    let forwarded =
                        if signal == Signal::SIGQUIT { Signal::SIGTERM } else { signal };
                    if lifecycle
                        .send(lifecycle::Msg::Shutdown { signal: forwarded, done: tx })
                        .is_err()
                    {
                        return Ok(ExitCode::from(1));
                    }
                    stopping = Some(rx);
                }
                Signal::SIGHUP | Signal::SIGUSR1 | Signal::SIGUSR2 | Signal::SIGWINCH => {
                    let pid = shared.workload.load(Ordering::SeqCst);
                    if pid > 0 {
                        let _ = kill(Pid::from_raw(pid), signal);
                    }
                }
                _ => {}
            }
        }
        reaper.reap();
        for (group, pid) in crate::supervise::guard::scan() {
            shared.log.info(format!(
                "tracking process group {group} (pid {pid}): killed if the agent dies"
            ));
        }
        if let Some(Ok(code)) = stopping.as_ref().map(Receiver::try_recv) {
            shared.shutdown.raise();
            // The coordinator closes its session; don't wait on a ZooKeeper that is gone.
            let _ = coordinator_done.recv_timeout(Duration::from_secs(3));
            shared.log.info(format!("exiting with {code}"));
            crate::supervise::guard::finish();
            return Ok(ExitCode::from(code));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dependencies;

    #[test]
    fn dependencies_come_from_flags_else_from_the_environment() {
        let env = Some(" zookeeper, /infra.kafka* ,,".to_string());
        assert_eq!(dependencies(&[], env.clone()), ["zookeeper", "/infra.kafka*"]);
        assert_eq!(dependencies(&["etcd".into()], env), ["etcd"]);
        assert!(dependencies(&[], None).is_empty());
        assert!(dependencies(&[], Some(String::new())).is_empty());
    }
}
