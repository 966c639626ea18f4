//! The HTTP/1.1 side (docs/fake-kubernetes.md §2): hyper on a tokio runtime of its own, plain or
//! TLS, bearer-token authentication, request recording, injected failures, and chunked streaming
//! for watches and `follow=true` logs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use super::api::{self, Reply, Req};
use super::status::ApiError;
use super::{Recorded, Shared};

/// Request bodies larger than this are refused with 413, as the real API server's default limit
/// (3 MiB) does.
const MAX_BODY: usize = 3 << 20;

type Body = BoxBody<Bytes, Infallible>;

pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-kube: cannot use the listener: {e}");
            return;
        }
    };
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req).await) }
            });
            let conn = http1::Builder::new();
            match acceptor {
                Some(a) => {
                    if let Ok(tls) = a.accept(stream).await {
                        let _ = conn.serve_connection(TokioIo::new(tls), svc).await;
                    }
                }
                None => {
                    let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
                }
            }
        });
    }
}

async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let header =
        |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type = header("content-type");
    let auth = header("authorization");
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => {
            return error(ApiError::new(
                413,
                "RequestEntityTooLarge",
                &format!("Request entity too large: limit is {MAX_BODY}"),
                None,
            ));
        }
    };
    shared.records.lock().expect("records lock").push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query: pairs.clone(),
        content_type: content_type.clone(),
        body: body.clone(),
    });
    if auth.as_deref() != Some(format!("Bearer {}", shared.token).as_str()) {
        return error(ApiError::unauthorized());
    }
    if let Some(code) = shared.take_fault(&method, &path) {
        return error(ApiError::injected(code));
    }
    if let Some(e) = forbidden(shared, &method, &path, &pairs) {
        return error(e);
    }
    let req = Req {
        warnings: Default::default(),
        method,
        path,
        query: pairs.into_iter().collect::<BTreeMap<_, _>>(),
        content_type,
        body,
    };
    let reply = api::handle(shared, &req);
    for (m, prefix, text) in shared.warns.lock().expect("warns lock").iter() {
        if m.eq_ignore_ascii_case(&req.method) && req.path.starts_with(prefix.as_str()) {
            req.warnings.borrow_mut().push(text.clone());
        }
    }
    let mut response = reply_to_response(reply);
    for text in req.warnings.borrow().iter() {
        // RFC 7234 warn-code 299, no agent, the text as a quoted string.
        let value = format!("299 - \"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().append("warning", v);
        }
    }
    response
}

fn reply_to_response(reply: Result<Reply, ApiError>) -> Response<Body> {
    match reply {
        Ok(Reply::Json(code, v)) => full(code, "application/json", v.to_string()),
        Ok(Reply::Text(t)) => full(200, "text/plain", t),
        Ok(Reply::Stream { content_type, first, rx, limit }) => {
            let deadline = tokio::time::Instant::now() + limit;
            let first = (!first.is_empty()).then_some(first);
            let stream =
                futures_util::stream::unfold((first, rx), move |(first, mut rx)| async move {
                    if let Some(f) = first {
                        return Some((Ok(Frame::data(f)), (None, rx)));
                    }
                    tokio::select! {
                        next = rx.recv() => next.map(|b| (Ok(Frame::data(b)), (None, rx))),
                        _ = tokio::time::sleep_until(deadline) => None,
                    }
                });
            Response::builder()
                .status(200)
                .header("content-type", content_type)
                .body(StreamBody::new(stream).boxed())
                .expect("static response parts")
        }
        Err(e) => error(e),
    }
}

fn full(code: u16, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts")
}

fn error(e: ApiError) -> Response<Body> {
    full(e.code, "application/json", e.body.to_string())
}

/// The (verb, resource, namespace, name) of a request, as RBAC sees it.
fn attributes(
    method: &str,
    path: &str,
    query: &[(String, String)],
) -> Option<(String, String, Option<String>, Option<String>)> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let watch = query.iter().any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    let (ns, rest) = match segs.as_slice() {
        ["api", "v1", "namespaces", ns, rest @ ..] if !rest.is_empty() => {
            (Some(ns.to_string()), rest)
        }
        ["api", "v1", rest @ ..] if !rest.is_empty() => (None, rest),
        _ => return None,
    };
    let (resource, name) = match rest {
        [res] => (res.to_string(), None),
        [res, name] => (res.to_string(), Some(name.to_string())),
        [res, name, sub] => (format!("{res}/{sub}"), Some(name.to_string())),
        _ => return None,
    };
    let verb = match (method, name.is_some()) {
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        ("DELETE", true) => "delete",
        _ => return None,
    };
    Some((verb.to_string(), resource, ns, name))
}

/// 403 for a (verb, resource, namespace) the test denied with `FakeKube::forbid`.
fn forbidden(
    shared: &Shared,
    method: &str,
    path: &str,
    query: &[(String, String)],
) -> Option<ApiError> {
    let (verb, resource, ns, name) = attributes(method, path, query)?;
    let denied = shared.forbid.lock().expect("forbid lock").iter().any(|(v, r, n)| {
        *v == verb && *r == resource && n.as_ref().is_none_or(|n| Some(n) == ns.as_ref())
    });
    if !denied {
        return None;
    }
    let base = resource.split('/').next().unwrap_or("").to_string();
    let subject = match &name {
        Some(n) => format!("{base} \"{n}\""),
        None => base.clone(),
    };
    let scope = match &ns {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    let mut details = serde_json::json!({"kind": base});
    if let Some(n) = name {
        details["name"] = n.into();
    }
    Some(ApiError::new(
        403,
        "Forbidden",
        &format!(
            "{subject} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"\" {scope}",
            super::FORBIDDEN_USER
        ),
        Some(details),
    ))
}
