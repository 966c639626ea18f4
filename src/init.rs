//! `ocho init`: PID 1 of the proxy image. Thin on purpose: it blocks signals, supervises two
//! children (the ZooKeeper JVM and `ocho portal`), forwards signals, reaps every orphan, restarts
//! crashed children with backoff, and shuts down in order (portal first, it drains requests;
//! then ZooKeeper) within a grace period. Nothing else runs in this process, because a
//! `waitpid(-1)` reaper steals the statuses of any other waiter (docs/platform.md §4.3).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argh::{ArgsInfo, FromArgs};
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::supervise::{child, guard, reap, signals};
use crate::zk::{config, data, probe, server};

/// PID 1 of the proxy: supervise ZooKeeper and the portal
#[derive(FromArgs, ArgsInfo)]
#[argh(
    subcommand,
    name = "init",
    example = "{command_name}\n    run ZooKeeper on port 2181 and the portal on port 9000 (the proxy image's\n    entrypoint)",
    example = "{command_name} --zk-data .run/zk --portal-bind 127.0.0.1:9000\n    run both on a workstation: ZooKeeper's data under .run/zk, the portal on\n    loopback only",
    example = "{command_name} --no-zk --zk zk-0.zk:2181,zk-1.zk:2181\n    run only the portal, its tools using an existing ZooKeeper ensemble",
    example = "{command_name} --no-portal --zk-port 2200\n    run only ZooKeeper, on port 2200"
)]
pub struct Args {
    /// data directory of ZooKeeper, also holds the generated zoo.cfg (env OCHO_ZK_DATA;
    /// default /var/lib/zookeeper)
    #[argh(option, default = "env_or(\"OCHO_ZK_DATA\", \"/var/lib/zookeeper\")")]
    pub zk_data: String,
    /// client port of ZooKeeper (env OCHO_ZK_PORT; default 2181)
    #[argh(option, default = "env_or(\"OCHO_ZK_PORT\", \"2181\")")]
    pub zk_port: String,
    /// address ZooKeeper listens on, clientPortAddress (env OCHO_ZK_BIND; default 0.0.0.0)
    #[argh(option, default = "env_or(\"OCHO_ZK_BIND\", \"0.0.0.0\")")]
    pub zk_bind: String,
    /// maximum JVM heap of ZooKeeper, as for -Xmx (env OCHO_ZK_HEAP; default 256m)
    #[argh(option, default = "env_or(\"OCHO_ZK_HEAP\", \"256m\")")]
    pub zk_heap: String,
    /// jars of ZooKeeper: a ':'-separated classpath, or an upstream distribution directory whose
    /// lib/*.jar are used (env OCHO_ZK_CLASSPATH; default Debian's /usr/share/java jars)
    #[argh(option, default = "env_or(\"OCHO_ZK_CLASSPATH\", server::DEBIAN_CLASSPATH)")]
    pub zk_classpath: String,
    /// java executable (env OCHO_JAVA; default $JAVA_HOME/bin/java, else java on PATH)
    #[argh(option, default = "env_or(\"OCHO_JAVA\", \"\")")]
    pub java: String,
    /// address the portal listens on (env OCHO_PORTAL_BIND; default 0.0.0.0:9000)
    #[argh(option, default = "env_or(\"OCHO_PORTAL_BIND\", \"0.0.0.0:9000\")")]
    pub portal_bind: String,
    /// seconds allowed for the whole shutdown before what is left gets SIGKILL
    /// (env OCHO_GRACE; default 20, under Kubernetes' 30 s)
    #[argh(option, default = "env_or(\"OCHO_GRACE\", \"20\")")]
    pub grace: String,
    /// do not run ZooKeeper; the portal uses --zk (env OCHO_NO_ZK=1)
    #[argh(switch)]
    pub no_zk: bool,
    /// external ZooKeeper hosts for the portal's tools, host:port,… (with --no-zk; env OCHO_ZK)
    #[argh(option, default = "env_or(\"OCHO_ZK\", \"\")")]
    pub zk: String,
    /// do not run the portal: supervise ZooKeeper alone (env OCHO_NO_PORTAL=1)
    #[argh(switch)]
    pub no_portal: bool,
    /// tools the portal runs at once (env OCHO_MAX_CONCURRENT; default the portal's, 32)
    #[argh(option, default = "env_or(\"OCHO_MAX_CONCURRENT\", \"\")")]
    pub max_concurrent: String,
    /// YAML list of the portal's named tokens (env OCHO_TOKENS_FILE; see `ocho portal --help`)
    #[argh(option, default = "env_or(\"OCHO_TOKENS_FILE\", \"\")")]
    pub tokens_file: String,
    /// PEM certificate chain: the portal serves HTTPS only (env OCHO_TLS_CERT; needs --tls-key)
    #[argh(option, default = "env_or(\"OCHO_TLS_CERT\", \"\")")]
    pub tls_cert: String,
    /// PEM private key of --tls-cert (env OCHO_TLS_KEY)
    #[argh(option, default = "env_or(\"OCHO_TLS_KEY\", \"\")")]
    pub tls_key: String,
    /// a mounted kubernetes.io/tls Secret: HTTPS with DIR/tls.crt and DIR/tls.key when both
    /// are there, plain HTTP when neither is, an error when one is (env OCHO_TLS_DIR)
    #[argh(option, default = "env_or(\"OCHO_TLS_DIR\", \"\")")]
    pub tls_dir: String,
    /// the portal's audit journal (env OCHO_AUDIT; default <zk-data>/audit/journal.jsonl
    /// when ZooKeeper runs here, none with --no-zk)
    #[argh(option, default = "env_or(\"OCHO_AUDIT\", \"\")")]
    pub audit: String,
    /// keep no audit journal (env OCHO_NO_AUDIT=1)
    #[argh(switch)]
    pub no_audit: bool,
    /// run ZooKeeper as one member of an ensemble: HOST[:QUORUM:ELECTION],… (ids 1…N in this
    /// order, ports 2888:3888 by default; an odd count of at least 3; every member serves
    /// clients on --zk-port) (env OCHO_ZK_MEMBERS; default: standalone)
    #[argh(option, default = "env_or(\"OCHO_ZK_MEMBERS\", \"\")")]
    pub zk_members: String,
    /// this member's id in --zk-members, 1…N (env OCHO_ZK_ID; default the StatefulSet ordinal
    /// of the host name name-K, plus 1)
    #[argh(option, default = "env_or(\"OCHO_ZK_ID\", \"\")")]
    pub zk_id: String,
    /// with --zk-members: bind the quorum and election ports on every address, not on this
    /// member's own entry (quorumListenOnAllIPs, as Kubernetes needs; env
    /// OCHO_ZK_QUORUM_LISTEN_ALL=1)
    #[argh(switch)]
    pub zk_quorum_listen_all: bool,
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

fn env_flag(var: &str) -> bool {
    matches!(std::env::var(var).as_deref(), Ok("1" | "true" | "yes"))
}

/// A child that ran this long before exiting starts its backoff from 1 s again.
const STABLE: Duration = Duration::from_secs(60);

/// Validated settings.
struct Settings {
    zk: Option<(config::ServerConfig, server::Jvm)>,
    /// The connect string of the portal's tools: the local server, or every member.
    zk_hosts: String,
    /// Where init (and the portal's `/readyz`) probe the ZooKeeper run here.
    zk_local: String,
    portal_bind: Option<SocketAddr>,
    /// `--max-concurrent` for the portal, when given.
    max_concurrent: Option<usize>,
    /// Options handed to the portal as they are (tokens, TLS, audit).
    portal_args: Vec<(&'static str, PathBuf)>,
    grace: Duration,
}

/// The portal's credentials, TLS and journal options, checked as far as init can: a TLS pair
/// must be whole. With ZooKeeper here, the journal defaults to the data volume.
fn portal_args(
    args: &Args,
    data_dir: Option<&std::path::Path>,
) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut out = Vec::new();
    if !args.tokens_file.is_empty() {
        out.push(("--tokens-file", PathBuf::from(&args.tokens_file)));
    }
    let mut pair = (args.tls_cert.clone(), args.tls_key.clone());
    if !args.tls_dir.is_empty() {
        if !pair.0.is_empty() || !pair.1.is_empty() {
            return Err(Error::Usage("--tls-dir or --tls-cert/--tls-key, not both".into()));
        }
        let dir = PathBuf::from(&args.tls_dir);
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        match (cert.exists(), key.exists()) {
            (true, true) => pair = (cert.display().to_string(), key.display().to_string()),
            (false, false) => eprintln!(
                "init: {} holds no tls.crt and tls.key: the portal serves plain HTTP",
                dir.display()
            ),
            _ => {
                return Err(Error::Usage(format!(
                    "--tls-dir {}: tls.crt and tls.key go together, one is missing",
                    dir.display()
                )));
            }
        }
    }
    match pair {
        (cert, key) if cert.is_empty() && key.is_empty() => {}
        (cert, key) if cert.is_empty() || key.is_empty() => {
            return Err(Error::Usage("--tls-cert and --tls-key go together".into()));
        }
        (cert, key) => {
            out.push(("--tls-cert", PathBuf::from(cert)));
            out.push(("--tls-key", PathBuf::from(key)));
        }
    }
    if args.no_audit || env_flag("OCHO_NO_AUDIT") {
        if !args.audit.is_empty() {
            return Err(Error::Usage("--no-audit with --audit: choose one".into()));
        }
    } else if !args.audit.is_empty() {
        out.push(("--audit", PathBuf::from(&args.audit)));
    } else if let Some(data) = data_dir {
        out.push(("--audit", data.join("audit").join("journal.jsonl")));
    }
    Ok(out)
}

/// This member's id: `--zk-id`, else the StatefulSet ordinal of the host name plus 1.
fn member_id(flag: &str, n: usize, hostname: fn() -> Option<String>) -> Result<usize> {
    let flag = flag.trim();
    let (id, from) = if flag.is_empty() {
        let name = hostname().unwrap_or_default();
        let id = config::id_from_hostname(&name).ok_or_else(|| {
            Error::Usage(format!(
                "--zk-members without --zk-id: the host name '{name}' does not end in a \
                 StatefulSet ordinal (name-K, server id K+1); pass --zk-id N (1..{n})"
            ))
        })?;
        (id, format!("the host name '{name}' gives --zk-id {id}"))
    } else {
        let id = flag.parse::<usize>().map_err(|_| {
            Error::Usage(format!("invalid --zk-id '{flag}': expected a number in 1..{n}"))
        })?;
        (id, format!("--zk-id {id}"))
    };
    if id == 0 || id > n {
        return Err(Error::Usage(format!(
            "{from}, outside 1..{n}: --zk-members lists {n} members"
        )));
    }
    Ok(id)
}

fn system_hostname() -> Option<String> {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok())
}

fn settings(args: &Args) -> Result<Settings> {
    settings_with(args, system_hostname)
}

fn settings_with(args: &Args, hostname: fn() -> Option<String>) -> Result<Settings> {
    let grace: f64 =
        args.grace.parse().ok().filter(|g: &f64| g.is_finite() && *g > 0.0).ok_or_else(|| {
            Error::Usage(format!("invalid --grace '{}': expected seconds > 0", args.grace))
        })?;
    let portal_bind = if args.no_portal || env_flag("OCHO_NO_PORTAL") {
        None
    } else {
        Some(args.portal_bind.parse().map_err(|_| {
            Error::Usage(format!(
                "invalid --portal-bind '{}': expected HOST:PORT",
                args.portal_bind
            ))
        })?)
    };
    let max_concurrent = match args.max_concurrent.trim() {
        "" => None,
        n => Some(n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            Error::Usage(format!("invalid --max-concurrent '{n}': expected a number > 0"))
        })?),
    };
    let no_zk = args.no_zk || env_flag("OCHO_NO_ZK");
    let listen_all = args.zk_quorum_listen_all || env_flag("OCHO_ZK_QUORUM_LISTEN_ALL");
    let members = args.zk_members.trim();
    if members.is_empty() {
        if !args.zk_id.trim().is_empty() {
            return Err(Error::Usage(
                "--zk-id names this server's place in --zk-members: give --zk-members too".into(),
            ));
        }
        if listen_all {
            return Err(Error::Usage(
                "--zk-quorum-listen-all is for an ensemble member: give --zk-members too".into(),
            ));
        }
    } else if no_zk {
        return Err(Error::Usage(
            "--zk-members makes this init an ensemble member running ZooKeeper: it cannot go \
             with --no-zk (use --no-zk --zk HOSTS for an external ensemble)"
                .into(),
        ));
    }
    if no_zk {
        if args.zk.trim().is_empty() {
            return Err(Error::Usage(
                "--no-zk needs --zk HOSTS (the external ZooKeeper ensemble)".into(),
            ));
        }
        return Ok(Settings {
            zk: None,
            zk_hosts: args.zk.trim().to_string(),
            zk_local: String::new(),
            portal_bind,
            max_concurrent,
            portal_args: portal_args(args, None)?,
            grace: Duration::from_secs_f64(grace),
        });
    }
    if !args.zk.is_empty() {
        return Err(Error::Usage("--zk names an external ZooKeeper: use it with --no-zk".into()));
    }
    let port: u16 = args.zk_port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
        Error::Usage(format!("invalid --zk-port '{}': expected 1-65535", args.zk_port))
    })?;
    let bind: IpAddr = args.zk_bind.parse().map_err(|_| {
        Error::Usage(format!("invalid --zk-bind '{}': expected an IP address", args.zk_bind))
    })?;
    config::check_heap(&args.zk_heap)?;
    let jvm = server::Jvm {
        java: server::find_java(Some(&args.java))?,
        classpath: server::resolve_classpath(&args.zk_classpath)?,
        heap: args.zk_heap.clone(),
    };
    // Absolute, because the JVM does not run in the data directory.
    let data_dir = std::path::absolute(PathBuf::from(&args.zk_data))
        .map_err(|source| Error::io("resolve --zk-data", PathBuf::from(&args.zk_data), source))?;
    let portal_args = portal_args(args, Some(&data_dir))?;
    let ensemble = if members.is_empty() {
        None
    } else {
        let members = config::parse_members(members, "--zk-members")?;
        let id = member_id(&args.zk_id, members.len(), hostname)?;
        Some(config::Ensemble { members, id, listen_all })
    };
    let zk_local = config::client_addr(bind, port);
    let zk_hosts = match &ensemble {
        Some(ens) => ens.client_hosts(port),
        None => zk_local.clone(),
    };
    let cfg = config::ServerConfig { data_dir, bind, port, ensemble };
    Ok(Settings {
        zk_hosts,
        zk_local,
        zk: Some((cfg, jvm)),
        portal_bind,
        max_concurrent,
        portal_args,
        grace: Duration::from_secs_f64(grace),
    })
}

/// One supervised child.
struct Service {
    name: &'static str,
    /// The command; its argument asks ZooKeeper to trust an empty snapshot (see [`data`]).
    command: Box<dyn Fn(bool) -> Command>,
    /// ZooKeeper's data directory, checked and repaired before each start.
    data_dir: Option<PathBuf>,
    /// ZooKeeper's readiness probe: where to ask, and whether it is an ensemble member (whose
    /// quorum comes and goes while it runs, so its readiness is watched, not only announced).
    ready: Option<(String, bool)>,
    pid: Option<Pid>,
    started: Instant,
    failures: u32,
    restart_at: Option<Instant>,
    /// Threads copying the child's output; drained before init exits so no last line is lost.
    relays: Vec<std::thread::JoinHandle<()>>,
    /// Process group of the last start (the child leads its own group).
    group: Option<Pid>,
}

impl Service {
    fn new(name: &'static str, command: Box<dyn Fn(bool) -> Command>) -> Self {
        Service {
            name,
            command,
            data_dir: None,
            ready: None,
            pid: None,
            started: Instant::now(),
            failures: 0,
            restart_at: None,
            relays: Vec::new(),
            group: None,
        }
    }
}

/// Shutdown progress.
struct Stopping {
    deadline: Instant,
    portal_deadline: Instant,
    /// Children already sent SIGTERM.
    termed: Vec<&'static str>,
    /// Children that needed SIGKILL: a non-empty list makes the exit code 1.
    killed: Vec<&'static str>,
}

/// Runs init until a requested stop completes.
pub fn run(args: Args) -> Result<ExitCode> {
    // Before any thread exists: every thread inherits the mask (docs/platform.md §4.1).
    signals::block_all()?;
    let mut sigs = signals::Signals::open()?;
    let me = nix::unistd::getpid();
    if me.as_raw() != 1 {
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|source| Error::Sys { what: "become child subreaper", source })?;
        // Still single-threaded: the guardian is forked before any thread exists.
        let guardian = guard::start("init")?;
        eprintln!(
            "init: not PID 1 (pid {me}): registered as child subreaper, orphans are reaped here; \
             guardian pid {guardian} kills every process group of the tree if init dies"
        );
    }
    let settings = settings(&args)?;
    let grace = settings.grace;
    let zk_generation = Arc::new(AtomicU64::new(0));
    let mut services = Vec::new();
    if let Some((cfg, jvm)) = settings.zk.clone() {
        let zoo_cfg = config::write(&cfg)?;
        eprintln!(
            "init: zookeeper config {} (data in {})",
            zoo_cfg.display(),
            cfg.data_dir.display()
        );
        if let Some(ens) = &cfg.ensemble {
            eprintln!(
                "init: zookeeper is member {} of an ensemble of {} ({}); it serves clients once \
                 a majority ({}) of the members reach each other",
                ens.id,
                ens.members.len(),
                settings.zk_hosts,
                ens.members.len() / 2 + 1
            );
        }
        let mut zk = Service::new(
            "zookeeper",
            Box::new(move |trust_empty| server::command(&jvm, &zoo_cfg, trust_empty)),
        );
        zk.data_dir = Some(cfg.data_dir.clone());
        zk.ready = Some((settings.zk_local.clone(), cfg.ensemble.is_some()));
        services.push(zk);
    }
    if let Some(bind) = settings.portal_bind {
        let hosts = settings.zk_hosts.clone();
        let max_concurrent = settings.max_concurrent;
        let portal_args = settings.portal_args.clone();
        let damage = settings.zk.as_ref().map(|(cfg, _)| data::damage_file(&cfg.data_dir));
        let member = settings.zk.as_ref().filter(|(cfg, _)| cfg.ensemble.is_some()).map(|_| {
            // deploy writes OCHO_ZK_PUBLIC into pods as ochopod_zk: by default every member,
            // so agents fail over between them without losing their session.
            let public = std::env::var("OCHO_ZK_PUBLIC")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| settings.zk_hosts.clone());
            (settings.zk_local.clone(), public)
        });
        services.push(Service::new(
            "portal",
            Box::new(move |_| {
                let mut cmd = Command::new("/proc/self/exe");
                cmd.arg0("ocho")
                    .arg("portal")
                    .arg("--bind")
                    .arg(bind.to_string())
                    .env("OCHOPOD_ZK", &hosts);
                if let Some(n) = max_concurrent {
                    cmd.arg("--max-concurrent").arg(n.to_string());
                }
                for (flag, value) in &portal_args {
                    cmd.arg(flag).arg(value);
                }
                if let Some((local, public)) = &member {
                    // `/readyz` asks this member, not any member: a member without quorum is
                    // not ready even when the others serve.
                    cmd.env("OCHO_ZK_MEMBER", local).env("OCHO_ZK_PUBLIC", public);
                }
                if let Some(damage) = &damage {
                    // Where init counts repairs of ZooKeeper's data (for /readyz and /metrics).
                    cmd.env("OCHO_ZK_DAMAGE", damage);
                }
                cmd
            }),
        ));
    }
    if services.is_empty() {
        return Err(Error::Usage("nothing to supervise: both --no-zk and --no-portal".into()));
    }
    for svc in &mut services {
        start(svc, &zk_generation)?;
    }

    let mut stopping: Option<Stopping> = None;
    loop {
        let now = Instant::now();
        let mut wake = now + Duration::from_secs(1);
        for svc in &services {
            if let Some(at) = svc.restart_at {
                wake = wake.min(at);
            }
        }
        if let Some(stop) = &stopping {
            wake = wake.min(stop.deadline).min(stop.portal_deadline.max(now));
        }
        for signal in sigs.wait(wake.saturating_duration_since(now))? {
            match signal {
                Signal::SIGCHLD => {}
                Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT if stopping.is_none() => {
                    eprintln!(
                        "init: {} received: stopping the portal, then zookeeper (grace {:.1}s)",
                        signal.as_str(),
                        grace.as_secs_f64()
                    );
                    let now = Instant::now();
                    stopping = Some(Stopping {
                        deadline: now + grace,
                        portal_deadline: now + grace.mul_f64(0.75),
                        termed: Vec::new(),
                        killed: Vec::new(),
                    });
                    for svc in &mut services {
                        svc.restart_at = None;
                    }
                }
                // HUP means "reload": only the portal has something to reload (its token and
                // TLS files). The JVM is never signalled: HotSpot ends on HUP (129) and USR1,
                // and uses USR2 internally (a USR2 from outside crashes it), so any of them
                // would drop every session and with them every pod's registration.
                Signal::SIGHUP => match services.iter().find(|s| s.name == "portal") {
                    Some(Service { pid: Some(pid), .. }) => {
                        eprintln!("init: SIGHUP received: forwarded to the portal (reload)");
                        let _ = kill(*pid, signal);
                    }
                    _ => eprintln!(
                        "init: SIGHUP received: no portal running; zookeeper is not signalled"
                    ),
                },
                Signal::SIGUSR1 | Signal::SIGUSR2 => eprintln!(
                    "init: {} received: ignored (never forwarded to the zookeeper JVM)",
                    signal.as_str()
                ),
                // Job-control and window signals mean nothing to a supervisor without a terminal.
                _ => {}
            }
        }
        for (pid, status) in reap::reap_all() {
            if let Some(svc) = services.iter_mut().find(|s| s.pid == Some(pid)) {
                svc.pid = None;
                ended(svc, &status, stopping.is_some());
            } else if guard::pid() == Some(pid) {
                eprintln!(
                    "init: the guardian exited with {}: if init dies now, its descendants may \
                     outlive it",
                    reap::describe(&status)
                );
            }
            // Anything else is an orphan re-parented to us: reaping it is all there is to do.
        }
        for (group, pid) in guard::scan() {
            eprintln!("init: tracking process group {group} (pid {pid}): killed if init dies");
        }
        if let Some(stop) = &mut stopping {
            if advance_stop(stop, &services) {
                drain(&mut services, Duration::from_secs(2));
                guard::finish();
                return Ok(finish(stop, grace));
            }
        } else {
            let now = Instant::now();
            for svc in &mut services {
                if svc.restart_at.is_some_and(|at| at <= now) {
                    svc.restart_at = None;
                    if let Err(err) = start(svc, &zk_generation) {
                        eprintln!("init: {}", crate::error::chain(&err));
                        schedule_restart(svc, None);
                    }
                }
            }
        }
    }
}

/// Drives the ordered stop; true once every child is gone.
fn advance_stop(stop: &mut Stopping, services: &[Service]) -> bool {
    let now = Instant::now();
    let portal = services.iter().find(|s| s.name == "portal" && s.pid.is_some());
    let zk = services.iter().find(|s| s.name == "zookeeper" && s.pid.is_some());
    match (portal, zk) {
        (None, None) => return true,
        (Some(p), _) => {
            if now >= stop.portal_deadline {
                force(stop, p);
            } else if !stop.termed.contains(&p.name) {
                stop.termed.push(p.name);
                signal_service(p, Signal::SIGTERM);
            }
        }
        (None, Some(z)) => {
            if now >= stop.deadline {
                force(stop, z);
            } else if !stop.termed.contains(&z.name) {
                stop.termed.push(z.name);
                signal_service(z, Signal::SIGTERM);
            }
        }
    }
    false
}

fn force(stop: &mut Stopping, svc: &Service) {
    if !stop.killed.contains(&svc.name) {
        eprintln!("init: {} still running at its deadline: SIGKILL", svc.name);
        stop.killed.push(svc.name);
    }
    if let Some(pid) = svc.pid {
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = kill(pid, Signal::SIGKILL);
    }
}

fn signal_service(svc: &Service, signal: Signal) {
    if let Some(pid) = svc.pid {
        let _ = kill(pid, signal);
    }
}

/// Exit code after a requested stop: 0 when every child ended within the grace.
fn finish(stop: &Stopping, grace: Duration) -> ExitCode {
    if stop.killed.is_empty() {
        eprintln!("init: stopped cleanly");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "init: grace of {:.1}s ran out: killed {}",
            grace.as_secs_f64(),
            stop.killed.join(" and ")
        );
        ExitCode::from(1)
    }
}

fn ended(svc: &mut Service, status: &WaitStatus, stopping: bool) {
    let ran = svc.started.elapsed();
    if stopping {
        eprintln!(
            "init: {} exited with {} after {:.1}s",
            svc.name,
            reap::describe(status),
            ran.as_secs_f64()
        );
        return;
    }
    schedule_restart(svc, Some((status, ran)));
}

fn schedule_restart(svc: &mut Service, exit: Option<(&WaitStatus, Duration)>) {
    if exit.is_some_and(|(_, ran)| ran >= STABLE) {
        svc.failures = 0;
    }
    let delay = crate::supervise::backoff::jittered(svc.failures);
    svc.failures = svc.failures.saturating_add(1);
    svc.restart_at = Some(Instant::now() + delay);
    match exit {
        Some((status, ran)) => eprintln!(
            "init: {} exited unexpectedly with {} after {:.1}s; restarting in {:.1}s",
            svc.name,
            reap::describe(status),
            ran.as_secs_f64(),
            delay.as_secs_f64()
        ),
        None => {
            eprintln!("init: {} failed to start; retrying in {:.1}s", svc.name, delay.as_secs_f64())
        }
    }
}

/// Starts one child with its output prefixed by its name, and for ZooKeeper a readiness probe.
fn start(svc: &mut Service, generation: &Arc<AtomicU64>) -> Result<()> {
    let trust_empty = svc.data_dir.as_deref().is_some_and(check_data);
    let mut cmd = (svc.command)(trust_empty);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let opts =
        child::Opts { own_group: true, die_with_parent: nix::unistd::getpid().as_raw() != 1 };
    let mut proc = child::spawn(&mut cmd, svc.name, opts)?;
    let pid = Pid::from_raw(proc.id() as i32);
    svc.pid = Some(pid);
    svc.group = Some(pid);
    svc.started = Instant::now();
    eprintln!("init: started {} (pid {pid})", svc.name);
    svc.relays.retain(|r| !r.is_finished());
    if let Some(out) = proc.stdout.take() {
        svc.relays.push(relay(svc.name, out));
    }
    if let Some(err) = proc.stderr.take() {
        svc.relays.push(relay(svc.name, err));
    }
    // The reaper owns the status: dropping `Child` neither waits nor kills.
    drop(proc);
    if let Some((addr, ensemble)) = svc.ready.clone() {
        let mine = generation.fetch_add(1, Ordering::SeqCst) + 1;
        let generation = Arc::clone(generation);
        std::thread::spawn(move || announce_ready(&addr, ensemble, mine, &generation));
    }
    Ok(())
}

/// Checks ZooKeeper's data before a start and repairs what would make it crash-loop or skip
/// data, saying loudly what was found and done; true when ZooKeeper must trust an empty
/// snapshot (every snapshot was damaged).
fn check_data(dir: &std::path::Path) -> bool {
    let now = crate::clock::Utc::now();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}Z",
        now.year, now.month, now.day, now.hour, now.minute, now.second, now.millis
    );
    let repair = match data::repair(dir, &stamp) {
        Ok(repair) => repair,
        Err(err) => {
            eprintln!(
                "init: cannot check zookeeper data in {}: {}; starting it anyway",
                dir.display(),
                crate::error::chain(&err)
            );
            return false;
        }
    };
    for f in &repair.findings {
        eprintln!(
            "init: zookeeper data damaged: {}: {}{}; {}",
            f.file,
            f.why,
            if f.lost { " [DATA LOST OR SKIPPED]" } else { "" },
            f.action
        );
    }
    if let Some(q) = &repair.quarantine {
        eprintln!(
            "init: zookeeper data damaged: {} finding(s), {}; originals in {}, counted in {}",
            repair.findings.len(),
            if repair.lost() { "DATA WAS LOST OR SKIPPED" } else { "no acknowledged data lost" },
            q.display(),
            data::damage_file(dir).display()
        );
    }
    if repair.trust_empty_snapshot {
        eprintln!(
            "init: no valid snapshot left: zookeeper replays its transaction logs from an empty \
             tree (zookeeper.snapshot.trust.empty=true)"
        );
    }
    repair.trust_empty_snapshot
}

/// Waits until the children's output is copied out (their pipes reach end of file), for at most
/// `limit`. The children have exited; what still holds a pipe after a moment is a stray of
/// theirs in the same process group, which gets SIGKILL (as PID 1, the kernel would kill it as
/// soon as init exits; as a subreaper, it would outlive the service it belonged to).
fn drain(services: &mut [Service], limit: Duration) {
    let end = Instant::now() + limit;
    let strays = Instant::now() + Duration::from_millis(200);
    while Instant::now() < strays
        && services.iter().flat_map(|s| &s.relays).any(|r| !r.is_finished())
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    for svc in services.iter() {
        if let Some(group) = svc.group.filter(|_| svc.relays.iter().any(|r| !r.is_finished())) {
            eprintln!("init: {} left processes behind: SIGKILL to its process group", svc.name);
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
    for relay in services.iter_mut().flat_map(|s| s.relays.drain(..)) {
        while !relay.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if relay.is_finished() {
            let _ = relay.join();
        }
    }
}

/// Probes `srvr` until ZooKeeper serves, then says so once (with its mode: `standalone`, or
/// `leader`/`follower` in an ensemble); gives up when a newer ZooKeeper process was started (the
/// generation moved on). An ensemble member's serving depends on the other members, so it goes
/// on watching and says each time the member loses its quorum or serves again.
fn announce_ready(addr: &str, ensemble: bool, mine: u64, generation: &AtomicU64) {
    let mut serving = false;
    let started = Instant::now();
    while generation.load(Ordering::SeqCst) == mine {
        match probe::srvr(addr, Duration::from_millis(500)) {
            Ok(probe::Probe::Serving(answer)) if !serving => {
                serving = true;
                let mode = probe::mode(&answer).unwrap_or("serving");
                eprintln!("init: zookeeper ready on {addr} ({mode})");
                if !ensemble {
                    return;
                }
            }
            Ok(probe::Probe::NotServing(_)) if serving => {
                serving = false;
                eprintln!(
                    "init: zookeeper on {addr} lost its quorum: not serving requests until a \
                     majority of the ensemble's members reach each other"
                );
            }
            _ => {}
        }
        // Each probe is also a line in the JVM log: fast while a start is expected to finish
        // soon, then slower (a member waiting for its peers may wait for minutes), and a slow
        // watch once it served, for the log only (/readyz asks for itself).
        std::thread::sleep(if serving {
            QUORUM_WATCH
        } else if started.elapsed() < FAST_PROBES {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(1)
        });
    }
}

/// How long after a start of ZooKeeper init probes it every 50 ms (then every second).
const FAST_PROBES: Duration = Duration::from_secs(10);
/// How often init asks a serving ensemble member whether it still has its quorum.
const QUORUM_WATCH: Duration = Duration::from_secs(5);

/// Copies a child's output to our stderr line by line, prefixed with `name: `. Lines are capped
/// so a child cannot make us buffer without bound.
fn relay(name: &'static str, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader).take(16 * 1024).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if line.last() != Some(&b'\n') {
                        line.push(b'\n');
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(name.as_bytes());
                    let _ = err.write_all(b": ");
                    let _ = err.write_all(&line);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        match crate::cli::parse_words(&[&["init"], words].concat()) {
            crate::cli::Parsed::Run(crate::cli::Mode::Init(a)) => a,
            _ => panic!("not init args"),
        }
    }

    #[test]
    fn portal_options_pass_through_and_the_journal_defaults_to_the_data_volume() {
        let data = std::path::Path::new("/data");
        let got = portal_args(&args(&["--tokens-file", "/t.yaml"]), Some(data)).unwrap();
        assert_eq!(
            got,
            [
                ("--tokens-file", PathBuf::from("/t.yaml")),
                ("--audit", PathBuf::from("/data/audit/journal.jsonl"))
            ]
        );
        assert_eq!(portal_args(&args(&["--no-audit"]), Some(data)).unwrap(), []);
        assert_eq!(portal_args(&args(&[]), None).unwrap(), [], "no journal with --no-zk");
        let got = portal_args(&args(&["--audit", "/j", "--tls-cert", "c", "--tls-key", "k"]), None);
        assert_eq!(
            got.unwrap(),
            [
                ("--tls-cert", PathBuf::from("c")),
                ("--tls-key", PathBuf::from("k")),
                ("--audit", PathBuf::from("/j"))
            ]
        );
    }

    #[test]
    fn a_tls_dir_serves_https_with_both_files_plain_with_neither_and_refuses_half() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(portal_args(&args(&["--tls-dir", d, "--no-audit"]), None).unwrap(), []);
        std::fs::write(dir.path().join("tls.crt"), "x").unwrap();
        let err = portal_args(&args(&["--tls-dir", d]), None).unwrap_err();
        assert!(err.to_string().contains("tls.key"), "{err}");
        std::fs::write(dir.path().join("tls.key"), "x").unwrap();
        assert_eq!(
            portal_args(&args(&["--tls-dir", d, "--no-audit"]), None).unwrap(),
            [("--tls-cert", dir.path().join("tls.crt")), ("--tls-key", dir.path().join("tls.key"))]
        );
        for words in [
            &["--tls-dir", d, "--tls-cert", "c"][..],
            &["--tls-cert", "c"],
            &["--tls-key", "k"],
            &["--no-audit", "--audit", "/j"],
        ] {
            let err = portal_args(&args(words), None).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{words:?}: {err}");
        }
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for words in [
            &["--grace", "-1"][..],
            &["--grace", "soon"],
            &["--zk-port", "0", "--java", "/bin/true", "--zk-classpath", "/bin/sh"],
            &["--zk-bind", "localhost", "--java", "/bin/true", "--zk-classpath", "/bin/sh"],
            &["--portal-bind", "9000"],
            &["--no-zk"],
            &["--zk", "h:1"],
            &["--zk-heap", "lots", "--java", "/bin/true", "--zk-classpath", "/bin/sh"],
        ] {
            let err = settings(&args(words)).err().unwrap_or_else(|| panic!("{words:?} accepted"));
            assert!(matches!(err, Error::Usage(_)), "{words:?}: {err}");
        }
    }

    /// Flags that let `settings` reach the ensemble checks without a JVM on the machine.
    const NO_JVM: &[&str] = &["--java", "/bin/true", "--zk-classpath", "/bin/sh"];

    fn member(words: &[&str], hostname: fn() -> Option<String>) -> Result<Settings> {
        settings_with(&args(&[words, NO_JVM].concat()), hostname)
    }

    fn no_hostname() -> Option<String> {
        None
    }

    #[test]
    fn an_ensemble_member_gives_the_portal_every_member_and_probes_itself() {
        let s = member(
            &["--zk-members", "10.0.0.1,10.0.0.2:2901:3901,10.0.0.3", "--zk-id", "2"],
            no_hostname,
        )
        .unwrap();
        assert_eq!(s.zk_hosts, "10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181");
        assert_eq!(s.zk_local, "127.0.0.1:2181", "the wildcard bind is probed on loopback");
        let (cfg, _) = s.zk.unwrap();
        let ens = cfg.ensemble.unwrap();
        assert_eq!((ens.id, ens.listen_all, ens.members.len()), (2, false, 3));
        assert_eq!(ens.members[1].quorum, 2901);

        let s = member(&["--zk-members", "a,b,c", "--zk-quorum-listen-all"], || {
            Some("ocho-proxy-2".into())
        })
        .unwrap();
        let ens = s.zk.unwrap().0.ensemble.unwrap();
        assert_eq!((ens.id, ens.listen_all), (3, true), "ordinal 2 of the host name is id 3");

        let s = member(&[], no_hostname).unwrap();
        assert_eq!(s.zk.unwrap().0.ensemble, None, "standalone stays the default");
    }

    #[test]
    fn ensemble_mistakes_are_usage_errors_naming_the_flag() {
        for (words, hostname, needle) in [
            (
                &["--zk-members", "a,b,c,d", "--zk-id", "1"][..],
                no_hostname as fn() -> _,
                "--zk-members",
            ),
            (&["--zk-members", "a,b", "--zk-id", "1"], no_hostname, "at least 3"),
            (&["--zk-members", "a,b,a", "--zk-id", "1"], no_hostname, "same member"),
            (&["--zk-members", "a,b:1,c", "--zk-id", "1"], no_hostname, "entry 2"),
            (&["--zk-members", "a,b,c", "--zk-id", "4"], no_hostname, "--zk-id 4, outside 1..3"),
            (&["--zk-members", "a,b,c", "--zk-id", "0"], no_hostname, "outside 1..3"),
            (&["--zk-members", "a,b,c", "--zk-id", "two"], no_hostname, "invalid --zk-id"),
            (&["--zk-members", "a,b,c"], no_hostname, "pass --zk-id"),
            (&["--zk-members", "a,b,c"], || Some("laptop".into()), "'laptop'"),
            (&["--zk-members", "a,b,c"], || Some("ocho-3".into()), "gives --zk-id 4, outside"),
            (&["--zk-id", "1"], no_hostname, "give --zk-members"),
            (&["--zk-quorum-listen-all"], no_hostname, "give --zk-members"),
            (
                &["--zk-members", "a,b,c", "--zk-id", "1", "--no-zk", "--zk", "x"],
                no_hostname,
                "--no-zk",
            ),
        ] {
            let err = member(words, hostname).err().unwrap_or_else(|| panic!("{words:?} accepted"));
            assert!(matches!(err, Error::Usage(_)), "{words:?}: {err}");
            assert!(err.to_string().contains(needle), "{words:?}: {err}");
        }
    }

    #[test]
    fn an_external_ensemble_replaces_the_local_zookeeper() {
        let s = settings(&args(&["--no-zk", "--zk", "zk-0:2181,zk-1:2181"])).unwrap();
        assert!(s.zk.is_none());
        assert_eq!(s.zk_hosts, "zk-0:2181,zk-1:2181");
        assert_eq!(s.grace, Duration::from_secs(20));
    }
}
