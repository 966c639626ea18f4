//! A pod's own ZooKeeper session ([`Member`]), blocking: exactly what `src/pod/coordinator.rs`
//! needs to register, contend for the lock and lead (docs/protocol.md §1.3, §1.6, §4.4). Like
//! [`super::Session`] it drives `zookeeper-client` from a private current-thread runtime, so the
//! async code stays in `src/zk/`.
//!
//! Unlike a tool's session, a member's blocking calls can be cut short: every request and every
//! [`Member::wait`] returns early when the session ends or when one of the member's interrupts
//! ([`Flag`], the pod's `/reset` and shutdown) is raised. A lost or resumed connection does not
//! cut a request (the client rides it out on another server of the ensemble); the member's hook
//! hears it when it happens, whichever blocking call is running then.

use std::fmt;
use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use zookeeper_client as zkc;

use super::CLOSE_WAIT;

/// A flag that any thread raises and one waiter consumes, from a blocking thread
/// ([`Flag::wait`]) or from a [`Member`]'s blocking calls. Raises that nobody consumed yet count
/// once: the next wait returns at once.
#[derive(Clone, Default)]
pub struct Flag(Arc<Inner>);

#[derive(Default)]
struct Inner {
    raised: Mutex<bool>,
    cond: Condvar,
    /// Wakes a member's runtime; its permit covers a raise between a check and the wait.
    notify: tokio::sync::Notify,
}

impl Flag {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        self.0.raised.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raises the flag and wakes its waiter.
    pub fn raise(&self) {
        *self.lock() = true;
        self.0.cond.notify_all();
        self.0.notify.notify_one();
    }

    /// Consumes a pending raise: true when there was one.
    pub fn take(&self) -> bool {
        std::mem::take(&mut *self.lock())
    }

    /// Blocks until the flag is raised (consumed: true) or `timeout` passes (false).
    pub fn wait(&self, timeout: Duration) -> bool {
        let raised = self.lock();
        let (mut raised, _) = self
            .0
            .cond
            .wait_timeout_while(raised, timeout, |r| !*r)
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *raised)
    }

    /// Completes once the flag is raised, consuming the raise.
    async fn raised(&self) {
        loop {
            if self.take() {
                return;
            }
            self.0.notify.notified().await;
        }
    }
}

/// Completes with the index of the first of `flags` raised (that raise consumed).
async fn first_raised(flags: &[Flag]) -> usize {
    let mut each: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = flags
        .iter()
        .map(|s| -> Pin<Box<dyn Future<Output = ()> + '_>> { Box::pin(s.raised()) })
        .collect();
    std::future::poll_fn(move |cx| {
        for (i, raised) in each.iter_mut().enumerate() {
            if raised.as_mut().poll(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}

/// Where a member's session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Connected to a server of the ensemble.
    Connected,
    /// The connection was lost: the client is looking for another server, within the session
    /// timeout.
    Disconnected,
    /// The session ended and cannot come back: its last state (`Expired`, `Closed`, …).
    Ended(String),
}

impl From<zkc::SessionState> for State {
    fn from(state: zkc::SessionState) -> Self {
        match state {
            zkc::SessionState::SyncConnected => State::Connected,
            zkc::SessionState::Disconnected => State::Disconnected,
            ended => State::Ended(format!("{ended:?}")),
        }
    }
}

/// Why a member's request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The node does not exist.
    NoNode,
    /// The node exists already.
    NodeExists,
    /// The connection went with the request (the client's message): the session may live on
    /// through another server, and the request may or may not have been done.
    Lost(String),
    /// Any other answer of the server or failure of the client (its message).
    Other(String),
    /// Abandoned: the session ended (its last state, as [`State::Ended`]).
    Ended(String),
    /// Abandoned: this interrupt of the member (its index) was raised; the raise is consumed.
    Interrupted(usize),
}

impl Fault {
    /// Whether the connection went with the request ([`Fault::Lost`]).
    pub fn is_lost(&self) -> bool {
        matches!(self, Fault::Lost(_))
    }
}

/// Requests in flight when a connection breaks fail with what broke it (`ConnectionLoss`, or the
/// socket's own error, "connection reset by peer", as `Custom`): those are lost connections, with
/// a timed out or throttled request; every other error is the server's answer or the client's
/// end. Taking one wrongly as lost costs the caller a retry at most.
impl From<zkc::Error> for Fault {
    fn from(e: zkc::Error) -> Self {
        match e {
            zkc::Error::NoNode => Fault::NoNode,
            zkc::Error::NodeExists => Fault::NodeExists,
            zkc::Error::ConnectionLoss
            | zkc::Error::Timeout
            | zkc::Error::Throttled
            | zkc::Error::Custom(_) => Fault::Lost(e.to_string()),
            e => Fault::Other(e.to_string()),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::NoNode => zkc::Error::NoNode.fmt(f),
            Fault::NodeExists => zkc::Error::NodeExists.fmt(f),
            Fault::Lost(why) | Fault::Other(why) => f.write_str(why),
            Fault::Ended(state) => write!(f, "zookeeper session {state}"),
            Fault::Interrupted(_) => f.write_str("interrupted"),
        }
    }
}

/// What ended a [`Member::wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// The watch fired.
    Fired,
    /// The flag given to this wait was raised (consumed).
    Raised,
    /// The session's state changed; the member's hook heard it first when it is
    /// [`State::Connected`] or [`State::Disconnected`].
    State(State),
    /// This interrupt of the member (its index) was raised (consumed).
    Interrupted(usize),
    /// The deadline passed.
    Timeout,
}

/// How a node is created; every node is open to anyone (Ochopod's nodes carry no ACL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Persistent,
    Ephemeral,
    EphemeralSequential,
}

/// The sequence number ZooKeeper appended to a sequential node's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence(zkc::CreateSequence);

impl Sequence {
    pub fn value(self) -> i64 {
        self.0.into_i64()
    }
}

/// As ZooKeeper writes it in the name: ten digits, zero-padded.
impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

type Event = Pin<Box<dyn Future<Output = zkc::WatchedEvent>>>;

/// A one-time watch set by [`Member::watch_children`] or [`Member::watch_stat`], waited for by
/// [`Member::wait`] (as many waits as it takes: it fires once).
pub struct Watch(Option<Event>);

impl Watch {
    fn new(watcher: zkc::OneshotWatcher) -> Self {
        Watch(Some(Box::pin(watcher.changed())))
    }

    /// Completes once the watch fires; never again after that.
    async fn fired(&mut self) {
        match self.0.as_mut() {
            Some(event) => {
                event.await;
                self.0 = None;
            }
            None => pending().await,
        }
    }
}

/// What a blocking call ran into.
enum Outcome<T> {
    Done(T),
    State(State),
    Interrupted(usize),
}

/// One ZooKeeper session of a pod, with blocking calls that the session's end or an interrupt
/// cuts short. Closed (ZooKeeper's CloseSession: the server drops our ephemerals at once) when
/// dropped.
pub struct Member {
    rt: tokio::runtime::Runtime,
    /// `None` once closed.
    client: Option<zkc::Client>,
    states: zkc::StateWatcher,
    interrupts: Vec<Flag>,
    hook: Box<dyn Fn(&State)>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        // The last handle gone, the client sends CloseSession and ends its session task: wait
        // for it to be sent, so our ephemerals vanish now rather than after the session timeout.
        drop(client);
        let states = &mut self.states;
        let closed = async {
            while !states.peek_state().is_terminated() {
                states.changed().await;
            }
        };
        let _ = self.rt.block_on(async { tokio::time::timeout(CLOSE_WAIT, closed).await });
    }
}

impl Member {
    /// Connects to `hosts` (`host[:port],…`; 2181 when a port is missing) with `timeout` as the
    /// session timeout and the limit of the connect itself. `interrupts` cut every blocking call
    /// short when raised ([`Fault::Interrupted`], [`Wake::Interrupted`] with their index);
    /// `hook` hears every [`State::Disconnected`] and [`State::Connected`] of the session as
    /// a blocking call sees it.
    pub fn connect(
        hosts: &str,
        timeout: Duration,
        interrupts: Vec<Flag>,
        hook: impl Fn(&State) + 'static,
    ) -> Result<Member, Fault> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Fault::Other(format!("cannot start the zookeeper client runtime: {e}")))?;
        let hosts: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| if h.contains(':') { h.to_string() } else { format!("{h}:2181") })
            .collect();
        let hosts = hosts.join(",");
        let connect = zkc::Client::connector()
            .with_session_timeout(timeout)
            .with_connection_timeout(timeout)
            .connect(&hosts);
        let client = match rt.block_on(async { tokio::time::timeout(timeout, connect).await }) {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(Fault::Other(e.to_string())),
            Err(_) => return Err(Fault::Other("no answer".into())),
        };
        let states = client.state_watcher();
        Ok(Member { rt, client: Some(client), states, interrupts, hook: Box::new(hook) })
    }

    fn client(&self) -> &zkc::Client {
        self.client.as_ref().expect("a member is used only until it is dropped")
    }

    /// The session's id: the ephemeral owner of the nodes it creates.
    pub fn session_id(&self) -> i64 {
        self.client().session_id().0
    }

    /// The session's latest state, without waiting and without telling the hook.
    pub fn state(&self) -> State {
        self.states.peek_state().into()
    }

    /// Drives `work` until it completes, the session ends or an interrupt is raised. States
    /// of the connection go to the hook; with `wake` they also end the call.
    fn drive<T>(&mut self, work: impl Future<Output = T>, wake: bool) -> Outcome<T> {
        let Member { rt, states, interrupts, hook, .. } = self;
        rt.block_on(async {
            tokio::pin!(work);
            let raised = first_raised(interrupts);
            tokio::pin!(raised);
            loop {
                tokio::select! {
                    done = &mut work => return Outcome::Done(done),
                    i = &mut raised => return Outcome::Interrupted(i),
                    state = states.changed() => {
                        let state = State::from(state);
                        if !matches!(state, State::Ended(_)) {
                            hook(&state);
                            if !wake {
                                continue;
                            }
                        }
                        return Outcome::State(state);
                    }
                }
            }
        })
    }

    /// Runs one request.
    fn request<T>(
        &mut self,
        work: impl Future<Output = Result<T, zkc::Error>>,
    ) -> Result<T, Fault> {
        match self.drive(work, false) {
            Outcome::Done(result) => result.map_err(Fault::from),
            Outcome::State(State::Ended(state)) => Err(Fault::Ended(state)),
            Outcome::State(_) => unreachable!("only the end of the session stops a request"),
            Outcome::Interrupted(i) => Err(Fault::Interrupted(i)),
        }
    }

    /// Blocks until the first of: `watch` fires, `flag` is raised, the session's state changes,
    /// an interrupt is raised, `until` passes (never without one).
    pub fn wait(
        &mut self,
        watch: Option<&mut Watch>,
        flag: Option<&Flag>,
        until: Option<Instant>,
    ) -> Wake {
        let work = async {
            let fired = async {
                match watch {
                    Some(watch) => watch.fired().await,
                    None => pending().await,
                }
            };
            let raised = async {
                match flag {
                    Some(flag) => flag.raised().await,
                    None => pending().await,
                }
            };
            let deadline = async {
                match until {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                _ = fired => Wake::Fired,
                _ = raised => Wake::Raised,
                _ = deadline => Wake::Timeout,
            }
        };
        match self.drive(work, true) {
            Outcome::Done(wake) => wake,
            Outcome::State(state) => Wake::State(state),
            Outcome::Interrupted(i) => Wake::Interrupted(i),
        }
    }

    /// Sleeps `pause`, the session's work going on meanwhile; neither states nor interrupts
    /// are looked at.
    pub fn sleep(&mut self, pause: Duration) {
        self.rt.block_on(tokio::time::sleep(pause));
    }

    /// Creates `path` and its missing parents, persistent.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Fault> {
        let client = self.client().clone();
        let persistent = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
        self.request(async move { client.mkdir(path, &persistent).await })
    }

    /// Creates `path` with `data`; the sequence number ZooKeeper appended for
    /// [`Mode::EphemeralSequential`].
    pub fn create(&mut self, path: &str, data: &[u8], mode: Mode) -> Result<Sequence, Fault> {
        let mode = match mode {
            Mode::Persistent => zkc::CreateMode::Persistent,
            Mode::Ephemeral => zkc::CreateMode::Ephemeral,
            Mode::EphemeralSequential => zkc::CreateMode::EphemeralSequential,
        };
        let options = mode.with_acls(zkc::Acls::anyone_all());
        let client = self.client().clone();
        self.request(async move { client.create(path, data, &options).await })
            .map(|(_, n)| Sequence(n))
    }

    /// The session that owns `path` if it is ephemeral (0 if not), `None` when it does not exist.
    pub fn ephemeral_owner(&mut self, path: &str) -> Result<Option<i64>, Fault> {
        let client = self.client().clone();
        let stat = self.request(async move { client.check_stat(path).await })?;
        Ok(stat.map(|s| s.ephemeral_owner))
    }

    /// Children of `path`.
    pub fn list_children(&mut self, path: &str) -> Result<Vec<String>, Fault> {
        let client = self.client().clone();
        self.request(async move { client.list_children(path).await })
    }

    /// Data of `path`.
    pub fn get_data(&mut self, path: &str) -> Result<Vec<u8>, Fault> {
        let client = self.client().clone();
        self.request(async move { client.get_data(path).await }).map(|(data, _)| data)
    }

    /// Replaces the data of `path`, whatever its version.
    pub fn set_data(&mut self, path: &str, data: &[u8]) -> Result<(), Fault> {
        let client = self.client().clone();
        self.request(async move { client.set_data(path, data, None).await }).map(|_| ())
    }

    /// Children of `path` and a watch that fires when they change (or the node goes).
    pub fn watch_children(&mut self, path: &str) -> Result<(Vec<String>, Watch), Fault> {
        let client = self.client().clone();
        let (children, _, watcher) =
            self.request(async move { client.get_and_watch_children(path).await })?;
        Ok((children, Watch::new(watcher)))
    }

    /// Whether `path` exists, and a watch that fires when it is created, changed or deleted.
    pub fn watch_stat(&mut self, path: &str) -> Result<(bool, Watch), Fault> {
        let client = self.client().clone();
        let (stat, watcher) =
            self.request(async move { client.check_and_watch_stat(path).await })?;
        Ok((stat.is_some(), Watch::new(watcher)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_of_the_server_are_not_a_lost_connection() {
        for e in [zkc::Error::ConnectionLoss, zkc::Error::Timeout, zkc::Error::Throttled] {
            assert!(Fault::from(e.clone()).is_lost(), "{e}");
        }
        assert_eq!(Fault::from(zkc::Error::NoNode), Fault::NoNode);
        assert_eq!(Fault::from(zkc::Error::NodeExists), Fault::NodeExists);
        for e in [
            zkc::Error::NoNode,
            zkc::Error::NodeExists,
            zkc::Error::BadVersion,
            zkc::Error::SessionExpired,
            zkc::Error::ClientClosed,
        ] {
            let fault = Fault::from(e.clone());
            assert!(!fault.is_lost(), "{e}");
            // The client's own words, as the coordinator logs them.
            assert_eq!(fault.to_string(), e.to_string());
        }
        let ended = |s| matches!(State::from(s), State::Ended(_));
        assert!(ended(zkc::SessionState::Expired) && ended(zkc::SessionState::Closed));
        assert!(
            !ended(zkc::SessionState::Disconnected) && !ended(zkc::SessionState::SyncConnected)
        );
        assert_eq!(State::from(zkc::SessionState::Expired), State::Ended("Expired".into()));
    }

    #[test]
    fn a_raise_counts_once_until_consumed() {
        let flag = Flag::new();
        assert!(!flag.take());
        flag.raise();
        flag.raise();
        assert!(flag.wait(Duration::from_secs(5)));
        assert!(!flag.wait(Duration::from_millis(10)));
        let other = flag.clone();
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.raise();
        });
        assert!(flag.wait(Duration::from_secs(5)));
        raiser.join().unwrap();
    }
}
