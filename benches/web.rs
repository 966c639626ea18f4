//! The web terminal in headless Chromium (`make bench`): time from pressing Enter on
//! `args --repeat N` to the last line rendered and the run marked done, for 1,000, 3,000 and
//! 20,000 lines of 208 bytes (20,000 lines = 4,160,000 bytes, just under the portal's default
//! 4 MiB output cap), through `ocho portal` on the binary under test. Each run starts on a fresh
//! page. Prints numbers, asserts nothing about time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::json;
use std::time::Duration;
use support::chromium::Browser;
use support::portal::Portal;

const RUNS: usize = 5;
const PAGE: Duration = Duration::from_secs(120);

fn main() {
    let portal = Portal::start(&[], &[]);
    let mut browser = Browser::start();
    let (a, b) = ("a".repeat(200), "b".repeat(200));
    println!("web terminal, Enter to last line rendered (p50 and max of {RUNS} runs, fresh page):");
    for lines in [1_000u64, 3_000, 20_000] {
        let mut times = Vec::new();
        let mut kept = 0;
        for _ in 0..RUNS {
            browser.navigate(&format!("http://{}/", portal.addr));
            browser.wait_for(
                "the terminal",
                &format!("location.host === {} && document.body.dataset.ready", json!(portal.addr)),
                PAGE,
            );
            browser.type_line(&format!("args --repeat {} {a} {b}", lines / 2));
            let state = browser.wait_for(
                "the run to end",
                "(() => { const e = document.querySelector('.entry');
                   return e && e.dataset.state !== 'running' && e.dataset.state; })()",
                PAGE,
            );
            assert_eq!(state, "ok");
            let ms = browser.eval("Number(document.querySelector('.entry').dataset.ms)");
            times.push(ms.as_f64().unwrap());
            kept = browser
                .eval("document.querySelector('.entry .out').textContent.split('\\n').length - 1")
                .as_u64()
                .unwrap();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {lines:6} lines ({:7} bytes): p50 {:6.0} ms  max {:6.0} ms  ({kept} lines kept)",
            lines * 208,
            times[RUNS / 2],
            times[RUNS - 1]
        );
    }
    println!("  target for 20,000 lines: under 1000 ms");
}
