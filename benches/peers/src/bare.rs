//! The bare baselines, in a small file both processes map:
//!
//! - the cache-line ping-pong and the single-producer ring of plain stores:
//!   `shmq bench`'s own, from the one implementation in
//!   cli/src/bench/baseline.rs (compiled here as `baseline`); `RingTx` and
//!   `RingRx` make its ring's steps the ends of a link. The most a queue
//!   of that payload could move, and (as a link each way) a same-payload
//!   latency floor;
//! - the same ring with a sequence word at the head of each slot instead
//!   of `tail` (`SlotTx`/`SlotRx`): the consumer spins on the slot it
//!   reads, as shmq's does, so a small message is one line per hand-off.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::link::{Res, Rx, Tx};

// The hand-off of a payload of `shmq bench` (`Region::ping_bytes`) is
// not one of these peers: with `--large` the bare ring is the baseline.
#[allow(dead_code)]
#[path = "../../../cli/src/bench/baseline.rs"]
mod baseline;

pub(crate) use baseline::Region;

/// The pinging side of the cache-line ping-pong: `warmup + count` round
/// trips, the last `count` one-way (round trip / 2, ns) into the histogram.
pub fn ping(region: &Region, count: u64, warmup: u64) -> Res<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    region.ping(warmup + count, |k, rtt| {
        if k >= warmup {
            h.saturating_record((rtt / 2).max(1));
        }
    });
    Ok(h)
}

/// The producing end of the bare ring.
pub struct RingTx {
    region: Region,
    next: u64,
    cached_head: u64,
}

impl RingTx {
    /// Produces into `region`'s ring from its start.
    pub fn new(region: Region) -> RingTx {
        RingTx {
            region,
            next: 0,
            cached_head: 0,
        }
    }
}

impl Tx for RingTx {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        let i = self.next;
        self.region.wait_for_room(i, &mut self.cached_head);
        // SAFETY: position i is ours: its wait for room returned and it is
        // published below; the region's slots are made for the payload.
        unsafe { self.region.write(i, payload) };
        self.region.publish(i);
        self.next = i + 1;
        Ok(())
    }
}

/// The consuming end of the bare ring.
pub struct RingRx {
    region: Region,
    next: u64,
    cached_tail: u64,
}

impl RingRx {
    /// Consumes `region`'s ring from its start.
    pub fn new(region: Region) -> RingRx {
        RingRx {
            region,
            next: 0,
            cached_tail: 0,
        }
    }
}

impl Rx for RingRx {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        let i = self.next;
        self.region.wait_for_data(i, &mut self.cached_tail);
        // SAFETY: position i is published (its wait returned) and freed
        // only below; the region's slots are made for the payload.
        unsafe { self.region.read(i, buf) };
        self.region.free_to(i + 1);
        self.next = i + 1;
        Ok(())
    }
}

/// The producing end of the bare ring with a sequence word per slot: the
/// payload after the slot's first 8 bytes, then `i + 1` Release-stored
/// into them. The region's slots are made for `size + 8` bytes.
pub struct SlotTx {
    region: Region,
    next: u64,
    cached_head: u64,
}

impl SlotTx {
    /// Produces into `region`'s ring from its start.
    pub fn new(region: Region) -> SlotTx {
        SlotTx {
            region,
            next: 0,
            cached_head: 0,
        }
    }
}

impl Tx for SlotTx {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        let i = self.next;
        // As `RingTx`: Acquire of head, read only when the ring looks full.
        self.region.wait_for_room(i, &mut self.cached_head);
        let slot = self.region.slot(i, payload.len() + 8);
        // SAFETY: slot i is ours (the consumer is past i - cap), it holds
        // `stride >= payload.len() + 8` bytes, and the consumer reads the
        // payload only after it sees our Release store of the word.
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr(), slot.add(8), payload.len());
        }
        // SAFETY: the slot is 64-aligned inside the mapping, and its first
        // word is only accessed atomically.
        let word = unsafe { &*(slot as *const AtomicU64) };
        // Release pairs with the consumer's Acquire load of the word.
        word.store(i + 1, Ordering::Release);
        self.next = i + 1;
        Ok(())
    }
}

/// The consuming end of the bare ring with a sequence word per slot.
pub struct SlotRx {
    region: Region,
    next: u64,
}

impl SlotRx {
    /// Consumes `region`'s ring from its start.
    pub fn new(region: Region) -> SlotRx {
        SlotRx { region, next: 0 }
    }
}

impl Rx for SlotRx {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        let i = self.next;
        let slot = self.region.slot(i, buf.len() + 8);
        // SAFETY: as in `SlotTx::send`: an aligned word inside the mapping,
        // only accessed atomically.
        let word = unsafe { &*(slot as *const AtomicU64) };
        // Acquire pairs with the producer's Release store of the word: the
        // payload before it is visible.
        while word.load(Ordering::Acquire) != i + 1 {
            std::hint::spin_loop();
        }
        // SAFETY: slot i is published and not reused before we free it
        // below; it holds `stride >= buf.len() + 8` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(slot.add(8), buf.as_mut_ptr(), buf.len());
        }
        // As `RingRx`: a Release store of head, paired with the producer's
        // Acquire.
        self.region.free_to(i + 1);
        self.next = i + 1;
        Ok(())
    }
}
