//! The coordinator (docs/protocol.md §4.1, §4.4): one thread and one ZooKeeper session at a
//! time. It registers the pod (§1.3, sticky `seq`), contends for the kazoo-compatible lock (§1.6)
//! and, once it holds it, runs the leader model: watch `pods/` and the dependencies' snapshots,
//! compare hashes, apply the damper, configure (§4.4.4), probe. A lost connection is ridden out on
//! the same session (the client reconnects to another member of the ensemble); the end of the
//! session, `/reset` or shutdown closes it (our ephemerals vanish at once) and starts over with
//! the same uuid and `seq`. The session is the blocking facade [`Member`]
//! (`src/zk/member.rs`): each of its requests and waits returns early on the session's end,
//! `/reset` or shutdown, so those take effect at once whatever the coordinator is doing; hooks
//! (configuration, probe) run on a thread of their own, waited for the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::leader::{self, Round};
use super::{Shared, hooks, md5};
use crate::ochopod::{
    Cluster, Dependency, Payload, Registration, dependency_targets, glob, lock_sort_key, paths,
    state,
};
use crate::zk::member::{Fault, Flag, Member, Mode, State, Wake, Watch};

/// ZooKeeper session timeout of Python pods (docs/protocol.md §1.7): a longer one delays failover.
const SESSION_TIMEOUT: Duration = Duration::from_secs(5);
/// Ochopod's tick: the leader re-reads `pods/` and the dependencies at least this often.
const TICK: Duration = Duration::from_secs(1);
/// Connection losses in a row, each within a [`TICK`] of the last, that end a session.
const MAX_QUICK_LOSSES: u32 = 10;
/// How long the leader waits for an empty registration to get its JSON before ignoring it.
const INCOMPLETE_WAIT: Duration = Duration::from_secs(2);

/// Leader settings.
pub struct LeaderConfig {
    pub round: Round,
    pub damper: Duration,
    pub probe_every: Duration,
    pub depends_on: Vec<String>,
    pub probe: Option<String>,
    pub hook_timeout: Duration,
    pub env: Vec<(String, String)>,
}

/// Everything the coordinator needs.
pub struct Coordinator {
    pub hosts: String,
    pub namespace: String,
    /// `<ns>.<cluster>`.
    pub name: String,
    pub uuid: String,
    /// The registration record without `seq`.
    pub record: Map<String, Value>,
    pub seq: Option<i64>,
    pub leader: LeaderConfig,
    pub shared: Arc<Shared>,
    pub reaper: super::reaper::Reaper,
}

type Deps = BTreeMap<String, BTreeMap<String, Registration>>;
type View = (BTreeMap<String, Registration>, Deps);

/// Why a session ended.
enum End {
    Shutdown,
    Reset(String),
}

/// Why a step of a session failed: the connection went with a request (`Lost`: the session may
/// live on through another server of the ensemble, and the request may or may not have been
/// done), any other failure (`Failed`), or the session must end now (`End`: its end, `/reset`,
/// shutdown), whatever the step was doing.
enum Trouble {
    Lost(String),
    Failed(String),
    End(End),
}

impl Trouble {
    /// Maps a fault of the operation `what`. Taking one wrongly as lost (the classification is
    /// `src/zk/member.rs`'s) costs a retry at most: a session that ended is seen at once, and
    /// repeated quick losses end the session (`MAX_QUICK_LOSSES`).
    fn zk(what: String) -> impl FnOnce(Fault) -> Trouble {
        move |e| match e {
            Fault::Ended(state) => Trouble::End(ended(&state)),
            Fault::Interrupted(i) => Trouble::End(interrupted(i)),
            e if e.is_lost() => Trouble::Lost(format!("{what}: {e}")),
            e => Trouble::Failed(format!("{what}: {e}")),
        }
    }

    fn other(why: String) -> Trouble {
        Trouble::Failed(why)
    }
}

/// The interrupts of every session, by their index in [`Coordinator::connect`].
const RESET: usize = 0;
const SHUTDOWN: usize = 1;

fn interrupted(i: usize) -> End {
    match i {
        RESET => End::Reset("requested".into()),
        SHUTDOWN => End::Shutdown,
        _ => unreachable!("a session has two interrupts"),
    }
}

fn ended(state: &str) -> End {
    End::Reset(format!("zookeeper session {state}"))
}

/// What one session has done so far, so that resuming it after a lost connection neither
/// registers twice nor contends twice.
#[derive(Default)]
struct Progress {
    /// The registration node, once this session holds one.
    node: Option<String>,
    /// The lock contender's random prefix (fixed for the session) and its node name once
    /// created.
    contender: Option<(String, Option<String>)>,
    /// Whether "leader of" was said in this session.
    led: bool,
}

impl Coordinator {
    /// Runs until the pod shuts down.
    pub fn run(mut self) {
        let mut failures = 0u32;
        while !self.shared.is_shutting_down() {
            let mut member = match self.connect() {
                Ok(m) => m,
                Err(why) => {
                    if failures.is_multiple_of(10) {
                        self.shared.log.warn(format!("zookeeper {}: {why}; retrying", self.hosts));
                    }
                    failures += 1;
                    self.shared.shutdown.wait(TICK);
                    continue;
                }
            };
            failures = 0;
            let end = self.session(&mut member);
            let led = self.shared.stop_leading();
            // Closes the session, waiting for the close to be sent, so our ephemerals vanish
            // now rather than after the session timeout.
            drop(member);
            match end {
                End::Shutdown => break,
                End::Reset(why) => self.shared.log.info(format!(
                    "reset ({why}){}: re-registering",
                    if led { ", leadership given up" } else { "" }
                )),
            }
        }
        self.shared.log.info("zookeeper session closed");
        self.shared.coordinator_done();
    }

    /// A new session; `/reset` and shutdown interrupt its every step ([`RESET`], [`SHUTDOWN`]),
    /// and a lost or resumed connection is said when seen.
    fn connect(&self) -> Result<Member, Fault> {
        let shared = Arc::clone(&self.shared);
        Member::connect(
            &self.hosts,
            SESSION_TIMEOUT,
            // At their indexes RESET and SHUTDOWN.
            vec![self.shared.reset.clone(), self.shared.shutdown.clone()],
            move |state| note(state, &shared),
        )
    }

    /// One session: register, contend, lead. A lost connection does not end it: the client
    /// reconnects to another member of the ensemble within the session timeout, with the same
    /// session, so the registration, the lock node and leadership are all still ours; the work
    /// resumes where it stopped (docs/protocol.md §4.7). Only the session's end (expired,
    /// closed), `/reset` or shutdown end it, whatever the work is doing (a hook then runs on to
    /// its end on its own thread).
    fn session(&mut self, m: &mut Member) -> End {
        let mut progress = Progress::default();
        let (mut last_lost, mut streak): (Option<Instant>, u32) = (None, 0);
        loop {
            let outcome =
                self.register(m, &mut progress).and_then(|()| self.elect(m, &mut progress));
            match outcome {
                Ok(()) => return End::Reset("leader model ended".into()),
                Err(Trouble::End(end)) => return end,
                Err(Trouble::Lost(why)) => {
                    // A connection that flaps, or a server that drops every request, must not
                    // spin here: ten losses each within a tick of the last one end the session.
                    let now = Instant::now();
                    streak = match last_lost {
                        Some(at) if now.duration_since(at) < TICK => streak + 1,
                        _ => 0,
                    };
                    last_lost = Some(now);
                    if streak >= MAX_QUICK_LOSSES {
                        return End::Reset(format!("{why} (connection lost again and again)"));
                    }
                    if streak > 0 {
                        m.sleep(TICK / 10);
                    }
                    // Leadership pauses meanwhile: nothing is configured until the session is
                    // back and the lock is checked again.
                    if let Err(end) = connected(m) {
                        return end;
                    }
                }
                Err(Trouble::Failed(why)) => return End::Reset(why),
            }
        }
    }

    /// This session's own node among the children of `dir` whose name starts with `prefix`: a
    /// create whose answer was lost with the connection may have been done, and doing it again
    /// would leave a twin. A node of an older session (not closed yet) is never ours.
    fn own_node(&self, m: &mut Member, dir: &str, prefix: &str) -> Result<Option<String>, Trouble> {
        let children = m.list_children(dir).map_err(Trouble::zk(format!("list {dir}")))?;
        let session = m.session_id();
        for child in children.into_iter().filter(|c| c.starts_with(prefix)) {
            let path = format!("{dir}/{child}");
            match m.ephemeral_owner(&path) {
                Ok(Some(owner)) if owner == session => return Ok(Some(path)),
                Ok(_) | Err(Fault::NoNode) => {}
                Err(e) => return Err(Trouble::zk(format!("read {path}"))(e)),
            }
        }
        Ok(None)
    }

    /// Registers `pods/<uuid>.<seq10>` (docs/protocol.md §1.3); the first registration fixes `seq`.
    fn register(&mut self, m: &mut Member, progress: &mut Progress) -> Result<(), Trouble> {
        if progress.node.is_some() {
            return Ok(());
        }
        let pods = paths::pods(&self.name);
        m.mkdir(&pods).map_err(Trouble::zk(format!("create {pods}")))?;
        let hash = paths::hash(&self.name);
        match m.create(&hash, b"", Mode::Persistent) {
            Ok(_) | Err(Fault::NodeExists) => {}
            Err(e) => return Err(Trouble::zk(format!("create {hash}"))(e)),
        }
        let prefix = format!("{pods}/{}.", self.uuid);
        if let Some(node) = self.own_node(m, &pods, &format!("{}.", self.uuid))? {
            // Created before the connection was lost: complete it (its data may be missing).
            let seq = match self.seq {
                Some(seq) => seq,
                None => {
                    let suffix = node.rsplit('.').next().unwrap_or_default();
                    let seq = suffix.parse().map_err(|_| {
                        Trouble::other(format!("registration {node}: no sequence number"))
                    })?;
                    self.seq = Some(seq);
                    seq
                }
            };
            m.set_data(&node, self.record_json(seq).as_bytes())
                .map_err(Trouble::zk(format!("write {node}")))?;
            self.shared.log.info(format!("registered as {node} (seq {seq})"));
            progress.node = Some(node);
            return Ok(());
        }
        let node = match self.seq {
            // Re-registration: the record is complete already, one operation.
            Some(seq) => {
                let data = self.record_json(seq);
                let n = m
                    .create(&prefix, data.as_bytes(), Mode::EphemeralSequential)
                    .map_err(Trouble::zk(format!("create {prefix}")))?;
                format!("{prefix}{n}")
            }
            None => {
                let n = m
                    .create(&prefix, b"", Mode::EphemeralSequential)
                    .map_err(Trouble::zk(format!("create {prefix}")))?;
                let node = format!("{prefix}{n}");
                let seq = n.value();
                self.seq = Some(seq);
                m.set_data(&node, self.record_json(seq).as_bytes())
                    .map_err(Trouble::zk(format!("write {node}")))?;
                node
            }
        };
        self.shared
            .log
            .info(format!("registered as {node} (seq {})", self.seq.unwrap_or_default()));
        progress.node = Some(node);
        Ok(())
    }

    fn record_json(&self, seq: i64) -> String {
        let mut record = self.record.clone();
        record.insert("seq".into(), json!(seq));
        Value::Object(record).to_string()
    }

    /// The kazoo lock recipe (docs/protocol.md §1.6); returns only when the leader model ends.
    fn elect(&mut self, m: &mut Member, progress: &mut Progress) -> Result<(), Trouble> {
        let coord = paths::coordinator(&self.name);
        let marker = crate::ochopod::LOCK_MARKER;
        let (prefix, made) =
            progress.contender.get_or_insert_with(|| (super::identity::random_hex32(), None));
        let mine = match made {
            Some(mine) => mine.clone(),
            None => {
                m.mkdir(&coord).map_err(Trouble::zk(format!("create {coord}")))?;
                // As kazoo does after a lost connection: look for our contender first.
                let name = match self.own_node(m, &coord, &format!("{prefix}{marker}"))? {
                    Some(path) => path.rsplit('/').next().unwrap_or_default().to_string(),
                    None => {
                        let contender = format!("{coord}/{prefix}{marker}");
                        let n = m
                            .create(&contender, b"", Mode::EphemeralSequential)
                            .map_err(Trouble::zk(format!("create {contender}")))?;
                        format!("{prefix}{marker}{n}")
                    }
                };
                *made = Some(name.clone());
                name
            }
        };
        loop {
            let mut children =
                m.list_children(&coord).map_err(Trouble::zk(format!("list {coord}")))?;
            children.sort_by(|a, b| lock_sort_key(a).cmp(lock_sort_key(b)));
            let at = children
                .iter()
                .position(|c| *c == mine)
                .ok_or_else(|| Trouble::other(format!("lock node {mine} vanished")))?;
            if at == 0 {
                break;
            }
            let pred = format!("{coord}/{}", children[at - 1]);
            let (exists, mut watch) =
                m.watch_stat(&pred).map_err(Trouble::zk(format!("watch {pred}")))?;
            if exists {
                // The re-check every few seconds guards against a lost watch; unlike kazoo
                // with a timeout we keep our place in the queue.
                pause(m, Some(&mut watch), Duration::from_secs(5))?;
            }
        }
        if !progress.led {
            progress.led = true;
            self.shared.log.info(format!("leader of {}", self.name));
        }
        self.lead(m)
    }

    /// The leader model (docs/protocol.md §4.4).
    fn lead(&mut self, m: &mut Member) -> Result<(), Trouble> {
        let snapshot = paths::snapshot(&self.name);
        match m.create(&snapshot, b"{}", Mode::Ephemeral) {
            Ok(_) | Err(Fault::NodeExists) => {}
            Err(e) => return Err(Trouble::zk(format!("create {snapshot}"))(e)),
        }
        self.shared.set_leader(state::LEADER, Some(String::new()));
        let pods_path = paths::pods(&self.name);
        let hash_path = paths::hash(&self.name);
        let mut known: Option<View> = None;
        let mut pending: Option<Instant> = None;
        let mut remembered: Option<View> = None;
        let mut next_probe = Instant::now();
        let mut incomplete_since: Option<Instant> = None;
        loop {
            let (children, mut watch) =
                m.watch_children(&pods_path).map_err(Trouble::zk(format!("watch {pods_path}")))?;
            let mut local = BTreeMap::new();
            let mut incomplete = false;
            for child in children {
                let path = format!("{pods_path}/{child}");
                match m.get_data(&path) {
                    Ok(data) => match Registration::parse(&data) {
                        Some(r) => {
                            local.insert(paths::pod_uuid(&child).to_string(), r);
                        }
                        None => incomplete = true,
                    },
                    Err(Fault::NoNode) => {}
                    Err(e) => return Err(Trouble::zk(format!("read {path}"))(e)),
                }
            }
            // A registration seen between its creation and its JSON (docs/protocol.md §5.9) is
            // normally complete 1 ms later: wait for it rather than configure twice, but not
            // forever.
            if incomplete {
                let since = *incomplete_since.get_or_insert_with(Instant::now);
                if since.elapsed() < INCOMPLETE_WAIT {
                    pause(m, None, Duration::from_millis(50))?;
                    continue;
                }
            } else {
                incomplete_since = None;
            }
            let deps = self.dependencies(m)?;
            let view: View = (local, deps);
            let digest = hash_of(&view);
            if known.as_ref() != Some(&view) {
                known = Some(view.clone());
                let stored = match m.get_data(&hash_path) {
                    Ok(d) => String::from_utf8_lossy(&d).into_owned(),
                    // Only the end of the session, `/reset` and shutdown stop the work here.
                    Err(e @ (Fault::Ended(_) | Fault::Interrupted(_))) => {
                        return Err(Trouble::zk(format!("read {hash_path}"))(e));
                    }
                    Err(_) => String::new(),
                };
                if stored == digest {
                    pending = None;
                    write(m, &snapshot, &json!(view.0))?;
                    remembered = Some(view.clone());
                } else if pending.is_none() {
                    pending = Some(Instant::now() + self.leader.damper);
                    self.shared.log.info(format!(
                        "{} pods changed: configuration in {:.1}s",
                        self.name,
                        self.leader.damper.as_secs_f64()
                    ));
                }
            }
            let now = Instant::now();
            match pending {
                Some(at) if at <= now => {
                    let n = view.0.len();
                    self.shared
                        .set_leader(state::CONFIGURING, Some(format!("* configuring {n} pods")));
                    self.shared.log.info(format!("configuring {n} pods"));
                    let (round, pods, deps) =
                        (self.leader.round.clone(), view.0.clone(), view.1.clone());
                    let result = aside(m, move || leader::configure(&round, &pods, &deps))?
                        .unwrap_or_else(|e| Err(format!("configuration panicked: {e}")));
                    match result {
                        Ok(live) => {
                            // Published first, so that whoever sees the snapshot or the log
                            // line also sees the final state.
                            self.shared.set_leader(state::LEADER, Some(String::new()));
                            write(m, &snapshot, &json!(live))?;
                            m.set_data(&hash_path, digest.as_bytes())
                                .map_err(Trouble::zk(format!("write {hash_path}")))?;
                            self.shared.log.info(format!(
                                "configured {} pods ({} dropped as dead)",
                                live.len(),
                                n - live.len()
                            ));
                            pending = None;
                            remembered = Some(view.clone());
                            next_probe = Instant::now();
                        }
                        Err(why) => {
                            let retry = self.leader.damper.max(TICK);
                            self.shared.log.warn(format!(
                                "configuration failed: {why}; retrying in {:.1}s",
                                retry.as_secs_f64()
                            ));
                            pending = Some(Instant::now() + retry);
                        }
                    }
                }
                Some(at) => {
                    let left = at.saturating_duration_since(now).as_secs_f64();
                    self.shared.set_leader(
                        state::PENDING,
                        Some(format!("* configuration in {left:.1} seconds")),
                    );
                }
                None => {
                    self.shared.set_leader(state::LEADER, None);
                    if let Some(view) = remembered.as_ref().filter(|_| next_probe <= now) {
                        next_probe = now + self.leader.probe_every;
                        if let Some(status) = self.probe(m, view)? {
                            self.shared.set_leader(state::LEADER, Some(status));
                        }
                    }
                }
            }
            let mut wait = TICK;
            if let Some(at) = pending {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            pause(m, Some(&mut watch), wait)?;
        }
    }

    /// Reads every dependency's snapshot (docs/protocol.md §4.6), keyed by the `--depends-on`
    /// entry.
    fn dependencies(&self, m: &mut Member) -> Result<Deps, Trouble> {
        let mut deps = Deps::new();
        for entry in &self.leader.depends_on {
            let targets = match dependency_targets(entry, &self.namespace, &self.name) {
                Dependency::Own => continue,
                Dependency::Exact(t) => vec![t],
                Dependency::Pattern(p) => match m.list_children(paths::ROOT) {
                    Ok(all) => all
                        .into_iter()
                        .filter(|c| *c != self.name && glob::matches(&p, c))
                        .collect(),
                    Err(Fault::NoNode) => Vec::new(),
                    Err(e) => return Err(Trouble::zk(format!("list {}", paths::ROOT))(e)),
                },
            };
            let mut merged = BTreeMap::new();
            for target in targets {
                let path = paths::snapshot(&target);
                match m.get_data(&path) {
                    Ok(data) => {
                        // Invalid JSON counts as {} (docs/protocol.md §4.6).
                        let pods: BTreeMap<String, Registration> =
                            serde_json::from_slice(&data).unwrap_or_default();
                        merged.extend(pods);
                    }
                    Err(Fault::NoNode) => {}
                    Err(e) => return Err(Trouble::zk(format!("read {path}"))(e)),
                }
            }
            deps.insert(entry.clone(), merged);
        }
        Ok(deps)
    }

    /// Runs `--probe` with the cluster view keyed by this pod; its first line becomes `status`.
    fn probe(&self, m: &mut Member, view: &View) -> Result<Option<String>, Trouble> {
        let Some(prog) = self.leader.probe.clone() else { return Ok(None) };
        let payload =
            Payload { pods: view.0.clone(), dependencies: view.1.clone(), key: self.uuid.clone() };
        let Ok(cluster) = Cluster::new(&payload) else { return Ok(None) };
        let input = serde_json::to_string(&cluster).unwrap_or_default();
        let (reaper, env, timeout) =
            (self.reaper.clone(), self.leader.env.clone(), self.leader.hook_timeout);
        let Ok(out) = aside(m, move || hooks::run(&reaper, &prog, &input, &env, timeout))? else {
            return Ok(None);
        };
        Ok(Some(match out {
            Ok(o) if o.code == 0 => o.stdout.lines().next().unwrap_or("").trim().to_string(),
            Ok(o) => format!("* {}", o.failure()),
            Err(why) => format!("* {why}"),
        }))
    }
}

/// Waits for `watch` to fire or `timeout` to pass, whichever comes first; a lost or resumed
/// connection was said already (the member's hook) and the wait goes on. The session's end,
/// `/reset` and shutdown stop the work.
fn pause(m: &mut Member, mut watch: Option<&mut Watch>, timeout: Duration) -> Result<(), Trouble> {
    let until = Instant::now() + timeout;
    loop {
        match m.wait(watch.as_deref_mut(), None, Some(until)) {
            Wake::Fired | Wake::Timeout => return Ok(()),
            Wake::State(State::Ended(state)) => return Err(Trouble::End(ended(&state))),
            Wake::Interrupted(i) => return Err(Trouble::End(interrupted(i))),
            Wake::State(_) | Wake::Raised => {}
        }
    }
}

/// Runs `work` (a hook) on a thread of its own and waits for it like [`pause`]: when the session
/// must end first, the work runs on to its end unheard. `Err` inside when it panicked.
fn aside<T: Send + 'static>(
    m: &mut Member,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<Result<T, String>, Trouble> {
    let done = Flag::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let raise = done.clone();
    let spawned = std::thread::Builder::new().name("hook".into()).spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(out.map_err(|panic| panic_message(&*panic)));
        raise.raise();
    });
    if let Err(e) = spawned {
        return Ok(Err(format!("cannot start a thread: {e}")));
    }
    loop {
        match m.wait(None, Some(&done), None) {
            Wake::Raised => break,
            Wake::State(State::Ended(state)) => return Err(Trouble::End(ended(&state))),
            Wake::Interrupted(i) => return Err(Trouble::End(interrupted(i))),
            Wake::State(_) | Wake::Fired | Wake::Timeout => {}
        }
    }
    Ok(rx.recv().unwrap_or_else(|_| Err("its thread ended without an answer".into())))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Waits until the session is connected again (`Ok`), or must end (`Err`: its end, `/reset`,
/// shutdown).
fn connected(m: &mut Member) -> Result<(), End> {
    match m.state() {
        State::Connected => return Ok(()),
        State::Ended(state) => return Err(ended(&state)),
        State::Disconnected => {}
    }
    loop {
        match m.wait(None, None, None) {
            Wake::State(State::Connected) => return Ok(()),
            Wake::State(State::Ended(state)) => return Err(ended(&state)),
            Wake::Interrupted(i) => return Err(interrupted(i)),
            Wake::State(State::Disconnected) | Wake::Fired | Wake::Raised | Wake::Timeout => {}
        }
    }
}

/// Says when the connection is lost and when the session is back.
fn note(state: &State, shared: &Shared) {
    match state {
        State::Disconnected => shared.log.warn(format!(
            "zookeeper connection lost: resuming the session on another server (it lives {:.1}s \
             without one)",
            SESSION_TIMEOUT.as_secs_f64()
        )),
        State::Connected => {
            shared.log.info("zookeeper session resumed: registration and lock kept")
        }
        State::Ended(_) => {}
    }
}

fn write(m: &mut Member, path: &str, value: &Value) -> Result<(), Trouble> {
    m.set_data(path, value.to_string().as_bytes()).map_err(Trouble::zk(format!("write {path}")))
}

/// The `hash` of a view: MD5 of `{"local": pods, "<dependency>": pods, …}` with sorted keys.
/// Python leaders compute different bytes for the same view; they reconfigure once
/// (docs/protocol.md §1.5).
fn hash_of(view: &View) -> String {
    let mut all = BTreeMap::new();
    all.insert("local".to_string(), &view.0);
    for (name, pods) in &view.1 {
        all.insert(name.clone(), pods);
    }
    md5::colon_hex(serde_json::to_string(&all).unwrap_or_default().as_bytes())
}
