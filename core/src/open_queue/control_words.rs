//! The queue's control words checked against what can be: a header that
//! still matches its checksum (and its store directory's record),
//! `head <= tail` with at most a ring between them, and no group's cursor
//! past the tail. A queue file scribbled on
//! (a stray write, a bad `dd`, a buggy peer) can break them while its
//! processes run; a producer that trusted them would go on reporting
//! success for messages written over unread ones (found by the chaos
//! run's scribble phase). Openers check once; producers once a ring's
//! worth of claims (`Producer::claim`), off the fast path, and whenever
//! the ring looks full (`Producer::claim_slow`); consumers before they
//! abort a position (`Consumer::unstick`: a garbled `tail` makes every
//! later position look claimed long ago).

use crate::error::{Error, Result};
use zerocopy::IntoBytes;

use crate::layout::{READY, config_crc};
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::open_queue::queue_file::{read_config, read_spill_path, store_dir_bytes};
use crate::protocol::group::ACTIVE;
use crate::protocol::spill::{ring_tail, spilling};

impl OpenQueue {
    /// `Err(Corrupt)` naming the first control word that cannot be.
    pub(crate) fn check_control_words(&self) -> Result<()> {
        // SAFETY: the header is mapped whole (`validate`).
        let (config, crc) = unsafe { read_config(self.map.base()) };
        if config.as_bytes() != self.config.as_bytes() || config_crc(&config) != crc {
            return Err(Error::corrupt(
                &self.path,
                "header changed since it was opened (garbled file)",
            ));
        }
        // SAFETY: as above. The record is immutable once ready: any
        // change since the open is a scribble (an opener refuses it).
        let sp = unsafe { read_spill_path(self.map.base()) };
        let opened = self
            .store_dir
            .as_ref()
            .map(|d| d.as_os_str().as_encoded_bytes());
        if store_dir_bytes(&sp, &self.path)? != opened {
            return Err(Error::corrupt(
                &self.path,
                "spill directory changed since it was opened (garbled file)",
            ));
        }
        if self.header().ready.load(Ordering::Acquire) != READY {
            return Err(Error::corrupt(
                &self.path,
                "its ready mark changed since it was opened (garbled file)",
            ));
        }
        let ring = &self.header().ring;
        // Acquire, and head before tail: tail only grows, so a tail loaded
        // after head is at least the tail head was computed under.
        let head = ring.head.load(Ordering::Acquire);
        let raw = ring.tail.load(Ordering::Acquire);
        let (tail, is_spilling) = (ring_tail(raw), spilling(raw));
        // While the queue spills, `head` may pass the ring's tail (the
        // refill point) for a moment; the cursors are checked without it.
        if (head > tail && !is_spilling) || tail.saturating_sub(head) > self.geo.slots {
            return Err(Error::corrupt(
                &self.path,
                format!(
                    "cursors out of range (head {head}, tail {tail}, slots {})",
                    self.geo.slots
                ),
            ));
        }
        for (i, g) in self.group_records().iter().enumerate() {
            if g.state.load(Ordering::Acquire) != ACTIVE {
                continue;
            }
            let committed = g.committed.load(Ordering::Acquire);
            let raw = ring.tail.load(Ordering::Acquire);
            if committed > ring_tail(raw) && !spilling(raw) {
                let tail = ring_tail(raw);
                return Err(Error::corrupt(
                    &self.path,
                    format!("cursors out of range (group {i} at {committed}, tail {tail})"),
                ));
            }
        }
        Ok(())
    }
}
