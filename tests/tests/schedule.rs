//! Scheduled messages through killed processes: a mover killed before,
//! inside and after its move into the ring, and a scheduler killed with
//! the schedule's index half-changed. Every message scheduled reaches the
//! group once (the moves are resolved exactly, `protocol/schedule.rs`);
//! one whose scheduler died before its publish returned may arrive too
//! (it was written), never twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Error, Meta, Options, Queue, Start};
use shmq_tests::{Worker, decode, encode, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const LONG: Duration = Duration::from_secs(60);

fn opts(dir: &std::path::Path) -> Options {
    Options::new()
        .dir(dir)
        .slots(16)
        .slot_size(64)
        .spill_dir(dir.join("store"))
        // A claim its dead producer never announced is aborted after this.
        .unblock_timeout(Duration::from_millis(200))
}

/// Everything group `g` receives until 2 s pass with nothing, counted by
/// (producer, index).
fn drain(q: &Queue, g: &str) -> BTreeMap<(u32, u64), u32> {
    let mut got = BTreeMap::new();
    let mut c = q.consumer(g, ConsumerOptions::new()).unwrap();
    let deadline = Instant::now() + LONG;
    loop {
        assert!(Instant::now() < deadline, "draining {g} took too long");
        match c.receive_timeout(Duration::from_secs(2)) {
            Ok(m) => *got.entry(decode(m.payload()).unwrap()).or_default() += 1,
            Err(Error::Timeout) => return got,
            Err(e) => panic!("receive: {e}"),
        }
    }
}

fn each_once(got: &BTreeMap<(u32, u64), u32>, id: u32, n: u64) {
    for i in 0..n {
        assert_eq!(got.get(&(id, i)), Some(&1), "message {i}: {got:?}");
    }
    assert_eq!(got.len() as u64, n, "{got:?}");
}

/// Schedules `n` messages of producer 1, due in a millisecond.
fn schedule(q: &Queue, n: u64) {
    let mut p = q.producer().unwrap();
    for i in 0..n {
        p.publish_with(
            &encode(1, i, 16),
            &Meta::new().delay(Duration::from_millis(1)),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
}

#[test]
fn a_mover_killed_at_any_step_of_its_move_delivers_each_message_once() {
    // Before it claims; after its claim, before its commit; after its
    // commit, before the schedule knows.
    for point in [
        "schedule.moving@2",
        "publish.before_commit@2",
        "schedule.moved@2",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = s(dir.path());
        let q = Queue::create("q", &opts(dir.path())).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
        schedule(&q, 5);
        // A consumer of another group moves what is due, and dies inside.
        let name = point.split('@').next().unwrap();
        Worker::spawn_faulty(WORKER, &["consume", d, "q", "other", "5", "30"], point)
            .died_at(name, LONG);
        let got = drain(&q, "g");
        each_once(&got, 1, 5);
        let st = q.stats();
        assert_eq!(st.scheduled, 0, "{point}: {st:?}");
    }
}

#[test]
fn a_scheduler_killed_with_the_index_half_changed_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    // Its third publish dies after writing the message and changing the
    // index, before the index is marked consistent again.
    let out = Worker::spawn_faulty(
        WORKER,
        &["schedule", d, "q", "1", "10", "300"],
        "schedule.before_settle@3",
    )
    .died_at("schedule.before_settle", LONG);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("scheduled")).count(),
        2
    );
    // The next holder rebuilds the index from the segments: the third was
    // written, so it is scheduled too; ids go on after it.
    let listed = q.scheduled(100).unwrap();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2, 3]);
    let mut p = q.producer().unwrap();
    let id = p
        .publish_with(
            &encode(2, 0, 16),
            &Meta::new().delay(Duration::from_millis(300)),
        )
        .unwrap();
    assert_eq!(id, 4);
    let mut got = drain(&q, "g");
    assert_eq!(got.remove(&(2, 0)), Some(1), "{got:?}");
    each_once(&got, 1, 3);
    let st = q.stats();
    assert_eq!(st.scheduled, 0, "{st:?}");
}

#[test]
fn scheduled_messages_wait_through_the_death_of_every_process_and_come_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    {
        let q = Queue::create("q", &opts(dir.path())).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
    }
    // The only process that schedules, then killed; nobody has the queue
    // open meanwhile.
    let mut w = Worker::spawn(WORKER, &["schedule", d, "q", "1", "20", "400"]);
    w.wait_for_line("scheduled 19 20", LONG);
    w.kill();
    let t = Instant::now();
    let q = Queue::open_with("q", &Options::new().dir(dir.path())).unwrap();
    assert_eq!(q.stats().scheduled, 20);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert!(matches!(c.try_receive(), Ok(None)), "not due yet");
    drop(c);
    let got = drain(&q, "g");
    each_once(&got, 1, 20);
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn a_mover_killed_inside_its_spill_append_delivers_the_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let o = opts(dir.path())
        .overflow(shmq::Overflow::Spill)
        .spill_segment_size(64 << 10);
    let q = Queue::create("q", &o).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    // The ring full (nobody reads group g yet), and one more: spilling.
    let mut p = q.producer().unwrap();
    for i in 0..17 {
        p.publish(&encode(2, i, 16)).unwrap();
    }
    drop(p);
    q.create_group("other", Start::Latest).unwrap();
    schedule(&q, 3);
    // A consumer of another group (with nothing to read) moves them:
    // into the spill, and dies inside the first append, its seq handed
    // out and nothing written.
    Worker::spawn_faulty(
        WORKER,
        &["consume", d, "q", "other", "1", "30"],
        "schedule.claimed@1",
    )
    .died_at("schedule.claimed", LONG);
    // Another message spills: its producer passes by the schedule first
    // (the dead mover's message is due), so the seq the mover was handed
    // is either taken back under the admin lock before the append
    // (`cancel_unfinished_schedule_spill`) or resolved as not written.
    q.producer().unwrap().publish(&encode(2, 17, 16)).unwrap();
    let mut got = drain(&q, "g");
    for i in 0..18 {
        assert_eq!(got.remove(&(2, i)), Some(1), "plain {i}: {got:?}");
    }
    each_once(&got, 1, 3);
    assert_eq!(q.stats().scheduled, 0);
}
