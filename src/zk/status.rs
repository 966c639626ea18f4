//! `ocho zk-status`: an exec probe for images without a shell. Prints the `srvr` answer and
//! exits 1 unless ZooKeeper is serving.

use std::process::ExitCode;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::error::{Error, Result};
use crate::zk::probe::{self, Probe};

/// print ZooKeeper's srvr answer; exit 1 unless it is serving
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "zk-status",
    example = "{command_name}\n    ask the ZooKeeper on 127.0.0.1:2181; exit 0 only when it is serving",
    example = "{command_name} --zk 10.0.0.5:2181 -t 1\n    ask another server and give up after one second"
)]
pub struct Args {
    /// address of ZooKeeper as host:port (default 127.0.0.1:2181)
    #[argh(option, default = "String::from(\"127.0.0.1:2181\")")]
    pub zk: String,
    /// seconds to wait for the answer (default 3)
    #[argh(option, short = 't', default = "3")]
    pub timeout: u64,
}

/// Runs the probe once.
pub fn run(args: Args) -> Result<ExitCode> {
    let addr = if args.zk.contains(':') { args.zk.clone() } else { format!("{}:2181", args.zk) };
    match probe::srvr(&addr, Duration::from_secs(args.timeout.max(1))) {
        Ok(Probe::Serving(answer)) => {
            print!("{answer}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Probe::NotServing(answer)) => {
            print!("{answer}");
            // The same answer means "still loading" for a lone server and "no quorum" for an
            // ensemble member: say both rather than guess.
            let why = if answer.contains(probe::NOT_SERVING) {
                " (no quorum: an ensemble member serves only while a majority of the members \
                 reach each other; a lone server, until it has loaded its data)"
            } else {
                ""
            };
            eprintln!("ocho zk-status: zookeeper at {addr} is not serving{why}");
            Ok(ExitCode::from(1))
        }
        Err(source) => Err(Error::io("probe zookeeper at", addr, source)),
    }
}
