//! Nothing outlives a supervisor that is not PID 1, even when it is killed with SIGKILL.
//!
//! As PID 1 the kernel kills every process of the namespace when the supervisor dies. As a
//! subreaper it does not: `PR_SET_PDEATHSIG` only reaches direct children, so a grandchild that
//! double-forked (and perhaps called `setsid`) would keep running. So [`start`] forks a small
//! guardian, before any thread exists, in a process group of its own. The supervisor tells it,
//! over a pipe only the supervisor can write to, every process group its tree uses: each child
//! started through [`super::child::spawn`] in a group of its own, and every other group found
//! among its descendants by [`scan`] (orphans re-parented to a subreaper are its children, so
//! the walk finds them). When the pipe reaches end of file (the supervisor exited, however it
//! died) the guardian sends SIGKILL to every group it was told about, then exits.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::error::{Error, Result};

struct Guard {
    pid: Pid,
    /// The write end; `None` once [`finish`] closed it.
    pipe: Option<std::fs::File>,
    /// Groups the guardian was told about and not told to forget.
    groups: BTreeSet<i32>,
}

static GUARD: OnceLock<Mutex<Guard>> = OnceLock::new();

fn lock() -> Option<std::sync::MutexGuard<'static, Guard>> {
    GUARD.get().map(|g| g.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Forks the guardian. Must be called while the process has a single thread (before any
/// thread is spawned), and at most once. `who` prefixes the guardian's one log line.
pub fn start(who: &'static str) -> Result<Pid> {
    let (read, write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|source| Error::Sys { what: "pipe", source })?;
    // SAFETY: the process is single-threaded (the caller's contract), so the child may run
    // ordinary code: no lock can be held by a thread that does not exist in it.
    match unsafe { fork() }.map_err(|source| Error::Sys { what: "fork the guardian", source })? {
        ForkResult::Child => {
            drop(write);
            guardian(who, read)
        }
        ForkResult::Parent { child } => {
            drop(read);
            let guard = Guard {
                pid: child,
                pipe: Some(std::fs::File::from(write)),
                groups: Default::default(),
            };
            let _ = GUARD.set(Mutex::new(guard));
            Ok(child)
        }
    }
}

/// The guardian's whole life: collect groups until end of file, then kill them all.
fn guardian(who: &str, read: OwnedFd) -> ! {
    // Out of the supervisor's group, so a signal to that group does not take the guardian too.
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // Keep only the pipe and stderr: holding the supervisor's other descriptors (its stdout, a
    // listening socket) would keep them open after it died.
    let keep = read.as_raw_fd();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> =
            dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
        for fd in fds {
            if fd != keep && fd != 2 {
                // SAFETY: closing descriptors this single-threaded process will never use.
                unsafe { nix::libc::close(fd) };
            }
        }
    }
    let mut groups = BTreeSet::new();
    for line in BufReader::new(std::fs::File::from(read)).lines() {
        let Ok(line) = line else { break };
        let (sign, n) = line.split_at(line.len().min(1));
        let Ok(n) = n.parse::<i32>() else { continue };
        match sign {
            "+" => {
                groups.insert(n);
            }
            "-" => {
                groups.remove(&n);
            }
            _ => {}
        }
    }
    let mut killed = Vec::new();
    for group in groups {
        if group > 1 && killpg(Pid::from_raw(group), Signal::SIGKILL).is_ok() {
            killed.push(group.to_string());
        }
    }
    if !killed.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "{who}: guardian: {who} is gone: SIGKILL to process groups {}",
            killed.join(" ")
        );
    }
    // SAFETY: _exit ends this process without running the parent's atexit handlers.
    unsafe { nix::libc::_exit(0) }
}

/// The guardian's pid, when there is one.
pub fn pid() -> Option<Pid> {
    lock().map(|g| g.pid)
}

/// Tells the guardian about a process group; true when it is new. A no-op without a guardian.
pub fn watch(group: Pid) -> bool {
    let Some(mut g) = lock() else { return false };
    if group.as_raw() <= 1 || !g.groups.insert(group.as_raw()) {
        return false;
    }
    tell(&mut g, '+', group.as_raw());
    true
}

/// The process groups of every descendant of this process (read from /proc), with one pid of
/// each.
fn descendant_groups() -> Vec<(i32, i32)> {
    let mut found = Vec::new();
    let mut stack = vec![std::process::id() as i32];
    let mut seen = BTreeSet::new();
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in list.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
                if !seen.insert(child) {
                    continue;
                }
                stack.push(child);
                let stat =
                    std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
                // After the parenthesised name: state, ppid, pgrp.
                let pgrp = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(2));
                if let Some(pgrp) = pgrp.and_then(|p| p.parse().ok()) {
                    found.push((pgrp, child));
                }
            }
        }
    }
    found
}

/// Tracks every process group among our descendants (new ones are returned as (group, pid) so
/// the caller can say so) and forgets the groups that no longer exist. A no-op without a
/// guardian. Call it regularly (the supervisors do on every wake-up, at least once a second).
pub fn scan() -> Vec<(i32, i32)> {
    let Some(mut g) = lock() else { return Vec::new() };
    let own = nix::unistd::getpgrp().as_raw();
    let guardian = g.pid.as_raw();
    let mut new = Vec::new();
    for (group, pid) in descendant_groups() {
        if group <= 1 || group == own || group == guardian || pid == guardian {
            continue;
        }
        if g.groups.insert(group) {
            tell(&mut g, '+', group);
            new.push((group, pid));
        }
    }
    let gone: Vec<i32> = g
        .groups
        .iter()
        .copied()
        .filter(|group| killpg(Pid::from_raw(*group), None) == Err(Errno::ESRCH))
        .collect();
    for group in gone {
        g.groups.remove(&group);
        tell(&mut g, '-', group);
    }
    new
}

fn tell(g: &mut Guard, sign: char, group: i32) {
    if let Some(pipe) = g.pipe.as_mut() {
        let _ = writeln!(pipe, "{sign}{group}");
    }
}

/// At a normal exit: closes the pipe, so the guardian kills what is left of the tracked groups,
/// and reaps it.
pub fn finish() {
    let Some(mut g) = lock() else { return };
    if g.pipe.take().is_some() {
        let _ = nix::sys::wait::waitpid(g.pid, None);
    }
}
