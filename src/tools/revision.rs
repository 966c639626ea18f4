//! `bump`'s revisions: each RC that `bump` creates carries the cluster's history in the
//! annotation [`ANNOTATION`] (a JSON list, oldest first, at most [`LIMIT`] entries): revision
//! number, image, the RC, the RC it replaced, when. An RC made by `deploy` has none and counts
//! as revision 1. `bump --history` lists it; `bump --undo` rolls onto the previous revision's
//! image (or `--to-revision N`'s) with the same rolling procedure, which records a new revision,
//! as `kubectl rollout undo` does. Pure: no client here.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::ReplicationController;
use serde::{Deserialize, Serialize};

/// The annotation holding the history.
pub const ANNOTATION: &str = "ochopod.io/revisions";
/// Revisions kept (kubectl's default `revisionHistoryLimit` is 10 as well).
pub const LIMIT: usize = 10;

/// One revision of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u32,
    pub image: String,
    /// The RC of this revision.
    pub rc: String,
    /// The RC this one replaced (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    /// When it was made (RFC 3339, UTC).
    #[serde(default)]
    pub at: String,
}

/// The image of an RC's (first) container.
pub fn image(rc: &ReplicationController) -> String {
    rc.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn name(rc: &ReplicationController) -> String {
    rc.metadata.name.clone().unwrap_or_default()
}

/// The history recorded on `rc`, oldest first. Without the annotation (an RC of `deploy`), or
/// with one that does not parse or does not end with this RC, the RC alone as the last entry.
pub fn history(rc: &ReplicationController) -> Vec<Revision> {
    let recorded: Vec<Revision> = rc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    if recorded.last().is_some_and(|r| r.rc == name(rc)) {
        return recorded;
    }
    let next = recorded.last().map_or(1, |r| r.revision + 1);
    let at = rc.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
    let mut all = recorded;
    all.push(Revision { revision: next, image: image(rc), rc: name(rc), replaced: None, at });
    all
}

/// Records on `new` (already named, with its image set) the history of `previous` plus `new`
/// as the next revision, keeping the last [`LIMIT`].
pub fn record(new: &mut ReplicationController, previous: &ReplicationController, now: SystemTime) {
    let mut all = history(previous);
    let next = all.last().map_or(1, |r| r.revision + 1);
    let at = k8s_openapi::jiff::Timestamp::try_from(now).map(|t| t.to_string()).unwrap_or_default();
    all.push(Revision {
        revision: next,
        image: image(new),
        rc: name(new),
        replaced: Some(name(previous)),
        at,
    });
    let cut = all.len().saturating_sub(LIMIT);
    all.drain(..cut);
    let text = serde_json::to_string(&all).expect("revisions serialize");
    new.metadata.annotations.get_or_insert_default().insert(ANNOTATION.into(), text);
}

/// The revision `--undo` goes back to: `to` if given, else the one before the current.
pub fn undo_target(history: &[Revision], to: Option<u32>) -> Result<&Revision, String> {
    let current = history.last().ok_or("no revision recorded")?;
    match to {
        Some(n) => history.iter().find(|r| r.revision == n).ok_or_else(|| {
            let known: Vec<String> = history.iter().map(|r| r.revision.to_string()).collect();
            format!("no revision {n} (known: {})", known.join(", "))
        }),
        None => history.iter().rev().find(|r| r.image != current.image).ok_or_else(|| {
            format!("no earlier revision with another image than {}", current.image)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rc(name: &str, image: &str) -> ReplicationController {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": "2026-12-02T10:00:00Z"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_deployed_rc_is_revision_one_and_each_bump_adds_one() {
        let first = rc("a", "web:1");
        assert_eq!(history(&first).len(), 1);
        assert_eq!(history(&first)[0].revision, 1);
        let mut second = rc("b", "web:2");
        second.metadata.annotations = first.metadata.annotations.clone();
        record(&mut second, &first, SystemTime::UNIX_EPOCH);
        let h = history(&second);
        assert_eq!(h.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((h[1].image.as_str(), h[1].replaced.as_deref()), ("web:2", Some("a")));
        assert_eq!(undo_target(&h, None).unwrap().image, "web:1");
        assert_eq!(undo_target(&h, Some(2)).unwrap().rc, "b");
        assert!(undo_target(&h, Some(7)).unwrap_err().contains("known: 1, 2"));
        assert!(undo_target(&history(&first), None).is_err());
    }

    #[test]
    fn the_history_keeps_the_last_ten() {
        let mut previous = rc("r0", "web:0");
        for i in 1..=12 {
            let mut next = rc(&format!("r{i}"), &format!("web:{i}"));
            record(&mut next, &previous, SystemTime::UNIX_EPOCH);
            previous = next;
        }
        let h = history(&previous);
        assert_eq!(h.len(), LIMIT);
        assert_eq!(h.last().unwrap().revision, 13);
        assert_eq!(h[0].revision, 4);
    }
}
