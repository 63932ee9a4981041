//! The ring (`protocol/ring/`): claim and commit, capacity gating,
//! abort against a late commit, the stalled writer's hold on its slot,
//! and the sleep/wake-up of consumers and producers.

use loom::sync::Arc;
use loom::thread;

use super::{ME, World, model, model_with};
use crate::loom::{AtomicU64, Ordering};
use crate::options::Start;
use crate::protocol::group::commit_cursor;
use crate::protocol::ring::{Begin, Claim, Peek};
use crate::protocol::signal::{notify, sleep_unless};

/// A world of `slots` slots and `groups` groups whose producers commit
/// asymmetrically if `asym`.
fn world(slots: usize, groups: usize, asym: bool) -> Arc<World> {
    let w = World::new(slots, groups);
    if asym { World::asymmetric(w) } else { w }
}

#[test]
fn loom_claim_commit_two_producers() {
    model("claim/commit", || {
        let w = World::new(4, 1);
        let producers: Vec<_> = (1..=2u64)
            .map(|id| {
                let w = w.clone();
                thread::spawn(move || w.publish(id * 10, id as u32))
            })
            .collect();
        let consumer = {
            let w = w.clone();
            thread::spawn(move || [w.read(0), w.read(1)])
        };
        let pos: Vec<u64> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        let got = consumer.join().unwrap();
        // Each producer got its own position and the consumer saw each
        // producer's value at that position.
        assert_ne!(pos[0], pos[1]);
        assert_eq!(got[pos[0] as usize], 10);
        assert_eq!(got[pos[1] as usize], 20);
    });
}

#[test]
fn loom_capacity_gating() {
    model("gating", || {
        let w = World::new(2, 1);
        {
            let g = w.lock.lock(ME, |_, _| true);
            w.groups().create(&g, "g", Start::Earliest, 0).unwrap();
        }
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                for v in 0..3 {
                    w.publish(v + 100, 2);
                }
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                for pos in 0..3 {
                    // Reads the slot, then releases it; a producer that
                    // reused it early would race with this read.
                    assert_eq!(w.read(pos), pos + 100);
                    commit_cursor(&w.groups[0].committed, pos + 1);
                    w.ring().notify_space();
                }
            })
        };
        producer.join().unwrap();
        consumer.join().unwrap();
        assert_eq!(w.ctl.tail.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn loom_wake_up_is_never_lost() {
    wake_up_is_never_lost(false);
}

/// [`loom_wake_up_is_never_lost`] with asymmetric producers.
#[test]
fn loom_wake_up_is_never_lost_asymmetric() {
    wake_up_is_never_lost(true);
}

fn wake_up_is_never_lost(asym: bool) {
    // A consumer that finds nothing sleeps on `data`; the producer's
    // notify must wake it. The loom futex ignores timeouts, so a lost
    // wake-up is a deadlock that loom reports.
    model("wake-up", move || {
        let w = world(2, 1, asym);
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                loop {
                    if matches!(ring.peek(0), Peek::Ready(_)) {
                        break;
                    }
                    let ready = sleep_unless(
                        &w.ctl.data,
                        &w.sleepers.data,
                        1,
                        std::time::Duration::from_secs(1),
                        || matches!(ring.peek_sc(0), Peek::Ready(_)).then_some(()),
                    );
                    if ready.is_some() {
                        break;
                    }
                }
                // SAFETY (loom cell): committed.
                w.cell(0).with(|p| unsafe { *p })
            })
        };
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.publish(7, 3))
        };
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), 7);
    });
}

#[test]
fn loom_repairing_a_dead_sleeper_never_loses_a_live_ones_wake_up() {
    // Slot 0 of the data sleepers holds a sleeper killed in its sleep (key
    // 99, its bit still set). A repairer clears it while a live consumer
    // (key 7) goes to sleep and a producer publishes: whichever slot the
    // consumer takes, it is woken (a lost wake-up deadlocks the model),
    // and at the end no bit and no slot is left.
    model("sleeper repair", || {
        let w = World::new(2, 1);
        w.sleepers.data[0].store(99, Ordering::Relaxed);
        w.ctl.data.waiters.store(1, Ordering::Relaxed);
        let flag = Arc::new(AtomicU64::new(0));
        let repairer = {
            let w = w.clone();
            thread::spawn(move || {
                crate::protocol::signal::repair_sleepers(&w.ctl.data, &w.sleepers.data, |k| k != 99)
            })
        };
        let sleeper = {
            let (w, flag) = (w.clone(), flag.clone());
            thread::spawn(move || {
                while sleep_unless(
                    &w.ctl.data,
                    &w.sleepers.data,
                    7,
                    std::time::Duration::from_secs(1),
                    || (flag.load(Ordering::SeqCst) == 1).then_some(()),
                )
                .is_none()
                {}
            })
        };
        flag.store(1, Ordering::SeqCst);
        notify(&w.ctl.data, &w.ctl.data_armed, &w.bells.data);
        sleeper.join().unwrap();
        repairer.join().unwrap();
        assert_eq!(w.ctl.data.waiters.load(Ordering::Relaxed), 0);
        assert!(
            w.sleepers
                .data
                .iter()
                .all(|s| s.load(Ordering::Relaxed) == 0)
        );
    });
}

#[test]
fn loom_space_wake_up_is_never_lost() {
    // A producer waiting for room sleeps on `space`; the consumer's cursor
    // store and notify must wake it.
    model("space wake-up", || {
        let w = World::new(2, 1);
        w.groups[0].state.store(1, Ordering::Relaxed);
        w.ctl.tail.store(2, Ordering::Relaxed);
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                loop {
                    let room = || {
                        let tail = w.ctl.tail.load(Ordering::SeqCst);
                        let min = w.groups[0].committed.load(Ordering::SeqCst);
                        (tail < min + 2).then_some(())
                    };
                    if room().is_some() {
                        break;
                    }
                    if sleep_unless(
                        &w.ctl.space,
                        &w.sleepers.space,
                        1,
                        std::time::Duration::from_secs(1),
                        room,
                    )
                    .is_some()
                    {
                        break;
                    }
                }
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                commit_cursor(&w.groups[0].committed, 1);
                notify(&w.ctl.space, &w.ctl.space_armed, &w.bells.space);
            })
        };
        consumer.join().unwrap();
        producer.join().unwrap();
    });
}

/// Producer 1 claims the first position of a fresh world, writes 42 and
/// commits it: true if the commit won, false if a consumer's abort did
/// (before its begin or its commit).
fn publish_42_once(w: &World) -> bool {
    let ring = w.ring();
    let mut head = 0;
    let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
        panic!("room for one")
    };
    let seen = match w.begin(pos, 1) {
        Begin::Ours(seen) => seen,
        Begin::Aborted => return false,
        Begin::Held => panic!("no older lap here"),
    };
    // SAFETY (loom cell): ours until commit; nobody reads an aborted slot,
    // a reader reads it only once it is committed, and no later lap exists
    // here.
    w.cell(pos).with_mut(|p| unsafe { *p = 42 });
    ring.commit(pos, 1, seen, &w.producers[1]).is_ok()
}

#[test]
fn loom_abort_vs_late_commit() {
    // A consumer gives up on a claimed position while its producer is
    // still writing: exactly one of them wins, the loser learns it, and the
    // producer's announcement is withdrawn once it stops writing.
    model("abort vs commit", || {
        let w = World::new(2, 1);
        let producer = {
            let w = w.clone();
            thread::spawn(move || publish_42_once(&w))
        };
        let aborter = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let Peek::NotYet(seen) = ring.peek(0) else {
                    return false;
                };
                if w.ctl.tail.load(Ordering::Acquire) == 0 {
                    return false; // not claimed yet: nothing to abort
                }
                w.abort(0, seen)
            })
        };
        let committed = producer.join().unwrap();
        let aborted = aborter.join().unwrap();
        assert!(committed != aborted, "exactly one wins");
        if committed {
            assert_eq!(w.ring().peek(0), Peek::Ready(1));
        } else {
            assert_eq!(w.ring().peek(0), Peek::Skip(1));
        }
        assert_eq!(
            w.producers[1].announce.load(Ordering::Relaxed),
            0,
            "withdrawn"
        );
    });
}

/// What a consumer's settle did in [`asymmetric_commit_vs_abort`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Settled {
    /// The abort CAS lost: the record was committed first.
    NotAborted,
    /// Aborted, and left unsettled: the producer was inside its commit.
    Held,
    /// Aborted and settled to this span: every group may pass it.
    Skipped(u64),
}

/// An asymmetric producer writes and commits position 0 while a consumer
/// gives up on it: the consumer's abort CAS, heavy fence, scan, revoke,
/// heavy fence and check of the producer's `committing` mark. With
/// `check_mark` false the settle skips the mark (the planted bug).
/// Asserts that "told published" means delivered: never a record
/// settled as skipped that its producer committed.
fn asymmetric_commit_vs_abort(check_mark: bool) {
    model("asymmetric commit vs abort", move || {
        let w = World::asymmetric(World::new(2, 1));
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                let ok = publish_42_once(&w);
                w.ring().notify_data();
                ok
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let Peek::NotYet(seen) = ring.peek(0) else {
                    return Settled::NotAborted;
                };
                if w.ctl.tail.load(Ordering::Acquire) == 0 || !ring.abort(0, seen) {
                    return Settled::NotAborted;
                }
                let settled = if check_mark {
                    ring.settle_abort(&w.producers, 0, |_| true)
                } else {
                    // The planted bug: revoke and settle without reading
                    // the producer's mark.
                    crate::loom::heavy_fence();
                    let end = w.producers[1].announce_end.load(Ordering::Acquire);
                    let found = w.producers[1].announce.load(Ordering::SeqCst) == 1;
                    if found {
                        crate::protocol::announcement::revoke(&w.ctl, &w.producers[1], 0);
                    }
                    ring.settle(0, if found { end } else { 1 })
                };
                match settled {
                    Some(span) => Settled::Skipped(span),
                    None => Settled::Held,
                }
            })
        };
        let committed = producer.join().unwrap();
        let settled = consumer.join().unwrap();
        let ring = w.ring();
        match (committed, settled) {
            (true, Settled::Skipped(_)) => {
                panic!("a committed record: settled as skipped")
            }
            (true, _) => {
                assert_eq!(
                    ring.peek(0),
                    Peek::Ready(1),
                    "told published: delivered ({settled:?}, word {:#x})",
                    w.states[0].load(Ordering::Relaxed)
                );
                // SAFETY (loom cell): committed; every thread joined.
                assert_eq!(w.cell(0).with(|p| unsafe { *p }), 42);
            }
            (false, Settled::NotAborted) => panic!("the producer lost to nobody"),
            (false, _) => assert_eq!(ring.peek(0), Peek::Skip(1), "given up whole"),
        }
        assert_eq!(
            w.producers[1].committing.load(Ordering::Relaxed),
            0,
            "mark cleared"
        );
        assert_eq!(
            w.producers[1].announce.load(Ordering::Relaxed),
            0,
            "withdrawn"
        );
    });
}

#[test]
fn loom_asymmetric_commit_against_an_abort_never_loses_a_published_record() {
    asymmetric_commit_vs_abort(true);
}

/// The planted ordering bug: a settle that does not read the producer's
/// `committing` mark after revoking it lets the producer's plain store
/// of COMMITTED land on a record every group was told to skip. loom must
/// find that execution.
#[test]
#[should_panic(expected = "settled as skipped")]
fn loom_planted_a_settle_that_skips_the_commit_mark_is_caught() {
    asymmetric_commit_vs_abort(false);
}

#[test]
fn loom_stalled_writer_holds_its_slot() {
    stalled_writer_holds_its_slot(false);
}

/// [`loom_stalled_writer_holds_its_slot`] with asymmetric producers.
#[test]
fn loom_stalled_writer_holds_its_slot_asymmetric() {
    stalled_writer_holds_its_slot(true);
}

fn stalled_writer_holds_its_slot(asym: bool) {
    // A two-slot ring (the smallest a queue has). Producer 1 writes
    // position 0; a consumer aborts it (its producer may still be
    // writing) and lets the ring move on; producer 2 publishes positions 1
    // and 2 — position 2 is in position 0's slot — and must not write that
    // slot while the first may still be writing. loom's cell reports the
    // race if the abort's revocation lets both in.
    model("stalled writer", move || {
        let w = world(2, 1, asym);
        let first = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                    return; // the second producer filled the ring first
                };
                if let Begin::Ours(seen) = w.begin(pos, 1) {
                    // SAFETY (loom cell): the race under test.
                    w.cell(pos).with_mut(|p| unsafe { *p = pos + 10 });
                    let _ = ring.commit(pos, 1, seen, &w.producers[1]);
                }
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let Peek::NotYet(seen) = ring.peek(0) else {
                    return;
                };
                if w.ctl.tail.load(Ordering::SeqCst) == 0 || !w.abort(0, seen) {
                    return;
                }
                // Position 0 is skipped: the group moves past it and its
                // slot may be claimed for position 2.
                w.ctl.head.store(1, Ordering::Release);
            })
        };
        consumer.join().unwrap();
        let second = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let mut committed = Vec::new();
                for _ in 0..2 {
                    let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                        break; // the ring never made room: nothing to do
                    };
                    if let Begin::Ours(seen) = w.begin(pos, 2) {
                        // SAFETY (loom cell): the race under test.
                        w.cell(pos).with_mut(|p| unsafe { *p = pos + 10 });
                        if ring.commit(pos, 1, seen, &w.producers[2]).is_ok() {
                            committed.push(pos);
                        }
                    }
                }
                committed
            })
        };
        first.join().unwrap();
        let committed = second.join().unwrap();
        // A lapped first producer (it began after position 2 took its
        // slot) must not commit over the later lap's message.
        if committed.contains(&2) {
            assert_eq!(w.ring().peek(2), Peek::Ready(1), "position 2 kept");
        }
        // Slot 0's word was written: committed or aborted, by either.
        let word = w.states[0].load(Ordering::Relaxed);
        assert_ne!(word & 3, 0, "the slot's word was written");
    });
}

/// A batch of `n` positions by producer `id`, announced once
/// (`Ring::announce_from`), each written with `pos + 10` unless a
/// consumer aborted it or a stalled writer holds its slot. Returns the
/// positions it committed, or `None` if the ring had no room.
fn publish_batch(w: &World, id: u32, n: u64) -> Option<Vec<u64>> {
    let ring = w.ring();
    let mut head = w.ctl.head.load(Ordering::Acquire);
    let Claim::Claimed(start) = ring.claim(n, &mut head) else {
        return None;
    };
    let me = &w.producers[id as usize];
    ring.announce_from(start, me);
    let mut committed = Vec::new();
    for pos in start..start + n {
        if let Begin::Ours(seen) = ring.begin_announced(pos, 1, me, |p, s| w.held(p, s)) {
            // SAFETY (loom cell): the race under test.
            w.cell(pos).with_mut(|p| unsafe { *p = pos + 10 });
            if ring.commit_announced(pos, 1, seen, me).is_ok() {
                committed.push(pos);
            }
        }
    }
    ring.end_announced(me);
    Some(committed)
}

#[test]
fn loom_stalled_batch_holds_its_slots() {
    stalled_batch_holds_its_slots(false);
}

/// [`loom_stalled_batch_holds_its_slots`] with asymmetric producers.
#[test]
fn loom_stalled_batch_holds_its_slots_asymmetric() {
    stalled_batch_holds_its_slots(true);
}

fn stalled_batch_holds_its_slots(asym: bool) {
    // A batch announces its first position only. Producer 1 writes
    // positions 0 and 1 of a two-slot ring as one batch; a consumer gives
    // up on whichever are not committed yet and lets the ring move a lap;
    // producer 2's batch of positions 2 and 3 (the same two slots) must
    // write neither slot while producer 1 may still write it. loom's cell
    // reports the race if one announcement does not hold both slots
    // (producer 2's position 3 is in the slot of 1, not of the announced 0).
    model_with("stalled batch", 2_000, move || {
        let w = world(2, 1, asym);
        let first = {
            let w = w.clone();
            thread::spawn(move || publish_batch(&w, 1, 2))
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                for pos in 0..2 {
                    match ring.peek(pos) {
                        Peek::Ready(_) | Peek::Skip(_) | Peek::Settling => {}
                        Peek::NotYet(seen) => {
                            if w.ctl.tail.load(Ordering::SeqCst) <= pos || !w.abort(pos, seen) {
                                return; // not claimed yet, or committed meanwhile
                            }
                        }
                    }
                }
                // Both positions are done with: the ring moves a lap.
                w.ctl.head.store(2, Ordering::Release);
            })
        };
        consumer.join().unwrap();
        let second = {
            let w = w.clone();
            thread::spawn(move || publish_batch(&w, 2, 2))
        };
        // Either may find the ring full (the second can claim first).
        let (a, b) = (first.join().unwrap(), second.join().unwrap());
        assert!(a.is_some() || b.is_some(), "one of them had room");
        assert_eq!(
            w.producers[1].announce.load(Ordering::Relaxed),
            0,
            "withdrawn"
        );
        assert_eq!(
            w.producers[2].announce.load(Ordering::Relaxed),
            0,
            "withdrawn"
        );
    });
}

#[test]
fn loom_a_long_stalled_record_holds_all_its_slots() {
    a_long_stalled_record_holds_all_its_slots(false);
}

/// [`loom_a_long_stalled_record_holds_all_its_slots`] with asymmetric producers.
#[test]
fn loom_a_long_stalled_record_holds_all_its_slots_asymmetric() {
    a_long_stalled_record_holds_all_its_slots(true);
}

fn a_long_stalled_record_holds_all_its_slots(asym: bool) {
    // A record of two slots (positions 0 and 1 of a four-slot ring) is
    // begun by producer 1; a consumer may give up on it meanwhile and let
    // the ring move on. Producer 2 then publishes two records of two
    // slots, 2..4 and 4..6: the second lies in the same slots as the
    // first record, and its first slot (4, slot 0) holds whatever word
    // the first left, or none. It must write neither slot while producer
    // 1 may still write: loom's cells report the race if the revocation
    // does not hold every slot of the record (slot 1 is the one no word
    // of the first record names).
    model_with("long stalled record", 3_000, move || {
        let w = world(4, 1, asym);
        let first = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let Claim::Claimed(pos) = ring.claim(2, &mut head) else {
                    return false; // the second producer filled the ring first
                };
                let Begin::Ours(seen) = w.begin_span(pos, 2, 1) else {
                    return false;
                };
                for p in pos..pos + 2 {
                    // SAFETY (loom cell): the race under test.
                    w.cell(p).with_mut(|c| unsafe { *c = 1 });
                }
                ring.commit(pos, 2, seen, &w.producers[1]).is_ok()
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                match ring.peek(0) {
                    Peek::NotYet(seen) => {
                        if w.ctl.tail.load(Ordering::SeqCst) == 0 || !w.abort(0, seen) {
                            return; // not claimed yet, or committed meanwhile
                        }
                    }
                    // SAFETY (loom cell): committed, read before the
                    // ring moves on (the Release store of head below).
                    Peek::Ready(_) => w.cell(1).with(|c| assert_eq!(unsafe { *c }, 1)),
                    Peek::Skip(_) | Peek::Settling => {}
                }
                // The record is done with: the ring moves on past it.
                w.ctl.head.store(2, Ordering::Release);
            })
        };
        consumer.join().unwrap();
        let second = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                for _ in 0..2 {
                    let Claim::Claimed(pos) = ring.claim(2, &mut head) else {
                        return; // the consumer gave up before the ring moved
                    };
                    if let Begin::Ours(seen) = w.begin_span(pos, 2, 2) {
                        for p in pos..pos + 2 {
                            // SAFETY (loom cell): the race under test.
                            w.cell(p).with_mut(|c| unsafe { *c = 2 });
                        }
                        let _ = ring.commit(pos, 2, seen, &w.producers[2]);
                    }
                }
            })
        };
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(
            w.producers[1].announce.load(Ordering::Relaxed),
            0,
            "withdrawn"
        );
    });
}

#[test]
fn loom_a_long_records_payload_is_never_a_later_laps_word() {
    // A record of two slots (positions 0 and 1 of a four-slot ring) whose
    // payload puts, where slot 1's word would be, the word position 5
    // (slot 1, next lap) has when committed: a small integer in a real
    // payload does. A reader reads it and moves on; a producer of the next
    // lap moves `head` past it (clearing, `Ring::clear_passed`) and
    // publishes 2, 3, 4 and 5, read in turn. The payload must be taken
    // neither for an abort of 5 (its producer's begin) nor for its commit
    // (the reader would read slot 1 while it is written: loom's cell
    // reports the race). Without the clearing, both happen.
    model_with("long record's payload", 3_000, || {
        let w = World::new(4, 1);
        w.groups[0].state.store(1, Ordering::Relaxed);
        let writer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let Claim::Claimed(pos) = ring.claim(2, &mut head) else {
                    panic!("an empty ring has room")
                };
                let Begin::Ours(seen) = w.begin_span(pos, 2, 1) else {
                    panic!("nothing aborts in this model")
                };
                // SAFETY (loom cell): ours between begin and commit.
                w.cell(pos).with_mut(|c| unsafe { *c = 100 });
                // The payload's bytes over slot 1's word (a plain write in
                // the real ring).
                let forged = ring.word(5, 1, crate::layout::slot_state::COMMITTED);
                w.states[1].store(forged, Ordering::Relaxed);
                ring.commit(pos, 2, seen, &w.producers[1]).unwrap();
            })
        };
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut pos = 0;
                let mut got = vec![];
                while pos < 6 {
                    match ring.peek(pos) {
                        Peek::Ready(span) => {
                            // SAFETY (loom cell): committed, and the ring
                            // moves past it only after the store below.
                            got.push(w.cell(pos).with(|c| unsafe { *c }));
                            pos += span;
                            commit_cursor(&w.groups[0].committed, pos);
                        }
                        Peek::NotYet(_) => thread::yield_now(),
                        other => panic!("position {pos}: {other:?}"),
                    }
                }
                assert_eq!(got, [100, 102, 103, 104, 105]);
            })
        };
        writer.join().unwrap();
        let next_lap = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                for want in 2..6u64 {
                    let pos = loop {
                        match ring.claim(1, &mut head) {
                            Claim::Claimed(p) => break p,
                            Claim::Full => {
                                let g = w.lock.lock(ME, |_, _| true);
                                head = w
                                    .groups()
                                    .advance_head_settling(&g, |f, t| ring.clear_passed(f, t));
                                drop(g);
                                thread::yield_now();
                            }
                        }
                    };
                    assert_eq!(pos, want);
                    let Begin::Ours(seen) = w.begin(pos, 2) else {
                        panic!("position {pos}: a payload word taken for an abort")
                    };
                    // SAFETY (loom cell): ours between begin and commit.
                    w.cell(pos).with_mut(|c| unsafe { *c = 100 + pos });
                    ring.commit(pos, 1, seen, &w.producers[2]).unwrap();
                }
            })
        };
        next_lap.join().unwrap();
        reader.join().unwrap();
    });
}

/// A consumer that watched position 0 claimed and unwritten, was stopped,
/// and resumes once its timeout has run out: it aborts 0 if the word there
/// is not 0's. Meanwhile the claimer commits 0 (unless the abort came
/// first), the group reads it and 1, and a producer of the next lap takes
/// slot 0 for position 2. `abort` is the one the consumer calls, or the
/// blind CAS it was before (`planted`).
fn stale_abort_against_a_lap(planted: bool) {
    model_with("stale abort", 3_000, move || {
        let w = World::new(2, 1);
        w.groups[0].state.store(1, Ordering::Relaxed);
        let mut head = 0;
        assert_eq!(w.ring().claim(1, &mut head), Claim::Claimed(0));
        let stale = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                if let Peek::NotYet(seen) = ring.peek(0) {
                    let aborted = if planted {
                        ring.slots[0]
                            .compare_exchange(
                                seen,
                                ring.word(0, 0, crate::layout::slot_state::ABORTED),
                                Ordering::SeqCst,
                                Ordering::Acquire,
                            )
                            .is_ok()
                    } else {
                        ring.abort(0, seen)
                    };
                    if aborted {
                        ring.settle(0, 1);
                    }
                }
            })
        };
        let lapper = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let Begin::Ours(seen) = w.begin(0, 1) else {
                    return false;
                };
                // SAFETY (loom cell): ours between begin and commit.
                w.cell(0).with_mut(|c| unsafe { *c = 10 });
                if ring.commit(0, 1, seen, &w.producers[1]).is_err() {
                    return false;
                }
                // The group reads 0, then 1, then the next lap has room
                // (no yield in here: the stale consumer may run last).
                commit_cursor(&w.groups[0].committed, 1);
                let mut head = 0;
                for want in 1..3u64 {
                    let pos = match ring.claim(1, &mut head) {
                        Claim::Claimed(p) => p,
                        Claim::Full => {
                            let g = w.lock.lock(ME, |_, _| true);
                            head = w.groups().advance_head(&g);
                            drop(g);
                            let Claim::Claimed(p) = ring.claim(1, &mut head) else {
                                panic!("the group is past slot 0")
                            };
                            p
                        }
                    };
                    assert_eq!(pos, want);
                    let Begin::Ours(seen) = w.begin(pos, 2) else {
                        panic!("position {pos} aborted before it was written")
                    };
                    // SAFETY (loom cell): ours between begin and commit.
                    w.cell(pos).with_mut(|c| unsafe { *c = 10 + pos });
                    ring.commit(pos, 1, seen, &w.producers[2]).unwrap();
                    commit_cursor(&w.groups[0].committed, pos + 1);
                }
                true
            })
        };
        stale.join().unwrap();
        if lapper.join().unwrap() {
            assert_eq!(
                w.ring().peek(2),
                Peek::Ready(1),
                "the next lap's record was aborted by a stale consumer"
            );
        }
    });
}

#[test]
fn loom_a_stale_abort_never_hits_a_later_lap() {
    stale_abort_against_a_lap(false);
}

#[test]
#[should_panic(expected = "aborted by a stale consumer")]
fn loom_planted_a_blind_stale_abort_is_caught() {
    stale_abort_against_a_lap(true);
}
