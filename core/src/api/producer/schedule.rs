//! Publishing for later (`Meta::delay`, `Meta::deliver_at`, the queue's
//! `delivery_delay`) and moving due messages into the ring.
//!
//! A scheduled publish appends the message to the schedule
//! (`store/schedule.rs`) under the schedule lock and returns its schedule
//! id; it gets its seq when it is due and moved into the ring, like a
//! message published at that moment (`docs/design.md`, "Time"). Whoever
//! passes by moves what is due: a consumer that finds nothing (and wakes
//! for the next due time), a producer once per ring's worth of claims.
//! No process is dedicated to it, and with nothing
//! scheduled nobody looks: a publish of an unscheduled message costs one
//! test of a field of its producer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::schedule::ScheduleGuard;
use crate::open_queue::{OpenQueue, dedup};
use crate::options::{Meta, Overflow};
use crate::os;
use crate::protocol::schedule as moving;
use crate::record::envelope;
use crate::store::schedule::{Found, ToSchedule};

use super::{Body, Producer};

impl Producer {
    /// Schedules `payload` for `due_ns` (CLOCK_REALTIME, in the future);
    /// returns its schedule id.
    #[cold]
    #[inline(never)]
    pub(super) fn publish_scheduled(
        &mut self,
        payload: &[u8],
        meta: &Meta,
        due_ns: u64,
        deadline: Option<Instant>,
    ) -> Result<u64> {
        let max = os::clock::schedule_now_ns()
            .saturating_add(crate::options::MAX_DELAY.as_nanos() as u64);
        if due_ns > max {
            return Err(Error::InvalidOption(format!(
                "a message is due at most {} days ahead (shmq::MAX_DELAY)",
                crate::options::MAX_DELAY.as_secs() / 86_400
            )));
        }
        // Its time to live counts from when it is due.
        let expires = meta
            .ttl
            .map(|t| due_ns.saturating_add(t.as_nanos().min(u64::MAX as u128) as u64));
        if expires.is_some() {
            let seen = &self.shared.header().ttl_seen;
            if seen.load(Ordering::Relaxed) == 0 {
                seen.store(1, Ordering::Relaxed);
            }
        }
        let plan = envelope::plan(meta.ordering_key, &meta.headers, expires)?;
        self.check_size(payload.len(), plan.as_ref())?;
        let built = plan.as_ref().map(|p| p.body_with(payload));
        let shared = self.shared.clone();
        let reserved = match meta.key.map(|key| self.reserve_key(key)).transpose()? {
            Some(Err(first)) => return Ok(first),
            Some(Ok(i)) => Some(i),
            None => None,
        };
        let scheduled = (|| {
            let mut g = match deadline {
                None => shared
                    .schedule_lock(true)?
                    .expect("a waiting take always takes"),
                // The lock is held for a disk write or a pass of moves:
                // a publish with a deadline (or none to wait) waits no
                // longer than it says.
                Some(d) => loop {
                    if let Some(g) = shared.schedule_lock(false)? {
                        break g;
                    }
                    if Instant::now() >= d {
                        return Err(Error::Timeout);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                },
            };
            // Taken before anything is written (Relaxed: under the lock):
            // a record written and never counted keeps its id.
            let id = g.ctl().next_id.load(Ordering::Relaxed).max(1);
            g.ctl().next_id.store(id + 1, Ordering::Relaxed);
            os::fault::point("schedule.before_append");
            g.files().append(&ToSchedule {
                id,
                due_ns,
                key: meta.key.unwrap_or(0),
                timestamp_ns: os::clock::realtime_ns(),
                correlation_id: meta.correlation_id,
                type_id: meta.type_id,
                enveloped: built.is_some(),
                body: built.as_deref().unwrap_or(payload),
            })?;
            // The index is dirty here: a holder killed now leaves the
            // next one to rebuild it from the segments.
            os::fault::point("schedule.before_settle");
            g.files().settle()?;
            os::fault::point("schedule.appended");
            let before = g.ctl().next_due_ns.load(Ordering::Relaxed);
            let due = g.publish_state()?;
            if before == 0 || due < before {
                // Sleeping consumers cap their sleep by the earliest due
                // time: wake them to see the new one (`publish_state`'s
                // SeqCst store, then the Signal protocol's load).
                if shared.ring().notify_data() {
                    shared.repair_sleepers();
                }
            }
            Ok::<_, Error>(id)
        })();
        if matches!(scheduled, Err(Error::Timeout)) {
            // Only the lock's wait times out here: an async publisher
            // waits for it, not for room (`Producer::arm`).
            self.refused = super::Refused::ScheduleLock;
        }
        match (reserved, &scheduled) {
            (Some(i), Ok(id)) => dedup::remember_scheduled(&shared, i, *id),
            (Some(i), Err(_)) => dedup::abandon(&shared, self.record_index, i),
            (None, _) => {}
        }
        scheduled
    }

    /// Moves every message due by now into the ring (or the spill), in
    /// due order, holding the schedule lock `g`; stops at a full ring
    /// (never waiting: whoever frees room passes by again). Returns how
    /// many moved.
    pub(crate) fn move_due_locked(&mut self, g: &mut ScheduleGuard<'_>) -> Result<u64> {
        let now = os::clock::schedule_now_ns();
        let mut moved = 0;
        let mut damaged = None;
        let mut rebuilt = false;
        while let Some(e) = g.files().first()? {
            if e.due_ns > now {
                break;
            }
            let stored = match g.files().read(&e)? {
                Found::Whole(s) => s,
                // Moved or cancelled, the index not told: it goes.
                Found::Done => {
                    g.files().forget(0)?;
                    g.files().settle()?;
                    continue;
                }
                // The index is a cache of the segments: ask them once.
                Found::Damaged(_) if !rebuilt => {
                    rebuilt = true;
                    g.rebuild()?;
                    continue;
                }
                // Damaged on disk: reported, never delivered as read.
                Found::Damaged(err) => {
                    g.files().forget(0)?;
                    g.files().settle()?;
                    g.ctl().lost.fetch_add(1, Ordering::Relaxed);
                    damaged.get_or_insert(err);
                    continue;
                }
            };
            let span = self.span_of(stored.body.len());
            if self.overflow == Overflow::Reject && self.room() < span {
                // Not a rejected publish: it stays scheduled.
                break;
            }
            let ctl = g.ctl();
            moving::begin_move(ctl, e.id);
            os::fault::point("schedule.moving");
            let meta = Meta::new()
                .type_id(stored.type_id)
                .correlation_id(stored.correlation_id);
            let body = if stored.enveloped {
                Body::Enveloped
            } else {
                Body::Bare
            };
            let made = self.made;
            match self.publish_once(&stored.body, body, &meta, Some(made), |pos| {
                moving::claimed(ctl, pos);
                // Spilling, this is inside the append: the seq handed out,
                // nothing written.
                os::fault::point("schedule.claimed");
            }) {
                Ok(_) => {}
                // No room now, or a consumer aborted our claim: it stays
                // scheduled, and moves at the next pass.
                Err(Error::Timeout | Error::Full | Error::SpillFull(_) | Error::Aborted) => {
                    moving::end_move(g.ctl());
                    break;
                }
                Err(err) => {
                    moving::end_move(g.ctl());
                    return Err(err);
                }
            }
            os::fault::point("schedule.moved");
            g.files().finish(0)?;
            g.files().settle()?;
            moving::end_move(g.ctl());
            moved += 1;
        }
        g.publish_state()?;
        match damaged {
            Some(err) => Err(err),
            None => Ok(moved),
        }
    }

    /// Moves what is due if something is and nobody else is at it: a
    /// producer's pass-by, once per ring's worth of claims.
    ///
    /// Never fails the publish it passes by: a scheduled message's trouble
    /// (damage, a directory this process cannot use) is not this
    /// publish's; it is met again by whoever moves or lists.
    pub(super) fn move_due_passing(&mut self) {
        let due = self.shared.next_due_ns();
        if due == 0 || due > os::clock::schedule_now_ns() {
            return;
        }
        let shared = self.shared.clone();
        if let Ok(Some(mut g)) = shared.schedule_lock(false) {
            let _ = self.move_due_locked(&mut g);
        }
    }
}

/// Moves what is due into the ring if something is and nobody else is at
/// it (a consumer's pass-by); returns whether anything moved.
pub(crate) fn move_due(shared: &Arc<OpenQueue>) -> Result<bool> {
    let due = shared.next_due_ns();
    if due == 0 || due > os::clock::schedule_now_ns() {
        return Ok(false);
    }
    let Some(mut g) = shared.schedule_lock(false)? else {
        return Ok(false);
    };
    let mut p = Producer::new(shared.clone())?;
    Ok(p.move_due_locked(&mut g)? > 0)
}
