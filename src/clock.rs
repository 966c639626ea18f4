//! Wall-clock time as UTC calendar fields: the portal's access log, the agent's log lines, the
//! audit journal and the names `deploy` gives workloads all print UTC timestamps. The calendar
//! arithmetic is jiff's, already in the dependency tree through k8s-openapi.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;

/// A UTC instant split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millis: u32,
}

impl Utc {
    /// `t` in UTC; instants before 1970 (or beyond jiff's range) read as the epoch.
    pub fn of(t: SystemTime) -> Utc {
        let at = Timestamp::try_from(t)
            .ok()
            .filter(|_| t >= UNIX_EPOCH)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(TimeZone::UTC);
        Utc {
            year: i64::from(at.year()),
            month: i64::from(at.month()),
            day: i64::from(at.day()),
            hour: i64::from(at.hour()),
            minute: i64::from(at.minute()),
            second: i64::from(at.second()),
            millis: u32::try_from(at.millisecond()).unwrap_or(0),
        }
    }

    /// The current time.
    pub fn now() -> Utc {
        Utc::of(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn calendar_fields_of_known_instants() {
        let at = |secs: u64, ms: u64| Utc::of(UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms));
        assert_eq!(
            at(0, 0),
            Utc { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0, millis: 0 }
        );
        // 2000-02-29 (a leap day of a century year) 12:34:56.789
        assert_eq!(
            at(951_827_696, 789),
            Utc { year: 2000, month: 2, day: 29, hour: 12, minute: 34, second: 56, millis: 789 }
        );
        // Before the epoch: the epoch.
        let before = Utc::of(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!((before.year, before.month, before.day, before.second), (1970, 1, 1, 0));
        // 2026-11-23 11:41:09
        assert_eq!(
            at(1_795_434_069, 0),
            Utc { year: 2026, month: 11, day: 23, hour: 11, minute: 41, second: 9, millis: 0 }
        );
    }
}
