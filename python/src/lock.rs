//! The lock around a consumer's or producer's state.
//!
//! Every hot call takes it once, so it is taken without a locked
//! instruction: it can be *taken* only by a thread holding the GIL, and the
//! GIL (a mutex) already orders every two such threads, so a load that
//! finds it free and a plain store that marks it held are enough — no
//! other thread can take it in between. It may be *given back* without the
//! GIL (a blocking receive or publish holds it through a wait slice, up to
//! 50 ms, with the GIL released): that is a Release store, paired with the
//! Acquire load of the next taker.
//!
//! On a `lock()` that finds it held, the caller waits for it without the
//! GIL (spinning briefly, then yielding, then napping), takes the GIL back
//! and tries again; the holder never needs the GIL to give it back, so
//! there is no deadlock.
//!
//! The GIL is always there: the extension is built for the stable ABI,
//! which free-threaded CPython does not load, and pyo3 refuses to import
//! it in a sub-interpreter.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::Python;

pub(crate) struct GilLock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `Guard`, and at most one
// guard exists at a time (see the module doc: takers are serialized by the
// GIL, and a taker sees the previous holder's Release store of `false`
// before it makes a guard); so sharing the lock hands `T` between threads,
// which `T: Send` allows.
unsafe impl<T: Send> Sync for GilLock<T> {}

/// The held lock; may be moved to and dropped on a thread without the GIL.
pub(crate) struct Guard<'a, T> {
    lock: &'a GilLock<T>,
}

impl<T: Send> GilLock<T> {
    pub(crate) fn new(value: T) -> GilLock<T> {
        GilLock {
            held: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub(crate) fn try_lock(&self, _py: Python<'_>) -> Option<Guard<'_, T>> {
        // Acquire: pairs with the Release store of the guard's drop, so the
        // previous holder's writes to the value happen before ours (when it
        // gave the lock back without the GIL; with the GIL, the GIL orders
        // them too).
        if self.held.load(Ordering::Acquire) {
            return None;
        }
        // Relaxed: only GIL holders read this to take the lock, and the
        // GIL's own release/acquire orders this store before their loads;
        // a waiter without the GIL (`wait_free`) only uses it as a hint.
        self.held.store(true, Ordering::Relaxed);
        Some(Guard { lock: self })
    }

    /// Takes the lock: at once if it is free, else waiting for it without
    /// the GIL.
    #[inline]
    pub(crate) fn lock(&self, py: Python<'_>) -> Guard<'_, T> {
        loop {
            if let Some(g) = self.try_lock(py) {
                return g;
            }
            py.allow_threads(|| self.wait_free());
        }
    }

    /// Until the lock looks free (the caller then takes the GIL and tries).
    #[cold]
    fn wait_free(&self) {
        let mut round = 0u32;
        // Relaxed: a hint; `try_lock` re-reads with Acquire under the GIL.
        while self.held.load(Ordering::Relaxed) {
            round = round.saturating_add(1);
            if round < 64 {
                std::hint::spin_loop();
            } else if round < 128 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

impl<T> std::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock: no other guard, so no `&mut T`, exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock, and `&mut self` makes this the only view.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: our writes to the value happen before the next taker's
        // Acquire load in `try_lock`.
        self.lock.held.store(false, Ordering::Release);
    }
}
