//! `ocho`: the switchboard. Parse argv (or the `ocho-<mode>` link name), dispatch to one mode, map
//! its result to an exit code and print any error once.

mod audit;
mod cli;
mod clock;
mod completion;
mod confine;
mod definition;
mod error;
mod http;
mod init;
mod k8s;
mod ochopod;
mod pod;
mod portal;
mod remote;
mod serve;
mod supervise;
mod tools;
mod yaml;
mod zk;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    match cli::parse(&argv) {
        cli::Parsed::Run(mode) => match cli::dispatch(mode) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("ocho: {}", error::chain(&err));
                ExitCode::from(err.exit_code())
            }
        },
        cli::Parsed::Print { text, code } => {
            if code == 0 {
                print!("{text}");
            } else {
                eprint!("{text}");
            }
            ExitCode::from(code)
        }
    }
}
