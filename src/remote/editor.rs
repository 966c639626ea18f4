//! The REPL's line editor: on a terminal, raw mode with ←/→, Home/End (also Ctrl-A/Ctrl-E),
//! Backspace/Delete, Ctrl-U/Ctrl-K, ↑/↓ through the history, Ctrl-C to drop the line (twice on
//! an empty line to leave), Ctrl-D on an empty line to leave, Ctrl-L to clear the screen; the
//! terminal's mode is restored before every tool runs (Ctrl-C then cancels it: cancel.rs).
//! On a terminal, history persists in `~/.ocho_cli_history` (the last [`KEEP`] lines). Without
//! a terminal (a pipe, a file) lines are read plainly and history stays in memory.

use std::fs::OpenOptions;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

/// History lines kept in the file and in memory.
pub const KEEP: usize = 500;

/// What [`Editor::read_line`] got.
pub enum Input {
    Line(String),
    Eof,
}

/// Line reader with history.
pub struct Editor {
    history: Vec<String>,
    file: Option<PathBuf>,
    tty: bool,
}

/// Puts stdin in raw mode until dropped.
struct Raw(Termios);

impl Raw {
    fn enter() -> io::Result<Raw> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        // No line buffering, no echo, no signals from keys (Ctrl-C drops the line instead);
        // output processing stays on so "\n" still returns the carriage.
        raw.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
        raw.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(&stdin, SetArg::TCSADRAIN, &raw).map_err(io::Error::from)?;
        Ok(Raw(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.0);
    }
}

impl Editor {
    /// An editor; on a terminal its history is loaded from (and appended to)
    /// `~/.ocho_cli_history`, otherwise (a script on stdin) it is kept in memory only.
    pub fn new() -> Editor {
        let tty = io::stdin().is_terminal();
        let file = std::env::var_os("HOME")
            .filter(|_| tty)
            .map(|h| PathBuf::from(h).join(".ocho_cli_history"));
        Editor::with_file(file, tty)
    }

    /// An editor whose history lives in `file` (if any): loaded, and cut to its last [`KEEP`]
    /// lines on disk too when it holds more.
    fn with_file(file: Option<PathBuf>, tty: bool) -> Editor {
        let history: Vec<String> = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|text| text.lines().filter(|l| !l.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        let mut editor = Editor { history, file, tty };
        editor.trim();
        editor
    }

    /// Keeps the last [`KEEP`] lines, and rewrites the file with them when it held more
    /// (written beside it, then renamed over it: a crash leaves the old or the new file whole).
    fn trim(&mut self) {
        let excess = self.history.len().saturating_sub(KEEP);
        if excess == 0 {
            return;
        }
        self.history.drain(..excess);
        let Some(path) = &self.file else { return };
        let tmp = path.with_extension("tmp");
        let written = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all((self.history.join("\n") + "\n").as_bytes()));
        if written.and_then(|()| std::fs::rename(&tmp, path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// True when reading from a terminal (prompts and the banner are shown then).
    pub fn interactive(&self) -> bool {
        self.tty
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Records a line run (in memory and in the history file, created private).
    pub fn add(&mut self, line: &str) {
        if self.history.last().is_some_and(|last| last == line) {
            return;
        }
        self.history.push(line.to_string());
        if let Some(path) = &self.file {
            let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path);
            if let Ok(mut file) = file {
                let _ = writeln!(file, "{line}");
            }
        }
        self.trim();
    }

    /// Reads one line, showing `prompt` on a terminal; Tab asks `complete` (see [`Complete`]).
    pub fn read_line(&mut self, prompt: &str, complete: Complete) -> io::Result<Input> {
        if !self.tty {
            let mut line = String::new();
            return Ok(match io::stdin().lock().read_line(&mut line)? {
                0 => Input::Eof,
                _ => Input::Line(line.trim_end_matches(['\n', '\r']).to_string()),
            });
        }
        let _raw = Raw::enter()?;
        self.edit(prompt, complete, &mut io::stdin().lock(), &mut io::stderr())
    }

    /// The editing loop over raw key bytes.
    fn edit(
        &self,
        prompt: &str,
        complete: Complete,
        keys: &mut impl Read,
        out: &mut impl Write,
    ) -> io::Result<Input> {
        let mut line: Vec<char> = Vec::new();
        let mut cursor = 0;
        // Position in the history while browsing; `history.len()` is the line being typed.
        let mut browse = self.history.len();
        let mut typed: Vec<char> = Vec::new();
        // The last key was a Ctrl-C on an empty line.
        let mut hinted = false;
        let redraw = |out: &mut dyn Write, line: &[char], cursor: usize| -> io::Result<()> {
            let text: String = line.iter().collect();
            write!(out, "\r{prompt}{text}\x1b[K")?;
            if cursor < line.len() {
                write!(out, "\x1b[{}D", line.len() - cursor)?;
            }
            out.flush()
        };
        redraw(out, &line, cursor)?;
        loop {
            let Some(byte) = next_byte(keys)? else {
                return Ok(Input::Eof);
            };
            hinted &= byte == 0x03;
            match byte {
                b'\r' | b'\n' => {
                    writeln!(out)?;
                    return Ok(Input::Line(line.iter().collect()));
                }
                0x04 if line.is_empty() => {
                    writeln!(out)?;
                    return Ok(Input::Eof);
                }
                0x04 if cursor < line.len() => {
                    line.remove(cursor);
                }
                // Ctrl-C drops the line (as bash); on an empty line it says how to leave, and
                // a second one right after leaves (as node's REPL).
                0x03 if line.is_empty() && hinted => {
                    writeln!(out, "^C")?;
                    return Ok(Input::Eof);
                }
                0x03 => {
                    writeln!(out, "^C")?;
                    if line.is_empty() {
                        writeln!(out, "(to leave, press Ctrl-C again, Ctrl-D, or type exit)")?;
                        hinted = true;
                    }
                    line.clear();
                    cursor = 0;
                    browse = self.history.len();
                    redraw(out, &line, cursor)?;
                    continue;
                }
                0x7f | 0x08 if cursor > 0 => {
                    cursor -= 1;
                    line.remove(cursor);
                }
                0x01 => cursor = 0,
                0x05 => cursor = line.len(),
                0x15 => {
                    line.drain(..cursor);
                    cursor = 0;
                }
                0x0b => line.truncate(cursor),
                b'\t' => {
                    let start = line[..cursor].iter().rposition(|c| *c == ' ').map_or(0, |i| i + 1);
                    let partial: String = line[start..cursor].iter().collect();
                    let before: String = line[..cursor].iter().collect();
                    let found: Vec<String> =
                        complete(&before).into_iter().filter(|c| c.starts_with(&partial)).collect();
                    let mut insert: Vec<char> =
                        common_prefix(&found).chars().skip(partial.chars().count()).collect();
                    if let [only] = &found[..] {
                        // A whole word: the next one may start (a directory goes on instead).
                        if !only.ends_with('/') {
                            insert.push(' ');
                        }
                    } else if insert.is_empty() && found.len() > 1 {
                        writeln!(out)?;
                        for row in columns(&found, 80) {
                            writeln!(out, "{row}")?;
                        }
                    }
                    for c in insert {
                        line.insert(cursor, c);
                        cursor += 1;
                    }
                }
                // Ctrl-L: clear the screen, the line being typed stays (redrawn below).
                0x0c => write!(out, "\x1b[H\x1b[2J")?,
                0x1b => {
                    let (Some(b'[' | b'O'), Some(key)) = (next_byte(keys)?, next_byte(keys)?)
                    else {
                        continue;
                    };
                    match key {
                        b'A' | b'B' => {
                            let target = if key == b'A' {
                                browse.checked_sub(1)
                            } else {
                                Some(browse + 1).filter(|b| *b <= self.history.len())
                            };
                            if let Some(target) = target {
                                if browse == self.history.len() {
                                    typed = line.clone();
                                }
                                browse = target;
                                line = match self.history.get(browse) {
                                    Some(old) => old.chars().collect(),
                                    None => typed.clone(),
                                };
                                cursor = line.len();
                            }
                        }
                        b'C' => cursor = (cursor + 1).min(line.len()),
                        b'D' => cursor = cursor.saturating_sub(1),
                        b'H' => cursor = 0,
                        b'F' => cursor = line.len(),
                        b'3' => {
                            // Delete: ESC [ 3 ~
                            let tilde = next_byte(keys)? == Some(b'~');
                            if tilde && cursor < line.len() {
                                line.remove(cursor);
                            }
                        }
                        _ => {}
                    }
                }
                b if b >= 0x20 && b != 0x7f => {
                    if let Some(c) = utf8_char(b, keys)? {
                        line.insert(cursor, c);
                        cursor += 1;
                    }
                }
                _ => {}
            }
            redraw(out, &line, cursor)?;
        }
    }
}

/// Tab completion: given the line up to the cursor, the candidates for the word that ends
/// there (whole words; those that do not start with what is typed are ignored). One candidate
/// is taken with a space after it (none after a directory's `/`); several are completed as far
/// as they agree, and listed when that adds nothing.
pub type Complete<'a> = &'a dyn Fn(&str) -> Vec<String>;

/// The longest prefix every word shares (empty for none).
fn common_prefix(words: &[String]) -> String {
    let Some(first) = words.first() else { return String::new() };
    let mut prefix: Vec<char> = first.chars().collect();
    for word in &words[1..] {
        let same = prefix.iter().zip(word.chars()).take_while(|(a, b)| **a == *b).count();
        prefix.truncate(same);
    }
    prefix.into_iter().collect()
}

/// `words` in rows of columns at most `width` wide.
fn columns(words: &[String], width: usize) -> Vec<String> {
    let cell = words.iter().map(|w| w.chars().count()).max().unwrap_or(0) + 2;
    let per_row = (width / cell).max(1);
    words
        .chunks(per_row)
        .map(|row| {
            let cells: Vec<String> = row.iter().map(|w| format!("{w:cell$}")).collect();
            cells.concat().trim_end().to_string()
        })
        .collect()
}

fn next_byte(keys: &mut impl Read) -> io::Result<Option<u8>> {
    let mut byte = [0u8; 1];
    loop {
        match keys.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The character that starts with `first`, reading its continuation bytes.
fn utf8_char(first: u8, keys: &mut impl Read) -> io::Result<Option<char>> {
    let len = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Ok(None),
    };
    let mut bytes = vec![first];
    for _ in 1..len {
        match next_byte(keys)? {
            Some(b) => bytes.push(b),
            None => return Ok(None),
        }
    }
    Ok(std::str::from_utf8(&bytes).ok().and_then(|s| s.chars().next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(history: &[&str], keys: &str) -> Option<String> {
        let editor = Editor {
            history: history.iter().map(|s| s.to_string()).collect(),
            file: None,
            tty: true,
        };
        let mut out = Vec::new();
        match editor.edit("> ", &|_| Vec::new(), &mut keys.as_bytes(), &mut out).unwrap() {
            Input::Line(line) => Some(line),
            Input::Eof => None,
        }
    }

    #[test]
    fn the_history_file_keeps_its_last_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history");
        let lines: Vec<String> = (0..KEEP + 40).map(|n| format!("ls {n}")).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let mut editor = Editor::with_file(Some(path.clone()), true);
        assert_eq!(editor.history().len(), KEEP);
        let on_disk = || std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(on_disk(), KEEP, "the file is cut at load");
        editor.add("grep");
        editor.add("info");
        assert_eq!(on_disk(), KEEP, "and stays cut as lines are added");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("ls 42\n") && text.ends_with("grep\ninfo\n"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn ctrl_l_clears_the_screen_and_keeps_the_line() {
        let editor = Editor { history: Vec::new(), file: None, tty: true };
        let mut out = Vec::new();
        let got =
            editor.edit("> ", &|_| Vec::new(), &mut "arg\x0cs\r".as_bytes(), &mut out).unwrap();
        assert!(matches!(got, Input::Line(ref l) if l == "args"));
        let shown = String::from_utf8(out).unwrap();
        let cleared = shown.find("\x1b[H\x1b[2J").expect("the screen is cleared");
        assert!(shown[cleared..].contains("\r> arg\x1b[K"), "redrawn after: {shown:?}");
    }

    #[test]
    fn editing_keys() {
        assert_eq!(edit(&[], "args a\r").as_deref(), Some("args a"));
        assert_eq!(edit(&[], "argx\x7fs\r").as_deref(), Some("args"));
        assert_eq!(edit(&[], "rgs\x01a\x05!\r").as_deref(), Some("args!"));
        assert_eq!(edit(&[], "ab\x1b[D\x1b[Dx\x1b[C\x1b[3~\r").as_deref(), Some("xa"));
        assert_eq!(edit(&[], "junk\x15ok\r").as_deref(), Some("ok"));
        assert_eq!(edit(&[], "okjunk\x1b[D\x1b[D\x1b[D\x1b[D\x0b\r").as_deref(), Some("ok"));
        assert_eq!(edit(&[], "drop\x03kept\r").as_deref(), Some("kept"));
        assert_eq!(edit(&[], "ü é\r").as_deref(), Some("ü é"));
        assert_eq!(edit(&[], "\x04"), None);
        assert_eq!(edit(&[], "a"), None, "end of input");
        assert_eq!(edit(&[], "\x03\x03"), None, "a second Ctrl-C on an empty line leaves");
        assert_eq!(edit(&[], "x\x03\x03ok\r").as_deref(), Some("ok"), "the first dropped x");
        assert_eq!(edit(&[], "\x03a\x7f\x03ok\r").as_deref(), Some("ok"), "not in a row");
    }

    #[test]
    fn arrows_walk_the_history_and_come_back_to_the_typed_line() {
        let history = ["first", "second"];
        assert_eq!(edit(&history, "\x1b[A\r").as_deref(), Some("second"));
        assert_eq!(edit(&history, "\x1b[A\x1b[A\x1b[A\r").as_deref(), Some("first"));
        assert_eq!(edit(&history, "new\x1b[A\x1b[B\r").as_deref(), Some("new"));
        assert_eq!(edit(&history, "\x1b[A!\r").as_deref(), Some("second!"));
    }

    #[test]
    fn tab_completes_a_single_candidate_the_common_part_or_lists_them() {
        let editor = Editor { history: Vec::new(), file: None, tty: true };
        let words = |before: &str| -> Vec<String> {
            match before.split(' ').count() {
                1 => ["grep", "info", "kill", "ls", "log"].map(String::from).to_vec(),
                _ => ["--json", "--jump", "--force"].map(String::from).to_vec(),
            }
        };
        let run = |keys: &str| {
            let mut out = Vec::new();
            let got = editor.edit("> ", &words, &mut keys.as_bytes(), &mut out).unwrap();
            let Input::Line(line) = got else { panic!("no line") };
            (line, String::from_utf8(out).unwrap())
        };
        assert_eq!(run("gr\t\r").0, "grep ");
        assert_eq!(run("grep --f\t\r").0, "grep --force ");
        let (line, shown) = run("grep --j\t\r");
        assert_eq!(line, "grep --j", "no common part beyond --j");
        assert!(shown.contains("--json  --jump"), "listed: {shown:?}");
        assert_eq!(run("l\t\r").0, "l", "ls and log share only l");
        assert!(run("l\t\r").1.contains("ls   log"));
        assert_eq!(run("x\t\r").0, "x", "nothing to complete");
        assert_eq!(common_prefix(&["über".into(), "übel".into()]), "übe");
    }
}
