//! The portal's Prometheus metrics (text exposition format 0.0.4): requests by tool and HTTP
//! status, a duration histogram, requests in flight and requests rejected (by reason). Kept in
//! memory, rendered on `GET /metrics`; no token or tool argument ever appears in a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Default)]
struct Counts {
    requests: BTreeMap<(String, u16), u64>,
    rejected: BTreeMap<&'static str, u64>,
    tokens: BTreeMap<String, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All counters.
#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
    /// Tool runs in progress (maintained by the request guard).
    pub in_flight: AtomicUsize,
}

impl Metrics {
    /// Counts one answered `/shell` request. `tool` is a tool name or `-` when none was valid.
    pub fn observe(&self, tool: &str, status: u16, elapsed: Duration) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests.entry((tool.to_string(), status)).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                c.buckets[i] += 1;
            }
        }
        c.count += 1;
        c.sum += secs;
    }

    /// Counts an authenticated request by the name of its token (never the token).
    pub fn by_token(&self, name: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.tokens.entry(name.to_string()).or_default() += 1;
    }

    /// Counts a request refused before running (`busy`, `auth`, …).
    pub fn reject(&self, reason: &'static str) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.rejected.entry(reason).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut t = String::new();
        let _ = writeln!(
            t,
            "# HELP ocho_portal_requests_total Tool requests answered, by tool and HTTP status."
        );
        let _ = writeln!(t, "# TYPE ocho_portal_requests_total counter");
        for ((tool, status), n) in &c.requests {
            let _ = writeln!(
                t,
                "ocho_portal_requests_total{{tool=\"{}\",status=\"{status}\"}} {n}",
                escape(tool)
            );
        }
        let _ =
            writeln!(t, "# HELP ocho_portal_request_duration_seconds Time from request to reply.");
        let _ = writeln!(t, "# TYPE ocho_portal_request_duration_seconds histogram");
        for (bound, n) in BUCKETS.iter().zip(c.buckets) {
            let _ =
                writeln!(t, "ocho_portal_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ =
            writeln!(t, "ocho_portal_request_duration_seconds_bucket{{le=\"+Inf\"}} {}", c.count);
        let _ = writeln!(t, "ocho_portal_request_duration_seconds_sum {}", c.sum);
        let _ = writeln!(t, "ocho_portal_request_duration_seconds_count {}", c.count);
        let _ = writeln!(t, "# HELP ocho_portal_in_flight Tool runs in progress.");
        let _ = writeln!(t, "# TYPE ocho_portal_in_flight gauge");
        let _ = writeln!(t, "ocho_portal_in_flight {}", self.in_flight.load(Ordering::SeqCst));
        let _ = writeln!(
            t,
            "# HELP ocho_portal_rejected_total Requests refused before running, by reason."
        );
        let _ = writeln!(t, "# TYPE ocho_portal_rejected_total counter");
        for (reason, n) in &c.rejected {
            let _ = writeln!(t, "ocho_portal_rejected_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            t,
            "# HELP ocho_portal_authenticated_total Authenticated requests, by token name."
        );
        let _ = writeln!(t, "# TYPE ocho_portal_authenticated_total counter");
        for (name, n) in &c.tokens {
            let _ =
                writeln!(t, "ocho_portal_authenticated_total{{token=\"{}\"}} {n}", escape(name));
        }
        if let Some(damage) = zk_damage() {
            for (key, help) in [
                ("repairs", "Repairs of ZooKeeper's data made by ocho init before a start."),
                ("quarantined_files", "ZooKeeper data files ocho init moved to quarantine."),
                ("data_lost", "Repairs in which transactions were lost or skipped."),
            ] {
                let n = damage.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
                let _ = writeln!(t, "# HELP ocho_zk_data_{key}_total {help}");
                let _ = writeln!(t, "# TYPE ocho_zk_data_{key}_total counter");
                let _ = writeln!(t, "ocho_zk_data_{key}_total {n}");
            }
        }
        t
    }
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What `ocho init` recorded about repairs of ZooKeeper's data (`$OCHO_ZK_DAMAGE`, its
/// `damage.json`): `None` without the variable; an empty record while nothing was repaired.
pub fn zk_damage() -> Option<serde_json::Value> {
    let path = std::env::var_os("OCHO_ZK_DAMAGE").filter(|p| !p.is_empty())?;
    match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap_or_else(
            |e| serde_json::json!({"error": format!("{}: {e}", Path::new(&path).display())}),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(serde_json::json!({"repairs": 0, "quarantined_files": 0, "data_lost": 0}))
        }
        Err(e) => {
            Some(serde_json::json!({"error": format!("{}: {e}", Path::new(&path).display())}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.observe("args", 200, Duration::from_millis(3));
        m.observe("args", 200, Duration::from_millis(300));
        m.observe("-", 400, Duration::from_millis(1));
        m.reject("busy");
        let text = m.render();
        assert!(
            text.contains("ocho_portal_requests_total{tool=\"args\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("ocho_portal_requests_total{tool=\"-\",status=\"400\"} 1"), "{text}");
        assert!(text.contains("_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("_bucket{le=\"0.5\"} 3\n"), "{text}");
        assert!(text.contains("_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("ocho_portal_rejected_total{reason=\"busy\"} 1"), "{text}");
        assert!(text.contains("ocho_portal_in_flight 0"), "{text}");
    }
}
