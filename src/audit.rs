//! The portal's audit journal and `ocho audit`. One JSON object per line, appended by the
//! portal for every tool run and every request refused for its credentials or its role. Each
//! record carries `seq` (1, 2, …) and `prev`, the hex SHA-256 of the previous record's line
//! (64 zeros for the first): editing, removing or reordering a record breaks the chain at that
//! point. `PATH.head` holds the last record's `seq` and hash, so that records cut off the end
//! are noticed too. Past `--audit-max-bytes` the file is renamed `PATH.<seq of the next record>`
//! and a new one continues the chain. A portal killed mid-append leaves a torn line: the next start
//! terminates it, records a `torn` event (its bytes' SHA-256) and goes on from the last whole
//! record; `--verify` reports it as a note, while anything else that breaks the chain fails.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use argh::{ArgsInfo, FromArgs};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The variable naming the journal (for the portal, and for `ocho audit` run by it).
pub const VAR: &str = "OCHO_AUDIT";

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// ISO 8601 UTC with milliseconds.
fn now() -> String {
    let t = std::time::SystemTime::now();
    let ms = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_millis());
    let u = crate::clock::Utc::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        u.year, u.month, u.day, u.hour, u.minute, u.second
    )
}

fn head_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

/// The journal's files, oldest first: `PATH.<seq>` (rotated) then `PATH`.
pub fn files(path: &Path) -> Result<Vec<PathBuf>> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(seq) = name
                .strip_prefix(&base)
                .and_then(|r| r.strip_prefix('.'))
                .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|r| r.parse().ok())
            {
                rotated.push((seq, entry.path()));
            }
        }
    }
    rotated.sort();
    let mut all: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        all.push(path.to_path_buf());
    }
    Ok(all)
}

/// The last whole record of the journal: (seq, hash of its line).
fn last_record(files: &[PathBuf]) -> Result<Option<(u64, String)>> {
    for file in files.iter().rev() {
        let data = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        for line in data.split(|&b| b == b'\n').rev() {
            if let Ok(Value::Object(r)) = serde_json::from_slice::<Value>(line)
                && let Some(seq) = r.get("seq").and_then(Value::as_u64)
            {
                return Ok(Some((seq, sha256_hex(line))));
            }
        }
    }
    Ok(None)
}

/// What the head file says: the last record's seq and hash.
fn read_head(path: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head_path(path)).ok()?;
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    Some((v.get("seq")?.as_u64()?, v.get("sha256")?.as_str()?.to_string()))
}

struct Tail {
    file: File,
    head: File,
    size: u64,
    seq: u64,
    hash: String,
}

/// The portal's appending end of the journal.
pub struct Journal {
    path: PathBuf,
    max_bytes: u64,
    tail: Mutex<Tail>,
    /// The last append failed: state-changing tools are refused until one succeeds.
    pub failed: std::sync::atomic::AtomicBool,
}

impl Journal {
    /// Opens (or creates) the journal at `path`, repairing a torn last line and noting records
    /// missing from the end since the head file was written.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        let all = files(path)?;
        let mut found = last_record(&all)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        let head = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(head_path(path))
            .map_err(|e| Error::io("open", head_path(path), e))?;
        let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let mut events = Vec::new();
        // A last line without its newline was being written when the portal died.
        if !data.is_empty() && !data.ends_with(b"\n") {
            let start = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let torn = &data[start..];
            file.write_all(b"\n").map_err(|e| Error::io("append", path, e))?;
            eprintln!(
                "portal: audit journal {}: the last line was torn ({} bytes): recorded, chain continues",
                path.display(),
                torn.len()
            );
            events.push(json!({"event": "torn", "bytes": torn.len(), "sha256": sha256_hex(torn)}));
        }
        if let (Some((head_seq, _)), Some((seq, _))) = (read_head(path), &found) {
            if head_seq > *seq {
                eprintln!(
                    "portal: audit journal {}: records {}..{} are missing from the end",
                    path.display(),
                    seq + 1,
                    head_seq
                );
                events.push(json!({"event": "missing", "from": seq + 1, "to": head_seq}));
            }
        } else if let (Some((head_seq, _)), None) = (read_head(path), &found) {
            events.push(json!({"event": "missing", "from": 1, "to": head_seq}));
            found = Some((0, GENESIS.to_string()));
        }
        let (seq, hash) = found.unwrap_or((0, GENESIS.to_string()));
        let size = file.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let journal = Journal {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(4096),
            tail: Mutex::new(Tail { file, head, size, seq, hash }),
            failed: Default::default(),
        };
        for event in events {
            let Value::Object(fields) = event else { continue };
            journal.append(fields, true)?;
        }
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (`seq`, `time` and `prev` added); with `sync`, on disk before it
    /// returns.
    pub fn append(&self, mut fields: Map<String, Value>, sync: bool) -> Result<()> {
        let mut tail = self.tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tail.size >= self.max_bytes {
            self.rotate(&mut tail)?;
        }
        let seq = tail.seq + 1;
        let mut record = Map::new();
        record.insert("seq".into(), json!(seq));
        record.insert("time".into(), json!(now()));
        record.append(&mut fields);
        record.insert("prev".into(), json!(tail.hash));
        let line = Value::Object(record).to_string();
        let hash = sha256_hex(line.as_bytes());
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        let io = |e| Error::io("append", &self.path, e);
        // One write of the whole line (O_APPEND): a crash leaves at most this line torn.
        tail.file.write_all(&bytes).map_err(io)?;
        if sync {
            tail.file.sync_data().map_err(io)?;
        }
        tail.size += bytes.len() as u64;
        tail.seq = seq;
        tail.hash = hash;
        // Fixed width, overwritten in place: one small write per record.
        let head = format!("{{\"seq\":{seq},\"sha256\":\"{}\"}}", tail.hash);
        let head = format!("{head:<120}\n");
        // Not synced: written after the record is on disk, the head can lag behind the journal
        // after a crash (which `--verify` accepts) but never run ahead of it, which is what
        // reveals records cut off the end. One fsync per record, not two.
        tail.head.write_all_at(head.as_bytes(), 0).map_err(io)?;
        Ok(())
    }

    fn rotate(&self, tail: &mut Tail) -> Result<()> {
        let mut old = self.path.as_os_str().to_owned();
        // Named by the next record's seq: the rotated files sort in order.
        old.push(format!(".{:012}", tail.seq + 1));
        let old = PathBuf::from(old);
        tail.file.sync_all().map_err(|e| Error::io("sync", &self.path, e))?;
        std::fs::rename(&self.path, &old).map_err(|e| Error::io("rotate", &self.path, e))?;
        tail.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))?;
        tail.size = 0;
        Ok(())
    }
}

/// show the audit journal of tool runs and refusals, or verify its hash chain
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "audit",
    example = "{command_name}\n    the last 20 tool runs and refusals in the portal's journal",
    example = "{command_name} -n 100 -j\n    the last 100 records as JSON",
    example = "{command_name} --verify\n    check that no record was edited, removed or reordered",
    note = "Records are JSON lines: seq, time, who (the token's name), peer, tool, argv, uploads (name, sha256), status (HTTP), code, killed, ms and prev (the SHA-256 of the previous record's line). --verify reads every file of the journal (PATH.<seq> rotated ones, then PATH) and checks the chain and the head file PATH.head. Exit 0 when intact, 1 naming the first record edited, removed, reordered or missing from the end, 2 on a usage error."
)]
pub struct Args {
    /// the journal (default $OCHO_AUDIT: the portal's own, the only one it may read when run
    /// through the portal)
    #[argh(option)]
    pub audit: Option<PathBuf>,
    /// records to show, newest last (default 20)
    #[argh(option, short = 'n', default = "20")]
    pub lines: usize,
    /// check the whole chain instead of showing records
    #[argh(switch)]
    pub verify: bool,
    /// print the records (or the verdict) as JSON
    #[argh(switch, short = 'j')]
    pub json: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    // Run for a client of the portal (confined to its request), the journal is the portal's
    // own ($OCHO_AUDIT, set by the portal): a path from the client would read the proxy's files.
    if let (Some(path), Some(_)) = (&args.audit, std::env::var_os(crate::confine::ENV)) {
        return Err(Error::Usage(format!(
            "journal {:?} refused: through the portal, audit reads only the portal's own journal",
            path.display().to_string()
        )));
    }
    let path = args
        .audit
        .clone()
        .or_else(|| std::env::var_os(VAR).filter(|v| !v.is_empty()).map(PathBuf::from))
        .ok_or_else(|| Error::Usage("no journal: give --audit PATH or set $OCHO_AUDIT".into()))?;
    let all = files(&path)?;
    if all.is_empty() {
        return Err(Error::Failed(format!("no audit journal at {}", path.display())));
    }
    if args.verify {
        let report = verify(&path, &all)?;
        if args.json {
            println!(
                "{}",
                json!({"ok": report.problem.is_none(), "records": report.records,
                "files": all.len(), "notes": report.notes, "problem": report.problem})
            );
        } else {
            for note in &report.notes {
                println!("note: {note}");
            }
            match &report.problem {
                None => println!(
                    "ok: {} record(s) in {} file(s), chain intact",
                    report.records,
                    all.len()
                ),
                Some(problem) => println!("BROKEN: {problem}"),
            }
        }
        return Ok(ExitCode::from(if report.problem.is_none() { 0 } else { 1 }));
    }
    let mut shown: Vec<Value> = Vec::new();
    for file in all.iter().rev() {
        let data = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        let mut these: Vec<Value> =
            data.split(|&b| b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect();
        these.append(&mut shown);
        shown = these;
        if shown.len() >= args.lines {
            break;
        }
    }
    let skip = shown.len().saturating_sub(args.lines);
    for record in &shown[skip..] {
        if args.json {
            println!("{record}");
        } else {
            println!("{}", describe(record));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One record as a line of text.
fn describe(r: &Value) -> String {
    let s = |k: &str| match r.get(k) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if let Some(event) = r.get("event").and_then(Value::as_str) {
        return format!("#{} {} portal: {event} {}", s("seq"), s("time"), r);
    }
    let argv: Vec<String> = r
        .get("argv")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|w| {
                    if w.is_empty()
                        || w.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c))
                    {
                        Value::from(w).to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "#{} {} {} {} {} {} code={} {}ms {}",
        s("seq"),
        s("time"),
        s("who"),
        s("peer"),
        s("status"),
        s("tool"),
        s("code"),
        s("ms"),
        argv.join(" ")
    )
}

/// What `--verify` found.
pub struct Report {
    pub records: u64,
    pub notes: Vec<String>,
    pub problem: Option<String>,
}

/// Checks the chain across `files` and against the head file.
pub fn verify(path: &Path, files: &[PathBuf]) -> Result<Report> {
    // Every line: (file, line number, bytes).
    let mut lines: Vec<(String, usize, Vec<u8>)> = Vec::new();
    for file in files {
        let data = std::fs::read(file).map_err(|e| Error::io("read", file, e))?;
        let name = file.display().to_string();
        let complete = data.ends_with(b"\n");
        let mut parts: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if complete || data.is_empty() {
            parts.pop();
        }
        for (i, l) in parts.into_iter().enumerate() {
            lines.push((name.clone(), i + 1, l.to_vec()));
        }
    }
    let parsed: Vec<Option<Map<String, Value>>> = lines
        .iter()
        .map(|(_, _, l)| match serde_json::from_slice(l) {
            Ok(Value::Object(m)) if m.get("seq").and_then(Value::as_u64).is_some() => Some(m),
            _ => None,
        })
        .collect();
    let all_seqs: std::collections::BTreeSet<u64> =
        parsed.iter().flatten().filter_map(|m| m.get("seq")?.as_u64()).collect();
    let mut report = Report { records: 0, notes: Vec::new(), problem: None };
    let mut last: Option<(u64, String, String)> = None; // seq, hash, where
    let fail = |report: &mut Report, why: String| {
        report.problem = Some(why);
    };
    let mut i = 0;
    while i < lines.len() {
        let (file, n, bytes) = &lines[i];
        let at = format!("{file}:{n}");
        let Some(record) = &parsed[i] else {
            // A torn line is fine when the next record is the portal's note of it.
            let next = parsed.get(i + 1).and_then(Option::as_ref);
            let noted = next.is_some_and(|r| {
                r.get("event").and_then(Value::as_str) == Some("torn")
                    && r.get("sha256").and_then(Value::as_str) == Some(&sha256_hex(bytes))
            });
            if noted {
                report.notes.push(format!(
                    "{at}: a write torn by a crash ({} bytes), noted by the portal at its restart",
                    bytes.len()
                ));
                i += 1;
                continue;
            }
            let what = if i + 1 == lines.len() {
                "is cut short (the journal was truncated there, or the portal is writing it)"
            } else {
                "is not a record (edited?)"
            };
            fail(&mut report, format!("{at} {what}"));
            return Ok(report);
        };
        let seq = record.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let prev = record.get("prev").and_then(Value::as_str).unwrap_or("");
        let hash = sha256_hex(bytes);
        match &last {
            None if seq == 1 && prev != GENESIS => {
                fail(&mut report, format!("record #1 at {at} was edited (prev is not the start)"));
                return Ok(report);
            }
            None if seq != 1 => report
                .notes
                .push(format!("the journal starts at record #{seq} ({at}): older files removed")),
            None => {}
            Some((lseq, lhash, lat)) => {
                if seq <= *lseq {
                    fail(&mut report, format!("record #{seq} at {at} is out of order (reordered)"));
                    return Ok(report);
                }
                if seq != lseq + 1 {
                    let moved = (lseq + 1..seq).find(|s| all_seqs.contains(s));
                    let why = match moved {
                        Some(s) => format!(
                            "record #{s} is out of order: #{seq} follows #{lseq} at {at} (reordered)"
                        ),
                        None if record.get("event").and_then(Value::as_str) == Some("missing") => {
                            format!(
                                "records #{}..#{} are gone (noticed by the portal at its restart, {at})",
                                lseq + 1,
                                seq - 1
                            )
                        }
                        None => {
                            format!("records #{}..#{} were removed before {at}", lseq + 1, seq - 1)
                        }
                    };
                    fail(&mut report, why);
                    return Ok(report);
                }
                if prev != lhash {
                    fail(
                        &mut report,
                        format!(
                            "record #{lseq} at {lat} was edited (its hash is not #{seq}'s prev)"
                        ),
                    );
                    return Ok(report);
                }
            }
        }
        if record.get("event").and_then(Value::as_str) == Some("missing") {
            let (from, to) = (record.get("from"), record.get("to"));
            fail(
                &mut report,
                format!(
                    "records #{}..#{} went missing from the end (noticed by the portal at its restart, {at})",
                    from.map_or("?".into(), Value::to_string),
                    to.map_or("?".into(), Value::to_string)
                ),
            );
            return Ok(report);
        }
        report.records += 1;
        last = Some((seq, hash, at));
        i += 1;
    }
    match (read_head(path), &last) {
        (Some((hseq, _)), Some((seq, _, _))) if hseq > *seq => fail(
            &mut report,
            format!("records #{}..#{hseq} were cut off the end (truncated)", seq + 1),
        ),
        (Some((hseq, hhash)), Some((seq, hash, at))) if hseq == *seq && hhash != *hash => {
            fail(&mut report, format!("record #{seq} at {at} (the last) was edited"))
        }
        (Some((hseq, _)), None) if hseq > 0 => {
            fail(&mut report, format!("records #1..#{hseq} were removed (the journal is empty)"))
        }
        _ => {}
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(journal: &Journal, tool: &str) {
        let Value::Object(m) = json!({"who": "t", "tool": tool}) else { unreachable!() };
        journal.append(m, false).unwrap();
    }

    #[test]
    fn rotation_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let journal = Journal::open(&path, 4096).unwrap();
        for i in 0..100 {
            record(&journal, &format!("tool-{i}"));
        }
        let all = files(&path).unwrap();
        assert!(all.len() > 2, "{all:?}");
        let report = verify(&path, &all).unwrap();
        assert_eq!((report.records, report.problem), (100, None));
        // Reopened, it goes on from #100.
        drop(journal);
        let journal = Journal::open(&path, 4096).unwrap();
        record(&journal, "again");
        let report = verify(&path, &files(&path).unwrap()).unwrap();
        assert_eq!((report.records, report.problem), (101, None));
        // The oldest file pruned: a note, not a failure.
        std::fs::remove_file(&all[0]).unwrap();
        let report = verify(&path, &files(&path).unwrap()).unwrap();
        assert!(report.problem.is_none() && !report.notes.is_empty());
    }
}
