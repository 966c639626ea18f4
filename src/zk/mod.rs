//! ZooKeeper: the server `ocho init` runs ([`config`], [`server`], [`probe`], [`status`]) and two
//! synchronous client facades over `zookeeper-client`: [`Session`] for the tools and
//! [`member::Member`] for a pod's coordinator (registration, lock, leader model; its calls give up
//! early on the session's end, `/reset` or shutdown). Async stays sealed in here: callers get
//! blocking methods driven by a private current-thread runtime.

pub mod config;
pub mod data;
pub mod member;
pub mod probe;
pub mod server;
pub mod status;

use std::time::{Duration, Instant};

use zookeeper_client as zkc;

use crate::error::{Error, Result};

/// Default hosts of the tools: `$OCHOPOD_ZK`, else the proxy's own ZooKeeper on loopback.
pub fn default_hosts() -> String {
    std::env::var("OCHOPOD_ZK")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:2181".into())
}

/// How long a connection may take before the tools ask whether the ensemble has a quorum:
/// longer than an election after a member's loss or a server's start (a second or two on a
/// loaded machine), so a tool fails early only when the quorum is really gone.
const QUORUM_CHECK: Duration = Duration::from_secs(5);

/// How long closing a session may wait for the server's answer before the process goes on.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// One ZooKeeper session with blocking methods. It is closed (ZooKeeper's CloseSession, so the
/// server forgets it at once rather than after the session timeout) by [`Session::close`] or
/// when dropped.
pub struct Session {
    rt: tokio::runtime::Runtime,
    /// `None` once closed.
    client: Option<zkc::Client>,
    hosts: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shut();
    }
}

impl Session {
    /// Connects to `hosts` (`host[:port],…`; 2181 when a port is missing), failing after
    /// `timeout` when no server answers.
    pub fn connect(hosts: &str, timeout: Duration) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::io("start the zookeeper client runtime", "", source))?;
        let hosts = hosts.trim().to_string();
        let connect = zkc::Client::connector()
            .with_session_timeout(timeout.max(Duration::from_secs(4)))
            .with_connection_timeout(timeout)
            .with_readonly(false)
            .connect(&hosts);
        // Servers that answer but do not serve mean a lost quorum, which deserves its name
        // rather than a timeout. Asked only when no session came quickly, so it costs nothing
        // when ZooKeeper serves, and a tool fails within seconds rather than at its deadline.
        let no_quorum = || probe::no_quorum(&hosts, Duration::from_secs(1));
        let started = std::time::Instant::now();
        let mut connect = Box::pin(connect);
        // The caller's timeout bounds the whole connect, the quorum check included.
        let first = timeout.min(QUORUM_CHECK);
        let early = rt.block_on(async { tokio::time::timeout(first, &mut connect).await });
        let outcome = match early {
            Ok(done) => Ok(done),
            Err(_) if timeout > QUORUM_CHECK => {
                if let Some(why) = no_quorum() {
                    return Err(Error::Failed(format!("zookeeper {hosts}: {why}")));
                }
                let left = timeout.saturating_sub(started.elapsed());
                rt.block_on(async { tokio::time::timeout(left, &mut connect).await })
            }
            Err(elapsed) => Err(elapsed),
        };
        drop(connect);
        let client = match outcome {
            Ok(Ok(client)) => client,
            Ok(Err(source)) => {
                if let Some(why) = no_quorum() {
                    return Err(Error::Failed(format!("zookeeper {hosts}: {why}")));
                }
                return Err(Error::Zk { hosts, what: "connect".into(), source });
            }
            Err(_) => {
                if let Some(why) = no_quorum() {
                    return Err(Error::Failed(format!("zookeeper {hosts}: {why}")));
                }
                return Err(Error::Failed(format!(
                    "zookeeper {hosts}: no answer within {:.1}s (is it running? check --zk or $OCHOPOD_ZK)",
                    timeout.as_secs_f64()
                )));
            }
        };
        Ok(Session { rt, client: Some(client), hosts })
    }

    /// The hosts this session was opened with.
    pub fn hosts(&self) -> &str {
        &self.hosts
    }

    fn client(&self) -> &zkc::Client {
        self.client.as_ref().expect("a session is used only until it is closed")
    }

    /// Closes the session on a thread of its own, so that a tool done with ZooKeeper goes on
    /// meanwhile (asks its pods): the server's answer to CloseSession waits for its transaction
    /// log on disk, a few ms. The returned [`Closing`] waits for the close when dropped, so the
    /// tool still ends with its session closed.
    pub fn close_in_background(self) -> Closing {
        let mut session = self;
        // A thread that cannot start drops the closure, and with it the session: closed here.
        Closing(
            std::thread::Builder::new().name("zk-close".into()).spawn(move || session.shut()).ok(),
        )
    }

    fn shut(&mut self) {
        let Some(client) = self.client.take() else { return };
        let mut state = client.state_watcher();
        // The last handle gone, the client sends CloseSession and ends its session task.
        drop(client);
        let closed = async {
            loop {
                if state.peek_state().is_terminated() {
                    return;
                }
                state.changed().await;
            }
        };
        let _ = self.rt.block_on(async { tokio::time::timeout(CLOSE_WAIT, closed).await });
    }

    fn err(&self, what: &str, path: &str, source: zkc::Error) -> Error {
        Error::Zk { hosts: self.hosts.clone(), what: format!("{what} {path}"), source }
    }

    /// Children of `path`, or `None` when the node does not exist.
    pub fn children(&self, path: &str) -> Result<Option<Vec<String>>> {
        match self.rt.block_on(self.client().list_children(path)) {
            Ok(children) => Ok(Some(children)),
            Err(zkc::Error::NoNode) => Ok(None),
            Err(source) => Err(self.err("list", path, source)),
        }
    }

    /// Data of `path`, or `None` when the node does not exist.
    pub fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.rt.block_on(self.client().get_data(path)) {
            Ok((data, _)) => Ok(Some(data)),
            Err(zkc::Error::NoNode) => Ok(None),
            Err(source) => Err(self.err("read", path, source)),
        }
    }

    /// Children of every path (`None` for a node that does not exist), with one round trip's
    /// latency, as [`Session::get_many`].
    pub fn children_many(&self, paths: &[&str]) -> Result<Vec<Option<Vec<String>>>> {
        let client = self.client();
        self.pipelined(paths, "list", |p| client.list_children(p))
    }

    /// Data of every path, with one round trip's latency: every request is sent before the
    /// first reply is awaited (the client sends in call order). `None` for a node that is gone.
    pub fn get_many(&self, paths: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        let client = self.client();
        let data = self.pipelined(paths, "read", |p| client.get_data(p))?;
        Ok(data.into_iter().map(|d| d.map(|(data, _)| data)).collect())
    }

    /// `request` for every path, all sent before the first reply is awaited; `None` where the
    /// node does not exist, the first other error named `what <path>`.
    fn pipelined<'a, T, F>(
        &self,
        paths: &[&'a str],
        what: &str,
        request: impl Fn(&'a str) -> F,
    ) -> Result<Vec<Option<T>>>
    where
        F: std::future::Future<Output = std::result::Result<T, zkc::Error>>,
    {
        let pending: Vec<_> = paths.iter().map(|p| (*p, request(p))).collect();
        self.rt.block_on(async {
            let mut out = Vec::with_capacity(pending.len());
            for (path, reply) in pending {
                out.push(match reply.await {
                    Ok(value) => Some(value),
                    Err(zkc::Error::NoNode) => None,
                    Err(source) => return Err(self.err(what, path, source)),
                });
            }
            Ok(out)
        })
    }

    /// Children of `path` and a watch that fires once when they change; `None` when the node
    /// does not exist.
    pub fn watch_children(&self, path: &str) -> Result<Option<(Vec<String>, OneChange)>> {
        match self.rt.block_on(self.client().get_and_watch_children(path)) {
            Ok((children, _, watcher)) => Ok(Some((children, OneChange(watcher)))),
            Err(zkc::Error::NoNode) => Ok(None),
            Err(source) => Err(self.err("watch", path, source)),
        }
    }

    /// Waits up to `timeout` for `change`; true when it fired.
    pub fn wait_for(&self, change: OneChange, timeout: Duration) -> bool {
        self.rt.block_on(async { tokio::time::timeout(timeout, change.0.changed()).await }).is_ok()
    }

    /// Deletes `path`; a missing node is not an error.
    pub fn delete(&self, path: &str) -> Result<()> {
        match self.rt.block_on(self.client().delete(path, None)) {
            Ok(()) | Err(zkc::Error::NoNode) => Ok(()),
            Err(source) => Err(self.err("delete", path, source)),
        }
    }
}

/// A one-time watch ([`Session::watch_children`]).
/// A session being closed by [`Session::close_in_background`]; dropping it waits until the
/// close is done.
pub struct Closing(Option<std::thread::JoinHandle<()>>);

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

pub struct OneChange(zkc::OneshotWatcher);

/// A persistent recursive watch on one subtree ([`Session::watch_tree`]), read one blocking
/// wait at a time with [`Session::next_change`].
pub struct Changes {
    /// `None` once the session ended: no more events will come.
    watcher: Option<zkc::PersistentWatcher>,
}

/// What [`Session::next_change`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A node at this path (under the watched subtree) was created, changed or deleted.
    Node(String),
    /// The session's state changed (disconnected, reconnected): anything may have changed.
    Session,
    /// Nothing before the deadline.
    Quiet,
    /// The session ended: the watch is gone; the next request reports why.
    Ended,
}

impl Session {
    /// Watches every node under `path`; `None` when the server cannot add persistent watches
    /// (ZooKeeper before 3.6): callers then poll.
    pub fn watch_tree(&self, path: &str) -> Option<Changes> {
        let watch = self.client().watch(path, zkc::AddWatchMode::PersistentRecursive);
        self.rt.block_on(watch).ok().map(|w| Changes { watcher: Some(w) })
    }

    /// Blocks until the next change under `changes`' subtree, or `until`.
    pub fn next_change(&self, changes: &mut Changes, until: Instant) -> Change {
        let Some(watcher) = changes.watcher.as_mut() else {
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            return Change::Ended;
        };
        let at = tokio::time::Instant::from_std(until);
        let change = self.rt.block_on(async {
            match tokio::time::timeout_at(at, watcher.changed()).await {
                Err(_) => Change::Quiet,
                Ok(event) if event.session_state.is_terminated() => Change::Ended,
                Ok(event) if event.event_type == zkc::EventType::Session => Change::Session,
                Ok(event) => Change::Node(event.path),
            }
        });
        if change == Change::Ended {
            // The watcher panics when polled after its session ended.
            changes.watcher = None;
        }
        change
    }
}
