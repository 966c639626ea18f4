//! The tests' fake Kubernetes API server, runnable by hand so `kubectl` and the tools can be
//! pointed at it: `cargo run --example fake-kube -- --kubelet status`, then
//! `KUBECONFIG=<printed path> kubectl get pods`. Runs until Ctrl-C (or SIGTERM).
#![allow(dead_code)] // the fake's test-only helpers are unused here

#[path = "../tests/support/fake_kube/mod.rs"]
mod fake_kube;

use std::process::ExitCode;

use argh::FromArgs;
use fake_kube::{FakeKube, FakeOpts, Kubelet};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};

/// run the fake Kubernetes API server until Ctrl-C
#[derive(FromArgs)]
struct Args {
    /// kubelet mode: off, bound, status or process (default status)
    #[argh(option, default = "String::from(\"status\")")]
    kubelet: String,
    /// port on 127.0.0.1 (default 0: any free port)
    #[argh(option, default = "0")]
    port: u16,
    /// serve plain HTTP instead of HTTPS
    #[argh(switch)]
    plain: bool,
    /// bearer token clients must send (default fake-token)
    #[argh(option, default = "String::from(\"fake-token\")")]
    token: String,
    /// process mode: IMAGE=EXECUTABLE, repeatable
    #[argh(option)]
    image: Vec<String>,
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    let kubelet = match args.kubelet.as_str() {
        "off" => Kubelet::Off,
        "bound" => Kubelet::Bound,
        "status" => Kubelet::Status,
        "process" => Kubelet::Process,
        other => {
            eprintln!("fake-kube: unknown kubelet mode {other:?} (off, bound, status, process)");
            return ExitCode::from(2);
        }
    };
    // Block the stop signals before any thread starts so only sigwait below sees them; the
    // fake kubelet unblocks them again in the processes it starts.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop), None) {
        eprintln!("fake-kube: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let kube = match FakeKube::start(FakeOpts {
        kubelet,
        tls: !args.plain,
        token: args.token,
        port: args.port,
        ..Default::default()
    }) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("fake-kube: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    for spec in &args.image {
        let Some((image, exe)) = spec.split_once('=') else {
            eprintln!("fake-kube: --image wants IMAGE=EXECUTABLE, got {spec:?}");
            return ExitCode::from(2);
        };
        kube.register_image(image, exe);
    }
    println!("listening on {}", kube.url());
    println!("kubeconfig {}", kube.kubeconfig().display());
    match stop.wait() {
        Ok(sig) => eprintln!("fake-kube: {sig}, stopping"),
        Err(e) => eprintln!("fake-kube: sigwait: {e}"),
    }
    drop(kube);
    ExitCode::SUCCESS
}
