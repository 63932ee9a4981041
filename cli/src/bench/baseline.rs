//! The bare baselines `shmq bench` measures shmq against, in the same run,
//! on the same cores: a cache-line ping-pong (the physical limit of a
//! one-way hand-off between two cores) and a single-producer ring of plain
//! stores (the most a queue of that payload could move).
//!
//! Both live in a small shared file mapped by two processes, like shmq's.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use memmap2::MmapRaw;

use crate::{CliError, CliResult};

/// Offsets in the region: three counters on their own cache lines, then
/// the ring's slots.
const PING: usize = 0;
const TAIL: usize = 128;
const HEAD: usize = 256;
const SLOTS: usize = 4096;

/// A shared mapping for a baseline.
pub(crate) struct Region {
    map: MmapRaw,
    slots: usize,
    stride: usize,
}

impl Region {
    /// Bytes needed for a ring of `slots` slots of `size` bytes.
    fn len(slots: usize, size: usize) -> usize {
        SLOTS + slots * stride(size)
    }

    /// Creates the region file (zeroed) for a ring of `slots` × `size`.
    pub(crate) fn create(path: &Path, slots: usize, size: usize) -> CliResult<()> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        f.set_len(Region::len(slots, size) as u64)?;
        Ok(())
    }

    /// Maps the region file.
    pub(crate) fn open(path: &Path, slots: usize, size: usize) -> CliResult<Region> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = f.metadata()?.len() as usize;
        if len != Region::len(slots, size) || !slots.is_power_of_two() {
            return Err(CliError::Other(format!(
                "{}: baseline region has the wrong size",
                path.display()
            )));
        }
        let map = MmapRaw::map_raw(&f)?;
        Ok(Region {
            map,
            slots,
            stride: stride(size),
        })
    }

    fn counter(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset + 8 <= SLOTS);
        // SAFETY: `offset` is one of the 64-aligned counter offsets inside
        // the first page of a page-aligned mapping that `open` checked is
        // longer than a page; the word is only accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU64) }
    }

    fn slot(&self, i: u64) -> *mut u8 {
        // SAFETY: `i & (slots - 1) < slots`, and `open` checked the mapping
        // holds `slots` strides after the first page.
        unsafe {
            self.map
                .as_mut_ptr()
                .add(SLOTS + (i as usize & (self.slots - 1)) * self.stride)
        }
    }

    /// The pinging side of the cache-line ping-pong: stores 2k+1, spins
    /// until the other side stores 2k+2. Returns each round trip in ns.
    pub(crate) fn ping(&self, count: u64) -> Vec<u64> {
        let word = self.counter(PING);
        let mut rtts = Vec::with_capacity(count as usize);
        for k in 0..count {
            let t0 = Instant::now();
            // Release/Acquire: the hand-off itself is the measured thing.
            word.store(2 * k + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * k + 2 {
                std::hint::spin_loop();
            }
            rtts.push(t0.elapsed().as_nanos() as u64);
        }
        rtts
    }

    /// The answering side of the ping-pong.
    pub(crate) fn pong(&self, count: u64) {
        let word = self.counter(PING);
        for k in 0..count {
            while word.load(Ordering::Acquire) != 2 * k + 1 {
                std::hint::spin_loop();
            }
            word.store(2 * k + 2, Ordering::Release);
        }
    }

    /// Producer of the bare SPSC ring: writes each payload with plain
    /// stores, publishes it with a Release store of `tail`, and reads
    /// `head` only when its cached copy says the ring is full.
    pub(crate) fn produce(&self, count: u64, payload: &[u8]) {
        let (tail, head) = (self.counter(TAIL), self.counter(HEAD));
        let cap = self.slots as u64;
        let mut cached_head = 0;
        for i in 0..count {
            while i - cached_head >= cap {
                // Acquire pairs with the consumer's Release of head: it has
                // finished reading the slot we are about to reuse.
                cached_head = head.load(Ordering::Acquire);
                std::hint::spin_loop();
            }
            // SAFETY: slot i is ours: the consumer is past i - cap, and
            // `payload.len() <= stride`.
            unsafe {
                let slot = self.slot(i);
                std::ptr::copy_nonoverlapping(payload.as_ptr(), slot, payload.len());
            }
            // Release pairs with the consumer's Acquire of tail.
            tail.store(i + 1, Ordering::Release);
        }
    }

    /// Consumer of the bare ring: reads every payload whole. Returns the
    /// nanoseconds from the first message to the last, and a checksum so
    /// the reads are not optimized away.
    pub(crate) fn consume(&self, count: u64, size: usize) -> (u64, u64) {
        let (tail, head) = (self.counter(TAIL), self.counter(HEAD));
        let mut buf = vec![0u8; size];
        let mut sum = 0u64;
        let mut cached_tail = 0;
        let mut start = None;
        for i in 0..count {
            while cached_tail <= i {
                cached_tail = tail.load(Ordering::Acquire);
                std::hint::spin_loop();
            }
            start.get_or_insert_with(Instant::now);
            // SAFETY: slot i was published (tail > i, Acquire) and the
            // producer does not reuse it before we store head past it.
            unsafe {
                std::ptr::copy_nonoverlapping(self.slot(i), buf.as_mut_ptr(), size);
            }
            // black_box: the whole copy counts (the compiler may not drop the
            // bytes that nothing reads).
            sum = sum.wrapping_add(std::hint::black_box(&mut buf)[0] as u64);
            head.store(i + 1, Ordering::Release);
        }
        let elapsed = start.map(|s| s.elapsed().as_nanos() as u64).unwrap_or(0);
        (elapsed, sum)
    }
}

fn stride(size: usize) -> usize {
    size.max(1).div_ceil(64) * 64
}
