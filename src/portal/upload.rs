//! Saving a request's `multipart/form-data` file parts into its temporary directory, each under
//! its form field name (the original portal's convention, spec §2.1), with the names sanitised
//! (spec §10.8) and the total size capped. Parts without a file name (plain form fields) are
//! skipped. A refused name is never written; the caller removes the directory on any error.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::Path;

use rouille::Request;
use rouille::input::multipart::{MultipartError, get_multipart_input};

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
    #[error("the body is not multipart/form-data")]
    NotMultipart,
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

/// Saves every file part of `request` into `dir`; returns the saved names. `max` caps the sum
/// of the files' sizes.
pub fn save(request: &Request, dir: &Path, max: usize) -> Result<Vec<String>, UploadError> {
    let mut form = match get_multipart_input(request) {
        Ok(form) => form,
        Err(MultipartError::WrongContentType) => return Err(UploadError::NotMultipart),
        Err(MultipartError::BodyAlreadyExtracted) => return Ok(Vec::new()),
    };
    let mut names = BTreeSet::new();
    let mut saved = Vec::new();
    let mut total = 0usize;
    while let Some(mut field) = form.next() {
        if field.headers.filename.is_none() {
            continue;
        }
        let name = field.headers.name.to_string();
        if !valid_name(&name) {
            return Err(UploadError::BadName(name));
        }
        if !names.insert(name.clone()) {
            return Err(UploadError::Duplicate(name));
        }
        if names.len() > MAX_FILES {
            return Err(UploadError::TooMany);
        }
        let io_err = |source| UploadError::Io { name: name.clone(), source };
        // create_new: the directory is fresh, so an existing entry means something is wrong.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(&name))
            .map_err(io_err)?;
        let left = (max - total) as u64;
        let copied = io::copy(&mut (&mut field.data).take(left + 1), &mut file).map_err(io_err)?;
        if copied > left {
            return Err(UploadError::TooLarge(max));
        }
        total += copied as usize;
        saved.push(name);
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn saves_files_and_refuses_bad_names_duplicates_and_excess() {
        let dir = tempfile::tempdir().unwrap();
        let saved = save(&form(&[("a.yml", "hello"), ("b", "")]), dir.path(), 100).unwrap();
        assert_eq!(saved, ["a.yml", "b"]);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.yml")).unwrap(), "hello");

        let dir = tempfile::tempdir().unwrap();
        let err = save(&form(&[("../escape", "x")]), dir.path(), 100).unwrap_err();
        assert!(matches!(err, UploadError::BadName(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let err = save(&form(&[("a", "1"), ("a", "2")]), dir.path(), 100).unwrap_err();
        assert!(matches!(err, UploadError::Duplicate(_)), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let err = save(&form(&[("a", "12345"), ("b", "123456")]), dir.path(), 10).unwrap_err();
        assert!(matches!(err, UploadError::TooLarge(10)), "{err}");

        let names: Vec<String> = (0..=MAX_FILES).map(|i| format!("f{i}")).collect();
        let parts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        let dir = tempfile::tempdir().unwrap();
        let err = save(&form(&parts), dir.path(), 100).unwrap_err();
        assert!(matches!(err, UploadError::TooMany), "{err}");
    }
}
