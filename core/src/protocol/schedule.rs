//! The schedule's protocols: its index, a binary min-heap of entries by
//! due time (kept in a mapped file by `store/schedule.rs`, changed only
//! under the schedule lock), and the words that make a message's move
//! into the ring happen once although its mover may die at any step.
//!
//! **Moving once.** Under the schedule lock, the mover of entry `id`:
//! 1. clears `moving_landed` and `moving_pos`, then writes `moving_id`;
//! 2. claims a ring position `p` (or a spill seq) and, before it writes
//!    the record, stores `moving_pos = p + 1` (SeqCst);
//! 3. writes and commits the record;
//! 4. marks the entry done on disk, takes it out of the heap, and clears
//!    `moving_id`.
//!
//! A mover that dies leaves `moving_id` set; the next holder of the
//! schedule lock resolves it ([`resolve_move`]) under the admin lock:
//! - no position recorded: nothing was committed (the commit comes after
//!   the record), so the message moves again;
//! - `moving_landed == moving_id`: `head` passed the position committed;
//! - otherwise the ring (or the spill) says, as it does for a keyed
//!   publish's dead producer (`open_queue/dedup.rs`): committed, or
//!   aborted (or below `head`, which passes a committed position only
//!   after [`note_landed`] wrote it down), so moved again.
//!
//! `head` moves under the admin lock, and [`note_landed`] runs just
//! before, so the resolver (which holds that lock too) never sees `head`
//! past a committed position without `moving_landed` saying so. Loom
//! model: `loom_models/schedule.rs`.

use crate::layout::ScheduleControl;
use crate::loom::Ordering;

/// One scheduled message in the index: when it is due, its schedule id,
/// where its record is (the segment named by its first id, and the offset
/// in it) and its idempotency key's hash (0: none), for a cancel by key.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    zerocopy::FromBytes,
    zerocopy::IntoBytes,
    zerocopy::KnownLayout,
    zerocopy::Immutable,
)]
pub(crate) struct ScheduleEntry {
    pub due_ns: u64,
    pub id: u64,
    pub seg: u64,
    pub off: u64,
    pub key: u64,
}

/// Bytes of a [`ScheduleEntry`].
pub(crate) const SCHEDULE_ENTRY_SIZE: usize = 40;

const _: () = {
    assert!(std::mem::size_of::<ScheduleEntry>() == SCHEDULE_ENTRY_SIZE);
    assert!(std::mem::offset_of!(ScheduleEntry, id) == 8);
    assert!(std::mem::offset_of!(ScheduleEntry, key) == 32);
};

/// Due first; among messages due at the same time, the one scheduled
/// first.
fn before(a: &ScheduleEntry, b: &ScheduleEntry) -> bool {
    (a.due_ns, a.id) < (b.due_ns, b.id)
}

fn sift_up(heap: &mut [ScheduleEntry], mut i: usize) {
    while i > 0 {
        let up = (i - 1) / 2;
        if !before(&heap[i], &heap[up]) {
            break;
        }
        heap.swap(i, up);
        i = up;
    }
}

fn sift_down(heap: &mut [ScheduleEntry], mut i: usize) {
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut least = i;
        if l < heap.len() && before(&heap[l], &heap[least]) {
            least = l;
        }
        if r < heap.len() && before(&heap[r], &heap[least]) {
            least = r;
        }
        if least == i {
            return;
        }
        heap.swap(i, least);
        i = least;
    }
}

/// Adds `e` to the heap `heap[..len]`; `heap` has room for one more.
pub(crate) fn push(heap: &mut [ScheduleEntry], len: usize, e: ScheduleEntry) {
    heap[len] = e;
    sift_up(&mut heap[..=len], len);
}

/// Takes entry `i` out of the heap `heap` (whose length is then one
/// less) and returns it.
pub(crate) fn remove_at(heap: &mut [ScheduleEntry], i: usize) -> ScheduleEntry {
    let last = heap.len() - 1;
    let out = heap[i];
    heap[i] = heap[last];
    let heap = &mut heap[..last];
    if i < last {
        sift_down(heap, i);
        sift_up(heap, i);
    }
    out
}

/// Makes `heap` a heap (after a rebuild from the segments).
pub(crate) fn build(heap: &mut [ScheduleEntry]) {
    for i in (0..heap.len() / 2).rev() {
        sift_down(heap, i);
    }
}

/// Whether `heap` is a heap (checked after a rebuild and in tests).
pub(crate) fn is_heap(heap: &[ScheduleEntry]) -> bool {
    (1..heap.len()).all(|i| !before(&heap[i], &heap[(i - 1) / 2]))
}

/// Step 1 of a move: `id` is being moved, no position yet.
pub(crate) fn begin_move(ctl: &ScheduleControl, id: u64) {
    // Relaxed: ordered before the SeqCst store of `moving_id` below,
    // which whoever reads them loads first (SeqCst).
    ctl.moving_landed.store(0, Ordering::Relaxed);
    ctl.moving_pos.store(0, Ordering::Relaxed);
    // SeqCst: before the claim, so a `note_landed` that sees the
    // position (stored after the claim) sees this id.
    ctl.moving_id.store(id, Ordering::SeqCst);
}

/// Step 2: the position (or spill seq) claimed for the moving message,
/// before anything is written at it.
pub(crate) fn claimed(ctl: &ScheduleControl, pos: u64) {
    // SeqCst: before the commit (its Release store is later in program
    // order), so whoever sees the record committed and then loads this
    // word finds it.
    ctl.moving_pos.store(pos + 1, Ordering::SeqCst);
}

/// Step 4: the move is over (done, or not started after all).
pub(crate) fn end_move(ctl: &ScheduleControl) {
    // SeqCst: pairs with `note_landed`'s loads.
    ctl.moving_id.store(0, Ordering::SeqCst);
}

/// Under the admin lock, just before `head` moves from `from` to `to`:
/// if the message being moved was committed at a position in that range,
/// writes that down (`moving_landed`), since after this the slot may be
/// reused. `committed(pos)` reads the ring's word for `pos`.
pub(crate) fn note_landed(
    ctl: &ScheduleControl,
    from: u64,
    to: u64,
    committed: impl Fn(u64) -> bool,
) {
    // SeqCst: pairs with `begin_move` and `end_move`.
    let id = ctl.moving_id.load(Ordering::SeqCst);
    if id == 0 {
        return;
    }
    let pos = ctl.moving_pos.load(Ordering::SeqCst);
    // The id again: a mover that finished `id` and began another may have
    // stored the next one's position in between.
    if pos == 0 || !(from..to).contains(&(pos - 1)) || ctl.moving_id.load(Ordering::SeqCst) != id {
        return;
    }
    // `head` passes only decided positions: `pos - 1` is committed or
    // aborted, for good.
    if committed(pos - 1) {
        ctl.moving_landed.store(id, Ordering::SeqCst);
    }
}

/// What the holder of the schedule lock found a dead mover left.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Moving {
    /// Nothing in flight.
    Nothing,
    /// The message `id` reached the ring: finish its move (mark it done
    /// and take it out of the index).
    Landed(u64),
    /// The message `id` did not reach the ring: it stays scheduled (and
    /// moves again when due, which it is).
    Lost(u64),
    /// Its position is neither committed nor aborted yet: ask again later.
    Undecided,
}

/// Resolves the move a dead mover left (see the module's text), under the
/// admin lock. `published(pos)` is the ring's (or the spill's) answer for
/// a position below the tail (`None`: not decided yet); it answers
/// "not published" for a position below `head`.
pub(crate) fn resolve_move(
    ctl: &ScheduleControl,
    published: impl FnOnce(u64) -> Option<bool>,
) -> Moving {
    let id = ctl.moving_id.load(Ordering::SeqCst);
    if id == 0 {
        return Moving::Nothing;
    }
    let pos = ctl.moving_pos.load(Ordering::SeqCst);
    if pos == 0 {
        return Moving::Lost(id);
    }
    if ctl.moving_landed.load(Ordering::SeqCst) == id {
        return Moving::Landed(id);
    }
    match published(pos - 1) {
        Some(true) => Moving::Landed(id),
        Some(false) => Moving::Lost(id),
        None => Moving::Undecided,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn e(due: u64, id: u64) -> ScheduleEntry {
        ScheduleEntry {
            due_ns: due,
            id,
            ..ScheduleEntry::default()
        }
    }

    #[test]
    fn the_heap_gives_messages_back_in_due_order_then_schedule_order() {
        let mut heap = vec![ScheduleEntry::default(); 64];
        let mut len = 0;
        // A fixed shuffle of dues, some equal.
        for (i, due) in [50u64, 10, 40, 10, 30, 20, 60, 0, 40, 5].iter().enumerate() {
            push(&mut heap, len, e(*due, i as u64 + 1));
            len += 1;
            assert!(is_heap(&heap[..len]));
        }
        let mut out = Vec::new();
        while len > 0 {
            out.push(remove_at(&mut heap[..len], 0));
            len -= 1;
            assert!(is_heap(&heap[..len]));
        }
        let order: Vec<(u64, u64)> = out.iter().map(|e| (e.due_ns, e.id)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(order[2..4], [(10, 2), (10, 4)]);
    }

    #[test]
    fn removing_from_the_middle_keeps_a_heap_and_build_makes_one() {
        let mut heap: Vec<_> = (0..100u64).map(|i| e((i * 7919) % 101, i + 1)).collect();
        assert!(!is_heap(&heap));
        build(&mut heap);
        assert!(is_heap(&heap));
        let mut len = heap.len();
        for i in [50, 3, 97, 0, 10] {
            let i = i % len;
            let gone = remove_at(&mut heap[..len], i);
            len -= 1;
            assert!(is_heap(&heap[..len]));
            assert!(!heap[..len].iter().any(|x| x.id == gone.id));
        }
    }
}
