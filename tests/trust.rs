//! The portal as a trust boundary, against the real binary: secure by default, a token file
//! rotated under a running portal, signatures that cannot be replayed or moved to other files,
//! Host and Origin checks against DNS rebinding and cross-site requests, and the client's
//! warning when its token is not needed.
#![allow(clippy::unwrap_used)]

use crate::support;

use nix::sys::signal::Signal;
use ring::hmac;
use support::portal::{Portal, multipart};
use support::{DEADLINE, ocho};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn without_credentials_only_loopback_serves_unless_insecure_is_explicit() {
    let out = ocho()
        .args(["portal", "--bind", "0.0.0.0:0"])
        .env_remove("OCHO_TOKEN")
        .env_remove("OCHO_TOKEN_FILE")
        .env_remove("OCHO_INSECURE_NO_AUTH")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without credentials") && err.contains("--insecure-no-auth"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = ocho();
    cmd.args(["portal", "--bind", "0.0.0.0:0", "--insecure-no-auth"])
        .env_remove("OCHO_TOKEN")
        .env_remove("OCHO_TOKEN_FILE")
        .env("TMPDIR", tmp.path());
    let portal = support::Proc::spawn("portal", cmd);
    portal.wait_for_line("WARNING: --insecure-no-auth", DEADLINE);
    portal.wait_for_line("listening on", DEADLINE);
}

#[test]
fn a_rotated_token_file_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "first\n").unwrap();
    let portal = Portal::start(&["--token-file", file.to_str().unwrap()], &[]);
    let with = |token: &str| portal.shell("args x", &[("Authorization", &bearer(token))]).status;
    assert_eq!(with("first"), 200);
    // As the kubelet updates a mounted Secret: a new file renamed over the old one.
    std::fs::write(dir.path().join(".new"), "second\n").unwrap();
    std::fs::rename(dir.path().join(".new"), &file).unwrap();
    assert_eq!(with("first"), 403, "the old token must stop working at once");
    assert_eq!(with("second"), 200);
    // Gone or unreadable: every request is refused, the portal never opens.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(with("second"), 503);
    assert_eq!(portal.shell("args x", &[]).status, 503);
    std::fs::write(&file, "third").unwrap();
    assert_eq!(with("third"), 200);
    portal.proc.signal(Signal::SIGHUP);
    portal.proc.wait_for_line("SIGHUP: reading the token file again", DEADLINE);
    assert_eq!(with("third"), 200);
    assert!(!portal.proc.lines().join("\n").contains("third"), "the token leaked into the log");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The headers of a v2 signature (see README: Authentication).
fn signed(token: &str, nonce: &str, line: &str, files: &[(&str, &[u8])]) -> Vec<(String, String)> {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut digests: Vec<(String, String)> = files
        .iter()
        .map(|(n, d)| (n.to_string(), hex(ring::digest::digest(&ring::digest::SHA256, d).as_ref())))
        .collect();
    digests.sort();
    let mut message = format!("ocho-v2\n{time}\n{nonce}\n{line}\n");
    for (name, digest) in digests {
        message.push_str(&format!("{name} {digest}\n"));
    }
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes()), message.as_bytes());
    vec![
        ("X-Signature".into(), format!("v2={}", hex(tag.as_ref()))),
        ("X-Signature-Time".into(), time),
        ("X-Signature-Nonce".into(), nonce.into()),
    ]
}

#[test]
fn signatures_cover_the_uploads_and_cannot_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "k3y").unwrap();
    let portal = Portal::start(&["--token-file", file.to_str().unwrap()], &[]);
    let line = "args --json web.yml";
    let good: &[u8] = b"cluster: web\n";
    let headers = signed("k3y", "n0nce-one", line, &[("web.yml", good)]);
    let send = |body: &[u8], headers: &[(String, String)]| {
        let (kind, body) = multipart(&[("web.yml", body)]);
        let mut all: Vec<(&str, &str)> = vec![("X-Shell", line), ("Content-Type", &kind)];
        all.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        portal.request("POST", "/shell", &all, &body)
    };
    // Another file under the same signature: refused.
    let other = send(b"cluster: web\nverbatim: {spec: {hostNetwork: true}}\n", &headers);
    assert_eq!(other.status, 403, "{}", other.text());
    let ok = send(good, &headers);
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The same signed request again: a replay.
    let replay = send(good, &headers);
    assert_eq!(replay.status, 403, "{}", replay.text());
    assert!(replay.text().contains("replay"), "{}", replay.text());
    // Ochothon's line-only signature only behind --legacy-signatures.
    let sha1 = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"k3y"), b"args x");
    let legacy = format!("sha1={}", hex(sha1.as_ref()));
    let refused = portal.shell("args x", &[("X-Signature", &legacy)]);
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("--legacy-signatures"), "{}", refused.text());
}

#[test]
fn a_rebinding_host_or_a_foreign_origin_runs_nothing() {
    let portal = Portal::start(&[], &[]);
    let port = portal.addr.rsplit(':').next().unwrap().to_string();
    let evil = format!("rebind.evil.example:{port}");
    let mut conn = std::net::TcpStream::connect(&portal.addr).unwrap();
    use std::io::{Read, Write};
    write!(
        conn,
        "POST /shell HTTP/1.1\r\nHost: {evil}\r\nX-Shell: args x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let reply = support::portal::Reply::parse(&raw);
    assert_eq!(reply.status, 421, "{}", reply.text());
    let foreign = portal.shell("args x", &[("Origin", "http://evil.example")]);
    assert_eq!(foreign.status, 403);
    let log = portal.proc.lines().join("\n");
    assert!(!log.contains("POST /shell args 200"), "a tool ran: {log}");
    // Names given by flag are served.
    let named = Portal::start(&["--allowed-host", "ocho-proxy.ops.svc"], &[]);
    let mut conn = std::net::TcpStream::connect(&named.addr).unwrap();
    write!(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let port = named.addr.rsplit(':').next().unwrap();
    let mut conn2 = std::net::TcpStream::connect(&named.addr).unwrap();
    write!(conn2, "POST /shell HTTP/1.1\r\nHost: ocho-proxy.ops.svc:{port}\r\nX-Shell: args y\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    conn2.read_to_end(&mut raw).unwrap();
    assert_eq!(support::portal::Reply::parse(&raw).status, 200);
    drop(conn);
}

#[test]
fn the_client_warns_when_an_open_portal_ignores_its_token() {
    let portal = Portal::start(&[], &[]);
    let out = ocho()
        .args(["cli", &portal.addr, "args", "x"])
        .env("OCHOPOD_TOKEN", "not-needed")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checks no credentials"), "{err}");
    let quiet = ocho()
        .args(["cli", &portal.addr, "args", "x"])
        .env_remove("OCHOPOD_TOKEN")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("checks no credentials"));
}
