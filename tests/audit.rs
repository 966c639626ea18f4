//! The audit journal, written by real requests to the real portal: tool runs and refusals as
//! hash-chained JSON lines, `ocho audit` through the portal (admin only), `--verify` catching
//! each kind of tampering (edit, removal, reorder, truncation), and a restart after `kill -9`
//! that left a torn line.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use serde_json::Value;
use support::portal::Portal;
use support::{DEADLINE, ocho};

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tokens(dir: &Path) -> PathBuf {
    let path = dir.join("tokens.yml");
    let text = format!(
        "- name: ada\n  sha256: {}\n  role: admin\n- name: vera\n  sha256: {}\n  role: viewer\n",
        sha256(b"ada-secret"),
        sha256(b"vera-secret")
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: &Path, journal: &Path) -> Portal {
    Portal::start(
        &["--tokens-file", tokens(dir).to_str().unwrap(), "--audit", journal.to_str().unwrap()],
        &[],
    )
}

fn records(journal: &Path) -> Vec<Value> {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `ocho audit --verify` on a journal: exit code and output.
fn verify(journal: &Path) -> (Option<i32>, String) {
    let out = ocho()
        .args(["audit", "--verify", "--audit", journal.to_str().unwrap()])
        .env_remove("OCHO_AUDIT")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// `ocho cli` against the portal, with a token.
fn cli(portal: &Portal, token: &str, dir: &Path, line: &[&str]) -> (Option<i32>, String, String) {
    let out = ocho()
        .arg("cli")
        .arg(&portal.addr)
        .args(line)
        .current_dir(dir)
        .env("OCHOPOD_TOKEN", token)
        .env_remove("OCHOPOD_PROXY")
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn real_requests_are_journaled_in_a_chain_that_ocho_audit_shows_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("audit.jsonl");
    let portal = start(dir.path(), &journal);
    std::fs::write(dir.path().join("up.txt"), "uploaded\n").unwrap();
    let (code, _, err) = cli(&portal, "ada-secret", dir.path(), &["args", "--exit", "3", "up.txt"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, _, err) = cli(&portal, "vera-secret", dir.path(), &["kill", "web", "--force"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("kill needs the admin role; vera is viewer"), "{err}");
    let (code, _, _) = cli(&portal, "wrong", dir.path(), &["ls"]);
    assert_eq!(code, Some(1));
    let got = records(&journal);
    assert_eq!(got.len(), 3, "{got:?}");
    let (run, role, auth) = (&got[0], &got[1], &got[2]);
    assert_eq!((run["who"].as_str(), run["tool"].as_str()), (Some("ada"), Some("args")));
    assert_eq!(run["argv"], serde_json::json!(["args", "--exit", "3", "up.txt"]));
    assert_eq!(run["uploads"][0]["name"], "up.txt");
    assert_eq!(run["uploads"][0]["sha256"], sha256(b"uploaded\n"));
    assert_eq!((run["code"].as_i64(), run["killed"].is_null()), (Some(3), true));
    assert!(run["ms"].as_u64().is_some() && run["peer"].as_str().unwrap().contains("127.0.0.1"));
    assert_eq!((role["who"].as_str(), role["status"].as_u64()), (Some("vera"), Some(403)));
    assert_eq!((auth["who"].as_str(), auth["status"].as_u64()), (Some("-"), Some(403)));
    // The chain: each record's prev is the SHA-256 of the line before.
    let lines: Vec<String> =
        std::fs::read_to_string(&journal).unwrap().lines().map(String::from).collect();
    assert_eq!(got[0]["prev"].as_str().unwrap(), "0".repeat(64));
    for i in 1..lines.len() {
        assert_eq!(got[i]["prev"].as_str().unwrap(), sha256(lines[i - 1].as_bytes()));
    }
    assert!(!std::fs::read_to_string(&journal).unwrap().contains("secret"));
    // Through the portal: admin only, and it reads the portal's own journal.
    let (code, out, err) = cli(&portal, "ada-secret", dir.path(), &["audit", "-n", "2"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("vera") && out.contains("kill"), "{out}");
    let (code, out, _) = cli(&portal, "ada-secret", dir.path(), &["audit", "--verify"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("chain intact"), "{out}");
    let (code, _, err) = cli(&portal, "vera-secret", dir.path(), &["audit"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("audit needs the admin role"), "{err}");
}

/// A journal of `n` real records, copied (with its head file) for each kind of tampering.
fn journal_of(n: usize) -> (tempfile::TempDir, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("audit.jsonl");
    let portal = start(dir.path(), &journal);
    for i in 0..n {
        let reply = portal.shell(&format!("args {i}"), &[("Authorization", "Bearer ada-secret")]);
        assert_eq!(reply.status, 200);
    }
    drop(portal);
    let text = std::fs::read_to_string(&journal).unwrap();
    let head = std::fs::read_to_string(dir.path().join("audit.jsonl.head")).unwrap();
    (dir, text.lines().map(String::from).collect(), head)
}

fn tampered(lines: &[String], head: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    std::fs::write(dir.path().join("j.jsonl.head"), head).unwrap();
    (dir, path)
}

#[test]
fn verify_names_the_first_record_edited_removed_reordered_or_truncated() {
    let (_keep, lines, head) = journal_of(6);
    let (_d, intact) = tampered(&lines, &head);
    let (code, out) = verify(&intact);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("6 record(s)"), "{out}");

    let check = |lines: Vec<String>, needle: &str| {
        let (_d, path) = tampered(&lines, &head);
        let (code, out) = verify(&path);
        assert_eq!(code, Some(1), "{needle}: {out}");
        assert!(out.contains(needle), "expected {needle:?} in {out}");
    };
    let mut edited = lines.clone();
    edited[2] = edited[2].replace("\"args\",\"2\"", "\"args\",\"9\"");
    assert_ne!(edited[2], lines[2]);
    check(edited, "record #3 at");
    let mut last_edited = lines.clone();
    last_edited[5] = last_edited[5].replace("\"args\",\"5\"", "\"args\",\"7\"");
    check(last_edited, "record #6 at");
    let mut removed = lines.clone();
    removed.remove(3);
    check(removed, "records #4..#4 were removed");
    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    check(reordered, "reordered");
    check(lines[..4].to_vec(), "records #5..#6 were cut off the end");
    let mut cut = lines[..5].to_vec();
    let half = cut[4].len() / 2;
    cut[4].truncate(half);
    let (_d, path) = tampered(&cut, &head);
    std::fs::write(&path, cut.join("\n")).unwrap();
    let (code, out) = verify(&path);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cut short"), "{out}");
}

#[test]
fn after_kill_9_mid_append_the_next_start_notes_the_torn_line_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("audit.jsonl");
    let mut portal = start(dir.path(), &journal);
    let ada = [("Authorization", "Bearer ada-secret")];
    assert_eq!(portal.shell("args one", &ada).status, 200);
    assert_eq!(portal.shell("args two", &ada).status, 200);
    portal.proc.signal(Signal::SIGKILL);
    portal.proc.expect_exit(DEADLINE);
    // What a kill in the middle of write(2) leaves: the first part of a record, no newline.
    let whole = std::fs::read_to_string(&journal).unwrap();
    let last = whole.lines().last().unwrap().to_string();
    let torn = &last[..last.len() / 2];
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(torn.as_bytes())
        .unwrap();
    let portal = start(dir.path(), &journal);
    portal.proc.wait_for_line("the last line was torn", DEADLINE);
    assert_eq!(portal.shell("args three", &ada).status, 200);
    let got = records(&journal);
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r["event"].as_str().or(r["argv"][1].as_str()).unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["one", "two", "torn", "three"]);
    assert_eq!(got[2]["sha256"].as_str().unwrap(), sha256(torn.as_bytes()));
    let (code, out) = verify(&journal);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("torn by a crash"), "{out}");
    // Records cut off the end while the portal was down: noticed at the start, and verify fails.
    drop(portal);
    let text = std::fs::read_to_string(&journal).unwrap();
    let keep: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&journal, keep.join("\n") + "\n").unwrap();
    let portal = start(dir.path(), &journal);
    portal.proc.wait_for_line("are missing from the end", DEADLINE);
    let (code, out) = verify(&journal);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("went missing from the end"), "{out}");
}

use std::io::Write;
