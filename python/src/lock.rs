//! The lock around a consumer's or producer's state.
//!
//! Every hot call takes it once: a CAS to lock and a plain release store to
//! unlock (a `std` mutex unlocks with a second locked instruction, to learn
//! whether to wake a sleeper). It is contended only by threads sharing one
//! handle; a waiter spins briefly, then yields, then naps — the longest
//! hold is one wait slice (50 ms) of a blocking receive or publish.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a `Guard`, and at most one
// guard exists at a time (the `locked` flag, taken by CAS with Acquire and
// given back with Release); so sharing the lock hands `T` between threads,
// which `T: Send` allows.
unsafe impl<T: Send> Sync for SpinLock<T> {}

pub(crate) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Guard { lock: self })
    }

    pub(crate) fn lock(&self) -> Guard<'_, T> {
        let mut round = 0u32;
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
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
        // Release: our writes to the value happen before the next holder's
        // Acquire CAS.
        self.lock.locked.store(false, Ordering::Release);
    }
}
