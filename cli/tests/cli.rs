//! The `shmq` command as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

fn shmq(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(SHMQ)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = shmq(dir, args);
    assert!(
        out.status.success(),
        "shmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits for a child with a bound, killing it past the bound. Its piped
/// stdout and stderr are drained as it runs, so it never blocks on a full
/// pipe.
fn finish(mut child: std::process::Child, timeout: Duration) -> Output {
    use std::io::Read;
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

#[test]
fn two_groups_each_get_every_line_in_order_while_the_publisher_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "q", "--slots", "1024"]);
    ok(d, &["group-create", "q", "a"]);
    ok(d, &["group-create", "q", "b"]);
    let consumer = |g: &str| {
        Command::new(SHMQ)
            .arg("--dir")
            .arg(d)
            .args([
                "consume",
                "q",
                "--group",
                g,
                "--count",
                "100000",
                "--timeout",
                "60",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Each consumer is drained and awaited on its own thread from the
    // start, so neither blocks on a full stdout pipe.
    let consumers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|g| {
            let c = consumer(g);
            std::thread::spawn(move || finish(c, Duration::from_secs(120)))
        })
        .collect();
    let mut publisher = Command::new(SHMQ)
        .arg("--dir")
        .arg(d)
        .args(["publish", "q"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    let mut stdin = publisher.stdin.take().unwrap();
    let feed = {
        let input = input.clone();
        std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap())
    };
    let p = finish(publisher, Duration::from_secs(120));
    feed.join().unwrap();
    assert!(p.status.success());
    assert!(String::from_utf8_lossy(&p.stderr).contains("published 100000 messages"));
    for c in consumers {
        let out = c.join().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
    }
    let stat: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "q", "--json"])).unwrap();
    assert_eq!(stat["published"], 100_000);
    assert_eq!(stat["depth"], 0);
    assert_eq!(stat["groups"][0]["delivered"], 100_000);
}

#[test]
fn stat_groups_seek_delete_and_rm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "create",
            "s",
            "--slots",
            "16",
            "--slot-size",
            "64",
            "--overflow",
            "reject",
        ],
    );
    ok(d, &["group-create", "s", "g", "--seq", "0"]);
    ok(d, &["publish", "s", "--count", "5", "--size", "8"]);
    let table = ok(d, &["stat", "s"]);
    assert!(table.contains("depth      5"), "{table}");
    let prom = ok(d, &["stat", "s", "--prometheus"]);
    assert!(prom.contains("shmq_depth{queue=\"s\"} 5"), "{prom}");
    assert!(
        prom.contains("shmq_group_lag{queue=\"s\",group=\"g\"} 5"),
        "{prom}"
    );
    // Consume 2, then replay from seq 1.
    let out = shmq(d, &["consume", "s", "--group", "g", "--count", "2"]);
    assert_eq!(out.stdout.len(), 2 * 9);
    ok(d, &["seek", "s", "--group", "g", "--seq", "1"]);
    let groups = ok(d, &["groups", "s"]);
    assert!(
        groups.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("1"),
        "{groups}"
    );
    ok(d, &["seek", "s", "--group", "g", "--time", "-1h"]);
    ok(d, &["seek", "s", "--group", "g", "--latest"]);
    let out = shmq(d, &["consume", "s", "--group", "g", "--timeout", "0.2"]);
    assert!(out.status.success() && out.stdout.is_empty());
    ok(d, &["group-delete", "s", "g"]);
    ok(d, &["rm", "s"]);
    let out = shmq(d, &["stat", "s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn reject_overflow_and_bad_input_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "create",
            "r",
            "--slots",
            "4",
            "--slot-size",
            "8",
            "--overflow",
            "reject",
        ],
    );
    let out = shmq(d, &["publish", "r", "--count", "5", "--size", "8"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queue is full"), "{err}");
    let cases: &[(&[&str], &str)] = &[
        (&["create", "bad/name"], "invalid name"),
        (&["create", "r"], "already exists"),
        (&["create", "x", "--slots", "3"], "power of two"),
        (&["create", "x", "--overflow", "drop"], "overflow must be"),
        (&["publish", "nope"], "not found"),
        (
            &["seek", "r", "--group", "g", "--time", "yesterday"],
            "bad --time",
        ),
    ];
    for (args, needle) in cases {
        let out = shmq(d, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("shmq: error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    std::fs::write(d.join("junk.shmq"), vec![1u8; 5000]).unwrap();
    let out = shmq(d, &["stat", "junk"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt queue file"));
    let out = Command::new(SHMQ).args(["publish"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn bench_json_has_the_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    // The bench's scratch queues go under SHMQ_DIR.
    let bench = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(SHMQ)
            .env("SHMQ_DIR", dir.path())
            .arg("bench")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = bench(&["latency", "--count", "2000", "--rounds", "1"]);
    for k in ["p50_ns", "p99_ns", "p999_ns", "max_ns", "baseline_p50_ns"] {
        assert!(v[k].as_u64().is_some_and(|x| x > 0), "{k}: {v}");
    }
    assert_eq!(v["read"], true);
    let v = bench(&[
        "latency",
        "--no-read",
        "--slots",
        "4096",
        "--count",
        "2000",
        "--rounds",
        "1",
    ]);
    assert_eq!(v["read"], false);
    assert!(v["p50_ns"].as_u64().is_some_and(|x| x > 0), "{v}");
    let v = bench(&["throughput", "--count", "20000", "--rounds", "1"]);
    for k in ["msgs_per_s", "mb_per_s", "baseline_msgs_per_s"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
    // The bench cleans up after itself.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn dlq_list_redrive_purge_and_manual_consume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &["create", "q", "--slots", "16", "--max-deliveries", "2"],
    );
    ok(d, &["group-create", "q", "work"]);
    let opts = shmq::Options::new().dir(d);
    let q = shmq::Queue::open_with("q", &opts).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"bad\tone").unwrap();
    p.publish(b"good").unwrap();
    {
        let mut c = q
            .consumer("work", shmq::ConsumerOptions::new().ack(shmq::Ack::Manual))
            .unwrap();
        c.receive().unwrap().nack(shmq::Nack::DeadLetter).unwrap();
    }
    let out = ok(d, &["dlq", "q", "list"]);
    assert!(out.contains("nacked") && out.contains("bad\\tone"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(ok(d, &["dlq", "q", "list", "--json"]).trim()).unwrap();
    assert_eq!(
        (json["seq"].as_u64(), json["group"].as_str()),
        (Some(0), Some("work"))
    );
    let stat: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "q", "--json"])).unwrap();
    assert_eq!(stat["dlq_depth"], 1);
    assert_eq!(stat["groups"][0]["dead_lettered"], 1);
    // Redrive it; a manual consumer writes both messages and acks them.
    let err = shmq(d, &["dlq", "q", "redrive", "--seq", "9"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("not found"));
    ok(d, &["dlq", "q", "redrive", "--seq", "0"]);
    let got = ok(
        d,
        &[
            "consume",
            "q",
            "--group",
            "work",
            "--ack",
            "manual",
            "--count",
            "2",
            "--timeout",
            "5",
        ],
    );
    let mut lines: Vec<&str> = got.lines().collect();
    lines.sort();
    assert_eq!(lines, ["bad\tone", "good"]);
    let stat: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "q", "--json"])).unwrap();
    assert_eq!(
        (stat["acked"].as_u64(), stat["dlq_depth"].as_u64()),
        (Some(2), Some(0))
    );
    // Purge: dead-letter again, then purge.
    p.publish(b"doomed").unwrap();
    {
        let mut c = q
            .consumer("work", shmq::ConsumerOptions::new().ack(shmq::Ack::Manual))
            .unwrap();
        c.receive().unwrap().nack(shmq::Nack::DeadLetter).unwrap();
    }
    let out = shmq(d, &["dlq", "q", "purge"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("purged 1"));
    assert!(q.dlq().list().unwrap().is_empty());
}
