//! The lifecycle actor (Ochopod's `Piped` model, docs/protocol.md §4.2): one thread that owns the
//! workload and runs control verbs one at a time in arrival order. It configures (templates,
//! `--configure` hook), starts, restarts with backoff, sanity-checks and tears down the workload,
//! and turns the pod `dead` after `kill` or a workload exiting 0. Exit statuses arrive as messages
//! from the agent's reaper, so this thread never calls `wait`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::reaper::Reaper;
use super::{Shared, hooks, template};
use crate::ochopod::{Cluster, Payload, process};
use crate::supervise::reap;

/// A message to the actor.
pub enum Msg {
    /// A `/control/<verb>` request; the reply is `(status code, JSON body)`.
    Control { verb: String, body: Vec<u8>, reply: Option<SyncSender<(u16, Value)>> },
    /// The reaper collected a child of ours.
    Exited { pid: i32, status: WaitStatus },
    /// The pod is stopping: tear the workload down with `signal`, answer the exit code the pod
    /// should end with (the workload's, when one ran), then end.
    Shutdown { signal: Signal, done: Sender<u8> },
}

/// The lifecycle's settings.
pub struct Config {
    pub cmd: Vec<String>,
    pub grace: Duration,
    pub strict: bool,
    /// `start == "true"`: spawn on the first configuration (else stay configured but stopped).
    pub start: bool,
    pub check_every: Duration,
    pub checks: u32,
    pub templates: Vec<(PathBuf, PathBuf)>,
    pub configure: Option<String>,
    pub can_configure: Option<String>,
    /// Hook run at `ok` with the cluster view (Ochopod's `configured(cluster)`).
    pub configured: Option<String>,
    /// Never SIGKILL at the end of the grace (Ochopod's `soft`).
    pub soft: bool,
    /// Copy the workload's output into the pod's log (Ochopod's `pipe_subprocess`).
    pub pipe: bool,
    pub sanity: Option<String>,
    pub signal: Option<String>,
    pub hook_timeout: Duration,
    /// Extra environment of the workload and hooks: `ochopod` (the hints JSON).
    pub env: Vec<(String, String)>,
    /// The deployment's settings (env `pod`), for templates.
    pub settings: Value,
}

struct Workload {
    pid: i32,
    started: Instant,
}

/// Copies each line of a workload's output into the pod's log (`--pipe-subprocess`) until the
/// last holder of the pipe closes it; a thread per stream, as the pipe may outlive the workload
/// (its children keep it open).
fn pipe_lines(shared: &Arc<Shared>, pid: i32, stream: impl std::io::Read + Send + 'static) {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            shared.log.info(format!("workload (pid {pid}): {}", line.trim_end_matches('\r')));
        }
    });
}

/// A workload that ran this long before failing starts its backoff from 1 s again.
const STABLE: Duration = Duration::from_secs(60);

/// The actor's state.
pub struct Lifecycle {
    cfg: Config,
    shared: Arc<Shared>,
    reaper: Reaper,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    backlog: VecDeque<Msg>,
    workload: Option<Workload>,
    spawned_before: bool,
    last: Option<Payload>,
    overrides: Vec<(String, String)>,
    configured: bool,
    failures: u32,
    restart_at: Option<Instant>,
    next_check: Option<Instant>,
    check_failures: u32,
    last_exit: Option<u8>,
}

impl Lifecycle {
    pub fn new(
        cfg: Config,
        shared: Arc<Shared>,
        reaper: Reaper,
        tx: Sender<Msg>,
        rx: Receiver<Msg>,
    ) -> Self {
        Lifecycle {
            cfg,
            shared,
            reaper,
            tx,
            rx,
            backlog: VecDeque::new(),
            workload: None,
            spawned_before: false,
            last: None,
            overrides: Vec::new(),
            configured: false,
            failures: 0,
            restart_at: None,
            next_check: None,
            check_failures: 0,
            last_exit: None,
        }
    }

    /// Runs until a shutdown; after `kill` it keeps answering 410.
    pub fn run(mut self) {
        loop {
            let now = Instant::now();
            let mut wake = now + Duration::from_secs(1);
            for t in [self.restart_at, self.next_check].into_iter().flatten() {
                wake = wake.min(t);
            }
            let msg = match self.backlog.pop_front() {
                Some(m) => Some(m),
                None => match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            match msg {
                Some(Msg::Control { verb, body, reply }) => {
                    let answer = if self.shared.is_dead() {
                        (410, json!({}))
                    } else {
                        self.control(&verb, &body)
                    };
                    if let Some(reply) = reply {
                        let _ = reply.try_send(answer);
                    }
                }
                Some(Msg::Exited { pid, status }) => self.exited(pid, status),
                Some(Msg::Shutdown { signal, done }) => {
                    let code = self.tear_down(signal).or(self.last_exit).unwrap_or(0);
                    let _ = done.send(code);
                    return;
                }
                None => {}
            }
            let now = Instant::now();
            if self.restart_at.is_some_and(|t| t <= now) {
                self.restart_at = None;
                self.log(format!("restarting the workload (failure #{})", self.failures));
                if let Err(why) = self.start() {
                    self.log(format!("restart failed: {why}"));
                    self.schedule_restart();
                }
            }
            if self.next_check.is_some_and(|t| t <= now) {
                self.sanity_check();
            }
        }
    }

    fn log(&self, msg: impl AsRef<str>) {
        self.shared.log.info(format!("lifecycle: {}", msg.as_ref()));
    }

    fn control(&mut self, verb: &str, body: &[u8]) -> (u16, Value) {
        // `signal` takes any JSON; `off` and `kill` ignore the body; the leader verbs need the
        // cluster payload, and an invalid one fails them as a missing one does.
        let payload = || match Payload::from_body(body) {
            Ok(p) => p,
            Err(why) => {
                self.shared.log.info(format!("lifecycle: {verb}: {why}"));
                None
            }
        };
        match verb {
            "check" => {
                let p = payload();
                self.check(p)
            }
            "on" => match Payload::from_body(body) {
                Ok(p) => self.on(p),
                Err(why) => {
                    self.log(format!("on: {why}"));
                    self.refuse_and_die()
                }
            },
            "off" => {
                self.restart_at = None;
                self.tear_down(Signal::SIGTERM);
                (200, json!({}))
            }
            "ok" => match payload().as_ref().map(Cluster::new) {
                Some(Ok(cluster)) => self.configured(&cluster),
                _ => (500, json!({})),
            },
            "kill" => {
                self.die("kill requested");
                (200, json!({}))
            }
            "signal" => self.signal(body),
            _ => (400, json!({})),
        }
    }

    fn check(&mut self, payload: Option<Payload>) -> (u16, Value) {
        let Some(payload) = payload else {
            self.log("check: no payload");
            return (406, json!({}));
        };
        let cluster = match Cluster::new(&payload) {
            Ok(c) => c,
            Err(why) => {
                self.log(format!("check: {why}"));
                return (406, json!({}));
            }
        };
        if let Some(prog) = self.cfg.can_configure.clone() {
            let input = serde_json::to_string(&cluster).unwrap_or_default();
            match hooks::run(&self.reaper, &prog, &input, &self.cfg.env, self.cfg.hook_timeout) {
                Ok(out) if out.code == 0 => {}
                Ok(out) => {
                    self.log(format!("check: {prog} refused: {}", out.failure()));
                    return (406, json!({}));
                }
                Err(why) => {
                    self.log(format!("check: {why}"));
                    return (406, json!({}));
                }
            }
        }
        (200, json!({}))
    }

    /// `ok`: the leader's configuration went through on every pod; the `--configured` hook
    /// hears of it, and its failure is a 500 as a raising `configured()` is in Ochopod.
    fn configured(&mut self, cluster: &Cluster) -> (u16, Value) {
        let Some(prog) = self.cfg.configured.clone() else { return (200, json!({})) };
        let input = serde_json::to_string(cluster).unwrap_or_default();
        match hooks::run(&self.reaper, &prog, &input, &self.cfg.env, self.cfg.hook_timeout) {
            Ok(out) if out.code == 0 => (200, json!({})),
            Ok(out) => {
                self.log(format!("ok: {prog} failed: {}", out.failure()));
                (500, json!({}))
            }
            Err(why) => {
                self.log(format!("ok: {why}"));
                (500, json!({}))
            }
        }
    }

    fn on(&mut self, payload: Option<Payload>) -> (u16, Value) {
        if self.workload.is_some() {
            let restart = payload.as_ref().is_some_and(|p| {
                self.cfg.strict
                    || self.last.as_ref().map(|l| &l.dependencies) != Some(&p.dependencies)
            });
            if !restart {
                if let Some(p) = payload {
                    // Remembered for the next (re)start's templates; the running process keeps
                    // its configuration (Ochopod's "skipping").
                    self.last = Some(p);
                }
                return (200, json!({}));
            }
            self.log("configuration changed (strict or new dependencies): restarting");
            self.tear_down(Signal::SIGTERM);
        }
        self.restart_at = None;
        let with_payload = payload.is_some();
        if let Some(Err(why)) = payload.map(|p| self.configure(p)) {
            self.log(format!("on: configuration failed: {why}"));
            return self.refuse_and_die();
        }
        if !self.configured {
            self.log("on: never configured and no payload: nothing to run");
            return self.refuse_and_die();
        }
        if !with_payload || self.cfg.start || self.spawned_before {
            if let Err(why) = self.start() {
                self.log(format!("on: {why}"));
                return self.refuse_and_die();
            }
        } else {
            self.log("configured; not starting (start is false)");
        }
        (200, json!({}))
    }

    /// Ochopod's answer to a failed `on`: 406, and the pod kills itself (docs/protocol.md §3.6).
    fn refuse_and_die(&mut self) -> (u16, Value) {
        self.backlog.push_front(Msg::Control {
            verb: "kill".into(),
            body: Vec::new(),
            reply: None,
        });
        (406, json!({}))
    }

    fn configure(&mut self, payload: Payload) -> Result<(), String> {
        let cluster = Cluster::new(&payload)?;
        if let Some(prog) = self.cfg.configure.clone() {
            let input = serde_json::to_string(&cluster).unwrap_or_default();
            let out =
                hooks::run(&self.reaper, &prog, &input, &self.cfg.env, self.cfg.hook_timeout)?;
            if out.code != 0 {
                return Err(format!("{prog}: {}", out.failure()));
            }
            self.overrides =
                hooks::parse_overrides(&out.stdout).map_err(|e| format!("{prog}: {e}"))?;
        }
        self.log(format!(
            "configured as pod {}/{} (seq {}) of {} pods",
            cluster.index + 1,
            cluster.size,
            cluster.seq,
            cluster.size
        ));
        self.last = Some(payload);
        self.configured = true;
        self.shared.set_configured();
        Ok(())
    }

    /// Renders the templates and spawns the workload.
    fn start(&mut self) -> Result<(), String> {
        if let Some(last) = &self.last {
            let cluster = Cluster::new(last)?;
            let overrides = self.overrides.clone();
            let env = move |name: &str| {
                overrides
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(name).ok())
            };
            let ctx =
                template::Context { cluster: &cluster, settings: &self.cfg.settings, env: &env };
            template::render_all(&self.cfg.templates, &ctx).map_err(|e| crate::error::chain(&e))?;
        }
        let Some((prog, args)) = self.cfg.cmd.split_first() else {
            return Err("no command".into());
        };
        let mut cmd = Command::new(prog);
        cmd.args(args).stdin(Stdio::null());
        if self.cfg.pipe {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        for (k, v) in self.cfg.env.iter().chain(self.overrides.iter()) {
            cmd.env(k, v);
        }
        let tx = self.tx.clone();
        let mut child = self
            .reaper
            .spawn_with(&mut cmd, prog, move |status| {
                if let Some(pid) = status.pid() {
                    let _ = tx.send(Msg::Exited { pid: pid.as_raw(), status });
                }
            })
            .map_err(|e| crate::error::chain(&e))?;
        let pid = child.id() as i32;
        if let Some(out) = child.stdout.take() {
            pipe_lines(&self.shared, pid, out);
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(&self.shared, pid, err);
        }
        drop(child);
        self.workload = Some(Workload { pid, started: Instant::now() });
        self.spawned_before = true;
        self.shared.set_workload(Some(pid));
        self.shared.set_process(process::RUNNING);
        self.check_failures = 0;
        self.next_check = self.cfg.sanity.as_ref().map(|_| Instant::now());
        self.log(format!("started {} (pid {pid})", self.cfg.cmd.join(" ")));
        Ok(())
    }

    fn exited(&mut self, pid: i32, status: WaitStatus) {
        let Some(w) = self.workload.as_ref().filter(|w| w.pid == pid) else {
            return;
        };
        if w.started.elapsed() >= STABLE {
            self.failures = 0;
        }
        self.workload = None;
        self.next_check = None;
        self.shared.set_workload(None);
        let code = crate::error::exit::of_wait(&status);
        self.last_exit = Some(code);
        self.log(format!("workload (pid {pid}) exited with {}", reap::describe(&status)));
        if code == 0 {
            self.die("the workload is done (exit status 0)");
        } else {
            self.shared.set_process(process::STOPPED);
            self.schedule_restart();
        }
    }

    fn schedule_restart(&mut self) {
        let delay = crate::supervise::backoff::jittered(self.failures);
        self.failures = self.failures.saturating_add(1);
        self.restart_at = Some(Instant::now() + delay);
        self.log(format!("restarting in {:.1}s", delay.as_secs_f64()));
    }

    fn die(&mut self, why: &str) {
        self.restart_at = None;
        self.tear_down(Signal::SIGTERM);
        self.shared.set_process(process::DEAD);
        self.shared.set_dead();
        self.log(format!("dead: {why}"));
    }

    /// Stops the workload: `signal` to its process group, SIGKILL after the grace. Messages that
    /// arrive meanwhile wait in the backlog. Returns the workload's exit code when one ran.
    fn tear_down(&mut self, signal: Signal) -> Option<u8> {
        let pid = self.workload.as_ref()?.pid;
        self.shared.set_process(process::TERMINATING);
        self.log(format!(
            "tearing down pid {pid} ({}, grace {:.0}s)",
            signal.as_str(),
            self.cfg.grace.as_secs_f64()
        ));
        let target = Pid::from_raw(pid);
        let _ = killpg(target, signal);
        let _ = kill(target, signal);
        let mut code = self.wait_for(pid, Instant::now() + self.cfg.grace);
        if code.is_none() && self.cfg.soft && !self.shared.is_shutting_down() {
            // Ochopod's soft: forgotten, not killed; the reaper still collects it later. The
            // agent's own shutdown kills it anyway: nothing outlives the agent.
            self.log(format!("pid {pid} still running after the grace: left running (--soft)"));
        } else if code.is_none() {
            self.log(format!("pid {pid} still running after the grace: SIGKILL"));
            let _ = killpg(target, Signal::SIGKILL);
            let _ = kill(target, Signal::SIGKILL);
            code = self.wait_for(pid, Instant::now() + Duration::from_secs(10));
        }
        self.workload = None;
        self.next_check = None;
        self.shared.set_workload(None);
        self.shared.set_process(process::STOPPED);
        if let Some(c) = code {
            self.last_exit = Some(c);
        }
        code
    }

    fn wait_for(&mut self, pid: i32, deadline: Instant) -> Option<u8> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Msg::Exited { pid: p, status }) if p == pid => {
                    self.log(format!("pid {pid} exited with {}", reap::describe(&status)));
                    return Some(crate::error::exit::of_wait(&status));
                }
                Ok(other) => self.backlog.push_back(other),
                Err(_) => return None,
            }
        }
    }

    fn signal(&mut self, body: &[u8]) -> (u16, Value) {
        let Some(prog) = self.cfg.signal.clone() else {
            return (200, json!({}));
        };
        // The body is handed over as it came, when it is JSON at all.
        let input = match serde_json::from_slice::<Value>(body) {
            Ok(v) => v.to_string(),
            Err(_) => String::new(),
        };
        let mut env = self.cfg.env.clone();
        if let Some(w) = &self.workload {
            env.push(("OCHO_PID".into(), w.pid.to_string()));
        }
        match hooks::run(&self.reaper, &prog, &input, &env, self.cfg.hook_timeout) {
            Ok(out) if out.code == 0 => {
                let v = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|_| json!({}));
                (200, if v.is_object() { v } else { json!({}) })
            }
            Ok(out) => {
                self.log(format!("signal: {prog} failed: {}", out.failure()));
                (500, json!({}))
            }
            Err(why) => {
                self.log(format!("signal: {why}"));
                (500, json!({}))
            }
        }
    }

    fn sanity_check(&mut self) {
        self.next_check = Some(Instant::now() + self.cfg.check_every);
        let (Some(prog), Some(w)) = (self.cfg.sanity.clone(), self.workload.as_ref()) else {
            return;
        };
        let mut env = self.cfg.env.clone();
        env.push(("OCHO_PID".into(), w.pid.to_string()));
        let result = hooks::run(&self.reaper, &prog, "", &env, self.cfg.hook_timeout);
        match result {
            Ok(out) if out.code == 0 => {
                self.check_failures = 0;
                let metrics = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|_| json!({}));
                self.shared.set_metrics(if metrics.is_object() { metrics } else { json!({}) });
            }
            other => {
                self.check_failures += 1;
                let why = match other {
                    Ok(out) => out.failure(),
                    Err(why) => why,
                };
                self.log(format!(
                    "sanity check failed ({}/{}): {why}",
                    self.check_failures, self.cfg.checks
                ));
                if self.check_failures >= self.cfg.checks {
                    self.log(
                        "too many failed sanity checks: stopping the workload until the next on",
                    );
                    self.tear_down(Signal::SIGTERM);
                }
            }
        }
    }
}
