//! Kubernetes: a synchronous facade ([`Kube`]) over `kube`'s async client, driven by a private
//! current-thread runtime as `zk::Session` is; pure object builders ([`objects`]); the few API
//! operations the tools use ([`ops`]). Async stays sealed in here.
//!
//! Configuration: `--context` reads that context of `$KUBECONFIG` / `~/.kube/config`; without it
//! `kube::Config::infer` takes the kubeconfig if there is one, else the in-cluster service
//! account. Basic auth and disabled certificate checks are refused, whatever the kubeconfig says:
//! the original sent an admin password with every request and verified nothing.

mod follow;
pub mod objects;
pub mod ops;

use std::future::Future;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// Options shared by every tool that talks to Kubernetes (argh cannot flatten, so each tool
/// declares `--context` and `--k8s-namespace` itself and fills this).
#[derive(Debug, Default, Clone)]
pub struct Access {
    /// kubeconfig context (default: the current one, or the in-cluster service account)
    pub context: Option<String>,
    /// Kubernetes namespace (default: the context's, or the proxy's own in-cluster)
    pub k8s_namespace: Option<String>,
}

/// A connected client and the namespace the tools work in.
pub struct Kube {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    namespace: String,
    /// The server's `Warning` headers so far, oldest first (see [`Kube::take_warnings`]).
    warnings: std::sync::Mutex<Vec<String>>,
}

/// The time allowed to open a connection to the API server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The time allowed for one API answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Kube {
    /// Loads the configuration as described in the module docs and builds a client. Nothing is
    /// sent to the server yet.
    pub fn connect(access: &Access) -> Result<Kube> {
        Kube::connect_with(access, Some(READ_TIMEOUT))
    }

    /// [`Kube::connect`] without the read timeout, for streams that may stay silent for long
    /// (a followed log of a quiet container).
    pub fn connect_streaming(access: &Access) -> Result<Kube> {
        Kube::connect_with(access, None)
    }

    fn connect_with(access: &Access, read_timeout: Option<Duration>) -> Result<Kube> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::io("start the kubernetes client runtime", "", source))?;
        let mut config = rt.block_on(load_config(access))?;
        if config.accept_invalid_certs {
            return Err(Error::K8sConfig(
                "insecure-skip-tls-verify is set in the kubeconfig; refusing to talk to an \
                 unverified API server (give the cluster's certificate-authority instead)"
                    .into(),
            ));
        }
        if config.auth_info.username.is_some() || config.auth_info.password.is_some() {
            return Err(Error::K8sConfig(
                "the kubeconfig user authenticates with a username and password (basic auth); \
                 use a token or client certificate"
                    .into(),
            ));
        }
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = read_timeout;
        config.reset_reader_on_write = true;
        if let Some(ns) = &access.k8s_namespace {
            crate::definition::check_dns_label("--k8s-namespace", ns)
                .map_err(|e| Error::Usage(e.to_string()))?;
            config.default_namespace = ns.clone();
        }
        let namespace = config.default_namespace.clone();
        let server = config.cluster_url.to_string();
        // The client's tower buffer spawns onto the current runtime.
        let _guard = rt.enter();
        let client = kube::Client::try_from(config).map_err(|source| Error::K8s {
            what: format!("build a client for {server}"),
            source,
        })?;
        drop(_guard);
        Ok(Kube { rt, client, namespace, warnings: Default::default() })
    }

    /// The Kubernetes namespace every operation uses.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The async client (a cheap clone).
    fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Runs a future on this client's runtime.
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

    /// The warnings the server sent since the last call (the text of each `Warning` header, as
    /// kubectl prints them), oldest first.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends one request, keeps the server's warnings, and decodes a 2xx answer as `T`; any
    /// other answer is the API error, naming `what`.
    pub fn send<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: http::Request<Vec<u8>>,
    ) -> Result<T> {
        let client = self.client();
        self.block_on(async move {
            let response = client
                .send(request.map(kube::client::Body::from))
                .await
                .map_err(|e| api_error(what, e))?;
            let texts = response.headers().get_all(http::header::WARNING).iter();
            let texts: Vec<String> =
                texts.filter_map(|v| v.to_str().ok()).map(warning_text).collect();
            self.warnings.lock().unwrap_or_else(|p| p.into_inner()).extend(texts);
            let status = response.status();
            let body =
                response.into_body().collect_bytes().await.map_err(|e| api_error(what, e))?;
            if !status.is_success() {
                let answer = serde_json::from_slice::<kube::core::Status>(&body)
                    .ok()
                    .filter(|s| s.code != 0)
                    .unwrap_or_else(|| {
                        let text = String::from_utf8_lossy(&body).trim().to_string();
                        kube::core::Status::failure(&text, "").with_code(status.as_u16())
                    });
                return Err(api_error(what, kube::Error::Api(answer.boxed())));
            }
            serde_json::from_slice(&body).map_err(|e| api_error(what, kube::Error::SerdeError(e)))
        })
    }
}

/// The text of one `Warning` header (`299 - "text"`): the quoted part, unescaped.
pub fn warning_text(header: &str) -> String {
    let mut parts = header.splitn(3, ' ');
    let (code, _agent, rest) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let Some(quoted) = rest.trim().strip_prefix('"') else {
        return header.to_string();
    };
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    if code.is_some_and(|c| c.len() == 3) { out } else { header.to_string() }
}

async fn load_config(access: &Access) -> Result<kube::Config> {
    match &access.context {
        Some(context) => {
            let kubeconfig = Kubeconfig::read().map_err(|e| {
                Error::K8sConfig(format!("--context {context}: cannot read a kubeconfig: {e}"))
            })?;
            let options =
                KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Error::K8sConfig(format!("context {context}: {e}")))
        }
        None => kube::Config::infer().await.map_err(|e| {
            Error::K8sConfig(format!(
                "none found: not running in a pod with a service account, and no usable \
                 kubeconfig ($KUBECONFIG or ~/.kube/config): {e}"
            ))
        }),
    }
}

/// Turns a client error into ours: API Status errors keep their code, reason and message and
/// name the object (`what`); anything else (connection refused, TLS, timeouts) keeps its chain.
pub fn api_error(what: impl Into<String>, err: kube::Error) -> Error {
    match err {
        kube::Error::Api(status) => Error::K8sApi {
            what: what.into(),
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        },
        source => Error::K8s { what: what.into(), source },
    }
}

/// True when `err` is an API answer with this HTTP code.
pub fn is_code(err: &Error, want: u16) -> bool {
    matches!(err, Error::K8sApi { code, .. } if *code == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_headers_give_their_text() {
        assert_eq!(
            warning_text(r#"299 - "unknown field \"spec.x\"""#),
            r#"unknown field "spec.x""#
        );
        assert_eq!(warning_text(r#"299 - "a \\ b""#), r"a \ b");
        assert_eq!(warning_text("odd"), "odd");
    }
}
