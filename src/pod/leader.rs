//! The leader's configuration round (spec §4.4.4), blocking: `check` to every pod (410 drops it,
//! anything else but 200 fails the round), optional `off`, `on` to the survivors (all must answer
//! 200), then `ok` fire-and-forget. Requests go in parallel threads, or one at a time with
//! `--sequential`, each with the payload `{pods, dependencies, key}` and a client timeout of
//! 1.25 × the URL's timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::http::Request;
use crate::ochopod::{Payload, Registration};

/// Largest reply read from a pod (they answer `{}` or a small object).
const MAX_REPLY: usize = 1024 * 1024;

/// Settings of a round.
#[derive(Clone)]
pub struct Round {
    /// The leader's own control port: every pod is reached at `ports[port]`.
    pub port: String,
    /// Timeout segment of the URLs, seconds.
    pub timeout: u64,
    pub sequential: bool,
    pub full_shutdown: bool,
}

type Deps = BTreeMap<String, BTreeMap<String, Registration>>;

/// Configures `pods`; returns the live ones (those that did not answer 410).
pub fn configure(
    round: &Round,
    pods: &BTreeMap<String, Registration>,
    deps: &Deps,
) -> Result<BTreeMap<String, Registration>, String> {
    let mut targets = Vec::new();
    for (uuid, pod) in pods {
        match pod.endpoint(&round.port) {
            Some(addr) => targets.push((uuid.clone(), addr)),
            None => {
                return Err(format!("1+ pods are not exposing TCP {} (user error ?)", round.port));
            }
        }
    }
    let mut live = pods.clone();
    for (uuid, answer) in fire(round, "check", &targets, pods, deps) {
        match answer {
            Ok(410) => {
                live.remove(&uuid);
            }
            Ok(200) => {}
            Ok(code) => return Err(format!("check: pod {uuid} answered {code}")),
            Err(why) => return Err(format!("check: pod {uuid}: {why}")),
        }
    }
    if live.is_empty() {
        return Ok(live);
    }
    targets.retain(|(uuid, _)| live.contains_key(uuid));
    if round.full_shutdown {
        fire(round, "off", &targets, &live, deps);
    }
    for (uuid, answer) in fire(round, "on", &targets, &live, deps) {
        match answer {
            Ok(200) => {}
            Ok(code) => return Err(format!("on: pod {uuid} answered {code}")),
            Err(why) => return Err(format!("on: pod {uuid}: {why}")),
        }
    }
    // `ok` is fire and forget: 1.0.0 pods answer it only with a 408 after the whole timeout.
    let (round, live2, deps) = (round.clone(), live.clone(), deps.clone());
    std::thread::spawn(move || {
        fire(&round, "ok", &targets, &live2, &deps);
    });
    Ok(live)
}

/// Sends `verb` to every target; returns each pod's status code or why it did not answer.
fn fire(
    round: &Round,
    verb: &str,
    targets: &[(String, String)],
    pods: &BTreeMap<String, Registration>,
    deps: &Deps,
) -> Vec<(String, Result<u16, String>)> {
    let one = |uuid: &String, addr: &String| {
        let payload = Payload { pods: pods.clone(), dependencies: deps.clone(), key: uuid.clone() };
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let path = format!("/control/{verb}/{}", round.timeout);
        let timeout = Duration::from_secs_f64(round.timeout as f64 * 1.25);
        let answer = Request::post_json(addr, &path, &body, timeout)
            .send(MAX_REPLY)
            .map(|r| r.status)
            .map_err(|e| format!("{addr}: {}", crate::error::chain(&e)));
        (uuid.clone(), answer)
    };
    if round.sequential {
        return targets.iter().map(|(u, a)| one(u, a)).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = targets.iter().map(|(u, a)| s.spawn(move || one(u, a))).collect();
        handles
            .into_iter()
            .zip(targets)
            .map(|(h, (u, _))| h.join().unwrap_or_else(|_| (u.clone(), Err("panicked".into()))))
            .collect()
    })
}
