//! Portal overhead (`make bench`): round trip of a trivial tool (`ocho args x`) through
//! `POST /shell`, p50/p99 over 1000 sequential requests, against a direct invocation of the
//! same tool in the same run; requests per second at concurrency 8; the portal's RSS idle and
//! under that load. Prints numbers, asserts nothing about time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const OCHO: &str = env!("CARGO_BIN_EXE_ocho");
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

fn main() {
    let tmp = std::env::temp_dir().join(format!("ocho-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut portal = Command::new(OCHO)
        .args(["portal", "--bind", "127.0.0.1:0", "--max-concurrent", "64"])
        .env("TMPDIR", &tmp)
        .env_remove("OCHO_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(portal.stderr.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "portal exited");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    // The access log must keep flowing or the portal would block on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
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
        let out = Command::new(OCHO)
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
    let left = std::fs::read_dir(&tmp).unwrap().count();
    println!("temporary directories left: {left}");

    // SIGTERM: the portal drains and exits 0.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = portal.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}
