//! Receiving: a group's consumer walks the ring in seq order and borrows
//! each payload in place.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::api::readiness::{Arm, For, Readiness};
use crate::error::{Error, Result};
use crate::layout::GroupRecord;
use crate::mapped::dead_letters::{self as dlq, Entry, Reason};
use crate::mapped::journal::{JournalReader, JournalRecord};
use crate::mapped::seek::resolve_seek;
use crate::mapped::{MappedSlots, Shared, new_owner};
use crate::options::{Ack, ConsumerOptions, Nack, Seek, Wait, check_group_name};
use crate::os;
use crate::protocol::group::{commit_cursor, generation};
use crate::protocol::lanes::Keyed;
use crate::protocol::lease::{Held, Leases, Now, Reclaimed, Word};
use crate::protocol::registry::Registry;
use crate::protocol::ring::{Peek, Ring, announces, sleep_unless};
use crate::record::envelope::{Envelope, HeaderIter, Target};
use crate::record::read::{self, Body};
use crate::sync::Ordering;

/// Longest single sleep of a waiting consumer, so it notices stuck
/// producers, deadlines and signals.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// How long `Wait::SpinYield` and `Wait::SpinFutex` poll once per pause
/// before they yield: about what a futex sleep and wake-up costs, so a
/// message that comes sooner is not delayed by one.
const SPIN_FOR: Duration = Duration::from_micros(20);
/// `sched_yield`s of `Wait::SpinFutex` between spinning and sleeping.
const YIELDS: u32 = 4;
/// Empty polls of `try_receive` between two looks for a stuck producer.
const STUCK_CHECK_EVERY: u32 = 64;
/// How often (at most) to ask whether a claimer's process is alive.
const LIVENESS_EVERY_NS: u64 = 10_000_000;
/// How often (at most) an ack=manual consumer looks through its group's
/// in-flight window for leases that ran out or whose consumer died, when
/// no nack or drop hinted that something is waiting. Bounds how long a
/// dead consumer's messages wait: well under a second.
const SCAN_EVERY_NS: u64 = 100_000_000;

/// How ack=manual dispatches a message (`Consumer::route_of`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// No ordering key: leased at once.
    Unkeyed,
    /// Leased after the earlier messages of its lane (the key's hash).
    Lane(usize),
    /// A dead letter redriven through the ring for another group.
    Elsewhere,
}

/// A position a consumer waits for, watched for a stuck producer.
#[derive(Clone, Copy, Debug)]
struct Stuck {
    pos: u64,
    /// Monotonic time when we first knew it was claimed.
    claimed_since: Option<u64>,
    /// Monotonic time of the last look at `tail` and the claimer's life.
    last_check: u64,
}

/// The consumer of one group. With ack=auto (the default) a message is
/// committed for the group when it is received, its slot is released when
/// the [`Delivery`] is dropped, and a group has at most one live consumer
/// at a time; with ack=manual any number of consumers compete for the
/// group's messages, each leased until acked. Not to be used in a child
/// after `fork`.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use shmq::{Ack, ConsumerOptions, Options, Queue, Start};
/// let q = Queue::create("doc-consumer", &Options::new().dir(dir.path()).slots(16))?;
/// q.create_group("audit", Start::Earliest)?;
/// q.producer()?.publish_batch(&[b"a", b"b", b"c"])?;
///
/// let mut audit = q.consumer("audit", ConsumerOptions::new())?;
/// assert_eq!(audit.receive()?.payload(), b"a");
/// assert_eq!(audit.try_receive()?.map(|m| m.seq()), Some(1));
/// let batch = audit.receive_batch(10, Duration::ZERO)?;
/// assert_eq!(batch.len(), 1); // "c"
/// drop(batch);
///
/// // Competing workers: each message leased to one, acked when done.
/// let mut worker = q.consumer("work", ConsumerOptions::new().ack(Ack::Manual))?;
/// # let _ = worker.try_receive()?;
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Consumer {
    shared: Arc<Shared>,
    idx: usize,
    group: String,
    owner: u64,
    generation: u32,
    next: u64,
    delivered: u64,
    slot_size: usize,
    unblock_timeout_ns: u64,
    /// What we know of the position we wait for, if it looks stuck.
    stuck: Option<Stuck>,
    empty_polls: u32,
    /// Set for ack=manual consumers.
    manual: Option<Manual>,
    /// overflow=spill: look for spilled messages to copy back into the
    /// ring when the ring has none for us.
    spill: bool,
    /// The queue keeps a journal: journal the ring when idle.
    journal: bool,
    /// Set while the group's cursor is below `head`: reading the journal
    /// (see `mapped/journal.rs`).
    replay: Option<JournalReader>,
    /// How `wait` waits.
    wait: Wait,
    /// The lease of the live `Kind::Leased` delivery. A [`Delivery`]
    /// borrows its consumer mutably, so there is at most one at a time.
    held: Held,
    /// The DLQ entry of the live `Kind::Redriven` delivery.
    redriven: usize,
    /// The async waiter's doorbell, made by the first `readiness`/`arm`.
    readiness: Option<Readiness>,
}

/// The state of an ack=manual consumer.
#[derive(Debug)]
struct Manual {
    /// Our consumer registry index: leases name us by it.
    holder: u32,
    lease_ns: u64,
    max_deliveries: u32,
    /// CLOCK_MONOTONIC ns of the last look for due redeliveries.
    last_scan: u64,
    /// The group's `redeliver_hint` at that look.
    seen_hint: u64,
    /// A look that stopped at a message it found goes on from here at the
    /// next poll (instead of waiting for the next hint or period: many
    /// releases at once would otherwise trickle out one per period).
    scan_from: Option<u64>,
}

/// What a poll found.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Got {
    /// ack=auto: the message at this position.
    Pos(u64),
    /// ack=manual: a lease we now hold.
    Leased(Held),
    /// A dead letter redriven to our group, in this DLQ entry.
    Redriven(usize),
    /// ack=auto, replaying: this journal record.
    Journal(JournalRecord),
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.shared.name)
            .field("group", &self.group)
            .field("next", &self.next)
            .finish()
    }
}

/// A received message: payload borrowed in place from shared memory, plus
/// its metadata.
pub struct Message<'a> {
    seq: u64,
    /// Where its body lies: in a committed slot, a journal record or a
    /// dead-letter entry, held still while `'a` lasts.
    body: Body,
    timestamp_ns: u64,
    type_id: u32,
    correlation_id: u64,
    attempt: u32,
    _borrow: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("len", &self.body.payload_len())
            .field("type_id", &self.type_id)
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl<'m> Message<'m> {
    /// The whole body (envelope and payload), as stored.
    pub(crate) fn body(&self) -> (&[u8], bool) {
        self.body.stored()
    }
    /// The payload, in place in shared memory.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // The body is a committed slot's (or an entry's or record's, held
        // still) and not reused while the group's committed cursor is at
        // or below its seq, which holds until the delivery or batch
        // borrowing it ends.
        self.body.payload()
    }
    /// The ordering key it was published with ([`Meta::ordering_key`](crate::Meta::ordering_key)), in place.
    pub fn ordering_key(&self) -> Option<&[u8]> {
        self.body.envelope().and_then(|e| e.key)
    }
    /// Its headers, in the order they were published, in place
    /// ([`Meta::header`](crate::Meta::header)).
    pub fn headers(&self) -> HeaderIter<'_> {
        self.body
            .envelope()
            .map_or_else(HeaderIter::empty, |e| HeaderIter::of(&e))
    }
    /// The value of its first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    /// The payload as a `T` (zerocopy), if it has `T`'s size and the slot
    /// offers `T`'s alignment (payloads are 8-byte aligned).
    pub fn value<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<&T> {
        T::ref_from_bytes(self.payload()).map_err(|_| Error::WrongType {
            len: self.body.payload_len(),
            type_name: std::any::type_name::<T>(),
            size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
        })
    }
    /// Position in the queue.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Publish time, CLOCK_REALTIME nanoseconds.
    #[inline]
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }
    /// The producer's type tag.
    #[inline]
    pub fn type_id(&self) -> u32 {
        self.type_id
    }
    /// The producer's correlation id.
    #[inline]
    pub fn correlation_id(&self) -> u64 {
        self.correlation_id
    }
    /// Delivery attempt: 1 for the first delivery (always, with
    /// ack=auto), more for a redelivery.
    #[inline]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

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
    consumer: &'c mut Consumer,
    msg: Message<'c>,
    kind: Kind,
}

/// What ending a delivery has to do. Fieldless on purpose: what a lease
/// or a redriven dead letter needs besides lives in the consumer
/// (its `held` and `redriven` fields), so that a `Delivery` stays
/// a few scalars the compiler keeps in registers. With the lease inside
/// the enum, callers moved each `Delivery` through the stack in 16-byte
/// pieces that the store buffer could not forward, ~15 ns on every
/// ack=auto hand-off between processes (BENCHMARKS.md, the regression).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
        if self.kind == Kind::Auto {
            // The ack=auto fast path: release the slot here, and skip the
            // drop (it would only look at the kind again).
            let this = std::mem::ManuallyDrop::new(self);
            this.consumer.release(this.msg.seq + 1);
            return Ok(());
        }
        self.ack_other()
    }

    /// `ack` of anything but an ack=auto delivery from the ring.
    #[inline(never)]
    fn ack_other(mut self) -> Result<()> {
        let kind = std::mem::replace(&mut self.kind, Kind::Ended);
        match kind {
            Kind::Auto | Kind::Journal => {
                self.consumer.release(self.msg.seq + 1);
                Ok(())
            }
            Kind::Ended => Ok(()),
            Kind::Leased => {
                let held = self.consumer.held;
                self.consumer.ack_leased(&held)
            }
            Kind::Redriven => {
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
        let kind = std::mem::replace(&mut self.kind, Kind::Ended);
        match kind {
            Kind::Auto | Kind::Journal => {
                self.kind = kind;
                Err(Error::InvalidOption(
                    "nack needs a consumer with ack=manual (ack=auto finished the message on receipt)"
                        .into(),
                ))
            }
            Kind::Ended => Ok(()),
            Kind::Leased => {
                let (held, msg) = (self.consumer.held, self.msg_copy());
                self.consumer.nack_leased(&held, how, &msg)
            }
            Kind::Redriven => {
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
        if let Kind::Leased = self.kind {
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
        let kind = std::mem::replace(&mut self.kind, Kind::Ended);
        let lease = match kind {
            Kind::Leased => Lease::Held(self.consumer.held),
            Kind::Redriven => Lease::Redriven(self.consumer.redriven),
            Kind::Auto | Kind::Journal | Kind::Ended => {
                self.kind = kind;
                return Err(Error::InvalidOption(
                    "a receipt needs a consumer with ack=manual (ack=auto finished the message on receipt)"
                        .into(),
                ));
            }
        };
        Ok(Receipt {
            group: self.consumer.idx,
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
        if let Kind::Auto = self.kind {
            self.consumer.release(self.msg.seq + 1);
        } else {
            self.end_other();
        }
    }
}

impl Delivery<'_> {
    /// Drop of anything but an ack=auto delivery from the ring.
    #[cold]
    #[inline(never)]
    fn end_other(&mut self) {
        match self.kind {
            Kind::Auto | Kind::Journal => self.consumer.release(self.msg.seq + 1),
            Kind::Leased => {
                // Dropped without ack or nack: deliver it again at once.
                let held = self.consumer.held;
                let _ = self.consumer.requeue(&held, 0);
            }
            // ack=auto finishes a message on receipt; ack=manual gives a
            // dropped one back.
            Kind::Redriven => {
                let done = self.consumer.manual.is_none();
                self.consumer
                    .end_redriven(self.consumer.redriven, done, false)
            }
            Kind::Ended => {}
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
    group: usize,
    seq: u64,
    lease: Lease,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lease {
    /// A lease of the ring's position `held.pos`.
    Held(Held),
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
            Lease::Held(h) => h.attempt(),
            Lease::Redriven(_) => 1,
        }
    }
}

/// Messages received together; one cursor update for all of them when
/// dropped.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use shmq::{ConsumerOptions, Options, Queue};
/// let q = Queue::create("doc-batch", &Options::new().dir(dir.path()).slots(16))?;
/// let mut c = q.consumer("g", ConsumerOptions::new())?;
/// q.producer()?.publish_batch(&[b"a", b"b", b"c"])?;
/// let batch = c.receive_batch(2, Duration::from_secs(1))?;
/// let got: Vec<Vec<u8>> = batch.iter().map(|m| m.payload().to_vec()).collect();
/// assert_eq!(got, [b"a", b"b"]);
/// drop(batch); // both are finished for the group here
/// assert!(c.receive_batch(8, Duration::ZERO)?.len() == 1);
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Batch<'c> {
    consumer: &'c mut Consumer,
    start: u64,
    end: u64,
    count: usize,
}

impl Batch<'_> {
    /// The seq its consumer will look at next ([`Consumer::position`],
    /// which the batch's borrow of the consumer puts out of reach): the
    /// one after the batch's last.
    pub fn consumer_position(&self) -> u64 {
        self.consumer.position()
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.count
    }
    /// Whether no message came before the timeout.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The messages, in seq order.
    pub fn iter(&self) -> impl Iterator<Item = Message<'_>> + '_ {
        (self.start..self.end).filter_map(move |pos| match self.consumer.ring().peek(pos) {
            Peek::Ready => self.consumer.read(pos).ok(),
            _ => None,
        })
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("count", &self.count)
            .finish()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.consumer.release(self.end);
    }
}

impl Consumer {
    pub(crate) fn new(shared: Arc<Shared>, group: &str, opts: ConsumerOptions) -> Result<Consumer> {
        check_group_name(group)?;
        let owner = new_owner(shared.me);
        let registry = Registry {
            records: shared.consumer_records(),
        };
        let mut created_unasked = false;
        let (idx, next, generation, delivered, manual) = {
            let g = shared.lock();
            let groups = shared.groups();
            let idx = match (groups.find(&g, group), opts.create) {
                (Some(i), _) => i,
                (None, Some(false)) => {
                    return Err(Error::NotFound(format!(
                        "group {group:?} of queue {:?} (create the group first, or let the \
                         consumer create it)",
                        shared.name
                    )));
                }
                (None, create) => {
                    created_unasked = create.is_none();
                    shared.create_group_locked(&g, group, opts.start)?
                }
            };
            let sharers = registry.count(idx, |p, k| shared.alive(p, k));
            let manual = match opts.ack {
                Ack::Auto => {
                    if sharers > 0 {
                        return Err(Error::Busy(format!(
                            "group {group:?} has {sharers} live ack=manual consumer(s); its consumers must all use ack=manual"
                        )));
                    }
                    groups.attach(&g, idx, group, owner, shared.me.key, |p, k| {
                        shared.alive(p, k)
                    })?;
                    None
                }
                Ack::Manual => {
                    if let Some(pid) = groups.live_owner(idx, |p, k| shared.alive(p, k)) {
                        return Err(Error::Busy(format!(
                            "group {group:?} has a live ack=auto consumer (pid {pid}); stop it first"
                        )));
                    }
                    let rec = &groups.records[idx];
                    let leases = shared.leases(idx);
                    if sharers == 0
                        && rec.committed.load(Ordering::Acquire) == rec.next.load(Ordering::Acquire)
                    {
                        // Nothing in flight: any lease word is from an
                        // ack=auto period or an older lap. Forget them all.
                        leases.reset();
                    }
                    let taken = registry.register(
                        owner,
                        shared.me,
                        idx,
                        os::clock::realtime_ns(),
                        |p, k| shared.alive(p, k),
                    )?;
                    if taken.was_dead {
                        shared.release_holder(taken.index);
                    }
                    Some(Manual {
                        holder: taken.index,
                        lease_ns: shared.config.lease_ns,
                        max_deliveries: shared.config.max_deliveries,
                        last_scan: 0,
                        seen_hint: u64::MAX,
                        scan_from: None,
                    })
                }
            };
            let rec = &groups.records[idx];
            (
                idx,
                rec.next.load(Ordering::Acquire),
                generation(rec),
                rec.delivered.load(Ordering::Relaxed),
                manual,
            )
        };
        if created_unasked {
            eprintln!(
                "shmq: warning: consumer {group:?} created a group of that name in queue {:?} \
                 (from {:?}): it keeps every message from there until it reads it. Creating a \
                 missing group unasked is deprecated: pass ConsumerOptions::create(true) \
                 (Python create=True, C .create = 1) to create it on purpose, or create(false) \
                 to refuse a missing group",
                shared.name, opts.start
            );
        }
        Consumer {
            idx,
            group: group.to_string(),
            owner,
            generation,
            next,
            delivered,
            slot_size: shared.geo.slot_size as usize,
            unblock_timeout_ns: shared.config.unblock_timeout_ns,
            stuck: None,
            empty_polls: 0,
            manual,
            spill: shared.spill.is_some(),
            journal: shared.journal.is_some(),
            replay: None,
            wait: opts.wait,
            held: Held {
                pos: 0,
                word: Word(0),
                keyed: false,
            },
            redriven: 0,
            readiness: None,
            shared,
        }
        .behind_head()
    }

    /// A new consumer whose group is below `head` (created at the journal's
    /// earliest, or seeked there by another handle): ack=auto replays the
    /// journal; ack=manual moves the group to `head` (replay is ack=auto).
    fn behind_head(mut self) -> Result<Consumer> {
        os::fault::point("consumer.attaching");
        if self.journal {
            let shared = self.shared.clone();
            let g = shared.lock();
            // Read again under the lock: `new` read the cursors under an
            // earlier hold of it, and meanwhile other consumers of the
            // group (ack=manual) may have taken it far past `head`. Only a
            // group whose finished cursor is below `head` is behind it; a
            // seek of any other would move a live group back and look,
            // to its other consumers, like a delete.
            let head = shared.header().ring.head.load(Ordering::Acquire);
            let rec = self.record();
            let behind = if self.manual.is_some() {
                rec.committed.load(Ordering::Acquire) < head
            } else {
                self.next < head
            };
            if behind {
                if self.manual.is_some() {
                    self.next = shared.groups().seek(
                        &g,
                        self.idx,
                        &self.group,
                        crate::options::Start::Seq(
                            shared.header().ring.head.load(Ordering::Acquire),
                        ),
                        self.owner,
                        |p, k| shared.alive(p, k),
                    )?;
                    self.generation = generation(self.record());
                } else {
                    self.replay = JournalReader::new(&shared);
                }
            }
        }
        Ok(self)
    }

    /// The lease protocol over our group's records.
    #[inline(always)]
    fn leases(&self) -> Leases<'_> {
        self.shared.leases(self.idx)
    }

    #[inline(always)]
    fn ring(&self) -> Ring<'_, MappedSlots> {
        self.shared.ring()
    }

    #[inline(always)]
    fn record(&self) -> &GroupRecord {
        &self.shared.group_records()[self.idx]
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The seq this consumer will look at next.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Waits for the next message, as long as it takes.
    // Always inlined, with the ack=auto delivery apart, for the reason
    // `try_receive` is (see `Kind`).
    #[inline(always)]
    pub fn receive(&mut self) -> Result<Delivery<'_>> {
        match self.wait(None, true)? {
            Some(Got::Pos(pos)) if self.manual.is_none() => self.deliver_auto(pos),
            Some(got) => self.deliver(got),
            None => Err(Error::Timeout),
        }
    }

    /// Waits at most `timeout` for the next message ([`Error::Timeout`]).
    /// [`poll`](Self::poll) is the same with `Ok(None)` for a timeout, as
    /// [`try_receive`](Self::try_receive) and an empty
    /// [`receive_batch`](Self::receive_batch) say "nothing came".
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Delivery<'_>> {
        let got = self
            .wait(Some(Instant::now() + timeout), true)?
            .ok_or(Error::Timeout)?;
        self.deliver(got)
    }

    /// Waits at most `timeout` for the next message; `Ok(None)` if none
    /// came (a Kafka consumer's `poll(timeout)`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use shmq::{ConsumerOptions, Options, Queue};
    /// let q = Queue::create("doc-poll", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut c = q.consumer("g", ConsumerOptions::new())?;
    /// assert!(c.poll(Duration::from_millis(10))?.is_none());
    /// q.producer()?.publish(b"hi")?;
    /// assert_eq!(c.poll(Duration::from_secs(1))?.unwrap().payload(), b"hi");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Delivery<'_>>> {
        match self.wait(Some(Instant::now() + timeout), true)? {
            Some(got) => self.deliver(got).map(Some),
            None => Ok(None),
        }
    }

    /// The consumer's readiness handle: a file descriptor an event loop
    /// watches (see [`Readiness`] for the loop and its rules). Made at the
    /// first call (a socket, and an entry of the queue's table of async
    /// waiters: at most 64 per queue, `Busy` past that); the same handle
    /// afterwards.
    pub fn readiness(&mut self) -> Result<&Readiness> {
        if self.readiness.is_none() {
            self.readiness = Some(Readiness::new(&self.shared, For::Data)?);
        }
        Ok(self.readiness.as_ref().expect("made above"))
    }

    /// Arms the readiness handle for the next message, after doing what a
    /// sleeping `receive` does before it sleeps (copy spilled messages
    /// back, journal, look for stuck producers). [`Arm::Ready`]: there may
    /// be a message already, try again. [`Arm::Waiting`]: its fd becomes
    /// readable when one may have come. Call it only after `try_receive`
    /// found nothing.
    pub fn arm(&mut self) -> Result<Arm> {
        self.check_group()?;
        if self.unstick()
            || (self.spill && self.refill_spill()?)
            || (self.journal && self.shared.help_journal(false)? > 0)
        {
            return Ok(Arm::Ready);
        }
        self.readiness()?;
        let work = self.work_came();
        let armed = self.readiness.as_ref().expect("made above").arm(work);
        if !armed {
            return Ok(Arm::Ready);
        }
        Ok(Arm::Waiting {
            recheck_after: self.recheck_after(),
        })
    }

    /// Whether a receive may take the ack=auto fast path (one load of the
    /// slot's state word): ack=auto, not replaying the journal, and no
    /// dead letter redriven to the group. `try_receive` and the async
    /// receive's polls decide with this one test.
    #[inline(always)]
    fn on_auto_fast_path(&self) -> bool {
        self.manual.is_none()
            && self.replay.is_none()
            && self.record().redrive.load(Ordering::Relaxed) == 0
    }

    /// For the async API: `try_receive`'s ack=auto fast path, the position
    /// of a ready message, or `None` when that path does not apply or has
    /// nothing (then [`poll_for_async`](Self::poll_for_async) decides). A
    /// bare position, so a future's first poll can go straight on to
    /// [`deliver_auto`](Self::deliver_auto) as `try_receive` does, with
    /// no `Got` to build and match.
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn poll_ready_auto(&mut self) -> Option<u64> {
        if self.on_auto_fast_path() {
            self.poll_once()
        } else {
            None
        }
    }

    /// For the async API: what a `try_receive` would deliver, taken but
    /// not yet made a [`Delivery`] (so that a caller's loop borrows
    /// nothing), or `None` after the empty poll's chores.
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn poll_for_async(&mut self) -> Result<Option<Got>> {
        let got = if self.on_auto_fast_path() {
            self.poll_once().map(Got::Pos)
        } else {
            self.poll_any(true)?
        };
        if got.is_none() {
            self.nothing_yet()?;
        }
        Ok(got)
    }

    /// The delivery of what [`poll_for_async`](Self::poll_for_async) took.
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn deliver_got(&mut self, got: Got) -> Result<Delivery<'_>> {
        match got {
            Got::Pos(pos) if self.manual.is_none() => self.deliver_auto(pos),
            got => self.deliver(got),
        }
    }

    /// Whether the ring has the next position ready (or aborted, to skip)
    /// for this consumer: what `receive_batch` takes, without taking it.
    #[cfg(feature = "tokio")]
    pub(crate) fn has_message(&self) -> bool {
        matches!(self.ring().peek(self.next), Peek::Ready | Peek::Skip)
    }

    /// Takes back an arm that will not be waited for (a wait given up).
    pub fn disarm(&mut self) {
        if let Some(r) = &self.readiness {
            r.disarm();
        }
    }

    /// The re-check a waiter makes after registering (SeqCst loads, the
    /// Signal and doorbell protocols' other half): the position it waits
    /// for committed or aborted, a dead letter redriven to the group, or
    /// (ack=manual) a redelivery hint moved or a release hint set. One condition for the sleeping
    /// `receive` and for `arm`, so the two wait for the same things.
    fn work_came(&self) -> impl Fn() -> bool + '_ {
        let ring = self.ring();
        let next = self.next;
        let rec = self.record();
        let hint = self.manual.as_ref().map(|m| m.seen_hint);
        move || {
            matches!(ring.peek_sc(next), Peek::Ready | Peek::Skip)
                || rec.redrive.load(Ordering::SeqCst) != 0
                || hint.is_some_and(|h| rec.redeliver_hint.load(Ordering::SeqCst) != h)
                || (hint.is_some() && rec.released.iter().any(|r| r.load(Ordering::SeqCst) != 0))
        }
    }

    /// How long an armed async waiter may wait for a ring: forever, unless
    /// something only time changes may be pending, in which case the
    /// sleeping `receive`'s slice.
    fn recheck_after(&self) -> Option<Duration> {
        let hdr = self.shared.header();
        let tail = hdr.ring.tail.load(Ordering::Acquire);
        // A position claimed below the tail but not committed: its
        // producer may have died (unstick after `unblock_timeout`).
        let claimed_unwritten = (tail & !crate::layout::SPILLING) > self.next;
        // Leases out (ack=manual): they may run out, and delayed nacks
        // come due, with no publish to ring for them.
        let leases_out =
            self.manual.is_some() && self.record().committed.load(Ordering::Acquire) < self.next;
        let time_matters =
            claimed_unwritten || leases_out || tail & crate::layout::SPILLING != 0 || self.journal;
        time_matters.then_some(SLEEP_SLICE)
    }

    /// The next message if one is ready, without waiting. Busy-polling
    /// with it makes no system call (ack=auto).
    // Always inlined: returned through memory, the `Delivery` was moved
    // about the caller's stack in pieces the store buffer cannot forward
    // (see `Kind`); inlined, its fields stay scalars.
    #[inline(always)]
    pub fn try_receive(&mut self) -> Result<Option<Delivery<'_>>> {
        if self.on_auto_fast_path() {
            // The ack=auto fast path: one load of the slot's state word.
            return match self.poll_once() {
                Some(pos) => self.deliver_auto(pos).map(Some),
                None => self.nothing_yet().map(|()| None),
            };
        }
        self.try_receive_other()
    }

    /// `try_receive` for ack=manual, or with redriven dead letters waiting.
    #[inline(never)]
    fn try_receive_other(&mut self) -> Result<Option<Delivery<'_>>> {
        match self.poll_any(true)? {
            Some(got) => self.deliver(got).map(Some),
            None => self.nothing_yet().map(|()| None),
        }
    }

    /// An empty poll: now and then, look for a stuck producer and check
    /// that the group is still ours.
    #[inline(always)]
    fn nothing_yet(&mut self) -> Result<()> {
        if self.spill {
            self.refill_spill()?;
        }
        self.empty_polls = self.empty_polls.wrapping_add(1);
        if self.empty_polls % STUCK_CHECK_EVERY == 0 {
            self.look_for_trouble()?;
        }
        Ok(())
    }

    /// The ring has nothing for us: if the queue spills, copy spilled
    /// messages back into it (unless someone else holds the lock, and so
    /// is doing it). Returns whether anything moved.
    #[cold]
    #[inline(never)]
    fn refill_spill(&mut self) -> Result<bool> {
        // Relaxed: a hint on a line that ring-mode publishes never write;
        // the refill itself runs under the admin lock.
        if self.shared.header().spill.active.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        self.shared.help_spill(false)
    }

    #[cold]
    #[inline(never)]
    fn look_for_trouble(&mut self) -> Result<()> {
        self.check_group()?;
        if self.journal {
            self.shared.help_journal(false)?;
        }
        self.unstick();
        // Once a second per process: a sleeper killed in its futex wait
        // left its bit in a signal's `waiters` (every notify would make a
        // wake call for nobody); producers find it through their wasted
        // wakes, idle consumers here.
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = os::clock::monotonic_ns();
        let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000_000_000
            && LAST
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            let h = self.shared.header();
            if h.ring.data.waiters.load(Ordering::Relaxed) != 0
                || h.ring.space.waiters.load(Ordering::Relaxed) != 0
            {
                self.shared.repair_sleepers();
            }
        }
        Ok(())
    }

    /// Finishes the message of `receipt` for the group, as
    /// [`Delivery::ack`] would have. [`Error::LeaseExpired`] if its lease
    /// was taken away; [`Error::InvalidOption`] for another group's.
    pub fn ack_receipt(&mut self, receipt: &Receipt) -> Result<()> {
        match self.receipt_lease(receipt)? {
            Lease::Held(held) => self.ack_leased(&held),
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
            Lease::Held(held) => {
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
        if let Lease::Held(held) = self.receipt_lease(receipt)? {
            let deadline = os::clock::monotonic_ns().saturating_add(extension.as_nanos() as u64);
            match self.leases().extend(&held, deadline) {
                Ok(h) => receipt.lease = Lease::Held(h),
                Err(()) => return Err(Error::LeaseExpired),
            }
        }
        Ok(())
    }

    fn receipt_lease(&self, receipt: &Receipt) -> Result<Lease> {
        if receipt.group != self.idx || self.manual.is_none() {
            return Err(Error::InvalidOption(format!(
                "the receipt of message {} is not of this consumer's group {:?}",
                receipt.seq, self.group
            )));
        }
        Ok(receipt.lease)
    }

    /// Whether this consumer acks manually.
    pub fn ack_mode(&self) -> Ack {
        if self.manual.is_some() {
            Ack::Manual
        } else {
            Ack::Auto
        }
    }

    /// Up to `max` ready messages, waiting at most `timeout` for the first;
    /// an empty batch if none came.
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
        let Some(Got::Pos(first)) = self.wait(Some(Instant::now() + timeout), false)? else {
            return Ok(Batch {
                start,
                end: start,
                count: 0,
                consumer: self,
            });
        };
        let start = first;
        // Validate the first; a corrupt one is skipped with an error.
        self.read(first)?;
        let mut pos = first + 1;
        let mut count = 1;
        let limit = first + self.shared.geo.slots;
        while count < max && pos < limit {
            match self.ring().peek(pos) {
                Peek::Ready => {
                    // A message for another group ends the batch (the next
                    // poll passes it by), as a corrupt one does.
                    if self.for_another_group(pos) || self.read(pos).is_err() {
                        break;
                    }
                    count += 1;
                    pos += 1;
                }
                Peek::Skip => pos += 1,
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

    /// Moves the group to `to` (replay within what the queue retains, or
    /// skip ahead); returns the seq it will receive next, which is later
    /// than a seq asked for that is no longer retained (see [`Seek`] for
    /// the window).
    pub fn seek(&mut self, to: Seek) -> Result<u64> {
        let shared = self.shared.clone();
        let g = shared.lock();
        if self.manual.is_some() {
            let others = Registry {
                records: shared.consumer_records(),
            }
            .count(self.idx, |p, k| shared.alive(p, k));
            if others > 1 {
                return Err(Error::Busy(format!(
                    "group {:?} has {} other live consumers; a seek needs it to itself",
                    self.group,
                    others - 1
                )));
            }
            shared.leases(self.idx).reset();
        }
        let mut start = resolve_seek(&shared, &g, to)?;
        let head = shared.header().ring.head.load(Ordering::Acquire);
        if self.manual.is_some() {
            // Replaying the journal is ack=auto: ack=manual stays in the
            // ring.
            if let crate::options::Start::Seq(n) = start {
                start = crate::options::Start::Seq(n.max(head));
            } else if start == crate::options::Start::Earliest {
                start = crate::options::Start::Seq(head);
            }
        }
        let pos = shared
            .groups()
            .seek(&g, self.idx, &self.group, start, self.owner, |p, k| {
                shared.alive(p, k)
            })?;
        self.next = pos;
        self.generation = generation(self.record());
        self.replay = if pos < head && self.manual.is_none() {
            JournalReader::new(&shared)
        } else {
            None
        };
        drop(g);
        shared.ring().notify_space();
        Ok(pos)
    }

    /// The first ready position at or after `next`, skipping aborted ones.
    #[inline(always)]
    fn poll_once(&mut self) -> Option<u64> {
        loop {
            match self.ring().peek(self.next) {
                Peek::Ready if !self.for_another_group(self.next) => return Some(self.next),
                // Aborted, or a dead letter redriven for another group.
                Peek::Ready | Peek::Skip => {
                    let next = self.next + 1;
                    self.advance(next, 0);
                    self.release(next);
                }
                _ => return None,
            }
        }
    }

    /// Spins, then sleeps, until a message is ready or `deadline` passes.
    fn wait(&mut self, deadline: Option<Instant>, redriven: bool) -> Result<Option<Got>> {
        if let Some(g) = self.poll_any(redriven)? {
            return Ok(Some(g));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // A zero timeout is a poll: copy spilled messages back into the
            // ring, and look for stuck producers now and then, as
            // `try_receive` does.
            if self.spill && self.refill_spill()? {
                if let Some(g) = self.poll_any(redriven)? {
                    return Ok(Some(g));
                }
            }
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % STUCK_CHECK_EVERY == 0 {
                self.check_group()?;
                self.unstick();
            }
            return Ok(None);
        }
        self.check_group()?;
        if self.wait != Wait::SpinFutex {
            return self.spin(deadline, redriven);
        }
        if let Some(g) = self.spin_for(deadline, redriven)? {
            return Ok(Some(g));
        }
        for _ in 0..YIELDS {
            std::thread::yield_now();
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
        }
        loop {
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
            self.check_group()?;
            if self.unstick() {
                continue;
            }
            if self.spill && self.refill_spill()? {
                continue;
            }
            if self.journal && self.shared.help_journal(false)? > 0 {
                continue;
            }
            let mut slice = SLEEP_SLICE;
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Ok(None);
                }
                slice = slice.min(d - now);
            }
            let work = self.work_came();
            let h = self.shared.header();
            sleep_unless(
                &h.ring.data,
                &h.sleepers.data,
                self.shared.me.key,
                slice,
                || work().then_some(()),
            );
        }
    }

    /// `wait` for [`Wait::BusySpin`] and [`Wait::SpinYield`]: polls until a
    /// message is ready or `deadline` passes, never sleeping; on every
    /// empty poll it refills from the spill (overflow=spill), every
    /// `STUCK_CHECK_EVERY` polls it looks at the clock, the group and stuck
    /// producers, and helps the journal.
    fn spin(&mut self, deadline: Option<Instant>, redriven: bool) -> Result<Option<Got>> {
        if self.wait == Wait::SpinYield {
            if let Some(g) = self.spin_for(deadline, redriven)? {
                return Ok(Some(g));
            }
        }
        let mut polls: u32 = 0;
        loop {
            match self.wait {
                Wait::BusySpin => std::hint::spin_loop(),
                _ => std::thread::yield_now(),
            }
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
            // As in the sleeping loop: an overflow=spill queue has its
            // spilled messages copied back by consumers that find the ring
            // empty.
            if self.spill && self.refill_spill()? {
                continue;
            }
            polls = polls.wrapping_add(1);
            if polls % STUCK_CHECK_EVERY == 0 {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
                self.check_group()?;
                self.unstick();
                // As the sleeping loop does before it sleeps: a journaled
                // queue is journaled by consumers with nothing to do.
                if self.journal && self.shared.help_journal(false)? > 0 {
                    continue;
                }
            }
        }
    }

    /// The first phase of `Wait::SpinYield` and `Wait::SpinFutex`: one
    /// poll per pause for `SPIN_FOR` (or until `deadline`). Polling at every
    /// pause rather than backing off exponentially keeps a message that
    /// comes during the spin from waiting out a long pause (crossbeam's
    /// `Backoff` pauses 64 times at its last step, ~1.4 µs here).
    fn spin_for(&mut self, deadline: Option<Instant>, redriven: bool) -> Result<Option<Got>> {
        let start = Instant::now();
        let mut polls: u32 = 0;
        loop {
            std::hint::spin_loop();
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
            polls = polls.wrapping_add(1);
            if polls % STUCK_CHECK_EVERY == 0 {
                let now = Instant::now();
                if now - start >= SPIN_FOR || deadline.is_some_and(|d| now >= d) {
                    return Ok(None);
                }
            }
        }
    }

    /// The next thing to deliver, in either mode: a redriven dead letter
    /// first, then (ack=manual) a due redelivery, then the next message.
    #[inline(always)]
    fn poll_any(&mut self, redriven: bool) -> Result<Option<Got>> {
        if redriven && self.record().redrive.load(Ordering::Acquire) != 0 {
            if let Some(entry) = dlq::take_redriven(&self.shared, self.idx) {
                return Ok(Some(Got::Redriven(entry)));
            }
        }
        if self.replay.is_some() {
            return self.poll_journal();
        }
        if self.manual.is_some() {
            return self.poll_manual();
        }
        Ok(self.poll_once().map(Got::Pos))
    }

    /// Replaying: the next journal record, or back to the ring once the
    /// cursor reaches `head`.
    #[cold]
    fn poll_journal(&mut self) -> Result<Option<Got>> {
        let shared = self.shared.clone();
        let hdr = shared.header();
        let head = hdr.ring.head.load(Ordering::Acquire);
        while self.next < head {
            let r = self.replay.as_mut().expect("replaying");
            match r.find(self.next, &hdr.journal)? {
                Some(rec) if rec.seq < head => {
                    // SAFETY: the record's bytes stay mapped while the
                    // reader holds its segment (until its next read).
                    if !unsafe { rec.enveloped_body() }
                        .is_some_and(|b| self.targets_another_group(b))
                    {
                        return Ok(Some(Got::Journal(rec)));
                    }
                    // A dead letter redriven for another group: passed by.
                    self.advance(rec.seq + 1, 0);
                    self.release(rec.seq + 1);
                }
                // Nothing journaled from `next` to `head`: those positions
                // were aborted. Go on from the first one after them.
                found => {
                    let to = found.map_or(head, |r| r.seq).max(self.next);
                    self.advance(to, 0);
                    self.release(to);
                }
            }
        }
        // Join the ring again under the admin lock, so that no `head`
        // computation leaves us out in between (see `mapped/journal.rs`).
        let g = shared.lock();
        if self.next >= hdr.ring.head.load(Ordering::Acquire) {
            commit_cursor(&self.record().committed, self.next);
            self.replay = None;
        }
        drop(g);
        Ok(if self.replay.is_none() {
            self.poll_once().map(Got::Pos)
        } else {
            None
        })
    }

    /// ack=manual: a due redelivery, or the next message leased to us.
    fn poll_manual(&mut self) -> Result<Option<Got>> {
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
            return Ok(Some(Got::Leased(h)));
        }
        if let Some(h) = self.leases().take_released(holder, now, lease_ns) {
            self.record().delivered.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(Got::Leased(h)));
        }
        let shared = self.shared.clone();
        let ring = shared.ring();
        let leases = shared.leases(self.idx);
        loop {
            let pos = self.record().next.load(Ordering::Acquire);
            self.next = pos;
            match ring.peek(pos) {
                Peek::Ready => {
                    let route = self.route_of(pos);
                    if route == Route::Elsewhere {
                        // A dead letter redriven for another group.
                        leases.skip(pos);
                        if leases.advance_committed() {
                            ring.notify_space();
                        }
                        continue;
                    }
                    if let Route::Lane(lane) = route {
                        match self.take_keyed(&leases, pos, lane, holder, now, lease_ns) {
                            Keyed::Leased(h) => {
                                self.record().delivered.fetch_add(1, Ordering::Relaxed);
                                return Ok(Some(Got::Leased(h)));
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
                    if let Some(h) = leases.take_new(pos, holder, now, lease_ns) {
                        self.record().delivered.fetch_add(1, Ordering::Relaxed);
                        return Ok(Some(Got::Leased(h)));
                    }
                }
                Peek::Skip => {
                    leases.skip(pos);
                    if leases.advance_committed() {
                        ring.notify_space();
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
    fn route_of(&self, pos: u64) -> Route {
        // SAFETY: the slot is committed (the caller peeked Ready, an
        // Acquire load); nobody rewrites it while our group's committed
        // cursor is at or below `pos`.
        let Some(body) =
            (unsafe { read::enveloped_body(self.ring().slots.slot(pos), self.slot_size) })
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

    /// Whether the committed message at `pos` is a dead letter redriven
    /// through the ring for another group (which every other group passes
    /// by). One flag test for a message without an envelope.
    #[inline(always)]
    fn for_another_group(&self, pos: u64) -> bool {
        // SAFETY: as in `route_of`.
        unsafe { read::enveloped_body(self.ring().slots.slot(pos), self.slot_size) }
            .is_some_and(|b| self.targets_another_group(b))
    }

    /// Whether a stored body's envelope names another group as its redrive
    /// target.
    #[cold]
    #[inline(never)]
    fn targets_another_group(&self, body: &[u8]) -> bool {
        matches!(Envelope::parse(body), Ok(env) if env.target.is_some_and(|t| !self.is_us(t)))
    }

    /// Whether a redrive target names this consumer's group.
    fn is_us(&self, t: Target) -> bool {
        t.group as usize == self.idx
            && t.created_ns == self.record().created_ns.load(Ordering::Acquire)
    }

    /// [`Leases::take_keyed`] with the registry's word on who lives.
    fn take_keyed(
        &self,
        leases: &Leases<'_>,
        pos: u64,
        lane: usize,
        holder: u32,
        now: Now,
        lease_ns: u64,
    ) -> Keyed {
        let registry = Registry {
            records: self.shared.consumer_records(),
        };
        let mut alive = |h: u32| registry.alive(h, |p, k| self.shared.alive(p, k));
        let k = leases.take_keyed(pos, lane, holder, now, lease_ns, &mut alive);
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
    fn scan_redeliveries(&mut self, now: Now) -> Result<Option<Held>> {
        let Some(m) = self.manual.as_mut() else {
            return Ok(None);
        };
        let rec = &self.shared.group_records()[self.idx];
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
        let leases = shared.leases(self.idx);
        if full && leases.advance_committed() {
            // A finisher killed between its finishing CAS and its own
            // advance left `committed` behind finished positions: with
            // nothing else finishing, nobody would move it, and `head`
            // (and the spill's refill) would wait for ever.
            shared.ring().notify_space();
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
                match self.dead_letter(&held, Reason::MaxDeliveries, None) {
                    Ok(()) => continue,
                    Err(Error::DlqFull(_)) => {
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

    /// Looks at the position we wait for: if it was claimed and its
    /// producer died, or it stayed uncommitted longer than
    /// `unblock_timeout`, aborts it. Returns true if it did.
    ///
    /// Called every few dozen empty polls, so it must not touch lines that
    /// producers write on every publish: `tail` is read at most once per
    /// [`LIVENESS_EVERY_NS`] (a read of it on every call took the line from
    /// the producer and put a cache miss on its next claim). The timeout
    /// runs from when this consumer first knew the position was claimed,
    /// so it never fires early.
    fn unstick(&mut self) -> bool {
        let pos = self.next;
        let shared = self.shared.clone();
        let ring = shared.ring();
        if matches!(ring.peek(pos), Peek::Ready | Peek::Skip) {
            return false;
        }
        let now = os::clock::monotonic_ns();
        let mut st = match self.stuck {
            Some(st) if st.pos == pos => st,
            _ => Stuck {
                pos,
                claimed_since: None,
                last_check: now,
            },
        };
        let timed_out = st
            .claimed_since
            .is_some_and(|since| now.saturating_sub(since) >= self.unblock_timeout_ns);
        let check = now.saturating_sub(st.last_check) >= LIVENESS_EVERY_NS;
        self.stuck = Some(st);
        if !timed_out && !check {
            return false;
        }
        if check {
            st.last_check = now;
        }
        let seen = match ring.peek(pos) {
            Peek::Ready | Peek::Skip => return false,
            Peek::NotYet(word) => word,
        };
        // Acquire: pairs with the claimer's AcqRel CAS of tail. While the
        // queue spills, tail (less the flag) is the position being copied
        // back from the spill: not claimed, so never aborted.
        if crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire)) <= pos {
            // Nothing claimed there yet: the queue is just empty.
            st.claimed_since = None;
            self.stuck = Some(st);
            return false;
        }
        if st.claimed_since.is_none() {
            // First sight of the claim: the timeout runs from now.
            st.claimed_since = Some(now);
            self.stuck = Some(st);
            return false;
        }
        self.stuck = Some(st);
        let abort = timed_out || (check && self.claimer_is_dead(pos));
        if !abort {
            return false;
        }
        let aborted = ring.abort(pos, seen);
        if aborted {
            self.stuck = None;
            self.shared
                .header()
                .counters
                .aborted
                .fetch_add(1, Ordering::Relaxed);
        }
        aborted
    }

    /// Whether the producer that announced `pos` is known to be dead. A
    /// claimer that has not announced yet (it stalled right after its
    /// claim) is not known: only the timeout aborts it.
    fn claimer_is_dead(&self, pos: u64) -> bool {
        self.shared.producer_records().iter().any(|r| {
            announces(
                r.announce.load(Ordering::Acquire),
                pos,
                self.shared.geo.slots - 1,
            ) && {
                let owner = r.owner.load(Ordering::Acquire);
                !self.shared.alive(
                    crate::protocol::group::owner_pid(owner),
                    r.owner_key.load(Ordering::Acquire),
                )
            }
        })
    }

    /// Fails if our group was deleted or taken from us.
    fn check_group(&mut self) -> Result<()> {
        let rec = self.record();
        if generation(rec) == self.generation
            && (self.manual.is_some() || rec.owner.load(Ordering::Acquire) == self.owner)
        {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "group {:?}: deleted or taken over by another consumer while this one was attached",
            self.group
        )))
    }

    /// Reads the message at committed position `pos`, checking its length.
    #[inline(always)]
    fn read(&self, pos: u64) -> Result<Message<'_>> {
        // SAFETY: the slot is COMMITTED (the caller saw it with an Acquire
        // load, which pairs with the commit's Release), and nobody writes
        // it while our group's committed cursor is at or below `pos`.
        let m = unsafe { read::read_slot(self.ring().slots.slot(pos), self.slot_size) }.map_err(
            |e| {
                let why = match e {
                    read::Garbled::TooLong(len) => format!(
                        "message {pos} claims {len} bytes in slots of {}",
                        self.slot_size
                    ),
                    read::Garbled::Envelope(e) => format!("message {pos}: {e}"),
                };
                Error::corrupt(&self.shared.path, why)
            },
        )?;
        Ok(Message {
            seq: pos,
            body: m.body,
            timestamp_ns: m.timestamp_ns,
            type_id: m.type_id,
            correlation_id: m.correlation_id,
            attempt: 1,
            _borrow: PhantomData,
        })
    }

    #[inline]
    fn deliver(&mut self, got: Got) -> Result<Delivery<'_>> {
        let (pos, held) = match got {
            Got::Pos(pos) => (pos, None),
            Got::Leased(held) => (held.pos, Some(held)),
            Got::Redriven(entry) => return self.deliver_redriven(entry),
            Got::Journal(rec) => return self.deliver_journal(rec),
        };
        if held.is_some() {
            os::fault::point("receive.leased");
        }
        let msg = match self.read(pos) {
            Ok(m) => m,
            Err(e) => {
                // Skip the corrupt message so the group does not stall.
                match held {
                    Some(held) => {
                        let leases = self.leases();
                        if leases.ack(&held).is_ok() && leases.advance_committed() {
                            self.ring().notify_space();
                        }
                    }
                    None => {
                        self.advance(pos + 1, 0);
                        self.release(pos + 1);
                    }
                }
                return Err(e);
            }
        };
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
                Kind::Leased
            }
            None => {
                self.advance(pos + 1, 1);
                Kind::Auto
            }
        };
        Ok(Delivery {
            consumer: self,
            msg,
            kind,
        })
    }

    /// Delivers a journal record (replaying, ack=auto).
    fn deliver_journal(&mut self, rec: JournalRecord) -> Result<Delivery<'_>> {
        // SAFETY: the record's bytes stay mapped while the reader holds
        // its segment (until the next read, after this delivery ends).
        let body = match unsafe { Body::new(rec.ptr, rec.len, rec.enveloped) } {
            Ok(p) => p,
            Err(e) => {
                // A garbled record is passed, as a garbled slot is.
                self.advance(rec.seq + 1, 0);
                let why = format!("journal record {}: {e}", rec.seq);
                return Err(Error::corrupt(&self.shared.path, why));
            }
        };
        let msg = Message {
            seq: rec.seq,
            body,
            timestamp_ns: rec.timestamp_ns,
            type_id: rec.type_id,
            correlation_id: rec.correlation_id,
            attempt: 1,
            _borrow: PhantomData,
        };
        self.advance(rec.seq + 1, 1);
        Ok(Delivery {
            consumer: self,
            msg,
            kind: Kind::Journal,
        })
    }

    /// The ack=auto fast path of [`deliver`](Self::deliver).
    #[inline(always)]
    pub(crate) fn deliver_auto(&mut self, pos: u64) -> Result<Delivery<'_>> {
        let msg = match self.read(pos) {
            Ok(m) => m,
            Err(e) => {
                self.advance(pos + 1, 0);
                self.release(pos + 1);
                return Err(e);
            }
        };
        let msg = Message {
            _borrow: PhantomData,
            ..msg
        };
        self.advance(pos + 1, 1);
        Ok(Delivery {
            consumer: self,
            msg,
            kind: Kind::Auto,
        })
    }

    /// Delivers redriven dead letter `entry` from the DLQ region.
    fn deliver_redriven(&mut self, entry: usize) -> Result<Delivery<'_>> {
        let raw = match dlq::read(&self.shared, entry) {
            Ok(r) => r,
            Err(e) => {
                // A garbled entry goes back to the DLQ, not to us again.
                self.end_redriven(entry, false, true);
                return Err(e);
            }
        };
        // SAFETY: the entry's `len <= slot_size` body bytes are inside
        // the mapping, and ours (DELIVERING) until the delivery ends.
        let body = match unsafe { Body::new(raw.payload, raw.len, raw.enveloped) } {
            Ok(p) => p,
            Err(e) => {
                self.end_redriven(entry, false, true);
                let why = format!("dead letter {entry}: {e}");
                return Err(Error::corrupt(&self.shared.path, why));
            }
        };
        let msg = Message {
            seq: raw.seq,
            body,
            timestamp_ns: raw.timestamp_ns,
            type_id: raw.type_id,
            correlation_id: raw.correlation_id,
            // A fresh budget since the redrive (as an SQS redrive): the
            // deliveries since it, this one included.
            attempt: (raw.redrive >> 16).saturating_add(1),
            _borrow: PhantomData,
        };
        self.redriven = entry;
        Ok(Delivery {
            consumer: self,
            msg,
            kind: Kind::Redriven,
        })
    }

    /// Ends the delivery of a redriven dead letter: finished (`done`), back
    /// to the group, or back to the DLQ.
    fn end_redriven(&self, entry: usize, done: bool, back_to_dlq: bool) {
        let rec = self.record();
        if self.manual.is_some() {
            if done {
                rec.acked.fetch_add(1, Ordering::Relaxed);
            } else {
                rec.nacked.fetch_add(1, Ordering::Relaxed);
            }
        }
        let dead = dlq::end_redriven(&self.shared, entry, self.idx, done, back_to_dlq);
        if dead {
            rec.dead_lettered.fetch_add(1, Ordering::Relaxed);
        } else if !done {
            self.ring().notify_data();
        }
        if done {
            // An entry freed: bring an overflowed dead letter back into it
            // (an error is left for the next DLQ operation to report).
            let _ = dlq::overflow::refill(&self.shared, false);
        }
    }

    fn ack_leased(&self, held: &Held) -> Result<()> {
        let leases = self.leases();
        os::fault::point("ack.before");
        leases.ack(held).map_err(|()| Error::LeaseExpired)?;
        os::fault::point("ack.acked");
        self.record().acked.fetch_add(1, Ordering::Relaxed);
        if held.keyed {
            // The next message of its lane may be due now.
            self.ring().notify_data();
        }
        if leases.advance_committed() {
            self.ring().notify_space();
        }
        Ok(())
    }

    fn nack_leased(&self, held: &Held, how: Nack, msg: &Message<'_>) -> Result<()> {
        let now = os::clock::monotonic_ns();
        let result = match how {
            Nack::Requeue => self.requeue(held, now),
            Nack::RequeueAfter(d) => self.requeue(held, now.saturating_add(d.as_nanos() as u64)),
            Nack::DeadLetter => return self.dead_letter(held, Reason::Nacked, Some(msg)),
        };
        if result.is_ok() {
            self.record().nacked.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Gives a lease back, to be delivered not before `not_before`
    /// (CLOCK_MONOTONIC ns), and tells the group's consumers.
    fn requeue(&self, held: &Held, not_before: u64) -> Result<()> {
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
    fn dead_letter(&self, held: &Held, reason: Reason, msg: Option<&Message<'_>>) -> Result<()> {
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
                    leases.restore(&taking);
                    return Err(e);
                }
            },
        };
        let (first_ns, last_ns) = leases.times(held.pos);
        let rec = self.record();
        let entry = Entry {
            seq: held.pos,
            redrives: 0,
            group: self.idx,
            group_created_ns: rec.created_ns.load(Ordering::Acquire),
            // After max_deliveries, the lease we took to move it was not a
            // delivery.
            attempts: match reason {
                Reason::MaxDeliveries => held.attempt() - 1,
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
        if let Err(e) = dlq::append(&self.shared, &entry) {
            leases.restore(&taking);
            return Err(e);
        }
        leases.finish_dead(&taking);
        rec.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if held.keyed {
            // The next message of its lane may be due now.
            self.ring().notify_data();
        }
        if leases.advance_committed() {
            self.ring().notify_space();
        }
        Ok(())
    }

    /// Hands out everything below `next` (the durable cursor: a restarted
    /// consumer resumes there).
    #[inline(always)]
    fn advance(&mut self, next: u64, delivered: u64) {
        self.next = next;
        self.delivered += delivered;
        let rec = &self.shared.group_records()[self.idx];
        // Release: the cursor is read by others (stats, a successor) with
        // Acquire. The consumer is the only writer while attached.
        rec.next.store(next, Ordering::Release);
        rec.delivered.store(self.delivered, Ordering::Relaxed);
    }

    /// Releases the slots below `committed` for reuse.
    #[inline(always)]
    fn release(&self, committed: u64) {
        commit_cursor(&self.record().committed, committed);
        self.ring().notify_space();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        match &self.manual {
            Some(m) => Registry {
                records: self.shared.consumer_records(),
            }
            .unregister(m.holder, self.owner),
            None => self.shared.groups().detach(self.idx, self.owner),
        }
        // Detaching may commit the last delivery: producers waiting for
        // room (asleep or armed) hear of it.
        self.ring().notify_space();
    }
}
