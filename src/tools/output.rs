//! Text and JSON rendering shared by the tools: the original's justified tables (every cell
//! padded to its column, trailing spaces included, two-space separators), the per-glob headers,
//! one-line JSON with Python's separators (`-j`), and the 4-space indented, ASCII-escaped JSON
//! that `info` prints. Object keys are always sorted.

use std::io::Write;

use serde_json::Value;

use super::Tally;

/// Writes the whole output at once; a closed stdout (`| head`) is not an error worth a panic.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A table: the header row, a separator row of `|` columns, then the rows. Every line ends with
/// `\n`; cells are left-justified to their column's widest cell, joined by `  |  `.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let padded: Vec<String> =
            cells.zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
        padded.join("  |  ") + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    out += &line(&mut header.iter().map(|_| ""));
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `\n<G> -> P% replies (T pods total) ->\n` (followed by an empty line when a table follows).
pub fn header(glob: &str, tally: &Tally) -> String {
    format!("\n<{glob}> -> {}% replies ({} pods total) ->\n", tally.percent(), tally.total)
}

/// `\n<G> -> no pods found\n`.
pub fn no_pods(glob: &str) -> String {
    format!("\n<{glob}> -> no pods found\n")
}

/// Appends the failure line of a tally to `out`, after one empty line.
pub fn failures(out: &mut String, tally: &Tally) {
    if let Some(line) = tally.failure_line() {
        if !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&line);
        out.push('\n');
    }
}

/// One line of JSON with Python's default separators (`, ` and `: `) and sorted keys.
pub fn one_line(value: &Value) -> String {
    let mut out = String::new();
    write_python(&sorted(value), &mut out);
    out
}

fn write_python(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_python(v, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// JSON indented by 4 spaces, keys sorted, non-ASCII escaped as `\uXXXX` (Python's
/// `json.dumps(indent=4)`), without a trailing newline.
pub fn pretty(value: &Value) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    serde::Serialize::serialize(&sorted(value), &mut ser)
        .expect("serialising a serde_json::Value into memory cannot fail");
    ascii(&String::from_utf8_lossy(&buf))
}

/// Escapes every non-ASCII character as `\uXXXX` (surrogate pairs above U+FFFF). In serialised
/// JSON such characters only occur inside strings, where the escape is equivalent.
fn ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// A copy of `value` whose objects have sorted keys, whatever map type serde_json uses.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(keys.into_iter().map(|k| (k.clone(), sorted(&map[k]))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_pad_every_column_including_the_last() {
        let rows = vec![
            vec!["default.zookeeper #0".into(), "10.244.1.30".into()],
            vec!["a #1".into(), "1.2.3.4".into()],
        ];
        assert_eq!(
            table(&["pod", "pod IP"], &rows),
            "pod                   |  pod IP     \n                      |             \n\
             default.zookeeper #0  |  10.244.1.30\na #1                  |  1.2.3.4    \n"
        );
    }

    #[test]
    fn one_line_json_uses_python_separators_and_sorted_keys() {
        let v = json!({"b": [1, 2], "a": {"y": "é", "x": null}});
        assert_eq!(one_line(&v), r#"{"a": {"x": null, "y": "é"}, "b": [1, 2]}"#);
    }

    #[test]
    fn pretty_json_is_indented_by_four_and_ascii() {
        let v = json!({"port": "8080", "ports": {"8080": 8080}, "node": "é😀"});
        assert_eq!(
            pretty(&v),
            "{\n    \"node\": \"\\u00e9\\ud83d\\ude00\",\n    \"port\": \"8080\",\n    \"ports\": {\n        \"8080\": 8080\n    }\n}"
        );
    }
}
