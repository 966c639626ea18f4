//! `ocho cli`: the operator's client. Posts tool lines to a portal (`POST /shell`, `X-Shell`)
//! over plain HTTP with our own client (no curl, no shell: docs/architecture.md §7.2), uploads the
//! local files a line names (under their base names; globs in file arguments expanded here:
//! glob.rs), prints the NDJSON stream as it arrives and exits with the tool's exit code. Without
//! a tool line it runs a REPL (`exit` or Ctrl-D to leave, `history`, `!!`, `!N`, a line editor
//! with ↑/↓ history and Tab completion on a terminal: editor.rs; Ctrl-C cancels: cancel.rs).

mod cancel;
mod editor;
mod glob;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use argh::{ArgsInfo, FromArgs};

use crate::error::{Error, Result};
use crate::http::{self, HttpError};
use crate::words;

/// The portal's port when the proxy address has none.
pub const DEFAULT_PORT: u16 = 9000;

/// How much longer than the tool's deadline the client waits for the reply.
const MARGIN: f64 = 30.0;

/// The portal's longest deadline; the client's default wait.
const LONGEST: f64 = 3600.0;

/// run tools on a portal: one line and exit with its code, or a REPL
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "cli",
    example = "{command_name} 127.0.0.1:9000\n    open the interactive prompt: Tab completes, Ctrl-D leaves",
    example = "{command_name} 127.0.0.1:9000 ls\n    run one tool on the portal and exit with its code",
    example = "{command_name} 127.0.0.1:9000 deploy '*.yml' --wait\n    upload every YAML file of this directory and deploy them",
    example = "{command_name} --ca ca.pem https://proxy:9000 log -f zookeeper\n    follow zookeeper's logs over HTTPS, the certificate checked against ca.pem",
    note = "The proxy is the first word unless $OCHOPOD_PROXY (or --proxy) names it: host, \
            host:port, http://host:port or https://host:port (default port 9000; the certificate \
            is checked against --ca or $OCHOPOD_CA, else the system's roots). $OCHOPOD_TOKEN is sent as a \
            Bearer token. Arguments after the tool word that name local files are uploaded \
            under their base names. A glob (`*`, `?`, `[…]`) in a file argument (deploy's FILEs \
            and --overrides, ping's payload, exec's --upload; `/tools` marks them) is expanded \
            here and every match uploaded; one that matches nothing is an error and nothing is \
            sent. Cluster globs (`grep web*`) reach the tool as typed. `whoami` (one-shot or in \
            the REPL) prints the token's name, role and scope as the portal sees them.\n\n\
            REPL keys: Tab completes tool names, options and file paths (from the portal's \
            /tools); Ctrl-C cancels the running tool (the portal kills it) and returns to the \
            prompt, drops the line being typed, and at an empty prompt says how to leave: a \
            second Ctrl-C then leaves, as do Ctrl-D and `exit`. ↑/↓ history, `history`, `!!`, \
            `!N`, Ctrl-L clears the screen; a failed line is followed by `(exit N)`."
)]
pub struct Args {
    /// the proxy, overriding $OCHOPOD_PROXY and the first word
    #[argh(option)]
    pub proxy: Option<String>,
    /// PEM file of the CA that signed an https:// portal's certificate (default $OCHOPOD_CA,
    /// else the system's roots)
    #[argh(option)]
    pub ca: Option<std::path::PathBuf>,
    /// seconds the tool may run (sent as X-Timeout; default: the portal's --timeout)
    #[argh(option)]
    pub timeout: Option<f64>,
    /// [PROXY] then the tool and its arguments; none: interactive
    #[argh(positional, greedy)]
    pub words: Vec<String>,
}

/// Where and how to reach the portal.
struct Portal {
    /// `host:port`.
    addr: String,
    /// Path prefix of a URL, without the trailing slash.
    base: String,
    token: Option<String>,
    timeout: Option<f64>,
    /// `https://`: the roots its certificate must chain to.
    tls: Option<http::TlsConfig>,
    /// The "this portal checks no credentials" warning was printed.
    warned_open: std::sync::atomic::AtomicBool,
    /// `/tools`, once fetched.
    tools: std::sync::OnceLock<serde_json::Value>,
}

/// Parses `host`, `host:port`, `[v6]:port` or `http://host[:port][/prefix]`.
fn parse_proxy(text: &str) -> Result<(String, String)> {
    let bad = || {
        Error::Usage(format!(
            "invalid proxy '{text}': expected host, host:port or http://host:port"
        ))
    };
    if text.starts_with("https://") {
        return Err(Error::Usage(format!("proxy '{text}': the portal speaks plain HTTP only")));
    }
    let rest = text.strip_prefix("http://").unwrap_or(text);
    let (hostport, base) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if hostport.is_empty() || hostport.contains(['@', ' ']) {
        return Err(bad());
    }
    let has_port = if hostport.starts_with('[') {
        hostport.contains("]:")
    } else {
        hostport.matches(':').count() == 1
    };
    let addr = if has_port {
        let port = hostport.rsplit(':').next().unwrap_or("");
        port.parse::<u16>().map_err(|_| bad())?;
        hostport.to_string()
    } else if hostport.contains(':') && !hostport.starts_with('[') {
        format!("[{hostport}]:{DEFAULT_PORT}")
    } else {
        format!("{hostport}:{DEFAULT_PORT}")
    };
    Ok((addr, base.to_string()))
}

/// Quotes a word so that the portal's shell-word splitting gives it back unchanged.
fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word.chars().all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// Files to upload: the arguments after the tool word that name local regular files, each
/// replaced by its base name. Two files with one base name are refused.
fn uploads(words: &mut [String]) -> Result<Vec<(String, PathBuf)>> {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for word in words.iter_mut().skip(1) {
        let path = expand_home(word);
        if !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if let Some(first) = files.get(&name).filter(|first| **first != path) {
            return Err(Error::Usage(format!(
                "{} and {} would both upload as '{name}'",
                first.display(),
                path.display()
            )));
        }
        files.insert(name.clone(), path);
        *word = name;
    }
    Ok(files.into_iter().collect())
}

/// Words the REPL answers itself.
const REPL_WORDS: [&str; 5] = ["exit", "help", "history", "quit", "whoami"];

/// Local paths starting with `partial` (a directory's with `/` after it), for Tab: hidden ones
/// only when `partial`'s last component starts with `.`.
fn local_paths(partial: &str) -> Vec<String> {
    let (dir, start) = match partial.rfind('/') {
        Some(i) => (&partial[..=i], &partial[i + 1..]),
        None => ("", partial),
    };
    let listing = if dir.is_empty() { PathBuf::from(".") } else { expand_home(dir) };
    let Ok(entries) = std::fs::read_dir(&listing) else { return Vec::new() };
    let mut found: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let wanted =
                name.starts_with(start) && (!name.starts_with('.') || start.starts_with('.'));
            let slash = if e.path().is_dir() { "/" } else { "" };
            wanted.then(|| format!("{dir}{name}{slash}"))
        })
        .collect();
    found.sort();
    found
}

fn expand_home(word: &str) -> PathBuf {
    match (word.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(word),
    }
}

/// A `multipart/form-data` body: each file as a part named by its base name.
fn multipart(files: &[(String, PathBuf)]) -> Result<(String, Vec<u8>)> {
    let mut contents = Vec::new();
    for (name, path) in files {
        let data = std::fs::read(path).map_err(|source| Error::io("read", path, source))?;
        contents.push((name, data));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        ^ u128::from(std::process::id());
    let mut n = 0u32;
    let boundary = loop {
        let candidate = format!("ocho-{seed:x}-{n}");
        let needle = candidate.as_bytes();
        if !contents.iter().any(|(_, d)| d.windows(needle.len()).any(|w| w == needle)) {
            break candidate;
        }
        n += 1;
    };
    let mut body = Vec::new();
    for (name, data) in contents {
        let name = name.replace(['"', '\r', '\n'], "_");
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), body))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Portal {
    /// Runs one line (already split into words); returns the tool's exit code.
    fn run(&self, words: Vec<String>) -> Result<u8> {
        let mut words = self.expand_globs(words)?;
        let files = uploads(&mut words)?;
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        let mut headers = vec![("Accept".to_string(), "application/x-ndjson".to_string())];
        if let Some(token) = &self.token {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        if let Some(secs) = self.timeout {
            headers.push(("X-Timeout".into(), secs.to_string()));
        }
        // The tool writes to a pipe; the operator reads on a terminal (`-o json` indents then).
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            headers.push(("X-Terminal".into(), "1".into()));
        }
        let (method, path, body) = if line.is_ascii() && !line.contains(['\r', '\n']) {
            headers.push(("X-Shell".into(), line.clone()));
            let body = if files.is_empty() {
                Vec::new()
            } else {
                let (content_type, body) = multipart(&files)?;
                headers.push(("Content-Type".into(), content_type));
                body
            };
            ("POST", format!("{}/shell", self.base), body)
        } else if files.is_empty() {
            // HTTP header values are ASCII; the query string carries any text.
            ("GET", format!("{}/shell?line={}", self.base, percent_encode(&line)), Vec::new())
        } else {
            return Err(Error::Usage("a line with uploads must be ASCII on one line".into()));
        };
        let wait = self.timeout.unwrap_or(LONGEST) + MARGIN;
        let request = http::Request {
            method,
            addr: &self.addr,
            path: &path,
            headers,
            body: &body,
            timeout: Duration::from_secs_f64(wait),
        };
        let opened = request.open_watched(self.tls.as_ref(), cancel::arm);
        let ((status, head), body) = opened.map_err(|e| {
            cancel::disarm();
            self.http_error(e)
        })?;
        let body = cancel::Armed(body);
        if self.token.is_some()
            && http::header(&head, "x-ocho-auth") == Some("open")
            && !self.warned_open.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "warning: the portal at {} checks no credentials: anyone who reaches it can run tools ($OCHOPOD_TOKEN is not needed)",
                self.addr
            );
        }
        let is_stream = http::header(&head, "content-type")
            .is_some_and(|t| t.starts_with("application/x-ndjson"));
        if status == 200 && is_stream {
            return self.stream(body);
        }
        let mut text = Vec::new();
        body.take(8 << 20).read_to_end(&mut text).map_err(|e| self.http_error(HttpError::Io(e)))?;
        let reply: Option<serde_json::Value> = serde_json::from_slice(&text).ok();
        match (status, reply) {
            (401, _) => Err(Error::Failed(format!(
                "the portal at {} requires a token: set $OCHOPOD_TOKEN",
                self.addr
            ))),
            (403, reply) => {
                // A role or scope refusal says what the line needed; a bad token says so.
                let said = reply.as_ref().and_then(|r| {
                    ["err", "error"].iter().find_map(|k| r.get(*k)?.as_str().map(str::trim))
                });
                Err(Error::Failed(match said {
                    Some(why) if !why.is_empty() && why != "credentials refused" => {
                        format!("the portal at {} refused: {why}", self.addr)
                    }
                    _ => format!("the portal at {} refused the token in $OCHOPOD_TOKEN", self.addr),
                }))
            }
            (_, Some(reply)) => {
                let field = |k: &str| reply.get(k).and_then(|v| v.as_str()).unwrap_or("");
                print!("{}", field("out"));
                eprint!("{}{}", field("err"), field("error"));
                let _ = std::io::stdout().flush();
                let code = reply.get("code").and_then(|c| c.as_i64());
                Ok(match (status, code) {
                    (200, Some(code)) => u8::try_from(code).unwrap_or(1),
                    (400, _) => 2,
                    _ => 1,
                })
            }
            (_, None) => Err(Error::Failed(format!(
                "unexpected reply from {}: HTTP {status}, not JSON (is it an ocho portal?)",
                self.addr
            ))),
        }
    }

    /// Prints an NDJSON stream as it arrives; the last object carries the exit code.
    fn stream(&self, body: impl Read) -> Result<u8> {
        let stdout = std::io::stdout();
        for line in BufReader::new(body).lines() {
            let line = line.map_err(|e| self.http_error(HttpError::Io(e)))?;
            if line.trim().is_empty() {
                continue;
            }
            let event: serde_json::Value = serde_json::from_str(&line).map_err(|_| {
                Error::Failed(format!("unexpected line from {}: not JSON", self.addr))
            })?;
            if let Some(text) = event.get("line").and_then(|l| l.as_str()) {
                if event.get("stream").and_then(|s| s.as_str()) == Some("err") {
                    eprintln!("{text}");
                } else {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
                }
            } else if event.get("exit").is_some() || event.get("error").is_some() {
                if let Some(error) = event.get("error").and_then(|e| e.as_str()) {
                    eprintln!("{error}");
                }
                let code = event.get("exit").and_then(|c| c.as_i64());
                return Ok(code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1));
            }
        }
        Err(Error::Failed(format!(
            "the connection to {} ended before the tool's exit status",
            self.addr
        )))
    }

    /// `GET /tools`: the tools this client may run, their arguments, and `who`.
    fn fetch_tools(&self) -> Result<serde_json::Value> {
        let mut headers = Vec::new();
        if let Some(token) = &self.token {
            headers.push(("Authorization".to_string(), format!("Bearer {token}")));
        }
        let path = format!("{}/tools", self.base);
        let request = http::Request {
            method: "GET",
            addr: &self.addr,
            path: &path,
            headers,
            body: &[],
            timeout: Duration::from_secs(30),
        };
        let ((status, _), body) =
            request.open_tls(self.tls.as_ref()).map_err(|e| self.http_error(e))?;
        let mut text = Vec::new();
        body.take(8 << 20).read_to_end(&mut text).map_err(|e| self.http_error(HttpError::Io(e)))?;
        let reply: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
        if status != 200 {
            let why = reply.get("error").and_then(|e| e.as_str()).unwrap_or("no reason given");
            return Err(Error::Failed(format!(
                "the portal at {}: HTTP {status}: {why}",
                self.addr
            )));
        }
        let _ = self.tools.set(reply.clone());
        Ok(reply)
    }

    /// The tools' definitions, from the portal once per session (for globs and Tab); the
    /// client's own when the portal does not give them (an older portal, a refusal).
    fn tools(&self) -> &serde_json::Value {
        if self.tools.get().is_none() {
            let fetched = self.fetch_tools().unwrap_or_else(|_| crate::portal::tools_json(None));
            let _ = self.tools.set(fetched);
        }
        self.tools.get().expect("set just above")
    }

    /// Tab in the REPL: the candidates for the last word of `before` (the line up to the
    /// cursor): a tool or REPL word first, a tool after `help`, a tool's long options after a
    /// `-`, local paths in a file argument.
    fn complete(&self, before: &str) -> Vec<String> {
        let mut words: Vec<String> =
            before.split(' ').filter(|w| !w.is_empty()).map(String::from).collect();
        if before.is_empty() || before.ends_with(' ') {
            words.push(String::new());
        }
        let listing = self.tools();
        let tools = listing["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
        let names = tools.iter().filter_map(|t| t["name"].as_str().map(String::from));
        let partial = words.last().cloned().unwrap_or_default();
        if words.len() == 1 {
            let mut all: Vec<String> = names.chain(REPL_WORDS.map(String::from)).collect();
            all.sort();
            return all;
        }
        if words.len() == 2 && words[0] == "help" {
            return names.collect();
        }
        let Some(tool) = tools.iter().find(|t| t["name"] == words[0].as_str()) else {
            return Vec::new();
        };
        if partial.starts_with('-') {
            let options = tool["options"].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut longs: Vec<String> =
                options.iter().filter_map(|o| o["long"].as_str().map(String::from)).collect();
            longs.push("--help".into());
            return longs;
        }
        match glob::file_words(tool, &words).last() {
            Some(glob::Arg::File | glob::Arg::OptionFile) => local_paths(&partial),
            _ => Vec::new(),
        }
    }

    /// `words` with the globs of their file arguments expanded here (glob.rs).
    fn expand_globs(&self, words: Vec<String>) -> Result<Vec<String>> {
        if !words.iter().skip(1).any(|w| glob::is_glob(w) && !expand_home(w).exists()) {
            // Nothing to expand: no need to ask the portal for its tools.
            return Ok(words);
        }
        let listing = self.tools();
        let tools = listing["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
        match tools.iter().find(|t| words.first().is_some_and(|w| t["name"] == w.as_str())) {
            Some(tool) => {
                let args = glob::file_words(tool, &words);
                glob::expand(Path::new("."), words, &args)
            }
            None => Ok(words),
        }
    }

    /// Who the portal says this client is (`GET /tools`'s `who`): `name (role)`, and the scope
    /// when the token has one.
    fn whoami(&self) -> Result<String> {
        let reply = self.fetch_tools()?;
        let who = &reply["who"];
        let name = who["name"].as_str().unwrap_or("-");
        let mut text = match (name, who["role"].as_str()) {
            ("-", _) => "nobody in particular: the portal checks no credentials".to_string(),
            (name, Some(role)) => format!("{name} ({role})"),
            (name, None) => name.to_string(),
        };
        if let Some(scope) = who["scope"].as_array() {
            let globs: Vec<&str> = scope.iter().filter_map(|g| g.as_str()).collect();
            text.push_str(&format!(", scope {}", globs.join(", ")));
        }
        Ok(text)
    }

    fn http_error(&self, err: HttpError) -> Error {
        let hint = match &err {
            HttpError::Tls(_) => {
                " (its certificate does not verify: give the portal's CA with --ca FILE or $OCHOPOD_CA)"
            }
            _ if err.is_silence() => " (is the proxy running?)",
            _ => "",
        };
        Error::Failed(format!("cannot reach the portal at {}: {err}{hint}", self.addr))
    }
}

/// One line (one-shot) or the REPL.
pub fn run(args: Args) -> Result<ExitCode> {
    let mut words = args.words;
    let from_env = std::env::var("OCHOPOD_PROXY").ok().filter(|p| !p.trim().is_empty());
    let proxy = match (args.proxy, from_env) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) if !words.is_empty() => words.remove(0),
        (None, None) => {
            return Err(Error::Usage(
                "either set $OCHOPOD_PROXY or pass the proxy as the first argument".into(),
            ));
        }
    };
    let text = proxy.trim();
    let (https, plain) = match text.strip_prefix("https://") {
        Some(rest) => (true, format!("http://{rest}")),
        None => (false, text.to_string()),
    };
    let (addr, base) = parse_proxy(&plain)?;
    let ca = args.ca.clone().or_else(|| {
        std::env::var_os("OCHOPOD_CA").filter(|v| !v.is_empty()).map(std::path::PathBuf::from)
    });
    let tls = match (https, &ca) {
        (true, ca) => Some(http::tls_config(ca.as_deref()).map_err(Error::Usage)?),
        (false, Some(_)) => {
            return Err(Error::Usage(
                "--ca (or $OCHOPOD_CA) is for an https:// proxy; this one is plain HTTP".into(),
            ));
        }
        (false, None) => None,
    };
    if let Some(t) = args.timeout.filter(|t| !(*t > 0.0 && *t <= LONGEST)) {
        return Err(Error::Usage(format!("--timeout {t}: must be in (0, {LONGEST}] seconds")));
    }
    let token = std::env::var("OCHOPOD_TOKEN").ok().filter(|t| !t.trim().is_empty());
    let portal = Portal {
        addr,
        base,
        token,
        timeout: args.timeout,
        tls,
        warned_open: Default::default(),
        tools: Default::default(),
    };
    if words.len() == 1 && words[0] == "whoami" {
        println!("{}", portal.whoami()?);
        return Ok(ExitCode::SUCCESS);
    }
    if !words.is_empty() {
        return portal.run(words).map(ExitCode::from);
    }
    repl(&portal)
}

/// The interactive loop.
fn repl(portal: &Portal) -> Result<ExitCode> {
    let mut editor = editor::Editor::new();
    if editor.interactive() {
        eprintln!("ocho cli → {} ('help' for the tools, 'exit' or Ctrl-D to leave)", portal.addr);
        if portal.token.is_none() {
            eprintln!("note: $OCHOPOD_TOKEN is not set");
        }
        match portal.whoami() {
            Ok(who) => eprintln!("connected as {who}"),
            Err(err) => eprintln!("ocho cli: {}", crate::error::chain(&err)),
        }
    }
    if editor.interactive() {
        cancel::install()?;
    }
    let prompt = if editor.interactive() { format!("{} > ", portal.addr) } else { String::new() };
    let mut last = 0u8;
    loop {
        let complete = |before: &str| portal.complete(before);
        let read = editor.read_line(&prompt, &complete);
        let line = match read.map_err(|e| Error::io("read", "stdin", e))? {
            editor::Input::Eof => return Ok(ExitCode::from(last)),
            editor::Input::Line(line) => line.trim().to_string(),
        };
        if line.is_empty() {
            continue;
        }
        if line == "exit" || line == "quit" {
            return Ok(ExitCode::from(last));
        }
        if line == "whoami" {
            last = match portal.whoami() {
                Ok(who) => {
                    println!("{who}");
                    0
                }
                Err(err) => {
                    eprintln!("ocho cli: {}", crate::error::chain(&err));
                    1
                }
            };
            continue;
        }
        if line == "history" {
            for (i, old) in editor.history().iter().enumerate() {
                println!("{:4}  {old}", i + 1);
            }
            continue;
        }
        let line = match line.strip_prefix('!') {
            Some(which) => {
                let history = editor.history();
                let recalled = if which == "!" {
                    history.last()
                } else {
                    which.parse::<usize>().ok().and_then(|n| history.get(n.wrapping_sub(1)))
                };
                match recalled {
                    Some(old) => {
                        eprintln!("{old}");
                        old.clone()
                    }
                    None => {
                        eprintln!("no such history entry: {line}");
                        continue;
                    }
                }
            }
            None => line,
        };
        editor.add(&line);
        let words = match words::split(&line) {
            Ok(words) => words,
            Err(err) => {
                eprintln!("{err}");
                continue;
            }
        };
        cancel::begin();
        let ran = portal.run(words);
        if cancel::cancelled() && ran.is_err() {
            // The terminal echoed ^C where the cursor was (the start of a line): written over.
            let back = if std::io::stderr().is_terminal() { "\r" } else { "" };
            eprintln!("{back}^C (cancelled)");
            last = 130;
            continue;
        }
        last = match ran {
            Ok(code) => code,
            Err(err) => {
                eprintln!("ocho cli: {}", crate::error::chain(&err));
                err.exit_code()
            }
        };
        // As a shell shows it: a failed line says so, the session goes on.
        if last != 0 {
            eprintln!("(exit {last})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        let p = |t: &str| parse_proxy(t).unwrap();
        assert_eq!(p("10.0.0.1"), ("10.0.0.1:9000".into(), "".into()));
        assert_eq!(p("proxy:8080"), ("proxy:8080".into(), "".into()));
        assert_eq!(p("http://proxy"), ("proxy:9000".into(), "".into()));
        assert_eq!(p("http://proxy:1/ocho/"), ("proxy:1".into(), "/ocho".into()));
        assert_eq!(p("[::1]:9001"), ("[::1]:9001".into(), "".into()));
        assert_eq!(p("[::1]"), ("[::1]:9000".into(), "".into()));
        assert!(parse_proxy("https://proxy").is_err());
        assert!(parse_proxy("proxy:http").is_err());
        assert!(parse_proxy("").is_err());
    }

    #[test]
    fn quoting_round_trips_through_the_portal_splitter() {
        let corpus = ["plain", "a b", "it's", "", "$(id)", "`x`", ";|&><*?", "\"q\"", "a\\b", "ü"];
        let line = corpus.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        assert_eq!(words::split(&line).unwrap(), corpus);
    }

    #[test]
    fn local_files_after_the_tool_word_become_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yml"), dir.path().join("sub"));
        std::fs::write(&a, "x").unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("a.yml"), "y").unwrap();
        let mut words = vec![a.display().to_string(), a.display().to_string(), "-p".into()];
        let files = uploads(&mut words).unwrap();
        assert_eq!(words, [a.display().to_string(), "a.yml".into(), "-p".into()]);
        assert_eq!(files, [("a.yml".to_string(), a.clone())]);

        let mut words =
            vec!["deploy".into(), a.display().to_string(), b.join("a.yml").display().to_string()];
        let err = uploads(&mut words).unwrap_err();
        assert!(err.to_string().contains("both upload as 'a.yml'"), "{err}");
    }
}
