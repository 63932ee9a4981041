//! Doorbells: how an async waiter (a consumer waiting for a message, a
//! producer waiting for room, in an event loop rather than a thread) is
//! woken from any process, with no system call on the fast path while
//! none is armed.
//!
//! Each waiter owns an entry of a [`Doorbells`] table (its pid and a
//! nonce, which name its doorbell: a datagram socket the OS layer binds)
//! and the same bit of the signal's `armed` word. The protocol is the
//! [`Signal`](crate::layout::Signal) protocol's, with the bit in place of
//! the `waiters` count:
//!
//! - **arm** (the waiter): set its bit (SeqCst RMW), then re-check its
//!   condition with SeqCst loads; if it holds, clear the bit again and go
//!   on without waiting ("already ready");
//! - **ring** (the waker, after its SeqCst change and the fence `notify`
//!   issues): load `armed` (SeqCst); for every bit set, clear it with a
//!   `fetch_and` and, only if this call is the one that cleared it, ring
//!   that entry's doorbell.
//!
//! The SeqCst total order puts either the waker's load after the bit was
//! set (it rings) or the waiter's re-check after the change (it sees it).
//! The `fetch_and` elects one ringer per arm: one arm, at most one ring.
//! A ring that finds the doorbell gone (its process died: the kernel
//! closed the socket) frees the entry, so a dead waiter costs one extra
//! system call, once; an entry whose unarmed owner died is reclaimed by
//! the next [`claim`] that finds no free entry.
//!
//! loom models: `loom_doorbell_*` in `protocol/loom_models/doorbell.rs`.

use crate::layout::DOORBELLS;
pub(crate) use crate::loom::Rung;
use crate::loom::{AtomicU64, Ordering};

/// An entry's value: `pid` in the high half, `nonce` (never 0) in the low
/// (the OS layer makes them so; the models and tests make their own).
#[cfg(any(test, loom))]
pub(crate) fn entry_value(pid: u32, nonce: u32) -> u64 {
    debug_assert!(nonce != 0);
    (u64::from(pid) << 32) | u64::from(nonce)
}

/// The pid of an entry's value.
#[cfg(any(test, loom))]
pub(crate) fn entry_pid(value: u64) -> u32 {
    (value >> 32) as u32
}

fn bit(i: usize) -> u64 {
    1 << i
}

/// Takes a free entry of `entries` for `value`. When every entry is taken,
/// those whose owner `is_dead` (asked with the entry's value) are freed and the search runs once
/// more. `None`: every entry belongs to a live waiter.
pub(crate) fn claim(
    entries: &[AtomicU64; DOORBELLS],
    armed: &AtomicU64,
    value: u64,
    is_dead: impl Fn(u64) -> bool,
) -> Option<usize> {
    for reclaim in [false, true] {
        if reclaim {
            for (i, e) in entries.iter().enumerate() {
                let v = e.load(Ordering::Acquire);
                if v != 0 && is_dead(v) {
                    // Disarm before freeing: a new owner starts unarmed.
                    armed.fetch_and(!bit(i), Ordering::AcqRel);
                    let _ = e.compare_exchange(v, 0, Ordering::AcqRel, Ordering::Relaxed);
                }
            }
        }
        for (i, e) in entries.iter().enumerate() {
            // Release: a ringer's Acquire load of the entry sees the owner
            // whose doorbell it names (bound before the claim).
            if e.compare_exchange(0, value, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return Some(i);
            }
        }
    }
    None
}

/// Gives entry `i` back: disarmed first, then freed if it still holds
/// `value` (a ringer that found it gone may have freed it already).
pub(crate) fn release(entries: &[AtomicU64; DOORBELLS], armed: &AtomicU64, i: usize, value: u64) {
    armed.fetch_and(!bit(i), Ordering::AcqRel);
    let _ = entries[i].compare_exchange(value, 0, Ordering::AcqRel, Ordering::Relaxed);
}

/// The waiter half: arms bit `i`, then re-checks `ready`, which must read
/// with SeqCst loads. `Some`: the condition already holds (the bit is
/// cleared again, though a ring may still come: harmless). `None`: armed;
/// the next waker rings the doorbell.
pub(crate) fn arm<T>(armed: &AtomicU64, i: usize, ready: impl FnOnce() -> Option<T>) -> Option<T> {
    // SeqCst: pairs with the waker's SeqCst load of `armed` (the Dekker
    // pair of the Signal protocol).
    armed.fetch_or(bit(i), Ordering::SeqCst);
    // The heavy fence, as a sleeper's (`signal::sleep_unless`): it pairs
    // with an asymmetric producer's light fence. A process that cannot
    // make it re-checks every `FENCELESS_SLICE` instead (the callers'
    // `recheck_after`).
    crate::loom::heavy_fence();
    let r = ready();
    if r.is_some() {
        disarm(armed, i);
    }
    r
}

/// Clears bit `i` (a wait given up or satisfied). `true` if it was still
/// set, i.e. no waker has taken this arm's ring.
pub(crate) fn disarm(armed: &AtomicU64, i: usize) -> bool {
    armed.fetch_and(!bit(i), Ordering::AcqRel) & bit(i) != 0
}

/// The waker half, after the caller's SeqCst change and `sc_fence`: rings
/// every armed doorbell once (see the module doc), freeing the entries of
/// doorbells found gone. Makes no call of `ring` when nothing is armed.
#[inline]
pub(crate) fn ring_armed(
    entries: &[AtomicU64; DOORBELLS],
    armed: &AtomicU64,
    mut ring: impl FnMut(u64) -> Rung,
) {
    // SeqCst: pairs with `arm`'s SeqCst fetch_or.
    let mut m = armed.load(Ordering::SeqCst);
    if m == 0 {
        return;
    }
    ring_slow(entries, armed, &mut m, &mut ring);
}

#[cold]
fn ring_slow(
    entries: &[AtomicU64; DOORBELLS],
    armed: &AtomicU64,
    m: &mut u64,
    ring: &mut impl FnMut(u64) -> Rung,
) {
    while *m != 0 {
        let i = m.trailing_zeros() as usize;
        *m &= *m - 1;
        if i >= DOORBELLS {
            // Bits past the table are never set by this build; a garbled
            // word must not index out of it. Clear them so they cost once.
            armed.fetch_and(!bit(i), Ordering::AcqRel);
            continue;
        }
        // One ringer per arm: the one whose fetch_and cleared the bit.
        if armed.fetch_and(!bit(i), Ordering::AcqRel) & bit(i) == 0 {
            continue;
        }
        // Acquire: pairs with `claim`'s Release CAS.
        let v = entries[i].load(Ordering::Acquire);
        if v != 0 && ring(v) == Rung::Gone {
            let _ = entries[i].compare_exchange(v, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn table() -> [AtomicU64; DOORBELLS] {
        std::array::from_fn(|_| AtomicU64::new(0))
    }

    #[test]
    fn nothing_armed_rings_nothing() {
        let (t, armed) = (table(), AtomicU64::new(0));
        let i = claim(&t, &armed, entry_value(7, 1), |_| false).unwrap();
        ring_armed(&t, &armed, |_| panic!("rang with nothing armed"));
        assert!(arm(&armed, i, || None::<()>).is_none());
        let mut rung = Vec::new();
        ring_armed(&t, &armed, |v| {
            rung.push(v);
            Rung::Rang
        });
        assert_eq!(rung, vec![entry_value(7, 1)]);
        // One arm, one ring: the next waker finds it disarmed.
        ring_armed(&t, &armed, |_| panic!("rang twice for one arm"));
        assert!(!disarm(&armed, i));
    }

    #[test]
    fn already_ready_leaves_it_disarmed() {
        let (t, armed) = (table(), AtomicU64::new(0));
        let i = claim(&t, &armed, entry_value(7, 1), |_| false).unwrap();
        assert_eq!(arm(&armed, i, || Some(5)), Some(5));
        assert_eq!(armed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_gone_doorbell_is_freed_and_dead_owners_are_reclaimed() {
        let (t, armed) = (table(), AtomicU64::new(0));
        let i = claim(&t, &armed, entry_value(9, 3), |_| false).unwrap();
        arm(&armed, i, || None::<()>);
        ring_armed(&t, &armed, |_| Rung::Gone);
        assert_eq!(t[i].load(Ordering::Relaxed), 0, "freed");
        // Fill the table with live owners: no room, until one dies.
        for n in 0..DOORBELLS as u32 {
            claim(&t, &armed, entry_value(100 + n, 1), |_| false).unwrap();
        }
        assert_eq!(claim(&t, &armed, entry_value(1, 1), |_| false), None);
        arm(&armed, 5, || None::<()>);
        let got = claim(&t, &armed, entry_value(1, 1), |v| entry_pid(v) == 105).unwrap();
        assert_eq!(got, 5);
        assert_eq!(
            armed.load(Ordering::Relaxed) & (1 << 5),
            0,
            "starts unarmed"
        );
        // Release frees only its own value.
        release(&t, &armed, 5, entry_value(2, 2));
        assert_eq!(t[5].load(Ordering::Relaxed), entry_value(1, 1));
        release(&t, &armed, 5, entry_value(1, 1));
        assert_eq!(t[5].load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_garbled_armed_word_costs_once_and_indexes_nothing() {
        let (t, armed) = (table(), AtomicU64::new(u64::MAX));
        let mut rung = 0;
        ring_armed(&t, &armed, |_| {
            rung += 1;
            Rung::Rang
        });
        assert_eq!(rung, 0, "no entry is taken");
        assert_eq!(armed.load(Ordering::Relaxed), 0);
    }
}
