//! The `srvr` four-letter-word probe. ZooKeeper is ready when `srvr` answers with a `Mode:`
//! line (`standalone`, or `leader`/`follower` in an ensemble); `ruok` answers `imok` as soon as
//! the port is bound, before the database is loaded. An ensemble member that has no quorum
//! answers [`NOT_SERVING`] instead, as does any server while it starts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Result of one probe.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// Serving; the full `srvr` answer.
    Serving(String),
    /// Reachable but not serving (or not answering `srvr` as expected); what it said.
    NotServing(String),
}

/// Answers are a few hundred bytes; cap what a misbehaving peer can make us buffer.
const MAX_ANSWER: u64 = 64 * 1024;

/// Sends `srvr` to `addr` (`host:port`) and classifies the answer.
pub fn srvr(addr: &str, timeout: Duration) -> std::io::Result<Probe> {
    let target = resolve(addr)?;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"srvr")?;
    let mut answer = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut answer)?;
    Ok(classify(answer))
}

fn resolve(addr: &str) -> std::io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("no address for {addr}"))
    })
}

/// What ZooKeeper answers a four-letter word while it does not serve: a server still loading,
/// or an ensemble member that is not part of a quorum (a majority of members must reach each
/// other for any of them to serve).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The `Mode:` of a `srvr` answer: `standalone`, `leader`, `follower`, `observer`.
pub fn mode(answer: &str) -> Option<&str> {
    answer.lines().find_map(|line| line.strip_prefix("Mode: ")).map(str::trim)
}

/// Asks each of `hosts` (`host[:port],…[/chroot]`) with `srvr`, for a client that could not
/// get a session: when none serves and at least one answers that it is not serving, the
/// reason is (almost always) a lost quorum, and the error says so rather than "no answer".
/// `None` when some server serves, or none answers at all (then the reason is elsewhere).
pub fn no_quorum(hosts: &str, timeout: Duration) -> Option<String> {
    let hosts = hosts.split('/').next().unwrap_or_default();
    let mut idle = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let addr = if host.contains(':') { host.to_string() } else { format!("{host}:2181") };
        match srvr(&addr, timeout) {
            Ok(Probe::Serving(_)) => return None,
            Ok(Probe::NotServing(answer)) if answer.contains(NOT_SERVING) => idle.push(addr),
            _ => {}
        }
    }
    (!idle.is_empty()).then(|| {
        format!(
            "no quorum: {} answer{} but {} not serving requests (an ensemble serves only while \
             a majority of its members reach each other; wait for the members to come back)",
            idle.join(", "),
            if idle.len() == 1 { "s" } else { "" },
            if idle.len() == 1 { "is" } else { "are" },
        )
    })
}

/// Serving when some line starts with `Mode:`.
pub fn classify(answer: String) -> Probe {
    if answer.lines().any(|line| line.starts_with("Mode: ")) {
        Probe::Serving(answer)
    } else {
        Probe::NotServing(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_line_means_serving() {
        let answer = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: standalone\nNode count: 5\n";
        assert_eq!(classify(answer.into()), Probe::Serving(answer.into()));
        let early = "This ZooKeeper instance is not currently serving requests\n";
        assert_eq!(classify(early.into()), Probe::NotServing(early.into()));
        assert_eq!(classify(String::new()), Probe::NotServing(String::new()));
        assert_eq!(mode(answer), Some("standalone"));
        assert_eq!(mode("Zookeeper version: 3.8.0\nMode: follower\n"), Some("follower"));
        assert_eq!(mode(early), None);
        assert!(early.starts_with(NOT_SERVING));
    }

    /// A fake server answering every connection with `answer`, for as many connections as asked.
    fn answering(answer: &'static str, times: usize) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().take(times) {
                let mut conn = conn.unwrap();
                let mut word = [0u8; 4];
                conn.read_exact(&mut word).unwrap();
                assert_eq!(&word, b"srvr");
                conn.write_all(answer.as_bytes()).unwrap();
            }
        });
        addr
    }

    #[test]
    fn no_quorum_is_named_only_when_nothing_serves_and_someone_says_so() {
        let idle = answering("This ZooKeeper instance is not currently serving requests\n", 2);
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let why = no_quorum(&format!("{refused},{idle}/chroot"), Duration::from_secs(2)).unwrap();
        assert!(why.starts_with("no quorum: ") && why.contains(&idle), "{why}");
        assert!(!why.contains(&refused), "{why}");
        let serving = answering("Zookeeper version: 3.8.0\nMode: leader\n", 1);
        assert_eq!(no_quorum(&format!("{serving},{idle}"), Duration::from_secs(2)), None);
        assert_eq!(no_quorum(&refused, Duration::from_secs(2)), None, "nothing answers");
    }
}
