//! overflow=spill in one process: messages beyond the ring go to segment
//! files and come back in order; budgets, fallbacks, damage and recovery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shmq::{Ack, ConsumerOptions, Error, Meta, Nack, Options, Overflow, Queue, Start, SyncMode};

const SEG: u64 = 64 << 10;

fn opts(dir: &tempfile::TempDir) -> Options {
    Options::new()
        .dir(dir.path().join("q"))
        .slots(16)
        .slot_size(256)
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(SEG)
}

fn setup(dir: &tempfile::TempDir) {
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    v.sort();
    v
}

fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("message {i} ").into_bytes();
    v.resize(20 + (i % 200) as usize, b'x');
    v
}

fn drain(q: &Queue, group: &str, from: u64, n: u64) {
    let mut c = q.consumer(group, ConsumerOptions::new()).unwrap();
    for i in from..from + n {
        let m = c.receive_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(m.seq(), i, "group {group}");
        assert_eq!(m.payload(), payload(i), "seq {i}");
    }
    assert!(c.try_receive().unwrap().is_none());
}

#[test]
fn a_backlog_many_times_the_ring_comes_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let q = Queue::create("big", &opts(&dir)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    // 2,000 messages into a 16-slot ring with no consumer running: the
    // producer never blocks.
    for i in 0..2000 {
        let seq = p
            .publish_with(&payload(i), &Meta::new().type_id(i as u32))
            .unwrap();
        assert_eq!(seq, i);
    }
    let s = q.stats();
    assert_eq!(s.next_seq, 2000);
    assert_eq!(s.spilled, 2000 - 16);
    assert_eq!(s.spill_depth, 2000 - 16);
    assert!(
        s.spill_segments > 1,
        "rolled: {} segments",
        s.spill_segments
    );
    assert_eq!(
        s.spill_segments as usize,
        segment_files(&dir.path().join("spill")).len()
    );
    assert_eq!(s.depth, 2000);
    assert_eq!(s.groups[0].lag, 2000);
    // The ring is a window of `slots` messages that every group reads in:
    // spilled messages come back as the slowest group moves on.
    let mut a = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut b = q.consumer("b", ConsumerOptions::new()).unwrap();
    for i in 0..2000 {
        for c in [&mut a, &mut b] {
            let m = c.receive_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!((m.seq(), m.payload()), (i, &payload(i)[..]));
            assert_eq!(m.type_id(), i as u32);
        }
    }
    assert!(a.try_receive().unwrap().is_none());
    let s = q.stats();
    assert_eq!((s.spill_depth, s.spill_segments), (0, 0));
    assert!(segment_files(&dir.path().join("spill")).is_empty());
    // Back in the ring: the next publish is not spilled.
    assert_eq!(p.publish(&payload(2000)).unwrap(), 2000);
    assert_eq!(q.stats().spilled, 2000 - 16);
}

#[test]
fn consumers_read_through_while_the_producer_spills() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let q = Queue::create("through", &opts(&dir)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let n = 20_000;
    let q2 = q.clone();
    let producer = std::thread::spawn(move || {
        let mut p = q2.producer().unwrap();
        for i in 0..n {
            assert_eq!(p.publish(&payload(i)).unwrap(), i);
        }
    });
    drain(&q, "a", 0, n);
    producer.join().unwrap();
    let s = q.stats();
    assert_eq!(s.published, n);
    assert_eq!(s.spill_depth, 0);
}

#[test]
fn batches_and_manual_acks_go_through_the_spill() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let q = Queue::create("batch", &opts(&dir)).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let all: Vec<Vec<u8>> = (0..100).map(payload).collect();
    assert_eq!(p.publish_batch(&all).unwrap(), 0);
    assert_eq!(p.publish_batch(&all[..]).unwrap(), 100);
    let mut c = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    for i in 0..200u64 {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(m.payload(), payload(i % 100));
        if i == 50 {
            // A nack of a message that came from the spill delivers it again.
            m.nack(Nack::Requeue).unwrap();
            let again = c.receive_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!((again.seq(), again.attempt()), (50, 2));
            again.ack().unwrap();
        } else {
            m.ack().unwrap();
        }
    }
    assert_eq!(q.stats().groups[0].acked, 200);
}

#[test]
fn a_full_spill_rejects_or_blocks_and_never_drops() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir)
        .spill_max_bytes(SEG)
        .spill_fallback(Overflow::Reject);
    let q = Queue::create("budget", &o).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut published = 0;
    let err = loop {
        match p.publish(&payload(published)) {
            Ok(seq) => {
                assert_eq!(seq, published);
                published += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::SpillFull(_)), "{err}");
    assert!(err.to_string().contains("spill_max_bytes"), "{err}");
    assert!(published > 16 && published < 1000, "{published}");
    assert_eq!(q.stats().spill_full, 1);
    // A batch that does not fit is refused whole.
    assert!(matches!(
        p.publish_batch(&[payload(published), payload(published + 1)]),
        Err(Error::SpillFull(_))
    ));
    drain(&q, "a", 0, published);

    // Its own spill directory: the first queue's still belongs to it.
    let o = opts(&dir)
        .spill_max_bytes(SEG)
        .spill_dir(dir.path().join("spill-block"));
    let q = Queue::create("budget-block", &o).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut n = 0;
    loop {
        match p.publish_timeout(&payload(n), Duration::from_millis(50)) {
            Ok(_) => n += 1,
            Err(Error::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // A consumer frees room, and the blocked producer goes on.
    let q2 = q.clone();
    let consumer = std::thread::spawn(move || drain(&q2, "a", 0, n + 500));
    for i in n..n + 500 {
        assert_eq!(p.publish(&payload(i)).unwrap(), i);
    }
    consumer.join().unwrap();
}

#[test]
fn spilled_messages_survive_every_handle_closing() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir).sync(SyncMode::EveryN(7));
    {
        let q = Queue::create("reopen", &o).unwrap();
        q.create_group("a", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        for i in 0..500 {
            p.publish(&payload(i)).unwrap();
        }
        let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
        for i in 0..100 {
            assert_eq!(c.receive().unwrap().seq(), i);
        }
    }
    let q = Queue::open_with("reopen", &o).unwrap();
    assert_eq!(q.stats().spill_dir, Some(dir.path().join("spill")));
    assert_eq!(q.spill_dir(), Some(dir.path().join("spill")));
    drain(&q, "a", 100, 400);
}

#[test]
fn a_torn_tail_is_cut_off_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir);
    let spill = dir.path().join("spill");
    {
        let q = Queue::create("torn", &o).unwrap();
        q.create_group("a", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        for i in 0..40 {
            p.publish(&payload(i)).unwrap();
        }
    }
    // A process killed mid-append: garbage after the last record.
    let seg = segment_files(&spill).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let end = end.div_ceil(8) * 8;
    let mut f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(end as u64)).unwrap();
    f.write_all(&[0xAB; 100]).unwrap();
    drop(f);
    let q = Queue::open_with("torn", &o).unwrap();
    let mut p = q.producer().unwrap();
    assert_eq!(p.publish(&payload(40)).unwrap(), 40);
    drain(&q, "a", 0, 41);
    assert_eq!(q.stats().spill_lost, 0);
}

#[test]
fn a_damaged_record_is_skipped_and_counted_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir);
    let spill = dir.path().join("spill");
    let q = Queue::create("damaged", &o).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..40 {
        p.publish(&payload(i)).unwrap();
    }
    // Flip a byte inside the payload of the spill's third record (seq 18).
    let seg = segment_files(&spill).remove(0);
    let mut bytes = std::fs::read(&seg).unwrap();
    let needle = b"message 18 ";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at + 3] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    // The consumer gets everything but 18, in order.
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    for i in (0..40).filter(|&i| i != 18) {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((m.seq(), m.payload()), (i, &payload(i)[..]));
    }
    let s = q.stats();
    assert_eq!((s.spill_lost, s.published), (1, 39));
}

#[test]
fn bad_segments_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir);
    let spill = dir.path().join("spill");
    {
        let q = Queue::create("badseg", &o).unwrap();
        let mut p = q.producer().unwrap();
        for i in 0..100 {
            p.publish(&payload(i)).unwrap();
        }
    }
    let seg = segment_files(&spill).pop().unwrap();
    let good = std::fs::read(&seg).unwrap();
    // A foreign file under the segment's name.
    std::fs::write(&seg, vec![7u8; SEG as usize]).unwrap();
    let e = Queue::open_with("badseg", &o).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains(&*seg.to_string_lossy()), "{e}");
    assert!(e.to_string().contains("bad magic"), "{e}");
    // Truncated below its header.
    std::fs::write(&seg, &good[..30]).unwrap();
    let e = Queue::open_with("badseg", &o).unwrap_err();
    assert!(
        e.to_string().contains("shorter than a segment header"),
        "{e}"
    );
    // Deleted by hand.
    std::fs::remove_file(&seg).unwrap();
    let e = Queue::open_with("badseg", &o).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    // Put back: all is well again.
    std::fs::write(&seg, &good).unwrap();
    let q = Queue::open_with("badseg", &o).unwrap();
    drain(&q, "a", 0, 100);
}

#[test]
fn spill_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let bad = [
        opts(&dir).spill_segment_size(1000),
        opts(&dir).spill_max_bytes(SEG - 1),
        opts(&dir).spill_fallback(Overflow::Spill),
        opts(&dir).slot_size(70_000),
        opts(&dir).sync(SyncMode::EveryN(0)),
    ];
    for o in bad {
        let e = Queue::create("opts", &o).unwrap_err();
        assert!(matches!(e, Error::InvalidOption(_)), "{e}");
    }
    assert_eq!("every-8".parse::<SyncMode>().unwrap(), SyncMode::EveryN(8));
    assert!("every-0".parse::<SyncMode>().is_err());
    assert_eq!("spill".parse::<Overflow>().unwrap(), Overflow::Spill);
}

#[test]
fn reservations_and_keys_on_a_spilling_queue() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let q = Queue::create("keys", &opts(&dir)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..30 {
        p.publish(&payload(i)).unwrap();
    }
    // A keyed publish spills too, and its retry is recognised.
    let seq = p
        .publish_with(&payload(30), &Meta::new().key("k-30"))
        .unwrap();
    assert_eq!(seq, 30);
    assert_eq!(
        p.publish_with(&payload(30), &Meta::new().key("k-30"))
            .unwrap(),
        30
    );
    // A reservation needs a ring slot: it waits while the queue spills.
    assert!(matches!(
        p.reserve_timeout(4, Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
    drain(&q, "a", 0, 31);
    let mut r = p.reserve(4).unwrap();
    r.copy_from_slice(b"ring");
    assert_eq!(r.commit().unwrap(), 31);
}

#[test]
fn removing_the_queue_removes_its_spill() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir);
    let q = Queue::create("rm", &o).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..100 {
        p.publish(&payload(i)).unwrap();
    }
    assert!(!segment_files(&dir.path().join("spill")).is_empty());
    drop((p, q));
    Queue::remove("rm", &o).unwrap();
    assert!(segment_files(&dir.path().join("spill")).is_empty());
    // A new queue of the same name starts clean.
    let q = Queue::create("rm", &o).unwrap();
    assert_eq!(q.stats().spill_segments, 0);
}

#[test]
fn a_full_dead_letter_queue_overflows_to_its_own_segments() {
    // 4 DLQ entries; 300 poison messages: the rest go to the DLQ's overflow
    // segments, are listed, redriven (to their group only) and purged.
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let o = opts(&dir).dlq_slots(4).max_deliveries(1);
    let q = Queue::create("dlq-over", &o).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    q.create_group("other", Start::Latest).unwrap();
    let mut other = q.consumer("other", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let mut c = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    const N: u64 = 300;
    for i in 0..N {
        p.publish(&payload(i)).unwrap();
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(m.seq(), i);
        m.nack(Nack::DeadLetter).unwrap();
        drop(other.receive_timeout(Duration::from_secs(5)).unwrap());
    }
    assert!(
        dir.path()
            .join("spill")
            .join("dlq")
            .read_dir()
            .unwrap()
            .count()
            >= 1
    );
    let dlq = q.dlq();
    assert_eq!(dlq.len(), N);
    let listed = dlq.list().unwrap();
    assert_eq!(
        listed.iter().map(|d| d.seq).collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>(),
        "every dead letter, oldest first"
    );
    assert!(
        listed
            .iter()
            .all(|d| d.group == "w" && d.payload == payload(d.seq))
    );
    // Redrive one that is in the overflow, then all: group w gets each
    // once; group other gets none.
    assert_eq!(dlq.redrive(Some(250)).unwrap(), 1);
    assert_eq!(dlq.redrive(None).unwrap(), N - 1);
    let mut got = Vec::new();
    while let Ok(m) = c.receive_timeout(Duration::from_millis(300)) {
        assert_eq!(m.payload(), payload(m.seq()));
        got.push(m.seq());
        m.ack().unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert!(other.try_receive().unwrap().is_none());
    assert_eq!(dlq.len(), 0);
    // Dead-letter 100 more, then purge: region and overflow both empty.
    for i in N..N + 100 {
        p.publish(&payload(i)).unwrap();
        c.receive_timeout(Duration::from_secs(5))
            .unwrap()
            .nack(Nack::DeadLetter)
            .unwrap();
        drop(other.receive_timeout(Duration::from_secs(5)).unwrap());
    }
    assert_eq!(dlq.len(), 100);
    assert_eq!(dlq.purge().unwrap(), 100);
    assert_eq!(dlq.len(), 0);
    assert!(dlq.list().unwrap().is_empty());
}

#[test]
fn the_oldest_unfinished_message_is_found_in_the_spill() {
    // Group a has read the whole ring; the rest of its backlog is on disk
    // (group b holds the ring). Its oldest unfinished message is the
    // spill's first, whose age and key groups() must report.
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let q = Queue::create("age", &opts(&dir)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..100 {
        let key = format!("key-{i}");
        p.publish_with(&payload(i), &Meta::new().ordering_key(key.as_bytes()))
            .unwrap();
    }
    assert!(q.stats().spill_depth > 0, "the ring of 16 spilled");
    drain(&q, "a", 0, 16);
    std::thread::sleep(Duration::from_millis(50));
    let groups = q.groups();
    let a = groups.iter().find(|g| g.name == "a").unwrap();
    let b = groups.iter().find(|g| g.name == "b").unwrap();
    assert_eq!((a.committed, a.lag), (16, 84));
    assert_eq!(a.oldest_unacked_key.as_deref(), Some(&b"key-16"[..]));
    assert_eq!(b.oldest_unacked_key.as_deref(), Some(&b"key-0"[..]));
    assert!(a.oldest_unacked_age_ns >= 50_000_000, "{a:?}");
    assert!(
        b.oldest_unacked_age_ns >= a.oldest_unacked_age_ns,
        "{b:?} {a:?}"
    );
}

/// A process that only looks at a spilling queue (`stats`, as `shmq
/// exporter` and `shmq top` do) read the spill's oldest record to age the
/// groups' backlog, and kept every segment it had read mapped: the blocks
/// of a deleted file free only with its last mapping, so a long-lived
/// observer held the disk of segments long gone (the chaos run's watcher
/// filled its 4 MiB spill disk so). It keeps none of them now.
#[test]
fn a_process_that_only_looks_keeps_no_deleted_segment() {
    let dir = tempfile::tempdir().unwrap();
    setup(&dir);
    let q = Queue::create("look", &opts(&dir)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let observer = Queue::open_with("look", &opts(&dir)).unwrap();
    let mut p = q.producer().unwrap();
    let mut next = 0;
    for _ in 0..6 {
        // A backlog of a few segments, looked at, then drained (its
        // segments deleted).
        for _ in 0..2000 {
            p.publish(&payload(next)).unwrap();
            next += 1;
        }
        assert!(observer.stats().spill_depth > 0);
        drain(&q, "g", next - 2000, 2000);
    }
    let spill = dir.path().join("spill");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let held = maps
        .lines()
        .filter(|l| l.contains(spill.to_str().unwrap()) && l.ends_with("(deleted)"))
        .count();
    assert!(held <= 1, "{held} deleted segments still mapped:\n{maps}");
}
