//! Portal authentication. With credentials configured (`--token-file`, `$OCHO_TOKEN_FILE` or
//! `$OCHO_TOKEN`: one admin token named `default`; `--tokens-file`: named tokens by SHA-256 with a
//! role and a scope, see `access.rs`), every route but the kubelet's probes `/healthz` and
//! `/readyz` needs one of (signatures only for the `default` token, the one the portal knows):
//! - `Authorization: Bearer <token>`;
//! - `Authorization: Basic` whose password is the token (what a browser sends after its login
//!   prompt, for the web terminal);
//! - a signature `X-Signature: v2=<hex HMAC-SHA256>` with `X-Signature-Time: <unix seconds>` and
//!   `X-Signature-Nonce: <8 to 64 of [A-Za-z0-9_-]>`, over [`v2_message`]: the time, the nonce,
//!   the line and the SHA-256 of every uploaded file. Valid for [`WINDOW`] either side of the
//!   portal's clock, and each nonce once: a captured signature cannot be replayed, nor moved to
//!   another line or other files;
//! - only with `--legacy-signatures`: Ochothon's `X-Signature: sha1=<hex HMAC-SHA1 of the line>`,
//!   which covers neither time nor uploads and can be replayed for ever.
//!
//! Every comparison is constant-time (ring's HMAC verification). The token is never logged or
//! echoed. A request authenticates as a [`Who`] (name, role, scope). Either file is re-read
//! whenever it changes (a mounted Secret is updated in place),
//! and a file that cannot be read refuses every request (503) rather than opening the portal.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use ring::hmac;

use super::access::{Who, parse_tokens, unhex};
use crate::error::{Error, Result};

/// How far a v2 signature's time may be from the portal's clock, in seconds.
pub const WINDOW: u64 = 300;

/// Nonces remembered at once; past it, new signatures wait until old ones expire.
const MAX_NONCES: usize = 100_000;

/// The portal's secret.
pub struct Token {
    /// HMAC-SHA1 key for legacy `X-Signature: sha1=` (Ochothon compatibility).
    sha1: hmac::Key,
    /// HMAC-SHA256 key for `X-Signature: v2=`.
    sha256: hmac::Key,
    /// The token itself, only to build comparison tags.
    secret: Vec<u8>,
}

/// What a request's credentials amount to.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Verdict {
    Allowed,
    /// No credentials: 401.
    Missing,
    /// Wrong credentials: 403, with the reason (never the token).
    Refused(&'static str),
}

/// What a request presents.
#[derive(Default)]
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub time: Option<&'a str>,
    pub nonce: Option<&'a str>,
    /// The tool line, for signatures.
    pub line: Option<&'a str>,
    /// Uploaded files: name and hex SHA-256, for v2 signatures.
    pub uploads: &'a [(String, String)],
}

/// Message of the constant-time comparison tags.
const COMPARE: &[u8] = b"ocho portal token comparison";

/// What a v2 signature signs: `ocho-v2`, the time, the nonce, the line, then one
/// `<name> <hex sha256>` per uploaded file sorted by name, each followed by a newline.
pub fn v2_message(time: &str, nonce: &str, line: &str, uploads: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = uploads.iter().collect();
    sorted.sort();
    let mut message = format!("ocho-v2\n{time}\n{nonce}\n{line}\n");
    for (name, digest) in sorted {
        message.push_str(&format!("{name} {digest}\n"));
    }
    message
}

/// The secret an `Authorization` value carries: a Bearer token, or a Basic password (what a
/// browser sends for the web terminal); `None` for other schemes.
fn authorization_secret(value: &str) -> Option<Vec<u8>> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.trim().as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        basic_password(rest.trim())
    } else {
        None
    }
}

impl Token {
    /// A token from its text (surrounding whitespace, such as a file's final newline, dropped).
    pub fn new(text: &str) -> Result<Token> {
        let secret = text.trim().as_bytes().to_vec();
        if secret.is_empty() {
            return Err(Error::Usage("the portal token is empty".into()));
        }
        Ok(Token {
            sha1: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret),
            sha256: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            secret,
        })
    }

    /// Checks the credentials of one request. `now` is the portal's clock in Unix seconds.
    pub fn check(&self, p: &Presented, legacy: bool, nonces: &Nonces, now: u64) -> Verdict {
        if let Some(value) = p.authorization.map(str::trim).filter(|v| !v.is_empty()) {
            let given = authorization_secret(value);
            return match given {
                Some(given) if self.equals(&given) => Verdict::Allowed,
                _ => Verdict::Refused("credentials refused"),
            };
        }
        // Ochothon's CLI always sends the header, empty without a token: that is "missing".
        let Some(sig) = p.signature.map(str::trim).filter(|v| !v.is_empty()) else {
            return Verdict::Missing;
        };
        let Some(line) = p.line else { return Verdict::Refused("a signature needs a line") };
        if let Some(hex) = sig.strip_prefix("sha1=") {
            if !legacy {
                return Verdict::Refused(
                    "sha1 signatures are off (replayable): sign with v2, or start the portal with --legacy-signatures",
                );
            }
            return match unhex(hex) {
                Some(tag) if hmac::verify(&self.sha1, line.as_bytes(), &tag).is_ok() => {
                    Verdict::Allowed
                }
                _ => Verdict::Refused("credentials refused"),
            };
        }
        let Some(tag) = sig.strip_prefix("v2=").and_then(unhex) else {
            return Verdict::Refused("unknown signature scheme (v2=… expected)");
        };
        let (Some(time), Some(nonce)) = (p.time.map(str::trim), p.nonce.map(str::trim)) else {
            return Verdict::Refused("a v2 signature needs X-Signature-Time and X-Signature-Nonce");
        };
        let Ok(t) = time.parse::<u64>() else {
            return Verdict::Refused("X-Signature-Time is not Unix seconds");
        };
        if t.abs_diff(now) > WINDOW {
            return Verdict::Refused(
                "signature time outside the accepted window (check the clocks)",
            );
        }
        let nonce_ok = (8..=64).contains(&nonce.len())
            && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !nonce_ok {
            return Verdict::Refused("X-Signature-Nonce must be 8 to 64 of [A-Za-z0-9_-]");
        }
        let message = v2_message(time, nonce, line, p.uploads);
        if hmac::verify(&self.sha256, message.as_bytes(), &tag).is_err() {
            return Verdict::Refused("credentials refused");
        }
        // Recorded only once the signature is known good: forged ones cannot fill the table.
        nonces.first_use(nonce, now)
    }

    /// Constant-time equality with the token: compares HMAC tags keyed by each side, so the time
    /// taken does not depend on where the first differing byte is.
    fn equals(&self, given: &[u8]) -> bool {
        let mine = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let theirs = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, given), COMPARE);
        hmac::verify(&mine, COMPARE, theirs.as_ref()).is_ok()
    }
}

/// Nonces of accepted v2 signatures, each kept until its signature could no longer be valid.
#[derive(Default)]
pub struct Nonces {
    seen: Mutex<HashMap<String, u64>>,
}

impl Nonces {
    fn first_use(&self, nonce: &str, now: u64) -> Verdict {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, expires| *expires > now);
        }
        if seen.contains_key(nonce) {
            return Verdict::Refused("signature already used (replay)");
        }
        if seen.len() >= MAX_NONCES {
            return Verdict::Refused("too many signed requests in the window; retry later");
        }
        seen.insert(nonce.to_string(), now + 2 * WINDOW);
        Verdict::Allowed
    }
}

/// One credential: the token itself (every scheme, signatures included), or only its SHA-256
/// (a tokens-file entry: Bearer and Basic).
enum Secret {
    Plain(Box<Token>),
    Digest([u8; 32]),
}

/// Every credential in use, each with the identity it authenticates.
pub struct Table {
    entries: Vec<(Arc<Who>, Secret)>,
}

impl Table {
    /// The identity a request's credentials authenticate; `Err` with what is wrong.
    pub fn check(
        &self,
        p: &Presented,
        legacy: bool,
        nonces: &Nonces,
        now: u64,
    ) -> std::result::Result<Arc<Who>, Verdict> {
        if let Some(value) = p.authorization.map(str::trim).filter(|v| !v.is_empty()) {
            let given = authorization_secret(value);
            let Some(given) = given else { return Err(Verdict::Refused("credentials refused")) };
            let digest = ring::digest::digest(&ring::digest::SHA256, &given);
            // Every entry is compared (constant time each), whichever matches.
            let mut found = None;
            for (who, secret) in &self.entries {
                let hit = match secret {
                    Secret::Plain(token) => token.equals(&given),
                    Secret::Digest(d) => same_digest(d, digest.as_ref()),
                };
                if hit && found.is_none() {
                    found = Some(Arc::clone(who));
                }
            }
            return found.ok_or(Verdict::Refused("credentials refused"));
        }
        let plain = self.entries.iter().find_map(|(who, s)| match s {
            Secret::Plain(token) => Some((who, token)),
            Secret::Digest(_) => None,
        });
        let unsigned = Presented { authorization: None, ..*p };
        match plain {
            Some((who, token)) => match token.check(&unsigned, legacy, nonces, now) {
                Verdict::Allowed => Ok(Arc::clone(who)),
                other => Err(other),
            },
            None if p.signature.is_some_and(|s| !s.trim().is_empty()) => Err(Verdict::Refused(
                "signatures are checked only against --token-file; named tokens authenticate with Authorization: Bearer",
            )),
            None => Err(Verdict::Missing),
        }
    }

    /// The names in use, for the log.
    fn names(&self) -> String {
        self.entries.iter().map(|(w, _)| w.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// Constant-time equality of two SHA-256 digests (HMAC tags keyed by each, as in `equals`).
fn same_digest(mine: &[u8], theirs: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, mine);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, theirs), COMPARE);
    hmac::verify(&key, COMPARE, tag.as_ref()).is_ok()
}

/// Where the credentials come from, re-read when a file changes.
pub struct Keys {
    /// `--token-file`: one admin token named `default`.
    file: Option<PathBuf>,
    /// `--tokens-file`: named token digests with roles and scopes.
    tokens: Option<PathBuf>,
    /// `$OCHO_TOKEN` when there is no token file.
    env: Option<String>,
    loaded: Mutex<Loaded>,
}

type Stamp = Option<(u64, u64, u64, i64, i64)>;

/// The table as last read, and what the files looked like then.
struct Loaded {
    stamps: [Stamp; 2],
    table: std::result::Result<Option<Arc<Table>>, String>,
}

fn stamp(path: Option<&Path>) -> Stamp {
    let m = std::fs::metadata(path?).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

impl Keys {
    /// The token from `file` (else `$OCHO_TOKEN`) and the named tokens of `tokens`; none of
    /// them: an open portal. A file that cannot be read now is an error (the portal does not
    /// start).
    pub fn load(file: Option<&Path>, tokens: Option<&Path>) -> Result<Keys> {
        let env = match file {
            Some(_) => None,
            None => std::env::var("OCHO_TOKEN").ok().filter(|t| !t.trim().is_empty()),
        };
        let keys = Keys {
            file: file.map(Path::to_path_buf),
            tokens: tokens.map(Path::to_path_buf),
            env,
            loaded: Mutex::new(Loaded { stamps: [None, None], table: Ok(None) }),
        };
        let stamps = keys.stamps();
        let table = keys.read().map_err(Error::Usage)?;
        *keys.lock() = Loaded { stamps, table: Ok(table) };
        Ok(keys)
    }

    /// A fixed token (or none), for tests.
    #[cfg(test)]
    pub fn fixed(token: Option<&str>) -> Keys {
        let table = token.map(|t| {
            let token = Token::new(t).expect("a token");
            Arc::new(Table {
                entries: vec![(Arc::new(Who::default_admin()), Secret::Plain(Box::new(token)))],
            })
        });
        Keys {
            file: None,
            tokens: None,
            env: None,
            loaded: Mutex::new(Loaded { stamps: [None, None], table: Ok(table) }),
        }
    }

    fn stamps(&self) -> [Stamp; 2] {
        [stamp(self.file.as_deref()), stamp(self.tokens.as_deref())]
    }

    /// Reads every source into a table (`None`: no credentials at all).
    fn read(&self) -> std::result::Result<Option<Arc<Table>>, String> {
        let mut entries = Vec::new();
        let plain = match (&self.file, &self.env) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
                Some(Token::new(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            (None, Some(text)) => Some(Token::new(text).map_err(|e| e.to_string())?),
            (None, None) => None,
        };
        if let Some(token) = plain {
            entries.push((Arc::new(Who::default_admin()), Secret::Plain(Box::new(token))));
        }
        if let Some(path) = &self.tokens {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?;
            for (who, digest) in
                parse_tokens(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))?
            {
                if entries.iter().any(|(w, _)| w.name == who.name) {
                    return Err(format!(
                        "tokens file {}: the name {:?} is the --token-file's",
                        path.display(),
                        who.name
                    ));
                }
                entries.push((Arc::new(who), Secret::Digest(digest)));
            }
        }
        let configured = self.file.is_some() || self.tokens.is_some() || self.env.is_some();
        Ok(configured.then(|| Arc::new(Table { entries })))
    }

    /// No credentials configured at all.
    pub fn is_open(&self) -> bool {
        self.file.is_none() && self.tokens.is_none() && self.env.is_none()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The credentials now: a file is re-read if it changed since last time. `Err` when a file
    /// cannot be read or is invalid: every request is refused until it is fixed.
    pub fn current(&self) -> std::result::Result<Option<Arc<Table>>, String> {
        if self.file.is_none() && self.tokens.is_none() {
            return self.lock().table.clone();
        }
        let now = self.stamps();
        let mut loaded = self.lock();
        let missing = (self.file.is_some() && now[0].is_none())
            || (self.tokens.is_some() && now[1].is_none());
        if missing || now != loaded.stamps {
            let table = self.read();
            match (&table, &loaded.table) {
                (Err(why), Ok(_)) => eprintln!("portal: {why}"),
                (Ok(Some(t)), _) => eprintln!("portal: credentials read again: {}", t.names()),
                _ => {}
            }
            *loaded = Loaded { stamps: now, table };
        }
        loaded.table.clone()
    }

    /// Forgets what the files looked like, so the next request reads them again (SIGHUP).
    pub fn reload(&self) {
        self.lock().stamps = [None, None];
    }
}

/// The password of an HTTP Basic credential (the user name is ignored).
fn basic_password(encoded: &str) -> Option<Vec<u8>> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// `sha1=<hex>` signature of `line` with `token`, as Ochothon's CLI computes it.
#[cfg(test)]
pub fn sign(token: &str, line: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
    let tag = hmac::sign(&key, line.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha1={hex}")
}

/// `v2=<hex>` signature of a request.
#[cfg(test)]
pub fn sign_v2(
    token: &str,
    time: &str,
    nonce: &str,
    line: &str,
    uploads: &[(String, String)],
) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    let tag = hmac::sign(&key, v2_message(time, nonce, line, uploads).as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v2={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        token: &Token,
        authorization: Option<&str>,
        signature: Option<&str>,
        line: Option<&str>,
    ) -> Verdict {
        let p = Presented { authorization, signature, line, ..Presented::default() };
        token.check(&p, true, &Nonces::default(), 0)
    }

    #[test]
    fn ochothon_test_vectors_only_with_legacy_signatures() {
        assert_eq!(sign("secret", "ls"), "sha1=7db4d0b5fac10c9d90efe7cf277a57adc6d47ed1");
        assert_eq!(
            sign("my cool secret token", "deploy zookeeper.yml -p 3"),
            "sha1=2e31a7db9b02e528d62f7529f2607574923e42af"
        );
        let token = Token::new("my cool secret token\n").unwrap();
        let line = "deploy zookeeper.yml -p 3";
        let sig = "sha1=2e31a7db9b02e528d62f7529f2607574923e42af";
        assert_eq!(check(&token, None, Some(sig), Some(line)), Verdict::Allowed);
        let upper = sig.to_uppercase().replace("SHA1", "sha1");
        assert_eq!(check(&token, None, Some(&upper), Some(line)), Verdict::Allowed);
        let refused = |v| matches!(v, Verdict::Refused(_));
        assert!(refused(check(&token, None, Some(sig), Some("deploy zookeeper.yml -p 4"))));
        assert!(refused(check(&token, None, Some(sig), None)));
        assert!(refused(check(&token, None, Some("sha1=zz"), Some(line))));
        assert!(refused(check(&token, None, Some("md5=00"), Some(line))));
        // Off by default.
        let p = Presented { signature: Some(sig), line: Some(line), ..Presented::default() };
        assert!(refused(token.check(&p, false, &Nonces::default(), 0)));
    }

    #[test]
    fn v2_signatures_cover_time_nonce_line_and_uploads_and_cannot_be_replayed() {
        let token = Token::new("s3cret").unwrap();
        let nonces = Nonces::default();
        let files = vec![("web.yml".to_string(), "ab".repeat(32))];
        let now = 1_800_000_000;
        let t = now.to_string();
        let sig = sign_v2("s3cret", &t, "nonce-0001", "deploy web.yml", &files);
        let present =
            |sig: &str, t: &str, nonce: &str, line: &str, uploads: &[(String, String)]| {
                let p = Presented {
                    signature: Some(sig),
                    time: Some(t),
                    nonce: Some(nonce),
                    line: Some(line),
                    uploads,
                    ..Presented::default()
                };
                token.check(&p, false, &nonces, now)
            };
        let other_files = vec![("web.yml".to_string(), "cd".repeat(32))];
        assert!(matches!(
            present(&sig, &t, "nonce-0001", "deploy web.yml", &other_files),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            present(&sig, &t, "nonce-0001", "deploy web.yml -p 9", &files),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            present(&sig, &t, "nonce-0002", "deploy web.yml", &files),
            Verdict::Refused(_)
        ));
        assert_eq!(present(&sig, &t, "nonce-0001", "deploy web.yml", &files), Verdict::Allowed);
        assert_eq!(
            present(&sig, &t, "nonce-0001", "deploy web.yml", &files),
            Verdict::Refused("signature already used (replay)")
        );
        let old = (now - WINDOW - 1).to_string();
        let stale = sign_v2("s3cret", &old, "nonce-0003", "ls", &[]);
        assert!(matches!(present(&stale, &old, "nonce-0003", "ls", &[]), Verdict::Refused(_)));
        let bad = sign_v2("s3cret", &t, "x", "ls", &[]);
        assert!(matches!(present(&bad, &t, "x", "ls", &[]), Verdict::Refused(_)));
    }

    #[test]
    fn bearer_and_basic() {
        let token = Token::new("s3cret").unwrap();
        let refused = |v| matches!(v, Verdict::Refused(_));
        assert_eq!(check(&token, Some("Bearer s3cret"), None, None), Verdict::Allowed);
        assert_eq!(check(&token, Some("bearer  s3cret "), None, None), Verdict::Allowed);
        assert!(refused(check(&token, Some("Bearer s3cre"), None, None)));
        assert!(refused(check(&token, Some("Bearer s3cret2"), None, None)));
        assert!(refused(check(&token, Some("Token s3cret"), None, None)));
        // "anyone:s3cret" and "anyone:wrong"
        assert_eq!(check(&token, Some("Basic YW55b25lOnMzY3JldA=="), None, None), Verdict::Allowed);
        assert!(refused(check(&token, Some("Basic YW55b25lOndyb25n"), None, None)));
        assert!(refused(check(&token, Some("Basic !!"), None, None)));
        assert_eq!(check(&token, None, None, Some("ls")), Verdict::Missing);
        assert_eq!(check(&token, Some(""), Some(""), Some("ls")), Verdict::Missing);
        assert!(Token::new(" \n").is_err());
    }

    #[test]
    fn a_token_file_is_re_read_when_it_changes_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").unwrap();
        let keys = Keys::load(Some(&path), None).unwrap();
        assert!(!keys.is_open());
        let ok = |keys: &Keys, token: &str| {
            let bearer = format!("Bearer {token}");
            let p = Presented { authorization: Some(&bearer), ..Presented::default() };
            let table = keys.current().unwrap().unwrap();
            table.check(&p, false, &Nonces::default(), 0).is_ok()
        };
        assert!(ok(&keys, "one"));
        // Replaced the way the kubelet updates a Secret: a new file renamed over the old.
        std::fs::write(dir.path().join("new"), "two\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert!(ok(&keys, "two") && !ok(&keys, "one"));
        std::fs::remove_file(&path).unwrap();
        assert!(keys.current().is_err(), "a missing file refuses, never opens");
        std::fs::write(&path, "three").unwrap();
        assert!(ok(&keys, "three"));
    }
}
