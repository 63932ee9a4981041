//! The doorbell of async waiters (`protocol/doorbell.rs`): arm against a
//! publish, cancel against a ring, release against a ring.

use loom::thread;

use super::{World, model};
use crate::loom::Ordering;
use crate::protocol::doorbell;
use crate::protocol::ring::Peek;

/// An async consumer arms doorbell entry 0 for seq 0 (its re-check reads
/// the slot with SeqCst); `producers` producers publish one message each.
/// Whatever the interleaving: the re-check saw the message or exactly one
/// ring came (never a lost one, never two for one arm).
fn doorbell_model(name: &str, producers: u32) {
    model(name, move || {
        let w = World::new(4, 1);
        let id = doorbell::entry_value(1, 7);
        let i = doorbell::claim(&w.bells.data, &w.ctl.data_armed, id, |_| false).unwrap();
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                doorbell::arm(&w.ctl.data_armed, i, || {
                    matches!(ring.peek_sc(0), Peek::Ready(_)).then_some(())
                })
                .is_some()
            })
        };
        let ps: Vec<_> = (0..producers)
            .map(|p| {
                let w = w.clone();
                thread::spawn(move || w.publish(10 + u64::from(p), p))
            })
            .collect();
        for p in ps {
            p.join().unwrap();
        }
        let saw = consumer.join().unwrap();
        let rung = crate::loom::doorbell::rung(id);
        assert!(rung <= 1, "one arm, at most one ring: {rung}");
        assert!(saw || rung == 1, "a lost wake-up: not seen, not rung");
    });
}

#[test]
fn loom_doorbell_arm_vs_publish_is_never_lost() {
    doorbell_model("doorbell arm vs publish", 1);
}

#[test]
fn loom_doorbell_two_producers_ring_once() {
    doorbell_model("doorbell two producers", 2);
}

#[test]
fn loom_doorbell_cancel_vs_ring() {
    // A waiter armed with nothing there gives up (cancel) while a producer
    // publishes: either the cancel took the arm back (no ring) or the
    // producer rang, once; never both, never neither.
    model("doorbell cancel vs ring", || {
        let w = World::new(4, 1);
        let id = doorbell::entry_value(1, 9);
        let i = doorbell::claim(&w.bells.data, &w.ctl.data_armed, id, |_| false).unwrap();
        assert!(doorbell::arm(&w.ctl.data_armed, i, || None::<()>).is_none());
        let cancel = {
            let w = w.clone();
            thread::spawn(move || doorbell::disarm(&w.ctl.data_armed, i))
        };
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.publish(5, 1))
        };
        producer.join().unwrap();
        let took_back = cancel.join().unwrap();
        let rung = crate::loom::doorbell::rung(id);
        assert_eq!(took_back, rung == 0, "cancel {took_back}, rung {rung}");
    });
}

#[test]
fn loom_doorbell_release_vs_ring_frees_one_owner() {
    // The owner releases its entry while a producer rings it and a new
    // waiter claims a doorbell: the new owner never inherits an armed bit,
    // and no entry holds a released value afterwards.
    model("doorbell release vs ring", || {
        let w = World::new(4, 1);
        let (old, new) = (doorbell::entry_value(1, 1), doorbell::entry_value(2, 2));
        let i = doorbell::claim(&w.bells.data, &w.ctl.data_armed, old, |_| false).unwrap();
        assert!(doorbell::arm(&w.ctl.data_armed, i, || None::<()>).is_none());
        let owner = {
            let w = w.clone();
            thread::spawn(move || {
                doorbell::release(&w.bells.data, &w.ctl.data_armed, i, old);
                doorbell::claim(&w.bells.data, &w.ctl.data_armed, new, |_| false).unwrap()
            })
        };
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.publish(5, 1))
        };
        producer.join().unwrap();
        let j = owner.join().unwrap();
        assert_eq!(w.bells.data[j].load(Ordering::Relaxed), new);
        assert!(
            w.bells
                .data
                .iter()
                .all(|e| e.load(Ordering::Relaxed) != old),
            "the released value is gone"
        );
        assert_eq!(
            w.ctl.data_armed.load(Ordering::Relaxed) & (1 << j),
            0,
            "the new owner starts unarmed"
        );
    });
}
