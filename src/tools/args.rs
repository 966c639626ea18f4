//! `ocho args`: a diagnostic tool. Prints the arguments exactly as received, one per line, and
//! the files of the working directory (for a portal request: its uploads), so that an operator
//! can check quoting and uploads. Its options make it slow, loud or failing on purpose, to check
//! a portal's deadline, output limit and exit-code handling.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::error::{Error, Result};

/// print the arguments as received and the files in the working directory (diagnostic)
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "args",
    example = "{command_name} one 'two words' three\n    print the three arguments as the tool received them",
    example = "{command_name} --json --env\n    print the arguments, the files here and the names of the environment\n    variables as JSON",
    example = "{command_name} --sleep 30 --helper\n    sleep 30 seconds next to a helper process (to test deadlines)"
)]
pub struct Args {
    /// print one JSON object per repetition, with "args" (list) and "files" (name, bytes)
    #[argh(switch)]
    pub json: bool,
    /// print the arguments this many times (default 1)
    #[argh(option, default = "1")]
    pub repeat: u64,
    /// also print each argument on stderr, prefixed with "err: "
    #[argh(switch)]
    pub stderr: bool,
    /// sleep this many seconds after printing (diagnostic for deadlines)
    #[argh(option, default = "0.0")]
    pub sleep: f64,
    /// start a helper process that sleeps as long as --sleep and print its pid (diagnostic: a
    /// deadline must end the whole process group)
    #[argh(switch)]
    pub helper: bool,
    /// also print the names (never the values) of the environment variables the tool sees
    #[argh(switch)]
    pub env: bool,
    /// exit with this code after printing (default 0)
    #[argh(option, default = "0")]
    pub exit: u8,
    /// the arguments to print
    #[argh(positional, greedy)]
    pub words: Vec<String>,
}

/// Prints, optionally sleeps, exits with `--exit`.
pub fn run(args: Args) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let files = listing()?;
    let werr = |source| Error::io("write", "stdout", source);
    for _ in 0..args.repeat {
        if args.json {
            let files: Vec<_> =
                files.iter().map(|(n, b)| serde_json::json!({"name": n, "bytes": b})).collect();
            let mut text = serde_json::json!({"args": args.words, "files": files});
            if args.env {
                text["env"] = serde_json::json!(env_names());
            }
            writeln!(out, "{text}").map_err(werr)?;
        } else {
            for (i, word) in args.words.iter().enumerate() {
                writeln!(out, "arg {}: {word}", i + 1).map_err(werr)?;
            }
            for (name, bytes) in &files {
                writeln!(out, "file: {name} ({bytes} bytes)").map_err(werr)?;
            }
            if args.env {
                for name in env_names() {
                    writeln!(out, "env: {name}").map_err(werr)?;
                }
            }
        }
        if args.stderr {
            out.flush().map_err(werr)?;
            for word in &args.words {
                eprintln!("err: {word}");
            }
        }
    }
    out.flush().map_err(werr)?;
    if args.sleep > 0.0 {
        let sleep = Duration::try_from_secs_f64(args.sleep)
            .map_err(|_| Error::Usage(format!("--sleep {}: not a duration", args.sleep)))?;
        let _helper = if args.helper {
            let child = Command::new("/proc/self/exe")
                .args(["args", "--sleep", &args.sleep.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|source| Error::Spawn { what: "args helper".into(), source })?;
            writeln!(out, "helper pid {}", child.id()).map_err(werr)?;
            out.flush().map_err(werr)?;
            Some(child)
        } else {
            None
        };
        std::thread::sleep(sleep);
    }
    Ok(ExitCode::from(args.exit))
}

/// Names of the environment's variables, sorted.
fn env_names() -> Vec<String> {
    let mut names: Vec<String> =
        std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Names and sizes of the working directory's entries, sorted.
fn listing() -> Result<Vec<(String, u64)>> {
    let dir = std::fs::read_dir(".").map_err(|source| Error::io("list", ".", source))?;
    let mut files: Vec<(String, u64)> = dir
        .filter_map(|e| e.ok())
        .map(|e| {
            let bytes = e.metadata().map_or(0, |m| m.len());
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    Ok(files)
}
