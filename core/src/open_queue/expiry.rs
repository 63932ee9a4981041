//! An expired message never holds the ring (SPEC guarantee 14). A group
//! with a live consumer passes its expired messages itself, as it reaches
//! them (`api/consumer/expiry.rs`). A group with none would keep them, and
//! with them every slot after them, until a consumer came: so a producer
//! that finds the ring full moves such a group past the expired messages
//! at its cursor, as its consumer would have — dead-lettered with reason
//! `expired`, or dropped — and counts them.
//!
//! Only a group with nothing in flight (`committed == next`) and no live
//! consumer is moved, under the admin lock, which consumers take to
//! attach. Dead-lettering copies the messages out under the lock, appends
//! them without it (an append may take it: the DLQ's overflow), then moves
//! the group under it again if nobody attached meanwhile. A consumer that
//! attached in between and read them makes their dead letters duplicates:
//! at least once, never lost.

use super::OpenQueue;
use super::dead_letters::{self as dlq, Entry, Reason};
use crate::loom::Ordering;
use crate::options::OnExpiry;
use crate::os;
use crate::protocol::registry::Registry;
use crate::protocol::ring::Peek;
use crate::record::envelope::Envelope;
use crate::record::read;

/// A producer looks at idle groups at most this often (it takes the
/// admin lock and asks every group's consumers whether they live).
const LOOK_EVERY_NS: u64 = 10_000_000;
/// At most this many messages are moved per look.
const MOST_PER_LOOK: usize = 256;

/// An expired message copied out of the ring, for the dead-letter queue.
struct Copied {
    seq: u64,
    timestamp_ns: u64,
    type_id: u32,
    correlation_id: u64,
    enveloped: bool,
    body: Vec<u8>,
}

/// One idle group's run of expired messages at its cursor.
struct Run {
    group: usize,
    created_ns: u64,
    start: u64,
    /// Where the group moves to: past the last message of the run.
    end: u64,
    /// Dead-lettering: the messages, in order, with the position past
    /// each.
    copies: Vec<(Copied, u64)>,
    count: u64,
}

impl OpenQueue {
    /// A producer found the ring full: moves every group with no live
    /// consumer and nothing in flight past the expired messages at its
    /// cursor. Returns whether any group moved (there may be room now).
    pub(crate) fn expire_for_idle_groups(&self) -> bool {
        // No message can expire: nothing to look for (one load).
        if self.config.message_ttl_ns == 0 && self.header().ttl_seen.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let looked = &self.expiry_looked;
        let now = os::clock::monotonic_ns();
        let last = looked.load(std::sync::atomic::Ordering::Relaxed);
        if (last != 0 && now.saturating_sub(last) < LOOK_EVERY_NS)
            || looked
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        // Only groups stopped at a message, with nothing in flight, can
        // be idle ones holding it: none, no lock.
        let tail =
            crate::protocol::spill::ring_tail(self.header().ring.tail.load(Ordering::Acquire));
        let stopped = self.group_records().iter().any(|r| {
            r.state.load(Ordering::Acquire) == crate::protocol::group::ACTIVE && {
                let n = r.next.load(Ordering::Acquire);
                n < tail && r.committed.load(Ordering::Acquire) == n
            }
        });
        if !stopped {
            return false;
        }
        let discard = OnExpiry::from_raw(self.config.on_expiry) == Some(OnExpiry::Discard);
        let runs = {
            // Never wait for the lock: a producer held by a full ring must
            // not hold up those who have it (the spill's and the DLQ's
            // refills take it only if it is free).
            let Some(g) = self.lock_unless_busy(false) else {
                return false;
            };
            let runs = self.idle_runs(discard);
            if discard {
                for r in &runs {
                    self.move_group(r, r.end, r.count);
                }
                if !runs.is_empty() {
                    self.advance_head_locked(&g);
                }
            }
            runs
        };
        if discard {
            if !runs.is_empty() {
                self.ring().notify_space();
            }
            return !runs.is_empty();
        }
        // Dead-lettering: append without the lock, then move each group
        // past what went in.
        let mut done = Vec::new();
        for r in &runs {
            let mut end = r.start;
            let mut count = 0;
            for (m, after) in &r.copies {
                let entry = Entry {
                    seq: m.seq,
                    redrives: 0,
                    group: r.group,
                    group_created_ns: r.created_ns,
                    attempts: 0,
                    reason: Reason::Expired,
                    first_ns: 0,
                    last_ns: 0,
                    timestamp_ns: m.timestamp_ns,
                    type_id: m.type_id,
                    correlation_id: m.correlation_id,
                    enveloped: m.enveloped,
                    payload: &m.body,
                };
                if dlq::append(self, &entry).is_err() {
                    // Full: the rest stays (it holds the ring as any
                    // unread message would; nothing is lost).
                    break;
                }
                end = *after;
                count += 1;
            }
            if count > 0 {
                done.push((r, end, count));
            }
        }
        if done.is_empty() {
            return false;
        }
        {
            // The letters are in the DLQ: this lock is worth waiting for.
            let g = self.lock();
            for (r, end, count) in &done {
                let rec = &self.group_records()[r.group];
                let (c, n) = (
                    rec.committed.load(Ordering::Acquire),
                    rec.next.load(Ordering::Acquire),
                );
                // The same group (not deleted, nor made again in its
                // record), still idle where it was.
                let same = rec.state.load(Ordering::Acquire) == crate::protocol::group::ACTIVE
                    && rec.created_ns.load(Ordering::Acquire) == r.created_ns;
                if same && c == r.start && n == r.start && !self.has_live_consumer(r.group) {
                    rec.dead_lettered.fetch_add(*count, Ordering::Relaxed);
                    self.move_group(r, *end, *count);
                }
            }
            self.advance_head_locked(&g);
        }
        self.ring().notify_space();
        true
    }

    /// Under the admin lock: the runs of expired messages at the cursors
    /// of the groups that have no live consumer and nothing in flight.
    fn idle_runs(&self, discard: bool) -> Vec<Run> {
        let ring = self.ring();
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        let head = ring.ctl.head.load(Ordering::Acquire);
        let ttl = self.config.message_ttl_ns;
        let now = os::clock::realtime_ns();
        let mut left = MOST_PER_LOOK;
        let mut runs = Vec::new();
        for (idx, rec) in self.group_records().iter().enumerate() {
            if left == 0 {
                break;
            }
            if rec.state.load(Ordering::Acquire) != crate::protocol::group::ACTIVE {
                continue;
            }
            let start = rec.next.load(Ordering::Acquire);
            // Below `head`, a group replays the journal and holds no ring
            // slot (nor are those slots held still for it).
            if start < head
                || rec.committed.load(Ordering::Acquire) != start
                || self.has_live_consumer(idx)
            {
                continue;
            }
            let mut run = Run {
                group: idx,
                created_ns: rec.created_ns.load(Ordering::Acquire),
                start,
                end: start,
                copies: Vec::new(),
                count: 0,
            };
            let mut pos = start;
            while pos < tail && left > 0 {
                let span = match ring.peek(pos) {
                    Peek::Ready(span) => span.min(self.geo.max_span()),
                    Peek::Skip(span) => {
                        pos += span.max(1);
                        continue;
                    }
                    Peek::Settling | Peek::NotYet(_) => break,
                };
                let slot = ring.slots.slot(pos);
                // Its record's own room bounds the length.
                let room = self.geo.body_room(span);
                // SAFETY: committed (an Acquire load), and held still: the
                // group's committed cursor is at or below `pos` (and at or
                // above `head`) and only moves under the admin lock we hold
                // while it has no consumer.
                let Ok(s) = (unsafe { read::stored_in_slot(slot, room) }) else {
                    break;
                };
                let env = if s.enveloped {
                    match Envelope::parse(s.body) {
                        Ok(e) => Some(e),
                        Err(_) => break,
                    }
                } else {
                    None
                };
                if env.is_some_and(|e| e.target.is_some()) {
                    // A redriven dead letter: no expiry (and maybe for
                    // another group): its consumer decides.
                    break;
                }
                // SAFETY: as above.
                match unsafe { read::expires_ns(slot, env.as_ref(), ttl) } {
                    Some(at) if at <= now => {}
                    _ => break,
                }
                pos += span;
                if !discard {
                    run.copies.push((
                        Copied {
                            seq: pos - span,
                            timestamp_ns: s.timestamp_ns,
                            type_id: s.type_id,
                            correlation_id: s.correlation_id,
                            enveloped: s.enveloped,
                            body: s.body.to_vec(),
                        },
                        pos,
                    ));
                }
                run.end = pos;
                run.count += 1;
                left -= 1;
            }
            if run.count > 0 {
                runs.push(run);
            }
        }
        runs
    }

    /// Whether group `idx` has a live consumer: an ack=auto owner, or an
    /// ack=manual one in the registry.
    fn has_live_consumer(&self, idx: usize) -> bool {
        self.groups()
            .live_owner(idx, |p, k| self.alive(p, k))
            .is_some()
            || Registry {
                records: self.consumer_records(),
            }
            .count(idx, |p, k| self.alive(p, k))
                > 0
    }

    /// Under the admin lock: moves group `r.group`'s cursors to `end`
    /// (nothing in flight, no consumer: both together) and counts `count`
    /// expired messages.
    fn move_group(&self, r: &Run, end: u64, count: u64) {
        let rec = &self.group_records()[r.group];
        rec.messages_expired.fetch_add(count, Ordering::Relaxed);
        rec.next.store(end, Ordering::Release);
        // SeqCst: as a consumer's store of `committed` (the waker half of
        // the space Signal; producers read it to move `head`).
        rec.committed.store(end, Ordering::SeqCst);
    }
}
