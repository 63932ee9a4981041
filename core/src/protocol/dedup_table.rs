//! The dedup table's entries (remembered publish keys), as a protocol
//! over their words alone (so loom checks the same code that runs on the
//! mapping): their states, lookup or reservation of a key, settling keyed
//! positions `head` is about to pass, and this process's index of the
//! table. Its service on a queue is `open_queue/dedup.rs`.

use crate::layout::DedupEntry;
use crate::loom::{AtomicU64, Ordering};

/// States of a dedup entry (`owner << 2 | PENDING` while being published,
/// where `owner` is the producer's liveness key / 4: `os/liveness.rs`).
/// Unused.
pub(crate) const FREE: u64 = 0;
/// Being published by the process whose liveness key / 4 is in the
/// upper bits.
pub(crate) const PENDING: u64 = 1;
/// Published: `seq` is its message's.
pub(crate) const PUBLISHED: u64 = 2;

/// Just before `head` moves from `from` to `to` (under the admin lock):
/// marks PUBLISHED every PENDING entry whose keyed position, announced in
/// a producer record's `(keyed_pos, keyed_entry)` words, lies in
/// `from..to` and is `committed`. Once `head` has passed, the slot may be
/// reused and the ring no longer knows the position's fate, so this is
/// where it is written down (see `open_queue/dedup.rs` for why it is exact).
/// loom model: `loom_head_never_passes_an_unsettled_keyed_commit`.
pub(crate) fn settle_passed<'a>(
    table: &[DedupEntry],
    keyed: impl Iterator<Item = (&'a AtomicU64, &'a AtomicU64)>,
    from: u64,
    to: u64,
    committed: impl Fn(u64) -> bool,
) {
    for (keyed_pos, keyed_entry) in keyed {
        // Acquire: pairs with the producer's SeqCst store, made before
        // its commit, which the groups' cursors passed before `to` was
        // computed from them.
        let kp = keyed_pos.load(Ordering::Acquire);
        let Some(pos) = kp.checked_sub(1) else {
            continue;
        };
        if !(from..to).contains(&pos) {
            continue;
        }
        let Some(e) = table.get(keyed_entry.load(Ordering::Relaxed) as usize) else {
            continue;
        };
        let st = e.state.load(Ordering::Acquire);
        if st & 3 != PENDING || e.seq.load(Ordering::Relaxed) != pos {
            continue;
        }
        if committed(pos) {
            // AcqRel: only the reservation we read; the producer's own
            // `published` is a CAS from the same word and fails after us.
            let _ = e
                .state
                .compare_exchange(st, PUBLISHED, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
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
/// (`Some(false)`), or is not decided yet (`None`). A scan of every entry:
/// [`lookup_or_reserve_indexed`], which the queue uses, decides the same
/// through an index; this is the reference it is checked against, and
/// what the loom model runs.
#[cfg(any(test, loom))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn lookup_or_reserve(
    table: &[DedupEntry],
    next: &AtomicU64,
    key: u64,
    me: u64,
    now_ns: u64,
    ttl_ns: u64,
    alive: impl Fn(u64) -> bool,
    resolve: impl Fn(u64) -> Option<bool>,
) -> Lookup {
    decide(
        table,
        0..table.len(),
        next,
        key,
        me,
        now_ns,
        ttl_ns,
        alive,
        resolve,
    )
}

/// [`lookup_or_reserve`] with this process's [`DedupIndex`]: only the
/// entries that hold `key` are looked at (in table order, as the scan
/// meets them), so a lookup costs O(1) instead of O(`dedup_window`). The
/// index is brought up to date first, under the same admin lock.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lookup_or_reserve_indexed(
    table: &[DedupEntry],
    index: &mut DedupIndex,
    next: &AtomicU64,
    key: u64,
    me: u64,
    now_ns: u64,
    ttl_ns: u64,
    alive: impl Fn(u64) -> bool,
    resolve: impl Fn(u64) -> Option<bool>,
) -> Lookup {
    // Relaxed: the counter moves only under the admin lock, which we hold.
    index.sync(table, next.load(Ordering::Relaxed));
    let mut holders = [0usize; 4];
    let found = index.holders(key, &mut holders);
    if found <= holders.len() {
        let candidates = holders[..found].iter().copied();
        decide(
            table, candidates, next, key, me, now_ns, ttl_ns, alive, resolve,
        )
    } else {
        // More entries hold this key than fit here (stale ones of a key
        // published again and again): rare, so allocate.
        let all = index.all_holders(key);
        decide(
            table,
            all.into_iter(),
            next,
            key,
            me,
            now_ns,
            ttl_ns,
            alive,
            resolve,
        )
    }
}

/// The lookup over `candidates` (ascending entry indices, a superset of
/// those holding `key`), then the reservation.
#[allow(clippy::too_many_arguments)]
fn decide(
    table: &[DedupEntry],
    candidates: impl Iterator<Item = usize>,
    next: &AtomicU64,
    key: u64,
    me: u64,
    now_ns: u64,
    ttl_ns: u64,
    alive: impl Fn(u64) -> bool,
    resolve: impl Fn(u64) -> Option<bool>,
) -> Lookup {
    for i in candidates {
        let e = &table[i];
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
        if alive(st >> 2) {
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
        if st & 3 == PENDING && alive(st >> 2) {
            continue; // someone is publishing with it right now
        }
        e.key.store(key, Ordering::Relaxed);
        e.seq.store(u64::MAX, Ordering::Relaxed);
        e.time_ns.store(now_ns, Ordering::Relaxed);
        // Release (and the admin lock's): the key and time are seen with
        // the state by the next lookup.
        e.state.store(me << 2 | PENDING, Ordering::Release);
        return Lookup::Mine(i);
    }
    Lookup::Full
}

/// Which entries of a table hold which key, kept by one process for its
/// own lookups (private memory, used under the admin lock). An entry's key
/// changes only when it is reserved, and every reservation (or skip) moves
/// the table's counter by one under the lock, so the index catches up by
/// re-reading the entries the counter passed since it last looked: the
/// entry of count `c` is `c % dedup_window`. Fallen behind by a whole lap
/// or more, it reads the whole table again. It is a cache: losing it (a
/// new process) costs one full read, never a wrong answer.
#[derive(Debug, Default)]
pub(crate) struct DedupIndex {
    /// The counter value read last.
    synced: u64,
    /// The key each entry held then (0: none; a used key is never 0).
    keys: Vec<u64>,
    /// Key → the entries holding it, ascending. Usually one.
    by_key: std::collections::HashMap<u64, Holders>,
}

/// The entries holding one key: one without an allocation, else a list.
#[derive(Debug)]
enum Holders {
    One(u32),
    Many(Vec<u32>),
}

impl DedupIndex {
    /// Brings the index up to `next`, the table's counter now.
    fn sync(&mut self, table: &[DedupEntry], next: u64) {
        let n = table.len();
        let behind = next.wrapping_sub(self.synced);
        if self.keys.len() != n || next < self.synced || behind >= n as u64 {
            self.keys = vec![0; n];
            self.by_key.clear();
            for (i, e) in table.iter().enumerate() {
                self.set(i, e.key.load(Ordering::Relaxed));
            }
        } else {
            for c in self.synced..next {
                let i = (c % n as u64) as usize;
                self.set(i, table[i].key.load(Ordering::Relaxed));
            }
        }
        self.synced = next;
    }

    /// Entry `i` holds `key` now.
    fn set(&mut self, i: usize, key: u64) {
        let old = self.keys[i];
        if old == key {
            return;
        }
        let i32 = i as u32;
        if old != 0 {
            if let Some(h) = self.by_key.get_mut(&old) {
                let gone = match h {
                    Holders::One(j) => *j == i32,
                    Holders::Many(v) => {
                        v.retain(|&j| j != i32);
                        if v.len() == 1 {
                            *h = Holders::One(v[0]);
                        }
                        false
                    }
                };
                if gone {
                    self.by_key.remove(&old);
                }
            }
        }
        if key != 0 {
            match self.by_key.get_mut(&key) {
                None => {
                    self.by_key.insert(key, Holders::One(i32));
                }
                Some(h) => {
                    let mut v = match h {
                        Holders::One(j) => vec![*j],
                        Holders::Many(v) => std::mem::take(v),
                    };
                    if let Err(at) = v.binary_search(&i32) {
                        v.insert(at, i32);
                    }
                    *h = Holders::Many(v);
                }
            }
        }
        self.keys[i] = key;
    }

    /// Writes the entries holding `key` (ascending) into `out` if they
    /// fit, and returns how many there are.
    fn holders(&self, key: u64, out: &mut [usize; 4]) -> usize {
        match self.by_key.get(&key) {
            None => 0,
            Some(Holders::One(j)) => {
                out[0] = *j as usize;
                1
            }
            Some(Holders::Many(v)) => {
                for (o, &j) in out.iter_mut().zip(v) {
                    *o = j as usize;
                }
                v.len()
            }
        }
    }

    /// Every entry holding `key`, ascending.
    fn all_holders(&self, key: u64) -> Vec<usize> {
        match self.by_key.get(&key) {
            None => Vec::new(),
            Some(Holders::One(j)) => vec![*j as usize],
            Some(Holders::Many(v)) => v.iter().map(|&j| j as usize).collect(),
        }
    }
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
        t[0].state.store(PUBLISHED, Ordering::Relaxed);
        // After the ttl the key is forgotten and its entry reused.
        assert_eq!(
            lookup_or_reserve(&t, &next, 1, 2, 150, 100, alive, |_| None),
            Lookup::Mine(0)
        );
    }

    /// One step of the model below.
    #[derive(Clone, Debug)]
    enum Step {
        /// Process `proc` (0 or 1, each with its own index) looks `key` up
        /// as pid `pid`, `dt` ns later; a dead producer's position
        /// resolves as `resolved`.
        Lookup {
            proc: usize,
            pid: u32,
            key: u64,
            dt: u64,
            resolved: Option<bool>,
        },
        /// The producer of entry `i`, if pending, commits (or gives up).
        Finish { i: usize, ok: bool },
        /// These pids (bit p) are alive now.
        Alive(u8),
        /// Process `proc` restarts: its index is gone.
        Forget(usize),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..2usize, 1..4u32, 1..7u64, 0..40u64, prop_oneof![Just(None), Just(Some(true)), Just(Some(false))])
                .prop_map(|(proc, pid, key, dt, resolved)| Step::Lookup { proc, pid, key, dt, resolved }),
            2 => (0..5usize, any::<bool>()).prop_map(|(i, ok)| Step::Finish { i, ok }),
            1 => any::<u8>().prop_map(Step::Alive),
            1 => (0..2usize).prop_map(Step::Forget),
        ]
    }

    fn words(t: &[DedupEntry]) -> Vec<[u64; 4]> {
        t.iter()
            .map(|e| {
                [
                    e.state.load(Ordering::Relaxed),
                    e.key.load(Ordering::Relaxed),
                    e.seq.load(Ordering::Relaxed),
                    e.time_ns.load(Ordering::Relaxed),
                ]
            })
            .collect()
    }

    proptest::proptest! {
        /// The index decides exactly what the scan decides, and leaves the
        /// table exactly as the scan does, whatever the interleaving of
        /// two processes (each with its own index, one of them restarted
        /// now and then), dead producers, ages and finished publishes.
        #[test]
        fn the_index_decides_as_the_scan_does(steps in proptest::collection::vec(step(), 1..200)) {
            let (scan, scan_next) = table(5);
            let (indexed, indexed_next) = table(5);
            let mut index = [DedupIndex::default(), DedupIndex::default()];
            let (mut now, mut alive_mask) = (0u64, 0b1110u8);
            for st in steps {
                match st {
                    Step::Lookup { proc, pid, key, dt, resolved } => {
                        now += dt;
                        let alive = |p: u64| alive_mask & (1 << p) != 0;
                        let a = lookup_or_reserve(&scan, &scan_next, key, pid as u64, now, 100, alive, |_| resolved);
                        let b = lookup_or_reserve_indexed(
                            &indexed, &mut index[proc], &indexed_next, key, pid as u64, now, 100, alive, |_| resolved,
                        );
                        proptest::prop_assert_eq!(a, b);
                    }
                    Step::Finish { i, ok } => {
                        for t in [&scan, &indexed] {
                            if t[i].state.load(Ordering::Relaxed) & 3 == PENDING {
                                let w = if ok { PUBLISHED } else { FREE };
                                t[i].seq.store(i as u64 + 1000, Ordering::Relaxed);
                                t[i].state.store(w, Ordering::Relaxed);
                            }
                        }
                    }
                    Step::Alive(m) => alive_mask = m,
                    Step::Forget(p) => index[p] = DedupIndex::default(),
                }
                proptest::prop_assert_eq!(words(&scan), words(&indexed));
                proptest::prop_assert_eq!(
                    scan_next.load(Ordering::Relaxed),
                    indexed_next.load(Ordering::Relaxed)
                );
            }
        }
    }
}
