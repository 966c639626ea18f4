//! Running one tool for one request: re-exec `/proc/self/exe` (arg0 `ocho`) with the validated
//! argv, in the request's temporary directory, stdin `/dev/null`, an allow-listed environment,
//! in a process group of its own and with a clean signal mask (`supervise::child::spawn`).
//! stdout and stderr are drained concurrently line by line (no pipe deadlock: docs/architecture.md
//! §7.3) and capped; the deadline, the output cap and a vanished client each end the whole group
//! with SIGTERM, then SIGKILL after a grace. The child is waited by pid, never with `waitpid(-1)`
//! (docs/platform.md §4.3). The temporary directory itself belongs to the caller.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::supervise::child;

/// Environment variables a tool may see; everything else (the portal's token included) is
/// dropped. ZooKeeper hosts, Kubernetes access, the proxy's namespace, and what any process
/// needs to behave (PATH, locale, time zone).
pub const ENV_ALLOWED: &[&str] = &[
    "OCHOPOD_ZK",
    // Where deployed pods reach ZooKeeper (deploy writes it into their ochopod_zk).
    "OCHO_ZK_PUBLIC",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "KUBERNETES_SERVICE_PORT",
    "KUBERNETES_SERVICE_PORT_HTTPS",
    "OCHO_NAMESPACE",
    "POD_NAMESPACE",
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "RUST_BACKTRACE",
];

/// Between SIGTERM and SIGKILL of a tool's process group.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// The grace of the tools that finish a cleanup or rollback when interrupted
/// (`tools::interrupt`): deleting an RC or scaling one back takes a few API calls, each
/// bounded by the client's timeouts in practice well under this. It fits in the portal's
/// share of init's shutdown grace (15 of the default 20 s).
pub const MUTATION_GRACE: Duration = Duration::from_secs(10);

/// The kill grace a tool gets: [`MUTATION_GRACE`] for the tools that clean up when
/// interrupted, [`KILL_GRACE`] for the rest.
pub fn kill_grace(mode: &crate::cli::Mode) -> Duration {
    use crate::cli::Mode;
    match mode {
        Mode::Deploy(_) | Mode::Scale(_) | Mode::Bump(_) => MUTATION_GRACE,
        _ => KILL_GRACE,
    }
}

/// A line longer than this is passed on in pieces (a single line cannot hold memory hostage).
const MAX_LINE: u64 = 64 * 1024;

/// How often `interrupt` (client still there? portal stopping?) is polled.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Per-request limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: Duration,
    /// stdout + stderr bytes; past it the tool is killed.
    pub max_output: usize,
    /// Between SIGTERM and SIGKILL ([`kill_grace`]).
    pub kill_grace: Duration,
}

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    /// The name used in replies (`"out"`, `"err"`).
    pub fn name(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// Why the portal ended a tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Killed {
    Deadline,
    Output,
    Disconnect,
    /// The portal is stopping and the drain period is over.
    Shutdown,
}

impl Killed {
    /// The note appended to the tool's stderr in the reply.
    pub fn describe(self, limits: &Limits) -> String {
        match self {
            Killed::Deadline => {
                format!("portal: deadline of {}s passed, tool killed", limits.timeout.as_secs_f64())
            }
            Killed::Output => {
                format!("portal: output over {} bytes, tool killed", limits.max_output)
            }
            Killed::Disconnect => "portal: client disconnected, tool killed".into(),
            Killed::Shutdown => "portal: shutting down, tool stopped".into(),
        }
    }

    /// Short name for replies and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Killed::Deadline => "deadline",
            Killed::Output => "output",
            Killed::Disconnect => "disconnect",
            Killed::Shutdown => "shutdown",
        }
    }
}

/// How one run ended.
#[derive(Debug)]
pub struct ToolRun {
    /// Exit code, or 128 + signal number.
    pub code: i32,
    pub elapsed: Duration,
    pub killed: Option<Killed>,
}

/// Runs `ocho <argv…>` in `dir`, with `env` added to the allow-listed environment. Each output line (with its newline) goes to `sink`, which
/// returns false when it can no longer deliver (the client is gone). `interrupt` is polled a few
/// times a second, also while the tool is silent: a reason to end the tool (the client left,
/// the portal is shutting down) or `None`.
pub fn run(
    argv: &[String],
    dir: &Path,
    limits: &Limits,
    env: &[(&str, String)],
    interrupt: &dyn Fn() -> Option<Killed>,
    sink: &mut dyn FnMut(Stream, &[u8]) -> bool,
) -> Result<ToolRun> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("ocho")
        .args(argv)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in ENV_ALLOWED {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    // Every file the tool reads because of an argument must be one of the request's.
    cmd.env(crate::confine::ENV, dir);
    // Set by the portal for this request (the token's scope): the client controls argv only.
    for (name, value) in env {
        cmd.env(name, value);
    }
    let started = Instant::now();
    // die_with_parent: the request thread waits for this child, so the child outlives the
    // thread only if the portal itself dies, and then it should die too.
    let mut tool = child::spawn(
        &mut cmd,
        argv.first().map_or("tool", String::as_str),
        child::Opts { own_group: true, die_with_parent: true },
    )?;
    let group = Pid::from_raw(tool.id() as i32);
    let (tx, rx) = mpsc::channel::<(Stream, Option<Vec<u8>>)>();
    let pipes: [(Stream, Box<dyn Read + Send>); 2] = [
        (Stream::Out, Box::new(tool.stdout.take().expect("stdout is piped"))),
        (Stream::Err, Box::new(tool.stderr.take().expect("stderr is piped"))),
    ];
    for (stream, pipe) in pipes {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            loop {
                let mut line = Vec::new();
                match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send((stream, Some(line))).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send((stream, None));
        });
    }
    drop(tx);

    let deadline = started + limits.timeout;
    let mut open = 2;
    let mut total = 0usize;
    let mut status: Option<ExitStatus> = None;
    let mut killed: Option<Killed> = None;
    let mut term_sent: Option<Instant> = None;
    let mut next_probe = started + PROBE_EVERY;
    let mut nap = Duration::from_micros(200);
    let stop = |why: Killed, killed: &mut Option<Killed>, term_sent: &mut Option<Instant>| {
        if killed.is_none() {
            *killed = Some(why);
            *term_sent = Some(Instant::now());
            let _ = killpg(group, Signal::SIGTERM);
        }
    };
    loop {
        if open > 0 {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((stream, Some(line))) => {
                    total += line.len();
                    match killed {
                        None => {
                            if total > limits.max_output {
                                stop(Killed::Output, &mut killed, &mut term_sent);
                            } else if !sink(stream, &line) {
                                stop(Killed::Disconnect, &mut killed, &mut term_sent);
                            }
                        }
                        // What a tool says while it cleans up after the deadline or a shutdown
                        // (`deploy --wait --strict` deleting its RC) belongs in the reply; not
                        // past the output budget, and there is no one to tell after a
                        // disconnect.
                        Some(Killed::Deadline | Killed::Shutdown) if total <= limits.max_output => {
                            let _ = sink(stream, &line);
                        }
                        Some(_) => {}
                    }
                }
                Ok((_, None)) => open -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = 0,
            }
        } else if status.is_none() {
            // Both pipes closed: the tool is exiting (or closed them and goes on running).
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
        if status.is_none() {
            status = tool
                .try_wait()
                .map_err(|source| Error::io("wait for tool", "/proc/self/exe", source))?;
            if status.is_some() {
                // Whatever the tool left in its group (the group cannot be reused while it has
                // members) would hold the pipes open: end it.
                let _ = killpg(group, Signal::SIGKILL);
            }
        }
        if status.is_some() && open == 0 {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            stop(Killed::Deadline, &mut killed, &mut term_sent);
        }
        if now >= next_probe {
            next_probe = now + PROBE_EVERY;
            if let Some(why) = interrupt().filter(|_| killed.is_none()) {
                stop(why, &mut killed, &mut term_sent);
            }
        }
        if term_sent.is_some_and(|t| now >= t + limits.kill_grace) {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
    let status = status.expect("the loop ends only after the tool was waited for");
    Ok(ToolRun { code: crate::error::exit::of_status(status), elapsed: started.elapsed(), killed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_that_clean_up_when_interrupted_get_the_longer_grace() {
        let grace = |line: &[&str]| match crate::cli::parse_words(line) {
            crate::cli::Parsed::Run(mode) => kill_grace(&mode),
            crate::cli::Parsed::Print { text, .. } => panic!("{text}"),
        };
        assert_eq!(grace(&["deploy", "a.yml", "--wait", "--strict"]), MUTATION_GRACE);
        assert_eq!(grace(&["scale", "web", "-f", "@2"]), MUTATION_GRACE);
        assert_eq!(grace(&["bump", "web", "-r", "2"]), MUTATION_GRACE);
        assert_eq!(grace(&["grep"]), KILL_GRACE);
        assert!(MUTATION_GRACE > KILL_GRACE);
    }
}
