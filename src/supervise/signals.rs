//! Signal plumbing. Supervisors block every asynchronous signal in the main thread before any
//! other thread exists (threads inherit the mask), then read them synchronously from a
//! [`SignalFd`]. The original mask is kept so that [`super::child::spawn`] can restore it in
//! every child: std passes a blocked mask on to children (docs/platform.md §4.2).

use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Error, Result};

/// Synchronous faults stay deliverable: blocking them makes a crash hang instead of dying.
const SYNCHRONOUS: [Signal; 7] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The mask the process had before [`block_all`]; children get it back.
static ORIGINAL: OnceLock<SigSet> = OnceLock::new();

/// Blocks every signal but the synchronous faults in the calling thread and remembers the
/// previous mask. Call first thing in `main`-like entry points, before any thread starts.
pub fn block_all() -> Result<()> {
    let mut set = SigSet::all();
    for signal in SYNCHRONOUS {
        set.remove(signal);
    }
    let original = set
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|source| Error::Sys { what: "block signals", source })?;
    let _ = ORIGINAL.set(original);
    Ok(())
}

/// The signal mask to restore in children: the one before [`block_all`], or empty.
pub fn original_mask() -> SigSet {
    ORIGINAL.get().copied().unwrap_or_else(SigSet::empty)
}

/// Reads blocked signals synchronously.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Opens a signal fd for every signal blocked by [`block_all`].
    pub fn open() -> Result<Self> {
        let mut set = SigSet::all();
        for signal in SYNCHRONOUS {
            set.remove(signal);
        }
        set.remove(Signal::SIGKILL);
        set.remove(Signal::SIGSTOP);
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|source| Error::Sys { what: "open signalfd", source })?;
        Ok(Signals { fd })
    }

    /// Waits up to `timeout` for signals; returns those pending (possibly none). Repeated
    /// signals of one kind coalesce, as the kernel does for standard signals anyway.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<Signal>> {
        let ms = timeout.as_millis().min(u128::from(u16::MAX)) as u16;
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(source) => return Err(Error::Sys { what: "poll signalfd", source }),
        }
        let mut got = Vec::new();
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                        got.push(signal);
                    }
                }
                Ok(None) | Err(nix::errno::Errno::EAGAIN) => break,
                Err(source) => return Err(Error::Sys { what: "read signalfd", source }),
            }
        }
        Ok(got)
    }
}
