//! overflow=spill across real processes: a backlog many times the ring
//! reaching a consumer started later, producers and consumers SIGKILLed
//! while the queue spills and rolls segments, and a disk-backed queue
//! reopened after everything was unmapped and the page cache dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Options, Overflow, Queue, Start};
use shmq_tests::{Rng, Worker, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const LONG: Duration = Duration::from_secs(120);

fn spill_opts(dir: &std::path::Path, slots: u64, slot_size: usize) -> Options {
    Options::new()
        .dir(dir)
        .slots(slots)
        .slot_size(slot_size)
        .overflow(Overflow::Spill)
        .spill_dir(dir.join("spill"))
        .spill_segment_size(64 << 10)
}

#[test]
fn a_backlog_of_five_rings_reaches_a_consumer_started_later() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("late", &spill_opts(dir.path(), 1024, 64)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    const N: u64 = 5 * 1024;
    // The producer runs to the end with no consumer at all: it never
    // blocks, the ring holds 1024 and the spill the rest.
    Worker::spawn(WORKER, &["produce", d, "late", "0", &N.to_string(), "64"]).finish(LONG);
    let st = q.stats();
    assert_eq!((st.published, st.spilled), (N, N - 1024));
    assert!(st.spill_segments >= 2, "rolled over: {st:?}");
    let out =
        Worker::spawn(WORKER, &["consume", d, "late", "a", &N.to_string(), "60"]).finish(LONG);
    assert_eq!(
        out.trim(),
        format!("producer 0 first 0 last {} count {N}", N - 1)
    );
    let st = q.stats();
    assert_eq!((st.spill_depth, st.spill_segments, st.depth), (0, 0, 0));
}

/// Every `sent I` line of a producer's output: the last index it was told
/// was published.
fn last_sent(out: &str) -> Option<u64> {
    out.lines()
        .filter_map(|l| l.strip_prefix("sent ")?.parse().ok())
        .next_back()
}

#[test]
fn producers_and_consumers_killed_while_spilling_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    // 64 slots; 64 KiB segments of ~300-byte records: the spill rolls to a
    // new segment every ~200 messages, so the kills land during rolls too.
    let q = Queue::create(
        "kills",
        &spill_opts(dir.path(), 64, 256)
            .lease(Duration::from_secs(30))
            .max_deliveries(100),
    )
    .unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut rng = Rng(0x5eed_cafe);
    let mut sent: BTreeMap<u32, u64> = BTreeMap::new();
    let mut outputs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut id = 0u32;
    while Instant::now() < deadline {
        let mut producer = Worker::spawn(
            WORKER,
            &[
                "produce-logged",
                d,
                "kills",
                &id.to_string(),
                "1000000",
                "256",
            ],
        );
        let producer_out = producer.read_all();
        let mut consumer = Worker::spawn(WORKER, &["work-ids", d, "kills", "a"]);
        let consumer_out = consumer.read_all();
        std::thread::sleep(Duration::from_millis(50 + rng.next() % 250));
        // Kill both, in a random order, at random points of their work.
        if rng.next() % 2 == 0 {
            producer.kill();
            std::thread::sleep(Duration::from_millis(rng.next() % 50));
            consumer.kill();
        } else {
            consumer.kill();
            std::thread::sleep(Duration::from_millis(rng.next() % 50));
            producer.kill();
        }
        if let Some(last) = last_sent(&producer_out.join().unwrap()) {
            sent.insert(id, last);
        }
        outputs.push(consumer_out.join().unwrap());
        id += 1;
    }
    let st = q.stats();
    // About 200 records to a segment: more spilled than that means rolls.
    assert!(st.spilled > 400, "the test spilled and rolled: {st:?}");
    eprintln!(
        "spilled {} messages from {} producers",
        st.spilled,
        sent.len()
    );
    // A last consumer drains what is left (it exits after 3 s idle).
    let mut last = Worker::spawn(WORKER, &["work-ids", d, "kills", "a"]);
    let out = last.read_all();
    assert!(
        wait_exit(&mut last, LONG),
        "the last consumer did not finish"
    );
    outputs.push(out.join().unwrap());
    // Every message whose publish returned was delivered (and acked at the
    // end); within each producer, in its order.
    let mut got: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for line in outputs.iter().flat_map(|o| o.lines()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if let ["got", _seq, _attempt, id, idx] = w[..] {
            if let (Ok(id), Ok(idx)) = (id.parse::<u32>(), idx.parse::<u64>()) {
                got.entry(id).or_default().insert(idx);
            }
        }
    }
    for (id, last) in &sent {
        let have = got.get(id).cloned().unwrap_or_default();
        let missing: Vec<u64> = (0..=*last).filter(|i| !have.contains(i)).take(5).collect();
        assert!(
            missing.is_empty(),
            "producer {id}: never delivered {missing:?}"
        );
    }
    let st = q.stats();
    assert_eq!(st.spill_lost, 0, "{st:?}");
    assert_eq!(
        st.groups[0].committed, st.next_seq,
        "everything finished: {st:?}"
    );
    assert_eq!(st.spill_depth, 0);
}

fn wait_exit(w: &mut Worker, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if w.exited() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_disk_backed_spilling_queue_survives_unmapping_and_a_dropped_page_cache() {
    // The temp dir is on the machine's disk (not /dev/shm).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let o = spill_opts(dir.path(), 64, 128).sync(shmq::SyncMode::Always);
    {
        let q = Queue::create("disk", &o).unwrap();
        q.create_group("a", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        for i in 0..2000u64 {
            p.publish(&i.to_le_bytes()).unwrap();
        }
        q.flush().unwrap();
    }
    // Everything is unmapped. Write back and drop the page cache where the
    // machine allows it (root on Linux), so the reopen reads the disk.
    let _ = std::process::Command::new("sync").status();
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    eprintln!("page cache dropped: {dropped}");
    let q = Queue::open_with("disk", &o).unwrap();
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    for i in 0..2000u64 {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((m.seq(), m.payload()), (i, &i.to_le_bytes()[..]));
    }
    assert!(c.try_receive().unwrap().is_none());
}
