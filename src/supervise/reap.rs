//! Reaping. A supervisor that is PID 1 (or a subreaper) inherits every orphan of its tree and
//! must `waitpid(-1)` them all; it is the only waiter in its process (docs/platform.md §4.3).

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Reaps every child that has ended, without blocking.
pub fn reap_all() -> Vec<(Pid, WaitStatus)> {
    let mut ended = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    ended.push((pid, status));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    ended
}

/// Human wording of a status for logs: `exit status 3`, `signal SIGKILL`.
pub fn describe(status: &WaitStatus) -> String {
    match *status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, signal, core) => {
            format!("signal {}{}", signal.as_str(), if core { " (core dumped)" } else { "" })
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn statuses_read_as_words() {
        let pid = Pid::from_raw(42);
        assert_eq!(describe(&WaitStatus::Exited(pid, 3)), "exit status 3");
        assert_eq!(describe(&WaitStatus::Signaled(pid, Signal::SIGKILL, false)), "signal SIGKILL");
    }
}
