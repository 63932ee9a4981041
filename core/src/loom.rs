//! The one switch between std and loom (tokio's name for such a module).
//!
//! Every protocol in this crate (ring claim/commit/abort, gating, wake-ups,
//! the admin lock) takes its atomics from here, so the same code runs on the
//! queue file's mapping in production and on heap-built layouts under
//! `RUSTFLAGS="--cfg loom"`, where loom explores its interleavings.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// loom treats `SeqCst` loads, stores and read-modify-writes as `AcqRel`
/// (its README says so), so a Dekker pair written with `SeqCst` accesses —
/// which the C++20 model makes correct through the single total order `S` —
/// would be reported as broken. Under loom we add the `SeqCst` fence that
/// those accesses imply; in production it is nothing, and the `SeqCst`
/// accesses themselves (a `lock cmpxchg` and a plain `mov` on x86) carry the
/// guarantee.
#[inline(always)]
pub(crate) fn sc_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// The light half of an asymmetric fence (`os/fence.rs`): a compiler
/// barrier only, on the publish path. It orders the stores and loads
/// around it against a heavy fence made by another thread, and against
/// nothing else. Under loom it is a SeqCst fence: what the heavy fence
/// makes of it when the two meet (the models pair it with
/// [`heavy_fence`], which is one too).
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
}

/// The heavy half of an asymmetric fence: `membarrier(2)` in production
/// (`os::fence::heavy`), a SeqCst fence under loom. False when this
/// process cannot make it (then only a SeqCst fence was made, which
/// pairs with other SeqCst accesses but not with light fences).
#[inline]
pub(crate) fn heavy_fence() -> bool {
    #[cfg(not(loom))]
    return crate::os::fence::heavy();
    #[cfg(loom)]
    {
        loom::sync::atomic::fence(Ordering::SeqCst);
        true
    }
}

/// A named fault point (`os/fault.rs`) for the protocols, which reach the
/// OS only through this module: nothing under loom, and nothing at all
/// without the `fault-points` feature.
#[inline(always)]
pub(crate) fn fault_point(name: &'static str) {
    #[cfg(not(loom))]
    crate::os::fault::point(name);
    #[cfg(loom)]
    let _ = name;
}

/// What ringing an async waiter's doorbell found (`protocol/doorbell.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rung {
    /// Rung (or already ringing: its queue of rings was full).
    Rang,
    /// Nobody listens at that name any more: its process is gone.
    Gone,
}

/// Ringing a doorbell by its id: `sendto(2)` in production, a count under
/// loom.
pub(crate) mod doorbell {
    use super::Rung;

    /// Rings doorbell `id` of the doorbell table at address `table`.
    #[cfg(not(loom))]
    pub(crate) fn ring(table: usize, id: u64) -> Rung {
        if crate::os::doorbell::ring_at(table, id) {
            Rung::Rang
        } else {
            Rung::Gone
        }
    }

    // Under loom a ring is counted, per doorbell id, for the models to
    // check "one arm, at most one ring" and "no lost ring".
    #[cfg(loom)]
    loom::lazy_static! {
        static ref RUNG: loom::sync::Mutex<Vec<u64>> = loom::sync::Mutex::new(Vec::new());
    }

    #[cfg(loom)]
    pub(crate) fn ring(_table: usize, id: u64) -> Rung {
        RUNG.lock().unwrap().push(id);
        Rung::Rang
    }

    /// How many times doorbell `id` was rung in this loom execution.
    #[cfg(loom)]
    pub(crate) fn rung(id: u64) -> usize {
        RUNG.lock().unwrap().iter().filter(|&&r| r == id).count()
    }
}

/// One iteration of a busy wait.
#[inline(always)]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Sleeping on a 32-bit word in shared memory (a futex) and waking it.
pub(crate) mod futex {
    use super::AtomicU32;
    use std::time::Duration;

    /// Sleeps while `word` holds `expected`, for at most `timeout`.
    /// Returns early on a wake, a signal, a spurious wake-up or a value
    /// change; callers re-check their condition in a loop.
    #[cfg(not(loom))]
    pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
        crate::os::futex::wait(word, expected, timeout);
    }

    /// Wakes every sleeper on `word`, in any process; returns how many
    /// were woken.
    #[cfg(not(loom))]
    pub(crate) fn wake_all(word: &AtomicU32) -> usize {
        crate::os::futex::wake_all(word)
    }

    // Under loom a futex is a condition variable: the value check happens
    // under the mutex, as the kernel checks it under its hash-bucket lock, so
    // a wake between check and sleep is never missed. Timeouts are ignored
    // (the sleeper waits as if forever), which is what makes a lost wake-up
    // show up as a deadlock in the model.
    #[cfg(loom)]
    loom::lazy_static! {
        static ref PARK: (loom::sync::Mutex<()>, loom::sync::Condvar) =
            (loom::sync::Mutex::new(()), loom::sync::Condvar::new());
    }

    #[cfg(loom)]
    pub(crate) fn wait(word: &AtomicU32, expected: u32, _timeout: Duration) {
        let guard = PARK.0.lock().unwrap();
        if word.load(super::Ordering::SeqCst) == expected {
            drop(PARK.1.wait(guard).unwrap());
        }
    }

    #[cfg(loom)]
    pub(crate) fn wake_all(_word: &AtomicU32) -> usize {
        let _guard = PARK.0.lock().unwrap();
        PARK.1.notify_all();
        1
    }
}
