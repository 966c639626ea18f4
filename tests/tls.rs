//! HTTPS in the portal, with a CA made in the test: `ocho cli https://…` and curl with the right
//! CA, a clear error with the wrong one (never a silent fallback), plain HTTP refused on the
//! HTTPS port but for the probes, and a certificate replaced in place taken up without a restart.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use support::portal::Portal;
use support::{DEADLINE, ocho};

/// A CA (its PEM written to `<dir>/<name>-ca.pem`) and a server certificate for 127.0.0.1
/// signed by it (`<name>-cert.pem` with the chain, `<name>-key.pem`).
fn pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();
    let (ca_pem, cert, key) = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert, leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    (ca_pem, cert, key)
}

fn cli(addr: &str, ca: Option<&Path>, words: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = ocho();
    cmd.arg("cli");
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    let out = cmd
        .arg(format!("https://{addr}"))
        .args(words)
        .env("OCHOPOD_TOKEN", "t0k")
        .env_remove("OCHOPOD_PROXY")
        .env_remove("OCHOPOD_CA")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn curl(addr: &str, ca: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(ca)
        .args(["-H", "Authorization: Bearer t0k", "-H", "X-Shell: args via-curl", "-X", "POST"])
        .arg(format!("https://{addr}/shell"))
        .output()
        .expect("curl (make deps installs it)");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn https_with_a_good_and_a_bad_certificate_through_ocho_cli_and_curl() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path(), "good");
    let (other_ca, other_cert, other_key) = pki(dir.path(), "other");
    // The portal serves the files at these paths; the test replaces them in place later.
    let (served_cert, served_key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    replace(&cert, &served_cert);
    replace(&key, &served_key);
    let portal = Portal::start(
        &["--tls-cert", served_cert.to_str().unwrap(), "--tls-key", served_key.to_str().unwrap()],
        &[("OCHO_TOKEN", "t0k")],
    );
    portal.proc.wait_for_line("HTTPS only", DEADLINE);
    let addr = portal.addr.clone();

    let (code, out, err) = cli(&addr, Some(&ca), &["args", "over", "tls"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "arg 1: over\narg 2: tls\n");
    // Uploads over TLS: a small request leaves with the handshake's Finished, one over 16 KiB
    // after the handshake; both arrive whole.
    for bytes in [12usize, 100 * 1024] {
        let file = dir.path().join("up.yml");
        std::fs::write(&file, "x".repeat(bytes)).unwrap();
        let (code, out, err) =
            cli(&addr, Some(&ca), &["args", "--json", file.to_str().unwrap(), "-p", "3"]);
        assert_eq!(code, Some(0), "{err}");
        let seen: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(seen["files"], serde_json::json!([{"name": "up.yml", "bytes": bytes}]));
    }
    let (code, out, err) = cli(&addr, Some(&ca), &["whoami"]);
    assert_eq!((code, out.trim()), (Some(0), "default (admin)"), "{err}");
    let (code, body) = curl(&addr, &ca);
    assert_eq!(code, Some(0), "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["out"], "arg 1: via-curl\n");

    // The wrong CA: a clear error, nothing run.
    let (code, _, err) = cli(&addr, Some(&other_ca), &["args", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("TLS") && err.contains("certificate"), "{err}");
    assert!(err.contains("--ca"), "{err}");
    let (code, _) = curl(&addr, &other_ca);
    assert_eq!(code, Some(60), "curl: peer certificate cannot be authenticated");
    // No --ca: the system's roots, which do not know the test CA.
    let (code, _, err) = cli(&addr, None, &["args", "x"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("TLS") || err.contains("roots"), "{err}");
    // Plain HTTP on the HTTPS port: the probes answer (Kubernetes' httpGet probes send no TLS),
    // anything else is refused with a 400 that says to use https, and runs nothing.
    let plain = |request: &str| {
        let mut plain = TcpStream::connect(&addr).unwrap();
        plain.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        plain.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        let _ = plain.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let got = plain("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    for request in [
        "POST /shell HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\nX-Shell: args plain\r\nContent-Length: 0\r\n\r\n",
        "GET /tools HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k\r\n\r\n",
        "GET /healthz/../shell?line=args HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let got = plain(request);
        assert!(got.starts_with("HTTP/1.1 400"), "{request}: {got}");
        assert!(got.contains("use https://"), "{got}");
    }
    let ran = portal.proc.lines().iter().filter(|l| l.contains(" /shell args ")).count();
    assert_eq!(ran, 4, "only the verified requests ran tools (two lines and two uploads)");

    // The certificate rotated in place: new connections get the new one, no restart.
    replace(&other_cert, &served_cert);
    replace(&other_key, &served_key);
    let (code, out, err) = cli(&addr, Some(&other_ca), &["args", "rotated"]);
    assert_eq!((code, out.as_str()), (Some(0), "arg 1: rotated\n"), "{err}");
    let (code, _, _) = cli(&addr, Some(&ca), &["args", "x"]);
    assert_eq!(code, Some(1), "the old certificate is no longer served");
    portal.proc.wait_for_line("new certificate in use", DEADLINE);
}

#[test]
fn a_missing_or_mismatched_pair_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, _) = pki(dir.path(), "a");
    let (_, _, key) = pki(dir.path(), "b");
    for args in [
        vec!["--tls-cert", cert.to_str().unwrap()],
        vec!["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        vec!["--tls-cert", "/nonexistent.pem", "--tls-key", key.to_str().unwrap()],
    ] {
        let out = ocho()
            .args(["portal", "--bind", "127.0.0.1:0"])
            .args(&args)
            .env_remove("OCHO_TLS_CERT")
            .env_remove("OCHO_TLS_KEY")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

/// What a client negotiates: rustls's own order puts `TLS13_AES_256_GCM_SHA384` first, and
/// keeps sessions to resume. The portal chooses `TLS13_AES_128_GCM_SHA256` (its key schedule
/// hashes with SHA-256, which the CPU computes) and sends no session tickets, so a second
/// connection makes a full handshake again; the reply and its close_notify arrive whole.
#[test]
fn the_portal_chooses_aes_128_and_hands_out_no_session_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path(), "suite");
    let portal = Portal::start(
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &[("OCHO_TOKEN", "t0k")],
    );
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for der in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    assert_eq!(
        provider.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        "the client prefers another suite than the portal's"
    );
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for _ in 0..2 {
        let tcp = TcpStream::connect(&portal.addr).unwrap();
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let client = rustls::ClientConnection::new(std::sync::Arc::clone(&config), name).unwrap();
        let mut tls = rustls::StreamOwned::new(client, tcp);
        let request = format!(
            "POST /shell HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer t0k\r\nX-Shell: args suite\r\nContent-Length: 0\r\n\r\n",
            portal.addr
        );
        tls.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        // A clean end: the portal's close_notify came after the whole reply.
        tls.read_to_end(&mut reply).unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("arg 1: suite"), "{reply}");
        assert_eq!(
            tls.conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        assert_eq!(tls.conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
    }
}
