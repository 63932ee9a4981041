//! Per-key order across real processes: competing ack=manual workers with
//! random handling times and random nacks, two of them SIGKILLed mid-lease
//! and replaced, over many keys. For each key the handlings never overlap
//! and follow seq order; every message is acked once in the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shmq::{Meta, Options, Queue, Start};
use shmq_tests::{Worker, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const TOTAL: u64 = 1500;

/// `acked KEY SEQ START END` lines.
fn parse(out: &str, into: &mut BTreeMap<String, Vec<(u64, u64, u64)>>) {
    for l in out.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() == 5 && f[0] == "acked" {
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            into.entry(f[1].to_string())
                .or_default()
                .push((n(2), n(3), n(4)));
        }
    }
}

#[test]
fn killed_workers_break_no_keys_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "ordered",
        &Options::new()
            .dir(d)
            .slots(2048)
            .slot_size(64)
            .ordering_lanes(64)
            .lease(Duration::from_millis(300))
            .max_deliveries(100),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut want: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..TOTAL {
        let key = format!("k{}", (i * 7 + i / 5) % 40);
        let seq = p
            .publish_with(b"x", &Meta::new().ordering_key(&key))
            .unwrap();
        want.entry(key).or_default().push(seq);
    }
    let mut readers = Vec::new();
    let mut spawn = |seed: u64| {
        let mut w = Worker::spawn(WORKER, &["ordered", d, "ordered", "g", &seed.to_string()]);
        readers.push(w.read_all());
        w
    };
    let workers: Vec<Worker> = (1..=4).map(&mut spawn).collect();
    std::thread::sleep(Duration::from_millis(400));
    // Two die mid-lease (most of their time is spent holding one).
    let mut workers = workers.into_iter();
    workers.next().unwrap().kill();
    workers.next().unwrap().kill();
    let mut rest: Vec<Worker> = workers.collect();
    rest.push(spawn(5));
    rest.push(spawn(6));
    let deadline = Instant::now() + Duration::from_secs(120);
    while q.stats().groups[0].committed < TOTAL {
        assert!(
            Instant::now() < deadline,
            "stuck: {:?}",
            q.stats().groups[0]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in rest {
        w.finish(Duration::from_secs(30));
    }
    let mut got = BTreeMap::new();
    for r in readers {
        parse(&r.join().unwrap(), &mut got);
    }
    let g = &q.stats().groups[0];
    assert_eq!((g.committed, g.dead_lettered), (TOTAL, 0));
    assert!(g.redelivered > 0, "the nacks came back: {g:?}");
    assert!(
        g.acked >= TOTAL - 2,
        "acked once each (a kill may cut a log line): {g:?}"
    );
    for (key, seqs) in &want {
        let mut handled = got.remove(key).unwrap_or_default();
        handled.sort();
        // A killed worker may have acked its last message and died before
        // printing it: at most one such gap per killed worker.
        let logged: Vec<u64> = handled.iter().map(|h| h.0).collect();
        assert!(
            logged.windows(2).all(|w| w[0] < w[1]),
            "key {key}: acked twice: {logged:?}"
        );
        assert!(logged.iter().all(|s| seqs.contains(s)));
        assert!(
            seqs.len() - logged.len() <= 2,
            "key {key}: {} of {} logged",
            logged.len(),
            seqs.len()
        );
        // Seq order and no overlap: each handling ended before the next
        // one of its key started.
        for w in handled.windows(2) {
            assert!(
                w[0].2 <= w[1].1,
                "key {key}: {:?} and {:?} overlap",
                w[0],
                w[1]
            );
        }
    }
}
