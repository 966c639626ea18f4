//! Process supervision shared by `ocho init`, `ocho pod` and the portal: restart delays
//! ([`backoff`]), signal masks
//! ([`signals`]), spawning children with a clean signal state ([`child`]), reaping ([`reap`]) and,
//! when not PID 1, a guardian that kills what is left of the tree when the supervisor dies
//! ([`guard`]).

pub mod backoff;
pub mod child;
pub mod guard;
pub mod reap;
pub mod signals;
