//! Idempotent publishing: a table of `dedup_window` remembered keys in the
//! queue file, so that a producer retrying a publish (after a timeout, or
//! after its process was killed and restarted) does not enqueue it twice.
//!
//! Lookups and reservations run under the admin lock: keyed publishes are
//! the slow path, and the lock makes "is this key known? if not, it is
//! mine" one step, so two producers with the same key never both publish.
//! A reserved entry is PENDING(pid) with the position its producer claimed;
//! the producer marks it PUBLISHED after its commit. A PENDING entry of a
//! dead producer is resolved from the ring: if its position was committed,
//! the key counts as published; if it was aborted (or never claimed), the
//! entry is free again. Entries are reused oldest first (by count), and a
//! key older than `dedup_ttl` is forgotten (by age). Each process keeps a
//! private index of which entries hold which key (`DedupIndex`), brought
//! up to date from the table's counter under the lock, so a lookup costs
//! O(1), not a scan of the window.

use crate::error::{Error, Result};
use crate::layout::DedupEntry;
use crate::mapped::Shared;
use crate::os;
use crate::protocol::ring::Peek;
use crate::protocol::tables::dedup::{FREE, PUBLISHED};
use crate::protocol::tables::{Lookup, lookup_or_reserve_indexed};
use crate::sync::Ordering;

/// What [`reserve`] decided.
pub(crate) enum Reserve {
    /// The key is remembered: its message already has this seq.
    Published(u64),
    /// The key is ours to publish; report to entry `i`.
    Mine(usize),
}

fn entries(shared: &Shared) -> &[DedupEntry] {
    shared.dedup_entries()
}

/// Looks `key` up and, if it is unknown, reserves an entry for it. Waits
/// (at most `unblock_timeout`) while another live producer is publishing
/// the same key.
pub(crate) fn reserve(shared: &Shared, key: u64) -> Result<Reserve> {
    let table = entries(shared);
    if table.is_empty() {
        return Err(Error::InvalidOption(
            "this queue remembers no keys (created with dedup_window 0)".into(),
        ));
    }
    let waited = std::time::Instant::now();
    loop {
        let found = {
            let _g = shared.lock();
            // Under the admin lock: nobody else in this process holds it.
            let mut index = shared
                .dedup_index
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lookup_or_reserve_indexed(
                table,
                &mut index,
                &shared.header().dedup_next,
                key,
                shared.me.pid,
                os::clock::realtime_ns(),
                shared.config.dedup_ttl_ns,
                |pid| os::process::alive(pid, 0),
                |pos| resolve(shared, pos),
            )
        };
        match found {
            Lookup::Published(seq) => return Ok(Reserve::Published(seq)),
            Lookup::Mine(i) => return Ok(Reserve::Mine(i)),
            Lookup::Full => {
                return Err(Error::Busy(format!(
                    "all {} dedup entries are being published right now",
                    table.len()
                )));
            }
            Lookup::Wait => {}
        }
        if waited.elapsed().as_nanos() as u64 > shared.config.unblock_timeout_ns {
            return Err(Error::Busy(
                "another producer is publishing the same key and has not finished".into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
}

/// Whether position `pos` (claimed by a producer that died) was published:
/// `Some(true)` committed, `Some(false)` aborted or never claimed, `None`
/// not decided yet (claimed, neither committed nor aborted so far).
fn resolve(shared: &Shared, pos: u64) -> Option<bool> {
    let ring = shared.ring();
    let word = ring.ctl.tail.load(Ordering::Acquire);
    let tail = crate::protocol::spill::ring_tail(word);
    let head = ring.ctl.head.load(Ordering::Acquire);
    if crate::protocol::spill::spilling(word) && pos >= tail && pos != u64::MAX {
        // Spilled under the admin lock, which we hold: below end_seq it
        // was appended whole.
        return Some(pos < shared.header().spill.end_seq.load(Ordering::Acquire));
    }
    if pos == u64::MAX || pos >= tail {
        return Some(false);
    }
    if pos < head {
        // Every group is past it and the slot may be reused: it was
        // committed or aborted long ago. Counting it published avoids a
        // duplicate; `docs/design.md` says what this costs.
        return Some(true);
    }
    match ring.peek(pos) {
        Peek::Ready => Some(true),
        Peek::Skip => Some(false),
        // Claimed by the dead producer and never committed: nobody will
        // commit it now, so abort it here, as a consumer would after
        // `unblock_timeout` (with no consumer running, the retrying
        // producer used to wait out that timeout and fail with Busy).
        // `pos < tail` was checked above; the CAS races only with a
        // consumer's abort of the same position.
        Peek::NotYet(seen) => {
            if ring.abort(pos, seen) {
                shared
                    .header()
                    .counters
                    .aborted
                    .fetch_add(1, Ordering::Relaxed);
                Some(false)
            } else {
                match ring.peek(pos) {
                    Peek::Ready => Some(true),
                    Peek::Skip => Some(false),
                    Peek::NotYet(_) => None,
                }
            }
        }
    }
}

/// Records the position the reserved key's message claimed (before it is
/// written), so a crash can be resolved from the ring.
pub(crate) fn claimed(shared: &Shared, i: usize, pos: u64) {
    entries(shared)[i].seq.store(pos, Ordering::Release);
}

/// The keyed message was committed.
pub(crate) fn published(shared: &Shared, i: usize, pos: u64) {
    let e = &entries(shared)[i];
    e.seq.store(pos, Ordering::Relaxed);
    e.state.store(PUBLISHED, Ordering::Release);
}

/// The keyed publish failed: forget the key.
pub(crate) fn abandon(shared: &Shared, i: usize) {
    entries(shared)[i].state.store(FREE, Ordering::Release);
}
