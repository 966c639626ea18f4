//! The fake's credentials: a test CA made at start-up, a server certificate for 127.0.0.1 signed
//! by it, and the kubeconfig that carries the CA data and the bearer token (docs/fake-kubernetes.md
//! §2).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA certificate (PEM, for the kubeconfig) and a rustls server config presenting a leaf
/// certificate signed by it.
pub struct Tls {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

impl Tls {
    pub fn generate() -> std::io::Result<Tls> {
        let ca_key = KeyPair::generate().map_err(other)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "fake-kube-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(other)?;

        let leaf_key = KeyPair::generate().map_err(other)?;
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string()]).map_err(other)?;
        leaf_params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf_params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(other)?;

        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(other)?;
        // kube's connector speaks HTTP/1.1 only; say so in ALPN like a real server would accept.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { ca_pem: ca.pem(), server: Arc::new(server) })
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Writes a kubeconfig for `addr` (https when `ca_pem` is given) with a bearer token and the
/// `default` namespace, the shape `kubectl config view --raw` prints.
pub fn write_kubeconfig(
    path: &Path,
    addr: SocketAddr,
    ca_pem: Option<&str>,
    token: &str,
) -> std::io::Result<()> {
    let (scheme, ca_line) = match ca_pem {
        Some(pem) => (
            "https",
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            ),
        ),
        None => ("http", String::new()),
    };
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: fake\n  cluster:\n    server: {scheme}://{addr}\n{ca_line}\
         users:\n\
         - name: fake\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         current-context: fake\n"
    );
    std::fs::write(path, text)
}
