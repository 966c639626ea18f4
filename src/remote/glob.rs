//! Globs in file arguments, expanded on the operator's machine: `deploy *.yml` uploads every
//! local match, as a shell would have passed them. Only arguments the tool declares as files
//! (`"file": true` in the portal's `/tools`, from [`crate::cli::takes_file`]) are expanded, so
//! cluster globs (`grep 'web*'`, `kill '*'`) still reach the tool untouched. A file pattern that
//! matches nothing is a usage error before anything is sent (bash's `failglob`, zsh's default).
//! The matching is the tools' own ([`crate::tools::deploy::expand`]): the last path component
//! only, hidden files only for a pattern starting with `.`, sorted.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// True when `word` holds a glob character.
pub fn is_glob(word: &str) -> bool {
    word.contains(['*', '?', '['])
}

/// What a word of a line is to its tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// The tool word, an option, a switch, a value or positional that is not a file.
    Other,
    /// A positional declared as a file.
    File,
    /// The value of an option declared as a file.
    OptionFile,
}

/// For each word (`words[0]` is the tool), what it is to `tool` (one entry of `/tools`'
/// `tools`): a positional declared as a file, or the value of an option declared as one. Words are walked as argh parses them: options take the next word as their
/// value, switches none, positionals fill in order (a repeating one takes every word left, a
/// greedy one everything after it, options included), `--` ends the options.
pub fn file_words(tool: &Value, words: &[String]) -> Vec<Arg> {
    let list = |key: &str| tool[key].as_array().cloned().unwrap_or_default();
    let (options, positionals) = (list("options"), list("positionals"));
    let is_file = |v: &Value| v["file"].as_bool() == Some(true);
    let mut marks = vec![Arg::Other; words.len()];
    let (mut next, mut options_end, mut i) = (0, false, 1);
    while i < words.len() {
        let word = &words[i];
        if !options_end && word == "--" {
            options_end = true;
        } else if !options_end && word.starts_with('-') && word.len() > 1 {
            let named = |o: &&Value| {
                o["long"].as_str() == Some(word)
                    || o["short"].as_str().is_some_and(|s| word.strip_prefix('-') == Some(s))
            };
            if let Some(option) = options.iter().find(named).filter(|o| !o["value"].is_null()) {
                if i + 1 < words.len() && is_file(option) {
                    marks[i + 1] = Arg::OptionFile;
                }
                i += 1;
            }
        } else if let Some(positional) = positionals.get(next) {
            if is_file(positional) {
                marks[i] = Arg::File;
            }
            match positional["optionality"].as_str() {
                Some("repeating") => {}
                Some("greedy") => options_end = true,
                _ => next += 1,
            }
        }
        i += 1;
    }
    marks
}

/// `words` with every glob in a file argument replaced by its matches in `base` (the working
/// directory; an option's value repeats the option for each match). Errors name the pattern.
pub fn expand(base: &Path, words: Vec<String>, args: &[Arg]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(words.len());
    for (i, word) in words.iter().enumerate() {
        let arg = args.get(i).copied().unwrap_or(Arg::Other);
        let glob =
            arg != Arg::Other && is_glob(word) && !base.join(super::expand_home(word)).exists();
        if !glob {
            out.push(word.clone());
            continue;
        }
        let pattern = super::expand_home(word);
        let found =
            crate::tools::deploy::expand(base, &pattern.to_string_lossy()).map_err(|why| {
                Error::Usage(format!(
                    "{word}: {why} here (file globs are expanded on this machine, before sending)"
                ))
            })?;
        let option = if arg == Arg::OptionFile { out.pop() } else { None };
        for path in found {
            out.extend(option.clone());
            out.push(path.display().to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    /// deploy's and grep's shapes as `/tools` gives them.
    fn tool(name: &str) -> Value {
        crate::portal::tools_json(None)["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    }

    #[test]
    fn only_file_arguments_are_marked() {
        use Arg::{File, OptionFile, Other};
        let deploy = tool("deploy");
        let line = words("deploy -p 3 *.yml --overrides o*.yml b.yml -n ns");
        assert_eq!(
            file_words(&deploy, &line),
            [Other, Other, Other, File, Other, OptionFile, File, Other, Other]
        );
        let grep = tool("grep");
        assert!(file_words(&grep, &words("grep web* -j")).iter().all(|a| *a == Other));
        let ping = tool("ping");
        assert_eq!(file_words(&ping, &words("ping p*.json web*")), [Other, File, Other]);
    }

    #[test]
    fn file_globs_expand_locally_and_a_pattern_matching_nothing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.yml", "a.yml", ".hidden.yml", "o1.yml", "o2.yml"] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let deploy = tool("deploy");
        let line = words("deploy [ab].yml --overrides o?.yml -s web*");
        let got = expand(dir.path(), line.clone(), &file_words(&deploy, &line)).unwrap();
        assert_eq!(got, words("deploy a.yml b.yml --overrides o1.yml --overrides o2.yml -s web*"));

        let line = words("deploy *.json");
        let err = expand(dir.path(), line.clone(), &file_words(&deploy, &line)).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(err.to_string().contains("*.json: no file matches here"), "{err}");

        // A file whose name holds a glob character is itself.
        std::fs::write(dir.path().join("x[1].yml"), "").unwrap();
        let line = words("deploy x[1].yml");
        let got = expand(dir.path(), line.clone(), &file_words(&deploy, &line)).unwrap();
        assert_eq!(got, line);
    }
}
