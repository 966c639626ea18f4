//! The `srvr` four-letter-word probe. ZooKeeper is ready when `srvr` answers with a `Mode:`
//! line; `ruok` answers `imok` as soon as the port is bound, before the database is loaded.

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
    }
}
