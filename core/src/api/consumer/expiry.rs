//! Expiry: a message whose time to live ran out (`Meta::ttl`, or the
//! queue's `message_ttl` from its timestamp) before this group finished
//! it is not given to the group any more. It is dead-lettered for the
//! group with reason `expired`, or, with `OnExpiry::Discard`, dropped;
//! either way the group's `messages_expired` counts it. Judged where a
//! message is handed out: ack=auto when the cursor reaches it, ack=manual
//! when a lease on it is taken (first delivery or redelivery). A message
//! already held by a worker is never taken back. Where the dead-letter
//! queue refuses it (full), it is delivered instead: late, not lost.

use super::*;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::dead_letters::{self as dlq, Entry, Reason};
use crate::options::OnExpiry;
use crate::os;
use crate::protocol::lease::HeldLease;
use crate::record::envelope::Envelope;
use crate::record::read;

/// What this group does with a committed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Judged {
    /// Give it to the group.
    Deliver,
    /// A dead letter redriven through the ring for another group: pass it
    /// by.
    OtherGroup,
    /// Its time to live ran out.
    Expired,
}

impl Consumer {
    /// Judges the committed message at `pos`: one flag test for a message
    /// without an envelope in a queue without `message_ttl`.
    #[inline(always)]
    pub(super) fn judge(&self, pos: u64) -> Judged {
        let slot = self.ring().slots.slot(pos);
        // SAFETY: the slot is committed (the caller peeked Ready, an
        // Acquire load); nobody rewrites it while our group's committed
        // cursor is at or below `pos`.
        let body = unsafe { read::enveloped_body(slot, self.max_room) };
        if body.is_none() && self.ttl_ns == 0 {
            return Judged::Deliver;
        }
        self.judge_slow(slot, body)
    }

    #[cold]
    #[inline(never)]
    fn judge_slow(&self, slot: *const u8, body: Option<&[u8]>) -> Judged {
        // A garbled envelope judges nothing: the receive reports it.
        let env = match body.map(Envelope::parse) {
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return Judged::Deliver,
            None => None,
        };
        if let Some(t) = env.and_then(|e| e.target) {
            // A redriven dead letter starts a new life: no expiry.
            return if self.is_us(t) {
                Judged::Deliver
            } else {
                Judged::OtherGroup
            };
        }
        // SAFETY: as in `judge`: the slot is committed and held still.
        match unsafe { read::expires_ns(slot, env.as_ref(), self.ttl_ns) } {
            Some(at) if at <= os::clock::realtime_ns() => Judged::Expired,
            _ => Judged::Deliver,
        }
    }

    /// ack=auto: the expired message at `pos` (the group's cursor) is
    /// dead-lettered or dropped, and counted: `true`, the caller passes
    /// it. `false`: the dead-letter queue refused it (or it could not be
    /// read): deliver it.
    #[cold]
    pub(super) fn expire_at_cursor(&mut self, pos: u64) -> bool {
        // A garbled record is delivered, and its receive reports it.
        let Ok(m) = self.read(pos) else {
            return false;
        };
        if self.on_expiry == OnExpiry::DeadLetter {
            let rec = self.record();
            let (payload, enveloped) = m.body();
            let entry = Entry {
                seq: pos,
                redrives: 0,
                group: self.group_index,
                group_created_ns: rec.created_ns.load(Ordering::Acquire),
                attempts: 0,
                reason: Reason::Expired,
                first_ns: 0,
                last_ns: 0,
                timestamp_ns: m.timestamp_ns,
                type_id: m.type_id,
                correlation_id: m.correlation_id,
                enveloped,
                payload,
            };
            if dlq::append(&self.shared, &entry).is_err() {
                return false;
            }
            rec.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        self.record()
            .messages_expired
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// ack=manual: a lease just taken on a message that may have expired.
    /// `Some`: deliver it; `None`: it expired and was dead-lettered or
    /// dropped (and counted), or its lease was lost meanwhile.
    pub(super) fn unless_expired(&self, held: HeldLease) -> Result<Option<HeldLease>> {
        if self.judge(held.pos) != Judged::Expired {
            return Ok(Some(held));
        }
        self.expire_leased(held)
    }

    #[cold]
    fn expire_leased(&self, held: HeldLease) -> Result<Option<HeldLease>> {
        let rec_expired =
            |c: &Consumer| c.record().messages_expired.fetch_add(1, Ordering::Relaxed);
        match self.on_expiry {
            OnExpiry::Discard => {
                let leases = self.leases();
                if leases.ack(&held).is_ok() {
                    rec_expired(self);
                    if held.keyed {
                        // The next message of its lane may be due now.
                        self.ring().notify_data();
                    }
                    self.shared.commit_finished(&leases);
                }
                Ok(None)
            }
            OnExpiry::DeadLetter => {
                let mut held = held;
                match self.dead_letter(&mut held, Reason::Expired, None) {
                    Ok(()) => {
                        rec_expired(self);
                        Ok(None)
                    }
                    Err(Error::LeaseExpired) => Ok(None),
                    // The dead-letter queue refused it (full, or too long
                    // for it), or it cannot be read (the receive reports
                    // it): delivered, with the lease as restored. Late,
                    // not lost.
                    Err(_) => Ok(Some(held)),
                }
            }
        }
    }
}
