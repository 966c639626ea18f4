//! Spawning children of a signal-blocking process. Every child gets the original signal mask
//! back and every disposition reset to the default before `exec`, as tini's `restore_signals()`
//! does; otherwise a child inherits our blocked mask and ignores the very signals we forward.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use nix::libc;

use crate::error::{Error, Result};
use crate::supervise::signals;

/// Options for [`spawn`].
#[derive(Clone, Copy, Default)]
pub struct Opts {
    /// Put the child in a new process group of its own (so the group can be signalled as one).
    pub own_group: bool,
    /// Kill the child with SIGKILL when the spawning thread dies (`PR_SET_PDEATHSIG`), so a
    /// crashed supervisor that is not PID 1 leaks nothing.
    pub die_with_parent: bool,
}

/// Spawns `cmd` with a clean signal state. `what` names the child in errors.
pub fn spawn(cmd: &mut Command, what: &str, opts: Opts) -> Result<Child> {
    let mask = signals::original_mask();
    if opts.own_group {
        cmd.process_group(0);
    }
    let die_with_parent = opts.die_with_parent;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (rt_sigaction, pthread_sigmask, prctl); it allocates nothing and takes no lock, and `dfl`
    // outlives every call that reads it.
    unsafe {
        cmd.pre_exec(move || {
            // The raw system call, because libc's wrappers refuse signals 32-34 (their
            // internal real-time signals) and an ignored one would otherwise leak through.
            // An all-zero kernel `struct sigaction` is SIG_DFL with no flags and no mask on
            // every architecture; 8 is the size of the kernel's sigset.
            let dfl = [0u64; 4];
            for signo in 1..=64 {
                if signo != libc::SIGKILL && signo != libc::SIGSTOP {
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        signo,
                        dfl.as_ptr(),
                        std::ptr::null_mut::<u64>(),
                        8usize,
                    );
                }
            }
            mask.thread_set_mask().map_err(io::Error::from)?;
            if die_with_parent && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| Error::Spawn { what: what.to_string(), source })?;
    if opts.own_group {
        super::guard::watch(nix::unistd::Pid::from_raw(child.id() as i32));
    }
    Ok(child)
}
