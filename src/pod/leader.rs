//! The leader's configuration round (docs/protocol.md §4.4.4), blocking: `check` to every pod (410
//! drops it, anything else but 200 fails the round), optional `off`, `on` to the survivors (all
//! must answer 200), then `ok` fire-and-forget. Requests go in parallel threads, or one at a time
//! with `--sequential`, each with the payload `{pods, dependencies, key}` and a client timeout of
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// Verbs a fake pod received, with the payload's `key`.
    type Seen = Arc<Mutex<Vec<(String, String)>>>;

    /// A fake pod answering `code_for(verb)` and recording what it got.
    fn fake(code_for: fn(&str) -> u16) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let payload: Payload = serde_json::from_slice(&body).unwrap();
                let verb = line.split('/').nth(2).unwrap_or("").to_string();
                let code = code_for(&verb);
                rec.lock().unwrap().push((verb, payload.key));
                let reply = format!("HTTP/1.0 {code} X\r\nContent-Type: text/html\r\n\r\n{{}}");
                r.into_inner().write_all(reply.as_bytes()).unwrap();
            }
        });
        (addr, seen)
    }

    fn pod(addr: &str, seq: i64) -> Registration {
        let (ip, port) = addr.split_once(':').unwrap();
        let v = serde_json::json!({"ip": ip, "port": "8080", "ports": {"8080": port.parse::<u16>().unwrap()}, "seq": seq});
        Registration::parse(v.to_string().as_bytes()).unwrap()
    }

    fn round(sequential: bool) -> Round {
        Round { port: "8080".into(), timeout: 5, sequential, full_shutdown: false }
    }

    #[test]
    fn dead_pods_are_dropped_and_the_rest_configured() {
        let (alive, alive_seen) = fake(|_| 200);
        let (dead, dead_seen) = fake(|_| 410);
        let pods: BTreeMap<String, Registration> =
            [("a".to_string(), pod(&alive, 0)), ("d".to_string(), pod(&dead, 1))].into();
        for sequential in [false, true] {
            alive_seen.lock().unwrap().clear();
            let live = configure(&round(sequential), &pods, &Deps::new()).unwrap();
            assert_eq!(live.keys().collect::<Vec<_>>(), ["a"]);
            let verbs = || alive_seen.lock().unwrap().clone();
            // `ok` is fire and forget: wait until it arrives.
            for _ in 0..100 {
                if verbs().len() == 3 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let expected: Vec<(String, String)> =
                ["check", "on", "ok"].iter().map(|v| (v.to_string(), "a".to_string())).collect();
            assert_eq!(verbs(), expected);
        }
        assert!(dead_seen.lock().unwrap().iter().all(|(v, k)| v == "check" && k == "d"));
    }

    #[test]
    fn a_refusal_or_a_missing_port_fails_the_round() {
        let (refusing, _) = fake(|verb| if verb == "on" { 406 } else { 200 });
        let pods: BTreeMap<String, Registration> = [("r".to_string(), pod(&refusing, 0))].into();
        let err = configure(&round(false), &pods, &Deps::new()).unwrap_err();
        assert!(err.contains("on: pod r answered 406"), "{err}");
        let mut other = round(false);
        other.port = "9000".into();
        let err = configure(&other, &pods, &Deps::new()).unwrap_err();
        assert!(err.contains("not exposing TCP 9000"), "{err}");
    }
}
