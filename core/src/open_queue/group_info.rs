//! A group as an operator sees it: its cursors and lag, its consumers,
//! its leases and busy lanes, and the oldest message it has not finished
//! wherever that message is — in the journal (a group replaying), the ring,
//! or the spill (`Queue::groups`, `shmq stat`/`top`, the exporter).

use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::os;
use crate::protocol::group::{GroupInfo, load_group_name, owner_pid};
use crate::protocol::registry::Registry;
use crate::protocol::ring::Peek;
use crate::record::envelope;
use crate::record::read;

impl OpenQueue {
    /// Every group of the queue, in table order, with its live figures
    /// (`Queue::groups`).
    pub(crate) fn group_infos(&self) -> Vec<GroupInfo> {
        // A live holder that keeps the admin lock (a process stopped while
        // holding it) must not hang a look at the queue: the groups as
        // their records say now, and no look into the spill.
        let (list, spill_front) = match self.lock_within(crate::open_queue::STATS_PATIENCE) {
            Some(g) => (
                self.groups().list(&g, |p, k| self.alive(p, k)),
                self.spill_front(&g),
            ),
            None => (self.groups().list_now(|p, k| self.alive(p, k)), None),
        };
        let registry = Registry {
            records: self.consumer_records(),
        };
        let ring = self.ring();
        let head = ring.ctl.head.load(Ordering::Acquire);
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        let now = os::clock::realtime_ns();
        list.into_iter()
            .map(|(idx, mut info)| {
                if let Some(leases) = self.leases_in_use(idx) {
                    info.in_flight = leases.in_flight();
                    info.busy_lanes = leases.busy_lanes();
                }
                info.consumers += registry.count(idx, |p, k| self.alive(p, k));
                info.consumer_attached = info.consumers > 0;
                // The oldest unfinished message is the first one at or
                // after the group's committed cursor, wherever it is: in
                // the journal (a group replaying), the ring, or the spill
                // (the ring's messages all finished, the rest on disk).
                let oldest = if info.committed < head {
                    self.journal_message_at(info.committed)
                } else {
                    ring.records(info.committed, tail)
                        .take(64)
                        .find(|&(_, p)| matches!(p, Peek::Ready(_)))
                        .map(|(p, _)| p)
                        .map(|p| {
                            // SAFETY: a slot of the mapping (at worst a
                            // stale reading if it is being reused now).
                            let ts = unsafe { read::timestamp_now(ring.slots.slot(p)) };
                            (ts, ordering_key_at(self, p))
                        })
                        .or_else(|| {
                            (info.committed >= tail && info.lag > 0)
                                .then(|| spill_front.clone())
                                .flatten()
                        })
                };
                if let Some((ts, key)) = oldest {
                    info.oldest_unacked_age_ns = now.saturating_sub(ts);
                    info.oldest_unacked_key = key;
                }
                info
            })
            .collect()
    }
}

impl OpenQueue {
    /// The live consumers of other processes, as (pid, group name), in
    /// table order: an ack=auto group's one consumer, then the ack=manual
    /// consumers (their pids as the processes themselves see them).
    pub(crate) fn others_live_consumers(&self) -> Vec<(u32, String)> {
        let records = self.group_records();
        let name_of = |idx: usize| {
            records
                .get(idx)
                .and_then(load_group_name)
                .unwrap_or_else(|| format!("#{idx}"))
        };
        let mut out = Vec::new();
        for (idx, r) in records.iter().enumerate() {
            let owner = r.owner.load(Ordering::Acquire);
            let key = r.owner_key.load(Ordering::Acquire);
            if r.state.load(Ordering::Acquire) == crate::protocol::group::ACTIVE
                && owner != 0
                && key != self.me.key
                && self.alive(owner_pid(owner), key)
            {
                out.push((owner_pid(owner), name_of(idx)));
            }
        }
        for r in self.consumer_records() {
            let owner = r.owner.load(Ordering::Acquire);
            let group = r.group.load(Ordering::Acquire);
            let key = r.owner_key.load(Ordering::Acquire);
            if owner != 0 && group != 0 && key != self.me.key && self.alive(owner_pid(owner), key) {
                out.push((owner_pid(owner), name_of(group as usize - 1)));
            }
        }
        out
    }
}

/// The ordering key of the message in position `p`, copied out for stats
/// (at worst garbage or None if the slot is being reused right now: the
/// copy is checked before it is parsed).
fn ordering_key_at(this: &OpenQueue, p: u64) -> Option<Vec<u8>> {
    let slot = this.ring().slots.slot(p);
    // SAFETY: a slot of the mapping, of `slot_size` bytes of body.
    let body = unsafe { read::copy_enveloped_body(slot, this.geo.slot_size as usize) }?;
    envelope::owned(&body, true).ordering_key
}
