//! The one way tools read YAML from a file an argument names (container definitions, `-o`
//! overrides, `ping` payloads): [`from_str`]. Its errors never echo the file: serde_yaml's
//! messages embed the offending value (`invalid type: string "root:x:0:0:…"`), so they are
//! rewritten in plain words ("expected a mapping of definition keys, found a string"), with the
//! position, and at most a short escaped excerpt of a token ([`excerpt`]).
//!
//! Before parsing, a linear pre-scan ([`check_depth`]) refuses text nested deeper than
//! [`MAX_DEPTH`]: serde_yaml's scanner is quadratic in the nesting depth (`{x: [[[…]]]}` at 256 KiB
//! took minutes), and no real definition or payload comes close to the limit. The same scan
//! counts flow collections ([`MAX_FLOW_COLLECTIONS`], checked by [`from_str`]): each costs serde_yaml
//! time that grows with the flow depth, so the count bounds the parse of anything under the size
//! cap.

use serde::de::DeserializeOwned;

/// Longest excerpt of a token an error message shows, in characters.
pub const EXCERPT: usize = 40;

/// Why a YAML text was refused; the message holds no more of the text than a short excerpt.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

/// Deepest nesting accepted: flow collections (`[`, `{`) plus block collections (indentation
/// levels and compact `- - -` sequences). Real definitions nest a handful of levels.
pub const MAX_DEPTH: usize = 64;

/// Parses `text` as `T` once [`check_depth`] passed. `top` says in words what the document must be (e.g. "a mapping of
/// definition keys (cluster, image, …)"); it replaces the type name in a top-level mismatch.
pub fn from_str<T: DeserializeOwned>(text: &str, top: &str) -> Result<T, Invalid> {
    check(text, MAX_FLOW_COLLECTIONS)?;
    serde_yaml::from_str(text).map_err(|e| Invalid(describe(&e, text, top)))
}

/// Refuses `text` when it nests deeper than [`MAX_DEPTH`], naming the line; linear in the
/// length of `text` whatever it holds. Over-estimates rather than under-estimates: brackets in
/// plain scalars of block context, in quoted scalars, block scalars and comments do not count.
pub fn check_depth(text: &str) -> Result<(), Invalid> {
    check(text, usize::MAX)
}

/// One pre-scan for both limits: the depth, and more than `max_collections` flow collections.
fn check(text: &str, max_collections: usize) -> Result<(), Invalid> {
    let seen = nesting(text, MAX_DEPTH, max_collections);
    if seen.depth > MAX_DEPTH {
        return Err(Invalid(format!(
            "nested deeper than {MAX_DEPTH} levels at line {} (the limit of YAML read by the \
             tools; flatten the document)",
            seen.line
        )));
    }
    if let Some(line) = seen.too_many_at {
        return Err(Invalid(format!(
            "more than {max_collections} flow collections ([…] or {{…}}) by line {line} (the \
             limit of YAML read by the tools; use block style or JSON)"
        )));
    }
    Ok(())
}

/// Most flow collections (`[…]`, `{…}`) in YAML given to serde_yaml: its scanner spends on
/// each one time that grows with the flow depth, so 256 KiB of brackets 64 deep took 200 ms or
/// more, while a 256 KiB definition of ordinary settings holds about 4,600. JSON (all flow) is
/// read by serde_json, which this limit does not concern.
pub const MAX_FLOW_COLLECTIONS: usize = 16_384;

/// The deepest nesting found (stopping once it passes `stop_above`) and its line (1-based);
/// the line where the flow collections passed the count asked for (the scan stops there).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Nesting {
    depth: usize,
    line: usize,
    too_many_at: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Seq,
    Map,
}

/// The flow collections open at a point of the scan. Depths are relative to the block level.
#[derive(Default)]
struct Flows {
    levels: Vec<FlowLevel>,
    /// Sequences whose current entry is a single-pair mapping (`[a: b]` is `[{a: b}]`).
    paired: usize,
}

struct FlowLevel {
    /// A sequence (else a mapping).
    seq: bool,
    /// The current entry of this sequence is a single-pair mapping.
    pair: bool,
    /// Deepest depth reached within the current entry, and within the whole collection.
    entry: usize,
    total: usize,
}

impl Flows {
    fn open(&self) -> usize {
        self.levels.len()
    }

    fn depth(&self) -> usize {
        self.levels.len() + self.paired
    }

    /// `[` or `{`: returns the new depth.
    fn push(&mut self, seq: bool) -> usize {
        let depth = self.depth() + 1;
        self.levels.push(FlowLevel { seq, pair: false, entry: depth, total: depth });
        depth
    }

    /// `]` or `}`: the deepest depth the closed collection reached.
    fn pop(&mut self) -> Option<usize> {
        let level = self.levels.pop()?;
        if level.pair {
            self.paired -= 1;
        }
        if let Some(parent) = self.levels.last_mut() {
            parent.entry = parent.entry.max(level.total);
            parent.total = parent.total.max(level.total);
        }
        Some(level.total)
    }

    /// `,`: the next entry starts.
    fn next_entry(&mut self) {
        let depth = self.depth();
        if let Some(top) = self.levels.last_mut() {
            let pair = top.pair;
            if pair {
                top.pair = false;
                self.paired -= 1;
            }
            top.entry = depth - usize::from(pair);
        }
    }

    /// `:` or `?` in a flow sequence's entry: the entry becomes a single-pair mapping around
    /// what it holds so far. Returns the deepest depth now reached in the entry.
    fn pair(&mut self) -> usize {
        let depth = self.depth();
        match self.levels.last_mut() {
            Some(top) if top.seq && !top.pair => {
                top.pair = true;
                top.entry += 1;
                top.total = top.total.max(top.entry);
                self.paired += 1;
                top.entry
            }
            Some(top) => top.entry.max(depth),
            None => depth,
        }
    }
}

/// Where the character scan of a line is: between tokens, or inside a plain scalar.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Between,
    Plain,
}

/// Lines of a block scalar (`|`, `>`): indented at least `min`, then exactly as the first one.
#[derive(Clone, Copy)]
struct BlockScalar {
    min: usize,
    fixed: Option<usize>,
}

/// The pre-scan, modelled on libyaml's tokenizer (which serde_yaml runs): flow depth outside
/// quoted scalars and comments, a stack of block collections by column, quoted scalars and
/// plain scalars that continue over lines, block scalars skipped.
fn nesting(text: &str, stop_above: usize, max_collections: usize) -> Nesting {
    fn blank(b: u8) -> bool {
        b == b' ' || b == b'\t'
    }
    fn flow_indicator(b: u8) -> bool {
        matches!(b, b',' | b'[' | b']' | b'{' | b'}')
    }
    /// Index after the closing quote, or `None` when the scalar goes on past this line.
    fn close_quote(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
        while i < b.len() {
            match b[i] {
                b'\\' if q == b'"' => i += 2,
                b'\'' if q == b'\'' && b.get(i + 1) == Some(&b'\'') => i += 2,
                c if c == q => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }
    let mut deepest = Nesting::default();
    let mut stack: Vec<(usize, Block)> = Vec::new();
    let mut flows = Flows::default();
    let mut quote: Option<u8> = None;
    let mut scalar: Option<BlockScalar> = None;
    let mut at = At::Between;
    let mut opened = 0usize;
    let mut note = |depth: usize, line: usize| {
        if depth > deepest.depth {
            deepest = Nesting { depth, line, too_many_at: None };
        }
        deepest.depth > stop_above
    };
    for (n, line) in text.split('\n').enumerate() {
        let line_no = n + 1;
        let mut flow = flows.open();
        let b = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        let indent = b.iter().take_while(|&&c| c == b' ').count();
        let mut i;
        let mut token_col = indent;
        // After an anchor or a tag: the node they belong to starts at them.
        let mut props = false;
        // The deepest flow nesting of the current token at block level (a flow key's).
        let mut token_peak = 0usize;
        if let Some(q) = quote {
            match close_quote(b, 0, q) {
                Some(end) => (i, quote, at, token_col) = (end, None, At::Between, 0),
                None => continue,
            }
        } else {
            if let Some(block) = scalar.as_mut() {
                let need = block.fixed.unwrap_or(block.min);
                if indent == b.len() || indent >= need {
                    if indent < b.len() && block.fixed.is_none() {
                        block.fixed = Some(indent);
                    }
                    continue;
                }
                scalar = None;
            }
            if indent == b.len() {
                continue;
            }
            let top = stack.last().map_or(-1, |&(col, _)| col as isize);
            let marker = indent == 0
                && (b.starts_with(b"---") || b.starts_with(b"..."))
                && b.get(3).is_none_or(|&c| blank(c));
            if marker {
                stack.clear();
                (i, at) = (3, At::Between);
            } else if b[indent] == b'#' {
                at = At::Between;
                continue;
            } else if at == At::Plain && (flow > 0 || indent as isize > top) {
                i = indent;
            } else if flow > 0 {
                (i, at) = (indent, At::Between);
            } else {
                at = At::Between;
                let item = b[indent] == b'-' && b.get(indent + 1).is_none_or(|&c| blank(c));
                // Collections deeper than the line end; so does a sequence written at its
                // mapping's column (`a:\n- x\nb: 1`) when the line is no item of it.
                while let Some(&(col, kind)) = stack.last() {
                    let below = stack.len().checked_sub(2).map(|k| stack[k]);
                    let indentless = kind == Block::Seq && below == Some((col, Block::Map));
                    if col > indent || (col == indent && indentless && !item) {
                        stack.pop();
                    } else {
                        break;
                    }
                }
                i = indent;
                // Leading `- ` and `? ` indicators: compact nesting on one line.
                while i < b.len()
                    && (b[i] == b'-' || b[i] == b'?')
                    && b.get(i + 1).is_none_or(|&c| blank(c))
                {
                    let kind = if b[i] == b'-' { Block::Seq } else { Block::Map };
                    if stack.last() != Some(&(i, kind)) {
                        stack.push((i, kind));
                        if note(stack.len() + flows.depth(), line_no) {
                            return deepest;
                        }
                    }
                    i += 1;
                    while i < b.len() && blank(b[i]) {
                        i += 1;
                    }
                }
                token_col = i;
            }
        }
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            let value = c == b':'
                && (next.is_none_or(blank)
                    || (flow > 0 && (at == At::Between || next.is_some_and(flow_indicator))));
            if value && flow > 0 && note(stack.len() + flows.pair(), line_no) {
                return deepest;
            }
            if value {
                if flow == 0 {
                    let key = (token_col.min(i), Block::Map);
                    if stack.last() != Some(&key) {
                        stack.push(key);
                    }
                    // A key that is a flow collection sits inside the mapping it starts.
                    if note(stack.len() + token_peak, line_no) {
                        return deepest;
                    }
                    token_peak = 0;
                }
                (at, i) = (At::Between, i + 1);
                continue;
            }
            if at == At::Plain {
                if c == b'#' && i > 0 && blank(b[i - 1]) {
                    break;
                }
                if flow > 0 && flow_indicator(c) {
                    at = At::Between;
                    continue;
                }
                i += 1;
                continue;
            }
            if blank(c) {
                i += 1;
                continue;
            }
            match c {
                b'#' => break,
                b'[' | b'{' => {
                    if flow == 0 && !props {
                        token_col = i;
                        token_peak = 0;
                    }
                    props = false;
                    let depth = flows.push(c == b'[');
                    flow = flows.open();
                    if note(stack.len() + depth, line_no) {
                        return deepest;
                    }
                    opened += 1;
                    if opened > max_collections {
                        deepest.too_many_at = Some(line_no);
                        return deepest;
                    }
                    i += 1;
                }
                b']' | b'}' => {
                    if let Some(peak) = flows.pop() {
                        token_peak = token_peak.max(peak);
                    }
                    flow = flows.open();
                    i += 1;
                }
                b',' if flow > 0 => {
                    flows.next_entry();
                    i += 1;
                }
                b'"' | b'\'' => {
                    if flow == 0 && !props {
                        token_col = i;
                        token_peak = 0;
                    }
                    props = false;
                    match close_quote(b, i + 1, c) {
                        Some(end) => i = end,
                        None => {
                            quote = Some(c);
                            break;
                        }
                    }
                }
                b'-' | b'?' if next.is_none_or(blank) => {
                    if flow > 0 && c == b'?' && note(stack.len() + flows.pair(), line_no) {
                        return deepest;
                    }
                    if flow == 0 {
                        let kind = if c == b'-' { Block::Seq } else { Block::Map };
                        if stack.last() != Some(&(i, kind)) {
                            stack.push((i, kind));
                            if note(stack.len() + flows.depth(), line_no) {
                                return deepest;
                            }
                        }
                    }
                    i += 1;
                }
                b'|' | b'>' if flow == 0 => {
                    // The header: chomping and indentation indicators, then a comment at most.
                    let mut j = i + 1;
                    let mut step = None;
                    while j < b.len() && (b[j] == b'+' || b[j] == b'-' || b[j].is_ascii_digit()) {
                        if b[j].is_ascii_digit() {
                            step = Some((b[j] - b'0') as usize);
                        }
                        j += 1;
                    }
                    let rest = &b[j..];
                    let header = rest
                        .iter()
                        .position(|&c| !blank(c))
                        .is_none_or(|k| rest[k] == b'#' && k > 0);
                    if !header {
                        // Not a block scalar after all: scan it as plain text.
                        (at, i) = (At::Plain, i + 1);
                        continue;
                    }
                    let parent = stack.last().map_or(-1, |&(col, _)| col as isize);
                    scalar = Some(match step {
                        Some(step) => {
                            let base = parent.max(0) as usize;
                            let min = if parent < 0 { step } else { base + step };
                            BlockScalar { min, fixed: Some(min) }
                        }
                        None => BlockScalar { min: (parent + 1).max(1) as usize, fixed: None },
                    });
                    break;
                }
                b'&' | b'!' | b'*' => {
                    // Anchor, tag or alias: a name up to a blank or a flow indicator. A node's
                    // anchor and tag start it (a key's column is its anchor's).
                    if flow == 0 && !props {
                        token_col = i;
                    }
                    props = c != b'*';
                    i += 1;
                    while i < b.len() && !blank(b[i]) && !flow_indicator(b[i]) {
                        i += 1;
                    }
                }
                _ => {
                    if flow == 0 && !props {
                        token_col = i;
                        token_peak = 0;
                    }
                    props = false;
                    (at, i) = (At::Plain, i + 1);
                }
            }
        }
        // A plain scalar may go on over the next line; anything else ended with this one.
        if at != At::Plain {
            at = At::Between;
        }
    }
    deepest
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
    #[allow(dead_code)] // the fields exist to be deserialised, which is what the tests check
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

    fn depth(text: &str) -> usize {
        nesting(text, usize::MAX, usize::MAX).depth
    }

    /// Nesting of a parsed value: what serde_yaml actually built.
    fn value_depth(v: &serde_yaml::Value) -> usize {
        match v {
            serde_yaml::Value::Sequence(items) => {
                1 + items.iter().map(value_depth).max().unwrap_or(0)
            }
            serde_yaml::Value::Mapping(map) => {
                1 + map.iter().map(|(k, v)| value_depth(k).max(value_depth(v))).max().unwrap_or(0)
            }
            serde_yaml::Value::Tagged(t) => value_depth(&t.value),
            _ => 0,
        }
    }

    #[test]
    fn flow_block_and_compact_nesting_are_counted() {
        assert_eq!(depth("a: 1\nb: 2\n"), 1);
        assert_eq!(depth("x: [[[1]]]\n"), 4);
        assert_eq!(depth("{a: {b: [c, {d: e}]}}"), 4);
        assert_eq!(depth("a:\n  b:\n    c:\n      - 1\n"), 4);
        assert_eq!(depth("- - - - x\n- - y\n"), 4);
        assert_eq!(depth("a:\n- b:\n  - c: 1\nd: 2\n"), 5);
        assert_eq!(depth("- a: 1\n  b: [2]\n"), 3);
        // Flow collections spanning lines, whatever their indentation.
        assert_eq!(depth("a: [\n[\n  [1],\n ]\n]\nb: 1\n"), 4);
        let flow = format!("settings: {{x: {}{}}}\n", "[".repeat(100), "]".repeat(100));
        assert!(check_depth(&flow).unwrap_err().to_string().contains("line 1"));
        let block: String = (0..80).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let err = check_depth(&block).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 64 levels at line 65"), "{err}");
        let compact = format!("{}x\n", "- ".repeat(65));
        assert!(check_depth(&compact).is_err());
        assert!(check_depth(&format!("{}x\n", "- ".repeat(63))).is_ok());
    }

    #[test]
    fn brackets_in_quotes_comments_plain_and_block_scalars_do_not_count() {
        let deep = "[".repeat(100);
        for text in [
            format!("a: \"{deep}\"\n"),
            format!("a: '{deep}'\n"),
            format!("a: 'it''s {deep}'\n"),
            format!("a: \"esc \\\" {deep}\"\n"),
            format!("a: 1 # {deep}\n"),
            format!("# {deep}\na: 1\n"),
            format!("a: x{deep}\n"),
            format!("a: plain text\n  continued {deep}\n"),
            format!("a: |\n  {deep}\n  more {deep}\nb: 1\n"),
            format!("a: >-\n    {deep}\n\n    {deep}\nb: 1\n"),
            format!("- |2\n   {deep}\n"),
            format!("a: \"multi\n  line {deep}\n  end\"\nb: 1\n"),
        ] {
            assert!(depth(&text) <= 2, "{text:?}: {}", depth(&text));
            assert!(serde_yaml::from_str::<serde_yaml::Value>(&text).is_ok(), "{text:?}");
        }
        // A quote inside a plain scalar is text: what follows on later lines is still counted.
        let text = format!("a: it's\nb: {deep}\nc: x'\n");
        assert!(depth(&text) > 64, "{}", depth(&text));
        let text = format!("a: plain\n  'x\nb: {deep}\nc: y'\n");
        assert!(depth(&text) > 64, "{}", depth(&text));
        // A block scalar ends where the indentation does.
        let text = format!("a: |\n  text\nb: {deep}\n");
        assert!(depth(&text) > 64);
    }

    #[test]
    fn flow_collections_past_the_limit_are_refused_naming_the_line() {
        let entries = |n: usize| format!("x:\n{}", "  - []\n".repeat(n));
        assert!(check(&entries(MAX_FLOW_COLLECTIONS), MAX_FLOW_COLLECTIONS).is_ok());
        let err = check(&entries(MAX_FLOW_COLLECTIONS + 1), MAX_FLOW_COLLECTIONS)
            .unwrap_err()
            .to_string();
        let line = MAX_FLOW_COLLECTIONS + 2;
        assert!(err.contains(&format!("by line {line}")), "{err}");
        assert!(from_str::<serde_yaml::Value>(&entries(MAX_FLOW_COLLECTIONS + 1), "x").is_err());
        // The depth check alone (JSON payloads) does not count collections.
        assert!(check_depth(&entries(MAX_FLOW_COLLECTIONS + 1)).is_ok());
        // Brackets in quoted scalars and comments are not collections.
        let quoted = format!("x: '{}' # {}\n", "[]".repeat(20_000), "{}".repeat(20_000));
        assert!(check(&quoted, MAX_FLOW_COLLECTIONS).is_ok());
    }

    #[test]
    fn real_definitions_pass() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/definitions");
        for kind in ["good", "bad"] {
            for entry in std::fs::read_dir(dir.join(kind)).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                assert!(depth(&text) < 8, "{text}");
            }
        }
    }

    /// Random YAML-ish texts: whenever serde_yaml parses one, the pre-scan's depth is at least
    /// the depth of what it built (the scan never under-estimates).
    #[test]
    fn the_scan_never_under_estimates_what_serde_yaml_builds() {
        let pieces = [
            "[", "]", "{", "}", ", ", ": ", ":", "- ", "? ", "\n", "\n  ", "\n    ", " ", "a", "b",
            "'", "\"", " #", "|\n", ">\n", "\\", "&x ", "!t ", "- - ", "k: ", "\n- ", "\n  - ",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut parsed = 0;
        for _ in 0..100_000 {
            let mut text = String::new();
            for _ in 0..(seed % 40 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&text) {
                parsed += 1;
                assert!(
                    depth(&text) >= value_depth(&value),
                    "{text:?}: {} < {}",
                    depth(&text),
                    value_depth(&value)
                );
            }
        }
        assert!(parsed > 1000, "only {parsed} texts parsed");
    }

    #[test]
    fn excerpts_are_quoted_escaped_and_short() {
        assert_eq!(excerpt("ab\ncd"), "\"ab\\ncd\"");
        let long = excerpt(&"y".repeat(100));
        assert_eq!(long.chars().count(), EXCERPT + 3, "{long}");
        assert!(long.ends_with("…\""));
    }
}
