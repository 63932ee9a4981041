//! Receiving: a group's consumer walks the ring in seq order and borrows
//! each payload in place.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::error::{Error, Result};
use crate::group::{commit_cursor, generation};
use crate::layout::{GroupRecord, SLOT_HEADER_SIZE, SlotHeader};
use crate::options::{ConsumerOptions, Seek, check_group_name};
use crate::queue::{MappedSlots, Shared, new_owner, resolve_seek};
use crate::ring::{Peek, Ring, sleep_unless};
use crate::sync::Ordering;
use crate::sys;

/// Longest single sleep of a waiting consumer, so it notices stuck
/// producers, deadlines and signals.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// Empty polls of `try_receive` between two looks for a stuck producer.
const STUCK_CHECK_EVERY: u32 = 64;
/// How often (at most) to ask whether a claimer's process is alive.
const LIVENESS_EVERY_NS: u64 = 10_000_000;

/// A position a consumer waits for, watched for a stuck producer.
#[derive(Clone, Copy, Debug)]
struct Stuck {
    pos: u64,
    /// Monotonic time when we first knew it was claimed.
    claimed_since: Option<u64>,
    /// Monotonic time of the last look at `tail` and the claimer's life.
    last_check: u64,
}

/// The consumer of one group (ack=auto: a message is committed for the
/// group when it is received, and its slot is released when the
/// [`Delivery`] is dropped). A group has at most one live consumer at a
/// time. Not to be used in a child after `fork`.
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
    ptr: *const u8,
    len: usize,
    timestamp_ns: u64,
    type_id: u32,
    correlation_id: u64,
    _borrow: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("len", &self.len)
            .field("type_id", &self.type_id)
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl Message<'_> {
    /// The payload, in place in shared memory.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // SAFETY: `ptr .. ptr + len` is the payload of a committed slot
        // inside the mapping (len checked against slot_size); the slot is
        // not reused while the group's committed cursor is at or below its
        // seq, which holds until the delivery or batch borrowing it ends.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// The payload as a `T` (zerocopy), if it has `T`'s size and the slot
    /// offers `T`'s alignment (payloads are 8-byte aligned).
    pub fn value<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<&T> {
        T::ref_from_bytes(self.payload()).map_err(|_| {
            Error::InvalidOption(format!(
                "payload of {} bytes is not a {} ({} bytes, align {})",
                self.len,
                std::any::type_name::<T>(),
                std::mem::size_of::<T>(),
                std::mem::align_of::<T>()
            ))
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
    /// Delivery attempt: 1 (ack=auto delivers once).
    #[inline]
    pub fn attempt(&self) -> u32 {
        1
    }
}

/// One received message. Derefs to [`Message`]; dropping it (or
/// [`ack`](Delivery::ack)) releases its slot.
pub struct Delivery<'c> {
    consumer: &'c mut Consumer,
    msg: Message<'c>,
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
    /// Ends the delivery. With ack=auto the message was committed when it
    /// was received; this releases its slot (as dropping does).
    pub fn ack(self) -> Result<()> {
        Ok(())
    }
}

impl Drop for Delivery<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.release(self.msg.seq + 1);
    }
}

/// Messages received together; one cursor update for all of them when
/// dropped.
pub struct Batch<'c> {
    consumer: &'c mut Consumer,
    start: u64,
    end: u64,
    count: usize,
}

impl Batch<'_> {
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
        let (idx, next, generation, delivered) = {
            let g = shared.lock();
            let groups = shared.groups();
            let idx = match groups.find(&g, group) {
                Some(i) => i,
                None => groups.create(&g, group, opts.start, sys::realtime_ns())?,
            };
            groups.attach(
                &g,
                idx,
                group,
                owner,
                shared.me.start_time,
                sys::process_alive,
            )?;
            let rec = &groups.records[idx];
            (
                idx,
                rec.next.load(Ordering::Acquire),
                generation(rec),
                rec.delivered.load(Ordering::Relaxed),
            )
        };
        Ok(Consumer {
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
            shared,
        })
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
    pub fn receive(&mut self) -> Result<Delivery<'_>> {
        let pos = self.wait(None)?.ok_or(Error::Timeout)?;
        self.deliver(pos)
    }

    /// Waits at most `timeout` for the next message ([`Error::Timeout`]).
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Delivery<'_>> {
        let pos = self
            .wait(Some(Instant::now() + timeout))?
            .ok_or(Error::Timeout)?;
        self.deliver(pos)
    }

    /// The next message if one is ready, without waiting. Busy-polling
    /// with it makes no system call.
    #[inline]
    pub fn try_receive(&mut self) -> Result<Option<Delivery<'_>>> {
        match self.poll() {
            Some(pos) => self.deliver(pos).map(Some),
            None => {
                self.empty_polls = self.empty_polls.wrapping_add(1);
                if self.empty_polls % STUCK_CHECK_EVERY == 0 {
                    self.check_group()?;
                    self.unstick();
                }
                Ok(None)
            }
        }
    }

    /// Up to `max` ready messages, waiting at most `timeout` for the first;
    /// an empty batch if none came.
    pub fn receive_batch(&mut self, max: usize, timeout: Duration) -> Result<Batch<'_>> {
        if max == 0 {
            return Err(Error::InvalidOption("receive_batch of 0 messages".into()));
        }
        let start = self.next;
        let Some(first) = self.wait(Some(Instant::now() + timeout))? else {
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
                    if self.read(pos).is_err() {
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
    /// skip ahead); returns the seq it will receive next.
    pub fn seek(&mut self, to: Seek) -> Result<u64> {
        let shared = self.shared.clone();
        let g = shared.lock();
        let start = resolve_seek(&shared, &g, to);
        let pos = shared.groups().seek(
            &g,
            self.idx,
            &self.group,
            start,
            self.owner,
            sys::process_alive,
        )?;
        self.next = pos;
        self.generation = generation(self.record());
        drop(g);
        shared.ring().notify_space();
        Ok(pos)
    }

    /// The first ready position at or after `next`, skipping aborted ones.
    #[inline(always)]
    fn poll(&mut self) -> Option<u64> {
        loop {
            match self.ring().peek(self.next) {
                Peek::Ready => return Some(self.next),
                Peek::Skip => {
                    let next = self.next + 1;
                    self.advance(next, 0);
                    self.release(next);
                }
                _ => return None,
            }
        }
    }

    /// Spins, then sleeps, until a message is ready or `deadline` passes.
    fn wait(&mut self, deadline: Option<Instant>) -> Result<Option<u64>> {
        if let Some(p) = self.poll() {
            return Ok(Some(p));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // A zero timeout is a poll: look for stuck producers now and
            // then, as `try_receive` does.
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % STUCK_CHECK_EVERY == 0 {
                self.check_group()?;
                self.unstick();
            }
            return Ok(None);
        }
        self.check_group()?;
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            backoff.snooze();
            if let Some(p) = self.poll() {
                return Ok(Some(p));
            }
        }
        loop {
            if let Some(p) = self.poll() {
                return Ok(Some(p));
            }
            self.check_group()?;
            if self.unstick() {
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
            let ring = self.ring();
            let next = self.next;
            sleep_unless(&self.shared.header().ring.data, slice, || {
                match ring.peek_sc(next) {
                    Peek::Ready | Peek::Skip => Some(()),
                    _ => None,
                }
            });
        }
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
        let now = sys::monotonic_ns();
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
        // Acquire: pairs with the claimer's AcqRel CAS of tail.
        if ring.ctl.tail.load(Ordering::Acquire) <= pos {
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
            r.announce.load(Ordering::Acquire) == pos + 1 && {
                let owner = r.owner.load(Ordering::Acquire);
                !sys::process_alive(
                    crate::group::owner_pid(owner),
                    r.owner_start.load(Ordering::Acquire),
                )
            }
        })
    }

    /// Fails if our group was deleted or taken from us.
    fn check_group(&mut self) -> Result<()> {
        let rec = self.record();
        if generation(rec) == self.generation && rec.owner.load(Ordering::Acquire) == self.owner {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "group {:?}: deleted or taken over by another consumer while this one was attached",
            self.group
        )))
    }

    /// Reads the message at committed position `pos`, checking its length.
    fn read(&self, pos: u64) -> Result<Message<'_>> {
        let slot = self.ring().slots.slot(pos);
        // SAFETY: the slot is inside the mapping and COMMITTED (the caller
        // saw it with an Acquire load, which pairs with the commit's
        // Release), so its header is complete and nobody writes it while
        // our group's committed cursor is at or below `pos`.
        let (len, timestamp_ns, type_id, correlation_id) = unsafe {
            let hdr = slot as *const SlotHeader;
            (
                std::ptr::addr_of!((*hdr).len).read() as usize,
                std::ptr::addr_of!((*hdr).timestamp_ns).read(),
                std::ptr::addr_of!((*hdr).type_id).read(),
                std::ptr::addr_of!((*hdr).correlation_id).read(),
            )
        };
        if len > self.slot_size {
            return Err(Error::corrupt(
                &self.shared.path,
                format!(
                    "message {pos} claims {len} bytes in slots of {}",
                    self.slot_size
                ),
            ));
        }
        Ok(Message {
            seq: pos,
            // SAFETY: the payload follows the 32-byte header in the slot.
            ptr: unsafe { slot.add(SLOT_HEADER_SIZE as usize) },
            len,
            timestamp_ns,
            type_id,
            correlation_id,
            _borrow: PhantomData,
        })
    }

    #[inline]
    fn deliver(&mut self, pos: u64) -> Result<Delivery<'_>> {
        let msg = match self.read(pos) {
            Ok(m) => m,
            Err(e) => {
                // Skip the corrupt message so the group does not stall.
                self.advance(pos + 1, 0);
                self.release(pos + 1);
                return Err(e);
            }
        };
        // Detach the message's lifetime from `self` so both can go into
        // the Delivery; it lives as long as the Delivery's borrow.
        let msg = Message {
            _borrow: PhantomData,
            ..msg
        };
        self.advance(pos + 1, 1);
        Ok(Delivery {
            consumer: self,
            msg,
        })
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
        self.shared.groups().detach(self.idx, self.owner);
    }
}
