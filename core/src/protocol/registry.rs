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

/// Takes a record whose key word was `seen` (0: free; else a dead
/// owner's) for `owner` of liveness key `key`, by one CAS of the key word:
/// the key is the claim, so a taker killed at any point leaves a record
/// the next one can judge (by that key: dead) and take. Then the caller
/// stores `owner` (`claim_owner`). Until it does, the record shows the
/// old owner's pid (or none) beside our key: alive, which it is. (Two
/// steps the other way round — the owner word first, the key after —
/// left a record whose taker died between them with key 0, "being
/// written", for good.) Consumer and producer records both use it.
pub(crate) fn take_record(owner_key: &AtomicU64, seen: u64, key: u64) -> bool {
    debug_assert!(key != 0, "a liveness key is never 0");
    // AcqRel: Acquire to see the dead owner's record whole; Release pairs
    // with the Acquire loads of readers that then see the record ours.
    owner_key
        .compare_exchange(seen, key, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Second step of [`take_record`]: the owner word, after the key.
pub(crate) fn claim_owner(owner_word: &AtomicU64, owner: u64) {
    // Release: a reader that loads our owner word (Acquire) then loads our
    // key, stored before it.
    owner_word.store(owner, Ordering::Release);
}

/// Gives a record up: the owner word first (a reader then sees no owner),
/// then the key, if it is still ours. A giver killed between them leaves
/// its key, which reads dead, and the next taker takes the record.
pub(crate) fn give_record(owner_word: &AtomicU64, owner_key: &AtomicU64, owner: u64, key: u64) {
    if owner_word
        .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        // Release: pairs with the takers' AcqRel CAS from 0.
        let _ = owner_key.compare_exchange(key, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
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
        before_owner: impl Fn(),
    ) -> Result<Taken> {
        for (i, rec) in self.records.iter().enumerate() {
            let key = rec.owner_key.load(Ordering::Acquire);
            let cur = rec.owner.load(Ordering::Acquire);
            let dead = key != 0 && !alive(owner_pid(cur), key);
            if (key == 0 || dead) && take_record(&rec.owner_key, key, me.key) {
                before_owner();
                claim_owner(&rec.owner, owner);
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

    /// Gives record `index` up (a consumer of key `key` dropped cleanly).
    pub(crate) fn unregister(&self, index: u32, owner: u64, key: u64) {
        let rec = &self.records[index as usize];
        rec.group.store(0, Ordering::Relaxed);
        give_record(&rec.owner, &rec.owner_key, owner, key);
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
