//! Replaying from the journal: `seek` below `head`, and reading journal
//! records until the cursor is back at the ring.

use super::*;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::journal::{JournalReader, JournalRecord};
use crate::open_queue::seek::resolve_seek;
use crate::options::Seek;
use crate::protocol::group::{commit_cursor, generation};
use crate::protocol::registry::Registry;
use crate::record::read::Body;
use std::marker::PhantomData;

impl Consumer {
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
            .count(self.group_index, |p, k| shared.alive(p, k));
            if others > 1 {
                return Err(Error::Busy(format!(
                    "group {:?} has {} other live consumers; a seek needs it to itself",
                    self.group,
                    others - 1
                )));
            }
            if let Some(leases) = shared.leases_in_use(self.group_index) {
                leases.reset();
            }
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
        let pos = shared.groups().seek(
            &g,
            self.group_index,
            &self.group,
            start,
            self.owner,
            |p, k| shared.alive(p, k),
        )?;
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

    /// Replaying: the next journal record, or back to the ring once the
    /// cursor reaches `head`.
    #[cold]
    pub(super) fn poll_journal(&mut self) -> Result<Option<ToDeliver>> {
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
                        return Ok(Some(ToDeliver::Journal(rec)));
                    }
                    // A dead letter redriven for another group: passed by.
                    let next = rec.seq + shared.geo.span_of(rec.len);
                    self.advance(next, 0);
                    self.release(next);
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
        // computation leaves us out in between (see `open_queue/journal.rs`).
        let g = shared.lock();
        if self.next >= hdr.ring.head.load(Ordering::Acquire) {
            commit_cursor(&self.record().committed, self.next);
            self.replay = None;
        }
        drop(g);
        Ok(if self.replay.is_none() {
            self.poll_once().map(ToDeliver::Pos)
        } else {
            None
        })
    }

    /// Delivers a journal record (replaying, ack=auto).
    pub(super) fn deliver_journal(&mut self, rec: JournalRecord) -> Result<Delivery<'_>> {
        // SAFETY: the record's bytes stay mapped while the reader holds
        // its segment (until the next read, after this delivery ends).
        let body = match unsafe { Body::new(rec.ptr, rec.len, rec.enveloped) } {
            Ok(p) => p,
            Err(e) => {
                // A garbled record is passed, as a garbled slot is.
                self.advance(rec.seq + self.shared.geo.span_of(rec.len), 0);
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
        self.advance(rec.seq + self.shared.geo.span_of(rec.len), 1);
        Ok(Delivery {
            consumer: self,
            msg,
            kind: Origin::Journal,
        })
    }
}
