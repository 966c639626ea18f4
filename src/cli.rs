//! The command line: the single list of modes ([`Mode`]), busybox-style dispatch by link name
//! (`ocho-<mode>`), `ocho help [MODE]` and `ocho --version`. Parsing never exits the process; it
//! returns what to print and the exit code, so the portal can validate a tool line in-process.
//! Every help text passes through [`wrap_help`], so none is wider than [`HELP_WIDTH`].

use std::process::ExitCode;

use argh::{ArgsInfo, FromArgs, SubCommands};

use crate::error::{Error, Result};
use crate::{audit, completion, init, pod, portal, remote, tools, zk};

/// Top-level command line: one mode and its arguments.
#[derive(FromArgs)]
/// One static binary: ZooKeeper supervisor, portal, Ochopod agent and the tools.
struct Cli {
    #[argh(subcommand)]
    mode: Mode,
}

/// Where a mode may run: [`Reach::Tool`] modes also run for a client of the portal;
/// [`Reach::Local`] modes (the proxy's own processes, the agent, the operator's client) never
/// do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Tool,
    Local,
}

/// Declares [`Mode`] with every mode's [`Reach`] next to it, so that a mode cannot be added
/// without deciding whether a client of the portal may run it (fail closed: a missing decision
/// does not compile). From the one list come [`Mode`], the exhaustive `match` of
/// [`Mode::reach`] (no `_` arm) and the table behind [`is_tool`].
macro_rules! modes {
    ($($variant:ident($args:ty) => $reach:ident,)*) => {
        /// Every mode of `ocho`. Tools are the modes the portal may run for a client
        /// ([`Mode::reach`], [`is_tool`]).
        // Parsed once per process; boxing would only complicate argh's derive.
        #[allow(clippy::large_enum_variant)]
        #[derive(FromArgs, ArgsInfo)]
        #[argh(subcommand)]
        pub enum Mode {
            $($variant($args),)*
        }

        impl Mode {
            /// Whether this mode may run over HTTP.
            pub fn reach(&self) -> Reach {
                match self {
                    $(Mode::$variant(_) => Reach::$reach,)*
                }
            }
        }

        /// Every mode's name (as argh knows it) with its reach.
        const REACH: &[(&str, Reach)] =
            &[$((<$args as argh::SubCommand>::COMMAND.name, Reach::$reach),)*];
    };
}

modes! {
    Init(init::Args) => Local,
    Portal(portal::Args) => Local,
    Pod(pod::Args) => Local,
    ZkStatus(zk::status::Args) => Local,
    Remote(remote::Args) => Local,
    Completion(completion::Args) => Local,
    Args(tools::args::Args) => Tool,
    Grep(tools::grep::Args) => Tool,
    Info(tools::info::Args) => Tool,
    Log(tools::log::Args) => Tool,
    Ls(tools::ls::Args) => Tool,
    Status(tools::status::Args) => Tool,
    Port(tools::port::Args) => Tool,
    Poll(tools::poll::Args) => Tool,
    On(tools::on::Args) => Tool,
    Off(tools::off::Args) => Tool,
    Reset(tools::reset::Args) => Tool,
    Ping(tools::ping::Args) => Tool,
    Exec(tools::exec::Args) => Tool,
    Wait(tools::wait::Args) => Tool,
    Deploy(tools::deploy::Args) => Tool,
    Kill(tools::kill::Args) => Tool,
    Scale(tools::scale::Args) => Tool,
    Bump(tools::bump::Args) => Tool,
    Audit(audit::Args) => Tool,
}

/// What `parse` decided: run a mode, or print a text (help, version, usage error) and exit.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    Run(Mode),
    Print { text: String, code: u8 },
}

/// Runs one parsed mode. A process the portal started (confined, see [`crate::confine`]) runs
/// tools only, whatever the portal let through.
pub fn dispatch(mode: Mode) -> Result<ExitCode> {
    if mode.reach() != Reach::Tool && std::env::var_os(crate::confine::ENV).is_some() {
        return Err(Error::Usage(format!(
            "this mode never runs for a client of the portal (${} is set)",
            crate::confine::ENV
        )));
    }
    // Rust starts every program with SIGPIPE ignored, so `ocho grep | head` would panic on its
    // next write. Tools and the client are filters: let a closed pipe end them quietly, as it
    // ends any Unix tool. The long-running processes keep ignoring it and handle EPIPE.
    if !matches!(mode, Mode::Init(_) | Mode::Portal(_) | Mode::Pod(_)) {
        // SAFETY: called before this process starts any thread; SIG_DFL installs no handler.
        let _ = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        };
    }
    match mode {
        Mode::Init(args) => init::run(args),
        Mode::Portal(args) => portal::run(args),
        Mode::Pod(args) => pod::run(args),
        Mode::ZkStatus(args) => zk::status::run(args),
        Mode::Remote(args) => remote::run(args),
        Mode::Completion(args) => completion::run(args),
        Mode::Args(args) => tools::args::run(args),
        Mode::Grep(args) => tools::grep::run(args),
        Mode::Info(args) => tools::info::run(args),
        Mode::Log(args) => tools::log::run(args),
        Mode::Ls(args) => tools::ls::run(args),
        Mode::Status(args) => tools::status::run(args),
        Mode::Port(args) => tools::port::run(args),
        Mode::Poll(args) => tools::poll::run(args),
        Mode::On(args) => tools::on::run(args),
        Mode::Off(args) => tools::off::run(args),
        Mode::Reset(args) => tools::reset::run(args),
        Mode::Exec(args) => tools::exec::run(args),
        Mode::Ping(args) => tools::ping::run(args),
        Mode::Wait(args) => tools::wait::run(args),
        Mode::Deploy(args) => tools::deploy::run(args),
        Mode::Kill(args) => tools::kill::run(args),
        Mode::Scale(args) => tools::scale::run(args),
        Mode::Bump(args) => tools::bump::run(args),
        Mode::Audit(args) => audit::run(args),
    }
}

/// Parses the process's argv, honouring `ocho-<mode>` link names (busybox style).
pub fn parse(argv: &[String]) -> Parsed {
    let prog = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p)).unwrap_or("ocho");
    let mut words: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    if let Some(mode) = prog.strip_prefix("ocho-") {
        words.insert(0, mode);
    }
    parse_words(&words)
}

/// Names and one-line descriptions of every mode, in declaration order.
pub fn modes() -> impl Iterator<Item = (&'static str, &'static str)> {
    <Mode as SubCommands>::COMMANDS.iter().map(|c| (c.name, c.description))
}

/// True when `name` is a tool the portal may run on behalf of a client; false for every other
/// mode and for names that are no mode.
pub fn is_tool(name: &str) -> bool {
    REACH.iter().any(|&(m, reach)| m == name && reach == Reach::Tool)
}

/// The arguments that name files of the operator's, as `(tool, argument)`: a positional by its
/// field name, an option by its long name without `--`. `ocho cli` uploads them and expands
/// globs in them on the operator's machine (`/tools` marks them `"file": true`); every other
/// argument, a cluster glob included, reaches the tool as typed.
pub const FILE_ARGUMENTS: &[(&str, &str)] =
    &[("deploy", "files"), ("deploy", "overrides"), ("ping", "payload"), ("exec", "upload")];

/// True when argument `arg` of `tool` names a file (see [`FILE_ARGUMENTS`]).
pub fn takes_file(tool: &str, arg: &str) -> bool {
    FILE_ARGUMENTS.contains(&(tool, arg))
}

/// kubectl's spelling `deploy --dry-run=server|client`, which argh cannot parse (it takes no
/// `--flag=value`): `server` becomes `--server-dry-run`, `client` the plain `--dry-run`.
fn kubectl_spellings<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let mut words = words.to_vec();
    // `-h` is `--help`, as in kubectl: anywhere before `--`, except in the modes whose trailing
    // words are another command's (there only right after the mode). No mode has a short -h.
    let passthrough = matches!(words.first(), Some(&("cli" | "exec" | "pod")));
    let end = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    let end = if passthrough { end.min(2) } else { end };
    for w in words.iter_mut().take(end).skip(1) {
        if *w == "-h" {
            *w = "--help";
        }
    }
    if words.first() != Some(&"deploy") {
        return words;
    }
    words
        .into_iter()
        .map(|w| match w {
            "--dry-run=server" => "--server-dry-run",
            "--dry-run=client" => "--dry-run",
            w => w,
        })
        .collect()
}

/// Parses `ocho` arguments (without the program name).
pub fn parse_words(words: &[&str]) -> Parsed {
    let words = &kubectl_spellings(words)[..];
    let Some(&first) = words.first() else {
        return Parsed::Print {
            text: format!("usage: ocho <mode> [args…]\n\n{}", listing()),
            code: 2,
        };
    };
    match first {
        "--version" | "-V" | "version" => {
            Parsed::Print { text: format!("ocho {}\n", env!("CARGO_PKG_VERSION")), code: 0 }
        }
        "help" | "--help" | "-h" => match words.get(1) {
            Some(mode) => parse_words(&[mode, "--help"]),
            None => Parsed::Print { text: listing(), code: 0 },
        },
        mode if !modes().any(|(m, _)| m == mode) => Parsed::Print {
            text: format!(
                "ocho: unknown mode '{mode}'\navailable modes: {}\nrun 'ocho help' for a line on each\n",
                modes().map(|(m, _)| m).collect::<Vec<_>>().join(", ")
            ),
            code: 2,
        },
        mode => match Cli::from_args(&["ocho"], words) {
            Ok(cli) => Parsed::Run(cli.mode),
            Err(exit) if exit.status.is_ok() => {
                Parsed::Print { text: wrap_help(&exit.output, HELP_WIDTH) + "\n", code: 0 }
            }
            Err(exit) => Parsed::Print {
                text: format!(
                    "ocho {mode}: {}\nrun 'ocho {mode} --help' for more information\n",
                    exit.output.trim_end()
                ),
                code: 2,
            },
        },
    }
}

/// `ocho help`: every mode with its one-line description.
fn listing() -> String {
    let width = modes().map(|(m, _)| m.len()).max().unwrap_or(0);
    let mut text = String::from("modes:\n");
    for (name, description) in modes() {
        text.push_str(&format!("  {name:width$}  {description}\n"));
    }
    text.push_str("\n'ocho help MODE' or 'ocho MODE --help' for details\n");
    wrap_help(&text, HELP_WIDTH)
}

/// Columns of every help text: a terminal's default width.
pub const HELP_WIDTH: usize = 80;

/// Rewraps a help text rendered by argh so that no line is wider than `width` characters.
/// argh wraps option descriptions itself but prints the usage line on one line (a tool with
/// the shared options makes it 170 columns or more), and prints descriptions and notes as
/// written. Lines that fit are kept as they are, so intended line breaks stay; a longer line
/// is filled word by word:
/// - the `Usage:` line breaks between arguments (never inside `[--zk <zk>]`), continuation
///   lines aligned under its first argument;
/// - in a table section (`Options:`, `Positional Arguments:`, a listing of modes) a row
///   continues under its description column, as argh's own wrapping does;
/// - any other line (descriptions, notes, examples) continues at its own indentation.
///
/// A single word wider than the room left is split, so the width is a guarantee.
pub fn wrap_help(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    // argh puts a heading before every section but the description; its table sections run
    // to the next heading.
    let mut table = false;
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if is_heading(line) {
            table = !matches!(line, "Notes:" | "Examples:");
        }
        // argh indents the blank line between two paragraphs of a note.
        let line = line.trim_end_matches(' ');
        if line.chars().count() <= width {
            out.push_str(line);
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            wrap_usage(&mut out, usage, width);
        } else {
            let indent = if table { description_column(line) } else { leading_spaces(line) };
            let words: Vec<&str> = line.trim_start_matches(' ').split(' ').collect();
            fill(&mut out, leading_spaces(line), &words, indent, width);
        }
    }
    out
}

/// A section heading: `Options:`, `Positional Arguments:`, `modes:` (unindented, one or two
/// words, a colon).
fn is_heading(line: &str) -> bool {
    line.ends_with(':')
        && !line.starts_with(' ')
        && line.split(' ').count() <= 2
        && line.chars().all(|c| c.is_alphabetic() || c == ' ' || c == ':')
}

fn leading_spaces(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ').count()
}

/// Where the description of a table row starts: after the name and the run of two or more
/// spaces that follows it (`  -t, --timeout     seconds …`); a row that is already a
/// continuation (only spaces before its text) keeps its own indentation.
fn description_column(line: &str) -> usize {
    let chars: Vec<char> = line.chars().collect();
    let lead = leading_spaces(line);
    (lead..chars.len().saturating_sub(1))
        .find(|&i| chars[i] == ' ' && chars[i + 1] == ' ')
        .map(|gap| gap + chars[gap..].iter().take_while(|c| **c == ' ').count())
        .filter(|&column| column < chars.len())
        .unwrap_or(lead)
}

/// Appends `words` filled to `width`: the first line indented by `lead`, the others by
/// `indent` (at most half the width, so a deep indentation still leaves room for text).
/// Words were separated by single spaces; an empty word stands for a doubled space, kept
/// inside a line (the gap after a table row's name) and dropped at the start of one.
fn fill(out: &mut String, lead: usize, words: &[&str], indent: usize, width: usize) {
    let indent = if indent >= width / 2 { lead.min(width / 2) } else { indent };
    let mut current = " ".repeat(lead);
    let mut len = lead;
    let mut fresh = true;
    for &word in words {
        let word_len = word.chars().count();
        if !fresh && len + 1 + word_len > width {
            push_line(out, &current);
            (current, len, fresh) = (" ".repeat(indent), indent, true);
        }
        if fresh && word.is_empty() {
            continue;
        }
        if !fresh {
            current.push(' ');
            len += 1;
        }
        // Only a word wider than a whole line gets here too wide: it is cut where lines end.
        let mut rest = word;
        while len + rest.chars().count() > width {
            let room = width.saturating_sub(len);
            if room > 0 {
                let cut = rest.char_indices().nth(room).map_or(rest.len(), |(at, _)| at);
                current.push_str(&rest[..cut]);
                rest = &rest[cut..];
            }
            push_line(out, &current);
            (current, len) = (" ".repeat(indent), indent);
        }
        current.push_str(rest);
        len += rest.chars().count();
        fresh = false;
    }
    out.push_str(current.trim_end());
}

/// Ends a filled line, without trailing spaces (the caller's `\n` ends the last one).
fn push_line(out: &mut String, line: &str) {
    out.push_str(line.trim_end());
    out.push('\n');
}

/// Appends `Usage: <usage>` broken between arguments, continuation lines aligned under the
/// first argument (the word after the command name).
fn wrap_usage(out: &mut String, usage: &str, width: usize) {
    let units = usage_units(usage);
    // The command name is every word before the first argument (`ocho zk-status`).
    let name_len = units.iter().position(|u| u.starts_with(['[', '<', '-'])).unwrap_or(units.len());
    let head = format!("Usage: {}", units[..name_len].join(" "));
    let indent = head.chars().count() + 1;
    let words: Vec<&str> = std::iter::once(head.as_str())
        .chain(units[name_len..].iter().map(String::as_str))
        .collect();
    fill(out, 0, &words, indent, width);
}

/// The arguments of a usage line, each kept whole: a bracketed group (`[--zk <zk>]`,
/// `[<clusters...>]`) is one unit, and so is a required option with its value (`-f <factor>`).
fn usage_units(usage: &str) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    let mut depth = 0usize;
    for word in usage.split(' ').filter(|w| !w.is_empty()) {
        let joins_group = depth > 0;
        let joins_option = word.starts_with('<')
            && units.last().is_some_and(|u| u.starts_with('-') && !u.contains(' '));
        match units.last_mut() {
            Some(last) if joins_group || joins_option => {
                last.push(' ');
                last.push_str(word);
            }
            _ => units.push(word.to_string()),
        }
        for c in word.chars() {
            match c {
                '[' | '<' => depth += 1,
                ']' | '>' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(words: &[&str]) -> (String, u8) {
        match parse_words(words) {
            Parsed::Print { text, code } => (text, code),
            Parsed::Run(_) => panic!("{words:?} parsed as a mode to run"),
        }
    }

    #[test]
    fn help_lists_every_mode_once() {
        let (text, code) = printed(&["help"]);
        assert_eq!(code, 0);
        for (mode, description) in modes() {
            assert_eq!(text.matches(&format!("  {mode} ")).count(), 1, "{mode} in {text}");
            assert!(!description.is_empty(), "{mode} has no description");
        }
    }

    #[test]
    fn help_mode_equals_mode_dash_dash_help() {
        assert_eq!(printed(&["help", "init"]), printed(&["init", "--help"]));
        assert!(printed(&["help", "init"]).0.contains("--grace"));
    }

    #[test]
    fn dash_h_is_help_as_in_kubectl_but_not_inside_another_command() {
        assert_eq!(printed(&["ls", "-h"]), printed(&["ls", "--help"]));
        assert_eq!(printed(&["grep", "web", "-j", "-h"]), printed(&["grep", "--help"]));
        assert_eq!(printed(&["exec", "-h"]), printed(&["exec", "--help"]));
        // The tool line of `cli` and the command of `exec` and `pod` keep their -h.
        assert!(matches!(parse_words(&["cli", "host", "ls", "-h"]), Parsed::Run(Mode::Remote(_))));
        assert!(matches!(
            parse_words(&["exec", "web", "shell", "-h", "--force"]),
            Parsed::Run(Mode::Exec(_))
        ));
        // After `--` a word is an operand.
        assert!(matches!(parse_words(&["args", "--", "-h"]), Parsed::Run(Mode::Args(_))));
    }

    #[test]
    fn unknown_mode_lists_the_available_ones_and_exits_2() {
        let (text, code) = printed(&["frobnicate"]);
        assert_eq!(code, 2);
        assert!(text.contains("unknown mode 'frobnicate'"), "{text}");
        assert!(text.contains("init, portal"), "{text}");
    }

    #[test]
    fn usage_errors_exit_2_and_name_the_mode() {
        let (text, code) = printed(&["init", "--no-such-flag"]);
        assert_eq!(code, 2);
        assert!(text.starts_with("ocho init: "), "{text}");
    }

    #[test]
    fn link_name_selects_the_mode() {
        let argv = ["/usr/local/bin/ocho-init".to_string(), "--help".to_string()];
        match parse(&argv) {
            Parsed::Print { text, code } => {
                assert_eq!(code, 0);
                assert!(text.contains("--zk-data"), "{text}");
            }
            Parsed::Run(_) => panic!("--help should print"),
        }
    }

    #[test]
    fn version_and_no_arguments() {
        assert_eq!(printed(&["--version"]), (format!("ocho {}\n", env!("CARGO_PKG_VERSION")), 0));
        assert_eq!(printed(&[]).1, 2);
    }

    #[test]
    fn only_client_facing_modes_are_tools() {
        assert!(!is_tool("init"));
        assert!(!is_tool("portal"));
        assert!(!is_tool("no-such-tool"));
        assert!(!is_tool("cli"));
        assert!(is_tool("args"));
        assert!(!is_tool("pod"));
        assert!(!is_tool("zk-status"));
        // It writes a script for the operator's own shell: nothing a portal client needs.
        assert!(!is_tool("completion"));
    }

    #[test]
    fn every_mode_has_exactly_one_reach_and_parsed_modes_agree() {
        let names: Vec<&str> = modes().map(|(m, _)| m).collect();
        let table: Vec<&str> = REACH.iter().map(|(m, _)| *m).collect();
        assert_eq!(names, table);
        let local: Vec<&str> = modes().map(|(m, _)| m).filter(|m| !is_tool(m)).collect();
        assert_eq!(local, ["init", "portal", "pod", "zk-status", "cli", "completion"]);
        let Parsed::Run(mode) = parse_words(&["pod", "--zk", "x", "--", "true"]) else {
            panic!("pod parses")
        };
        assert_eq!(mode.reach(), Reach::Local);
        let Parsed::Run(mode) = parse_words(&["ls"]) else { panic!("ls parses") };
        assert_eq!(mode.reach(), Reach::Tool);
    }

    #[test]
    fn every_file_argument_is_an_argument_of_its_tool() {
        let listing = crate::portal::tools_json(None);
        for (tool, arg) in FILE_ARGUMENTS {
            let entry = listing["tools"].as_array().unwrap().iter().find(|t| t["name"] == *tool);
            let entry = entry.unwrap_or_else(|| panic!("{tool} is no tool"));
            let marked: Vec<&serde_json::Value> = entry["positionals"]
                .as_array()
                .unwrap()
                .iter()
                .chain(entry["options"].as_array().unwrap())
                .filter(|a| a["file"] == true)
                .collect();
            let named = |a: &&&serde_json::Value| {
                a["name"] == *arg || a["long"] == format!("--{arg}").as_str()
            };
            assert!(marked.iter().any(|a| named(&a)), "{tool} has no file argument {arg}");
        }
    }

    fn widest(text: &str) -> usize {
        text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn usage_lines_break_between_arguments_under_the_first_one() {
        let usage = "Usage: ocho ls [--all] [--zk <zk>] [--zk-timeout <zk-timeout>] [-t <timeout>] \
                     [--parallel <parallel>] [-i <indices...>] [-j] [--] [<clusters...>]";
        let wrapped = wrap_help(usage, 50);
        assert_eq!(
            wrapped,
            "Usage: ocho ls [--all] [--zk <zk>]\n\
             \x20              [--zk-timeout <zk-timeout>]\n\
             \x20              [-t <timeout>]\n\
             \x20              [--parallel <parallel>]\n\
             \x20              [-i <indices...>] [-j] [--]\n\
             \x20              [<clusters...>]"
        );
        // A required option keeps its value; a two-word command name stays whole.
        let wrapped = wrap_help("Usage: ocho zk-status -f <factor> [--wait] [--zk <zk>]", 46);
        assert_eq!(
            wrapped,
            "Usage: ocho zk-status -f <factor> [--wait]\n                      [--zk <zk>]"
        );
    }

    #[test]
    fn table_rows_continue_under_their_description_and_notes_at_their_indent() {
        let text = "Options:\n  -t, --timeout     seconds each pod has to answer (default 5) and more\n\
                    \nNotes:\n  Text: a long note that goes on and on past the width\n  short";
        assert_eq!(
            wrap_help(text, 46),
            "Options:\n  -t, --timeout     seconds each pod has to\n\
             \x20                   answer (default 5) and\n\
             \x20                   more\n\
             \nNotes:\n  Text: a long note that goes on and on past\n  the width\n  short"
        );
        // Past half the width, a continuation falls back to the line's own indentation.
        assert_eq!(
            wrap_help("Options:\n  --x               one two three", 30),
            "Options:\n  --x               one two\n  three"
        );
    }

    #[test]
    fn lines_that_fit_are_kept_and_overlong_words_are_cut() {
        let text = "Usage: ocho x\n\ndescription\n\nNotes:\n  keep  its  spacing\n  \nlast";
        assert_eq!(wrap_help(text, 80), text.replace("\n  \n", "\n\n"));
        let wrapped = wrap_help(&format!("  {}", "x".repeat(25)), 10);
        assert_eq!(wrapped, "  xxxxxxxx\n  xxxxxxxx\n  xxxxxxxx\n  x");
        assert_eq!(widest(&wrapped), 10);
    }

    #[test]
    fn every_help_fits_80_columns_and_has_examples() {
        for (mode, _) in modes() {
            let (text, code) = printed(&[mode, "--help"]);
            assert_eq!(code, 0, "{mode}");
            assert!(widest(&text) <= HELP_WIDTH, "{mode} --help:\n{text}");
            assert!(text.contains("\nExamples:\n  ocho "), "{mode} --help:\n{text}");
        }
        assert!(widest(&listing()) <= HELP_WIDTH, "{}", listing());
    }

    /// Examples are command lines the operator may copy: each must parse with the options the
    /// tools have (an option renamed without its examples fails here).
    #[test]
    fn every_example_parses() {
        let info = <Mode as ArgsInfo>::get_args_info();
        for command in &info.commands {
            let examples = command.command.examples;
            assert!(
                (2..=4).contains(&examples.len()),
                "{}: {} examples",
                command.name,
                examples.len()
            );
            for example in examples {
                let line = example.lines().next().unwrap_or_default();
                let line = line.replace("{command_name}", &format!("ocho {}", command.name));
                let words = crate::words::split(&line).unwrap();
                assert_eq!(words[0], "ocho", "{line}");
                // What the shell does with the output (`> file`) is not ocho's.
                let words: Vec<&str> = words[1..]
                    .iter()
                    .map(String::as_str)
                    .take_while(|w| !matches!(*w, ">" | ">>" | "|"))
                    .collect();
                assert!(matches!(parse_words(&words), Parsed::Run(_)), "{line}");
                let what = example.lines().nth(1).unwrap_or_default();
                assert!(what.starts_with("    ") && what.len() > 8, "{line}: says what it does");
            }
        }
    }
}
