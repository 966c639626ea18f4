//! Restart delays shared by `ocho init` (its ZooKeeper and portal) and `ocho pod` (its
//! workload): 1 s doubling up to 30 s, with jitter so that members restarted together do not
//! retry in step.

use std::time::Duration;

/// The longest delay.
pub const MAX: Duration = Duration::from_secs(30);

/// The delay after `failures` consecutive failures, times a jitter factor in [0.9, 1.1) drawn
/// from `unit` (in [0, 1)).
pub fn delay(failures: u32, unit: f64) -> Duration {
    let base = 2f64.powi(failures.min(5) as i32).min(MAX.as_secs_f64());
    Duration::from_secs_f64((base * (0.9 + 0.2 * unit.clamp(0.0, 1.0))).min(MAX.as_secs_f64()))
}

/// [`delay`] with a fresh random jitter.
pub fn jittered(failures: u32) -> Duration {
    delay(failures, crate::random::unit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_up_to_thirty() {
        let mid: Vec<f64> = (0..8).map(|n| delay(n, 0.5).as_secs_f64()).collect();
        assert_eq!(mid, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_under_the_cap() {
        for n in 0..10 {
            let low = delay(n, 0.0).as_secs_f64();
            let high = delay(n, 1.0).as_secs_f64();
            let base = 2f64.powi(n.min(5) as i32).min(30.0);
            assert!((low - base * 0.9).abs() < 1e-9, "{n}: {low}");
            assert!(high <= (base * 1.1).min(30.0) + 1e-9, "{n}: {high}");
        }
        let drawn = jittered(2).as_secs_f64();
        assert!((3.6..4.4).contains(&drawn), "{drawn}");
    }
}
