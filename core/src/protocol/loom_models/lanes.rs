//! Ordering lanes (`protocol/lanes.rs`): a keyed message waits for its
//! lane's predecessor, collisions keep order, a stale ack or a dead
//! finisher does not break the hand-on.

use loom::sync::Arc;
use loom::thread;

use super::{LATE, LeaseWorld, T0, model};
use crate::loom::{AtomicU64, Ordering};
use crate::protocol::lanes::Keyed;
use crate::protocol::lease::{ACKED, DEAD, FINISHING, HeldLease, LEASED, READY, WAITING};

/// Whether position `p` is finished for the group (or being handed on,
/// which no expiry undoes): `committed` passed it (its word is then
/// cleared), or its word says so.
fn finished(w: &LeaseWorld, p: u64) -> bool {
    let st = w.leases().word(p).state();
    p < w.group.committed.load(Ordering::SeqCst) || matches!(st, ACKED | DEAD | FINISHING)
}

/// One consumer's step over the positions `0..n` at the cursor or due
/// again: a lease it got, if any (`lanes[p]`: position p's lane).
fn lane_step(
    w: &LeaseWorld,
    me: u32,
    lanes: &[usize],
    alive: &mut impl FnMut(u32) -> bool,
) -> Option<HeldLease> {
    let l = w.leases();
    let next = w.group.next.load(Ordering::Acquire);
    if (next as usize) < lanes.len() {
        if let Keyed::Leased(h) =
            l.take_keyed(next, 1, lanes[next as usize], me, T0, 1_000_000, alive)
        {
            return Some(h);
        }
    }
    (0..next).find_map(|p| l.take_again(p, me, T0, 1_000_000, alive).map(|(h, _)| h))
}

#[test]
fn loom_lanes_a_waiter_and_its_predecessors_finisher() {
    // Position 0 (lane 0) is leased to consumer 1. Consumer 2 indexes
    // position 1 of the same lane while consumer 1 acks (or dead-letters)
    // 0. Whoever leases 1 does so only after 0 finished; exactly one
    // lease of 1; and once both are quiet 1 is not left waiting (the
    // Dekker pair: with the indexer's re-check removed, or either side's
    // SeqCst weakened, loom finds 1 stuck WAITING).
    for dead_letter in [false, true] {
        model("lanes: waiter vs finisher", move || {
            let w = LeaseWorld::with_lanes(4, 2);
            let first = match w
                .leases()
                .take_keyed(0, 1, 0, 1, T0, 1_000_000, &mut |_| true)
            {
                Keyed::Leased(h) => h,
                other => panic!("{other:?}"),
            };
            let finisher = {
                let w = w.clone();
                thread::spawn(move || {
                    let l = w.leases();
                    if dead_letter {
                        let t = l.begin_dead(&first).unwrap();
                        l.finish_dead(&t);
                    } else {
                        l.ack(&first).unwrap();
                    }
                    l.advance_committed(|_| 1);
                    let got = l
                        .take_again(1, 1, T0, 1_000_000, &mut |_| true)
                        .map(|(h, _)| h);
                    if got.is_some() {
                        assert!(finished(&w, 0));
                    }
                    got
                })
            };
            let indexer = {
                let w = w.clone();
                thread::spawn(move || {
                    let l = w.leases();
                    let got = match l.take_keyed(1, 1, 0, 2, T0, 1_000_000, &mut |_| true) {
                        Keyed::Leased(h) => Some(h),
                        _ => l
                            .take_again(1, 2, T0, 1_000_000, &mut |_| true)
                            .map(|(h, _)| h),
                    };
                    if got.is_some() {
                        assert!(finished(&w, 0), "1 leased before 0 finished");
                    }
                    got
                })
            };
            let a = finisher.join().unwrap();
            let b = indexer.join().unwrap();
            assert!(!(a.is_some() && b.is_some()), "1 leased twice");
            let st = w.leases().word(1).state();
            if a.is_none() && b.is_none() {
                assert_eq!(st, READY, "1 is due, not stuck");
            } else {
                assert_eq!(st, LEASED);
            }
            assert_ne!(st, WAITING);
            assert!(
                w.group.committed.load(Ordering::Relaxed) <= 1,
                "committed passed 1"
            );
        });
    }
}

#[test]
fn loom_lanes_collisions_keep_order_with_two_consumers() {
    // 2 lanes, 3 keys: positions 0 (key a, lane 0), 1 (key b, lane 1),
    // 2 (key c, lane 0: collides with a). Two consumers dispatch and ack.
    // At most one lease per lane at a time, lane 0 in seq order, and
    // everything finished in the end.
    model("lanes: collisions", || {
        let w = LeaseWorld::with_lanes(4, 2);
        let lanes = [0usize, 1, 0];
        // Lane -> position leased now (+1), and the last one acked (+1).
        let busy: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
        let order: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
        let workers: Vec<_> = (1..=2u32)
            .map(|me| {
                let (w, busy, order) = (w.clone(), busy.clone(), order.clone());
                thread::spawn(move || {
                    let mut done = 0;
                    for _ in 0..3 {
                        let Some(h) = lane_step(&w, me, &lanes, &mut |_| true) else {
                            thread::yield_now();
                            continue;
                        };
                        let lane = lanes[h.pos as usize];
                        let was = busy[lane].swap(h.pos + 1, Ordering::SeqCst);
                        assert_eq!(was, 0, "two leases in lane {lane}");
                        let last = order[lane].load(Ordering::SeqCst);
                        assert!(last < h.pos + 1, "lane {lane} out of order");
                        order[lane].store(h.pos + 1, Ordering::SeqCst);
                        busy[lane].store(0, Ordering::SeqCst);
                        w.leases().ack(&h).unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let done: u32 = workers.into_iter().map(|t| t.join().unwrap()).sum();
        // Quiet now: whatever is left is due to whoever looks.
        let mut rest = done;
        while let Some(h) = lane_step(&w, 3, &lanes, &mut |_| true) {
            w.leases().ack(&h).unwrap();
            rest += 1;
        }
        assert_eq!(rest, 3, "every message finished once");
        w.leases().advance_committed(|_| 1);
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn loom_lanes_a_stale_ack_does_not_hand_the_lane_on() {
    // Consumer 1's lease of keyed 0 runs out as it acks; consumer 2 takes
    // it again. Only the winner's finish releases 1, once.
    model("lanes: stale ack", || {
        let w = LeaseWorld::with_lanes(4, 1);
        let first = match w.leases().take_keyed(0, 1, 0, 1, T0, 10, &mut |_| true) {
            Keyed::Leased(h) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            w.leases().take_keyed(1, 1, 0, 1, T0, 10, &mut |_| true),
            Keyed::Waiting
        );
        let late = {
            let w = w.clone();
            thread::spawn(move || w.leases().ack(&first).is_ok())
        };
        let again = {
            let w = w.clone();
            thread::spawn(move || {
                let l = w.leases();
                let (h, _) = l.take_again(0, 2, LATE, 10, &mut |_| true)?;
                assert!(
                    !finished(&w, 1) && l.word(1).state() == WAITING,
                    "1 released early"
                );
                l.ack(&h).unwrap();
                Some(())
            })
        };
        let acked = late.join().unwrap();
        let retook = again.join().unwrap().is_some();
        assert!(acked != retook, "exactly one finished 0");
        assert_eq!(w.leases().word(0).state(), ACKED);
        assert_eq!(w.leases().word(1).state(), READY);
    });
}

#[test]
fn loom_lanes_a_dead_finisher_is_helped_while_the_next_is_indexed() {
    // Consumer 1 died after deciding to ack keyed 0 (FINISHING) and before
    // handing its lane on. A scanner finishes it for it while consumer 2
    // indexes 1: 0 ends ACKED exactly once and 1 is not stuck.
    model("lanes: dead finisher", || {
        let w = LeaseWorld::with_lanes(4, 1);
        let first = match w
            .leases()
            .take_keyed(0, 1, 0, 1, T0, 1_000_000, &mut |_| true)
        {
            Keyed::Leased(h) => h,
            other => panic!("{other:?}"),
        };
        let fin = first.word.next(0, FINISHING, 1, 1);
        w.records[0].word.store(fin.0, Ordering::SeqCst);
        let dead = |h: u32| h != 1;
        let scanner = {
            let w = w.clone();
            thread::spawn(move || {
                let mut alive = dead;
                assert!(
                    w.leases()
                        .take_again(0, 3, T0, 1_000_000, &mut alive)
                        .is_none()
                );
            })
        };
        let indexer = {
            let w = w.clone();
            thread::spawn(move || {
                let mut alive = dead;
                w.leases().take_keyed(1, 1, 0, 2, T0, 1_000_000, &mut alive)
            })
        };
        scanner.join().unwrap();
        let k = indexer.join().unwrap();
        assert_eq!(w.leases().word(0).state(), ACKED);
        match k {
            Keyed::Leased(_) => {}
            _ => assert_eq!(w.leases().word(1).state(), READY, "1 is due"),
        }
        let _ = DEAD;
    });
}
