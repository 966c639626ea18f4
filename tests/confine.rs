//! The portal as a trust boundary, over real HTTP and on the binary: files a tool reads because
//! of an argument stay inside the request's directory (absolute paths, `..` and symbolic links
//! leading out are refused, and the file is never opened: inotify sees no open), a legitimate
//! upload still works, and run directly a tool reads files as any Unix tool does.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use crate::support;

use support::portal::{multipart, percent};

use std::path::{Path, PathBuf};
use std::process::Output;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use support::ocho;
use support::portal::{Portal, Reply};

/// Lines that look like what must never leak: each longer than any excerpt an error may show.
const SECRET: &str = "root:x:0:0:root:/root:/bin/bash-and-some-more-to-be-long\n\
                      token: eyJhbGciOiJSUzI1NiIsImtpZCI6IkNPTkZJREVOVElBTCJ9.s3cr3t\n\
                      AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n";

const DEFINITION: &str = "cluster: web\nimage: nginx:1\nsettings:\n  greeting: ~\n";

/// A directory outside every request, holding a secret and a valid definition, watched with
/// inotify so a test can tell whether anything opened them.
struct Outside {
    dir: tempfile::TempDir,
    watch: Inotify,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.yml"), SECRET).unwrap();
        std::fs::write(dir.path().join("valid.yml"), DEFINITION).unwrap();
        let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
        watch.add_watch(dir.path(), AddWatchFlags::IN_OPEN | AddWatchFlags::IN_ACCESS).unwrap();
        Outside { dir, watch }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `name` reached from any directory by climbing to `/` first.
    fn climbing(&self, name: &str) -> String {
        format!("{}{}", "../".repeat(24), self.path(name).trim_start_matches('/'))
    }

    /// Names of whatever was opened or read in the directory since the last call.
    fn opened(&self) -> Vec<String> {
        match self.watch.read_events() {
            Ok(events) => events
                .into_iter()
                .map(|e| e.name.map_or(".".into(), |n| n.to_string_lossy().into_owned()))
                .collect(),
            Err(nix::errno::Errno::EAGAIN) => Vec::new(),
            Err(e) => panic!("inotify: {e}"),
        }
    }
}

fn upload(portal: &Portal, line: &str, parts: &[(&str, &[u8])]) -> Reply {
    let (content_type, body) = multipart(parts);
    portal.request("POST", "/shell", &[("X-Shell", line), ("Content-Type", &content_type)], &body)
}

/// (code, out, err) of a tool run through the portal; the HTTP status must be 200, or 400 for
/// the tool's usage errors (exit 2).
fn ran(reply: &Reply) -> (i64, String, String) {
    let body = reply.json();
    let expected = if body["code"] == 2 { 400 } else { 200 };
    assert_eq!(reply.status, expected, "{body}");
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
    (body["code"].as_i64().unwrap(), text("out"), text("err"))
}

fn assert_no_leak(text: &str) {
    for line in SECRET.lines().chain(["root:x:0:0"]) {
        assert!(!text.contains(line), "leaked {line:?} in {text}");
    }
}

#[test]
fn through_the_portal_argument_files_outside_the_request_are_refused_unopened() {
    let outside = Outside::new();
    let portal = Portal::start(&[], &[("OCHOPOD_ZK", support::refusing_addr())]);
    let secret = outside.path("secret.yml");
    let climbing = outside.climbing("secret.yml");
    let via_missing_dir = format!("a/../{climbing}");
    let paths = ["/etc/passwd", secret.as_str(), "../secret.yml", &climbing, &via_missing_dir];
    // Which argument each line gives the path as, and the name the refusal must use for it.
    let mut lines: Vec<(String, &str)> = Vec::new();
    for path in paths {
        lines.push((format!("deploy --dry-run '{path}'"), "definition"));
        lines.push((format!("deploy --dry-run -O '{path}' web.yml"), "override file (-O)"));
        lines.push((format!("ping '{path}' web --force"), "payload"));
        lines.push((format!("audit --audit '{path}'"), "journal"));
    }
    let glob_dir = outside.dir.path().display().to_string();
    lines.push((format!("deploy --dry-run '{glob_dir}/*.yml'"), "definition glob"));
    let climbing_dir = outside.climbing("");
    lines.push((format!("deploy --dry-run '{climbing_dir}*.yml'"), "definition glob"));
    lines.push(("deploy --dry-run '../*.yml'".into(), "definition glob"));
    for (line, argument) in &lines {
        let reply = upload(&portal, line, &[("web.yml", DEFINITION.as_bytes())]);
        let (code, out, err) = ran(&reply);
        assert_ne!(code, 0, "{line}: {out}{err}");
        assert!(err.contains(&format!("{argument} \"")), "{line}: argument not named: {err}");
        assert!(err.contains("refused"), "{line}: {err}");
        assert_no_leak(&out);
        assert_no_leak(&err);
        assert!(!out.contains("kind: ReplicationController"), "{line}: {out}");
    }
    assert_eq!(outside.opened(), Vec::<String>::new(), "files outside the request were opened");
}

#[test]
fn through_the_portal_uploads_are_read_as_before() {
    let zk = support::shared_zookeeper();
    let portal = Portal::start(&[], &[("OCHOPOD_ZK", zk)]);
    let over = b"default.web:\n  greeting: hello-from-the-override\n";
    let files: &[(&str, &[u8])] = &[
        ("web.yml", DEFINITION.as_bytes()),
        ("over.yaml", over),
        ("payload.json", b"{\"x\": [1, {\"y\": 2}]}"),
    ];
    for line in ["deploy --dry-run -O over.yaml web.yml", "deploy --dry-run -O ./over.yaml '*.yml'"]
    {
        let (code, out, err) = ran(&upload(&portal, line, files));
        assert_eq!(code, 0, "{line}: {err}");
        assert!(out.contains("hello-from-the-override"), "{line}: {out}");
    }
    // The payload is read and sent; no pod is registered, so ping fails for that reason only.
    let (code, _, err) = ran(&upload(&portal, "ping payload.json nobody --force", files));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no pods matched nobody") && !err.contains("payload"), "{err}");
}

fn run_in(dir: &Path, confined: bool, args: &[&str]) -> Output {
    let mut cmd = ocho();
    cmd.args(args)
        .current_dir(dir)
        .env_remove("OCHO_CONFINE")
        .env("OCHOPOD_ZK", support::refusing_addr());
    if confined {
        cmd.env("OCHO_CONFINE", dir);
    }
    cmd.output().unwrap()
}

#[test]
fn confined_symlinks_may_stay_inside_but_not_lead_out_and_unconfined_tools_read_anything() {
    let outside = Outside::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("web.yml"), DEFINITION).unwrap();
    std::fs::write(d.join("over.yaml"), "default.web:\n  greeting: hi\n").unwrap();
    std::os::unix::fs::symlink("web.yml", d.join("inside.yml")).unwrap();
    std::os::unix::fs::symlink("over.yaml", d.join("inside.yaml")).unwrap();
    std::os::unix::fs::symlink(outside.path("valid.yml"), d.join("out-abs.yml")).unwrap();
    let rel = PathBuf::from("..").join(outside.dir.path().file_name().unwrap()).join("valid.yml");
    std::os::unix::fs::symlink(&rel, d.join("out-rel.yml")).unwrap();
    std::os::unix::fs::symlink(outside.dir.path(), d.join("out-dir")).unwrap();

    let ok = run_in(d, true, &["deploy", "--dry-run", "-O", "inside.yaml", "inside.yml"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(r#""greeting":"hi""#), "{ok:?}");

    for (args, argument) in [
        (vec!["deploy", "--dry-run", "out-abs.yml"], "definition"),
        (vec!["deploy", "--dry-run", "out-rel.yml"], "definition"),
        (vec!["deploy", "--dry-run", "out-dir/valid.yml"], "definition"),
        (vec!["deploy", "--dry-run", "out-dir/*.yml"], "definition glob"),
        (vec!["deploy", "--dry-run", "-O", "out-abs.yml", "web.yml"], "override file (-O)"),
        (vec!["ping", "out-rel.yml", "web", "--force"], "payload"),
    ] {
        let out = run_in(d, true, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains(argument) && err.contains("symbolic link"), "{args:?}: {err}");
    }
    assert_eq!(outside.opened(), Vec::<String>::new(), "files outside were opened");

    // Not confined: the same links and absolute paths are read as any Unix tool reads them.
    let valid = outside.path("valid.yml");
    for file in ["out-abs.yml", "out-rel.yml", valid.as_str()] {
        let out = run_in(d, false, &["deploy", "--dry-run", "-O", "over.yaml", file]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(outside.opened().contains(&"valid.yml".to_string()));
}

#[test]
fn every_mode_that_is_not_a_tool_is_refused_by_name_on_every_route_and_nothing_runs() {
    let help = ocho().arg("help").output().unwrap();
    let modes: Vec<String> = String::from_utf8_lossy(&help.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("modes:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let portal = Portal::start(&[], &[]);
    let tools: Vec<String> = portal.request("GET", "/tools", &[], b"").json()["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(tools.iter().all(|t| modes.contains(t)), "{tools:?} not all in {modes:?}");
    let local: Vec<&String> = modes.iter().filter(|m| !tools.contains(m)).collect();
    for must in ["init", "portal", "pod", "cli", "zk-status"] {
        assert!(local.iter().any(|m| *m == must), "{must} is not refused: {local:?}");
    }
    let scratch = tempfile::tempdir().unwrap();
    for mode in &local {
        let witness = scratch.path().join(format!("{mode}-ran"));
        let w = witness.display().to_string();
        // Lines that would do something if the mode ran: `pod -- touch W` runs a command.
        let lines = [
            format!("{mode} -- /usr/bin/touch {w}"),
            format!("{mode} --zk {} -- /usr/bin/touch {w}", support::refusing_addr()),
            format!("{mode} --help"),
            format!("help {mode}"),
            mode.to_string(),
        ];
        for line in &lines {
            for reply in [
                portal.shell(line, &[]),
                portal.request("GET", &format!("/shell?line={}", percent(line)), &[], b""),
            ] {
                assert_eq!(reply.status, 400, "{line}: {}", reply.text());
                let err = reply.json()["err"].as_str().unwrap().to_string();
                assert!(err.contains(&format!("unknown tool '{mode}'")), "{line}: {err}");
            }
        }
        assert!(!witness.exists(), "{line:?} ran", line = lines[0]);
    }
    assert!(portal.children().is_empty(), "the portal spawned {:?}", portal.children());

    // And a process the portal started (confined) runs tools only, whatever reached it.
    let witness = scratch.path().join("pod-ran-confined");
    let mut cmd = ocho();
    cmd.args(["pod", "--zk", support::refusing_addr(), "--", "/usr/bin/touch"])
        .arg(&witness)
        .env("OCHO_CONFINE", scratch.path());
    let mut pod = support::Proc::spawn("confined pod", cmd);
    let status = pod.expect_exit(support::DEADLINE);
    assert_eq!(status.code(), Some(2), "{}", pod.tail());
    pod.wait_for_line("never runs for a client", support::DEADLINE);
    assert!(!witness.exists());
}

#[test]
fn errors_name_the_file_and_position_but_never_echo_its_lines() {
    let portal = Portal::start(&[], &[("OCHOPOD_ZK", support::refusing_addr())]);
    // Not YAML at all past line 1; plain lines (one long string); a mapping of the wrong keys.
    let broken = SECRET;
    let plain = "root:x:0:0:root:/root:/bin/bash-and-some-more-to-be-long\n\
                 daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin-and-more\n";
    let keyed = "password: hunter2-correct-horse-battery-staple\n\
                 api_key: sk_live_51HxAbCdEfGhIjKlMnOpQrStUvWx\n";
    let files: &[(&str, &[u8])] = &[
        ("broken.yml", broken.as_bytes()),
        ("plain.yml", plain.as_bytes()),
        ("keyed.yml", keyed.as_bytes()),
        ("web.yml", DEFINITION.as_bytes()),
    ];
    let cases = [
        ("deploy --dry-run broken.yml", "broken.yml", "found a string at line 1 column 1"),
        ("deploy --dry-run plain.yml", "plain.yml", "found a string at line 1"),
        ("deploy --dry-run keyed.yml", "keyed.yml", "unknown field `password`"),
        ("deploy --dry-run -O broken.yml web.yml", "broken.yml", "found a string at line 1"),
        ("deploy --dry-run -O plain.yml web.yml", "plain.yml", "found a string at line 1"),
        ("ping broken.yml web --force", "payload broken.yml", "line 2 column 6"),
    ];
    for (line, file, position) in cases {
        let (code, out, err) = ran(&upload(&portal, line, files));
        assert_ne!(code, 0, "{line}: {out}{err}");
        assert!(err.contains(file) && err.contains(position), "{line}: {err}");
        for secret in SECRET.lines().chain(plain.lines()).chain(keyed.lines()) {
            assert!(!err.contains(secret) && !out.contains(secret), "{line}: leaked in {err}");
        }
        for fragment in ["bin/bash", "nologin", "hunter2", "sk_live", "s3cr3t", "wJalrX"] {
            assert!(!err.contains(fragment) && !out.contains(fragment), "{line}: {err}");
        }
    }
}

/// Texts of exactly `size` bytes nested as deep as that allows: flow, block (one more space per
/// level) and compact sequences.
fn deep_texts(size: usize) -> Vec<(&'static str, String)> {
    let fill = |head: &str, open: &str, close: &str, tail: &str| {
        let n = (size - head.len() - tail.len() - 2) / (open.len() + close.len());
        let mut text = format!("{head}{}x{}{tail}", open.repeat(n), close.repeat(n));
        text.push_str(&" ".repeat(size - text.len() - 1));
        text.push('\n');
        text
    };
    let mut block = String::from("cluster: a\nimage: b\nsettings:\n");
    for i in 1.. {
        let line = format!("{}k{i}:\n", " ".repeat(i));
        if block.len() + line.len() > size {
            break;
        }
        block.push_str(&line);
    }
    block.push_str(&"#".repeat(size - block.len() - 1));
    block.push('\n');
    let compact = format!("{}x\n{}", "- ".repeat((size - 2) / 2), " ".repeat(size % 2));
    vec![
        ("flow", fill("cluster: a\nimage: b\nsettings: {x: ", "[", "]", "}")),
        ("block", block),
        ("compact", compact),
    ]
}

#[test]
fn deeply_nested_yaml_at_the_size_cap_is_refused_with_the_file_line_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 256 * 1024;
    let mut cases = Vec::new();
    for (kind, text) in deep_texts(cap) {
        assert_eq!(text.len(), cap, "{kind}");
        let name = format!("{kind}.yml");
        std::fs::write(dir.path().join(&name), &text).unwrap();
        cases.push((vec!["deploy".to_string(), "--dry-run".into(), name.clone()], name.clone()));
        cases.push((
            vec!["deploy".into(), "--dry-run".into(), "-O".into(), name.clone(), "x.yml".into()],
            name.clone(),
        ));
        cases.push((
            vec!["ping".into(), name.clone(), "web".into(), "--force".into()],
            format!("payload {name}"),
        ));
    }
    for (args, named) in cases {
        let mut cmd = ocho();
        cmd.args(&args).current_dir(dir.path()).env("OCHOPOD_ZK", support::refusing_addr());
        let mut tool = support::Proc::spawn("deep", cmd);
        let status = tool.expect_exit(support::DEADLINE);
        assert!(!status.success(), "{args:?}");
        let err = tool.wait_for_line("nested deeper than 64 levels at line ", support::DEADLINE);
        assert!(err.contains(&named), "{args:?}: {err}");
    }
}

/// `zk_global_sessions` from ZooKeeper's `mntr`.
fn zk_sessions(addr: &str) -> u64 {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(b"mntr").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("zk_global_sessions"))
        .unwrap_or_else(|| panic!("no zk_global_sessions in mntr: {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn tools_close_their_zookeeper_session_when_they_end() {
    // A ZooKeeper of its own: other tests' sessions would blur the count.
    let zk = support::ZooKeeper::start();
    let baseline = zk_sessions(&zk.addr);
    // `ls`, `grep` and `info` close theirs while they ask the pods (Session::close_in_background).
    for tool in ["ls", "grep", "info", "ls", "grep", "info", "ls", "grep", "info", "ls"] {
        let out = ocho().args([tool, "--zk", &zk.addr]).output().unwrap();
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // Each tool closed its session before exiting; the server may take a moment to count. A
    // session left open would linger for its whole timeout (10 s), past this deadline.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let now = zk_sessions(&zk.addr);
        if now <= baseline {
            break;
        }
        assert!(std::time::Instant::now() < end, "{now} sessions, {baseline} before 10 tool runs");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
