//! What the operator's tools share: the common options ([`Common`], declared on every tool by
//! [`tool_args!`]), `--min-replies` ([`Threshold`]) and glob matching on `<namespace>.<cluster>`
//! ([`Glob`]). The ZooKeeper lookup of registered pods lives in [`lookup`](mod@lookup), the
//! bounded concurrent fan-out to pods and the reply accounting in [`fire`]; both are re-exported
//! here. Output formats are in [`output`]; one file per tool, named as its subcommand.
//!
//! Pods that do not answer are never dropped: every [`Answer`] is kept next to its pod, counted
//! in totals and named in the output (docs/architecture.md §7.9).

pub mod args;
pub mod bump;
pub mod control;
pub mod deploy;
pub mod diff;
pub mod exec;
pub mod fire;
pub mod grep;
pub mod info;
pub mod interrupt;
pub mod kill;
pub mod log;
pub mod lookup;
pub mod ls;
pub mod off;
pub mod on;
pub mod output;
pub mod ping;
pub mod poll;
pub mod port;
pub mod reset;
pub mod revision;
pub mod scale;
pub mod scope;
pub mod status;
pub mod wait;
pub mod watch;
pub mod workload;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ochopod::glob;
use crate::zk::Session;

pub use crate::ochopod::paths::ROOT;
pub use fire::{Answer, Scan, Tally, Verdict, fan_out, finish, outcome, pods, post, scan, scan_on};
pub use lookup::{Lookup, Pod, lookup};

/// Declares a tool's `Args` with its own fields followed by the options every tool shares, and
/// `Args::common()` turning them into a [`Common`]. `timeout` is the default of `-t` and its doc.
macro_rules! tool_args {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
        timeout = $default:literal, $doc:literal;
    ) => {
        #[derive(argh::FromArgs, argh::ArgsInfo)]
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            /// zookeeper as host[:port][,…][/chroot] (default $OCHOPOD_ZK, else 127.0.0.1:2181)
            #[argh(option, default = "crate::zk::default_hosts()")]
            pub zk: String,
            /// seconds to reach zookeeper before failing (default 10)
            #[argh(option, default = "10.0")]
            pub zk_timeout: f64,
            #[doc = $doc]
            #[argh(option, short = 't', default = $default)]
            pub timeout: f64,
            /// pods contacted at once (default 64)
            #[argh(option, default = "64")]
            pub parallel: usize,
            /// replies needed for success: a count N or a percentage P% (default: every pod)
            #[argh(option)]
            pub min_replies: Option<String>,
            /// only the pods with these seq numbers (-i 1,3 or -i 1 -i 3)
            #[argh(option, short = 'i')]
            pub indices: Vec<String>,
            /// print JSON instead of text (the same as -o json)
            #[argh(switch, short = 'j')]
            pub json: bool,
            /// output format: json, yaml, wide (more columns) or name (one name per line)
            #[argh(option, short = 'o')]
            pub output: Option<String>,
        }

        impl $name {
            /// The shared options, validated.
            pub fn common(&self) -> $crate::error::Result<$crate::tools::Common> {
                $crate::tools::Common::new(
                    &self.zk,
                    self.zk_timeout,
                    self.timeout,
                    self.parallel,
                    self.min_replies.as_deref(),
                    &self.indices,
                    $crate::tools::output::choose(self.json, self.output.as_deref())?,
                )
            }
        }
    };
}
pub(crate) use tool_args;

/// Declares the `Args` of a Kubernetes tool (kill, scale, bump, deploy, status): its own fields,
/// then the options they share, written once: `-j`/`-o`, `--zk` (its doc is `zk`), `--context`
/// and `--k8s-namespace`.
macro_rules! k8s_tool_args {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($fields:tt)* }
        zk = $zk:literal;
    ) => {
        #[derive(argh::FromArgs, argh::ArgsInfo, Debug)]
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            /// print JSON instead of text (the same as -o json)
            #[argh(switch, short = 'j')]
            pub json: bool,
            /// output format: json, yaml, wide or name (one name per line)
            #[argh(option, short = 'o')]
            pub output: Option<String>,
            #[doc = $zk]
            #[argh(option, default = "crate::zk::default_hosts()")]
            pub zk: String,
            /// kubeconfig context (default: the current one, or the in-cluster service account)
            #[argh(option)]
            pub context: Option<String>,
            /// kubernetes namespace (default: the context's, or the proxy's own in-cluster)
            #[argh(option)]
            pub k8s_namespace: Option<String>,
        }

        impl $name {
            /// The Kubernetes access these options name.
            pub fn access(&self) -> $crate::k8s::Access {
                $crate::k8s::Access {
                    context: self.context.clone(),
                    k8s_namespace: self.k8s_namespace.clone(),
                }
            }

            /// Chooses the run's output format; from then on `json` means a structured one
            /// (json, yaml or name), which `output` renders.
            pub fn choose_format(&mut self) -> $crate::error::Result<()> {
                self.json =
                    $crate::tools::output::choose(self.json, self.output.as_deref())?.structured();
                Ok(())
            }
        }
    };
}
pub(crate) use k8s_tool_args;

/// Options every tool shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub zk: String,
    pub zk_timeout: Duration,
    /// Per-pod deadline of one request (for `wait`, the whole wait).
    pub timeout: Duration,
    pub parallel: usize,
    pub min_replies: Threshold,
    /// `Some` when `-i` was given: only pods with these `seq`.
    pub indices: Option<BTreeSet<u64>>,
    /// A structured format (`-j`, `-o json|yaml|name`): the tool builds its JSON value.
    pub json: bool,
}

pub fn seconds(what: &str, value: f64) -> Result<Duration> {
    if value.is_finite() && value > 0.0 && value < 1e6 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Error::Usage(format!("{what} must be a positive number of seconds, not {value}")))
    }
}

/// `-i`: pod seq numbers, comma separated or repeated (`-i 1,3` or `-i 1 -i 3`); `None` when
/// not given.
pub fn parse_indices(values: &[String]) -> Result<Option<BTreeSet<u64>>> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for word in values.iter().flat_map(|v| v.split(',')).filter(|w| !w.trim().is_empty()) {
        let seq = word
            .trim()
            .parse::<u64>()
            .map_err(|_| Error::Usage(format!("-i takes pod seq numbers, not {word:?}")))?;
        set.insert(seq);
    }
    Ok(Some(set))
}

/// `-t` of the Kubernetes tools (kill, scale, bump, deploy): seconds as every tool takes them
/// (decimals too), raised to 5, the least a graceful kill or a wait is given.
pub fn k8s_timeout(value: f64) -> Result<Duration> {
    Ok(seconds("-t", value)?.max(Duration::from_secs(5)))
}

impl Common {
    pub fn new(
        zk: &str,
        zk_timeout: f64,
        timeout: f64,
        parallel: usize,
        min_replies: Option<&str>,
        indices: &[String],
        format: output::Format,
    ) -> Result<Self> {
        if parallel == 0 {
            return Err(Error::Usage("--parallel must be at least 1".into()));
        }
        let indices = parse_indices(indices)?;
        Ok(Common {
            zk: zk.to_string(),
            zk_timeout: seconds("--zk-timeout", zk_timeout)?,
            timeout: seconds("-t", timeout)?,
            parallel,
            min_replies: min_replies.map(Threshold::parse).transpose()?.unwrap_or(Threshold::All),
            indices,
            json: format.structured(),
        })
    }

    /// One read session for the whole run; a clear error when ZooKeeper cannot be reached.
    pub fn connect(&self) -> Result<Session> {
        Session::connect(&self.zk, self.zk_timeout)
    }

    /// Verbs that change state on every pod of a glob need `--force` unless `-i` picks pods.
    pub fn require_force(&self, tool: &str, force: bool) -> Result<()> {
        if force || self.indices.is_some() {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "{tool} acts on every pod of the glob: pass --force, or pick pods with -i"
            )))
        }
    }
}

/// What `--min-replies` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Every selected pod (the default).
    All,
    Count(usize),
    Percent(u32),
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::Usage(format!("--min-replies takes N or P% (0-100), not {text:?}"));
        match text.trim().strip_suffix('%') {
            Some(p) => {
                let p: u32 = p.trim().parse().map_err(|_| bad())?;
                if p > 100 { Err(bad()) } else { Ok(Threshold::Percent(p)) }
            }
            None => text.trim().parse().map(Threshold::Count).map_err(|_| bad()),
        }
    }

    /// Replies needed out of `total`.
    pub fn needed(self, total: usize) -> usize {
        match self {
            Threshold::All => total,
            Threshold::Count(n) => n,
            Threshold::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

/// A cluster glob: shell-style `fnmatch` on the whole `<namespace>.<cluster>` name; a pattern
/// without a dot also matches `*.<pattern>` (so `zookeeper` finds `default.zookeeper`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl Glob {
    /// The globs of a tool's positionals, `*` when there are none.
    pub fn list(words: &[String]) -> Result<Vec<Glob>> {
        if words.is_empty() {
            return Ok(vec![Glob("*".into())]);
        }
        words
            .iter()
            .map(|w| {
                if w.is_empty() || w.contains('/') || w.chars().any(char::is_control) {
                    Err(Error::Usage(format!("not a cluster glob: {w:?}")))
                } else {
                    Ok(Glob(w.clone()))
                }
            })
            .collect()
    }

    /// The globs of a state-changing verb: at least one, never an implicit `*`.
    pub fn required(tool: &str, words: &[String]) -> Result<Vec<Glob>> {
        if words.is_empty() {
            return Err(Error::Usage(format!("{tool} needs at least one cluster glob")));
        }
        let globs = Glob::list(words)?;
        // Before anything is contacted: a scoped token names clusters inside its scope.
        scope::check_globs(tool, &globs)?;
        Ok(globs)
    }

    pub fn matches(&self, name: &str) -> bool {
        // A bare name is also tried as the cluster part under any namespace (`*.<name>`).
        glob::matches(&self.0, name)
            || (!self.0.contains('.')
                && name.match_indices('.').any(|(i, _)| glob::matches(&self.0, &name[i + 1..])))
    }
}

/// A JSON value as display text: strings bare, `null`/absent empty, others as JSON.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str) -> Glob {
        Glob(p.into())
    }

    #[test]
    fn indices_are_numbers_repeatable_or_comma_separated() {
        assert_eq!(parse_indices(&[]).unwrap(), None);
        let got = parse_indices(&["1,2".into(), "5".into()]).unwrap().unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), [1, 2, 5]);
        assert!(parse_indices(&["x".into()]).unwrap_err().to_string().contains("\"x\""));
    }

    #[test]
    fn every_tool_takes_decimal_seconds_for_t() {
        assert_eq!(k8s_timeout(7.5).unwrap(), Duration::from_millis(7500));
        assert_eq!(k8s_timeout(2.5).unwrap(), Duration::from_secs(5), "raised to 5");
        assert!(k8s_timeout(0.0).is_err() && k8s_timeout(f64::NAN).is_err());
        for tool in [["kill", "--force"], ["scale", "-f"], ["bump", "-r"], ["off", "--force"]] {
            let mut words = vec![tool[0], "-t", "2.5", tool[1]];
            if tool[1].starts_with("-f") || tool[1] == "-r" {
                words.push("2");
            }
            words.push("web");
            assert!(
                matches!(crate::cli::parse_words(&words), crate::cli::Parsed::Run(_)),
                "{words:?}"
            );
        }
    }

    #[test]
    fn globs_are_fnmatch_on_the_whole_name() {
        assert!(g("default.zookeeper").matches("default.zookeeper"));
        assert!(g("*").matches("default.ocho-proxy"));
        assert!(g("*.zoo*").matches("default.zookeeper"));
        assert!(!g("default.zoo").matches("default.zookeeper"));
        assert!(g("default.zk-?").matches("default.zk-1"));
        assert!(g("default.zk-[0-3]").matches("default.zk-2"));
        assert!(!g("default.zk-[!0-3]").matches("default.zk-2"));
        assert!(g("default.[*]").matches("default.*"));
        assert!(g("a.[b").matches("a.[b"));
        assert!(!g("Default.*").matches("default.x"));
    }

    #[test]
    fn a_bare_name_matches_under_any_namespace() {
        assert!(g("zookeeper").matches("default.zookeeper"));
        assert!(g("zookeeper").matches("a.b.zookeeper"));
        assert!(!g("zookeeper").matches("default.myzookeeper"));
        assert!(g("zoo*").matches("default.zookeeper"));
        assert!(!g("default").matches("default.zookeeper"));
    }

    #[test]
    fn thresholds_parse_counts_and_percentages() {
        assert_eq!(Threshold::parse("3").unwrap(), Threshold::Count(3));
        assert_eq!(Threshold::parse("50%").unwrap(), Threshold::Percent(50));
        assert!(Threshold::parse("101%").is_err());
        assert!(Threshold::parse("x").is_err());
        assert_eq!(Threshold::Percent(50).needed(5), 3);
        assert_eq!(Threshold::Percent(100).needed(5), 5);
        assert_eq!(Threshold::All.needed(4), 4);
        assert_eq!(Threshold::All.needed(0), 0);
    }

    #[test]
    fn every_tool_is_registered_for_the_portal() {
        let tools = [
            "grep", "info", "log", "ls", "port", "poll", "on", "off", "reset", "ping", "exec",
            "wait",
        ];
        for tool in tools {
            assert!(crate::cli::is_tool(tool), "{tool}");
            match crate::cli::parse_words(&[tool, "--help"]) {
                crate::cli::Parsed::Print { text, code: 0 } => {
                    assert!(text.contains("JSON (-j)"), "{tool} --help documents -j: {text}");
                }
                _ => panic!("{tool} --help"),
            }
        }
    }
}
