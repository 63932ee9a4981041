//! Where a seek lands: a [`Seek`] made a start position, looking in the
//! journal (`open_queue/journal.rs`) and then the ring for a time.

use crate::error::Result;
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::options::{Seek, Start};
use crate::protocol::lock::AdminGuard;
use crate::protocol::ring::Peek;
use crate::record::read;

/// Turns a [`Seek`] into a start position; `Time` scans the retained
/// messages (under the admin lock, so `head` cannot move meanwhile).
pub(crate) fn resolve_seek(shared: &OpenQueue, g: &AdminGuard<'_>, to: Seek) -> Result<Start> {
    Ok(match to {
        Seek::Earliest => Start::Earliest,
        Seek::Latest => Start::Latest,
        Seek::Seq(n) => shared.snap_start(g, Start::Seq(n)),
        Seek::Time(t) => {
            // With a journal, a time before what the ring holds is found
            // there.
            let head = shared.header().ring.head.load(Ordering::Acquire);
            if let Some(seq) = shared.journal_seek_time(g, t)? {
                if seq < head {
                    return Ok(Start::Seq(seq));
                }
            }
            let ring = shared.ring();
            let head = ring.ctl.head.load(Ordering::Acquire);
            let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
            for (pos, peek) in ring.records(head, tail) {
                if let Peek::Ready(_) = peek {
                    // SAFETY: the slot is inside the mapping; it is
                    // committed and `head <= pos` cannot change while we
                    // hold the admin lock, so nobody rewrites it.
                    let ts = unsafe { read::timestamp_now(ring.slots.slot(pos)) };
                    if ts >= t {
                        return Ok(Start::Seq(pos));
                    }
                }
            }
            Start::Latest
        }
    })
}

impl OpenQueue {
    /// A start at seq `n` made a message's seq: where `n` falls inside a
    /// long message's slots in the ring, the next message's (a group's
    /// cursor is always at a message; a seq that names no message means
    /// the first at or after it, as Kafka's offsets do). Below `head` the
    /// journal's reader finds the first record at or after `n` itself.
    /// Under the admin lock, so `head` and the records below `tail` hold.
    pub(crate) fn snap_start(&self, g: &AdminGuard<'_>, start: Start) -> Start {
        let Start::Seq(n) = start else {
            return start;
        };
        let ring = self.ring();
        let head = ring.ctl.head.load(Ordering::Acquire);
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        if n < head {
            // The journal's: its first record at or after `n`, or the ring
            // from `head` (a journal's records are whole messages).
            return match self.journal_seq_at_or_after(n) {
                Some(seq) if seq < head => Start::Seq(seq),
                Some(_) => Start::Seq(head),
                None => start,
            };
        }
        if n == head {
            return start;
        }
        if n >= tail {
            // Past the ring: the spill's records come back at their seqs
            // (the first at or after `n`), and a seq past them is the end.
            return match self.spill_seq_at_or_after(g, n) {
                Some(seq) => Start::Seq(seq),
                None => start,
            };
        }
        let mut pos = head;
        while pos < n {
            pos += match ring.peek(pos) {
                Peek::Ready(span) | Peek::Skip(span) => span,
                // Being written (or committed over an unsettled abort):
                // its length is not known yet. Start with it (a few
                // messages before `n`, never one after it).
                Peek::Settling => match self.settle_abort(pos) {
                    Some(span) => span,
                    None => return Start::Seq(pos),
                },
                Peek::NotYet(_) => return Start::Seq(pos),
            };
        }
        Start::Seq(pos)
    }
}
