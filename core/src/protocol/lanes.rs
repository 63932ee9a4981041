//! Ordering lanes: per-key order among the competing consumers of an
//! ack=manual group.
//!
//! A message with an ordering key belongs to lane `hash64(key) % lanes`.
//! It is leased only once every earlier message of its lane is finished
//! (acked or dead-lettered) in the group; messages of other lanes, and
//! unkeyed ones, go on in parallel. Two keys in one lane share its order
//! (less parallelism, never a broken order). Consumers own no lane: a lane
//! is a chain of positions in shared memory, so a consumer joining or
//! dying moves nothing.
//!
//! The words (per group):
//!
//! ```text
//!   lanes[L]        seq + 1 of the last position indexed into lane L (0: none);
//!                   written only by the indexer of the position at `next`
//!   rec(p).prev     seq + 1 of p's predecessor in its lane (0: none),
//!                   written by p's indexer
//!   rec(p).link     p's low 32 bits (tag) | kind | delta:
//!                     EMPTY        p unfinished, nobody behind it yet
//!                     NEXT(delta)  p + delta is next in the lane, waiting
//!                     DONE         p finished: whoever comes next may go
//! ```
//!
//! **Indexing.** Positions are indexed in seq order because only the
//! consumer that holds the position at the dispatch cursor `next` indexes
//! it, and `next` passes a keyed position only after its indexing. The
//! indexer holds the position's lease word in TAKING with attempt 0 (the
//! "indexing" state); a dead indexer is taken over by the next dispatcher,
//! which repeats the indexing — every step is idempotent. The indexer
//! records the lane's last position as `prev`, sets its own link EMPTY,
//! makes itself the lane's last, then links behind `prev` with a CAS of
//! `prev`'s link from EMPTY to NEXT. If `prev` is finished (DONE, or below
//! `committed`, or its record already serves a later lap) the message is
//! free and the indexer leases it at once; otherwise it becomes WAITING.
//!
//! **Handing on.** Finishing a keyed message takes its lease word to
//! FINISHING (the decision, which no expiry can undo), then swaps its
//! link to DONE; if the link named a successor, the finisher releases it
//! (WAITING → READY, attempt 0: due at once). Only then is the message
//! ACKED (or DEAD), so `committed` never passes a message whose lane is
//! not handed on, and a record is never reused before its link is done
//! with. A FINISHING word whose holder died is finished by whoever finds
//! it (the scan, or the registry when the holder's index is reused).
//!
//! **The race between a waiter and its predecessor's finisher** is a
//! Dekker pair, SeqCst on both sides: the indexer stores WAITING and then
//! reads `prev`'s link; the finisher swaps the link to DONE and then reads
//! (CASes) the waiter's word. Either the finisher sees WAITING and
//! releases it, or the indexer sees DONE and releases itself; if both,
//! one CAS wins. Loom: `loom_lanes_*` in `protocol/loom_models/lanes.rs`.

use crate::loom::Ordering;
use crate::protocol::lease::{
    ACKED, FINISHING, HeldLease, LEASED, LeaseWord, Leases, Now, READY, TAKING, WAITING,
};

/// Link kinds, in the low 2 bits of a link word.
const EMPTY: u64 = 1;
const NEXT: u64 = 2;
const DONE: u64 = 3;

fn link(pos: u64, kind: u64, delta: u64) -> u64 {
    ((pos & 0xffff_ffff) << 32) | ((delta & 0x3fff_ffff) << 2) | kind
}

fn link_is_for(l: u64, pos: u64) -> bool {
    l & 3 != 0 && (l >> 32) == (pos & 0xffff_ffff)
}

/// What [`Leases::take_keyed`] did with the keyed position at `next`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyed {
    /// Leased to us: its lane was free.
    Leased(HeldLease),
    /// Indexed; it waits for its lane (the cursor moved past it).
    Waiting,
    /// Another consumer is indexing it, or took it first: look again.
    Busy,
}

/// The word of a message waiting for its lane.
fn waiting(pos: u64) -> LeaseWord {
    LeaseWord::new(pos, WAITING, 0, 0, 0)
}

impl Leases<'_> {
    /// Whether `pos` was indexed into a lane (its link speaks of it).
    pub(crate) fn is_keyed(&self, pos: u64) -> bool {
        link_is_for(self.rec(pos).link.load(Ordering::Acquire), pos)
    }

    /// Dispatches the keyed position `pos` (committed in the ring, at the
    /// group's dispatch cursor) of lane `lane` for consumer `me`.
    /// `alive(holder)` says whether a registry index's consumer lives.
    // One argument per thing the dispatch needs (the record, its lane, who
    // takes it, when, and who lives).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take_keyed(
        &self,
        pos: u64,
        span: u64,
        lane: usize,
        me: u32,
        now: Now,
        lease_ns: u64,
        alive: &mut impl FnMut(u32) -> bool,
    ) -> Keyed {
        let rec = self.rec(pos);
        let w = LeaseWord(rec.word.load(Ordering::Acquire));
        let indexing = LeaseWord::new(pos, TAKING, 0, me, 0);
        if !w.is_for(pos) || self.stale_alias(pos, w) {
            if !self.still_at(pos) {
                // We stalled: `pos` went on without us (and `w` may be a
                // later lap's word).
                return Keyed::Busy;
            }
            // AcqRel: Acquire orders our writes to the record after the
            // older word's; we alone index it now.
            if rec
                .word
                .compare_exchange(w.0, indexing.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return Keyed::Busy;
            }
        } else if w.state() == TAKING && w.attempt() == 0 {
            // Being indexed. Take it over only from a dead indexer.
            if w.holder() == me || alive(w.holder()) {
                return Keyed::Busy;
            }
            let over = w.next(pos, TAKING, 0, me);
            if rec
                .word
                .compare_exchange(w.0, over.0, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return Keyed::Busy;
            }
            return self.index(pos, span, lane, over, me, now, lease_ns);
        } else {
            // Indexed already (waiting, leased, or done): move on.
            self.pass(pos, span);
            return Keyed::Busy;
        }
        self.index(pos, span, lane, indexing, me, now, lease_ns)
    }

    /// Indexes `pos` into `lane` (we hold it as `held`, TAKING attempt 0)
    /// and leases it to us or makes it wait. Idempotent: a takeover
    /// repeats it.
    // One argument per thing the index needs, as `take_keyed` has them.
    #[allow(clippy::too_many_arguments)]
    fn index(
        &self,
        pos: u64,
        span: u64,
        lane: usize,
        held: LeaseWord,
        me: u32,
        now: Now,
        lease_ns: u64,
    ) -> Keyed {
        let rec = self.rec(pos);
        let lanes = &self.lanes[lane & (self.lanes.len() - 1)];
        let last = lanes.load(Ordering::Acquire);
        if last != pos + 1 {
            // First time (a takeover that finds `last == pos + 1` knows
            // these were written: nothing else indexes this lane while the
            // cursor is at `pos`).
            rec.prev.store(last, Ordering::Relaxed);
            rec.link.store(link(pos, EMPTY, 0), Ordering::Relaxed);
            rec.deadline_ns.store(0, Ordering::Relaxed);
            // Release: our link and prev before we are the lane's last.
            lanes.store(pos + 1, Ordering::Release);
        }
        let prev = rec.prev.load(Ordering::Relaxed);
        let free = prev == 0 || self.link_behind(prev - 1, pos);
        if free {
            let leased = held.next(pos, LEASED, 1, me);
            self.settle(
                pos,
                leased,
                now.mono.saturating_add(lease_ns),
                Some(now.real),
                Some(now.real),
            );
            self.pass(pos, span);
            return Keyed::Leased(HeldLease {
                pos,
                word: leased,
                keyed: true,
            });
        }
        // SeqCst: the waiter's half of the Dekker pair (module comment).
        rec.word.store(waiting(pos).0, Ordering::SeqCst);
        self.pass(pos, span);
        if self.finished(prev - 1) {
            // Its predecessor finished meanwhile: release ourselves (the
            // finisher may have too; one CAS wins).
            self.release(pos);
        }
        Keyed::Waiting
    }

    /// Links `pos` behind `x` in its lane. True if `pos` is free to go
    /// (`x` is finished), false if it must wait for `x`.
    fn link_behind(&self, x: u64, pos: u64) -> bool {
        // `x` below `committed`: finished, and its record may serve a
        // later lap already; not looked at.
        if x < self.group.committed.load(Ordering::Acquire) {
            return true;
        }
        let l = &self.rec(x).link;
        let want = link(x, NEXT, pos - x);
        loop {
            let cur = l.load(Ordering::SeqCst);
            if !link_is_for(cur, x) {
                // Reused for a later lap: `x` finished.
                return true;
            }
            match cur & 3 {
                // SeqCst: against the finisher's swap to DONE.
                EMPTY => {
                    if l.compare_exchange(cur, want, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                    {
                        return false;
                    }
                }
                // Linked by an earlier (dead) indexer of `pos`.
                NEXT if cur == want => return false,
                _ => return true,
            }
        }
    }

    /// Whether the keyed position `x` is finished for its lane.
    fn finished(&self, x: u64) -> bool {
        if x < self.group.committed.load(Ordering::SeqCst) {
            return true;
        }
        let l = self.rec(x).link.load(Ordering::SeqCst);
        !link_is_for(l, x) || l & 3 == DONE
    }

    /// Lets a waiting `q` go: due at once (READY, attempt 0). True if we
    /// did (the caller tells the group's consumers).
    fn release(&self, q: u64) -> bool {
        // SeqCst: the finisher's half of the Dekker pair; Release for the
        // deadline its indexer wrote.
        let ready = LeaseWord::new(q, READY, 0, 0, 1);
        let done = self
            .rec(q)
            .word
            .compare_exchange(waiting(q).0, ready.0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        if done {
            // Tell the group where: a free hint slot, or (all taken) the
            // redelivery hint that makes consumers scan the window.
            // SeqCst: the READY word before the hint that names it, and
            // the waker's change in the Signal/doorbell pair with a
            // waiter's re-check (which looks at these hints).
            let hinted = self.group.released.iter().any(|h| {
                h.compare_exchange(0, q + 1, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            });
            if !hinted {
                self.group.redeliver_hint.fetch_add(1, Ordering::Release);
            }
        }
        done
    }

    /// Takes a keyed message its lane released, named by a release hint,
    /// for consumer `me` (its first delivery). A hint is only a hint: the
    /// message may have been taken by a scan meanwhile.
    pub(crate) fn take_released(&self, me: u32, now: Now, lease_ns: u64) -> Option<HeldLease> {
        for h in &self.group.released {
            if h.load(Ordering::Relaxed) == 0 {
                continue;
            }
            // Acquire: pairs with the releaser's Release.
            let q = h.swap(0, Ordering::Acquire);
            if q == 0 {
                continue;
            }
            if let Some((held, _)) = self.take_again(q - 1, me, now, lease_ns, &mut |_| true) {
                return Some(held);
            }
        }
        None
    }

    /// Hands the lane of the finished (FINISHING) keyed position `x` on:
    /// its link becomes DONE, and a successor waiting on it is released.
    pub(crate) fn hand_on(&self, x: u64) {
        let l = &self.rec(x).link;
        loop {
            let cur = l.load(Ordering::SeqCst);
            if !link_is_for(cur, x) || cur & 3 == DONE {
                return;
            }
            // SeqCst: against the waiter's link and WAITING store.
            if l.compare_exchange(cur, link(x, DONE, 0), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                if cur & 3 == NEXT {
                    let delta = (cur >> 2) & 0x3fff_ffff;
                    self.release(x + delta);
                }
                return;
            }
        }
    }

    /// Lanes with an unfinished message (for stats): within a lane
    /// messages finish in order, so a lane is busy exactly when its last
    /// indexed message is unfinished.
    pub(crate) fn busy_lanes(&self) -> u64 {
        self.lanes
            .iter()
            .filter(|l| {
                let last = l.load(Ordering::Acquire);
                last != 0 && !self.finished(last - 1)
            })
            .count() as u64
    }

    /// Acks our lease of a keyed message: FINISHING (wins against an
    /// expiry), the lane handed on, then ACKED.
    pub(super) fn ack_keyed(&self, held: &HeldLease) -> Result<(), ()> {
        // SeqCst: as the unkeyed ack (the finisher of the commit-advance
        // pair), and before the lane moves on.
        let fin = self.move_held(held, FINISHING, Ordering::SeqCst)?;
        self.help_finish(held.pos, fin);
        Ok(())
    }

    /// Finishes a FINISHING word `w` of `pos` (ours, or a dead holder's):
    /// hands the lane on, then ACKED.
    pub(super) fn help_finish(&self, pos: u64, w: LeaseWord) {
        self.hand_on(pos);
        // SeqCst: a finisher, as in `ack`. A dead-lettered one ends ACKED
        // too when its holder died after the DLQ had it: both are
        // finished for the group.
        let _ = self.rec(pos).word.compare_exchange(
            w.0,
            LeaseWord::new(pos, ACKED, w.attempt(), 0, 0).0,
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::{GroupRecord, LeaseRecord};
    use crate::loom::AtomicU64;
    use crate::protocol::lease::Reclaimed;

    struct World {
        recs: Vec<LeaseRecord>,
        group: GroupRecord,
        lanes: Vec<AtomicU64>,
    }

    fn world(slots: usize, lanes: usize) -> World {
        World {
            recs: (0..slots).map(|_| LeaseRecord::new()).collect(),
            group: GroupRecord::new(),
            lanes: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    impl World {
        fn leases(&self) -> Leases<'_> {
            Leases {
                records: &self.recs,
                group: &self.group,
                lanes: &self.lanes,
                max_in_flight: self.recs.len() as u64,
            }
        }
    }

    const NOW: Now = Now {
        mono: 1000,
        real: 5,
    };

    fn leased(k: Keyed) -> HeldLease {
        match k {
            Keyed::Leased(h) => h,
            other => panic!("not leased: {other:?}"),
        }
    }

    #[test]
    fn a_keyed_message_on_a_word_2_pow_32_old_is_indexed() {
        // The record's word is position 3's, acked, and the cursor is now
        // 2^32 positions on, on the same record: its tag reads as ours.
        let w = world(2, 1);
        let l = w.leases();
        let old = 3u64;
        w.recs[1]
            .word
            .store(LeaseWord::new(old, ACKED, 1, 0, 0).0, Ordering::Relaxed);
        let now = old + (1 << 32);
        w.group.next.store(now, Ordering::Relaxed);
        w.group.committed.store(now, Ordering::Relaxed);
        let h = leased(l.take_keyed(now, 1, 0, 1, NOW, 100, &mut |_| true));
        assert_eq!(
            (h.pos, w.group.next.load(Ordering::Relaxed)),
            (now, now + 1)
        );
    }

    #[test]
    fn a_lane_leases_one_message_at_a_time_in_order() {
        let w = world(8, 2);
        let l = w.leases();
        let mut alive = |_| true;
        // 0 and 1 in lane 0, 2 in lane 1.
        let a = leased(l.take_keyed(0, 1, 0, 1, NOW, 100, &mut alive));
        assert_eq!(
            l.take_keyed(1, 1, 0, 2, NOW, 100, &mut alive),
            Keyed::Waiting
        );
        let c = leased(l.take_keyed(2, 1, 1, 2, NOW, 100, &mut alive));
        assert_eq!(w.group.next.load(Ordering::Relaxed), 3);
        // 1 is not due while 0 is leased.
        assert!(l.take_again(1, 3, NOW, 100, &mut alive).is_none());
        l.ack(&a).unwrap();
        let (b, why) = l.take_again(1, 3, NOW, 100, &mut alive).unwrap();
        assert_eq!((why, b.attempt(), b.keyed), (Reclaimed::Released, 1, true));
        l.ack(&c).unwrap();
        l.ack(&b).unwrap();
        assert!(l.advance_committed(|_| 1));
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_nacked_message_keeps_its_lane_until_it_is_acked() {
        let w = world(8, 1);
        let l = w.leases();
        let mut alive = |_| true;
        let a = leased(l.take_keyed(0, 1, 0, 1, NOW, 100, &mut alive));
        assert_eq!(
            l.take_keyed(1, 1, 0, 1, NOW, 100, &mut alive),
            Keyed::Waiting
        );
        l.requeue(&a, 0).unwrap();
        // 0 comes back, 1 still waits.
        let (a2, why) = l.take_again(0, 2, NOW, 100, &mut alive).unwrap();
        assert_eq!((why, a2.attempt()), (Reclaimed::Ready, 2));
        assert!(l.take_again(1, 2, NOW, 100, &mut alive).is_none());
        // Expiry too keeps the lane.
        let later = Now {
            mono: 5000,
            real: 6,
        };
        let (a3, why) = l.take_again(0, 2, later, 100, &mut alive).unwrap();
        assert_eq!((why, a3.attempt()), (Reclaimed::Expired, 3));
        assert_eq!(l.ack(&a2), Err(()), "a stale token is refused");
        assert!(l.take_again(1, 2, later, 100, &mut alive).is_none());
        // A dead letter hands the lane on.
        let t = l.begin_dead(&a3).unwrap();
        l.finish_dead(&t);
        assert!(l.take_again(1, 2, later, 100, &mut alive).is_some());
    }

    #[test]
    fn a_predecessor_finished_long_ago_does_not_hold_its_lane() {
        let w = world(4, 1);
        let l = w.leases();
        let mut alive = |_| true;
        let a = leased(l.take_keyed(0, 1, 0, 1, NOW, 100, &mut alive));
        l.ack(&a).unwrap();
        assert!(l.advance_committed(|_| 1));
        // Unkeyed positions 1..4 go by; the record of 0 serves 4 now.
        for p in 1..4 {
            let h = l.take_new(p, 1, 1, NOW, 100).unwrap();
            l.ack(&h).unwrap();
        }
        assert!(l.advance_committed(|_| 1));
        let b = leased(l.take_keyed(4, 1, 0, 1, NOW, 100, &mut alive));
        let c = l.take_keyed(5, 1, 0, 1, NOW, 100, &mut alive);
        assert_eq!(c, Keyed::Waiting);
        l.ack(&b).unwrap();
        assert_eq!(l.word(5).state(), READY);
    }

    #[test]
    fn a_dead_indexer_is_taken_over_and_a_dead_finisher_helped() {
        let w = world(8, 1);
        let l = w.leases();
        let a = leased(l.take_keyed(0, 1, 0, 1, NOW, 100, &mut |_| true));
        // Consumer 7 began indexing 1 and died before finishing.
        let rec = l.rec(1);
        rec.word
            .store(LeaseWord::new(1, TAKING, 0, 7, 0).0, Ordering::SeqCst);
        assert_eq!(
            l.take_keyed(1, 1, 0, 2, NOW, 100, &mut |_| true),
            Keyed::Busy
        );
        let mut dead7 = |h| h != 7;
        assert_eq!(
            l.take_keyed(1, 1, 0, 2, NOW, 100, &mut dead7),
            Keyed::Waiting
        );
        // The holder of 0 dies between FINISHING and handing on.
        let fin = a.word.next(0, FINISHING, 1, 1);
        l.rec(0).word.store(fin.0, Ordering::SeqCst);
        let mut dead1 = |h| h != 1;
        assert!(l.take_again(0, 2, NOW, 100, &mut dead1).is_none());
        assert_eq!(l.word(0).state(), ACKED);
        assert_eq!(l.word(1).state(), READY);
    }
}
