//! Saving a request's `multipart/form-data` file parts into its temporary directory, each under
//! its form field name (the original portal's convention), with the names sanitised and the
//! total size capped. Parts without a file name (plain form fields) are skipped. The body is
//! parsed strictly: it must end with its closing boundary, and every part must have a readable
//! `Content-Disposition`; anything else refuses the whole upload, so a cut or mangled body never
//! runs a tool on part of its files. A refused name is never written; the caller removes the
//! directory on any error.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::Path;

use rouille::Request;

/// Why uploads were refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload name {0:?} refused: use a plain file name (no '/', no leading '.', no NUL)")]
    BadName(String),
    #[error("upload name {0:?} given twice")]
    Duplicate(String),
    #[error("uploads larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {MAX_FILES} uploaded files")]
    TooMany,
    #[error("the body is not multipart/form-data with a boundary")]
    NotMultipart,
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    #[error("cannot save upload {name:?}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// Longest accepted name, the usual file-system limit.
const MAX_NAME: usize = 255;

/// Most files one request may upload (empty files cost nothing against the size cap).
pub const MAX_FILES: usize = 1000;

/// True for a plain base name: not empty, not hidden, no `..` anywhere, no path separator, no
/// NUL or other control character, at most [`MAX_NAME`] bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && !name.contains("..")
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The body of a `multipart/form-data` request, read once (the server has it in memory).
pub fn body(request: &Request) -> Result<Vec<u8>, UploadError> {
    let mut body = Vec::new();
    if let Some(mut data) = request.data() {
        data.read_to_end(&mut body)
            .map_err(|source| UploadError::Io { name: String::new(), source })?;
    }
    Ok(body)
}

/// The parts of a body of type `content_type`.
pub fn parse_form<'a>(
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<Vec<Part<'a>>, UploadError> {
    let boundary = content_type.and_then(boundary).ok_or(UploadError::NotMultipart)?;
    parse(body, &boundary)
}

/// Each uploaded file's name and hex SHA-256 (what a v2 signature covers).
pub fn digests(parts: &[Part]) -> Vec<(String, String)> {
    parts
        .iter()
        .filter(|p| p.file)
        .map(|p| {
            let digest = ring::digest::digest(&ring::digest::SHA256, p.data);
            (p.name.clone(), digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect()
}

/// Saves every file part into `dir`; returns the saved names. `max` caps the sum of the files'
/// sizes. Every name is checked before anything is written.
pub fn save(parts: &[Part], dir: &Path, max: usize) -> Result<Vec<String>, UploadError> {
    let mut names = BTreeSet::new();
    let mut saved = Vec::new();
    let mut total = 0usize;
    for part in parts.iter().filter(|p| p.file) {
        let name = &part.name;
        if !valid_name(name) {
            return Err(UploadError::BadName(name.clone()));
        }
        if !names.insert(name.clone()) {
            return Err(UploadError::Duplicate(name.clone()));
        }
        if names.len() > MAX_FILES {
            return Err(UploadError::TooMany);
        }
        total += part.data.len();
        if total > max {
            return Err(UploadError::TooLarge(max));
        }
    }
    for part in parts.iter().filter(|p| p.file) {
        let io_err = |source| UploadError::Io { name: part.name.clone(), source };
        // create_new: the directory is fresh, so an existing entry means something is wrong.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&part.name))
            .map_err(io_err)?;
        file.write_all(part.data).map_err(io_err)?;
        saved.push(part.name.clone());
    }
    Ok(saved)
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| v.trim().trim_matches('"').to_string())
        })
        .filter(|b| !b.is_empty() && b.len() <= 70)
}

/// One part of a multipart body.
pub struct Part<'a> {
    name: String,
    /// It has a `filename` parameter: an uploaded file, not a plain field.
    file: bool,
    data: &'a [u8],
}

/// Most header lines in one part, and bytes in each.
const MAX_PART_HEADERS: usize = 16;
const MAX_PART_HEADER: usize = 8 * 1024;

/// Splits `body` into its parts (RFC 2046 §5.1.1, CRLF line ends), requiring the closing
/// delimiter. A preamble before the first delimiter and an epilogue after the last are ignored.
fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, UploadError> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let first = if body.starts_with(dash.as_bytes()) {
        0
    } else {
        find(body, delimiter.as_bytes()).ok_or(UploadError::Malformed("no boundary found"))? + 2
    };
    let mut at = first + dash.len();
    let mut parts = Vec::new();
    loop {
        // After a delimiter: "--" closes the body, else optional padding and CRLF.
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let pad = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        if !rest[pad..].starts_with(b"\r\n") {
            return Err(UploadError::Malformed("a boundary is not followed by a line end"));
        }
        at += pad + 2;
        let (name, file, data_at) = part_headers(body, at)?;
        let end = find(&body[data_at..], delimiter.as_bytes())
            .ok_or(UploadError::Malformed("the body ends without its closing boundary"))?;
        parts.push(Part { name, file, data: &body[data_at..data_at + end] });
        at = data_at + end + delimiter.len();
    }
}

/// Reads a part's header lines from `at`: its field name, whether it is a file, where its data
/// starts.
fn part_headers(body: &[u8], mut at: usize) -> Result<(String, bool, usize), UploadError> {
    let mut disposition = None;
    for _ in 0..=MAX_PART_HEADERS {
        let line_end = find(&body[at..], b"\r\n")
            .ok_or(UploadError::Malformed("the body ends in a part's headers"))?;
        if line_end > MAX_PART_HEADER {
            return Err(UploadError::Malformed("a part's header line is too long"));
        }
        let line = &body[at..at + line_end];
        at += line_end + 2;
        if line.is_empty() {
            let value =
                disposition.ok_or(UploadError::Malformed("a part has no Content-Disposition"))?;
            let (name, file) = disposition_params(value)?;
            return Ok((name, file, at));
        }
        let (key, value) = line
            .iter()
            .position(|&b| b == b':')
            .map(|i| (&line[..i], &line[i + 1..]))
            .ok_or(UploadError::Malformed("a part's header line has no ':'"))?;
        if key.eq_ignore_ascii_case(b"content-disposition") {
            disposition = Some(value);
        }
    }
    Err(UploadError::Malformed("a part has too many header lines"))
}

/// `form-data; name="…"; filename="…"`: the name, and whether a filename is given.
fn disposition_params(value: &[u8]) -> Result<(String, bool), UploadError> {
    let value = std::str::from_utf8(value)
        .map_err(|_| UploadError::Malformed("a part's name is not UTF-8"))?;
    let mut rest = value.trim_start();
    let kind_end = rest.find(';').unwrap_or(rest.len());
    if !rest[..kind_end].trim().eq_ignore_ascii_case("form-data") {
        return Err(UploadError::Malformed("a part is not form-data"));
    }
    rest = &rest[kind_end..];
    let (mut name, mut file) = (None, false);
    while let Some(after) = rest.strip_prefix(';') {
        let after = after.trim_start();
        let eq = after
            .find('=')
            .ok_or(UploadError::Malformed("a Content-Disposition parameter has no value"))?;
        let key = after[..eq].trim();
        let (val, next) = param_value(&after[eq + 1..])?;
        match key.to_ascii_lowercase().as_str() {
            "name" => name = Some(val),
            "filename" => file = true,
            _ => {}
        }
        rest = next.trim_start();
    }
    if !rest.is_empty() {
        return Err(UploadError::Malformed("a Content-Disposition header is malformed"));
    }
    let name = name.ok_or(UploadError::Malformed("a part has no name"))?;
    Ok((name, file))
}

/// A quoted string (backslash escapes) or a token, and what follows it.
fn param_value(text: &str) -> Result<(String, &str), UploadError> {
    let text = text.trim_start();
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(';').unwrap_or(text.len());
        return Ok((text[..end].trim_end().to_string(), &text[end..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &quoted[i + 1..])),
            '\\' => out.push(
                chars
                    .next()
                    .map(|(_, c)| c)
                    .ok_or(UploadError::Malformed("unterminated quoted name"))?,
            ),
            c => out.push(c),
        }
    }
    Err(UploadError::Malformed("unterminated quoted name"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and saves a request's uploads, as the portal does.
    fn save_request(request: &Request, dir: &Path, max: usize) -> Result<Vec<String>, UploadError> {
        let body = body(request)?;
        let parts = parse_form(request.header("Content-Type"), &body)?;
        save(&parts, dir, max)
    }

    fn form(parts: &[(&str, &str)]) -> Request {
        let mut body = String::new();
        for (name, data) in parts {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n\r\n{data}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        Request::fake_http(
            "POST",
            "/shell",
            vec![("Content-Type".into(), "multipart/form-data; boundary=XyZ".into())],
            body.into_bytes(),
        )
    }

    #[test]
    fn names_are_plain_base_names() {
        for good in ["a", "redis.yml", "a b", "x.y.z", "ü.yml"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in
            ["", ".", "..", ".hidden", "../x", "x..y", "a/b", "/etc/passwd", "a\0b", "a\nb", "a\\b"]
        {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(256)));
    }

    fn raw(body: &[u8]) -> Request {
        Request::fake_http(
            "POST",
            "/shell",
            vec![("Content-Type".into(), "multipart/form-data; boundary=\"XyZ\"".into())],
            body.to_vec(),
        )
    }

    #[test]
    fn a_cut_or_mangled_body_refuses_the_whole_upload() {
        let whole = b"--XyZ\r\nContent-Disposition: form-data; name=\"a.yml\"; filename=\"a\"\r\n\r\nreplicas: 3\r\n--XyZ--\r\n";
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(save_request(&raw(whole), dir.path(), 100).unwrap(), ["a.yml"]);
        for cut in [whole.len() - 9, whole.len() - 12, 60, 20, 3] {
            let dir = tempfile::tempdir().unwrap();
            let err = save_request(&raw(&whole[..cut]), dir.path(), 100).unwrap_err();
            assert!(matches!(err, UploadError::Malformed(_)), "cut at {cut}: {err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
        }
        for bad in [
            &b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n"[..],
            b"--XyZ\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"\xff\"; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n",
            b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n",
            b"no boundary at all",
        ] {
            let err = save_request(&raw(bad), tempfile::tempdir().unwrap().path(), 100).unwrap_err();
            assert!(matches!(err, UploadError::Malformed(_)), "{}: {err}", String::from_utf8_lossy(bad));
        }
        // Names that reach the checks are refused by name, never dropped.
        for name in ["a\\u{0}b", "a\nb", ""] {
            let body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n\r\nx\r\n--XyZ--\r\n").replace("\\u{0}", "\u{0}");
            let err = save_request(&raw(body.as_bytes()), tempfile::tempdir().unwrap().path(), 100)
                .unwrap_err();
            assert!(matches!(err, UploadError::BadName(_)), "{name:?}: {err}");
        }
        // Plain fields are skipped, a preamble and an epilogue ignored.
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"; filename=\"x\"\r\nContent-Type: text/plain\r\n\r\n\r\n--XyZ--\r\nepilogue";
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(save_request(&raw(body), dir.path(), 100).unwrap(), ["b"]);
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"");
    }

    #[test]
    fn saves_files_and_refuses_bad_names_duplicates_and_excess() {
        let dir = tempfile::tempdir().unwrap();
        let saved = save_request(&form(&[("a.yml", "hello"), ("b", "")]), dir.path(), 100).unwrap();
        assert_eq!(saved, ["a.yml", "b"]);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.yml")).unwrap(), "hello");

        let dir = tempfile::tempdir().unwrap();
        let err = save_request(&form(&[("../escape", "x")]), dir.path(), 100).unwrap_err();
        assert!(matches!(err, UploadError::BadName(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let err = save_request(&form(&[("a", "1"), ("a", "2")]), dir.path(), 100).unwrap_err();
        assert!(matches!(err, UploadError::Duplicate(_)), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let err =
            save_request(&form(&[("a", "12345"), ("b", "123456")]), dir.path(), 10).unwrap_err();
        assert!(matches!(err, UploadError::TooLarge(10)), "{err}");

        let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
        let parts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        let dir = tempfile::tempdir().unwrap();
        let err = save_request(&form(&parts), dir.path(), 100).unwrap_err();
        assert!(matches!(err, UploadError::TooMany), "{err}");
    }
}
