//! The agent's single reaper (docs/platform.md §4.3): the main thread is the only `waitpid(-1)`
//! caller; every child (the workload and each hook program) is spawned through [`Reaper::spawn`],
//! which registers a waiter under the same lock the reaper holds while it reaps, so no status can
//! be collected before its waiter exists.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};

use nix::sys::wait::WaitStatus;

use crate::error::Result;
use crate::supervise::{child, reap};

type Waiter = Box<dyn FnOnce(WaitStatus) + Send>;

/// Shared handle to the waiter registry.
#[derive(Clone, Default)]
pub struct Reaper {
    waiters: Arc<Mutex<HashMap<i32, Waiter>>>,
}

impl Reaper {
    /// Spawns `cmd` (through [`child::spawn`], so the signal mask is restored) and calls
    /// `on_exit` with its status once reaped. The `Child` is returned for its pipes only: never
    /// wait on it.
    pub fn spawn_with(
        &self,
        cmd: &mut Command,
        what: &str,
        on_exit: impl FnOnce(WaitStatus) + Send + 'static,
    ) -> Result<Child> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let opts =
            child::Opts { own_group: true, die_with_parent: nix::unistd::getpid().as_raw() != 1 };
        let proc = child::spawn(cmd, what, opts)?;
        waiters.insert(proc.id() as i32, Box::new(on_exit));
        Ok(proc)
    }

    /// Spawns `cmd` and returns a receiver for its status.
    pub fn spawn(&self, cmd: &mut Command, what: &str) -> Result<(Child, Receiver<WaitStatus>)> {
        let (tx, rx) = channel();
        let proc = self.spawn_with(cmd, what, move |status| {
            let _ = tx.send(status);
        })?;
        Ok((proc, rx))
    }

    /// Reaps every ended child and hands each status to its waiter; orphans re-parented to us
    /// are simply collected.
    pub fn reap(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let ended = reap::reap_all();
        let mut calls = Vec::new();
        for (pid, status) in ended {
            if let Some(waiter) = waiters.remove(&pid.as_raw()) {
                calls.push((waiter, status));
            }
        }
        drop(waiters);
        for (waiter, status) in calls {
            waiter(status);
        }
    }
}
