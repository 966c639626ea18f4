//! `ocho cli` against a real portal: one-shot exit codes, streamed stdout/stderr, uploads of
//! local files under their base names (duplicates refused), the REPL, and clear messages for an
//! unreachable proxy, refused credentials and a reply that is not JSON.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Instant;

use support::portal::Portal;
use support::{DEADLINE, free_port, ocho};

struct Ran {
    code: Option<i32>,
    out: String,
    err: String,
}

/// Runs `ocho cli <args>` with `env` and `stdin`, killing it at the deadline.
fn cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Ran {
    let mut cmd = ocho();
    cmd.arg("cli").args(args).env_remove("OCHOPOD_PROXY").env_remove("OCHOPOD_TOKEN");
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
