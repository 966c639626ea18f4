//! The HTTP side of the tools: a bounded pool ([`fan_out`]), one request to one pod ([`post`])
//! kept as an [`Answer`] whatever happens, the usual query ([`scan`]) and the accounting every
//! tool reports ([`Tally`], [`finish`]). Pods that do not answer are never dropped.

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Common, Glob, Lookup, Pod, lookup, output};
use crate::error::Result;
use crate::http::Request;
use crate::zk::Session;

/// Largest reply body read from a pod (`/log` is at most about 32 KiB on Python pods).
pub const MAX_REPLY: usize = 4 * 1024 * 1024;

/// A pod's answer to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The pod replied with a JSON body (any status).
    Json { status: u16, body: Value },
    /// No usable reply: silence, a non-JSON body, or the pod cannot be addressed. The text says
    /// why (`timed out`, `connection refused`, `HTTP 500, reply is not JSON`, …).
    Failed(String),
}

impl Answer {
    /// The body of a 200 reply.
    pub fn ok(&self) -> Option<&Value> {
        match self {
            Answer::Json { status: 200, body } => Some(body),
            _ => None,
        }
    }

    /// Why this is not a 200 reply (`None` for a 200).
    pub fn problem(&self) -> Option<String> {
        match self {
            Answer::Json { status: 200, .. } => None,
            Answer::Json { status, .. } => Some(format!("HTTP {status}")),
            Answer::Failed(why) => Some(why.clone()),
        }
    }
}

/// Runs `f` over `items` on at most `parallel` threads; results keep the order of `items`.
pub fn fan_out<T: Sync, R: Send>(
    items: &[T],
    parallel: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let workers = parallel.clamp(1, items.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every slot is filled once the scope has joined its workers")
        })
        .collect()
}

/// `POST http://<ip>:<ports[port]><path>` with a JSON body (or none), parsed as JSON whatever
/// the Content-Type.
pub fn post(pod: &Pod, path: &str, body: &[u8], timeout: Duration) -> Answer {
    let addr = match pod.control() {
        Ok(addr) => addr,
        Err(why) => return Answer::Failed(why),
    };
    match Request::post_json(&addr, path, body, timeout).send(MAX_REPLY) {
        Ok(reply) => match reply.json() {
            Some(body) => Answer::Json { status: reply.status, body },
            None => Answer::Failed(format!("HTTP {}, reply is not JSON", reply.status)),
        },
        Err(err) if err.is_silence() => Answer::Failed(crate::error::chain(&err)),
        Err(err) => Answer::Failed(format!("bad reply: {}", crate::error::chain(&err))),
    }
}

/// The usual query: look the globs up, POST `path` to every pod concurrently.
pub struct Scan {
    pub globs: Vec<Glob>,
    pub lookup: Lookup,
    /// One per `lookup.pods`, same order.
    pub answers: Vec<Answer>,
}

/// Looks `globs` up and posts `path` (no body) to every selected pod, the session closing
/// meanwhile: it is not needed once the pods are known.
pub fn scan(common: &Common, globs: Vec<Glob>, path: &str) -> Result<Scan> {
    let zk = common.connect()?;
    let lookup = lookup(&zk, &globs, common.indices.as_ref())?;
    let _closing = zk.close_in_background();
    Ok(ask(common, globs, lookup, path))
}

/// Posts `path` to every pod of `lookup`.
fn ask(common: &Common, globs: Vec<Glob>, lookup: Lookup, path: &str) -> Scan {
    let answers =
        fan_out(&lookup.pods, common.parallel, |pod| post(pod, path, b"", common.timeout));
    Scan { globs, lookup, answers }
}

/// [`scan`] on a session already open (a watch keeps its own).
pub fn scan_on(zk: &Session, common: &Common, globs: Vec<Glob>, path: &str) -> Result<Scan> {
    let lookup = lookup(zk, &globs, common.indices.as_ref())?;
    Ok(ask(common, globs, lookup, path))
}

impl Scan {
    /// `-j` of the query tools: `{"<pod key>": entry, …}` in pod order, where `entry` renders the
    /// reply of a pod that answered (`None` leaves the pod out) and a pod that did not answer
    /// gets `{"error": "<why>"}`.
    pub fn json(&self, entry: impl Fn(&Value) -> Option<Value>) -> String {
        let mut map = Map::new();
        for (pod, answer) in self.lookup.pods.iter().zip(&self.answers) {
            let value = match answer.ok() {
                Some(body) => entry(body),
                None => Some(json!({"error": answer.problem()})),
            };
            if let Some(value) = value {
                map.insert(pod.key(), value);
            }
        }
        output::structured(&Value::Object(map))
    }

    /// Text of the query tools: per glob, `no pods found`, or the replies header, `body` of the
    /// pods that answered (with their replies), then the pods that did not answer.
    pub fn text(&self, body: impl Fn(Vec<(&Pod, &Value)>) -> String) -> String {
        let mut out = String::new();
        for glob in &self.globs {
            let tally = self.tally(glob);
            if tally.total == 0 {
                out += &output::no_pods(&glob.0);
                continue;
            }
            out += &output::header(&glob.0, &tally);
            out += &body(
                self.of(glob).filter_map(|(pod, answer)| Some((pod, answer.ok()?))).collect(),
            );
            output::failures(&mut out, &tally);
        }
        out
    }

    /// Pods of one glob with their answers.
    pub fn of<'a>(&'a self, glob: &'a Glob) -> impl Iterator<Item = (&'a Pod, &'a Answer)> + 'a {
        self.lookup.pods.iter().zip(&self.answers).filter(move |(p, _)| glob.matches(&p.cluster))
    }

    /// Accounting over one glob.
    pub fn tally(&self, glob: &Glob) -> Tally {
        Tally::of(self.of(glob))
    }

    /// Accounting over every selected pod (each counted once).
    pub fn tally_all(&self) -> Tally {
        Tally::of(self.lookup.pods.iter().zip(&self.answers))
    }
}

/// What became of one pod's request, for the state-changing verbs.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Done (a 200, and whatever the verb checks after it).
    Done,
    /// The pod answered and did not do it (406, 408, 410, 500…), or the tool itself refused to
    /// send the request; the text says why.
    Refused(String),
    /// The pod answered but the outcome did not follow in time (`reset`: not re-registered).
    Unfinished(String),
    /// No usable answer: silence, a refused connection, a reply that is not JSON.
    Silent(String),
}

/// Replies counted against pods selected.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub total: usize,
    pub ok: usize,
    /// `(pod key, reason)` of every pod without a usable reply, in pod order.
    pub failed: Vec<(String, String)>,
    /// `(pod key, reason)` of every pod that answered but refused (verbs only).
    pub refused: Vec<(String, String)>,
    /// `(pod key, reason)` of every pod that answered but did not get there in time.
    pub unfinished: Vec<(String, String)>,
}

impl Tally {
    pub fn of<'a>(pairs: impl Iterator<Item = (&'a Pod, &'a Answer)>) -> Tally {
        let mut tally = Tally::default();
        for (pod, answer) in pairs {
            tally.add(pod, answer.problem());
        }
        tally
    }

    /// Counts one pod: `problem` is `None` when it succeeded.
    pub fn add(&mut self, pod: &Pod, problem: Option<String>) {
        self.total += 1;
        match problem {
            None => self.ok += 1,
            Some(why) => self.failed.push((pod.key(), why)),
        }
    }

    /// Counts one pod by the verdict on its request.
    pub fn judge(&mut self, pod: &Pod, verdict: Verdict) {
        self.total += 1;
        match verdict {
            Verdict::Done => self.ok += 1,
            Verdict::Refused(why) => self.refused.push((pod.key(), why)),
            Verdict::Unfinished(why) => self.unfinished.push((pod.key(), why)),
            Verdict::Silent(why) => self.failed.push((pod.key(), why)),
        }
    }

    /// Integer percentage of pods that replied (a refusal is a reply), 0 when nothing was
    /// selected.
    pub fn percent(&self) -> usize {
        output::percent(self.ok + self.refused.len() + self.unfinished.len(), self.total)
    }

    /// One line per kind of failure (`N pods refused: key (reason), …`, `N pods did not finish:
    /// …`, `N pods did not answer: …`), or `None` when every pod succeeded.
    pub fn failure_line(&self) -> Option<String> {
        let mut lines = Vec::new();
        for (list, what) in [
            (&self.refused, "refused"),
            (&self.unfinished, "did not finish"),
            (&self.failed, "did not answer"),
        ] {
            if list.is_empty() {
                continue;
            }
            let names: Vec<String> =
                list.iter().map(|(key, why)| format!("{key} ({why})")).collect();
            lines.push(format!("{} {} {what}: {}", list.len(), pods(list.len()), names.join(", ")));
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// Refused pods as a JSON object `{key: reason}`.
    pub fn refused_json(&self) -> Value {
        Value::Object(
            self.refused.iter().map(|(k, why)| (k.clone(), Value::String(why.clone()))).collect(),
        )
    }

    /// Pods that did not answer, or did not finish, as a JSON object `{key: reason}`.
    pub fn failed_json(&self) -> Value {
        Value::Object(
            self.failed
                .iter()
                .chain(&self.unfinished)
                .map(|(k, why)| (k.clone(), Value::String(why.clone())))
                .collect(),
        )
    }
}

/// "pod" or "pods".
pub fn pods(n: usize) -> &'static str {
    if n == 1 { "pod" } else { "pods" }
}

/// Ends a tool run: reports unreadable registrations and an unmet threshold on stderr and turns
/// the tally into the exit code (0 when enough pods answered, 1 otherwise).
pub fn finish(common: &Common, tally: &Tally, skipped: &[String]) -> ExitCode {
    let (notes, code) = outcome(common, tally, skipped);
    for note in notes {
        eprintln!("{note}");
    }
    code
}

/// What [`finish`] reports (its stderr lines) and the exit code, without printing.
pub fn outcome(common: &Common, tally: &Tally, skipped: &[String]) -> (Vec<String>, ExitCode) {
    let mut notes: Vec<String> =
        skipped.iter().map(|w| format!("skipped registration {w}")).collect();
    let needed = common.min_replies.needed(tally.total);
    if tally.ok >= needed {
        return (notes, ExitCode::SUCCESS);
    }
    notes.push(format!(
        "{} of {} {} replied, {needed} needed (--min-replies)",
        tally.ok,
        tally.total,
        pods(tally.total)
    ));
    (notes, ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_keeps_order_and_bounds_threads() {
        let items: Vec<usize> = (0..100).collect();
        let out = fan_out(&items, 7, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(fan_out(&Vec::<u8>::new(), 4, |_| ()).is_empty());
    }
}
