//! `ocho cli` against a real portal: one-shot exit codes, streamed stdout/stderr, uploads of
//! local files under their base names (duplicates refused), the REPL, and clear messages for an
//! unreachable proxy, refused credentials and a reply that is not JSON.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use support::portal::Portal;
use support::{DEADLINE, free_port, ocho};

/// A child whose stdio the test set up itself; `Drop` kills and reaps it.
struct Owned(std::process::Child);

impl Owned {
    /// Waits for the exit, up to the deadline (then panics; `Drop` kills).
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < end, "child did not exit in {DEADLINE:?}");
            // Exit polling: no readiness involved.
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
}

/// Runs `ocho cli <args>` with `env` and `stdin`, killing it at the deadline.
fn cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Ran {
    let mut cmd = ocho();
    let home = tempfile::tempdir().unwrap();
    cmd.arg("cli")
        .args(args)
        .env_remove("OCHOPOD_PROXY")
        .env_remove("OCHOPOD_TOKEN")
        .env("HOME", home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let readers: [Box<dyn Read + Send>; 2] =
        [Box::new(child.stdout.take().unwrap()), Box::new(child.stderr.take().unwrap())];
    let mut pipes = readers.into_iter().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        })
    });
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ocho cli {args:?} did not finish in {DEADLINE:?}");
        }
        // Exit polling: no readiness involved.
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let out = pipes.next().unwrap().join().unwrap();
    let err = pipes.next().unwrap().join().unwrap();
    Ran { code: status.code(), out, err }
}

#[test]
fn one_shot_streams_output_and_exits_with_the_tools_code() {
    let portal = Portal::start(&[], &[]);
    let ran = cli(&[&portal.addr, "args", "--stderr", "--exit", "3", "a b", "$(id)"], &[], "");
    assert_eq!(ran.code, Some(3), "{}", ran.err);
    assert_eq!(ran.out, "arg 1: a b\narg 2: $(id)\n");
    assert_eq!(ran.err, "err: a b\nerr: $(id)\n");

    let ran = cli(&["args", "ok"], &[("OCHOPOD_PROXY", &format!("http://{}", portal.addr))], "");
    assert_eq!((ran.code, ran.out.as_str()), (Some(0), "arg 1: ok\n"), "{}", ran.err);

    let ran = cli(&[&portal.addr, "nope"], &[], "");
    assert_eq!(ran.code, Some(2));
    assert!(ran.err.contains("unknown tool 'nope'"), "{}", ran.err);

    let ran = cli(&["--timeout", "1", &portal.addr, "args", "--sleep", "600", "x"], &[], "");
    assert_eq!(ran.code, Some(143), "{}", ran.err);
    assert!(ran.err.contains("deadline of 1s passed"), "{}", ran.err);
}

#[test]
fn local_files_are_uploaded_under_their_base_names() {
    let portal = Portal::start(&[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis.yml");
    std::fs::write(&file, "kind: redis\n").unwrap();
    let path = file.display().to_string();
    let ran = cli(&[&portal.addr, "args", "--json", &path, "-p", "3"], &[], "");
    assert_eq!(ran.code, Some(0), "{}", ran.err);
    let seen: serde_json::Value = serde_json::from_str(ran.out.trim()).unwrap();
    assert_eq!(seen["args"], serde_json::json!(["redis.yml", "-p", "3"]));
    assert_eq!(seen["files"], serde_json::json!([{"name": "redis.yml", "bytes": 12}]));

    std::fs::create_dir(dir.path().join("other")).unwrap();
    let twin = dir.path().join("other/redis.yml");
    std::fs::write(&twin, "x").unwrap();
    let ran = cli(&[&portal.addr, "args", &path, &twin.display().to_string()], &[], "");
    assert_eq!(ran.code, Some(2), "{}", ran.err);
    assert!(ran.err.contains("would both upload as 'redis.yml'"), "{}", ran.err);
    let sent = portal.proc.lines().iter().filter(|l| l.contains("POST /shell args")).count();
    assert_eq!(sent, 1, "the refused line must not be sent");
}

#[test]
fn the_repl_runs_lines_keeps_history_and_leaves_on_exit_or_eof() {
    let portal = Portal::start(&[], &[]);
    let ran = cli(
        &[&portal.addr],
        &[],
        "args 'one two'\n\nhistory\n!!\nargs --exit 4\nexit\nargs never\n",
    );
    assert_eq!(ran.code, Some(4), "{}", ran.err);
    assert_eq!(ran.out, "arg 1: one two\n   1  args 'one two'\narg 1: one two\n");
    // A failed line's exit status is shown (on stderr), once.
    assert_eq!(ran.err.matches("(exit 4)").count(), 1, "{}", ran.err);
    assert!(!ran.err.contains("(exit 0)"), "{}", ran.err);
    let ran = cli(&[&portal.addr], &[], "args last\n");
    assert_eq!((ran.code, ran.out.as_str()), (Some(0), "arg 1: last\n"));
}

#[test]
fn clear_messages_for_no_proxy_unreachable_refused_and_non_json() {
    let ran = cli(&[], &[], "");
    assert_eq!(ran.code, Some(2));
    assert!(ran.err.contains("OCHOPOD_PROXY"), "{}", ran.err);

    let port = free_port();
    let ran = cli(&[&format!("127.0.0.1:{port}"), "args"], &[], "");
    assert_eq!(ran.code, Some(1));
    assert!(
        ran.err.contains("cannot reach the portal") && ran.err.contains("is the proxy running?"),
        "{}",
        ran.err
    );

    let portal = Portal::start(&[], &[("OCHO_TOKEN", "s3cret")]);
    let ran = cli(&[&portal.addr, "args", "x"], &[], "");
    assert_eq!(ran.code, Some(1));
    assert!(ran.err.contains("requires a token: set $OCHOPOD_TOKEN"), "{}", ran.err);
    let ran = cli(&[&portal.addr, "args", "x"], &[("OCHOPOD_TOKEN", "wrong")], "");
    assert!(ran.err.contains("refused the token"), "{}", ran.err);
    let ran = cli(&[&portal.addr, "args", "x"], &[("OCHOPOD_TOKEN", "s3cret")], "");
    assert_eq!((ran.code, ran.out.as_str()), (Some(0), "arg 1: x\n"), "{}", ran.err);

    // Something that is not a portal answers with HTML.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).unwrap();
        conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<h1>bad</h1>\n").unwrap();
    });
    let ran = cli(&[&addr, "args"], &[], "");
    server.join().unwrap();
    assert_eq!(ran.code, Some(1));
    assert!(ran.err.contains("HTTP 502, not JSON"), "{}", ran.err);
}

/// On a terminal (a pty here) the REPL edits lines: ↑ recalls the last line, Backspace
/// deletes, Ctrl-D leaves; history lands in ~/.ocho_cli_history.
#[test]
fn the_repl_on_a_terminal_edits_lines_and_recalls_history_with_the_arrow_keys() {
    use std::os::fd::AsFd;
    let portal = Portal::start(&[], &[]);
    let home = tempfile::tempdir().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = |_: ()| Stdio::from(pty.slave.as_fd().try_clone_to_owned().unwrap());
    let mut cmd = ocho();
    cmd.args(["cli", &portal.addr])
        .env("HOME", home.path())
        .env_remove("OCHOPOD_PROXY")
        .env_remove("OCHOPOD_TOKEN")
        .stdin(slave(()))
        .stdout(slave(()))
        .stderr(slave(()));
    let mut child = Owned(cmd.spawn().unwrap());
    drop(pty.slave);
    let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let copy = std::sync::Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once the last slave descriptor closes: the end.
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            copy.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_screen = |what: &str, n: usize| {
        let end = Instant::now() + DEADLINE;
        while screen.lock().unwrap().matches(what).count() < n {
            assert!(
                Instant::now() < end,
                "no {what:?} x{n} on the screen:\n{}",
                screen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_screen(" > ", 1);
    master.write_all(b"args onx\x7fe\r").unwrap();
    wait_screen("arg 1: one", 1);
    master.write_all(b"\x1b[A\r").unwrap();
    wait_screen("arg 1: one", 2);
    master.write_all(b"\x04").unwrap();
    let status = child.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", screen.lock().unwrap());
    let saved = std::fs::read_to_string(home.path().join(".ocho_cli_history")).unwrap();
    assert_eq!(saved, "args one\n");
}
