//! ack=manual: leases, competing consumers, redelivery, the dead-letter
//! queue. (Killed consumer processes: `tests/tests/delivery.rs`.)

use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Error, Nack, Options, Queue, Reason, Start};

fn opts(dir: &tempfile::TempDir) -> Options {
    Options::new().dir(dir.path()).slots(16).slot_size(64)
}

fn manual() -> ConsumerOptions {
    ConsumerOptions::new().ack(Ack::Manual)
}

#[test]
fn competing_consumers_share_messages_and_ack_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("compete", &opts(&dir)).unwrap();
    let mut a = q.consumer("g", manual()).unwrap();
    let mut b = q.consumer("g", manual()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..4u8 {
        p.publish(&[i]).unwrap();
    }
    let m0 = a.receive().unwrap();
    let m1 = b.receive().unwrap();
    assert_eq!((m0.seq(), m1.seq()), (0, 1), "each message to one consumer");
    assert_eq!((m0.attempt(), m1.attempt()), (1, 1));
    let info = &q.groups()[0];
    assert_eq!((info.in_flight, info.consumers, info.committed), (2, 2, 0));
    m1.ack().unwrap();
    assert_eq!(q.groups()[0].committed, 0, "seq 0 is still leased");
    m0.ack().unwrap();
    assert_eq!(q.groups()[0].committed, 2, "the acked prefix is committed");
    for want in 2..4u8 {
        let m = a.receive().unwrap();
        assert_eq!(m.payload(), [want]);
        m.ack().unwrap();
    }
    let info = &q.groups()[0];
    assert_eq!(
        (info.acked, info.delivered, info.committed, info.lag),
        (4, 4, 4, 0)
    );
    assert!(a.try_receive().unwrap().is_none());
}

#[test]
fn a_dropped_delivery_comes_back_at_once_with_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("drop", &opts(&dir)).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    q.producer().unwrap().publish(b"x").unwrap();
    drop(c.receive().unwrap());
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((m.seq(), m.attempt(), m.payload()), (0, 2, &b"x"[..]));
    m.ack().unwrap();
    assert_eq!(q.groups()[0].redelivered, 1);
}

#[test]
fn nack_requeues_now_or_after_a_delay() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("nack", &opts(&dir)).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    q.producer().unwrap().publish(b"x").unwrap();
    c.receive().unwrap().nack(Nack::Requeue).unwrap();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(m.attempt(), 2);
    let t0 = Instant::now();
    m.nack(Nack::RequeueAfter(Duration::from_millis(300)))
        .unwrap();
    assert!(c.try_receive().unwrap().is_none(), "not before the delay");
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(m.attempt(), 3);
    m.ack().unwrap();
    assert_eq!(q.groups()[0].nacked, 2);
}

#[test]
fn an_expired_lease_goes_to_another_consumer_and_the_late_ack_fails() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("expire", &opts(&dir).lease(Duration::from_millis(200))).unwrap();
    let mut slow = q.consumer("g", manual()).unwrap();
    let mut fast = q.consumer("g", manual()).unwrap();
    q.producer().unwrap().publish(b"job").unwrap();
    let m = slow.receive().unwrap();
    assert!(fast.try_receive().unwrap().is_none(), "leased to slow");
    let again = fast.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((again.seq(), again.attempt()), (0, 2));
    assert!(matches!(m.ack(), Err(Error::LeaseExpired)));
    again.ack().unwrap();
    let info = &q.groups()[0];
    assert_eq!((info.expired, info.acked, info.committed), (1, 1, 1));
}

#[test]
fn extending_a_lease_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("extend", &opts(&dir).lease(Duration::from_millis(150))).unwrap();
    let mut a = q.consumer("g", manual()).unwrap();
    let mut b = q.consumer("g", manual()).unwrap();
    q.producer().unwrap().publish(b"long job").unwrap();
    let mut m = a.receive().unwrap();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(100));
        m.extend_lease(Duration::from_millis(150)).unwrap();
        assert!(b.try_receive().unwrap().is_none());
    }
    m.ack().unwrap();
    assert_eq!(q.groups()[0].expired, 0);
}

#[test]
fn a_poison_message_reaches_the_dlq_after_max_deliveries_while_others_flow() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("poison", &opts(&dir).max_deliveries(3)).unwrap();
    q.create_group("other", Start::Earliest).unwrap();
    let mut c = q.consumer("work", manual()).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"poison").unwrap();
    p.publish(b"fine").unwrap();
    let mut fine = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while q.dlq().is_empty() || fine == 0 {
        assert!(Instant::now() < deadline, "poison never dead-lettered");
        let Ok(m) = c.receive_timeout(Duration::from_millis(500)) else {
            continue;
        };
        if m.payload() == b"poison" {
            m.nack(Nack::Requeue).unwrap();
        } else {
            fine += 1;
            m.ack().unwrap();
        }
    }
    assert_eq!(fine, 1);
    let dead = q.dlq().list().unwrap();
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        (
            d.seq,
            d.group.as_str(),
            d.attempts,
            d.reason,
            d.payload.as_slice()
        ),
        (0, "work", 3, Reason::MaxDeliveries, &b"poison"[..])
    );
    assert!(d.first_delivery_ns <= d.last_delivery_ns && d.last_delivery_ns <= d.dead_lettered_ns);
    let info = q.groups().into_iter().find(|g| g.name == "work").unwrap();
    assert_eq!((info.dead_lettered, info.committed), (1, 2));
    assert_eq!(q.stats().dlq_depth, 1);
}

#[test]
fn redrive_goes_to_the_dead_lettering_group_only_and_purge_empties() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("redrive", &opts(&dir)).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    let mut a = q.consumer("a", manual()).unwrap();
    let mut b = q.consumer("b", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(b"bad", &shmq::Meta::new().type_id(3).correlation_id(9))
        .unwrap();
    p.publish(b"worse").unwrap();
    assert_eq!(b.receive().unwrap().payload(), b"bad");
    assert_eq!(b.receive().unwrap().payload(), b"worse");
    a.receive().unwrap().nack(Nack::DeadLetter).unwrap();
    a.receive().unwrap().nack(Nack::DeadLetter).unwrap();
    let dead = q.dlq().list().unwrap();
    assert_eq!(dead.iter().map(|d| d.seq).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(dead[0].reason, Reason::Nacked);
    assert!(matches!(q.dlq().redrive(Some(7)), Err(Error::NotFound(_))));
    assert_eq!(q.dlq().redrive(Some(0)).unwrap(), 1);
    // Group a gets it again, with its metadata and the next attempt...
    let m = a.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (m.seq(), m.payload(), m.type_id(), m.correlation_id()),
        (0, &b"bad"[..], 3, 9)
    );
    assert_eq!(
        m.attempt(),
        1,
        "a redrive starts a fresh count of deliveries"
    );
    m.ack().unwrap();
    // ...and group b does not.
    assert!(b.try_receive().unwrap().is_none());
    assert_eq!(q.dlq().list().unwrap().len(), 1);
    assert_eq!(q.dlq().purge().unwrap(), 1);
    assert!(q.dlq().list().unwrap().is_empty());
}

#[test]
fn a_redriven_message_that_keeps_failing_is_dead_lettered_again() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("again", &opts(&dir).max_deliveries(2)).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    q.producer().unwrap().publish(b"still bad").unwrap();
    c.receive().unwrap().nack(Nack::DeadLetter).unwrap();
    q.dlq().redrive(None).unwrap();
    for attempt in 1..=2 {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(m.attempt(), attempt);
        m.nack(Nack::Requeue).unwrap();
    }
    assert!(
        c.try_receive().unwrap().is_none(),
        "not delivered a third time"
    );
    let dead = q.dlq().list().unwrap();
    assert_eq!(
        (dead.len(), dead[0].reason, dead[0].redriven),
        (1, Reason::MaxDeliveries, false)
    );
}

#[test]
fn a_dead_letter_keeps_its_history_through_a_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("history", &opts(&dir).max_deliveries(3)).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    q.producer().unwrap().publish(b"flaky").unwrap();
    for _ in 0..3 {
        c.receive_timeout(Duration::from_secs(5))
            .unwrap()
            .nack(Nack::Requeue)
            .unwrap();
    }
    assert!(
        c.try_receive().unwrap().is_none(),
        "not delivered a fourth time"
    );
    let before = q.dlq().list().unwrap();
    assert_eq!(
        (before[0].attempts, before[0].reason, before[0].redrives),
        (3, Reason::MaxDeliveries, 0)
    );
    q.dlq().redrive(None).unwrap();
    // Listed while redriven: the same attempts and reason (they used to
    // read 0 and, in the CLI, "redriven"), and one redrive.
    let during = q.dlq().list().unwrap();
    assert_eq!(
        (
            during[0].attempts,
            during[0].reason,
            during[0].redrives,
            during[0].redriven
        ),
        (3, Reason::MaxDeliveries, 1, true)
    );
    assert_eq!(during[0].dead_lettered_ns, before[0].dead_lettered_ns);
    // Delivered again with a fresh budget, and dead-lettered again after
    // it: the history adds up.
    for attempt in 1..=3 {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(m.attempt(), attempt);
        m.nack(Nack::Requeue).unwrap();
    }
    assert!(c.try_receive().unwrap().is_none());
    let after = q.dlq().list().unwrap();
    assert_eq!(
        (
            after[0].attempts,
            after[0].reason,
            after[0].redrives,
            after[0].redriven
        ),
        (6, Reason::MaxDeliveries, 1, false)
    );
    q.dlq().redrive(None).unwrap();
    assert_eq!(q.dlq().list().unwrap()[0].redrives, 2);
}

#[test]
fn a_redriven_message_reaches_an_auto_consumer_too() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("redrive-auto", &opts(&dir)).unwrap();
    {
        let mut c = q.consumer("g", manual()).unwrap();
        q.producer().unwrap().publish(b"again").unwrap();
        c.receive().unwrap().nack(Nack::DeadLetter).unwrap();
    }
    q.dlq().redrive(None).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(m.payload(), b"again");
    drop(m);
    assert!(c.try_receive().unwrap().is_none());
    assert!(q.dlq().list().unwrap().is_empty());
}

#[test]
fn a_full_dlq_keeps_the_message_leased_never_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir).dlq_slots(1).lease(Duration::from_millis(200));
    let q = Queue::create("full", &o).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"one").unwrap();
    p.publish(b"two").unwrap();
    c.receive().unwrap().nack(Nack::DeadLetter).unwrap();
    let m = c.receive().unwrap();
    assert_eq!(m.payload(), b"two");
    assert!(matches!(m.nack(Nack::DeadLetter), Err(Error::DlqFull(1))));
    // Still leased: not delivered until the lease runs out, then again.
    assert!(c.try_receive().unwrap().is_none());
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((m.payload(), m.attempt()), (&b"two"[..], 2));
    m.ack().unwrap();
    assert_eq!(q.dlq().len(), 1);
}

#[test]
fn a_group_uses_one_ack_mode_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("modes", &opts(&dir)).unwrap();
    let m = q.consumer("g", manual()).unwrap();
    assert!(matches!(
        q.consumer("g", ConsumerOptions::new()),
        Err(Error::Busy(_))
    ));
    assert!(matches!(
        q.seek_group("g", shmq::Seek::Earliest),
        Err(Error::Busy(_))
    ));
    drop(m);
    let auto = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert!(matches!(q.consumer("g", manual()), Err(Error::Busy(_))));
    q.producer().unwrap().publish(b"x").unwrap();
    let mut auto = auto;
    let d = auto.receive().unwrap();
    assert!(matches!(
        d.nack(Nack::Requeue),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn options_of_delivery_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (o, what) in [
        (opts(&dir).max_deliveries(0), "max_deliveries"),
        (opts(&dir).lease(Duration::ZERO), "lease"),
        (opts(&dir).dlq_slots(0), "dlq_slots"),
    ] {
        let e = Queue::create("bad", &o).unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
    }
}

#[test]
fn a_remembered_key_is_not_enqueued_again() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("keys", &opts(&dir).dedup_window(2)).unwrap();
    let mut p = q.producer().unwrap();
    let key = |k: &str| shmq::Meta::new().key(k);
    let a = p.publish_with(b"a", &key("a")).unwrap();
    assert_eq!(p.publish_with(b"a again", &key("a")).unwrap(), a);
    // Another producer (any process) sees the same table.
    assert_eq!(
        q.producer().unwrap().publish_with(b"a", &key("a")).unwrap(),
        a
    );
    let b = p.publish_with(b"b", &key("b")).unwrap();
    assert_ne!(a, b);
    let st = q.stats();
    assert_eq!((st.published, st.deduplicated), (2, 2));
    // The window holds 2 keys: a third pushes "a" out (by count).
    p.publish_with(b"c", &key("c")).unwrap();
    let a2 = p.publish_with(b"a", &key("a")).unwrap();
    assert!(a2 > a, "forgotten by count");
    // Unkeyed publishes are never deduplicated.
    assert_ne!(p.publish(b"x").unwrap(), p.publish(b"x").unwrap());
}

#[test]
fn keys_are_forgotten_after_the_ttl_and_need_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&dir).dedup_ttl(Duration::from_millis(100));
    let q = Queue::create("ttl", &o).unwrap();
    let mut p = q.producer().unwrap();
    let m = shmq::Meta::new().key(b"k");
    let first = p.publish_with(b"1", &m).unwrap();
    assert_eq!(p.publish_with(b"1", &m).unwrap(), first);
    std::thread::sleep(Duration::from_millis(150));
    assert_ne!(p.publish_with(b"1", &m).unwrap(), first, "forgotten by age");
    let off = Queue::create("off", &opts(&dir).dedup_window(0)).unwrap();
    let e = off.producer().unwrap().publish_with(b"1", &m).unwrap_err();
    assert!(matches!(e, Error::InvalidOption(_)), "{e}");
}

#[test]
fn receipts_keep_many_leases_while_the_consumer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("receipts", &opts(&dir).lease(Duration::from_millis(300))).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    let mut other = q.consumer("other", manual()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..8u8 {
        p.publish(&[i]).unwrap();
    }
    let mut receipts: Vec<_> = (0..8)
        .map(|_| c.receive().unwrap().into_receipt().unwrap())
        .collect();
    assert_eq!(
        receipts.iter().map(|r| r.seq()).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert_eq!(q.groups()[0].in_flight, 8);
    // Another group's receipt is refused, and changes nothing.
    let theirs = other.receive().unwrap().into_receipt().unwrap();
    assert!(matches!(
        c.ack_receipt(&theirs),
        Err(Error::InvalidOption(_))
    ));
    other.ack_receipt(&theirs).unwrap();
    // Out of order: the committed prefix moves only when 0 is done.
    c.ack_receipt(&receipts[3]).unwrap();
    assert_eq!(q.groups()[0].committed, 0);
    c.ack_receipt(&receipts[0]).unwrap();
    assert_eq!(q.groups()[0].committed, 1);
    // Twice: the lease is gone.
    assert!(matches!(
        c.ack_receipt(&receipts[0]),
        Err(Error::LeaseExpired)
    ));
    // A nack to the DLQ through a receipt copies the message.
    c.nack_receipt(&receipts[1], Nack::DeadLetter).unwrap();
    assert_eq!(q.dlq().list().unwrap()[0].payload, [1]);
    c.nack_receipt(&receipts[2], Nack::Requeue).unwrap();
    let again = c.receive().unwrap();
    assert_eq!((again.payload(), again.attempt()), (&[2u8][..], 2));
    again.ack().unwrap();
    // Extended, 4 outlives the lease; 5 runs out and its receipt is stale.
    std::thread::sleep(Duration::from_millis(150));
    let mut r4 = receipts[4];
    c.extend_receipt(&mut r4, Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let back = c.receive_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((back.seq(), back.attempt()), (5, 2), "5's lease ran out");
    let fresh = back.into_receipt().unwrap();
    assert_eq!(fresh.attempt(), 2);
    assert!(
        matches!(c.ack_receipt(&receipts[5]), Err(Error::LeaseExpired)),
        "stale receipt"
    );
    c.ack_receipt(&fresh).unwrap();
    c.ack_receipt(&r4).unwrap();
    // 6 and 7 ran out too: delivered again; finish everything.
    receipts.clear();
    while let Some(m) = c.poll(Duration::from_millis(100)).unwrap() {
        m.ack().unwrap();
    }
    let g = &q.groups()[0];
    assert_eq!((g.committed, g.in_flight), (8, 0));
    // ack=auto has nothing to keep.
    let mut auto = q
        .consumer("auto", ConsumerOptions::new().start(Start::Earliest))
        .unwrap();
    assert!(matches!(
        auto.receive().unwrap().into_receipt(),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn a_keyed_message_held_by_a_receipt_holds_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("receipt-keys", &opts(&dir).ordering_lanes(8)).unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    let mut p = q.producer().unwrap();
    for (k, v) in [("a", 1u8), ("a", 2), ("b", 3)] {
        p.publish_with(&[v], &shmq::Meta::new().ordering_key(k))
            .unwrap();
    }
    let a1 = c.receive().unwrap().into_receipt().unwrap();
    let b = c.receive().unwrap();
    assert_eq!(b.payload(), [3], "a2 waits for a1; b goes on");
    b.ack().unwrap();
    assert!(c.poll(Duration::from_millis(50)).unwrap().is_none());
    c.ack_receipt(&a1).unwrap();
    assert_eq!(c.receive().unwrap().payload(), [2]);
}
