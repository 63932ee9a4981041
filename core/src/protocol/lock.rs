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
    ///
    /// The lock word is the holder's liveness key (`holder_key`): taking
    /// the lock and saying who holds it are one CAS, so a holder killed
    /// at any instant is known by its key and taken over. (The lock word
    /// was the pid, and the key was stored after it: a holder killed
    /// between the two left a key of 0, "being written", which reads as
    /// alive, and wedged every admin operation for good. Found by a
    /// 300 s chaos run.) `holder` is the pid, written after, for a
    /// liveness check where the key cannot be asked (no record locks):
    /// 0 until then.
    pub(crate) fn lock(&self, me: ThisProcess, alive: impl Fn(u32, u64) -> bool) -> AdminGuard<'_> {
        debug_assert_ne!(me.key, 0, "a liveness key is never 0: it is the lock word");
        let mut tries: u32 = 0;
        loop {
            // Acquire pairs with the Release in `AdminGuard::drop`: what the
            // last holder wrote is visible to us. Acquire on failure: a
            // holder's pid, if we look at it, is the one it wrote after
            // its key, or 0.
            let holder = match self.holder_key.compare_exchange_weak(
                0,
                me.key,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(k) => k,
            };
            tries = tries.wrapping_add(1);
            if holder != 0 && holder != me.key && tries % CHECK_EVERY == 0 {
                let pid = self.holder.load(Ordering::Acquire);
                if !alive(pid, holder) && self.take_from(holder, me) {
                    // The dead holder may have left a half-done change; every
                    // critical section is written so that any prefix of it
                    // is a consistent state (see protocol/group.rs).
                    return self.held_by(me);
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
        self.held_by(me)
    }

    /// Writes down our pid beside our key, now that the lock is ours.
    fn held_by(&self, me: ThisProcess) -> AdminGuard<'_> {
        crate::loom::fault_point("admin.taken");
        // Relaxed: read only by a waiter that loaded our key (Acquire),
        // and only as a fallback; 0 until then means "cannot tell".
        self.holder.store(me.pid, Ordering::Relaxed);
        AdminGuard { lock: self }
    }

    /// Takes the lock from the holder of key `dead`, known dead: one CAS
    /// from its key to ours, so two takers cannot both succeed.
    fn take_from(&self, dead: u64, me: ThisProcess) -> bool {
        // Acquire: what the dead holder wrote before it died.
        self.holder_key
            .compare_exchange(dead, me.key, Ordering::Acquire, Ordering::Relaxed)
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
        // Acquire: as in `lock`.
        let holder = self.holder_key.load(Ordering::Acquire);
        let pid = self.holder.load(Ordering::Acquire);
        if holder == 0 || holder == me.key || alive(pid, holder) {
            return None;
        }
        self.take_from(holder, me).then(|| self.held_by(me))
    }

    /// Takes the lock if it is free right now.
    pub(crate) fn try_lock(&self, me: ThisProcess) -> Option<AdminGuard<'_>> {
        // Acquire: as in `lock`.
        self.holder_key
            .compare_exchange(0, me.key, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        Some(self.held_by(me))
    }
}

impl Drop for AdminGuard<'_> {
    fn drop(&mut self) {
        // The pid first: the next holder's is 0 until it writes its own.
        self.lock.holder.store(0, Ordering::Relaxed);
        // Release pairs with the Acquire of the next holder.
        self.lock.holder_key.store(0, Ordering::Release);
    }
}
