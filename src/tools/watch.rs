//! `-w`/`--watch` of `grep` and `ls`: the output, then again each time it changes, until
//! interrupted, `--watch-for` passes or (through the portal) the client leaves.
//!
//! A change in ZooKeeper under a watched cluster (a pod registering or leaving, a leader
//! writing `snapshot` and `hash`) is seen through a persistent recursive watch and redrawn at
//! once; for [`FOLLOW`] after it the pods are asked again every [`QUICK`], since what they say
//! in `/info` follows closely. The process and status of a pod live only in its `/info`, which
//! no watch can see, so without news the pods are asked again every [`POLL`]. Nothing is
//! printed when nothing changed.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::{Glob, ROOT};

use crate::clock::Utc;
use crate::error::{Error, Result};
use crate::zk::{Change, Session};

const QUICK: Duration = Duration::from_millis(250);
const FOLLOW: Duration = Duration::from_secs(2);
pub const POLL: Duration = Duration::from_secs(2);

/// One drawing of a tool: its stdout text, its stderr notes and its exit code.
pub struct Round {
    pub out: String,
    pub notes: Vec<String>,
    pub code: ExitCode,
}

/// `--watch-for SECS`: how long a watch lasts (`None`: until interrupted); checks that the
/// run's format is text, the only one a watch redraws.
pub fn bound(watch: bool, watch_for: Option<f64>) -> Result<Option<Duration>> {
    if watch && super::output::format().structured() {
        return Err(Error::Usage("-w redraws text: use it without -o json|yaml|name".into()));
    }
    match watch_for {
        Some(_) if !watch => Err(Error::Usage("--watch-for goes with -w/--watch".into())),
        Some(secs) => super::seconds("--watch-for", secs).map(Some),
        None => Ok(None),
    }
}

/// Draws `round` now, then each time its output changes; returns the last round's exit code.
pub fn watch(
    zk: &Session,
    globs: &[Glob],
    lasting: Option<Duration>,
    round: &mut dyn FnMut(&Session) -> Result<Round>,
) -> Result<ExitCode> {
    let end = lasting.map(|d| Instant::now() + d);
    let mut changes = zk.watch_tree(ROOT);
    let terminal = std::io::stdout().is_terminal();
    let mut shown: Option<String> = None;
    let mut quick_until = Instant::now();
    loop {
        let started = Instant::now();
        let drawn = round(zk)?;
        let code = drawn.code;
        if shown.as_deref() != Some(drawn.out.as_str()) {
            draw(&drawn, shown.is_some(), terminal);
            shown = Some(drawn.out);
        }
        let pace = if Instant::now() < quick_until { QUICK } else { POLL };
        let mut wake = started + pace;
        if let Some(end) = end {
            if Instant::now() >= end {
                return Ok(code);
            }
            wake = wake.min(end);
        }
        let Some(watching) = changes.as_mut() else {
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            continue;
        };
        loop {
            match zk.next_change(watching, wake) {
                Change::Node(path) if !super::wait::relevant(&path, globs) => continue,
                Change::Node(_) | Change::Session => quick_until = Instant::now() + FOLLOW,
                Change::Quiet => {}
                // The next round's lookup reports why the session ended.
                Change::Ended => changes = None,
            }
            break;
        }
    }
}

/// Prints one drawing: on a terminal the screen is cleared first (as `watch` does); otherwise
/// (a pipe, the portal) each redraw after the first starts with a `--- HH:MM:SS UTC ---` line.
fn draw(round: &Round, again: bool, terminal: bool) {
    let mut text = String::new();
    if terminal {
        text.push_str("\x1b[H\x1b[2J");
    } else if again {
        let t = Utc::now();
        text += &format!("\n--- {:02}:{:02}:{:02} UTC ---\n", t.hour, t.minute, t.second);
    }
    text += round.out.trim_start_matches('\n');
    for note in &round.notes {
        eprintln!("{note}");
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_for_needs_watch_and_a_positive_duration() {
        assert_eq!(bound(false, None).unwrap(), None);
        assert_eq!(bound(true, Some(1.5)).unwrap(), Some(Duration::from_millis(1500)));
        assert!(bound(false, Some(3.0)).unwrap_err().to_string().contains("goes with -w"));
        assert!(bound(true, Some(0.0)).is_err());
    }
}
