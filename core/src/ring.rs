//! The multi-producer ring: claim, mark, commit, abort, peek.
//!
//! Positions (= seqs) are handed out by a CAS on `tail`. Position `p` lives
//! in slot `p & (slots - 1)`, whose state word (see [`SlotHeader`]) walks
//!
//! ```text
//!   (older position) --mark--> CLAIMED(p, pid) --commit--> COMMITTED(p)
//!          |                         |
//!          +--abort (consumer)--+    +--abort (consumer, after unblock_timeout
//!                               v    |   or when pid is dead; or the producer
//!                          ABORTED(p)<+   dropping its reservation)
//! ```
//!
//! Exactly one of commit and abort wins, because both are a CAS from the
//! same CLAIMED value. A producer may only claim `p < head + slots`, and
//! `head` never passes a position a group still needs, so a slot is never
//! rewritten while a consumer borrows it.
//!
//! A claimer aborted while alive may still be writing its slot. The ABORTED
//! word then keeps its pid (the slot is *held*); a producer that later finds
//! the slot held by a live process does not write it but aborts its own
//! position there (carrying the hold forward) and claims another. The
//! stalled claimer releases the hold when its commit fails. So a late
//! writer never overwrites another message.
//!
//! [`SlotHeader`]: crate::layout::SlotHeader

use crate::layout::RingControl;
use crate::layout::slot_state::{ABORTED, CLAIMED, COMMITTED, EMPTY};
use crate::sync::{AtomicU64, Ordering, futex, sc_fence};

const TAG_BITS: u32 = 40;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

/// Packs a state word: `tag(pos) << 24 | pid << 2 | state`.
#[inline(always)]
pub(crate) fn encode(pos: u64, pid: u32, state: u64) -> u64 {
    ((pos & TAG_MASK) << 24) | ((pid as u64 & PID_MASK) << 2) | state
}

#[inline(always)]
fn state_of(word: u64) -> u64 {
    word & 3
}

#[inline(always)]
fn pid_of(word: u64) -> u32 {
    ((word >> 2) & PID_MASK) as u32
}

/// Whether `word` describes position `pos` (rather than an older lap).
#[inline(always)]
fn is_for(word: u64, pos: u64) -> bool {
    state_of(word) != EMPTY && (word >> 24) == (pos & TAG_MASK)
}

/// The state words of the ring's slots, wherever they live.
pub(crate) trait SlotStates {
    /// The state word of the slot that holds `pos`.
    fn state(&self, pos: u64) -> &AtomicU64;
}

/// Heap twin of the slot array, for tests and loom models.
#[cfg(any(test, loom))]
impl SlotStates for Vec<AtomicU64> {
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self[(pos as usize) & (self.len() - 1)]
    }
}

/// Result of trying to claim positions.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Positions `start .. start + n` are ours.
    Claimed(u64),
    /// There is no room for `n` more positions below `head + slots`.
    Full,
}

/// Result of marking a claimed position's slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The slot is ours to write.
    Ours,
    /// A consumer aborted this position before we marked it (we were
    /// stalled between claim and mark): nothing was written.
    Aborted,
    /// The slot is still held by a live, stalled claimer of an older lap;
    /// this position was aborted instead. Claim another.
    Held,
}

/// What a consumer finds at a position.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Peek {
    /// Committed: read it.
    Ready,
    /// Aborted: skip it.
    Skip,
    /// Claimed by `pid`, being written.
    Claimed(u32),
    /// Not marked for this position yet (not claimed, or claimed and not
    /// yet marked). The raw word is kept for [`Ring::abort`].
    NotYet(u64),
}

/// The ring protocol over a [`RingControl`] and its slots.
pub(crate) struct Ring<'a, S> {
    pub ctl: &'a RingControl,
    pub slots: S,
    pub capacity: u64,
}

impl<S: SlotStates> Ring<'_, S> {
    /// Claims `n` consecutive positions if they fit below `head + slots`.
    /// `cached_head` is the caller's copy of `head`; it is refreshed from
    /// shared memory only when the ring looks full, so the common case reads
    /// no line that consumers write.
    #[inline]
    pub(crate) fn claim(&self, n: u64, cached_head: &mut u64) -> Claim {
        debug_assert!(n >= 1 && n <= self.capacity);
        // Relaxed: tail carries no data; the CAS below decides.
        let mut tail = self.ctl.tail.load(Ordering::Relaxed);
        loop {
            if tail + n > *cached_head + self.capacity {
                // Acquire pairs with the Release store of head (under the
                // admin lock), which follows the Acquire loads of every
                // group's committed cursor, which follow those consumers'
                // last reads of the slots now being reused.
                *cached_head = self.ctl.head.load(Ordering::Acquire);
                if tail + n > *cached_head + self.capacity {
                    return Claim::Full;
                }
            }
            match self.ctl.tail.compare_exchange_weak(
                tail,
                tail + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Claim::Claimed(tail),
                Err(now) => tail = now,
            }
        }
    }

    /// Marks the slot of claimed position `pos` as ours (CLAIMED by `pid`).
    /// `alive(pid)` tells whether a process still lives (only asked about
    /// slots held by an aborted claimer).
    #[inline]
    pub(crate) fn mark(&self, pos: u64, pid: u32, alive: impl Fn(u32) -> bool) -> Mark {
        let state = self.slots.state(pos);
        // Acquire: if the old word is a consumer's ABORTED, see it whole.
        let mut word = state.load(Ordering::Acquire);
        loop {
            if is_for(word, pos) {
                // Only a consumer's abort of our unmarked position can have
                // put our position's tag here.
                debug_assert_eq!(state_of(word), ABORTED);
                return Mark::Aborted;
            }
            let old_state = state_of(word);
            let holder = pid_of(word);
            let held = (old_state == ABORTED || old_state == CLAIMED) && holder != 0;
            let (new, result) = if held && alive(holder) {
                (encode(pos, holder, ABORTED), Mark::Held)
            } else {
                (encode(pos, pid, CLAIMED), Mark::Ours)
            };
            // AcqRel: Release publishes nothing yet but orders our later
            // payload writes after the mark in this slot's modification
            // order; Acquire as above.
            match state.compare_exchange(word, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return result,
                Err(now) => word = now,
            }
        }
    }

    /// Publishes position `pos`: CLAIMED(pos, pid) -> COMMITTED. Fails if a
    /// consumer aborted it first; then releases our hold on the slot.
    #[inline]
    pub(crate) fn commit(&self, pos: u64, pid: u32) -> Result<(), ()> {
        let state = self.slots.state(pos);
        // SeqCst: Release makes the payload and header visible to the
        // consumer's Acquire load of COMMITTED; SeqCst (with the load of
        // `data.waiters` in `notify_data`) is the waker half of the Signal
        // protocol.
        match state.compare_exchange(
            encode(pos, pid, CLAIMED),
            encode(pos, pid, COMMITTED),
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(_) => {
                self.release_hold(pos, pid);
                Err(())
            }
        }
    }

    /// Gives up our claim on `pos` (a dropped reservation). Returns false
    /// if a consumer had aborted it already.
    pub(crate) fn abort_own(&self, pos: u64, pid: u32) -> bool {
        let state = self.slots.state(pos);
        let ok = state
            .compare_exchange(
                encode(pos, pid, CLAIMED),
                encode(pos, 0, ABORTED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok();
        if !ok {
            self.release_hold(pos, pid);
        }
        ok
    }

    /// After our claim on `pos` was aborted and we stopped writing: clear
    /// our pid from the slot's ABORTED word (wherever the hold was carried
    /// to), so producers may use the slot again.
    fn release_hold(&self, pos: u64, pid: u32) {
        let state = self.slots.state(pos);
        let mut word = state.load(Ordering::Acquire);
        while state_of(word) == ABORTED && pid_of(word) == pid {
            let tag_pos = word >> 24;
            // Release: our (late) writes to the slot happen before anyone
            // who sees the hold gone (Acquire in `mark`) writes it.
            match state.compare_exchange(
                word,
                encode(tag_pos, 0, ABORTED),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// What is at `pos`. Acquire pairs with the Release half of `commit`:
    /// a `Ready` result makes the slot's header and payload visible.
    #[inline(always)]
    pub(crate) fn peek(&self, pos: u64) -> Peek {
        Self::classify(self.slots.state(pos).load(Ordering::Acquire), pos)
    }

    /// Like [`peek`](Self::peek) but SeqCst: the re-check of a sleeper in
    /// the Signal protocol.
    pub(crate) fn peek_sc(&self, pos: u64) -> Peek {
        sc_fence();
        Self::classify(self.slots.state(pos).load(Ordering::SeqCst), pos)
    }

    #[inline(always)]
    fn classify(word: u64, pos: u64) -> Peek {
        if !is_for(word, pos) {
            return Peek::NotYet(word);
        }
        match state_of(word) {
            COMMITTED => Peek::Ready,
            ABORTED => Peek::Skip,
            _ => Peek::Claimed(pid_of(word)),
        }
    }

    /// Aborts position `pos`, whose word was last seen as `seen` (from
    /// [`Peek::NotYet`], or `encode(pos, pid, CLAIMED)`). `alive` decides
    /// whether a claimer that may still be writing keeps its hold on the
    /// slot. Returns true if the position is now aborted (by us or anyone).
    pub(crate) fn abort(&self, pos: u64, seen: u64, alive: impl Fn(u32) -> bool) -> bool {
        let state = self.slots.state(pos);
        let old_state = state_of(seen);
        let holder = pid_of(seen);
        let keep = if (old_state == CLAIMED || old_state == ABORTED) && holder != 0 && alive(holder)
        {
            holder
        } else {
            0
        };
        // AcqRel: Acquire so that a loser sees the winner's word; Release so
        // a producer that finds ABORTED (Acquire in `mark`) sees it whole.
        match state.compare_exchange(
            seen,
            encode(pos, keep, ABORTED),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => is_for(now, pos) && state_of(now) == ABORTED,
        }
    }

    /// Wakes consumers asleep on `data`, if any. Call after `commit`.
    #[inline]
    pub(crate) fn notify_data(&self) {
        notify(&self.ctl.data);
    }

    /// Wakes producers asleep on `space`, if any. Call after a group's
    /// committed cursor moved (SeqCst store).
    #[inline]
    pub(crate) fn notify_space(&self) {
        notify(&self.ctl.space);
    }
}

/// The waker half of the Signal protocol (see [`crate::layout::Signal`]).
#[inline(always)]
pub(crate) fn notify(signal: &crate::layout::Signal) {
    sc_fence();
    // SeqCst: ordered after the caller's SeqCst change in the total order,
    // pairs with the sleeper's SeqCst increment of `waiters`.
    if signal.waiters.load(Ordering::SeqCst) != 0 {
        signal.word.fetch_add(1, Ordering::SeqCst);
        futex::wake_all(&signal.word);
    }
}

/// The sleeper half of the Signal protocol: registers as a waiter, reads
/// the word, re-checks `ready` (which must use a SeqCst load) and sleeps
/// for at most `slice` if it is still false. Returns `ready`'s last value.
pub(crate) fn sleep_unless<T>(
    signal: &crate::layout::Signal,
    slice: std::time::Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    // SeqCst: pairs with the waker's SeqCst load of `waiters`.
    signal.waiters.fetch_add(1, Ordering::SeqCst);
    let word = signal.word.load(Ordering::SeqCst);
    sc_fence();
    let result = ready();
    if result.is_none() {
        futex::wait(&signal.word, word, slice);
    }
    signal.waiters.fetch_sub(1, Ordering::SeqCst);
    result
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ring(cap: usize) -> (Box<RingControl>, Vec<AtomicU64>) {
        (
            Box::new(RingControl::new()),
            (0..cap).map(|_| AtomicU64::new(0)).collect(),
        )
    }

    #[test]
    fn claim_respects_capacity_and_head() {
        let (ctl, slots) = ring(4);
        let r = Ring {
            ctl: &ctl,
            slots,
            capacity: 4,
        };
        let mut head = 0;
        assert_eq!(r.claim(3, &mut head), Claim::Claimed(0));
        assert_eq!(r.claim(2, &mut head), Claim::Full);
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(3));
        assert_eq!(r.claim(1, &mut head), Claim::Full);
        ctl.head.store(2, Ordering::Release);
        assert_eq!(r.claim(2, &mut head), Claim::Claimed(4));
        assert_eq!(head, 2);
    }

    #[test]
    fn commit_and_abort_exclude_each_other() {
        let (ctl, slots) = ring(4);
        let r = Ring {
            ctl: &ctl,
            slots,
            capacity: 4,
        };
        let mut head = 0;
        let Claim::Claimed(p) = r.claim(1, &mut head) else {
            panic!()
        };
        assert_eq!(r.mark(p, 7, |_| true), Mark::Ours);
        assert_eq!(r.peek(p), Peek::Claimed(7));
        // Abort while the claimer (7) is alive: the slot stays held.
        assert!(r.abort(p, encode(p, 7, CLAIMED), |_| true));
        assert_eq!(r.peek(p), Peek::Skip);
        assert_eq!(r.commit(p, 7), Err(()));
        // The failed commit released the hold.
        assert_eq!(pid_of(r.slots.state(p).load(Ordering::Relaxed)), 0);
    }

    #[test]
    fn held_slot_is_skipped_by_the_next_lap() {
        let (ctl, slots) = ring(2);
        let r = Ring {
            ctl: &ctl,
            slots,
            capacity: 2,
        };
        let mut head = 0;
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(0));
        assert_eq!(r.mark(0, 7, |_| true), Mark::Ours);
        assert!(r.abort(0, encode(0, 7, CLAIMED), |_| true));
        ctl.head.store(2, Ordering::Release);
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(1));
        assert_eq!(r.mark(1, 8, |_| true), Mark::Ours);
        assert_eq!(r.commit(1, 8), Ok(()));
        // Position 2 maps to slot 0, still held by live pid 7.
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(2));
        assert_eq!(r.mark(2, 8, |_| true), Mark::Held);
        assert_eq!(r.peek(2), Peek::Skip);
        // pid 7 finally commits: fails and releases the carried hold.
        assert_eq!(r.commit(0, 7), Err(()));
        ctl.head.store(4, Ordering::Release);
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(3));
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(4));
        assert_eq!(r.mark(4, 8, |_| true), Mark::Ours);
    }

    #[test]
    fn unmarked_claim_aborted_before_mark() {
        let (ctl, slots) = ring(4);
        let r = Ring {
            ctl: &ctl,
            slots,
            capacity: 4,
        };
        let mut head = 0;
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(0));
        let Peek::NotYet(seen) = r.peek(0) else {
            panic!()
        };
        assert!(r.abort(0, seen, |_| true));
        assert_eq!(r.mark(0, 9, |_| true), Mark::Aborted);
    }

    #[test]
    fn dead_holder_does_not_keep_the_slot() {
        let (ctl, slots) = ring(2);
        let r = Ring {
            ctl: &ctl,
            slots,
            capacity: 2,
        };
        assert_eq!(r.mark(0, 5, |_| true), Mark::Ours);
        assert!(r.abort(0, encode(0, 5, CLAIMED), |_| true));
        // pid 5 is dead now: the next lap takes the slot.
        assert_eq!(r.mark(2, 6, |_| false), Mark::Ours);
    }
}
