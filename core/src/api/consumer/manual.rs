//! ack=manual: dispatch by lease and ordering lane, redelivery of expired
//! leases and nacks, acks, nacks and dead-lettering (the consumer half of
//! `protocol/lease/` and `protocol/lanes.rs`).

use super::*;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::dead_letters::{self as dlq, Entry, Reason};
use crate::options::Nack;
use crate::os;
use crate::protocol::lanes::Keyed;
use crate::protocol::lease::{HeldLease, Leases, Now, Reclaimed};
use crate::protocol::registry::Registry;
use crate::protocol::ring::Peek;
use crate::record::envelope::{Envelope, Target};
use crate::record::read;
use std::marker::PhantomData;
use std::time::Duration;

/// How often (at most) an ack=manual consumer looks through its group's
/// in-flight window for leases that ran out or whose consumer died, when
/// no nack or drop hinted that something is waiting. Bounds how long a
/// dead consumer's messages wait: well under a second.
const SCAN_EVERY_NS: u64 = 100_000_000;

/// How ack=manual dispatches a message (`Consumer::route_of`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// No ordering key: leased at once.
    Unkeyed,
    /// Leased after the earlier messages of its lane (the key's hash).
    Lane(usize),
    /// A dead letter redriven through the ring for another group.
    Elsewhere,
}

/// The state of an ack=manual consumer.
#[derive(Debug)]
pub(super) struct Manual {
    /// Our consumer registry index: leases name us by it.
    pub(super) holder: u32,
    pub(super) lease_ns: u64,
    pub(super) max_deliveries: u32,
    /// CLOCK_MONOTONIC ns of the last look for due redeliveries.
    pub(super) last_scan: u64,
    /// The group's `redeliver_hint` at that look.
    pub(super) seen_hint: u64,
    /// A look that stopped at a message it found goes on from here at the
    /// next poll (instead of waiting for the next hint or period: many
    /// releases at once would otherwise trickle out one per period).
    pub(super) scan_from: Option<u64>,
}

impl Consumer {
    /// Finishes the message of `receipt` for the group, as
    /// [`Delivery::ack`] would have. [`Error::LeaseExpired`] if its lease
    /// was taken away; [`Error::InvalidOption`] for another group's.
    pub fn ack_receipt(&mut self, receipt: &Receipt) -> Result<()> {
        match self.receipt_lease(receipt)? {
            Lease::HeldLease(held) => self.ack_leased(&held),
            Lease::Redriven(entry) => {
                self.end_redriven(entry, true, false);
                Ok(())
            }
        }
    }

    /// Gives the message of `receipt` back, as [`Delivery::nack`] would
    /// have (the same errors, and [`Error::InvalidOption`] for another
    /// group's receipt).
    pub fn nack_receipt(&mut self, receipt: &Receipt, how: Nack) -> Result<()> {
        match self.receipt_lease(receipt)? {
            Lease::HeldLease(held) => {
                // Still leased, so its slot still holds it (the group's
                // committed cursor is at or below it): read it for a
                // dead-lettering's copy. A stale receipt fails the CAS
                // inside before anything is written.
                let msg = self.read(held.pos)?;
                let msg = Message {
                    _borrow: PhantomData,
                    attempt: held.attempt(),
                    ..msg
                };
                self.nack_leased(&held, how, &msg)
            }
            Lease::Redriven(entry) => {
                self.end_redriven(entry, false, how == Nack::DeadLetter);
                Ok(())
            }
        }
    }

    /// Extends the lease of `receipt` to `extension` from now, as
    /// [`Delivery::extend_lease`] would have, updating the receipt.
    pub fn extend_receipt(&mut self, receipt: &mut Receipt, extension: Duration) -> Result<()> {
        if let Lease::HeldLease(held) = self.receipt_lease(receipt)? {
            let deadline = os::clock::monotonic_ns().saturating_add(extension.as_nanos() as u64);
            match self.leases().extend(&held, deadline) {
                Ok(h) => receipt.lease = Lease::HeldLease(h),
                Err(()) => return Err(Error::LeaseExpired),
            }
        }
        Ok(())
    }

    pub(super) fn receipt_lease(&self, receipt: &Receipt) -> Result<Lease> {
        if receipt.group != self.group_index || self.manual.is_none() {
            return Err(Error::InvalidOption(format!(
                "the receipt of message {} is not of this consumer's group {:?}",
                receipt.seq, self.group
            )));
        }
        Ok(receipt.lease)
    }

    /// ack=manual: a due redelivery, or the next message leased to us.
    pub(super) fn poll_manual(&mut self) -> Result<Option<ToDeliver>> {
        let now = Now {
            mono: os::clock::monotonic_ns(),
            real: os::clock::realtime_ns(),
        };
        let (holder, lease_ns) = match &self.manual {
            Some(m) => (m.holder, m.lease_ns),
            None => return Ok(None),
        };
        Registry {
            records: self.shared.consumer_records(),
        }
        .heartbeat(holder, now.real);
        if let Some(h) = self.scan_redeliveries(now)? {
            return Ok(Some(ToDeliver::Leased(h)));
        }
        if let Some(h) = self.leases().take_released(holder, now, lease_ns) {
            if let Some(h) = self.unless_expired(h)? {
                self.record().delivered.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(ToDeliver::Leased(h)));
            }
        }
        let shared = self.shared.clone();
        let ring = shared.ring();
        let leases = shared.leases(self.group_index);
        // A window of the whole ring is the ring's own bound (a position
        // in it is below `tail <= head + slots <= committed + slots`): no
        // gate to ask.
        let gated = shared.geo.max_in_flight < shared.geo.slots;
        loop {
            let pos = self.record().next.load(Ordering::Acquire);
            self.next = pos;
            if gated && !leases.may_dispatch(pos) {
                // The in-flight window is full (`max_in_flight`): wait for
                // the oldest message to finish (`commit_finished` wakes us).
                return Ok(None);
            }
            match ring.peek(pos) {
                Peek::Ready(span) => {
                    let route = self.route_of(pos);
                    if route == Route::Elsewhere {
                        // A dead letter redriven for another group.
                        leases.skip(pos, span);
                        self.shared.commit_finished(&leases);
                        continue;
                    }
                    if let Route::Lane(lane) = route {
                        match self.take_keyed(&leases, pos, span, lane, holder, now, lease_ns) {
                            Keyed::Leased(h) => {
                                if let Some(h) = self.unless_expired(h)? {
                                    self.record().delivered.fetch_add(1, Ordering::Relaxed);
                                    return Ok(Some(ToDeliver::Leased(h)));
                                }
                            }
                            Keyed::Waiting => {}
                            // Another consumer is indexing it: a moment.
                            Keyed::Busy => {
                                if self.record().next.load(Ordering::Acquire) == pos {
                                    return Ok(None);
                                }
                            }
                        }
                        continue;
                    }
                    if let Some(h) = leases.take_new(pos, span, holder, now, lease_ns) {
                        if let Some(h) = self.unless_expired(h)? {
                            self.record().delivered.fetch_add(1, Ordering::Relaxed);
                            return Ok(Some(ToDeliver::Leased(h)));
                        }
                    }
                }
                Peek::Skip(span) => {
                    leases.skip(pos, span);
                    self.shared.commit_finished(&leases);
                }
                Peek::Settling => {
                    if self.shared.settle_abort(pos).is_none() {
                        // Its producer is committing it: wait.
                        return Ok(None);
                    }
                }
                Peek::NotYet(_) => return Ok(None),
            }
        }
    }

    /// How ack=manual dispatches the committed message at `pos`: by its
    /// ordering key's lane, if it has one (read from its envelope; a
    /// garbled one has none, and its receive reports it), or not at all if
    /// it is a dead letter redriven for another group.
    #[inline(always)]
    pub(super) fn route_of(&self, pos: u64) -> Route {
        // SAFETY: the slot is committed (the caller peeked Ready, an
        // Acquire load); nobody rewrites it while our group's committed
        // cursor is at or below `pos`.
        let Some(body) =
            (unsafe { read::enveloped_body(self.ring().slots.slot(pos), self.max_room) })
        else {
            return Route::Unkeyed;
        };
        match Envelope::parse(body) {
            Ok(env) if env.target.is_some_and(|t| !self.is_us(t)) => Route::Elsewhere,
            Ok(Envelope {
                key: Some(_),
                key_hash,
                ..
            }) => Route::Lane(key_hash as usize),
            _ => Route::Unkeyed,
        }
    }

    /// Whether a stored body's envelope names another group as its redrive
    /// target.
    #[cold]
    #[inline(never)]
    pub(super) fn targets_another_group(&self, body: &[u8]) -> bool {
        matches!(Envelope::parse(body), Ok(env) if env.target.is_some_and(|t| !self.is_us(t)))
    }

    /// Whether a redrive target names this consumer's group.
    pub(super) fn is_us(&self, t: Target) -> bool {
        t.group as usize == self.group_index
            && t.created_ns == self.record().created_ns.load(Ordering::Acquire)
    }

    /// [`Leases::take_keyed`] with the registry's word on who lives.
    // One argument per thing the lanes need, as `Leases::take_keyed` has.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn take_keyed(
        &self,
        leases: &Leases<'_>,
        pos: u64,
        span: u64,
        lane: usize,
        holder: u32,
        now: Now,
        lease_ns: u64,
    ) -> Keyed {
        let registry = Registry {
            records: self.shared.consumer_records(),
        };
        let mut alive = |h: u32| registry.alive(h, |p, k| self.shared.alive(p, k));
        let k = leases.take_keyed(pos, span, lane, holder, now, lease_ns, &mut alive);
        if k == Keyed::Waiting && leases.word(pos).state() == crate::protocol::lease::READY {
            // Released at once: the group's consumers look.
            self.ring().notify_data();
        }
        k
    }

    /// Looks through `committed .. next` for messages due again (nacked,
    /// dropped, lease run out, holder dead) when a nack hinted at one or
    /// every [`SCAN_EVERY_NS`]. One past `max_deliveries` goes to the
    /// dead-letter queue instead.
    pub(super) fn scan_redeliveries(&mut self, now: Now) -> Result<Option<HeldLease>> {
        let Some(m) = self.manual.as_mut() else {
            return Ok(None);
        };
        let rec = &self.shared.group_records()[self.group_index];
        let hint = rec.redeliver_hint.load(Ordering::Acquire);
        let full = hint != m.seen_hint || now.mono.saturating_sub(m.last_scan) >= SCAN_EVERY_NS;
        // A new hint or period: a whole look, from the start (what the
        // hint names may be behind where the last look stopped).
        let resume = if full { None } else { m.scan_from.take() };
        if !full && resume.is_none() {
            return Ok(None);
        }
        if full {
            m.scan_from = None;
            m.seen_hint = hint;
            m.last_scan = now.mono;
        }
        let (holder, lease_ns, max) = (m.holder, m.lease_ns, m.max_deliveries);
        let shared = self.shared.clone();
        let leases = shared.leases(self.group_index);
        if full {
            // A finisher killed between its finishing CAS and its own
            // advance left `committed` behind finished positions: with
            // nothing else finishing, nobody would move it, and `head`
            // (and the spill's refill) would wait for ever.
            shared.commit_finished(&leases);
        }
        let registry = Registry {
            records: shared.consumer_records(),
        };
        // Ask about each holder's life once per scan (a system call).
        let mut known: Vec<(u32, bool)> = Vec::new();
        let mut alive = |h: u32| {
            if let Some(&(_, a)) = known.iter().find(|(k, _)| *k == h) {
                return a;
            }
            let a = registry.alive(h, |p, k| shared.alive(p, k));
            known.push((h, a));
            a
        };
        let (start, end) = leases.window();
        let mut found = None;
        for pos in resume.unwrap_or(start).max(start)..end {
            let Some((held, why)) = leases.take_again(pos, holder, now, lease_ns, &mut alive)
            else {
                continue;
            };
            // Expired meanwhile: dead-lettered or dropped, not delivered
            // (nor counted as a delivery).
            let Some(held) = self.unless_expired(held)? else {
                continue;
            };
            if why == Reclaimed::Expired {
                rec.expired.fetch_add(1, Ordering::Relaxed);
            }
            if why == Reclaimed::Released {
                // A keyed message its lane let go: its first delivery.
                rec.delivered.fetch_add(1, Ordering::Relaxed);
                found = Some(held);
                break;
            }
            if held.attempt() > max {
                // Delivered max_deliveries times already: dead-letter it.
                let mut held = held;
                match self.dead_letter(&mut held, Reason::MaxDeliveries, None) {
                    Ok(()) => continue,
                    Err(Error::DlqFull(_) | Error::DlqTooLarge { .. }) => {
                        // Keep it in the group; try again later.
                        let _ = leases.requeue(&held, now.mono.saturating_add(SCAN_EVERY_NS));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            rec.redelivered.fetch_add(1, Ordering::Relaxed);
            found = Some(held);
            break;
        }
        if let (Some(held), Some(m)) = (found, self.manual.as_mut()) {
            m.scan_from = Some(held.pos + 1);
        }
        Ok(found)
    }

    pub(super) fn ack_leased(&self, held: &HeldLease) -> Result<()> {
        let leases = self.leases();
        os::fault::point("ack.before");
        leases.ack(held).map_err(|()| Error::LeaseExpired)?;
        os::fault::point("ack.acked");
        self.record().acked.fetch_add(1, Ordering::Relaxed);
        if held.keyed {
            // The next message of its lane may be due now.
            self.ring().notify_data();
        }
        self.shared.commit_finished(&leases);
        Ok(())
    }

    pub(super) fn nack_leased(&self, held: &HeldLease, how: Nack, msg: &Message<'_>) -> Result<()> {
        let now = os::clock::monotonic_ns();
        let result = match how {
            Nack::Requeue => self.requeue(held, now),
            Nack::RequeueAfter(d) => self.requeue(held, now.saturating_add(d.as_nanos() as u64)),
            // Refused (the DLQ full), the lease stays ours until it runs
            // out: the delivery is over either way.
            Nack::DeadLetter => return self.dead_letter(&mut { *held }, Reason::Nacked, Some(msg)),
        };
        if result.is_ok() {
            self.record().nacked.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Gives a lease back, to be delivered not before `not_before`
    /// (CLOCK_MONOTONIC ns), and tells the group's consumers.
    pub(super) fn requeue(&self, held: &HeldLease, not_before: u64) -> Result<()> {
        self.leases()
            .requeue(held, not_before)
            .map_err(|()| Error::LeaseExpired)?;
        // Release: a consumer that sees the new hint sees the READY word.
        self.record().redeliver_hint.fetch_add(1, Ordering::Release);
        self.ring().notify_data();
        Ok(())
    }

    /// Moves a message we hold to the dead-letter queue, then marks it
    /// finished for the group. If the DLQ is full the lease is kept.
    /// Moves the message of lease `held` to the dead-letter queue. If the
    /// queue refuses it (or it cannot be read), the lease is ours again:
    /// `held` is then the lease as restored (a new epoch), the one to use.
    pub(super) fn dead_letter(
        &self,
        held: &mut HeldLease,
        reason: Reason,
        msg: Option<&Message<'_>>,
    ) -> Result<()> {
        let leases = self.leases();
        let taking = leases.begin_dead(held).map_err(|()| Error::LeaseExpired)?;
        let read;
        let msg = match msg {
            Some(m) => m,
            None => match self.read(held.pos) {
                Ok(m) => {
                    read = m;
                    &read
                }
                Err(e) => {
                    *held = leases.restore(&taking);
                    return Err(e);
                }
            },
        };
        let (first_ns, last_ns) = leases.times(held.pos);
        let rec = self.record();
        let entry = Entry {
            seq: held.pos,
            redrives: 0,
            group: self.group_index,
            group_created_ns: rec.created_ns.load(Ordering::Acquire),
            // After max_deliveries, the lease we took to move it was not a
            // delivery.
            attempts: match reason {
                Reason::MaxDeliveries | Reason::Expired => held.attempt() - 1,
                _ => held.attempt(),
            },
            reason,
            first_ns,
            last_ns,
            timestamp_ns: msg.timestamp_ns,
            type_id: msg.type_id,
            correlation_id: msg.correlation_id,
            enveloped: msg.body().1,
            payload: msg.body().0,
        };
        os::fault::point("dead_letter.moving");
        if let Err(e) = dlq::append(&self.shared, &entry) {
            *held = leases.restore(&taking);
            return Err(e);
        }
        os::fault::point("dead_letter.appended");
        leases.finish_dead(&taking);
        rec.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if held.keyed {
            // The next message of its lane may be due now.
            self.ring().notify_data();
        }
        self.shared.commit_finished(&leases);
        Ok(())
    }
}
