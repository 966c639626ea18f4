//! `make bench`, issue 10: the worst time `ocho` takes to parse (or refuse) YAML at the size cap,
//! measured on the binary (OCHO_BIN): definitions of 256 KiB nested as deep as the size allows
//! (flow `[[[…]]]`, block indentation, compact `- - -`), 64 levels repeated past the flow
//! collection limit, the deepest text accepted (64 levels, repeated to the collection limit, then
//! block entries to the cap), one flow list of scalars, a large ordinary definition, and `ping`
//! payloads (1 MiB of JSON, 256 KiB of YAML). Each figure is
//! the whole process (start included; the first line is a trivial definition, for comparison);
//! with `-o` the file is only parsed, as a definition it is also built and printed. A 256 KiB
//! definition cannot deploy (its settings exceed Linux's 128 KiB environment string): the largest
//! that can (120 KiB) is built and printed, the 256 KiB ones are refused after parsing.
//! Prints figures; asserts only the outcome (refused or parsed), never a time.
#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const DEFINITION_CAP: usize = 256 * 1024;
const PAYLOAD_CAP: usize = 1024 * 1024;
/// Under Linux's 128 KiB limit of one environment string, with room for the JSON's growth.
const ENV_CAP: usize = 120 * 1024;

/// `head` + as many `open`…`close` pairs around `x` as fit in `size` bytes with `tail`.
fn nested(size: usize, head: &str, open: &str, close: &str, tail: &str) -> String {
    let n = (size - head.len() - tail.len() - 2) / (open.len() + close.len());
    let mut text = format!("{head}{}x{}{tail}", open.repeat(n), close.repeat(n));
    text.push_str(&" ".repeat(size - text.len() - 1));
    text.push('\n');
    text
}

fn block_nested(size: usize) -> String {
    let mut text = String::from("cluster: a\nimage: b\nsettings:\n");
    for i in 1.. {
        let line = format!("{}k{i}:\n", " ".repeat(i));
        if text.len() + line.len() > size {
            break;
        }
        text.push_str(&line);
    }
    text
}

/// Entries 64 levels deep in all (the limit) under `head` (3 levels): as many as fit in
/// `size`, or (`capped`) as many as the flow-collection limit allows, the rest of `size` then
/// filled with block entries.
fn deepest(size: usize, head: &str, capped: bool) -> String {
    let entry = format!("  - {}1{}\n", "[".repeat(61), "]".repeat(61));
    let mut text = String::from(head);
    let mut left = if capped { 16_384 / 61 } else { usize::MAX };
    while text.len() + entry.len() <= size && left > 0 {
        text.push_str(&entry);
        left -= 1;
    }
    while text.len() + 6 <= size {
        text.push_str("  - 1\n");
    }
    text
}

fn deepest_accepted(size: usize, head: &str) -> String {
    deepest(size, head, true)
}

/// One flow list of as many scalars as fit: one collection, the most tokens.
fn flow_scalars(size: usize, head: &str) -> String {
    let mut text = format!("{head}[");
    while text.len() + 3 + 3 <= size {
        text.push_str("1, ");
    }
    text.push_str("1]\n");
    text
}

/// An ordinary definition made large: many settings a few levels deep.
fn large_normal(size: usize) -> String {
    let mut text = String::from(
        "cluster: web\nimage: registry:5000/team/web:1.2\nports: [80, \"53/udp\"]\n\
         labels: {tier: frontend}\nsettings:\n",
    );
    for i in 0.. {
        let entry = format!(
            "  service{i}:\n    name: \"service number {i}\" # a comment\n    \
             ports: [{i}, {}]\n    env: {{LEVEL: info, 'QUOTED': \"x[y]\"}}\n",
            i + 1
        );
        if text.len() + entry.len() > size {
            break;
        }
        text.push_str(&entry);
    }
    text
}

fn ping(file: &str) -> [&str; 8] {
    ["ping", file, "x", "--force", "--zk", support::refusing_addr(), "--zk-timeout", "0.01"]
}

/// Runs `ocho ARGS` in `dir` RUNS times; prints the worst and the median wall time.
fn measure(label: &str, dir: &Path, args: &[&str], refused: bool) {
    measure_refusal(label, dir, args, refused.then_some("nested deeper than 64 levels"));
}

/// [`measure`], expecting a refusal whose message contains `refused` when it is given.
fn measure_refusal(label: &str, dir: &Path, args: &[&str], refused: Option<&str>) {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let out = support::ocho()
            .args(args)
            .current_dir(dir)
            .env("OCHOPOD_ZK", support::refusing_addr())
            .output()
            .unwrap();
        times.push(t0.elapsed());
        let err = String::from_utf8_lossy(&out.stderr);
        if let Some(why) = refused {
            assert!(err.contains(why), "{label}: {err}");
        } else if args[0] == "ping" {
            let zk = format!("zookeeper {}", support::refusing_addr());
            assert!(err.contains(&zk), "{label}: {err}");
        } else {
            assert!(out.status.success(), "{label}: {err}");
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label:<58} worst {:7.1} ms   p50 {:7.1} ms   ({RUNS} runs)",
        ms(times[RUNS - 1]),
        ms(times[RUNS / 2])
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    write("minimal.yml", "cluster: a\nimage: b\n");
    let files = [
        ("flow.yml", nested(DEFINITION_CAP, "cluster: a\nimage: b\nsettings: {x: ", "[", "]", "}")),
        ("block.yml", block_nested(DEFINITION_CAP)),
        ("compact.yml", format!("{}x\n", "- ".repeat((DEFINITION_CAP - 2) / 2))),
        (
            "deepest.yml",
            deepest_accepted(DEFINITION_CAP, "cluster: a\nimage: b\nsettings:\n  x:\n"),
        ),
        ("deepest-o.yml", deepest_accepted(DEFINITION_CAP, "unused.key:\n  x:\n")),
        ("uncapped-o.yml", deepest(DEFINITION_CAP, "unused.key:\n  x:\n", false)),
        ("scalars-o.yml", flow_scalars(DEFINITION_CAP, "unused.key:\n  x: ")),
        ("normal.yml", large_normal(DEFINITION_CAP)),
        // The largest definitions that can deploy: settings reach the container as one
        // environment string, which Linux caps at 128 KiB.
        ("deepest-env.yml", deepest_accepted(ENV_CAP, "cluster: a\nimage: b\nsettings:\n  x:\n")),
        ("normal-env.yml", large_normal(ENV_CAP)),
        ("flow.json", nested(PAYLOAD_CAP, "{\"x\": ", "[", "]", "}")),
        ("compact.yaml", format!("{}x\n", "- ".repeat((DEFINITION_CAP - 2) / 2))),
        ("deepest.yaml", deepest_accepted(DEFINITION_CAP, "x:\n  y:\n")),
    ];
    for (name, text) in &files {
        write(name, text);
    }
    println!("binary: {}", support::ocho_bin());
    measure(
        "deploy --dry-run, trivial definition (start-up)",
        d,
        &["deploy", "--dry-run", "minimal.yml"],
        false,
    );
    for (label, file) in [
        ("flow-nested [[[…]]]", "flow.yml"),
        ("block-nested (one more space per level)", "block.yml"),
        ("compact - - - …", "compact.yml"),
    ] {
        measure(
            &format!("deploy, 256 KiB {label}: refused"),
            d,
            &["deploy", "--dry-run", file],
            true,
        );
    }
    measure(
        "deploy -O, 256 KiB flow-nested: refused",
        d,
        &["deploy", "--dry-run", "-O", "flow.yml", "x"],
        true,
    );
    measure_refusal(
        "deploy -O, 256 KiB, 64 levels repeated (122,000 [): refused",
        d,
        &["deploy", "--dry-run", "-O", "uncapped-o.yml", "minimal.yml"],
        Some("more than 16384 flow collections"),
    );
    measure(
        "deploy -O, 256 KiB, one flow list of 87,000 scalars: parsed only",
        d,
        &["deploy", "--dry-run", "-O", "scalars-o.yml", "minimal.yml"],
        false,
    );
    measure(
        "deploy -O, 256 KiB at the limits (64 levels, 16,384 [): parsed only",
        d,
        &["deploy", "--dry-run", "-O", "deepest-o.yml", "minimal.yml"],
        false,
    );
    measure(
        "deploy, 256 KiB at the limits (64 levels, 16,384 [): built",
        d,
        &["deploy", "--dry-run", "deepest.yml"],
        false,
    );
    measure_refusal(
        "deploy, 256 KiB ordinary definition: refused, env",
        d,
        &["deploy", "--dry-run", "normal.yml"],
        Some("environment string over 131072 bytes"),
    );
    measure(
        "deploy, 120 KiB at the limits (64 levels, 16,384 [): built",
        d,
        &["deploy", "--dry-run", "deepest-env.yml"],
        false,
    );
    measure(
        "deploy, 120 KiB ordinary definition: built",
        d,
        &["deploy", "--dry-run", "normal-env.yml"],
        false,
    );
    for (label, file) in
        [("1 MiB flow-nested JSON", "flow.json"), ("256 KiB compact - - - YAML", "compact.yaml")]
    {
        measure(&format!("ping, {label} payload: refused"), d, &ping(file), true);
    }
    // Parsed, then ZooKeeper (nothing listens there) fails the run: the time is the parse's.
    measure("ping, 256 KiB YAML payload at the limits: parsed", d, &ping("deepest.yaml"), false);
}
