//! A dead-letter entry's state word (`arg << 3 | state`), as a protocol
//! over the words alone (so loom checks the same code that runs on the
//! mapping): its states, the packing of its argument, and the claim of a
//! free entry. The entries themselves are `open_queue/dead_letters.rs`.

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

/// Claims a free dead-letter entry for writer `me` (a WRITING `arg`:
/// [`writer`] of our liveness key): the first FREE one, or
/// one whose writer `alive` (asked with the writer's `arg`) says died
/// mid-write. Two appenders never get the same entry: the claim is a CAS
/// from the word they saw (loom: `loom_two_dead_letterings_take_two_entries`).
pub(crate) fn claim<'a>(
    states: impl IntoIterator<Item = &'a AtomicU64>,
    me: u64,
    alive: impl Fn(u64) -> bool,
) -> Option<usize> {
    for (i, st) in states.into_iter().enumerate() {
        let w = st.load(Ordering::Acquire);
        let free = state_of(w) == FREE || (state_of(w) == WRITING && !alive(arg_of(w)));
        // AcqRel: Acquire to see a purger's or dead writer's word whole;
        // the entry's fields are published later by the Release of READY.
        if free
            && st
                .compare_exchange(w, word(WRITING, me), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(i);
        }
    }
    None
}
