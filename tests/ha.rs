//! The highly available proxy: three real `ocho init` members (real ZooKeeper JVMs, real
//! portals) forming one ensemble on three free loopback addresses, real `ocho pod` agents
//! connected to every member, members killed with SIGKILL and started again on their data.
#![allow(clippy::unwrap_used)]

use crate::ensemble::{Caller, Ensemble, SLEEPER, START, leader, mode, modes, readyz};
use crate::fixture::{self, Zk, eventually};
use crate::support::{self, DEADLINE, free_loopback, ocho};

use std::time::{Duration, Instant};

use serde_json::Value;
use support::portal::Client;

/// Runs `line` through portal `client`: (ok, out, err).
fn shell(client: &Client, line: &str) -> (bool, String, String) {
    let reply = client.shell(line, &[]);
    assert_eq!(reply.status, 200, "{line}: {}", reply.text());
    let v = reply.json();
    (
        v["ok"].as_bool().unwrap(),
        v["out"].as_str().unwrap_or_default().to_string(),
        v["err"].as_str().unwrap_or_default().to_string(),
    )
}

/// `grep -j CLUSTER` through a portal: the pods it lists ("<ns.cluster> #<seq>" keys).
fn pods_seen(client: &Client, cluster: &str) -> Option<Vec<String>> {
    let (ok, out, _) = shell(client, &format!("grep -j {cluster}"));
    let v: Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
    Some(v.as_object()?.keys().cloned().collect())
}

/// The agent's registration as (uuid, seq), read from ZooKeeper through `hosts`.
fn registration(hosts: &str, cluster: &str) -> Option<(String, i64)> {
    let zk = Zk::connect(hosts);
    let regs = zk.registrations(cluster);
    let (node, record) = regs.first()?;
    Some((node.split('.').next()?.to_string(), record["seq"].as_i64()?))
}

#[test]
fn three_members_elect_one_leader_and_every_portal_sees_what_one_member_got() {
    let ens = Ensemble::start();
    let modes = modes(&ens, &[0, 1, 2]);
    let mut sorted = modes.clone();
    sorted.sort();
    assert_eq!(sorted, ["follower", "follower", "leader"], "{modes:?}");
    for (i, mode) in modes.iter().enumerate() {
        let (code, body) = readyz(&ens.portal(i));
        assert_eq!(code, 200, "member {}: {body}", i + 1);
        assert_eq!(body["zk"], ens.client(i), "each portal asks its own member");
        assert_eq!(body["mode"], mode.as_str());
    }
    // The portal's tools use every member, and so do the pods deploy creates (ochopod_zk).
    let started = ens.member(0).wait_for_line("init: started portal (pid ", DEADLINE);
    let pid = started.rsplit("(pid ").next().unwrap().trim_end_matches(')');
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env: Vec<String> =
        environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    for var in ["OCHOPOD_ZK", "OCHO_ZK_PUBLIC"] {
        assert!(env.contains(&format!("{var}={}", ens.hosts())), "{var}: {env:?}");
    }
    assert!(env.contains(&format!("OCHO_ZK_MEMBER={}", ens.client(0))), "{env:?}");
    // deploy, run by a member's portal, gives the pods every member.
    let (kind, body) = support::portal::multipart(&[("web.yml", b"cluster: web\nimage: x\n")]);
    let reply = ens.portal(1).request(
        "POST",
        "/shell",
        &[("X-Shell", "deploy web.yml --dry-run -j"), ("Content-Type", &kind)],
        &body,
    );
    let v = reply.json();
    assert_eq!(v["ok"], true, "{v}");
    let rcs: Value = serde_json::from_str(v["out"].as_str().unwrap()).unwrap();
    let env = &rcs[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    let zk = env.as_array().unwrap().iter().find(|e| e["name"] == "ochopod_zk").unwrap();
    assert_eq!(zk["value"], ens.hosts().as_str(), "{env}");
    let zoo = std::fs::read_to_string(ens.data(1).join("zoo.cfg")).unwrap();
    assert!(zoo.contains(&format!("server.3={}:", ens.net.ips[2])), "{zoo}");
    assert_eq!(std::fs::read_to_string(ens.data(1).join("myid")).unwrap(), "2\n");

    let net = free_loopback(1, 1);
    let agent = fixture::pod(&ens.hosts(), "ha.a", "web", net.ip(), net.port(), &[], SLEEPER);
    let (uuid, seq) =
        eventually("the registration", DEADLINE, || registration(&ens.hosts(), "ha.a.web"));
    let pod = format!("ha.a.web #{seq}");
    // Written through whichever member the agent's session uses, read through each member
    // alone (a follower serves reads from its own copy) and through each portal.
    for i in 0..3 {
        let alone = eventually("the registration on one member", DEADLINE, || {
            registration(&ens.client(i), "ha.a.web")
        });
        assert_eq!(alone, (uuid.clone(), seq), "member {}", i + 1);
        let seen =
            eventually("grep through a portal", DEADLINE, || pods_seen(&ens.portal(i), "web"));
        assert_eq!(seen, std::slice::from_ref(&pod), "portal {}", i + 1);
        // 1/1 once the workload runs (the leader starts it after registering).
        eventually("ls 1/1 through a portal", DEADLINE, || {
            let (ok, out, _) = shell(&ens.portal(i), "ls");
            (ok && out.contains("ha.a.web") && out.contains("1/1")).then_some(())
        });
    }
    drop(agent);
}

#[test]
fn killing_the_leader_member_leaves_a_serving_pair_and_the_registration() {
    let mut ens = Ensemble::start();
    let net = free_loopback(1, 1);
    let agent = fixture::pod(&ens.hosts(), "ha.b", "web", net.ip(), net.port(), &[], SLEEPER);
    agent.wait_for_line("lifecycle: started", DEADLINE);
    let before =
        eventually("the registration", DEADLINE, || registration(&ens.hosts(), "ha.b.web"));

    let old = leader(&ens, &[0, 1, 2]);
    ens.kill(old);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = leader(&ens, &survivors);
    assert_ne!(new, old);
    let follower = survivors.iter().copied().find(|i| *i != new).unwrap();
    assert_eq!(mode(&ens.client(follower)).as_deref(), Some("follower"));

    let pod = format!("ha.b.web #{}", before.1);
    for &i in &survivors {
        assert_eq!(readyz(&ens.portal(i)).0, 200, "member {}", i + 1);
        let seen = eventually("grep through a survivor", DEADLINE, || {
            pods_seen(&ens.portal(i), "web").filter(|p| !p.is_empty())
        });
        assert_eq!(seen, std::slice::from_ref(&pod), "portal {}", i + 1);
        let after =
            eventually("the registration", DEADLINE, || registration(&ens.client(i), "ha.b.web"));
        assert_eq!(after, before, "same uuid and seq through member {}", i + 1);
    }
    // The agent and its workload went on through the loss: started once, running still.
    let (code, _, info) = fixture::post(&net.addr(0), "/info", None);
    assert_eq!((code, info["process"].as_str()), (200, Some("running")), "{}", agent.tail());
    let starts = agent.lines().iter().filter(|l| l.contains("lifecycle: started")).count();
    assert_eq!(starts, 1, "{}", agent.tail());
}

#[test]
fn two_members_lost_mean_no_quorum_and_a_returning_member_restores_every_write() {
    let mut ens = Ensemble::start();
    let zk = Zk::connect(&ens.hosts());
    zk.mkdir("/ha-c/acknowledged");
    zk.set("/ha-c/acknowledged", b"before the loss");
    drop(zk);
    let net = free_loopback(1, 1);
    let agent = fixture::pod(&ens.hosts(), "ha.c", "web", net.ip(), net.port(), &[], SLEEPER);
    let before =
        eventually("the registration", DEADLINE, || registration(&ens.hosts(), "ha.c.web"));

    ens.kill(1);
    ens.kill(2);
    let survivor = ens.portal(0);
    // The member goes through a moment of refusing or closing probes while it stops serving;
    // then it answers, not serving, for as long as it has no quorum.
    let body = eventually("readyz 503 'no quorum' on the survivor", DEADLINE, || {
        let (code, body) = readyz(&survivor);
        let why = body["error"].as_str().unwrap_or_default().to_string();
        (code == 503 && why.starts_with("no quorum")).then_some(body)
    });
    assert_eq!(body["ok"], false, "{body}");
    // A tool says why rather than timing out (its session never comes).
    let started = Instant::now();
    let (ok, out, err) = shell(&survivor, "ls");
    assert!(!ok, "{out}");
    assert!(err.contains("no quorum"), "{err}");
    assert!(err.contains(&ens.client(0)), "the member that answers is named: {err}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "failed after {took:?}, not at once");
    ens.member(0).wait_for_line("lost its quorum", DEADLINE);
    let status = ocho().args(["zk-status", "--zk", &ens.client(0)]).output().unwrap();
    assert_eq!(status.status.code(), Some(1));
    let err = String::from_utf8_lossy(&status.stderr);
    assert!(err.contains("is not serving (no quorum"), "{err}");

    ens.spawn(1);
    assert!(ens.wait_serving(&[0, 1]), "member 2 met a port in use on its own addresses");
    for i in [0, 1] {
        let ready = eventually("readyz 200", START, || {
            let (code, body) = readyz(&ens.portal(i));
            (code == 200).then_some(body)
        });
        assert!(["leader", "follower"].contains(&ready["mode"].as_str().unwrap()), "{ready}");
    }
    let zk = Zk::connect(&format!("{},{}", ens.client(0), ens.client(1)));
    assert_eq!(zk.get("/ha-c/acknowledged").as_deref(), Some(&b"before the loss"[..]));
    let (ok, out, err) = shell(&survivor, "ls");
    assert!(ok, "{out}{err}");
    // The agent is registered again with its identity (it kept its session if the loss was
    // short, else registered anew), and once the old session is expired, exactly once.
    let pair = format!("{},{}", ens.client(0), ens.client(1));
    let single = eventually("one registration of the agent", Duration::from_secs(60), || {
        Some(nodes(&pair, "ha.c.web")).filter(|n| n.len() == 1)
    });
    assert!(single[0].starts_with(&before.0), "{single:?}");
    assert_eq!(registration(&pair, "ha.c.web"), Some(before), "{}", agent.tail());
}

#[test]
fn a_member_whose_data_was_wiped_rejoins_and_catches_up() {
    let mut ens = Ensemble::start();
    let zk = Zk::connect(&ens.hosts());
    zk.mkdir("/ha-d/early");
    drop(zk);

    ens.kill(2);
    std::fs::remove_dir_all(ens.data(2)).unwrap();
    let zk = Zk::connect(&format!("{},{}", ens.client(0), ens.client(1)));
    zk.mkdir("/ha-d/while-down");
    zk.set("/ha-d/while-down", b"written without member 3");
    drop(zk);

    ens.spawn(2);
    assert!(ens.wait_serving(&[2]), "member 3 met a port in use on its own addresses");
    assert!(ens.data(2).join("myid").is_file());
    // Member 3 alone: it serves reads from its own copy, which it got from the leader.
    let zk = Zk::connect(&ens.client(2));
    assert_eq!(zk.get("/ha-d/while-down").as_deref(), Some(&b"written without member 3"[..]));
    assert!(zk.get("/ha-d/early").is_some());
    let (code, body) = readyz(&ens.portal(2));
    assert_eq!(code, 200, "{body}");
}

#[test]
fn ensemble_mistakes_are_refused_before_anything_starts() {
    for (words, needle) in [
        (&["--zk-members", "127.0.0.2,127.0.0.3"][..], "at least 3"),
        (&["--zk-members", "a,b,c,d", "--zk-id", "1"], "odd count"),
        (&["--zk-members", "a,b,a", "--zk-id", "1"], "same member"),
        (&["--zk-members", "a,b,c", "--zk-id", "4"], "outside 1..3"),
        (&["--zk-members", "a,b:1,c", "--zk-id", "1"], "--zk-members"),
        (&["--zk-members", "a,b,c", "--zk-id", "1", "--no-zk", "--zk", "h:1"], "--no-zk"),
    ] {
        let out = ocho()
            .arg("init")
            .args(words)
            .args(["--java", "/bin/true", "--zk-classpath", "/bin/sh"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{words:?}: {err}");
        assert!(err.contains(needle), "{words:?}: {err}");
        assert!(!err.contains("started"), "{words:?}: {err}");
    }
}

/// Registration node names of a cluster, sorted.
fn nodes(hosts: &str, cluster: &str) -> Vec<String> {
    let zk = Zk::connect(hosts);
    let mut names: Vec<String> = zk.registrations(cluster).into_iter().map(|(n, _)| n).collect();
    names.sort();
    names
}

#[test]
fn agents_ride_out_the_loss_of_any_one_member_on_their_own_session() {
    let mut ens = Ensemble::start();
    let net = free_loopback(2, 1);
    let first = fixture::pod(&ens.hosts(), "ha.e", "web", &net.ips[0], net.port(), &[], SLEEPER);
    first.wait_for_line("leader of ha.e.web", DEADLINE);
    let second = fixture::pod(&ens.hosts(), "ha.e", "web", &net.ips[1], net.port(), &[], SLEEPER);
    let before = eventually("both registered", DEADLINE, || {
        Some(nodes(&ens.hosts(), "ha.e.web")).filter(|n| n.len() == 2)
    });
    let locks = Zk::connect(&ens.hosts()).children("/ochopod/clusters/ha.e.web/coordinator");

    // Losing the ZooKeeper leader drops every client connection of the ensemble (the followers
    // stop serving until they elect a new leader), whichever member each agent was on.
    let old = leader(&ens, &[0, 1, 2]);
    let killed = Instant::now();
    ens.kill(old);
    for agent in [&first, &second] {
        agent.wait_for_line("zookeeper session resumed", START);
    }
    eprintln!("agents' sessions resumed {:.1}s after the kill", killed.elapsed().as_secs_f64());
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let hosts: Vec<String> = survivors.iter().map(|&i| ens.client(i)).collect();
    // Same nodes (not only the same uuid and seq: never re-created), same lock nodes, so the
    // workload cluster's leader did not change; each agent registered once.
    assert_eq!(nodes(&hosts.join(","), "ha.e.web"), before);
    let zk = Zk::connect(&hosts.join(","));
    assert_eq!(zk.children("/ochopod/clusters/ha.e.web/coordinator"), locks);
    for agent in [&first, &second] {
        let registered = agent.lines().iter().filter(|l| l.contains("registered as")).count();
        assert_eq!(registered, 1, "{}", agent.tail());
        assert!(agent.lines().iter().all(|l| !l.contains("reset (")), "{}", agent.tail());
    }
    let (_, _, info) = fixture::post(&format!("{}:{}", net.ips[0], net.port()), "/info", None);
    assert_eq!(info["state"], "leader");
    let seen = eventually("grep through a survivor", DEADLINE, || {
        pods_seen(&ens.portal(survivors[0]), "web")
    });
    assert_eq!(seen.len(), 2, "{seen:?}");

    // Any one member, a follower this time, once the first is back: the agents whose
    // connection it held resume on another member, the others notice nothing.
    ens.spawn(old);
    assert!(ens.wait_serving(&[old]), "member {} met a port in use", old + 1);
    let leader_now = leader(&ens, &[0, 1, 2]);
    let follower = (0..3).find(|i| *i != leader_now).unwrap();
    ens.kill(follower);
    let remaining: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    let rest: Vec<String> = remaining.iter().map(|&i| ens.client(i)).collect();
    eventually("the pods through the remaining pair", DEADLINE, || {
        pods_seen(&ens.portal(remaining[0]), "web").filter(|p| p.len() == 2)
    });
    assert_eq!(nodes(&rest.join(","), "ha.e.web"), before);
    let zk = Zk::connect(&rest.join(","));
    assert_eq!(zk.children("/ochopod/clusters/ha.e.web/coordinator"), locks);
    for agent in [&first, &second] {
        let registered = agent.lines().iter().filter(|l| l.contains("registered as")).count();
        assert_eq!(registered, 1, "{}", agent.tail());
        assert!(agent.lines().iter().all(|l| !l.contains("reset (")), "{}", agent.tail());
    }
}

#[test]
fn a_rolling_restart_fails_only_the_calls_caught_as_a_member_goes() {
    let mut ens = Ensemble::start();
    let net = free_loopback(1, 1);
    let agent = fixture::pod(&ens.hosts(), "ha.f", "web", net.ip(), net.port(), &[], SLEEPER);
    eventually("the registration", DEADLINE, || registration(&ens.hosts(), "ha.f.web"));

    // One tool call every 100 ms against the whole ensemble, as the portals' tools make them.
    let caller = Caller::start(&ens.hosts(), "ha.f.web");
    let rolled = ens.roll();
    // The agent kept its session through the three restarts: registered once, never reset.
    let registered: Vec<String> = agent
        .lines()
        .into_iter()
        .filter(|l| l.contains("reset (") || l.contains("registered as"))
        .collect();
    assert_eq!(registered.len(), 1, "{registered:?}\n{}", agent.tail());
    let (ok, failed) = caller.stop();
    eprintln!(
        "rolling restart of 3 members in {:.1}s: {ok} tool calls answered, {} failed{}",
        rolled.as_secs_f64(),
        failed.len(),
        if failed.is_empty() { String::new() } else { format!(": {failed:?}") }
    );
    assert!(ok >= 10, "the caller made too few calls to judge: {ok}");
    // A call caught in the moment a member goes may fail (its connection goes with it); no
    // more than one or two per member, never a run of them.
    assert!(
        failed.len() <= 6,
        "{} of {} calls failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert_eq!(modes(&ens, &[0, 1, 2]).iter().filter(|m| *m == "leader").count(), 1);
}
