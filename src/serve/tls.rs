//! HTTPS for the server: rustls (ring provider) over the accepted `TcpStream`. The certificate
//! chain and key are PEM files, read again whenever either changes (cert-manager and the
//! kubelet rewrite them in place), checked at each new connection; a pair that does not load
//! keeps the previous one in use and says why. [`Conn`] is one connection, plain or TLS; the
//! raw socket stays available for the liveness checks.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

type Stamp = Option<(u64, u64, u64, i64, i64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The server's certificate and key files, and the configuration made of them.
pub struct Certs {
    cert: PathBuf,
    key: PathBuf,
    loaded: Mutex<([Stamp; 2], Arc<ServerConfig>)>,
}

/// ring, with the cipher suites in the order both ends of the portal prefer:
/// `TLS13_AES_128_GCM_SHA256` first. It is the suite every TLS 1.3 implementation must have
/// (RFC 8446 §9.1), and its key schedule runs on SHA-256, which x86-64 and ARMv8 CPUs compute in
/// hardware; `TLS13_AES_256_GCM_SHA384`, first in rustls's and OpenSSL's own order, hashes with
/// SHA-384 in software, a measurable part of a handshake on each side. Nothing else changes: the
/// same suites stay on offer, and every TLS 1.3 suite is strong.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// A server configuration from a PEM certificate chain and a PEM private key. It chooses the
/// cipher suite in [`provider`]'s order, and sends no session tickets: the portal's clients
/// never resume a session (one-shot `ocho cli` and curl keep no session cache; the REPL and
/// browsers keep their connection alive), and each ticket would cost every new connection a
/// key derivation and a record on its way, before its request is read.
pub fn config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("{} with {}: {e}", cert.display(), key.display()))?;
    config.ignore_client_order = true;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

impl Certs {
    /// Loads the pair now: an error stops the start.
    pub fn load(cert: &Path, key: &Path) -> Result<Certs, String> {
        let stamps = [stamp(cert), stamp(key)];
        let config = config(cert, key)?;
        Ok(Certs {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            loaded: Mutex::new((stamps, config)),
        })
    }

    /// The configuration for a new connection, read again if a file changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        let now = [stamp(&self.cert), stamp(&self.key)];
        let mut loaded = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now != loaded.0 {
            match config(&self.cert, &self.key) {
                Ok(config) => {
                    eprintln!("tls: {} changed: new certificate in use", self.cert.display());
                    *loaded = (now, config);
                }
                Err(why) => {
                    // Half-written during a rotation, say: the next connection tries again.
                    eprintln!("tls: {why}; the previous certificate stays in use");
                }
            }
        }
        Arc::clone(&loaded.1)
    }
}

/// Written bytes held back until a flush: past this many, they go out without one.
const HOLD: usize = 16 * 1024;

/// One accepted connection: the socket, and the TLS session over it when the server has one.
/// Writes are held until [`Conn::flush`] or [`Conn::shutdown`], so that what a reply writes in
/// pieces (its head, its first lines; its last line and, over TLS, the close_notify alert)
/// leaves in one system call, one TCP segment, one wake-up of the client.
pub struct Conn {
    pub tcp: Arc<TcpStream>,
    out: Mutex<Out>,
}

/// The sending side of a connection, and what it holds back.
enum Out {
    Plain(Vec<u8>),
    /// The session, and the plaintext bytes it holds as records not yet sent.
    Tls(Box<rustls::ServerConnection>, usize),
}

impl Conn {
    pub fn new(tcp: Arc<TcpStream>, certs: Option<&Certs>) -> io::Result<Conn> {
        let out = match certs {
            Some(certs) => Out::Tls(
                Box::new(rustls::ServerConnection::new(certs.current()).map_err(io::Error::other)?),
                0,
            ),
            None => Out::Plain(Vec::new()),
        };
        Ok(Conn { tcp, out: Mutex::new(out) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut out = self.lock();
        let tls = match &mut *out {
            Out::Plain(_) => {
                drop(out);
                return (&*self.tcp).read(buf);
            }
            Out::Tls(tls, _) => tls,
        };
        loop {
            // What the handshake has to say goes out now; anything else waits for the reply.
            if tls.is_handshaking() {
                while tls.wants_write() {
                    tls.write_tls(&mut &*self.tcp)?;
                }
            }
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify: an end like any other here.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut &*self.tcp)? == 0 {
                return Ok(0);
            }
            let handshaking = tls.is_handshaking();
            if let Err(err) = tls.process_new_packets() {
                // Tell the client why (an alert), then give up on the connection.
                let _ = tls.write_tls(&mut &*self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
            if handshaking && !tls.is_handshaking() {
                ack_now(&self.tcp);
            }
        }
    }

    /// Takes `buf` to send; it leaves at the next flush, or once more than [`HOLD`] bytes wait.
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut out = self.lock();
        match &mut *out {
            Out::Plain(held) => {
                held.extend_from_slice(buf);
                if held.len() > HOLD {
                    send_plain(&self.tcp, held)?;
                }
                Ok(buf.len())
            }
            Out::Tls(tls, held) => {
                let mut n = tls.writer().write(buf)?;
                if n == 0 && !buf.is_empty() {
                    // The session's buffer is full: make room, then take what fits.
                    send_tls(&self.tcp, tls, held)?;
                    n = tls.writer().write(buf)?;
                }
                *held += n;
                if *held > HOLD {
                    send_tls(&self.tcp, tls, held)?;
                }
                Ok(n)
            }
        }
    }

    /// Sends everything held.
    pub fn flush(&self) -> io::Result<()> {
        match &mut *self.lock() {
            Out::Plain(held) => send_plain(&self.tcp, held),
            Out::Tls(tls, held) => send_tls(&self.tcp, tls, held),
        }
    }

    /// Sends what is held and ends the session (close_notify, in the same write) and the socket.
    pub fn shutdown(&self) {
        let _ = match &mut *self.lock() {
            Out::Plain(held) => send_plain(&self.tcp, held),
            Out::Tls(tls, held) => {
                tls.send_close_notify();
                send_tls(&self.tcp, tls, held)
            }
        };
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}

/// Sends at once the ACK the kernel holds back for the client's last segment (`TCP_QUICKACK`).
/// After our handshake flight the kernel takes the connection for an exchange and delays the ACK
/// of the client's Finished, to ride on our next segment; we send none until the reply. A client
/// that writes its request apart from its Finished without `TCP_NODELAY` (Nagle's algorithm)
/// holds the request until that ACK comes: 40 ms later, every new connection.
fn ack_now(tcp: &TcpStream) {
    use nix::libc::{IPPROTO_TCP, TCP_QUICKACK, c_int, setsockopt, socklen_t};
    use std::os::fd::AsRawFd;
    let on: c_int = 1;
    // SAFETY: a descriptor that `tcp` keeps open for the call, and a pointer to an int that
    // outlives it, with its size.
    let _ = unsafe {
        setsockopt(
            tcp.as_raw_fd(),
            IPPROTO_TCP,
            TCP_QUICKACK,
            (&raw const on).cast(),
            std::mem::size_of::<c_int>() as socklen_t,
        )
    };
}

fn send_plain(tcp: &TcpStream, held: &mut Vec<u8>) -> io::Result<()> {
    let sent = (&*tcp).write_all(held);
    held.clear();
    sent
}

fn send_tls(
    tcp: &TcpStream,
    tls: &mut rustls::ServerConnection,
    held: &mut usize,
) -> io::Result<()> {
    *held = 0;
    while tls.wants_write() {
        tls.write_tls(&mut &*tcp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A connected pair on a free port: the client's socket and the server's.
    fn pair(listener: &TcpListener) -> (TcpStream, Arc<TcpStream>) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, Arc::new(server))
    }

    /// Whether a byte has reached `client`, without waiting for one. Over loopback a sent
    /// segment is queued at the receiver before `write` returns; a false "no" is only possible
    /// for bytes sent, never a false "yes" for bytes held.
    fn arrived(client: &TcpStream) -> bool {
        client.set_nonblocking(true).unwrap();
        let got = matches!(client.peek(&mut [0u8; 1]), Ok(n) if n > 0);
        client.set_nonblocking(false).unwrap();
        got
    }

    #[test]
    fn writes_wait_for_a_flush_or_the_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (mut client, server) = pair(&listener);
        client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let conn = Conn::new(server, None).unwrap();
        conn.write(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        conn.write(b"first line\n").unwrap();
        assert!(!arrived(&client), "nothing leaves before the flush");
        conn.flush().unwrap();
        let mut got = [0u8; 30];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\nfirst line\n");
        conn.write(b"last\n").unwrap();
        assert!(!arrived(&client));
        conn.shutdown();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"last\n");

        // More than HOLD leaves without a flush.
        let (mut client, server) = pair(&listener);
        client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let conn = Conn::new(server, None).unwrap();
        let big = vec![b'x'; HOLD + 1];
        assert_eq!(conn.write(&big).unwrap(), big.len());
        let mut got = vec![0u8; big.len()];
        client.read_exact(&mut got).unwrap();
    }

    #[test]
    fn over_tls_the_last_record_leaves_with_the_close_notify() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let certs = Certs::load(&cert_path, &key_path).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (raw_tx, raw_rx) = mpsc::channel();
        let (got_tx, got_rx) = mpsc::channel();
        let client = std::thread::spawn(move || {
            let tcp = TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            raw_tx.send(tcp.try_clone().unwrap()).unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(b"ping").unwrap();
            let mut two = [0u8; 2];
            tls.read_exact(&mut two).unwrap();
            got_tx.send(two.to_vec()).unwrap();
            // A clean end of the stream: the close_notify came.
            let mut rest = Vec::new();
            tls.read_to_end(&mut rest).map(|_| rest)
        });
        let (server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let conn = Conn::new(Arc::new(server), Some(&certs)).unwrap();
        let mut ping = Vec::new();
        while ping.len() < 4 {
            let mut buf = [0u8; 16];
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "the client went away");
            ping.extend_from_slice(&buf[..n]);
        }
        assert_eq!(ping, b"ping");
        let raw = raw_rx.recv().unwrap();
        conn.write(b"a").unwrap();
        conn.write(b"b").unwrap();
        assert!(!arrived(&raw), "no record leaves before the flush");
        conn.flush().unwrap();
        assert_eq!(got_rx.recv().unwrap(), b"ab");
        conn.write(b"c").unwrap();
        assert!(!arrived(&raw));
        conn.shutdown();
        assert_eq!(client.join().unwrap().unwrap(), b"c");
    }
}
