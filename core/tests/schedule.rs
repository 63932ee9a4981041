//! Delayed and scheduled delivery (`Meta::delay`, `Meta::deliver_at`,
//! `Options::delivery_delay`): a message reaches no group before it is
//! due, then enters the ring like a message published at that moment.
//! Long delays run on the schedule clock the tests set ahead
//! (`shmq::set_schedule_clock_ahead`), so an hour passes in a
//! millisecond; short ones on the real clock, with assertions on order and
//! on "not before", never on how soon. The clock is the process's: the
//! tests take turns ([`clock`]).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use shmq::{Ack, ConsumerOptions, Error, Meta, Options, Overflow, Queue, Start};

const AN_HOUR: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(10);

fn opts(dir: &Path) -> Options {
    Options::new()
        .dir(dir)
        .slots(64)
        .slot_size(256)
        .spill_dir(dir.join("store"))
}

/// The schedule clock is the process's: each test holds this while it
/// runs, and starts with the clock put back.
fn clock() -> std::sync::MutexGuard<'static, ()> {
    static CLOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let g = CLOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    shmq::set_schedule_clock_ahead(Duration::ZERO);
    g
}

/// Time passes: the schedule clock is `d` ahead of the real one.
fn skip(d: Duration) {
    shmq::set_schedule_clock_ahead(d);
}

fn payloads(c: &mut shmq::Consumer, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| c.receive_timeout(WAIT).unwrap().payload().to_vec())
        .collect()
}

#[test]
fn a_delayed_message_reaches_no_group_before_its_time_and_holds_nothing_back() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let t = Instant::now();
    let id = p
        .publish_with(b"later", &Meta::new().delay(Duration::from_millis(80)))
        .unwrap();
    assert_eq!(id, 1, "the first schedule id");
    p.publish(b"now").unwrap();
    let st = q.stats();
    assert_eq!(st.scheduled, 1);
    assert!(st.next_due_ns.is_some());
    // The plain message is not held back by the delayed one before it.
    let m = c.receive_timeout(WAIT).unwrap();
    assert_eq!((m.payload(), m.seq()), (&b"now"[..], 0));
    drop(m);
    assert!(matches!(c.try_receive(), Ok(None)));
    let m = c.receive_timeout(WAIT).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(80),
        "{:?}",
        t.elapsed()
    );
    // Its seq is given when it is due: after the plain one.
    assert_eq!((m.payload(), m.seq()), (&b"later"[..], 1));
    drop(m);
    let st = q.stats();
    assert_eq!((st.scheduled, st.next_due_ns), (0, None));
}

#[test]
fn due_messages_come_in_due_order_whatever_order_they_were_scheduled_in() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    // Hours ahead, scheduled latest first, one by deliver_at.
    for h in [5u32, 3, 4, 1] {
        p.publish_with(format!("{h}h").as_bytes(), &Meta::new().delay(AN_HOUR * h))
            .unwrap();
    }
    let at = SystemTime::now() + AN_HOUR * 2;
    p.publish_with(b"2h", &Meta::new().deliver_at(at)).unwrap();
    assert_eq!(q.stats().scheduled, 5);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert!(matches!(c.try_receive(), Ok(None)));
    skip(AN_HOUR * 3 + Duration::from_secs(1));
    assert_eq!(payloads(&mut c, 3), [b"1h", b"2h", b"3h"]);
    assert!(matches!(c.try_receive(), Ok(None)));
    assert_eq!(q.stats().scheduled, 2);
    skip(AN_HOUR * 6);
    assert_eq!(payloads(&mut c, 2), [b"4h", b"5h"]);
}

#[test]
fn a_time_already_past_or_a_zero_delay_publishes_at_once() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    assert_eq!(
        p.publish_with(b"a", &Meta::new().delay(Duration::ZERO))
            .unwrap(),
        0
    );
    let past = SystemTime::now() - AN_HOUR;
    assert_eq!(
        p.publish_with(b"b", &Meta::new().deliver_at(past)).unwrap(),
        1
    );
    assert_eq!(q.stats().scheduled, 0);
    assert!(
        !dir.path().join("store").exists(),
        "nothing was scheduled: no directory made"
    );
}

#[test]
fn scheduled_messages_are_listed_and_cancelled_by_id_or_key() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let a = p
        .publish_with(
            b"a",
            &Meta::new()
                .delay(AN_HOUR * 2)
                .type_id(7)
                .ordering_key("cust-1")
                .header("h", "v"),
        )
        .unwrap();
    let b = p
        .publish_with(b"b", &Meta::new().delay(AN_HOUR).key("job-b"))
        .unwrap();
    let c_id = p
        .publish_with(b"c", &Meta::new().delay(AN_HOUR * 3))
        .unwrap();
    let listed = q.scheduled(10).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        [b, a, c_id]
    );
    assert_eq!(listed[1].payload, b"a");
    assert_eq!(listed[1].type_id, 7);
    assert_eq!(listed[1].ordering_key.as_deref(), Some(&b"cust-1"[..]));
    assert_eq!(listed[1].headers, [("h".to_string(), b"v".to_vec())]);
    assert!(listed[0].keyed && !listed[1].keyed);
    assert!(listed[0].due_ns < listed[1].due_ns);
    assert_eq!(q.scheduled(1).unwrap().len(), 1);
    // A repeat of a scheduled key is a duplicate: its schedule id again.
    assert_eq!(
        p.publish_with(b"b again", &Meta::new().delay(AN_HOUR).key("job-b"))
            .unwrap(),
        b
    );
    assert_eq!(q.stats().scheduled, 3);
    assert!(q.cancel_scheduled(a).unwrap());
    assert!(!q.cancel_scheduled(a).unwrap(), "cancelled already");
    assert!(q.cancel_scheduled_key("job-b").unwrap());
    assert!(!q.cancel_scheduled_key("job-b").unwrap());
    assert!(!q.cancel_scheduled(999).unwrap());
    let st = q.stats();
    assert_eq!((st.scheduled, st.scheduled_cancelled), (1, 2));
    skip(AN_HOUR * 4);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive_timeout(WAIT).unwrap().payload(), b"c");
    assert!(
        matches!(c.try_receive(), Ok(None)),
        "cancelled ones never come"
    );
}

#[test]
fn a_delayed_keyed_message_holds_its_key_only_once_due_and_keeps_its_order_after() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let co = || ConsumerOptions::new().ack(Ack::Manual).create(true);
    let mut w1 = q.consumer("g", co()).unwrap();
    let mut w2 = q.consumer("g", co()).unwrap();
    let mut p = q.producer().unwrap();
    let key = Meta::new().ordering_key("cust-9");
    p.publish_with(b"k-later", &key.delay(AN_HOUR)).unwrap();
    p.publish_with(b"k-1", &key).unwrap();
    p.publish_with(b"k-2", &key).unwrap();
    // The delayed message holds nothing: k-1 is leased at once, and k-2
    // waits behind k-1 (its key), not behind the delayed one.
    let m1 = w1.receive_timeout(WAIT).unwrap();
    assert_eq!(m1.payload(), b"k-1");
    assert!(matches!(w2.try_receive(), Ok(None)));
    m1.ack().unwrap();
    let m2 = w2.receive_timeout(WAIT).unwrap();
    assert_eq!(m2.payload(), b"k-2");
    // Due now, behind k-2 in its key's lane.
    skip(AN_HOUR + Duration::from_secs(1));
    assert!(matches!(w1.try_receive(), Ok(None)));
    m2.ack().unwrap();
    let m3 = w1.receive_timeout(WAIT).unwrap();
    assert_eq!(m3.payload(), b"k-later");
    assert_eq!(m3.ordering_key(), Some(&b"cust-9"[..]));
    m3.ack().unwrap();
}

#[test]
fn a_ttl_on_a_delayed_message_counts_from_when_it_is_due() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(
        b"x",
        &Meta::new().delay(AN_HOUR).ttl(Duration::from_secs(60)),
    )
    .unwrap();
    skip(AN_HOUR + Duration::from_secs(1));
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let m = c.receive_timeout(WAIT).unwrap();
    assert_eq!(m.payload(), b"x");
    assert!(q.dlq().list().unwrap().is_empty());
}

#[test]
fn a_queue_delay_schedules_every_message_and_refuses_reservations() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).delivery_delay(AN_HOUR)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let first = p.publish(b"one").unwrap();
    assert_eq!(
        p.publish_batch(&[&b"two"[..], b"three"]).unwrap(),
        first + 1
    );
    // A message's own delay wins over the queue's.
    p.publish_with(b"soon", &Meta::new().delay(Duration::from_millis(1)))
        .unwrap();
    assert!(matches!(p.reserve(4), Err(Error::InvalidOption(_))));
    assert_eq!(q.stats().scheduled, 4);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive_timeout(WAIT).unwrap().payload(), b"soon");
    assert!(matches!(c.try_receive(), Ok(None)));
    skip(AN_HOUR + Duration::from_secs(1));
    assert_eq!(payloads(&mut c, 3), [&b"one"[..], b"two", b"three"]);
    assert!(matches!(
        Queue::create("bad", &opts(dir.path()).delivery_delay(Duration::ZERO)),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn scheduled_messages_survive_every_handle_and_come_at_once_when_overdue() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    {
        let q = Queue::create("q", &opts(dir.path())).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        for i in 0..20u32 {
            p.publish_with(
                &i.to_le_bytes(),
                &Meta::new().delay(AN_HOUR + Duration::from_secs(i as u64)),
            )
            .unwrap();
        }
    }
    // Every handle closed; then the time passes.
    skip(AN_HOUR * 2);
    let q = Queue::open_with("q", &Options::new().dir(dir.path())).unwrap();
    assert_eq!(q.stats().scheduled, 20);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let got: Vec<u32> = (0..20)
        .map(|_| {
            u32::from_le_bytes(
                c.receive_timeout(WAIT)
                    .unwrap()
                    .payload()
                    .try_into()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(q.stats().scheduled, 0);
}

#[test]
fn a_full_ring_leaves_due_messages_scheduled_and_they_move_once_there_is_room() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    for overflow in [Overflow::Reject, Overflow::Block] {
        skip(Duration::ZERO);
        let name = format!("q-{overflow:?}");
        let o = opts(dir.path())
            .slots(8)
            .overflow(overflow)
            .spill_dir(dir.path().join(&name));
        let q = Queue::create(&name, &o).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        p.publish_with(b"due", &Meta::new().delay(AN_HOUR)).unwrap();
        for i in 0..8u8 {
            p.publish(&[i]).unwrap();
        }
        skip(AN_HOUR + Duration::from_secs(1));
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        for i in 0..8u8 {
            assert_eq!(c.receive_timeout(WAIT).unwrap().payload(), [i]);
        }
        assert_eq!(c.receive_timeout(WAIT).unwrap().payload(), b"due");
        let st = q.stats();
        assert_eq!(
            (st.scheduled, st.rejected),
            (0, 0),
            "{name}: nothing rejected, nothing lost"
        );
    }
}

#[test]
fn a_sleeping_consumer_wakes_for_a_message_scheduled_after_it_fell_asleep() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let q2 = Queue::open_with("q", &Options::new().dir(dir.path())).unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        q2.producer()
            .unwrap()
            .publish_with(b"late", &Meta::new().delay(Duration::from_millis(30)))
            .unwrap();
    });
    let m = c.receive_timeout(WAIT).unwrap();
    assert_eq!(m.payload(), b"late");
    drop(m);
    t.join().unwrap();
}

#[test]
fn a_million_scheduled_messages_are_held_and_all_come_due_in_order() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path()).slots(4096).slot_size(64)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    const N: u64 = 1_000_000;
    // Dues in a scrambled order, an hour and more ahead.
    let base = SystemTime::now() + AN_HOUR;
    for i in 0..N {
        let k = (i * 7919) % N;
        let at = base + Duration::from_micros(k);
        p.publish_with(&k.to_le_bytes(), &Meta::new().deliver_at(at))
            .unwrap();
    }
    assert_eq!(q.stats().scheduled, N);
    // Unscheduled messages go straight through meanwhile.
    p.publish(b"plain").unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive_timeout(WAIT).unwrap().payload(), b"plain");
    skip(AN_HOUR * 2);
    for want in 0..N {
        let m = c.receive_timeout(WAIT).unwrap();
        assert_eq!(u64::from_le_bytes(m.payload().try_into().unwrap()), want);
    }
    assert_eq!(q.stats().scheduled, 0);
    // Their segments are gone but the last.
    let segs = std::fs::read_dir(dir.path().join("store/schedule"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert_eq!(segs, 1);
}

#[test]
fn a_delay_past_ten_years_and_a_delayed_reservation_are_refused() {
    let _c = clock();
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("q", &opts(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let too_far = Meta::new().delay(shmq::MAX_DELAY + AN_HOUR);
    assert!(matches!(
        p.publish_with(b"x", &too_far),
        Err(Error::InvalidOption(_))
    ));
    let mut r = p.reserve(1).unwrap();
    r.copy_from_slice(b"x");
    r.set_meta(Meta::new().delay(AN_HOUR));
    // Written in the ring already: it cannot wait in the schedule.
    assert!(matches!(r.commit(), Err(Error::InvalidOption(_))));
    assert_eq!(q.stats().scheduled, 0);
    assert_eq!(q.delivery_delay(), None);
}
