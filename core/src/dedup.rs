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
//! key older than `dedup_ttl` is forgotten (by age).

use crate::error::{Error, Result};
use crate::layout::DedupEntry;
use crate::queue::Shared;
use crate::ring::Peek;
use crate::sync::Ordering;
use crate::sys;

const FREE: u64 = 0;
const PENDING: u64 = 1;
const PUBLISHED: u64 = 2;

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
    let me = shared.me.pid as u64;
    let ttl = shared.config.dedup_ttl_ns;
    let waited = std::time::Instant::now();
    loop {
        let now = sys::realtime_ns();
        let mut wait = false;
        {
            let _g = shared.lock();
            for e in table {
                let st = e.state.load(Ordering::Acquire);
                if st == FREE || e.key.load(Ordering::Relaxed) != key {
                    continue;
                }
                if now.saturating_sub(e.time_ns.load(Ordering::Relaxed)) >= ttl {
                    continue; // forgotten by age
                }
                if st == PUBLISHED {
                    return Ok(Reserve::Published(e.seq.load(Ordering::Relaxed)));
                }
                let pid = (st >> 2) as u32;
                if sys::process_alive(pid, 0) {
                    wait = true;
                    break;
                }
                // Its producer died mid-publish: what does the ring say?
                let pos = e.seq.load(Ordering::Relaxed);
                match resolve(shared, pos) {
                    Some(true) => {
                        e.state.store(PUBLISHED, Ordering::Release);
                        return Ok(Reserve::Published(pos));
                    }
                    Some(false) => e.state.store(FREE, Ordering::Release),
                    None => {
                        wait = true;
                        break;
                    }
                }
            }
            if !wait {
                let hdr = shared.header();
                let n = table.len() as u64;
                for _ in 0..n {
                    let i = (hdr.dedup_next.fetch_add(1, Ordering::Relaxed) % n) as usize;
                    let e = &table[i];
                    let st = e.state.load(Ordering::Acquire);
                    if st & 3 == PENDING && sys::process_alive((st >> 2) as u32, 0) {
                        continue; // someone is publishing with it right now
                    }
                    e.key.store(key, Ordering::Relaxed);
                    e.seq.store(u64::MAX, Ordering::Relaxed);
                    e.time_ns.store(now, Ordering::Relaxed);
                    e.state.store(me << 2 | PENDING, Ordering::Release);
                    return Ok(Reserve::Mine(i));
                }
                return Err(Error::Busy(format!(
                    "all {n} dedup entries are being published right now"
                )));
            }
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
    let tail = ring.ctl.tail.load(Ordering::Acquire);
    let head = ring.ctl.head.load(Ordering::Acquire);
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
        Peek::NotYet(_) => None,
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
