//! The pod's control port (spec §3): `POST /info`, `/log`, `/reset` and
//! `/control/<verb>[/<timeout>]`, JSON bodies with `application/json`, 405 for other methods,
//! 404 for other paths. Control requests are queued to the lifecycle actor and answered within
//! their timeout, or 408 while the command stays queued.

use std::io::Read;
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
/// Ochopod's default when the URL carries no timeout segment.
const DEFAULT_TIMEOUT: u64 = 60;

/// What the routes need.
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub lifecycle: std::sync::Mutex<Sender<Msg>>,
}

fn reply(code: u16, body: &Value) -> Response {
    Response::from_data("application/json", body.to_string()).with_status_code(code)
}

/// Routes one request.
pub fn routes(request: &Request, ctx: &Ctx) -> Response {
    let url = request.url();
    let known = matches!(url.as_str(), "/info" | "/log" | "/reset") || url.starts_with("/control/");
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
        _ => control(request, &url["/control/".len()..], ctx),
    }
}

fn control(request: &Request, rest: &str, ctx: &Ctx) -> Response {
    let (verb, timeout) = match rest.split_once('/') {
        Some((v, t)) => (v, Some(t)),
        None => (rest, None),
    };
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
