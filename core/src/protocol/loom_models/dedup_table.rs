//! The dedup table (`protocol/dedup_table.rs`), and the settling of
//! keyed commits that `head` passes.

use loom::sync::Arc;
use loom::thread;

use super::{ME, World, model};
use crate::layout::AdminLock;
use crate::loom::{AtomicU64, Ordering};
use crate::options::Start;
use crate::protocol::group::commit_cursor;
use crate::protocol::lock::ThisProcess;
use crate::protocol::ring::{Begin, Claim, Peek};

#[test]
fn loom_one_of_two_producers_publishes_a_key() {
    // Two producers publish with the same key at once, each looking it up
    // under the admin lock: one publishes (its entry ends PUBLISHED with
    // its seq), the other waits and then gets that seq back.
    use crate::protocol::dedup_table::{Lookup, lookup_or_reserve};
    model("dedup insert", || {
        let table: Arc<Vec<crate::layout::DedupEntry>> =
            Arc::new((0..2).map(|_| crate::layout::DedupEntry::new()).collect());
        let lock = Arc::new(AdminLock::new());
        let next = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|pid| {
                let (table, lock, next) = (table.clone(), lock.clone(), next.clone());
                thread::spawn(move || {
                    loop {
                        let me = ThisProcess {
                            pid,
                            key: 10 + pid as u64,
                        };
                        let found = {
                            let _g = lock.lock(me, |_, _| true);
                            lookup_or_reserve(
                                &table,
                                &next,
                                42,
                                pid as u64,
                                1,
                                1_000,
                                |_| true,
                                |_| None,
                            )
                        };
                        match found {
                            Lookup::Mine(i) => {
                                // "Publish": this producer's message gets seq
                                // 100 + pid.
                                table[i].seq.store(100 + pid as u64, Ordering::Relaxed);
                                table[i].state.store(
                                    crate::protocol::dedup_table::PUBLISHED,
                                    Ordering::Release,
                                );
                                return (true, 100 + pid as u64);
                            }
                            Lookup::Published(seq) => return (false, seq),
                            Lookup::Wait => thread::yield_now(),
                            Lookup::Full => panic!("two entries, one key"),
                        }
                    }
                })
            })
            .collect();
        let r: Vec<(bool, u64)> = producers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(r.iter().filter(|(mine, _)| *mine).count(), 1, "{r:?}");
        assert_eq!(r[0].1, r[1].1, "both see the one seq: {r:?}");
    });
}

#[test]
fn loom_head_never_passes_an_unsettled_keyed_commit() {
    // A keyed producer records its position (keyed_pos, then the entry's
    // seq), commits, and dies before it marks its entry PUBLISHED. A
    // consumer reads the message and moves its group past it; a producer
    // moves `head` under the admin lock, settling what it passes. Whenever
    // `head` passed the position, the entry says PUBLISHED: the retry of
    // the key is told "published" without looking at a slot that may
    // have been reused since.
    use crate::protocol::dedup_table::{PENDING, PUBLISHED};
    model("keyed settle", || {
        let w = World::new(2, 1);
        {
            let g = w.lock.lock(ME, |_, _| true);
            w.groups().create(&g, "g", Start::Earliest, 0).unwrap();
        }
        let entry = Arc::new(crate::layout::DedupEntry::new());
        entry.state.store((2 << 2) | PENDING, Ordering::Relaxed);
        entry.seq.store(u64::MAX, Ordering::Relaxed);
        let keyed = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let producer = {
            let (w, entry, keyed) = (w.clone(), entry.clone(), keyed.clone());
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                    panic!("an empty ring has room")
                };
                // `dedup::claimed`, then the publish; no `published`.
                keyed.1.store(0, Ordering::Relaxed);
                keyed.0.store(pos + 1, Ordering::SeqCst);
                entry.seq.store(pos, Ordering::Release);
                let Begin::Ours(seen) = w.begin(pos, 2) else {
                    panic!("nothing aborts in this model")
                };
                ring.commit(pos, 1, seen, &w.producers[2]).unwrap();
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                w.read(0);
                commit_cursor(&w.groups[0].committed, 1);
            })
        };
        let settler = {
            let (w, entry, keyed) = (w.clone(), entry.clone(), keyed.clone());
            thread::spawn(move || {
                let g = w.lock.lock(ME, |_, _| true);
                let table = std::slice::from_ref(&*entry);
                w.groups().advance_head_settling(&g, |from, to| {
                    crate::protocol::dedup_table::settle_passed(
                        table,
                        std::iter::once((&keyed.0, &keyed.1)),
                        from,
                        to,
                        |pos| matches!(w.ring().peek(pos), Peek::Ready(_)),
                    )
                })
            })
        };
        producer.join().unwrap();
        consumer.join().unwrap();
        let head = settler.join().unwrap();
        if head > 0 {
            assert_eq!(entry.state.load(Ordering::Relaxed), PUBLISHED);
        }
    });
}
