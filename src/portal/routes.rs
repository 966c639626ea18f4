//! The portal's routes, as a function of the shared [`State`] and one request (unit tested with
//! `Request::fake_http`). `/shell` checks, in order: where a browser request comes from and the
//! credentials (401/403), the line (400), the concurrency limit (503), uploads (400/413); only
//! then does it hand the run to `reply.rs` (JSON, or NDJSON when the client asks for it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rouille::{Request, Response};
use serde_json::json;

use super::access::{Role, Who, least_role, least_role_of};
use super::access_log::{Access, log};
use super::auth::{Presented, Verdict};
use super::reply::{Run, Slot, refused};
use super::state::{State, journal};
use super::{upload, web};
use crate::cli::{self, Parsed};
use crate::words;

/// Longest `X-Timeout` a client may ask for, in seconds.
pub const MAX_TIMEOUT_SECS: f64 = 3600.0;

/// The tool word and argv of a line, as far as it splits.
fn argv_of(line: Option<&str>) -> (String, Vec<String>) {
    let words = line.map(|l| words::split(l).unwrap_or_else(|_| vec![l.to_string()]));
    let words = words.unwrap_or_default();
    (words.first().cloned().unwrap_or_else(|| "-".into()), words)
}

/// Answers one request; logs it unless the answer is a stream (which logs when it ends).
pub fn routes(state: &Arc<State>, request: &Request) -> Response {
    let started = Instant::now();
    let path = request.url();
    let response = answer(state, request, &path, started);
    if state.keys.is_open() {
        // Tells a client that sends a token that nobody checks it.
        response.with_unique_header("X-Ocho-Auth", "open")
    } else {
        response
    }
}

fn answer(state: &Arc<State>, request: &Request, path: &str, started: Instant) -> Response {
    let probe = path == "/healthz" || path == "/readyz";
    if !probe && !host_allowed(&state.allowed_hosts, request.header("Host")) {
        state.metrics.reject("host");
        let response = error(
            421,
            "this portal does not serve that Host name (DNS rebinding?): add it with --allowed-host",
        );
        log(&Access {
            peer: request.remote_addr(),
            who: "-",
            method: request.method(),
            path,
            tool: "-",
            status: 421,
            code: None,
            bytes: None,
            started,
        });
        return response;
    }
    if path == "/shell" {
        return shell(state, request, started);
    }
    // The kubelet's probes carry no credentials: liveness and readiness answer without a token
    // and tell nothing but "up" and "ZooKeeper serves".
    let mut name = "-".to_string();
    let response = if path == "/healthz" {
        Response::json(&json!({"ok": true}))
    } else if path == "/readyz" && request.method() == "GET" {
        readyz()
    } else {
        match deny(state, request, None, &[]) {
            Err(denied) => denied,
            Ok(who) => {
                name = who.name.clone();
                state.metrics.by_token(&who.name);
                other(state, request, path, &who)
            }
        }
    };
    log(&Access {
        peer: request.remote_addr(),
        who: &name,
        method: request.method(),
        path,
        tool: "-",
        status: response.status_code,
        code: None,
        bytes: None,
        started,
    });
    response
}

/// The routes besides `/shell` and the probes, for an authenticated caller.
fn other(state: &State, request: &Request, path: &str, who: &Who) -> Response {
    match (request.method(), path) {
        ("GET", "/") => web::page("index.html"),
        ("GET", p) if p.starts_with("/static/") => web::page(&p["/static/".len()..]),
        ("GET", "/tools") => {
            let mut listing = tools_json(Some(who.role));
            listing["who"] = who.json();
            Response::json(&listing)
        }
        ("GET", "/readyz") => readyz(),
        ("GET", "/metrics") => Response::text(state.metrics.render())
            .with_unique_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
        ("GET", "/healthz") => Response::json(&json!({"ok": true})),
        (_, "/" | "/tools" | "/readyz" | "/metrics") => method_not_allowed("GET"),
        _ => error(404, "not found"),
    }
}

fn error(status: u16, message: &str) -> Response {
    Response::json(&json!({"ok": false, "error": message})).with_status_code(status)
}

fn method_not_allowed(allow: &str) -> Response {
    error(405, "method not allowed").with_unique_header("Allow", allow.to_string())
}

/// True for a `Host` this portal answers to: none (HTTP/1.0), an IP literal (a rebinding page
/// needs a name), `localhost`, or a name in `allowed` (case-insensitive), with any port.
pub fn host_allowed(allowed: &[String], host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim) else { return true };
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.');
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(name))
}

/// True when a browser's `Origin` names another site than the `Host` it sent the request to.
fn cross_origin(request: &Request) -> bool {
    let Some(origin) = request.header("Origin") else { return false };
    let host = request.header("Host").unwrap_or("");
    let same = |scheme: &str| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
    };
    !(same("http://") || same("https://"))
}

/// The identity of a request; 401/403 when credentials are configured and the request's do
/// not match any (503 when they cannot be read: closed, never open).
fn deny(
    state: &State,
    request: &Request,
    line: Option<&str>,
    uploads: &[(String, String)],
) -> Result<Arc<Who>, Response> {
    let table = match state.keys.current() {
        Ok(None) => return Ok(Who::open()),
        Ok(Some(table)) => table,
        Err(why) => {
            state.metrics.reject("auth");
            eprintln!("portal: {why}");
            return Err(error(
                503,
                "the portal's credentials cannot be read; refusing every request",
            ));
        }
    };
    let presented = Presented {
        authorization: request.header("Authorization"),
        signature: request.header("X-Signature"),
        time: request.header("X-Signature-Time"),
        nonce: request.header("X-Signature-Nonce"),
        line,
        uploads,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let checked = table.check(&presented, state.legacy_signatures, &state.nonces, now);
    if let Err(verdict) = &checked {
        let (tool, argv) = argv_of(line);
        let status = if matches!(verdict, Verdict::Refused(_)) { 403 } else { 401 };
        let why = match verdict {
            Verdict::Refused(why) => why,
            _ => "no credentials",
        };
        let names: Vec<_> = uploads.iter().map(|(n, d)| json!({"name": n, "sha256": d})).collect();
        journal(
            state,
            json!({"who": "-", "peer": request.remote_addr().to_string(), "path": request.url(),
                "tool": tool, "argv": argv, "uploads": names, "status": status, "error": why}),
            false,
        );
    }
    match checked {
        Ok(who) => Ok(who),
        Err(Verdict::Refused(why)) => {
            state.metrics.reject("auth");
            Err(error(403, why))
        }
        Err(_) => {
            state.metrics.reject("auth");
            // The Basic challenge lets a browser prompt for the token (as the password).
            Err(error(401, "credentials required: Authorization: Bearer <token> or X-Signature")
                .with_unique_header("WWW-Authenticate", "Basic realm=\"ocho portal\""))
        }
    }
}

/// `GET /readyz`: 200 when the ZooKeeper in `$OCHOPOD_ZK` answers `srvr` as serving. A portal
/// that `ocho init` started next to an ensemble member (`$OCHO_ZK_MEMBER`) asks that member
/// alone: it is ready when the member serves as leader or follower, and a member without quorum
/// is not ready (503 "no quorum") even if other members serve.
fn readyz() -> Response {
    if let Some(member) = std::env::var("OCHO_ZK_MEMBER").ok().filter(|m| !m.trim().is_empty()) {
        return readyz_member(member.trim());
    }
    let hosts = std::env::var("OCHOPOD_ZK").unwrap_or_default();
    // `host:port,host:port/chroot`: the chroot belongs to the last host only.
    let hosts = hosts.split('/').next().unwrap_or_default();
    let mut why = String::from("OCHOPOD_ZK is not set");
    // Ready when any member of the ensemble serves: that is all a client session needs.
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let addr = if host.contains(':') { host.to_string() } else { format!("{host}:2181") };
        match crate::zk::probe::srvr(&addr, Duration::from_secs(2)) {
            Ok(crate::zk::probe::Probe::Serving(_)) => {
                let mut ready = json!({"ok": true, "zk": addr});
                // Repairs of the data init made before ZooKeeper started: ready, but said.
                if let Some(damage) = super::metrics::zk_damage() {
                    ready["zk_data"] = damage;
                }
                return Response::json(&ready);
            }
            Ok(crate::zk::probe::Probe::NotServing(_)) => {
                why = format!("zookeeper {addr} is not serving yet")
            }
            Err(err) => why = format!("zookeeper {addr}: {err}"),
        }
    }
    error(503, &why)
}

/// `/readyz` of an ensemble member's portal.
fn readyz_member(addr: &str) -> Response {
    use crate::zk::probe::{self, Probe};
    match probe::srvr(addr, Duration::from_secs(2)) {
        Ok(Probe::Serving(answer)) => {
            let mut ready = json!({"ok": true, "zk": addr, "mode": probe::mode(&answer)});
            if let Some(damage) = super::metrics::zk_damage() {
                ready["zk_data"] = damage;
            }
            Response::json(&ready)
        }
        Ok(Probe::NotServing(answer)) if answer.contains(probe::NOT_SERVING) => error(
            503,
            &format!(
                "no quorum: zookeeper member {addr} is not serving requests (it serves once a \
                 majority of the ensemble's members reach each other)"
            ),
        ),
        Ok(Probe::NotServing(_)) => error(503, &format!("zookeeper {addr} is not serving yet")),
        Err(err) => error(503, &format!("zookeeper {addr}: {err}")),
    }
}

/// `GET /tools`: every tool `role` may run (all with `None`) with its description, positionals
/// and options, from the same argh definitions the tools parse with.
pub fn tools_json(role: Option<Role>) -> serde_json::Value {
    use argh::ArgsInfo;
    let info = <cli::Mode as ArgsInfo>::get_args_info();
    let tools: Vec<_> = info
        .commands
        .iter()
        .filter(|c| cli::is_tool(c.name))
        .filter(|c| role.is_none_or(|r| least_role_of(c.name) <= r))
        .map(|c| {
            let cmd = &c.command;
            let options: Vec<_> = cmd
                .flags
                .iter()
                .filter(|f| !f.hidden)
                .map(|f| {
                    let value = match f.kind {
                        argh::FlagInfoKind::Switch => None,
                        argh::FlagInfoKind::Option { arg_name } => Some(arg_name),
                    };
                    let file = cli::takes_file(c.name, f.long.trim_start_matches("--"));
                    json!({"long": f.long, "short": f.short.map(String::from),
                        "value": value, "help": f.description, "file": file,
                        "optionality": format!("{:?}", f.optionality).to_lowercase()})
                })
                .collect();
            let positionals: Vec<_> = cmd
                .positionals
                .iter()
                .filter(|p| !p.hidden)
                .map(|p| {
                    json!({"name": p.name, "help": p.description,
                    "file": cli::takes_file(c.name, p.name),
                    "optionality": format!("{:?}", p.optionality).to_lowercase()})
                })
                .collect();
            json!({"name": c.name, "description": cmd.description,
                "positionals": positionals, "options": options})
        })
        .collect();
    json!({"version": env!("CARGO_PKG_VERSION"), "tools": tools})
}

/// The portal's `help`: the tools only (not the proxy's own modes).
fn tools_listing() -> String {
    let tools: Vec<_> = cli::modes().filter(|(m, _)| cli::is_tool(m)).collect();
    let width = tools.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    let mut text = String::from("tools:\n");
    for (name, description) in tools {
        text.push_str(&format!("  {name:width$}  {description}\n"));
    }
    text.push_str("\n'help TOOL' or 'TOOL --help' for details\n");
    cli::wrap_help(&text, cli::HELP_WIDTH)
}

/// What a line asks for once validated.
enum Line {
    /// Answer with this text at once (help, version), exit code 0.
    Text(String),
    /// Run the tool with these words; the caller needs this role.
    Run(Vec<String>, Role, Duration),
}

/// Splits and validates a line without spawning anything: `Err` is the message for a 400.
fn validate(line: &str) -> Result<Line, String> {
    let words = words::split(line).map_err(|e| format!("portal: {e}"))?;
    let Some(first) = words.first() else {
        return Err("portal: empty line; try 'help'".into());
    };
    match first.as_str() {
        "help" | "--help" | "-h" if words.len() == 1 => return Ok(Line::Text(tools_listing())),
        "help" | "--help" | "-h" => {
            if !cli::is_tool(&words[1]) {
                return Err(unknown(&words[1]));
            }
            return match cli::parse_words(&[words[1].as_str(), "--help"]) {
                Parsed::Print { text, .. } => Ok(Line::Text(text)),
                Parsed::Run(_) => Err(format!("{} has no help", words[1])),
            };
        }
        "version" | "--version" | "-V" => {
            return Ok(Line::Text(format!("ocho {}\n", env!("CARGO_PKG_VERSION"))));
        }
        tool if !cli::is_tool(tool) => return Err(unknown(tool)),
        _ => {}
    }
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    match cli::parse_words(&refs) {
        Parsed::Run(mode) => {
            Ok(Line::Run(words, least_role(&mode), super::exec::kill_grace(&mode)))
        }
        Parsed::Print { text, code: 0 } => Ok(Line::Text(text)),
        // The hint names the line as typed here, without `ocho`.
        Parsed::Print { text, .. } => {
            Err(text
                .replace(&format!("run 'ocho {first} --help'"), &format!("run '{first} --help'")))
        }
    }
}

fn unknown(tool: &str) -> String {
    let tools: Vec<_> = cli::modes().map(|(m, _)| m).filter(|m| cli::is_tool(m)).collect();
    format!("unknown tool '{tool}'\navailable tools: {}\n", tools.join(", "))
}

/// `GET /shell?line=…` and `POST /shell` (`X-Shell`, optional multipart uploads).
fn shell(state: &Arc<State>, request: &Request, started: Instant) -> Response {
    let peer = *request.remote_addr();
    let method = request.method().to_string();
    let name = std::cell::RefCell::new("-".to_string());
    let done = |response: Response, tool: &str, code: Option<i32>| {
        state.metrics.observe(tool, response.status_code, started.elapsed());
        log(&Access {
            peer: &peer,
            who: &name.borrow(),
            method: &method,
            path: "/shell",
            tool,
            status: response.status_code,
            code,
            bytes: None,
            started,
        });
        response
    };
    let line = match method.as_str() {
        "POST" => request.header("X-Shell").map(str::to_string),
        "GET" => request.get_param("line"),
        _ => return done(method_not_allowed("GET, POST"), "-", None),
    };
    // Browsers say where a request comes from; a page of another site must not run tools
    // with the credentials a browser remembers for ours (GET needs no preflight).
    if request.header("Sec-Fetch-Site").is_some_and(|s| s != "same-origin" && s != "none")
        || cross_origin(request)
    {
        state.metrics.reject("cross-site");
        return done(error(403, "cross-site request refused"), "-", None);
    }
    let multipart = method == "POST"
        && request.header("Content-Type").is_some_and(|t| t.starts_with("multipart/"));
    // The body is complete in memory (the server read it within its limits); parsed before the
    // credentials because a signature covers the files, judged after them.
    let body = if multipart { upload::body(request) } else { Ok(Vec::new()) };
    let parts = match &body {
        Ok(body) if multipart => upload::parse_form(request.header("Content-Type"), body),
        Ok(_) => Ok(Vec::new()),
        Err(_) => Err(upload::UploadError::Malformed("the body cannot be read")),
    };
    let digests = parts.as_ref().map(|p| upload::digests(p)).unwrap_or_default();
    let who = match deny(state, request, line.as_deref(), &digests) {
        Ok(who) => who,
        Err(denied) => return done(denied, "-", None),
    };
    name.borrow_mut().clone_from(&who.name);
    state.metrics.by_token(&who.name);
    let Some(line) = line else {
        let what =
            if method == "POST" { "X-Shell header missing" } else { "line parameter missing" };
        return done(refused(400, &format!("portal: {what}")), "-", None);
    };
    let (words, needs, grace) = match validate(&line) {
        Ok(Line::Run(words, needs, _)) if needs > who.role => {
            state.metrics.reject("role");
            let message = format!(
                "portal: {} needs the {} role; {} is {}",
                words[0],
                needs.name(),
                who.name,
                who.role.name()
            );
            journal(
                state,
                json!({"who": who.name, "peer": peer.to_string(), "path": "/shell",
                    "tool": words[0], "argv": words, "status": 403,
                    "error": format!("needs the {} role", needs.name())}),
                false,
            );
            return done(refused(403, &message), &words[0], None);
        }
        Ok(Line::Run(words, needs, grace)) => (words, needs, grace),
        Ok(Line::Text(text)) => {
            let reply = json!({"ok": true, "code": 0, "ms": 0, "out": text, "err": ""});
            return done(Response::json(&reply), "help", Some(0));
        }
        Err(message) => return done(refused(400, &message), "-", Some(2)),
    };
    let tool = words[0].clone();
    let journal_down =
        state.journal.as_ref().is_some_and(|j| j.failed.load(std::sync::atomic::Ordering::SeqCst));
    if needs > Role::Viewer && journal_down {
        let message =
            "portal: the audit journal cannot be written: state-changing tools are refused";
        return done(refused(503, message), &tool, None);
    }
    let mut limits = state.limits;
    limits.kill_grace = grace;
    if let Some(value) = request.header("X-Timeout") {
        match value.trim().parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs <= MAX_TIMEOUT_SECS => {
                limits.timeout = Duration::from_secs_f64(secs)
            }
            _ => {
                let message =
                    format!("portal: X-Timeout must be seconds in (0, {MAX_TIMEOUT_SECS}]");
                return done(refused(400, &message), &tool, None);
            }
        }
    }
    // Checked after validation so that help and typos never count against the limit; a refused
    // request touches nothing that the requests in flight use.
    let (slot, in_flight) = Slot::take(state);
    if in_flight > state.max_concurrent {
        drop(slot);
        state.metrics.reject("busy");
        let busy =
            refused(503, &format!("portal: busy ({} tools running); retry", state.max_concurrent))
                .with_unique_header("Retry-After", "1");
        return done(busy, &tool, None);
    }
    let dir = match tempfile::Builder::new().prefix("ocho-portal-").tempdir_in(&state.tmp) {
        Ok(dir) => dir,
        Err(err) => {
            return done(refused(500, &format!("portal: temporary directory: {err}")), &tool, None);
        }
    };
    if multipart {
        let declared =
            request.header("Content-Length").and_then(|l| l.trim().parse::<usize>().ok());
        // A declared length bounds everything read, ignored form fields included (browsers,
        // curl and `ocho cli` always declare it).
        if declared.is_none() {
            return done(refused(411, "portal: uploads need a Content-Length"), &tool, None);
        }
        let saved = parts.and_then(|parts| upload::save(&parts, dir.path(), state.max_upload));
        match saved {
            Ok(_) => {}
            Err(err @ (upload::UploadError::TooLarge(_) | upload::UploadError::TooMany)) => {
                return done(refused(413, &format!("portal: {err}")), &tool, None);
            }
            Err(err @ upload::UploadError::Io { .. }) => {
                return done(
                    refused(500, &format!("portal: {}", crate::error::chain(&err))),
                    &tool,
                    None,
                );
            }
            Err(err) => return done(refused(400, &format!("portal: {err}")), &tool, None),
        }
    }
    let run = Run {
        state: Arc::clone(state),
        words,
        who,
        needs,
        uploads: digests,
        dir: Some(dir),
        limits,
        peer,
        method: method.clone(),
        slot: Some(slot),
        started,
        // Only how the output is laid out (`-o json` indented): nothing a client gains by it.
        terminal: request.header("X-Terminal") == Some("1"),
    };
    if request.header("Accept").is_some_and(|a| a.contains("application/x-ndjson")) {
        // It counts and logs itself when it ends.
        return run.stream();
    }
    run.reply()
}

#[cfg(test)]
mod tests;
