//! The clusters a tool may touch. The portal runs a tool for a scoped token with `OCHO_SCOPE`,
//! a JSON list of cluster globs on `<namespace>.<cluster>` (the client controls only the
//! tool's argv, never its environment). Without it every cluster is in scope. Query tools only
//! see in-scope clusters ([`allows`], applied by the ZooKeeper lookup); state-changing tools
//! refuse a glob that could match a cluster outside the scope before contacting anything
//! ([`check_globs`]); deploy refuses a definition of a cluster outside it ([`check_cluster`]).

use super::Glob;
use crate::error::{Error, Result};

/// The scope variable's name.
pub const VAR: &str = "OCHO_SCOPE";

/// The scope of this run; `None` is every cluster. A value that is not a JSON list of globs
/// is an error (never "every cluster").
pub fn current() -> Result<Option<Vec<Glob>>> {
    let Some(text) = std::env::var_os(VAR) else { return Ok(None) };
    let globs: Vec<String> = text
        .to_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .filter(|g: &Vec<String>| !g.is_empty())
        .ok_or_else(|| Error::Usage(format!("{VAR} is not a JSON list of cluster globs")))?;
    Ok(Some(globs.into_iter().map(Glob).collect()))
}

fn show(scope: &[Glob]) -> String {
    scope.iter().map(|g| g.0.as_str()).collect::<Vec<_>>().join(", ")
}

/// True when the cluster `name` is in scope.
pub fn allows(scope: Option<&[Glob]>, name: &str) -> bool {
    scope.is_none_or(|scope| scope.iter().any(|s| s.matches(name)))
}

/// Refuses any glob that could match a cluster outside the scope.
pub fn check_globs(tool: &str, globs: &[Glob]) -> Result<()> {
    let Some(scope) = current()? else { return Ok(()) };
    for glob in globs {
        if !scope.iter().any(|s| within(glob, s)) {
            return Err(Error::Usage(format!(
                "{tool}: {:?} reaches beyond this token's scope ({}): name clusters inside it",
                glob.0,
                show(&scope)
            )));
        }
    }
    Ok(())
}

/// Refuses a cluster (`<namespace>.<cluster>`) outside the scope.
pub fn check_cluster(name: &str) -> Result<()> {
    let Some(scope) = current()? else { return Ok(()) };
    if allows(Some(&scope), name) {
        Ok(())
    } else {
        Err(Error::Usage(format!("{name} is outside this token's scope ({})", show(&scope))))
    }
}

/// One element of a glob.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    One,
    Any,
    /// A `[…]` set, as written.
    Set(String),
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => out.push(Tok::Any),
            '?' => out.push(Tok::One),
            '[' => {
                // The set ends at the first `]` after at least one member (`[]]` is a set).
                let start = i;
                let mut j = i + 1;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                j += 1;
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j < chars.len() {
                    out.push(Tok::Set(chars[start..=j].iter().collect()));
                    i = j;
                } else {
                    out.push(Tok::Lit('['));
                }
            }
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    out
}

/// True only when every name `glob` matches is matched by `scope` (sound, not complete: a glob
/// that is in fact inside but not provably so is refused, which fails closed).
pub fn within(glob: &Glob, scope: &Glob) -> bool {
    // A bare glob also matches `*.<glob>`; so does a bare scope glob. Every cluster name has
    // a dot: a bare glob without wildcards matches names only as `*.<glob>`.
    let mut globs = vec![];
    let bare = !glob.0.contains('.');
    if !bare || glob.0.contains(['*', '?', '[']) {
        globs.push(tokens(&glob.0));
    }
    if bare {
        globs.push(tokens(&format!("*.{}", glob.0)));
    }
    let mut scopes = vec![tokens(&scope.0)];
    if !scope.0.contains('.') {
        scopes.push(tokens(&format!("*.{}", scope.0)));
    }
    globs.iter().all(|g| scopes.iter().any(|s| covers(g, s)))
}

/// Language inclusion of `g` in `s`, conservatively.
fn covers(g: &[Tok], s: &[Tok]) -> bool {
    // memo[i][j]: g[i..] ⊆ s[j..]
    let (n, m) = (g.len(), s.len());
    let mut memo = vec![vec![false; m + 1]; n + 1];
    for i in (0..=n).rev() {
        for j in (0..=m).rev() {
            memo[i][j] = if i == n {
                s[j..].iter().all(|t| *t == Tok::Any)
            } else if j == m {
                false
            } else if s[j] == Tok::Any {
                // The scope's star matches nothing, or absorbs g's next element.
                memo[i][j + 1] || memo[i + 1][j]
            } else {
                let step = match (&g[i], &s[j]) {
                    (Tok::Any, _) => false,
                    (_, Tok::One) => true,
                    (Tok::Lit(c), Tok::Lit(d)) => c == d,
                    (Tok::Lit(c), Tok::Set(set)) => {
                        crate::ochopod::glob::matches(set, &c.to_string())
                    }
                    (Tok::Set(a), Tok::Set(b)) => a == b,
                    _ => false,
                };
                step && memo[i + 1][j + 1]
            };
        }
    }
    memo[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(glob: &str, scope: &str) -> bool {
        within(&Glob(glob.into()), &Glob(scope.into()))
    }

    #[test]
    fn globs_inside_a_scope_and_outside_it() {
        assert!(w("prod.web", "prod.*"));
        assert!(w("prod.*", "prod.*"));
        assert!(w("prod.web-*", "prod.*"));
        assert!(w("prod.web-?", "prod.web-*"));
        assert!(w("prod.zk-[0-3]", "prod.*"));
        assert!(w("prod.zk-1", "prod.zk-[0-3]"));
        assert!(w("web", "*.web"));
        assert!(w("prod.web", "web"));
        assert!(!w("*", "prod.*"));
        assert!(!w("prod*", "prod.*"), "prod* also matches production.x");
        assert!(!w("web", "prod.*"), "a bare name matches under any namespace");
        assert!(!w("*.web", "prod.*"));
        assert!(!w("prod.zk-[0-9]", "prod.zk-[0-3]"));
        assert!(!w("prod.?", "prod.a"));
        assert!(!w("staging.web", "prod.*"));
    }

    #[test]
    fn allows_matches_the_scope() {
        let scope = vec![Glob("prod.*".into()), Glob("dev.web".into())];
        assert!(allows(Some(&scope), "prod.zk"));
        assert!(allows(Some(&scope), "dev.web"));
        assert!(!allows(Some(&scope), "dev.db"));
        assert!(allows(None, "dev.db"));
    }
}
