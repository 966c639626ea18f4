//! Ctrl-C in the REPL: cancel the line that runs and stay, as psql does. While a tool runs the
//! terminal is in its normal mode, so Ctrl-C is a SIGINT; its handler shuts down the socket of
//! the request in flight (kept in [`SOCKET`]), the blocked read ends, and the REPL says
//! `^C (cancelled)`. The portal sees its client gone and kills the tool's process group
//! (README, "Execution"). At the prompt the line editor reads Ctrl-C as a key (editor.rs).
//! One-shot `ocho cli` keeps SIGINT's default: the process ends, and its socket with it.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::{Shutdown, shutdown};

use crate::error::{Error, Result};

/// The socket of the request in flight, -1 when none.
static SOCKET: AtomicI32 = AtomicI32::new(-1);

/// A SIGINT came since the last [`begin`].
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Only atomics and shutdown(2), which signal-safety(7) lists as async-signal-safe.
extern "C" fn on_sigint(_: nix::libc::c_int) {
    CANCELLED.store(true, Ordering::SeqCst);
    let fd = SOCKET.load(Ordering::SeqCst);
    if fd >= 0 {
        let _ = shutdown(fd, Shutdown::Both);
    }
}

/// Installs the SIGINT handler (the REPL on a terminal only). SA_RESTART: every other
/// interrupted system call goes on; the request's read ends because its socket is shut down.
pub fn install() -> Result<()> {
    let action =
        SigAction::new(SigHandler::Handler(on_sigint), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler touches only atomics and calls shutdown(2), both async-signal-safe.
    unsafe { signal::sigaction(Signal::SIGINT, &action) }
        .map(drop)
        .map_err(|source| Error::Sys { what: "install the SIGINT handler", source })
}

/// Starts a request: forgets a Ctrl-C typed before it.
pub fn begin() {
    CANCELLED.store(false, Ordering::SeqCst);
}

/// Keeps `stream` as the request in flight; one Ctrl-C already typed cancels it at once (the
/// store comes before the check, the handler's flag before its load: one of the two sees the
/// other).
pub fn arm(stream: &TcpStream) {
    SOCKET.store(stream.as_raw_fd(), Ordering::SeqCst);
    if CANCELLED.load(Ordering::SeqCst) {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// No request in flight any more: called before its socket is closed, so that a late SIGINT
/// never shuts down a descriptor that has been reused.
pub fn disarm() {
    SOCKET.store(-1, Ordering::SeqCst);
}

/// True when a Ctrl-C came since [`begin`].
pub fn cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// A reply body that disarms before it is closed.
pub struct Armed<R>(pub R);

impl<R: std::io::Read> std::io::Read for Armed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Drop for Armed<R> {
    fn drop(&mut self) {
        // Runs before the field (the socket) is dropped.
        disarm();
    }
}
