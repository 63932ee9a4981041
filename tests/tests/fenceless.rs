//! shmq in a process that cannot make the heavy fence of the asymmetric
//! commit: `membarrier(2)` refused by a seccomp filter, as some container
//! profiles do (`Worker::spawn_fenceless`). Its producers commit with the
//! CAS, its waiters re-check every millisecond instead of trusting a
//! wake-up from an asymmetric producer, and it never settles a record of
//! a live asymmetric producer. Beside it, this test process commits
//! asymmetrically; each side's messages must reach the other whole, in
//! order, none lost, and its waiters must wake.

use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Options, Queue, Start};
use shmq_tests::{Worker, decode, encode, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const LONG: Duration = Duration::from_secs(60);

fn opts(dir: &std::path::Path) -> Options {
    Options::new().dir(dir).slots(64).slot_size(64)
}

/// A fenceless producer publishes beside an asymmetric one (this
/// process), into a ring small enough to wrap many times; a consumer
/// here gets every message of each, in each producer's order.
#[test]
fn a_fenceless_producer_and_an_asymmetric_one_share_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("f", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let n = 20_000u64;
    let fenceless = Worker::spawn_fenceless(
        WORKER,
        &["produce", s(dir.path()), "f", "1", &n.to_string(), "24"],
    );
    let mine = {
        let q = Queue::open_with("f", &opts(dir.path())).unwrap();
        std::thread::spawn(move || {
            let mut p = q.producer().unwrap();
            for i in 0..n {
                p.publish_timeout(&encode(2, i, 24), LONG).unwrap();
            }
        })
    };
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut next = [0u64; 3];
    for _ in 0..2 * n {
        let m = c.receive_timeout(LONG).unwrap();
        let (id, i) = decode(m.payload()).expect("a whole message");
        assert_eq!(i, next[id as usize], "producer {id}'s order");
        next[id as usize] += 1;
    }
    mine.join().unwrap();
    assert!(fenceless.finish(LONG).contains("done"));
    assert_eq!(next[1..], [n, n]);
}

/// A fenceless consumer, sleeping and async, is woken by an asymmetric
/// producer's commits (here), whose wake-ups it may miss: it re-checks
/// every millisecond, so each message arrives well within its timeout.
#[test]
fn a_fenceless_consumer_gets_an_asymmetric_producers_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("f", &opts(dir.path())).unwrap();
    q.create_group("sleeps", Start::Earliest).unwrap();
    let one = Queue::create("one", &opts(dir.path())).unwrap();
    one.create_group("awaits", Start::Earliest).unwrap();
    let n = 200u64;
    // consume: every message of each producer in order, within 30 s.
    let sleeper =
        Worker::spawn_fenceless(WORKER, &["consume", d, "f", "sleeps", &n.to_string(), "30"]);
    let mut awaiter = Worker::spawn_fenceless(WORKER, &["await-one", d, "one", "awaits"]);
    let out = awaiter.read_all();
    // Armed well before the publish (it prints, then arms in microseconds).
    std::thread::sleep(Duration::from_millis(300));
    one.producer().unwrap().publish(b"one").unwrap();
    awaiter.finish(LONG);
    assert_eq!(out.join().unwrap(), "waiting\ngot 0\n");
    let mut p = q.producer().unwrap();
    let started = Instant::now();
    for i in 0..n {
        p.publish(&encode(7, i, 24)).unwrap();
        // Slowly enough that the consumer sleeps between messages.
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = sleeper.finish(LONG);
    assert!(
        out.contains(&format!("producer 7 first 0 last {} count {n}", n - 1)),
        "{out}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A fenceless consumer settles what it can tell without the heavy
/// fence: a position whose claimer is dead (killed after writing, before
/// its commit) is skipped, although a live asymmetric producer (here)
/// keeps publishing after it.
#[test]
fn a_fenceless_consumer_skips_a_dead_claimers_position_beside_a_live_asymmetric_producer() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("f", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    Worker::spawn_faulty(
        WORKER,
        &["produce", d, "f", "1", "1", "24"],
        "publish.before_commit",
    )
    .died_at("publish.before_commit", LONG);
    let n = 40u64;
    for i in 0..n {
        assert_eq!(p.publish(&encode(2, i, 24)).unwrap(), i + 1);
    }
    let out = Worker::spawn_fenceless(WORKER, &["consume", d, "f", "g", &n.to_string(), "30"])
        .finish(LONG);
    assert_eq!(
        out,
        format!("producer 2 first 0 last {} count {n}\n", n - 1)
    );
    assert_eq!(q.stats().aborted, 1);
}
