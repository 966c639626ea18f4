//! Who may run what: roles ([`Role`]), the identity a request authenticated as ([`Who`]), the
//! tokens file (`--tokens-file`, a YAML list of named token digests with a role and an optional
//! scope) and the least role each tool needs ([`least_role`], one exhaustive match on the parsed
//! mode: a new mode does not compile until someone decides who may run it).

use std::sync::Arc;

use serde::Deserialize;

use crate::cli::Mode;

/// What a token may do; each role includes the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The query tools, help and `/tools`.
    Viewer,
    /// + the tools that change the pods' state (on, off, reset, ping, scale, bump).
    Operator,
    /// + deploy, kill, the audit journal, and the diagnostic and future tools.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The identity of a request: a token's name, its role and its scope (cluster globs on
/// `<namespace>.<cluster>`; `None` is every cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub name: String,
    pub role: Role,
    pub scope: Option<Vec<String>>,
}

impl Who {
    /// A portal without credentials (loopback only, or `--insecure-no-auth`): full rights.
    pub fn open() -> Arc<Who> {
        Arc::new(Who { name: "-".into(), role: Role::Admin, scope: None })
    }

    /// The single `--token-file` / `$OCHO_TOKEN`.
    pub fn default_admin() -> Who {
        Who { name: "default".into(), role: Role::Admin, scope: None }
    }

    /// The scope as the tools receive it (`OCHO_SCOPE`: a JSON list of globs), if any.
    pub fn scope_env(&self) -> Option<String> {
        self.scope.as_ref().map(|globs| serde_json::to_string(globs).unwrap_or_default())
    }

    /// `{"name", "role"}` for `/tools`.
    pub fn json(&self) -> serde_json::Value {
        let mut who = serde_json::json!({"name": self.name, "role": self.role.name()});
        if let Some(scope) = &self.scope {
            who["scope"] = serde_json::json!(scope);
        }
        who
    }
}

/// The least role that may run a parsed mode. Modes that are not tools (the portal never runs
/// them) and diagnostic tools need admin.
pub fn least_role(mode: &Mode) -> Role {
    match mode {
        Mode::Grep(_)
        | Mode::Info(_)
        | Mode::Log(_)
        | Mode::Ls(_)
        | Mode::Status(_)
        | Mode::Port(_)
        | Mode::Poll(_)
        | Mode::Wait(_) => Role::Viewer,
        Mode::On(_)
        | Mode::Off(_)
        | Mode::Reset(_)
        | Mode::Ping(_)
        | Mode::Scale(_)
        | Mode::Bump(_) => Role::Operator,
        // exec runs commands inside the pods.
        Mode::Deploy(_) | Mode::Kill(_) | Mode::Exec(_) | Mode::Audit(_) | Mode::Args(_) => {
            Role::Admin
        }
        Mode::Init(_)
        | Mode::Portal(_)
        | Mode::Pod(_)
        | Mode::ZkStatus(_)
        | Mode::Remote(_)
        | Mode::Completion(_) => Role::Admin,
    }
}

/// The least role of a tool by name, for `/tools`: the tool parsed with a placeholder for each
/// required argument, then [`least_role`]. Admin when that does not parse (fail closed).
pub fn least_role_of(tool: &str) -> Role {
    placeholder(tool).as_ref().map_or(Role::Admin, least_role)
}

/// A tool parsed with `1` for each required option and positional.
fn placeholder(tool: &str) -> Option<Mode> {
    use argh::ArgsInfo;
    let info = <Mode as ArgsInfo>::get_args_info();
    let cmd = info.commands.iter().find(|c| c.name == tool)?;
    let mut words = vec![tool.to_string()];
    for flag in cmd.command.flags {
        if matches!(flag.optionality, argh::Optionality::Required) {
            words.push(flag.long.to_string());
            words.push("1".into());
        }
    }
    for p in cmd.command.positionals {
        if matches!(p.optionality, argh::Optionality::Required) {
            words.push("1".into());
        }
    }
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    match crate::cli::parse_words(&refs) {
        crate::cli::Parsed::Run(mode) => Some(mode),
        crate::cli::Parsed::Print { .. } => None,
    }
}

/// One entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    sha256: String,
    role: Role,
    #[serde(default)]
    scope: Option<Vec<String>>,
}

/// The entries of a tokens file: each identity with the SHA-256 of its token.
pub fn parse_tokens(text: &str) -> Result<Vec<(Who, [u8; 32])>, String> {
    let entries: Vec<FileEntry> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("not a list of tokens: {e}"))?
    };
    let mut out: Vec<(Who, [u8; 32])> = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let at = format!("entry {} ({:?})", i + 1, e.name);
        let name_ok = (1..=64).contains(&e.name.len())
            && e.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if !name_ok {
            return Err(format!("{at}: a name is 1 to 64 of [A-Za-z0-9._@-]"));
        }
        let digest =
            unhex(e.sha256.trim()).and_then(|d| <[u8; 32]>::try_from(d).ok()).ok_or_else(|| {
                format!("{at}: sha256 must be 64 hex digits (sha256sum of the token)")
            })?;
        if let Some(scope) = &e.scope {
            if scope.is_empty() {
                return Err(format!(
                    "{at}: an empty scope allows nothing; leave scope out for every cluster"
                ));
            }
            if let Some(bad) = scope
                .iter()
                .find(|g| g.is_empty() || g.contains('/') || g.chars().any(char::is_control))
            {
                return Err(format!("{at}: not a cluster glob in scope: {bad:?}"));
            }
        }
        if out.iter().any(|(w, _)| w.name == e.name) {
            return Err(format!("{at}: the name is used twice"));
        }
        if out.iter().any(|(_, d)| *d == digest) {
            return Err(format!("{at}: the same token is listed twice"));
        }
        out.push((Who { name: e.name, role: e.role, scope: e.scope }, digest));
    }
    Ok(out)
}

/// Lower- or upper-case hex to bytes.
pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_least_role_and_the_families_are_as_documented() {
        let expect = |role: Role, tools: &[&str]| {
            for tool in tools {
                assert!(crate::cli::is_tool(tool), "{tool}");
                assert_eq!(least_role_of(tool), role, "{tool}");
            }
        };
        expect(Role::Viewer, &["grep", "info", "log", "ls", "status", "port", "poll", "wait"]);
        expect(Role::Operator, &["on", "off", "reset", "ping", "scale", "bump"]);
        expect(Role::Admin, &["deploy", "kill", "exec", "audit", "args"]);
        assert_eq!(least_role_of("no-such-tool"), Role::Admin);
        // Every tool parses with placeholders, so that /tools never hides one by accident.
        for (tool, _) in crate::cli::modes().filter(|(m, _)| crate::cli::is_tool(m)) {
            assert!(placeholder(tool).is_some(), "{tool} does not parse with placeholders");
        }
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn the_tokens_file_is_strict() {
        let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let ok = format!(
            "- name: alice\n  sha256: {sha}\n  role: viewer\n  scope: [\"prod.*\"]\n- name: bob\n  sha256: {}\n  role: admin\n",
            "ab".repeat(32)
        );
        let entries = parse_tokens(&ok).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.role, Role::Viewer);
        assert_eq!(entries[0].0.scope.as_deref(), Some(&["prod.*".to_string()][..]));
        assert_eq!(entries[1].0.scope, None);
        assert!(parse_tokens("").unwrap().is_empty());
        let bad = |text: String, needle: &str| {
            let err = parse_tokens(&text).unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        bad(format!("- name: a\n  sha256: {sha}\n  role: root\n"), "root");
        bad(format!("- name: a\n  sha256: {}\n  role: viewer\n", &sha[2..]), "64 hex");
        bad(format!("- name: a b\n  sha256: {sha}\n  role: viewer\n"), "name");
        bad(format!("- name: a\n  sha256: {sha}\n  role: viewer\n  scope: []\n"), "empty scope");
        bad(format!("- name: a\n  sha256: {sha}\n  role: viewer\n  token: x\n"), "token");
        bad(
            format!(
                "- name: a\n  sha256: {sha}\n  role: viewer\n- name: a\n  sha256: {}\n  role: viewer\n",
                "cd".repeat(32)
            ),
            "twice",
        );
        bad(
            format!(
                "- name: a\n  sha256: {sha}\n  role: viewer\n- name: b\n  sha256: {sha}\n  role: viewer\n"
            ),
            "twice",
        );
    }
}
