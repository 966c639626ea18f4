//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages separated by NUL on fds 3 and 4, no WebSocket needed). A [`Browser`] owns the
//! process (its [`Proc`] stops the whole group) and one page, which a test drives as a user
//! would: real key events (`Input.dispatchKeyEvent`, `Input.insertText`), real clicks and taps
//! at an element's position, files given to a file input (`DOM.setFileInputFiles`). The page
//! under test is never told what to run through its URL.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::libc;
use nix::unistd::pipe2;
use serde_json::{Value, json};

use super::Proc;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one DevTools call may take (a browser starting on a loaded 2-core machine).
pub const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// Fails (never skips) without Chromium, with the install hint.
pub fn require() {
    assert!(
        std::path::Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} missing: install Debian package chromium (make deps)"
    );
}

/// A pipe end moved above the standard descriptors and 3/4, close-on-exec.
fn high(fd: OwnedFd) -> OwnedFd {
    let raw = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(10)).expect("dup a pipe end");
    // SAFETY: fcntl just returned this new descriptor, owned by nobody else.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) }
}

/// A headless Chromium with one page attached (flat session).
pub struct Browser {
    to_browser: std::fs::File,
    rx: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Every event received so far (`{"method", "params"}`), oldest first.
    pub events: Vec<Value>,
    proc: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser on `about:blank`, with the Page and Network domains enabled.
    pub fn start() -> Browser {
        require();
        let profile = tempfile::tempdir().expect("profile dir");
        let (cmd_r, cmd_w) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let (resp_r, resp_w) = pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let (cmd_r, resp_w) = (high(cmd_r), high(resp_w));
        let (child_in, child_out) = (cmd_r.as_raw_fd(), resp_w.as_raw_fd());
        let mut cmd = std::process::Command::new(CHROMIUM);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank");
        // SAFETY: dup2 is async-signal-safe; the sources are above 4 so 3 and 4 are fresh copies
        // without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_in, 3) < 0 || libc::dup2(child_out, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let proc = Proc::spawn("chromium", cmd);
        drop((cmd_r, resp_w));
        let (tx, rx) = mpsc::channel::<Value>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(std::fs::File::from(resp_r));
            loop {
                let mut msg = Vec::new();
                match reader.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        msg.pop();
                        let Ok(value) = serde_json::from_slice(&msg) else { continue };
                        if tx.send(value).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            to_browser: std::fs::File::from(cmd_w),
            rx,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            proc,
            _profile: profile,
        };
        let target = browser.browser_call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = browser
            .browser_call("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}));
        browser.session = attached["sessionId"].as_str().expect("sessionId").to_string();
        browser.call("Page.enable", json!({}));
        browser.call("Network.enable", json!({}));
        browser
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if session {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to_browser.write_all(&bytes).expect("write to the browser");
        let end = Instant::now() + CALL_DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(reply) if reply["id"] == id => {
                    return match reply.get("error") {
                        Some(error) => Err(error.clone()),
                        None => Ok(reply["result"].clone()),
                    };
                }
                Ok(event) => {
                    if event.get("method").is_some() {
                        self.events.push(event);
                    }
                }
                Err(_) => panic!("chromium: no answer to {method}; output:\n{}", self.proc.tail()),
            }
        }
    }

    fn browser_call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
            .unwrap_or_else(|e| panic!("chromium: {method}: {e}\n{}", self.proc.tail()))
    }

    /// One DevTools call on the page's session; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
            .unwrap_or_else(|e| panic!("chromium: {method}: {e}\n{}", self.proc.tail()))
    }

    /// Navigates the page (the load itself is awaited with [`Browser::wait_for`]).
    pub fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(result.get("errorText").is_none(), "navigate {url}: {result}");
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value, or the
    /// exception's text (also when the page navigated away during the evaluation).
    pub fn try_eval(&mut self, expression: &str) -> Result<Value, String> {
        let params = json!({"expression": expression, "awaitPromise": true, "returnByValue": true});
        match self.send("Runtime.evaluate", params, true) {
            Err(error) => Err(error.to_string()),
            Ok(result) => match result.get("exceptionDetails") {
                Some(details) => Err(details.to_string()),
                None => Ok(result["result"]["value"].clone()),
            },
        }
    }

    /// Like [`Browser::try_eval`], panicking on an exception.
    pub fn eval(&mut self, expression: &str) -> Value {
        match self.try_eval(expression) {
            Ok(value) => value,
            Err(error) => panic!("chromium: {expression}: {error}"),
        }
    }

    /// Waits until `expression` is truthy in the page, then returns its value. The page polls
    /// itself (every 20 ms, for up to 5 s per evaluation); evaluations that a navigation
    /// interrupts are tried again, until `deadline`.
    pub fn wait_for(&mut self, what: &str, expression: &str, deadline: Duration) -> Value {
        let end = Instant::now() + deadline;
        let poll = format!(
            "new Promise((resolve) => {{
               const until = performance.now() + 5000;
               const check = () => {{
                 let v = null;
                 try {{ v = ({expression}); }} catch (e) {{ v = null; }}
                 if (v || performance.now() > until) resolve(v || null); else setTimeout(check, 20);
               }};
               check();
             }})"
        );
        let mut last = String::new();
        while Instant::now() < end {
            match self.try_eval(&poll) {
                Ok(value) if !value.is_null() && value != json!(false) => return value,
                Ok(value) => last = value.to_string(),
                Err(error) => last = error,
            }
        }
        let text = self.try_eval("document.body && document.body.innerText").unwrap_or_default();
        panic!("chromium: deadline passed waiting for {what} ({last}); page text:\n{text}")
    }

    /// The page's text content of the first element matching `selector`.
    pub fn text(&mut self, selector: &str) -> String {
        let value = self.eval(&format!(
            "(document.querySelector({}) || {{textContent: ''}}).textContent",
            json!(selector)
        ));
        value.as_str().unwrap_or_default().to_string()
    }

    /// The centre of the first element matching `selector`, scrolled into view, in CSS pixels.
    fn centre(&mut self, selector: &str) -> (f64, f64) {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); e.scrollIntoView({{block: 'nearest'}});
               const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            json!(selector)
        ));
        (rect[0].as_f64().expect("x"), rect[1].as_f64().expect("y"))
    }

    /// A real mouse click in the middle of the element (hit-tested by the browser).
    pub fn click(&mut self, selector: &str) {
        let (x, y) = self.centre(selector);
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// A touch tap in the middle of the element (touch start and end at one point; the page
    /// needs touch emulation, `Emulation.setTouchEmulationEnabled`).
    pub fn tap(&mut self, selector: &str) {
        let (x, y) = self.centre(selector);
        let point = json!([{"x": x, "y": y}]);
        self.call("Input.dispatchTouchEvent", json!({"type": "touchStart", "touchPoints": point}));
        self.call("Input.dispatchTouchEvent", json!({"type": "touchEnd", "touchPoints": []}));
    }

    /// Types `text` into the focused element as keyboard input.
    pub fn insert_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Presses and releases one key (`key` as in KeyboardEvent.key, `code`, the Windows virtual
    /// key code), with `modifiers` (1 Alt, 2 Ctrl, 4 Meta, 8 Shift).
    pub fn key(&mut self, key: &str, code: &str, vk: u32, modifiers: u32) {
        let text = if key == "Enter" { "\r" } else { "" };
        let mut down = json!({"type": if text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers});
        if !text.is_empty() {
            down["text"] = json!(text);
        }
        self.call("Input.dispatchKeyEvent", down);
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk,
                "modifiers": modifiers}),
        );
    }

    /// Focuses the web terminal's input, types `line` and presses Enter.
    pub fn type_line(&mut self, line: &str) {
        self.eval("document.getElementById('line').focus()");
        self.insert_text(line);
        self.key("Enter", "Enter", 13, 0);
    }

    /// Gives `paths` to the file input matching `selector`, as the file chooser would (the
    /// page gets its `change` event).
    pub fn set_files(&mut self, selector: &str, paths: &[&std::path::Path]) {
        let expression = format!("document.querySelector({})", json!(selector));
        let found = self.call("Runtime.evaluate", json!({"expression": expression}));
        let object = found["result"]["objectId"].clone();
        assert!(object.is_string(), "{selector}: no such element: {found}");
        let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.call("DOM.setFileInputFiles", json!({"objectId": object, "files": files}));
    }

    /// URLs of every request the page has started so far (Network.requestWillBeSent), events
    /// not yet read included.
    pub fn requests(&mut self) -> Vec<String> {
        while let Ok(event) = self.rx.try_recv() {
            if event.get("method").is_some() {
                self.events.push(event);
            }
        }
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(String::from))
            .collect()
    }

    /// The browser's own output, for failure messages.
    pub fn tail(&self) -> String {
        self.proc.tail()
    }
}
