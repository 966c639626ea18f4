//! Three real `ocho init` members forming one ZooKeeper ensemble on three free loopback
//! addresses, for the HA tests and the HA benchmark: started, probed, killed with SIGKILL and
//! started again on their data. Each member is owned by a [`Proc`], which reaps it.
#![allow(dead_code, clippy::unwrap_used)]

use crate::fixture::eventually;
use crate::support::{self, DEADLINE, Loopback, Proc, free_loopback, ocho};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;
use support::portal::Client;

/// A JVM start and an election on a loaded 2-core machine, with three JVMs starting at once.
pub const START: Duration = Duration::from_secs(120);

/// A workload that waits.
pub const SLEEPER: &[&str] = &["/bin/sh", "-c", "exec sleep 1000"];

/// Three members on three loopback addresses sharing four free ports: client, quorum,
/// election, portal. Member `i` (0-based) is server id `i + 1`.
pub struct Ensemble {
    pub net: Loopback,
    dirs: tempfile::TempDir,
    pub members: Vec<Option<Proc>>,
}

impl Ensemble {
    /// Starts the three members and waits until every one serves. Retries with other addresses
    /// when a port was taken meanwhile by another process of the machine.
    pub fn start() -> Ensemble {
        support::require_zookeeper();
        for _ in 0..3 {
            let mut ens = Ensemble {
                net: free_loopback(3, 4),
                dirs: tempfile::tempdir().unwrap(),
                members: vec![None, None, None],
            };
            for i in 0..3 {
                ens.spawn(i);
            }
            if ens.wait_serving(&[0, 1, 2]) {
                return ens;
            }
        }
        panic!("three attempts to start an ensemble met ports in use");
    }

    pub fn client(&self, i: usize) -> String {
        format!("{}:{}", self.net.ips[i], self.net.ports[0])
    }

    /// The connect string of the whole ensemble.
    pub fn hosts(&self) -> String {
        (0..3).map(|i| self.client(i)).collect::<Vec<_>>().join(",")
    }

    pub fn portal(&self, i: usize) -> Client {
        Client { addr: format!("{}:{}", self.net.ips[i], self.net.ports[3]) }
    }

    pub fn data(&self, i: usize) -> PathBuf {
        self.dirs.path().join(format!("member-{}", i + 1))
    }

    pub fn member(&self, i: usize) -> &Proc {
        self.members[i].as_ref().expect("member running")
    }

    /// Starts member `i` on its data directory (kept across restarts).
    pub fn spawn(&mut self, i: usize) {
        let (q, e) = (self.net.ports[1], self.net.ports[2]);
        let members: Vec<String> = self.net.ips.iter().map(|ip| format!("{ip}:{q}:{e}")).collect();
        let mut cmd = ocho();
        cmd.args(["init", "--zk-members", &members.join(","), "--zk-id", &(i + 1).to_string()])
            .args(["--zk-bind", &self.net.ips[i], "--zk-port", &self.net.ports[0].to_string()])
            .args(["--zk-heap", "64m", "--grace", "10", "--no-audit"])
            .args(["--portal-bind", &format!("{}:{}", self.net.ips[i], self.net.ports[3])])
            .arg("--zk-data")
            .arg(self.data(i))
            .env_remove("OCHOPOD_TOKEN")
            .env_remove("OCHO_ZK_PUBLIC")
            .env_remove("KUBECONFIG");
        self.members[i] = Some(Proc::spawn(&format!("member {}", i + 1), cmd));
    }

    /// Waits until each of `which` announced it serves (or, false, one of them met a port in
    /// use); panics at the deadline.
    pub fn wait_serving(&self, which: &[usize]) -> bool {
        let end = Instant::now() + START;
        loop {
            let mut ready = 0;
            for &i in which {
                let lines = self.member(i).lines();
                if lines.iter().any(|l| l.contains("Address already in use")) {
                    return false;
                }
                let me = format!("init: zookeeper ready on {} (", self.client(i));
                ready += usize::from(lines.iter().any(|l| l.contains(&me)));
            }
            if ready == which.len() {
                return true;
            }
            let tails: Vec<String> = which.iter().map(|&i| self.member(i).tail()).collect();
            assert!(Instant::now() < end, "members not serving:\n{}", tails.join("\n---\n"));
            // Polling several processes' output at once (one wait_for_line per member would
            // serialise their deadlines).
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL to member `i`'s init: its guardian then kills the JVM and the portal, as the
    /// kernel would kill a container's processes with its PID 1. Returns once the JVM's
    /// client port refuses connections.
    pub fn kill(&mut self, i: usize) {
        let mut proc = self.members[i].take().expect("member running");
        proc.signal(Signal::SIGKILL);
        proc.expect_exit(DEADLINE);
        let addr = self.client(i);
        eventually(&format!("member {} gone", i + 1), DEADLINE, || {
            std::net::TcpStream::connect(&addr).is_err().then_some(())
        });
        let portal = self.portal(i).addr;
        eventually(&format!("portal {} gone", i + 1), DEADLINE, || {
            std::net::TcpStream::connect(&portal).is_err().then_some(())
        });
    }
}

/// `srvr`'s Mode of member at `addr` through `ocho zk-status`, or `None` when it does not serve.
pub fn mode(addr: &str) -> Option<String> {
    let out = ocho().args(["zk-status", "--zk", addr, "-t", "3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    out.status.success().then_some(())?;
    text.lines().find_map(|l| l.strip_prefix("Mode: ")).map(|m| m.trim().to_string())
}

/// The modes of `which`, once every one serves.
pub fn modes(ens: &Ensemble, which: &[usize]) -> Vec<String> {
    eventually("every member serving", START, || {
        which.iter().map(|&i| mode(&ens.client(i))).collect::<Option<Vec<_>>>()
    })
}

/// The index of the leader among `which`.
pub fn leader(ens: &Ensemble, which: &[usize]) -> usize {
    let modes = modes(ens, which);
    let leaders: Vec<usize> =
        which.iter().zip(&modes).filter(|(_, m)| *m == "leader").map(|(i, _)| *i).collect();
    assert_eq!(leaders.len(), 1, "modes {modes:?}");
    leaders[0]
}

/// `/readyz` of a portal: status and body.
pub fn readyz(client: &Client) -> (u16, Value) {
    let reply = client.request("GET", "/readyz", &[], b"");
    (reply.status, serde_json::from_slice(&reply.body).unwrap_or(Value::Null))
}

/// A client calling `ocho ls --zk HOSTS` every 100 ms on its own thread, as an operator's
/// script would, counting the calls that listed `cluster` and keeping the others' output.
pub struct Caller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl Caller {
    pub fn start(hosts: &str, cluster: &str) -> Caller {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hosts, cluster) = (hosts.to_string(), cluster.to_string());
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !flag.load(Ordering::SeqCst) {
                let started = Instant::now();
                let out = ocho().args(["ls", "--zk", &hosts]).output().unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                if out.status.success() && text.contains(&cluster) {
                    ok += 1;
                } else {
                    let err = String::from_utf8_lossy(&out.stderr);
                    failed.push(format!("{:?}: {} {}", out.status.code(), text.trim(), err.trim()));
                }
                // The call rate of the client, not a readiness wait.
                std::thread::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()));
            }
            (ok, failed)
        });
        Caller { stop, thread }
    }

    /// Stops the calls: (answered, what the failed ones said).
    pub fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

impl Ensemble {
    /// Restarts every member in turn as Kubernetes rolls a StatefulSet: SIGTERM, its exit (0),
    /// start on the same data, serving and `/readyz` 200 again. Returns how long it took.
    pub fn roll(&mut self) -> Duration {
        let began = Instant::now();
        for i in 0..3 {
            let mut proc = self.members[i].take().unwrap();
            proc.signal(Signal::SIGTERM);
            assert_eq!(proc.expect_exit(DEADLINE).code(), Some(0), "{}", proc.tail());
            self.spawn(i);
            assert!(self.wait_serving(&[i]), "member {} met a port in use", i + 1);
            eventually("readyz 200 again", START, || {
                (readyz(&self.portal(i)).0 == 200).then_some(())
            });
        }
        began.elapsed()
    }
}
