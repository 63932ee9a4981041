//! In-process behaviour of the public API.

use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Error, Meta, Options, Overflow, Queue, Seek, Start};

fn opts(dir: &tempfile::TempDir) -> Options {
    Options::new().dir(dir.path()).slots(8).slot_size(64)
}

#[test]
fn round_trip_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("rt", &opts(&dir)).unwrap();
    assert_eq!(q.spill_dir(), None); // overflow=block
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let s0 = p.publish(b"one").unwrap();
    let s1 = p
        .publish_with(b"two", &Meta::new().type_id(9).correlation_id(77))
        .unwrap();
    assert_eq!((s0, s1), (0, 1));
    let m = c.receive().unwrap();
    assert_eq!((m.seq(), m.payload(), m.attempt()), (0, &b"one"[..], 1));
    assert!(m.timestamp_ns() >= before);
    drop(m);
    let m = c.receive_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(m.payload(), b"two");
    assert_eq!((m.type_id(), m.correlation_id()), (9, 77));
    drop(m);
    assert!(c.try_receive().unwrap().is_none());
    assert!(matches!(
        c.receive_timeout(Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
}

#[test]
fn every_group_gets_every_message_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("fan", &opts(&dir).slots(16)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..10u32 {
        p.publish(&i.to_le_bytes()).unwrap();
    }
    for g in ["a", "b"] {
        let mut c = q.consumer(g, ConsumerOptions::new()).unwrap();
        for i in 0..10u32 {
            let m = c.receive().unwrap();
            assert_eq!(m.payload(), i.to_le_bytes());
            assert_eq!(m.seq(), i as u64);
        }
    }
}

#[test]
fn messages_before_any_group_are_kept_then_overflow_applies() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("early", &opts(&dir).overflow(Overflow::Reject)).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..8u8 {
        p.publish(&[i]).unwrap();
    }
    assert!(matches!(p.publish(b"x"), Err(Error::Full)));
    assert_eq!(q.stats().rejected, 1);
    let mut c = q.consumer("late", ConsumerOptions::new()).unwrap();
    for i in 0..8u8 {
        assert_eq!(c.receive().unwrap().payload(), [i]);
    }
    // Room again once the group moved on.
    p.publish(b"x").unwrap();
}

#[test]
fn start_positions() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("starts", &opts(&dir)).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..5u8 {
        p.publish(&[i]).unwrap();
    }
    q.create_group("latest", Start::Latest).unwrap();
    q.create_group("three", Start::Seq(3)).unwrap();
    q.create_group("far", Start::Seq(1000)).unwrap();
    p.publish(&[5]).unwrap();
    let first = |g: &str| {
        let mut c = q.consumer(g, ConsumerOptions::new()).unwrap();
        let m = c.receive().unwrap();
        m.payload()[0]
    };
    assert_eq!(first("latest"), 5);
    assert_eq!(first("three"), 3);
    assert_eq!(first("far"), 5, "a seq past the end is clamped to the end");
    let mut c = q
        .consumer("new", ConsumerOptions::new().start(Start::Latest))
        .unwrap();
    assert!(c.try_receive().unwrap().is_none());
}

#[test]
fn blocked_publisher_resumes_when_space_frees() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("block", &opts(&dir)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..8u8 {
        p.publish(&[i]).unwrap();
    }
    assert!(matches!(
        p.publish_timeout(b"x", Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let mut c = q2.consumer("g", ConsumerOptions::new()).unwrap();
        let mut got = Vec::new();
        while got.len() < 108 {
            let m = c.receive_timeout(Duration::from_secs(10)).unwrap();
            got.push(m.payload()[0]);
        }
        got
    });
    for i in 8..108u8 {
        p.publish_timeout(&[i], Duration::from_secs(10)).unwrap();
    }
    let got = t.join().unwrap();
    assert_eq!(got, (0..108).collect::<Vec<u8>>());
}

#[test]
fn too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("big", &opts(&dir)).unwrap();
    let mut p = q.producer().unwrap();
    assert!(matches!(
        p.publish(&[0; 65]),
        Err(Error::TooLarge {
            len: 65,
            max: 64,
            payload: 65,
            ..
        })
    ));
    assert!(matches!(p.reserve(65), Err(Error::TooLarge { .. })));
    p.publish(&[0; 64]).unwrap();
}

#[test]
fn reserve_commit_and_abort() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("res", &opts(&dir)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let mut r = p.reserve(10).unwrap();
    r[..5].copy_from_slice(b"hello");
    r.truncate(5);
    r.set_meta(Meta::new().type_id(3));
    assert_eq!(r.commit().unwrap(), 0);
    drop(p.reserve(4).unwrap()); // dropped: aborted
    p.publish(b"after").unwrap();
    let m = c.receive().unwrap();
    assert_eq!((m.payload(), m.type_id()), (&b"hello"[..], 3));
    drop(m);
    let m = c.receive().unwrap();
    assert_eq!((m.seq(), m.payload()), (2, &b"after"[..]));
    drop(m);
    let s = q.stats();
    assert_eq!((s.published, s.aborted), (2, 1));
}

#[test]
fn stalled_reservation_is_aborted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir).unblock_timeout(Duration::from_millis(150));
    let q = Queue::create("stuck", &o).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut slow = q.producer().unwrap();
    let mut fast = q.producer().unwrap();
    let r = slow.reserve(3).unwrap();
    fast.publish(b"behind").unwrap();
    let t0 = Instant::now();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!((m.seq(), m.payload()), (1, &b"behind"[..]));
    drop(m);
    assert!(matches!(r.commit(), Err(Error::Aborted)));
    assert_eq!(q.stats().aborted, 1);
    // The slot of the aborted position is usable again on the next lap.
    for i in 0..20u8 {
        fast.publish(&[i]).unwrap();
        assert_eq!(c.receive().unwrap().payload(), [i]);
    }
}

#[test]
fn an_aborted_writer_still_writing_keeps_its_slot_from_the_next_lap() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir).unblock_timeout(Duration::from_millis(50));
    let q = Queue::create("held", &o).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut slow = q.producer().unwrap();
    let mut fast = q.producer().unwrap();
    let mut r = slow.reserve(4).unwrap();
    assert_eq!(r.seq(), 0);
    fast.publish(b"1").unwrap();
    // The consumer gives up on position 0 and reads position 1.
    assert_eq!(c.receive_timeout(Duration::from_secs(5)).unwrap().seq(), 1);
    // A full lap later position 8 maps to slot 0, which the slow producer
    // (alive, still holding its reservation) may still be writing: it is
    // skipped, never written, and the message goes to position 9.
    for i in 2..=8u8 {
        fast.publish(&[i]).unwrap();
    }
    r.copy_from_slice(b"late");
    let got: Vec<(u64, Vec<u8>)> = (0..7)
        .map(|_| {
            let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
            (m.seq(), m.payload().to_vec())
        })
        .collect();
    assert_eq!(got.last().unwrap(), &(9, vec![8]));
    assert!(got.iter().all(|(seq, _)| *seq != 8));
    assert_eq!(q.stats().aborted, 2);
    // The slow producer finishes: its commit fails and it lets go of the
    // slot, which the next lap (position 16) uses again.
    assert!(matches!(r.commit(), Err(Error::Aborted)));
    for i in 10..=16u8 {
        assert_eq!(fast.publish(&[i]).unwrap(), i as u64);
        assert_eq!(c.receive().unwrap().payload(), [i]);
    }
}

#[test]
fn acking_an_auto_delivery_releases_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("auto-ack", &opts(&dir).overflow(Overflow::Reject)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    // Three laps of an 8-slot ring: every ack must free its slot.
    for i in 0..24u8 {
        p.publish(&[i]).unwrap();
        let m = c.receive().unwrap();
        assert_eq!(m.payload(), [i]);
        m.ack().unwrap();
    }
    assert_eq!(q.stats().depth, 0);
}

#[test]
fn batches() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("batch", &opts(&dir).slots(16)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let msgs: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; i as usize]).collect();
    assert_eq!(p.publish_batch(&msgs).unwrap(), 0);
    let b = c.receive_batch(5, Duration::from_secs(1)).unwrap();
    assert_eq!(b.len(), 5);
    let seqs: Vec<u64> = b.iter().map(|m| m.seq()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    drop(b);
    let b = c.receive_batch(100, Duration::from_secs(1)).unwrap();
    assert_eq!(b.len(), 7);
    for (m, i) in b.iter().zip(5u8..) {
        assert_eq!(m.payload(), vec![i; i as usize]);
    }
    drop(b);
    let b = c.receive_batch(4, Duration::from_millis(10)).unwrap();
    assert!(b.is_empty());
    drop(b);
    // A batch larger than the ring is split into several claims.
    let big: Vec<[u8; 1]> = (0..40u8).map(|i| [i]).collect();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let mut p = q2.producer().unwrap();
        p.publish_batch(&big).unwrap()
    });
    let mut got = Vec::new();
    while got.len() < 40 {
        let b = c.receive_batch(64, Duration::from_secs(5)).unwrap();
        got.extend(b.iter().map(|m| m.payload()[0]));
    }
    assert_eq!(t.join().unwrap(), 12);
    assert_eq!(got, (0..40).collect::<Vec<u8>>());
    assert!(p.publish_batch::<&[u8]>(&[]).is_err());
}

/// A slot's first cache line holds the header and the payload's first
/// 32 bytes, written after the rest: every length on both sides of that
/// boundary (and of the second line's) comes back whole, with its
/// metadata, from a single publish and from a batch.
#[test]
fn every_payload_length_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("lengths", &opts(&dir).slots(256).slot_size(200)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let body = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 7 + len) as u8).collect() };
    for len in 0..=200usize {
        let meta = Meta::new()
            .type_id(len as u32)
            .correlation_id(!(len as u64));
        p.publish_with(&body(len), &meta).unwrap();
        let m = c.try_receive().unwrap().expect("just published");
        assert_eq!(m.payload(), &body(len)[..], "length {len}");
        assert_eq!(
            (m.type_id(), m.correlation_id()),
            (len as u32, !(len as u64))
        );
    }
    let all: Vec<Vec<u8>> = (0..=200).map(body).collect();
    p.publish_batch(&all).unwrap();
    let mut got = Vec::new();
    while got.len() < all.len() {
        let b = c.receive_batch(64, Duration::from_secs(5)).unwrap();
        got.extend(b.iter().map(|m| m.payload().to_vec()));
    }
    assert_eq!(got, all);
}

#[test]
fn a_consumers_position_is_readable_beside_its_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("position", &opts(&dir).slots(16)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    assert_eq!(c.position(), 0);
    for i in 0..6u8 {
        p.publish(&[i]).unwrap();
    }
    let d = c.try_receive().unwrap().unwrap();
    assert_eq!((d.seq(), d.consumer_position()), (0, 1));
    drop(d);
    assert_eq!(c.position(), 1);
    let b = c.receive_batch(3, Duration::from_secs(1)).unwrap();
    assert_eq!((b.len(), b.consumer_position()), (3, 4));
    drop(b);
    assert_eq!(c.position(), 4);
    c.seek(Seek::Earliest).unwrap();
    assert_eq!(c.position(), 0);
}

#[test]
fn a_batch_waits_for_room_at_most_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("batch-timeout", &opts(&dir).slots(8)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let wait = Duration::from_secs(1);
    assert_eq!(p.publish_batch_timeout(&[[1u8]; 6], wait).unwrap(), (0, 6));
    // 2 free, 3 asked: one claim, so none of it, after the timeout.
    let t = Instant::now();
    assert!(matches!(
        p.publish_batch_timeout(&[[2u8]; 3], Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(q.stats().published, 6);
    // A consumer frees room: the batch goes in.
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    drop(c.receive_batch(8, wait).unwrap());
    assert_eq!(p.publish_batch_timeout(&[[3u8]; 3], wait).unwrap(), (6, 3));
    // Larger than the ring, nobody reading: the first ring-sized part goes
    // in and the rest times out, which the count says.
    drop(c.receive_batch(8, wait).unwrap());
    let big = [[4u8]; 20];
    let (first, n) = p
        .publish_batch_timeout(&big, Duration::from_millis(50))
        .unwrap();
    assert_eq!((first, n), (9, 8));
    assert_eq!(q.stats().published, 17);
}

/// A publish that may not wait takes the room there is: a blocked
/// publisher waits for a worthwhile amount of room (an eighth of the
/// ring), but one out of time must not hold out for it.
#[test]
fn a_publish_out_of_time_takes_the_room_there_is() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("little-room", &opts(&dir).slots(64)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..64u8 {
        p.publish(&[i]).unwrap();
    }
    assert!(matches!(p.try_publish(b"x"), Err(Error::Timeout)));
    // One slot free again, fewer than the 8 a blocked publisher waits for.
    drop(c.try_receive().unwrap().unwrap());
    drop(c.try_receive().unwrap().unwrap()); // releases the first
    assert_eq!(p.try_publish(b"a").unwrap(), 64);
    drop(c.try_receive().unwrap().unwrap());
    let meta = Meta::new();
    assert_eq!(
        p.publish_with_timeout(b"b", &meta, Duration::ZERO).unwrap(),
        65
    );
    drop(c.try_receive().unwrap().unwrap());
    assert_eq!(
        p.publish_batch_timeout(&[b"c"], Duration::ZERO).unwrap(),
        (66, 1)
    );
}

#[test]
fn typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("typed", &opts(&dir)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_value(&[1u64, 2, 3]).unwrap();
    let m = c.receive().unwrap();
    assert_eq!(m.value::<[u64; 3]>().unwrap(), &[1, 2, 3]);
    assert!(m.value::<[u64; 4]>().is_err());
}

#[test]
fn seek_replays_what_is_retained() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("seek", &opts(&dir)).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u8 {
        // Timestamps are microsecond-grained: space the messages out so
        // that each has its own.
        std::thread::sleep(Duration::from_millis(2));
        p.publish(&[i]).unwrap();
    }
    for _ in 0..4 {
        c.receive().unwrap();
    }
    assert_eq!(c.seek(Seek::Earliest).unwrap(), 0);
    assert_eq!(c.receive().unwrap().payload(), [0]);
    assert_eq!(c.seek(Seek::Seq(2)).unwrap(), 2);
    let ts = {
        let m = c.receive().unwrap();
        assert_eq!(m.payload(), [2]);
        m.timestamp_ns()
    };
    assert_eq!(c.seek(Seek::Time(ts)).unwrap(), 2);
    assert_eq!(c.seek(Seek::Latest).unwrap(), 4);
    assert!(c.try_receive().unwrap().is_none());
    // Another handle may not seek a group with a live consumer.
    assert!(matches!(
        q.seek_group("g", Seek::Earliest),
        Err(Error::Busy(_))
    ));
    drop(c);
    assert_eq!(q.seek_group("g", Seek::Seq(1)).unwrap(), 1);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive().unwrap().payload(), [1]);
}

#[test]
fn groups_list_delete_and_exclusive_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("groups", &opts(&dir).max_groups(2)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    assert!(matches!(
        q.create_group("a", Start::Earliest),
        Err(Error::Exists(_))
    ));
    let c = q.consumer("b", ConsumerOptions::new()).unwrap();
    assert!(matches!(
        q.create_group("c", Start::Earliest),
        Err(Error::Busy(_))
    ));
    assert!(matches!(
        q.consumer("b", ConsumerOptions::new()),
        Err(Error::Busy(_))
    ));
    assert!(matches!(q.delete_group("b"), Err(Error::Busy(_))));
    let names: Vec<(String, bool)> = q
        .groups()
        .into_iter()
        .map(|g| (g.name, g.consumer_attached))
        .collect();
    assert_eq!(names, [("a".into(), false), ("b".into(), true)]);
    drop(c);
    q.delete_group("b").unwrap();
    assert!(matches!(q.delete_group("b"), Err(Error::NotFound(_))));
    assert!(matches!(
        q.create_group("bad/name", Start::Earliest),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn deleting_the_slow_group_frees_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("del", &opts(&dir).overflow(Overflow::Reject)).unwrap();
    q.create_group("slow", Start::Earliest).unwrap();
    let mut fast = q.consumer("fast", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..8u8 {
        p.publish(&[i]).unwrap();
        fast.receive().unwrap();
    }
    assert!(matches!(p.publish(b"x"), Err(Error::Full)));
    q.delete_group("slow").unwrap();
    p.publish(b"x").unwrap();
}

#[test]
fn stats_report_cursors_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("stats", &opts(&dir)).unwrap();
    q.create_group("idle", Start::Earliest).unwrap();
    let mut c = q.consumer("busy", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    for _ in 0..5 {
        p.publish(b"m").unwrap();
    }
    for _ in 0..3 {
        c.receive().unwrap();
    }
    let s = q.stats();
    assert_eq!((s.next_seq, s.published, s.depth), (5, 5, 5));
    assert_eq!((s.producers, s.consumers), (1, 1));
    let busy = s.groups.iter().find(|g| g.name == "busy").unwrap();
    assert_eq!((busy.next, busy.lag, busy.delivered), (3, 2, 3));
    drop(p);
    assert_eq!(q.stats().producers, 0);
}

#[test]
fn a_queue_outlives_its_handles() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir);
    {
        let q = Queue::create("persist", &o).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        p.publish(b"kept").unwrap();
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        p.publish(b"also kept").unwrap();
        assert_eq!(c.receive().unwrap().payload(), b"kept");
    }
    let q = Queue::open_with("persist", &o).unwrap();
    assert_eq!(q.slots(), 8);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive().unwrap().payload(), b"also kept");
    let q2 = Queue::open_or_create("persist", &Options::new().dir(dir.path()).slots(64)).unwrap();
    assert_eq!(q2.slots(), 8, "an existing queue keeps its options");
    // This process's own consumer does not hold it.
    Queue::remove("persist", &o).unwrap();
    drop(c);
    assert!(matches!(
        Queue::open_with("persist", &o),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        Queue::remove("persist", &o),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn files_are_private_exclusive_and_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir);
    let q = Queue::create("mode", &o).unwrap();
    let mode = std::fs::metadata(q.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(matches!(Queue::create("mode", &o), Err(Error::Exists(_))));
    let q = Queue::create("shared", &o.clone().mode(0o660)).unwrap();
    let mode = std::fs::metadata(q.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert!(matches!(
        Queue::create("m2", &o.clone().mode(0o7777)),
        Err(Error::InvalidOption(_))
    ));
    let target = dir.path().join("target");
    std::fs::write(&target, b"").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("link.shmq")).unwrap();
    assert!(matches!(Queue::create("link", &o), Err(Error::Exists(_))));
    assert!(matches!(
        Queue::open_with("link", &o),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn bad_names_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir);
    for name in ["", "a/b", "..", &"x".repeat(201)] {
        assert!(
            matches!(Queue::create(name, &o), Err(Error::InvalidName { .. })),
            "{name:?}"
        );
        assert!(matches!(
            Queue::open_with(name, &o),
            Err(Error::InvalidName { .. })
        ));
    }
    for bad in [
        o.clone().slots(12),
        o.clone().slots(1),
        o.clone().slot_size(0),
        o.clone().max_groups(0),
    ] {
        assert!(matches!(
            Queue::create("x", &bad),
            Err(Error::InvalidOption(_))
        ));
    }
    assert!(!dir.path().join("x.shmq").exists());
}

#[test]
fn try_publish_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("try", &opts(&dir).slots(4)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u64 {
        assert_eq!(p.try_publish(&i.to_le_bytes()).unwrap(), i);
    }
    let t0 = Instant::now();
    assert!(matches!(
        p.try_publish_with(b"x", &Meta::new().type_id(1)),
        Err(Error::Timeout)
    ));
    assert!(t0.elapsed() < Duration::from_secs(1), "did not wait");
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    drop(c.receive().unwrap());
    assert_eq!(
        p.try_publish_with(b"y", &Meta::new().type_id(2)).unwrap(),
        4
    );
    let rq = Queue::create(
        "try-reject",
        &opts(&dir).slots(2).overflow(Overflow::Reject),
    )
    .unwrap();
    rq.create_group("g", Start::Earliest).unwrap();
    let mut p = rq.producer().unwrap();
    p.try_publish(b"a").unwrap();
    p.try_publish(b"b").unwrap();
    assert!(matches!(p.try_publish(b"c"), Err(Error::Full)));
}
