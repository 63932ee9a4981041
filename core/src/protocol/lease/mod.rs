//! Leases: the per-message delivery state of an ack=manual group, where
//! any number of consumers compete and every message is acked, nacked,
//! expired or dead-lettered.
//!
//! Each record's first ring position `p` has, per group, one
//! [`LeaseRecord`] (at index `p & (L - 1)`, `L` the table's records: the
//! queue's `max_in_flight` rounded up to a power of two) whose `word`
//! packs
//!
//! ```text
//!   bits 0..3    state: FREE, TAKING, LEASED, READY, ACKED, DEAD,
//!                WAITING, FINISHING (the last two: keyed messages only,
//!                see `protocol/lanes.rs`)
//!   bits 3..11   attempt: deliveries so far (saturating at 255)
//!   bits 11..23  holder: the consumer's registry index (TAKING, LEASED)
//!   bits 23..32  epoch: bumped by every change of holder or deadline
//!   bits 32..64  the low 32 bits of p
//! ```
//!
//! A word whose tag is not `p`, or whose state is FREE, says `p` was never
//! handed out.
//!
//! **The gate.** Position `p` is dispatched only while `committed > p -
//! max_in_flight` ([`Leases::may_dispatch`]): the record `p` shares with
//! position `p - L` (or any `p - kL`) then serves a finished position,
//! which `committed` passed, so no lease in flight is ever taken for a new
//! position. The records in flight are those of the first positions in
//! `committed .. next`, one record each. A record's later slots have no
//! lease record: the dispatch cursor and `committed` step over a record
//! by its span (the ring's word says it), so a message of any length takes
//! one record, however many slots it spans.
//!
//! **Old words.** A record may keep a word for a long time (its index is
//! skipped by long records), so its 32-bit tag says nothing reliable about
//! how old it is: the dispatcher that finds a word not for `p` asks the
//! cursor instead. `next` still at `p` means nobody dispatched `p` yet, so
//! the word is an older position's, whatever its tag; a later lap's word is
//! written only after `next` passed `p` (Acquire on both sides).
//!
//! ```text
//!  FREE ──take_new──▶ TAKING ─▶ LEASED ──ack──▶ ACKED ─┐
//!                        ▲        │  └─extend─▶ TAKING ─▶ LEASED
//!                        │        ├─nack/drop─▶ TAKING ─▶ READY ──┐
//!                        │        └─dead-letter▶ TAKING ─▶ DEAD ──┤
//!                        └── take_again (READY due, or LEASED/TAKING   committed
//!                            past its deadline or held by a dead       advances over
//!                            consumer)                                 ACKED and DEAD
//! ```
//!
//! Every transition is a CAS on `word`, so exactly one of an ack, an
//! expiry and a redelivery wins. TAKING is a short-lived exclusive state:
//! whoever CASes a word to TAKING (holder = itself) alone writes the
//! record's other fields (deadline, delivery times), then publishes them
//! with a Release store of the next state. Nobody expires a TAKING word
//! held by a live consumer, so a deadline is never judged half-written.
//!
//! The group's `committed` cursor advances over the contiguous prefix of
//! ACKED and DEAD positions: whoever finishes a position runs the advance
//! after its own CAS, so whichever of two out-of-order acks comes last
//! moves the cursor over both (loom: `loom_out_of_order_acks_commit`).

use crate::layout::{GroupRecord, LeaseRecord};
use crate::loom::{AtomicU64, Ordering, sc_fence};

/// States of a lease word.
pub(crate) mod state {
    /// Never handed out (or an older position's word).
    pub const FREE: u64 = 0;
    /// Being changed by its holder; other fields are the holder's.
    pub const TAKING: u64 = 1;
    /// Delivered to its holder until `deadline_ns`.
    pub const LEASED: u64 = 2;
    /// Waiting to be delivered again, not before `deadline_ns`.
    pub const READY: u64 = 3;
    /// Acked: finished for the group.
    pub const ACKED: u64 = 4;
    /// Moved to the dead-letter queue: finished for the group.
    pub const DEAD: u64 = 5;
    /// A keyed message waiting for the message before it in its lane to
    /// finish (`protocol/lanes.rs`); attempt, holder and epoch are 0.
    pub const WAITING: u64 = 6;
    /// A keyed message acked or dead-lettered whose lane is being handed
    /// on: finished for its holder, not yet for `committed`.
    pub const FINISHING: u64 = 7;
}
pub(crate) use state::{ACKED, DEAD, FINISHING, FREE, LEASED, READY, TAKING, WAITING};

/// The largest registry index a word can name.
const MAX_HOLDER: u32 = (1 << 12) - 1;
const _: () = assert!(crate::layout::MAX_CONSUMERS - 1 <= MAX_HOLDER);

/// A decoded lease word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaseWord(pub u64);

impl LeaseWord {
    #[inline(always)]
    pub(crate) fn new(pos: u64, state: u64, attempt: u32, holder: u32, epoch: u32) -> LeaseWord {
        LeaseWord(
            ((pos & 0xffff_ffff) << 32)
                | ((epoch as u64 & 0x1ff) << 23)
                | ((holder as u64 & 0xfff) << 11)
                | ((attempt.min(255) as u64) << 3)
                | state,
        )
    }
    #[inline(always)]
    pub(crate) fn state(self) -> u64 {
        self.0 & 7
    }
    #[inline(always)]
    pub(crate) fn attempt(self) -> u32 {
        ((self.0 >> 3) & 0xff) as u32
    }
    #[inline(always)]
    pub(crate) fn holder(self) -> u32 {
        ((self.0 >> 11) & 0xfff) as u32
    }
    #[inline(always)]
    pub(crate) fn epoch(self) -> u32 {
        ((self.0 >> 23) & 0x1ff) as u32
    }
    /// Whether the word speaks of position `pos` (and not of nothing).
    #[inline(always)]
    pub(crate) fn is_for(self, pos: u64) -> bool {
        self.state() != FREE && (self.0 >> 32) == (pos & 0xffff_ffff)
    }
    /// The same position, in `state`, held by `holder`, with the epoch
    /// bumped.
    #[inline(always)]
    pub(crate) fn next(self, pos: u64, state: u64, attempt: u32, holder: u32) -> LeaseWord {
        LeaseWord::new(pos, state, attempt, holder, self.epoch().wrapping_add(1))
    }
}

/// What a consumer holds: the position and the exact word of its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldLease {
    pub pos: u64,
    pub word: LeaseWord,
    /// It has an ordering key: finishing it hands its lane on.
    pub keyed: bool,
}

impl HeldLease {
    /// Deliveries so far, this one included.
    pub(crate) fn attempt(&self) -> u32 {
        self.word.attempt()
    }
}

/// Why [`Leases::take_again`] could take a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reclaimed {
    /// It was waiting (nacked, dropped, or requeued after a delay).
    Ready,
    /// Its lease ran out or its holder died.
    Expired,
    /// A keyed message its lane let go: a first delivery.
    Released,
}

/// Clock readings a transition needs (passed in, so loom models control
/// time).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Now {
    /// CLOCK_MONOTONIC ns: deadlines.
    pub mono: u64,
    /// CLOCK_REALTIME ns: delivery times.
    pub real: u64,
}

/// The lease protocol over one group's records.
pub(crate) struct Leases<'a> {
    /// A power of two of them, at least `max_in_flight`.
    pub records: &'a [LeaseRecord],
    pub group: &'a GroupRecord,
    /// The group's ordering lanes (`protocol/lanes.rs`).
    pub lanes: &'a [AtomicU64],
    /// How far dispatch may run ahead of `committed`, in positions.
    pub max_in_flight: u64,
}

impl Leases<'_> {
    #[inline(always)]
    pub(super) fn rec(&self, pos: u64) -> &LeaseRecord {
        &self.records[(pos as usize) & (self.records.len() - 1)]
    }

    /// The word of `pos` (Acquire: pairs with the Release store that made
    /// it, so the record's other fields are those of that state).
    #[inline(always)]
    pub(crate) fn word(&self, pos: u64) -> LeaseWord {
        LeaseWord(self.rec(pos).word.load(Ordering::Acquire))
    }

    /// Whether the gate lets position `pos` be dispatched: `committed >
    /// pos - max_in_flight`, so that `pos`'s record serves a finished
    /// position (module comment). `committed` only grows, so a yes stays
    /// true. Acquire: pairs with `advance_committed`'s CAS, made after its
    /// load of the finished word, so our load of `pos`'s record sees that
    /// word or a later one.
    #[inline(always)]
    pub(crate) fn may_dispatch(&self, pos: u64) -> bool {
        let c = self.group.committed.load(Ordering::Acquire);
        pos < c.saturating_add(self.max_in_flight)
    }

    /// Whether the word `w` found at `pos`'s record (not for `pos`) is an
    /// older position's, free to take: only while the dispatch cursor is
    /// still at `pos`. Acquire: a later lap's word (of `pos + kL`) was
    /// written by a dispatcher that had read `next` past `pos`; having
    /// loaded that word with Acquire, we read `next` past `pos` too.
    #[inline(always)]
    pub(super) fn still_at(&self, pos: u64) -> bool {
        self.group.next.load(Ordering::Acquire) == pos
    }

    /// Whether `w`, a word whose tag says `pos`, is in fact an older
    /// position's, `2^32` positions (or a multiple) before: a record index
    /// skipped by long messages keeps its word that long. At the dispatch
    /// cursor, a committed message's own word is TAKING (its taker has not
    /// passed the cursor yet) or later: finished only after its lease,
    /// which comes after the cursor passed it. So a finished word while
    /// the cursor is still at `pos` is an old one. (An aborted record's is
    /// ACKED at the cursor, by `skip`, which does not ask.)
    #[inline(always)]
    pub(super) fn stale_alias(&self, pos: u64, w: LeaseWord) -> bool {
        matches!(w.state(), ACKED | DEAD) && self.still_at(pos)
    }

    /// Moves the group's dispatch cursor past the record `pos .. pos +
    /// span` if it is still at `pos` (anyone may help: the CAS only ever
    /// moves it by one record). The record's later slots get no lease
    /// word: `committed` steps over the record by its span.
    #[inline(always)]
    pub(super) fn pass(&self, pos: u64, span: u64) {
        // AcqRel: Release publishes our word for `pos` to whoever reads
        // the cursor past it.
        let _ = self.group.next.compare_exchange(
            pos,
            pos + span.max(1),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// Finishes TAKING `pos`: writes the lease's deadline and times, then
    /// publishes `to` (Release: those writes are visible to whoever loads
    /// the word with Acquire).
    #[inline]
    pub(super) fn settle(
        &self,
        pos: u64,
        to: LeaseWord,
        deadline: u64,
        first: Option<u64>,
        last: Option<u64>,
    ) {
        let rec = self.rec(pos);
        rec.deadline_ns.store(deadline, Ordering::Relaxed);
        if let Some(f) = first {
            rec.first_ns.store(f, Ordering::Relaxed);
        }
        if let Some(l) = last {
            rec.last_ns.store(l, Ordering::Relaxed);
        }
        rec.word.store(to.0, Ordering::Release);
    }

    /// Takes position `pos`, which the caller found committed in the ring
    /// at the group's dispatch cursor, for its first delivery to consumer
    /// `me`. `None` if another consumer took it first (the cursor has
    /// moved on; look again).
    pub(crate) fn take_new(
        &self,
        pos: u64,
        span: u64,
        me: u32,
        now: Now,
        lease_ns: u64,
    ) -> Option<HeldLease> {
        let rec = self.rec(pos);
        let w = LeaseWord(rec.word.load(Ordering::Acquire));
        if w.is_for(pos) && !self.stale_alias(pos, w) {
            // Taken already: move on.
            self.pass(pos, span);
            return None;
        }
        if !self.still_at(pos) {
            // We stalled: `pos` went to someone else, and `w` may be a
            // later lap's word.
            return None;
        }
        let taking = LeaseWord::new(pos, TAKING, 1, me, 0);
        // AcqRel: Acquire orders our later field writes after the older
        // word; Release is irrelevant (TAKING publishes nothing).
        rec.word
            .compare_exchange(w.0, taking.0, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        crate::loom::fault_point("lease.taking");
        self.pass(pos, span);
        crate::loom::fault_point("lease.passed");
        let leased = taking.next(pos, LEASED, 1, me);
        self.settle(
            pos,
            leased,
            now.mono.saturating_add(lease_ns),
            Some(now.real),
            Some(now.real),
        );
        Some(HeldLease {
            pos,
            word: leased,
            keyed: false,
        })
    }

    /// Marks the record `pos .. pos + span` (aborted in the ring: there is
    /// no message) finished for the group, as the dispatcher passes it.
    pub(crate) fn skip(&self, pos: u64, span: u64) {
        let rec = self.rec(pos);
        let mut w = LeaseWord(rec.word.load(Ordering::Acquire));
        // Until the word is for `pos` or the cursor moved on (a CAS lost
        // to another skipper, or to a dead indexer's word being freed):
        // passed without its ACKED, `pos` would hold `committed` for good.
        while !w.is_for(pos) && self.still_at(pos) {
            // SeqCst: a finisher, as in `ack`.
            match rec.word.compare_exchange(
                w.0,
                LeaseWord::new(pos, ACKED, 0, 0, 0).0,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => w = LeaseWord(now),
            }
        }
        self.pass(pos, span);
    }

    /// Takes `pos` (below the dispatch cursor) again for consumer `me` if
    /// it is due: READY and past its not-before time, or LEASED past its
    /// deadline, or LEASED/TAKING by a consumer `alive` says is dead.
    pub(crate) fn take_again(
        &self,
        pos: u64,
        me: u32,
        now: Now,
        lease_ns: u64,
        alive: &mut impl FnMut(u32) -> bool,
    ) -> Option<(HeldLease, Reclaimed)> {
        let rec = self.rec(pos);
        let w = LeaseWord(rec.word.load(Ordering::Acquire));
        if !w.is_for(pos) {
            return None;
        }
        let why = match w.state() {
            READY if w.attempt() == 0 => Reclaimed::Released,
            READY if rec.deadline_ns.load(Ordering::Relaxed) <= now.mono => Reclaimed::Ready,
            LEASED if rec.deadline_ns.load(Ordering::Relaxed) <= now.mono || !alive(w.holder()) => {
                Reclaimed::Expired
            }
            // TAKING with attempt 0 is a keyed message being indexed: the
            // dispatcher's takeover handles a dead indexer (lanes.rs).
            TAKING if w.attempt() > 0 && w.holder() != me && !alive(w.holder()) => {
                Reclaimed::Expired
            }
            FINISHING if !alive(w.holder()) => {
                // Its holder died handing its lane on: finish for it.
                self.help_finish(pos, w);
                return None;
            }
            _ => return None,
        };
        let attempt = w.attempt().saturating_add(1);
        let taking = w.next(pos, TAKING, attempt, me);
        // The CAS decides between us, an ack, an extension, and other
        // reclaimers: only the exact word we judged may be replaced.
        rec.word
            .compare_exchange(w.0, taking.0, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let leased = taking.next(pos, LEASED, attempt, me);
        let first = (attempt == 1).then_some(now.real);
        self.settle(
            pos,
            leased,
            now.mono.saturating_add(lease_ns),
            first,
            Some(now.real),
        );
        let keyed = self.is_keyed(pos);
        Some((
            HeldLease {
                pos,
                word: leased,
                keyed,
            },
            why,
        ))
    }

    /// Takes our own lease into TAKING (to change it), or reports it lost.
    fn own(&self, held: &HeldLease) -> Result<LeaseWord, ()> {
        // AcqRel: TAKING publishes nothing; Acquire orders our writes to
        // the record after the word we held.
        self.move_held(held, TAKING, Ordering::AcqRel)
    }

    /// Moves our exact lease word to `state` (same position, attempt and
    /// holder, epoch bumped) with one CAS, or reports it lost.
    pub(super) fn move_held(
        &self,
        held: &HeldLease,
        state: u64,
        order: Ordering,
    ) -> Result<LeaseWord, ()> {
        let to = held
            .word
            .next(held.pos, state, held.word.attempt(), held.word.holder());
        self.rec(held.pos)
            .word
            .compare_exchange(held.word.0, to.0, order, Ordering::Relaxed)
            .map(|_| to)
            .map_err(drop)
    }

    /// Whether we still hold `held`, checked after reading its message:
    /// the word unchanged means nobody took it away meanwhile (every
    /// transition moves the word to a new epoch), so the group held the
    /// slot and what we read was this position's message. A consumer
    /// stopped past its lease between taking it and reading it finds it
    /// lost: the slot may since hold a later lap's message.
    pub(crate) fn still_held(&self, held: &HeldLease) -> bool {
        // Acquire fence: our reads of the slot (plain loads, made before)
        // are ordered before the load of the word below, as in a seqlock's
        // read side; it pairs with the Release (SeqCst) CAS that takes the
        // lease away, which happens before the group's cursor passes the
        // slot and a producer rewrites it.
        crate::loom::fence(Ordering::Acquire);
        self.rec(held.pos).word.load(Ordering::Relaxed) == held.word.0
    }

    /// Acks our lease. `Err` if it was taken away (expired, reclaimed).
    pub(crate) fn ack(&self, held: &HeldLease) -> Result<(), ()> {
        if held.keyed {
            return self.ack_keyed(held);
        }
        // SeqCst: the finisher half of the commit-advance pair (see
        // `advance_committed`); its Release half orders our reads of the
        // payload before the ack, so a producer reusing the slot (after
        // `committed` passes it, itself ordered after this) never
        // overwrites what we read.
        self.rec(held.pos)
            .word
            .compare_exchange(
                held.word.0,
                LeaseWord::new(held.pos, ACKED, held.word.attempt(), 0, 0).0,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .map(drop)
            .map_err(drop)
    }

    /// Gives our lease back to be delivered again, not before
    /// `not_before` (CLOCK_MONOTONIC ns).
    pub(crate) fn requeue(&self, held: &HeldLease, not_before: u64) -> Result<(), ()> {
        let taking = self.own(held)?;
        let ready = taking.next(held.pos, READY, held.word.attempt(), 0);
        self.settle(held.pos, ready, not_before, None, None);
        Ok(())
    }

    /// Extends our lease to `deadline` (CLOCK_MONOTONIC ns); returns the
    /// new word we hold.
    pub(crate) fn extend(&self, held: &HeldLease, deadline: u64) -> Result<HeldLease, ()> {
        let taking = self.own(held)?;
        let leased = taking.next(held.pos, LEASED, held.word.attempt(), held.word.holder());
        self.settle(held.pos, leased, deadline, None, None);
        Ok(HeldLease {
            pos: held.pos,
            word: leased,
            keyed: held.keyed,
        })
    }

    /// Takes our lease into TAKING to move it to the dead-letter queue;
    /// then [`finish_dead`](Self::finish_dead) or, if the DLQ refused it,
    /// [`restore`](Self::restore).
    pub(crate) fn begin_dead(&self, held: &HeldLease) -> Result<HeldLease, ()> {
        self.own(held).map(|word| HeldLease {
            pos: held.pos,
            word,
            keyed: held.keyed,
        })
    }

    /// The message is in the dead-letter queue: finished for the group.
    pub(crate) fn finish_dead(&self, taking: &HeldLease) {
        if taking.keyed {
            let fin = taking.word.next(
                taking.pos,
                FINISHING,
                taking.word.attempt(),
                taking.word.holder(),
            );
            // SeqCst: the decision is made before the lane moves on.
            self.rec(taking.pos).word.store(fin.0, Ordering::SeqCst);
            self.hand_on(taking.pos);
        }
        // SeqCst: a finisher, as in `ack`.
        self.rec(taking.pos).word.store(
            LeaseWord::new(taking.pos, DEAD, taking.word.attempt(), 0, 0).0,
            Ordering::SeqCst,
        );
    }

    /// Undoes [`begin_dead`](Self::begin_dead): we hold the lease again.
    pub(crate) fn restore(&self, taking: &HeldLease) -> HeldLease {
        let leased = taking.word.next(
            taking.pos,
            LEASED,
            taking.word.attempt(),
            taking.word.holder(),
        );
        self.rec(taking.pos).word.store(leased.0, Ordering::Release);
        HeldLease {
            pos: taking.pos,
            word: leased,
            keyed: taking.keyed,
        }
    }

    /// CLOCK_REALTIME ns of the first and latest delivery of a position we
    /// hold.
    pub(crate) fn times(&self, pos: u64) -> (u64, u64) {
        let rec = self.rec(pos);
        (
            rec.first_ns.load(Ordering::Relaxed),
            rec.last_ns.load(Ordering::Relaxed),
        )
    }

    /// Advances the group's `committed` cursor over finished (ACKED or
    /// DEAD) records, each by its span: `span_at(c)` reads it from the
    /// ring's word at `c` (stable while `committed` is at `c`: the ring
    /// keeps a record until every group's `committed` passed it; a stale
    /// `c` reads anything, and its CAS fails). Returns whether it moved.
    ///
    /// Called by every finisher after its own finishing write. Two
    /// finishers of neighbouring positions form a Dekker pair: each writes
    /// its word, then reads the other's. With SeqCst on both sides at
    /// least one of them sees both finished and moves the cursor over both
    /// (loom: `loom_out_of_order_acks_commit`, which failed with AcqRel).
    pub(crate) fn advance_committed(&self, span_at: impl Fn(u64) -> u64) -> bool {
        let mut moved = false;
        loop {
            sc_fence();
            let c = self.group.committed.load(Ordering::SeqCst);
            let n = self.group.next.load(Ordering::SeqCst);
            if c >= n {
                return moved;
            }
            let w = LeaseWord(self.rec(c).word.load(Ordering::SeqCst));
            if !(w.is_for(c) && matches!(w.state(), ACKED | DEAD)) {
                return moved;
            }
            // Never past the dispatch cursor: a garbled span must not let
            // the ring reuse slots the group has not finished.
            let to = c.saturating_add(span_at(c).max(1)).min(n);
            // SeqCst: the waker half of the space Signal (producers sleep
            // until `committed` moves) and Release for the reads of the
            // slot below it (the ack's Acquire-Release chain).
            if self
                .group
                .committed
                .compare_exchange(c, to, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                moved = true;
            }
        }
    }

    /// Forgets every lease (a seek or a change of mode, under the admin
    /// lock with no consumer attached).
    pub(crate) fn reset(&self) {
        for r in self.records {
            r.word.store(0, Ordering::Relaxed);
            r.link.store(0, Ordering::Relaxed);
            r.prev.store(0, Ordering::Relaxed);
        }
        for l in self.lanes {
            l.store(0, Ordering::Relaxed);
        }
    }

    /// The group's in-flight window `committed .. next`, read from shared
    /// memory and so bounded: every record in flight starts below
    /// `committed + max_in_flight` (the gate), so the walks look no
    /// further than one lap of the table, and a garbled cursor costs at
    /// most that, never an endless walk. The walks look at every position
    /// in it: a record's later slots find a word not for them.
    pub(crate) fn window(&self) -> (u64, u64) {
        let c = self.group.committed.load(Ordering::Acquire);
        let n = self.group.next.load(Ordering::Acquire);
        (c, n.clamp(c, c.saturating_add(self.records.len() as u64)))
    }

    /// Positions in `committed .. next` that are leased right now.
    pub(crate) fn in_flight(&self) -> u64 {
        let (c, n) = self.window();
        (c..n)
            .filter(|&p| {
                let w = self.word(p);
                w.is_for(p) && matches!(w.state(), LEASED | TAKING)
            })
            .count() as u64
    }

    /// Hands every lease held by registry index `holder` back (its
    /// previous owner is dead and the index is being reused).
    pub(crate) fn release_holder(&self, holder: u32, now: Now) {
        let (c, n) = self.window();
        // Up to and with the dispatch cursor: a holder killed between
        // taking the word and passing the cursor (fault point
        // `lease.taking`) left its TAKING word at `next` itself. Missed
        // there, it was stuck for good once the record was ours, since a
        // TAKING word has no deadline and its holder looks alive (found by
        // the chaos run: the group stopped with one message in flight).
        for pos in c..=n {
            let rec = self.rec(pos);
            let w = LeaseWord(rec.word.load(Ordering::Acquire));
            if !w.is_for(pos) || w.holder() != holder {
                continue;
            }
            if w.state() == FINISHING {
                self.help_finish(pos, w);
                continue;
            }
            if w.state() == TAKING && w.attempt() == 0 {
                // Dead while indexing: the next dispatcher indexes it
                // again (idempotent, lanes.rs). FREE with a new epoch,
                // not 0: a dispatcher stalled since it loaded a 0 here
                // must not find its word again and take `pos` twice.
                let free = LeaseWord::new(pos, FREE, 0, 0, w.epoch().wrapping_add(1));
                let _ = rec
                    .word
                    .compare_exchange(w.0, free.0, Ordering::AcqRel, Ordering::Relaxed);
                continue;
            }
            if matches!(w.state(), LEASED | TAKING) {
                let taking = w.next(pos, TAKING, w.attempt(), holder);
                if rec
                    .word
                    .compare_exchange(w.0, taking.0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    let ready = taking.next(pos, READY, w.attempt(), 0);
                    self.settle(pos, ready, now.mono, None, None);
                    self.group.expired.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
