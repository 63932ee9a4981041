//! The multi-producer ring: claim, begin, commit, abort, peek.
//!
//! Positions (= seqs) are handed out by a CAS on `tail`. Position `p` lives
//! in slot `p & (slots - 1)`, whose state word (see [`SlotHeader`]) is
//! `p << 2 | state` for the last position that used it:
//!
//! ```text
//!   (older position's word) --commit (producer)--> COMMITTED(p)
//!            |
//!            +--abort (consumer, after unblock_timeout or when the
//!                      claimer is dead; or the producer itself)--> ABORTED(p)
//! ```
//!
//! Exactly one of commit and abort wins, because both are a CAS from the
//! same older word. A producer may only claim `p < head + slots`, and
//! `head` never passes a position a group still needs, so a slot is never
//! rewritten while a consumer borrows it.
//!
//! **Announcements instead of a mark.** Consumers spin on the state word of
//! the position they wait for, so every write a producer makes to that
//! word moves its cache line between cores. A producer therefore writes it
//! once, to commit; before writing the slot it *announces* the position in
//! its own producer record (a line nobody else writes), then loads the
//! state word ([`Ring::begin`]). A producer that a consumer aborted while
//! it was still writing keeps its announcement until it stops writing, and
//! a producer of a later lap that finds the slot's word ABORTED looks for
//! such an announcement of a live process before it writes the slot
//! ([`holds_slot`]). The announcement store and the state load, and the
//! consumer's abort CAS and the later producer's announcement scan, are
//! SeqCst: in the single total order either the stalled producer's load
//! sees the abort (it writes nothing), or the later producer's scan sees
//! the announcement (it skips the slot). loom model:
//! `loom_stalled_writer_holds_its_slot`.
//!
//! [`SlotHeader`]: crate::layout::SlotHeader

use crate::layout::slot_state::{ABORTED, COMMITTED, EMPTY};
use crate::layout::{DOORBELLS, Doorbells, RingControl};
use crate::loom::{AtomicU64, Ordering, futex, sc_fence};
use crate::protocol::doorbell::ring_armed;

/// Packs a state word: `pos << 2 | state`.
#[inline(always)]
pub(crate) fn encode(pos: u64, state: u64) -> u64 {
    (pos << 2) | state
}

#[inline(always)]
fn state_of(word: u64) -> u64 {
    word & 3
}

#[inline(always)]
fn pos_of(word: u64) -> u64 {
    word >> 2
}

/// Whether `word` describes position `pos` (rather than an older lap).
#[inline(always)]
fn is_for(word: u64, pos: u64) -> bool {
    state_of(word) != EMPTY && pos_of(word) == pos
}

/// Whether `word` is an older lap's than `pos` (or the slot was never
/// used): `pos` has been neither committed nor aborted.
#[inline(always)]
fn older_lap(word: u64, pos: u64) -> bool {
    state_of(word) == EMPTY || pos_of(word) < pos
}

/// Flag of an announcement word for a batch: the producer announces the
/// batch's first position once and may be writing the slot of any
/// position from there to one ring later (a batch is never longer than
/// the ring). Positions are below 2^62 (the state word holds `pos << 2`),
/// so the bit is free.
pub(crate) const RANGE: u64 = 1 << 63;

/// Whether a producer's announcement word (`position + 1`, with [`RANGE`]
/// for a batch from that position; 0 for none) says it may still be
/// writing the slot of `pos` for an older position. `mask` is the ring's
/// `slots - 1`. A batch holds every slot for the positions a lap or more
/// past its start (conservatively: its length is not announced), which
/// costs only a later lap that finds the slot aborted — the one case the
/// scan is made.
#[inline]
pub(crate) fn holds_slot(announced: u64, pos: u64, mask: u64) -> bool {
    if announced == 0 {
        return false;
    }
    // Wrapping: a garbled word (RANGE alone) must not overflow.
    let old = (announced & !RANGE).wrapping_sub(1);
    if announced & RANGE != 0 {
        return pos > old && pos - old > mask;
    }
    old < pos && (old & mask) == (pos & mask)
}

/// Whether a producer's announcement word says it claimed `pos` and may
/// be writing it (a batch: `pos` within a ring of its first position).
#[inline]
pub(crate) fn announces(announced: u64, pos: u64, mask: u64) -> bool {
    if announced == 0 {
        return false;
    }
    let start = (announced & !RANGE).wrapping_sub(1);
    if announced & RANGE != 0 {
        pos >= start && pos - start <= mask
    } else {
        start == pos
    }
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
    /// The slot is ours to write; commit with this older word.
    Ours(u64),
    /// A consumer aborted this position before we began (we were stalled
    /// after claiming it): nothing was written. Claim another.
    Aborted,
    /// A live, stalled producer of an older lap may still be writing the
    /// slot; we aborted this position instead. Claim another.
    Held,
}

/// What a consumer finds at a position.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Peek {
    /// Committed: read it.
    Ready,
    /// Aborted: skip it.
    Skip,
    /// Not committed or aborted yet (not claimed, or claimed and being
    /// written). The raw word is kept for [`Ring::abort`].
    NotYet(u64),
}

/// The ring protocol over a [`RingControl`] and its slots.
pub(crate) struct Ring<'a, S> {
    pub ctl: &'a RingControl,
    pub slots: S,
    pub capacity: u64,
    /// The async waiters' doorbells, rung by `notify_data`/`notify_space`.
    pub bells: &'a Doorbells,
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

    /// Starts writing claimed position `pos`: announces it in our
    /// `announce` word, then looks at the slot. `held()` scans the other
    /// producers' announcements (SeqCst loads, through [`holds_slot`]) and
    /// is asked only when the slot's last position was aborted.
    #[inline]
    pub(crate) fn begin(&self, pos: u64, announce: &AtomicU64, held: impl Fn() -> bool) -> Begin {
        // SeqCst store, then SeqCst load (in `look`): the producer half of
        // the stalled-writer Dekker pair (see the module doc).
        announce.store(pos + 1, Ordering::SeqCst);
        let b = self.look(pos, held);
        if !matches!(b, Begin::Ours(_)) {
            // We wrote nothing and write nothing: stop announcing.
            announce.store(0, Ordering::Release);
        }
        b
    }

    /// Announces the positions from `start` on, for a batch of at most a
    /// ring's worth: each is then begun with
    /// [`begin_announced`](Self::begin_announced) and committed with
    /// [`commit_announced`](Self::commit_announced), and the announcement
    /// is withdrawn with [`end_announced`](Self::end_announced) once the
    /// batch writes nothing more. One SeqCst store for the batch instead of
    /// one per message.
    #[inline]
    pub(crate) fn announce_from(&self, start: u64, announce: &AtomicU64) {
        // SeqCst: as in `begin`; it precedes every position's SeqCst load
        // in `look` in program order, so the Dekker pair holds for each.
        announce.store((start + 1) | RANGE, Ordering::SeqCst);
    }

    /// [`begin`](Self::begin) for a position announced by
    /// [`announce_from`](Self::announce_from): the announcement stays,
    /// whatever the outcome, until [`end_announced`](Self::end_announced).
    #[inline]
    pub(crate) fn begin_announced(&self, pos: u64, held: impl Fn() -> bool) -> Begin {
        self.look(pos, held)
    }

    /// Looks at the slot of announced position `pos`: ours (with its older
    /// word), aborted by a consumer, or held by a stalled older writer
    /// (then aborted by us).
    #[inline(always)]
    fn look(&self, pos: u64, held: impl Fn() -> bool) -> Begin {
        let state = self.slots.state(pos);
        sc_fence();
        let mut word = state.load(Ordering::SeqCst);
        loop {
            if state_of(word) != EMPTY && pos_of(word) >= pos {
                // Our position (or a later lap's) is there: a consumer
                // aborted ours while we were stalled. We wrote nothing.
                return Begin::Aborted;
            }
            if state_of(word) != ABORTED || !held() {
                return Begin::Ours(word);
            }
            // AcqRel: Acquire to see a concurrent aborter's word whole;
            // Release so the next lap's Acquire load sees ours.
            match state.compare_exchange(
                word,
                encode(pos, ABORTED),
                Ordering::AcqRel,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Begin::Held,
                Err(now) => word = now,
            }
        }
    }

    /// Publishes position `pos`, begun with older word `seen`: the only
    /// store to the state word on the publish path. Fails if a consumer
    /// aborted it first. Either way our announcement is withdrawn after
    /// the slot writes.
    #[inline]
    pub(crate) fn commit(&self, pos: u64, seen: u64, announce: &AtomicU64) -> Result<(), ()> {
        let r = self.commit_announced(pos, seen);
        self.end_announced(announce);
        r
    }

    /// [`commit`](Self::commit) of a position of a batch
    /// ([`announce_from`](Self::announce_from)): the announcement stays.
    #[inline]
    pub(crate) fn commit_announced(&self, pos: u64, seen: u64) -> Result<(), ()> {
        // SeqCst: Release makes the payload and header visible to the
        // consumer's Acquire load of COMMITTED; SeqCst (with the load of
        // `data.waiters` in `notify_data`) is the waker half of the Signal
        // protocol.
        self.slots
            .state(pos)
            .compare_exchange(
                seen,
                encode(pos, COMMITTED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .map(drop)
            .map_err(drop)
    }

    /// Withdraws our announcement: we write no slot any more.
    #[inline]
    pub(crate) fn end_announced(&self, announce: &AtomicU64) {
        // Release: our slot writes happen before the (Acquire) scan of a
        // later lap's producer that sees the announcement gone.
        announce.store(0, Ordering::Release);
    }

    /// Gives up our begun position `pos` (a dropped reservation). Returns
    /// false if a consumer had aborted it already.
    pub(crate) fn abort_own(&self, pos: u64, seen: u64, announce: &AtomicU64) -> bool {
        let ok = self
            .slots
            .state(pos)
            .compare_exchange(
                seen,
                encode(pos, ABORTED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok();
        announce.store(0, Ordering::Release);
        ok
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
            _ => Peek::Skip,
        }
    }

    /// Aborts claimed position `pos`, whose word was last seen as `seen`
    /// (from [`Peek::NotYet`]; the caller checked `tail > pos`). Returns
    /// true if the position is now aborted (by us or anyone).
    pub(crate) fn abort(&self, pos: u64, seen: u64) -> bool {
        // SeqCst: the aborter half of the stalled-writer Dekker pair (a
        // later lap's producer that sees this word then scans the
        // announcements); Acquire on failure so a loser sees the winner.
        match self.slots.state(pos).compare_exchange(
            seen,
            encode(pos, ABORTED),
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => is_for(now, pos) && state_of(now) == ABORTED,
        }
    }

    /// Aborts position `pos` for a claimer known to be dead, if the
    /// position is claimed (`pos < tail`, the ring's tail less any spill
    /// flag) and still unwritten (its slot's word is an older lap's).
    /// Returns true if this call aborted it.
    pub(crate) fn abort_unwritten(&self, pos: u64, tail: u64) -> bool {
        // Acquire: as in `peek`; a committed or aborted word is left alone.
        let word = self.slots.state(pos).load(Ordering::Acquire);
        if pos >= tail || !older_lap(word, pos) {
            return false;
        }
        // SeqCst: as in `abort`.
        self.slots
            .state(pos)
            .compare_exchange(
                word,
                encode(pos, ABORTED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Whether claimed position `pos` (`pos < tail`) is still unwritten:
    /// neither committed nor aborted.
    pub(crate) fn unwritten(&self, pos: u64, tail: u64) -> bool {
        pos < tail && older_lap(self.slots.state(pos).load(Ordering::Acquire), pos)
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

/// The waker half of the Signal protocol (see [`crate::layout::Signal`])
/// and of the doorbell protocol (`protocol/doorbell.rs`) for the async
/// waiters armed on the same condition (`armed`, `bells`).
#[inline(always)]
pub(crate) fn notify(
    signal: &crate::layout::Signal,
    armed: &AtomicU64,
    bells: &[AtomicU64; DOORBELLS],
) -> bool {
    sc_fence();
    let mut leak = false;
    // SeqCst: ordered after the caller's SeqCst change in the total order,
    // pairs with the sleeper's SeqCst `fetch_or` of its bit in `waiters`.
    if signal.waiters.load(Ordering::SeqCst) != 0 {
        signal.word.fetch_add(1, Ordering::SeqCst);
        if futex::wake_all(&signal.word) == 0 {
            leak = wasted_wake();
        }
    }
    let table = bells.as_ptr() as usize;
    ring_armed(bells, armed, |id| crate::loom::doorbell::ring(table, id));
    leak
}

/// Counts a wake that woke nobody (a sleeper between its registration and
/// its futex wait, or one killed in its sleep, whose bit stays set);
/// `true` every 256th in this process: time to look for dead sleepers.
#[cold]
fn wasted_wake() -> bool {
    #[cfg(not(loom))]
    {
        static WASTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        WASTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 256 == 255
    }
    #[cfg(loom)]
    false
}

/// Clears the `waiters` bits of sleepers whose process is dead (`alive`
/// asked with each registered key) and frees their slots: a sleeper
/// SIGKILLed in its futex wait left its bit set, and every later notify
/// made a wake system call for nobody. The bit is cleared before the slot
/// is freed, so a new sleeper of that slot never loses its bit. Returns
/// how many were cleared.
pub(crate) fn repair_sleepers(
    signal: &crate::layout::Signal,
    sleepers: &[AtomicU64; crate::layout::SLEEPERS],
    alive: impl Fn(u64) -> bool,
) -> u32 {
    let mut n = 0;
    for (i, s) in sleepers.iter().enumerate() {
        let key = s.load(Ordering::Acquire);
        if key == 0 || alive(key) {
            continue;
        }
        signal.waiters.fetch_and(!(1u32 << i), Ordering::SeqCst);
        if s.compare_exchange(key, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// The sleeper half of the Signal protocol: registers as a waiter, reads
/// the word, re-checks `ready` (which must use a SeqCst load) and sleeps
/// for at most `slice` if it is still false. Returns `ready`'s last value.
///
/// The sleeper registers in a slot of `sleepers` (its process's liveness
/// `key`) and sets that slot's bit of `waiters`, so that a sleeper killed
/// in its sleep can be told from a live one (`repair_sleepers`). With
/// every slot taken it sleeps unregistered, at most a millisecond at a
/// time (no waker knows of it).
pub(crate) fn sleep_unless<T>(
    signal: &crate::layout::Signal,
    sleepers: &[AtomicU64; crate::layout::SLEEPERS],
    key: u64,
    slice: std::time::Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let slot = sleepers.iter().position(|s| {
        s.compare_exchange(0, key, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(i) = slot {
        // SeqCst: pairs with the waker's SeqCst load of `waiters`.
        signal.waiters.fetch_or(1 << i, Ordering::SeqCst);
    }
    let word = signal.word.load(Ordering::SeqCst);
    sc_fence();
    let result = ready();
    if result.is_none() {
        let slice = match slot {
            Some(_) => slice,
            None => slice.min(std::time::Duration::from_millis(1)),
        };
        futex::wait(&signal.word, word, slice);
    }
    if let Some(i) = slot {
        signal.waiters.fetch_and(!(1 << i), Ordering::SeqCst);
        sleepers[i].store(0, Ordering::Release);
    }
    result
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A ring's control words and doorbells on the heap.
    struct Fixture {
        ctl: Box<RingControl>,
        bells: Doorbells,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                ctl: Box::new(RingControl::new()),
                bells: Doorbells::new(),
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
    fn commit_and_abort_exclude_each_other() {
        let f = Fixture::new();
        let r = f.ring(4);
        let me = AtomicU64::new(0);
        let mut head = 0;
        let Claim::Claimed(p) = r.claim(1, &mut head) else {
            panic!()
        };
        let Begin::Ours(seen) = r.begin(p, &me, || false) else {
            panic!()
        };
        assert_eq!(me.load(Ordering::Relaxed), p + 1, "announced");
        let Peek::NotYet(word) = r.peek(p) else {
            panic!()
        };
        assert!(r.abort(p, word));
        assert_eq!(r.peek(p), Peek::Skip);
        assert_eq!(r.commit(p, seen, &me), Err(()));
        assert_eq!(me.load(Ordering::Relaxed), 0, "announcement withdrawn");
        // A second abort of the same position agrees it is aborted.
        assert!(r.abort(p, word));
    }

    #[test]
    fn a_stalled_writer_holds_its_slot_until_it_stops() {
        let f = Fixture::new();
        let r = f.ring(2);
        let (stalled, other) = (AtomicU64::new(0), AtomicU64::new(0));
        let held = |pos: u64| holds_slot(stalled.load(Ordering::SeqCst), pos, 1);
        let Begin::Ours(seen0) = r.begin(0, &stalled, || false) else {
            panic!()
        };
        // A consumer gives up on position 0 while its producer writes.
        assert!(r.abort(0, seen0));
        // Position 2 maps to slot 0: held while the stalled one announces.
        assert_eq!(r.begin(2, &other, || held(2)), Begin::Held);
        assert_eq!(r.peek(2), Peek::Skip);
        // Position 4, another lap: still held (the hold carries forward).
        assert_eq!(r.begin(4, &other, || held(4)), Begin::Held);
        // The stalled producer finishes: its commit fails and it lets go.
        assert_eq!(r.commit(0, seen0, &stalled), Err(()));
        let Begin::Ours(seen6) = r.begin(6, &other, || held(6)) else {
            panic!("slot free again")
        };
        assert_eq!(r.commit(6, seen6, &other), Ok(()));
        assert_eq!(r.peek(6), Peek::Ready);
    }

    #[test]
    fn a_producer_aborted_before_it_began_writes_nothing() {
        let f = Fixture::new();
        let r = f.ring(4);
        let me = AtomicU64::new(0);
        let mut head = 0;
        assert_eq!(r.claim(1, &mut head), Claim::Claimed(0));
        let Peek::NotYet(seen) = r.peek(0) else {
            panic!()
        };
        assert!(r.abort(0, seen));
        assert_eq!(r.begin(0, &me, || false), Begin::Aborted);
        assert_eq!(me.load(Ordering::Relaxed), 0);
        // Long stalled: a later lap already committed there.
        r.slots[1].store(encode(9, COMMITTED), Ordering::Relaxed);
        assert_eq!(r.begin(1, &me, || false), Begin::Aborted);
    }

    #[test]
    fn announcements_hold_only_older_positions_of_the_same_slot() {
        assert!(holds_slot(1, 4, 3)); // position 0, slot 0, before 4
        assert!(!holds_slot(0, 4, 3)); // nothing announced
        assert!(!holds_slot(5, 4, 3)); // position 4 itself
        assert!(!holds_slot(2, 4, 3)); // position 1: another slot
        assert!(!holds_slot(9, 4, 3)); // position 8: a later lap
    }

    #[test]
    fn a_batch_announcement_covers_its_positions_and_holds_the_next_lap() {
        // A batch from position 5 in a ring of 4 (mask 3).
        let a = RANGE | 6;
        for pos in 5..9 {
            assert!(announces(a, pos, 3), "{pos} may be in the batch");
            assert!(!holds_slot(a, pos, 3), "{pos}: the batch's own lap");
        }
        assert!(!announces(a, 4, 3) && !announces(a, 9, 3));
        // From one lap on, every slot is held (the length is not known).
        for pos in 9..14 {
            assert!(holds_slot(a, pos, 3), "{pos} is a later lap");
        }
        assert!(!holds_slot(a, 4, 3), "an earlier position");
        // A single announcement names exactly one position.
        assert!(announces(6, 5, 3) && !announces(6, 6, 3) && !announces(0, 0, 3));
        // A garbled word (the flag alone) does not overflow.
        assert!(!holds_slot(RANGE, 5, 3) && !announces(RANGE, 5, 3));
    }

    #[test]
    fn a_batch_keeps_its_announcement_until_it_ends() {
        let f = Fixture::new();
        let r = f.ring(4);
        let me = AtomicU64::new(0);
        let mut head = 0;
        assert_eq!(r.claim(2, &mut head), Claim::Claimed(0));
        r.announce_from(0, &me);
        // A consumer gives up on position 1 before we get to it.
        let Peek::NotYet(seen1) = r.peek(1) else {
            panic!()
        };
        assert!(r.abort(1, seen1));
        let Begin::Ours(seen0) = r.begin_announced(0, || false) else {
            panic!()
        };
        assert_eq!(r.commit_announced(0, seen0), Ok(()));
        assert_eq!(r.begin_announced(1, || false), Begin::Aborted);
        assert_eq!(me.load(Ordering::Relaxed), RANGE | 1, "still announced");
        r.end_announced(&me);
        assert_eq!(me.load(Ordering::Relaxed), 0);
        assert_eq!((r.peek(0), r.peek(1)), (Peek::Ready, Peek::Skip));
    }
}
