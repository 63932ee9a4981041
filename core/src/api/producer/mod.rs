//! Publishing: claim a position, write the slot, commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zerocopy::{Immutable, IntoBytes};

use crate::api::cache_hints::CacheHints;
use crate::api::readiness::Readiness;
use crate::error::{Error, Result};
use crate::layout::{ProducerRecord, commit_mode};
use crate::loom::Ordering;
use crate::open_queue::dedup;
use crate::open_queue::{MappedSlots, OpenQueue, new_owner};
use crate::options::{Meta, Overflow};
use crate::os;
use crate::protocol::group::owner_pid;
use crate::protocol::registry::{claim_owner, give_record, take_record};
use crate::protocol::ring::{Begin, Ring};
use crate::protocol::spill::Record;
use crate::record::envelope::{self, EnvelopePlan};
use crate::record::write::{write_slot, write_slot_enveloped};

mod batch;
mod claim;
mod reservation;
mod schedule;

pub(crate) use schedule::move_due;

/// What a publish writes in front of its payload.
#[derive(Clone, Copy)]
enum Body<'p> {
    /// Nothing: the payload is the body.
    Bare,
    /// The envelope `plan` describes (built in the slot).
    Planned(&'p EnvelopePlan<'p>),
    /// The payload already starts with an envelope (a scheduled message's
    /// stored body).
    Enveloped,
}

pub use reservation::Reservation;

/// Publishes messages. Cheap to create; use one per thread (it keeps a
/// cached copy of the ring's gating cursor). A producer made before a
/// `fork` must not be used in the child: make a new one there.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use shmq::{Meta, Options, Overflow, Queue, Start};
/// let q = Queue::create("doc-producer", &Options::new().dir(dir.path()).slots(8))?;
/// q.create_group("g", Start::Earliest)?;
/// let mut p = q.producer()?;
/// assert_eq!(p.publish(b"plain")?, 0);
/// p.publish_with(b"tagged", &Meta::new().type_id(3).correlation_id(77))?;
/// assert_eq!(p.publish_batch(&[b"x", b"y"])?, 2); // the first one's seq
/// // Written in place: no copy of the payload.
/// let mut r = p.reserve(5)?;
/// r.copy_from_slice(b"frame");
/// assert_eq!(r.commit()?, 4);
/// // Three slots free: a batch of four (no larger than the ring) goes in
/// // whole or not at all, and times out; three go in.
/// let four = [b"1", b"2", b"3", b"4"];
/// let t = Duration::from_millis(50);
/// assert!(matches!(p.publish_batch_timeout(&four, t), Err(shmq::Error::Timeout)));
/// assert_eq!(p.publish_batch_timeout(&four[..3], t)?, (5, 3));
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Producer {
    /// The open queue; its mapping outlives every reservation.
    shared: Arc<OpenQueue>,
    /// Our owner word (pid and token) in our producer record.
    owner: u64,
    /// Our record in the producer table: ours alone while we live (we
    /// announce there the position we write).
    record_index: usize,
    /// A copy of the ring's `head`, never ahead of it: a claim below
    /// `cached_head + slots` needs no look at the shared line.
    cached_head: u64,
    /// The queue's `max_message_size`: no payload (with its envelope) is
    /// longer.
    max_message: usize,
    /// The queue's overflow policy.
    overflow: Overflow,
    /// The publish timestamps' clock (CLOCK_REALTIME, cached per call).
    clock: os::clock::Clock,
    /// The queue keeps a journal: journal the ring now and then.
    journal: bool,
    /// When this producer was made: a deadline already passed, for the
    /// publishes that must not wait (no clock read on their fast path).
    made: Instant,
    /// The async waiter's doorbell, made by the first `readiness`/`arm`.
    readiness: Option<Readiness>,
    /// The cache hints of the fast path (see [`CacheHints`]).
    hints: CacheHints,
    /// Keyed publishes answered with an earlier publish's seq.
    deduplicated: u64,
    /// Positions claimed since the control words were last checked.
    claims_since_check: u64,
    /// The queue's `delivery_delay` in ns (0: none): every publish is
    /// scheduled.
    delivery_delay_ns: u64,
    /// What the last publish that could not go in waited for: what
    /// [`arm`](Self::arm) arms for.
    refused: Refused,
}

/// What a publish refused for want of room (or of the schedule's lock)
/// waits for: [`Producer::arm`] must not answer "ready" while that is
/// still missing, or an async publisher asks again at once, for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Free ring positions: the span of the claim that found too few (a
    /// long message takes several).
    Room(u64),
    /// The schedule's lock, held by another process for a disk write or a
    /// pass of moves. Nothing rings when it is let go.
    ScheduleLock,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.shared.name)
            .finish()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.journal {
            let _ = self.shared.help_journal(true);
        }
        let rec = &self.shared.producer_records()[self.record_index];
        give_record(&rec.owner, &rec.owner_key, self.owner, self.shared.me.key);
    }
}

impl Producer {
    pub(crate) fn new(shared: Arc<OpenQueue>) -> Result<Producer> {
        let me = shared.me;
        let owner = new_owner(me);
        // Free records first: a dead producer's record keeps telling
        // consumers that its claim will never be written for as long as
        // it can. A dead one is taken only after its claim is settled.
        let records = shared.producer_records();
        let take = |i: usize, dead: bool| {
            let rec = &records[i];
            let key = rec.owner_key.load(Ordering::Acquire);
            let cur = rec.owner.load(Ordering::Acquire);
            let usable = if dead {
                key != 0 && !shared.alive(owner_pid(cur), key) && shared.settle_dead_announcement(i)
            } else {
                key == 0
            };
            usable && take_record(&rec.owner_key, key, me.key)
        };
        let found = (0..records.len())
            .map(|i| (i, false))
            .chain((0..records.len()).map(|i| (i, true)))
            .find(|&(i, dead)| take(i, dead));
        let record = found.map(|(i, _)| {
            let rec = &records[i];
            // The dead owner's announcement was settled before we took
            // the record (`settle_dead_announcement`); with our key in
            // it the record reads alive, so it must not name a record
            // for the keyed settle below.
            rec.announce.store(0, Ordering::Release);
            rec.committing.store(0, Ordering::Relaxed);
            os::fault::point("producer.registering");
            claim_owner(&rec.owner, owner);
            // A keyed publish a dead owner left in flight is settled
            // before we forget it.
            dedup::settle_dead_record(&shared, i);
            // SeqCst, before our first claim: a settler in a process that
            // cannot fence looks for live asymmetric producers with SeqCst
            // loads after its abort (`Ring::settle_abort`).
            rec.mode.store(
                if os::fence::usable() {
                    commit_mode::ASYMMETRIC
                } else {
                    commit_mode::CAS
                },
                Ordering::SeqCst,
            );
            rec.registered_ns
                .store(os::clock::realtime_ns(), Ordering::Relaxed);
            i
        });
        let Some(record) = record else {
            return Err(Error::Busy(format!(
                "all {} producer records are in use by live producers (or by dead ones whose batch consumers have not yet aborted)",
                shared.producer_records().len()
            )));
        };
        let cached_head = shared.header().ring.head.load(Ordering::Acquire);
        Ok(Producer {
            owner,
            record_index: record,
            cached_head,
            max_message: shared.config.max_message_size as usize,
            overflow: shared.overflow(),
            clock: os::clock::Clock::default(),
            journal: shared.journal.is_some(),
            made: Instant::now(),
            readiness: None,
            deduplicated: 0,
            claims_since_check: 0,
            refused: Refused::Room(1),
            delivery_delay_ns: shared.config.delivery_delay_ns,
            hints: CacheHints::choose(
                shared.geo.slots,
                shared.geo.slot_stride,
                CacheHints::demote_from_env(),
            ),
            shared,
        })
    }

    #[inline(always)]
    fn ring(&self) -> Ring<'_, MappedSlots> {
        self.shared.ring()
    }

    /// Largest payload this queue takes (its `max_message_size`; an
    /// ordering key and headers count against it too).
    pub fn max_payload(&self) -> usize {
        self.max_message
    }

    /// The cache hints this producer's publishes give the CPU, chosen for
    /// its queue's slots on this CPU (see [`CacheHints`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let q = shmq::Queue::create("doc-hints", &shmq::Options::new().dir(dir.path()).slot_size(1024))?;
    /// let hints = q.producer()?.cache_hints();
    /// assert_eq!(hints.lines_per_slot, 17); // 32 B header + 1 KiB
    /// println!("{hints}"); // e.g. "demote off (CPU has CLDEMOTE, 17-line slots); prefetch 1 slot(s) ahead, 17 line(s) each"
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn cache_hints(&self) -> CacheHints {
        self.hints
    }

    /// Publishes `payload`; returns its seq. When the ring is full, waits
    /// (overflow=block) or fails with [`Error::Full`] (overflow=reject).
    #[inline]
    pub fn publish(&mut self, payload: &[u8]) -> Result<u64> {
        self.publish_inner(payload, &Meta::NONE, None)
    }

    /// Publishes `payload` with metadata.
    #[inline]
    pub fn publish_with(&mut self, payload: &[u8], meta: &Meta) -> Result<u64> {
        self.publish_inner(payload, meta, None)
    }

    /// Like [`publish`](Self::publish), waiting at most `timeout` for room
    /// ([`Error::Timeout`] after that; nothing was published).
    pub fn publish_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<u64> {
        self.publish_inner(payload, &Meta::NONE, Some(Instant::now() + timeout))
    }

    /// Publishes `payload` only if that needs no wait: [`Error::Timeout`]
    /// (nothing published) where [`publish`](Self::publish) would wait for
    /// room; [`Error::Full`] with overflow=reject. Reads no clock unless the
    /// ring looks full — the call for a caller that must never block (an
    /// event loop, a language binding holding its interpreter lock).
    #[inline]
    pub fn try_publish(&mut self, payload: &[u8]) -> Result<u64> {
        self.publish_inner(payload, &Meta::NONE, Some(self.made))
    }

    /// [`try_publish`](Self::try_publish) with metadata.
    #[inline]
    pub fn try_publish_with(&mut self, payload: &[u8], meta: &Meta) -> Result<u64> {
        self.publish_inner(payload, meta, Some(self.made))
    }

    /// Like [`publish_with`](Self::publish_with), waiting at most `timeout`.
    pub fn publish_with_timeout(
        &mut self,
        payload: &[u8],
        meta: &Meta,
        timeout: Duration,
    ) -> Result<u64> {
        self.publish_inner(payload, meta, Some(Instant::now() + timeout))
    }

    /// Publishes a value's bytes (zerocopy `IntoBytes`), to be read with
    /// [`Message::value`](crate::Message::value).
    pub fn publish_value<T: IntoBytes + Immutable + ?Sized>(&mut self, value: &T) -> Result<u64> {
        self.publish(value.as_bytes())
    }

    /// [`publish_value`](Self::publish_value) with metadata.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
    /// use shmq::{ConsumerOptions, Meta, Options, Queue};
    ///
    /// // zerocopy comes with shmq: derive through its path.
    /// #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    /// #[zerocopy(crate = "shmq::zerocopy")]
    /// #[repr(C)]
    /// struct Tick {
    ///     price: u64,
    ///     qty: u32,
    ///     venue: u32,
    /// }
    ///
    /// let q = Queue::create("doc-value", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut c = q.consumer("g", ConsumerOptions::new())?;
    /// let tick = Tick { price: 101, qty: 5, venue: 2 };
    /// q.producer()?.publish_value_with(&tick, &Meta::new().type_id(1))?;
    /// let m = c.receive()?;
    /// assert_eq!((m.type_id(), m.value::<Tick>()?.price), (1, 101));
    /// // A payload read as a type of another size is WrongType.
    /// assert!(matches!(m.value::<u64>(), Err(shmq::Error::WrongType { len: 16, .. })));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn publish_value_with<T: IntoBytes + Immutable + ?Sized>(
        &mut self,
        value: &T,
        meta: &Meta,
    ) -> Result<u64> {
        self.publish_with(value.as_bytes(), meta)
    }

    #[inline]
    fn publish_inner(
        &mut self,
        payload: &[u8],
        meta: &Meta,
        deadline: Option<Instant>,
    ) -> Result<u64> {
        if self.delivery_delay_ns != 0 || meta.scheduled() {
            if let Some(due) = meta.due_ns(os::clock::schedule_now_ns(), self.delivery_delay_ns) {
                return self.publish_scheduled(payload, meta, due, deadline);
            }
        }
        if meta.enveloped() {
            return self.publish_enveloped(payload, meta, deadline);
        }
        self.check_size(payload.len(), None)?;
        if let Some(key) = meta.key {
            return self.publish_keyed(key, payload, None, meta, deadline);
        }
        self.publish_once(payload, Body::Bare, meta, deadline, |_| {})
    }

    /// A publish with an ordering key or headers: the envelope goes in the
    /// slot in front of the payload (no allocation on the ring path).
    #[cold]
    fn publish_enveloped(
        &mut self,
        payload: &[u8],
        meta: &Meta,
        deadline: Option<Instant>,
    ) -> Result<u64> {
        let expires = meta.expires_ns(os::clock::realtime_ns());
        if expires.is_some() {
            let seen = &self.shared.header().ttl_seen;
            // Relaxed: a hint for producers held by a full ring, which
            // take the admin lock before they act on it.
            if seen.load(Ordering::Relaxed) == 0 {
                seen.store(1, Ordering::Relaxed);
            }
        }
        let plan = envelope::plan(meta.ordering_key, &meta.headers, expires)?
            .expect("enveloped() said there is something to hold");
        self.check_size(payload.len(), Some(&plan))?;
        if let Some(key) = meta.key {
            return self.publish_keyed(key, payload, Some(&plan), meta, deadline);
        }
        self.publish_once(payload, Body::Planned(&plan), meta, deadline, |_| {})
    }

    /// A keyed dead letter redriven through the ring, for the group of
    /// `target` only; waits for room no longer than `deadline`.
    pub(crate) fn publish_redriven(
        &mut self,
        payload: &[u8],
        meta: &Meta,
        target: envelope::Target,
        deadline: Instant,
    ) -> Result<u64> {
        // A redriven dead letter starts a new life: no expiry.
        let plan = envelope::plan(meta.ordering_key, &meta.headers, None)?
            .ok_or_else(|| Error::InvalidOption("a redrive through the ring needs a key".into()))?
            .for_group(target);
        self.check_size(payload.len(), Some(&plan))?;
        self.publish_once(payload, Body::Planned(&plan), meta, Some(deadline), |_| {})
    }

    /// Claims, writes and commits one message; `claimed(pos)` is told the
    /// position before the slot is written.
    #[inline(always)]
    fn publish_once(
        &mut self,
        payload: &[u8],
        body: Body<'_>,
        meta: &Meta,
        deadline: Option<Instant>,
        mut claimed: impl FnMut(u64),
    ) -> Result<u64> {
        let ts = self.clock.now_ns();
        let plan = match body {
            Body::Planned(p) => Some(p),
            Body::Bare | Body::Enveloped => None,
        };
        let span = self.span_of(plan.map_or(0, |p| p.size) + payload.len());
        loop {
            let Some(pos) = self.claim_or_spill(span, deadline)? else {
                // The spill writes a whole body: with an envelope, built
                // here (the spill path does I/O anyway).
                let built = plan.map(|p| p.body_with(payload));
                let enveloped = !matches!(body, Body::Bare);
                let rec = Record::of(built.as_deref().unwrap_or(payload), enveloped, meta, ts);
                match self.spill(&mut [rec], deadline, &mut claimed)? {
                    Some(seq) => return Ok(seq),
                    None => continue,
                }
            };
            claimed(pos);
            self.count_extra_slots(span);
            let Some(seen) = self.begin(pos, span) else {
                continue;
            };
            let ring = self.ring();
            let slot = ring.slots.slot(pos);
            // SAFETY: the slot is ours (begun by us) until commit; it is
            // inside the mapping; the payload (and envelope) fit (checked
            // by callers).
            unsafe {
                match body {
                    Body::Bare => write_slot(slot, payload, false, meta, ts),
                    Body::Enveloped => write_slot(slot, payload, true, meta, ts),
                    Body::Planned(plan) => write_slot_enveloped(slot, plan, payload, meta, ts),
                }
            };
            os::fault::point("publish.before_commit");
            if ring.commit(pos, span, seen, self.me()).is_err() {
                // The consumer that aborted it counted it.
                return Err(Error::Aborted);
            }
            os::fault::point("publish.after_commit");
            if ring.notify_data() {
                self.shared.repair_sleepers();
            }
            // A waiting consumer spins on the slot's first line and reads
            // the second only once the first says COMMITTED: pushing the
            // second to the shared cache now makes that read a last-level
            // hit instead of one more snoop into our core (two-line slots
            // on CPUs with CLDEMOTE only: see `CacheHints::demote`).
            if self.hints.demote {
                os::cpu::demote(slot.wrapping_add(64));
            }
            self.prefetch_ahead_of(pos + span - 1);
            if self.journal {
                self.shared.journal_now_and_then(pos);
            }
            return Ok(pos);
        }
    }

    /// A publish with an idempotency key (see [`Meta::key`]).
    #[cold]
    fn publish_keyed(
        &mut self,
        key: u64,
        payload: &[u8],
        plan: Option<&EnvelopePlan<'_>>,
        meta: &Meta,
        deadline: Option<Instant>,
    ) -> Result<u64> {
        let shared = self.shared.clone();
        let i = match self.reserve_key(key)? {
            Err(first) => return Ok(first),
            Ok(i) => i,
        };
        os::fault::point("keyed.reserved");
        let rec = self.record_index;
        let body = plan.map_or(Body::Bare, Body::Planned);
        match self.publish_once(payload, body, meta, deadline, |pos| {
            dedup::claimed(&shared, rec, i, pos)
        }) {
            Ok(seq) => {
                dedup::published(&shared, rec, i, seq);
                Ok(seq)
            }
            Err(e) => {
                dedup::abandon(&shared, rec, i);
                Err(e)
            }
        }
    }

    /// Looks idempotency key `key` up: `Ok(entry)` reserved for us to
    /// publish (and report to), or `Err(number)`, the number the key's
    /// first publish returned (counted as deduplicated).
    fn reserve_key(&mut self, key: u64) -> Result<std::result::Result<usize, u64>> {
        match dedup::reserve(&self.shared, key)? {
            dedup::Reserve::Published(first) => {
                self.shared
                    .header()
                    .counters
                    .deduplicated
                    .fetch_add(1, Ordering::Relaxed);
                self.deduplicated += 1;
                Ok(Err(first))
            }
            dedup::Reserve::Mine(i) => Ok(Ok(i)),
        }
    }

    /// Our producer record, where we announce what we write.
    #[inline(always)]
    fn me(&self) -> &ProducerRecord {
        &self.shared.producer_records()[self.record_index]
    }

    /// Slots a record of `body` bytes (envelope and payload) takes.
    #[inline(always)]
    pub(crate) fn span_of(&self, body: usize) -> u64 {
        self.shared.geo.span_of(body)
    }

    /// Begins writing the claimed record `pos .. pos + span`: its first
    /// slot's older word, or `None` if it was aborted (by a consumer, or by
    /// us because a stalled producer still holds one of its slots) and
    /// another must be claimed.
    #[inline(always)]
    fn begin(&self, pos: u64, span: u64) -> Option<u64> {
        let b = self
            .ring()
            .begin(pos, span, self.me(), |p, s| self.shared.held(p, s));
        self.begun(b)
    }

    /// [`begin`](Self::begin) for a record of a batch whose positions
    /// were announced at once (`Ring::announce_from`).
    #[inline(always)]
    fn begin_announced(&self, pos: u64, span: u64) -> Option<u64> {
        let b = self
            .ring()
            .begin_announced(pos, span, self.me(), |p, s| self.shared.held(p, s));
        self.begun(b)
    }

    #[inline(always)]
    fn begun(&self, b: Begin) -> Option<u64> {
        match b {
            Begin::Ours(seen) => Some(seen),
            Begin::Held => {
                self.count_abort();
                None
            }
            // A consumer aborted it and counted it.
            Begin::Aborted => None,
        }
    }

    /// Warms, for writing, the slot `CacheHints::prefetch_slots` positions
    /// after `pos`, while nothing waits on us: a consumer read its lines a
    /// lap ago, and taking them back from its cache is otherwise on a
    /// later publish's critical path (and, for a slot of many lines, each
    /// line's ownership request would wait for the one before). Far
    /// enough ahead that the lines have arrived when a back-to-back
    /// publish gets there, and (the ring is larger than that) never the
    /// slot a caught-up consumer spins on: taking that line would only
    /// bounce it between the cores.
    #[inline(always)]
    fn prefetch_ahead_of(&self, pos: u64) {
        let ahead = self.hints.prefetch_slots;
        if ahead == 0 {
            return;
        }
        let slot = self.ring().slots.slot(pos + ahead);
        for line in 0..self.hints.lines_per_slot as usize {
            os::cpu::prefetch_write(slot.wrapping_add(line * 64));
        }
    }

    /// Refuses a payload of `payload` bytes behind envelope `plan` that
    /// is larger than the queue's `max_message_size`.
    #[inline(always)]
    fn check_size(&self, payload: usize, plan: Option<&EnvelopePlan<'_>>) -> Result<()> {
        if plan.map_or(0, |p| p.size).saturating_add(payload) > self.max_message {
            return Err(envelope::too_large(payload, plan, self.max_message));
        }
        Ok(())
    }

    /// Counts the slots a record of `span` takes past its first (only
    /// messages longer than a slot pay for the shared counter).
    #[inline(always)]
    fn count_extra_slots(&self, span: u64) {
        if span > 1 {
            self.count_extra_slots_slow(span - 1);
        }
    }

    #[cold]
    fn count_extra_slots_slow(&self, n: u64) {
        self.shared
            .header()
            .counters
            .extra_slots
            .fetch_add(n, Ordering::Relaxed);
    }

    fn count_abort(&self) {
        self.shared
            .header()
            .counters
            .aborted
            .fetch_add(1, Ordering::Relaxed);
    }

    /// How many of this producer's keyed publishes ([`Meta::key`]) found
    /// their key already published: each returned the earlier publish's
    /// seq and published nothing. Compare before and after a run of
    /// publishes to tell how many really went in (`shmq publish --key`
    /// says "published 1 (3 already there)"):
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Meta, Options, Queue};
    /// let q = Queue::create("doc-dedup", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut p = q.producer()?;
    /// let first = p.publish_with(b"a", &Meta::new().key("job-1"))?;
    /// assert_eq!(p.publish_with(b"a", &Meta::new().key("job-1"))?, first);
    /// assert_eq!(p.deduplicated(), 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn deduplicated(&self) -> u64 {
        self.deduplicated
    }

    /// Why a publish finds (or would find) no room: the group holding the
    /// ring, or the spill's full budget or disk ([`Queue::why_full`]). For
    /// the message of a [`Error::Timeout`], [`Error::Full`] or
    /// [`Error::SpillFull`]:
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Error, Options, Overflow, Queue, Start};
    /// let q = Queue::create("doc-why", &Options::new().dir(dir.path()).slots(8).overflow(Overflow::Reject))?;
    /// q.create_group("audit", Start::Earliest)?;
    /// let mut p = q.producer()?;
    /// for _ in 0..8 {
    ///     p.publish(b"x")?;
    /// }
    /// assert!(matches!(p.publish(b"x"), Err(Error::Full)));
    /// assert!(p.why_full().starts_with("group \"audit\" holds the ring: it is 8 messages behind"));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    ///
    /// [`Queue::why_full`]: crate::Queue::why_full
    pub fn why_full(&self) -> String {
        crate::api::room::why_full(&self.shared)
    }
}
