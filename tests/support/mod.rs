//! Fixtures shared by the integration tests: [`Proc`] owns a child process (its `Drop` stops and
//! reaps it, process group included), [`Proc::wait_for_line`] is the only readiness primitive
//! (never a sleep), [`free_port`] and [`ZooKeeper`] (a real server from Debian's `zookeeper`
//! package, run by `ocho init --no-portal`); [`fake_kube`] is the fake Kubernetes API server
//! and kubelet (docs/fake-kubernetes.md).
#![allow(dead_code, clippy::unwrap_used)]

pub mod fake_kube;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::channel;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod chromium;
pub mod portal;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Generous deadline for anything a loaded 2-core machine does "at once".
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Path of the binary under test: `$OCHO_BIN` when set (benchmarks point it at the static
/// release build that ships), else the one cargo built for this test.
pub fn ocho_bin() -> String {
    std::env::var("OCHO_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ocho").into())
}

/// The binary under test, as a command.
pub fn ocho() -> Command {
    Command::new(ocho_bin())
}

/// A TCP port free on 127.0.0.1 at the time of the call.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Loopback addresses 127.x.y.z (never 127.0.0.1) and TCP ports, every port bindable on every
/// address at the time of the call: the kernel picks the ports on the first address (binds to
/// port 0); the other addresses are kept only where those ports bind too. Addresses are never
/// handed out twice by one test binary and start at a place that depends on the process, so
/// tests running at once (here or in another binary) do not pick the same pair.
pub struct Loopback {
    pub ips: Vec<String>,
    pub ports: Vec<u16>,
}

impl Loopback {
    /// The first address.
    pub fn ip(&self) -> &str {
        &self.ips[0]
    }

    /// The first port.
    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    /// `ip:port` of address `i` and the first port.
    pub fn addr(&self, i: usize) -> String {
        format!("{}:{}", self.ips[i], self.ports[0])
    }
}

/// The next candidate loopback address, 127.x.y.z with z in 2..=254.
fn next_loopback() -> std::net::Ipv4Addr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const SPAN: u32 = 256 * 256 * 253;
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        AtomicU32::new(std::process::id().wrapping_mul(7919).wrapping_add(nanos) % SPAN)
    });
    let n = next.fetch_add(1, Ordering::SeqCst) % SPAN;
    std::net::Ipv4Addr::new(
        127,
        (n / (256 * 253)) as u8,
        ((n / 253) % 256) as u8,
        (n % 253 + 2) as u8,
    )
}

/// `addresses` distinct loopback addresses sharing `ports` TCP ports free on each (see
/// [`Loopback`]).
pub fn free_loopback(addresses: usize, ports: usize) -> Loopback {
    use std::net::TcpListener;
    assert!(addresses >= 1 && ports >= 1);
    for _ in 0..100 {
        let first = next_loopback();
        let mut held: Vec<TcpListener> = Vec::new();
        for _ in 0..ports {
            match TcpListener::bind((first, 0)) {
                Ok(l) => held.push(l),
                Err(_) => break,
            }
        }
        if held.len() < ports {
            continue;
        }
        let chosen: Vec<u16> = held.iter().map(|l| l.local_addr().unwrap().port()).collect();
        let mut ips = vec![first.to_string()];
        for _ in 0..1000 {
            if ips.len() == addresses {
                break;
            }
            let ip = next_loopback();
            let bound: Vec<TcpListener> =
                chosen.iter().filter_map(|p| TcpListener::bind((ip, *p)).ok()).collect();
            if bound.len() == ports {
                ips.push(ip.to_string());
                held.extend(bound);
            }
        }
        if ips.len() == addresses {
            return Loopback { ips, ports: chosen };
        }
    }
    panic!("no {addresses} loopback addresses with {ports} free ports in common");
}

/// `127.0.0.1:PORT` where nothing listens, for tests that need a connection refused (a
/// ZooKeeper or API server that is not there). The port is held by a socket that is bound but
/// never listens, kept for the life of the test binary: a connection gets a reset at once, and
/// no other process of a shared machine can start listening there meanwhile (a fixed "unused"
/// port such as 9 or 1 may be served by something else).
pub fn refusing_addr() -> &'static str {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket,
    };
    static HELD: std::sync::OnceLock<(std::os::fd::OwnedFd, String)> = std::sync::OnceLock::new();
    &HELD
        .get_or_init(|| {
            let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                .expect("a TCP socket");
            bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0))
                .expect("bind an ephemeral port");
            let local: SockaddrIn =
                getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).expect("its address");
            (fd, format!("127.0.0.1:{}", local.port()))
        })
        .1
}

/// Resident memory of a process in KiB, from /proc/PID/status: `rss` (VmRSS) = `anon` (its own
/// private memory) + `file` (mapped file pages, mostly the static binary's code: clean, shared by
/// every `ocho` process and reclaimable) + shmem. Zeros when the process is gone.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory { rss: field("VmRSS:"), anon: field("RssAnon:"), file: field("RssFile:") }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} KiB (private {} KiB + binary and other files {} KiB)",
            self.rss, self.anon, self.file
        )
    }
}

/// Open descriptors and threads of a process.
pub fn usage(pid: i32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (fds, threads)
}

/// Fails (never skips) when ZooKeeper's jars are missing, with the install hint.
pub fn require_zookeeper() {
    for jar in ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"] {
        assert!(
            std::path::Path::new(jar).is_file(),
            "{jar} missing: install Debian package zookeeper (make deps)"
        );
    }
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    closed: usize,
}

/// A child process owned by a test. Its stdout and stderr are collected line by line (merged,
/// in arrival order). Dropping it sends SIGTERM to its process group, waits up to 10 s, then
/// SIGKILLs the group and reaps the child.
pub struct Proc {
    pub name: String,
    child: Child,
    out: Arc<(Mutex<Output>, Condvar)>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` in a process group of its own with piped output.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let streams: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for stream in streams {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let (lock, cv) = &*out;
                    lock.lock().unwrap().lines.push(line);
                    cv.notify_all();
                }
                let (lock, cv) = &*out;
                lock.lock().unwrap().closed += 1;
                cv.notify_all();
            });
        }
        Proc { name: name.to_string(), child, out, status: None }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Every line printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.out.0.lock().unwrap().lines.clone()
    }

    /// The last lines, for failure messages.
    pub fn tail(&self) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until a line (any line so far, not only new ones) satisfies `pred`; returns it.
    /// Panics with the output tail at the deadline or when the output closes first.
    pub fn wait_for(&self, what: &str, deadline: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_nth(what, 1, deadline, pred)
    }

    /// Waits until `n` lines satisfy `pred`; returns the n-th.
    pub fn wait_for_nth(
        &self,
        what: &str,
        n: usize,
        deadline: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let end = Instant::now() + deadline;
        let (lock, cv) = &*self.out;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(line) = out.lines.iter().filter(|l| pred(l)).nth(n - 1) {
                return line.clone();
            }
            let now = Instant::now();
            if now >= end || out.closed == 2 {
                let tail = out.lines[out.lines.len().saturating_sub(40)..].join("\n");
                panic!(
                    "{}: {} waiting for {what}; output tail:\n{tail}",
                    self.name,
                    if now >= end { "deadline passed" } else { "output closed" }
                );
            }
            out = cv.wait_timeout(out, end - now).unwrap().0;
        }
    }

    /// Waits for a line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, deadline: Duration) -> String {
        self.wait_for(needle, deadline, |l| l.contains(needle))
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("signal the child");
    }

    /// Waits for the process to exit, up to `deadline`; `None` if it is still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                self.drained(Duration::from_secs(2));
                return self.status;
            }
            if Instant::now() >= end {
                return None;
            }
            // Exit polling (not readiness): the child's status is only observable this way
            // without a reaper thread.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to `bound`) until both output pipes have closed, so that [`Proc::lines`] holds
    /// everything an exited process wrote: its reader threads may still be draining them when
    /// the exit is seen. A descendant that keeps a pipe open only makes this wait `bound`.
    fn drained(&self, bound: Duration) {
        let end = Instant::now() + bound;
        let (lock, cv) = &*self.out;
        let mut out = lock.lock().unwrap();
        while out.closed < 2 {
            let now = Instant::now();
            if now >= end {
                return;
            }
            out = cv.wait_timeout(out, end - now).unwrap().0;
        }
    }

    /// Like [`Proc::wait_exit`] but panics with the output tail when it does not exit.
    pub fn expect_exit(&mut self, deadline: Duration) -> ExitStatus {
        match self.wait_exit(deadline) {
            Some(status) => status,
            None => {
                panic!("{} did not exit in {deadline:?}; output tail:\n{}", self.name, self.tail())
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_some() {
            let _ = killpg(Pid::from_raw(self.pid()), Signal::SIGKILL);
            return;
        }
        let pgid = Pid::from_raw(self.pid());
        let _ = killpg(pgid, Signal::SIGTERM);
        if self.wait_exit(Duration::from_secs(10)).is_none() {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Whatever the leader left in its group.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Address of a ZooKeeper shared by every test of the binary. Started once from a thread that
/// lives until the process exits; `PR_SET_PDEATHSIG` in the child ends it with the test binary
/// (statics never run `Drop`).
pub fn shared_zookeeper() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        require_zookeeper();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            // Statics never run `Drop`, so this directory outlives the binary: it is named
            // after the process, and directories of processes that are gone are removed here.
            let tmp = std::env::temp_dir();
            remove_stale_shared_dirs(&tmp);
            let dir = tempfile::Builder::new()
                .prefix(&format!("{SHARED_PREFIX}{}-", std::process::id()))
                .tempdir_in(&tmp)
                .unwrap();
            let port = free_port();
            let proc = start_zookeeper(port, dir.path(), true);
            tx.send(format!("127.0.0.1:{port}")).unwrap();
            let _keep = (proc, dir);
            loop {
                std::thread::park();
            }
        });
        rx.recv().unwrap()
    })
}

/// Prefix of the shared ZooKeeper's data directories: `<prefix><pid>-<random>`.
const SHARED_PREFIX: &str = "ocho-test-shared-zk-";

/// Removes the shared ZooKeeper directories left by test binaries that have exited.
fn remove_stale_shared_dirs(tmp: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SHARED_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // Signal 0 checks existence only; ESRCH: no such process.
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts `ocho init --no-portal` serving ZooKeeper on 127.0.0.1:`port` with data in `dir`, and
/// waits until it serves.
pub fn start_zookeeper(port: u16, dir: &std::path::Path, die_with_thread: bool) -> Proc {
    start_zookeeper_on("127.0.0.1", port, dir, die_with_thread)
}

/// Like [`start_zookeeper`], serving on `ip`.
pub fn start_zookeeper_on(
    ip: &str,
    port: u16,
    dir: &std::path::Path,
    die_with_thread: bool,
) -> Proc {
    let mut cmd = ocho();
    cmd.args(["init", "--no-portal", "--zk-bind", ip, "--zk-heap", "128m"])
        .args(["--grace", "10", "--zk-port", &port.to_string()])
        .arg("--zk-data")
        .arg(dir);
    if die_with_thread {
        // SAFETY: prctl is async-signal-safe and the closure allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let proc = Proc::spawn("zookeeper", cmd);
    proc.wait_for_line("zookeeper ready on", Duration::from_secs(90));
    proc
}

/// A real ZooKeeper for one test (or one test binary), on a free loopback port with its data in
/// a temporary directory, supervised by `ocho init --no-portal`.
pub struct ZooKeeper {
    pub addr: String,
    pub port: u16,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl ZooKeeper {
    pub fn start() -> ZooKeeper {
        require_zookeeper();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let proc = start_zookeeper(port, &dir.path().join("data"), false);
        ZooKeeper { addr: format!("127.0.0.1:{port}"), port, proc, dir }
    }
}
