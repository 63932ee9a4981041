//! Messages of any size between processes (issue #36): a producer
//! SIGKILLed while it writes a 32 MiB record in place, a consumer killed
//! while it borrows a long message, and owners of a long dead letter's
//! run of entries killed. Nothing torn is ever
//! delivered, nothing reported published is lost, and nothing waits on a
//! dead process's record.

use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Error, Options, Queue, Start};
use shmq_tests::{Worker, fill_large, large_index, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");

/// A record of 32 MiB: its 32-byte header and the payload.
const BIG: usize = (32 << 20) - 32;

#[test]
fn a_producer_killed_while_writing_a_32_mib_record_leaves_nothing_torn() {
    let dir = tempfile::tempdir().unwrap();
    // 1024 slots of 64 KiB strides: a 64 MiB ring, messages of half of it.
    let opts = Options::new()
        .dir(dir.path())
        .slots(1024)
        .slot_size((64 << 10) - 32)
        // A claim its killed producer never announced is aborted after
        // this; an announced one at once (its process is dead).
        .unblock_timeout(Duration::from_secs(1));
    let q = Queue::create("big", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    assert_eq!(q.max_message_size(), BIG);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    // A deterministic spread of kill times across the writes of a record.
    let delay_us = u64::from(std::process::id()) % 20_000;
    let size = BIG.to_string();
    let mut w = Worker::spawn(
        WORKER,
        &["produce-large", s(dir.path()), "big", "50", &size],
    );
    let stdout = w.read_all();
    let mut w = Some(w);
    let start = Instant::now();
    let mut got = Vec::new();
    let mut killed = false;
    loop {
        if !killed && got.len() >= 3 {
            std::thread::sleep(Duration::from_micros(delay_us));
            w.take().expect("running").kill();
            killed = true;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "took too long");
        match c.receive_timeout(Duration::from_secs(3)) {
            Ok(m) => {
                assert_eq!(m.payload().len(), BIG, "message {}", m.seq());
                let i = large_index(m.payload())
                    .unwrap_or_else(|| panic!("message {} is torn", m.seq()));
                got.push(i);
            }
            Err(Error::Timeout) if killed => break,
            Err(Error::Timeout) => {}
            Err(e) => panic!("receive: {e}"),
        }
    }
    let sent: Vec<u64> = stdout
        .join()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("sent ")?.parse().ok())
        .collect();
    // In order, each once, and every one the producer was told it published.
    assert!(got.windows(2).all(|p| p[1] == p[0] + 1), "{got:?}");
    let last = sent.last().copied().unwrap_or(0);
    assert!(got.len() as u64 > last, "sent up to {last}, got {got:?}");
    // The record being written when the producer died was aborted, and the
    // ring takes messages again.
    let mut p = q.producer().unwrap();
    let mut r = p.reserve(BIG).unwrap();
    fill_large(&mut r, 777);
    r.commit().unwrap();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(large_index(m.payload()), Some(777));
}

#[test]
fn a_consumer_killed_while_it_borrows_a_long_message_gives_it_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new().dir(dir.path()).slots(256).slot_size(4064);
    let q = Queue::create("held", &opts).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..3u64 {
        let mut r = p.reserve(300_000 + i as usize * 1000).unwrap();
        fill_large(&mut r, i);
        r.commit().unwrap();
    }
    let mut holder = Worker::spawn(WORKER, &["hold-large", s(dir.path()), "held", "w"]);
    holder.wait_for_line("holding 0", Duration::from_secs(20));
    holder.kill();
    // Its lease comes back (its process is dead) and is delivered again,
    // whole, with the others.
    let mut c = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(30), "got {seen:?}");
        let Some(m) = c.poll(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        let i = large_index(m.payload()).expect("whole");
        seen.push((i, m.attempt()));
        m.ack().unwrap();
    }
    seen.sort();
    assert_eq!(seen, [(0, 2), (1, 1), (2, 1)]);
}

#[test]
fn events_and_8_mib_frames_run_in_one_queue_in_a_64_mb_tmpfs() {
    let dir = tempfile::tempdir().unwrap();
    let fs = dir.path().join("shm");
    std::fs::create_dir(&fs).unwrap();
    // Docker's /dev/shm: a tmpfs of 64 MB, in a mount namespace of the
    // worker's own (root).
    let mount = format!(
        "mount -t tmpfs -o size=64m shmq-64mb {0} && exec {WORKER} mixed {0} 400",
        s(&fs)
    );
    let can = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|st| st.success());
    if !can {
        assert!(
            std::env::var_os("SHMQ_REQUIRE_TOOLS").is_none(),
            "unshare --mount failed: this test needs root and util-linux"
        );
        eprintln!("skipped: a tmpfs of our own needs root");
        return;
    }
    let w = Worker::spawn(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &mount],
    );
    let out = w.finish(Duration::from_secs(120));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"ok"), "{out}");
    assert_eq!(&words[1..3], ["40", "360"], "{out}");
    // The file is larger than the tmpfs, but its dead-letter region (two
    // of the largest messages: 32 MiB) takes no memory until used.
    let file: u64 = words[3].parse().unwrap();
    let allocated: u64 = words[4].parse().unwrap();
    assert!(
        allocated < 40 << 20 && file >= allocated + (32 << 20),
        "the queue file of {file} bytes has {allocated} allocated"
    );
}

/// Dead-letter runs whose owner is killed: a worker killed with a long
/// dead letter's run of entries taken but nothing written
/// (`dead_letter.claimed`), and a purger killed while it gives a run back
/// (`dead_letter.giving_back`). Each time the region holds one such run
/// only, so the next dead letter fits only if the dead process's run was
/// given back; and the message the killed worker held is not lost.
#[test]
fn a_dead_letter_run_whose_owner_is_killed_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    // Entries of 256 bytes (strides of 384), 8 of them: one run of 8 holds
    // a dead letter of up to 2976 bytes; two of 2000 bytes do not fit.
    let opts = Options::new()
        .dir(dir.path())
        .slots(128)
        .slot_size(256)
        .dlq_slots(8)
        .lease(Duration::from_millis(300));
    let q = Queue::create("runs", &opts).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let body = |i: u8| vec![i; 2000];
    p.publish(&body(1)).unwrap();
    Worker::spawn_faulty(
        WORKER,
        &["dead-letter", d, "runs", "w"],
        "dead_letter.claimed",
    )
    .died_at("dead_letter.claimed", Duration::from_secs(10));
    assert!(q.dlq().is_empty());
    // Its lease runs out; the next worker dead-letters it into the run
    // the dead one left.
    let manual = ConsumerOptions::new().ack(Ack::Manual);
    let mut c = q.consumer("w", manual).unwrap();
    let m = c.receive_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(m.payload(), &body(1)[..]);
    m.nack(shmq::Nack::DeadLetter).unwrap();
    assert_eq!(q.dlq().list().unwrap()[0].payload, body(1));
    // A purger killed giving the run back; then the next dead letter.
    Worker::spawn_faulty(WORKER, &["purge", d, "runs"], "dead_letter.giving_back")
        .died_at("dead_letter.giving_back", Duration::from_secs(10));
    p.publish(&body(2)).unwrap();
    let m = c.receive_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(m.payload(), &body(2)[..]);
    m.nack(shmq::Nack::DeadLetter).unwrap();
    let left: Vec<Vec<u8>> = q
        .dlq()
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.payload)
        .collect();
    assert_eq!(left, [body(2)]);
}

/// A spilling producer of long messages killed between writing its
/// record and counting it (`spill.record_written`, adopted by the next
/// process that opens the queue), and between counting it and moving the
/// spill's write position (`spill.counted`, repaired by the next spill).
/// A long record's seqs are the ring positions it will take: the repair
/// and the adoption once stepped one seq past it, so the next spilled
/// message was written over it, or read back as an older one and
/// skipped; both lost messages (found by the chaos run with payloads of
/// up to 2 KiB).
#[test]
fn a_spiller_of_long_messages_killed_mid_append_loses_nothing() {
    // Long: 600-byte messages take 6 slots of 128-byte strides.
    const LEN: usize = 600;
    for point in ["spill.record_written", "spill.counted"] {
        let dir = tempfile::tempdir().unwrap();
        let d = s(dir.path());
        let opts = Options::new()
            .dir(dir.path())
            .slots(32)
            .slot_size(64)
            .overflow(shmq::Overflow::Spill)
            .spill_dir(dir.path().join("spill"))
            .spill_segment_size(64 << 10);
        let q = Queue::create("sp", &opts).unwrap();
        assert!(q.max_message_size() >= LEN, "{}", q.max_message_size());
        q.create_group("g", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        // Fill the ring: the worker's messages spill.
        let mut sent = vec![];
        while q.stats().spilled == 0 {
            let i = sent.len() as u64;
            p.publish(&shmq_tests::encode(1, i, LEN)).unwrap();
            sent.push((1, i));
        }
        let fault = format!("{point}@2");
        Worker::spawn_faulty(WORKER, &["produce", d, "sp", "2", "3", "600"], &fault)
            .died_at(point, Duration::from_secs(10));
        // Its first message is published; its second is in the spill
        // (written whole, or counted).
        sent.push((2, 0));
        if point == "spill.record_written" {
            // Another process opens the queue, and adopts the record.
            Worker::spawn(WORKER, &["open", d, "sp"]).finish(Duration::from_secs(10));
        }
        for i in 0..3 {
            p.publish(&shmq_tests::encode(3, i, LEN)).unwrap();
            sent.push((3, i));
        }
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        let mut got = vec![];
        loop {
            match c.receive_timeout(Duration::from_secs(2)) {
                Ok(m) => {
                    assert_eq!(m.payload().len(), LEN, "{point}");
                    got.push(shmq_tests::decode(m.payload()).unwrap());
                }
                Err(Error::Timeout) => break,
                Err(e) => panic!("{point}: {e}"),
            }
        }
        // The killed producer's second message was written whole, so it
        // may be delivered (adopted, or counted): at most once.
        let second = got.iter().filter(|&&k| k == (2, 1)).count();
        assert!(second <= 1, "{point}: {got:?}");
        got.retain(|&k| k != (2, 1));
        assert_eq!(got, sent, "{point}");
        assert_eq!(q.stats().spill_lost, 0, "{point}: {got:?} {second}");
    }
}
