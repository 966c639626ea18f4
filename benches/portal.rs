//! Portal overhead (`make bench`): round trip of a trivial tool (`ocho args x`) through
//! `POST /shell`, p50/p99 over 1000 sequential requests, against a direct invocation of the
//! same tool in the same run; requests per second at concurrency 8; the portal's RSS idle and
//! under that load; its descriptors, threads and memory after 3,000 hostile connections; the
//! private memory of one running tool; the cost per request of the audit journal (a record
//! fsync'd before the reply) and of HTTPS (a new TLS connection per request), each against the
//! same portal without it. The shipped binary (`OCHO_BIN`, set by `make bench`) at
//! its shipped defaults. Prints numbers, asserts nothing about time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SEQUENTIAL: usize = 1000;
const CONCURRENCY: usize = 8;
const PER_WORKER: usize = 150;

/// One `POST /shell` on a fresh connection; returns the tool's exit code from the reply.
fn shell(addr: &str, line: &str) -> i64 {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_nodelay(true).unwrap();
    write!(
        conn,
        "POST /shell HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Shell: {line}\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let reply: serde_json::Value = serde_json::from_str(body).unwrap();
    reply["code"].as_i64().unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    support::memory(pid).rss
}

/// Private memory of one running tool (`args --sleep`: a tool's start-up, waiting), which is
/// what sizes the default concurrency limit.
fn tool_memory(addr: &str, portal: u32) {
    let addr = addr.to_string();
    let request = std::thread::spawn(move || shell(&addr, "args --sleep 2 x"));
    let end = Instant::now() + Duration::from_secs(10);
    let mut tool = None;
    while tool.is_none() && Instant::now() < end {
        tool = support::portal::children_of(portal as i32).first().map(|&p| p as u32);
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(pid) = tool {
        std::thread::sleep(Duration::from_millis(200));
        println!("one running tool: {}", support::memory(pid));
    }
    request.join().unwrap();
}

/// 3,000 hostile connections: 1,000 request lines of HTTP/2.0, 1,000 heads that never finish
/// (held open, then dropped), 1,000 header lines of 1 MiB; then what the portal holds.
fn hostile(addr: &str, pid: u32) {
    let before = (support::usage(pid as i32), support::memory(pid));
    let started = Instant::now();
    for _ in 0..1000 {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(b"GET /healthz HTTP/2.0\r\n\r\n").unwrap();
        let _ = conn.read_to_end(&mut Vec::new());
    }
    let mut held = Vec::new();
    for _ in 0..1000 {
        let mut conn = TcpStream::connect(addr).unwrap();
        let _ = conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        held.push(conn);
    }
    let during = (support::usage(pid as i32), support::memory(pid));
    let healthz_ok =
        shell_status(addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    drop(held);
    let line = vec![b'a'; 1 << 20];
    for _ in 0..1000 {
        let mut conn = TcpStream::connect(addr).unwrap();
        let _ = conn.write_all(b"POST /shell HTTP/1.1\r\nHost: x\r\nX-Shell: ");
        let _ = conn.write_all(&line);
        let _ = conn.read_to_end(&mut Vec::new());
    }
    let took = started.elapsed();
    // Threads of closed connections end on their own; give them a moment.
    let end = Instant::now() + Duration::from_secs(10);
    while support::usage(pid as i32).1 > before.0.1 + 1 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = (support::usage(pid as i32), support::memory(pid));
    println!("3,000 hostile connections ({:.1} s):", took.as_secs_f64());
    println!("  before  fds {:4}  threads {:4}  RSS {}", before.0.0, before.0.1, before.1);
    println!(
        "  holding 1,000 unfinished heads: fds {:4}  threads {:4}  RSS {}; /healthz meanwhile: {healthz_ok}",
        during.0.0, during.0.1, during.1
    );
    println!("  after   fds {:4}  threads {:4}  RSS {}", after.0.0, after.0.1, after.1);
}

/// The status code of a raw request.
fn shell_status(addr: &str, raw: &str) -> u16 {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn main() {
    let tmp = std::env::temp_dir().join(format!("ocho-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (mut portal, addr) = start_portal(&tmp, &[], None);
    let pid = portal.id();

    for _ in 0..20 {
        assert_eq!(shell(&addr, "args x"), 0);
    }
    let idle = support::memory(pid);

    let mut portal_times = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        assert_eq!(shell(&addr, "args x"), 0);
        portal_times.push(started.elapsed());
    }
    portal_times.sort();

    let mut direct_times = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        let out = support::ocho()
            .args(["args", "x"])
            .current_dir(&tmp)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        direct_times.push(started.elapsed());
    }
    direct_times.sort();

    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_WORKER {
                    assert_eq!(shell(&addr, "args x"), 0);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    let (p50, p99) = (percentile(&portal_times, 0.50), percentile(&portal_times, 0.99));
    let (d50, d99) = (percentile(&direct_times, 0.50), percentile(&direct_times, 0.99));
    println!("portal round trip, `args x`, {SEQUENTIAL} sequential requests:");
    println!("  portal  p50 {:7.3} ms   p99 {:7.3} ms", ms(p50), ms(p99));
    println!(
        "  direct  p50 {:7.3} ms   p99 {:7.3} ms   (spawn + wait of `ocho args x`)",
        ms(d50),
        ms(d99)
    );
    println!("  ratio   p50 {:.2}x  p99 {:.2}x", ms(p50) / ms(d50), ms(p99) / ms(d99));
    let total = CONCURRENCY * PER_WORKER;
    println!(
        "concurrency {CONCURRENCY}: {total} requests in {:.2} s = {:.0} requests/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!("portal RSS: idle {idle}, peak under load {} KiB", peak.load(Ordering::SeqCst));
    let work = tmp.join(format!("ocho-portal.{}", addr.rsplit(':').next().unwrap()));
    let left = std::fs::read_dir(&work).map_or(0, |d| d.count());
    println!("request directories left: {left}");

    tool_memory(&addr, pid);
    hostile(&addr, pid);
    overheads(&tmp);

    // SIGTERM: the portal drains and exits 0.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = portal.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A portal the bench started: killed and reaped when dropped, also when the bench panics.
struct Owned(std::process::Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Owned {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Owned {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Starts `ocho portal` on a free loopback port with `extra` and `token` (none: an open
/// portal); returns it and its address. Its access log is drained so that it never blocks.
fn start_portal(tmp: &std::path::Path, extra: &[&str], token: Option<&str>) -> (Owned, String) {
    let mut cmd = support::ocho();
    cmd.args(["portal", "--bind", "127.0.0.1:0"]).args(extra).env("TMPDIR", tmp);
    match token {
        Some(token) => cmd.env("OCHO_TOKEN", token),
        None => cmd.env_remove("OCHO_TOKEN"),
    };
    let mut portal = Owned(
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap(),
    );
    let mut log = BufReader::new(portal.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "portal exited");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    (portal, addr)
}

/// One authenticated `POST /shell` over `conn`; returns the exit code. With `close` the
/// connection ends with the reply; without, it stays open for the next request.
fn shell_over(conn: &mut dyn ReadWrite, addr: &str, line: &str, close: bool) -> i64 {
    let connection = if close { "close" } else { "keep-alive" };
    // One write, as `ocho cli` and curl send a request: over TLS each write is a record.
    let request = format!(
        "POST /shell HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\nAuthorization: Bearer bench-token\r\nX-Shell: {line}\r\nContent-Length: 0\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).unwrap();
    conn.flush().unwrap();
    let mut raw = Vec::new();
    let body = if close {
        // A TLS peer closes with close_notify; a missing one is an error we do not care about.
        let _ = conn.read_to_end(&mut raw);
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        raw.split_off(at)
    } else {
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).unwrap();
            raw.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("a Content-Length");
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).unwrap();
        body
    };
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
    reply["code"].as_i64().unwrap()
}

/// p50 and p99 of appending a 300-byte line to a file and fdatasync'ing it: the disk's part of
/// a journal record that must be on disk before its reply.
fn fdatasync_cost(path: &std::path::Path, n: usize) -> (Duration, Duration) {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let line = [b'x'; 300];
    let costs = timed(n, || {
        file.write_all(&line).unwrap();
        file.sync_data().unwrap();
    });
    let _ = std::fs::remove_file(path);
    costs
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// p50 and p99 of `n` sequential runs of `once`.
fn timed(n: usize, mut once: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            once();
            started.elapsed()
        })
        .collect();
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// The audit journal's and HTTPS's cost per request: the same lines through three portals with
/// a token, started together: token only, `--audit`, and `--tls-cert`. The requests alternate
/// between them one by one, so that the machine's noise falls on each alike, and each cost is
/// the median of the paired differences (and the difference of the p50s beside it); each round
/// runs them in a new random order, so that no variant always follows the same one. Two lines:
/// `args x`, an admin tool, whose record is fsync'd before the reply, and `ls` against a real
/// ZooKeeper, a viewer tool, whose record is not; beside them the disk's own fdatasync of an
/// appended line, the floor of the first. HTTPS is measured with a new TLS 1.3 connection per
/// request and a full handshake (as one-shot `ocho cli` makes; a client that would resume a
/// session gets none, the portal sends no tickets), and on one kept-alive connection (as the
/// REPL and browsers do). Each checks which handshake it made.
fn overheads(tmp: &std::path::Path) {
    const N: usize = 400;
    support::require_zookeeper();
    let viewer = format!("ls --zk {}", support::shared_zookeeper());
    let plain = |addr: &str, line: &str| {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        shell_over(&mut conn, addr, line, true)
    };

    // A CA and a certificate for 127.0.0.1, made here.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names.push(rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let leaf = leaf.signed_by(&key, &ca).unwrap();
    let (cert_path, key_path) = (tmp.join("bench-tls.crt"), tmp.join("bench-tls.key"));
    std::fs::write(&cert_path, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let ca_path = tmp.join("bench-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resuming = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // One-shot `ocho cli` has no session to resume: every connection is a full handshake.
    let mut full = resuming.clone();
    full.resumption = rustls::client::Resumption::disabled();
    let (full, resuming) = (Arc::new(full), Arc::new(resuming));
    let connect = |addr: &str, config: &Arc<rustls::ClientConfig>| {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let client = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
        rustls::StreamOwned::new(client, tcp)
    };
    // One line through `ocho cli` itself, one process per request as a shell runs it.
    let cli = |args: &[&str]| {
        let out = support::ocho()
            .arg("cli")
            .args(args)
            .env("OCHOPOD_TOKEN", "bench-token")
            .env_remove("OCHOPOD_CA")
            .env_remove("OCHOPOD_PROXY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // One request on a new connection, checking which handshake it made.
    let secure = |addr: &str, config: &Arc<rustls::ClientConfig>, kind: rustls::HandshakeKind| {
        let mut stream = connect(addr, config);
        assert_eq!(shell_over(&mut stream, addr, "args x", true), 0);
        assert_eq!(stream.conn.handshake_kind(), Some(kind));
    };

    let journal = tmp.join("bench-audit.jsonl");
    let (base, base_addr) = start_portal(tmp, &[], Some("bench-token"));
    let (audited, audit_addr) =
        start_portal(tmp, &["--audit", journal.to_str().unwrap()], Some("bench-token"));
    let (tls, tls_addr) = start_portal(
        tmp,
        &["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()],
        Some("bench-token"),
    );
    let mut kept_plain = TcpStream::connect(&base_addr).unwrap();
    kept_plain.set_nodelay(true).unwrap();
    let mut kept_tls = connect(&tls_addr, &full);
    // A client that keeps its sessions gets none to resume: the portal sends no tickets.
    secure(&tls_addr, &resuming, rustls::HandshakeKind::Full);
    secure(&tls_addr, &resuming, rustls::HandshakeKind::Full);

    // The variants, each one request; run in turn, N times each.
    type Once<'a> = Box<dyn FnMut() + 'a>;
    let mut variants: Vec<(&str, Once)> = vec![
        ("admin", Box::new(|| assert_eq!(plain(&base_addr, "args x"), 0))),
        ("admin+audit", Box::new(|| assert_eq!(plain(&audit_addr, "args x"), 0))),
        ("viewer", Box::new(|| assert_eq!(plain(&base_addr, &viewer), 0))),
        ("viewer+audit", Box::new(|| assert_eq!(plain(&audit_addr, &viewer), 0))),
        ("tls", Box::new(|| secure(&tls_addr, &full, rustls::HandshakeKind::Full))),
        ("cli", Box::new(|| cli(&[&format!("http://{base_addr}"), "args", "x"]))),
        (
            "cli+tls",
            Box::new(|| {
                cli(&[
                    "--ca",
                    ca_path.to_str().unwrap(),
                    &format!("https://{tls_addr}"),
                    "args",
                    "x",
                ])
            }),
        ),
        (
            "kept",
            Box::new(|| assert_eq!(shell_over(&mut kept_plain, &base_addr, "args x", false), 0)),
        ),
        (
            "kept+tls",
            Box::new(|| assert_eq!(shell_over(&mut kept_tls, &tls_addr, "args x", false), 0)),
        ),
    ];
    for _ in 0..20 {
        variants.iter_mut().for_each(|(_, once)| once());
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(N); variants.len()];
    // xorshift64: a fixed seed, a new order each round (Fisher-Yates).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut order: Vec<usize> = (0..variants.len()).collect();
    for _ in 0..N {
        for j in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(j, (seed % (j as u64 + 1)) as usize);
        }
        for &i in &order {
            let started = Instant::now();
            (variants[i].1)();
            times[i].push(started.elapsed());
        }
    }
    let names: Vec<&str> = variants.iter().map(|(name, _)| *name).collect();
    drop(variants);
    drop((base, audited, tls));
    let _ = std::fs::remove_file(&journal);
    let (f50, f99) = fdatasync_cost(&tmp.join("bench-fsync.jsonl"), N);

    let of = |name: &str| &times[names.iter().position(|n| *n == name).unwrap()];
    let p50_99 = |t: &[Duration]| {
        let mut t = t.to_vec();
        t.sort();
        (percentile(&t, 0.5), percentile(&t, 0.99))
    };
    // The median of the paired differences, in ms: request i of one variant against request i
    // of its baseline, run next to each other.
    let paired = |with: &str, base: &str| {
        let mut d: Vec<f64> = of(with).iter().zip(of(base)).map(|(a, b)| ms(*a) - ms(*b)).collect();
        d.sort_by(f64::total_cmp);
        d[d.len() / 2]
    };
    let fig = |label: &str, name: &str| {
        let (p50, p99) = p50_99(of(name));
        println!("  {label:<40} p50 {:7.3} ms   p99 {:7.3} ms", ms(p50), ms(p99))
    };
    let row = |label: &str, name: &str, base: &str, what: &str| {
        let (p50, p99) = p50_99(of(name));
        let base_p50 = p50_99(of(base)).0;
        // The share of the baseline too: on a host whose load changes, the cost in ms moves
        // with the round trip, the share much less.
        let cost = paired(name, base);
        println!(
            "  {label:<40} p50 {:7.3} ms   p99 {:7.3} ms   cost {cost:+.3} ms = {:+.0}% (paired median; p50s {:+.3}){what}",
            ms(p50),
            ms(p99),
            100.0 * cost / ms(base_p50),
            ms(p50) - ms(base_p50)
        )
    };
    println!("cost per request with a token, {N} requests each, the variants interleaved:");
    fig("`args x` (admin), token only", "admin");
    row("`args x` + audit journal", "admin+audit", "admin", "; record fsync'd");
    fig("`ls`, real ZooKeeper (viewer), token only", "viewer");
    row("`ls` + audit journal", "viewer+audit", "viewer", "; record not fsync'd");
    println!(
        "  {:<40} p50 {:7.3} ms   p99 {:7.3} ms",
        "the disk's fdatasync of one line",
        ms(f50),
        ms(f99)
    );
    row("`args x` + HTTPS, new connection each", "tls", "admin", "; full TLS 1.3 handshake");
    fig("`ocho cli http://… args x`", "cli");
    row(
        "`ocho cli --ca … https://… args x`",
        "cli+tls",
        "cli",
        "; the product's client, full handshake",
    );
    fig("`args x`, one kept-alive connection", "kept");
    row("`args x` + HTTPS, one kept-alive conn.", "kept+tls", "kept", "; no handshake");
}
