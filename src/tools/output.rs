//! Text and JSON rendering shared by the tools: the original's justified tables (every cell
//! padded to its column, trailing spaces included, two-space separators), the per-glob headers,
//! one-line JSON with Python's separators (`-j`), and the 4-space indented, ASCII-escaped JSON
//! that `info` prints. Object keys are always sorted.
//!
//! The format of a run (`-o json|yaml|wide|name`, `-j` = `-o json`) is chosen once, when the
//! tool parses its options ([`choose`]); tools then build one JSON value for every structured
//! format and hand it to [`structured`], which renders it as the run asked.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde_json::Value;

use super::Tally;
use crate::error::{Error, Result};

/// What a tool prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The original Ochonetes text layout (the default).
    Text,
    /// The text layout with the extra columns of the tools that have some (`ls`, `grep`); the
    /// plain text for the others, as kubectl does.
    Wide,
    /// JSON: indented by 2 on a terminal (the operator's, through the portal), one line
    /// otherwise (`-j`).
    Json,
    Yaml,
    /// The names of what is listed, one per line: the keys of the JSON object.
    Name,
}

impl Format {
    /// `-j` and `-o` together: `-o` names the format, `-j` is `-o json`.
    pub fn parse(json: bool, output: Option<&str>) -> Result<Format> {
        let named = match output.map(str::trim) {
            None => None,
            Some("json") => Some(Format::Json),
            Some("yaml") => Some(Format::Yaml),
            Some("wide") => Some(Format::Wide),
            Some("name") => Some(Format::Name),
            Some(other) => {
                let hint = if other.ends_with(".yml") || other.ends_with(".yaml") {
                    " (deploy's overrides file is -O/--overrides)"
                } else {
                    ""
                };
                return Err(Error::Usage(format!(
                    "-o takes json, yaml, wide or name, not {other:?}{hint}"
                )));
            }
        };
        match (json, named) {
            (true, Some(f)) if f != Format::Json => {
                Err(Error::Usage("-j is -o json: give one format, not both".into()))
            }
            (true, _) => Ok(Format::Json),
            (false, f) => Ok(f.unwrap_or(Format::Text)),
        }
    }

    /// Whether the tool builds its JSON value (json, yaml, name) rather than its text.
    pub fn structured(self) -> bool {
        matches!(self, Format::Json | Format::Yaml | Format::Name)
    }
}

static FORMAT: OnceLock<Format> = OnceLock::new();

/// Parses `-j`/`-o` and makes the result the format of this run (a run is one process and one
/// tool; the first choice stands).
pub fn choose(json: bool, output: Option<&str>) -> Result<Format> {
    let format = Format::parse(json, output)?;
    Ok(*FORMAT.get_or_init(|| format))
}

/// The format of this run: text until a tool chose one.
pub fn format() -> Format {
    FORMAT.get().copied().unwrap_or(Format::Text)
}

/// Whether this run asked for `-o wide`.
pub fn wide() -> bool {
    format() == Format::Wide
}

/// Set by the portal for a client that reads on a terminal (`ocho cli` sends `X-Terminal: 1`):
/// the tool's own stdout is a pipe then.
pub const TERMINAL: &str = "OCHO_TERMINAL";

/// A tool's structured result rendered in this run's format, ending with a newline.
pub fn structured(value: &Value) -> String {
    let terminal =
        std::io::stdout().is_terminal() || std::env::var_os(TERMINAL).is_some_and(|v| v == "1");
    render(format(), terminal, value)
}

/// One record of a stream (`log -f`): JSON lines stay one line each, YAML records are
/// separate documents.
pub fn record(value: &Value) -> String {
    match format() {
        Format::Yaml => format!("---\n{}", yaml(value)),
        _ => one_line(value) + "\n",
    }
}

fn render(format: Format, terminal: bool, value: &Value) -> String {
    match format {
        Format::Yaml => yaml(value),
        Format::Name => names(value),
        Format::Json if terminal => indented(value) + "\n",
        _ => one_line(value) + "\n",
    }
}

fn yaml(value: &Value) -> String {
    // A serde_json::Value always serialises; an error here would be a serde_yaml bug.
    serde_yaml::to_string(&sorted(value)).unwrap_or_else(|e| format!("# YAML rendering: {e}\n"))
}

/// The keys of an object; for a list, each element's `metadata.name` (Kubernetes objects) or
/// `name`, else the element itself on one line.
fn names(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                out += key;
                out.push('\n');
            }
        }
        Value::Array(items) => {
            for item in items {
                let name = item
                    .pointer("/metadata/name")
                    .or_else(|| item.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| one_line(item));
                out += &name;
                out.push('\n');
            }
        }
        scalar => {
            out += &one_line(scalar);
            out.push('\n');
        }
    }
    out
}

/// JSON indented by 2 spaces, keys sorted (what `-o json` prints on a terminal).
fn indented(value: &Value) -> String {
    serde_json::to_string_pretty(&sorted(value)).unwrap_or_else(|_| one_line(value))
}

/// `ok` of `total` as a whole percentage, rounded down (0 of 0 is 0%).
pub fn percent(ok: usize, total: usize) -> usize {
    (ok * 100).checked_div(total).unwrap_or(0)
}

/// Writes the whole output at once; a closed stdout (`| head`) is not an error worth a panic.
/// The original's layouts start with an empty line; a tool's output does not.
pub fn emit(text: &str) {
    let text = text.trim_start_matches('\n');
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
    let (percent, total) = (tally.percent(), tally.total);
    format!("\n<{glob}> -> {percent}% replies ({total} {} total) ->\n", super::pods(total))
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
    fn formats_from_dash_j_and_dash_o() {
        assert_eq!(Format::parse(false, None).unwrap(), Format::Text);
        assert_eq!(Format::parse(true, None).unwrap(), Format::Json);
        assert_eq!(Format::parse(true, Some("json")).unwrap(), Format::Json);
        for (word, format) in
            [("yaml", Format::Yaml), ("wide", Format::Wide), ("name", Format::Name)]
        {
            assert_eq!(Format::parse(false, Some(word)).unwrap(), format);
        }
        let both = Format::parse(true, Some("yaml")).unwrap_err().to_string();
        assert!(both.contains("-j is -o json"), "{both}");
        let file = Format::parse(false, Some("over.yml")).unwrap_err().to_string();
        assert!(
            file.contains("json, yaml, wide or name") && file.contains("-O/--overrides"),
            "{file}"
        );
        assert!(!Format::parse(false, Some("xml")).unwrap_err().to_string().contains("-O"));
    }

    #[test]
    fn structured_values_render_in_each_format() {
        let v = json!({"b.web": {"total": 2, "leader": null}, "a.db": {"total": 1, "leader": "a.db #0"}});
        assert_eq!(
            render(Format::Json, false, &v),
            "{\"a.db\": {\"leader\": \"a.db #0\", \"total\": 1}, \"b.web\": {\"leader\": null, \"total\": 2}}\n"
        );
        let pretty = render(Format::Json, true, &v);
        assert!(pretty.starts_with("{\n  \"a.db\": {\n    \"leader\""), "{pretty}");
        assert_eq!(serde_json::from_str::<Value>(&pretty).unwrap(), v);
        let yaml = render(Format::Yaml, false, &v);
        assert_eq!(
            yaml,
            "a.db:\n  leader: 'a.db #0'\n  total: 1\nb.web:\n  leader: null\n  total: 2\n"
        );
        assert_eq!(serde_yaml::from_str::<Value>(&yaml).unwrap(), v);
        assert_eq!(render(Format::Name, false, &v), "a.db\nb.web\n");
        let list = json!([{"metadata": {"name": "rc-1"}}, {"name": "x"}, 3]);
        assert_eq!(render(Format::Name, false, &list), "rc-1\nx\n3\n");
    }

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
