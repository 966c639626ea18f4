//! `routes()` through `Request::fake_http`: everything decided before a tool runs.

use super::*;
use crate::portal::access_log::utc_now;
use crate::portal::auth::{Keys, Nonces};
use crate::portal::exec::Limits;
use crate::portal::metrics::Metrics;

fn state(token: Option<&str>) -> Arc<State> {
    Arc::new(State {
        limits: Limits {
            timeout: Duration::from_secs(10),
            max_output: 1 << 20,
            kill_grace: crate::portal::exec::KILL_GRACE,
        },
        max_upload: 1 << 20,
        max_concurrent: 2,
        keys: Keys::fixed(token),
        journal: None,
        nonces: Nonces::default(),
        legacy_signatures: true,
        allowed_hosts: vec!["ocho-proxy".into()],
        metrics: Metrics::default(),
        peers: Default::default(),
        tmp: std::env::temp_dir(),
        stop_at: Default::default(),
    })
}

fn post(line: &str, headers: &[(&str, &str)]) -> Request {
    let mut all: Vec<(String, String)> = vec![("X-Shell".into(), line.into())];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Request::fake_http("POST", "/shell", all, vec![])
}

fn body(response: Response) -> serde_json::Value {
    let (mut reader, _) = response.data.into_reader_and_size();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut reader, &mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn help_lists_tools_only_and_answers_without_running() {
    let response = routes(&state(None), &post("help", &[]));
    assert_eq!(response.status_code, 200);
    let reply = body(response);
    let out = reply["out"].as_str().unwrap();
    assert!(out.contains("  args "), "{out}");
    assert!(!out.contains("portal") && !out.contains("init"), "{out}");
    assert!(!out.contains("completion"), "a local mode: {out}");
    assert!(out.lines().all(|l| l.chars().count() <= cli::HELP_WIDTH), "{out}");
    assert_eq!(reply["ok"], true);
    let reply = body(routes(&state(None), &post("help args", &[])));
    assert!(reply["out"].as_str().unwrap().contains("--repeat"), "{reply}");
}

#[test]
fn bad_lines_are_400_with_the_message() {
    for (line, needle) in [
        ("", "empty line"),
        ("init --zk-data /", "unknown tool 'init'"),
        ("portal", "unknown tool 'portal'"),
        ("cli x", "unknown tool 'cli'"),
        ("completion bash", "unknown tool 'completion'"),
        ("help completion", "unknown tool 'completion'"),
        ("frobnicate", "unknown tool 'frobnicate'"),
        ("args --repeat x", "ocho args:"),
        ("args 'unterminated", "unterminated single quote"),
    ] {
        let response = routes(&state(None), &post(line, &[]));
        assert_eq!(response.status_code, 400, "{line}");
        let reply = body(response);
        assert!(reply["err"].as_str().unwrap().contains(needle), "{line}: {reply}");
        assert_eq!(reply["ok"], false);
    }
    let missing = Request::fake_http("POST", "/shell", vec![], vec![]);
    assert_eq!(routes(&state(None), &missing).status_code, 400);
    let put = Request::fake_http("PUT", "/shell", vec![], vec![]);
    assert_eq!(routes(&state(None), &put).status_code, 405);
    let timeout = post("args", &[("X-Timeout", "-1")]);
    assert_eq!(routes(&state(None), &timeout).status_code, 400);
}

#[test]
fn credentials_are_checked_before_anything_else() {
    let s = state(Some("secret"));
    // A correctly signed line that is no tool: a 400 proves the signature passed. (Ochothon's
    // vector for `ls` is checked in auth.rs; `ls` is a tool since the tools branch, and running
    // /proc/self/exe here would run this test binary.)
    let line = "no-such-tool";
    let signed = post(line, &[("X-Signature", &crate::portal::auth::sign("secret", line))]);
    assert_eq!(routes(&s, &signed).status_code, 400);
    let forged = post("ls -l", &[("X-Signature", "sha1=7db4d0b5fac10c9d90efe7cf277a57adc6d47ed1")]);
    assert_eq!(routes(&s, &forged).status_code, 403);
    assert_eq!(routes(&s, &post("help", &[])).status_code, 401);
    assert_eq!(routes(&s, &post("help", &[("Authorization", "Bearer nope")])).status_code, 403);
    assert_eq!(routes(&s, &post("help", &[("Authorization", "Bearer secret")])).status_code, 200);
    for path in ["/", "/tools", "/metrics"] {
        let get = Request::fake_http("GET", path, vec![], vec![]);
        assert_eq!(routes(&s, &get).status_code, 401, "{path}");
    }
    let health = Request::fake_http("GET", "/healthz", vec![], vec![]);
    assert_eq!(routes(&s, &health).status_code, 200);
    // Probes carry no token: readiness answers (503 here, no ZooKeeper), never 401.
    let ready = Request::fake_http("GET", "/readyz", vec![], vec![]);
    assert_ne!(routes(&s, &ready).status_code, 401);
}

#[test]
fn tools_json_describes_tools_from_their_argh_definitions() {
    let json = tools_json(None);
    let tools = json["tools"].as_array().unwrap();
    assert!(tools.iter().all(|t| cli::is_tool(t["name"].as_str().unwrap())), "{json}");
    let args = tools.iter().find(|t| t["name"] == "args").expect("args listed");
    assert!(args["description"].as_str().unwrap().contains("arguments"));
    let repeat = args["options"].as_array().unwrap().iter().find(|o| o["long"] == "--repeat");
    assert_eq!(repeat.unwrap()["value"], "repeat");
    assert_eq!(args["positionals"][0]["name"], "words");
}

#[test]
fn pages_metrics_and_unknown_paths() {
    let s = state(None);
    let page = routes(&s, &Request::fake_http("GET", "/", vec![], vec![]));
    assert_eq!(page.status_code, 200);
    assert!(page.headers.iter().any(|(k, v)| k == "Content-Type" && v.starts_with("text/html")));
    let js = routes(&s, &Request::fake_http("GET", "/static/app.js", vec![], vec![]));
    assert_eq!(js.status_code, 200);
    let metrics = routes(&s, &Request::fake_http("GET", "/metrics", vec![], vec![]));
    assert_eq!(metrics.status_code, 200);
    assert_eq!(routes(&s, &Request::fake_http("GET", "/nope", vec![], vec![])).status_code, 404);
    assert_eq!(
        routes(&s, &Request::fake_http("GET", "/static/x", vec![], vec![])).status_code,
        404
    );
}

#[test]
fn utc_time_is_iso_8601() {
    let now = utc_now();
    assert_eq!(now.len(), 20, "{now}");
    assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
}

#[test]
fn cross_site_browser_requests_are_refused() {
    let s = state(None);
    let cross = post("help", &[("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(routes(&s, &cross).status_code, 403);
    let get = Request::fake_http(
        "GET",
        "/shell?line=help",
        vec![("Sec-Fetch-Site".into(), "same-site".into())],
        vec![],
    );
    assert_eq!(routes(&s, &get).status_code, 403);
    assert_eq!(routes(&s, &post("help", &[("Sec-Fetch-Site", "same-origin")])).status_code, 200);
    assert_eq!(routes(&s, &post("help", &[("Sec-Fetch-Site", "none")])).status_code, 200);
}

#[test]
fn uploads_without_a_declared_length_are_refused() {
    let request = Request::fake_http(
        "POST",
        "/shell",
        vec![
            ("X-Shell".into(), "args".into()),
            ("Content-Type".into(), "multipart/form-data; boundary=x".into()),
        ],
        b"--x--\r\n".to_vec(),
    );
    assert_eq!(routes(&state(None), &request).status_code, 411);
}

#[test]
fn hosts_other_than_ours_and_foreign_origins_are_refused() {
    let s = state(None);
    let get = |path: &str, headers: &[(&str, &str)]| {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        routes(&s, &Request::fake_http("GET", path, headers, vec![])).status_code
    };
    for host in ["evil.example", "evil.example:9000", "ocho-proxy.evil.example", "[::1"] {
        assert_eq!(get("/tools", &[("Host", host)]), 421, "{host}");
        assert_eq!(routes(&s, &post("help", &[("Host", host)])).status_code, 421, "{host}");
    }
    // Probes answer whatever the name.
    assert_eq!(get("/healthz", &[("Host", "evil.example")]), 200);
    for host in [
        "127.0.0.1:9000",
        "10.1.2.3",
        "[::1]:9000",
        "localhost:9000",
        "OCHO-PROXY:9000",
        "ocho-proxy.",
    ] {
        assert_eq!(get("/tools", &[("Host", host)]), 200, "{host}");
    }
    let origin = |o: &str| {
        routes(&s, &post("help", &[("Host", "127.0.0.1:9000"), ("Origin", o)])).status_code
    };
    assert_eq!(origin("http://127.0.0.1:9000"), 200);
    assert_eq!(origin("https://127.0.0.1:9000"), 200);
    for foreign in ["http://evil.example", "http://127.0.0.1:9001", "null"] {
        assert_eq!(origin(foreign), 403, "{foreign}");
    }
    // An open portal says so, so that a client sending a token can warn.
    let reply = routes(&s, &post("help", &[]));
    assert!(reply.headers.iter().any(|(k, v)| k == "X-Ocho-Auth" && v == "open"));
}
