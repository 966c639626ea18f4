//! `Status` error bodies with the codes, reasons and messages of a real API server
//! (docs/fake-kubernetes.md §5), plus the small helpers every part of the fake shares: time stamps
//! and random names.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// An API error: the HTTP status and the `Status` object sent as the body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

/// One entry of an Invalid (422) error's `details.causes`.
#[derive(Debug, Clone)]
pub struct Cause {
    pub field: String,
    pub reason: &'static str,
    /// The detail without the field, e.g. `Required value` or `Invalid value: "x": …`.
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Cause {
        Cause {
            field: field.into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Cause {
        Cause {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {detail}"),
        }
    }

    pub fn with(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Cause {
        Cause { field: field.into(), reason, message: message.into() }
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: &str, details: Option<Value>) -> ApiError {
        let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code});
        if let Some(details) = details {
            body["details"] = details;
        }
        ApiError { code, body }
    }

    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or("")
    }

    pub fn not_found(plural: &str, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            &format!("{plural} \"{name}\" not found"),
            Some(json!({"name": name, "kind": plural})),
        )
    }

    pub fn already_exists(plural: &str, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            &format!("{plural} \"{name}\" already exists"),
            Some(json!({"name": name, "kind": plural})),
        )
    }

    pub fn conflict(plural: &str, name: &str) -> ApiError {
        ApiError::conflict_with(
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_with(plural: &str, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            &format!("Operation cannot be fulfilled on {plural} \"{name}\": {why}"),
            Some(json!({"name": name, "kind": plural})),
        )
    }

    pub fn bad_request(message: &str) -> ApiError {
        ApiError::new(400, "BadRequest", message, None)
    }

    /// 422 with `details.kind` the Kind (not the plural), as the real server spells it.
    pub fn invalid(kind: &str, group: Option<&str>, name: &str, causes: Vec<Cause>) -> ApiError {
        let texts: Vec<String> =
            causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        let joined =
            if texts.len() == 1 { texts[0].clone() } else { format!("[{}]", texts.join(", ")) };
        let qualified = match group {
            Some(g) => format!("{kind}.{g}"),
            None => kind.to_string(),
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if let Some(g) = group {
            details["group"] = json!(g);
        }
        ApiError::new(
            422,
            "Invalid",
            &format!("{qualified} \"{name}\" is invalid: {joined}"),
            Some(details),
        )
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized", None)
    }

    pub fn path_not_found() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        )
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            None,
        )
    }

    pub fn namespace_not_found(ns: &str) -> ApiError {
        ApiError::not_found("namespaces", ns)
    }

    /// The error `fail_next` injects: the reason a real server pairs with that code.
    pub fn injected(code: u16) -> ApiError {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        ApiError::new(code, reason, &format!("injected failure ({code})"), None)
    }
}

/// Now, as a k8s `Time` (serialised with second precision).
pub fn now_time() -> Time {
    Time(Timestamp::now())
}

/// RFC 3339 with nanoseconds, the prefix of `pods/log?timestamps=true` lines.
pub fn nanos_stamp(ts: Timestamp) -> String {
    let secs = k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S", ts)
        .unwrap_or_else(|_| "1970-01-01T00:00:00".into());
    format!("{secs}.{:09}Z", ts.subsec_nanosecond())
}

/// A random 64-bit number (std's per-instance SipHash keys are random; no extra crate needed).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// A random UUID v4 string.
pub fn uuid_v4() -> String {
    let (a, b) = (random_u64(), random_u64());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// `generateName` completion: 5 characters from the apiserver's alphabet (no vowels).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random_u64();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}
