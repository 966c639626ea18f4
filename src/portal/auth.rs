//! Portal authentication. With a token configured (`--token-file` or `OCHO_TOKEN`), every route
//! but the kubelet's probes `/healthz` and `/readyz` needs one of: `Authorization: Bearer <token>`; `Authorization: Basic` whose
//! password is the token (what a browser sends after its login prompt, for the web terminal);
//! or Ochothon's `X-Signature: sha1=<hex HMAC-SHA1 of the X-Shell line keyed with the token>`
//! (spec §9.1). Every comparison is constant-time (ring's HMAC verification). The token is never
//! logged or echoed.

use std::path::Path;

use base64::Engine;
use ring::hmac;

use crate::error::{Error, Result};

/// The portal's secret.
pub struct Token {
    /// HMAC-SHA1 key for `X-Signature` (Ochothon compatibility; SHA-1 is what the wire uses).
    sha1: hmac::Key,
    /// The token itself, only to build comparison tags.
    secret: Vec<u8>,
}

/// What a request's credentials amount to.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Verdict {
    Allowed,
    /// No credentials: 401.
    Missing,
    /// Wrong credentials: 403.
    Refused,
}

/// Message of the constant-time comparison tags.
const COMPARE: &[u8] = b"ocho portal token comparison";

impl Token {
    /// A token from its text (surrounding whitespace, such as a file's final newline, dropped).
    pub fn new(text: &str) -> Result<Token> {
        let secret = text.trim().as_bytes().to_vec();
        if secret.is_empty() {
            return Err(Error::Usage("the portal token is empty".into()));
        }
        Ok(Token { sha1: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret), secret })
    }

    /// The token from `--token-file` or else `$OCHO_TOKEN`; `None` runs an open portal.
    pub fn load(file: Option<&Path>) -> Result<Option<Token>> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| Error::io("read token file", path, source))?;
            return Token::new(&text).map(Some);
        }
        match std::env::var("OCHO_TOKEN") {
            Ok(text) if !text.trim().is_empty() => Token::new(&text).map(Some),
            _ => Ok(None),
        }
    }

    /// Checks the credentials of one request: its `Authorization` and `X-Signature` headers and,
    /// for signatures, the tool line they sign.
    pub fn check(
        &self,
        authorization: Option<&str>,
        signature: Option<&str>,
        line: Option<&str>,
    ) -> Verdict {
        if let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) {
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            let given = if scheme.eq_ignore_ascii_case("bearer") {
                Some(rest.trim().as_bytes().to_vec())
            } else if scheme.eq_ignore_ascii_case("basic") {
                basic_password(rest.trim())
            } else {
                None
            };
            return match given {
                Some(given) if self.equals(&given) => Verdict::Allowed,
                _ => Verdict::Refused,
            };
        }
        // Ochothon's CLI always sends the header, empty without a token: that is "missing".
        match signature.map(str::trim).filter(|v| !v.is_empty()) {
            None => Verdict::Missing,
            Some(sig) => {
                let tag = sig.strip_prefix("sha1=").and_then(unhex);
                match (tag, line) {
                    (Some(tag), Some(line))
                        if hmac::verify(&self.sha1, line.as_bytes(), &tag).is_ok() =>
                    {
                        Verdict::Allowed
                    }
                    _ => Verdict::Refused,
                }
            }
        }
    }

    /// Constant-time equality with the token: compares HMAC tags keyed by each side, so the time
    /// taken does not depend on where the first differing byte is.
    fn equals(&self, given: &[u8]) -> bool {
        let mine = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let theirs = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, given), COMPARE);
        hmac::verify(&mine, COMPARE, theirs.as_ref()).is_ok()
    }
}

/// The password of an HTTP Basic credential (the user name is ignored).
fn basic_password(encoded: &str) -> Option<Vec<u8>> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded[colon + 1..].to_vec())
}

/// Lower- or upper-case hex to bytes.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// `sha1=<hex>` signature of `line` with `token`, as Ochothon's CLI computes it.
#[cfg(test)]
pub fn sign(token: &str, line: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, token.as_bytes());
    let tag = hmac::sign(&key, line.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ochothon_test_vectors() {
        // Spec §9.1.
        assert_eq!(sign("secret", "ls"), "sha1=7db4d0b5fac10c9d90efe7cf277a57adc6d47ed1");
        assert_eq!(
            sign("my cool secret token", "deploy zookeeper.yml -p 3"),
            "sha1=2e31a7db9b02e528d62f7529f2607574923e42af"
        );
        let token = Token::new("my cool secret token\n").unwrap();
        let line = "deploy zookeeper.yml -p 3";
        let sig = "sha1=2e31a7db9b02e528d62f7529f2607574923e42af";
        assert_eq!(token.check(None, Some(sig), Some(line)), Verdict::Allowed);
        assert_eq!(
            token.check(None, Some(&sig.to_uppercase().replace("SHA1", "sha1")), Some(line)),
            Verdict::Allowed
        );
        assert_eq!(
            token.check(None, Some(sig), Some("deploy zookeeper.yml -p 4")),
            Verdict::Refused
        );
        assert_eq!(token.check(None, Some(sig), None), Verdict::Refused);
        assert_eq!(token.check(None, Some("sha1=zz"), Some(line)), Verdict::Refused);
        assert_eq!(token.check(None, Some("md5=00"), Some(line)), Verdict::Refused);
    }

    #[test]
    fn bearer_and_basic() {
        let token = Token::new("s3cret").unwrap();
        assert_eq!(token.check(Some("Bearer s3cret"), None, None), Verdict::Allowed);
        assert_eq!(token.check(Some("bearer  s3cret "), None, None), Verdict::Allowed);
        assert_eq!(token.check(Some("Bearer s3cre"), None, None), Verdict::Refused);
        assert_eq!(token.check(Some("Bearer s3cret2"), None, None), Verdict::Refused);
        assert_eq!(token.check(Some("Token s3cret"), None, None), Verdict::Refused);
        // "anyone:s3cret" and "anyone:wrong"
        assert_eq!(token.check(Some("Basic YW55b25lOnMzY3JldA=="), None, None), Verdict::Allowed);
        assert_eq!(token.check(Some("Basic YW55b25lOndyb25n"), None, None), Verdict::Refused);
        assert_eq!(token.check(Some("Basic !!"), None, None), Verdict::Refused);
        assert_eq!(token.check(None, None, Some("ls")), Verdict::Missing);
        assert_eq!(token.check(Some(""), Some(""), Some("ls")), Verdict::Missing);
        assert!(Token::new(" \n").is_err());
    }
}
