//! `ocho pod` in cluster scenarios: dependencies, a ZooKeeper restart, a hand-written Python
//! registration led by a Rust leader, and templates forming a real 3-member ZooKeeper ensemble.
#![allow(clippy::unwrap_used)]

use crate::fixture;
use crate::support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use fixture::{FakePod, Zk, eventually, pod, post, shared_zookeeper};
use nix::sys::signal::Signal;
use serde_json::Value;
use support::start_zookeeper_on;
use support::{DEADLINE, Proc, free_loopback};

const SLEEPER: &[&str] = &["/bin/sh", "-c", "echo workload started $$; exec sleep 1000"];

fn starts(p: &Proc) -> usize {
    p.lines().iter().filter(|l| l.starts_with("workload started")).count()
}

#[test]
fn a_dependent_cluster_reconfigures_when_its_dependency_changes() {
    let zk = shared_zookeeper();
    let net = free_loopback(4, 1);
    let port = net.port();
    let [db1_ip, web_ip, db2_ip, other_ip] = [0, 1, 2, 3].map(|i| net.ips[i].as_str());
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("deps.tpl");
    let out = dir.path().join("deps.txt");
    std::fs::write(&tpl, "{{dependency db 5432}}").unwrap();
    let template = format!("{}:{}", tpl.display(), out.display());
    let script = format!("echo deps=$(cat {}); exec sleep 1000", out.display());

    let db1 = pod(zk, "dep", "db", db1_ip, port, &["--ports", "5432"], SLEEPER);
    db1.wait_for("db workload", DEADLINE, |l| l.starts_with("workload started"));
    let web = pod(
        zk,
        "dep",
        "web",
        web_ip,
        port,
        &["--depends-on", "db", "--template", &template],
        &["/bin/sh", "-c", &script],
    );
    web.wait_for("one db pod", DEADLINE, |l| l == format!("deps={db1_ip}:5432"));
    // The same dependency by absolute wildcard, from another namespace.
    let any_tpl = dir.path().join("any.tpl");
    let any_out = dir.path().join("any.txt");
    std::fs::write(&any_tpl, "{{dependency /dep.d* 5432}}").unwrap();
    let any_template = format!("{}:{}", any_tpl.display(), any_out.display());
    let any_script = format!("echo any=$(cat {}); exec sleep 1000", any_out.display());
    let other = pod(
        zk,
        "other",
        "web",
        other_ip,
        port,
        &["--depends-on", "/dep.d*", "--template", &any_template],
        &["/bin/sh", "-c", &any_script],
    );
    other.wait_for("one db pod", DEADLINE, |l| l == format!("any={db1_ip}:5432"));
    let info = post(&format!("{web_ip}:{port}"), "/info", None).2;
    assert_eq!(info["dependencies"], serde_json::json!(["db"]));

    // A second db pod: db's snapshot changes, web's leader reconfigures, and because the
    // dependencies changed, web's workload restarts with the new rendering.
    let _db2 = pod(zk, "dep", "db", db2_ip, port, &["--ports", "5432"], SLEEPER);
    web.wait_for("two db pods", Duration::from_secs(60), |l| {
        l == format!("deps={db1_ip}:5432,{db2_ip}:5432")
    });
    other.wait_for("two db pods", Duration::from_secs(60), |l| {
        l == format!("any={db1_ip}:5432,{db2_ip}:5432")
    });
    assert_eq!(starts(&db1), 1, "db pods are not restarted by a membership change");
}

#[test]
fn zookeeper_restarted_pods_keep_their_uuid_and_seq() {
    support::require_zookeeper();
    let dir = tempfile::tempdir().unwrap();
    let zk_net = free_loopback(1, 1);
    let zk_addr = zk_net.addr(0);
    let mut server = start_zookeeper_on(zk_net.ip(), zk_net.port(), dir.path(), false);
    let net = free_loopback(2, 1);
    let port = net.port();
    let a = pod(&zk_addr, "zkr", "web", &net.ips[0], port, &[], SLEEPER);
    let b = pod(&zk_addr, "zkr", "web", &net.ips[1], port, &[], SLEEPER);
    let identities = |zk: &Zk| -> BTreeMap<String, Value> {
        zk.registrations("zkr.web")
            .into_iter()
            .map(|(node, r)| (node.split('.').next().unwrap().to_string(), r["seq"].clone()))
            .collect()
    };
    let before = {
        let zk = Zk::connect(&zk_addr);
        eventually("two registrations", DEADLINE, || {
            let ids = identities(&zk);
            (ids.len() == 2).then_some(ids)
        })
    };
    for p in [&a, &b] {
        p.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));
    }

    server.signal(Signal::SIGTERM);
    server.expect_exit(DEADLINE);
    drop(server);
    let _server = start_zookeeper_on(zk_net.ip(), zk_net.port(), dir.path(), false);
    // A restart within the session timeout keeps the sessions (the server restores them from
    // its snapshot and the agents reconnect with them); a slower one expires them and the
    // agents register again. Either way: the same uuid and seq, the workloads untouched.
    for p in [&a, &b] {
        p.wait_for("the session resumed or a re-registration", Duration::from_secs(60), |l| {
            l.contains("zookeeper session resumed") || l.contains(": re-registering")
        });
    }
    let zk = Zk::connect(&zk_addr);
    let after = eventually("the same two identities", Duration::from_secs(60), || {
        let ids = identities(&zk);
        (ids == before).then_some(ids)
    });
    assert_eq!(after.len(), 2);
    assert_eq!((starts(&a), starts(&b)), (1, 1), "workloads survive a ZooKeeper restart");
}

#[test]
fn a_registration_written_like_a_python_pod_is_configured_by_a_rust_leader() {
    let zk_addr = shared_zookeeper();
    let net = free_loopback(2, 1);
    let (port, fake_ip) = (net.port(), &net.ips[1]);
    let leader = pod(zk_addr, "py", "web", net.ip(), port, &[], SLEEPER);
    leader.wait_for_line("configured 1 pods", DEADLINE);
    let fake = FakePod::start(&net.addr(1));

    // Exactly what Python Ochopod does: ephemeral sequential node with empty data, then the
    // JSON (Python's separators) with `seq` taken from the suffix.
    let zk = Zk::connect(zk_addr);
    let uuid = "3070464b-5e1a-4d0f-9a7e-2b1c0d9e8f7a";
    let node = zk.create_ephemeral_seq(&format!("/ochopod/clusters/py.web/pods/{uuid}."), b"");
    let seq: i64 = node.rsplit('.').next().unwrap().parse().unwrap();
    let json = format!(
        "{{\"application\": \"ochopod.py.web-2015-05-04-08-03-05\", \"cluster\": \"web\", \
         \"debug\": \"true\", \"local\": \"false\", \"namespace\": \"py\", \"port\": \"{port}\", \
         \"start\": \"true\", \"task\": \"ochopod.py.web-2015-05-04-08-03-05-x1b2c\", \
         \"ip\": \"{fake_ip}\", \"fwk\": \"k8s-ec2\", \"node\": \"i-5a3b2c1d\", \
         \"ports\": {{\"{port}\": {port}}}, \"public\": \"52.11.0.7\", \"zk\": \"10.244.1.5\", \
         \"seq\": {seq}}}"
    );
    zk.set(&node, json.as_bytes());

    let paths = eventually("check, on, ok", DEADLINE, || {
        let p = fake.paths();
        (p.len() >= 3).then_some(p)
    });
    assert_eq!(
        paths[..3],
        [
            "/control/check/60".to_string(),
            "/control/on/60".to_string(),
            "/control/ok/60".to_string()
        ]
    );
    for (_, body, _) in fake.requests.lock().unwrap().iter().take(3) {
        assert_eq!(body["key"], uuid);
        let pods = body["pods"].as_object().unwrap();
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[uuid]["seq"], seq);
        assert_eq!(pods[uuid]["public"], "52.11.0.7");
        assert_eq!(body["dependencies"], serde_json::json!({}));
    }
    leader.wait_for_line("configured 2 pods", DEADLINE);
    let snapshot: Value =
        serde_json::from_slice(&zk.get("/ochopod/clusters/py.web/snapshot").unwrap()).unwrap();
    assert_eq!(snapshot.as_object().unwrap().len(), 2);
    assert_eq!(starts(&leader), 1);
}

/// `srvr` four-letter word: the `Mode:` of a ZooKeeper server, if it serves.
fn zk_mode(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
}

#[test]
fn templates_render_a_working_three_member_zookeeper_ensemble() {
    support::require_zookeeper();
    let java = ["/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"]
        .into_iter()
        .find(|j| std::path::Path::new(j).exists())
        .expect("java missing: install Debian package default-jre-headless (make deps)");
    let zk = shared_zookeeper();
    let dir = tempfile::tempdir().unwrap();
    let net = free_loopback(3, 4);
    let [port, client, quorum, election] = [0, 1, 2, 3].map(|i| net.ports[i]);
    // The example workload's own templates (image/agent/), adapted only where one machine must
    // host the three members: its own ports, data directories and client addresses.
    let shipped = |name: &str| {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("image/agent").join(name),
        )
        .unwrap()
    };
    let zoo = shipped("zoo.cfg.tmpl");
    for needle in [
        "{{port 2181}}",
        "{{port 2888}}",
        "{{port 3888}}",
        "dataDir=/var/lib/zookeeper/data",
        "{{#pods}}",
    ] {
        assert!(zoo.contains(needle), "image/agent/zoo.cfg.tmpl lost {needle}");
    }
    let zoo = zoo
        .replace("tickTime=2000", "tickTime=500\nclientPortAddress={{ip}}")
        .replace("initLimit=10", "initLimit=40")
        .replace("syncLimit=5", "syncLimit=20")
        .replace("{{port 2181}}", &format!("{{{{port {client}}}}}"))
        .replace("{{port 2888}}", &format!("{{{{port {quorum}}}}}"))
        .replace("{{port 3888}}", &format!("{{{{port {election}}}}}"))
        .replace("dataDir=/var/lib/zookeeper/data", "dataDir={{env ZKDIR}}/data");
    let zoo_tpl = dir.path().join("zoo.cfg.tpl");
    std::fs::write(&zoo_tpl, zoo).unwrap();
    let myid_tpl = dir.path().join("myid.tpl");
    std::fs::write(&myid_tpl, shipped("myid.tmpl")).unwrap();
    let ports = format!("{client},{quorum},{election}");
    let ips: Vec<&str> = net.ips.iter().map(String::as_str).collect();
    let mut pods = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let home = dir.path().join(format!("pod{i}"));
        let zoo = home.join("zoo.cfg");
        let t1 = format!("{}:{}", zoo_tpl.display(), zoo.display());
        let t2 = format!("{}:{}", myid_tpl.display(), home.join("data/myid").display());
        let zoo = zoo.display().to_string();
        let cmd = [
            java,
            "-Xmx48m",
            "-XX:+UseSerialGC",
            "-cp",
            "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            &zoo,
        ];
        let mut c = support::ocho();
        c.env("ochopod_zk", zk)
            .env("ochopod_namespace", "ens")
            .env("ochopod_cluster", "zookeeper")
            .env("ZKDIR", &home)
            .args(["pod", "--ip", ip, "--bind", ip, "--port", &port.to_string()])
            .args(["--ports", &ports, "--strict", "--damper", "3", "--grace", "10"])
            .args(["--template", &t1, "--template", &t2, "--"])
            .args(cmd);
        pods.push(Proc::spawn(&format!("zk pod {ip}"), c));
    }
    let modes = eventually("one leader and two followers", Duration::from_secs(180), || {
        let mut modes: Vec<String> =
            ips.iter().map(|ip| zk_mode(&format!("{ip}:{client}"))).collect::<Option<_>>()?;
        modes.sort();
        (modes == ["follower", "follower", "leader"]).then_some(modes)
    });
    assert_eq!(modes.len(), 3);
    let cfg = std::fs::read_to_string(dir.path().join("pod0/zoo.cfg")).unwrap();
    assert_eq!(cfg.lines().filter(|l| l.starts_with("server.")).count(), 3, "{cfg}");
    for p in &pods {
        assert!(p.lines().iter().any(|l| l.contains("configured as pod")), "{}", p.tail());
    }
}

#[test]
fn a_rust_pod_defers_to_a_kazoo_lock_holder_and_is_led_like_a_python_leader_leads() {
    let zk_addr = shared_zookeeper();
    let net = free_loopback(1, 1);
    let (ip, port) = (net.ip(), net.port());
    let zk = Zk::connect(zk_addr);
    // A Python leader holds the lock: kazoo's contender node, created first.
    let coord = "/ochopod/clusters/kz.web/coordinator";
    zk.mkdir(coord);
    let python_lock =
        zk.create_ephemeral_seq(&format!("{coord}/0123456789abcdef0123456789abcdef__lock__"), b"");
    let rust = pod(zk_addr, "kz", "web", ip, port, &[], SLEEPER);
    let contenders = eventually("two contenders", DEADLINE, || {
        let c = zk.children(coord);
        (c.len() == 2).then_some(c)
    });
    let mine = contenders.iter().find(|c| !python_lock.ends_with(c.as_str())).unwrap();
    assert_eq!(mine.len(), 32 + "__lock__".len() + 10, "{mine}");
    assert!(mine[..32].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let addr = format!("{ip}:{port}");
    assert_eq!(post(&addr, "/info", None).2["state"], "follower");

    // The Python leader configures it: the payload with no Content-Type, timeout segment 60.
    let (node, record) = zk.registrations("kz.web").pop().unwrap();
    let uuid = node.split('.').next().unwrap();
    let payload = serde_json::json!({"pods": {uuid: record}, "dependencies": {}, "key": uuid});
    for verb in ["check", "on", "ok"] {
        let (code, _, body) = raw_post(&addr, &format!("/control/{verb}/60"), &payload.to_string());
        assert_eq!((code, body), (200, serde_json::json!({})), "{verb}");
    }
    rust.wait_for("the workload", DEADLINE, |l| l.starts_with("workload started"));

    // The Python leader goes away: the Rust pod, next in line, takes over.
    drop(zk);
    rust.wait_for_line("leader of kz.web", Duration::from_secs(60));
    rust.wait_for_line("configured 1 pods", DEADLINE);
    assert_eq!(starts(&rust), 1, "same payload, no dependency change: not restarted");
}

/// A POST exactly as Python's `requests` sends the leader's JSON: no Content-Type.
fn raw_post(addr: &str, path: &str, body: &str) -> (u16, String, Value) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: python-requests/2.7.0\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), serde_json::from_str(body).unwrap_or(Value::Null))
}
