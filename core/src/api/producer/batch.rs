//! Publishing a batch: one claim and one announcement for up to a ring's
//! worth of messages.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::options::Meta;
use crate::os;
use crate::protocol::spill::Record;
use crate::record::write::write_slot;

use super::*;

impl Producer {
    /// Aborts the records a batch claimed for `rest` from `pos` up to
    /// `end` without writing them (an earlier record of the batch was
    /// aborted: the batch claims again for the rest, in order). A record
    /// a consumer aborted already stays so.
    #[cold]
    fn give_up<P: AsRef<[u8]>>(&self, mut pos: u64, end: u64, rest: &[P]) {
        let ring = self.ring();
        for p in rest {
            if pos >= end {
                break;
            }
            let span = self.span_of(p.as_ref().len());
            if let Some(seen) = self.begin_announced(pos, span) {
                if ring.abort_unbegun(pos, span, seen) {
                    self.count_abort();
                }
            }
            pos += span;
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
                "a batch takes no ordering key, headers or ttl (the queue's message_ttl applies \
                 to it): publish such messages one by one"
                    .into(),
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
    pub(super) fn publish_batch_until<P: AsRef<[u8]>>(
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
        if self.delivery_delay_ns != 0 || meta.scheduled() {
            if let Some(due) = meta.due_ns(os::clock::schedule_now_ns(), self.delivery_delay_ns) {
                return self.schedule_batch(payloads, meta, due, deadline);
            }
        }
        let ts = self.clock.now_ns();
        let mut first = None;
        let mut i = 0;
        let cap = self.shared.geo.slots;
        let result = (|| {
            while i < payloads.len() {
                // As many of the rest as a ring's worth of slots holds.
                let (mut n, mut total) = (0, 0);
                for p in &payloads[i..] {
                    let span = self.span_of(p.as_ref().len());
                    if total + span > cap {
                        break;
                    }
                    (n, total) = (n + 1, total + span);
                }
                let Some(start) = self.claim_or_spill(total, deadline)? else {
                    let mut recs: Vec<Record<'_>> = payloads[i..i + n]
                        .iter()
                        .map(|p| Record::of(p.as_ref(), false, meta, ts))
                        .collect();
                    if let Some(seq) = self.spill(&mut recs, deadline, &mut |_| {})? {
                        first.get_or_insert(seq);
                        i += n;
                    }
                    continue;
                };
                if total > n as u64 {
                    // The slots past each record's first, all at once.
                    self.count_extra_slots_slow(total - n as u64);
                }
                // One announcement for the claimed positions (at most the
                // ring), withdrawn when the last is written.
                let ring = self.ring();
                ring.announce_from(start, self.me());
                let wrote = (|| {
                    let mut pos = start;
                    while pos < start + total {
                        let span = self.span_of(payloads[i].as_ref().len());
                        self.prefetch_ahead_of(pos + span - 1);
                        let Some(seen) = self.begin_announced(pos, span) else {
                            // Aborted (by a consumer, or by us for a stalled
                            // writer's slots): give up the rest of this
                            // claim too, and claim again for message `i`.
                            self.give_up(pos + span, start + total, &payloads[i + 1..]);
                            return Ok(());
                        };
                        // SAFETY: as in `publish_once`; announced above.
                        unsafe {
                            write_slot(ring.slots.slot(pos), payloads[i].as_ref(), false, meta, ts)
                        };
                        os::fault::point("batch.before_commit");
                        if ring.commit_announced(pos, span, seen, self.me()).is_err() {
                            return Err(Error::Aborted);
                        }
                        first.get_or_insert(pos);
                        i += 1;
                        pos += span;
                    }
                    Ok(())
                })();
                ring.end_announced(self.me());
                wrote?;
            }
            Ok(())
        })();
        self.ring().notify_data();
        if self.journal {
            self.shared.journal_if_free();
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
}

impl Producer {
    /// A batch published for later: each message scheduled for `due`,
    /// in order (their schedule ids follow each other unless another
    /// producer schedules meanwhile). Returns the first's id and the count.
    #[cold]
    fn schedule_batch<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
        meta: &Meta,
        due: u64,
        deadline: Option<Instant>,
    ) -> Result<(u64, usize)> {
        let mut first = None;
        for (i, p) in payloads.iter().enumerate() {
            match self.publish_scheduled(p.as_ref(), meta, due, deadline) {
                Ok(id) => {
                    first.get_or_insert(id);
                }
                Err(e) => {
                    return Err(match first {
                        None => e,
                        Some(first_seq) => Error::PartlyPublished {
                            first_seq,
                            published: i,
                            total: payloads.len(),
                            cause: Box::new(e),
                        },
                    });
                }
            }
        }
        Ok((first.expect("not empty"), payloads.len()))
    }
}
