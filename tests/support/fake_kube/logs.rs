//! Per-container log buffers (filled by the fake kubelet) and `pods/{name}/log`
//! (docs/fake-kubernetes.md §12): container selection, tailLines, timestamps, since*, limitBytes,
//! follow.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::status::{ApiError, nanos_stamp};
use super::store::State;

/// Lines kept per container; older ones are dropped (a client cannot grow memory without bound).
const MAX_LINES: usize = 10_000;

#[derive(Default)]
pub struct LogBuf {
    lines: VecDeque<(Timestamp, String)>,
    /// Open `follow=true` responses and whether each wants timestamps.
    followers: Vec<(UnboundedSender<Bytes>, bool)>,
}

impl LogBuf {
    pub fn lines(&self) -> impl Iterator<Item = (Timestamp, &str)> {
        self.lines.iter().map(|(t, l)| (*t, l.as_str()))
    }

    pub fn push(&mut self, ts: Timestamp, line: String) {
        self.followers
            .retain(|(tx, stamps)| tx.send(Bytes::from(render(ts, &line, *stamps))).is_ok());
        self.lines.push_back((ts, line));
        if self.lines.len() > MAX_LINES {
            self.lines.pop_front();
        }
    }

    /// Ends every follow stream (the container stopped or the pod is gone).
    pub fn close(&mut self) {
        self.followers.clear();
    }
}

fn render(ts: Timestamp, line: &str, stamps: bool) -> String {
    if stamps { format!("{} {line}\n", nanos_stamp(ts)) } else { format!("{line}\n") }
}

pub enum LogReply {
    Text(String),
    Follow(String, UnboundedReceiver<Bytes>),
}

pub fn pod_log(
    state: &mut State,
    ns: &str,
    name: &str,
    q: &BTreeMap<String, String>,
) -> Result<LogReply, ApiError> {
    let pod = state.pod(ns, name).ok_or_else(|| ApiError::not_found("pods", name))?;
    let spec = pod.spec.clone().unwrap_or_default();
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(&format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(&format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    if q.get("previous").is_some_and(|v| v == "true") {
        return Err(ApiError::bad_request(&format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let int = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(&format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    };
    let tail = int("tailLines")?;
    let limit = int("limitBytes")?;
    let since = match (int("sinceSeconds")?, q.get("sinceTime")) {
        (Some(s), _) => Some(Timestamp::now() - SignedDuration::from_secs(s)),
        (None, Some(t)) => Some(
            t.parse::<Timestamp>()
                .map_err(|e| ApiError::bad_request(&format!("invalid sinceTime {t:?}: {e}")))?,
        ),
        (None, None) => None,
    };
    let stamps = q.get("timestamps").is_some_and(|v| v == "true");
    let follow = q.get("follow").is_some_and(|v| v == "true");
    // Never scheduled: the real server has no kubelet to proxy to and answers 200 with nothing.
    if spec.node_name.is_none() {
        return Ok(LogReply::Text(String::new()));
    }
    let buf = state.logs.entry((ns.to_string(), name.to_string(), container)).or_default();
    let mut lines: Vec<(Timestamp, &str)> =
        buf.lines().filter(|(t, _)| since.is_none_or(|s| *t >= s)).collect();
    if let Some(n) = tail {
        let n = n.max(0) as usize;
        if lines.len() > n {
            lines.drain(..lines.len() - n);
        }
    }
    let mut text: String = lines.iter().map(|(t, l)| render(*t, l, stamps)).collect();
    if let Some(limit) = limit.filter(|l| *l >= 0) {
        let mut cut = (limit as usize).min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    if !follow {
        return Ok(LogReply::Text(text));
    }
    let (tx, rx) = unbounded_channel();
    buf.followers.push((tx, stamps));
    Ok(LogReply::Follow(text, rx))
}
