//! `ocho portal` over real HTTP: tool lines reach the tool literally, uploads are sanitised and
//! capped, deadlines, output limits and vanished clients end the tool's whole process group, the
//! concurrency limit answers 503 without disturbing requests in flight, credentials, streaming,
//! and nothing (temporary directory, zombie) is left behind. Also under `ocho init`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::support;

use support::portal::{multipart, percent};

use std::time::Duration;

use nix::sys::signal::Signal;
use support::portal::{Client, Events, Portal, children_of, running, wait_until};
use support::{DEADLINE, Proc, free_port, ocho};

fn args_json(reply: &support::portal::Reply) -> serde_json::Value {
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    serde_json::from_str(body["out"].as_str().unwrap().lines().next().unwrap()).unwrap()
}

#[test]
fn shell_metacharacters_reach_the_tool_literally() {
    let portal = Portal::start(&[], &[]);
    let corpus = [
        "$(id)", "`id`", ";", "|", "||", "&&", "&", ">", ">>out", "<in", "*", "?", "[a-z]", "~",
        "#comment", "$HOME", "${PATH}", "{a,b}", "!!", "a\\b", "\"", "'", "\t",
    ];
    // Each word quoted for the splitter: single quotes, with ' written as '\''.
    let line = std::iter::once("args --json".to_string())
        .chain(corpus.iter().map(|w| format!("'{}'", w.replace('\'', r"'\''"))))
        .collect::<Vec<_>>()
        .join(" ");
    let seen = args_json(&portal.shell(&line, &[]));
    assert_eq!(seen["args"], serde_json::json!(corpus));

    // Unquoted metacharacters too, and the same through GET /shell?line=.
    let line = "args --json $(touch pwned) ; rm -rf / | cat > x `id` *";
    let expected = ["$(touch", "pwned)", ";", "rm", "-rf", "/", "|", "cat", ">", "x", "`id`", "*"];
    assert_eq!(args_json(&portal.shell(line, &[]))["args"], serde_json::json!(expected));
    let get = portal.request("GET", &format!("/shell?line={}", percent(line)), &[], b"");
    assert_eq!(args_json(&get)["args"], serde_json::json!(expected));
    assert!(portal.leftovers().is_empty(), "{:?}", portal.leftovers());
}

fn upload(portal: &Portal, line: &str, parts: &[(&str, &[u8])]) -> support::portal::Reply {
    let (content_type, body) = multipart(parts);
    portal.request("POST", "/shell", &[("X-Shell", line), ("Content-Type", &content_type)], &body)
}

#[test]
fn uploads_are_saved_under_plain_names_only() {
    let portal = Portal::start(&["--max-upload", "1000"], &[]);
    let seen = args_json(&upload(
        &portal,
        "args --json redis",
        &[("redis", b"kind: x\n"), ("b.yml", b"")],
    ));
    assert_eq!(
        seen["files"],
        serde_json::json!([{"name": "b.yml", "bytes": 0}, {"name": "redis", "bytes": 8}])
    );

    let outside = portal.tmp.path().join("escaped");
    let absolute = outside.display().to_string();
    for name in
        ["../escaped", "", ".hidden", ".", "..", "a/b", absolute.as_str(), "sub/../../escaped"]
    {
        let reply = upload(&portal, "args", &[("fine", b"1"), (name, b"payload")]);
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.text());
        assert!(reply.json()["err"].as_str().unwrap().contains("refused"), "{}", reply.text());
    }
    let reply = upload(&portal, "args", &[("same", b"1"), ("same", b"2")]);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("given twice"), "{}", reply.text());
    assert!(!outside.exists());

    // Over --max-upload: refused from Content-Length, and while reading a body that lies about
    // nothing but is simply too big for the cap once framing is discounted.
    let big = vec![b'x'; 200_000];
    let reply = upload(&portal, "args", &[("big", &big)]);
    assert_eq!(reply.status, 413, "{}", reply.text());
    let reply = upload(&portal, "args", &[("a", &[b'x'; 600]), ("b", &[b'y'; 600])]);
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert!(portal.leftovers().is_empty(), "{:?}", portal.leftovers());
}

#[test]
fn the_deadline_ends_the_tool_and_its_grandchildren() {
    let portal = Portal::start(&[], &[]);
    let reply = portal.shell("args --sleep 600 --helper", &[("X-Timeout", "1")]);
    assert_eq!(reply.status, 408, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["ok"], false);
    assert_eq!(body["killed"], "deadline");
    assert!(body["err"].as_str().unwrap().contains("deadline"), "{body}");
    let out = body["out"].as_str().unwrap();
    let helper: i32 =
        out.trim().strip_prefix("helper pid ").expect("helper pid line").parse().unwrap();
    wait_until("the helper (grandchild) to die", || !running(helper));
    assert!(portal.children().is_empty());
    assert!(portal.leftovers().is_empty(), "{:?}", portal.leftovers());
}

#[test]
fn output_over_the_limit_kills_the_tool_and_says_so() {
    let portal = Portal::start(&["--max-output", "10000"], &[]);
    let reply = portal.shell("args --repeat 1000000 --sleep 600 0123456789", &[]);
    let body = reply.json();
    assert_eq!(reply.status, 200, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["killed"], "output");
    assert!(body["err"].as_str().unwrap().contains("output over 10000 bytes"), "{body}");
    assert!(body["out"].as_str().unwrap().len() <= 10000);
}

/// Closes `conn` with a reset (SO_LINGER 0), as a client killed with unread data does.
fn reset(conn: std::net::TcpStream) {
    let linger = nix::libc::linger { l_onoff: 1, l_linger: 0 };
    nix::sys::socket::setsockopt(&conn, nix::sys::socket::sockopt::Linger, &linger).unwrap();
    drop(conn);
}

#[test]
fn a_client_that_disconnects_gets_its_tool_killed() {
    let portal = Portal::start(&[], &[]);
    // Plain JSON request: the portal notices the reset on the connection itself.
    let conn = portal.open("POST", "/shell", &[("X-Shell", "args --sleep 600")], b"");
    wait_until("the tool to start", || !portal.children().is_empty());
    let tool = portal.children()[0];
    reset(conn);
    wait_until("the tool to be killed", || !running(tool));
    portal.proc.wait_for_line("POST /shell args 499", DEADLINE);

    // Streaming request: the helper's pid arrives first, then the client leaves.
    let conn = portal.open(
        "POST",
        "/shell",
        &[("X-Shell", "args --sleep 600 --helper"), ("Accept", "application/x-ndjson")],
        b"",
    );
    let mut events = Events::new(conn);
    let first = events.next().expect("first event");
    let helper: i32 =
        first["line"].as_str().unwrap().strip_prefix("helper pid ").unwrap().parse().unwrap();
    drop(events);
    wait_until("the streamed tool's helper to be killed", || !running(helper));
    wait_until("no child left", || portal.children().is_empty());
    wait_until("no temporary directory left", || portal.leftovers().is_empty());
}

#[test]
fn a_client_that_half_closes_still_gets_its_reply() {
    let portal = Portal::start(&[], &[]);
    let mut conn = portal.open("POST", "/shell", &[("X-Shell", "args --sleep 1 waited")], b"");
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut raw).unwrap();
    let reply = support::portal::Reply::parse(&raw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["out"], "arg 1: waited\n");
}

#[test]
fn over_the_concurrency_limit_is_503_while_requests_in_flight_finish() {
    let portal = std::sync::Arc::new(Portal::start(&["--max-concurrent", "2"], &[]));
    let mut running_requests = Vec::new();
    for _ in 0..2 {
        let portal = std::sync::Arc::clone(&portal);
        running_requests.push(std::thread::spawn(move || portal.shell("args --sleep 3 slow", &[])));
    }
    wait_until("two tools running", || portal.children().len() == 2);
    let busy = portal.shell("args fast", &[]);
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert_eq!(busy.header("retry-after"), Some("1"));
    // help is answered without a slot.
    assert_eq!(portal.shell("help", &[]).status, 200);
    for request in running_requests {
        let reply = request.join().unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["out"], "arg 1: slow\n");
    }
    assert_eq!(portal.shell("args after", &[]).status, 200);
    let metrics = portal.request("GET", "/metrics", &[], b"").text();
    assert!(metrics.contains("ocho_portal_rejected_total{reason=\"busy\"} 1"), "{metrics}");
    assert!(
        metrics.contains("ocho_portal_requests_total{tool=\"args\",status=\"200\"} 3"),
        "{metrics}"
    );
}

#[test]
fn streaming_sends_lines_as_the_tool_writes_them_then_the_exit() {
    let portal = Portal::start(&[], &[]);
    let conn = portal.open(
        "POST",
        "/shell",
        &[("X-Shell", "args --stderr --repeat 3 --exit 3 a b"), ("Accept", "application/x-ndjson")],
        b"",
    );
    let mut events = Events::new(conn);
    let mut all = Vec::new();
    while let Some(event) = events.next() {
        all.push(event);
    }
    let (exit, lines) = all.split_last().unwrap();
    assert_eq!(exit["exit"], 3, "{all:?}");
    let of = |stream: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["line"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(of("out"), ["arg 1: a", "arg 2: b"].repeat(3));
    assert_eq!(of("err"), ["err: a", "err: b"].repeat(3));

    // The first line arrives while the tool still runs.
    let conn = portal.open(
        "POST",
        "/shell",
        &[
            ("X-Shell", "args --sleep 600 first"),
            ("Accept", "application/x-ndjson"),
            ("X-Timeout", "600"),
        ],
        b"",
    );
    let mut events = Events::new(conn);
    assert_eq!(events.next().unwrap()["line"], "arg 1: first");
    let tools = portal.children();
    assert_eq!(tools.len(), 1);
    assert!(running(tools[0]));
    drop(events);
    wait_until("the tool to be killed", || !running(tools[0]));
}

#[test]
fn a_usage_error_found_by_the_tool_is_a_400_like_the_parsers() {
    let portal = Portal::start(&[], &[("OCHOPOD_ZK", support::refusing_addr())]);
    let ndjson = ("Accept", "application/x-ndjson");
    // The parser accepts `-i x`; the tool refuses it, before contacting anything.
    for headers in [vec![], vec![ndjson]] {
        let reply = portal.shell("ls -i x", &headers);
        assert_eq!(reply.status, 400, "{headers:?}: {}", reply.text());
        let body = reply.json();
        assert_eq!(body["code"], 2);
        assert_eq!(body["ok"], false);
        assert!(body["err"].as_str().unwrap().contains("-i takes pod seq numbers"), "{body}");
    }
    // The parser's own usage errors have the same status and shape.
    let reply = portal.shell("ls --no-such-option", &[ndjson]);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["code"], 2);
    // Its hint names the line as typed here, without `ocho`.
    let err = reply.json()["err"].as_str().unwrap().to_string();
    assert!(err.contains("run 'ls --help'") && !err.contains("'ocho ls --help'"), "{err}");

    // Once output has started, the stream is a 200 and the exit code its last line.
    let events = |line: &str| {
        let conn = portal.open("POST", "/shell", &[("X-Shell", line), ndjson], b"");
        let mut events = Events::new(conn);
        let mut all = Vec::new();
        while let Some(event) = events.next() {
            all.push(event);
        }
        all
    };
    let all = events("args --exit 2 a");
    assert_eq!(all[0]["line"], "arg 1: a", "{all:?}");
    assert_eq!(all.last().unwrap()["exit"], 2, "{all:?}");
    // A tool silent for longer than the head waits is streamed too (head first, then exit 2).
    let all = events("args --sleep 3 --exit 2");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["exit"], 2);

    // `ocho cli` exits 2 with the tool's message.
    let out = ocho().args(["cli", &portal.addr, "ls", "-i", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-i takes pod seq numbers"));
}

#[test]
fn tools_see_only_the_allowed_environment_and_exit_codes_are_reported() {
    let portal = Portal::start(
        &[],
        &[
            ("OCHOPOD_ZK", support::refusing_addr()),
            ("OCHO_ZK_PUBLIC", "zk.example:2181"),
            ("SECRET_THING", "x"),
        ],
    );
    let reply = portal.shell("args --json --env --exit 7", &[]);
    let body = reply.json();
    assert_eq!(reply.status, 200);
    assert_eq!(body["ok"], false);
    assert_eq!(body["code"], 7);
    let seen: serde_json::Value = serde_json::from_str(body["out"].as_str().unwrap()).unwrap();
    let env: Vec<&str> =
        seen["env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(env.contains(&"OCHOPOD_ZK") && env.contains(&"OCHO_ZK_PUBLIC"), "{env:?}");
    assert!(!env.contains(&"SECRET_THING") && !env.contains(&"TMPDIR"), "{env:?}");
}

#[test]
fn auth_off_warns_and_auth_on_needs_bearer_or_signature() {
    let open = Portal::start(&[], &[]);
    open.proc.wait_for_line("WARNING: no token", DEADLINE);
    assert_eq!(open.shell("help", &[]).status, 200);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "secret\n").unwrap();
    let portal =
        Portal::start(&["--token-file", file.to_str().unwrap(), "--legacy-signatures"], &[]);
    assert_eq!(portal.shell("help", &[]).status, 401);
    assert_eq!(portal.shell("help", &[("Authorization", "Bearer wrong")]).status, 403);
    assert_eq!(portal.shell("help", &[("Authorization", "Bearer secret")]).status, 200);
    // A signed line that is no tool: accepted, then 400. (Ochothon's own vector signs `ls`,
    // which is a tool since the tools branch; auth.rs checks that vector.)
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"secret");
    let hex: String = ring::hmac::sign(&key, b"no-such-tool")
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature = format!("sha1={hex}");
    let sig = ("X-Signature", signature.as_str());
    assert_eq!(portal.shell("no-such-tool", &[sig]).status, 400);
    assert_eq!(portal.shell("args", &[sig]).status, 403);
    assert_eq!(portal.request("GET", "/tools", &[], b"").status, 401);
    assert_eq!(portal.request("GET", "/healthz", &[], b"").status, 200);
    let log = portal.proc.lines().join("\n");
    assert!(!log.contains("WARNING"), "{log}");
    assert!(!log.contains("secret"), "the token leaked into the log:\n{log}");

    // OCHO_TOKEN works as well.
    let env = Portal::start(&[], &[("OCHO_TOKEN", "t0k")]);
    assert_eq!(env.shell("args", &[("Authorization", "Bearer t0k")]).status, 200);
    assert_eq!(env.shell("args", &[]).status, 401);
}

#[test]
fn tools_and_metrics_and_one_log_line_per_request() {
    let portal = Portal::start(&[], &[]);
    let tools = portal.request("GET", "/tools", &[], b"").json();
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"args"), "{names:?}");
    for mode in ["init", "portal", "cli", "zk-status"] {
        assert!(!names.contains(&mode), "{names:?}");
    }
    assert_eq!(portal.shell("args x", &[]).status, 200);
    let line = portal.proc.wait_for_line("POST /shell args 200 0 ", DEADLINE);
    assert!(
        line.ends_with("ms 9B"),
        "time, peer, method, path, tool, status, code, ms, bytes: {line}"
    );
    portal.proc.wait_for_line("GET /tools - 200", DEADLINE);
    let ready = portal.request("GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 503, "no OCHOPOD_ZK: not ready");
}

#[test]
fn no_temporary_directory_or_zombie_is_left_and_sigterm_drains() {
    let mut portal = Portal::start(&[], &[]);
    let slow = {
        let conn = portal.open("POST", "/shell", &[("X-Shell", "args --sleep 2 drained")], b"");
        wait_until("the tool to start", || !portal.children().is_empty());
        conn
    };
    for line in ["args a", "args --exit 2", "nope", "args --sleep 9 --helper"] {
        portal.shell(line, &[("X-Timeout", "1")]);
    }
    portal.proc.signal(Signal::SIGTERM);
    let mut reader = slow;
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut raw).unwrap();
    let reply = support::portal::Reply::parse(&raw);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["out"], "arg 1: drained\n");
    let status = portal.proc.expect_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", portal.proc.tail());
    assert!(portal.leftovers().is_empty(), "{:?}", portal.leftovers());
    assert!(children_of(portal.proc.pid()).is_empty());
}

#[test]
fn under_init_the_portal_is_ready_with_zookeeper_and_runs_tools() {
    support::require_zookeeper();
    let data = tempfile::tempdir().unwrap();
    let (zk_port, portal_port) = (free_port(), free_port());
    let mut cmd = ocho();
    cmd.args(["init", "--zk-bind", "127.0.0.1", "--zk-heap", "128m", "--grace", "10"])
        .args(["--zk-port", &zk_port.to_string()])
        .arg("--zk-data")
        .arg(data.path())
        .args(["--portal-bind", &format!("127.0.0.1:{portal_port}")])
        .env_remove("OCHO_TOKEN");
    let mut init = Proc::spawn("init", cmd);
    init.wait_for_line("listening on ", Duration::from_secs(60));
    let portal = Client { addr: format!("127.0.0.1:{portal_port}") };
    wait_until("readyz", || portal.request("GET", "/readyz", &[], b"").status == 200);
    let seen = args_json(&portal.shell("args --json --env 'a b'", &[]));
    assert_eq!(seen["args"], serde_json::json!(["a b"]));
    assert!(seen["env"].as_array().unwrap().iter().any(|v| v == "OCHOPOD_ZK"), "{seen}");
    init.signal(Signal::SIGTERM);
    let status = init.expect_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", init.tail());
}

/// SIGTERM gives requests in flight `--drain` seconds, then stops their tools: the client gets
/// a 503 reply, the portal exits 0 in time for `ocho init`'s grace, nothing is left behind.
#[test]
fn sigterm_stops_tools_still_running_after_the_drain_period() {
    let mut portal = Portal::start(&["--drain", "1"], &[]);
    let mut conn = portal.open("POST", "/shell", &[("X-Shell", "args --sleep 600 --helper")], b"");
    wait_until("the tool to start", || !portal.children().is_empty());
    portal.proc.signal(Signal::SIGTERM);
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut raw).unwrap();
    let reply = support::portal::Reply::parse(&raw);
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["killed"], "shutdown");
    let helper: i32 = reply.json()["out"]
        .as_str()
        .unwrap()
        .trim()
        .strip_prefix("helper pid ")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(portal.proc.expect_exit(DEADLINE).code(), Some(0), "{}", portal.proc.tail());
    wait_until("the helper to die", || !running(helper));
    assert!(portal.leftovers().is_empty(), "{:?}", portal.leftovers());
}
