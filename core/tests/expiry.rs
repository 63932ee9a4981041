//! Messages that expire (`Meta::ttl`, `Options::message_ttl`,
//! `Options::on_expiry`): a group that has not finished a message when its
//! time to live runs out is not given it; it is dead-lettered with reason
//! `expired` or dropped, and counted, never silently. The times are either
//! long past (1 ms, then a sleep) or far off (an hour), so no test depends
//! on the scheduler.

use std::path::Path;
use std::time::Duration;

use shmq::{
    Ack, ConsumerOptions, Error, Meta, Nack, OnExpiry, Options, Overflow, Queue, Reason, Start,
};

const GONE: Duration = Duration::from_millis(1);
const AN_HOUR: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(5);

fn opts(dir: &Path) -> Options {
    Options::new().dir(dir).slots(64).slot_size(256)
}

/// Long enough for a 1 ms time to live to have run out.
fn let_expire() {
    std::thread::sleep(Duration::from_millis(20));
}

fn group(q: &Queue, name: &str) -> shmq::GroupInfo {
    q.stats()
        .groups
        .into_iter()
        .find(|g| g.name == name)
        .unwrap()
}

#[test]
fn an_expired_message_is_dead_lettered_for_each_group_that_had_not_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("fast", Start::Earliest).unwrap();
    q.create_group("slow", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut fast = q.consumer("fast", ConsumerOptions::new()).unwrap();
    p.publish_with(b"short-lived", &Meta::new().ttl(GONE).type_id(7))
        .unwrap();
    // Read in time by one group...
    assert_eq!(fast.receive().unwrap().payload(), b"short-lived");
    p.publish_with(b"lives", &Meta::new().ttl(AN_HOUR)).unwrap();
    p.publish(b"plain").unwrap();
    let_expire();
    // ... and too late by the other.
    let mut slow = q.consumer("slow", ConsumerOptions::new()).unwrap();
    assert_eq!(slow.receive().unwrap().payload(), b"lives");
    assert_eq!(slow.receive().unwrap().payload(), b"plain");
    let dead = q.dlq().list().unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        (
            d.reason,
            d.group.as_str(),
            d.payload.as_slice(),
            d.type_id,
            d.seq
        ),
        (Reason::Expired, "slow", &b"short-lived"[..], 7, 0)
    );
    assert_eq!(d.reason.as_str(), "expired");
    let (f, s) = (group(&q, "fast"), group(&q, "slow"));
    assert_eq!((f.messages_expired, f.dead_lettered), (0, 0));
    assert_eq!((s.messages_expired, s.dead_lettered), (1, 1));
    // Redriven, it starts a new life: delivered whatever its expiry says.
    assert_eq!(q.dlq().redrive(None).unwrap(), 1);
    let m = slow.receive_timeout(WAIT).unwrap();
    assert_eq!(m.payload(), b"short-lived");
}

#[test]
fn the_queue_default_applies_from_the_timestamp_and_the_shorter_wins() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "q",
        &opts(dir.path()).message_ttl(Duration::from_millis(10)),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"plain").unwrap();
    // A longer ttl of its own does not outlive the queue's.
    p.publish_with(b"asks longer", &Meta::new().ttl(AN_HOUR))
        .unwrap();
    p.publish_batch(&[b"b1", b"b2"]).unwrap();
    let_expire();
    p.publish(b"fresh").unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive().unwrap().payload(), b"fresh");
    let mut dead: Vec<Vec<u8>> = q
        .dlq()
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.payload)
        .collect();
    dead.sort();
    assert_eq!(dead, [&b"asks longer"[..], b"b1", b"b2", b"plain"]);
    assert_eq!(group(&q, "g").messages_expired, 4);
    // The option is the file's: an opener with none sees it.
    drop((c, p, q));
    let q = Queue::open_with("q", &opts(dir.path())).unwrap();
    q.producer().unwrap().publish(b"later").unwrap();
    let_expire();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert!(matches!(
        c.receive_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert_eq!(group(&q, "g").messages_expired, 5);
}

#[test]
fn discard_drops_and_counts_and_a_batch_stops_at_an_expired_message() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).on_expiry(OnExpiry::Discard)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"a").unwrap();
    p.publish_with(b"gone", &Meta::new().ttl(GONE)).unwrap();
    p.publish(b"b").unwrap();
    let_expire();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let got: Vec<Vec<u8>> = c
        .receive_batch(10, WAIT)
        .unwrap()
        .iter()
        .map(|m| m.payload().to_vec())
        .collect();
    assert_eq!(got, [b"a".to_vec()]);
    let got: Vec<Vec<u8>> = c
        .receive_batch(10, WAIT)
        .unwrap()
        .iter()
        .map(|m| m.payload().to_vec())
        .collect();
    assert_eq!(got, [b"b".to_vec()]);
    assert!(q.dlq().list().unwrap().is_empty());
    let g = group(&q, "g");
    assert_eq!((g.messages_expired, g.dead_lettered, g.lag), (1, 0, 0));
}

#[test]
fn ack_manual_a_lease_is_not_taken_back_but_a_redelivery_expires() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    let manual = || ConsumerOptions::new().ack(Ack::Manual);
    let mut a = q.consumer("w", manual()).unwrap();
    let mut b = q.consumer("w", manual()).unwrap();
    let mut p = q.producer().unwrap();
    let short = Meta::new().ttl(Duration::from_millis(30));
    p.publish_with(b"kept", &short).unwrap();
    p.publish_with(b"nacked", &short).unwrap();
    let kept = a.receive_timeout(WAIT).unwrap().into_receipt().unwrap();
    let nacked = b.receive_timeout(WAIT).unwrap();
    assert_eq!(nacked.payload(), b"nacked");
    std::thread::sleep(Duration::from_millis(60));
    // Its worker still holds it: the ack after the expiry counts.
    a.ack_receipt(&kept).unwrap();
    // Given back after its expiry, it is not delivered again.
    nacked.nack(Nack::Requeue).unwrap();
    assert!(matches!(
        b.receive_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    let dead = q.dlq().list().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].reason, dead[0].payload.as_slice()),
        (Reason::Expired, &b"nacked"[..])
    );
    assert_eq!(dead[0].attempts, 1);
    let g = group(&q, "w");
    assert_eq!((g.messages_expired, g.in_flight, g.lag), (1, 0, 0));
}

#[test]
fn an_expired_keyed_message_hands_its_lane_on() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).on_expiry(OnExpiry::Discard)).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let key = Meta::new().ordering_key("k");
    p.publish_with(b"first", &key).unwrap();
    p.publish_with(b"stale", &key.ttl(GONE)).unwrap();
    p.publish_with(b"third", &key).unwrap();
    let_expire();
    let mut w = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    let first = w.receive_timeout(WAIT).unwrap();
    assert_eq!(first.payload(), b"first");
    first.ack().unwrap();
    // The stale one waited behind "first" and expired: its lane goes on.
    let third = w.receive_timeout(WAIT).unwrap();
    assert_eq!(third.payload(), b"third");
    third.ack().unwrap();
    let g = group(&q, "w");
    assert_eq!((g.messages_expired, g.lag, g.busy_lanes), (1, 0, 0));
}

#[test]
fn with_the_dead_letter_queue_full_an_expired_message_is_delivered_late() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).dlq_slots(1)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for m in [&b"one"[..], b"two"] {
        p.publish_with(m, &Meta::new().ttl(GONE)).unwrap();
    }
    let_expire();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    // "one" fills the one-entry region; "two" has nowhere to go.
    assert_eq!(c.receive().unwrap().payload(), b"two");
    assert_eq!(q.dlq().list().unwrap()[0].payload, b"one");
    assert_eq!(group(&q, "g").messages_expired, 1);
}

#[test]
fn spilled_messages_keep_their_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .slots(4)
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(1 << 16)
        .on_expiry(OnExpiry::Discard);
    let q = Queue::create("q", &o).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..12u8 {
        let meta = if i % 3 == 0 {
            Meta::new().ttl(GONE)
        } else {
            Meta::new()
        };
        p.publish_with(&[i; 20], &meta).unwrap();
    }
    assert!(q.stats().spilled > 0);
    let_expire();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut got = Vec::new();
    while let Ok(m) = c.receive_timeout(Duration::from_millis(200)) {
        got.push(m.payload()[0]);
    }
    assert_eq!(got, [1, 2, 4, 5, 7, 8, 10, 11]);
    assert_eq!(group(&q, "g").messages_expired, 4);
}

#[test]
fn message_ttl_and_on_expiry_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        Duration::ZERO,
        Duration::from_micros(999),
        Duration::from_millis(u32::MAX as u64 + 1),
    ] {
        let e = Queue::create("q", &opts(dir.path()).message_ttl(bad)).unwrap_err();
        assert!(
            e.to_string().contains("message_ttl must be from 1 ms"),
            "{e}"
        );
    }
    assert_eq!("discard".parse::<OnExpiry>().unwrap(), OnExpiry::Discard);
    assert_eq!(
        "dead-letter".parse::<OnExpiry>().unwrap(),
        OnExpiry::DeadLetter
    );
    assert!("drop".parse::<OnExpiry>().is_err());
    // A batch and a reservation carry no ttl of their own.
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut p = q.producer().unwrap();
    let e = p
        .publish_batch_with(&[b"x"], &Meta::new().ttl(AN_HOUR))
        .unwrap_err();
    assert!(
        e.to_string().contains("no ordering key, headers or ttl"),
        "{e}"
    );
}

/// A group nobody consumes keeps its messages, and so every slot after
/// them. When they have expired, a producer that finds the ring full moves
/// the group past them (dead-lettered or dropped, and counted), as its
/// consumer would have: they never hold the ring.
#[test]
fn expired_messages_of_a_group_nobody_reads_do_not_hold_the_ring() {
    for how in [OnExpiry::DeadLetter, OnExpiry::Discard] {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path())
            .slots(8)
            .overflow(Overflow::Reject)
            .on_expiry(how);
        let q = Queue::create("q", &o).unwrap();
        q.create_group("idle", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        for i in 0..8u8 {
            p.publish_with(&[i; 10], &Meta::new().ttl(GONE)).unwrap();
        }
        let_expire();
        // Full of expired messages: room comes back at once.
        for i in 8..16u8 {
            p.publish_with(&[i; 10], &Meta::new().ttl(AN_HOUR)).unwrap();
        }
        let g = group(&q, "idle");
        assert_eq!(
            (g.messages_expired, g.next, g.committed),
            (8, 8, 8),
            "{how:?}"
        );
        let dead = q.dlq().list().unwrap();
        match how {
            OnExpiry::DeadLetter => {
                assert_eq!(dead.len(), 8);
                assert!(
                    dead.iter()
                        .all(|d| d.reason == Reason::Expired && d.group == "idle")
                );
                assert_eq!(g.dead_lettered, 8);
            }
            OnExpiry::Discard => assert!(dead.is_empty()),
        }
        // Unexpired messages do hold it, as any unread message does.
        assert!(matches!(p.publish(b"no room"), Err(Error::Full)));
        let mut c = q.consumer("idle", ConsumerOptions::new()).unwrap();
        for i in 8..16u8 {
            assert_eq!(c.receive().unwrap().payload(), &[i; 10]);
        }
    }
}

/// ack=manual with the dead-letter queue refusing an expired message: it
/// is delivered on the lease as restored, so its ack holds.
#[test]
fn ack_manual_with_the_dead_letter_queue_full_delivers_on_a_lease_that_holds() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).dlq_slots(1)).unwrap();
    q.create_group("w", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"fills the dlq").unwrap();
    let mut w = q
        .consumer("w", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    w.receive_timeout(WAIT)
        .unwrap()
        .nack(Nack::DeadLetter)
        .unwrap();
    p.publish_with(b"stale", &Meta::new().ttl(GONE)).unwrap();
    let_expire();
    let m = w.receive_timeout(WAIT).unwrap();
    assert_eq!(m.payload(), b"stale");
    m.ack().unwrap();
    let g = group(&q, "w");
    assert_eq!((g.messages_expired, g.in_flight, g.lag), (0, 0, 0));
}

/// A spilling queue: the idle group's expired messages are moved past, so
/// the ring and then the spill drain.
#[test]
fn expired_messages_do_not_hold_a_spilling_ring() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path())
        .slots(4)
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(1 << 16)
        .on_expiry(OnExpiry::Discard);
    let q = Queue::create("q", &o).unwrap();
    q.create_group("idle", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u8 {
        p.publish_with(&[i; 10], &Meta::new().ttl(GONE)).unwrap();
    }
    for i in 4..8u8 {
        p.publish(&[i; 10]).unwrap();
    }
    assert!(q.stats().spill_depth > 0);
    let_expire();
    p.publish(&[8; 10]).unwrap();
    assert_eq!(group(&q, "idle").messages_expired, 4);
    let mut c = q.consumer("idle", ConsumerOptions::new()).unwrap();
    for i in 4..9u8 {
        assert_eq!(c.receive_timeout(WAIT).unwrap().payload(), &[i; 10]);
    }
}
