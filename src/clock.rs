//! Wall-clock time as UTC calendar fields, without a date crate: the portal's access log, the
//! agent's log lines and the names `deploy` gives workloads all print UTC timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

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
    /// `t` in UTC; instants before 1970 read as the epoch.
    pub fn of(t: SystemTime) -> Utc {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level Date
        // Algorithms").
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            millis: d.subsec_millis(),
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
        // 2026-11-23 11:41:09
        assert_eq!(
            at(1_795_434_069, 0),
            Utc { year: 2026, month: 11, day: 23, hour: 11, minute: 41, second: 9, millis: 0 }
        );
    }
}
