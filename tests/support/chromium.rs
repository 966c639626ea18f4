//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! JSON messages separated by NUL on fds 3 and 4, no WebSocket needed). Opens a page and returns
//! its DOM once the page says it is done (`<body data-done>`): the web terminal's self-test
//! runs stream their output, which `--dump-dom` with a virtual time budget does not wait for.

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

/// Loads `url` in a fresh headless browser and returns `document.documentElement.outerHTML`
/// once `document.body.dataset.done` is set. Panics with the browser's output at `deadline`.
pub fn render_when_done(url: &str, deadline: Duration) -> String {
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
    let browser = Proc::spawn("chromium", cmd);
    drop((cmd_r, resp_w));
    let mut to_browser = std::fs::File::from(cmd_w);
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
    let end = Instant::now() + deadline;
    let mut next_id = 0;
    let mut call = |method: &str, params: Value, session: Option<&str>| -> Value {
        next_id += 1;
        let mut msg = json!({"id": next_id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        to_browser.write_all(&bytes).expect("write to the browser");
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(reply) if reply["id"] == next_id => return reply,
                Ok(_event) => {}
                Err(_) => panic!("chromium: no answer to {method}; output:\n{}", browser.tail()),
            }
        }
    };
    let target = call("Target.createTarget", json!({"url": url}), None);
    let target_id = target["result"]["targetId"].as_str().expect("targetId").to_string();
    let attached =
        call("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}), None);
    let session = attached["result"]["sessionId"].as_str().expect("sessionId").to_string();
    let expression = r#"new Promise((resolve) => {
        const check = () => {
          if (location.href.startsWith("http") && document.body && document.body.dataset.done) {
            resolve(document.documentElement.outerHTML);
          } else {
            setTimeout(check, 50);
          }
        };
        check();
      })"#;
    loop {
        let reply = call(
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            Some(&session),
        );
        if let Some(html) = reply["result"]["result"]["value"].as_str() {
            let _ = call("Browser.close", json!({}), None);
            return html.to_string();
        }
        // The initial blank page's context went away with the navigation: evaluate again.
        assert!(Instant::now() < end, "chromium: page never done: {reply}\n{}", browser.tail());
    }
}
