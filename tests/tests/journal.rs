//! The journal across real processes: replay from a timestamp returns
//! exactly the retained messages from that time on; a producer killed
//! while the journal is written leaves it whole.

use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Options, Queue, Retention, Seek, Start};
use shmq_tests::{Worker, decode, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const LONG: Duration = Duration::from_secs(120);

fn journaled(dir: &std::path::Path) -> Options {
    Options::new()
        .dir(dir)
        .slots(64)
        .slot_size(64)
        .spill_dir(dir.join("spill"))
        .spill_segment_size(64 << 10)
        .journal(Retention::new(Duration::from_secs(3600), 256 << 20))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Drains group `g` in this process until `n` messages came.
fn drain(q: &Queue, g: &str, n: u64) {
    let mut c = q.consumer(g, ConsumerOptions::new()).unwrap();
    for _ in 0..n {
        c.receive_timeout(Duration::from_secs(30)).unwrap();
    }
}

#[test]
fn replay_from_a_timestamp_returns_exactly_the_messages_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("replay", &journaled(dir.path())).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    // Producer 0 publishes 2,000 (30 rings' worth) while group a keeps up.
    let p0 = Worker::spawn(WORKER, &["produce", d, "replay", "0", "2000", "64"]);
    drain(&q, "a", 2000);
    p0.finish(LONG);
    std::thread::sleep(Duration::from_millis(5));
    let t = now_ns();
    std::thread::sleep(Duration::from_millis(5));
    let p1 = Worker::spawn(WORKER, &["produce", d, "replay", "1", "2000", "64"]);
    drain(&q, "a", 2000);
    p1.finish(LONG);
    // Replay from t, in another process: exactly producer 1's messages,
    // in order, none of producer 0's.
    assert_eq!(q.seek_group("a", Seek::Time(t)).unwrap(), 2000);
    let out = Worker::spawn(WORKER, &["consume", d, "replay", "a", "2000", "30"]).finish(LONG);
    assert_eq!(out.trim(), "producer 1 first 0 last 1999 count 2000");
    let st = q.stats();
    assert_eq!(st.groups[0].next, 4000);
    let j = st.journal.unwrap();
    assert_eq!((j.first_seq, j.next_seq, j.journaled), (0, 4000, 4000));
    // And from the start: both producers, in order.
    assert_eq!(q.seek_group("a", Seek::Earliest).unwrap(), 0);
    let out = Worker::spawn(WORKER, &["consume", d, "replay", "a", "4000", "30"]).finish(LONG);
    assert_eq!(
        out.trim(),
        "producer 0 first 0 last 1999 count 2000\nproducer 1 first 0 last 1999 count 2000"
    );
}

#[test]
fn a_producer_killed_while_the_journal_is_written_leaves_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let o = journaled(dir.path());
    let q = Queue::create("killed", &o).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut last_sent = Vec::new();
    for id in 0..4u32 {
        let mut p = Worker::spawn(
            WORKER,
            &[
                "produce-logged",
                d,
                "killed",
                &id.to_string(),
                "1000000",
                "64",
            ],
        );
        let out = p.read_all();
        // Keep up with it for a while, then kill it mid-stream.
        let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
        // From its first message on (a loaded machine may take a while to
        // start it), so that it is killed mid-stream, not before it began.
        c.receive_timeout(LONG)
            .expect("the producer published something");
        let until = Instant::now() + Duration::from_millis(150 + 100 * id as u64);
        while Instant::now() < until {
            let _ = c.receive_timeout(Duration::from_millis(10));
        }
        p.kill();
        while c.receive_timeout(Duration::from_millis(200)).is_ok() {}
        let last = out
            .join()
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("sent ")?.parse::<u64>().ok())
            .next_back();
        last_sent.push(last.expect("the producer published something"));
    }
    drop(q);
    // Everything is unmapped; reopen and replay the whole journal.
    let q = Queue::open_with("killed", &o).unwrap();
    assert_eq!(q.seek_group("a", Seek::Earliest).unwrap(), 0);
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut next = [0u64; 4];
    let mut prev_seq = None;
    while let Ok(m) = c.receive_timeout(Duration::from_millis(500)) {
        if let Some(p) = prev_seq {
            assert!(m.seq() > p, "seq order");
        }
        prev_seq = Some(m.seq());
        let (id, idx) = decode(m.payload()).unwrap();
        assert_eq!(idx, next[id as usize], "producer {id} in order, no gap");
        next[id as usize] += 1;
    }
    for id in 0..4 {
        assert!(
            next[id] > last_sent[id],
            "producer {id}: sent up to {} but the journal ends at {}",
            last_sent[id],
            next[id]
        );
    }
}
