//! `--template SRC:DEST`: a small mustache-like language filled with the cluster facts before
//! each start of the workload, so a `FROM scratch` image can configure itself without a shell
//! (a ZooKeeper ensemble's `zoo.cfg` and `myid` are the reference case). The language is
//! documented in README.md (section "`ocho pod`: the Ochopod agent", Templates) and
//! docs/protocol.md §7.2; this file is its only implementation. Rendering is pure: files
//! are written by [`render_all`] only after every template rendered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ochopod::{Cluster, Registration};

/// What a template can see besides the cluster view.
pub struct Context<'a> {
    pub cluster: &'a Cluster,
    /// The deployment's settings: the JSON of env `pod` (`{}` when unset).
    pub settings: &'a Value,
    /// Environment lookup (the workload's environment).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Renders `text`; the error names the first problem (unknown tag, missing value, unclosed
/// section).
pub fn render(text: &str, ctx: &Context) -> Result<String, String> {
    let nodes = parse(text)?;
    let mut out = String::new();
    emit(&nodes, ctx, None, &mut out)?;
    Ok(out)
}

/// Renders every `(source, destination)` pair, then writes each destination through a temporary
/// file and a rename, so that a failing template leaves nothing half-written.
pub fn render_all(pairs: &[(PathBuf, PathBuf)], ctx: &Context) -> Result<()> {
    let mut rendered = Vec::new();
    for (src, dest) in pairs {
        let text = std::fs::read_to_string(src)
            .map_err(|source| Error::io("read template", src, source))?;
        let out = render(&text, ctx)
            .map_err(|why| Error::Failed(format!("template {}: {why}", src.display())))?;
        rendered.push((dest, out));
    }
    for (dest, out) in rendered {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| Error::io("create directory", dir, source))?;
        }
        let tmp = tmp_path(dest);
        std::fs::write(&tmp, out).map_err(|source| Error::io("write", &tmp, source))?;
        std::fs::rename(&tmp, dest).map_err(|source| Error::io("rename into", dest, source))?;
    }
    Ok(())
}

fn tmp_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".ocho-tmp");
    dest.with_file_name(name)
}

/// Parses `SRC:DEST` of `--template`.
pub fn parse_flag(flag: &str) -> Result<(PathBuf, PathBuf)> {
    match flag.split_once(':') {
        Some((src, dest)) if !src.is_empty() && !dest.is_empty() => {
            Ok((PathBuf::from(src), PathBuf::from(dest)))
        }
        _ => Err(Error::Usage(format!("invalid --template '{flag}': expected SRC:DEST"))),
    }
}

#[derive(Debug)]
enum Node {
    Text(String),
    Tag(String),
    /// `{{#pods}}…{{/pods}}` or `{{#dependency NAME}}…{{/dependency}}`.
    Section {
        dependency: Option<String>,
        body: Vec<Node>,
    },
}

fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<(Option<String>, Vec<Node>)> = Vec::new();
    let mut cur: Vec<Node> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        cur.push(Node::Text(rest[..open].to_string()));
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or("unclosed {{")?;
        let tag = after[..close].trim().to_string();
        rest = &after[close + 2..];
        let standalone = tag.starts_with('#') || tag.starts_with('/');
        if standalone {
            // A section tag alone on its line does not leave an empty line behind.
            rest = rest.strip_prefix('\n').unwrap_or(rest);
        }
        if let Some(open) = tag.strip_prefix('#') {
            let mut words = open.split_whitespace();
            let dependency = match (words.next(), words.next()) {
                (Some("pods"), None) => None,
                (Some("dependency"), Some(name)) => Some(name.to_string()),
                _ => return Err(format!("unknown section {{{{{tag}}}}}")),
            };
            stack.push((dependency, std::mem::take(&mut cur)));
        } else if let Some(close) = tag.strip_prefix('/') {
            let (dependency, outer) =
                stack.pop().ok_or(format!("{{{{{tag}}}}} without opening"))?;
            let expected = if dependency.is_some() { "dependency" } else { "pods" };
            if close.trim() != expected {
                return Err(format!("{{{{{tag}}}}} closes a {expected} section"));
            }
            let body = std::mem::replace(&mut cur, outer);
            cur.push(Node::Section { dependency, body });
        } else {
            cur.push(Node::Tag(tag));
        }
    }
    cur.push(Node::Text(rest.to_string()));
    if !stack.is_empty() {
        return Err("unclosed section".into());
    }
    Ok(cur)
}

/// The pod a tag refers to: the one a section iterates over, or this pod.
struct Subject<'a> {
    uuid: &'a str,
    pod: &'a Registration,
}

fn emit(
    nodes: &[Node],
    ctx: &Context,
    subject: Option<&Subject>,
    out: &mut String,
) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Tag(tag) => out.push_str(&value(tag, ctx, subject)?),
            Node::Section { dependency, body } => {
                let pods = pods_of(ctx, dependency.as_deref())?;
                for (uuid, pod) in Cluster::by_seq(pods) {
                    emit(body, ctx, Some(&Subject { uuid, pod }), out)?;
                }
            }
        }
    }
    Ok(())
}

fn pods_of<'a>(
    ctx: &'a Context,
    dependency: Option<&str>,
) -> Result<&'a BTreeMap<String, Registration>, String> {
    match dependency {
        None => Ok(&ctx.cluster.pods),
        Some(name) => {
            ctx.cluster.dependencies.get(name).ok_or_else(|| format!("no dependency named {name}"))
        }
    }
}

fn value(tag: &str, ctx: &Context, subject: Option<&Subject>) -> Result<String, String> {
    let words: Vec<&str> = tag.split_whitespace().collect();
    let me = Subject { uuid: &ctx.cluster.key, pod: ctx.cluster.me() };
    let who = subject.unwrap_or(&me);
    match words.as_slice() {
        ["peers", port] => Cluster::grep(&ctx.cluster.pods, port),
        ["dependency", name, port] => Cluster::grep(pods_of(ctx, Some(name))?, port),
        ["port", port] => who
            .pod
            .mapped_port(port)
            .map(|p| p.to_string())
            .ok_or_else(|| format!("pod {} does not expose port {port}", who.uuid)),
        ["setting", path] => {
            let mut v = ctx.settings;
            for part in path.split('.') {
                v = v.get(part).ok_or_else(|| format!("no setting {path}"))?;
            }
            Ok(match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        }
        ["env", name] => (ctx.env)(name).ok_or_else(|| format!("no environment variable {name}")),
        [name] => scalar(name, ctx, who),
        _ => Err(format!("unknown tag {{{{{tag}}}}}")),
    }
}

/// Plain names, with an optional `+N`/`-N` offset on numbers (`seq+1` for ZooKeeper's 1-based
/// server ids).
fn scalar(name: &str, ctx: &Context, who: &Subject) -> Result<String, String> {
    let (base, offset) = match name.find(['+', '-']) {
        Some(at) => {
            let n: i64 = name[at..]
                .trim_start_matches('+')
                .parse()
                .map_err(|_| format!("bad offset in {name}"))?;
            (&name[..at], Some(n))
        }
        None => (name, None),
    };
    let number = |n: i64| Ok((n + offset.unwrap_or(0)).to_string());
    match base {
        "size" => number(ctx.cluster.size as i64),
        "seq" => number(who.pod.seq().ok_or_else(|| format!("pod {} has no seq", who.uuid))?),
        "index" => number(ctx.cluster.pods.keys().position(|k| k == who.uuid).unwrap_or(0) as i64),
        _ if offset.is_some() => Err(format!("{base} is not a number")),
        "key" => Ok(who.uuid.to_string()),
        "me" => Ok((who.uuid == ctx.cluster.key).to_string()),
        "ip" | "public" | "cluster" | "namespace" | "task" | "node" | "port" => who
            .pod
            .str(base)
            .map(str::to_string)
            .ok_or_else(|| format!("pod {} has no {base}", who.uuid)),
        _ => Err(format!("unknown name {{{{{name}}}}}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ochopod::Payload;
    use serde_json::json;

    fn cluster(key: &str) -> Cluster {
        let pods = [("u1", "127.0.0.2", 4), ("u2", "127.0.0.3", 1), ("u3", "127.0.0.4", 9)]
            .into_iter()
            .map(|(k, ip, seq)| {
                let r = json!({"ip": ip, "port": "8080", "seq": seq, "cluster": "zk",
                               "ports": {"2181": 2181, "2888": 2888, "3888": 3888, "8080": 8080}});
                (k.to_string(), Registration::parse(r.to_string().as_bytes()).unwrap())
            })
            .collect();
        let db =
            Registration::parse(br#"{"ip":"10.0.0.9","ports":{"5432":5432},"seq":0}"#).unwrap();
        let deps = [("db".to_string(), [("d1".to_string(), db)].into_iter().collect())].into();
        Cluster::new(&Payload { pods, dependencies: deps, key: key.into() }).unwrap()
    }

    fn ctx_render(text: &str, key: &str) -> Result<String, String> {
        let c = cluster(key);
        let settings = json!({"zk": {"tick": 2000}, "name": "demo"});
        let env = |n: &str| (n == "DATA").then(|| "/data".to_string());
        render(text, &Context { cluster: &c, settings: &settings, env: &env })
    }

    #[test]
    fn zoo_cfg_and_myid_render_for_an_ensemble() {
        let tpl = "tickTime={{setting zk.tick}}\ndataDir={{env DATA}}\nclientPortAddress={{ip}}\n\
                   {{#pods}}\nserver.{{seq+1}}={{ip}}:{{port 2888}}:{{port 3888}}\n{{/pods}}\n";
        assert_eq!(
            ctx_render(tpl, "u3").unwrap(),
            "tickTime=2000\ndataDir=/data\nclientPortAddress=127.0.0.4\n\
             server.2=127.0.0.3:2888:3888\nserver.5=127.0.0.2:2888:3888\nserver.10=127.0.0.4:2888:3888\n"
        );
        assert_eq!(ctx_render("{{ seq+1 }}", "u2").unwrap(), "2");
    }

    #[test]
    fn scalars_peers_and_dependencies() {
        assert_eq!(ctx_render("{{size}} {{index}} {{seq}} {{key}}", "u1").unwrap(), "3 0 4 u1");
        assert_eq!(
            ctx_render("{{peers 2181}}", "u1").unwrap(),
            "127.0.0.3:2181,127.0.0.2:2181,127.0.0.4:2181"
        );
        assert_eq!(ctx_render("{{dependency db 5432}}", "u1").unwrap(), "10.0.0.9:5432");
        assert_eq!(
            ctx_render("{{#dependency db}}{{ip}};{{me}}{{/dependency}}", "u1").unwrap(),
            "10.0.0.9;false"
        );
        assert_eq!(ctx_render("{{#pods}}{{me}} {{/pods}}", "u2").unwrap(), "true false false ");
        assert_eq!(ctx_render("{{setting name}}", "u1").unwrap(), "demo");
    }

    #[test]
    fn mistakes_are_named() {
        for (tpl, why) in [
            ("{{nope}}", "unknown name"),
            ("{{peers 9999}}", "does not expose port 9999"),
            ("{{#pods}}x", "unclosed section"),
            ("{{/pods}}", "without opening"),
            ("{{setting missing}}", "no setting missing"),
            ("{{env HOME2}}", "no environment variable"),
            ("{{dependency web 80}}", "no dependency named web"),
            ("{{ip+1}}", "not a number"),
            ("{{ip", "unclosed {{"),
        ] {
            let err = ctx_render(tpl, "u1").unwrap_err();
            assert!(err.contains(why), "{tpl}: {err}");
        }
    }

    #[test]
    fn files_are_written_only_when_every_template_renders() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.tpl");
        let bad = dir.path().join("bad.tpl");
        std::fs::write(&good, "id={{seq}}\n").unwrap();
        std::fs::write(&bad, "{{nope}}").unwrap();
        let out = dir.path().join("sub/out.cfg");
        let c = cluster("u1");
        let env = |_: &str| None;
        let ctx = Context { cluster: &c, settings: &Value::Null, env: &env };
        assert!(
            render_all(&[(good.clone(), out.clone()), (bad, dir.path().join("x"))], &ctx).is_err()
        );
        assert!(!out.exists());
        render_all(&[(good, out.clone())], &ctx).unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "id=4\n");
        assert!(parse_flag("a:b").is_ok() && parse_flag("ab").is_err());
    }
}
