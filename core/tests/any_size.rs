//! Messages of any size (issue #36): a message longer than a slot takes as
//! many consecutive slots as it needs, is one slice for its reader (also
//! where it runs past the end of the ring, which is mapped twice), and
//! goes through every path — single, batch, reserve, ack=manual with
//! ordering keys, spill and refill, journal replay, seeks — byte for byte.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use shmq::{Ack, ConsumerOptions, Error, Meta, Nack, Options, Overflow, Queue, Retention, Seek};

/// 128 slots of 256 bytes: a ring of whole pages (128 strides of 288
/// bytes: the 32-byte header and the payload, rounded up to 32, which
/// makes 128 slots whole pages).
fn opts(dir: &Path) -> Options {
    Options::new().dir(dir).slots(128).slot_size(256)
}

/// What a list of messages looks like in a failed assertion: each one's
/// length and a checksum, not its bytes.
fn sums(msgs: &[Vec<u8>]) -> Vec<(usize, u32)> {
    msgs.iter()
        .map(|m| {
            let sum = m.iter().fold(0u32, |a, &b| a.rotate_left(5) ^ u32::from(b));
            (m.len(), sum)
        })
        .collect()
}

/// A payload of `len` bytes that says which message it is all along.
fn payload(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (i as usize * 131 + k * 7 + k / 251) as u8)
        .collect()
}

fn auto(q: &Queue, group: &str) -> shmq::Consumer {
    q.consumer(group, ConsumerOptions::new().create(true))
        .unwrap()
}

#[test]
fn a_message_longer_than_a_slot_takes_consecutive_slots_and_is_one_slice() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    // The default: as much as half the ring holds (64 slots of 288 bytes,
    // less the 32-byte header).
    assert_eq!(p.max_payload(), 64 * 288 - 32);
    let big = payload(1, 5000);
    let a = p.publish(&big).unwrap();
    let b = p.publish(b"small").unwrap();
    // 32 + 5000 bytes take 18 slots of 288: the next seq is 18 on.
    assert_eq!(b, a + 18);
    let m = c.receive().unwrap();
    assert_eq!(m.seq(), a);
    assert!(m.payload() == &big[..]);
    drop(m);
    let m = c.receive().unwrap();
    assert_eq!((m.seq(), m.payload()), (b, &b"small"[..]));
    drop(m);
    // The largest, then one byte more.
    let max = p.max_payload();
    let s = p.publish(&payload(2, max)).unwrap();
    assert!(c.receive().unwrap().payload() == &payload(2, max)[..]);
    assert_eq!(c.position(), s + 64);
    let e = p.publish(&vec![0u8; max + 1]).unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { len, max: m, .. } if len == max + 1 && m == max),
        "{e:?}"
    );
    assert!(e.to_string().contains("max_message_size"), "{e}");
}

#[test]
fn records_that_run_past_the_end_of_the_ring_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    // Laps of records of 7 slots over a ring of 128: every lap one of them
    // crosses the end.
    for i in 0..100u64 {
        let msg = payload(i, 1500 + i as usize);
        let seq = p.publish(&msg).unwrap();
        let m = c.receive().unwrap();
        assert_eq!(m.seq(), seq);
        assert!(m.payload() == &msg[..], "message {i} at seq {seq}");
    }
    assert!(c.position() > 3 * 128, "several laps");
}

#[test]
fn batches_of_mixed_sizes_keep_their_order_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    let sizes = [0usize, 1, 255, 256, 257, 1000, 4000, 16, 9000, 3];
    let msgs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i as u64, n))
        .collect();
    let first = p.publish_batch(&msgs).unwrap();
    let got = c.receive_batch(100, Duration::from_secs(1)).unwrap();
    let seqs: Vec<u64> = got.iter().map(|m| m.seq()).collect();
    let bodies: Vec<Vec<u8>> = got.iter().map(|m| m.payload().to_vec()).collect();
    assert_eq!(sums(&bodies), sums(&msgs));
    assert_eq!(seqs[0], first);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    drop(got);
    // A batch larger than the ring in slots goes in ring-sized claims,
    // each as the reader makes room (every wait here bounded: the
    // publisher is the thread that may block).
    let many: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 3000)).collect();
    let publisher = std::thread::spawn({
        let many = many.clone();
        move || p.publish_batch(&many).map(|_| ())
    });
    let got: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let m = c.receive_timeout(Duration::from_secs(10));
            m.unwrap_or_else(|e| panic!("message {i}: {e}"))
                .payload()
                .to_vec()
        })
        .collect();
    publisher.join().unwrap().unwrap();
    assert_eq!(sums(&got), sums(&many));
}

#[test]
fn a_reservation_of_any_size_is_written_in_place_and_may_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    let frame = payload(9, 10_000);
    let mut r = p.reserve(10_000).unwrap();
    assert_eq!(r.len(), 10_000);
    r.copy_from_slice(&frame);
    let a = r.commit().unwrap();
    // Reserved long, then cut to fewer slots: the rest is given up and
    // the next message follows the shorter record's slots.
    let mut r = p.reserve(5_000).unwrap();
    r[..300].copy_from_slice(&frame[..300]);
    r.truncate(300);
    let b = r.commit().unwrap();
    let d = p.publish(b"after").unwrap();
    // A reservation dropped undone is skipped.
    drop(p.reserve(2_000).unwrap());
    let e = p.publish(b"last").unwrap();
    assert_eq!(b, a + 35); // 32 + 10000 bytes in slots of 288
    // It keeps the slots it claimed: the two of its 332 bytes, then the
    // 16 it gave up, skipped.
    assert_eq!(d, b + 18);
    let got: Vec<(u64, Vec<u8>)> = (0..4)
        .map(|_| {
            let m = c.receive().unwrap();
            (m.seq(), m.payload().to_vec())
        })
        .collect();
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, [a, b, d, e]);
    let bodies: Vec<Vec<u8>> = got.into_iter().map(|g| g.1).collect();
    assert_eq!(
        sums(&bodies),
        sums(&[
            frame.clone(),
            frame[..300].to_vec(),
            b"after".to_vec(),
            b"last".to_vec()
        ])
    );
}

#[test]
fn competing_workers_get_long_keyed_messages_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let manual = || {
        q.consumer("w", ConsumerOptions::new().ack(Ack::Manual).create(true))
            .unwrap()
    };
    let (mut w1, mut w2) = (manual(), manual());
    let mut p = q.producer().unwrap();
    let mut sent = Vec::new();
    for i in 0..12u64 {
        let key = format!("k{}", i % 3);
        let msg = payload(i, 600 + 400 * (i as usize % 4));
        p.publish_with(&msg, &Meta::new().ordering_key(&key))
            .unwrap();
        sent.push((key, msg));
    }
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    let mut nacked = false;
    while got.len() < sent.len() {
        for w in [&mut w1, &mut w2] {
            let Some(m) = w.poll(Duration::from_millis(20)).unwrap() else {
                continue;
            };
            let key = String::from_utf8(m.ordering_key().unwrap().to_vec()).unwrap();
            if !nacked {
                // Once: given back, delivered again whole.
                nacked = true;
                m.nack(Nack::Requeue).unwrap();
                continue;
            }
            got.push((key, m.payload().to_vec()));
            m.ack().unwrap();
        }
    }
    for k in ["k0", "k1", "k2"] {
        let want: Vec<&Vec<u8>> = sent
            .iter()
            .filter(|(x, _)| x == k)
            .map(|(_, m)| m)
            .collect();
        let have: Vec<&Vec<u8>> = got.iter().filter(|(x, _)| x == k).map(|(_, m)| m).collect();
        assert!(have == want, "key {k}: in order, byte for byte");
    }
    // Every slot is free again: the group's committed cursor passed them.
    let info = q.groups().into_iter().find(|g| g.name == "w").unwrap();
    assert_eq!((info.lag, info.committed), (0, info.next), "{info:?}");
}

#[test]
fn a_seek_into_a_spilled_long_message_lands_on_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"));
    let q = Queue::create("q", &o).unwrap();
    q.create_group("g", shmq::Start::Earliest).unwrap();
    q.create_group("h", shmq::Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let msgs: Vec<Vec<u8>> = (0..30).map(|i| payload(i, 3000)).collect();
    let seqs: Vec<u64> = msgs.iter().map(|m| p.publish(m).unwrap()).collect();
    assert!(q.stats().spilled > 0, "the spill was used");
    // A seq inside the last message but one, which is in the spill.
    let mid = seqs[28] + 3;
    let landed = q.seek_group("h", Seek::Seq(mid)).unwrap();
    assert_eq!(landed, seqs[29]);
    // Group g holds the ring; as it reads, the spill comes back.
    let mut g = q.consumer("g", ConsumerOptions::new()).unwrap();
    for (i, m) in msgs.iter().enumerate() {
        let got = g.receive_timeout(Duration::from_secs(5)).unwrap();
        assert!(got.payload() == &m[..], "message {i}");
    }
    let mut c = q.consumer("h", ConsumerOptions::new()).unwrap();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(m.seq(), seqs[29]);
    assert!(m.payload() == &msgs[29][..]);
}

#[test]
fn long_messages_spill_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"));
    let q = Queue::create("q", &o).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    // Three rings' worth: most of it goes to the spill.
    let msgs: Vec<Vec<u8>> = (0..30)
        .map(|i| payload(i, 100 + i as usize * 400))
        .collect();
    let mut seqs = Vec::new();
    for m in &msgs {
        seqs.push(p.publish(m).unwrap());
    }
    assert!(q.stats().spilled > 0, "the spill was used");
    for (i, m) in msgs.iter().enumerate() {
        let got = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got.seq(), seqs[i], "message {i}");
        assert!(got.payload() == &m[..], "message {i}: its bytes");
    }
}

#[test]
fn the_journal_replays_long_messages_and_seeks_land_on_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(1 << 20)
        .journal(Retention::new(Duration::from_secs(3600), 8 << 20));
    let q = Queue::create("q", &o).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    let msgs: Vec<Vec<u8>> = (0..40).map(|i| payload(i, 50 + i as usize * 300)).collect();
    // Published and read one by one: they take several laps of the ring,
    // so the first ones are only in the journal afterwards.
    let mut seqs = Vec::new();
    for m in &msgs {
        seqs.push(p.publish(m).unwrap());
        assert!(c.receive().unwrap().payload() == &m[..]);
    }
    drop(c);
    // Everything again from the journal and the ring.
    q.seek_group("g", Seek::Seq(0)).unwrap();
    let mut c = auto(&q, "g");
    for (i, m) in msgs.iter().enumerate() {
        let got = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(got.seq(), seqs[i], "replay {i}");
        assert!(got.payload() == &m[..], "replay {i}: its bytes");
    }
    drop(c);
    // A seq inside a long message's slots: the next message.
    let mid = seqs[35] + 1;
    assert_eq!(q.seek_group("g", Seek::Seq(mid)).unwrap(), seqs[36]);
    let mut c = auto(&q, "g");
    assert!(c.receive().unwrap().payload() == &msgs[36][..]);
}

/// Dead-letters every message of `msgs` (ack=manual consumer of group
/// `w`, publishing each with an ordering key when `keyed`).
fn dead_letter_all(q: &Queue, msgs: &[Vec<u8>], keyed: bool) {
    let mut w = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual).create(true))
        .unwrap();
    let mut p = q.producer().unwrap();
    for (i, m) in msgs.iter().enumerate() {
        if keyed && i % 2 == 0 {
            p.publish_with(m, &Meta::new().ordering_key(&format!("k{}", i % 3)))
                .unwrap();
        } else {
            p.publish(m).unwrap();
        }
        let got = w.receive_timeout(Duration::from_secs(5)).unwrap();
        assert!(got.payload() == &m[..], "message {i}");
        got.nack(Nack::DeadLetter).unwrap();
    }
}

/// The sums of `q`'s dead letters, sorted (a short dead letter may pass a
/// longer one that waits in the overflow for a run long enough).
fn listed(q: &Queue) -> Vec<(usize, u32)> {
    let mut payloads: Vec<Vec<u8>> = q
        .dlq()
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.payload)
        .collect();
    payloads.sort();
    sums(&payloads)
}

/// The sums of `msgs`, sorted as `listed` sorts.
fn sorted(msgs: &[Vec<u8>]) -> Vec<(usize, u32)> {
    let mut m = msgs.to_vec();
    m.sort();
    sums(&m)
}

/// Redrives every dead letter of `q` (there are `msgs`), receives each
/// again in group `w` and acks it: what came back and what was sent, as
/// sorted sums (an unkeyed redriven dead letter has no order to keep).
type Sums = Vec<(usize, u32)>;
fn redrive_and_receive(q: &Queue, msgs: &[Vec<u8>]) -> (Sums, Sums) {
    assert_eq!(q.dlq().redrive(None).unwrap(), msgs.len() as u64);
    let mut w = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    let mut got = Vec::new();
    while got.len() < msgs.len() {
        let m = w.receive_timeout(Duration::from_secs(5)).unwrap();
        got.push(m.payload().to_vec());
        m.ack().unwrap();
    }
    (sorted(&got), sorted(msgs))
}

#[test]
fn long_dead_letters_take_runs_of_entries_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    // 16 entries of 256 bytes (a stride of 384): dead letters of up to
    // 16 × 384 - 96 bytes.
    let q = Queue::create("q", &opts(dir.path()).dlq_slots(16)).unwrap();
    let msgs: Vec<Vec<u8>> = [5usize, 1000, 0, 2500, 288, 40]
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i as u64, n))
        .collect();
    dead_letter_all(&q, &msgs, true);
    assert_eq!(listed(&q), sorted(&msgs));
    assert_eq!(q.dlq().len(), 6);
    // Redriven: the unkeyed ones delivered from the region (one slice
    // each), the keyed ones through the ring; every one whole.
    let (got, want) = redrive_and_receive(&q, &msgs);
    assert_eq!(got, want);
    assert!(q.dlq().is_empty());
    // Every entry was given back: the region takes a dead letter of all
    // of it.
    let whole = payload(9, 16 * 384 - 96);
    dead_letter_all(&q, std::slice::from_ref(&whole), false);
    assert!(q.dlq().list().unwrap()[0].payload == whole);
    assert_eq!(q.dlq().purge().unwrap(), 1);
    dead_letter_all(&q, &msgs, false);
    assert_eq!(q.dlq().len(), 6);
}

#[test]
fn a_dead_letter_longer_than_the_region_stays_leased_and_a_full_region_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .dlq_slots(4)
        .lease(Duration::from_millis(300));
    let q = Queue::create("q", &o).unwrap();
    let mut w = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual).create(true))
        .unwrap();
    let mut p = q.producer().unwrap();
    // Four entries of a 384-byte stride hold one dead letter of at most
    // 4 × 384 - 96 = 1440 bytes.
    p.publish(&payload(1, 1441)).unwrap();
    let m = w.receive().unwrap();
    let e = m.nack(Nack::DeadLetter).unwrap_err();
    assert!(
        matches!(
            e,
            Error::DlqTooLarge {
                len: 1441,
                max: 1440
            }
        ),
        "{e:?}"
    );
    // Not lost: still ours until the lease runs out.
    assert_eq!(q.dlq().len(), 0);
    // Two dead letters of two entries each fill the region; a third, of
    // one entry, finds it full, and is taken once one is purged.
    for i in 2..5 {
        p.publish(&payload(i, if i < 4 { 500 } else { 10 }))
            .unwrap();
    }
    let mut seen = Vec::new();
    loop {
        let m = w.receive_timeout(Duration::from_secs(5)).unwrap();
        if m.payload().len() == 1441 {
            m.ack().unwrap();
            continue;
        }
        seen.push(m.payload().len());
        match m.nack(Nack::DeadLetter) {
            Ok(()) => {}
            Err(Error::DlqFull(4)) => {
                assert_eq!(seen, [500, 500, 10]);
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(q.dlq().len(), 2);
    assert_eq!(q.dlq().purge().unwrap(), 2);
    // Its lease runs out and it comes back; the region has room now.
    let m = loop {
        let m = w.receive_timeout(Duration::from_secs(5)).unwrap();
        if m.payload().len() == 10 {
            break m;
        }
        m.ack().unwrap();
    };
    m.nack(Nack::DeadLetter).unwrap();
    assert_eq!(q.dlq().list().unwrap()[0].payload, payload(4, 10));
}

#[test]
fn long_dead_letters_overflow_to_disk_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "q",
        &opts(dir.path())
            .dlq_slots(6)
            .overflow(Overflow::Spill)
            .spill_dir(dir.path().join("spill")),
    )
    .unwrap();
    let msgs: Vec<Vec<u8>> = (0..8)
        .map(|i| payload(i, [900usize, 30, 1500, 700][i as usize % 4]))
        .collect();
    dead_letter_all(&q, &msgs, false);
    // The region holds some, the overflow the rest.
    assert_eq!(listed(&q), sorted(&msgs));
    // Redriven and delivered, they come back from the overflow into the
    // region's runs as those free up.
    let (got, want) = redrive_and_receive(&q, &msgs);
    assert_eq!(got, want);
    assert!(q.dlq().is_empty());
}

#[test]
fn the_dead_letter_region_takes_memory_only_once_used() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // 4096 entries of 64 KiB: a 256 MiB region, of which nothing is
    // allocated until a dead letter needs it.
    let q = Queue::create(
        "q",
        &opts(dir.path()).slot_size(65536).slots(8).dlq_slots(4096),
    )
    .unwrap();
    let allocated = |q: &Queue| std::fs::metadata(q.path()).unwrap().blocks() * 512;
    let before = allocated(&q);
    assert!(q.file_size() > 256 << 20, "{}", q.file_size());
    assert!(before < 2 << 20, "{before} bytes allocated at create");
    dead_letter_all(&q, &[payload(1, 60_000)], false);
    let after = allocated(&q);
    assert!(after >= before + 60_000, "{before} then {after}");
    assert!(after < before + (1 << 20), "{before} then {after}");
}

/// A group's lease table (48 bytes a slot of its in-flight window,
/// `max_in_flight`, 65536 by default) is allocated by its first ack=manual
/// consumer: a million 16-byte messages fit in 64 MiB with a leasing group
/// too.
#[test]
fn lease_tables_take_memory_only_for_groups_that_lease() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let slots = 1 << 20;
    let o = opts(dir.path()).slots(slots).slot_size(16).max_groups(4);
    assert_eq!(o.get_max_in_flight(), 65536);
    let q = Queue::create("q", &o).unwrap();
    let allocated = |q: &Queue| std::fs::metadata(q.path()).unwrap().blocks() * 512;
    let table = 65536 * 48;
    let at_create = allocated(&q);
    assert!(
        at_create < 64 << 20,
        "{at_create} bytes allocated at create"
    );
    assert!(q.file_size() > at_create + 4 * table, "{}", q.file_size());
    assert!(
        q.file_size() < 4 * slots * 48,
        "the lease tables are sized by the window, not the ring: {}",
        q.file_size()
    );
    // An ack=auto group, a full ring, stats: no lease table.
    let mut c = q
        .consumer("auto", ConsumerOptions::new().create(true))
        .unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..slots {
        p.publish(&i.to_le_bytes()[..]).unwrap();
    }
    assert!(q.stats().groups.iter().all(|g| g.in_flight == 0));
    assert!(
        allocated(&q) < at_create + table / 2,
        "{} bytes",
        allocated(&q)
    );
    // An ack=manual consumer allocates its group's table, and leases
    // through the full ring.
    q.create_group("manual", shmq::Start::Earliest).unwrap();
    let manual = ConsumerOptions::new().ack(shmq::Ack::Manual);
    let mut w = q.consumer("manual", manual).unwrap();
    let with_table = allocated(&q);
    assert!(with_table >= at_create + table, "{with_table} bytes");
    assert!(
        with_table < 64 << 20,
        "a million 16-byte messages and a leasing group: {with_table} bytes"
    );
    for i in 0..slots {
        assert_eq!(c.receive().unwrap().payload(), &i.to_le_bytes());
        let m = w.receive().unwrap();
        assert_eq!(m.payload(), &i.to_le_bytes());
        m.ack().unwrap();
    }
    p.publish(b"leased").unwrap();
    let m = w.receive().unwrap();
    assert_eq!(m.payload(), b"leased");
    let in_flight = |q: &Queue| {
        q.stats()
            .groups
            .iter()
            .find(|g| g.name == "manual")
            .unwrap()
            .in_flight
    };
    assert_eq!(in_flight(&q), 1);
    m.ack().unwrap();
    assert_eq!(in_flight(&q), 0);
}

/// `max_in_flight` bounds what an ack=manual group has out: when the
/// window is full a receive waits for the oldest message to finish (an
/// ack elsewhere wakes it), a message longer than the window still goes
/// out, and redelivery, dead letters and keys work through a table
/// smaller than the ring.
#[test]
fn an_ack_manual_group_has_at_most_max_in_flight_slots_out() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .slots(64)
        .slot_size(64)
        .max_in_flight(4)
        .max_deliveries(2)
        .lease(Duration::from_secs(60));
    let q = Queue::create("q", &o).unwrap();
    q.create_group("w", shmq::Start::Earliest).unwrap();
    let manual = || ConsumerOptions::new().ack(Ack::Manual);
    let mut a = q.consumer("w", manual()).unwrap();
    let mut b = q.consumer("w", manual()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..8u64 {
        p.publish(&payload(i, 40)).unwrap();
    }
    let mut held = Vec::new();
    for i in 0..4u64 {
        let d = a.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(d.payload(), &payload(i, 40)[..]);
        held.push(d.into_receipt().unwrap());
    }
    // Four out: the window is full for every consumer of the group.
    assert!(matches!(
        b.receive_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    // Acked out of order, the window stays full: the oldest is out.
    a.ack_receipt(&held[3]).unwrap();
    assert!(matches!(
        b.receive_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    // A sleeping receive is woken by the ack of the oldest.
    let first = held[0];
    let got = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let d = b.receive_timeout(Duration::from_secs(10)).unwrap();
            let got = d.payload().to_vec();
            d.ack().unwrap();
            got
        });
        std::thread::sleep(Duration::from_millis(100));
        a.ack_receipt(&first).unwrap();
        waiter.join().unwrap()
    });
    assert_eq!(got, payload(4, 40));
    // A nack and a dead letter go through the small table too.
    a.nack_receipt(&held[1], Nack::Requeue).unwrap();
    let again = a.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((again.payload(), again.attempt()), (&payload(1, 40)[..], 2));
    again.nack(Nack::DeadLetter).unwrap();
    a.ack_receipt(&held[2]).unwrap();
    for i in 5..8u64 {
        let d = b.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(d.payload(), &payload(i, 40)[..]);
        d.ack().unwrap();
    }
    // A message of many more slots than the window goes out, and the
    // group's committed cursor steps over it by its span.
    let long = payload(9, 20 * 96);
    p.publish(&long).unwrap();
    p.publish(&payload(10, 40)).unwrap();
    let d = a.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(d.payload(), &long[..]);
    d.ack().unwrap();
    let d = b.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(d.payload(), &payload(10, 40)[..]);
    d.ack().unwrap();
    let g = q
        .stats()
        .groups
        .into_iter()
        .find(|g| g.name == "w")
        .unwrap();
    assert_eq!((g.in_flight, g.lag, g.committed), (0, 0, g.next));
    assert_eq!((g.dead_lettered, q.dlq().list().unwrap().len()), (1, 1));
    // Laps of the ring through the table of four, keyed and not.
    for i in 0..300u64 {
        let key = format!("k{}", i % 3);
        p.publish_with(
            &payload(i, 8 + (i as usize % 5) * 40),
            &Meta::new().ordering_key(key.as_bytes()),
        )
        .unwrap();
        let d = a.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(d.payload(), &payload(i, 8 + (i as usize % 5) * 40)[..]);
        d.ack().unwrap();
    }
}

/// An ack=auto consumer lost while it held a delivery leaves its group's
/// `committed` behind `next` with no lease word for the gap: an ack=manual
/// consumer attaching then starts from `next` (as an ack=auto one would),
/// instead of waiting for ever at a full window.
#[test]
fn a_manual_consumer_after_a_lost_auto_delivery_is_not_held_by_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).slots(64).max_in_flight(2)).unwrap();
    q.create_group("w", shmq::Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u64 {
        p.publish(&payload(i, 8)).unwrap();
    }
    let mut a = q.consumer("w", ConsumerOptions::new()).unwrap();
    // Lost as a killed process loses it: never dropped, never committed.
    std::mem::forget(a.receive().unwrap());
    drop(a);
    let g = q
        .stats()
        .groups
        .into_iter()
        .find(|g| g.name == "w")
        .unwrap();
    assert_eq!((g.committed, g.next), (0, 1));
    let mut m = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    for i in 1..4u64 {
        let d = m.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(d.payload(), &payload(i, 8)[..]);
        d.ack().unwrap();
    }
}

/// `max_in_flight` is checked: at least 1, at most the ring's slots.
#[test]
fn max_in_flight_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [0, 65] {
        let e = Queue::create("q", &opts(dir.path()).slots(64).max_in_flight(bad)).unwrap_err();
        assert!(
            e.to_string()
                .contains("max_in_flight must be from 1 to the ring's 64 slots"),
            "{e}"
        );
    }
    let q = Queue::create("q", &opts(dir.path()).slots(64).max_in_flight(3)).unwrap();
    q.create_group("w", shmq::Start::Earliest).unwrap();
    drop(q);
    // Opened again, the window is the file's: three out, not the default.
    let q = Queue::open_with("q", &opts(dir.path())).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u64 {
        p.publish(&payload(i, 8)).unwrap();
    }
    let mut w = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    let held: Vec<_> = (0..3)
        .map(|_| w.receive().unwrap().into_receipt().unwrap())
        .collect();
    assert!(matches!(
        w.receive_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    w.ack_receipt(&held[0]).unwrap();
    assert_eq!(w.receive().unwrap().payload(), &payload(3, 8)[..]);
}

/// `capacity` sizes the ring in bytes: a million 16-byte events, or one
/// long frame, in one queue of under 64 MiB.
#[test]
fn capacity_holds_a_million_small_events_or_one_frame() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let o = Options::new()
        .dir(dir.path())
        .capacity(64 << 20)
        .slot_size(16)
        .overflow(shmq::Overflow::Reject);
    assert_eq!(o.get_slots(), 1 << 20);
    let q = Queue::create("q", &o).unwrap();
    let st = q.stats();
    // 48-byte slots: the most that fit, a power of two.
    assert_eq!((st.slots, st.capacity), (1 << 20, 48 << 20));
    let allocated = std::fs::metadata(q.path()).unwrap().blocks() * 512;
    assert!(allocated < 64 << 20, "{allocated} bytes allocated");
    let mut c = q
        .consumer("g", ConsumerOptions::new().create(true))
        .unwrap();
    let mut p = q.producer().unwrap();
    let event = |i: u64| [i.to_le_bytes(), (!i).to_le_bytes()].concat();
    for i in 0..1u64 << 20 {
        p.publish(&event(i)).unwrap();
    }
    assert!(matches!(p.publish(&event(0)), Err(Error::Full)));
    assert_eq!(q.stats().depth_bytes, 48 << 20);
    for i in 0..1u64 << 20 {
        assert_eq!(c.receive().unwrap().payload(), &event(i)[..]);
    }
    // The same ring takes one frame of up to half of it.
    let frame = payload(7, 20 << 20);
    p.publish(&frame).unwrap();
    assert_eq!(c.receive().unwrap().payload(), &frame[..]);
    assert_eq!(q.max_message_size(), (24 << 20) - 32);
}

#[test]
fn capacity_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |o: Options| match Queue::create("bad", &o.dir(dir.path())) {
        Err(Error::InvalidOption(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = bad(Options::new().capacity(1 << 20).slots(64));
    assert!(m.contains("give one of them"), "{m}");
    let m = bad(Options::new().capacity(100).slot_size(64));
    assert!(m.contains("fewer than two slots"), "{m}");
    // Rounded down to whole slots, a power of two: 64,000 bytes of
    // 64-byte slots are 512 slots (32 KiB), and small rings round their
    // slots up further (to whole pages): 8 KiB of 40-byte slots are 128
    // slots of 64 bytes.
    assert_eq!(
        Options::new().capacity(64_000).slot_size(32).get_slots(),
        512
    );
    assert_eq!(Options::new().capacity(8192).slot_size(1).get_slots(), 128);
    assert_eq!(Options::new().capacity(100).get_slots(), 0);
}

#[test]
fn max_message_size_is_checked_against_the_ring_and_the_spill() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |o: Options| match Queue::create("bad", &o) {
        Err(Error::InvalidOption(m)) => m,
        other => panic!("{other:?}"),
    };
    // More than half the ring.
    let m = bad(opts(dir.path()).max_message_size(64 * 288));
    assert!(m.contains("more than this ring holds"), "{m}");
    // A ring that is no whole page takes messages of a slot at most.
    let m = bad(Options::new()
        .dir(dir.path())
        .slots(8)
        .slot_size(256)
        .max_message_size(257));
    assert!(m.contains("whole pages"), "{m}");
    // A spill segment must hold the largest message.
    let m = bad(opts(dir.path())
        .slots(1024)
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("s"))
        .spill_segment_size(64 << 10)
        .max_message_size(100_000));
    assert!(m.contains("spill"), "{m}");
    // Asked for less: refused above it.
    let q = Queue::create("q", &opts(dir.path()).max_message_size(1000)).unwrap();
    let mut p = q.producer().unwrap();
    assert_eq!(p.max_payload(), 1000);
    p.publish(&[1u8; 1000]).unwrap();
    assert!(matches!(
        p.publish(&[1u8; 1001]),
        Err(Error::TooLarge { max: 1000, .. })
    ));
    // Another process's handle reads it from the file.
    let again = Queue::open_with("q", &opts(dir.path())).unwrap();
    assert_eq!(again.producer().unwrap().max_payload(), 1000);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random mixes of sizes, from nothing to most of the ring, through
    /// single publishes, batches and reservations, with a consumer that
    /// reads as it goes: every message arrives once, in order, whole.
    #[test]
    fn random_sizes_arrive_whole_and_in_order(
        sizes in prop::collection::vec(
            prop_oneof![0usize..64, 200usize..600, 1000usize..9000],
            1..60,
        ),
        how in prop::collection::vec(0u8..3, 60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::create("q", &opts(dir.path())).unwrap();
        let mut c = auto(&q, "g");
        let mut p = q.producer().unwrap();
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(i as u64, n))
            .collect();
        let mut got = Vec::new();
        let mut i = 0;
        while i < msgs.len() {
            match how[i] {
                0 => {
                    p.publish(&msgs[i]).unwrap();
                    i += 1;
                }
                1 => {
                    let n = 3.min(msgs.len() - i);
                    p.publish_batch(&msgs[i..i + n]).unwrap();
                    i += n;
                }
                _ => {
                    let mut r = p.reserve(msgs[i].len()).unwrap();
                    r.copy_from_slice(&msgs[i]);
                    r.commit().unwrap();
                    i += 1;
                }
            }
            while let Some(m) = c.try_receive().unwrap() {
                got.push(m.payload().to_vec());
            }
        }
        prop_assert_eq!(sums(&got), sums(&msgs));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random mixes of sizes dead-lettered (keyed and not) into a small
    /// region that overflows to disk, listed in order, redriven and
    /// delivered again: every one whole.
    #[test]
    fn random_sizes_go_through_the_dead_letter_queue_whole(
        sizes in prop::collection::vec(prop_oneof![0usize..64, 200usize..3000], 1..16),
        keyed in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Ten entries of a 384-byte stride: dead letters of up to 3744 bytes.
        let o = opts(dir.path())
            .dlq_slots(10)
            .overflow(Overflow::Spill)
            .spill_dir(dir.path().join("spill"));
        let q = Queue::create("q", &o).unwrap();
        let msgs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(i as u64, n))
            .collect();
        dead_letter_all(&q, &msgs, keyed);
        prop_assert_eq!(listed(&q), sorted(&msgs));
        let (got, want) = redrive_and_receive(&q, &msgs);
        prop_assert_eq!(got, want);
        prop_assert!(q.dlq().is_empty());
    }
}

/// A long message's slots after its first hold its payload, and in the
/// next lap each of them may be a record's first slot. A payload word
/// that reads as that position's state word (a small integer does: the
/// lap is in its high bits) was taken for one: by a producer as "aborted
/// before I began", by a consumer as "committed" (a record delivered
/// before it was written), by the spill's refill as "already copied" (a
/// spilled message lost). Found by the chaos run with 2 KiB payloads,
/// whose first 8 bytes are a small message id. `head` now clears those
/// words before it passes them.
#[test]
fn payload_that_reads_as_a_state_word_is_never_taken_for_one() {
    let dir = tempfile::tempdir().unwrap();
    // 64 slots of 96 bytes: strides of 128, a lap is 64 positions and
    // the state word of position q is (q / 64) << 8 | span << 2 | state.
    let q = Queue::create("q", &Options::new().dir(dir.path()).slots(64).slot_size(96)).unwrap();
    let mut c = auto(&q, "g");
    let mut p = q.producer().unwrap();
    // A record of two slots at 0: its body's bytes 96..104 are slot 1's
    // first word. Make them say "position 65, committed, one slot".
    let committed_65: u64 = (1 << 8) | (1 << 2) | 2;
    let mut long = payload(7, 200);
    long[96..104].copy_from_slice(&committed_65.to_le_bytes());
    assert_eq!(p.publish(&long).unwrap(), 0);
    assert_eq!(c.receive().unwrap().payload(), &long[..]);
    // One-slot messages up to position 64, each read at once.
    for i in 2..=64u64 {
        assert_eq!(p.publish(&i.to_le_bytes()).unwrap(), i);
        assert_eq!(c.receive().unwrap().seq(), i);
    }
    // Position 65 is claimed, not yet written.
    let mut r = p.reserve(8).unwrap();
    assert_eq!(r.seq(), 65, "the producer took the payload for an abort");
    assert!(
        c.try_receive().unwrap().is_none(),
        "the consumer took the payload for a commit"
    );
    r.copy_from_slice(b"sixty-5!");
    assert_eq!(r.commit().unwrap(), 65);
    let m = c.receive().unwrap();
    assert_eq!((m.seq(), m.payload()), (65, &b"sixty-5!"[..]));
}
