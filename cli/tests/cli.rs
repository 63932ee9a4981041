//! The `shmq` command as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::{SHMQ, finish, ok, shmq};

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
        prom.contains("shmq_group_lag{group=\"g\",queue=\"s\"} 5"),
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
    // The bench's scratch queues go under SHMQ_DIR. Its standard output,
    // with `env` set; it must succeed.
    let run = |args: &[&str], env: &[(&str, &str)]| -> Vec<u8> {
        let out = Command::new(SHMQ)
            .env("SHMQ_DIR", dir.path())
            .envs(env.iter().copied())
            .arg("bench")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let bench = |args: &[&str]| -> serde_json::Value {
        serde_json::from_slice(&run(&[args, &["--json"]].concat(), &[])).unwrap()
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
    // A message of many slots, against the bare hand-off of its bytes;
    // and a loan of it (neither written nor read).
    let large = [
        "latency",
        "--size",
        "100000",
        "--slot-size",
        "1000",
        "--count",
        "100",
        "--rounds",
        "1",
    ];
    let v = bench(&large);
    assert_eq!(v["baseline"], "bare hand-off of the bytes", "{v}");
    assert_eq!(
        (v["slot_size"].as_u64(), v["read"].as_bool()),
        (Some(1000), Some(true))
    );
    let v = bench(&[&large[..], &["--loan"]].concat());
    assert_eq!(v["baseline"], "cache-line ping-pong", "{v}");
    assert_eq!(
        (v["loan"].as_bool(), v["read"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(v["p50_ns"].as_u64().is_some_and(|x| x > 0), "{v}");
    // The readiness fd's wait, from asleep (a gap before each ping).
    let v = bench(&[
        "latency", "--wait", "async", "--gap-us", "100", "--count", "300", "--rounds", "1",
    ]);
    assert_eq!(v["wait"], "async", "{v}");
    assert!(v["p50_ns"].as_u64().is_some_and(|x| x > 0), "{v}");
    let v = bench(&["idle", "--wait", "async", "--seconds", "0.2"]);
    assert_eq!(v["consumers"][0]["wait"], "async", "{v}");
    let v = bench(&["throughput", "--count", "20000", "--rounds", "1"]);
    for k in ["msgs_per_s", "mb_per_s", "baseline_msgs_per_s"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
    // Which cache hints the producers took: 64 B payloads are two-line
    // slots, demoted where the CPU has CLDEMOTE.
    let h = &v["cache_hints"];
    assert_eq!(
        (h["lines_per_slot"].as_u64(), h["prefetch_slots"].as_u64()),
        (Some(2), Some(4)),
        "{v}"
    );
    assert_eq!(h["demote"], h["cpu_has_cldemote"], "{v}");
    assert!(
        h["text"].as_str().is_some_and(|t| t.starts_with("demote ")),
        "{v}"
    );
    let v = bench(&[
        "latency", "--size", "1024", "--count", "2000", "--rounds", "1",
    ]);
    let h = &v["cache_hints"];
    assert_eq!(
        (h["lines_per_slot"].as_u64(), h["demote"].as_bool()),
        (Some(17), Some(false)),
        "{v}"
    );
    // SHMQ_DEMOTE overrides the choice, and the text output says so.
    let out = run(
        &[
            "throughput",
            "--size",
            "1024",
            "--count",
            "20000",
            "--rounds",
            "1",
        ],
        &[("SHMQ_DEMOTE", "on")],
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("\ncache hints: demote on ("), "{text}");
    assert!(
        text.contains("17-line slots); prefetch 1 slot(s) ahead"),
        "{text}"
    );
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

/// `shmq publish` with `input` on stdin.
fn publish(dir: &std::path::Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(SHMQ)
        .arg("--dir")
        .arg(dir)
        .arg("publish")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    finish(child, Duration::from_secs(30))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_publish_that_stops_says_how_many_went_in_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Reject, 8 slots, one group: 8 of 10 go in, and it says so.
    ok(d, &["create", "rj", "--slots", "8", "--overflow", "reject"]);
    ok(d, &["group-create", "rj", "g"]);
    let out = publish(d, &["rj"], b"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("published 8 messages to rj; message 9 and the rest were not"),
        "{e}"
    );
    assert!(!e.contains("nothing was published"), "{e}");
    // No group: a publisher held by the full ring is told why.
    ok(d, &["create", "ng", "--slots", "16"]);
    let lines: Vec<u8> = (1..=20)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let out = publish(d, &["ng", "--timeout", "1.5"], &lines);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("waiting for room in ng: the queue has no consumer group"),
        "{e}"
    );
    assert!(
        e.contains("published 16 messages to ng, then timed out: message 17"),
        "{e}"
    );
    let st = ok(d, &["stat", "ng"]);
    assert!(
        st.contains("the ring is full: the queue has no consumer group"),
        "{st}"
    );
    // A group that holds it is named.
    ok(d, &["create", "held", "--slots", "16"]);
    ok(d, &["group-create", "held", "slow"]);
    let out = publish(d, &["held", "--timeout", "0.5"], &lines);
    assert!(stderr(&out).contains("group \"slow\" holds the ring: it is 16 messages behind"));
}

#[test]
fn consume_never_makes_a_group_by_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "q", "--slots", "16"]);
    ok(d, &["group-create", "q", "billing"]);
    let out = shmq(d, &["consume", "q", "--group", "biling", "--count", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("queue q has no group \"biling\" (its groups: billing)"),
        "{e}"
    );
    let groups = ok(d, &["groups", "q"]);
    assert!(
        !groups.contains("biling"),
        "a group was made anyway: {groups}"
    );
    // Asked for: made, and said so.
    let out = shmq(
        d,
        &[
            "consume", "q", "--group", "audit", "--create", "--count", "0",
        ],
    );
    assert!(out.status.success() && stderr(&out).contains("creating group \"audit\""));
    assert!(ok(d, &["groups", "q"]).contains("audit"));
}

#[test]
fn consume_json_shows_metadata_and_keeps_any_payload_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "create",
            "q",
            "--slots",
            "16",
            "--dedup-window",
            "64",
            "--dedup-ttl",
            "60",
        ],
    );
    ok(d, &["group-create", "q", "g"]);
    let out = publish(
        d,
        &[
            "q",
            "--correlation-id",
            "42",
            "--type-id",
            "7",
            "--key",
            "run1-",
        ],
        b"hello\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The same input with the same key is not enqueued again.
    assert!(
        publish(d, &["q", "--key", "run1-"], b"hello\n")
            .status
            .success()
    );
    assert!(publish(d, &["q"], b"\xff\x00\n").status.success());
    let got = ok(
        d,
        &["consume", "q", "--group", "g", "--json", "--timeout", "0.3"],
    );
    let lines: Vec<serde_json::Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{got}");
    assert_eq!(
        (
            &lines[0]["seq"],
            &lines[0]["payload"],
            &lines[0]["correlation_id"],
            &lines[0]["type_id"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!("hello"),
            &serde_json::json!(42),
            &serde_json::json!(7)
        )
    );
    assert_eq!(lines[0]["attempt"], 1);
    assert_eq!(lines[1]["payload_base64"], "/wA=");
}

#[test]
fn negative_numbers_get_a_plain_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, want) in [
        (
            &["create", "q", "--lease", "-1"][..],
            "--lease must be ≥ 0 seconds, got -1",
        ),
        (&["create", "q", "--slots", "-1"][..], "must be ≥ 0, got -1"),
        (
            &["create", "q", "--dedup-ttl", "-3"][..],
            "--dedup-ttl must be ≥ 0 seconds",
        ),
    ] {
        let out = shmq(d, args);
        assert!(!out.status.success());
        let e = stderr(&out);
        assert!(e.contains(want) && !e.contains("-- -1"), "{args:?}: {e}");
    }
}

#[test]
fn create_stat_seek_and_dlq_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = shmq(d, &["create", "q", "--slots", "16", "--slot-size", "1024"]);
    let e = stderr(&out);
    let size = std::fs::metadata(d.join("q.shmq")).unwrap().len();
    assert!(e.contains(&format!("the file takes {size} bytes")), "{e}");
    assert!(ok(d, &["stat", "q"]).contains(&format!("{size} bytes")));
    // A seek before what the ring retains is clamped, and says so.
    ok(d, &["group-create", "q", "g", "--start", "latest"]);
    assert!(publish(d, &["q"], b"a\nb\n").status.success());
    let out = shmq(d, &["seek", "q", "--group", "g", "--seq", "0"]);
    assert!(
        !stderr(&out).contains("note:"),
        "seq 0 is retained: {}",
        stderr(&out)
    );
    ok(d, &["consume", "q", "--group", "g", "--count", "2"]);
    ok(d, &["group-create", "q", "late", "--start", "latest"]);
    ok(d, &["group-delete", "q", "g"]);
    // Another producer needing room moves the window on.
    let lines: Vec<u8> = (1..=40)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let _ = publish(d, &["q", "--timeout", "0.2"], &lines);
    ok(d, &["consume", "q", "--group", "late", "--timeout", "0.2"]);
    let _ = publish(d, &["q", "--timeout", "0.2"], &lines);
    let out = shmq(d, &["seek", "q", "--group", "late", "--seq", "0"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("note: seq 0 is no longer retained"),
        "{}",
        stderr(&out)
    );
}

/// `--capacity` sizes the ring in bytes, `--max-message-size` and it take
/// sizes like 64K; a file is one message of any size up to the maximum.
#[test]
fn create_by_capacity_takes_sizes_and_a_file_of_any_length() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "create",
            "q",
            "--capacity",
            "256K",
            "--slot-size",
            "32",
            "--max-message-size",
            "64KiB",
        ],
    );
    let st: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "q", "--json"])).unwrap();
    assert_eq!(st["slots"], 4096);
    assert_eq!(st["capacity"], 256 << 10);
    assert_eq!(st["max_message_size"], 64 << 10);
    assert!(ok(d, &["stat", "q"]).contains("in flight of 262144 bytes, 256.0 KiB"));
    ok(d, &["group-create", "q", "g", "--start", "earliest"]);
    // A window of one for ack=manual groups: one message out at a time.
    ok(d, &["create", "w", "--slots", "64", "--max-in-flight", "1"]);
    ok(d, &["group-create", "w", "g", "--start", "earliest"]);
    for m in ["a", "b"] {
        let f = d.join(format!("{m}.txt"));
        std::fs::write(&f, m).unwrap();
        ok(d, &["publish", "w", "--file", f.to_str().unwrap()]);
    }
    let got = ok(
        d,
        &[
            "consume",
            "w",
            "--group",
            "g",
            "--ack",
            "manual",
            "--count",
            "2",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(got.lines().collect::<Vec<_>>(), ["a", "b"]);
    let frame: Vec<u8> = (0..60_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(d.join("frame.bin"), &frame).unwrap();
    let file = d.join("frame.bin");
    ok(d, &["publish", "q", "--file", file.to_str().unwrap()]);
    let st: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "q", "--json"])).unwrap();
    assert!(st["depth_bytes"].as_u64().unwrap() >= 60_000, "{st}");
    for (args, want) in [
        (
            &["create", "x", "--capacity", "1M", "--slots", "64"][..],
            "give one of them",
        ),
        (&["create", "x", "--capacity", "64Q"][..], "is not a size"),
        (
            &["create", "x", "--slots", "64", "--max-in-flight", "65"][..],
            "max_in_flight must be from 1 to the ring's 64 slots",
        ),
        (&["create", "x", "--capacity", "-1"][..], "must be ≥ 0"),
    ] {
        let out = shmq(d, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn another_users_queue_is_refused_unless_trusted() {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        eprintln!("skipped: needs root to give a file to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "shared", "--slots", "16", "--mode", "660"]);
    std::os::unix::fs::chown(d.join("shared.shmq"), Some(4242), Some(4343)).unwrap();
    let out = shmq(d, &["stat", "shared"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("owned by user 4242"),
        "{}",
        stderr(&out)
    );
    ok(d, &["--trust-owner", "4242", "stat", "shared"]);
    ok(d, &["stat", "shared", "--trust-group", "4343"]);
}

#[test]
fn ls_lists_queues_and_says_why_a_file_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "a", "--slots", "16"]);
    ok(d, &["create", "b", "--slots", "32"]);
    ok(d, &["group-create", "b", "slow"]);
    assert!(publish(d, &["b"], b"1\n2\n3\n").status.success());
    std::fs::write(d.join("junk.shmq"), b"not a queue").unwrap();
    std::fs::write(d.join("other.txt"), b"ignored").unwrap();
    let out = ok(d, &["ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("queue") && lines[0].contains("worst lag"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("a ") && lines[2].starts_with("b "),
        "{out}"
    );
    assert!(lines[2].contains("3 (slow)"), "{out}");
    assert!(
        out.contains("not usable: junk:") && out.contains("corrupt queue file"),
        "{out}"
    );
    assert!(!out.contains("other"), "{out}");
    let json: Vec<serde_json::Value> = ok(d, &["ls", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 3);
    assert_eq!(
        (&json[1]["name"], &json[1]["worst_lag"]),
        (&serde_json::json!("b"), &serde_json::json!(3))
    );
    assert!(json[2]["error"].as_str().unwrap().contains("corrupt"));
}

/// Every line of a table has its columns at the header's positions
/// (right-aligned columns end where their header ends).
fn aligned(table: &str) {
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    let ends: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| c != ' ' && header[i + 1..].starts_with(' ') || i + 1 == header.len())
        .map(|(i, _)| i)
        .collect();
    for line in &lines[1..] {
        for &e in &ends[1..] {
            let c = line.as_bytes().get(e).copied();
            assert!(
                c.is_some_and(|c| c != b' '),
                "column ending at {e} is out of line:\n{table}"
            );
        }
    }
}

#[test]
fn stat_and_groups_tables_stay_aligned_with_a_long_group_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "g".repeat(48);
    ok(d, &["create", "q", "--slots", "16"]);
    ok(d, &["group-create", "q", &long]);
    ok(d, &["group-create", "q", "b"]);
    assert!(publish(d, &["q"], b"1\n2\n").status.success());
    let groups = ok(d, &["groups", "q"]);
    aligned(&groups);
    let stat = ok(d, &["stat", "q"]);
    let table = &stat[stat.find("\ngroup").unwrap() + 1..];
    aligned(table);
    assert!(
        table.lines().next().unwrap().ends_with("consumers"),
        "every column has a header: {table}"
    );
    // The Prometheus text has what stats() knows, fractional seconds included.
    let prom = ok(d, &["stat", "q", "--prometheus"]);
    assert!(
        prom.contains("shmq_deduplicated_total{queue=\"q\"} 0"),
        "{prom}"
    );
    let age = prom
        .lines()
        .find(|l| l.starts_with("shmq_group_oldest_unacked_age_seconds{group=\"b\",queue=\"q\"}"))
        .unwrap();
    assert!(age.split(' ').nth(1).unwrap().contains('.'), "{age}");
    let json = ok(d, &["stat", "q", "--json"]);
    assert!(json.contains("\"deduplicated\":0"), "{json}");
    // With a journal, its range and accounting.
    let spill = d.join("spill");
    let spill = spill.to_str().unwrap();
    ok(
        d,
        &[
            "create",
            "j",
            "--slots",
            "16",
            "--journal-age",
            "60",
            "--spill-dir",
            spill,
            "--spill-segment-size",
            "65536",
            "--journal-bytes",
            "1048576",
        ],
    );
    ok(d, &["group-create", "j", "g"]);
    assert!(publish(d, &["j"], b"1\n2\n3\n").status.success());
    let prom = ok(d, &["stat", "j", "--prometheus"]);
    for m in [
        "shmq_journal_first_seq{queue=\"j\"} 0",
        "shmq_journal_replaying_groups{queue=\"j\"} 0",
        "shmq_journaled_total",
    ] {
        assert!(prom.contains(m), "{m}: {prom}");
    }
}

#[test]
fn peek_shows_retained_messages_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spill = d.join("spill");
    let spill = spill.to_str().unwrap();
    ok(
        d,
        &[
            "create",
            "q",
            "--slots",
            "16",
            "--journal-age",
            "60",
            "--spill-dir",
            spill,
            "--spill-segment-size",
            "65536",
            "--journal-bytes",
            "1048576",
        ],
    );
    ok(d, &["group-create", "q", "g"]);
    let lines: Vec<u8> = (0..16)
        .flat_map(|i| format!("m{i}\n").into_bytes())
        .collect();
    assert!(publish(d, &["q"], &lines).status.success());
    assert_eq!(
        ok(d, &["consume", "q", "--group", "g", "--count", "16"])
            .lines()
            .count(),
        16
    );
    let more: Vec<u8> = (16..20)
        .flat_map(|i| format!("m{i}\n").into_bytes())
        .collect();
    assert!(publish(d, &["q"], &more).status.success());
    // From the journal (older than the ring holds), then the ring.
    let out = ok(
        d,
        &[
            "peek",
            "q",
            "--from-seq",
            "1",
            "--count",
            "3",
            "--show-headers",
        ],
    );
    let got: Vec<&str> = out.lines().collect();
    assert!(
        got[0].starts_with("# seq 1 ") && got[0].ends_with("(journal)"),
        "{out}"
    );
    assert_eq!((got[1], got[3], got[5]), ("m1", "m2", "m3"), "{out}");
    let json: Vec<serde_json::Value> = ok(d, &["peek", "q", "--last", "2", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (&json[0]["seq"], &json[1]["payload"]),
        (&serde_json::json!(18), &serde_json::json!("m19"))
    );
    assert_eq!(json[0]["from_journal"], false);
    // Nobody's cursor moved: the group still gets 16.. next.
    let groups = ok(d, &["groups", "q"]);
    assert!(
        groups.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("16"),
        "{groups}"
    );
    assert_eq!(
        ok(d, &["consume", "q", "--group", "g", "--count", "1"]),
        "m16\n"
    );
    let out = shmq(d, &["peek", "q", "--from-seq", "500"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no retained message of q from seq 500"));
}

#[test]
fn ordering_keys_and_headers_go_in_from_lines_and_come_out_of_consume_peek_and_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "q", "--slots", "16", "--slot-size", "256"]);
    ok(d, &["group-create", "q", "g"]);
    ok(d, &["group-create", "q", "text"]);
    ok(d, &["group-create", "q", "dl"]);
    let out = publish(
        d,
        &[
            "q",
            "--key-separator",
            "::",
            "--header",
            "trace=00-abc",
            "--header",
            "ct=a=b",
            "--header",
            "trace=second",
        ],
        b"customer-1::paid::twice\nplain\n::empty key\n\xff\xfe::binary key\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = ok(
        d,
        &["consume", "q", "--group", "g", "--json", "--timeout", "0.3"],
    );
    let lines: Vec<serde_json::Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{got}");
    let headers = serde_json::json!([
        {"name": "trace", "value": "00-abc"},
        {"name": "ct", "value": "a=b"},
        {"name": "trace", "value": "second"},
    ]);
    assert_eq!(
        (&lines[0]["ordering_key"], &lines[0]["payload"]),
        (
            &serde_json::json!("customer-1"),
            &serde_json::json!("paid::twice")
        )
    );
    assert_eq!(lines[0]["headers"], headers);
    assert_eq!(
        (&lines[1]["ordering_key"], &lines[1]["payload"]),
        (&serde_json::Value::Null, &serde_json::json!("plain"))
    );
    assert_eq!(
        (&lines[2]["ordering_key"], &lines[2]["payload"]),
        (&serde_json::Value::Null, &serde_json::json!("empty key"))
    );
    assert_eq!(lines[3]["ordering_key_base64"], "//4=");
    assert!(lines[3].get("ordering_key").is_none());
    assert_eq!(lines[3]["headers"], headers);

    // --show-headers: a line of metadata before each payload.
    let text = ok(
        d,
        &[
            "consume",
            "q",
            "--group",
            "text",
            "--show-headers",
            "--count",
            "2",
            "--timeout",
            "5",
        ],
    );
    let want = "len 11 key customer-1 header trace=00-abc header ct=a=b header trace=second\npaid::twice\n";
    assert!(text.contains(want), "{text}");
    assert!(
        text.ends_with("len 5 header trace=00-abc header ct=a=b header trace=second\nplain\n"),
        "{text}"
    );
    let err = shmq(
        d,
        &[
            "consume",
            "q",
            "--group",
            "text",
            "--json",
            "--show-headers",
        ],
    );
    assert!(!err.status.success());

    // peek shows them, as text and as JSON.
    let peek = ok(d, &["peek", "q", "--count", "1", "--show-headers"]);
    assert!(
        peek.contains(" key customer-1 header trace=00-abc"),
        "{peek}"
    );
    let peek: serde_json::Value =
        serde_json::from_str(ok(d, &["peek", "q", "--count", "1", "--json"]).trim()).unwrap();
    assert_eq!(
        (&peek["ordering_key"], &peek["headers"]),
        (&serde_json::json!("customer-1"), &headers)
    );

    // dlq list: dead-letter the first (through the library), then list.
    let q = shmq::Queue::open_with("q", &shmq::Options::new().dir(d)).unwrap();
    let mut c = q
        .consumer("dl", shmq::ConsumerOptions::new().ack(shmq::Ack::Manual))
        .unwrap();
    c.receive_timeout(Duration::from_secs(5))
        .unwrap()
        .nack(shmq::Nack::DeadLetter)
        .unwrap();
    drop(c);
    let list = ok(d, &["dlq", "q", "list"]);
    assert!(
        list.contains("paid::twice key customer-1 header trace=00-abc"),
        "{list}"
    );
    let dl: serde_json::Value =
        serde_json::from_str(ok(d, &["dlq", "q", "list", "--json"]).trim()).unwrap();
    assert_eq!(
        (&dl["ordering_key"], &dl["headers"]),
        (&serde_json::json!("customer-1"), &headers)
    );

    // What the queue refuses is said, and nothing of it goes in.
    let many: Vec<String> = (0..17).map(|i| format!("--header=h{i}=v")).collect();
    let args: Vec<&str> = std::iter::once("q")
        .chain(many.iter().map(String::as_str))
        .collect();
    let out = publish(d, &args, b"x\n");
    assert!(
        !out.status.success() && stderr(&out).contains("16"),
        "{}",
        stderr(&out)
    );
    let long = format!("{}::x\n", "k".repeat(1025));
    let out = publish(d, &["q", "--key-separator", "::"], long.as_bytes());
    assert!(
        !out.status.success() && stderr(&out).contains("1024"),
        "{}",
        stderr(&out)
    );
    // Refused by the argument parser, before stdin is read.
    for bad in [
        &["publish", "q", "--header", "novalue"][..],
        &["publish", "q", "--header", "=v"],
        &["publish", "q", "--key-separator", ""],
        &["publish", "q", "--key-separator", ":", "--count", "1"],
    ] {
        let out = shmq(d, bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    assert_eq!(q.stats().published, 4);
}

#[test]
fn dlq_redrive_says_which_keyed_letters_stayed_and_what_holds_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "q", "--slots", "16"]);
    ok(d, &["group-create", "q", "work"]);
    let q = shmq::Queue::open_with("q", &shmq::Options::new().dir(d)).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(b"keyed", &shmq::Meta::new().ordering_key("order-7"))
        .unwrap();
    p.publish(b"plain").unwrap();
    {
        let mut c = q
            .consumer("work", shmq::ConsumerOptions::new().ack(shmq::Ack::Manual))
            .unwrap();
        for _ in 0..2 {
            c.receive().unwrap().nack(shmq::Nack::DeadLetter).unwrap();
        }
    }
    // Group "slow" holds the ring full: the keyed letter has no room.
    q.create_group("slow", shmq::Start::Latest).unwrap();
    for _ in 0..16 {
        p.publish(b"x").unwrap();
    }
    {
        let mut c = q
            .consumer("work", shmq::ConsumerOptions::new().ack(shmq::Ack::Manual))
            .unwrap();
        for _ in 0..16 {
            c.receive().unwrap().ack().unwrap();
        }
    }
    let out = shmq(d, &["dlq", "q", "redrive", "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("redrove 1 dead letter(s) to their groups; 1 keyed one(s) stayed"),
        "{e}"
    );
    assert!(
        e.contains("group \"slow\" holds the ring: it is 16 messages behind"),
        "{e}"
    );
    // Its columns stay in line with a redriven letter among them.
    let list = ok(d, &["dlq", "q", "list"]);
    assert!(list.contains("nacked (redriven)"), "{list}");
    let at = list.lines().next().unwrap().find("payload").unwrap();
    for line in list.lines().skip(1) {
        assert!(
            line[..at].ends_with("  ") && !line[at..].starts_with(' '),
            "payload column out of line:\n{list}"
        );
    }
    // Without --timeout it waits (saying why) until the ring has room.
    let child = Command::new(SHMQ)
        .arg("--dir")
        .arg(d)
        .args(["dlq", "q", "redrive"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    q.delete_group("slow").unwrap();
    let out = finish(child, Duration::from_secs(30));
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert!(
        e.contains("waiting for room in q for keyed dead letters: group \"slow\" holds the ring"),
        "{e}"
    );
    assert!(e.contains("redrove 1 dead letter(s)"), "{e}");
    assert_eq!(q.dlq().len(), 0);
}

#[test]
fn a_publisher_held_by_a_full_spill_is_told_the_spill_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spill = d.join("spill");
    ok(
        d,
        &[
            "create",
            "sp",
            "--slots",
            "16",
            "--overflow",
            "spill",
            "--spill-dir",
            spill.to_str().unwrap(),
            "--spill-segment-size",
            "65536",
            "--spill-max-bytes",
            "131072",
        ],
    );
    ok(d, &["group-create", "sp", "g"]);
    let out = Command::new(SHMQ)
        .arg("--dir")
        .arg(d)
        .args([
            "publish",
            "sp",
            "--count",
            "1000",
            "--size",
            "512",
            "--timeout",
            "1.5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("waiting for room in sp: the spill is full"),
        "{e}"
    );
    assert!(e.contains("spill_max_bytes = 131072"), "{e}");
    assert!(e.contains("then timed out"), "{e}");
    let st = ok(d, &["stat", "sp"]);
    assert!(st.contains("the spill is full"), "{st}");
    let json: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "sp", "--json"])).unwrap();
    assert!(
        json["why_full"]
            .as_str()
            .unwrap()
            .contains("spill_max_bytes"),
        "{json}"
    );
}

#[test]
fn keyed_lines_already_published_are_said_apart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "dd", "--slots", "16"]);
    ok(d, &["group-create", "dd", "g"]);
    let out = publish(d, &["dd", "--key", "job-"], b"a\nb\nc\n");
    assert_eq!(stderr(&out), "published 3 messages to dd\n");
    let out = publish(d, &["dd", "--key", "job-"], b"a\nb\nc\nd\n");
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        "published 1 message to dd (3 already there)\n"
    );
}

#[test]
fn rm_refuses_a_queue_with_live_consumers_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "q", "--slots", "16"]);
    let consumer = Command::new(SHMQ)
        .arg("--dir")
        .arg(d)
        .args([
            "consume",
            "q",
            "--group",
            "g",
            "--create",
            "--timeout",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until it is attached.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let attached = || {
        let stat: serde_json::Value =
            serde_json::from_str(&ok(d, &["stat", "q", "--json"])).unwrap();
        stat["groups"][0]["consumer_attached"] == true
    };
    while !attached() {
        assert!(
            std::time::Instant::now() < deadline,
            "consumer never attached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = shmq(d, &["rm", "q"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!(
            "has 1 live consumer(s): pid {} (group \"g\")",
            consumer.id()
        )),
        "{e}"
    );
    assert!(e.contains("shmq rm --force"), "{e}");
    ok(d, &["stat", "q"]); // still there
    let out = shmq(d, &["rm", "q", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!shmq(d, &["stat", "q"]).status.success());
    let mut consumer = consumer;
    consumer.kill().unwrap();
    consumer.wait().unwrap();
}

#[test]
fn seek_past_the_end_says_where_it_landed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["create", "q", "--slots", "16"]);
    ok(d, &["group-create", "q", "g"]);
    ok(d, &["publish", "q", "--count", "3"]);
    let out = shmq(d, &["seek", "q", "--group", "g", "--seq", "100000"]);
    assert!(out.status.success());
    assert_eq!(
        stderr(&out),
        "group g will receive seq 3 next\nnote: seq 100000 is not published yet (the next is \
         3): the group receives from the next message published\n"
    );
}

#[test]
fn create_takes_ordering_lanes_and_consume_takes_wait() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = shmq(d, &["create", "q", "--ordering-lanes", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ordering_lanes must be a power of two"),
        "{}",
        stderr(&out)
    );
    ok(d, &["create", "q", "--ordering-lanes", "2"]);
    ok(d, &["group-create", "q", "g"]);
    ok(d, &["publish", "q", "--count", "2"]);
    let out = shmq(
        d,
        &[
            "consume",
            "q",
            "--group",
            "g",
            "--wait",
            "spin-yield",
            "--count",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn ttl_and_message_ttl_expire_messages_and_stat_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &["create", "t", "--slots", "64", "--on-expiry", "discard"],
    );
    ok(d, &["group-create", "t", "g", "--start", "earliest"]);
    let stale = d.join("stale.txt");
    std::fs::write(&stale, "stale").unwrap();
    ok(
        d,
        &[
            "publish",
            "t",
            "--ttl",
            "1ms",
            "--file",
            stale.to_str().unwrap(),
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let fresh = d.join("fresh.txt");
    std::fs::write(&fresh, "fresh").unwrap();
    ok(
        d,
        &[
            "publish",
            "t",
            "--ttl",
            "1h",
            "--file",
            fresh.to_str().unwrap(),
        ],
    );
    let got = ok(
        d,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--count",
            "1",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(got, "fresh\n");
    // peek shows a message's own expiry.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let peeked: serde_json::Value =
        serde_json::from_str(ok(d, &["peek", "t", "--last", "1", "--json"]).trim()).unwrap();
    let at = peeked["expires_ns"].as_u64().unwrap();
    assert!(
        at > before + 3_500_000_000_000 && at < before + 3_700_000_000_000,
        "{peeked}"
    );
    assert!(
        ok(d, &["peek", "t", "--last", "1", "--show-headers"]).contains(" expires 20"),
        "a time"
    );
    let st: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "t", "--json"])).unwrap();
    assert_eq!(st["messages_expired"], 1, "{st}");
    assert_eq!(st["groups"][0]["messages_expired"], 1, "{st}");
    assert_eq!(st["dlq_depth"], 0, "{st}");
    // The queue's own ttl, dead-lettering with the reason.
    ok(d, &["create", "u", "--slots", "64", "--message-ttl", "1ms"]);
    ok(d, &["group-create", "u", "g", "--start", "earliest"]);
    ok(d, &["publish", "u", "--file", stale.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = shmq(
        d,
        &[
            "consume",
            "u",
            "--group",
            "g",
            "--count",
            "1",
            "--timeout",
            "0.05",
        ],
    );
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let listed = ok(d, &["dlq", "u", "list", "--json"]);
    let dead: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(dead["reason"], "expired", "{dead}");
    for (args, want) in [
        (&["publish", "t", "--ttl", "5x"][..], "not a length of time"),
        (
            &["create", "x", "--on-expiry", "drop"][..],
            "on_expiry must be dead-letter or discard",
        ),
        (
            &["create", "x", "--message-ttl", "0s"][..],
            "message_ttl must be from 1 ms",
        ),
    ] {
        let out = shmq(d, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn delay_deliver_at_and_delivery_delay_schedule_messages_that_scheduled_lists_and_cancels() {
    use std::time::{Instant, SystemTime, UNIX_EPOCH};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The schedule lives in the queue's store directory: here, not in
    // /var/tmp.
    let store = d.join("store");
    let store = store.to_str().unwrap();
    ok(d, &["create", "t", "--slots", "64", "--spill-dir", store]);
    ok(d, &["group-create", "t", "g", "--start", "earliest"]);
    let file = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (later, far, remind, now) = (
        file("later.txt", "later"),
        file("far.txt", "far"),
        file("remind.txt", "remind"),
        file("now.txt", "now"),
    );
    let t0 = Instant::now();
    let out = shmq(d, &["publish", "t", "--delay", "1s", "--file", &later]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is scheduled message 1, due "),
        "{}",
        stderr(&out)
    );
    // Not before its time.
    let early = shmq(
        d,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--count",
            "1",
            "--timeout",
            "0.05",
        ],
    );
    if t0.elapsed() < Duration::from_millis(800) {
        assert!(early.stdout.is_empty(), "{:?}", early.stdout);
    }
    let in_an_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    ok(
        d,
        &[
            "publish",
            "t",
            "--deliver-at",
            &format!("@{in_an_hour}"),
            "--header",
            "h=v",
            "--file",
            &far,
        ],
    );
    // New Year's Day two years on, an hour east of UTC (within MAX_DELAY).
    let year = 1970
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952
        + 2;
    let new_year = format!("{year}-01-01T00:00:00+01:00");
    ok(
        d,
        &[
            "publish",
            "t",
            "--deliver-at",
            &new_year,
            "--key",
            "remind",
            "--file",
            &remind,
        ],
    );
    ok(d, &["publish", "t", "--file", &now]);
    let st: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "t", "--json"])).unwrap();
    assert_eq!(st["scheduled"], 3, "{st}");
    assert_eq!(st["scheduled_cancelled"], 0, "{st}");
    assert_eq!(st["scheduled_lost"], 0, "{st}");
    assert!(st["next_due_ns"].as_u64().is_some(), "{st}");
    let prom = ok(d, &["stat", "t", "--prometheus"]);
    assert!(prom.contains("shmq_scheduled{queue=\"t\"} 3"), "{prom}");
    assert!(
        prom.contains("shmq_scheduled_next_due_seconds{queue=\"t\"} "),
        "{prom}"
    );

    // The listing, earliest due first.
    let listed: Vec<serde_json::Value> = ok(d, &["scheduled", "t", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let payloads: Vec<&str> = listed
        .iter()
        .map(|s| s["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["later", "far", "remind"]);
    assert_eq!(
        listed[1]["due_ns"],
        in_an_hour * 1_000_000_000,
        "{}",
        listed[1]
    );
    assert_eq!(listed[1]["headers"][0]["name"], "h", "{}", listed[1]);
    assert_eq!(
        listed[2]["due"],
        format!("{}-12-31T23:00:00.000Z", year - 1).as_str(),
        "{}",
        listed[2]
    );
    assert_eq!(listed[1]["keyed"], false, "{}", listed[1]);
    assert_eq!(listed[2]["keyed"], true, "{}", listed[2]);
    let far_id = listed[1]["id"].as_u64().unwrap();
    let table = ok(d, &["scheduled", "t", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("id") && lines[0].contains("due") && lines[0].ends_with("payload"));
    assert!(
        lines[2].contains("in 59m") && lines[2].contains("far header h=v"),
        "{table}"
    );
    assert!(
        lines[3].contains(&format!("{}-12-31T23:00:00Z", year - 1)) && lines[3].contains("yes"),
        "{table}"
    );
    let first = shmq(d, &["scheduled", "t", "list", "--limit", "1"]);
    assert_eq!(String::from_utf8_lossy(&first.stdout).lines().count(), 2);
    assert!(
        stderr(&first).contains("the first 1 of 3"),
        "{}",
        stderr(&first)
    );

    // Due in a second, then delivered (after "now", unless the machine
    // took a second to get here).
    let got = ok(
        d,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--count",
            "2",
            "--timeout",
            "5",
        ],
    );
    let mut got: Vec<&str> = got.lines().collect();
    got.sort_unstable();
    assert_eq!(got, ["later", "now"]);
    assert!(t0.elapsed() >= Duration::from_secs(1));

    // Cancelled by id and by key (a --file publish's key is KEY1), once.
    ok(d, &["scheduled", "t", "cancel", &far_id.to_string()]);
    let again = shmq(d, &["scheduled", "t", "cancel", &far_id.to_string()]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains(&format!("no scheduled message {far_id} in t")),
        "{}",
        stderr(&again)
    );
    ok(d, &["scheduled", "t", "cancel", "--key", "remind"]);
    let st: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "t", "--json"])).unwrap();
    assert_eq!(st["scheduled"], 0, "{st}");
    assert_eq!(st["scheduled_cancelled"], 2, "{st}");
    assert!(st["next_due_ns"].is_null(), "{st}");
    assert!(ok(d, &["stat", "t"]).contains("scheduled  0, 2 cancelled"));
    let prom = ok(d, &["stat", "t", "--prometheus"]);
    assert!(
        prom.contains("shmq_scheduled_cancelled_total{queue=\"t\"} 2"),
        "{prom}"
    );
    assert!(!prom.contains("shmq_scheduled_next_due_seconds{"), "{prom}");
    let empty = shmq(d, &["scheduled", "t", "list"]);
    assert!(empty.stdout.is_empty() && stderr(&empty).contains("nothing scheduled in t"));

    // The queue's own delay.
    let store_u = d.join("store-u");
    ok(
        d,
        &[
            "create",
            "u",
            "--slots",
            "64",
            "--delivery-delay",
            "200ms",
            "--spill-dir",
            store_u.to_str().unwrap(),
        ],
    );
    ok(d, &["group-create", "u", "g", "--start", "earliest"]);
    ok(d, &["publish", "u", "--file", &now]);
    let st: serde_json::Value = serde_json::from_str(&ok(d, &["stat", "u", "--json"])).unwrap();
    assert_eq!(st["scheduled"], 1, "{st}");
    let got = ok(
        d,
        &[
            "consume",
            "u",
            "--group",
            "g",
            "--count",
            "1",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(got, "now\n");
    ok(d, &["rm", "t"]);
    ok(d, &["rm", "u"]);
    assert!(!d.join("store").exists() && !store_u.exists());

    for (args, want) in [
        (
            &["publish", "u", "--delay", "5x"][..],
            "not a length of time",
        ),
        (
            &["publish", "u", "--deliver-at", "tomorrow"][..],
            "is not a time",
        ),
        (
            &["publish", "u", "--delay", "1s", "--deliver-at", "@0"][..],
            "cannot be used with",
        ),
        (
            &["create", "x", "--delivery-delay", "0s"][..],
            "delivery_delay must be more than 0",
        ),
        (&["scheduled", "u", "cancel"][..], "required"),
    ] {
        let out = shmq(d, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}
