//! Real processes sharing real queues: fan-out, many producers, killed
//! producers, restarts, bad files.

use std::process::Command;
use std::time::{Duration, Instant};

use shmq::{Options, Queue, Start};
use shmq_tests::{Worker, encode, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const LONG: Duration = Duration::from_secs(240);

/// Parses `producer ID first F last L count N` lines.
fn summary(out: &str) -> Vec<(u32, u64, u64, u64)> {
    out.lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[1].parse().unwrap(),
                w[3].parse().unwrap(),
                w[5].parse().unwrap(),
                w[7].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn four_producers_three_groups_a_million_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("fan", &Options::new().dir(d).slots(4096).slot_size(32)).unwrap();
    for g in ["a", "b", "c"] {
        q.create_group(g, Start::Earliest).unwrap();
    }
    const PER: u64 = 250_000;
    let consumers: Vec<Worker> = ["a", "b", "c"]
        .iter()
        .map(|g| {
            Worker::spawn(
                WORKER,
                &["consume", d, "fan", g, &(4 * PER).to_string(), "200"],
            )
        })
        .collect();
    let producers: Vec<Worker> = (0..4)
        .map(|id| {
            Worker::spawn(
                WORKER,
                &["produce", d, "fan", &id.to_string(), &PER.to_string(), "16"],
            )
        })
        .collect();
    for p in producers {
        p.finish(LONG);
    }
    for c in consumers {
        let sum = summary(&c.finish(LONG));
        // Every producer's every message, once, in its order (the worker
        // exits non-zero on a gap, duplicate or reordering).
        assert_eq!(
            sum,
            (0..4).map(|id| (id, 0, PER - 1, PER)).collect::<Vec<_>>()
        );
    }
    let st = q.stats();
    assert_eq!((st.published, st.aborted, st.depth), (4 * PER, 0, 0));
}

/// A queue NAME in D with group "g" and a long unblock_timeout: only the
/// dead-process check can free its consumers within a test's bound.
fn slow_to_unblock(d: &str, name: &str) -> Queue {
    let opts = Options::new()
        .dir(d)
        .slots(64)
        .slot_size(32)
        .unblock_timeout(Duration::from_secs(120));
    let q = Queue::create(name, &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    q
}

#[test]
fn a_killed_producer_does_not_wedge_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = slow_to_unblock(d, "kill");
    let mut holder = Worker::spawn(WORKER, &["hold-claim", d, "kill"]);
    holder.wait_for_line("holding", Duration::from_secs(30));
    let producer = Worker::spawn(WORKER, &["produce", d, "kill", "1", "1000", "16"]);
    let consumer = Worker::spawn(WORKER, &["consume", d, "kill", "g", "1000", "60"]);
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    holder.kill();
    producer.finish(LONG);
    let sum = summary(&consumer.finish(Duration::from_secs(60)));
    assert_eq!(sum, vec![(1, 0, 999, 1000)]);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the dead claim was aborted long before unblock_timeout"
    );
    assert_eq!(q.stats().aborted, 1);
}

/// A killed producer's record is how consumers know its claim will never
/// be written. New producers take free records first, and the one that
/// must take the dead record aborts the claim itself: the consumer used to
/// wait out the whole `unblock_timeout` when a new producer took the record
/// before it had looked (CI: the PID-namespace test, 1 run in ~20).
#[test]
fn a_dead_producers_record_taken_over_still_frees_its_claim() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = slow_to_unblock(d, "taken");
    let mut holder = Worker::spawn(WORKER, &["hold-claim", d, "taken"]);
    holder.wait_for_line("holding", Duration::from_secs(30));
    holder.kill();
    // 255 free records are taken first; the dead one keeps its claim
    // known to consumers meanwhile.
    let mut producers: Vec<_> = (0..255).map(|_| q.producer().unwrap()).collect();
    assert_eq!(q.stats().aborted, 0);
    assert_eq!(q.stats().producers, 255);
    // The last record is the dead one's: taking it aborts its claim.
    let last = q.producer().unwrap();
    assert_eq!(q.stats().aborted, 1);
    assert!(matches!(q.producer(), Err(shmq::Error::Busy(_))));
    producers[0].publish(b"after").unwrap();
    let mut c = q
        .consumer("g", shmq::ConsumerOptions::new().create(false))
        .unwrap();
    let t = Instant::now();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((m.seq(), m.payload()), (1, &b"after"[..]));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(q.stats().aborted, 1);
    drop((last, producers));
}

/// A producer killed in the middle of a batch announced a range of
/// positions, not which of them were its own: its record is not taken
/// while a position of the range is unwritten (a taker could not tell its
/// claims from live producers'), and the consumer aborts them as it
/// reaches them, at once.
#[test]
fn a_producer_killed_mid_batch_keeps_its_record_until_its_claims_are_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = slow_to_unblock(d, "batch");
    // Killed before committing its second message of four.
    Worker::spawn_faulty(
        WORKER,
        &["publish-batch", d, "batch", "4"],
        "batch.before_commit@2",
    )
    .died_at("batch.before_commit", LONG);
    let mut producers: Vec<_> = (0..255).map(|_| q.producer().unwrap()).collect();
    match q.producer() {
        Err(shmq::Error::Busy(why)) => assert!(why.contains("batch"), "{why}"),
        Ok(_) => panic!("the dead batch's record was taken with its claims unwritten"),
        Err(e) => panic!("{e}"),
    }
    producers[0].publish(b"after").unwrap();
    let mut c = q
        .consumer("g", shmq::ConsumerOptions::new().create(false))
        .unwrap();
    let t = Instant::now();
    assert_eq!(c.receive_timeout(LONG).unwrap().seq(), 0);
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((m.seq(), m.payload()), (4, &b"after"[..]));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(q.stats().aborted, 3);
    // Its claims all settled, the record is free to take.
    producers.push(q.producer().unwrap());
    assert_eq!(q.stats().aborted, 3);
}

#[test]
fn producers_killed_mid_stream_leave_order_and_flow_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "mid",
        &Options::new()
            .dir(d)
            .slots(256)
            .slot_size(32)
            .unblock_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    // Kill three producers at different points of a long stream.
    for (id, delay_ms) in [(1u32, 5u64), (2, 20), (3, 60)] {
        let mut p = Worker::spawn(
            WORKER,
            &["produce", d, "mid", &id.to_string(), "100000000", "16"],
        );
        p.wait_for_line("started", Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Drain a little so the ring keeps moving while it is killed.
        let mut c = q.consumer("g", shmq::ConsumerOptions::new()).unwrap();
        for _ in 0..100 {
            let _ = c.receive_timeout(Duration::from_millis(100));
        }
        drop(c);
        p.kill();
    }
    // Whatever the killed producers left behind, a live one still gets
    // through, and every producer's messages are in order without gaps.
    // The ring is full of the killed producers' messages: the live one
    // publishes while we consume.
    let p = Worker::spawn(WORKER, &["produce", d, "mid", "9", "500", "16"]);
    let mut c = q.consumer("g", shmq::ConsumerOptions::new()).unwrap();
    let mut last: std::collections::BTreeMap<u32, u64> = Default::default();
    let mut from_live = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while from_live < 500 {
        assert!(
            Instant::now() < deadline,
            "the live producer's messages never all arrived"
        );
        let Ok(m) = c.receive_timeout(Duration::from_secs(10)) else {
            panic!("consumer wedged after {from_live} live messages");
        };
        let (id, idx) = shmq_tests::decode(m.payload()).unwrap();
        if let Some(prev) = last.insert(id, idx) {
            assert_eq!(idx, prev + 1, "producer {id}");
        }
        if id == 9 {
            from_live += 1;
        }
    }
    p.finish(LONG);
}

#[test]
fn a_queue_outlives_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    drop(Queue::create("keep", &Options::new().dir(d).slots(2048).slot_size(32)).unwrap());
    // The group does not exist yet: messages are retained anyway.
    Worker::spawn(WORKER, &["produce", d, "keep", "5", "1500", "16"]).finish(LONG);
    let first = Worker::spawn(WORKER, &["consume", d, "keep", "g", "600", "30"]).finish(LONG);
    assert_eq!(summary(&first), vec![(5, 0, 599, 600)]);
    // Every process has exited; a new one picks up where the group was.
    let rest = Worker::spawn(WORKER, &["consume", d, "keep", "g", "900", "30"]).finish(LONG);
    assert_eq!(summary(&rest), vec![(5, 600, 1499, 900)]);
}

fn worker_open_fails(d: &str, name: &str, needle: &str) {
    let out = Command::new(WORKER)
        .args(["open", d, name])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "{name}: {err}");
}

#[test]
fn bad_files_and_names_give_clear_errors_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    std::fs::write(dir.path().join("foreign.shmq"), vec![7u8; 8192]).unwrap();
    worker_open_fails(d, "foreign", "not a shmq queue file");
    drop(Queue::create("cut", &Options::new().dir(d).slots(8)).unwrap());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("cut.shmq"))
        .unwrap();
    f.set_len(1000).unwrap();
    worker_open_fails(d, "cut", "shorter than a queue header");
    drop(Queue::create("garbled", &Options::new().dir(d).slots(8)).unwrap());
    let mut bytes = std::fs::read(dir.path().join("garbled.shmq")).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(dir.path().join("garbled.shmq"), bytes).unwrap();
    worker_open_fails(d, "garbled", "checksum");
    worker_open_fails(d, "missing", "not found");
    worker_open_fails(d, "a/b", "invalid name");
    worker_open_fails(d, "", "invalid name");
    worker_open_fails(d, &"x".repeat(201), "invalid name");
    // Still usable by a producer after all that: the good queue is fine.
    let q = Queue::create("good", &Options::new().dir(d).slots(8).slot_size(16)).unwrap();
    q.producer().unwrap().publish(&encode(0, 0, 12)).unwrap();
}
