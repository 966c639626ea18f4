//! Is the client of a connection still there? Asked of the connection itself (one `poll` on its
//! socket, whatever else the host has open), and exact: the registry is keyed by the full peer
//! address, and each entry is the very socket of that connection.
//!
//! - A reset (RST), or keepalive probes that went unanswered (the peer's host vanished), leave
//!   an error on the socket: `POLLERR`/`POLLHUP`: gone.
//! - A FIN alone (`POLLRDHUP`) is a half-close: the client may have shut its sending side and be
//!   waiting for the reply, so it still counts as there. A client that really closed is found
//!   out by the next write: its host answers with a reset. Streaming replies write an empty line
//!   for that purpose ([`Liveness::HalfClosed`] tells them when).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a connection's socket says about its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    /// The client sent FIN: it may still be reading.
    HalfClosed,
    /// Reset, timed out by keepalive, or otherwise broken.
    Gone,
}

/// The state of `stream`'s client, without blocking.
pub fn liveness(stream: &TcpStream) -> Liveness {
    use nix::libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLRDHUP, poll, pollfd};
    // nix's poll cannot report POLLRDHUP (Linux's "peer shut down writing"): libc's, directly.
    let mut fd = pollfd { fd: stream.as_raw_fd(), events: POLLIN | POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd, borrowed for the call; the descriptor stays open while `stream`
    // is borrowed; a zero timeout never blocks.
    let n = unsafe { poll(&mut fd, 1, 0) };
    if n <= 0 {
        // 0: nothing to report; -1 (EINTR, ENOMEM): no evidence the client left.
        Liveness::Alive
    } else if fd.revents & (POLLERR | POLLHUP | POLLNVAL) != 0 {
        Liveness::Gone
    } else if fd.revents & POLLRDHUP != 0 {
        Liveness::HalfClosed
    } else {
        Liveness::Alive
    }
}

/// One open connection.
struct Entry {
    stream: Arc<TcpStream>,
    /// A request is being handled (or its reply written): not to be closed by a drain, nor
    /// evicted to make room.
    busy: bool,
    /// Since when the connection waits for (the rest of) a request head.
    since: Instant,
}

/// The open connections by peer address. A handler asks it about the client of the request it is
/// serving; a draining server closes the idle ones.
#[derive(Default)]
pub struct Peers {
    map: Mutex<HashMap<SocketAddr, Entry>>,
}

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Entry>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn insert(&self, peer: SocketAddr, stream: Arc<TcpStream>) {
        self.lock().insert(peer, Entry { stream, busy: false, since: Instant::now() });
    }

    pub(super) fn remove(&self, peer: &SocketAddr) {
        self.lock().remove(peer);
    }

    pub(super) fn set_busy(&self, peer: &SocketAddr, busy: bool) {
        if let Some(entry) = self.lock().get_mut(peer) {
            entry.busy = busy;
            entry.since = Instant::now();
        }
    }

    /// Shuts the connections that wait for a next request, so their threads end now.
    pub(super) fn close_idle(&self) {
        for entry in self.lock().values().filter(|e| !e.busy) {
            let _ = entry.stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Closes the connection that has waited longest for a request head, to make room for a new
    /// one: a client that opens connections and never finishes a request (slowloris) loses its
    /// oldest connection each time another client connects, while a real request, whose head
    /// arrives in a moment, is almost never the oldest. False when every connection is busy.
    pub(super) fn evict_oldest_idle(&self) -> bool {
        let mut map = self.lock();
        let Some(entry) = map.values_mut().filter(|e| !e.busy).min_by_key(|e| e.since) else {
            return false;
        };
        // Marked busy so that it is not chosen again while its thread winds down.
        entry.busy = true;
        let _ = entry.stream.shutdown(std::net::Shutdown::Both);
        true
    }

    /// The state of the client at `peer`; a peer this server does not know (a request built in
    /// a unit test) is taken as present.
    pub fn liveness(&self, peer: &SocketAddr) -> Liveness {
        let stream = self.lock().get(peer).map(|e| Arc::clone(&e.stream));
        stream.map_or(Liveness::Alive, |s| liveness(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener};
    use std::time::{Duration, Instant};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    fn settles(server: &TcpStream, want: Liveness) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if liveness(server) == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn half_close_reset_and_close_are_told_apart() {
        let (client, server) = pair();
        assert_eq!(liveness(&server), Liveness::Alive);
        // Data waiting to be read is not a sign of anything.
        (&client).write_all(b"GET").unwrap();
        assert!(settles(&server, Liveness::Alive));
        client.shutdown(Shutdown::Write).unwrap();
        assert!(settles(&server, Liveness::HalfClosed));
        // The half-closed client still reads what we write.
        (&server).write_all(b"reply").unwrap();
        let mut got = [0; 5];
        (&client).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"reply");

        // Closed for good: found out by the reset that answers a write.
        let (client, server) = pair();
        drop(client);
        assert!(settles(&server, Liveness::HalfClosed));
        (&server).write_all(b"\n").unwrap();
        assert!(settles(&server, Liveness::Gone));

        // A reset (SO_LINGER 0) is gone at once.
        let (client, server) = pair();
        nix::sys::socket::setsockopt(
            &client,
            nix::sys::socket::sockopt::Linger,
            &nix::libc::linger { l_onoff: 1, l_linger: 0 },
        )
        .unwrap();
        drop(client);
        assert!(settles(&server, Liveness::Gone));
    }
}
