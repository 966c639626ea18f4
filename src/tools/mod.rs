//! The operator's tools, one file per subcommand. This branch holds the Kubernetes-facing ones
//! (deploy, kill, scale, bump); the ZooKeeper lookup and pod fan-out they share live here too
//! once merged from the `tools` branch.

pub mod deploy;
