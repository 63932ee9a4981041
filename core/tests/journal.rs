//! The journal: every message also kept in segment files, by age and by
//! bytes, so that a group can replay from any retained seq or time.

use std::time::Duration;

use shmq::{
    Ack, ConsumerOptions, Error, Options, Overflow, Queue, Retention, Seek, Start, SyncMode,
};

const SEG: u64 = 64 << 10;

fn opts(dir: &tempfile::TempDir, retention: Retention) -> Options {
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
    Options::new()
        .dir(dir.path().join("q"))
        .slots(16)
        .slot_size(256)
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(SEG)
        .journal(retention)
}

fn forever() -> Retention {
    Retention::new(Duration::from_secs(3600), 64 * SEG)
}

fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("message {i} ").into_bytes();
    v.resize(16 + (i % 100) as usize, b'.');
    v
}

/// Receives `n` messages, checking they are `from, from + 1, ...`.
fn expect(c: &mut shmq::Consumer, from: u64, n: u64) {
    for i in from..from + n {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(m.seq(), i);
        assert_eq!(m.payload(), payload(i), "seq {i}");
    }
}

/// Publishes `seqs` one at a time, each received (and let go) by `c` at
/// once, so the group keeps up and the ring moves on.
fn publish_and_read(p: &mut shmq::Producer, c: &mut shmq::Consumer, seqs: std::ops::Range<u64>) {
    for i in seqs {
        p.publish(&payload(i)).unwrap();
        drop(c.receive_timeout(Duration::from_secs(5)).unwrap());
    }
}

#[test]
fn a_group_replays_far_beyond_what_the_ring_holds() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("replay", &opts(&dir, forever())).unwrap();
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..1000 {
        p.publish(&payload(i)).unwrap();
        if i % 10 == 9 {
            expect(&mut c, i - 9, 10);
        }
    }
    drop(p);
    let j = q.stats().journal.unwrap();
    assert_eq!((j.first_seq, j.next_seq, j.journaled), (0, 1000, 1000));
    assert!(j.segments > 1, "rolled: {j:?}");
    // The ring holds 16; the journal all 1,000.
    assert_eq!(c.seek(Seek::Seq(3)).unwrap(), 3);
    expect(&mut c, 3, 997);
    assert!(c.try_receive().unwrap().is_none());
    // Back in the ring: new messages flow as usual.
    let mut p = q.producer().unwrap();
    p.publish(&payload(1000)).unwrap();
    expect(&mut c, 1000, 1);
    // Earliest is the journal's oldest message.
    assert_eq!(c.seek(Seek::Earliest).unwrap(), 0);
    expect(&mut c, 0, 1001);
}

#[test]
fn seek_by_time_replays_exactly_the_messages_from_that_time_on() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("time", &opts(&dir, forever())).unwrap();
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let mut stamps = Vec::new();
    for i in 0..300 {
        p.publish(&payload(i)).unwrap();
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        stamps.push(m.timestamp_ns());
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for cut in [0usize, 1, 100, 150, 299] {
        let t = stamps[cut];
        let first = stamps.iter().position(|&s| s >= t).unwrap() as u64;
        assert_eq!(c.seek(Seek::Time(t)).unwrap(), first, "cut {cut}");
        expect(&mut c, first, 300 - first);
        assert!(c.try_receive().unwrap().is_none());
    }
    // A time before everything: the oldest retained; after: latest.
    assert_eq!(c.seek(Seek::Time(1)).unwrap(), 0);
    assert_eq!(c.seek(Seek::Time(u64::MAX)).unwrap(), 300);
}

#[test]
fn retention_by_bytes_keeps_the_newest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "bytes",
        &opts(&dir, Retention::new(Duration::from_secs(3600), 3 * SEG)),
    )
    .unwrap();
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    publish_and_read(&mut p, &mut c, 0..5000);
    drop(p);
    let j = q.stats().journal.unwrap();
    assert!(j.segments <= 3 && j.bytes_on_disk <= 3 * SEG, "{j:?}");
    assert!(j.first_seq > 0 && j.expired == j.first_seq, "{j:?}");
    // Earliest is the oldest retained message; a seq before it is clamped.
    assert_eq!(c.seek(Seek::Earliest).unwrap(), j.first_seq);
    expect(&mut c, j.first_seq, 5000 - j.first_seq);
    assert_eq!(c.seek(Seek::Seq(0)).unwrap(), j.first_seq);
}

#[test]
fn retention_by_age_deletes_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "age",
        &opts(&dir, Retention::new(Duration::from_millis(100), 64 * SEG)),
    )
    .unwrap();
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    publish_and_read(&mut p, &mut c, 0..2500);
    let before = q.stats().journal.unwrap();
    assert_eq!(before.first_seq, 0);
    assert!(before.segments >= 3, "{before:?}");
    // Age is looked at about once a second, when the journal is written.
    std::thread::sleep(Duration::from_millis(1100));
    publish_and_read(&mut p, &mut c, 2500..2800);
    drop(p);
    // Every segment whose records are all older than 100 ms is gone: what
    // is left starts with the segment that was being written at the pause.
    let after = q.stats().journal.unwrap();
    assert!(after.first_seq > 0, "{before:?} -> {after:?}");
    assert!(after.segments <= 2, "{before:?} -> {after:?}");
    assert_eq!(after.expired, after.first_seq);
    let mut c2 = q.consumer("b", ConsumerOptions::new()).unwrap();
    assert_eq!(c2.position(), after.first_seq);
    expect(&mut c2, after.first_seq, 2800 - after.first_seq);
}

#[test]
fn a_new_group_at_earliest_gets_everything_the_journal_holds() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("late", &opts(&dir, forever())).unwrap();
    q.create_group("first", Start::Earliest).unwrap();
    let mut c = q.consumer("first", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    publish_and_read(&mut p, &mut c, 0..500);
    // Long after the ring moved on, a new group starts at the beginning.
    let mut late = q.consumer("late", ConsumerOptions::new()).unwrap();
    assert_eq!(late.position(), 0);
    expect(&mut late, 0, 500);
    // While replaying, batches are refused with a clear error.
    late.seek(Seek::Seq(10)).unwrap();
    let e = late
        .receive_batch(8, Duration::from_millis(10))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidOption(_)), "{e}");
    expect(&mut late, 10, 490);
    let b = late.receive_batch(8, Duration::from_millis(10)).unwrap();
    assert!(b.is_empty());
}

#[test]
fn a_manual_group_does_not_replay_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("manual", &opts(&dir, forever())).unwrap();
    let mut c = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..100 {
        p.publish(&payload(i)).unwrap();
        c.receive_timeout(Duration::from_secs(5))
            .unwrap()
            .ack()
            .unwrap();
    }
    let head = q.stats().oldest_seq;
    assert!(head > 0);
    // A seek into the journal stays at what the ring retains.
    assert_eq!(c.seek(Seek::Seq(0)).unwrap(), head);
}

#[test]
fn the_journal_and_the_spill_work_together_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir, forever())
        .overflow(Overflow::Spill)
        .sync(SyncMode::EveryN(16));
    {
        let q = Queue::create("both", &o).unwrap();
        q.create_group("a", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        // No consumer: the ring fills, the rest spills.
        for i in 0..600 {
            p.publish(&payload(i)).unwrap();
        }
        let s = q.stats();
        assert!(s.spilled > 500, "{s:?}");
        let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
        expect(&mut c, 0, 600);
    }
    let q = Queue::open_with("both", &o).unwrap();
    let j = q.stats().journal.unwrap();
    assert_eq!((j.first_seq, j.next_seq), (0, 600));
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    c.seek(Seek::Earliest).unwrap();
    expect(&mut c, 0, 600);
    drop(c);
    drop(q);
    Queue::remove("both", &o).unwrap();
    assert!(!dir.path().join("spill").join("journal").exists());
}

#[test]
fn journal_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for r in [
        Retention::new(Duration::ZERO, 64 * SEG),
        Retention::new(Duration::from_secs(1), SEG),
    ] {
        let e = Queue::create("bad", &opts(&dir, r)).unwrap_err();
        assert!(matches!(e, Error::InvalidOption(_)), "{e}");
    }
}

#[test]
fn a_replaying_group_chases_the_writer_across_rolls() {
    // Group b replays from the journal while a producer keeps publishing
    // (and the journal keeps rolling to new segments under it), and seeks
    // back now and then: it gets every seq once per pass, in order, with
    // its payload, whether it read it from the journal or from the ring.
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("chase", &opts(&dir, forever())).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    const N: u64 = 20_000;
    let qa = q.clone();
    let a = std::thread::spawn(move || {
        let mut c = qa.consumer("a", ConsumerOptions::new()).unwrap();
        expect(&mut c, 0, N);
    });
    let qp = q.clone();
    let producer = std::thread::spawn(move || {
        let mut p = qp.producer().unwrap();
        for i in 0..N {
            p.publish(&payload(i)).unwrap();
        }
    });
    let mut b = q.consumer("b", ConsumerOptions::new()).unwrap();
    let mut next = 0;
    let mut passes = 0;
    while next < N {
        let m = b.receive_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(m.seq(), next);
        assert_eq!(m.payload(), payload(next), "seq {next}");
        next += 1;
        if next % 3000 == 0 && passes < 5 {
            drop(m);
            passes += 1;
            next = b.seek(Seek::Seq(next - 2500)).unwrap();
        }
    }
    producer.join().unwrap();
    a.join().unwrap();
    assert!(q.stats().journal.unwrap().segments > 3);
}

#[test]
fn retention_deleting_what_a_lagging_replay_reads_skips_only_expired_messages() {
    // A tiny journal (3 segments) and a group replaying far behind while a
    // producer writes a lot: retention deletes segments under the reader.
    // It never sees garbage: each message it gets is the one of its seq,
    // seqs only grow, and it ends up caught up.
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "lag",
        &opts(&dir, Retention::new(Duration::from_secs(3600), 3 * SEG)),
    )
    .unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    const N: u64 = 30_000;
    let qa = q.clone();
    let a = std::thread::spawn(move || {
        let mut c = qa.consumer("a", ConsumerOptions::new()).unwrap();
        expect(&mut c, 0, N);
    });
    let qp = q.clone();
    let producer = std::thread::spawn(move || {
        let mut p = qp.producer().unwrap();
        for i in 0..N {
            p.publish(&payload(i)).unwrap();
        }
    });
    // Once a few thousand are out, the slow group starts at the journal's
    // earliest: it replays, far behind, while the producer goes on.
    while q.stats().next_seq < 5000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut slow = q.consumer("slow", ConsumerOptions::new()).unwrap();
    let mut last = None;
    let mut got = 0u64;
    loop {
        match slow.receive_timeout(Duration::from_millis(500)) {
            Ok(m) => {
                assert_eq!(m.payload(), payload(m.seq()), "seq {}", m.seq());
                assert!(
                    last.is_none_or(|l| m.seq() > l),
                    "{last:?} then {}",
                    m.seq()
                );
                last = Some(m.seq());
                got += 1;
                if got % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(Error::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
    }
    producer.join().unwrap();
    a.join().unwrap();
    assert_eq!(last, Some(N - 1), "caught up");
    let j = q.stats().journal.unwrap();
    assert!(j.expired > 0, "retention ran: {j:?}");
    assert!(
        got < N,
        "the slow group lost only what expired ({got} of {N})"
    );
}

#[test]
fn a_replaying_groups_oldest_unfinished_message_is_found_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("age", &opts(&dir, forever())).unwrap();
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    publish_and_read(&mut p, &mut c, 0..100);
    drop(c);
    std::thread::sleep(Duration::from_millis(50));
    let before = shmq::Meta::new().ordering_key("late");
    p.publish_with(&payload(100), &before).unwrap();
    let a = &q.groups()[0];
    assert!(a.oldest_unacked_age_ns < 50_000_000, "{a:?}");
    assert_eq!(q.seek_group("a", Seek::Seq(3)).unwrap(), 3);
    let a = &q.groups()[0];
    assert!(
        a.committed < q.stats().oldest_seq,
        "{a:?}: replays from the journal"
    );
    assert!(a.oldest_unacked_age_ns >= 50_000_000, "{a:?}");
    assert_eq!(a.oldest_unacked_key, None);
}
