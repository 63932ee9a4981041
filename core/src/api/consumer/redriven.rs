//! Dead letters redriven to this group and delivered from the DLQ region
//! (`open_queue/dead_letters.rs`), not through the ring.

use super::*;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::dead_letters::{self as dlq};
use crate::record::read::Body;
use std::marker::PhantomData;

impl Consumer {
    /// Delivers redriven dead letter `entry` from the DLQ region.
    pub(super) fn deliver_redriven(&mut self, entry: usize) -> Result<Delivery<'_>> {
        let raw = match dlq::read(&self.shared, entry) {
            Ok(r) => r,
            Err(e) => {
                // A garbled entry goes back to the DLQ, not to us again.
                self.end_redriven(entry, false, true);
                return Err(e);
            }
        };
        // SAFETY: the entry's `len` body bytes are inside its run, in the
        // mapping (checked by `read`), and ours (DELIVERING) until the delivery ends.
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
            kind: Origin::Redriven,
        })
    }

    /// Ends the delivery of a redriven dead letter: finished (`done`), back
    /// to the group, or back to the DLQ.
    pub(super) fn end_redriven(&self, entry: usize, done: bool, back_to_dlq: bool) {
        let rec = self.record();
        if self.manual.is_some() {
            if done {
                rec.acked.fetch_add(1, Ordering::Relaxed);
            } else {
                rec.nacked.fetch_add(1, Ordering::Relaxed);
            }
        }
        let dead = dlq::end_redriven(&self.shared, entry, self.group_index, done, back_to_dlq);
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
}
