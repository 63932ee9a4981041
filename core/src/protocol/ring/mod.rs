//! The multi-producer ring: claim, begin, commit, abort, peek.
//!
//! A message is a *record* of one or more consecutive slots (its *span*);
//! its seq is the position of its first slot, so seqs are unique and
//! increasing but skip the positions a long record takes. Positions are
//! handed out by a CAS on `tail` (`tail += span`). Position `p` lives in
//! slot `p & (slots - 1)`, and the first slot of a record holds the
//! record's state word (see [`SlotHeader`]):
//!
//! ```text
//!   word = lap(p) << (log2(slots) + 2) | span << 2 | state
//!
//!   (older word or payload) --commit (producer)------------> COMMITTED(p, span)
//!            |
//!            +--abort (consumer, after unblock_timeout or when the
//!                      claimer is dead)--> ABORTED(p, 0) --settle--> ABORTED(p, span)
//!            +--abort_own (the producer itself)-----------------> ABORTED(p, span)
//! ```
//!
//! For a CAS producer exactly one of commit and abort wins, because both
//! are a CAS from the same older word (an asymmetric producer's commit is
//! a plain store, decided by its mark: see below). A producer may only claim `p + span <= head + slots`,
//! and `head` never passes a position a group still needs, so a slot is
//! never rewritten while a consumer borrows it. The slots area is mapped
//! twice back to back (`os/map.rs`), so a record is one slice wherever it
//! starts.
//!
//! **No word is trusted that could be payload.** The slots after a
//! record's first hold payload bytes where a state word would be, so the
//! word a producer finds in its first slot is an older lap's state word
//! or payload. A word means position `p` only if its lap is `p`'s
//! ([`Ring::is_for`]); anything else is "not yet". A producer learns that
//! it was lapped (stalled past a consumer's abort and the ring's moving
//! on) from `head`, not from the word: `head` passes `p` only once every
//! group is past it, which for a position nobody committed means aborted.
//!
//! **Announcements instead of a mark.** Consumers spin on the state word of
//! the record they wait for, so every write a producer makes to that word
//! moves its cache line between cores. A producer therefore writes it
//! once, to commit; before writing the record it *announces* it in its own
//! producer record (a line nobody else writes): the record's end in
//! `announce_end`, then its first position in `announce` (SeqCst), then it
//! loads the state word ([`Ring::begin`]).
//!
//! **Aborting, and the span of an aborted record.** A consumer's abort
//! CASes the word to `ABORTED(p, 0)` — span not yet known — and then
//! *settles* it ([`Ring::settle`]): it looks for an announcement of `p`
//! (SeqCst loads after its SeqCst CAS) and stores `ABORTED(p, end - p)`,
//! or `ABORTED(p, 1)` when nobody announces `p` (its claimer stopped or
//! died between its claim and its announcement: it never began, and the
//! slots after `p` are then aborted one by one as consumers reach them).
//! Readers that find `ABORTED(p, 0)` settle it themselves. The Dekker
//! pair (the writer's announcement then load, the aborter's CAS then
//! scan) makes the span exact whenever it matters: either the writer's
//! load sees the abort (it writes nothing, and any span is safe), or the
//! aborter's scan sees the announcement with its end.
//!
//! **A stalled writer keeps its slots.** An aborted producer may be alive
//! and still writing its record. The settler that finds a live announcer
//! *revokes* it (`announcement::revoke`: the producer record's `revoked`
//! word, counted in `RingControl::revoked`) before it settles, so before
//! any group can pass the record and `head` move a lap. Every begin reads
//! the count (on `head`'s line, which it reads anyway) and, only when it
//! is not zero, checks its record against the revoked writers'
//! (`announcement::held`): a later lap's record that overlaps a revoked
//! writer's slots is aborted by
//! its own producer, which claims again. A revocation is cleared by
//! whoever finds its writer no longer announcing that record (it gave up
//! once its commit failed) or dead. loom models:
//! `loom_stalled_writer_holds_its_slot`, `loom_stalled_batch_holds_its_slots`,
//! `loom_a_long_stalled_record_holds_all_its_slots`.
//!
//! **The asymmetric-fence commit.** A producer whose process can make the
//! heavy fence (`membarrier`, `os/fence.rs`; its record's `mode`) makes no
//! locked instruction after its claim: its announcement is a Release store
//! and a light fence (a compiler barrier), and its commit
//! ([`Ring::commit_announced`]) marks the record in `committing`, fences
//! lightly, reads its own `revoked`, and stores COMMITTED with a plain
//! store. The rare side makes the heavy fence: the settler fences before
//! it scans, and after revoking a live asymmetric announcer fences again
//! and reads its mark ([`Ring::settle_abort`]). Each pair is a Dekker
//! pair with a light fence on one side and a heavy one on the other. A
//! producer inside its commit holds its position: the settle leaves
//! `ABORTED(p, 0)` unsettled, and the producer's store replaces it (or the
//! producer, seeing itself revoked, gives up with the exact span). So a
//! producer stores COMMITTED only over a word nobody settled. In a
//! process that cannot fence, producers keep the CAS commit and settles
//! wait while an asymmetric producer lives. loom models:
//! `loom_asymmetric_commit_against_an_abort_never_loses_a_published_record`,
//! the planted bug `loom_planted_a_settle_that_skips_the_commit_mark_is_caught`,
//! and the `*_asymmetric` twins of the models above.
//!
//! [`SlotHeader`]: crate::layout::SlotHeader

use crate::layout::commit_mode::ASYMMETRIC;
use crate::layout::slot_state::{ABORTED, COMMITTED, EMPTY};
use crate::layout::{Doorbells, ProducerRecord, RingControl};
use crate::loom::{AtomicU64, Ordering, light_fence, sc_fence};

use crate::protocol::announcement::RANGE;
use crate::protocol::signal::notify;

mod commit; // publishing a begun record; a producer giving its own up
mod settle; // a consumer's abort of a stuck position, and its span

/// Whether producer record `me` commits asymmetrically (its owner set
/// the mode when it took the record, before its first claim).
#[inline(always)]
fn asymmetric(me: &ProducerRecord) -> bool {
    // Relaxed: written before the owner's first claim; read by the owner
    // itself, or by a settler after the SeqCst scan that found its
    // announcement (which follows the mode's store).
    me.mode.load(Ordering::Relaxed) == ASYMMETRIC
}

/// Stores announcement word `word` in our record `me`, before the load of
/// the record's first word (`Ring::look`): with a SeqCst store for a CAS
/// producer, a Release store and the light fence for an asymmetric one
/// (the aborter's heavy fence is the other side).
#[inline(always)]
fn announce(me: &ProducerRecord, word: u64) {
    if asymmetric(me) {
        me.announce.store(word, Ordering::Release);
        light_fence();
    } else {
        me.announce.store(word, Ordering::SeqCst);
    }
}

#[inline(always)]
fn state_of(word: u64) -> u64 {
    word & 3
}

/// The state words of the ring's slots, wherever they live.
pub(crate) trait SlotStates {
    /// The state word of the slot that holds `pos`.
    fn state(&self, pos: u64) -> &AtomicU64;
}

/// Heap twin of the slot array, for tests and loom models.
#[cfg(any(test, loom))]
impl SlotStates for &[AtomicU64] {
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self[(pos as usize) & (self.len() - 1)]
    }
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

/// Result of [`Ring::begin`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// The record is ours to write; commit with this older word.
    Ours(u64),
    /// A consumer aborted this record before we began (we were stalled
    /// after claiming it), or the ring lapped it: nothing was written.
    /// Claim another.
    Aborted,
    /// A live, stalled producer of an older lap may still be writing some
    /// of its slots; we aborted this record instead. Claim another.
    Held,
}

/// What a consumer finds at a position.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Peek {
    /// Committed: read it; the next record is this many slots on.
    Ready(u64),
    /// Aborted: skip this many slots.
    Skip(u64),
    /// Aborted, its span not settled yet: [`Ring::settle`] it.
    Settling,
    /// Not committed or aborted yet (not claimed, or claimed and being
    /// written). The raw word is kept for [`Ring::abort`].
    NotYet(u64),
}

impl Peek {
    /// Committed, aborted or settling: the position is not waited for.
    #[inline(always)]
    pub(crate) fn is_done(self) -> bool {
        !matches!(self, Peek::NotYet(_))
    }
}

/// The ring protocol over a [`RingControl`] and its slots.
pub(crate) struct Ring<'a, S> {
    pub ctl: &'a RingControl,
    pub slots: S,
    /// Slots in the ring: a power of two.
    pub capacity: u64,
    /// The async waiters' doorbells, rung by `notify_data`/`notify_space`.
    pub bells: &'a Doorbells,
}

impl<S: SlotStates> Ring<'_, S> {
    /// log2 of the capacity: the bits of a position inside a lap.
    #[inline(always)]
    fn shift(&self) -> u32 {
        self.capacity.trailing_zeros()
    }

    /// The longest record: half the ring, so that a producer and a
    /// consumer always have room to overlap.
    #[inline(always)]
    pub(crate) fn max_span(&self) -> u64 {
        (self.capacity / 2).max(1)
    }

    /// The state word of position `pos` in `state`, for a record of `span`
    /// slots (`span < capacity`).
    #[inline(always)]
    pub(crate) fn word(&self, pos: u64, span: u64, state: u64) -> u64 {
        let sh = self.shift();
        debug_assert!(span < self.capacity.max(2));
        ((pos >> sh) << (sh + 2)) | (span << 2) | state
    }

    /// Whether `word` is position `pos`'s (rather than an older or later
    /// lap's, or payload): its state is set and its lap is `pos`'s.
    #[inline(always)]
    pub(crate) fn is_for(&self, word: u64, pos: u64) -> bool {
        let sh = self.shift();
        state_of(word) != EMPTY && (word >> (sh + 2)) == (pos >> sh)
    }

    /// The span a state word records.
    #[inline(always)]
    pub(crate) fn span_of(&self, word: u64) -> u64 {
        (word >> 2) & (self.capacity - 1)
    }

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

    /// Starts writing the claimed record `pos .. pos + span`: announces it
    /// in producer record `me`, then looks at its first slot. `held(pos,
    /// span)` checks the record against the revoked stalled writers
    /// (`announcement::held`) and is asked only while some revocation is
    /// counted.
    #[inline]
    pub(crate) fn begin(
        &self,
        pos: u64,
        span: u64,
        me: &ProducerRecord,
        held: impl Fn(u64, u64) -> bool,
    ) -> Begin {
        self.note_long(pos, span);
        // Release: a scanner that reads this end with Acquire sees the
        // withdrawal of our previous announcement too (`announcement`).
        me.announce_end.store(pos + span, Ordering::Release);
        // The announcement, then the load of the word (in `look`): the
        // producer half of the abort's Dekker pair (see the module doc).
        announce(me, pos + 1);
        let b = self.look(pos, span, held);
        if !matches!(b, Begin::Ours(_)) {
            // We wrote nothing and write nothing: stop announcing.
            me.announce.store(0, Ordering::Release);
        }
        b
    }

    /// Announces the positions from `start` on, for a batch of at most a
    /// ring's worth: each record is then begun with
    /// [`begin_announced`](Self::begin_announced) and committed with
    /// [`commit_announced`](Self::commit_announced), and the announcement
    /// is withdrawn with [`end_announced`](Self::end_announced) once the
    /// batch writes nothing more. One SeqCst store for the batch instead of
    /// one per message.
    #[inline]
    pub(crate) fn announce_from(&self, start: u64, me: &ProducerRecord) {
        // Nothing of the batch is being written yet.
        me.announce_end.store(start, Ordering::Release);
        // As in `begin`; it precedes every record's load in `look` in
        // program order, so the Dekker pair holds for each.
        announce(me, (start + 1) | RANGE);
    }

    /// [`begin`](Self::begin) for a record of a batch announced by
    /// [`announce_from`](Self::announce_from): the announcement stays,
    /// whatever the outcome, until [`end_announced`](Self::end_announced).
    #[inline]
    pub(crate) fn begin_announced(
        &self,
        pos: u64,
        span: u64,
        me: &ProducerRecord,
        held: impl Fn(u64, u64) -> bool,
    ) -> Begin {
        self.note_long(pos, span);
        if asymmetric(me) {
            // Release: as in `begin`; the light fence orders it before
            // the state word's load in `look`, against the settler's
            // heavy fence.
            me.announce_end.store(pos + span, Ordering::Release);
            light_fence();
        } else {
            // SeqCst (a locked store on x86): a Release store could still
            // sit in the store buffer when `look` loads the word, and an
            // aborter's scan would then miss this record's end.
            me.announce_end.store(pos + span, Ordering::SeqCst);
        }
        self.look(pos, span, held)
    }

    /// Before a record of more than one slot is written from `pos`: its
    /// slots after the first will hold payload, which `head` must clear
    /// before a later lap reuses them ([`clear_passed`](Self::clear_passed)).
    #[inline(always)]
    pub(crate) fn note_long(&self, pos: u64, span: u64) {
        if span > 1 {
            // Release: with the record's commit after it and the groups'
            // cursors after that, whoever moves `head` past the record
            // (Acquire, under the admin lock) sees it.
            self.ctl.long_until.fetch_max(pos + span, Ordering::Release);
        }
    }

    /// Clears the words of the slots after the first of every record in
    /// `from .. to` (whole records: `from` is `head`, `to` the slowest
    /// group's cursor), which `head` is about to pass. Those slots held
    /// payload, and in the next lap each may be a record's first slot:
    /// a payload word there that happened to read as that position's
    /// state word (a small integer does: its lap is in the high bits)
    /// would be taken for a commit (a torn record delivered), an abort (a
    /// record skipped) or a refill done (a spilled message lost). Only
    /// below [`RingControl::long_until`]: a ring of one-slot records
    /// costs one load. Called under the admin lock, before `head` is
    /// stored (Release): a claimer of the next lap loads `head` (Acquire)
    /// before it claims, and a reader loads `tail` after the claim. loom
    /// model: `loom_a_long_records_payload_is_never_a_later_laps_word`
    /// (fails without the clearing).
    pub(crate) fn clear_passed(&self, from: u64, to: u64) {
        // Acquire: pairs with `note_long`'s Release. Never more than a
        // ring from `from`: the records of one lap are all there are, and
        // a garbled cursor or `long_until` must not make an endless walk
        // under the admin lock.
        let end = to
            .min(self.ctl.long_until.load(Ordering::Acquire))
            .min(from.saturating_add(self.capacity));
        let mut pos = from;
        while pos < end {
            // Acquire: the record's word as its commit or abort left it.
            let word = self.slots.state(pos).load(Ordering::Acquire);
            // A word that is not this position's cannot be (every group
            // is past it): step one slot, clearing nothing. A span past
            // the longest record is a garbled word: its first slot only.
            let span = match self.span_of(word) {
                span if self.is_for(word, pos) && span <= self.max_span() => span.max(1),
                _ => 1,
            };
            for k in 1..span {
                // Relaxed: published by the caller's Release store of head.
                self.slots.state(pos + k).store(EMPTY, Ordering::Relaxed);
            }
            pos += span;
        }
    }

    /// Looks at the first slot of the announced record `pos .. pos + span`:
    /// ours (with its older word), aborted by a consumer or lapped, or
    /// overlapping a revoked stalled writer (then aborted by us).
    #[inline(always)]
    fn look(&self, pos: u64, span: u64, held: impl Fn(u64, u64) -> bool) -> Begin {
        let state = self.slots.state(pos);
        sc_fence();
        let word = state.load(Ordering::SeqCst);
        if self.is_for(word, pos) {
            // Our position is there: a consumer aborted it while we were
            // stalled. We wrote nothing.
            return Begin::Aborted;
        }
        // SeqCst: after our announcement in the total order (see the
        // module doc). `head` past `pos`: every group is past it, so a
        // consumer aborted it and the ring may have lapped it.
        if self.ctl.head.load(Ordering::SeqCst) > pos {
            return Begin::Aborted;
        }
        // Relaxed after the SeqCst load of head: a revocation that matters
        // to us was counted before `head` moved to where we claimed.
        if self.ctl.revoked.load(Ordering::Relaxed) == 0 || !held(pos, span) {
            return Begin::Ours(word);
        }
        // AcqRel: Acquire to see a concurrent aborter's word whole;
        // Release so the next lap's Acquire load sees ours.
        match state.compare_exchange(
            word,
            self.word(pos, span, ABORTED),
            Ordering::AcqRel,
            Ordering::SeqCst,
        ) {
            Ok(_) => Begin::Held,
            Err(_) => Begin::Aborted,
        }
    }

    /// What is at `pos`. Acquire pairs with the Release half of `commit`:
    /// a `Ready` result makes the record's header and payload visible.
    #[inline(always)]
    pub(crate) fn peek(&self, pos: u64) -> Peek {
        self.classify(self.slots.state(pos).load(Ordering::Acquire), pos)
    }

    /// Like [`peek`](Self::peek) but SeqCst: the re-check of a sleeper in
    /// the Signal protocol.
    pub(crate) fn peek_sc(&self, pos: u64) -> Peek {
        sc_fence();
        self.classify(self.slots.state(pos).load(Ordering::SeqCst), pos)
    }

    #[inline(always)]
    fn classify(&self, word: u64, pos: u64) -> Peek {
        if !self.is_for(word, pos) {
            return Peek::NotYet(word);
        }
        let span = self.span_of(word);
        match (state_of(word), span) {
            (COMMITTED, 0) => Peek::Skip(1),
            (COMMITTED, _) => Peek::Ready(span),
            (_, 0) => Peek::Settling,
            _ => Peek::Skip(span),
        }
    }

    /// The records from `from` up to `to`, as far as they are committed or
    /// aborted (with settled spans): each position and what is there. For
    /// the rare walks (stats, seeks by time) that hold the records still.
    pub(crate) fn records(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, Peek)> + '_ {
        let mut pos = from;
        std::iter::from_fn(move || {
            if pos >= to {
                return None;
            }
            let p = self.peek(pos);
            let at = pos;
            match p {
                Peek::Ready(span) | Peek::Skip(span) => pos += span,
                Peek::Settling | Peek::NotYet(_) => pos = to,
            }
            Some((at, p))
        })
    }

    /// Wakes consumers asleep on `data`, if any. Call after `commit`.
    /// `true` (rarely): many wakes in a row woke nobody, so a sleeper may
    /// have died in its sleep; the caller should `repair_sleepers`.
    #[inline]
    pub(crate) fn notify_data(&self) -> bool {
        notify(&self.ctl.data, &self.ctl.data_armed, &self.bells.data)
    }

    /// Wakes producers asleep on `space`, if any. Call after a group's
    /// committed cursor moved (SeqCst store). `true`: as in `notify_data`.
    #[inline]
    pub(crate) fn notify_space(&self) -> bool {
        notify(&self.ctl.space, &self.ctl.space_armed, &self.bells.space)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::protocol::announcement::held;

    /// A ring's control words, doorbells and producer records on the heap.
    struct Fixture {
        ctl: Box<RingControl>,
        bells: Doorbells,
        producers: Vec<ProducerRecord>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                ctl: Box::new(RingControl::new()),
                bells: Doorbells::new(),
                producers: (0..3).map(|_| ProducerRecord::new()).collect(),
            }
        }

        /// A ring of `cap` fresh slots over them.
        fn ring(&self, cap: usize) -> Ring<'_, Vec<AtomicU64>> {
            Ring {
                ctl: &self.ctl,
                slots: (0..cap).map(|_| AtomicU64::new(0)).collect(),
                capacity: cap as u64,
                bells: &self.bells,
            }
        }

        /// `held` over these producer records (all alive).
        fn held(&self, pos: u64, span: u64, cap: u64) -> bool {
            held(&self.ctl, &self.producers, pos, span, cap, |_| true)
        }

        /// What a consumer does to a stuck record at `pos`: abort it, scan
        /// the announcements, revoke a writer, settle the span.
        fn abort_and_settle(&self, r: &Ring<'_, Vec<AtomicU64>>, pos: u64) -> u64 {
            let Peek::NotYet(seen) = r.peek(pos) else {
                panic!("{pos} is not waiting")
            };
            assert!(r.abort(pos, seen));
            r.settle_abort(&self.producers, pos, |_| true)
                .expect("a CAS producer's record settles")
        }
    }

    #[test]
    fn claim_respects_capacity_and_head() {
        let f = Fixture::new();
        let r = f.ring(4);
        let mut head = 0;
        assert_eq!(r.claim(3, &mut head), Claim::Claimed(0));
        assert_eq!(r.claim(2, &mut head), Claim::Full);
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(3));
        assert_eq!(r.claim(1, &mut head), Claim::Full);
        f.ctl.head.store(2, Ordering::Release);
        assert_eq!(r.claim(2, &mut head), Claim::Claimed(4));
        assert_eq!(head, 2);
    }

    #[test]
    fn words_carry_lap_and_span() {
        let f = Fixture::new();
        let r = f.ring(8);
        let w = r.word(21, 3, COMMITTED);
        assert!(r.is_for(w, 21));
        // The same slot a lap earlier or later is another position.
        assert!(!r.is_for(w, 13) && !r.is_for(w, 29));
        assert_eq!(r.span_of(w), 3);
        assert_eq!(r.classify(w, 21), Peek::Ready(3));
        assert_eq!(r.classify(r.word(21, 0, ABORTED), 21), Peek::Settling);
        assert_eq!(r.classify(r.word(21, 2, ABORTED), 21), Peek::Skip(2));
        assert_eq!(r.classify(0, 0), Peek::NotYet(0));
        assert_eq!(r.max_span(), 4);
    }

    #[test]
    fn commit_and_abort_exclude_each_other() {
        let f = Fixture::new();
        let r = f.ring(4);
        let me = &f.producers[0];
        let mut head = 0;
        let Claim::Claimed(p) = r.claim(2, &mut head) else {
            panic!()
        };
        let Begin::Ours(seen) = r.begin(p, 2, me, |_, _| false) else {
            panic!()
        };
        assert_eq!(me.announce.load(Ordering::Relaxed), p + 1, "announced");
        assert_eq!(
            me.announce_end.load(Ordering::Relaxed),
            p + 2,
            "with its end"
        );
        // The consumer finds the writer announced and learns the span.
        assert_eq!(f.abort_and_settle(&r, p), 2);
        assert_eq!(r.peek(p), Peek::Skip(2));
        assert_eq!(f.ctl.revoked.load(Ordering::Relaxed), 1, "revoked");
        assert_eq!(r.commit(p, 2, seen, me), Err(()));
        assert_eq!(
            me.announce.load(Ordering::Relaxed),
            0,
            "announcement withdrawn"
        );
        // The next look at the revocations clears it: the writer stopped.
        assert!(!f.held(p + 4, 1, 4));
        assert_eq!(f.ctl.revoked.load(Ordering::Relaxed), 0, "cleared");
        assert_eq!(me.revoked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_unannounced_record_is_aborted_slot_by_slot() {
        let f = Fixture::new();
        let r = f.ring(8);
        let mut head = 0;
        // Claimed three slots, then stopped before announcing them.
        assert_eq!(r.claim(3, &mut head), Claim::Claimed(0));
        assert_eq!(f.abort_and_settle(&r, 0), 1);
        assert_eq!(r.peek(0), Peek::Skip(1));
        // The slots after it hold no word for their position: each is
        // aborted as it is reached.
        assert_eq!(f.abort_and_settle(&r, 1), 1);
        assert_eq!(f.abort_and_settle(&r, 2), 1);
        assert_eq!(f.ctl.revoked.load(Ordering::Relaxed), 0, "nobody revoked");
        // The claimer wakes up: it finds its record aborted, writes nothing.
        assert_eq!(r.begin(0, 3, &f.producers[0], |_, _| false), Begin::Aborted);
        assert_eq!(f.producers[0].announce.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stalled_writer_holds_the_slots_of_its_record_until_it_stops() {
        let f = Fixture::new();
        let r = f.ring(8);
        let (stalled, other) = (&f.producers[0], &f.producers[1]);
        let held = |pos: u64, span: u64| f.held(pos, span, 8);
        // A record of slots 1..4, begun; a consumer aborts it meanwhile.
        r.ctl.tail.store(4, Ordering::Relaxed);
        let Begin::Ours(seen) = r.begin(1, 3, stalled, held) else {
            panic!()
        };
        assert_eq!(f.abort_and_settle(&r, 1), 3);
        // The ring moves on a lap: records overlapping slots 1..4 are held,
        // whichever slot they start in; others are not.
        r.ctl.head.store(9, Ordering::Relaxed);
        assert_eq!(r.begin(10, 1, other, held), Begin::Held, "slot 2");
        assert_eq!(r.peek(10), Peek::Skip(1));
        assert_eq!(r.begin(15, 3, other, held), Begin::Held, "slots 7, 0, 1");
        let Begin::Ours(s12) = r.begin(12, 3, other, held) else {
            panic!("slots 4..7 are free")
        };
        assert_eq!(r.commit(12, 3, s12, other), Ok(()));
        // The stalled writer finishes: its commit fails and it lets go.
        assert_eq!(r.commit(1, 3, seen, stalled), Err(()));
        let Begin::Ours(s18) = r.begin(18, 2, other, held) else {
            panic!("slots 2..4 free again")
        };
        assert_eq!(r.commit(18, 2, s18, other), Ok(()));
        assert_eq!(r.peek(18), Peek::Ready(2));
        assert_eq!(f.ctl.revoked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_producer_aborted_or_lapped_before_it_began_writes_nothing() {
        let f = Fixture::new();
        let r = f.ring(4);
        let me = &f.producers[0];
        let mut head = 0;
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(0));
        let Peek::NotYet(seen) = r.peek(0) else {
            panic!()
        };
        assert!(r.abort(0, seen));
        assert_eq!(r.begin(0, 1, me, |_, _| false), Begin::Aborted);
        assert_eq!(me.announce.load(Ordering::Relaxed), 0);
        // Long stalled: the ring moved on past position 1, and a later
        // lap's record (or its payload) is in its slot.
        r.slots[1].store(0xdead_beef_dead_beef, Ordering::Relaxed);
        r.ctl.head.store(2, Ordering::Relaxed);
        assert_eq!(r.begin(1, 1, me, |_, _| false), Begin::Aborted);
        // Payload bytes in the first slot of a fresh record are not a word
        // of ours: the record is ours to write.
        r.slots[2].store(0xdead_beef_dead_beef, Ordering::Relaxed);
        assert!(matches!(r.begin(2, 1, me, |_, _| false), Begin::Ours(_)));
    }

    #[test]
    fn a_batch_keeps_its_announcement_until_it_ends() {
        let f = Fixture::new();
        let r = f.ring(8);
        let me = &f.producers[0];
        let mut head = 0;
        assert_eq!(r.claim(4, &mut head), Claim::Claimed(0));
        r.announce_from(0, me);
        // Two records of two slots. A consumer gives up on the second
        // before the batch gets to it: it is not being written, so the
        // batch's announcement does not name it and nobody is revoked.
        let Begin::Ours(seen0) = r.begin_announced(0, 2, me, |_, _| false) else {
            panic!()
        };
        assert_eq!(f.abort_and_settle(&r, 2), 1);
        assert_eq!(f.ctl.revoked.load(Ordering::Relaxed), 0);
        assert_eq!(r.commit_announced(0, 2, seen0, me), Ok(()));
        assert_eq!(r.begin_announced(2, 2, me, |_, _| false), Begin::Aborted);
        assert_eq!(
            me.announce.load(Ordering::Relaxed),
            RANGE | 1,
            "still announced"
        );
        r.end_announced(me);
        assert_eq!(me.announce.load(Ordering::Relaxed), 0);
        assert_eq!((r.peek(0), r.peek(2)), (Peek::Ready(2), Peek::Skip(1)));
    }
}
