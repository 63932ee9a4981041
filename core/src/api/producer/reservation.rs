//! A reservation: a claimed slot written in place, then committed (or
//! aborted when dropped).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::options::Meta;
use crate::record::write::{payload_area, payload_view, write_header};

use super::*;

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
    /// Slots the record takes (claimed for the reserved length).
    span: u64,
    /// What `set_meta` gave (its type and correlation id only).
    meta: Meta<'static>,
    /// `set_meta` was given what a reservation cannot carry.
    refused: bool,
    done: bool,
}

impl Reservation<'_> {
    /// The seq this message will have.
    pub fn seq(&self) -> u64 {
        self.pos
    }

    /// Shrinks the message to `len` bytes (at most the reserved length).
    /// Its record keeps the slots it claimed: where the shorter message
    /// needs fewer, the rest is skipped as an aborted record, and the next
    /// message's seq comes after all of them.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Sets the metadata: its type and correlation id. A reservation is
    /// written in place from the slot's first payload byte, so it carries
    /// no ordering key, no headers and no ttl (the queue's `message_ttl`
    /// applies to it): with a `meta` that has any of them (or an
    /// idempotency key), [`commit`](Self::commit) refuses with
    /// `InvalidOption` and publishes nothing (publish such messages with
    /// [`Producer::publish_with`]).
    pub fn set_meta(&mut self, meta: Meta<'_>) {
        // A delay too: the record is already in the ring.
        self.refused = meta.enveloped() || meta.key.is_some() || meta.scheduled();
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
                "a reservation takes no ordering key, headers, ttl, delay or idempotency key: \
                 publish such messages with publish_with"
                    .into(),
            ));
        }
        self.done = true;
        // SAFETY: the record is ours (begun) until commit; `len` is at most
        // what was reserved, which its slots hold.
        unsafe {
            write_header(
                self.slot,
                self.len,
                &self.meta,
                self.producer.clock.now_ns(),
            )
        };
        let ring = self.producer.ring();
        // Truncated to fewer slots: the rest is given up, so that the
        // record's span is always the one its length says.
        let span = self.producer.span_of(self.len);
        if span < self.span {
            ring.abort_rest(self.pos + span, self.span - span);
            // Its slots are a record of their own now, and an aborted one.
            let c = &self.producer.shared.header().counters;
            c.extra_slots.fetch_sub(1, crate::loom::Ordering::Relaxed);
            self.producer.count_abort();
        }
        if ring
            .commit(self.pos, span, self.seen, self.producer.me())
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
        // SAFETY: the payload area of a record we began: nobody else
        // accesses it until we commit or abort, and its `span` slots hold
        // `len` bytes (in the twice-mapped ring: one slice); `&self` rules
        // out a `&mut` view meanwhile.
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
            if ring.abort_own(self.pos, self.span, self.seen, self.producer.me()) {
                self.producer.count_abort();
            }
            ring.notify_data();
        }
    }
}

impl Producer {
    /// Claims a slot for a payload of `len` bytes to be written in place.
    pub fn reserve(&mut self, len: usize) -> Result<Reservation<'_>> {
        self.reserve_with(len, None)
    }

    /// Like [`reserve`](Self::reserve), waiting at most `timeout` for room.
    pub fn reserve_timeout(&mut self, len: usize, timeout: Duration) -> Result<Reservation<'_>> {
        self.reserve_with(len, Some(Instant::now() + timeout))
    }

    pub(super) fn reserve_with(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<Reservation<'_>> {
        if self.delivery_delay_ns != 0 {
            return Err(crate::api::scheduled::not_for_reservations());
        }
        self.check_size(len, None)?;
        let span = self.span_of(len);
        loop {
            let pos = self.claim(span, deadline)?;
            self.count_extra_slots(span);
            let Some(seen) = self.begin(pos, span) else {
                continue;
            };
            let slot = self.ring().slots.slot(pos);
            return Ok(Reservation {
                producer: self,
                pos,
                seen,
                slot,
                len,
                span,
                meta: Meta::default(),
                refused: false,
                done: false,
            });
        }
    }
}
