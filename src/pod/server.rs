//! The pod's control port (docs/protocol.md §3): `POST /info`, `/log`, `/reset`,
//! `/control/<verb>[/<timeout>]`, `/exec` (registered tools only) and `/terminate` (from the pod
//! itself only, [`from_the_pod_itself`]), JSON bodies with `application/json`, 405 for other
//! methods, 404 for other paths. Control requests are queued to the lifecycle actor and answered
//! within their timeout, or 408 while the command stays queued.

use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Sender, sync_channel};
use std::time::Duration;

use rouille::{Request, Response};
use serde_json::{Value, json};

use super::Shared;
use super::lifecycle::Msg;
use crate::ochopod::VERBS;

/// Largest control body accepted: a payload lists every pod of a cluster and its dependencies.
const MAX_BODY: u64 = 4 * 1024 * 1024;
/// The control port's bounds: a leader and the tools are its only clients. Bodies of all
/// connections together are capped at a few of the largest, so a flood of posts to a busy pod
/// holds little memory: the excess is answered 503 before its body is read.
pub const LIMITS: crate::serve::Limits = crate::serve::Limits {
    max_connections: 128,
    max_body: MAX_BODY as usize,
    body_budget: 4 * MAX_BODY as usize,
    ..crate::serve::Limits::DEFAULT
};

/// Ochopod's default when the URL carries no timeout segment.
const DEFAULT_TIMEOUT: u64 = 60;

/// What the routes need.
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub lifecycle: std::sync::Mutex<Sender<Msg>>,
    pub exec: Exec,
    /// Hears `/terminate` once: whoever holds the receiver stops the control port's server.
    pub terminate: std::sync::Mutex<Option<Sender<()>>>,
}

/// The tools `/exec` may run (`--tool TAG=PROG`) and how.
#[derive(Default)]
pub struct Exec {
    /// `(tag, program)`, as registered.
    pub tools: Vec<(String, String)>,
    pub reaper: super::reaper::Reaper,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Ochopod 1.0.7's `/exec`: `X-Shell: <tag> <args…>` split on single spaces; only a
/// registered tool runs (404 `{}` otherwise, 500 `{}` without the header), in a fresh
/// directory holding the request's multipart file parts, and the reply is
/// `{"code": int, "stdout": [lines]}`. Unlike Ochopod, a tool is killed after
/// `--hook-timeout`, and then answers code 124 with the reason as its output.
fn exec(request: &Request, ctx: &Ctx) -> Response {
    let Some(line) = request.header("X-Shell") else {
        return reply(500, &json!({}));
    };
    let mut words = line.split(' ');
    let tag = words.next().unwrap_or_default();
    let Some((_, prog)) = ctx.exec.tools.iter().find(|(t, _)| t == tag) else {
        return reply(404, &json!({}));
    };
    let args: Vec<&str> = words.collect();
    let failed = |why: String| reply(200, &json!({"code": 1, "stdout": [why]}));
    let dir = match tempfile::Builder::new().prefix("ocho-exec-").tempdir() {
        Ok(dir) => dir,
        Err(e) => return failed(format!("cannot make a directory for the tool: {e}")),
    };
    let kind = request.header("Content-Type").unwrap_or_default();
    if kind.to_ascii_lowercase().starts_with("multipart/") {
        let body = match crate::portal::upload::body(request) {
            Ok(body) => body,
            Err(e) => return failed(crate::error::chain(&e)),
        };
        let saved = crate::portal::upload::parse_form(Some(kind), &body)
            .and_then(|parts| crate::portal::upload::save(&parts, dir.path(), MAX_BODY as usize));
        if let Err(e) = saved {
            return failed(crate::error::chain(&e));
        }
    }
    ctx.shared.log.info(format!("exec: {line}"));
    let e = &ctx.exec;
    match super::hooks::run_in(&e.reaper, prog, &args, "", &e.env, e.timeout, Some(dir.path())) {
        Ok(out) => {
            let lines: Vec<&str> = out.stdout.lines().collect();
            reply(200, &json!({"code": out.code, "stdout": lines}))
        }
        Err(why) => reply(200, &json!({"code": 124, "stdout": [why]})),
    }
}

/// Whether a peer is the pod itself, the only caller `/terminate` accepts (Ochopod's pod calls
/// it on itself when exiting; anyone else would leave the pod uncontrollable): the peer's
/// address is `127.0.0.1` or `::1` (IPv4-mapped included), or it equals the pod's own `ip` and
/// that address is one of this host's own (in 127.0.0.0/8, or assigned to one of its interfaces;
/// `local` says which are). Linux drops a packet from outside with a loopback or local source
/// address (unless `route_localnet` or `accept_local` are set), so such a peer runs in the pod's
/// own network namespace. Any other peer,
/// even another 127.x.y.z address of the host, is refused.
pub fn from_the_pod_itself(peer: IpAddr, own_ip: &str, local: impl Fn(IpAddr) -> bool) -> bool {
    let peer = peer.to_canonical();
    if peer == IpAddr::from([127, 0, 0, 1]) || peer == IpAddr::from(std::net::Ipv6Addr::LOCALHOST) {
        return true;
    }
    let Ok(own) = own_ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) else { return false };
    peer == own && (own.is_loopback() || local(own))
}

/// Whether `ip` is assigned to one of this host's interfaces.
fn assigned_here(ip: IpAddr) -> bool {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return false };
    addrs.into_iter().filter_map(|a| a.address).any(|s| {
        let v4 = s.as_sockaddr_in().map(|s| IpAddr::V4(s.ip()));
        let v6 = s.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip()));
        v4.or(v6) == Some(ip)
    })
}

/// Ochopod's `/terminate`, from the pod itself only: answers 200 `{}`, then the control port
/// stops listening (the agent and its workload go on). Anyone else gets 403 `{}` and nothing
/// stops; both are logged.
fn terminate(request: &Request, ctx: &Ctx) -> Response {
    let peer = request.remote_addr().ip();
    let own = ctx.shared.own_ip();
    if !from_the_pod_itself(peer, &own, assigned_here) {
        ctx.shared.log.info(format!(
            "terminate from {peer} refused (403): only the pod itself (127.0.0.1, ::1 or its \
             own ip {own}) may stop the control port"
        ));
        return reply(403, &json!({}));
    }
    let sender = ctx.terminate.lock().ok().and_then(|mut t| t.take());
    ctx.shared.log.info(format!("terminate from {peer}: the control port stops listening"));
    if let Some(sender) = sender {
        let _ = sender.send(());
    }
    reply(200, &json!({}))
}

fn reply(code: u16, body: &Value) -> Response {
    Response::from_data("application/json", body.to_string()).with_status_code(code)
}

/// Routes one request.
pub fn routes(request: &Request, ctx: &Ctx) -> Response {
    let url = request.url();
    let known = matches!(url.as_str(), "/info" | "/log" | "/reset" | "/exec" | "/terminate")
        || url.starts_with("/control/");
    if !known {
        return reply(404, &json!({}));
    }
    if request.method() != "POST" {
        return reply(405, &json!({}));
    }
    match url.as_str() {
        "/info" => reply(200, &ctx.shared.info()),
        "/log" => reply(200, &json!(ctx.shared.log.lines())),
        "/reset" => {
            ctx.shared.log.info("reset requested over http");
            ctx.shared.request_reset();
            reply(200, &json!({}))
        }
        "/exec" => exec(request, ctx),
        "/terminate" => terminate(request, ctx),
        _ => control(request, &url["/control/".len()..], ctx),
    }
}

fn control(request: &Request, rest: &str, ctx: &Ctx) -> Response {
    let (verb, timeout) = match rest.split_once('/') {
        Some((v, t)) => (v, Some(t)),
        None => (rest, None),
    };
    if timeout.is_some_and(|t| t.contains('/')) {
        return reply(404, &json!({}));
    }
    if !VERBS.contains(&verb) {
        return reply(400, &json!({}));
    }
    if ctx.shared.is_dead() {
        return reply(410, &json!({}));
    }
    let mut body = Vec::new();
    if let Some(data) = request.data() {
        let _ = data.take(MAX_BODY).read_to_end(&mut body);
    }
    let (tx, rx) = sync_channel(1);
    let msg = Msg::Control { verb: verb.to_string(), body, reply: Some(tx) };
    let sent = ctx.lifecycle.lock().map(|l| l.send(msg).is_ok()).unwrap_or(false);
    if !sent {
        return reply(410, &json!({}));
    }
    // As in Ochopod, a bad timeout is noticed after the command was queued: it still runs.
    let secs = match timeout.map(str::parse::<u64>) {
        None => DEFAULT_TIMEOUT,
        Some(Ok(s)) => s,
        Some(Err(_)) => return reply(500, &json!({})),
    };
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok((code, body)) => reply(code, &body),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => reply(408, &json!({})),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => reply(410, &json!({})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    /// A context whose lifecycle answers every verb with 299 from a thread, or never.
    fn ctx(answer: bool) -> Ctx {
        let (done, _) = channel();
        let record = json!({"ip": "10.0.0.1", "port": "8080", "seq": 3, "cluster": "c"});
        let shared =
            Arc::new(Shared::new(record.as_object().unwrap().clone(), vec!["db".into()], done));
        let (tx, rx) = channel::<Msg>();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for msg in rx {
                if let Msg::Control { reply: Some(reply), .. } = msg {
                    if answer {
                        let _ = reply.send((299, json!({"ok": 1})));
                    } else {
                        held.push(reply);
                    }
                }
            }
        });
        Ctx {
            shared,
            lifecycle: std::sync::Mutex::new(tx),
            exec: Exec::default(),
            terminate: std::sync::Mutex::new(None),
        }
    }

    fn call(ctx: &Ctx, method: &str, url: &str) -> (u16, Value) {
        let req = Request::fake_http(method, url, vec![], b"{}".to_vec());
        let resp = routes(&req, ctx);
        let mut body = String::new();
        resp.data.into_reader_and_size().0.read_to_string(&mut body).unwrap();
        (resp.status_code, serde_json::from_str(&body).unwrap())
    }

    #[test]
    fn methods_paths_and_verbs_are_checked_first() {
        let c = ctx(true);
        assert_eq!(call(&c, "GET", "/info").0, 405);
        assert_eq!(call(&c, "POST", "/nope").0, 404);
        assert_eq!(call(&c, "POST", "/control/shutdown").0, 400);
        assert_eq!(call(&c, "POST", "/control/on/5/x").0, 404);
        assert_eq!(call(&c, "POST", "/control/on/5"), (299, json!({"ok": 1})));
        assert_eq!(call(&c, "POST", "/control/on/soon").0, 500);
        assert_eq!(call(&c, "POST", "/reset"), (200, json!({})));
    }

    #[test]
    fn only_the_pod_itself_may_terminate() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (nowhere, everywhere) = (|_: IpAddr| false, |_: IpAddr| true);
        for peer in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(from_the_pod_itself(ip(peer), "10.0.0.1", nowhere), "{peer}");
        }
        // The pod's own ip, when it is the host's (loopback, or on an interface).
        assert!(from_the_pod_itself(ip("127.0.0.5"), "127.0.0.5", nowhere));
        assert!(from_the_pod_itself(ip("10.0.0.1"), "10.0.0.1", everywhere));
        assert!(from_the_pod_itself(ip("::ffff:10.0.0.1"), "10.0.0.1", everywhere));
        // An --ip that is not this host's: a peer with that address is someone else.
        assert!(!from_the_pod_itself(ip("10.0.0.1"), "10.0.0.1", nowhere));
        // Other loopback addresses, other hosts, a bad --ip.
        assert!(!from_the_pod_itself(ip("127.0.0.6"), "127.0.0.5", everywhere));
        assert!(!from_the_pod_itself(ip("10.0.0.2"), "10.0.0.1", everywhere));
        assert!(!from_the_pod_itself(ip("10.0.0.2"), "", everywhere));
        assert!(!from_the_pod_itself(ip("::2"), "::1.2", everywhere));
    }

    #[test]
    fn terminate_is_refused_to_other_peers_and_stops_the_port_for_the_pod() {
        let mut c = ctx(true);
        let (tx, rx) = channel();
        c.terminate = std::sync::Mutex::new(Some(tx));
        let from = |peer: &str| {
            let req = Request::fake_http_from(
                peer.parse().unwrap(),
                "POST",
                "/terminate",
                vec![],
                vec![],
            );
            let resp = routes(&req, &c);
            let mut body = String::new();
            resp.data.into_reader_and_size().0.read_to_string(&mut body).unwrap();
            (resp.status_code, serde_json::from_str::<Value>(&body).unwrap())
        };
        assert_eq!(call(&c, "GET", "/terminate").0, 405);
        assert_eq!(from("10.0.0.2:4000"), (403, json!({})));
        assert_eq!(from("127.0.0.2:4000"), (403, json!({})));
        assert!(rx.try_recv().is_err(), "nothing stopped");
        assert!(c.shared.log.lines().iter().any(|l| l.contains("terminate from 10.0.0.2 refused")));
        assert_eq!(from("127.0.0.1:4000"), (200, json!({})));
        assert!(rx.try_recv().is_ok(), "the server is told to stop");
    }

    #[test]
    fn info_shows_the_whitelist_and_the_live_state() {
        let c = ctx(true);
        let (code, info) = call(&c, "POST", "/info");
        assert_eq!(code, 200);
        assert_eq!(info["ip"], "10.0.0.1");
        assert!(info.get("seq").is_none() && info.get("cluster").is_none());
        assert_eq!(
            (info["process"].as_str(), info["state"].as_str()),
            (Some("stopped"), Some("follower"))
        );
        assert!(info.get("status").is_none(), "no status before leading");
        assert_eq!(info["dependencies"], json!(["db"]));
        assert_eq!(info["configured"], false);
        c.shared.set_configured();
        assert_eq!(call(&c, "POST", "/info").1["configured"], true);
        c.shared.set_leader(
            crate::ochopod::state::PENDING,
            Some("* configuration in 1.0 seconds".into()),
        );
        assert_eq!(call(&c, "POST", "/info").1["state"], "leader (configuration pending)");
        c.shared.stop_leading();
        assert_eq!(call(&c, "POST", "/info").1["status"], "");
    }

    #[test]
    fn timeouts_give_408_and_dead_pods_410() {
        let c = ctx(false);
        assert_eq!(call(&c, "POST", "/control/check/0").0, 408);
        c.shared.set_dead();
        assert_eq!(call(&c, "POST", "/control/check/0").0, 410);
        assert_eq!(call(&c, "POST", "/info").0, 200);
    }
}
