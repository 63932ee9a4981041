//! Handing a message over: reading its slot, the `Delivery` that lends it,
//! its ack/nack/lease calls, and the `Receipt` that outlives it.

use super::expiry::Judged;
use super::*;
use crate::error::{Error, Result};
use crate::options::Nack;
use crate::os;
use crate::protocol::lease::HeldLease;
use crate::protocol::ring::Peek;
use crate::record::read;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

/// One received message. Derefs to [`Message`].
///
/// With ack=auto the message was finished for the group when it was
/// received; dropping the delivery releases its slot. With ack=manual the
/// message is leased to this consumer: [`ack`](Delivery::ack) finishes it,
/// [`nack`](Delivery::nack) gives it back (or dead-letters it), and
/// dropping the delivery without either gives it back at once. If the
/// lease was taken away (it ran out: see [`extend_lease`]), `ack` fails
/// with [`Error::LeaseExpired`]: the message was or will be delivered
/// again, and its payload must be treated as gone (its slot may be reused
/// once the new holder acks it).
///
/// [`extend_lease`]: Delivery::extend_lease
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use shmq::{Ack, ConsumerOptions, Meta, Nack, Options, Queue};
/// let q = Queue::create("doc-delivery", &Options::new().dir(dir.path()).slots(8))?;
/// let mut c = q.consumer("jobs", ConsumerOptions::new().ack(Ack::Manual))?;
/// q.producer()?.publish_with(b"job", &Meta::new().type_id(2))?;
/// let m = c.receive()?;
/// assert_eq!((m.payload(), m.seq(), m.type_id(), m.attempt()), (&b"job"[..], 0, 2, 1));
/// m.nack(Nack::Requeue)?; // failed: deliver it again
/// let mut again = c.receive_timeout(Duration::from_secs(1))?;
/// assert_eq!(again.attempt(), 2);
/// again.extend_lease(Duration::from_secs(60))?; // a long job
/// again.ack()?;
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Delivery<'c> {
    pub(super) consumer: &'c mut Consumer,
    pub(super) msg: Message<'c>,
    pub(super) kind: Origin,
}

/// What ending a delivery has to do. Fieldless on purpose: what a lease
/// or a redriven dead letter needs besides lives in the consumer
/// (its `held` and `redriven` fields), so that a `Delivery` stays
/// a few scalars the compiler keeps in registers. With the lease inside
/// the enum, callers moved each `Delivery` through the stack in 16-byte
/// pieces that the store buffer could not forward, ~15 ns on every
/// ack=auto hand-off between processes (BENCHMARKS.md, the regression).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// ack=auto, from the ring: release the slot.
    Auto,
    /// ack=manual: our lease, `consumer.held`.
    Leased,
    /// A redriven dead letter (either mode), DLQ entry `consumer.redriven`.
    Redriven,
    /// ack=auto, replayed from the journal: move the cursor past it.
    Journal,
    /// Already ended (acked, nacked), or a lease kept after a refused
    /// dead-lettering: nothing to do on drop.
    Ended,
}

impl<'c> std::ops::Deref for Delivery<'c> {
    type Target = Message<'c>;
    fn deref(&self) -> &Message<'c> {
        &self.msg
    }
}

impl std::fmt::Debug for Delivery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.msg.fmt(f)
    }
}

impl Delivery<'_> {
    /// The seq its consumer will look at next ([`Consumer::position`],
    /// which the delivery's borrow of the consumer puts out of reach).
    pub fn consumer_position(&self) -> u64 {
        self.consumer.position()
    }

    /// Finishes the message for the group. With ack=auto it was finished
    /// when received, and this only releases its slot (as dropping does).
    /// With ack=manual: [`Error::LeaseExpired`] if the lease was taken away.
    #[inline(always)]
    pub fn ack(self) -> Result<()> {
        if self.kind == Origin::Auto {
            // The ack=auto fast path: release the slot here, and skip the
            // drop (it would only look at the kind again).
            let this = std::mem::ManuallyDrop::new(self);
            this.consumer.release(this.consumer.next);
            return Ok(());
        }
        self.ack_not_auto()
    }

    /// `ack` of anything but an ack=auto delivery from the ring.
    #[inline(never)]
    fn ack_not_auto(mut self) -> Result<()> {
        let kind = std::mem::replace(&mut self.kind, Origin::Ended);
        match kind {
            Origin::Auto | Origin::Journal => {
                self.consumer.release(self.consumer.next);
                Ok(())
            }
            Origin::Ended => Ok(()),
            Origin::Leased => {
                let held = self.consumer.held;
                self.consumer.ack_leased(&held)
            }
            Origin::Redriven => {
                self.consumer
                    .end_redriven(self.consumer.redriven, true, false);
                Ok(())
            }
        }
    }

    /// Gives the message back (ack=manual): deliver it again now or after a
    /// delay, or move it to the dead-letter queue. [`Error::LeaseExpired`]
    /// if the lease was taken away; [`Error::DlqFull`] if the dead-letter
    /// queue has no room (the message then stays leased to this consumer
    /// until its lease runs out). With ack=auto there is nothing to give
    /// back: [`Error::InvalidOption`].
    pub fn nack(mut self, how: Nack) -> Result<()> {
        let kind = std::mem::replace(&mut self.kind, Origin::Ended);
        match kind {
            Origin::Auto | Origin::Journal => {
                self.kind = kind;
                Err(Error::InvalidOption(
                    "nack needs a consumer with ack=manual (ack=auto finished the message on receipt)"
                        .into(),
                ))
            }
            Origin::Ended => Ok(()),
            Origin::Leased => {
                let (held, msg) = (self.consumer.held, self.msg_copy());
                self.consumer.nack_leased(&held, how, &msg)
            }
            Origin::Redriven => {
                self.consumer
                    .end_redriven(self.consumer.redriven, false, how == Nack::DeadLetter);
                Ok(())
            }
        }
    }

    /// Extends the lease (ack=manual) to `extension` from now.
    /// [`Error::LeaseExpired`] if it was already taken away. A no-op for
    /// ack=auto and for redriven dead letters (their delivery has no
    /// deadline).
    pub fn extend_lease(&mut self, extension: Duration) -> Result<()> {
        if let Origin::Leased = self.kind {
            let deadline = os::clock::monotonic_ns().saturating_add(extension.as_nanos() as u64);
            let held = self.consumer.held;
            match self.consumer.leases().extend(&held, deadline) {
                Ok(h) => self.consumer.held = h,
                Err(()) => return Err(Error::LeaseExpired),
            }
        }
        Ok(())
    }

    /// Keeps the lease past this delivery (ack=manual): a [`Receipt`] that
    /// [`Consumer::ack_receipt`], [`Consumer::nack_receipt`] and
    /// [`Consumer::extend_receipt`] finish or extend later, while the
    /// consumer goes on receiving — what an SQS receipt handle is, and
    /// what a bridge that waits for another system's confirmation needs.
    /// The payload is not kept: copy what you need first. A receipt not
    /// finished before its lease runs out is delivered again, as a
    /// delivery would be. ack=auto: [`Error::InvalidOption`] (the message
    /// was finished on receipt).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Ack, ConsumerOptions, Options, Queue};
    /// let q = Queue::create("doc-receipt", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut c = q.consumer("out", ConsumerOptions::new().ack(Ack::Manual))?;
    /// let mut p = q.producer()?;
    /// p.publish(b"one")?;
    /// p.publish(b"two")?;
    /// let first = c.receive()?.into_receipt()?;
    /// let second = c.receive()?.into_receipt()?; // both leased at once
    /// c.ack_receipt(&second)?;
    /// c.ack_receipt(&first)?;
    /// assert!(c.try_receive()?.is_none());
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn into_receipt(mut self) -> Result<Receipt> {
        let kind = std::mem::replace(&mut self.kind, Origin::Ended);
        let lease = match kind {
            Origin::Leased => Lease::HeldLease(self.consumer.held),
            Origin::Redriven => Lease::Redriven(self.consumer.redriven),
            Origin::Auto | Origin::Journal | Origin::Ended => {
                self.kind = kind;
                return Err(Error::InvalidOption(
                    "a receipt needs a consumer with ack=manual (ack=auto finished the message on receipt)"
                        .into(),
                ));
            }
        };
        Ok(Receipt {
            group: self.consumer.group_index,
            seq: self.msg.seq,
            lease,
        })
    }

    fn msg_copy(&self) -> Message<'static> {
        Message {
            _borrow: PhantomData,
            ..self.msg
        }
    }
}

impl Drop for Delivery<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Origin::Auto = self.kind {
            // The consumer's cursor is just past this message: a delivery
            // borrows its consumer, so nothing moved it since.
            self.consumer.release(self.consumer.next);
        } else {
            self.end_not_auto();
        }
    }
}

impl Delivery<'_> {
    /// Drop of anything but an ack=auto delivery from the ring.
    #[cold]
    #[inline(never)]
    fn end_not_auto(&mut self) {
        match self.kind {
            Origin::Auto | Origin::Journal => self.consumer.release(self.consumer.next),
            Origin::Leased => {
                // Dropped without ack or nack: deliver it again at once.
                let held = self.consumer.held;
                let _ = self.consumer.requeue(&held, 0);
            }
            // ack=auto finishes a message on receipt; ack=manual gives a
            // dropped one back.
            Origin::Redriven => {
                let done = self.consumer.manual.is_none();
                self.consumer
                    .end_redriven(self.consumer.redriven, done, false)
            }
            Origin::Ended => {}
        }
    }
}

/// A lease kept past its delivery ([`Delivery::into_receipt`]): finish it
/// with [`Consumer::ack_receipt`] or [`Consumer::nack_receipt`], keep it
/// with [`Consumer::extend_receipt`]. Plain data; a receipt whose lease
/// was taken away (it ran out) is refused with [`Error::LeaseExpired`],
/// so a late ack never finishes a redelivery it did not get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub(super) group: usize,
    pub(super) seq: u64,
    pub(super) lease: Lease,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lease {
    /// A lease of the ring's position `held.pos`.
    HeldLease(HeldLease),
    /// A redriven dead letter, delivered from DLQ entry `.0`.
    Redriven(usize),
}

impl Receipt {
    /// The seq of the message it is for.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Its delivery's attempt (1 for a first delivery).
    pub fn attempt(&self) -> u32 {
        match self.lease {
            Lease::HeldLease(h) => h.attempt(),
            Lease::Redriven(_) => 1,
        }
    }
}

impl Consumer {
    /// The delivery of what [`poll_for_async`](Self::poll_for_async) took.
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn deliver_got(&mut self, got: ToDeliver) -> Result<Delivery<'_>> {
        match got {
            ToDeliver::Pos(pos) if self.manual.is_none() => self.deliver_auto(pos),
            got => self.deliver(got),
        }
    }

    /// Up to `max` ready messages, waiting at most `timeout` for the first;
    /// an empty batch if none came. Batches are the ring's messages:
    /// dead letters redriven to the group wait for
    /// [`receive`](Self::receive), and do not end the wait.
    pub fn receive_batch(&mut self, max: usize, timeout: Duration) -> Result<Batch<'_>> {
        if max == 0 {
            return Err(Error::InvalidOption("receive_batch of 0 messages".into()));
        }
        if self.manual.is_some() {
            return Err(Error::InvalidOption(
                "receive_batch is for ack=auto consumers; with ack=manual receive (and ack) one message at a time"
                    .into(),
            ));
        }
        if self.replay.is_some() {
            return Err(Error::InvalidOption(
                "this group is replaying from the journal: receive one message at a time until it is back in the ring"
                    .into(),
            ));
        }
        let start = self.next;
        // Redriven dead letters are delivered by `receive`, one at a time.
        let Some(ToDeliver::Pos(first)) = self.wait(Some(Instant::now() + timeout), false)? else {
            return Ok(Batch {
                start,
                end: start,
                count: 0,
                consumer: self,
            });
        };
        let start = first;
        // Validate the first; a corrupt one is skipped with an error.
        let mut pos = first + self.read_span(first)?.1;
        let mut count = 1;
        let limit = first + self.shared.geo.slots;
        while count < max && pos < limit {
            match self.ring().peek(pos) {
                Peek::Ready(span) => {
                    // A message for another group, or expired, ends the
                    // batch (the next poll passes it by), as a corrupt one
                    // does.
                    if self.judge(pos) != Judged::Deliver || self.read_span(pos).is_err() {
                        break;
                    }
                    count += 1;
                    pos += span;
                }
                Peek::Skip(span) => pos += span,
                _ => break,
            }
        }
        self.advance(pos, count as u64);
        Ok(Batch {
            start,
            end: pos,
            count,
            consumer: self,
        })
    }

    /// Reads the message at committed position `pos`, checking its length.
    #[inline(always)]
    pub(super) fn read(&self, pos: u64) -> Result<Message<'_>> {
        self.read_span(pos).map(|(m, _)| m)
    }

    /// [`read`](Self::read), with the record's span: the next record is
    /// that many slots on. A corrupt record's span, if the error says so,
    /// is still the one its word gives.
    #[inline(always)]
    pub(super) fn read_span(&self, pos: u64) -> Result<(Message<'_>, u64)> {
        let ring = self.ring();
        let span = match ring.peek(pos) {
            Peek::Ready(span) => span,
            _ => 1,
        };
        if span > self.max_span {
            // A word no producer writes (a garbled file): its span would
            // reach past the twice-mapped ring.
            let why = format!(
                "message {pos} claims {span} slots, at most {} fit",
                self.max_span
            );
            return Err(Error::corrupt(&self.shared.path, why));
        }
        let room = self.shared.geo.body_room(span);
        // SAFETY: the slot is COMMITTED (the caller saw it with an Acquire
        // load, which pairs with the commit's Release), and nobody writes
        // it while our group's committed cursor is at or below `pos`; the
        // record's `span` slots lie in the mapping (the slots area is
        // mapped twice, and a span is at most half the ring).
        let m = unsafe { read::read_slot(ring.slots.slot(pos), room) }.map_err(|e| {
            let why = match e {
                read::Garbled::TooLong(len) => format!(
                    "message {pos} claims {len} bytes in a record of {span} slot(s) of {} (room for {room})",
                    self.slot_size
                ),
                read::Garbled::Envelope(e) => format!("message {pos}: {e}"),
            };
            Error::corrupt(&self.shared.path, why)
        })?;
        Ok((
            Message {
                seq: pos,
                body: m.body,
                timestamp_ns: m.timestamp_ns,
                type_id: m.type_id,
                correlation_id: m.correlation_id,
                attempt: 1,
                _borrow: PhantomData,
            },
            span,
        ))
    }

    /// The span of the committed or aborted record at `pos` (1 if it is
    /// neither: the caller saw it done).
    #[inline(always)]
    pub(super) fn span_at(&self, pos: u64) -> u64 {
        match self.ring().peek(pos) {
            Peek::Ready(span) | Peek::Skip(span) => span,
            _ => 1,
        }
    }

    #[inline]
    pub(super) fn deliver(&mut self, got: ToDeliver) -> Result<Delivery<'_>> {
        let (pos, held) = match got {
            ToDeliver::Pos(pos) => (pos, None),
            ToDeliver::Leased(held) => (held.pos, Some(held)),
            ToDeliver::Redriven(entry) => return self.deliver_redriven(entry),
            ToDeliver::Journal(rec) => return self.deliver_journal(rec),
        };
        if held.is_some() {
            os::fault::point("receive.leased");
        }
        let msg = match self.read(pos) {
            Ok(m) => m,
            Err(e) => {
                // A worker stopped past its lease before reading (below)
                // may find a later lap's record there, which need not
                // parse as one of this position's: that is no corruption.
                if let Some(held) = held {
                    if !self.leases().still_held(&held) {
                        return self.lease_lost_before_reading();
                    }
                }
                // Skip the corrupt message so the group does not stall.
                match held {
                    Some(held) => {
                        let leases = self.leases();
                        if leases.ack(&held).is_ok() {
                            self.shared.commit_finished(&leases);
                        }
                    }
                    None => {
                        let next = pos + self.span_at(pos);
                        self.advance(next, 0);
                        self.release(next);
                    }
                }
                return Err(e);
            }
        };
        // Stopped past the lease between taking it and reading the slot
        // (found by the chaos run): the message is someone else's now, and
        // the slot may hold a later lap's. Not delivered: the next one is,
        // or, with nothing else ready, `LeaseExpired` says to ask again.
        if let Some(held) = held {
            if !self.leases().still_held(&held) {
                return self.lease_lost_before_reading();
            }
        }
        // Detach the message's lifetime from `self` so both can go into
        // the Delivery; it lives as long as the Delivery's borrow.
        let msg = Message {
            _borrow: PhantomData,
            attempt: held.map_or(1, |h| h.attempt()),
            ..msg
        };
        let kind = match held {
            Some(h) => {
                self.held = h;
                Origin::Leased
            }
            None => {
                let next = pos + self.span_at(pos);
                self.advance(next, 1);
                Origin::Auto
            }
        };
        Ok(Delivery {
            consumer: self,
            msg,
            kind,
        })
    }

    /// After a lease was lost between taking it and reading its slot: the
    /// next message is delivered, or, with nothing else ready,
    /// `LeaseExpired` says to ask again.
    fn lease_lost_before_reading(&mut self) -> Result<Delivery<'_>> {
        match self.poll_any(true)? {
            Some(got) => self.deliver(got),
            None => Err(Error::LeaseExpired),
        }
    }

    /// The ack=auto fast path of [`deliver`](Self::deliver).
    #[inline(always)]
    pub(crate) fn deliver_auto(&mut self, pos: u64) -> Result<Delivery<'_>> {
        let (msg, span) = match self.read_span(pos) {
            Ok(m) => m,
            Err(e) => {
                let next = pos + self.span_at(pos);
                self.advance(next, 0);
                self.release(next);
                return Err(e);
            }
        };
        let msg = Message {
            _borrow: PhantomData,
            ..msg
        };
        self.advance(pos + span, 1);
        Ok(Delivery {
            consumer: self,
            msg,
            kind: Origin::Auto,
        })
    }
}
