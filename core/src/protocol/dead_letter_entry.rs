//! A dead-letter entry's state word (`arg << 3 | state`), as a protocol
//! over the words alone (so loom checks the same code that runs on the
//! mapping): its states, the packing of its argument, and the claim and
//! release of a *run* of entries. The entries themselves are
//! `open_queue/dead_letters.rs`.
//!
//! A dead letter takes as many consecutive entries as its bytes need (a
//! run): its first entry's word says what it is (WRITING, READY, …), and
//! the rest of the run say PART(first). The state words lie in a table of
//! their own, apart from the entries' bytes, so a run's bytes are one
//! slice and nothing reads payload as a state word.
//!
//! Two rules keep a run's PART words exact, so that whoever owns its
//! first entry can always find them: a run is taken upward (the first
//! entry, then each next one FREE → PART(first)) and given back downward
//! (the last PART first, the first entry last). So a run's PART(first)
//! words are always `first + 1 .. first + m` for some `m`, whatever point
//! its owner died at; and no PART(first) word outlives its run, since the
//! first entry becomes FREE only after them. An owner gives a run back
//! only while its first entry says WRITING by it: should it die part-way,
//! the entry is a dead writer's, and the next claimer gives back the rest.

use crate::loom::{AtomicU64, Ordering};

/// Unused.
pub(crate) const FREE: u64 = 0;
/// Being written by the process whose liveness key is `arg << 2`
/// ([`writer`]).
pub(crate) const WRITING: u64 = 1;
/// A dead letter.
pub(crate) const READY: u64 = 2;
/// Redriven to the group index in `arg`.
pub(crate) const REDRIVE: u64 = 3;
/// Being delivered: `arg` is [`deliverer`]`(group, key)`.
pub(crate) const DELIVERING: u64 = 4;
/// Part of the run of dead letter whose first entry's index is `arg`.
pub(crate) const PART: u64 = 5;

/// Bits of a liveness key / 4 (`os/liveness.rs` keeps keys below
/// 2^47, so a key and a group index fit one word's 61 bits of `arg`).
const KEY_BITS: u32 = 45;

/// `arg` of WRITING by the process of liveness key `key`.
pub(crate) fn writer(key: u64) -> u64 {
    key >> 2
}
/// The liveness key in a WRITING `arg`.
pub(crate) fn writer_key(arg: u64) -> u64 {
    arg << 2
}
/// `arg` of DELIVERING to group `group` by the process of key `key`.
pub(crate) fn deliverer(group: u64, key: u64) -> u64 {
    (group << KEY_BITS) | ((key >> 2) & ((1 << KEY_BITS) - 1))
}
/// The group of a DELIVERING `arg`.
pub(crate) fn deliverer_group(arg: u64) -> u64 {
    arg >> KEY_BITS
}
/// The liveness key of a DELIVERING `arg`.
pub(crate) fn deliverer_key(arg: u64) -> u64 {
    (arg & ((1 << KEY_BITS) - 1)) << 2
}

/// Packs a word.
pub(crate) fn word(state: u64, arg: u64) -> u64 {
    (arg << 3) | state
}
/// The state of a word.
pub(crate) fn state_of(w: u64) -> u64 {
    w & 7
}
/// The argument of a word.
pub(crate) fn arg_of(w: u64) -> u64 {
    w >> 3
}

/// Claims a run of `n` consecutive free entries (of the `count` whose
/// words `st(i)` gives) for writer `me` (a WRITING `arg`: [`writer`] of our
/// liveness key): the lowest run whose first entry is FREE and whose others
/// are FREE. An entry whose writer `alive` (asked with the writer's `arg`)
/// says died mid-write is taken over and its run given back first. Returns
/// the first entry's index, WRITING by us, the others PART of it.
///
/// Two claimers never share an entry: every entry is taken by a CAS from
/// the word its taker saw, and a claimer that loses any of its run gives
/// back what it took (loom: `loom_two_dead_letterings_take_two_entries`,
/// `loom_runs_of_dead_letters_never_overlap`).
pub(crate) fn claim_run<'a>(
    st: impl Fn(usize) -> &'a AtomicU64,
    count: usize,
    n: usize,
    me: u64,
    alive: impl Fn(u64) -> bool,
) -> Option<usize> {
    let n = n.max(1);
    let mut i = 0;
    while i + n <= count {
        let w = st(i).load(Ordering::Acquire);
        if state_of(w) == WRITING && !alive(arg_of(w)) {
            // A dead writer's (or a dead owner's giving its run back): take
            // it over, give its run back, and look at it again.
            // AcqRel: Acquire to see the dead one's PART words.
            if st(i)
                .compare_exchange(w, word(WRITING, me), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                give_back(&st, count, i, me);
            }
            continue;
        }
        if state_of(w) != FREE {
            i += 1;
            continue;
        }
        // Only a run that looks free is worth a CAS.
        if let Some(k) = (i + 1..i + n).find(|&k| state_of(st(k).load(Ordering::Relaxed)) != FREE) {
            i = k + 1;
            continue;
        }
        // AcqRel: Acquire to see a purger's or dead writer's word whole;
        // the entry's fields are published later by the Release of READY.
        if st(i)
            .compare_exchange(w, word(WRITING, me), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // Upward: PART words are always a prefix of the run.
        let mut k = i + 1;
        while k < i + n
            && st(k)
                .compare_exchange(
                    word(FREE, 0),
                    word(PART, i as u64),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            k += 1;
        }
        if k == i + n {
            return Some(i);
        }
        // Entry `k` went to somebody else: give back what we took.
        give_back(&st, count, i, me);
        i = k + 1;
    }
    None
}

/// Gives back the run whose first entry `first` says WRITING by `me` (the
/// caller moved it there): its PART words from the last down, then the
/// first entry. Downward, so that should we die part-way, what is left is
/// still a prefix of the run, found by the next claimer.
pub(crate) fn give_back<'a>(
    st: &impl Fn(usize) -> &'a AtomicU64,
    count: usize,
    first: usize,
    me: u64,
) {
    let part = word(PART, first as u64);
    let mut end = first + 1;
    // Acquire: pairs with the Release of the PART words we (or the dead
    // owner we took over from) wrote.
    while end < count && st(end).load(Ordering::Acquire) == part {
        end += 1;
    }
    for k in (first + 1..end).rev() {
        // Release: our reads of the run happen before its reuse. Only the
        // owner of `first` writes PART(first) words, so a store is exact.
        st(k).store(word(FREE, 0), Ordering::Release);
    }
    debug_assert_eq!(st(first).load(Ordering::Relaxed), word(WRITING, me));
    st(first).store(word(FREE, 0), Ordering::Release);
}
