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
