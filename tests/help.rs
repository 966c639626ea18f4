//! Every mode's `--help`: exit 0, an `Examples:` section of command lines, nothing wider than
//! 80 columns; `ocho help` likewise. Run on the built binary, as an operator sees it.

#![allow(clippy::unwrap_used)]

use crate::support;

/// The modes `ocho help` lists: its rows are indented by two spaces, their continuation lines
/// by more.
fn modes() -> Vec<String> {
    let out = support::ocho().arg("help").output().unwrap();
    assert!(out.status.success(), "ocho help: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let modes: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    assert!(modes.len() >= 20, "ocho help lists too few modes: {text}");
    modes
}

fn too_wide(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.chars().count() > 80).collect()
}

#[test]
fn every_mode_help_has_examples_and_fits_80_columns() {
    let modes = modes();
    for mode in ["init", "portal", "pod", "zk-status", "cli", "args", "audit", "ls", "deploy"] {
        assert!(modes.iter().any(|m| m == mode), "ocho help lists {mode}: {modes:?}");
    }
    for mode in &modes {
        let out = support::ocho().args([mode, "--help"]).output().unwrap();
        assert!(out.status.success(), "ocho {mode} --help: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(too_wide(&text), Vec::<&str>::new(), "ocho {mode} --help:\n{text}");
        let examples: Vec<&str> = text
            .split("\n\n")
            .find(|section| section.starts_with("Examples:\n"))
            .unwrap_or_else(|| panic!("ocho {mode} --help has no Examples section:\n{text}"))
            .lines()
            .skip(1)
            .filter(|l| l.trim_start().starts_with(&format!("ocho {mode}")))
            .collect();
        assert!(
            !examples.is_empty(),
            "ocho {mode} --help: no example starts with `ocho `:\n{text}"
        );
        // `-h` is the same help.
        let short = support::ocho().args([mode, "-h"]).output().unwrap();
        assert_eq!(String::from_utf8(short.stdout).unwrap(), text, "ocho {mode} -h");
    }
}

#[test]
fn the_mode_listing_and_help_mode_fit_80_columns() {
    let out = support::ocho().arg("help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(too_wide(&text), Vec::<&str>::new(), "ocho help:\n{text}");
    let out = support::ocho().args(["help", "ls"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Usage: ocho ls "), "{text}");
    assert_eq!(too_wide(&text), Vec::<&str>::new(), "ocho help ls:\n{text}");
}

fn completion(shell: &str) -> String {
    let out = support::ocho().args(["completion", shell]).output().unwrap();
    assert!(out.status.success(), "ocho completion {shell}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `script` in a bash without startup files, from directory `dir`, and returns its stdout.
fn bash(dir: &std::path::Path, script: &str) -> String {
    let out = std::process::Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_bash_script_is_valid_and_completes_modes_options_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ocho.bash");
    std::fs::write(&script, completion("bash")).unwrap();
    std::fs::write(dir.path().join("web.yml"), "").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "").unwrap();
    let out = std::process::Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(out.status.success(), "bash -n: {out:?}");
    // Each call is one command line, the cursor at its last word, as readline hands it over.
    let complete_with = |env: &str, words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let text = bash(
            dir.path(),
            &format!(
                "source {script} && {env} COMP_WORDS=({words}) && COMP_CWORD={cword} && \
                 _ocho && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script = script.display(),
                words = quoted.join(" "),
                cword = words.len() - 1,
            ),
        );
        // `printf` prints one empty line for no candidates.
        let mut found: Vec<String> =
            text.lines().filter(|l| !l.is_empty()).map(String::from).collect();
        found.sort();
        found
    };
    let complete = |words: &[&str]| -> Vec<String> { complete_with("", words) };
    assert_eq!(complete(&["ocho", "ls", "--a"]), ["--all"]);
    assert_eq!(complete(&["ocho", "zk-s"]), ["zk-status"]);
    assert_eq!(complete(&["ocho", "help", "comp"]), ["completion"]);
    assert_eq!(complete(&["ocho", "completion", ""]), ["bash", "fish", "zsh"]);
    assert!(complete(&["ocho", "ls", "-"]).contains(&"-t".to_string()));
    // Files where an argument names one, nothing for other values.
    assert_eq!(complete(&["ocho", "deploy", "w"]), ["web.yml"]);
    assert_eq!(complete(&["ocho", "exec", "--upload", "n"]), ["notes.txt"]);
    assert_eq!(complete(&["ocho", "ls", "--zk", ""]), Vec::<String>::new());
    // After `--` the words are the workload's: files, no options of pod's.
    assert_eq!(complete(&["ocho", "pod", "--cluster", "web", "--", "n"]), ["notes.txt"]);
    assert_eq!(complete(&["ocho", "pod", "--", "prog", "--clu"]), Vec::<String>::new());
    assert_eq!(complete(&["ocho", "pod", "--clu"]), ["--cluster"]);
    // `cli [PROXY] TOOL …`: the tool's names, options and files, never a local mode.
    assert_eq!(complete(&["ocho", "cli", "host:9000", "i"]), ["info"]);
    assert_eq!(complete(&["ocho", "cli", "host:9000", "ls", "--a"]), ["--all"]);
    assert_eq!(complete(&["ocho", "cli", "host:9000", "deploy", "w"]), ["web.yml"]);
    assert_eq!(complete(&["ocho", "cli", "--proxy", "host", "ls", "--a"]), ["--all"]);
    assert_eq!(complete(&["ocho", "cli", ""]), Vec::<String>::new(), "a proxy: no candidates");
    assert_eq!(complete(&["ocho", "cli", "--c"]), ["--ca"]);
    // With $OCHOPOD_PROXY the first word is the tool.
    assert_eq!(complete_with("OCHOPOD_PROXY=host", &["ocho", "cli", "ls", "--a"]), ["--all"]);
    assert_eq!(
        complete_with("OCHOPOD_PROXY=host", &["ocho", "cli", "p"]),
        ["ping", "poll", "port"]
    );
    // The script defines only what `complete -p` shows it registered.
    let registered = bash(dir.path(), &format!("source {} && complete -p ocho", script.display()));
    assert_eq!(registered.trim(), "complete -F _ocho ocho");
}

#[test]
fn completion_scripts_for_zsh_and_fish_and_unknown_shells() {
    let zsh = completion("zsh");
    assert!(zsh.starts_with("#compdef ocho\n"), "{zsh}");
    let fish = completion("fish");
    assert!(fish.contains("complete -c ocho -n '__ocho_mode ls' -l all"), "{fish}");
    // Each script as its own shell reads it: a missing shell is a failure, not a skip.
    for (shell, check, script) in [("zsh", "-n", &zsh), ("fish", "--no-execute", &fish)] {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), script).unwrap();
        let out =
            std::process::Command::new(shell).arg(check).arg(file.path()).output().unwrap_or_else(
                |e| panic!("{shell}: {e}: install Debian package {shell} (make deps)"),
            );
        assert!(out.status.success(), "{shell} {check}: {out:?}");
    }
    let out = support::ocho().args(["completion", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no script for shell 'tcsh'") && stderr.contains("bash, zsh, fish"));
    assert!(out.stdout.is_empty());
}
