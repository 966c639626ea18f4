//! Hostile and broken clients against the real portal (and an agent's control port) over raw
//! sockets: request lines of other HTTP versions, huge header lines, slow heads, stalled and
//! truncated uploads, connection floods under a low open-file limit. Each checks that the
//! server keeps answering `/healthz` and that its descriptors and threads return to where they
//! were.
#![allow(clippy::unwrap_used)]

use crate::fixture;
use crate::support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use support::portal::{Portal, Reply, multipart, wait_until};
use support::usage;
use support::{DEADLINE, free_port};

/// Waits until the process is back to `baseline` (a thread or descriptor may linger a moment).
fn back_to(pid: i32, baseline: (usize, usize)) {
    let end = Instant::now() + DEADLINE;
    loop {
        let now = usage(pid);
        if now.0 <= baseline.0 + 1 && now.1 <= baseline.1 + 1 {
            return;
        }
        assert!(Instant::now() < end, "fds/threads {now:?}, baseline {baseline:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends raw bytes on a new connection and reads whatever comes back until the server closes.
fn raw(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(bytes).unwrap();
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    reply
}

fn status_of(reply: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(reply);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text:?}"))
}

fn healthz(portal: &Portal) -> u16 {
    portal.request("GET", "/healthz", &[], b"").status
}

/// Starts a portal whose open-file limit is `nofile` (soft and hard).
fn limited_portal(nofile: u64) -> Portal {
    Portal::start_with(&[], &[], move |cmd| {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    nofile,
                    nofile,
                )
                .map_err(std::io::Error::from)
            });
        }
    })
}

#[test]
fn other_http_versions_get_505_and_leak_nothing() {
    let portal = Portal::start(&[], &[]);
    assert_eq!(healthz(&portal), 200);
    let baseline = usage(portal.proc.pid());
    for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
        let reply =
            raw(&portal.addr, format!("GET /healthz {version}\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(status_of(&reply), 505, "{version}");
    }
    for _ in 0..1000 {
        let reply = raw(&portal.addr, b"GET /healthz HTTP/2.0\r\n\r\n");
        assert!(reply.starts_with(b"HTTP/1.1 505 "), "{}", String::from_utf8_lossy(&reply));
    }
    back_to(portal.proc.pid(), baseline);
    assert_eq!(healthz(&portal), 200);
}

#[test]
fn a_flood_under_a_low_open_file_limit_never_stops_the_listener() {
    let portal = limited_portal(160);
    assert_eq!(healthz(&portal), 200);
    let baseline = usage(portal.proc.pid());
    // Far more idle connections (heads never finished) and 505s than descriptors.
    let mut held = Vec::new();
    for i in 0..400 {
        let mut conn = TcpStream::connect(&portal.addr).unwrap();
        let _ = conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        held.push(conn);
        if i % 4 == 0 {
            let reply = raw(&portal.addr, b"GET /healthz HTTP/2.0\r\n\r\n");
            assert!(
                reply.starts_with(b"HTTP/1.1 505 ") || reply.starts_with(b"HTTP/1.1 503 "),
                "{}",
                String::from_utf8_lossy(&reply)
            );
        }
    }
    // While the flood holds every connection it can, a real request still gets through: the
    // connection idle longest makes room for it.
    for _ in 0..5 {
        assert_eq!(healthz(&portal), 200);
    }
    assert_eq!(portal.shell("args still", &[]).json()["out"], "arg 1: still\n");
    drop(held);
    back_to(portal.proc.pid(), baseline);
    assert_eq!(healthz(&portal), 200);
    assert!(!portal.proc.tail().contains("panicked"), "{}", portal.proc.tail());
}

#[test]
fn huge_header_lines_and_lines_are_refused_unread() {
    let portal = Portal::start(&[], &[]);
    let before = support::memory(portal.proc.pid() as u32);
    // 200 MB offered in one header line: refused after 8 KiB, the connection closed.
    let mut conn = TcpStream::connect(&portal.addr).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    conn.write_all(b"POST /shell HTTP/1.1\r\nHost: x\r\nX-Shell: ").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0usize;
    while sent < 200 << 20 {
        if conn.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert!(sent < 200 << 20, "the portal read a 200 MB header line");
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    if !reply.is_empty() {
        assert_eq!(status_of(&reply), 431);
    }
    let after = support::memory(portal.proc.pid() as u32);
    assert!(after.anon < before.anon + 16 * 1024, "memory {before} -> {after}");

    let long = format!("GET /shell?line={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1 << 20));
    let mut conn = TcpStream::connect(&portal.addr).unwrap();
    let _ = conn.write_all(long.as_bytes());
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    assert_eq!(status_of(&reply), 414);
    let line = format!("POST /shell HTTP/1.1\r\nHost: x\r\nX-Shell: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(status_of(&raw(&portal.addr, line.as_bytes())), 431);
    let many: String = (0..200).map(|i| format!("X-{i}: {i}\r\n")).collect();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(status_of(&raw(&portal.addr, head.as_bytes())), 431);
    assert_eq!(healthz(&portal), 200);
}

#[test]
fn truncated_uploads_are_refused_and_the_tool_never_runs() {
    let portal = Portal::start(&[], &[]);
    let (kind, body) = multipart(&[("web.yml", b"cluster: web\nreplicas: 3\n")]);
    // A body shorter than its Content-Length: the client sent part of it and closed.
    for cut in [body.len() - 1, body.len() - 12, body.len() / 2, 1] {
        let mut conn = TcpStream::connect(&portal.addr).unwrap();
        conn.set_read_timeout(Some(DEADLINE)).unwrap();
        let head = format!(
            "POST /shell HTTP/1.1\r\nHost: x\r\nX-Shell: args --json web.yml\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body[..cut]).unwrap();
        conn.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).unwrap();
        let reply = Reply::parse(&reply);
        assert_eq!(reply.status, 400, "cut at {cut}: {}", reply.text());
        assert!(reply.text().contains("shorter than its Content-Length"), "{}", reply.text());
    }
    // A whole body that lacks its closing boundary (cut, then re-framed with a matching length).
    let cut = &body[..body.len() - 14];
    let reply = portal.request(
        "POST",
        "/shell",
        &[("X-Shell", "args --json web.yml"), ("Content-Type", &kind)],
        cut,
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("closing boundary"), "{}", reply.text());
    // Bad names are refused by name, never dropped.
    for name in ["a\nb", "a\u{0}b"] {
        let (kind, body) = multipart(&[(name, b"x")]);
        let reply = portal.request(
            "POST",
            "/shell",
            &[("X-Shell", "args --json"), ("Content-Type", &kind)],
            &body,
        );
        assert_eq!(reply.status, 400, "{name:?}: {}", reply.text());
    }
    let log = portal.proc.lines().join("\n");
    assert!(!log.contains("POST /shell args 200"), "a tool ran: {log}");
    // The whole upload works.
    let reply = portal.request(
        "POST",
        "/shell",
        &[("X-Shell", "args --json web.yml"), ("Content-Type", &kind)],
        &body,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    wait_until("no request directory left", || portal.leftovers().is_empty());
}

#[test]
fn stalled_uploads_hold_no_tool_slot_and_are_cut_off() {
    let portal = Portal::start(&["--max-concurrent", "2"], &[]);
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut conn = TcpStream::connect(&portal.addr).unwrap();
        conn.set_read_timeout(Some(DEADLINE)).unwrap();
        let head = "POST /shell HTTP/1.1\r\nHost: x\r\nX-Shell: args x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n";
        conn.write_all(head.as_bytes()).unwrap();
        stalled.push(conn);
    }
    let started = Instant::now();
    for _ in 0..3 {
        let reply = portal.shell("args free", &[]);
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // The server's body timeout (10 s) ends each stalled upload with 408.
    for mut conn in stalled {
        let mut reply = Vec::new();
        let _ = conn.read_to_end(&mut reply);
        assert_eq!(status_of(&reply), 408, "{}", String::from_utf8_lossy(&reply));
    }
    assert!(started.elapsed() < DEADLINE);
}

#[test]
fn slow_heads_are_cut_off_and_bare_lf_and_keep_alive_work() {
    let portal = Portal::start(&[], &[]);
    let started = Instant::now();
    let mut slow = TcpStream::connect(&portal.addr).unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // A byte every 500 ms keeps the connection busy but never finishes the head.
    let dripping = std::thread::spawn({
        let mut slow = slow.try_clone().unwrap();
        move || {
            for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if slow.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    let mut reply = Vec::new();
    let _ = slow.read_to_end(&mut reply);
    assert_eq!(status_of(&reply), 408, "{}", String::from_utf8_lossy(&reply));
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    dripping.join().unwrap();

    let reply = raw(&portal.addr, b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n");
    assert_eq!(status_of(&reply), 200, "{}", String::from_utf8_lossy(&reply));

    // Two requests on one connection, the second after the first's reply.
    let mut conn = TcpStream::connect(&portal.addr).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    for i in 0..2 {
        conn.write_all(
            format!("POST /shell HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Shell: args k{i}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["out"], format!("arg 1: k{i}\n"));
    }
}

#[test]
fn a_killed_portal_leaves_nothing_behind_after_its_restart() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("requests");
    let dir_arg = dir.to_str().unwrap().to_string();
    let mut portal = Portal::start(&["--work-dir", &dir_arg], &[]);
    let (kind, body) = multipart(&[("big", "x".repeat(100_000).as_bytes())]);
    let _conn = {
        let conn = portal.open(
            "POST",
            "/shell",
            &[("X-Shell", "args --sleep 600"), ("Content-Type", &kind)],
            &body,
        );
        wait_until("the tool to start", || !portal.children().is_empty());
        conn
    };
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    portal.proc.signal(nix::sys::signal::Signal::SIGKILL);
    portal.proc.expect_exit(DEADLINE);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a kill -9 leaves the request directory"
    );
    let portal = Portal::start(&["--work-dir", &dir_arg], &[]);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "emptied at start");
    assert_eq!(healthz(&portal), 200);
}

#[test]
fn a_busy_pod_bounds_the_bodies_it_holds() {
    let zk = fixture::shared_zookeeper();
    let port = free_port();
    let agent = fixture::pod(
        zk,
        "hostile",
        "flood",
        "127.0.0.1",
        port,
        &[],
        &["/bin/sh", "-c", "exec sleep 1000"],
    );
    let addr = format!("127.0.0.1:{port}");
    let pid = agent.pid() as u32;
    let before = support::memory(pid);
    const BODY: usize = 4 << 20;
    let head = |verb: &str| {
        format!(
            "POST /control/{verb}/30 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {BODY}\r\n\r\n"
        )
    };
    // Four uploads that stall after their head take the whole body budget.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut conn = TcpStream::connect(&addr).unwrap();
        conn.write_all(head("check").as_bytes()).unwrap();
        conn.write_all(b"{").unwrap();
        stalled.push(conn);
    }
    std::thread::sleep(Duration::from_millis(0));
    let body = vec![b' '; BODY];
    let mut refused = 0;
    let mut clients = Vec::new();
    for _ in 0..96 {
        let (head, body) = (head("check"), body.clone());
        let addr = addr.clone();
        clients.push(std::thread::spawn(move || {
            let mut conn = TcpStream::connect(&addr).unwrap();
            conn.set_read_timeout(Some(DEADLINE)).unwrap();
            conn.write_all(head.as_bytes()).unwrap();
            let _ = conn.write_all(&body);
            let mut reply = Vec::new();
            let _ = conn.read_to_end(&mut reply);
            reply
        }));
    }
    let mut peak = before;
    for client in clients {
        let reply = client.join().unwrap();
        if reply.starts_with(b"HTTP/1.1 503 ") {
            refused += 1;
        }
        let now = support::memory(pid);
        if now.anon > peak.anon {
            peak = now;
        }
    }
    assert!(refused >= 90, "only {refused} of 96 posts were refused while the budget was taken");
    assert!(peak.anon < before.anon + 40 * 1024, "memory {before} -> {peak}");
    drop(stalled);
    let (code, _, _) = fixture::post(&addr, "/info", None);
    assert_eq!(code, 200);
}
