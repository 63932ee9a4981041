//! Leases of an ack=manual group (`protocol/lease/`): take, expiry,
//! ack, requeue and redelivery.

use loom::thread;

use super::{LATE, LeaseWorld, T0, model, model_with};
use crate::loom::Ordering;

#[test]
fn loom_lease_take_vs_expire_vs_ack() {
    // Consumer 1 takes position 0 and acks it; consumer 2, whose clock says
    // the lease ran out, tries to take it again at the same time. Never
    // both: an ack that succeeded is never redelivered, and a redelivered
    // lease makes the first holder's ack fail. Whoever holds it last acks,
    // and the group commits it exactly once.
    model("lease take/expire/ack", || {
        let w = LeaseWorld::new(2);
        let first = {
            let w = w.clone();
            thread::spawn(move || {
                let l = w.leases();
                let held = l.take_new(0, 1, 1, T0, 10).expect("first to take it");
                let acked = l.ack(&held).is_ok();
                if acked {
                    l.advance_committed(|_| 1);
                }
                acked
            })
        };
        let second = {
            let w = w.clone();
            thread::spawn(move || {
                let l = w.leases();
                let (held, _) = l.take_again(0, 2, LATE, 10, &mut |_| true)?;
                l.ack(&held).expect("nobody takes it from us here");
                l.advance_committed(|_| 1);
                Some(held.attempt())
            })
        };
        let acked_first = first.join().unwrap();
        let second = second.join().unwrap();
        assert!(
            acked_first != second.is_some(),
            "exactly one of them finished it"
        );
        if let Some(attempt) = second {
            assert_eq!(attempt, 2);
        }
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_out_of_order_acks_commit() {
    // Two consumers ack positions 1 and 0 at once: whichever finishes last
    // moves `committed` over both.
    model("out-of-order acks", || {
        let w = LeaseWorld::new(4);
        let (a, b) = {
            let l = w.leases();
            (
                l.take_new(0, 1, 1, T0, 10).unwrap(),
                l.take_new(1, 1, 2, T0, 10).unwrap(),
            )
        };
        let acks: Vec<_> = [b, a]
            .into_iter()
            .map(|held| {
                let w = w.clone();
                thread::spawn(move || {
                    let l = w.leases();
                    l.ack(&held).unwrap();
                    l.advance_committed(|_| 1);
                })
            })
            .collect();
        for t in acks {
            t.join().unwrap();
        }
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn loom_redelivery_goes_to_exactly_one_consumer() {
    // A nacked message waits; two consumers look for it at once.
    model("redelivery to one", || {
        let w = LeaseWorld::new(2);
        {
            let l = w.leases();
            let held = l.take_new(0, 1, 1, T0, 10).unwrap();
            l.requeue(&held, 0).unwrap();
        }
        let takers: Vec<_> = [2u32, 3]
            .into_iter()
            .map(|me| {
                let w = w.clone();
                thread::spawn(move || {
                    w.leases()
                        .take_again(0, me, T0, 10, &mut |_| true)
                        .is_some()
                })
            })
            .collect();
        let got: Vec<bool> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got.iter().filter(|g| **g).count(), 1, "{got:?}");
    });
}

#[test]
fn loom_a_reader_past_its_lease_never_trusts_a_reused_slot() {
    // Consumer 1 took position 0 and was stopped past its lease before it
    // read the slot (the chaos run found it returning a later lap's
    // message). Meanwhile consumer 2 takes it again and acks it, the group
    // commits it, and a producer writes the next lap's message into the
    // slot. Consumer 1 reads the slot, then asks `still_held`: when that
    // says yes, what it read must be position 0's message. (The slot is an
    // atomic here; the producer's write is a Release store, standing for
    // the order the real path has: it writes the slot only after its
    // Acquire load of `head`, which follows the Acquire loads of the
    // groups' `committed`, which the ack's SeqCst CAS precedes.)
    model("stale reader vs reuse", || {
        let w = LeaseWorld::new(2);
        let slot = std::sync::Arc::new(crate::loom::AtomicU64::new(100));
        let held = w
            .leases()
            .take_new(0, 1, 1, T0, 10)
            .expect("first to take it");
        let reader = {
            let (w, slot) = (w.clone(), slot.clone());
            thread::spawn(move || {
                let seen = slot.load(Ordering::Relaxed);
                if w.leases().still_held(&held) {
                    assert_eq!(seen, 100, "a reused slot read under a held lease");
                }
            })
        };
        let world = {
            let (w, slot) = (w.clone(), slot.clone());
            thread::spawn(move || {
                let l = w.leases();
                if let Some((again, _)) = l.take_again(0, 2, LATE, 10, &mut |_| true) {
                    l.ack(&again).expect("nobody takes it from us here");
                    l.advance_committed(|_| 1);
                    if w.group.committed.load(Ordering::Acquire) > 0 {
                        // Position 0 is finished: the next lap may reuse it.
                        slot.store(108, Ordering::Release);
                    }
                }
            })
        };
        reader.join().unwrap();
        world.join().unwrap();
    });
}

/// Two consumers dispatch positions 0, 1 and 2 (one slot each) through a
/// table of two records, so position 2 shares position 0's record. Each
/// takes what it finds at the cursor and acks it at once. With the gate
/// (`Leases::may_dispatch`) nobody's lease is ever taken from them and
/// every position goes out once; without it (`gate: false`, the planted
/// bug) a consumer takes position 2 over position 0's live lease.
fn two_consumers_through_a_table_of_two(gate: bool) {
    let w = LeaseWorld::new(2);
    let delivered = std::sync::Arc::new([
        crate::loom::AtomicU64::new(0),
        crate::loom::AtomicU64::new(0),
        crate::loom::AtomicU64::new(0),
    ]);
    let consumers: Vec<_> = [1u32, 2]
        .into_iter()
        .map(|me| {
            let (w, delivered) = (w.clone(), delivered.clone());
            thread::spawn(move || {
                let l = w.leases();
                loop {
                    let pos = w.group.next.load(Ordering::Acquire);
                    if pos >= 3 {
                        return;
                    }
                    if gate && !l.may_dispatch(pos) {
                        thread::yield_now();
                        continue;
                    }
                    match l.take_new(pos, 1, me, T0, 10) {
                        Some(held) => {
                            delivered[pos as usize].fetch_add(1, Ordering::Relaxed);
                            l.ack(&held).expect("a lease in flight was taken");
                            l.advance_committed(|_| 1);
                        }
                        None => thread::yield_now(),
                    }
                }
            })
        })
        .collect();
    for c in consumers {
        c.join().unwrap();
    }
    for d in delivered.iter() {
        assert_eq!(d.load(Ordering::Relaxed), 1, "each position goes out once");
    }
    w.leases().advance_committed(|_| 1);
    assert_eq!(w.group.committed.load(Ordering::Relaxed), 3);
}

#[test]
fn loom_the_gate_keeps_a_table_smaller_than_the_ring_from_taking_a_live_lease() {
    model_with("table of two", 10_000, || {
        two_consumers_through_a_table_of_two(true)
    });
}

/// The planted bug: dispatch without the gate. Loom must find the
/// execution where position 2 takes position 0's live lease.
#[test]
#[should_panic(expected = "a lease in flight was taken")]
fn loom_planted_dispatch_without_the_gate_is_caught() {
    model_with("table of two, no gate", 10_000, || {
        two_consumers_through_a_table_of_two(false)
    });
}
