//! `ocho cli`'s REPL on a real terminal (a pty whose slave is the REPL's controlling terminal,
//! so that Ctrl-C is a SIGINT as at a keyboard), against a real portal: Ctrl-C cancels the
//! running tool (the portal's tool process group is gone) and the prompt comes back; at an empty
//! prompt it says how to leave and a second one leaves; Tab completes tool names and options
//! from the portal's `/tools`; globs are expanded on the operator's machine.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::support;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use support::portal::Portal;
use support::{DEADLINE, ocho};

/// An `ocho cli` REPL on a pty; `Drop` kills and reaps it.
struct Term {
    child: std::process::Child,
    master: std::fs::File,
    screen: Arc<Mutex<String>>,
    _home: tempfile::TempDir,
}

impl Term {
    /// Starts `ocho cli <args>` in `dir` as the session leader of a new pty.
    fn start(args: &[&str], dir: &std::path::Path) -> Term {
        let home = tempfile::tempdir().unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = || Stdio::from(pty.slave.as_fd().try_clone_to_owned().unwrap());
        let mut cmd = ocho();
        cmd.arg("cli")
            .args(args)
            .current_dir(dir)
            .env("HOME", home.path())
            .env("TERM", "xterm")
            .env_remove("OCHOPOD_PROXY")
            .env_remove("OCHOPOD_TOKEN")
            .stdin(slave())
            .stdout(slave())
            .stderr(slave());
        // SAFETY: setsid and ioctl are async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                // The pty (stdin) becomes the controlling terminal: Ctrl-C sends SIGINT.
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(pty.slave);
        let screen = Arc::new(Mutex::new(String::new()));
        let master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone().unwrap();
        let copy = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last slave descriptor closes: the end.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                copy.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Term { child, master, screen, _home: home }
    }

    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Waits until `what` shows `n` times on the screen.
    fn wait(&self, what: &str, n: usize) {
        self.wait_until(&format!("{what:?} x{n}"), |s| s.matches(what).count() >= n);
    }

    /// Waits until `what` shows after the last `marker` (a prompt after an output line: the
    /// editor redraws the prompt on every key, so prompts cannot be counted).
    fn wait_after(&self, marker: &str, what: &str) {
        self.wait_until(&format!("{what:?} after {marker:?}"), |s| {
            s.rfind(marker).is_some_and(|i| s[i + marker.len()..].contains(what))
        });
    }

    fn wait_until(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let end = Instant::now() + DEADLINE;
        while !pred(&self.screen()) {
            assert!(Instant::now() < end, "no {what} on the screen:\n{}", self.screen());
            // Screen polling: the output arrives through the reader thread.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits for the exit, up to the deadline.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < end, "the REPL did not exit:\n{}", self.screen());
            // Exit polling: no readiness involved.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')))
}

fn wait_for(what: &str, probe: impl Fn() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !probe() {
        assert!(Instant::now() < end, "{what} did not happen in {DEADLINE:?}");
        // State polling on /proc: no readiness involved.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_cancels_the_running_tool_and_the_prompt_comes_back() {
    let portal = Portal::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut term = Term::start(&[&portal.addr], dir.path());
    term.wait(" > ", 1);
    term.send("args --sleep 600 --helper x\r");
    term.wait("helper pid ", 1);
    let screen = term.screen();
    let helper: i32 = screen
        .split("helper pid ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tools = portal.children();
    assert_eq!(tools.len(), 1, "the tool runs: {tools:?}");
    assert!(alive(helper));

    term.send("\x03");
    term.wait_after("^C (cancelled)", " > ");
    // The portal saw its client go and killed the tool's process group.
    wait_for("the tool's end", || portal.children().is_empty() && !alive(helper));

    // The session goes on.
    term.send("args after\r");
    term.wait_after("arg 1: after", " > ");

    // Ctrl-C on a line being typed drops it; on an empty line it says how to leave; a second
    // one in a row leaves.
    term.send("args dropped\x03");
    term.wait_after("dropped\x1b[K^C", " > ");
    term.send("\x03");
    term.wait("press Ctrl-C again", 1);
    term.send("\x03");
    let status = term.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", term.screen());
    assert!(!term.screen().contains("arg 1: dropped"), "{}", term.screen());
    assert_eq!(term.screen().matches("press Ctrl-C again").count(), 1);
}

/// Tab completes from the portal's `/tools`: a tool name, an option, and lists several
/// candidates when they share nothing more.
#[test]
fn tab_completes_tools_and_options_from_the_portal() {
    let portal = Portal::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.yml"), "").unwrap();
    let mut term = Term::start(&[&portal.addr], dir.path());
    term.wait(" > ", 1);
    term.send("gr\t");
    term.wait(" > grep \x1b[K", 1);
    term.send("--j\t");
    term.wait(" > grep --json \x1b[K", 1);
    term.send("\x15l\t");
    term.wait_until("ls and log listed", |s| s.lines().any(|l| l.trim() == "log  ls"));
    term.send("\x15deploy w\t");
    term.wait(" > deploy web.yml \x1b[K", 1);
    term.send("\x15\x04");
    assert_eq!(term.wait_exit().code(), Some(0), "{}", term.screen());
    let asked = portal.proc.lines().iter().filter(|l| l.contains("GET /tools")).count();
    // One for the banner's whoami, one for the tools (kept for the session).
    assert!(asked <= 2, "asked /tools {asked} times");
}

/// A glob in a file argument is expanded here and every match uploaded, in the REPL as in one
/// shot; one that matches nothing is refused before anything is sent; a cluster glob is left
/// alone.
#[test]
fn file_globs_are_expanded_locally_and_every_match_uploaded() {
    let portal = Portal::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let good =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/definitions/good");
    for name in ["minimal.yaml", "zookeeper.yaml"] {
        std::fs::copy(good.join(name), dir.path().join(name)).unwrap();
    }
    let mut one = ocho();
    one.args(["cli", &portal.addr, "deploy", "--dry-run", "*.yaml"])
        .current_dir(dir.path())
        .env_remove("OCHOPOD_PROXY")
        .env_remove("OCHOPOD_TOKEN");
    let ran = one.output().unwrap();
    let out = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(ran.status.code(), Some(0), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(out.matches("kind: ReplicationController").count(), 2, "{out}");

    let mut none = ocho();
    none.args(["cli", &portal.addr, "deploy", "--dry-run", "*.json"])
        .current_dir(dir.path())
        .env_remove("OCHOPOD_PROXY")
        .env_remove("OCHOPOD_TOKEN");
    let ran = none.output().unwrap();
    let err = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{err}");
    assert!(err.contains("*.json: no file matches"), "{err}");
    let sent = portal.proc.lines().iter().filter(|l| l.contains("POST /shell deploy")).count();
    assert_eq!(sent, 1, "the refused line must not be sent");

    let mut term = Term::start(&[&portal.addr], dir.path());
    term.wait(" > ", 1);
    term.send("deploy --dry-run z*.yaml\r");
    term.wait("kind: ReplicationController", 1);
    term.send("args z*\r");
    term.wait("arg 1: z*", 1);
    term.send("deploy *.txt\r");
    term.wait("*.txt: no file matches", 1);
    term.send("\x04");
    assert_eq!(term.wait_exit().code(), Some(2), "{}", term.screen());
}
