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
mod random;
mod remote;
mod serve;
mod supervise;
mod tools;
mod words;
mod yaml;
mod zk;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    match cli::parse(&argv) {
        cli::Parsed::Run(mode) => match cli::dispatch(mode) {
            Ok(code) => code,
            Err(err) => {
                // `ocho <mode>: <what went wrong>`, as the parser's own errors read; a message
                // that already starts with the mode's name does not repeat it.
                let mode = mode_name(&argv);
                let message = error::chain(&err);
                let message = message.strip_prefix(&format!("{mode}: ")).unwrap_or(&message);
                eprintln!("ocho {mode}: {message}");
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

/// The mode being run: the link name's suffix (`ocho-ls`) or the first argument.
fn mode_name(argv: &[String]) -> &str {
    let prog = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p)).unwrap_or("ocho");
    prog.strip_prefix("ocho-").or(argv.get(1).map(String::as_str)).unwrap_or("ocho")
}
