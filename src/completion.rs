//! `ocho completion bash|zsh|fish`: a completion script for the operator's shell, generated from
//! the argh definitions every mode parses with (`ArgsInfo`): the modes with their descriptions,
//! each mode's options (long and short forms, whether they take a value) and its positional
//! arguments. A new option is therefore completed as soon as it exists; nothing here lists them.
//!
//! What is completed: the mode as first word (and after `help`), a mode's options after `-`,
//! file names for the arguments that name files ([`cli::FILE_ARGUMENTS`] and [`PATH_ARGUMENTS`])
//! and for the words after `--` or a command's greedy tail (`pod -- CMD…`), the shell names of
//! `completion` itself. Other values (hosts, seconds, cluster globs) have no candidates. In bash,
//! the tool line of `ocho cli [PROXY] TOOL …` is completed as that tool's own (tool names, then
//! its options and files); the zsh and fish scripts complete those words as file names.

use std::io::Write;
use std::process::ExitCode;

use argh::{ArgsInfo, FlagInfoKind, FromArgs, Optionality};

use crate::cli::{self, Mode};
use crate::error::{Error, Result};

/// print a completion script for ocho's modes and options: bash, zsh or fish
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "completion",
    example = "{command_name} bash > ~/.local/share/bash-completion/completions/ocho\n    \
               install it for bash: new shells complete ocho's modes and options",
    example = "{command_name} zsh > ~/.zfunc/_ocho\n    \
               install it for zsh (with `fpath+=~/.zfunc` before `compinit` in ~/.zshrc)",
    example = "{command_name} fish > ~/.config/fish/completions/ocho.fish\n    \
               install it for fish",
    note = "For the running shell only: `source <(ocho completion bash)` in bash or zsh, \
            `ocho completion fish | source` in fish. The script describes this binary's modes \
            and options; generate it again after an upgrade. It completes the mode, a mode's \
            options after `-`, file names where an argument names a file, and nothing for \
            other values (hosts, seconds, cluster globs)."
)]
pub struct Args {
    /// the shell: bash, zsh or fish
    #[argh(positional)]
    pub shell: String,
}

/// The shells a script is generated for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// Arguments of the local modes that name a path on this machine, as `(mode, argument)` like
/// [`cli::FILE_ARGUMENTS`]: completed as file names, but not uploaded by `ocho cli` (these
/// modes never run through the portal, or read the path where they run).
pub const PATH_ARGUMENTS: &[(&str, &str)] = &[
    ("init", "zk-data"),
    ("init", "zk-classpath"),
    ("init", "java"),
    ("init", "tokens-file"),
    ("init", "tls-cert"),
    ("init", "tls-key"),
    ("init", "tls-dir"),
    ("init", "audit"),
    ("portal", "work-dir"),
    ("portal", "token-file"),
    ("portal", "tokens-file"),
    ("portal", "tls-cert"),
    ("portal", "tls-key"),
    ("portal", "audit"),
    ("cli", "ca"),
    ("audit", "audit"),
];

pub fn run(args: Args) -> Result<ExitCode> {
    let script = script(&args.shell)?;
    let mut out = std::io::stdout().lock();
    out.write_all(script.as_bytes()).and_then(|()| out.flush()).map_err(|source| Error::Io {
        what: "write the script to",
        path: "stdout".into(),
        source,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The completion script for `shell`; a usage error for a shell without one.
pub fn script(shell: &str) -> Result<String> {
    let modes = model();
    match shell {
        "bash" => Ok(bash(&modes)),
        "zsh" => Ok(zsh(&modes)),
        "fish" => Ok(fish(&modes)),
        other => Err(Error::Usage(format!(
            "completion: no script for shell '{other}'; give one of {}",
            SHELLS.join(", ")
        ))),
    }
}

/// One mode as the scripts need it.
struct ModeSpec {
    name: &'static str,
    description: &'static str,
    options: Vec<OptionSpec>,
    operands: Vec<Operand>,
}

struct OptionSpec {
    /// With its dashes: `--timeout`.
    long: &'static str,
    short: Option<char>,
    /// The value's name when the option takes one.
    value: Option<&'static str>,
    /// Its value names a file.
    path: bool,
    repeats: bool,
    description: &'static str,
}

struct Operand {
    name: &'static str,
    kind: Kind,
    /// Several words (a list, or a greedy tail).
    repeats: bool,
    /// Every word from this one on is the operand's, options included (`pod -- CMD…`).
    greedy: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No candidates (a host, a number, a cluster glob).
    Word,
    Path,
    /// One of these words.
    Choice(&'static [&'static str]),
}

fn names_a_file(mode: &str, arg: &str) -> bool {
    cli::takes_file(mode, arg) || PATH_ARGUMENTS.contains(&(mode, arg))
}

/// Every mode from argh's description of [`Mode`], in `ocho help`'s order.
fn model() -> Vec<ModeSpec> {
    let info = <Mode as ArgsInfo>::get_args_info();
    info.commands
        .into_iter()
        .map(|c| {
            let cmd = c.command;
            let options = cmd
                .flags
                .iter()
                .filter(|f| !f.hidden)
                .map(|f| OptionSpec {
                    long: f.long,
                    short: f.short,
                    value: match f.kind {
                        FlagInfoKind::Switch => None,
                        FlagInfoKind::Option { arg_name } => Some(arg_name),
                    },
                    path: names_a_file(c.name, f.long.trim_start_matches("--")),
                    repeats: f.optionality == Optionality::Repeating,
                    description: f.description,
                })
                .collect();
            let operands = cmd
                .positionals
                .iter()
                .filter(|p| !p.hidden)
                .map(|p| {
                    let greedy = p.optionality == Optionality::Greedy;
                    let kind = if c.name == "completion" {
                        Kind::Choice(SHELLS)
                    } else if greedy || names_a_file(c.name, p.name) {
                        // A greedy tail is another command's words: most often paths.
                        Kind::Path
                    } else {
                        Kind::Word
                    };
                    Operand {
                        name: p.name,
                        kind,
                        repeats: greedy || p.optionality == Optionality::Repeating,
                        greedy,
                    }
                })
                .collect();
            ModeSpec { name: c.name, description: cmd.description, options, operands }
        })
        .collect()
}

/// `'text'` for a POSIX shell (bash and zsh alike).
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn header(shell: &str) -> String {
    format!(
        "# {shell} completion for ocho {version}, generated by `ocho completion {shell}` from the\n\
         # argument definitions of its modes: generate it again after an upgrade.\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

fn bash(modes: &[ModeSpec]) -> String {
    let names: Vec<&str> = modes.iter().map(|m| m.name).collect();
    let tools: Vec<&str> = names.iter().copied().filter(|m| cli::is_tool(m)).collect();
    let mut cases = String::new();
    for mode in modes {
        let words = |pick: &dyn Fn(&OptionSpec) -> bool| {
            let mut words = Vec::new();
            for o in mode.options.iter().filter(|o| pick(o)) {
                words.push(o.long.to_string());
                words.extend(o.short.map(|s| format!("-{s}")));
            }
            quoted(&words.join(" "))
        };
        // One word per operand: its kind, `*` when it repeats, `!` when greedy.
        let operands: Vec<String> = mode
            .operands
            .iter()
            .map(|p| {
                let kind = match p.kind {
                    Kind::Word => "word",
                    Kind::Path => "path",
                    Kind::Choice(_) => "choice",
                };
                format!(
                    "{kind}{}{}",
                    if p.repeats { "*" } else { "" },
                    if p.greedy { "!" } else { "" }
                )
            })
            .collect();
        let choices: Vec<&str> = mode
            .operands
            .iter()
            .flat_map(|p| match p.kind {
                Kind::Choice(words) => words,
                _ => &[],
            })
            .copied()
            .collect();
        cases.push_str(&format!(
            "        {name})\n            opts={all}\n            takes={takes}\n            \
             paths={paths}\n            operands={operands}\n            choices={choices} ;;\n",
            name = quoted(mode.name),
            all = words(&|_| true),
            takes = words(&|o| o.value.is_some()),
            paths = words(&|o| o.path),
            operands = quoted(&operands.join(" ")),
            choices = quoted(&choices.join(" ")),
        ));
    }
    format!(
        r#"{header}#
# Load it in the running shell with `source <(ocho completion bash)`, or install it where
# bash-completion finds it: `ocho completion bash > ~/.local/share/bash-completion/completions/ocho`.

_ocho_modes={modes}
# The modes a portal runs, which `ocho cli` sends it.
_ocho_tools={tools}

# Sets COMPREPLY to the lines of stdin, one candidate each (a file name may hold spaces).
# A loop, not mapfile: bash 3.2, which macOS still ships, has no mapfile.
_ocho_reply() {{
    local line
    COMPREPLY=()
    while IFS= read -r line; do
        COMPREPLY+=("$line")
    done
}}

# Completes file names (directories included, so a path can be walked).
_ocho_files() {{
    compopt -o filenames 2>/dev/null
    _ocho_reply < <(compgen -f -- "$1")
}}

# The kind of operand number $1 (from 0) in the caller's $kinds: the last one repeats when
# it is a list.
_ocho_kind() {{
    if (($1 < ${{#kinds[@]}})); then
        printf '%s' "${{kinds[$1]}}"
    elif ((${{#kinds[@]}})) && [[ ${{kinds[${{#kinds[@]}} - 1]}} == *'*'* ]]; then
        printf '%s' "${{kinds[${{#kinds[@]}} - 1]}}"
    fi
}}

_ocho() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        _ocho_reply < <(compgen -W "$_ocho_modes help --help --version" -- "$cur")
        return 0
    fi
    local mode=${{COMP_WORDS[1]}} opts takes paths operands choices
    case $mode in
        help)
            if ((COMP_CWORD == 2)); then
                _ocho_reply < <(compgen -W "$_ocho_modes" -- "$cur")
            fi
            return 0 ;;
{cases}        *) return 0 ;;
    esac
    local -a kinds
    read -r -a kinds <<<"$operands"
    # Walk the words before the cursor: skip option values, count operands, and stop taking
    # options after `--` or once a greedy operand (another command's words) has begun.
    # `cli [PROXY] TOOL ARGS…`: the proxy is the first operand unless --proxy or
    # $OCHOPOD_PROXY names it; the words from the tool on are completed as that tool's.
    local i word value_of='' operand=0 options=1 tool_at=1
    [[ -n ${{OCHOPOD_PROXY:-}} ]] && tool_at=0
    for ((i = 2; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        if ((options)) && [[ $word == -- ]]; then
            options=0
        elif ((options)) && [[ $word == -* ]]; then
            [[ $mode == cli && $word == --proxy ]] && tool_at=0
            if [[ " $takes " == *" $word "* ]]; then
                ((i + 1 == COMP_CWORD)) && value_of=$word
                i=$((i + 1))
            fi
        else
            if [[ $mode == cli ]] && ((operand == tool_at)) &&
                [[ " $_ocho_tools " == *" $word "* ]]; then
                COMP_WORDS=(ocho "${{COMP_WORDS[@]:i}}")
                COMP_CWORD=$((COMP_CWORD - i + 1))
                _ocho
                return 0
            fi
            [[ $(_ocho_kind "$operand") == *'!'* ]] && options=0
            operand=$((operand + 1))
        fi
    done
    if [[ -n $value_of ]]; then
        [[ " $paths " == *" $value_of "* ]] && _ocho_files "$cur"
        return 0
    fi
    if ((options)) && [[ $cur == -* ]]; then
        _ocho_reply < <(compgen -W "$opts" -- "$cur")
        return 0
    fi
    if [[ $mode == cli ]]; then
        # A proxy has no candidates; a tool is one of those the portal runs.
        ((operand == tool_at)) && _ocho_reply < <(compgen -W "$_ocho_tools" -- "$cur")
        return 0
    fi
    case $(_ocho_kind "$operand") in
        path*) _ocho_files "$cur" ;;
        choice*) _ocho_reply < <(compgen -W "$choices" -- "$cur") ;;
        # Nothing to offer for the operand (a cluster glob, a port): the options are.
        *) ((options)) && _ocho_reply < <(compgen -W "$opts" -- "$cur") ;;
    esac
    return 0
}}

complete -F _ocho ocho
"#,
        header = header("bash"),
        modes = quoted(&names.join(" ")),
        tools = quoted(&tools.join(" ")),
    )
}

/// An `_arguments` description: in `[…]`, brackets and backslashes are escaped.
fn zsh_description(text: &str) -> String {
    text.replace('\\', r"\\").replace('[', r"\[").replace(']', r"\]")
}

fn zsh(modes: &[ModeSpec]) -> String {
    let described: Vec<String> = modes
        .iter()
        .map(|m| format!("        {}", quoted(&format!("{}:{}", m.name, m.description))))
        .collect();
    let mut cases = String::new();
    for mode in modes {
        let mut specs = Vec::new();
        for o in &mode.options {
            let forms = match o.short {
                Some(s) => format!("{{-{s},{}}}", o.long),
                None => o.long.to_string(),
            };
            // A short and a long form exclude each other unless the option repeats.
            let exclusive = match (o.short, o.repeats) {
                (_, true) => quoted("*"),
                (Some(s), false) => quoted(&format!("(-{s} {})", o.long)),
                (None, false) => String::new(),
            };
            let value = match o.value {
                Some(name) if o.path => format!(":{name}:_files"),
                Some(name) => format!(":{name}: "),
                None => String::new(),
            };
            let description = quoted(&format!("[{}]{value}", zsh_description(o.description)));
            specs.push(format!("{exclusive}{forms}{description}"));
        }
        for p in &mode.operands {
            let action = match p.kind {
                Kind::Word => " ".to_string(),
                Kind::Path => "_files".to_string(),
                Kind::Choice(words) => format!("({})", words.join(" ")),
            };
            // `*::` hands the rest of the line, options included, to a greedy operand.
            let spec = match (p.repeats, p.greedy) {
                (_, true) => format!("*::{}:{action}", p.name),
                (true, false) => format!("*:{}:{action}", p.name),
                (false, false) => format!(":{}:{action}", p.name),
            };
            specs.push(quoted(&spec));
        }
        let specs: String = specs.iter().map(|s| format!(" \\\n            {s}")).collect();
        cases.push_str(&format!(
            "        ({name})\n          _arguments -S{specs} ;;\n",
            name = quoted(mode.name)
        ));
    }
    format!(
        r#"#compdef ocho
{header}#
# Load it in the running shell with `source <(ocho completion zsh)`, or install it as `_ocho`
# in a directory of $fpath (before compinit runs).

_ocho() {{
    local curcontext=$curcontext state line
    local -a modes
    modes=(
{described}
    )
    _arguments -C \
        '(- *)--version[print the version]' \
        '(- *)--help[list the modes]' \
        '1:mode:->mode' \
        '*::argument:->argument'
    case $state in
    (mode)
        _describe -t modes 'ocho mode' modes ;;
    (argument)
        curcontext=${{curcontext%:*:*}}:ocho-$words[1]:
        case $words[1] in
        (help)
          _describe -t modes 'ocho mode' modes ;;
{cases}        esac ;;
    esac
}}

if [[ $funcstack[1] == _ocho ]]; then
    _ocho "$@"
else
    compdef _ocho ocho
fi
"#,
        header = header("zsh"),
        described = described.join("\n"),
    )
}

/// `'text'` for fish, where a backslash and a quote are escaped inside single quotes.
fn fish_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

fn fish(modes: &[ModeSpec]) -> String {
    let mut lines = Vec::new();
    for mode in modes {
        lines.push(format!(
            "complete -c ocho -n __ocho_needs_mode -a {} -d {}",
            fish_quoted(mode.name),
            fish_quoted(mode.description)
        ));
    }
    let names: Vec<&str> = modes.iter().map(|m| m.name).collect();
    lines.push(format!(
        "complete -c ocho -n '__ocho_mode help' -a {}",
        fish_quoted(&names.join(" "))
    ));
    for mode in modes {
        let when = fish_quoted(&format!("__ocho_mode {}", mode.name));
        for o in &mode.options {
            let mut line = format!("complete -c ocho -n {when}");
            if let Some(s) = o.short {
                line.push_str(&format!(" -s {s}"));
            }
            line.push_str(&format!(" -l {}", o.long.trim_start_matches("--")));
            match (o.value, o.path) {
                (Some(_), true) => line.push_str(" -r -F"),
                (Some(_), false) => line.push_str(" -x"),
                (None, _) => {}
            }
            line.push_str(&format!(" -d {}", fish_quoted(o.description)));
            lines.push(line);
        }
        for p in &mode.operands {
            match p.kind {
                Kind::Word => {}
                Kind::Path => lines.push(format!("complete -c ocho -n {when} -F")),
                Kind::Choice(words) => lines.push(format!(
                    "complete -c ocho -n {when} -a {}",
                    fish_quoted(&words.join(" "))
                )),
            }
        }
    }
    format!(
        r#"{header}#
# Load it in the running shell with `ocho completion fish | source`, or install it as
# ~/.config/fish/completions/ocho.fish.

# True while the mode (the first word) is being typed.
function __ocho_needs_mode
    test (count (commandline -opc)) -eq 1
end

# True when the first word is mode $argv[1].
function __ocho_mode
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test "$words[2]" = "$argv[1]"
end

# Files only where an argument names a file.
complete -c ocho -f
complete -c ocho -n __ocho_needs_mode -l help -d 'list the modes'
complete -c ocho -n __ocho_needs_mode -l version -d 'print the version'
complete -c ocho -n __ocho_needs_mode -a help -d 'list the modes, or show the help of one'
{lines}
"#,
        header = header("fish"),
        lines = lines.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_argument_is_an_option_of_a_local_mode() {
        let modes = model();
        for (mode, arg) in PATH_ARGUMENTS {
            let spec = modes.iter().find(|m| m.name == *mode);
            let spec = spec.unwrap_or_else(|| panic!("{mode} is no mode"));
            let option = spec.options.iter().find(|o| o.long == format!("--{arg}"));
            let option = option.unwrap_or_else(|| panic!("{mode} has no option --{arg}"));
            assert!(option.value.is_some() && option.path, "{mode} --{arg} takes a path");
        }
    }

    #[test]
    fn the_model_follows_the_argument_definitions() {
        let modes = model();
        let names: Vec<&str> = modes.iter().map(|m| m.name).collect();
        let listed: Vec<&str> = cli::modes().map(|(m, _)| m).collect();
        assert_eq!(names, listed);
        let ls = modes.iter().find(|m| m.name == "ls").unwrap();
        let timeout = ls.options.iter().find(|o| o.long == "--timeout").unwrap();
        assert_eq!((timeout.short, timeout.value.is_some()), (Some('t'), true));
        assert!(ls.options.iter().any(|o| o.long == "--all" && o.value.is_none()));
        assert!(ls.options.iter().any(|o| o.long == "--help"));
        assert!(ls.operands[0].repeats && ls.operands[0].kind == Kind::Word);
        let deploy = modes.iter().find(|m| m.name == "deploy").unwrap();
        assert!(deploy.operands[0].kind == Kind::Path);
        assert!(deploy.options.iter().any(|o| o.long == "--overrides" && o.path));
        let pod = modes.iter().find(|m| m.name == "pod").unwrap();
        assert!(pod.operands.last().unwrap().greedy);
    }

    #[test]
    fn unknown_shells_are_usage_errors_naming_the_known_ones() {
        let err = script("tcsh").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("'tcsh'") && err.to_string().contains("bash, zsh, fish"));
    }

    #[test]
    fn every_script_names_every_mode_and_option() {
        for shell in SHELLS {
            let text = script(shell).unwrap();
            for mode in model() {
                assert!(text.contains(mode.name), "{shell}: {}", mode.name);
                for o in &mode.options {
                    let long = o.long.trim_start_matches("--");
                    assert!(text.contains(long), "{shell}: {} --{long}", mode.name);
                }
            }
        }
    }

    #[test]
    fn zsh_specs_escape_what_arguments_would_misread() {
        assert_eq!(zsh_description(r"a [b] c\d"), r"a \[b\] c\\d");
        assert_eq!(quoted("it's"), r"'it'\''s'");
        assert_eq!(fish_quoted(r"it's a\b"), r"'it\'s a\\b'");
        let text = script("zsh").unwrap();
        assert!(text.contains("'(-t --timeout)'{-t,--timeout}'[seconds each pod has"), "{text}");
        assert!(text.contains("'*:files:_files'"), "{text}");
        assert!(text.contains("'*::cmd:_files'"), "{text}");
    }

    #[test]
    fn fish_marks_values_and_files() {
        let text = script("fish").unwrap();
        assert!(text.contains("complete -c ocho -n '__ocho_mode ls' -s t -l timeout -x -d"));
        assert!(text.contains("complete -c ocho -n '__ocho_mode deploy' -F"), "{text}");
        assert!(text.contains("complete -c ocho -n '__ocho_mode completion' -a 'bash zsh fish'"));
    }
}
