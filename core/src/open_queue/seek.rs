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
        Seek::Seq(n) => Start::Seq(n),
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
            for pos in head..tail {
                if ring.peek(pos) == Peek::Ready {
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
