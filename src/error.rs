//! The crate's one error type. Variants name the subsystem and carry the noun they failed on; the
//! wrapped error is `#[source]`, never formatted into the message as well. `main` prints the whole
//! `source()` chain joined with `": "`.

use std::path::PathBuf;

/// Everything that can go wrong in any mode of `ocho`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or input that the user must fix; exit code 2.
    #[error("{0}")]
    Usage(String),
    /// A request that could not be carried out, with the reason in words; exit code 1.
    #[error("{0}")]
    Failed(String),
    /// A file or socket operation failed.
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{what}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    /// A program could not be started.
    #[error("cannot execute {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A container definition or override file was refused: the reason is the definition
    /// module's own `Invalid`, boxed so that this type depends on no module of ours.
    #[error("definition {path}")]
    Definition {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Kubernetes API answered with an error Status: its code, reason and message, and the
    /// object concerned.
    #[error("kubernetes: {what}: {code} {reason}: {message}")]
    K8sApi { what: String, code: u16, reason: String, message: String },
    /// The Kubernetes API could not be reached, or its answer not understood.
    #[error("kubernetes: {what}")]
    K8s {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// No usable Kubernetes client configuration.
    #[error("kubernetes configuration: {0}")]
    K8sConfig(String),
    /// A ZooKeeper operation failed.
    #[error("zookeeper {hosts}: {what}")]
    Zk {
        hosts: String,
        what: String,
        #[source]
        source: zookeeper_client::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Exit code of a process that ends with this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Spawn { source, .. } => exit::exec_failure(source),
            _ => 1,
        }
    }

    /// Shorthand for an [`Error::Io`] without a meaningful path.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { what, path: path.into(), source }
    }
}

/// Exit codes as a POSIX shell reports them: the code itself, 128 + n after signal n, 127 when
/// a program is not found and 126 when it cannot be run. The portal's replies, the agent's
/// hooks and workload and init's children all speak this convention.
pub mod exit {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use nix::sys::wait::WaitStatus;

    /// Of a status from `waitpid` (nix).
    pub fn of_wait(status: &WaitStatus) -> u8 {
        match *status {
            WaitStatus::Exited(_, code) => code as u8,
            WaitStatus::Signaled(_, signal, _) => 128u8.wrapping_add(signal as u8),
            _ => 1,
        }
    }

    /// Of a status from std's `Child::wait`.
    pub fn of_status(status: ExitStatus) -> i32 {
        status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    }

    /// Of an `exec` that failed.
    pub fn exec_failure(err: &std::io::Error) -> u8 {
        match err.kind() {
            std::io::ErrorKind::NotFound => 127,
            _ => 126,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use nix::sys::signal::Signal;
        use nix::unistd::Pid;

        #[test]
        fn the_shell_convention() {
            let pid = Pid::from_raw(42);
            for code in [0, 1, 2, 32, 64, 127, 254, 255] {
                assert_eq!(of_wait(&WaitStatus::Exited(pid, code)), code as u8);
            }
            assert_eq!(of_wait(&WaitStatus::Signaled(pid, Signal::SIGTERM, false)), 143);
            assert_eq!(of_wait(&WaitStatus::Signaled(pid, Signal::SIGKILL, false)), 137);
            assert_eq!(of_wait(&WaitStatus::Signaled(pid, Signal::SIGINT, false)), 130);
            assert_eq!(of_wait(&WaitStatus::Signaled(pid, Signal::SIGUSR1, false)), 138);
            assert_eq!(of_status(ExitStatus::from_raw(3 << 8)), 3);
            assert_eq!(of_status(ExitStatus::from_raw(9)), 137);
            assert_eq!(of_status(ExitStatus::from_raw(15)), 143);
            let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
            assert_eq!(exec_failure(&missing), 127);
            assert_eq!(
                exec_failure(&std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
                126
            );
        }
    }
}

/// Renders an error with its whole `source()` chain, `outer: inner: innermost`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(source) = cur {
        let s = source.to_string();
        // Some wrapped errors repeat their source in their own message; don't print it twice.
        if !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = source.source();
    }
    text
}
