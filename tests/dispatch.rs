//! Dispatch of the real binary: modes, `help`, `--version`, unknown modes, usage errors, and
//! busybox-style links named `ocho-<mode>`.
#![allow(clippy::unwrap_used)]

use crate::support;

use support::ocho;

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap(), text(out.stdout), text(out.stderr))
}

#[test]
fn help_lists_modes_and_help_mode_equals_mode_help() {
    let (code, out, _) = run(ocho().arg("help"));
    assert_eq!(code, 0);
    for mode in ["init", "portal", "zk-status"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(mode)), "{mode} missing:\n{out}");
    }
    assert_eq!(run(ocho().args(["help", "init"])), run(ocho().args(["init", "--help"])));
}

#[test]
fn unknown_modes_and_bad_flags_exit_2_with_a_message_on_stderr() {
    let (code, out, err) = run(ocho().arg("nope"));
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("unknown mode 'nope'") && err.contains("available modes: init"), "{err}");
    let (code, _, err) = run(ocho().args(["init", "--bogus"]));
    assert_eq!(code, 2);
    assert!(err.contains("ocho init: Unrecognized argument: --bogus"), "{err}");
    let (code, _, err) = run(&mut ocho());
    assert_eq!(code, 2);
    assert!(err.contains("usage: ocho <mode>"), "{err}");
}

#[test]
fn version_is_printed_on_stdout() {
    let (code, out, _) = run(ocho().arg("--version"));
    assert_eq!((code, out), (0, format!("ocho {}\n", env!("CARGO_PKG_VERSION"))));
}

#[test]
fn a_link_named_ocho_mode_runs_that_mode() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ocho-zk-status");
    std::os::unix::fs::symlink(support::ocho_bin(), &link).unwrap();
    let (code, out, _) = run(std::process::Command::new(&link).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Usage: ocho zk-status"), "{out}");
}

#[test]
fn a_tool_writing_into_a_closed_pipe_ends_quietly_by_sigpipe() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let mut child = ocho()
        .args(["args", "--repeat", "1000000", "x"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "arg 1: x\n");
    // The reader is gone: like `ocho args … | head -1`.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(nix::libc::SIGPIPE), "{:?}", out.status);
    assert!(out.stderr.is_empty(), "no panic message: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_readme_mode_table_lists_every_mode_with_its_help_line() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (_, help, _) = run(ocho().arg("help"));
    // A row is `  MODE  description`; a description wrapped at 80 columns goes on in lines
    // indented further, which are no rows.
    let modes: Vec<&str> = help
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| !l.starts_with("   "))
        .collect();
    assert!(modes.len() > 10, "{help}");
    for line in modes {
        let (mode, what) = line.trim().split_once(' ').unwrap();
        let row = readme.lines().find(|l| l.starts_with(&format!("| `{mode}` |")));
        let row = row.unwrap_or_else(|| panic!("README's mode table lacks {mode}"));
        // The README may add detail, but it starts from the same words as --help.
        let first_words: String = what.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        assert!(
            row.replace('`', "").contains(&first_words),
            "{mode}: README says {row:?}, help says {what:?}"
        );
    }
}
