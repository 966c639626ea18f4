//! The one way tools read YAML from a file an argument names (container definitions, `-o`
//! overrides, `ping` payloads): [`from_str`]. Its errors never echo the file: serde_yaml's
//! messages embed the offending value (`invalid type: string "root:x:0:0:…"`), so they are
//! rewritten in plain words ("expected a mapping of definition keys, found a string"), with the
//! position, and at most a short escaped excerpt of a token ([`excerpt`]).

use serde::de::DeserializeOwned;

/// Longest excerpt of a token an error message shows, in characters.
pub const EXCERPT: usize = 40;

/// Why a YAML text was refused; the message holds no more of the text than a short excerpt.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

/// Parses `text` as `T`. `top` says in words what the document must be (e.g. "a mapping of
/// definition keys (cluster, image, …)"); it replaces the type name in a top-level mismatch.
pub fn from_str<T: DeserializeOwned>(text: &str, top: &str) -> Result<T, Invalid> {
    serde_yaml::from_str(text).map_err(|e| Invalid(describe(&e, text, top)))
}

/// `text` quoted, control characters escaped, cut to [`EXCERPT`] characters.
pub fn excerpt(text: &str) -> String {
    let mut cut: String = text.chars().take(EXCERPT).collect();
    let longer = text.chars().count() > EXCERPT;
    cut = format!("{cut:?}");
    if longer {
        cut.insert(cut.len() - 1, '…');
    }
    cut
}

/// serde_yaml's message for `err`, rewritten so that it cannot carry the input.
fn describe(err: &serde_yaml::Error, text: &str, top: &str) -> String {
    let mut message = err.to_string();
    // The location serde_yaml appends is put back at the end, in the same words.
    let position = match err.location() {
        Some(at) => {
            let suffix = format!(" at line {} column {}", at.line(), at.column());
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
            suffix
        }
        // Whole-document mismatches carry no location: say where the document starts.
        None => match text.lines().position(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#') && l != "---"
        }) {
            Some(n) if !message.contains(": ") || message.starts_with("invalid ") => {
                format!(" at line {}", n + 1)
            }
            _ => String::new(),
        },
    };
    // `path.to.field: ` prefix, when the error is inside the document.
    let (path, rest) = match split_path(&message) {
        Some((path, rest)) => (Some(path.to_string()), rest.to_string()),
        None => (None, message.clone()),
    };
    let body = match mismatch(&rest) {
        Some((found, expected)) => {
            let expected = match (path.is_some(), expected) {
                (false, e) if e.starts_with("struct ") || e == "a map" => top.to_string(),
                (_, e) => plain_expected(e),
            };
            format!("expected {expected}, found {}", plain_found(found, path.is_some()))
        }
        None => cap_quoted(&rest),
    };
    match path {
        Some(path) => format!("{}: {body}{position}", cap_quoted(&path)),
        None => format!("{body}{position}"),
    }
}

/// Splits `a.b[1]: message` into the path and the message; `None` when the message starts with
/// no path (paths hold no spaces, messages do).
fn split_path(message: &str) -> Option<(&str, &str)> {
    let (path, rest) = message.split_once(": ")?;
    let known =
        ["invalid type", "invalid value", "invalid length", "unknown field", "missing field"];
    if path.contains(' ') || known.contains(&path) || path.contains('`') {
        return None;
    }
    Some((path, rest))
}

/// `invalid type: <found>, expected <expected>` (also `invalid value`).
fn mismatch(message: &str) -> Option<(&str, &str)> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    rest.rsplit_once(", expected ")
}

/// What was found, in words; a string's content only inside the document and when short.
fn plain_found(found: &str, nested: bool) -> String {
    if let Some(quoted) = found.strip_prefix("string ") {
        let content = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
        return match content {
            Some(c) if nested && c.chars().count() <= EXCERPT && !c.contains('\\') => {
                format!("the string {quoted}")
            }
            _ => "a string".into(),
        };
    }
    let kind = found.split(" `").next().unwrap_or(found);
    let words = match kind {
        "integer" => "an integer",
        "floating point" => "a floating point number",
        "boolean" => "a boolean",
        "sequence" => "a sequence",
        "map" => "a mapping",
        "unit value" => "null",
        "char" => "a character",
        _ => return cap_quoted(found),
    };
    // Numbers and booleans are short tokens: show them, capped.
    match found.split_once(" `") {
        Some((_, token)) => format!("{words} {}", cap_token(token.trim_end_matches('`'))),
        None => words.to_string(),
    }
}

/// Rust and serde type names in words.
fn plain_expected(expected: &str) -> String {
    let integer = ["i8", "i16", "i32", "i64", "i128", "u8", "u16", "u32", "u64", "u128"];
    if integer.contains(&expected) || expected == "isize" || expected == "usize" {
        "an integer".into()
    } else if expected == "a map" || expected.starts_with("struct ") {
        "a mapping".into()
    } else if expected == "f32" || expected == "f64" {
        "a number".into()
    } else {
        cap_quoted(expected)
    }
}

fn cap_token(token: &str) -> String {
    let cut: String = token.chars().take(EXCERPT).filter(|c| !c.is_control()).collect();
    if token.chars().count() > EXCERPT { format!("`{cut}…`") } else { format!("`{cut}`") }
}

/// Every `` `…` `` and `"…"` span of `message` cut to [`EXCERPT`] characters, control characters
/// dropped: the spans are tokens of the input (a key, a value).
fn cap_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '`' && c != '"' {
            if !c.is_control() {
                out.push(c);
            }
            continue;
        }
        let mut span = String::new();
        let mut escaped = false;
        let mut closed = false;
        for d in chars.by_ref() {
            if d == c && !escaped {
                closed = true;
                break;
            }
            escaped = c == '"' && d == '\\' && !escaped;
            span.push(d);
        }
        let count = span.chars().count();
        let cut: String = span.chars().take(EXCERPT).filter(|c| !c.is_control()).collect();
        out.push(c);
        out.push_str(&cut);
        if count > EXCERPT || !closed {
            out.push('…');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        #[serde(default)]
        count: Option<i64>,
        #[serde(default)]
        on: Option<bool>,
    }

    fn err(text: &str) -> String {
        from_str::<Shape>(text, "a mapping of shape keys").unwrap_err().to_string()
    }

    #[test]
    fn a_file_that_is_not_a_mapping_is_described_without_its_content() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/bin/sh\n";
        let e = err(passwd);
        assert_eq!(e, "expected a mapping of shape keys, found a string at line 1 column 1");
        let e = err("# a comment\n\n- a\n- b\n");
        assert_eq!(e, "expected a mapping of shape keys, found a sequence at line 3 column 1");
    }

    #[test]
    fn values_inside_the_document_are_named_by_kind_and_short_tokens_only() {
        assert_eq!(
            err("name: a\ncount: \"three\"\n"),
            "count: expected an integer, found the string \"three\" at line 2 column 8"
        );
        let long = "x".repeat(200);
        let e = err(&format!("name: a\ncount: \"{long}\"\n"));
        assert_eq!(e, "count: expected an integer, found a string at line 2 column 8");
        assert_eq!(
            err("name: a\non: 12\n"),
            "on: expected a boolean, found an integer `12` at line 2 column 5"
        );
        assert_eq!(
            err("name: [a]\n"),
            "name: expected a string, found a sequence at line 1 column 7"
        );
    }

    #[test]
    fn keys_are_capped_and_escaped() {
        let key = format!("secret{}", "k".repeat(100));
        let e = err(&format!("name: a\n{key}: 1\n"));
        assert!(e.starts_with("unknown field `secretkkkk"), "{e}");
        assert!(!e.contains(&key) && e.contains("…`"), "{e}");
        assert!(e.ends_with("at line 2 column 1"), "{e}");
        let e = err("name: a\n\"bell\\u0007key\": 1\n");
        assert!(!e.contains('\u{7}'), "{e:?}");
    }

    #[test]
    fn excerpts_are_quoted_escaped_and_short() {
        assert_eq!(excerpt("ab\ncd"), "\"ab\\ncd\"");
        let long = excerpt(&"y".repeat(100));
        assert_eq!(long.chars().count(), EXCERPT + 3, "{long}");
        assert!(long.ends_with("…\""));
    }
}
