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

/// A server configuration from a PEM certificate chain and a PEM private key.
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("{} with {}: {e}", cert.display(), key.display()))?;
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

/// One accepted connection: the socket, and the TLS session over it when the server has one.
pub struct Conn {
    pub tcp: Arc<TcpStream>,
    tls: Option<Mutex<rustls::ServerConnection>>,
}

impl Conn {
    pub fn new(tcp: Arc<TcpStream>, certs: Option<&Certs>) -> io::Result<Conn> {
        let tls = match certs {
            Some(certs) => Some(Mutex::new(
                rustls::ServerConnection::new(certs.current()).map_err(io::Error::other)?,
            )),
            None => None,
        };
        Ok(Conn { tcp, tls })
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else { return (&*self.tcp).read(buf) };
        let mut tls = tls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            while tls.wants_write() {
                tls.write_tls(&mut &*self.tcp)?;
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
            if let Err(err) = tls.process_new_packets() {
                // Tell the client why (an alert), then give up on the connection.
                let _ = tls.write_tls(&mut &*self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        }
    }

    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else { return (&*self.tcp).write(buf) };
        let mut tls = tls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = tls.writer().write(buf)?;
        while tls.wants_write() {
            tls.write_tls(&mut &*self.tcp)?;
        }
        Ok(n)
    }

    /// Ends the session (close_notify) and the socket.
    pub fn shutdown(&self) {
        if let Some(tls) = &self.tls {
            let mut tls = tls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(&mut &*self.tcp).is_err() {
                    break;
                }
            }
        }
        let _ = self.tcp.shutdown(std::net::Shutdown::Both);
    }
}
