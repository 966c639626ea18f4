//! Interrupts of the tools that change Kubernetes objects in several steps (`deploy --wait`,
//! `scale`, `bump`): SIGTERM (what the portal sends when its client disconnects or the deadline
//! passes) and SIGINT (Ctrl-C) must not end them between the steps, where an RC would be left
//! behind or a rollback half done. [`arm`] blocks both and reads them through a non-blocking
//! signalfd; the waits ask [`received`] and stop early, and the tool then does the cleanup or
//! rollback its flags promised and says it was interrupted. The portal gives these tools a
//! longer kill grace (`portal::exec::MUTATION_GRACE`) for that. A second signal changes nothing;
//! SIGKILL still ends the tool at once.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Error, Result};

static FD: OnceLock<Mutex<SignalFd>> = OnceLock::new();
/// The first interrupt seen (its number), 0 before.
static GOT: AtomicI32 = AtomicI32::new(0);

fn set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Blocks SIGTERM and SIGINT and opens the fd that reads them. Call it first in the tool's
/// `run`, before any thread exists: threads inherit the mask, and a process-directed signal is
/// delivered to any thread that does not block it.
pub fn arm() -> Result<()> {
    if FD.get().is_some() {
        return Ok(());
    }
    set()
        .thread_block()
        .map_err(|source| Error::Sys { what: "block SIGTERM and SIGINT", source })?;
    let fd = SignalFd::with_flags(&set(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|source| Error::Sys { what: "open signalfd", source })?;
    let _ = FD.set(Mutex::new(fd));
    Ok(())
}

/// The interrupt received so far, if any (the first one; it stays received).
pub fn received() -> Option<Signal> {
    if let Some(fd) = FD.get()
        && GOT.load(Ordering::SeqCst) == 0
    {
        let fd = fd.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(Some(info)) = fd.read_signal() {
            let _ =
                GOT.compare_exchange(0, info.ssi_signo as i32, Ordering::SeqCst, Ordering::SeqCst);
        }
    }
    Signal::try_from(GOT.load(Ordering::SeqCst)).ok()
}

/// `interrupted (SIGTERM)`, for reports.
pub fn describe(signal: Signal) -> String {
    format!("interrupted ({})", signal.as_str())
}
