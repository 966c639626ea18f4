//! Container definitions: the YAML file `deploy` reads, parsed as plain data (no object
//! construction, a size cap, unknown keys refused with their line and column) into a validated
//! [`Definition`]. Also the override files of `deploy -o`, the `-s` suffix and the `-r` release.
//! Pure: no API calls, no environment. The Kubernetes objects are built in `k8s::objects`.
//!
//! YAML is read by `serde_yaml` 0.9, a YAML 1.2 parser: `yes`, `no`, `on`, `off` are strings, not
//! booleans as they were for PyYAML in the original. In `settings` they stay strings; in a boolean
//! field (`debug`, `start`) they are refused with the position, so the difference never passes
//! silently.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use k8s_openapi::api::core::v1::ResourceRequirements;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::yaml::excerpt;

/// Largest definition or override file accepted, in bytes.
pub const MAX_FILE: u64 = 256 * 1024;

/// Control port of the Ochopod agent when the definition does not name one.
pub const DEFAULT_CONTROL_PORT: u16 = 8080;

/// Environment variable names `deploy` sets itself; a definition's `env` may not use them.
pub const RESERVED_ENV: &[&str] = &[
    "ochopod_cluster",
    "ochopod_namespace",
    "ochopod_application",
    "ochopod_zk",
    "ochopod_port",
    "ochopod_ports",
    "ochopod_debug",
    "ochopod_start",
    "ochopod_depends_on",
    "pod",
    "POD_IP",
    "POD_NAME",
    "NODE_NAME",
];

/// Why a definition (or an override file) was refused. The file name is added by the caller
/// ([`Error::Definition`]).
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// Not YAML, or not the expected shape, with line and column (never the file's content).
    #[error("{0}")]
    Yaml(#[from] crate::yaml::Invalid),
    /// The file is larger than [`MAX_FILE`].
    #[error("larger than {MAX_FILE} bytes")]
    TooLarge,
    /// The file holds no document.
    #[error("empty YAML input (give at least cluster and image)")]
    Empty,
    /// `settings` (after overrides) holds a null value at these paths.
    #[error("{} setting(s) missing: {}", .0.len(), .0.join(", "))]
    Nulls(Vec<String>),
    /// One field has a value Kubernetes or Ochopod would refuse.
    #[error("{field}: {why}")]
    Field { field: String, why: String },
}

impl Invalid {
    /// The error of the file at `path`, refused for this reason.
    pub fn of(self, path: &Path) -> Error {
        Error::Definition { path: path.into(), source: Box::new(self) }
    }
}

fn field(field: impl Into<String>, why: impl Into<String>) -> Invalid {
    Invalid::Field { field: field.into(), why: why.into() }
}

/// A container port: a number, UDP when written `"N/udp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    /// The container port, 1–65535.
    pub number: u16,
    /// True for `"N/udp"`.
    pub udp: bool,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.number, if self.udp { "/udp" } else { "" })
    }
}

/// The file as written: every accepted key, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DefinitionFile {
    cluster: String,
    image: String,
    #[serde(default)]
    ports: Vec<RawPort>,
    #[serde(default, deserialize_with = "present")]
    settings: Option<Value>,
    #[serde(default)]
    replicas: Option<i64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    resources: Option<Value>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    debug: Option<bool>,
    #[serde(default)]
    start: Option<bool>,
    #[serde(default)]
    control_port: Option<i64>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    verbatim: Option<Value>,
}

/// Keeps an explicit `key:` with no value as `Some(Null)`, which `Option` would turn into `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPort {
    Number(i64),
    Text(String),
}

/// A validated container definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// Ochopod cluster name, a DNS label (after `-s`, with the suffix).
    pub cluster: String,
    /// Container image reference (after `-r`, with the release tag).
    pub image: String,
    /// Container ports in file order, without the control port unless the file lists it.
    pub ports: Vec<Port>,
    /// Free-form settings, handed to the workload as env `pod` (JSON). May hold nulls until
    /// [`Definition::prepare`] has merged overrides and refused what is still missing.
    pub settings: Map<String, Value>,
    /// Replica count when `deploy -p` is not given.
    pub replicas: Option<i32>,
    /// Extra environment of the container.
    pub env: BTreeMap<String, String>,
    /// Container resources (requests and limits).
    pub resources: Option<ResourceRequirements>,
    /// Extra labels of the RC and its pods.
    pub labels: BTreeMap<String, String>,
    /// Extra annotations of the RC and its pods.
    pub annotations: BTreeMap<String, String>,
    /// Container `command` (replaces the image's entrypoint), verbatim.
    pub command: Vec<String>,
    /// Container `args` (replaces the image's CMD): with an `ocho pod … --` entrypoint, the
    /// workload the agent starts.
    pub args: Vec<String>,
    /// `ochopod_debug`.
    pub debug: bool,
    /// `ochopod_start`.
    pub start: bool,
    /// The agent's control port (`ochopod_port`).
    pub control_port: u16,
    /// Clusters this one depends on (`ochopod_depends_on`, comma separated).
    pub depends_on: Vec<String>,
    /// Deep-merged into the generated pod template (see `k8s::objects`).
    pub verbatim: Map<String, Value>,
}

/// What `deploy` options change in a definition before it is built.
#[derive(Debug, Default, Clone)]
pub struct Prepare<'a> {
    /// Ochopod namespace (`-n`), used to pick the override entry `<ns>.<cluster>`.
    pub namespace: &'a str,
    /// `-s`: the cluster becomes `<cluster>-<suffix>`.
    pub suffix: Option<&'a str>,
    /// `-r`: the image's tag becomes this.
    pub release: Option<&'a str>,
    /// Merged override files: `<ns>.<cluster>` → settings mapping.
    pub overrides: Option<&'a Map<String, Value>>,
}

/// Reads a file of at most [`MAX_FILE`] bytes as UTF-8; `what` names the argument it came from
/// (run by the portal, the file must be one of the request's, see [`crate::confine`]).
pub fn read_capped(what: &str, path: &Path) -> Result<String> {
    let file = crate::confine::open(what, path)?;
    let mut text = String::new();
    file.take(MAX_FILE + 1).read_to_string(&mut text).map_err(|e| Error::io("read", path, e))?;
    if text.len() as u64 > MAX_FILE {
        return Err(Invalid::TooLarge.of(path));
    }
    Ok(text)
}

/// Reads and validates one definition file; errors name the file.
pub fn load(path: &Path) -> Result<Definition> {
    let text = read_capped("definition", path)?;
    parse(&text).map_err(|source| source.of(path))
}

/// Reads override files and merges them (later files win, mappings merge recursively).
pub fn load_overrides(paths: &[impl AsRef<Path>]) -> Result<Map<String, Value>> {
    let mut all = Map::new();
    for path in paths {
        let path = path.as_ref();
        let text = read_capped("override file (-O)", path)?;
        let wrap = |source: Invalid| source.of(path);
        let value: Option<Map<String, Value>> =
            crate::yaml::from_str(&text, "a mapping of <namespace>.<cluster> to settings")
                .map_err(|e| wrap(Invalid::Yaml(e)))?;
        if let Some(map) = value {
            merge_settings(&mut all, map);
        }
    }
    Ok(all)
}

/// Parses and validates the text of one definition.
pub fn parse(text: &str) -> Result<Definition, Invalid> {
    if text.len() as u64 > MAX_FILE {
        return Err(Invalid::TooLarge);
    }
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(Invalid::Empty);
    }
    let raw: DefinitionFile =
        crate::yaml::from_str(text, "a mapping of definition keys (cluster, image, …)")?;
    check_dns_label("cluster", &raw.cluster)?;
    if raw.image.trim().is_empty() || raw.image.chars().any(char::is_whitespace) {
        return Err(field("image", format!("{} is not an image reference", excerpt(&raw.image))));
    }
    check_image_reference(&raw.image).map_err(|why| {
        field("image", format!("{:?} is not a valid image reference: {why}", raw.image))
    })?;
    let control_port = match raw.control_port {
        None => DEFAULT_CONTROL_PORT,
        Some(n) => port_number("control-port", n)?,
    };
    let mut ports: Vec<Port> = Vec::new();
    for (i, raw_port) in raw.ports.iter().enumerate() {
        let name = format!("ports[{i}]");
        let port = match raw_port {
            RawPort::Number(n) => Port { number: port_number(&name, *n)?, udp: false },
            RawPort::Text(t) => parse_port(&name, t)?,
        };
        if ports.contains(&port) {
            return Err(field(name, format!("{port} is listed twice")));
        }
        if port.number == control_port && port.udp {
            return Err(field(name, format!("{port} is the control port, which is TCP")));
        }
        ports.push(port);
    }
    let settings = match raw.settings {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(Value::Null) => {
            return Err(field("settings", "is empty (null): give a mapping or leave it out"));
        }
        Some(_) => return Err(field("settings", "must be a mapping")),
    };
    let replicas = match raw.replicas {
        None => None,
        Some(n) if (0..=10_000).contains(&n) => Some(n as i32),
        Some(n) => return Err(field("replicas", format!("{n} is not within 0..=10000"))),
    };
    for name in raw.env.keys() {
        check_env_name(name)?;
    }
    let resources = match raw.resources {
        None => None,
        Some(value) => Some(resources(value)?),
    };
    for (key, value) in &raw.labels {
        check_label_key("labels", key)?;
        check_label_value(&format!("labels.{key}"), value)?;
    }
    for key in raw.annotations.keys() {
        check_label_key("annotations", key)?;
    }
    for (i, dep) in raw.depends_on.iter().enumerate() {
        if dep.is_empty() || dep.contains(',') || dep.chars().any(char::is_whitespace) {
            return Err(field(
                format!("depends-on[{i}]"),
                format!("{} is not a cluster name", excerpt(dep)),
            ));
        }
    }
    let verbatim = match raw.verbatim {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(field("verbatim", "must be a mapping (merged into the pod template)"));
        }
    };
    Ok(Definition {
        cluster: raw.cluster,
        image: raw.image,
        ports,
        settings,
        replicas,
        env: raw.env,
        resources,
        labels: raw.labels,
        annotations: raw.annotations,
        command: raw.command,
        args: raw.args,
        debug: raw.debug.unwrap_or(false),
        start: raw.start.unwrap_or(true),
        control_port,
        depends_on: raw.depends_on,
        verbatim,
    })
}

impl Definition {
    /// Applies `-s`, `-r` and the overrides, then refuses any null left in `settings`.
    pub fn prepare(&mut self, opts: &Prepare<'_>) -> Result<(), Invalid> {
        if let Some(suffix) = opts.suffix {
            self.cluster = format!("{}-{suffix}", self.cluster);
            check_dns_label("cluster (with -s suffix)", &self.cluster)?;
        }
        if let Some(release) = opts.release {
            self.image = with_tag(&self.image, release)
                .ok_or_else(|| field("-r", format!("{release:?} is not a valid image tag")))?;
        }
        let qualified = format!("{}.{}", opts.namespace, self.cluster);
        if let Some(Value::Object(extra)) = opts.overrides.and_then(|o| o.get(&qualified)) {
            merge_settings(&mut self.settings, extra.clone());
        }
        let mut nulls = Vec::new();
        find_nulls("pod", &Value::Object(self.settings.clone()), &mut nulls);
        if !nulls.is_empty() {
            return Err(Invalid::Nulls(nulls));
        }
        Ok(())
    }
}

/// Deep merge for settings: mappings merge recursively, anything else is replaced by `extra`.
pub fn merge_settings(base: &mut Map<String, Value>, extra: Map<String, Value>) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(b)), Value::Object(e)) => merge_settings(b, e),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn find_nulls(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Null => out.push(path.to_string()),
        Value::Object(map) => {
            for (k, v) in map {
                find_nulls(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                find_nulls(&format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

/// Checks an image reference against the distribution reference grammar (what registries and
/// the kubelet's runtime accept): `[host[:port]/]path[:tag][@algorithm:hex]`, the path lowercase
/// components separated by `/` and, inside one, by `.`, `_`, `__` or dashes; the host a DNS
/// name or an address (`[v6]` too); a tag of at most 128 word characters, `.` and `-`, not
/// starting with either; the name at most 255 characters. The error says what is wrong.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algorithm, hex) =
            d.split_once(':').ok_or_else(|| format!("digest {d:?} has no algorithm"))?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|c| {
                c.chars().next().is_some_and(|f| f.is_ascii_alphabetic())
                    && c.chars().all(|x| x.is_ascii_alphanumeric())
            });
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("digest {d:?} is not <algorithm>:<32 or more hex digits>"));
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(colon) => (&rest[..last_slash + colon], Some(&rest[last_slash + colon + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = (1..=128).contains(&t.len())
            && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !t.starts_with(['.', '-']);
        if !ok {
            return Err(format!(
                "tag {t:?}: give 1 to 128 letters, digits, '_', '.', '-' (not first)"
            ));
        }
    }
    if name.is_empty() {
        return Err("no repository name".into());
    }
    if name.len() > 255 {
        return Err(format!("repository name longer than 255 characters ({})", name.len()));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry when it cannot be a path: a dot, a port, or localhost.
    if parts.len() > 1
        && (parts[0].contains(['.', ':']) || parts[0] == "localhost" || parts[0].starts_with('['))
    {
        check_registry(parts.remove(0))?;
    }
    for part in &parts {
        if part.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!("repository {name:?} must be lowercase"));
        }
        if !path_component(part) {
            return Err(format!(
                "path component {part:?}: lowercase letters and digits, separated by '.', '_', \
                 '__' or dashes"
            ));
        }
    }
    Ok(())
}

fn check_registry(domain: &str) -> Result<(), String> {
    let bad = || format!("registry {domain:?} is not host[:port]");
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        (None, after.strip_prefix(':'))
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    if let Some(h) = host {
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|x| x.is_ascii_alphanumeric() || x == '-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        };
        if !h.split('.').all(component_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-`.
fn path_component(part: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let chars: Vec<char> = part.chars().collect();
    if chars.is_empty() || !alnum(chars[0]) || !alnum(chars[chars.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < chars.len() {
        if alnum(chars[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && !alnum(chars[i]) {
            i += 1;
        }
        let sep: String = chars[start..i].iter().collect();
        if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod image_tests {
    use super::check_image_reference as check;

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        for good in [
            "b",
            "paugamo/k8s-ec2-zookeeper",
            "registry.local:5000/team/web:1.2",
            "localhost/x",
            "localhost:5000/a/b__c/d-e--f.g_h:v1.0-rc_1",
            "Registry.Example.com/team/web",
            "[::1]:5000/web:1",
            "web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "web:1.0@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert!(check(good).is_ok(), "{good}: {:?}", check(good));
        }
        for (bad, why) in [
            ("Example/Web:1.0", "must be lowercase"),
            ("web:", "tag"),
            ("web:.x", "tag"),
            ("-web", "path component"),
            ("a//b", "path component"),
            ("a/b_-c", "path component"),
            ("host:x/web", "registry"),
            ("web@sha256:abc", "digest"),
            ("web@md5", "digest"),
        ] {
            let err = check(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}

/// Replaces or adds the tag of an image reference; a registry port (`host:5000/x`) and a
/// digest (`@sha256:…`, dropped) are handled, unlike the original's split on `:`.
pub fn with_tag(image: &str, tag: &str) -> Option<String> {
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return None;
    }
    let name = image.split('@').next().unwrap_or(image);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let repo = match name[last_slash..].find(':') {
        Some(colon) => &name[..last_slash + colon],
        None => name,
    };
    Some(format!("{repo}:{tag}"))
}

/// `resources`: only `requests` and `limits`, each a mapping of resource name to quantity
/// (k8s-openapi's own deserializer would ignore a misspelt key).
fn resources(value: Value) -> Result<ResourceRequirements, Invalid> {
    let Value::Object(map) = &value else {
        return Err(field("resources", "must be a mapping with requests and/or limits"));
    };
    for (key, inner) in map {
        if key != "requests" && key != "limits" {
            return Err(field(
                "resources",
                format!("unknown field `{key}`, expected requests or limits"),
            ));
        }
        let Value::Object(quantities) = inner else {
            return Err(field(format!("resources.{key}"), "must be a mapping"));
        };
        for (name, q) in quantities {
            if !(q.is_string() || q.is_number()) {
                return Err(field(format!("resources.{key}.{name}"), "must be a quantity"));
            }
        }
    }
    // Quantities are strings in the API; YAML numbers (`cpu: 1`) are accepted as their text.
    let mut value = value;
    if let Value::Object(map) = &mut value {
        for inner in map.values_mut() {
            if let Value::Object(q) = inner {
                for v in q.values_mut() {
                    if let Value::Number(n) = v {
                        *v = Value::String(n.to_string());
                    }
                }
            }
        }
    }
    serde_json::from_value(value).map_err(|_| {
        field("resources", "requests and limits must map resource names to quantities")
    })
}

fn port_number(name: &str, n: i64) -> Result<u16, Invalid> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(field(name, format!("{n} is not a port (1-65535)"))),
    }
}

fn parse_port(name: &str, text: &str) -> Result<Port, Invalid> {
    let (number, udp) = match text.trim().split_once('/') {
        None => (text.trim(), false),
        Some((n, proto)) if proto.eq_ignore_ascii_case("udp") => (n, true),
        Some((n, proto)) if proto.eq_ignore_ascii_case("tcp") => (n, false),
        Some(_) => {
            return Err(field(name, format!("{}: write N, \"N/tcp\" or \"N/udp\"", excerpt(text))));
        }
    };
    let n: i64 = number
        .parse()
        .map_err(|_| field(name, format!("{}: write N, \"N/tcp\" or \"N/udp\"", excerpt(text))))?;
    Ok(Port { number: port_number(name, n)?, udp })
}

/// Kubernetes DNS label (RFC 1123): 1–63 of `a-z0-9-`, starting and ending alphanumeric.
pub fn check_dns_label(what: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(field(
            what,
            format!(
                "{} is not a DNS label (1-63 lowercase letters, digits or '-', \
                 starting and ending with a letter or digit)",
                excerpt(name)
            ),
        ))
    }
}

/// An Ochopod namespace: dot-separated DNS labels, at most 63 characters in all (it is a label
/// value of every object `deploy` creates).
pub fn check_namespace(ns: &str) -> Result<(), Invalid> {
    if ns.len() > 63 {
        return Err(field("namespace", format!("{ns:?} is longer than 63 characters")));
    }
    for part in ns.split('.') {
        check_dns_label("namespace", part).map_err(|_| {
            field("namespace", format!("{ns:?}: dot-separated DNS labels expected"))
        })?;
    }
    Ok(())
}

fn is_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

fn check_label_value(what: &str, v: &str) -> Result<(), Invalid> {
    if is_label_value(v) {
        Ok(())
    } else {
        Err(field(
            what,
            format!("{} is not a label value (at most 63 of A-Za-z0-9-_.)", excerpt(v)),
        ))
    }
}

fn check_label_key(what: &str, key: &str) -> Result<(), Invalid> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix
        .is_none_or(|p| p.len() <= 253 && p.split('.').all(|l| check_dns_label("", l).is_ok()));
    if !prefix_ok || name.is_empty() || !is_label_value(name) {
        return Err(field(what, format!("{} is not a valid key ([prefix/]name)", excerpt(key))));
    }
    if prefix == Some("ochopod.io") {
        return Err(field(what, format!("{}: the ochopod.io/ prefix is reserved", excerpt(key))));
    }
    Ok(())
}

fn check_env_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !ok {
        return Err(field(format!("env.{name}"), "not a valid environment variable name"));
    }
    if RESERVED_ENV.contains(&name) {
        return Err(field(format!("env.{name}"), "set by deploy itself; remove it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures(kind: &str) -> Vec<PathBuf> {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/definitions").join(kind);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixtures in {}", dir.display());
        files
    }

    /// Every bad fixture starts with `# expect: <text>`; the error (with the file name) must
    /// contain that text.
    #[test]
    fn bad_fixtures_fail_with_their_expected_message() {
        for path in fixtures("bad") {
            let text = std::fs::read_to_string(&path).unwrap();
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{} has no '# expect: ' line", path.display()));
            let err = load(&path).map(|d| format!("parsed as {d:?}")).unwrap_err();
            let shown = crate::error::chain(&err);
            assert!(shown.contains(expect), "{}: got {shown:?}, want {expect:?}", path.display());
            assert!(shown.contains(&path.display().to_string()), "file not named: {shown}");
        }
    }

    #[test]
    fn good_fixtures_parse() {
        for path in fixtures("good") {
            load(&path)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), crate::error::chain(&e)));
        }
    }

    #[test]
    fn the_original_demo_definition_parses_with_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/definitions/good/zookeeper.yaml");
        let d = load(&path).unwrap();
        assert_eq!(d.cluster, "zookeeper");
        assert_eq!(d.image, "paugamo/k8s-ec2-zookeeper");
        let numbers: Vec<u16> = d.ports.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [2181, 2888, 3888]);
        assert_eq!(serde_json::to_string(&d.settings).unwrap(), r#"{"hello":{"world":1234}}"#);
        assert_eq!((d.debug, d.start, d.control_port, d.replicas), (false, true, 8080, None));
    }

    #[test]
    fn yaml_1_1_booleans_are_strings_in_settings_and_refused_in_boolean_fields() {
        let d = parse("cluster: a\nimage: b\nsettings:\n  x: yes\n  y: on\n  z: true\n  1: one\n")
            .unwrap();
        // Integer keys become strings, as json.dumps made them in the original.
        assert_eq!(d.settings["1"], Value::String("one".into()));
        assert_eq!(d.settings["x"], Value::String("yes".into()));
        assert_eq!(d.settings["y"], Value::String("on".into()));
        assert_eq!(d.settings["z"], Value::Bool(true));
        let err = parse("cluster: a\nimage: b\ndebug: yes\n").unwrap_err().to_string();
        assert!(err.contains("debug") && err.contains("line 3"), "{err}");
        let d = parse("cluster: a\nimage: b\ndebug: true\nstart: false\n").unwrap();
        assert!(d.debug && !d.start);
    }

    #[test]
    fn udp_ports_and_the_control_port() {
        let d = parse(
            "cluster: a\nimage: b\nports: [53, \"53/udp\", \"9000/TCP\"]\ncontrol-port: 9001\n",
        )
        .unwrap();
        assert_eq!(
            d.ports,
            [
                Port { number: 53, udp: false },
                Port { number: 53, udp: true },
                Port { number: 9000, udp: false }
            ]
        );
        assert_eq!(d.control_port, 9001);
    }

    #[test]
    fn overrides_merge_into_settings_and_fill_nulls() {
        let mut d =
            parse("cluster: kafka\nimage: b\nsettings:\n  broker:\n    id: ~\n    x: 1\n").unwrap();
        let err =
            d.clone().prepare(&Prepare { namespace: "test", ..Default::default() }).unwrap_err();
        assert_eq!(err.to_string(), "1 setting(s) missing: pod.broker.id");
        let overrides: Map<String, Value> =
            serde_json::from_str(r#"{"test.kafka-b": {"broker": {"id": 3}}}"#).unwrap();
        let opts = Prepare {
            namespace: "test",
            suffix: Some("b"),
            release: Some("2.0"),
            overrides: Some(&overrides),
        };
        d.prepare(&opts).unwrap();
        assert_eq!(d.cluster, "kafka-b");
        assert_eq!(d.image, "b:2.0");
        assert_eq!(serde_json::to_string(&d.settings).unwrap(), r#"{"broker":{"id":3,"x":1}}"#);
    }

    #[test]
    fn release_tags_keep_registry_ports_and_drop_digests() {
        assert_eq!(with_tag("repo", "2").unwrap(), "repo:2");
        assert_eq!(with_tag("repo:1.0", "2").unwrap(), "repo:2");
        assert_eq!(with_tag("host:5000/team/repo", "2").unwrap(), "host:5000/team/repo:2");
        assert_eq!(with_tag("host:5000/repo:1@sha256:abc", "2").unwrap(), "host:5000/repo:2");
        assert_eq!(with_tag("repo", "bad tag"), None);
        assert_eq!(with_tag("repo", "-x"), None);
    }

    #[test]
    fn namespaces_may_hold_dots_but_not_capitals() {
        assert!(check_namespace("default").is_ok());
        assert!(check_namespace("team.prod").is_ok());
        assert!(check_namespace("Team").is_err());
        assert!(check_namespace("a..b").is_err());
        assert!(check_namespace(&"a".repeat(64)).is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let text = format!("cluster: a\nimage: b\n#{}\n", "x".repeat(MAX_FILE as usize));
        assert!(matches!(parse(&text), Err(Invalid::TooLarge)));
    }
}
