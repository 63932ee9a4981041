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
//! and tries again. A waiter never holds the GIL, so a holder that takes
//! the GIL back before giving the lock up (a wait slice ending) never
//! deadlocks with it.
//!
//! Fairness: a holder that waits in slices gives the lock back between
//! them with the GIL held and takes it again at once, before any waiter
//! could get the GIL; so between slices it calls
//! [`yield_to_waiters`](GilLock::yield_to_waiters), which lets the GIL go
//! until a waiter has taken the lock (or a few milliseconds pass). Without
//! it, a `close()` from another thread waited for a blocked `receive()` to
//! end.
//!
//! The GIL is always there: pyo3 refuses to import the module in a
//! sub-interpreter, and on a free-threaded CPython the module's import
//! turns the GIL back on (it declares that it uses the GIL: `gil_used =
//! true` in `lib.rs`), or fails where the GIL was forced off
//! (`refuse_without_gil` in `lib.rs`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pyo3::Python;

pub(crate) struct GilLock<T> {
    held: AtomicBool,
    /// Threads in `lock()` waiting for it (a hint for
    /// `yield_to_waiters`; it guards no data, so Relaxed throughout).
    waiting: AtomicU32,
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
            waiting: AtomicU32::new(0),
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
            self.waiting.fetch_add(1, Ordering::Relaxed);
            py.detach(|| self.wait_free());
            let got = self.try_lock(py);
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            if let Some(g) = got {
                return g;
            }
        }
    }

    /// Called with the lock free by a thread that is about to take it again
    /// after a wait slice: if another thread waits for it, lets the GIL go
    /// until that thread has the lock, or 10 ms pass.
    #[inline]
    pub(crate) fn yield_to_waiters(&self, py: Python<'_>) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        py.detach(|| {
            let start = Instant::now();
            let mut round = 0u32;
            while self.waiting.load(Ordering::Relaxed) > 0
                && !self.held.load(Ordering::Relaxed)
                && start.elapsed() < Duration::from_millis(10)
            {
                round = round.saturating_add(1);
                if round < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        });
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
