//! The admin lock: a robust spin lock in the queue file for the rare
//! operations that change who gates the ring (group create, delete, seek,
//! advancing `head`). Never taken on the publish or receive fast path.

use crate::layout::AdminLock;
use crate::loom::{Ordering, spin_hint};

/// Who we are, for lock and ownership records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThisProcess {
    pub pid: u32,
    /// Our liveness key (`os/liveness.rs`): what records store beside
    /// our pid, and how other processes, in any PID namespace, ask
    /// whether we live.
    pub key: u64,
}

/// How many failed attempts between two checks that the holder still lives.
const CHECK_EVERY: u32 = 256;

/// Holds the admin lock until dropped.
pub(crate) struct AdminGuard<'a> {
    lock: &'a AdminLock,
}

impl AdminLock {
    /// Takes the lock, taking it over from a holder whose process died.
    pub(crate) fn lock(&self, me: ThisProcess, alive: impl Fn(u32, u64) -> bool) -> AdminGuard<'_> {
        let mut tries: u32 = 0;
        loop {
            // Acquire pairs with the Release in `AdminGuard::drop`: what the
            // last holder wrote is visible to us.
            // Acquire on failure too: a holder seen here comes with the
            // `holder_key` its predecessor cleared (the Release in
            // `AdminGuard::drop` heads the sequence our read continues),
            // never an older holder's start time.
            let holder = match self.holder.compare_exchange_weak(
                0,
                me.pid,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(h) => h,
            };
            tries = tries.wrapping_add(1);
            if holder != 0 && holder != me.pid && tries % CHECK_EVERY == 0 {
                let start = self.holder_key.load(Ordering::Acquire);
                if !alive(holder, start) && self.take_from(holder, start, me) {
                    // The dead holder may have left a half-done change; every
                    // critical section is written so that any prefix of it
                    // is a consistent state (see protocol/group.rs).
                    break;
                }
            }
            if tries < 64 {
                spin_hint();
            } else {
                #[cfg(not(loom))]
                std::thread::yield_now();
                #[cfg(loom)]
                spin_hint();
            }
        }
        self.holder_key.store(me.key, Ordering::Release);
        AdminGuard { lock: self }
    }
}

impl AdminLock {
    /// Takes the lock from `holder` (whose start time was `start`), known
    /// dead. The taker first clears the dead holder's start time (0 reads
    /// "being written": `alive(pid, 0)` asks only whether the pid
    /// exists), then takes `holder`. Without that, a third waiter could
    /// pair our pid with the dead holder's start time in the instant
    /// before we store ours, judge us dead and take the lock a second
    /// time.
    fn take_from(&self, holder: u32, start: u64, me: ThisProcess) -> bool {
        self.holder_key
            .compare_exchange(start, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            && self
                .holder
                .compare_exchange(holder, me.pid, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the lock if it is free right now, or if its holder is dead
    /// (`alive` is asked only then): work that others may do too (the
    /// spill's refill, the journal) must not wait for ever behind a
    /// holder that was killed when nobody takes the lock with [`lock`].
    ///
    /// [`lock`]: AdminLock::lock
    pub(crate) fn try_lock_or_take(
        &self,
        me: ThisProcess,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Option<AdminGuard<'_>> {
        if let Some(g) = self.try_lock(me) {
            return Some(g);
        }
        let holder = self.holder.load(Ordering::Acquire);
        let start = self.holder_key.load(Ordering::Acquire);
        if holder == 0 || holder == me.pid || alive(holder, start) {
            return None;
        }
        if !self.take_from(holder, start, me) {
            return None;
        }
        self.holder_key.store(me.key, Ordering::Release);
        Some(AdminGuard { lock: self })
    }

    /// Takes the lock if it is free right now.
    pub(crate) fn try_lock(&self, me: ThisProcess) -> Option<AdminGuard<'_>> {
        // Acquire: as in `lock`.
        self.holder
            .compare_exchange(0, me.pid, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.holder_key.store(me.key, Ordering::Release);
        Some(AdminGuard { lock: self })
    }
}

impl Drop for AdminGuard<'_> {
    fn drop(&mut self) {
        self.lock.holder_key.store(0, Ordering::Relaxed);
        // Release pairs with the Acquire of the next holder.
        self.lock.holder.store(0, Ordering::Release);
    }
}
