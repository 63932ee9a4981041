//! The bare baselines, in a small file both processes map (the same logic
//! as `shmq bench`'s, cli/src/bench/baseline.rs):
//!
//! - a cache-line ping-pong: one word, one store each way — the physical
//!   limit of a one-way hand-off between two cores;
//! - a single-producer ring of plain stores: the payload copied into a
//!   slot, published by a Release store of `tail`; the consumer copies it
//!   out and Release-stores `head`. The most a queue of that payload could
//!   move, and (as a link each way) a same-payload latency floor;
//! - the same ring with a sequence word at the head of each slot instead
//!   of `tail` (`SlotTx`/`SlotRx`): the consumer spins on the slot it
//!   reads, as shmq's does, so a small message is one line per hand-off.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use memmap2::MmapRaw;

use crate::link::{Res, Rx, Tx};

/// Offsets in the region: three counters on their own 128-byte pairs of
/// cache lines (the adjacent-line prefetcher moves lines in pairs), then the
/// ring's slots from the second page on.
const PING: usize = 0;
const TAIL: usize = 128;
const HEAD: usize = 256;
const SLOTS: usize = 4096;

/// A shared mapping holding the counters and a ring.
pub struct Region {
    map: MmapRaw,
    slots: usize,
    stride: usize,
}

fn stride(size: usize) -> usize {
    size.max(1).div_ceil(64) * 64
}

impl Region {
    fn len(slots: usize, size: usize) -> usize {
        SLOTS + slots * stride(size)
    }

    /// Creates the (zeroed) region file for a ring of `slots` × `size`.
    pub fn create(path: &Path, slots: usize, size: usize) -> Res<()> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        f.set_len(Region::len(slots, size) as u64)?;
        Ok(())
    }

    /// Maps a region file made by `create` with the same arguments.
    pub fn open(path: &Path, slots: usize, size: usize) -> Res<Region> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        if f.metadata()?.len() as usize != Region::len(slots, size) || !slots.is_power_of_two() {
            return Err(format!("{}: region of the wrong size", path.display()).into());
        }
        let map = MmapRaw::map_raw(&f)?;
        Ok(Region {
            map,
            slots,
            stride: stride(size),
        })
    }

    fn counter(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(64) && offset + 8 <= SLOTS);
        // SAFETY: `offset` is one of the 64-aligned counter offsets inside
        // the first page of a page-aligned mapping that `open` checked is
        // longer than a page; the word is only ever accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU64) }
    }

    fn slot(&self, i: u64) -> *mut u8 {
        // SAFETY: `i & (slots - 1) < slots`, and `open` checked that the
        // mapping holds `slots` strides after the first page.
        unsafe {
            self.map
                .as_mut_ptr()
                .add(SLOTS + (i as usize & (self.slots - 1)) * self.stride)
        }
    }

    /// The pinging side of the cache-line ping-pong: stores 2k+1, spins
    /// until the other side stored 2k+2.
    pub fn ping(&self, count: u64, warmup: u64) -> Res<Histogram<u64>> {
        let word = self.counter(PING);
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
        for k in 0..warmup + count {
            let t0 = Instant::now();
            // Release pairs with the pong side's Acquire load (and its
            // Release store with our Acquire): the hand-off is what is
            // measured.
            word.store(2 * k + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * k + 2 {
                std::hint::spin_loop();
            }
            let rtt = t0.elapsed().as_nanos() as u64;
            if k >= warmup {
                h.saturating_record((rtt / 2).max(1));
            }
        }
        Ok(h)
    }

    /// The answering side of the cache-line ping-pong.
    pub fn pong(&self, count: u64) {
        let word = self.counter(PING);
        for k in 0..count {
            // Acquire/Release pair with `ping`'s, as described there.
            while word.load(Ordering::Acquire) != 2 * k + 1 {
                std::hint::spin_loop();
            }
            word.store(2 * k + 2, Ordering::Release);
        }
    }
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
        let cap = self.region.slots as u64;
        let i = self.next;
        while i - self.cached_head >= cap {
            // Acquire pairs with the consumer's Release of head: it has
            // finished reading the slot we are about to reuse. Read only
            // when the cached copy says the ring is full.
            self.cached_head = self.region.counter(HEAD).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        debug_assert!(payload.len() <= self.region.stride);
        // SAFETY: slot i is ours (the consumer is past i - cap), the slot
        // holds `stride >= payload.len()` bytes, and the consumer reads it
        // only after our Release of tail below.
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr(), self.region.slot(i), payload.len());
        }
        // Release pairs with the consumer's Acquire of tail.
        self.region.counter(TAIL).store(i + 1, Ordering::Release);
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
        while self.cached_tail <= i {
            // Acquire pairs with the producer's Release of tail: the slot's
            // bytes are visible.
            // The pause after every refresh, as in cli/src/baseline.rs:
            // when both processes share one physical core (SMT siblings),
            // it leaves the core to the producer while the consumer is
            // behind anyway.
            self.cached_tail = self.region.counter(TAIL).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        debug_assert!(buf.len() <= self.region.stride);
        // SAFETY: slot i was published (tail > i, Acquire) and the producer
        // does not reuse it before we store head past it; it holds
        // `stride >= buf.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.region.slot(i), buf.as_mut_ptr(), buf.len());
        }
        // Release pairs with the producer's Acquire of head.
        self.region.counter(HEAD).store(i + 1, Ordering::Release);
        self.next = i + 1;
        Ok(())
    }
}

/// The producing end of the bare ring with a sequence word per slot: the
/// payload after the slot's first 8 bytes, then `i + 1` Release-stored
/// into them. The region's slots are made for `size + 8` bytes.
pub struct SlotTx(RingTx);

impl SlotTx {
    /// Produces into `region`'s ring from its start.
    pub fn new(region: Region) -> SlotTx {
        SlotTx(RingTx::new(region))
    }
}

impl Tx for SlotTx {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        let r = &mut self.0;
        let (cap, i) = (r.region.slots as u64, r.next);
        while i - r.cached_head >= cap {
            // Acquire pairs with the consumer's Release of head, as in
            // `RingTx`.
            r.cached_head = r.region.counter(HEAD).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        debug_assert!(payload.len() + 8 <= r.region.stride);
        let slot = r.region.slot(i);
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
        r.next = i + 1;
        Ok(())
    }
}

/// The consuming end of the bare ring with a sequence word per slot.
pub struct SlotRx(RingRx);

impl SlotRx {
    /// Consumes `region`'s ring from its start.
    pub fn new(region: Region) -> SlotRx {
        SlotRx(RingRx::new(region))
    }
}

impl Rx for SlotRx {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        let r = &mut self.0;
        let i = r.next;
        let slot = r.region.slot(i);
        // SAFETY: as in `SlotTx::send`: an aligned word inside the mapping,
        // only accessed atomically.
        let word = unsafe { &*(slot as *const AtomicU64) };
        // Acquire pairs with the producer's Release store of the word: the
        // payload before it is visible.
        while word.load(Ordering::Acquire) != i + 1 {
            std::hint::spin_loop();
        }
        debug_assert!(buf.len() + 8 <= r.region.stride);
        // SAFETY: slot i is published and not reused before we store head
        // past it; it holds `stride >= buf.len() + 8` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(slot.add(8), buf.as_mut_ptr(), buf.len());
        }
        // Release pairs with the producer's Acquire of head.
        r.region.counter(HEAD).store(i + 1, Ordering::Release);
        r.next = i + 1;
        Ok(())
    }
}
