//! `make bench`, issue 6: `ocho deploy` of 10 container definitions against the fake API server
//! (HTTPS, bearer token), as a whole process and at the API: the same run with `--dry-run` (read,
//! validate, build, print; no connection) is subtracted to leave the time spent creating the 10
//! ReplicationControllers. Then `deploy --wait` of a 5-pod cluster of real `ocho pod` agents
//! (the fake's process kubelet, a real ZooKeeper) until the cluster is configured. Prints
//! figures; asserts nothing about time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::fake_kube::{FakeKube, FakeOpts, Kubelet};

const RUNS: usize = 15;
const DEFINITIONS: usize = 10;

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn time(kube: &FakeKube, dir: &std::path::Path, extra: &[&str]) -> Duration {
    let t0 = Instant::now();
    let out = support::ocho()
        .args(["deploy", "*.yaml", "-p", "2"])
        .args(extra)
        .current_dir(dir)
        .env("KUBECONFIG", kube.kubeconfig())
        .output()
        .unwrap();
    let elapsed = t0.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    elapsed
}

fn main() {
    println!("binary: {}", support::ocho_bin());
    let fresh =
        || FakeKube::start(FakeOpts { kubelet: Kubelet::Off, ..Default::default() }).unwrap();
    let kube = fresh();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..DEFINITIONS {
        let text = format!(
            "cluster: bench{i}\nimage: example/bench:1.0\nports: [80, 443, \"53/udp\"]\n\
             settings:\n  index: {i}\n  nested: {{a: 1, b: [1, 2, 3]}}\nlabels: {{tier: bench}}\n"
        );
        std::fs::write(dir.path().join(format!("def{i}.yaml")), text).unwrap();
    }
    // Warm the page cache and the fake once.
    time(&kube, dir.path(), &["--dry-run"]);
    time(&kube, dir.path(), &[]);

    let (mut dry, mut real) = (Vec::new(), Vec::new());
    // A fresh fake per run: its controller slows down as pods pile up (measured: 0.03 s for the
    // first 10 RCs, 0.7 s for the sixth batch), which is not ours to time.
    for _ in 0..RUNS {
        let kube = fresh();
        dry.push(time(&kube, dir.path(), &["--dry-run"]).as_secs_f64() * 1e3);
        real.push(time(&kube, dir.path(), &[]).as_secs_f64() * 1e3);
        assert_eq!(kube.rcs("default").len(), DEFINITIONS);
    }
    let api: Vec<f64> = real.iter().zip(&dry).map(|(r, d)| r - d).collect();
    println!(
        "deploy of {DEFINITIONS} definitions (-p 2) over HTTPS, {RUNS} runs, a fresh fake each:"
    );
    for (name, v) in
        [("whole process", &real), ("--dry-run (no API)", &dry), ("at the API (difference)", &api)]
    {
        println!(
            "  {name:<26} p50 {:7.1} ms   p90 {:7.1} ms   max {:7.1} ms",
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 1.0)
        );
    }
    println!(
        "  per RC at the API         p50 {:7.2} ms",
        percentile(&api, 0.5) / DEFINITIONS as f64
    );

    deploy_wait_5_pods();
}

/// `deploy -p 5 --wait` with real agents: create → 5 processes → registered → configured.
fn deploy_wait_5_pods() {
    support::require_zookeeper();
    let zk = support::ZooKeeper::start();
    let mut times = Vec::new();
    for run in 0..3 {
        let kube =
            FakeKube::start(FakeOpts { kubelet: Kubelet::Process, ..Default::default() }).unwrap();
        kube.register_image("ocho:bench", support::ocho_bin());
        let dir = tempfile::tempdir().unwrap();
        let def = format!(
            "cluster: wait{run}\nimage: ocho:bench\nenv: {{OCHO_BIND: \"$(POD_IP)\"}}\n\
             args: [pod, --, sleep, \"600\"]\n"
        );
        std::fs::write(dir.path().join("w.yaml"), def).unwrap();
        let t0 = Instant::now();
        let out = support::ocho()
            .args(["deploy", "w.yaml", "-p", "5", "--wait", "-t", "120"])
            .args(["--zk", &zk.addr, "--zk-public", &zk.addr])
            .current_dir(dir.path())
            .env("KUBECONFIG", kube.kubeconfig())
            .output()
            .unwrap();
        let elapsed = t0.elapsed();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        times.push(elapsed.as_secs_f64() * 1e3);
    }
    println!(
        "deploy --wait of 5 real agents until configured, 3 runs: p50 {:.0} ms, max {:.0} ms",
        percentile(&times, 0.5),
        percentile(&times, 1.0)
    );
}
