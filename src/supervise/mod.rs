//! Process supervision shared by `ocho init`, `ocho pod` and the portal: signal masks
//! ([`signals`]), spawning children with a clean signal state ([`child`]) and reaping ([`reap`]).

pub mod child;
pub mod reap;
pub mod signals;
