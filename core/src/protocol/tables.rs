//! The two small claimable tables in the queue file, as protocols over
//! their words alone (so loom checks the same code that runs on the
//! mapping): the state words of the dead-letter entries, and the table of
//! remembered publish keys.

use crate::layout::DedupEntry;
use crate::sync::{AtomicU64, Ordering};

/// States of a dead-letter entry's word (`arg << 3 | state`).
pub(crate) mod dead_letter {
    /// Unused.
    pub const FREE: u64 = 0;
    /// Being written by the pid in `arg`.
    pub const WRITING: u64 = 1;
    /// A dead letter.
    pub const READY: u64 = 2;
    /// Redriven to the group index in `arg`.
    pub const REDRIVE: u64 = 3;
    /// Being delivered: `arg` is `group << 32 | pid`.
    pub const DELIVERING: u64 = 4;

    /// Packs a word.
    pub fn word(state: u64, arg: u64) -> u64 {
        (arg << 3) | state
    }
    /// The state of a word.
    pub fn state_of(w: u64) -> u64 {
        w & 7
    }
    /// The argument of a word.
    pub fn arg_of(w: u64) -> u64 {
        w >> 3
    }
}

/// Claims a free dead-letter entry for writer `me` (a pid): the first
/// FREE one, or one whose writer `alive` says died mid-write. Two
/// appenders never get the same entry: the claim is a CAS from the word
/// they saw (loom: `loom_two_dead_letterings_take_two_entries`).
pub(crate) fn claim_dead_letter<'a>(
    states: impl IntoIterator<Item = &'a AtomicU64>,
    me: u32,
    alive: impl Fn(u32) -> bool,
) -> Option<usize> {
    use dead_letter::*;
    for (i, st) in states.into_iter().enumerate() {
        let w = st.load(Ordering::Acquire);
        let free = state_of(w) == FREE || (state_of(w) == WRITING && !alive(arg_of(w) as u32));
        // AcqRel: Acquire to see a purger's or dead writer's word whole;
        // the entry's fields are published later by the Release of READY.
        if free
            && st
                .compare_exchange(
                    w,
                    word(WRITING, me as u64),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(i);
        }
    }
    None
}

/// States of a dedup entry (`pid << 2 | PENDING` while being published).
pub(crate) mod dedup {
    /// Unused.
    pub const FREE: u64 = 0;
    /// Being published by the pid in the upper bits.
    pub const PENDING: u64 = 1;
    /// Published: `seq` is its message's.
    pub const PUBLISHED: u64 = 2;
}

/// What [`lookup_or_reserve`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The key is remembered: its message has this seq.
    Published(u64),
    /// The key was unknown and entry `i` is now reserved for it.
    Mine(usize),
    /// Another live producer is publishing the same key: ask again later.
    Wait,
    /// Every entry is being published right now.
    Full,
}

/// Looks `key` up in the dedup table and, if it is unknown, reserves the
/// oldest entry for producer `me`. The caller holds the admin lock, so the
/// lookup and the reservation are one step for all producers (loom:
/// `loom_one_of_two_producers_publishes_a_key`); only the reserving
/// producer writes its entry afterwards. `resolve(pos)` says whether a dead
/// producer's claimed position was published (`Some(true)`), was not
/// (`Some(false)`), or is not decided yet (`None`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn lookup_or_reserve(
    table: &[DedupEntry],
    next: &AtomicU64,
    key: u64,
    me: u32,
    now_ns: u64,
    ttl_ns: u64,
    alive: impl Fn(u32) -> bool,
    resolve: impl Fn(u64) -> Option<bool>,
) -> Lookup {
    use dedup::*;
    for e in table {
        let st = e.state.load(Ordering::Acquire);
        if st == FREE || e.key.load(Ordering::Relaxed) != key {
            continue;
        }
        if now_ns.saturating_sub(e.time_ns.load(Ordering::Relaxed)) >= ttl_ns {
            continue; // forgotten by age
        }
        if st == PUBLISHED {
            return Lookup::Published(e.seq.load(Ordering::Relaxed));
        }
        if alive((st >> 2) as u32) {
            return Lookup::Wait;
        }
        // Its producer died mid-publish: what does the ring say?
        let pos = e.seq.load(Ordering::Relaxed);
        match resolve(pos) {
            Some(true) => {
                e.state.store(PUBLISHED, Ordering::Release);
                return Lookup::Published(pos);
            }
            Some(false) => e.state.store(FREE, Ordering::Release),
            None => return Lookup::Wait,
        }
    }
    let n = table.len() as u64;
    for _ in 0..n {
        let i = (next.fetch_add(1, Ordering::Relaxed) % n) as usize;
        let e = &table[i];
        let st = e.state.load(Ordering::Acquire);
        if st & 3 == PENDING && alive((st >> 2) as u32) {
            continue; // someone is publishing with it right now
        }
        e.key.store(key, Ordering::Relaxed);
        e.seq.store(u64::MAX, Ordering::Relaxed);
        e.time_ns.store(now_ns, Ordering::Relaxed);
        // Release (and the admin lock's): the key and time are seen with
        // the state by the next lookup.
        e.state.store((me as u64) << 2 | PENDING, Ordering::Release);
        return Lookup::Mine(i);
    }
    Lookup::Full
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn table(n: usize) -> (Vec<DedupEntry>, AtomicU64) {
        (
            (0..n).map(|_| DedupEntry::new()).collect(),
            AtomicU64::new(0),
        )
    }

    #[test]
    fn a_dead_producers_key_is_resolved_from_the_ring() {
        let (t, next) = (table(2).0, AtomicU64::new(0));
        let live = |pid| pid != 9;
        let Lookup::Mine(i) = lookup_or_reserve(&t, &next, 7, 9, 10, 100, live, |_| None) else {
            panic!()
        };
        t[i].seq.store(55, Ordering::Relaxed);
        // Producer 9 died; its position is not decided yet: wait.
        assert_eq!(
            lookup_or_reserve(&t, &next, 7, 1, 20, 100, live, |_| None),
            Lookup::Wait
        );
        // The ring says it was committed: the key counts as published.
        assert_eq!(
            lookup_or_reserve(&t, &next, 7, 1, 20, 100, live, |p| Some(p == 55)),
            Lookup::Published(55)
        );
        // Another key whose dead producer never committed: free again, and
        // the asker reserves a fresh entry for it.
        let Lookup::Mine(j) = lookup_or_reserve(&t, &next, 8, 9, 30, 100, live, |_| None) else {
            panic!()
        };
        t[j].seq.store(56, Ordering::Relaxed);
        assert!(matches!(
            lookup_or_reserve(&t, &next, 8, 1, 40, 100, live, |_| Some(false)),
            Lookup::Mine(_)
        ));
    }

    #[test]
    fn keys_age_out_and_a_busy_table_is_full() {
        let (t, next) = table(1);
        let alive = |_| true;
        assert_eq!(
            lookup_or_reserve(&t, &next, 1, 1, 0, 100, alive, |_| None),
            Lookup::Mine(0)
        );
        // Same key, another live producer, while pending: wait.
        assert_eq!(
            lookup_or_reserve(&t, &next, 1, 2, 50, 100, alive, |_| None),
            Lookup::Wait
        );
        // Another key: the only entry is pending: full.
        assert_eq!(
            lookup_or_reserve(&t, &next, 2, 2, 50, 100, alive, |_| None),
            Lookup::Full
        );
        t[0].state.store(dedup::PUBLISHED, Ordering::Relaxed);
        // After the ttl the key is forgotten and its entry reused.
        assert_eq!(
            lookup_or_reserve(&t, &next, 1, 2, 150, 100, alive, |_| None),
            Lookup::Mine(0)
        );
    }
}
