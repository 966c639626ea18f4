//! Checks ZooKeeper's data directory before each start, for what makes a standalone server
//! crash-loop or silently skip data, and repairs it conservatively:
//!
//! - a snapshot (`version-2/snapshot.<hex zxid>`) that ZooKeeper itself would call invalid (shorter
//!   than 10 bytes, not starting with `ZKSN`, or not ending with its `/` sentinel) is moved to
//!   quarantine. When no valid snapshot is left but logs are, ZooKeeper refuses to start ("No
//!   snapshot found, but there are log entries") unless told to trust the empty snapshot:
//!   [`Repair::trust_empty_snapshot`] says so, and whether the logs reach back to the first
//!   transaction (nothing lost) or not;
//! - a transaction log (`version-2/log.<hex zxid>`) shorter than its 16-byte header or without
//!   the `ZKLG` magic (a zero-length log makes ZooKeeper fail with `EOFException`) is moved to
//!   quarantine;
//! - a log whose records stop being readable before its end (a CRC mismatch or an unreasonable
//!   length make ZooKeeper fail; a partial record or non-zero bytes after the zero-filled
//!   preallocated tail are silently skipped by it) is copied to quarantine whole, then truncated
//!   in place after its last good record, so every acknowledged transaction before the damage
//!   is kept.
//!
//! The quarantine is `<data>/quarantine/<UTC time>/`, beside `version-2` on the same volume (a
//! move is a rename); `<data>/quarantine/damage.json` counts every repair so far.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One damaged file and what was done about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Path relative to the data directory (`version-2/log.1`).
    pub file: String,
    /// Why it is damaged.
    pub why: String,
    /// What was done: `moved to …` or `truncated to N bytes, original copied to …`.
    pub action: String,
    /// Data was lost or skipped (as opposed to a file that held nothing ZooKeeper could use).
    pub lost: bool,
}

/// Outcome of [`repair`].
#[derive(Debug, Default)]
pub struct Repair {
    pub findings: Vec<Finding>,
    /// No valid snapshot is left while logs are: start ZooKeeper with
    /// `zookeeper.snapshot.trust.empty=true` so it replays the logs from an empty tree.
    pub trust_empty_snapshot: bool,
    /// Where the damaged files went, when any did.
    pub quarantine: Option<PathBuf>,
}

impl Repair {
    pub fn lost(&self) -> bool {
        self.findings.iter().any(|f| f.lost)
    }
}

const LOG_MAGIC: &[u8; 4] = b"ZKLG";
const SNAP_MAGIC: &[u8; 4] = b"ZKSN";
const HEADER: u64 = 16;
/// ZooKeeper's default `jute.maxbuffer` (0xfffff) plus the slack it allows when reading.
const MAX_RECORD: i64 = 0xfffff + 1024;

/// `log.<hex>` or `snapshot.<hex>` (no compression suffix): the kind and the zxid.
fn parse_name(name: &str) -> Option<(&'static str, u64)> {
    let (kind, hex) = if let Some(hex) = name.strip_prefix("log.") {
        ("log", hex)
    } else {
        ("snapshot", name.strip_prefix("snapshot.")?)
    };
    let zxid = u64::from_str_radix(hex, 16).ok()?;
    Some((kind, zxid))
}

/// Why a snapshot is invalid, by ZooKeeper's own test (`Util.isValidSnapshot`), or None.
fn snapshot_damage(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Some("empty (0 bytes)".into()));
    }
    if len < 10 {
        return Ok(Some(format!("truncated ({len} bytes)")));
    }
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)?;
    if &magic != SNAP_MAGIC {
        return Ok(Some("not a snapshot (no ZKSN header)".into()));
    }
    file.seek(SeekFrom::End(-5))?;
    let mut tail = [0u8; 5];
    file.read_exact(&mut tail)?;
    if tail != [0, 0, 0, 1, b'/'] {
        return Ok(Some(format!("truncated ({len} bytes, no end-of-snapshot marker)")));
    }
    Ok(None)
}

/// How far a log's records are readable.
#[derive(Debug, PartialEq)]
enum LogState {
    /// Header damaged: the whole file is unusable.
    Unusable(String),
    /// Every record reads, then zeros (preallocation) or the end of the file.
    Clean,
    /// Records read up to `end` (a record boundary), then `why`.
    DamagedAfter { end: u64, records: u64, why: String, fatal: bool },
}

fn scan_log(path: &Path) -> std::io::Result<LogState> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(LogState::Unusable("empty (0 bytes)".into()));
    }
    if len < HEADER {
        return Ok(LogState::Unusable(format!("truncated header ({len} bytes)")));
    }
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER as usize];
    reader.read_exact(&mut header)?;
    if &header[..4] != LOG_MAGIC {
        return Ok(LogState::Unusable("not a transaction log (no ZKLG header)".into()));
    }
    let mut off = HEADER;
    let mut records = 0u64;
    let mut body = Vec::new();
    loop {
        if off == len {
            return Ok(LogState::Clean);
        }
        if len - off < 12 {
            let mut rest = Vec::new();
            reader.read_to_end(&mut rest)?;
            if rest.iter().all(|b| *b == 0) {
                return Ok(LogState::Clean);
            }
            let why = format!("partial record at offset {off} ({} bytes)", len - off);
            return Ok(LogState::DamagedAfter { end: off, records, why, fatal: false });
        }
        let mut head = [0u8; 12];
        reader.read_exact(&mut head)?;
        let crc = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
        let n = i32::from_be_bytes(head[8..].try_into().unwrap_or_default());
        if n == 0 {
            // The end of the records: the rest is the zero-filled preallocation, or data that
            // ZooKeeper will never read.
            let mut buf = vec![0u8; 1 << 20];
            let mut at = off + 12;
            if crc != 0 {
                let why = format!("unreadable record at offset {off} (length 0, checksum set)");
                return Ok(LogState::DamagedAfter { end: off, records, why, fatal: false });
            }
            loop {
                let got = reader.read(&mut buf)?;
                if got == 0 {
                    return Ok(LogState::Clean);
                }
                if let Some(i) = buf[..got].iter().position(|b| *b != 0) {
                    let why = format!(
                        "non-zero bytes at offset {} after the last readable record",
                        at + i as u64
                    );
                    return Ok(LogState::DamagedAfter { end: off, records, why, fatal: false });
                }
                at += got as u64;
            }
        }
        if !(1..=MAX_RECORD).contains(&i64::from(n)) {
            let why = format!("unreasonable record length {n} at offset {off}");
            return Ok(LogState::DamagedAfter { end: off, records, why, fatal: true });
        }
        let n = n as u64;
        if len - off - 12 < n + 1 {
            let why = format!("partial record at offset {off} ({} bytes)", len - off);
            return Ok(LogState::DamagedAfter { end: off, records, why, fatal: false });
        }
        body.resize(n as usize + 1, 0);
        reader.read_exact(&mut body)?;
        if u64::from(adler32(&body[..n as usize])) != crc {
            let why = format!("checksum mismatch in the record at offset {off}");
            return Ok(LogState::DamagedAfter { end: off, records, why, fatal: true });
        }
        if body[n as usize] != b'B' {
            let why = format!("partial record at offset {off} (no end-of-record marker)");
            return Ok(LogState::DamagedAfter { end: off, records, why, fatal: false });
        }
        off += 12 + n + 1;
        records += 1;
    }
}

/// Adler-32, the checksum of ZooKeeper's log records.
pub fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Checks `<data_dir>/version-2` and repairs what would make ZooKeeper crash-loop or skip data.
/// `stamp` names the quarantine subdirectory (a UTC time).
pub fn repair(data_dir: &Path, stamp: &str) -> Result<Repair> {
    let dir = data_dir.join("version-2");
    let mut repair = Repair::default();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(repair) };
    let mut logs = Vec::new();
    let mut snaps = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match parse_name(&name) {
            Some(("log", zxid)) => logs.push((zxid, name)),
            Some((_, zxid)) => snaps.push((zxid, name)),
            None => {}
        }
    }
    logs.sort();
    snaps.sort();
    let quarantine = data_dir.join("quarantine").join(stamp);
    let ensure = |q: &Path| {
        std::fs::create_dir_all(q).map_err(|source| Error::io("create quarantine", q, source))
    };
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::io(what, p, source)
    };

    let mut valid_snaps = 0;
    for (_, name) in &snaps {
        let path = dir.join(name);
        match snapshot_damage(&path).map_err(io("read snapshot", &path))? {
            None => valid_snaps += 1,
            Some(why) => {
                ensure(&quarantine)?;
                let to = quarantine.join(name);
                std::fs::rename(&path, &to).map_err(io("move to quarantine", &path))?;
                repair.findings.push(Finding {
                    file: format!("version-2/{name}"),
                    why,
                    action: format!("moved to {}", to.display()),
                    lost: false,
                });
            }
        }
    }
    let last_log = logs.last().map(|(zxid, _)| *zxid);
    let mut usable_logs = Vec::new();
    for (zxid, name) in &logs {
        let path = dir.join(name);
        match scan_log(&path).map_err(io("read transaction log", &path))? {
            LogState::Clean => usable_logs.push(*zxid),
            LogState::Unusable(why) => {
                ensure(&quarantine)?;
                let to = quarantine.join(name);
                std::fs::rename(&path, &to).map_err(io("move to quarantine", &path))?;
                // A trailing log that cannot even hold its header never held a transaction; an
                // earlier one leaves a gap before the next log.
                let lost = Some(*zxid) != last_log;
                repair.findings.push(Finding {
                    file: format!("version-2/{name}"),
                    why: if lost {
                        format!("{why}; the transactions it held are lost")
                    } else {
                        why
                    },
                    action: format!("moved to {}", to.display()),
                    lost,
                });
            }
            LogState::DamagedAfter { end, records, why, fatal } => {
                ensure(&quarantine)?;
                let to = quarantine.join(name);
                std::fs::copy(&path, &to).map_err(io("copy to quarantine", &path))?;
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io("open transaction log", &path))?;
                file.set_len(end).map_err(io("truncate transaction log", &path))?;
                file.sync_all().map_err(io("sync transaction log", &path))?;
                usable_logs.push(*zxid);
                let effect = if fatal {
                    "zookeeper would fail to start"
                } else {
                    "zookeeper would skip the rest"
                };
                repair.findings.push(Finding {
                    file: format!("version-2/{name}"),
                    why: format!("{why} ({effect}); the {records} records before it are kept"),
                    action: format!(
                        "truncated to {end} bytes, the whole original copied to {}",
                        to.display()
                    ),
                    lost: true,
                });
            }
        }
    }
    // Trust an empty snapshot only when init itself took the snapshots away (now or at an
    // earlier start, before ZooKeeper could write a new one): a directory whose snapshots
    // someone deleted stays ZooKeeper's own refusal.
    let took_snapshots = repair.findings.iter().any(|f| f.file.contains("/snapshot."))
        || data_dir.join("quarantine").is_dir();
    if valid_snaps == 0 && !usable_logs.is_empty() && took_snapshots {
        repair.trust_empty_snapshot = true;
        // Logs are named after their first zxid: replaying from an empty tree is complete only
        // when they reach back to the first transaction.
        let first = usable_logs[0];
        if first > 1 && !repair.findings.is_empty() {
            repair.findings.push(Finding {
                file: "version-2".into(),
                why: format!(
                    "no valid snapshot left and the oldest log starts at zxid {first:#x}: \
                     transactions before it are lost"
                ),
                action: "replaying the logs from an empty tree".into(),
                lost: true,
            });
        }
    }
    if !repair.findings.is_empty() {
        if let Some(parent) = quarantine.parent() {
            record(parent, &repair)?;
        }
        repair.quarantine = Some(quarantine);
    }
    Ok(repair)
}

/// The file counting every repair of `data_dir` so far (see [`repair`]).
pub fn damage_file(data_dir: &Path) -> PathBuf {
    data_dir.join("quarantine").join("damage.json")
}

/// Adds this repair to `<quarantine>/damage.json` (`{"repairs", "quarantined_files",
/// "data_lost", "last": [findings]}`), written through a temporary file and a rename.
fn record(dir: &Path, repair: &Repair) -> Result<()> {
    let path = dir.join("damage.json");
    let old: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    let count = |key: &str| old.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    let files = repair.findings.iter().filter(|f| f.file != "version-2").count() as u64;
    let lost = repair.findings.iter().filter(|f| f.lost).count() as u64;
    let last: Vec<_> = repair
        .findings
        .iter()
        .map(|f| serde_json::json!({"file": f.file, "why": f.why, "action": f.action, "lost": f.lost}))
        .collect();
    let doc = serde_json::json!({
        "repairs": count("repairs") + 1,
        "quarantined_files": count("quarantined_files") + files,
        "data_lost": count("data_lost") + lost,
        "last": last,
    });
    let tmp = dir.join(".damage.json.tmp");
    let mut f = File::create(&tmp).map_err(|source| Error::io("write", &tmp, source))?;
    f.write_all(format!("{doc}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|source| Error::io("write", &tmp, source))?;
    std::fs::rename(&tmp, &path).map_err(|source| Error::io("rename into place", &path, source))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_bytes(payload: &[u8]) -> Vec<u8> {
        let mut r = u64::from(adler32(payload)).to_be_bytes().to_vec();
        r.extend((payload.len() as i32).to_be_bytes());
        r.extend(payload);
        r.push(b'B');
        r
    }

    fn log(records: &[&[u8]], zeros: usize) -> Vec<u8> {
        let mut f = b"ZKLG".to_vec();
        f.extend(2i32.to_be_bytes());
        f.extend(0i64.to_be_bytes());
        for r in records {
            f.extend(record_bytes(r));
        }
        f.extend(vec![0u8; zeros]);
        f
    }

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
    }

    fn scan(bytes: &[u8]) -> LogState {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.1");
        std::fs::write(&p, bytes).unwrap();
        scan_log(&p).unwrap()
    }

    #[test]
    fn logs_are_judged_record_by_record() {
        assert_eq!(scan(&log(&[b"one", b"two"], 4096)), LogState::Clean);
        assert_eq!(scan(&log(&[b"one"], 0)), LogState::Clean);
        assert!(matches!(scan(b""), LogState::Unusable(w) if w.contains("empty")));
        assert!(matches!(scan(b"ZKLG\0\0"), LogState::Unusable(w) if w.contains("header")));
        let good = log(&[b"one", b"two"], 0);
        let end = good.len() as u64;
        let mut garbage = good.clone();
        garbage.extend([0x9c, 0x3f, 0x11, 0x00, 0xcd, 0x32, 0x7a, 0x0b, 0x80, 0x01, 0x02, 0x03]);
        assert!(matches!(scan(&garbage),
            LogState::DamagedAfter { end: e, records: 2, fatal: true, .. } if e == end));
        let mut partial = good.clone();
        partial.extend(&record_bytes(b"three")[..10]);
        assert!(matches!(scan(&partial),
            LogState::DamagedAfter { end: e, records: 2, fatal: false, .. } if e == end));
        let mut bad_crc = log(&[b"one"], 0);
        let at = bad_crc.len();
        bad_crc.extend(record_bytes(b"two"));
        bad_crc[at] ^= 1;
        assert!(matches!(scan(&bad_crc), LogState::DamagedAfter { records: 1, fatal: true, .. }));
        let mut after_zeros = log(&[b"one"], 1000);
        after_zeros.extend([7u8; 256]);
        assert!(matches!(scan(&after_zeros),
            LogState::DamagedAfter { records: 1, fatal: false, why, .. } if why.contains("non-zero")));
    }

    #[test]
    fn repair_quarantines_and_truncates_exactly_the_damaged_files() {
        let data = tempfile::tempdir().unwrap();
        let v2 = data.path().join("version-2");
        std::fs::create_dir(&v2).unwrap();
        let mut snap = b"ZKSN".to_vec();
        snap.extend([0u8; 20]);
        snap.extend([0, 0, 0, 1, b'/']);
        std::fs::write(v2.join("snapshot.0"), &snap).unwrap();
        std::fs::write(v2.join("snapshot.5"), b"").unwrap();
        let good = log(&[b"one", b"two"], 0);
        let mut damaged = good.clone();
        damaged.extend([0xffu8; 256]);
        std::fs::write(v2.join("log.1"), &damaged).unwrap();
        std::fs::write(v2.join("log.7"), b"").unwrap();
        std::fs::write(v2.join("acceptedEpoch"), b"").unwrap();
        let r = repair(data.path(), "T").unwrap();
        let files: Vec<_> = r.findings.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(files, ["version-2/snapshot.5", "version-2/log.1", "version-2/log.7"]);
        assert!(!r.trust_empty_snapshot);
        assert!(r.lost(), "the truncated log lost its tail");
        assert_eq!(std::fs::read(v2.join("log.1")).unwrap(), good);
        let q = data.path().join("quarantine/T");
        assert_eq!(std::fs::read(q.join("log.1")).unwrap(), damaged);
        assert!(q.join("snapshot.5").is_file() && q.join("log.7").is_file());
        assert!(!v2.join("snapshot.5").exists() && !v2.join("log.7").exists());
        assert!(v2.join("acceptedEpoch").exists() && v2.join("snapshot.0").exists());
        let doc: serde_json::Value = serde_json::from_slice(
            &std::fs::read(data.path().join("quarantine/damage.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(doc["quarantined_files"], 3);
        assert_eq!(doc["repairs"], 1);
        // Clean now: a second pass finds nothing.
        assert!(repair(data.path(), "U").unwrap().findings.is_empty());
    }

    #[test]
    fn without_a_valid_snapshot_the_logs_are_replayed_from_an_empty_tree() {
        let data = tempfile::tempdir().unwrap();
        let v2 = data.path().join("version-2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join("snapshot.0"), b"").unwrap();
        std::fs::write(v2.join("log.1"), log(&[b"one"], 100)).unwrap();
        let r = repair(data.path(), "T").unwrap();
        assert!(r.trust_empty_snapshot);
        assert!(!r.lost(), "the logs start at the first transaction: {:?}", r.findings);
    }
}
