//! The web terminal in real headless Chromium, driven through the DevTools protocol as an
//! operator would drive it (keys, clicks, taps, the file chooser): it runs what is typed and
//! nothing else (no link, fragment or stored state runs a line or attaches a file), streams
//! long output in batches under a scrollback cap, stops a running tool, keeps uploads as chips
//! and with their history entry, fits a phone, and says which proxy it talks to.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use support::DEADLINE;
use support::chromium::Browser;
use support::portal::Portal;

/// Long enough for a browser on a loaded 2-core machine.
const PAGE: Duration = Duration::from_secs(60);

/// Opens the terminal at `addr` and waits until its script is ready.
fn open(browser: &mut Browser, addr: &str) {
    browser.navigate(&format!("http://{addr}/"));
    browser.wait_for(
        "the terminal to be ready",
        &format!("location.host === {} && document.body.dataset.ready", json!(addr)),
        PAGE,
    );
}

/// Types `line`, presses Enter, waits until its entry is no longer running; returns the
/// entry's state (`ok`, `failed`, `stopped`) and its text.
fn run(browser: &mut Browser, line: &str) -> (String, String) {
    let before = browser.eval("document.querySelectorAll('.entry').length").as_u64().unwrap();
    browser.type_line(line);
    finished(browser, before as usize)
}

/// Waits until entry `n` (0-based) has finished; returns its state and text.
fn finished(browser: &mut Browser, n: usize) -> (String, String) {
    let state = browser.wait_for(
        &format!("entry {n} to finish"),
        &format!(
            "(() => {{ const e = document.querySelectorAll('.entry')[{n}];
               return e && e.dataset.state !== 'running' && e.dataset.state; }})()"
        ),
        PAGE,
    );
    let text = browser.eval(&format!("document.querySelectorAll('.entry')[{n}].textContent"));
    (state.as_str().unwrap().to_string(), text.as_str().unwrap().to_string())
}

/// Lines of the access log that are tool requests.
fn shell_requests(portal: &Portal) -> Vec<String> {
    portal.proc.lines().into_iter().filter(|l| l.contains(" /shell ")).collect()
}

/// The page loads its own assets, runs `help`, uploads a picked file that the tool then sees,
/// and marks a failed run with its exit code.
#[test]
fn the_terminal_runs_typed_lines_uploads_picked_files_and_marks_failures() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    open(&mut browser, &portal.addr);
    let (state, text) = run(&mut browser, "help");
    assert_eq!(state, "ok", "{text}");
    // The column width depends on the longest tool name.
    assert!(text.contains("print the arguments as received"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probe.txt");
    std::fs::write(&file, "hello web").unwrap();
    browser.set_files("#picker", &[&file]);
    let (state, text) = run(&mut browser, "args --json probe.txt");
    assert_eq!(state, "ok", "{text}");
    assert!(
        text.contains(r#"{"args":["probe.txt"],"files":[{"bytes":9,"name":"probe.txt"}]}"#),
        "the upload did not reach the tool: {text}"
    );
    // A line that is not ASCII cannot be a header: it travels in GET /shell?line=.
    let (state, text) = run(&mut browser, "args 'héllo wörld'");
    assert_eq!(state, "ok", "{text}");
    assert!(text.contains("arg 1: héllo wörld"), "{text}");
    portal.proc.wait_for_line("GET /shell args 200 0", DEADLINE);
    let (state, text) = run(&mut browser, "args --exit 3 boom");
    assert_eq!(state, "failed", "{text}");
    assert!(text.contains("FAILED · exit 3"), "{text}");
    // Only the portal was contacted: every asset is local.
    let port = portal.addr.rsplit(':').next().unwrap();
    for url in browser.requests() {
        assert!(url.starts_with(&format!("http://127.0.0.1:{port}/")), "{url}");
    }
    portal.proc.wait_for_line("GET /static/app.js - 200", DEADLINE);
    portal.proc.wait_for_line("POST /shell args 200 3", DEADLINE);
}

/// A tiny HTTP server on its own free port (another origin than the portal): each request's
/// path goes to `answer`, which gives a content type and a body (sent without a length, the
/// connection closed after it, as the portal ends its streams).
struct Elsewhere {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Elsewhere {
    fn start(answer: impl Fn(&str) -> (&'static str, String) + Send + 'static) -> Elsewhere {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut header = String::new();
                    match reader.read_line(&mut header) {
                        Ok(n) if n > 2 => {}
                        _ => break,
                    }
                }
                let (content_type, body) = answer(first.split(' ').nth(1).unwrap_or("/"));
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n{body}"
                );
            }
        });
        Elsewhere { addr, stop, thread: Some(thread) }
    }

    /// `GET /N` answers a page that sends the browser on to `targets[N]`.
    fn redirecting(targets: Vec<String>) -> Elsewhere {
        Elsewhere::start(move |path| {
            let body = match path.trim_start_matches('/').parse::<usize>() {
                Ok(n) if n < targets.len() => format!(
                    "<!doctype html><title>elsewhere</title>\
                     <script>location.replace({})</script>",
                    json!(targets[n])
                ),
                _ => String::new(),
            };
            ("text/html", body)
        })
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A page on another origin sends the browser to the terminal with every parameter that used to
/// run a line or attach a file: nothing runs (the page starts no request to /shell and the
/// portal's access log has none), a line typed afterwards is the only one that runs, and the
/// history kept in the browser is only recalled, never run.
#[test]
fn a_link_from_another_origin_runs_nothing() {
    let portal = Portal::start(&[], &[]);
    let base = format!("http://{}/", portal.addr);
    let targets: Vec<String> = [
        "?run=args%20from-a-link",
        "?file=probe.txt:hello&run=args%20--json%20probe.txt",
        "?run=kill%20*%20--force",
        "#run=args%20from-a-fragment",
        "?file=x.yml:kind&run=deploy%20x.yml#run=args%20both",
    ]
    .iter()
    .map(|p| format!("{base}{p}"))
    .collect();
    let elsewhere = Elsewhere::redirecting(targets.clone());
    let mut browser = Browser::start();
    for (n, target) in targets.iter().enumerate() {
        browser.navigate(&format!("http://{}/{n}", elsewhere.addr));
        browser.wait_for(
            &format!("the terminal loaded from {target}"),
            &format!("location.href === {} && document.readyState === 'complete'", json!(target)),
            PAGE,
        );
        // A request the page made at load has reached the portal once a later one is answered.
        browser.eval("fetch('/healthz').then((r) => r.status)");
    }
    let shell: Vec<String> =
        browser.requests().into_iter().filter(|u| u.contains("/shell")).collect();
    assert!(shell.is_empty(), "the page ran lines nobody typed: {shell:?}");
    assert!(shell_requests(&portal).is_empty(), "{:?}", shell_requests(&portal));

    // Stored state: a line in the browser's history is recalled, not run, on the next load.
    browser.eval("localStorage.setItem('ocho-history', JSON.stringify(['args from-storage']))");
    open(&mut browser, &portal.addr);
    browser.eval("document.getElementById('line').focus()");
    browser.key("ArrowUp", "ArrowUp", 38, 0);
    assert_eq!(browser.eval("document.getElementById('line').value"), "args from-storage");
    browser.eval("document.getElementById('line').value = ''");

    let (state, text) = run(&mut browser, "args typed");
    assert_eq!(state, "ok", "{text}");
    portal.proc.wait_for_line("POST /shell args 200 0", DEADLINE);
    let log = shell_requests(&portal);
    assert_eq!(log.len(), 1, "only the typed line runs: {log:?}");
    assert!(portal.leftovers().is_empty(), "{:?}", portal.leftovers());
}

/// 20,000 lines (4 MiB) of tool output: the run completes, the log holds exactly the last
/// 10,000 lines in order and the marker counts the 10,000 dropped; a further line drops one more.
#[test]
fn long_output_is_complete_under_the_scrollback_cap() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    open(&mut browser, &portal.addr);
    let (a, b) = ("a".repeat(200), "b".repeat(200));
    let (state, _) = run(&mut browser, &format!("args --repeat 10000 {a} {b}"));
    assert_eq!(state, "ok");
    let text = browser.text(".entry .out");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    for (i, line) in lines.iter().enumerate() {
        let expected = if i % 2 == 0 { format!("arg 1: {a}") } else { format!("arg 2: {b}") };
        assert_eq!(*line, expected, "line {i} of those kept");
    }
    assert_eq!(browser.text("#dropped"), "10000 earlier lines dropped");
    portal.proc.wait_for_line("POST /shell args 200 0", DEADLINE);
    let bytes = portal.proc.lines().into_iter().find(|l| l.contains(" /shell ")).unwrap();
    assert!(bytes.ends_with(&format!("{}B", 20_000 * 208)), "{bytes}");

    let (state, _) = run(&mut browser, "args after");
    assert_eq!(state, "ok");
    assert_eq!(browser.text("#dropped"), "10001 earlier lines dropped");
    let kept = browser
        .eval("Array.from(document.querySelectorAll('.out')).map((o) => o.textContent).join('')");
    let kept: Vec<&str> = kept.as_str().unwrap().lines().collect();
    assert_eq!(kept.len(), 10_000);
    assert_eq!(kept[0], format!("arg 2: {b}"));
    assert_eq!(kept[9_999], "arg 1: after");
}

/// Waits for the running entry `n` to show `first` (the stream is flowing) and for its tool.
fn running_tool(browser: &mut Browser, portal: &Portal, n: usize, first: &str) -> i32 {
    browser.wait_for(
        &format!("entry {n} to stream {first}"),
        &format!(
            "(() => {{ const e = document.querySelectorAll('.entry')[{n}];
               return e && e.dataset.state === 'running' && e.textContent.includes({}); }})()",
            json!(first)
        ),
        PAGE,
    );
    let tools = portal.children();
    assert_eq!(tools.len(), 1, "{tools:?}");
    tools[0]
}

/// Stop, then Ctrl-C in the input, end a running tool: the page aborts the request, says
/// "stopped", and the portal kills the tool (its access log has the request with the SIGTERM
/// exit code 143, not the tool's own 0 thirty seconds later).
#[test]
fn stop_and_ctrl_c_end_the_running_tool() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    open(&mut browser, &portal.addr);
    assert_eq!(browser.eval("document.getElementById('stop').disabled"), true);
    browser.type_line("args --sleep 30 stop-me");
    let tool = running_tool(&mut browser, &portal, 0, "arg 1: stop-me");
    browser.click("#stop");
    let (state, text) = finished(&mut browser, 0);
    assert_eq!(state, "stopped", "{text}");
    assert!(text.contains("stopped"), "{text}");
    portal.proc.wait_for_line("POST /shell args 200 143", DEADLINE);
    support::portal::wait_until("the tool to be killed", || !support::portal::running(tool));
    assert_eq!(browser.eval("document.getElementById('stop').disabled"), true);

    // Ctrl-C with the focus in the (empty) input.
    browser.type_line("args --sleep 30 ctrl-c");
    let tool = running_tool(&mut browser, &portal, 1, "arg 1: ctrl-c");
    browser.eval("document.getElementById('line').focus()");
    browser.key("c", "KeyC", 67, 2);
    let (state, text) = finished(&mut browser, 1);
    assert_eq!(state, "stopped", "{text}");
    portal.proc.wait_for_nth("a second killed request", 2, DEADLINE, |l| {
        l.contains("POST /shell args 200 143")
    });
    support::portal::wait_until("the tool to be killed", || !support::portal::running(tool));
    assert!(!shell_requests(&portal).iter().any(|l| l.contains("args 200 0 ")));
    support::portal::wait_until("no temporary directory left", || portal.leftovers().is_empty());
}

/// Picked files are chips that can be removed; the files sent with a line stay with its history
/// entry, so the failed line recalled with ↑ sends them again.
#[test]
fn uploads_are_removable_chips_and_a_recalled_line_sends_them_again() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    open(&mut browser, &portal.addr);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a, "aaa").unwrap();
    std::fs::write(&b, "bb").unwrap();
    browser.set_files("#picker", &[&a, &b]);
    browser.wait_for("two chips", "document.querySelectorAll('#files .chip').length === 2", PAGE);
    assert!(browser.text("#files").contains("b.txt"));
    browser.click(".chip[data-name='b.txt'] button");
    browser.wait_for("one chip", "document.querySelectorAll('#files .chip').length === 1", PAGE);
    assert!(!browser.text("#files").contains("b.txt"));

    let sent = r#"{"args":["a.txt"],"files":[{"bytes":3,"name":"a.txt"}]}"#;
    let (state, text) = run(&mut browser, "args --json --exit 3 a.txt");
    assert_eq!(state, "failed", "{text}");
    assert!(text.contains(sent), "{text}");
    assert_eq!(browser.eval("document.querySelectorAll('#files .chip').length"), 0);

    browser.eval("document.getElementById('line').focus()");
    browser.key("ArrowUp", "ArrowUp", 38, 0);
    assert_eq!(browser.eval("document.getElementById('line').value"), "args --json --exit 3 a.txt");
    assert_eq!(browser.text("#files .chip").trim_end_matches('×'), "a.txt (3 B)");
    browser.key("Enter", "Enter", 13, 0);
    let (state, text) = finished(&mut browser, 1);
    assert_eq!(state, "failed", "{text}");
    assert!(text.contains(sent), "the recalled line did not send its file again: {text}");
    // Back down past the newest entry: an empty line without files.
    browser.key("ArrowUp", "ArrowUp", 38, 0);
    browser.key("ArrowDown", "ArrowDown", 40, 0);
    assert_eq!(browser.eval("document.getElementById('line').value"), "");
    assert_eq!(browser.eval("document.querySelectorAll('#files .chip').length"), 0);
}

/// Measures the output of the last entry: its lines, their rendered height in lines, and
/// whether it scrolls sideways.
fn measure_last_output(browser: &mut Browser) -> serde_json::Value {
    browser.eval(
        "(() => { const outs = document.querySelectorAll('.out'); const o = outs[outs.length - 1];
           const lh = parseFloat(getComputedStyle(o).lineHeight);
           return { lines: o.textContent.split('\\n').length - 1, rows: Math.round(o.clientHeight / lh),
                    scrollWidth: o.scrollWidth, clientWidth: o.clientWidth,
                    page: document.documentElement.scrollWidth }; })()",
    )
}

/// On a 390 px phone, help and wide tables keep one row per line and scroll sideways (the page
/// itself does not), and the history is reachable by tapping buttons.
#[test]
fn on_a_phone_output_scrolls_sideways_and_history_is_a_tap_away() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": true}),
    );
    browser
        .call("Emulation.setTouchEmulationEnabled", json!({"enabled": true, "maxTouchPoints": 5}));
    open(&mut browser, &portal.addr);
    assert_eq!(browser.eval("innerWidth"), 390);
    let wide = format!("args --repeat 3 {}", "w".repeat(120));
    for line in ["help", wide.as_str()] {
        let (state, text) = run(&mut browser, line);
        assert_eq!(state, "ok", "{text}");
        let m = measure_last_output(&mut browser);
        assert!(m["lines"].as_u64().unwrap() >= 3, "{line}: {m}");
        assert_eq!(m["rows"], m["lines"], "{line}: lines wrapped: {m}");
        assert!(m["scrollWidth"].as_u64() > m["clientWidth"].as_u64(), "{line}: {m}");
        assert_eq!(m["page"], 390, "{line}: the page scrolls sideways: {m}");
    }
    browser.eval("document.activeElement.blur()");
    browser.tap("#prev");
    browser.wait_for(
        "the last line recalled",
        &format!("document.getElementById('line').value === {}", json!(wide)),
        PAGE,
    );
    browser.tap("#prev");
    browser.wait_for("help recalled", "document.getElementById('line').value === 'help'", PAGE);
    browser.tap("#next");
    browser.wait_for(
        "back to the last line",
        &format!("document.getElementById('line').value === {}", json!(wide)),
        PAGE,
    );
    browser.tap("#send");
    let (state, _) = finished(&mut browser, 2);
    assert_eq!(state, "ok");
}

/// The banner names the proxy as the browser reaches it, the portal's version, and that the
/// portal asked for no credentials (who the caller is comes from /tools).
#[test]
fn the_banner_names_the_proxy_and_its_version() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    open(&mut browser, &portal.addr);
    browser.wait_for("the banner", "document.body.dataset.banner", PAGE);
    assert_eq!(browser.text("#proxy"), portal.addr);
    assert_eq!(browser.text("#version"), format!("ocho {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(browser.eval("document.getElementById('who').hidden"), false);
    assert_eq!(browser.text("#who"), "open portal: no credentials asked");
}

/// The page's own files served by a stand-in whose stream carries empty lines between events
/// (a liveness probe): the page skips them and shows exactly the lines and the exit.
#[test]
fn empty_lines_in_the_stream_are_skipped() {
    let server = Elsewhere::start(|path| {
        match path {
        "/" => ("text/html", include_str!("../src/portal/web/index.html").into()),
        "/static/app.js" => ("text/javascript", include_str!("../src/portal/web/app.js").into()),
        "/static/app.css" => ("text/css", include_str!("../src/portal/web/app.css").into()),
        "/tools" => ("application/json", r#"{"version":"0.0.0-stand-in","tools":[]}"#.into()),
        "/shell" => (
            "application/x-ndjson",
            "\n{\"stream\":\"out\",\"line\":\"one\"}\n\n \n{\"stream\":\"err\",\"line\":\"two\"}\n\n\
             {\"exit\":0,\"ms\":1}\n\n"
                .into(),
        ),
        _ => ("text/plain", String::new()),
    }
    });
    let mut browser = Browser::start();
    open(&mut browser, &server.addr);
    let (state, text) = run(&mut browser, "args");
    assert_eq!(state, "ok", "{text}");
    assert_eq!(browser.text(".entry .out"), "one\ntwo\n");
    assert!(text.contains("ok · exit 0 · 1 ms"), "{text}");
}
