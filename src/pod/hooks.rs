//! Hook programs (`--configure`, `--can-configure`, `--probe`, `--sanity`, `--signal`): the
//! agent's replacement for Ochopod's Python callbacks. A hook is executed directly (no shell)
//! through the agent's reaper, gets its input JSON on stdin and in env `OCHO_INPUT`, and answers
//! with its exit code and stdout (capped). The contract is docs/protocol.md §7.1
//! (users: README.md, section "`ocho pod`: the Ochopod agent", Hooks).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::reaper::Reaper;

/// Cap on what a hook may print: its output is parsed, never streamed.
const MAX_OUTPUT: u64 = 1024 * 1024;

/// What a hook did.
pub struct Outcome {
    /// Exit code as a shell reports it (128 + n after a signal).
    pub code: u8,
    pub stdout: String,
    /// Last non-empty line of stderr, for error messages.
    pub stderr_tail: String,
}

impl Outcome {
    /// Words for a failed hook: `exit status 3: <stderr tail>`.
    pub fn failure(&self) -> String {
        if self.stderr_tail.is_empty() {
            format!("exit status {}", self.code)
        } else {
            format!("exit status {}: {}", self.code, self.stderr_tail)
        }
    }
}

/// Runs `prog` with `input` on stdin and `env`, killing it after `timeout`. `Err` when it cannot
/// be started or does not finish in time.
pub fn run(
    reaper: &Reaper,
    prog: &str,
    input: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Outcome, String> {
    run_in(reaper, prog, &[], input, env, timeout, None)
}

/// [`run`] with arguments and a working directory (`/exec` runs a tool in the directory
/// holding the request's uploads).
pub fn run_in(
    reaper: &Reaper,
    prog: &str,
    args: &[&str],
    input: &str,
    env: &[(String, String)],
    timeout: Duration,
    cwd: Option<&std::path::Path>,
) -> Result<Outcome, String> {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env("OCHO_INPUT", input);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (mut child, status) = reaper.spawn(&mut cmd, prog).map_err(|e| crate::error::chain(&e))?;
    let pid = Pid::from_raw(child.id() as i32);
    // Feed stdin from its own thread: a hook that prints before reading must not deadlock us.
    if let Some(mut stdin) = child.stdin.take() {
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let err_reader = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = (&mut e).take(MAX_OUTPUT).read_to_string(&mut text);
            text
        })
    });
    let out_reader = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = (&mut o).take(MAX_OUTPUT).read_to_string(&mut text);
            text
        })
    });
    let status = match status.recv_timeout(timeout) {
        Ok(status) => status,
        Err(_) => {
            let _ = killpg(pid, Signal::SIGKILL);
            return Err(format!("{prog} did not finish within {:.0}s", timeout.as_secs_f64()));
        }
    };
    // Grandchildren holding the pipes open are killed with the group, so the reads end.
    let _ = killpg(pid, Signal::SIGKILL);
    let stdout = out_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr = err_reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let stderr_tail =
        stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    Ok(Outcome { code: crate::error::exit::of_wait(&status), stdout, stderr_tail })
}

/// `KEY=VALUE` lines of a `--configure` hook; other lines (blank, `#` comments) are ignored,
/// keys must be valid environment names.
pub fn parse_overrides(stdout: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| format!("not KEY=VALUE: {line}"))?;
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid variable name: {k}"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_key_value_lines() {
        let got = parse_overrides("# hi\nA=1\n\nB_2=x=y\n").unwrap();
        assert_eq!(got, vec![("A".into(), "1".into()), ("B_2".into(), "x=y".into())]);
        assert!(parse_overrides("oops\n").is_err());
        assert!(parse_overrides("1A=2\n").is_err());
        assert!(parse_overrides("A-B=2\n").is_err());
    }
}
