//! The integration tests, built as one binary: the fake Kubernetes API server, the fixtures
//! and the dependencies are compiled and linked once instead of once per file. Each file of
//! `tests/` is a module; run one with `cargo test --test integration <module>::`.

#[path = "support/ensemble.rs"]
mod ensemble;
#[path = "support/pod.rs"]
mod fixture;
mod support;
mod tools_support;

mod access;
mod audit;
mod cli;
mod confine;
mod demo;
mod deploy;
mod dispatch;
mod fake_kube;
mod fake_kube_rc;
mod fake_kube_strict;
mod fake_kube_watch;
mod fake_kubelet;
mod ha;
mod help;
mod hostile;
mod init;
mod init_damage;
mod init_pid1;
mod init_signals;
mod k8s_tools;
mod layout;
mod log_follow;
mod manifests;
mod output;
mod pod;
mod pod_cluster;
mod portal;
mod repl;
mod tls;
mod tools;
mod trust;
mod watch;
mod web;
