//! Shell-word splitting of a tool line, shared by the portal (a request's line) and `ocho cli`
//! (a line typed in the REPL), POSIX quoting rules without any expansion: whitespace
//! separates words, single quotes keep everything literally, double quotes keep everything but
//! let a backslash escape `$`, `` ` ``, `"`, `\` and newline, and an unquoted backslash escapes the
//! next character. `$(…)`, backticks, `;`, `|`, `>`, `#` and globs are ordinary characters: no
//! shell ever sees the line (docs/security.md §6.1, docs/architecture.md §7.1).

/// Why a line cannot be split.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("unterminated single quote")]
    SingleQuote,
    #[error("unterminated double quote")]
    DoubleQuote,
    #[error("the line ends with a lone backslash")]
    Backslash,
    #[error("the line contains a NUL character")]
    Nul,
}

/// Splits `line` into words.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    if line.contains('\0') {
        // A NUL cannot travel in an argv; refuse instead of truncating silently.
        return Err(SplitError::Nul);
    }
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything (even an empty pair of quotes) was seen.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(SplitError::SingleQuote),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('$' | '`' | '"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(SplitError::DoubleQuote),
                        },
                        Some(c) => word.push(c),
                        None => return Err(SplitError::DoubleQuote),
                    }
                }
            }
            '\\' => match chars.next() {
                // Line continuation, as in the shell.
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err(SplitError::Backslash),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Vec<String> {
        split(line).unwrap()
    }

    #[test]
    fn splits_on_whitespace_and_honours_quotes() {
        assert_eq!(ok("  deploy  a.yml\t-p 3 "), ["deploy", "a.yml", "-p", "3"]);
        assert_eq!(ok(r#"grep 'default.*' "a b" c\ d"#), ["grep", "default.*", "a b", "c d"]);
        assert_eq!(ok(r#"x '' "" a''b"#), ["x", "", "", "ab"]);
        assert_eq!(ok(r#""a\"b\\c\$d\e""#), [r#"a"b\c$d\e"#]);
        assert_eq!(ok("'it''s'"), ["its"]);
        assert_eq!(ok("a\\\nb"), ["ab"]);
        assert!(ok("").is_empty());
        assert!(ok("   ").is_empty());
    }

    #[test]
    fn metacharacters_are_plain_characters() {
        let line = r#"args $(id) `id` ; | > < & && * ?.yml ~ #c $HOME {a,b} !x"#;
        assert_eq!(
            ok(line),
            [
                "args", "$(id)", "`id`", ";", "|", ">", "<", "&", "&&", "*", "?.yml", "~", "#c",
                "$HOME", "{a,b}", "!x"
            ]
        );
        assert_eq!(ok("a;b|c>d"), ["a;b|c>d"]);
        assert_eq!(ok(r#""$(id)" '$HOME'"#), ["$(id)", "$HOME"]);
    }

    #[test]
    fn refuses_unterminated_quotes_and_nul() {
        assert_eq!(split("a 'b"), Err(SplitError::SingleQuote));
        assert_eq!(split("a \"b"), Err(SplitError::DoubleQuote));
        assert_eq!(split("a \"b\\"), Err(SplitError::DoubleQuote));
        assert_eq!(split("a b\\"), Err(SplitError::Backslash));
        assert_eq!(split("a\0b"), Err(SplitError::Nul));
    }
}
