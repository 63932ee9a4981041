//! ack=manual across real processes: competing consumers SIGKILLed and
//! restarted, a held lease whose process dies, the DLQ from another
//! process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Options, Queue, Start};
use shmq_tests::{Rng, Worker, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");

#[test]
fn killed_competing_consumers_lose_nothing_and_duplicates_are_redeliveries() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "work",
        &Options::new()
            .dir(d)
            .slots(4096)
            .slot_size(16)
            .lease(Duration::from_secs(30))
            .max_deliveries(100),
    )
    .unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    const N: u64 = 500_000;
    // Group b: one ack=auto consumer in this process, on a thread.
    let qb = q.clone();
    let b = std::thread::spawn(move || {
        let mut c = qb.consumer("b", ConsumerOptions::new()).unwrap();
        let mut next = 0u64;
        while next < N {
            let m = c
                .receive_timeout(Duration::from_secs(60))
                .expect("group b stalled");
            assert_eq!(m.seq(), next, "group b in order");
            next += 1;
        }
    });
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || {
            let mut p = q.producer().unwrap();
            for i in 0..N {
                p.publish(&i.to_le_bytes()).unwrap();
            }
        })
    };
    // Group a: three competing worker processes, killed at random moments
    // and restarted, until the group has finished every message.
    let mut rng = Rng(0x5eed_1234_abcd);
    let spawn = || {
        let mut w = Worker::spawn(WORKER, &["work", d, "work", "a"]);
        let r = w.read_all();
        (w, r)
    };
    let mut workers: Vec<_> = (0..3).map(|_| spawn()).collect();
    let mut outputs = Vec::new();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    let group_a = || q.groups().into_iter().find(|g| g.name == "a").unwrap();
    while group_a().committed < N {
        assert!(
            Instant::now() < deadline,
            "group a did not finish: {:?}",
            group_a()
        );
        std::thread::sleep(Duration::from_millis(2 + rng.next() % 30));
        if kills < 12 {
            let i = (rng.next() % 3) as usize;
            let (w, r) = std::mem::replace(&mut workers[i], spawn());
            w.kill();
            outputs.push(r.join().unwrap());
            kills += 1;
        }
        for slot in workers.iter_mut() {
            if slot.0.exited() {
                let (_, r) = std::mem::replace(slot, spawn());
                outputs.push(r.join().unwrap());
            }
        }
    }
    producer.join().unwrap();
    b.join().unwrap();
    for (w, r) in workers {
        w.kill();
        outputs.push(r.join().unwrap());
    }
    // Every message was delivered to group a; a message delivered more
    // than once was delivered with increasing attempts (a recorded
    // redelivery), never twice as the same attempt.
    let mut seen: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for line in outputs.iter().flat_map(|o| o.lines()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        // A line cut by a kill does not parse: skip it.
        if let [_, seq, attempt] = w[..] {
            if let (Ok(seq), Ok(attempt)) = (seq.parse::<u64>(), attempt.parse::<u32>()) {
                seen.entry(seq).or_default().push(attempt);
            }
        }
    }
    let missing: Vec<u64> = (0..N).filter(|s| !seen.contains_key(s)).take(5).collect();
    // A worker killed between receiving and printing leaves no line, but
    // its message was redelivered (and printed) by another.
    assert!(
        missing.is_empty(),
        "never delivered to group a: {missing:?}…"
    );
    let mut redelivered = 0;
    for (seq, attempts) in &seen {
        let mut sorted = attempts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            attempts.len(),
            "seq {seq}: same attempt twice {attempts:?}"
        );
        redelivered += attempts.len() - 1;
    }
    let a = group_a();
    assert_eq!((a.committed, a.in_flight), (N, 0));
    assert!(
        kills >= 3,
        "the workers finished before being killed: nothing was tested"
    );
    assert!(q.dlq().is_empty());
    eprintln!(
        "{kills} kills, {redelivered} redeliveries recorded, {} by the queue",
        a.redelivered
    );
}

#[test]
fn a_dead_consumers_lease_comes_back_long_before_it_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "held",
        &Options::new()
            .dir(d)
            .slots(16)
            .lease(Duration::from_secs(120)),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    q.producer().unwrap().publish(b"job").unwrap();
    let mut holder = Worker::spawn(WORKER, &["hold", d, "held", "g"]);
    holder.wait_for_line("holding 0", Duration::from_secs(30));
    let mut c = q
        .consumer("g", ConsumerOptions::new().ack(shmq::Ack::Manual))
        .unwrap();
    assert!(
        c.try_receive().unwrap().is_none(),
        "leased to the live holder"
    );
    let t0 = Instant::now();
    holder.kill();
    // The lease has two minutes to run; death detection brings it back in
    // well under a second (bounded generously here against a slow CI).
    let m = c.receive_timeout(Duration::from_secs(20)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert_eq!((m.seq(), m.attempt()), (0, 2));
    m.ack().unwrap();
    assert_eq!(q.groups()[0].expired, 1);
}

#[test]
fn a_producer_retrying_with_the_same_keys_after_a_kill_creates_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    const N: u64 = 20_000;
    let q = Queue::create(
        "keyed",
        &Options::new()
            .dir(d)
            .slots(1 << 16)
            .slot_size(16)
            .dedup_window(1 << 16),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    // Killed three times at random points, then left to finish: each run
    // starts again from key 0, as a producer replaying its input would.
    let mut rng = Rng(0xfeed_beef_1234);
    for _ in 0..3 {
        let mut w = Worker::spawn(WORKER, &["produce-keyed", d, "keyed", "7", &N.to_string()]);
        let r = w.read_all();
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 40));
        w.kill();
        let _ = r.join();
    }
    let w = Worker::spawn(WORKER, &["produce-keyed", d, "keyed", "7", &N.to_string()]);
    w.finish(Duration::from_secs(120));
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut seen = vec![0u32; N as usize];
    while let Ok(m) = c.receive_timeout(Duration::from_millis(300)) {
        let (id, i) = shmq_tests::decode(m.payload()).unwrap();
        assert_eq!(id, 7);
        seen[i as usize] += 1;
    }
    let dups: Vec<usize> = (0..N as usize).filter(|&i| seen[i] > 1).take(5).collect();
    let lost: Vec<usize> = (0..N as usize).filter(|&i| seen[i] == 0).take(5).collect();
    assert!(dups.is_empty(), "published twice: {dups:?}");
    assert!(lost.is_empty(), "never published: {lost:?}");
    assert!(
        q.stats().deduplicated > 0,
        "the retries found remembered keys"
    );
}

#[test]
fn a_poison_message_goes_to_the_dlq_while_the_rest_flows_then_redrive_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "poison",
        &Options::new()
            .dir(d)
            .slots(1024)
            .slot_size(16)
            .max_deliveries(3),
    )
    .unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    q.create_group("b", Start::Earliest).unwrap();
    const N: u64 = 10_000;
    let mut p = q.producer().unwrap();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let mut w = Worker::spawn(WORKER, &["work", d, "poison", "a"]);
            let r = w.read_all();
            (w, r)
        })
        .collect();
    let mut b = q.consumer("b", ConsumerOptions::new()).unwrap();
    let mut b_got = 0;
    for i in 0..N {
        let body: &[u8] = if i == N / 2 { b"poison pill" } else { b"fine" };
        p.publish(body).unwrap();
        while let Some(m) = b.try_receive().unwrap() {
            assert_eq!(m.seq(), b_got);
            b_got += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let group = |name: &str| q.groups().into_iter().find(|g| g.name == name).unwrap();
    while group("a").committed < N {
        assert!(
            Instant::now() < deadline,
            "group a stalled: {:?}",
            group("a")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for (w, r) in workers {
        w.kill();
        let _ = r.join();
    }
    let dead = q.dlq().list().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        (
            dead[0].seq,
            dead[0].group.as_str(),
            dead[0].attempts,
            dead[0].reason
        ),
        (N / 2, "a", 3, shmq::Reason::MaxDeliveries)
    );
    let a = group("a");
    assert_eq!((a.acked, a.dead_lettered, a.nacked), (N - 1, 1, 3));
    // Redrive, from the CLI's library in this process: only group a sees it.
    assert_eq!(q.dlq().redrive(None).unwrap(), 1);
    let mut a_consumer = q
        .consumer("a", ConsumerOptions::new().ack(shmq::Ack::Manual))
        .unwrap();
    let m = a_consumer.receive_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!((m.seq(), m.payload()), (N / 2, &b"poison pill"[..]));
    m.nack(shmq::Nack::DeadLetter).unwrap();
    while let Some(m) = b.try_receive().unwrap() {
        assert!(m.seq() >= b_got, "group b got the redriven message");
        b_got += 1;
    }
    assert_eq!(b_got, N);
    assert_eq!(q.dlq().purge().unwrap(), 1);
    assert!(q.dlq().is_empty());
}
