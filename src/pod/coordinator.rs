//! The coordinator (docs/protocol.md §4.1, §4.4): one thread with a current-thread tokio runtime
//! and one ZooKeeper session at a time. It registers the pod (§1.3, sticky `seq`), contends for the
//! kazoo-compatible lock (§1.6) and, once it holds it, runs the leader model: watch `pods/` and
//! the dependencies' snapshots, compare hashes, apply the damper, configure (§4.4.4), probe.
//! A lost connection is ridden out on the same session (the client reconnects to another member
//! of the ensemble); the end of the session, `/reset` or shutdown closes it (our ephemerals
//! vanish at once) and starts over with the same uuid and `seq`. The async code stays inside
//! this file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use zookeeper_client as zkc;

use super::leader::{self, Round};
use super::{Shared, hooks, md5};
use crate::ochopod::{
    Cluster, Dependency, Payload, Registration, dependency_targets, glob, lock_sort_key, paths,
    state,
};

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

/// Why a step of a session failed. `lost`: the connection went with the request, so the
/// session may live on through another server of the ensemble, and the request may or may not
/// have been done.
struct Trouble {
    why: String,
    lost: bool,
}

impl Trouble {
    /// Maps a client error of the operation `what`.
    fn zk(what: String) -> impl FnOnce(zkc::Error) -> Trouble {
        move |e| Trouble { lost: lost(&e), why: format!("{what}: {e}") }
    }

    fn other(why: String) -> Trouble {
        Trouble { why, lost: false }
    }
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

/// Whether an operation failed with the connection rather than with a server's answer: the
/// requests in flight when a connection breaks fail with what broke it (`ConnectionLoss`, or
/// the socket's own error, "connection reset by peer", as `Custom`). Treating one wrongly as
/// lost costs a retry at most: a session that ended is seen at once, and repeated quick losses
/// end the session (`MAX_QUICK_LOSSES`).
fn lost(e: &zkc::Error) -> bool {
    matches!(
        e,
        zkc::Error::ConnectionLoss
            | zkc::Error::Timeout
            | zkc::Error::Throttled
            | zkc::Error::Custom(_)
    )
}

/// True for the states a session cannot come back from.
fn ends(state: zkc::SessionState) -> bool {
    !matches!(state, zkc::SessionState::SyncConnected | zkc::SessionState::Disconnected)
}

impl Coordinator {
    /// Runs until the pod shuts down.
    pub fn run(mut self) {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                self.shared.log.warn(format!("cannot start the zookeeper runtime: {e}"));
                return;
            }
        };
        rt.block_on(async move {
            let mut failures = 0u32;
            while !self.shared.is_shutting_down() {
                let client = match self.connect().await {
                    Ok(c) => c,
                    Err(why) => {
                        if failures.is_multiple_of(10) {
                            self.shared
                                .log
                                .warn(format!("zookeeper {}: {why}; retrying", self.hosts));
                        }
                        failures += 1;
                        tokio::select! {
                            _ = tokio::time::sleep(TICK) => {}
                            _ = self.shared.shutdown.notified() => {}
                        }
                        continue;
                    }
                };
                failures = 0;
                let mut states = client.state_watcher();
                let end = self.session(&client).await;
                let led = self.shared.stop_leading();
                drop(client);
                // Let the session task send its close, so our ephemerals vanish now rather
                // than after the session timeout.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while !states.state().is_terminated() {
                        states.changed().await;
                    }
                })
                .await;
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
        });
    }

    async fn connect(&self) -> Result<zkc::Client, String> {
        let hosts: Vec<String> = self
            .hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| if h.contains(':') { h.to_string() } else { format!("{h}:2181") })
            .collect();
        let hosts = hosts.join(",");
        let connect = zkc::Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(SESSION_TIMEOUT)
            .connect(&hosts);
        match tokio::time::timeout(SESSION_TIMEOUT, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".into()),
        }
    }

    /// One session: register, contend, lead. A lost connection does not end it: the client
    /// reconnects to another member of the ensemble within the session timeout, with the same
    /// session, so the registration, the lock node and leadership are all still ours; the work
    /// resumes where it stopped (docs/protocol.md §4.7). Only the session's end (expired,
    /// closed), `/reset` or shutdown end it.
    async fn session(&mut self, client: &zkc::Client) -> End {
        let mut states = client.state_watcher();
        let shared = Arc::clone(&self.shared);
        let mut progress = Progress::default();
        let (mut last_lost, mut streak): (Option<Instant>, u32) = (None, 0);
        loop {
            let work = async {
                self.register(client, &mut progress).await?;
                self.elect(client, &mut progress).await
            };
            let outcome = tokio::select! {
                r = work => r,
                s = watch(&mut states, &shared) => {
                    return End::Reset(format!("zookeeper session {s:?}"));
                }
                _ = shared.reset.notified() => return End::Reset("requested".into()),
                _ = shared.shutdown.notified() => return End::Shutdown,
            };
            match outcome {
                Ok(()) => return End::Reset("leader model ended".into()),
                Err(trouble) if trouble.lost => {
                    // A connection that flaps, or a server that drops every request, must not
                    // spin here: ten losses each within a tick of the last one end the session.
                    let now = Instant::now();
                    streak = match last_lost {
                        Some(at) if now.duration_since(at) < TICK => streak + 1,
                        _ => 0,
                    };
                    last_lost = Some(now);
                    if streak >= MAX_QUICK_LOSSES {
                        return End::Reset(format!(
                            "{} (connection lost again and again)",
                            trouble.why
                        ));
                    }
                    if streak > 0 {
                        tokio::time::sleep(TICK / 10).await;
                    }
                    // Leadership pauses meanwhile: nothing is configured until the session is
                    // back and the lock is checked again.
                    tokio::select! {
                        s = connected(&mut states, &shared) => if let Err(s) = s {
                            return End::Reset(format!("zookeeper session {s:?}"));
                        },
                        _ = shared.reset.notified() => return End::Reset("requested".into()),
                        _ = shared.shutdown.notified() => return End::Shutdown,
                    }
                }
                Err(trouble) => return End::Reset(trouble.why),
            }
        }
    }

    /// This session's own node among the children of `dir` whose name starts with `prefix`: a
    /// create whose answer was lost with the connection may have been done, and doing it again
    /// would leave a twin. A node of an older session (not closed yet) is never ours.
    async fn own_node(
        &self,
        client: &zkc::Client,
        dir: &str,
        prefix: &str,
    ) -> Result<Option<String>, Trouble> {
        let children =
            client.list_children(dir).await.map_err(Trouble::zk(format!("list {dir}")))?;
        let session = client.session_id().0;
        for child in children.into_iter().filter(|c| c.starts_with(prefix)) {
            let path = format!("{dir}/{child}");
            match client.check_stat(&path).await {
                Ok(Some(stat)) if stat.ephemeral_owner == session => return Ok(Some(path)),
                Ok(_) | Err(zkc::Error::NoNode) => {}
                Err(e) => return Err(Trouble::zk(format!("read {path}"))(e)),
            }
        }
        Ok(None)
    }

    /// Registers `pods/<uuid>.<seq10>` (docs/protocol.md §1.3); the first registration fixes `seq`.
    async fn register(
        &mut self,
        client: &zkc::Client,
        progress: &mut Progress,
    ) -> Result<(), Trouble> {
        if progress.node.is_some() {
            return Ok(());
        }
        let persistent = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
        let ephemeral_seq = zkc::CreateMode::EphemeralSequential.with_acls(zkc::Acls::anyone_all());
        let pods = paths::pods(&self.name);
        client.mkdir(&pods, &persistent).await.map_err(Trouble::zk(format!("create {pods}")))?;
        let hash = paths::hash(&self.name);
        match client.create(&hash, b"", &persistent).await {
            Ok(_) | Err(zkc::Error::NodeExists) => {}
            Err(e) => return Err(Trouble::zk(format!("create {hash}"))(e)),
        }
        let prefix = format!("{pods}/{}.", self.uuid);
        if let Some(node) = self.own_node(client, &pods, &format!("{}.", self.uuid)).await? {
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
            client
                .set_data(&node, self.record_json(seq).as_bytes(), None)
                .await
                .map_err(Trouble::zk(format!("write {node}")))?;
            self.shared.log.info(format!("registered as {node} (seq {seq})"));
            progress.node = Some(node);
            return Ok(());
        }
        let node = match self.seq {
            // Re-registration: the record is complete already, one operation.
            Some(seq) => {
                let data = self.record_json(seq);
                let (_, n) = client
                    .create(&prefix, data.as_bytes(), &ephemeral_seq)
                    .await
                    .map_err(Trouble::zk(format!("create {prefix}")))?;
                format!("{prefix}{n}")
            }
            None => {
                let (_, n) = client
                    .create(&prefix, b"", &ephemeral_seq)
                    .await
                    .map_err(Trouble::zk(format!("create {prefix}")))?;
                let node = format!("{prefix}{n}");
                let seq = n.into_i64();
                self.seq = Some(seq);
                client
                    .set_data(&node, self.record_json(seq).as_bytes(), None)
                    .await
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
    async fn elect(
        &mut self,
        client: &zkc::Client,
        progress: &mut Progress,
    ) -> Result<(), Trouble> {
        let coord = paths::coordinator(&self.name);
        let marker = crate::ochopod::LOCK_MARKER;
        let (prefix, made) =
            progress.contender.get_or_insert_with(|| (super::identity::random_hex32(), None));
        let mine = match made {
            Some(mine) => mine.clone(),
            None => {
                let persistent = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
                client
                    .mkdir(&coord, &persistent)
                    .await
                    .map_err(Trouble::zk(format!("create {coord}")))?;
                // As kazoo does after a lost connection: look for our contender first.
                let name = match self.own_node(client, &coord, &format!("{prefix}{marker}")).await?
                {
                    Some(path) => path.rsplit('/').next().unwrap_or_default().to_string(),
                    None => {
                        let contender = format!("{coord}/{prefix}{marker}");
                        let ephemeral_seq =
                            zkc::CreateMode::EphemeralSequential.with_acls(zkc::Acls::anyone_all());
                        let (_, n) = client
                            .create(&contender, b"", &ephemeral_seq)
                            .await
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
                client.list_children(&coord).await.map_err(Trouble::zk(format!("list {coord}")))?;
            children.sort_by(|a, b| lock_sort_key(a).cmp(lock_sort_key(b)));
            let at = children
                .iter()
                .position(|c| *c == mine)
                .ok_or_else(|| Trouble::other(format!("lock node {mine} vanished")))?;
            if at == 0 {
                break;
            }
            let pred = format!("{coord}/{}", children[at - 1]);
            let (stat, watcher) = client
                .check_and_watch_stat(&pred)
                .await
                .map_err(Trouble::zk(format!("watch {pred}")))?;
            if stat.is_some() {
                // The re-check every few seconds guards against a lost watch; unlike kazoo
                // with a timeout we keep our place in the queue.
                tokio::select! {
                    _ = watcher.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
        if !progress.led {
            progress.led = true;
            self.shared.log.info(format!("leader of {}", self.name));
        }
        self.lead(client).await
    }

    /// The leader model (docs/protocol.md §4.4).
    async fn lead(&mut self, client: &zkc::Client) -> Result<(), Trouble> {
        let snapshot = paths::snapshot(&self.name);
        let ephemeral = zkc::CreateMode::Ephemeral.with_acls(zkc::Acls::anyone_all());
        match client.create(&snapshot, b"{}", &ephemeral).await {
            Ok(_) | Err(zkc::Error::NodeExists) => {}
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
            let (children, _, watcher) = client
                .get_and_watch_children(&pods_path)
                .await
                .map_err(Trouble::zk(format!("watch {pods_path}")))?;
            let mut local = BTreeMap::new();
            let mut incomplete = false;
            for child in children {
                let path = format!("{pods_path}/{child}");
                match client.get_data(&path).await {
                    Ok((data, _)) => match Registration::parse(&data) {
                        Some(r) => {
                            local.insert(paths::pod_uuid(&child).to_string(), r);
                        }
                        None => incomplete = true,
                    },
                    Err(zkc::Error::NoNode) => {}
                    Err(e) => return Err(Trouble::zk(format!("read {path}"))(e)),
                }
            }
            // A registration seen between its creation and its JSON (docs/protocol.md §5.9) is
            // normally complete 1 ms later: wait for it rather than configure twice, but not
            // forever.
            if incomplete {
                let since = *incomplete_since.get_or_insert_with(Instant::now);
                if since.elapsed() < INCOMPLETE_WAIT {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            } else {
                incomplete_since = None;
            }
            let deps = self.dependencies(client).await?;
            let view: View = (local, deps);
            let digest = hash_of(&view);
            if known.as_ref() != Some(&view) {
                known = Some(view.clone());
                let stored = match client.get_data(&hash_path).await {
                    Ok((d, _)) => String::from_utf8_lossy(&d).into_owned(),
                    Err(_) => String::new(),
                };
                if stored == digest {
                    pending = None;
                    write(client, &snapshot, &json!(view.0)).await?;
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
                    let result = tokio::task::spawn_blocking(move || {
                        leader::configure(&round, &pods, &deps)
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("configuration panicked: {e}")));
                    match result {
                        Ok(live) => {
                            // Published first, so that whoever sees the snapshot or the log
                            // line also sees the final state.
                            self.shared.set_leader(state::LEADER, Some(String::new()));
                            write(client, &snapshot, &json!(live)).await?;
                            client
                                .set_data(&hash_path, digest.as_bytes(), None)
                                .await
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
                        if let Some(status) = self.probe(view).await {
                            self.shared.set_leader(state::LEADER, Some(status));
                        }
                    }
                }
            }
            let mut wait = TICK;
            if let Some(at) = pending {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                _ = watcher.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Reads every dependency's snapshot (docs/protocol.md §4.6), keyed by the `--depends-on`
    /// entry.
    async fn dependencies(&self, client: &zkc::Client) -> Result<Deps, Trouble> {
        let mut deps = Deps::new();
        for entry in &self.leader.depends_on {
            let targets = match dependency_targets(entry, &self.namespace, &self.name) {
                Dependency::Own => continue,
                Dependency::Exact(t) => vec![t],
                Dependency::Pattern(p) => match client.list_children(paths::ROOT).await {
                    Ok(all) => all
                        .into_iter()
                        .filter(|c| *c != self.name && glob::matches(&p, c))
                        .collect(),
                    Err(zkc::Error::NoNode) => Vec::new(),
                    Err(e) => return Err(Trouble::zk(format!("list {}", paths::ROOT))(e)),
                },
            };
            let mut merged = BTreeMap::new();
            for target in targets {
                let path = paths::snapshot(&target);
                match client.get_data(&path).await {
                    Ok((data, _)) => {
                        // Invalid JSON counts as {} (docs/protocol.md §4.6).
                        let pods: BTreeMap<String, Registration> =
                            serde_json::from_slice(&data).unwrap_or_default();
                        merged.extend(pods);
                    }
                    Err(zkc::Error::NoNode) => {}
                    Err(e) => return Err(Trouble::zk(format!("read {path}"))(e)),
                }
            }
            deps.insert(entry.clone(), merged);
        }
        Ok(deps)
    }

    /// Runs `--probe` with the cluster view keyed by this pod; its first line becomes `status`.
    async fn probe(&self, view: &View) -> Option<String> {
        let prog = self.leader.probe.clone()?;
        let payload =
            Payload { pods: view.0.clone(), dependencies: view.1.clone(), key: self.uuid.clone() };
        let cluster = Cluster::new(&payload).ok()?;
        let input = serde_json::to_string(&cluster).unwrap_or_default();
        let (reaper, env, timeout) =
            (self.reaper.clone(), self.leader.env.clone(), self.leader.hook_timeout);
        let out =
            tokio::task::spawn_blocking(move || hooks::run(&reaper, &prog, &input, &env, timeout))
                .await
                .ok()?;
        Some(match out {
            Ok(o) if o.code == 0 => o.stdout.lines().next().unwrap_or("").trim().to_string(),
            Ok(o) => format!("* {}", o.failure()),
            Err(why) => format!("* {why}"),
        })
    }
}

/// Follows the session's state until it ends (returned), saying when the connection is lost
/// and when the session is back.
async fn watch(states: &mut zkc::StateWatcher, shared: &Shared) -> zkc::SessionState {
    loop {
        let state = states.changed().await;
        if ends(state) {
            return state;
        }
        note(state, shared);
    }
}

/// Waits until the session is connected again (`Ok`) or ends (`Err` with its last state).
async fn connected(
    states: &mut zkc::StateWatcher,
    shared: &Shared,
) -> Result<(), zkc::SessionState> {
    let mut state = states.peek_state();
    loop {
        match state {
            zkc::SessionState::SyncConnected => return Ok(()),
            s if ends(s) => return Err(s),
            _ => {}
        }
        state = states.changed().await;
        note(state, shared);
    }
}

fn note(state: zkc::SessionState, shared: &Shared) {
    match state {
        zkc::SessionState::Disconnected => shared.log.warn(format!(
            "zookeeper connection lost: resuming the session on another server (it lives {:.1}s \
             without one)",
            SESSION_TIMEOUT.as_secs_f64()
        )),
        zkc::SessionState::SyncConnected => {
            shared.log.info("zookeeper session resumed: registration and lock kept")
        }
        _ => {}
    }
}

async fn write(client: &zkc::Client, path: &str, value: &Value) -> Result<(), Trouble> {
    client
        .set_data(path, value.to_string().as_bytes(), None)
        .await
        .map(|_| ())
        .map_err(Trouble::zk(format!("write {path}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_of_the_server_are_not_a_lost_connection() {
        for e in [zkc::Error::ConnectionLoss, zkc::Error::Timeout, zkc::Error::Throttled] {
            assert!(lost(&e), "{e}");
        }
        for e in [
            zkc::Error::NoNode,
            zkc::Error::NodeExists,
            zkc::Error::BadVersion,
            zkc::Error::SessionExpired,
            zkc::Error::ClientClosed,
        ] {
            assert!(!lost(&e), "{e}");
        }
        assert!(ends(zkc::SessionState::Expired) && ends(zkc::SessionState::Closed));
        assert!(!ends(zkc::SessionState::Disconnected) && !ends(zkc::SessionState::SyncConnected));
    }
}
