//! The agent's own log: each line goes to stderr and into a bounded ring that `POST /log`
//! returns oldest first, each line ending in `\n`, in Ochopod's format
//! `2015-05-04 08:04:01,123 - INFO - message` (docs/protocol.md §3.4). The workload's output is not
//! in it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

/// Like Python's rotating file of 32 764 bytes: the reply stays about 32 KiB.
const CAP_BYTES: usize = 32 * 1024;

/// A bounded, thread-safe log.
#[derive(Default)]
pub struct Log {
    ring: Mutex<(VecDeque<String>, usize)>,
}

impl Log {
    /// Logs at INFO.
    pub fn info(&self, msg: impl AsRef<str>) {
        self.line("INFO", msg.as_ref());
    }

    /// Logs at WARNING.
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.line("WARNING", msg.as_ref());
    }

    fn line(&self, level: &str, msg: &str) {
        let _ = std::io::stderr().lock().write_all(format!("pod: {msg}\n").as_bytes());
        self.keep(level, msg);
    }

    fn keep(&self, level: &str, msg: &str) {
        let line = format!("{} - {level} - {msg}\n", timestamp(SystemTime::now()));
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.1 += line.len();
        ring.0.push_back(line);
        while ring.1 > CAP_BYTES {
            match ring.0.pop_front() {
                Some(old) => ring.1 -= old.len(),
                None => break,
            }
        }
    }

    /// Every kept line, oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).0.iter().cloned().collect()
    }
}

/// `YYYY-MM-DD HH:MM:SS,mmm` in UTC.
fn timestamp(t: SystemTime) -> String {
    let t = crate::clock::Utc::of(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let t = UNIX_EPOCH + Duration::from_millis(1_430_726_641_123);
        assert_eq!(timestamp(t), "2015-05-04 08:04:01,123");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00,000");
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_the_newest() {
        let log = Log::default();
        for i in 0..2000 {
            log.keep("INFO", &format!("line {i}"));
        }
        let lines = log.lines();
        assert!(lines.iter().map(String::len).sum::<usize>() <= CAP_BYTES);
        assert!(lines.last().unwrap().ends_with("line 1999\n"));
        assert!(lines[0].contains(" - INFO - line "));
    }
}
