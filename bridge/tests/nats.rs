//! `shmq-bridge to-nats` / `from-nats` against a real NATS JetStream
//! cluster (`scripts/nats-local.sh`, started once per CI job: `.ci/run
//! bridge` exports `SHMQ_NATS_SERVERS`, and `SHMQ_NATS_REPLICAS=3` on its
//! 3-node cluster). Without it the tests say they were skipped, unless
//! `SHMQ_REQUIRE_NATS` is set: then they fail. The independent client is
//! the official `nats` CLI (natscli, through `scripts/nats-local.sh cli`).

use std::path::Path;
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Queue, Start};

mod common;
use common::*;

const NATS: Cluster = Cluster {
    engine: "NATS",
    address_var: "SHMQ_NATS_SERVERS",
    require_var: "SHMQ_REQUIRE_NATS",
    replicas_var: "SHMQ_NATS_REPLICAS",
    script: "nats-local.sh",
};

/// natscli on the cluster, its stdout.
fn cli(args: &[&str]) -> String {
    NATS.script(&[&["cli"], args].concat())
}

/// A stream of its own (a name no other test uses, without the
/// characters NATS refuses in names) and its subject on the cluster at
/// `servers`, and the bridges that move it for the queues in `dir`.
struct Stream<'a> {
    dir: &'a Path,
    servers: &'a str,
    name: String,
    /// `<name in lower case>.<leaf>`.
    subject: String,
}

impl<'a> Stream<'a> {
    fn new(dir: &'a Path, servers: &'a str, what: &str, leaf: &str) -> Stream<'a> {
        let name = unique(what).replace('-', "_").to_uppercase();
        let subject = format!("{}.{leaf}", name.to_lowercase());
        Stream {
            dir,
            servers,
            name,
            subject,
        }
    }

    /// `to-nats` from group `bridge` of queue `q`, into the stream (made
    /// with `NATS.replicas()` copies if missing).
    fn to_nats(&self, q: &str, extra: &[&str]) -> Bridge {
        let r = NATS.replicas().to_string();
        let engine = [
            "--group",
            "bridge",
            "--server",
            self.servers,
            "--subject",
            &self.subject,
            "--stream",
            &self.name,
            "--replicas",
            &r,
        ];
        bridge("to-nats", self.dir, q, &engine, extra)
    }

    /// `from-nats` into queue `q` as durable `durable`.
    #[allow(clippy::wrong_self_convention)] // the subcommand's name, not a conversion
    fn from_nats(&self, q: &str, durable: &str, extra: &[&str]) -> Bridge {
        let engine = [
            "--stream",
            &self.name,
            "--durable",
            durable,
            "--server",
            self.servers,
        ];
        bridge("from-nats", self.dir, q, &engine, extra)
    }

    /// Makes the stream with natscli, as someone else would
    /// (`NATS.replicas()` copies).
    fn add(&self) -> String {
        cli(&[
            "stream",
            "add",
            &self.name,
            "--subjects",
            &self.subject,
            "--replicas",
            &NATS.replicas().to_string(),
            "--defaults",
        ])
    }

    /// Whether natscli lists the stream.
    fn exists(&self) -> bool {
        cli(&["stream", "ls", "--names"])
            .lines()
            .any(|l| l.trim() == self.name)
    }

    /// The stream's message count and leader (a node name, `n<i>`), by
    /// natscli.
    fn state(&self) -> (u64, String) {
        let info: serde_json::Value =
            serde_json::from_str(&cli(&["stream", "info", &self.name, "--json"])).unwrap();
        (
            info["state"]["messages"].as_u64().unwrap(),
            info["cluster"]["leader"].as_str().unwrap_or("").to_string(),
        )
    }
}

/// Standard base64 (what natscli's JSON holds), decoded.
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &d) in chunk.iter().enumerate() {
            n |= u32::from(d) << (18 - 6 * i);
        }
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[test]
fn a_round_trip_through_jetstream_keeps_every_message_once_with_its_metadata_and_key_order() {
    let Some(s) = NATS.address() else { return };
    let dir = tempfile::tempdir().unwrap();
    let n = count();
    let keys = 100;
    let (a, bq) = round_trip_queues(dir.path(), n);
    let stream = Stream::new(dir.path(), &s, "rt", "orders");
    let outbound = stream.to_nats("a", &["--exit-idle", "5"]);
    // The stream exists once to-nats runs: from-nats may start then.
    let began = Instant::now();
    let mut inbound = None;
    publish_stream(&a, 0, 1, keys);
    while inbound.is_none() {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "to-nats made no stream"
        );
        if stream.exists() {
            inbound = Some(stream.from_nats("b", "bridge", &["--exit-idle", "15"]));
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    publish_stream(&a, 1, n, keys);
    check_stream_with(&bq, n, keys, Duration::from_secs(120 + n / 2000), true);
    eprintln!("round trip of {n} through JetStream: {:?}", began.elapsed());
    outbound.finish(Duration::from_secs(60));
    inbound.unwrap().finish(Duration::from_secs(60));
    assert_all_acked(&a, n);
    assert_eq!(stream.state().0, n, "the stream holds each message once");
}

#[test]
fn natscli_reads_what_to_nats_wrote_and_writes_what_from_nats_brings_in() {
    let Some(s) = NATS.address() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = queue(dir.path(), "a", 64, 64);
    a.create_group("bridge", Start::Earliest).unwrap();
    let stream = Stream::new(dir.path(), &s, "cli", "x");
    publish_stream(&a, 0, 3, 2);
    stream
        .to_nats("a", &["--exit-idle", "2"])
        .finish(Duration::from_secs(60));
    // natscli reads them: payload, key and headers as README documents.
    for seq in 1..=3u64 {
        let got: serde_json::Value = serde_json::from_str(&cli(&[
            "stream",
            "get",
            &stream.name,
            &seq.to_string(),
            "--json",
        ]))
        .unwrap();
        let i = seq - 1;
        assert_eq!(
            base64(got["data"].as_str().unwrap()),
            format!("message-{i}").into_bytes()
        );
        let hdrs = String::from_utf8(base64(got["hdrs"].as_str().unwrap())).unwrap();
        for want in [
            format!("shmq-ordering-key: k{}", i % 2),
            format!("traceparent: trace-{i}"),
            "lang: rust".to_string(),
            "lang: again".to_string(),
            format!("shmq-seq: {i}"),
            "Nats-Msg-Id: shmq:".to_string(),
        ] {
            assert!(hdrs.contains(&want), "{want:?} in {hdrs:?}");
        }
    }
    // natscli writes (with a key header and a header of its own);
    // from-nats brings them in with the key as the ordering key.
    for (i, key) in ["k1", "k2"].iter().enumerate() {
        cli(&[
            "pub",
            &stream.subject,
            &format!("from-cli-{i}"),
            "-H",
            &format!("shmq-ordering-key:{key}"),
            "-H",
            "origin:natscli",
            "--jetstream",
        ]);
    }
    let bq = queue(dir.path(), "b", 64, 64);
    bq.create_group("g", Start::Earliest).unwrap();
    stream
        .from_nats("b", "reader", &["--exit-idle", "3"])
        .finish(Duration::from_secs(60));
    let mut c = bq.consumer("g", ConsumerOptions::new()).unwrap();
    let mut got = Vec::new();
    while let Some(m) = c.poll(Duration::from_millis(500)).unwrap() {
        let headers: Vec<(String, Vec<u8>)> = m
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        got.push((
            String::from_utf8(m.payload().to_vec()).unwrap(),
            m.ordering_key().map(<[u8]>::to_vec),
            headers,
        ));
    }
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[3].0, "from-cli-0");
    assert_eq!(got[3].1.as_deref(), Some(&b"k1"[..]));
    assert_eq!(got[3].2, vec![("origin".to_string(), b"natscli".to_vec())]);
    assert_eq!(got[4].1.as_deref(), Some(&b"k2"[..]));
}

#[test]
fn a_message_with_an_expiry_goes_to_a_stream_made_by_to_nats_with_its_jetstream_ttl() {
    let Some(s) = NATS.address() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = queue(dir.path(), "a", 64, 64);
    a.create_group("bridge", Start::Earliest).unwrap();
    let stream = Stream::new(dir.path(), &s, "ttl", "x");
    let mut p = a.producer().unwrap();
    p.publish_with(
        b"lives an hour",
        &shmq::Meta::new().ttl(Duration::from_secs(3600)),
    )
    .unwrap();
    p.publish(b"lives on").unwrap();
    stream
        .to_nats("a", &["--exit-idle", "2"])
        .finish(Duration::from_secs(60));
    let hdrs = |seq: u64| {
        let got: serde_json::Value = serde_json::from_str(&cli(&[
            "stream",
            "get",
            &stream.name,
            &seq.to_string(),
            "--json",
        ]))
        .unwrap();
        String::from_utf8(base64(got["hdrs"].as_str().unwrap())).unwrap()
    };
    let first = hdrs(1);
    assert!(
        first.contains("Nats-TTL: 3600s") || first.contains("Nats-TTL: 3599s"),
        "{first:?}"
    );
    assert!(first.contains("shmq-expires-ns: "), "{first:?}");
    assert!(!hdrs(2).contains("Nats-TTL"), "no expiry, no TTL");
    // A queue whose messages all live ten minutes: its own ttl goes out.
    let c = Queue::create(
        "c",
        &shmq::Options::new()
            .dir(dir.path())
            .slots(64)
            .slot_size(512)
            .message_ttl(Duration::from_secs(600)),
    )
    .unwrap();
    c.create_group("bridge", Start::Earliest).unwrap();
    c.producer().unwrap().publish(b"ten minutes").unwrap();
    stream
        .to_nats("c", &["--exit-idle", "2"])
        .finish(Duration::from_secs(60));
    let third = hdrs(3);
    assert!(
        third.contains("Nats-TTL: 600s") || third.contains("Nats-TTL: 599s"),
        "{third:?}"
    );
}

#[test]
fn a_bridge_killed_again_and_again_loses_nothing_and_jetstream_keeps_each_message_once() {
    let Some(s) = NATS.address() else { return };
    let dir = tempfile::tempdir().unwrap();
    let n = count().min(20_000);
    let keys = 50;
    let (a, bq) = fault_queues(dir.path());
    let stream = Stream::new(dir.path(), &s, "kill", "x");
    publish_stream(&a, 0, n, keys);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1du64);
    for round in 0..5 {
        let mut out = stream.to_nats("a", &["--lease", "2"]);
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        let mut inb = stream.from_nats("b", "bridge", &["--ack-wait", "2"]);
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        kill_both(&mut out, &mut inb, round, &mut rng);
    }
    let out = stream.to_nats("a", &["--lease", "2", "--exit-idle", "8"]);
    let inb = stream.from_nats("b", "bridge", &["--ack-wait", "2", "--exit-idle", "15"]);
    check_stream_with(&bq, n, keys, Duration::from_secs(180), true);
    out.finish(Duration::from_secs(90));
    inb.finish(Duration::from_secs(90));
    assert_all_acked(&a, n);
    // A message sent again after a kill has the same Nats-Msg-Id: within
    // the duplicate window JetStream stores it once.
    assert_eq!(stream.state().0, n, "the stream holds each message once");
}

#[test]
fn a_killed_stream_leader_loses_nothing_that_shmq_acked() {
    let Some(s) = NATS.address() else { return };
    if NATS.replicas() != 3 {
        eprintln!("skipped: needs a 3-node cluster (SHMQ_NATS_REPLICAS=3)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n = count().min(20_000);
    let keys = 50;
    let (a, bq) = fault_queues(dir.path());
    let stream = Stream::new(dir.path(), &s, "leader", "x");
    publish_stream(&a, 0, 1, keys);
    let out = stream.to_nats("a", &["--exit-idle", "10", "--connect-timeout", "30"]);
    // Wait for the first message to be stored: the stream has a leader.
    let began = Instant::now();
    let leader = loop {
        assert!(began.elapsed() < Duration::from_secs(60), "no stream made");
        if stream.exists() {
            let (msgs, leader) = stream.state();
            if msgs > 0 && !leader.is_empty() {
                break leader;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let idx = leader.trim_start_matches('n').to_string();
    let publisher = {
        let a = Queue::open_with("a", &shmq::Options::new().dir(dir.path())).unwrap();
        std::thread::spawn(move || publish_stream(&a, 1, n, keys))
    };
    std::thread::sleep(Duration::from_millis(500));
    // Mid-stream: the leader dies; another takes over (about 4 s).
    NATS.script(&["kill-node", &idx]);
    let acked_at_kill = committed(&a);
    std::thread::sleep(Duration::from_secs(3));
    NATS.script(&["restart-node", &idx]);
    publisher.join().unwrap();
    let inb = stream.from_nats(
        "b",
        "bridge",
        &["--exit-idle", "15", "--connect-timeout", "30"],
    );
    check_stream_with(&bq, n, keys, Duration::from_secs(180), true);
    out.finish(Duration::from_secs(120));
    inb.finish(Duration::from_secs(90));
    assert_all_acked(&a, n);
    eprintln!("{acked_at_kill} acked when the leader ({leader}) was killed");
    let (msgs, _) = stream.state();
    assert_eq!(msgs, n, "every acked message is in the stream, once");
}

/// Committed messages of group `bridge` of `a`.
fn committed(a: &Queue) -> u64 {
    a.groups()
        .into_iter()
        .find(|g| g.name == "bridge")
        .unwrap()
        .committed
}

/// Waits (at most 60 s) until `what` holds.
fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let began = Instant::now();
    while !ok() {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{what}: not in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stream_that_goes_away_is_back_pressure_until_it_is_back() {
    let Some(s) = NATS.address() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = fault_queues(dir.path());
    let stream = Stream::new(dir.path(), &s, "gone", "x");
    stream.add();
    publish_stream(&a, 0, 200, 10);
    // No --stream: the bridge publishes into whichever stream stores the
    // subject, and does not make one.
    let engine = [
        "--group",
        "bridge",
        "--server",
        &s,
        "--subject",
        &stream.subject,
    ];
    let out = bridge("to-nats", dir.path(), "a", &engine, &["--exit-idle", "5"]);
    wait_until("the first 200 acked", || committed(&a) == 200);
    assert_eq!(stream.state().0, 200);
    // The stream goes: every publish now gets "no responders". Nothing
    // is acked in shmq, nothing is lost, the bridge keeps trying.
    cli(&["stream", "rm", "-f", &stream.name]);
    publish_stream(&a, 200, 300, 10);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(committed(&a), 200, "acked while no stream stored them");
    // It comes back (empty): the 100 go into it, once each.
    stream.add();
    wait_until("the other 100 acked", || committed(&a) == 300);
    out.finish(Duration::from_secs(30));
    assert_all_acked(&a, 300);
    assert_eq!(stream.state().0, 100, "the new stream holds the 100 once");
}

#[test]
fn messages_jetstream_gives_up_on_go_into_the_dlq_with_their_reason() {
    let Some(s) = NATS.address() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let stream = Stream::new(dir.path(), &s, "giveup", "x");
    stream.add();
    // A durable made by someone else, which gives a message up after 2
    // deliveries of 1 s each.
    cli(&[
        "consumer",
        "add",
        &stream.name,
        "D",
        "--pull",
        "--ack",
        "explicit",
        "--max-deliver",
        "2",
        "--wait",
        "1s",
        "--deliver",
        "all",
        "--replay",
        "instant",
        "--defaults",
    ]);
    let n = 20;
    cli(&[
        "pub",
        &stream.subject,
        "msg-{{ Count }}",
        "--count",
        "20",
        "-H",
        "origin:natscli",
    ]);
    // Room for 4, and nobody reads: the bridge holds the 5th, and
    // JetStream gives up on the 15 it cannot hand over in time.
    let b = Queue::create(
        "b",
        &shmq::Options::new()
            .dir(dir.path())
            .slots(4)
            .slot_size(512)
            .dedup_window(1024),
    )
    .unwrap();
    b.create_group("check", Start::Earliest).unwrap();
    let from = [
        "from-nats",
        "--dir",
        d,
        "--queue",
        "b",
        "--server",
        &s,
        "--stream",
        &stream.name,
    ];
    let e = fails(&[&from[..], &["--durable", "D"]].concat());
    assert!(
        e.contains("after 2 deliveries") && e.contains("--dlq-group"),
        "{e}"
    );
    let e = fails(&[&from[..], &["--durable", "D", "--dlq-group", "nope"]].concat());
    assert!(e.contains("no such group"), "{e}");
    let bridge = Bridge::spawn(
        &[
            &from[..],
            &["--durable", "D", "--dlq-group", "check", "--exit-idle", "8"],
        ]
        .concat(),
    );
    wait_until("15 dead letters", || b.dlq().len() == 15);
    let mut seen: Vec<String> = Vec::new();
    for dl in b.dlq().list().unwrap() {
        assert_eq!(
            (dl.seq, dl.group.as_str()),
            (shmq::DeadLetter::ADDED, "check")
        );
        assert_eq!((dl.reason, dl.attempts), (shmq::Reason::MaxDeliveries, 2));
        let h = |n: &str| {
            dl.headers
                .iter()
                .find(|(name, _)| name == n)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(h("origin").as_deref(), Some("natscli"));
        let source = h("shmq-dead-letter-source").unwrap();
        assert!(
            source.starts_with(&format!("nats:{}:", stream.name)),
            "{source}"
        );
        assert!(
            h("shmq-dead-letter-reason")
                .unwrap()
                .contains("max_deliver")
        );
        seen.push(String::from_utf8(dl.payload).unwrap());
    }
    // The queue gets the other 5, and nothing given up comes again.
    let mut c = b
        .consumer("check", ConsumerOptions::new().ack(shmq::Ack::Manual))
        .unwrap();
    let began = Instant::now();
    while seen.len() < n && began.elapsed() < Duration::from_secs(60) {
        if let Some(m) = c.poll(Duration::from_millis(200)).unwrap() {
            seen.push(String::from_utf8(m.payload().to_vec()).unwrap());
            m.ack().unwrap();
        }
    }
    bridge.finish(Duration::from_secs(60));
    assert!(c.try_receive().unwrap().is_none(), "a message came twice");
    seen.sort();
    let mut want: Vec<String> = (1..=n).map(|i| format!("msg-{i}")).collect();
    want.sort();
    assert_eq!(seen, want, "each message once: in the queue or in the DLQ");
    // A redrive hands the dead letters to the group.
    assert_eq!(b.dlq().redrive(None).unwrap(), 15);
    let mut redriven = 0;
    while let Some(m) = c.poll(Duration::from_secs(2)).unwrap() {
        m.ack().unwrap();
        redriven += 1;
    }
    assert_eq!(redriven, 15);
}

#[test]
fn bad_nats_setups_are_told_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let q = queue(dir.path(), "q", 64, 1024);
    q.create_group("bridge", Start::Earliest).unwrap();
    let to = ["to-nats", "--dir", d, "--queue", "q", "--group", "bridge"];
    let from = ["from-nats", "--dir", d, "--queue", "q", "--durable", "x"];
    let to_fails = |more: &[&str]| fails(&[&to[..], more].concat());
    let nowhere = ["--subject", "s", "--server", "nats://127.0.0.1:1"];
    // No server there (no NATS needed for these).
    let e = to_fails(&[&nowhere[..], &["--connect-timeout", "1"]].concat());
    assert!(e.contains("cannot reach NATS at nats://127.0.0.1:1"), "{e}");
    let e = to_fails(&["--subject", "s", "--server", "::bad::"]);
    assert!(e.contains("is not a NATS URL"), "{e}");
    let e = to_fails(&[&nowhere[..], &["--replicas", "7"]].concat());
    assert!(e.contains("--replicas is 1 to 5"), "{e}");
    let Some(s) = NATS.address() else { return };
    // A subject no stream stores, a stream that does not take the subject,
    // a stream that does not exist.
    let e = to_fails(&["--subject", "nobody.stores.this", "--server", &s]);
    assert!(e.contains("no JetStream stream stores subject"), "{e}");
    let stream = Stream::new(dir.path(), &s, "bad", "x");
    cli(&[
        "stream",
        "add",
        &stream.name,
        "--subjects",
        &stream.subject,
        "--defaults",
    ]);
    let other = ["--subject", "other.subject", "--stream", &stream.name];
    let e = to_fails(&[&other[..], &["--server", &s]].concat());
    assert!(e.contains("does not take subject"), "{e}");
    let e = fails(&[&from[..], &["--stream", "NO_SUCH_STREAM", "--server", &s]].concat());
    assert!(e.contains("no JetStream stream \"NO_SUCH_STREAM\""), "{e}");
}
