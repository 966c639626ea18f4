//! Shell-style glob matching (`*`, `?`, `[…]`) over cluster names, as Python's `fnmatch` does
//! for wildcard dependencies (docs/protocol.md §4.6) and as the tools match `<ns>.<cluster>` names.

/// True when `name` matches `pattern` in full. `*` matches any run (dots included), `?` one
/// character, `[abc]`/`[a-z]`/`[!x]` a set.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point for the last `*` (linear for typical names).
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = class(&p, pi, n[ni]) {
                        if ok {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; `None` when unterminated.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hit |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(matches("default.*", "default.zookeeper"));
        assert!(matches("*.zookeeper", "my.dotted.ns.zookeeper"));
        assert!(matches("default.*-db", "default.users-db"));
        assert!(!matches("default.*-db", "default.users-db2"));
        assert!(matches("default.web?", "default.web1"));
        assert!(matches("default.web[0-9]", "default.web7"));
        assert!(!matches("default.web[!0-9]", "default.web7"));
        assert!(matches("*", ""));
        assert!(!matches("a", "ab"));
        assert!(matches("a*b*c", "aXXbYYc"));
    }
}
