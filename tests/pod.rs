//! `ocho pod` against a real ZooKeeper (one per test binary, a namespace per test): the
//! registration record, the control port, the lifecycle verbs, election and failover.
#![allow(clippy::unwrap_used)]

use crate::fixture;
use crate::support;

use std::time::Duration;

use fixture::{Zk, eventually, pod, post, request, shared_zookeeper, spawn_pod};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{DEADLINE, free_loopback};

/// A workload that says when it starts and then waits.
const SLEEPER: &[&str] = &["/bin/sh", "-c", "echo workload started $$; exec sleep 1000"];

#[test]
fn registration_matches_the_spec_key_by_key() {
    let zk_addr = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let mut c = support::ocho();
    c.env("ochopod_zk", zk_addr)
        .env("ochopod_namespace", "reg.ns")
        .env("ochopod_cluster", "zookeeper")
        .env("ochopod_application", "ochopod.reg.ns.zookeeper-2026-11-23-12-00-00")
        .env("ochopod_ports", "2181,2888,3888")
        .env("ochopod_flavour", "vanilla")
        .env("POD_NAME", "zookeeper-x1b2c")
        .env("NODE_NAME", "node-7")
        .env("pod", r#"{"a": 1}"#)
        .args(["pod", "--ip", ip, "--bind", ip, "--port", &port.to_string()])
        .args(["--", "/bin/sh", "-c", "echo settings=$pod; echo hints=$ochopod; exec sleep 1000"]);
    let agent = support::Proc::spawn("pod", c);
    agent.wait_for_line("registered as", DEADLINE);

    let zk = Zk::connect(zk_addr);
    let regs = zk.registrations("reg.ns.zookeeper");
    assert_eq!(regs.len(), 1, "{regs:?}");
    let (node, record) = &regs[0];
    let (uuid, suffix) = node.split_once('.').unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(suffix.len(), 10);
    let expected = json!({
        "application": "ochopod.reg.ns.zookeeper-2026-11-23-12-00-00",
        "cluster": "zookeeper",
        "namespace": "reg.ns",
        "debug": "true",
        "local": "false",
        "port": port.to_string(),
        "start": "true",
        "task": "zookeeper-x1b2c",
        "ip": ip,
        "public": ip,
        "node": "node-7",
        "fwk": "ocho",
        "zk": zk_addr,
        "ports": {"2181": 2181, "2888": 2888, "3888": 3888, port.to_string(): port},
        "flavour": "vanilla",
        "seq": suffix.parse::<i64>().unwrap(),
    });
    assert_eq!(record, &expected);
    assert!(zk.get("/ochopod/clusters/reg.ns.zookeeper/hash").is_some());

    // Alone in its cluster, it leads and configures itself; the workload sees `pod` unchanged.
    agent.wait_for("settings", DEADLINE, |l| l == r#"settings={"a": 1}"#);
    let hints = agent.wait_for("hints", DEADLINE, |l| l.starts_with("hints="));
    let hints: Value = serde_json::from_str(hints.trim_start_matches("hints=")).unwrap();
    assert_eq!(hints["cluster"], "zookeeper");
    assert!(hints.get("seq").is_none());
    let snapshot = eventually("snapshot", DEADLINE, || {
        let s: Value =
            serde_json::from_slice(&zk.get("/ochopod/clusters/reg.ns.zookeeper/snapshot")?).ok()?;
        s.get(uuid).is_some().then_some(s)
    });
    assert_eq!(snapshot[uuid], expected);
    // The hash follows the snapshot: 16 hex pairs joined by ':'.
    let hash = eventually("the hash", DEADLINE, || {
        let h = zk.get("/ochopod/clusters/reg.ns.zookeeper/hash")?;
        (!h.is_empty()).then_some(String::from_utf8(h).unwrap())
    });
    assert!(hash.len() == 47 && hash.split(':').all(|p| p.len() == 2), "{hash}");
    let locks = zk.children("/ochopod/clusters/reg.ns.zookeeper/coordinator");
    assert_eq!(locks.len(), 1);
    assert!(locks[0].len() == 32 + 8 + 10 && locks[0][32..].starts_with("__lock__"), "{locks:?}");

    let addr = format!("{ip}:{port}");
    let (code, ctype, info) = post(&addr, "/info", None);
    assert_eq!((code, ctype.as_str()), (200, "application/json"));
    for key in ["application", "ip", "node", "port", "ports", "public", "task"] {
        assert_eq!(info[key], expected[key], "{key}");
    }
    assert_eq!(info["process"], "running");
    assert_eq!(info["state"], "leader");
    assert!(info["status"].is_string());
    assert_eq!(info["dependencies"], json!([]));

    let (code, _, log) = post(&addr, "/log", None);
    assert_eq!(code, 200);
    let lines = log.as_array().unwrap();
    assert!(lines.iter().all(|l| l.as_str().unwrap().ends_with('\n')));
    assert!(lines.iter().any(|l| l.as_str().unwrap().contains(" - INFO - registered as")));

    assert_eq!(request("GET", &addr, "/info", None).0, 405);
    assert_eq!(post(&addr, "/nope", None).0, 404);
    assert_eq!(post(&addr, "/control/shutdown", None).0, 400);
    assert_eq!(post(&addr, "/control/signal/5", None), (200, "application/json".into(), json!({})));
}

#[test]
fn off_on_kill_then_410() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let addr = format!("{ip}:{port}");
    let agent = pod(zk, "verbs", "web", ip, port, &[], SLEEPER);
    agent.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));

    assert_eq!(post(&addr, "/control/off/30", None).0, 200);
    assert_eq!(post(&addr, "/info", None).2["process"], "stopped");
    // After off, a payload-less on re-runs the remembered command.
    assert_eq!(post(&addr, "/control/on/30", None).0, 200);
    agent.wait_for_nth("second start", 2, DEADLINE, |l| l.starts_with("workload started"));
    assert_eq!(post(&addr, "/info", None).2["process"], "running");
    // ok and check are leader verbs: without a payload they fail as in Ochopod.
    assert_eq!(post(&addr, "/control/ok/5", None).0, 500);
    assert_eq!(post(&addr, "/control/check/5", None).0, 406);

    assert_eq!(post(&addr, "/control/kill/30", None).0, 200);
    assert_eq!(post(&addr, "/info", None).2["process"], "dead");
    for verb in ["on", "off", "check", "kill"] {
        assert_eq!(post(&addr, &format!("/control/{verb}/5"), None).0, 410, "{verb}");
    }
    // Dead pods stay registered and keep answering /info and /reset.
    assert_eq!(post(&addr, "/reset", None), (200, "application/json".into(), json!({})));
}

#[test]
fn a_workload_exiting_0_makes_the_pod_dead_and_non_zero_restarts_it() {
    let zk = shared_zookeeper();
    let (net, dir) = (free_loopback(1, 1), tempfile::tempdir().unwrap());
    let (ip, port) = (net.ip(), net.port());
    let marker = dir.path().join("ran");
    // First run fails (exit 3), the restart succeeds (exit 0): dead.
    let script = format!(
        "if [ -e {m} ]; then echo second run; exit 0; fi; touch {m}; echo first run; exit 3",
        m = marker.display()
    );
    let addr = format!("{ip}:{port}");
    let agent = pod(zk, "exits", "job", ip, port, &[], &["/bin/sh", "-c", &script]);
    agent.wait_for_line("exited with exit status 3", DEADLINE);
    agent.wait_for_line("second run", DEADLINE);
    agent.wait_for_line("dead: the workload is done", DEADLINE);
    assert_eq!(post(&addr, "/info", None).2["process"], "dead");
    assert_eq!(post(&addr, "/control/on/5", None).0, 410);
}

#[test]
fn on_without_payload_to_a_never_configured_pod_is_refused_and_kills_it() {
    // No ZooKeeper answers: the pod is never configured, but its control port works.
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let addr = format!("{ip}:{port}");
    let nowhere = free_loopback(1, 1).addr(0);
    let agent = spawn_pod(&nowhere, "lonely", "web", ip, port, &[], SLEEPER);
    agent.wait_for_line("listening on", DEADLINE);
    assert_eq!(post(&addr, "/info", None).2["process"], "stopped");
    assert_eq!(post(&addr, "/control/on/5", None).0, 406);
    eventually("dead", DEADLINE, || {
        (post(&addr, "/info", None).2["process"] == "dead").then_some(())
    });
    assert_eq!(post(&addr, "/control/on/5", None).0, 410);
    assert!(!agent.lines().iter().any(|l| l.starts_with("workload started")));
}

#[test]
fn sigterm_stops_the_workload_and_exits_with_its_status() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let mut agent = pod(zk, "term", "web", ip, port, &[], SLEEPER);
    agent.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    agent.signal(Signal::SIGTERM);
    let status = agent.expect_exit(DEADLINE);
    // sh exec'd sleep, which dies of the forwarded SIGTERM: 128 + 15.
    assert_eq!(status.code(), Some(143), "{}", agent.tail());
    // The session was closed: the registration is gone at once, not after the session timeout.
    let z = Zk::connect(zk);
    assert!(z.registrations("term.web").is_empty());
}

fn info(ip: &str, port: u16) -> Value {
    post(&format!("{ip}:{port}"), "/info", None).2
}

fn starts(p: &support::Proc) -> usize {
    p.lines().iter().filter(|l| l.starts_with("workload started")).count()
}

#[test]
fn the_leader_configures_everyone_and_failover_keeps_workloads_running() {
    let zk_addr = shared_zookeeper();
    let net = free_loopback(3, 1);
    let port = net.port();
    let ips: Vec<&str> = net.ips.iter().map(String::as_str).collect();
    let mut pods: Vec<Option<support::Proc>> = ips
        .iter()
        .map(|ip| Some(pod(zk_addr, "elect", "web", ip, port, &["--sequential"], SLEEPER)))
        .collect();
    for p in pods.iter().flatten() {
        p.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    }
    let zk = Zk::connect(zk_addr);
    let snapshot_size = |zk: &Zk| -> Option<usize> {
        let s: Value =
            serde_json::from_slice(&zk.get("/ochopod/clusters/elect.web/snapshot")?).ok()?;
        Some(s.as_object()?.len())
    };
    eventually("a snapshot of 3", DEADLINE, || (snapshot_size(&zk) == Some(3)).then_some(()));
    // "leader", or "leader (configuring)" while it finishes writing the hash.
    let leaders: Vec<usize> = (0..3)
        .filter(|&i| info(ips[i], port)["state"].as_str().unwrap().starts_with("leader"))
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader");
    let leader = leaders[0];

    // A follower leaves: the leader reconfigures the other two without restarting them.
    let follower = (0..3).find(|&i| i != leader).unwrap();
    pods[follower].as_ref().unwrap().signal(Signal::SIGTERM);
    pods[follower].as_mut().unwrap().expect_exit(DEADLINE);
    pods[follower] = None;
    pods[leader].as_ref().unwrap().wait_for_line("configured 2 pods", DEADLINE);
    eventually("a snapshot of 2", DEADLINE, || (snapshot_size(&zk) == Some(2)).then_some(()));

    // The leader dies hard: after its session expires, the survivor leads and reconfigures.
    pods[leader].as_ref().unwrap().signal(Signal::SIGKILL);
    pods[leader].as_mut().unwrap().expect_exit(DEADLINE);
    pods[leader] = None;
    let survivor = (0..3).find(|&i| pods[i].is_some()).unwrap();
    let p = pods[survivor].as_ref().unwrap();
    p.wait_for_line("leader of elect.web", Duration::from_secs(60));
    p.wait_for_line("configured 1 pods", DEADLINE);
    assert_eq!(info(ips[survivor], port)["state"], "leader");
    assert_eq!(starts(p), 1, "the survivor's workload was never restarted:\n{}", p.tail());
    assert_eq!(info(ips[survivor], port)["process"], "running");
}

#[test]
fn reset_re_registers_with_the_same_uuid_and_seq() {
    let zk_addr = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let a = pod(zk_addr, "reset", "web", ip, port, &[], SLEEPER);
    a.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    let zk = Zk::connect(zk_addr);
    let before = zk.registrations("reset.web");
    assert_eq!(before.len(), 1);
    assert_eq!(post(&format!("{ip}:{port}"), "/reset", None).0, 200);
    a.wait_for_nth("second registration", 2, DEADLINE, |l| l.contains("registered as"));
    let after = eventually("one registration", DEADLINE, || {
        let r = zk.registrations("reset.web");
        (r.len() == 1 && r[0].0 != before[0].0).then_some(r)
    });
    let uuid = |n: &str| n.split('.').next().unwrap().to_string();
    assert_eq!(uuid(&after[0].0), uuid(&before[0].0));
    assert_eq!(after[0].1["seq"], before[0].1["seq"]);
    assert_eq!(starts(&a), 1, "the workload is untouched by a reset");
}

/// Writes an executable `#!/bin/sh` script.
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn hooks_configure_probe_check_and_answer_signals() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("configure-input.json");
    let configure = script(
        dir.path(),
        "configure",
        &format!(
            "cat > {}; echo '# overrides'; echo GREETING=hello; echo SIZE_SEEN=$(echo \"$OCHO_INPUT\" | grep -c size)",
            seen.display()
        ),
    );
    let can_configure = script(dir.path(), "can-configure", "grep -q '\"size\":1' || exit 3");
    let probe = script(dir.path(), "probe", "echo all good; echo ignored");
    let sanity = script(dir.path(), "sanity", "echo \"{\\\"pid\\\": $OCHO_PID}\"");
    let signal = script(dir.path(), "signal", "echo \"{\\\"bytes\\\": $(wc -c)}\"");
    let addr = format!("{ip}:{port}");
    let agent = pod(
        zk,
        "hooks",
        "web",
        ip,
        port,
        &[
            "--configure",
            &configure,
            "--can-configure",
            &can_configure,
            "--probe",
            &probe,
            "--sanity",
            &sanity,
            "--signal",
            &signal,
            "--check-every",
            "1",
        ],
        &["/bin/sh", "-c", "echo workload started with $GREETING $SIZE_SEEN; exec sleep 1000"],
    );
    agent.wait_for("the workload", DEADLINE, |l| l == "workload started with hello 1");
    let input: Value = serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!((input["size"].clone(), input["index"].clone()), (json!(1), json!(0)));
    assert!(input["key"].is_string() && input["pods"].is_object() && input["seq"].is_i64());

    let info = eventually("probe status and metrics", DEADLINE, || {
        let i = post(&addr, "/info", None).2;
        (i["status"] == "all good" && i["metrics"]["pid"].is_i64()).then_some(i)
    });
    assert_eq!(info["state"], "leader");
    // The signal hook gets the request's JSON as it came and answers with its own.
    let (code, _, body) = post(&addr, "/control/signal/10", Some("{\"a\": 1}"));
    assert_eq!((code, body), (200, json!({"bytes": 7})));
    // check refuses what --can-configure refuses (here: a cluster of 2).
    let me = info["ip"].clone();
    let payload = json!({"pods": {"k": {"seq": 1, "ip": me}, "j": {"seq": 2}}, "dependencies": {}, "key": "k"});
    assert_eq!(post(&addr, "/control/check/10", Some(&payload.to_string())).0, 406);
}

#[test]
fn reset_and_sigterm_take_effect_at_once_while_the_leaders_probe_runs() {
    let zk_addr = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let dir = tempfile::tempdir().unwrap();
    let probing = dir.path().join("probing");
    // A probe that outlasts the test: the coordinator must not wait for it.
    let probe =
        script(dir.path(), "probe", &format!("touch {}; exec sleep 120", probing.display()));
    let mut agent = pod(
        zk_addr,
        "busy",
        "web",
        ip,
        port,
        &["--probe", &probe, "--hook-timeout", "300"],
        SLEEPER,
    );
    agent.wait_for_line("configured 1 pods", DEADLINE);
    eventually("the probe running", DEADLINE, || probing.exists().then_some(()));
    let zk = Zk::connect(zk_addr);
    let before = zk.registrations("busy.web");
    assert_eq!(before.len(), 1);

    let asked = std::time::Instant::now();
    assert_eq!(post(&format!("{ip}:{port}"), "/reset", None).0, 200);
    agent.wait_for_line("reset (requested), leadership given up: re-registering", DEADLINE);
    assert!(asked.elapsed() < Duration::from_secs(5), "the reset waited for the probe");
    agent.wait_for_nth("second registration", 2, DEADLINE, |l| l.contains("registered as"));
    assert_ne!(zk.registrations("busy.web")[0].0, before[0].0, "a new session registered");

    // Leading again, it probes again; SIGTERM ends the session at once all the same.
    std::fs::remove_file(&probing).unwrap();
    agent.wait_for_nth("leading again", 2, DEADLINE, |l| l.contains("leader of busy.web"));
    eventually("the probe running again", DEADLINE, || probing.exists().then_some(()));
    let asked = std::time::Instant::now();
    agent.signal(Signal::SIGTERM);
    agent.expect_exit(DEADLINE);
    assert!(asked.elapsed() < Duration::from_secs(10), "the shutdown waited for the probe");
    assert!(
        agent.lines().iter().any(|l| l.contains("zookeeper session closed")),
        "{}",
        agent.tail()
    );
    // The session was closed, not left to expire: the registration is gone at once.
    assert!(zk.registrations("busy.web").is_empty());
}

/// Host pids of the children of `pid`.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn as_pid_1_the_agent_restores_signals_reaps_orphans_and_passes_the_exit_status() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let mut c = std::process::Command::new("unshare");
    c.args(["--user", "--map-root-user", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_ocho"))
        .env("ochopod_zk", zk)
        .env("ochopod_namespace", "pid1")
        .env("ochopod_cluster", "web")
        .args(["pod", "--ip", ip, "--bind", ip, "--port", &port.to_string()])
        .args(["--", "/bin/sh", "-c"])
        // An orphan (the backgrounded subshell's sleep) is re-parented to PID 1 and must be
        // reaped there; the workload's child reports its own signal state.
        .arg("(sleep 0.3 &); grep -E '^Sig(Blk|Ign)' /proc/self/status; echo workload started; exec sleep 1000");
    let mut unshare = support::Proc::spawn("unshare", c);
    unshare.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    for key in ["SigBlk", "SigIgn"] {
        let line = unshare.wait_for(key, DEADLINE, |l| l.starts_with(key));
        assert!(line.ends_with("0000000000000000"), "{line}\n{}", unshare.tail());
    }
    let inner =
        eventually("the agent as pid 1", DEADLINE, || children_of(unshare.pid()).first().copied());
    let status = std::fs::read_to_string(format!("/proc/{inner}/status")).unwrap();
    assert!(status.lines().any(|l| l.starts_with("NSpid:") && l.ends_with("\t1")), "{status}");
    // Only the workload remains: the orphan was reaped, no zombie is left.
    eventually("the orphan reaped", DEADLINE, || (children_of(inner).len() == 1).then_some(()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(inner), Signal::SIGTERM).unwrap();
    let exit = unshare.expect_exit(DEADLINE);
    assert_eq!(exit.code(), Some(143), "{}", unshare.tail());
}

#[test]
fn start_false_configures_without_starting_until_an_explicit_on() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let addr = format!("{ip}:{port}");
    let extra = ["--start", "false", "--full-shutdown"];
    let agent = pod(zk, "nostart", "web", ip, port, &extra, SLEEPER);
    agent.wait_for_line("configured 1 pods", DEADLINE);
    agent.wait_for_line("not starting (start is false)", DEADLINE);
    assert_eq!(post(&addr, "/info", None).2["process"], "stopped");
    // Configured once, a payload-less on (what the tools send) starts it.
    assert_eq!(post(&addr, "/control/on/30", None).0, 200);
    agent.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    assert_eq!(post(&addr, "/info", None).2["process"], "running");
}

#[test]
fn failing_hooks_stop_the_workload_or_kill_the_pod() {
    let zk = shared_zookeeper();
    let net = free_loopback(2, 1);
    let (ip, ip2, port) = (net.ip(), net.ips[1].as_str(), net.port());
    let dir = tempfile::tempdir().unwrap();
    let failing = script(dir.path(), "fail", "echo 'broken on purpose' >&2; exit 1");

    // A failed sanity check (--checks 1) stops the workload until the next on.
    let sick =
        pod(zk, "sick", "web", ip, port, &["--sanity", &failing, "--check-every", "1"], SLEEPER);
    sick.wait_for_line("sanity check failed (1/1): exit status 1: broken on purpose", DEADLINE);
    sick.wait_for_line("stopping the workload until the next on", DEADLINE);
    let addr = format!("{ip}:{port}");
    eventually("stopped", DEADLINE, || {
        (post(&addr, "/info", None).2["process"] == "stopped").then_some(())
    });
    assert_eq!(starts(&sick), 1);

    // A failed --configure answers 406 to the leader's on, and the pod kills itself.
    let refused = pod(zk, "refused", "web", ip2, port, &["--configure", &failing], SLEEPER);
    refused.wait_for_line("on: configuration failed", DEADLINE);
    refused.wait_for_line("dead: kill requested", DEADLINE);
    assert_eq!(post(&format!("{ip2}:{port}"), "/info", None).2["process"], "dead");
    assert_eq!(starts(&refused), 0);
}

#[test]
fn nothing_outlives_a_subreaper_agent_killed_with_sigkill() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    // The workload's grandchildren: one double-forks into a session of its own, one stays in the
    // workload's process group.
    let script = "( setsid sh -c 'echo escaped $$; exec sleep 1000' & )\n\
                  ( sh -c 'echo stayed $$; exec sleep 1000' & )\n\
                  echo workload started $$\n\
                  while :; do sleep 1000 & wait $!; done";
    let agent = pod(zk, "guarded", "web", ip, port, &[], &["/bin/sh", "-c", script]);
    let number = |line: String| -> i32 { line.rsplit(' ').next().unwrap().parse().unwrap() };
    let first = |word: &'static str| {
        let line = agent.wait_for(word, DEADLINE, |l| l.starts_with(word));
        Stray(number(line))
    };
    let (escaped, stayed, workload) =
        (first("escaped "), first("stayed "), first("workload started "));
    agent.wait_for_line(&format!("tracking process group {0} (pid {0})", escaped.0), DEADLINE);
    agent.signal(Signal::SIGKILL);
    for (pid, what) in [
        (workload.0, "the workload"),
        (stayed.0, "the grandchild in its group"),
        (escaped.0, "the grandchild that called setsid"),
    ] {
        let end = std::time::Instant::now() + DEADLINE;
        while !gone(pid) {
            assert!(std::time::Instant::now() < end, "{what} (pid {pid}) outlived the agent");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Kills a pid the test found, whatever happens to the test.
struct Stray(i32);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

fn gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z'))
}

// See: issue 15 (no configured hook, no soft, no pipe_subprocess)
#[test]
fn configured_hook_soft_stop_and_piped_output() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("configured.json");
    let fail = dir.path().join("fail");
    let configured = script(
        dir.path(),
        "configured",
        &format!("cat > {}; [ ! -e {} ] || exit 4", seen.display(), fail.display()),
    );
    let addr = format!("{ip}:{port}");
    // A workload that shrugs off SIGTERM (its sleeps die of it, the loop goes on).
    let cmd = "trap '' TERM; echo workload started $$; while :; do sleep 1; done";
    let agent = pod(
        zk,
        "extras",
        "web",
        ip,
        port,
        &["--configured", &configured, "--soft", "--pipe-subprocess"],
        &["/bin/sh", "-c", cmd],
    );
    // Piped: the workload's line arrives through the agent's log, prefixed.
    let line = agent.wait_for("the piped workload", DEADLINE, |l| {
        l.starts_with("pod: workload (pid ") && l.contains("): workload started ")
    });
    let pid: i32 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let _stray = Stray(pid);
    let log = post(&addr, "/log", None).2;
    assert!(
        log.as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("workload started")),
        "{log}"
    );
    // The leader's ok after the configuration ran the configured hook with the cluster view.
    let input: Value = eventually("the configured hook", DEADLINE, || {
        serde_json::from_str(&std::fs::read_to_string(&seen).ok()?).ok()
    });
    assert_eq!(input["size"], 1);
    assert!(input["key"].is_string() && input["pods"].is_object());
    // A failing configured hook answers 500, as a raising configured() does.
    std::fs::write(&fail, "").unwrap();
    let me = post(&addr, "/info", None).2["ip"].clone();
    let payload = json!({"pods": {"k": {"seq": 1, "ip": me}}, "dependencies": {}, "key": "k"});
    assert_eq!(post(&addr, "/control/ok/10", Some(&payload.to_string())).0, 500);
    std::fs::remove_file(&fail).unwrap();
    assert_eq!(post(&addr, "/control/ok/10", Some(&payload.to_string())).0, 200);

    // Soft: after the grace the workload is left running and forgotten, never SIGKILLed.
    assert_eq!(post(&addr, "/control/off/30", None).0, 200);
    agent.wait_for_line("left running (--soft)", DEADLINE);
    assert_eq!(post(&addr, "/info", None).2["process"], "stopped");
    assert!(!gone(pid), "the soft-stopped workload {pid} was killed");
}

/// `POST /exec` with an optional `X-Shell` header and multipart file parts.
fn exec(addr: &str, shell: Option<&str>, files: &[(&str, &str)]) -> (u16, Value) {
    use std::io::{Read, Write};
    let boundary = "ochoTestBoundary";
    let mut body = String::new();
    for (name, data) in files {
        body += &format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n{data}\r\n"
        );
    }
    if !files.is_empty() {
        body += &format!("--{boundary}--\r\n");
    }
    let mut head =
        format!("POST /exec HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    if let Some(shell) = shell {
        head += &format!("X-Shell: {shell}\r\n");
    }
    if !files.is_empty() {
        head += &format!("Content-Type: multipart/form-data; boundary={boundary}\r\n");
    }
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "{head}\r\n{body}").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

// See: issue 15 (no /exec on the agent); wire behaviour: docs/protocol.md §3.9
#[test]
fn exec_runs_only_registered_tools_with_their_uploads() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let dir = tempfile::tempdir().unwrap();
    let show = script(dir.path(), "show", "echo \"$@\"; cat notes.txt; exit 3");
    let addr = format!("{ip}:{port}");
    let _agent = pod(
        zk,
        "exec",
        "web",
        ip,
        port,
        &["--tool", &format!("show={show}"), "--tool", "pwd=/bin/pwd"],
        SLEEPER,
    );
    let (code, reply) = exec(&addr, Some("show hello  world"), &[("notes.txt", "from a file\n")]);
    assert_eq!(code, 200);
    // Split on single spaces, as Ochopod does: the double space makes an empty argument.
    assert_eq!(reply, json!({"code": 3, "stdout": ["hello  world", "from a file"]}));
    // Each request gets a fresh directory, gone afterwards.
    let (code, reply) = exec(&addr, Some("pwd"), &[]);
    assert_eq!((code, reply["code"].clone()), (200, json!(0)), "{reply}");
    let cwd = reply["stdout"][0].as_str().unwrap().to_string();
    assert!(cwd.contains("ocho-exec-") && !std::path::Path::new(&cwd).exists(), "{cwd}");
    // Only registered tools: anything else is 404 {}, a missing header 500 {}.
    assert_eq!(exec(&addr, Some("/bin/sh -c id"), &[]), (404, json!({})));
    assert_eq!(exec(&addr, Some("sh"), &[]), (404, json!({})));
    assert_eq!(exec(&addr, None, &[]), (500, json!({})));
}

/// `POST path` (HTTP/1.0, no body) from the source address `from`, bound before connecting;
/// returns the status and the body as JSON.
fn post_from(from: &str, addr: &str, path: &str) -> (u16, Value) {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    let source: std::net::SocketAddrV4 = format!("{from}:0").parse().unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::from(source)).unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let target: std::net::SocketAddrV4 = addr.parse().unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(target))
        .unwrap_or_else(|e| panic!("connect {addr} from {from}: {e}"));
    let mut s = std::net::TcpStream::from(fd);
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(s.local_addr().unwrap().ip().to_string(), from, "the source address");
    write!(s, "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn terminate_from_any_other_peer_is_refused_and_the_pod_stays_controllable() {
    let zk = shared_zookeeper();
    // The agent on one loopback address; the caller on another (of this host, but not the
    // pod's ip nor 127.0.0.1).
    let net = free_loopback(2, 1);
    let (ip, other, port) = (net.ip(), net.ips[1].as_str(), net.port());
    let addr = format!("{ip}:{port}");
    let agent = pod(zk, "noterm", "web", ip, port, &[], SLEEPER);
    agent.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    assert_eq!(post_from(other, &addr, "/terminate"), (403, json!({})));
    agent.wait_for_line(&format!("terminate from {other} refused (403)"), DEADLINE);
    assert_eq!(request("GET", &addr, "/terminate", None).0, 405);
    // Still served, and still controllable.
    let (code, _, info) = post(&addr, "/info", None);
    assert_eq!((code, info["process"].as_str()), (200, Some("running")));
    assert_eq!(post(&addr, "/control/off/30", None).0, 200);
    assert_eq!(post(&addr, "/info", None).2["process"], "stopped");
    assert!(!agent.lines().iter().any(|l| l.contains("control port closed")), "{}", agent.tail());
}

#[test]
fn terminate_from_the_pod_itself_answers_200_then_the_port_stops_answering() {
    let zk = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let addr = format!("{ip}:{port}");
    let mut agent = pod(zk, "termself", "web", ip, port, &[], SLEEPER);
    agent.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    assert_eq!(post_from("127.0.0.1", &addr, "/terminate"), (200, json!({})));
    agent.wait_for_line("terminate from 127.0.0.1: the control port stops listening", DEADLINE);
    agent.wait_for_line("control port closed (terminate)", DEADLINE);
    let refused = std::net::TcpStream::connect(&addr).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{addr}");
    // Only the control port stopped: the agent and its workload go on, still registered.
    assert!(agent.wait_exit(Duration::ZERO).is_none(), "{}", agent.tail());
    assert_eq!(starts(&agent), 1);
    assert_eq!(Zk::connect(zk).registrations("termself.web").len(), 1);
}
