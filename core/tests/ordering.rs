//! Per-key order among competing ack=manual consumers: a message with an
//! ordering key is leased only once every earlier message of its key is
//! finished in the group, while other keys go on in parallel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Error, Meta, Nack, Options, Queue, Start};

const T: Duration = Duration::from_secs(10);

fn opts(dir: &tempfile::TempDir) -> Options {
    Options::new()
        .dir(dir.path())
        .slots(1024)
        .slot_size(64)
        .ordering_lanes(16)
        .lease(Duration::from_millis(200))
        .max_deliveries(50)
}

fn manual() -> ConsumerOptions {
    ConsumerOptions::new().ack(Ack::Manual)
}

/// What the workers saw: per key, (seq, start, end) of each handling that
/// ended in an ack.
type Log = Arc<Mutex<HashMap<String, Vec<(u64, Instant, Instant)>>>>;

/// Runs `workers` threads, each its own consumer, until `total` messages
/// are acked; each handling sleeps `work` and nacks with `nack_every`.
fn run(q: &Queue, workers: usize, total: u64, work: Duration, nack_every: u64) -> (Log, Duration) {
    let log: Log = Arc::default();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let began = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers {
            let (log, acked) = (log.clone(), acked.clone());
            s.spawn(move || {
                let mut c = q.consumer("g", manual()).unwrap();
                let mut n = 0u64;
                while acked.load(std::sync::atomic::Ordering::SeqCst) < total {
                    assert!(began.elapsed() < Duration::from_secs(60), "stuck");
                    let Some(m) = c.poll(Duration::from_millis(2)).unwrap() else {
                        continue;
                    };
                    let key = String::from_utf8(m.ordering_key().unwrap().to_vec()).unwrap();
                    let seq = m.seq();
                    let start = Instant::now();
                    std::thread::sleep(work);
                    n += 1;
                    if nack_every > 0 && (n + w as u64) % nack_every == 0 {
                        m.nack(Nack::Requeue).unwrap();
                        continue;
                    }
                    let end = Instant::now();
                    match m.ack() {
                        Ok(()) => {
                            log.lock()
                                .unwrap()
                                .entry(key)
                                .or_default()
                                .push((seq, start, end));
                            acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(Error::LeaseExpired) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    (log, began.elapsed())
}

fn publish(q: &Queue, keys: u64, total: u64, even: bool) -> HashMap<String, Vec<u64>> {
    let mut p = q.producer().unwrap();
    let mut want: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..total {
        // Keys in an uneven mix, so lanes collide and some keys are hot.
        let key = match even {
            true => format!("customer-{}", i % keys),
            false => format!("customer-{}", (i * i + i / 3) % keys),
        };
        let seq = p
            .publish_with(format!("{i}").as_bytes(), &Meta::new().ordering_key(&key))
            .unwrap();
        want.entry(key).or_default().push(seq);
    }
    want
}

/// For every key: each message acked once, in seq order, and no two
/// handlings of one key overlapping in time.
fn check(log: &Log, want: &HashMap<String, Vec<u64>>) {
    let log = log.lock().unwrap();
    for (key, seqs) in want {
        let got = &log[key];
        let got_seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(&got_seqs, seqs, "key {key}: acked in seq order, once each");
        for pair in got.windows(2) {
            assert!(
                pair[0].2 <= pair[1].1,
                "key {key}: handlings overlap: {pair:?}"
            );
        }
    }
}

#[test]
fn competing_consumers_keep_each_keys_order_through_nacks() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("order", &opts(&dir)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let want = publish(&q, 24, 600, false);
    let (log, _) = run(&q, 4, 600, Duration::from_micros(200), 7);
    check(&log, &want);
    let s = q.stats();
    assert!(s.groups[0].nacked > 0);
}

/// The most handlings (start to end) under way at one instant.
fn most_at_once(log: &Log) -> usize {
    let log = log.lock().unwrap();
    let mut edges: Vec<(Instant, i32)> = log
        .values()
        .flatten()
        .flat_map(|&(_, start, end)| [(start, 1), (end, -1)])
        .collect();
    // At one instant an end comes before a start: touching is not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn keys_go_in_parallel() {
    // 4 workers handling 1 ms per message over 64 keys handle messages of
    // different keys at once: at some instant at least 3 handlings were
    // under way. Counted from the handlings' own start and end, not from
    // the run's wall time, which a loaded machine stretches.
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("par", &opts(&dir).ordering_lanes(1024)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let want = publish(&q, 64, 400, true);
    let (log, _) = run(&q, 1, 400, Duration::from_millis(1), 0);
    check(&log, &want);
    // The measure is not trivially high: one worker never has two.
    assert_eq!(most_at_once(&log), 1);
    q.delete_group("g").unwrap();
    q.create_group("g", Start::Latest).unwrap();
    let want = publish(&q, 64, 400, true);
    let (log, _) = run(&q, 4, 400, Duration::from_millis(1), 0);
    check(&log, &want);
    let most = most_at_once(&log);
    assert!(
        most >= 3,
        "at most {most} of 4 workers handled messages at once"
    );
}

#[test]
fn a_poison_message_holds_only_its_key_and_its_key_goes_on_after_the_dlq() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("poison", &opts(&dir).max_deliveries(3)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(b"poison", &Meta::new().ordering_key("a"))
        .unwrap();
    p.publish_with(b"a-after", &Meta::new().ordering_key("a"))
        .unwrap();
    p.publish_with(b"b-1", &Meta::new().ordering_key("b"))
        .unwrap();
    p.publish_with(b"plain", &Meta::new()).unwrap();
    p.publish_with(b"b-2", &Meta::new().ordering_key("b"))
        .unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + T;
    while seen.len() < 4 {
        assert!(Instant::now() < deadline, "stuck: saw {seen:?}");
        let Some(m) = c.poll(Duration::from_millis(50)).unwrap() else {
            continue;
        };
        let what = String::from_utf8(m.payload().to_vec()).unwrap();
        if what == "poison" {
            m.nack(Nack::Requeue).unwrap();
            continue;
        }
        // Nothing of key a comes while the poison message is unfinished.
        if what == "a-after" {
            assert_eq!(
                q.dlq().list().unwrap().len(),
                1,
                "a-after before its key was free"
            );
        }
        seen.push(what);
        m.ack().unwrap();
    }
    // b and the unkeyed one flowed past the poison message; b in order.
    let pos = |s: &str| seen.iter().position(|x| x == s).unwrap();
    assert!(pos("b-1") < pos("b-2"));
    assert_eq!(q.dlq().list().unwrap()[0].payload, b"poison");
    assert_eq!(
        q.dlq().list().unwrap()[0].ordering_key.as_deref(),
        Some(&b"a"[..])
    );
}

#[test]
fn a_lease_that_runs_out_is_redelivered_before_the_next_of_its_key() {
    let dir = tempfile::tempdir().unwrap();
    // Leases and delays far longer than the polls that must see nothing:
    // a loaded machine that stalls the test for a while must not let a
    // lease run out or a delay pass where the test says they have not.
    let q = Queue::create("expiry", &opts(&dir).lease(Duration::from_secs(2))).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(b"1", &Meta::new().ordering_key("k"))
        .unwrap();
    p.publish_with(b"2", &Meta::new().ordering_key("k"))
        .unwrap();
    let mut a = q.consumer("g", manual()).unwrap();
    let mut b = q.consumer("g", manual()).unwrap();
    let first = a.receive_timeout(T).unwrap();
    assert_eq!(first.payload(), b"1");
    // While it is leased, the other consumer gets nothing of key k.
    assert!(b.poll(Duration::from_millis(20)).unwrap().is_none());
    // Dropped (the worker "crashed"): 1 again, then 2.
    drop(first);
    let again = b.receive_timeout(T).unwrap();
    assert_eq!((again.payload(), again.attempt()), (&b"1"[..], 2));
    // (Well within the 2 s lease, which would rightly redeliver 1.)
    if let Some(m) = a.poll(Duration::from_millis(15)).unwrap() {
        panic!("2 waits for 1, got {:?} {:?}", m.seq(), m.attempt());
    }
    again.ack().unwrap();
    let second = a.receive_timeout(T).unwrap();
    assert_eq!(second.payload(), b"2");
    second.ack().unwrap();
    // A delay keeps the key: RequeueAfter.
    p.publish_with(b"3", &Meta::new().ordering_key("k"))
        .unwrap();
    p.publish_with(b"4", &Meta::new().ordering_key("k"))
        .unwrap();
    a.receive_timeout(T)
        .unwrap()
        .nack(Nack::RequeueAfter(Duration::from_secs(1)))
        .unwrap();
    assert!(
        b.poll(Duration::from_millis(40)).unwrap().is_none(),
        "4 waits for 3"
    );
    let three = b.receive_timeout(T).unwrap();
    assert_eq!(three.payload(), b"3");
    three.ack().unwrap();
    assert_eq!(a.receive_timeout(T).unwrap().payload(), b"4");
}

#[test]
fn stats_show_busy_lanes_and_the_key_that_holds_the_oldest_message() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create("stats", &opts(&dir)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(b"1", &Meta::new().ordering_key("slow-customer"))
        .unwrap();
    p.publish_with(b"2", &Meta::new().ordering_key("slow-customer"))
        .unwrap();
    p.publish_with(b"3", &Meta::new().ordering_key("fast-customer"))
        .unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    let held = c.receive_timeout(T).unwrap();
    assert_eq!(held.payload(), b"1");
    let mut c2 = q.consumer("g", manual()).unwrap();
    let other = c2.receive_timeout(T).unwrap();
    assert_eq!(other.seq(), 2, "the other key went by");
    assert_eq!(q.stats().groups[0].busy_lanes, 2);
    other.ack().unwrap();
    let g = &q.stats().groups[0];
    assert_eq!(g.busy_lanes, 1, "slow-customer's lane ({g:?})");
    assert_eq!(g.oldest_unacked_key.as_deref(), Some(&b"slow-customer"[..]));
    held.ack().unwrap();
}

/// Receives within `T` (panics naming `what` otherwise).
fn must_receive<'c>(c: &'c mut shmq::Consumer, what: &str) -> shmq::Delivery<'c> {
    c.poll(T)
        .unwrap()
        .unwrap_or_else(|| panic!("nothing came: {what}"))
}

#[test]
fn a_redriven_keyed_dead_letter_goes_to_the_end_of_its_key_and_only_to_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "redrive-key",
        // A lease far longer than the 100 ms poll that must see nothing
        // of key a while a2 is held (a stalled test must not let it run out).
        &opts(&dir)
            .lease(Duration::from_secs(5))
            .journal(shmq::Retention::new(Duration::from_secs(3600), 1 << 28)),
    )
    .unwrap();
    q.create_group("work", Start::Earliest).unwrap();
    q.create_group("audit", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let keyed = |k| Meta::new().ordering_key(k).type_id(7).correlation_id(9);
    p.publish_with(b"a1", &keyed("a").header("trace", b"t-1"))
        .unwrap();
    p.publish_with(b"a2", &keyed("a")).unwrap();
    let mut w = q.consumer("work", manual()).unwrap();
    let m = must_receive(&mut w, "a1");
    assert_eq!(m.payload(), b"a1");
    m.nack(Nack::DeadLetter).unwrap();
    // Its key went on without it: a2 is leased, and stays unfinished.
    let a2 = must_receive(&mut w, "a2");
    assert_eq!(a2.payload(), b"a2");
    let a2_seq = a2.seq();
    drop(a2); // back to the group, due again at once

    assert_eq!(q.dlq().redrive(None).unwrap(), 1);
    assert!(
        q.dlq().list().unwrap().is_empty(),
        "redriven: out of the DLQ"
    );
    // Published after the redrive: behind the redriven a1.
    p.publish_with(b"a3", &keyed("a")).unwrap();
    p.publish_with(b"b1", &keyed("b")).unwrap();

    // a2 comes again first (it is before the redriven a1 in its key).
    let m = must_receive(&mut w, "a2 again");
    assert_eq!((m.payload(), m.seq()), (&b"a2"[..], a2_seq));
    // Nothing more of key a while a2 is unfinished; b goes past.
    let mut w2 = q.consumer("work", manual()).unwrap();
    let b = must_receive(&mut w2, "b1");
    assert_eq!(b.payload(), b"b1");
    b.ack().unwrap();
    assert!(
        w2.poll(Duration::from_millis(100)).unwrap().is_none(),
        "a1 came before a2 finished"
    );
    m.ack().unwrap();
    // Then the redriven a1, as it was published (key, headers, ids), a
    // fresh budget, a new seq; then a3.
    let m = must_receive(&mut w2, "redriven a1");
    assert_eq!(m.payload(), b"a1");
    assert_eq!(m.ordering_key(), Some(&b"a"[..]));
    assert_eq!(m.header("trace"), Some(&b"t-1"[..]));
    assert_eq!((m.type_id(), m.correlation_id(), m.attempt()), (7, 9, 1));
    assert!(m.seq() > a2_seq);
    let a1_seq = m.seq();
    // Dead-lettered again, it remembers its redrive.
    m.nack(Nack::DeadLetter).unwrap();
    let dead = q.dlq().list().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].seq, dead[0].redrives), (a1_seq, 1));
    assert_eq!(dead[0].ordering_key.as_deref(), Some(&b"a"[..]));
    assert_eq!(
        dead[0].headers,
        vec![("trace".to_string(), b"t-1".to_vec())]
    );
    let m = must_receive(&mut w2, "a3");
    assert_eq!(m.payload(), b"a3");
    m.ack().unwrap();

    // The other group never sees the redriven copy, live or replayed.
    let mut audit = q.consumer("audit", ConsumerOptions::new()).unwrap();
    let mut seen = Vec::new();
    while let Some(m) = audit.try_receive().unwrap() {
        seen.push(String::from_utf8(m.payload().to_vec()).unwrap());
    }
    assert_eq!(seen, ["a1", "a2", "a3", "b1"]);
    audit.seek(shmq::Seek::Earliest).unwrap();
    let mut replayed = Vec::new();
    while let Some(m) = audit.try_receive().unwrap() {
        replayed.push(String::from_utf8(m.payload().to_vec()).unwrap());
    }
    assert_eq!(replayed, seen);
    // Nor a batch.
    let mut fresh = q
        .consumer("late", ConsumerOptions::new().start(Start::Earliest))
        .unwrap();
    let b = fresh.receive_batch(16, Duration::from_millis(100)).unwrap();
    let batch: Vec<_> = b.iter().map(|m| m.payload().to_vec()).collect();
    drop(b);
    let mut rest = batch;
    while let Some(m) = fresh.try_receive().unwrap() {
        rest.push(m.payload().to_vec());
    }
    assert_eq!(rest.iter().filter(|x| x.as_slice() == b"a1").count(), 1);
}

#[test]
fn a_keyed_redrive_that_finds_no_room_leaves_the_dead_letter_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "redrive-full",
        &opts(&dir).slots(4).overflow(shmq::Overflow::Reject),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish_with(b"k1", &Meta::new().ordering_key("k"))
        .unwrap();
    p.publish_with(b"j1", &Meta::new().ordering_key("j"))
        .unwrap();
    let mut c = q.consumer("g", manual()).unwrap();
    must_receive(&mut c, "k1").nack(Nack::DeadLetter).unwrap();
    must_receive(&mut c, "j1").nack(Nack::DeadLetter).unwrap();
    for i in 0..4 {
        p.publish(format!("fill-{i}").as_bytes()).unwrap();
    }
    // Both stay, counted, with what holds the ring: the second is not
    // sent the DLQ's way (before earlier messages of its key) once the
    // first found no room.
    match q.dlq().redrive(None) {
        Err(Error::PartlyRedriven {
            redriven: 0,
            left: 2,
            why,
            cause,
        }) => {
            assert!(matches!(*cause, Error::Full), "{cause:?}");
            assert!(why.starts_with("group \"g\" holds the ring"), "{why}");
        }
        other => panic!("no room, no redrive: {other:?}"),
    }
    assert_eq!(q.dlq().len(), 2, "still dead letters");
    assert!(matches!(
        q.dlq().redrive(Some(0)),
        Err(Error::PartlyRedriven { left: 1, .. })
    ));
    // Room again: they go.
    for _ in 0..4 {
        must_receive(&mut c, "fill").ack().unwrap();
    }
    assert_eq!(q.dlq().redrive(Some(0)).unwrap(), 1);
    assert_eq!(q.dlq().redrive(None).unwrap(), 1);
    assert_eq!(q.dlq().len(), 0);
    let k1 = must_receive(&mut c, "k1 again");
    assert_eq!(k1.payload(), b"k1");
    k1.ack().unwrap();
    assert_eq!(must_receive(&mut c, "j1 again").payload(), b"j1");
}

#[test]
fn many_keys_released_at_once_are_all_ready_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Lanes enough that these keys share none.
    let q = Queue::create("released", &opts(&dir).ordering_lanes(4096)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let keys: Vec<String> = (0..12).map(|k| format!("key-{k}")).collect();
    for round in 0..2u8 {
        for k in &keys {
            p.publish_with(&[round], &Meta::new().ordering_key(k))
                .unwrap();
        }
    }
    let mut c = q.consumer("g", manual()).unwrap();
    // The first of every key, kept (a bridge waiting for its far side).
    let firsts: Vec<_> = (0..keys.len())
        .map(|_| c.try_receive().unwrap().unwrap().into_receipt().unwrap())
        .collect();
    assert!(
        c.try_receive().unwrap().is_none(),
        "seconds wait for their keys"
    );
    // Finished together: every second is ready now, not one per scan
    // period (more releases than the group's release hints).
    for r in &firsts {
        c.ack_receipt(r).unwrap();
    }
    for k in 0..keys.len() {
        let m = c
            .try_receive()
            .unwrap()
            .unwrap_or_else(|| panic!("second {k} not ready"));
        assert_eq!(m.payload(), [1]);
        m.ack().unwrap();
    }
}

#[test]
fn a_keyed_redrive_into_a_spilling_queue_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "redrive-spill",
        &Options::new()
            .dir(dir.path())
            .slots(4)
            .slot_size(256)
            .overflow(shmq::Overflow::Spill)
            .spill_dir(dir.path().join("spill"))
            .max_deliveries(3),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..40u64 {
        let key = format!("customer-{}", i % 3);
        p.publish_with(
            format!("payload-{i}").as_bytes(),
            &Meta::new().ordering_key(&key),
        )
        .unwrap();
    }
    let mut c = q.consumer("g", manual()).unwrap();
    for i in 0..40u64 {
        let m = must_receive(&mut c, "spilled");
        assert_eq!(m.seq(), i);
        if i == 5 {
            m.nack(Nack::DeadLetter).unwrap();
        } else {
            m.ack().unwrap();
        }
    }
    assert_eq!(q.dlq().redrive(Some(5)).unwrap(), 1);
    let m = must_receive(&mut c, "the redriven one");
    assert_eq!(m.payload(), b"payload-5");
    assert_eq!(m.ordering_key(), Some(&b"customer-2"[..]));
    m.ack().unwrap();
}
