//! The Signal protocol (see [`crate::layout::Signal`]): a waker's notify
//! after it made a condition true, a sleeper's futex wait until it is,
//! and the repair of the waiter bits of sleepers that died asleep. The
//! ring's commits and frees (`protocol/ring/`) wake through it, and the
//! async waiters' doorbells (`protocol/doorbell.rs`) ride on its notify.

use crate::layout::DOORBELLS;
use crate::loom::{AtomicU64, Ordering, futex, heavy_fence, light_fence};

/// The longest a waiter sleeps where no waker may know of it: with every
/// sleeper slot taken, or in a process that cannot make the heavy fence
/// (`os/fence.rs`), whose re-check may miss an asymmetric commit.
pub(crate) const FENCELESS_SLICE: std::time::Duration = std::time::Duration::from_millis(1);
use crate::protocol::doorbell::ring_armed;

/// The waker half of the Signal protocol (see [`crate::layout::Signal`])
/// and of the doorbell protocol (`protocol/doorbell.rs`) for the async
/// waiters armed on the same condition (`armed`, `bells`).
#[inline(always)]
pub(crate) fn notify(
    signal: &crate::layout::Signal,
    armed: &AtomicU64,
    bells: &[AtomicU64; DOORBELLS],
) -> bool {
    // After the caller's change (a SeqCst CAS or store, or an asymmetric
    // producer's plain store of COMMITTED): the light fence pairs with the
    // sleeper's heavy fence, and is a compiler barrier besides.
    light_fence();
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
    // The heavy fence: an asymmetric producer's commit is a plain store
    // and a light fence before its load of `waiters`. Without it (this
    // process cannot fence) a wake may be missed: sleep a moment only.
    let fenced = heavy_fence();
    let result = ready();
    if result.is_none() {
        let slice = match slot {
            Some(_) if fenced => slice,
            _ => slice.min(FENCELESS_SLICE),
        };
        futex::wait(&signal.word, word, slice);
    }
    if let Some(i) = slot {
        signal.waiters.fetch_and(!(1 << i), Ordering::SeqCst);
        sleepers[i].store(0, Ordering::Release);
    }
    result
}
