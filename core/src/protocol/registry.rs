//! The consumer registry: one record per live ack=manual consumer, so that
//! a lease can name its holder in 12 bits and anyone can ask whether that
//! holder's process still lives (its liveness key: `os/liveness.rs`, which
//! holds across PID namespaces). A record whose owner died is taken over by the next consumer
//! that needs one, after it hands the dead owner's leases back.

use crate::error::{Error, Result};
use crate::layout::ConsumerRecord;
use crate::loom::{AtomicU64, Ordering};
use crate::protocol::group::owner_pid;
use crate::protocol::lock::ThisProcess;

/// The registry of one queue.
pub(crate) struct Registry<'a> {
    pub records: &'a [ConsumerRecord],
}

/// A record just taken: its index, and whether its previous owner died
/// holding it (then its leases must be handed back).
pub(crate) struct Taken {
    pub index: u32,
    pub was_dead: bool,
}

/// Takes a record whose `owner` word was `cur` (0: free; else a dead
/// owner's, whose key was `key`) for `owner`; the caller then stores its
/// own key. The dead owner's key is cleared first (0 reads "being
/// written"), then `owner` is taken: otherwise another taker could read
/// our pid beside the dead owner's key in between, judge us dead and take
/// the record a second time. A free record's key is 0 already (its last
/// owner cleared it first). Consumer and producer records both use it.
pub(crate) fn take_record(
    owner_word: &AtomicU64,
    owner_key: &AtomicU64,
    cur: u64,
    key: u64,
    owner: u64,
) -> bool {
    (cur == 0
        || owner_key
            .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok())
        && owner_word
            .compare_exchange(cur, owner, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

impl Registry<'_> {
    /// Takes a free record (or one whose owner died) for consumer `owner`
    /// of group `group`.
    pub(crate) fn register(
        &self,
        owner: u64,
        me: ThisProcess,
        group: usize,
        now_ns: u64,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Result<Taken> {
        for (i, rec) in self.records.iter().enumerate() {
            let cur = rec.owner.load(Ordering::Acquire);
            let key = rec.owner_key.load(Ordering::Acquire);
            let dead = cur != 0 && !alive(owner_pid(cur), key);
            if (cur == 0 || dead) && take_record(&rec.owner, &rec.owner_key, cur, key, owner) {
                rec.owner_key.store(me.key, Ordering::Release);
                rec.heartbeat_ns.store(now_ns, Ordering::Relaxed);
                rec.group.store(group as u64 + 1, Ordering::Release);
                return Ok(Taken {
                    index: i as u32,
                    was_dead: dead,
                });
            }
        }
        Err(Error::Busy(format!(
            "all {} consumer records are in use by live ack=manual consumers",
            self.records.len()
        )))
    }

    /// Gives record `index` up (a consumer dropped cleanly).
    pub(crate) fn unregister(&self, index: u32, owner: u64) {
        let rec = &self.records[index as usize];
        rec.group.store(0, Ordering::Relaxed);
        rec.owner_key.store(0, Ordering::Release);
        let _ = rec
            .owner
            .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Marks consumer `index` as having just called receive.
    #[inline]
    pub(crate) fn heartbeat(&self, index: u32, now_ns: u64) {
        self.records[index as usize]
            .heartbeat_ns
            .store(now_ns, Ordering::Relaxed);
    }

    /// Whether the consumer at `index` lives.
    pub(crate) fn alive(&self, index: u32, alive: impl Fn(u32, u64) -> bool) -> bool {
        let Some(rec) = self.records.get(index as usize) else {
            return false;
        };
        let owner = rec.owner.load(Ordering::Acquire);
        owner != 0 && alive(owner_pid(owner), rec.owner_key.load(Ordering::Acquire))
    }

    /// Live consumers of group `group`.
    pub(crate) fn count(&self, group: usize, alive: impl Fn(u32, u64) -> bool) -> u64 {
        self.records
            .iter()
            .filter(|r| {
                let owner = r.owner.load(Ordering::Acquire);
                r.group.load(Ordering::Acquire) == group as u64 + 1
                    && owner != 0
                    && alive(owner_pid(owner), r.owner_key.load(Ordering::Acquire))
            })
            .count() as u64
    }
}
