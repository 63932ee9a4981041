//! Consumer groups: the table of durable cursors, and `head`, the oldest
//! position any group may still need.
//!
//! Everything here that changes who gates the ring runs under the admin
//! lock ([`AdminGuard`] is the proof), and is written so that a holder
//! killed at any point leaves a consistent table: a record becomes active
//! only by its last store, and stops being active by its first.
//!
//! Why a lock and not a lock-free min: a group created at `earliest` reads
//! `head` and starts there; a producer advancing `head` reads every group's
//! cursor and stores their minimum. Without mutual exclusion the producer
//! can miss the new group and move `head` past its start, and the slots it
//! is about to read get reused. Both are rare (group changes; the ring
//! looking full), so the lock costs the fast path nothing.

use crate::error::{Error, Result};
use crate::layout::{GroupRecord, MAX_GROUP_NAME, RingControl};
use crate::loom::{AtomicU64, Ordering};
use crate::options::Start;
use crate::protocol::lock::AdminGuard;

const FREE: u32 = 0;
/// `GroupRecord::state` of a group that exists (else `FREE`).
pub(crate) const ACTIVE: u32 = 1;

/// A snapshot of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Next seq it will be handed.
    pub next: u64,
    /// Every seq below this one is finished by the group.
    pub committed: u64,
    /// Messages published that it has not finished: `tail - committed`.
    pub lag: u64,
    /// Messages delivered to it (first deliveries).
    pub delivered: u64,
    /// Deliveries after the first (ack=manual).
    pub redelivered: u64,
    /// Messages acked (ack=manual).
    pub acked: u64,
    /// Messages nacked (ack=manual).
    pub nacked: u64,
    /// Leases that ran out or whose consumer died.
    pub expired: u64,
    /// Messages it moved to the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages whose time to live ran out before it finished them
    /// (dead-lettered with reason `expired`, or dropped with
    /// `OnExpiry::Discard`).
    pub messages_expired: u64,
    /// Messages leased to a consumer right now (ack=manual).
    pub in_flight: u64,
    /// Age in ns of its oldest unfinished message (0 if none).
    pub oldest_unacked_age_ns: u64,
    /// The ordering key of that oldest unfinished message, if it has one:
    /// the key that holds the group's low watermark (ack=manual).
    pub oldest_unacked_key: Option<Vec<u8>>,
    /// Ordering lanes with an unfinished message right now (ack=manual).
    pub busy_lanes: u64,
    /// Live consumers: 1 for an ack=auto consumer, any number with
    /// ack=manual.
    pub consumers: u64,
    /// Whether a live consumer is attached.
    pub consumer_attached: bool,
    /// CLOCK_REALTIME nanoseconds when it was created.
    pub created_ns: u64,
}

/// The group table of one queue.
pub(crate) struct Groups<'a> {
    pub records: &'a [GroupRecord],
    pub ctl: &'a RingControl,
    /// The spill's control, for the seq the next message gets while the
    /// queue spills (None: a queue that never spills, or a test twin).
    pub spill: Option<&'a crate::layout::SpillControl>,
    /// The journal's control (None: no journal): its cursor gates `head`,
    /// and what it retains extends what a group may start at or seek to.
    pub journal: Option<&'a crate::layout::SpillControl>,
}

impl Groups<'_> {
    /// The seq the next published message gets.
    fn end(&self) -> u64 {
        match self.spill {
            Some(sp) => crate::protocol::spill::end_seq(self.ctl, sp),
            None => self.ctl.tail.load(Ordering::Acquire),
        }
    }
}

fn store_name(rec: &GroupRecord, name: &str) {
    let mut buf = [0u8; MAX_GROUP_NAME];
    buf[..name.len()].copy_from_slice(name.as_bytes());
    for (i, word) in rec.name.iter().enumerate() {
        let v = u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
        word.store(v, Ordering::Relaxed);
    }
    rec.name_len.store(name.len() as u32, Ordering::Relaxed);
}

/// The record's name. Bytes from shared memory are checked, not trusted:
/// a garbled name reads as `None`.
pub(crate) fn load_group_name(rec: &GroupRecord) -> Option<String> {
    let len = rec.name_len.load(Ordering::Relaxed) as usize;
    if len == 0 || len > MAX_GROUP_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_GROUP_NAME];
    for (i, word) in rec.name.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    let name = std::str::from_utf8(&buf[..len]).ok()?;
    crate::options::check_group_name(name).ok()?;
    Some(name.to_string())
}

/// Owner word of a consumer: `pid << 32 | token`.
pub(crate) fn owner_pid(owner: u64) -> u32 {
    (owner >> 32) as u32
}

impl Groups<'_> {
    /// Index of the active group called `name`.
    pub(crate) fn find(&self, _g: &AdminGuard<'_>, name: &str) -> Option<usize> {
        self.records.iter().position(|r| {
            r.state.load(Ordering::Acquire) == ACTIVE && load_group_name(r).as_deref() == Some(name)
        })
    }

    /// Resolves a start to a position in `head ..= tail` (with a journal,
    /// from the journal's oldest retained seq).
    fn resolve(&self, start: Start) -> u64 {
        let mut head = self.ctl.head.load(Ordering::Acquire);
        let tail = self.end().max(head);
        if let Some(j) = self.journal {
            if j.segments.load(Ordering::Relaxed) > 0 {
                head = head.min(j.read_seq.load(Ordering::Acquire));
            }
        }
        match start {
            Start::Earliest => head,
            Start::Latest => tail,
            Start::Seq(n) => n.clamp(head, tail),
        }
    }

    /// Creates group `name` starting at `start`.
    pub(crate) fn create(
        &self,
        g: &AdminGuard<'_>,
        name: &str,
        start: Start,
        now_ns: u64,
    ) -> Result<usize> {
        if self.find(g, name).is_some() {
            return Err(Error::Exists(format!("group {name:?}")));
        }
        let Some(idx) = self
            .records
            .iter()
            .position(|r| r.state.load(Ordering::Acquire) == FREE)
        else {
            return Err(Error::Busy(format!(
                "all {} group records are in use (max_groups); delete a group first",
                self.records.len()
            )));
        };
        let rec = &self.records[idx];
        store_name(rec, name);
        let pos = self.resolve(start);
        rec.committed.store(pos, Ordering::Relaxed);
        rec.next.store(pos, Ordering::Relaxed);
        for c in [
            &rec.delivered,
            &rec.redelivered,
            &rec.acked,
            &rec.nacked,
            &rec.expired,
            &rec.dead_lettered,
            &rec.messages_expired,
            &rec.redeliver_hint,
            &rec.redrive,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        rec.owner.store(0, Ordering::Relaxed);
        rec.owner_key.store(0, Ordering::Relaxed);
        rec.created_ns.store(now_ns, Ordering::Relaxed);
        rec.generation.fetch_add(1, Ordering::Relaxed);
        // Release: the record's fields are visible to whoever sees ACTIVE
        // (Acquire in `find`, `min_committed`, `list`). Last store: a
        // holder killed before it leaves the record free.
        rec.state.store(ACTIVE, Ordering::Release);
        Ok(idx)
    }

    /// Deletes group `name`, unless a live consumer other than `me_owner`
    /// is attached.
    pub(crate) fn delete(
        &self,
        g: &AdminGuard<'_>,
        name: &str,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Result<()> {
        let idx = self
            .find(g, name)
            .ok_or_else(|| Error::NotFound(format!("group {name:?}")))?;
        let rec = &self.records[idx];
        self.check_unowned(rec, name, 0, alive)?;
        // First store: from here on no one counts it in `head`.
        rec.state.store(FREE, Ordering::Release);
        rec.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    fn check_unowned(
        &self,
        rec: &GroupRecord,
        name: &str,
        me_owner: u64,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Result<()> {
        let owner = rec.owner.load(Ordering::Acquire);
        if owner != 0 && owner != me_owner {
            let start = rec.owner_key.load(Ordering::Acquire);
            if alive(owner_pid(owner), start) {
                return Err(Error::Busy(format!(
                    "group {name:?} has a live consumer (pid {}); stop it first",
                    owner_pid(owner)
                )));
            }
        }
        Ok(())
    }

    /// The pid of group `idx`'s live ack=auto consumer, if any.
    pub(crate) fn live_owner(&self, idx: usize, alive: impl Fn(u32, u64) -> bool) -> Option<u32> {
        let rec = &self.records[idx];
        let owner = rec.owner.load(Ordering::Acquire);
        (owner != 0 && alive(owner_pid(owner), rec.owner_key.load(Ordering::Acquire)))
            .then_some(owner_pid(owner))
    }

    /// Moves group `idx` to `target` (clamped to `head ..= tail`); only its
    /// own consumer (`me_owner`) or nobody may be attached. Returns the
    /// position it now has.
    pub(crate) fn seek(
        &self,
        _g: &AdminGuard<'_>,
        idx: usize,
        name: &str,
        target: Start,
        me_owner: u64,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Result<u64> {
        let rec = &self.records[idx];
        self.check_unowned(rec, name, me_owner, alive)?;
        let pos = self.resolve(target);
        // Any interleaving of these two stores keeps committed ≥ head, so a
        // holder killed between them leaves nothing reusable that is read.
        // SeqCst on committed: a producer sleeping for space may be waiting
        // for this (see `Ring::notify_space`, called by the caller).
        rec.committed.store(pos, Ordering::SeqCst);
        rec.next.store(pos, Ordering::Release);
        rec.generation.fetch_add(1, Ordering::Release);
        Ok(pos)
    }

    /// Attaches consumer `owner` (of process start time `start`) to group
    /// `idx`, taking over from a dead consumer. A dead consumer's delivery
    /// in progress counts as delivered (ack=auto is at-most-once).
    // The hook between the two stores is the fault point's (the API
    // layer's), which this layer cannot name.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attach(
        &self,
        g: &AdminGuard<'_>,
        idx: usize,
        name: &str,
        owner: u64,
        start: u64,
        alive: impl Fn(u32, u64) -> bool,
        before_owner: impl FnOnce(),
    ) -> Result<()> {
        let _ = g;
        let rec = &self.records[idx];
        self.check_unowned(rec, name, owner, alive)?;
        // The key first, then the owner (the admin lock keeps other
        // attachers out): killed between them, the record shows the
        // previous owner (or none) beside our key, which then reads dead.
        // (The other way round, with the key cleared first, a consumer
        // killed in between left key 0, "being written", beside its pid:
        // a live ack=auto consumer for good, and every later one Busy.)
        rec.owner_key.store(start, Ordering::Release);
        before_owner();
        rec.owner.store(owner, Ordering::Release);
        let next = rec.next.load(Ordering::Acquire);
        if rec.committed.load(Ordering::Acquire) < next {
            rec.committed.store(next, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Detaches consumer `owner` if it is still the owner.
    pub(crate) fn detach(&self, idx: usize, owner: u64) {
        let rec = &self.records[idx];
        let _ = rec
            .owner
            .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The smallest committed cursor over active groups (and the journal's
    /// cursor). With a journal, a group below `head` replays from the
    /// journal and holds no ring slot: it is left out.
    pub(crate) fn min_committed(&self, _g: &AdminGuard<'_>) -> Option<u64> {
        // Relaxed: `head` moves only under the lock we hold. Acquire pairs
        // with the consumer's SeqCst store of committed, made after its
        // last read of the slots below it.
        self.min_cursor(self.ctl.head.load(Ordering::Relaxed), Ordering::Acquire)
    }

    /// [`min_committed`](Self::min_committed) without the lock, for a
    /// producer's estimate of the room (`head` as the caller read it):
    /// SeqCst loads, pairing with the consumers' SeqCst stores. Cursors only
    /// grow while a consumer runs, so it never promises room that is not
    /// there; the claim itself still goes through `head`, advanced under
    /// the lock.
    pub(crate) fn min_committed_unlocked(&self, head: u64) -> Option<u64> {
        self.min_cursor(head, Ordering::SeqCst)
    }

    fn min_cursor(&self, head: u64, order: Ordering) -> Option<u64> {
        let journal = self.journal.map(|j| j.end_seq.load(order));
        self.records
            .iter()
            .filter(|r| r.state.load(Ordering::Acquire) == ACTIVE)
            .map(|r| r.committed.load(order))
            .filter(|&c| journal.is_none() || c >= head)
            .chain(journal)
            .min()
    }

    /// Moves `head` up to the slowest group, if any group exists; with no
    /// group, everything is retained. Returns the new head.
    #[cfg(any(test, loom))]
    pub(crate) fn advance_head(&self, g: &AdminGuard<'_>) -> u64 {
        self.advance_head_settling(g, |_, _| {})
    }

    /// [`advance_head`](Self::advance_head), calling `passing(from, to)`
    /// just before `head` moves from `from` to `to`: the last moment the
    /// slots of `from..to` still say what became of their positions (the
    /// dedup table writes down its keyed ones there).
    pub(crate) fn advance_head_settling(
        &self,
        g: &AdminGuard<'_>,
        passing: impl FnOnce(u64, u64),
    ) -> u64 {
        let head = self.ctl.head.load(Ordering::Relaxed);
        match self.min_committed(g) {
            Some(min) if min > head => {
                passing(head, min);
                // Release pairs with the Acquire load in `Ring::claim`.
                self.ctl.head.store(min, Ordering::Release);
                min
            }
            _ => head,
        }
    }

    /// Snapshot of every active group, with its record index. The fields
    /// that need the leases, the registry or the ring (`in_flight`,
    /// `oldest_unacked_age_ns`, ack=manual `consumers`) are filled in by the
    /// caller. Under the admin lock, no group is made or deleted meanwhile;
    /// without it ([`list_now`](Self::list_now)) the snapshot may miss one
    /// that is.
    pub(crate) fn list(
        &self,
        _g: &AdminGuard<'_>,
        alive: impl Fn(u32, u64) -> bool,
    ) -> Vec<(usize, GroupInfo)> {
        self.list_now(alive)
    }

    /// [`list`](Self::list) without the admin lock, for a look that must
    /// not wait on a stopped holder: every field is an atomic, and a name
    /// being written reads as none (the group is left out).
    pub(crate) fn list_now(&self, alive: impl Fn(u32, u64) -> bool) -> Vec<(usize, GroupInfo)> {
        let tail = self.end();
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state.load(Ordering::Acquire) == ACTIVE)
            .filter_map(|(i, r)| {
                let name = load_group_name(r)?;
                let committed = r.committed.load(Ordering::Acquire);
                let owner = r.owner.load(Ordering::Acquire);
                let attached =
                    owner != 0 && alive(owner_pid(owner), r.owner_key.load(Ordering::Acquire));
                let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
                Some((
                    i,
                    GroupInfo {
                        name,
                        next: r.next.load(Ordering::Acquire),
                        committed,
                        lag: tail.saturating_sub(committed),
                        delivered: n(&r.delivered),
                        redelivered: n(&r.redelivered),
                        acked: n(&r.acked),
                        nacked: n(&r.nacked),
                        expired: n(&r.expired),
                        dead_lettered: n(&r.dead_lettered),
                        messages_expired: n(&r.messages_expired),
                        in_flight: 0,
                        oldest_unacked_age_ns: 0,
                        oldest_unacked_key: None,
                        busy_lanes: 0,
                        consumers: attached as u64,
                        consumer_attached: attached,
                        created_ns: n(&r.created_ns),
                    },
                ))
            })
            .collect()
    }
}

/// Cursor helpers used by a consumer on its own record.
pub(crate) fn generation(rec: &GroupRecord) -> u32 {
    rec.generation.load(Ordering::Acquire)
}

/// The consumer's store of its committed cursor: SeqCst, the waker half of
/// the space Signal (a producer may sleep until it moves), and Release for
/// the reads of the slots below it (pairs with `min_committed`'s Acquire).
#[inline(always)]
pub(crate) fn commit_cursor(c: &AtomicU64, pos: u64) {
    c.store(pos, Ordering::SeqCst);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::AdminLock;
    use crate::protocol::lock::ThisProcess;

    #[test]
    fn create_find_delete_and_head() {
        let ctl = RingControl::new();
        let records: Vec<GroupRecord> = (0..2).map(|_| GroupRecord::new()).collect();
        let lock = AdminLock::new();
        let me = ThisProcess { pid: 1, key: 4 };
        let groups = Groups {
            records: &records,
            ctl: &ctl,
            spill: None,
            journal: None,
        };
        ctl.tail.store(10, Ordering::Relaxed);
        let g = lock.lock(me, |_, _| true);
        assert_eq!(groups.advance_head(&g), 0, "no group: retain everything");
        let a = groups.create(&g, "a", Start::Earliest, 1).unwrap();
        let b = groups.create(&g, "b", Start::Latest, 1).unwrap();
        assert!(matches!(
            groups.create(&g, "a", Start::Earliest, 1),
            Err(Error::Exists(_))
        ));
        assert!(matches!(
            groups.create(&g, "c", Start::Earliest, 1),
            Err(Error::Busy(_))
        ));
        assert_eq!(records[a].next.load(Ordering::Relaxed), 0);
        assert_eq!(records[b].next.load(Ordering::Relaxed), 10);
        assert_eq!(groups.advance_head(&g), 0);
        records[a].committed.store(7, Ordering::Relaxed);
        assert_eq!(groups.advance_head(&g), 7);
        groups.delete(&g, "a", |_, _| true).unwrap();
        assert_eq!(groups.advance_head(&g), 10);
        assert_eq!(groups.find(&g, "a"), None);
        // Seq start is clamped to head ..= tail.
        let c = groups.create(&g, "c", Start::Seq(3), 1).unwrap();
        assert_eq!(records[c].next.load(Ordering::Relaxed), 10);
        let names: Vec<String> = groups
            .list(&g, |_, _| true)
            .into_iter()
            .map(|(_, i)| i.name)
            .collect();
        assert_eq!(names, ["c", "b"]);
    }

    #[test]
    fn live_owner_blocks_delete_and_seek() {
        let ctl = RingControl::new();
        let records: Vec<GroupRecord> = (0..1).map(|_| GroupRecord::new()).collect();
        let lock = AdminLock::new();
        let me = ThisProcess { pid: 1, key: 4 };
        let groups = Groups {
            records: &records,
            ctl: &ctl,
            spill: None,
            journal: None,
        };
        let g = lock.lock(me, |_, _| true);
        let a = groups.create(&g, "a", Start::Earliest, 1).unwrap();
        let owner = (5u64 << 32) | 1;
        groups
            .attach(&g, a, "a", owner, 0, |_, _| true, || {})
            .unwrap();
        assert!(matches!(
            groups.attach(&g, a, "a", (6u64 << 32) | 1, 0, |_, _| true, || {}),
            Err(Error::Busy(_))
        ));
        assert!(matches!(
            groups.seek(&g, a, "a", Start::Latest, 0, |_, _| true),
            Err(Error::Busy(_))
        ));
        assert!(
            groups
                .seek(&g, a, "a", Start::Latest, owner, |_, _| true)
                .is_ok()
        );
        assert!(matches!(
            groups.delete(&g, "a", |_, _| true),
            Err(Error::Busy(_))
        ));
        // The owner died: others may take over.
        groups
            .attach(&g, a, "a", (6u64 << 32) | 1, 0, |_, _| false, || {})
            .unwrap();
        groups.detach(a, (6u64 << 32) | 1);
        groups.delete(&g, "a", |_, _| true).unwrap();
    }
}
