//! Publishing: claim a position, write the slot, commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use zerocopy::{Immutable, IntoBytes};

use crate::api::cache_hints::CacheHints;
use crate::api::readiness::{Arm, For, Readiness};
use crate::error::{Error, Result};
use crate::mapped::dedup;
use crate::mapped::{MappedSlots, Shared, new_owner};
use crate::options::{Meta, Overflow};
use crate::os;
use crate::protocol::group::owner_pid;
use crate::protocol::registry::take_record;
use crate::protocol::ring::{Begin, Claim, Ring, sleep_unless};
use crate::protocol::spill::Record;
use crate::record::envelope::{self, Plan};
use crate::record::write::{
    payload_area, payload_view, write_header, write_slot, write_slot_enveloped,
};
use crate::sync::Ordering;

/// Longest single sleep of a blocked publisher, so it notices new groups,
/// deadlines and signals.
const SLEEP_SLICE: Duration = Duration::from_millis(20);

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
    shared: Arc<Shared>,
    owner: u64,
    record: usize,
    cached_head: u64,
    slot_size: usize,
    overflow: Overflow,
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
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("queue", &self.shared.name)
            .finish()
    }
}

/// A claimed slot being written in place. `commit` publishes it; dropping
/// it aborts the position (consumers skip it).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let q = shmq::Queue::create("doc-reserve", &shmq::Options::new().dir(dir.path()).slots(8))?;
/// let mut producer = q.producer()?;
/// let mut r = producer.reserve(5)?;
/// r.copy_from_slice(b"hello");
/// let seq = r.commit()?;
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Reservation<'p> {
    producer: &'p mut Producer,
    pos: u64,
    /// The slot's older state word, for the commit CAS.
    seen: u64,
    slot: *mut u8,
    len: usize,
    /// What `set_meta` gave (its type and correlation id only).
    meta: Meta<'static>,
    /// `set_meta` was given what a reservation cannot carry.
    refused: bool,
    done: bool,
}

impl Producer {
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Producer> {
        let me = shared.me;
        let owner = new_owner(me);
        // Free records first: a dead producer's record keeps telling
        // consumers that its claim will never be written for as long as
        // it can. A dead one is taken only after its claim is settled.
        let records = shared.producer_records();
        let take = |i: usize, dead: bool| {
            let rec = &records[i];
            let cur = rec.owner.load(Ordering::Acquire);
            let key = rec.owner_key.load(Ordering::Acquire);
            let usable = if dead {
                cur != 0 && !shared.alive(owner_pid(cur), key) && shared.settle_dead_announcement(i)
            } else {
                cur == 0
            };
            usable && take_record(&rec.owner, &rec.owner_key, cur, key, owner)
        };
        let found = (0..records.len())
            .map(|i| (i, false))
            .chain((0..records.len()).map(|i| (i, true)))
            .find(|&(i, dead)| take(i, dead));
        let record = found.map(|(i, _)| {
            let rec = &records[i];
            // A keyed publish a dead owner left in flight is settled
            // before we forget it.
            dedup::settle_dead_record(&shared, i);
            rec.announce.store(0, Ordering::Relaxed);
            rec.owner_key.store(me.key, Ordering::Release);
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
            record,
            cached_head,
            slot_size: shared.geo.slot_size as usize,
            overflow: shared.overflow(),
            clock: os::clock::Clock::default(),
            journal: shared.journal.is_some(),
            made: Instant::now(),
            readiness: None,
            deduplicated: 0,
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

    /// Largest payload this queue takes.
    pub fn max_payload(&self) -> usize {
        self.slot_size
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
        if meta.enveloped() {
            return self.publish_enveloped(payload, meta, deadline);
        }
        self.check_size(payload.len(), None)?;
        if let Some(key) = meta.key {
            return self.publish_keyed(key, payload, None, meta, deadline);
        }
        self.publish_once(payload, None, meta, deadline, |_| {})
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
        let plan = envelope::plan(meta.ordering_key, &meta.headers)?
            .expect("enveloped() said there is something to hold");
        self.check_size(payload.len(), Some(&plan))?;
        if let Some(key) = meta.key {
            return self.publish_keyed(key, payload, Some(&plan), meta, deadline);
        }
        self.publish_once(payload, Some(&plan), meta, deadline, |_| {})
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
        let plan = envelope::plan(meta.ordering_key, &meta.headers)?
            .ok_or_else(|| Error::InvalidOption("a redrive through the ring needs a key".into()))?
            .for_group(target);
        self.check_size(payload.len(), Some(&plan))?;
        self.publish_once(payload, Some(&plan), meta, Some(deadline), |_| {})
    }

    /// Claims, writes and commits one message; `claimed(pos)` is told the
    /// position before the slot is written.
    #[inline(always)]
    fn publish_once(
        &mut self,
        payload: &[u8],
        plan: Option<&Plan<'_>>,
        meta: &Meta,
        deadline: Option<Instant>,
        mut claimed: impl FnMut(u64),
    ) -> Result<u64> {
        let ts = self.clock.now_ns();
        loop {
            let Some(pos) = self.claim_or_spill(1, deadline)? else {
                // The spill writes a whole body: with an envelope, built
                // here (the spill path does I/O anyway).
                let body;
                let rec = Record {
                    seq: 0,
                    timestamp_ns: ts,
                    correlation_id: meta.correlation_id,
                    type_id: meta.type_id,
                    enveloped: plan.is_some(),
                    payload: match plan {
                        None => payload,
                        Some(plan) => {
                            let mut b = vec![0; plan.size + payload.len()];
                            plan.write(&mut b[..plan.size]);
                            b[plan.size..].copy_from_slice(payload);
                            body = b;
                            &body
                        }
                    },
                };
                match self.spill(&mut [rec], deadline, &mut claimed)? {
                    Some(seq) => return Ok(seq),
                    None => continue,
                }
            };
            claimed(pos);
            let Some(seen) = self.begin(pos) else {
                continue;
            };
            let ring = self.ring();
            let slot = ring.slots.slot(pos);
            // SAFETY: the slot is ours (begun by us) until commit; it is
            // inside the mapping; the payload (and envelope) fit (checked
            // by callers).
            unsafe {
                match plan {
                    None => write_slot(slot, payload, false, meta, ts),
                    Some(plan) => write_slot_enveloped(slot, plan, payload, meta, ts),
                }
            };
            os::fault::point("publish.before_commit");
            if ring.commit(pos, seen, self.announce()).is_err() {
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
            self.prefetch_ahead_of(pos);
            if self.journal
                && pos % crate::mapped::journal::PUMP_EVERY
                    == crate::mapped::journal::PUMP_EVERY - 1
            {
                self.pump_journal();
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
        plan: Option<&Plan<'_>>,
        meta: &Meta,
        deadline: Option<Instant>,
    ) -> Result<u64> {
        let shared = self.shared.clone();
        let i = match dedup::reserve(&shared, key)? {
            dedup::Reserve::Published(seq) => {
                shared
                    .header()
                    .counters
                    .deduplicated
                    .fetch_add(1, Ordering::Relaxed);
                self.deduplicated += 1;
                return Ok(seq);
            }
            dedup::Reserve::Mine(i) => i,
        };
        os::fault::point("keyed.reserved");
        let rec = self.record;
        match self.publish_once(payload, plan, meta, deadline, |pos| {
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

    /// Our announcement word.
    #[inline(always)]
    fn announce(&self) -> &crate::sync::AtomicU64 {
        &self.shared.producer_records()[self.record].announce
    }

    /// Begins writing claimed position `pos`: the slot's older word, or
    /// `None` if the position was aborted (by a consumer, or by us because
    /// a stalled producer still holds the slot) and another must be
    /// claimed.
    #[inline(always)]
    fn begin(&self, pos: u64) -> Option<u64> {
        let b = self
            .ring()
            .begin(pos, self.announce(), || self.shared.slot_held(pos));
        self.begun(b)
    }

    /// [`begin`](Self::begin) for a position of a batch whose positions
    /// were announced at once (`Ring::announce_from`).
    #[inline(always)]
    fn begin_announced(&self, pos: u64) -> Option<u64> {
        let b = self
            .ring()
            .begin_announced(pos, || self.shared.slot_held(pos));
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

    /// Publishes every payload of `payloads` with as few claims as possible
    /// (one when they fit in the ring), and wakes consumers once. Returns
    /// the seq of the first; the others follow in order (consecutively,
    /// unless a slot was held by a stalled producer).
    ///
    /// All or nothing where it can be: a message too large fails the batch
    /// before any is published, and so does a full queue with
    /// overflow=reject when the batch fits in the ring. Where it went in
    /// only in part (a batch larger than the ring meeting a full queue, a
    /// full spill, an aborted claim), the error is
    /// [`Error::PartlyPublished`], with the first seq and the count: retry
    /// only the rest.
    pub fn publish_batch<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<u64> {
        // Without a deadline it publishes them all (or fails).
        self.publish_batch_until(payloads, &Meta::NONE, None)
            .map(|(first, _)| first)
    }

    /// [`publish_batch`](Self::publish_batch) with the same `type_id` and
    /// `correlation_id` on every message. An idempotency key names one
    /// message, so a `meta` with a key is refused (`InvalidOption`):
    /// publish keyed messages one by one.
    pub fn publish_batch_with<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
        meta: &Meta,
    ) -> Result<u64> {
        if meta.key.is_some() {
            return Err(Error::InvalidOption(
                "a batch takes no idempotency key (it names one message): publish keyed \
                 messages one by one"
                    .into(),
            ));
        }
        if meta.enveloped() {
            return Err(Error::InvalidOption(
                "a batch takes no ordering key or headers: publish such messages one by one".into(),
            ));
        }
        self.publish_batch_until(payloads, meta, None)
            .map(|(first, _)| first)
    }

    /// Like [`publish_batch`](Self::publish_batch), waiting at most
    /// `timeout` for room. Returns the seq of the first message and how
    /// many of `payloads` were published — all of them unless the deadline
    /// passed part-way (a batch larger than the ring goes in ring-sized
    /// claims, and a position given up by a stalled producer moves the
    /// rest one on); [`Error::Timeout`] if it passed before any was. Any
    /// other failure after some went in is [`Error::PartlyPublished`].
    pub fn publish_batch_timeout<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
        timeout: Duration,
    ) -> Result<(u64, usize)> {
        let deadline = Instant::now().checked_add(timeout);
        self.publish_batch_until(payloads, &Meta::NONE, deadline)
    }

    /// The first seq and how many were published (fewer than all only
    /// when `deadline` passed after some were).
    fn publish_batch_until<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
        meta: &Meta,
        deadline: Option<Instant>,
    ) -> Result<(u64, usize)> {
        for p in payloads {
            self.check_size(p.as_ref().len(), None)?;
        }
        if payloads.is_empty() {
            return Err(Error::InvalidOption("publish_batch of no messages".into()));
        }
        let ts = self.clock.now_ns();
        let mut first = None;
        let mut i = 0;
        let cap = self.shared.geo.slots as usize;
        let result = (|| {
            while i < payloads.len() {
                let n = (payloads.len() - i).min(cap) as u64;
                let Some(start) = self.claim_or_spill(n, deadline)? else {
                    let mut recs: Vec<Record<'_>> = payloads[i..i + n as usize]
                        .iter()
                        .map(|p| Record {
                            seq: 0,
                            timestamp_ns: ts,
                            correlation_id: meta.correlation_id,
                            type_id: meta.type_id,
                            enveloped: false,
                            payload: p.as_ref(),
                        })
                        .collect();
                    if let Some(seq) = self.spill(&mut recs, deadline, &mut |_| {})? {
                        first.get_or_insert(seq);
                        i += n as usize;
                    }
                    continue;
                };
                // One announcement for the claimed positions (n is at most
                // the ring), withdrawn when the last is written.
                let ring = self.ring();
                ring.announce_from(start, self.announce());
                let wrote = (|| {
                    for pos in start..start + n {
                        // Each position takes the next message, or is
                        // skipped (aborted) and the message moves to the
                        // next one.
                        self.prefetch_ahead_of(pos);
                        let Some(seen) = self.begin_announced(pos) else {
                            continue;
                        };
                        // SAFETY: as in `publish_once`; announced above.
                        unsafe {
                            write_slot(ring.slots.slot(pos), payloads[i].as_ref(), false, meta, ts)
                        };
                        os::fault::point("batch.before_commit");
                        if ring.commit_announced(pos, seen).is_err() {
                            return Err(Error::Aborted);
                        }
                        first.get_or_insert(pos);
                        i += 1;
                    }
                    Ok(())
                })();
                ring.end_announced(self.announce());
                wrote?;
            }
            Ok(())
        })();
        self.ring().notify_data();
        if self.journal {
            self.pump_journal();
        }
        match (result, first) {
            (Ok(()), first) => Ok((first.unwrap_or_default(), i)),
            (Err(Error::Timeout), Some(first)) if deadline.is_some() => Ok((first, i)),
            (Err(e), Some(first_seq)) => Err(Error::PartlyPublished {
                first_seq,
                published: i,
                total: payloads.len(),
                cause: Box::new(e),
            }),
            (Err(e), None) => Err(e),
        }
    }

    /// Claims a slot for a payload of `len` bytes to be written in place.
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>> {
        self.reserve_with(len, None)
    }

    /// Like [`reserve`](Self::reserve), waiting at most `timeout` for room.
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<Reservation<'_>> {
        self.reserve_with(len, Some(Instant::now() + timeout))
    }

    fn reserve_with(&mut self, len: usize, deadline: Option<Instant>) -> Result<Reservation<'_>> {
        self.check_size(len, None)?;
        loop {
            let pos = self.claim(1, deadline)?;
            let Some(seen) = self.begin(pos) else {
                continue;
            };
            let slot = self.ring().slots.slot(pos);
            return Ok(Reservation {
                producer: self,
                pos,
                seen,
                slot,
                len,
                meta: Meta::default(),
                refused: false,
                done: false,
            });
        }
    }

    /// Refuses a payload of `payload` bytes behind envelope `plan` that
    /// does not fit in a slot.
    fn check_size(&self, payload: usize, plan: Option<&Plan<'_>>) -> Result<()> {
        if plan.map_or(0, |p| p.size).saturating_add(payload) > self.slot_size {
            return Err(envelope::too_large(payload, plan, self.slot_size));
        }
        Ok(())
    }

    fn count_abort(&self) {
        self.shared
            .header()
            .counters
            .aborted
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Free positions as far as the groups' committed cursors say, read
    /// without the lock (SeqCst loads, pairing with the consumers' SeqCst
    /// stores). Cursors only grow while a consumer runs, so this never
    /// promises room that is not there; the claim itself still goes
    /// through `head`, advanced under the lock.
    fn room(&self) -> u64 {
        // While the queue spills the flag makes this 0: no claim fits.
        self.room_from(|t| t)
    }

    /// `room` with `tail` read through `tail_of`.
    fn room_from(&self, tail_of: fn(u64) -> u64) -> u64 {
        let shared = &*self.shared;
        let ctl = &shared.header().ring;
        let tail = tail_of(ctl.tail.load(Ordering::SeqCst));
        let head = ctl.head.load(Ordering::SeqCst);
        // With a journal its cursor gates the ring too, and a group below
        // `head` replays from the journal (see `Groups::min_committed`).
        let journal = shared
            .journal
            .as_ref()
            .map(|_| shared.header().journal.end_seq.load(Ordering::SeqCst));
        let min = shared
            .group_records()
            .iter()
            .filter(|r| r.state.load(Ordering::Acquire) == crate::protocol::group::ACTIVE)
            .map(|r| r.committed.load(Ordering::SeqCst))
            .filter(|&c| journal.is_none() || c >= head)
            .chain(journal)
            .min()
            .unwrap_or(head);
        (min + shared.geo.slots).saturating_sub(tail)
    }

    /// Claims `n` positions in the ring, applying the overflow policy when
    /// full (overflow=spill waits, as block does: this claim needs a slot).
    #[inline]
    fn claim(&mut self, n: u64, deadline: Option<Instant>) -> Result<u64> {
        let ring = self.shared.ring();
        if let Claim::Claimed(pos) = ring.claim(n, &mut self.cached_head) {
            return Ok(pos);
        }
        self.claim_slow(n, deadline, false)
            .map(|p| p.expect("no spill asked for"))
    }

    /// Like [`claim`](Self::claim), but `None` when the messages are to be
    /// spilled instead (overflow=spill and the ring is full or spilling).
    #[inline]
    fn claim_or_spill(&mut self, n: u64, deadline: Option<Instant>) -> Result<Option<u64>> {
        let ring = self.shared.ring();
        if let Claim::Claimed(pos) = ring.claim(n, &mut self.cached_head) {
            return Ok(Some(pos));
        }
        self.claim_slow(n, deadline, true)
    }

    /// Spills `recs` (see `protocol/spill.rs`); `claimed(seq)` is told the first
    /// seq before anything is written. `None`: the ring had room after
    /// all. When the spill is full too, applies `spill_fallback`: reject
    /// fails with [`Error::SpillFull`], block waits for the spill to drain
    /// (bounded by `deadline`).
    #[cold]
    fn spill(
        &mut self,
        recs: &mut [Record<'_>],
        deadline: Option<Instant>,
        claimed: &mut dyn FnMut(u64),
    ) -> Result<Option<u64>> {
        let fallback =
            Overflow::from_raw(self.shared.config.spill_fallback).unwrap_or(Overflow::Block);
        loop {
            match self.shared.spill_append(recs, claimed) {
                Err(Error::SpillFull(why)) if fallback == Overflow::Block => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Timeout);
                    }
                    // Wait for consumers to free the ring, then help move
                    // the spill back into it.
                    let _ = why;
                    let shared = self.shared.clone();
                    let slice = deadline.map_or(SLEEP_SLICE, |d| {
                        d.saturating_duration_since(Instant::now()).min(SLEEP_SLICE)
                    });
                    let h = shared.header();
                    sleep_unless(
                        &h.ring.space,
                        &h.sleepers.space,
                        shared.me.key,
                        slice,
                        || (self.room_while_spilling() > 0).then_some(()),
                    );
                    shared.help_spill(true)?;
                }
                other => return other,
            }
        }
    }

    /// Journals the ring if nobody else holds the admin lock. An error is
    /// left for the publish that needs room to report (`claim_slow`).
    #[cold]
    #[inline(never)]
    fn pump_journal(&self) {
        let _ = self.shared.help_journal(false);
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

    /// The producer's readiness handle, for waiting for room in an event
    /// loop (see [`Readiness`]): made at the first call, the same one
    /// afterwards; at most 64 per queue (`Busy` past that).
    pub fn readiness(&mut self) -> Result<&Readiness> {
        if self.readiness.is_none() {
            self.readiness = Some(Readiness::new(&self.shared, For::Space)?);
        }
        Ok(self.readiness.as_ref().expect("made above"))
    }

    /// Arms the readiness handle until the ring has room for `n` messages
    /// (call it after a publish with a zero timeout found the ring full).
    /// [`Arm::Ready`]: there may be room, publish again. [`Arm::Waiting`]:
    /// its fd becomes readable when consumers may have freed some.
    pub fn arm(&mut self, n: u64) -> Result<Arm> {
        self.readiness()?;
        let armed = self
            .readiness
            .as_ref()
            .expect("made above")
            .arm(|| self.room() >= n);
        if !armed {
            return Ok(Arm::Ready);
        }
        // Consumers ring when they move their cursors, but room also comes
        // back in ways nobody rings for (a dead consumer's lease running
        // out, a spill or journal drained in steps producers help with):
        // a waiting producer rechecks as a sleeping one does.
        Ok(Arm::Waiting {
            recheck_after: Some(SLEEP_SLICE),
        })
    }

    /// Takes back an arm that will not be waited for.
    pub fn disarm(&mut self) {
        if let Some(r) = &self.readiness {
            r.disarm();
        }
    }

    /// Free ring positions past the refill point while the queue spills.
    fn room_while_spilling(&self) -> u64 {
        self.room_from(crate::protocol::spill::ring_tail)
    }

    /// The ring looked full. Advancing `head` takes the admin lock and reads
    /// every group's cursor (lines consumers write), so a blocked producer
    /// first waits, briefly, for a worthwhile amount of room (an eighth of
    /// the ring) rather than taking the lock for every slot freed.
    #[cold]
    fn claim_slow(
        &mut self,
        n: u64,
        deadline: Option<Instant>,
        spill: bool,
    ) -> Result<Option<u64>> {
        let worthwhile = n.max(self.shared.geo.slots / 8);
        let backoff = Backoff::new();
        let spill = spill && self.overflow == Overflow::Spill;
        loop {
            if self.journal {
                // The journal's cursor may be what holds the ring full.
                self.shared.help_journal(false)?;
            }
            if self.overflow == Overflow::Spill
                && crate::protocol::spill::spilling(
                    self.shared.header().ring.tail.load(Ordering::Acquire),
                )
            {
                if spill {
                    return Ok(None);
                }
                // A claim that needs a ring slot waits for the spill to
                // drain: help it along.
                self.shared.help_spill(false)?;
            }
            let room = self.room();
            // A blocked publisher holds out for a worthwhile amount of room
            // while it spins; one whose deadline has come takes what is there.
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            let wanted = if self.overflow != Overflow::Reject
                && !backoff.is_completed()
                && !spill
                && !out_of_time
            {
                worthwhile
            } else {
                n
            };
            if room >= wanted {
                self.cached_head = self.shared.advance_head();
                if let Claim::Claimed(pos) = self.shared.ring().claim(n, &mut self.cached_head) {
                    return Ok(Some(pos));
                }
                // Another producer took the room first: look again.
                continue;
            }
            if spill {
                return Ok(None);
            }
            if self.overflow == Overflow::Reject && room < n {
                self.shared
                    .header()
                    .counters
                    .rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Error::Full);
            }
            if out_of_time {
                return Err(Error::Timeout);
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLEEP_SLICE),
                None => SLEEP_SLICE,
            };
            let h = self.shared.header();
            sleep_unless(
                &h.ring.space,
                &h.sleepers.space,
                self.shared.me.key,
                slice,
                || (self.room() >= n).then_some(()),
            );
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.journal {
            let _ = self.shared.help_journal(true);
        }
        let rec = &self.shared.producer_records()[self.record];
        // The key first: a free record's key is 0, so that its next owner,
        // between its claim and its key, reads as "being written", never
        // as us (dead).
        rec.owner_key.store(0, Ordering::Release);
        let _ = rec
            .owner
            .compare_exchange(self.owner, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

impl Reservation<'_> {
    /// The seq this message will have.
    pub fn seq(&self) -> u64 {
        self.pos
    }

    /// Shrinks the message to `len` bytes (at most the reserved length).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Sets the metadata: its type and correlation id. A reservation is
    /// written in place from the slot's first payload byte, so it carries
    /// no ordering key and no headers: with a `meta` that has either (or
    /// an idempotency key), [`commit`](Self::commit) refuses with
    /// `InvalidOption` and publishes nothing (publish such messages with
    /// [`Producer::publish_with`]).
    pub fn set_meta(&mut self, meta: Meta<'_>) {
        self.refused = meta.enveloped() || meta.key.is_some();
        self.meta = Meta::new()
            .type_id(meta.type_id)
            .correlation_id(meta.correlation_id);
    }

    /// Publishes the message; returns its seq. Fails with
    /// [`Error::Aborted`] if it was held longer than `unblock_timeout` and
    /// consumers gave up on it.
    pub fn commit(mut self) -> Result<u64> {
        if self.refused {
            // Dropped undone: the position is aborted, as by `abort`.
            return Err(Error::InvalidOption(
                "a reservation takes no ordering key, headers or idempotency key: \
                 publish such messages with publish_with"
                    .into(),
            ));
        }
        self.done = true;
        // SAFETY: the slot is ours (begun) until commit; `len <=
        // slot_size` was checked at reserve.
        unsafe {
            write_header(
                self.slot,
                self.len,
                &self.meta,
                self.producer.clock.now_ns(),
            )
        };
        let ring = self.producer.ring();
        if ring
            .commit(self.pos, self.seen, self.producer.announce())
            .is_err()
        {
            return Err(Error::Aborted);
        }
        ring.notify_data();
        Ok(self.pos)
    }
}

impl std::ops::Deref for Reservation<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the payload area of a slot we began: nobody else
        // accesses it until we commit or abort, and `len <= slot_size`;
        // `&self` rules out a `&mut` view meanwhile.
        unsafe { payload_view(self.slot, self.len) }
    }
}

impl std::ops::DerefMut for Reservation<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes this the only view.
        unsafe { payload_area(self.slot, self.len) }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            let ring = self.producer.ring();
            if ring.abort_own(self.pos, self.seen, self.producer.announce()) {
                self.producer.count_abort();
            }
            ring.notify_data();
        }
    }
}
