//! The bare baselines shmq is measured against, in a small file that two
//! processes map, as they map a queue:
//!
//! - a cache-line ping-pong: one word, one store each way — the physical
//!   limit of a one-way hand-off between two cores;
//! - a single-producer ring of plain stores: the payload copied into a
//!   slot, published by a Release store of `tail`; the consumer copies it
//!   out and Release-stores `head`. The most a queue of that payload could
//!   move.
//!
//! One implementation for the two benches that measure them: `shmq bench`,
//! whose workers (`latency.rs`, `throughput.rs` beside this file) loop
//! over the ring's steps, and the peer comparison (`benches/peers`, its
//! own workspace), which compiles this file as its module `bare::baseline`
//! with a `#[path]` and makes the steps the ends of its links. So the file
//! stands alone: std and memmap2 only, nothing from either crate, and no
//! item that only one of them calls (the other would warn of dead code).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use memmap2::MmapRaw;

/// Offsets in the region: three counters on their own 128-byte pairs of
/// cache lines (the adjacent-line prefetcher moves lines in pairs), then the
/// ring's slots from the second page on.
const PING: usize = 0;
const TAIL: usize = 128;
const HEAD: usize = 256;
const SLOTS: usize = 4096;

/// A shared mapping holding the counters and a ring.
pub(crate) struct Region {
    map: MmapRaw,
    /// Slots in the ring: a power of two (`open` checks).
    slots: usize,
    /// Bytes a slot takes: its size rounded up to 64.
    stride: usize,
}

fn stride(size: usize) -> usize {
    size.max(1).div_ceil(64) * 64
}

impl Region {
    /// Bytes needed for a ring of `slots` slots of `size` bytes.
    fn len(slots: usize, size: usize) -> usize {
        SLOTS + slots * stride(size)
    }

    /// Creates the (zeroed) region file for a ring of `slots` × `size`.
    pub(crate) fn create(path: &Path, slots: usize, size: usize) -> io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        f.set_len(Region::len(slots, size) as u64)?;
        Ok(())
    }

    /// Maps a region file made by `create` with the same arguments.
    pub(crate) fn open(path: &Path, slots: usize, size: usize) -> io::Result<Region> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = f.metadata()?.len() as usize;
        if len != Region::len(slots, size) || !slots.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: baseline region has the wrong size", path.display()),
            ));
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
        // longer than a page; the word is only ever accessed atomically.
        unsafe { &*(self.map.as_mut_ptr().add(offset) as *const AtomicU64) }
    }

    /// The slot of position `i`, for `len` bytes (at most the stride).
    #[inline(always)]
    pub(crate) fn slot(&self, i: u64, len: usize) -> *mut u8 {
        debug_assert!(len <= self.stride);
        // SAFETY: `i & (slots - 1) < slots`, and `open` checked that the
        // mapping holds `slots` strides after the first page.
        unsafe {
            self.map
                .as_mut_ptr()
                .add(SLOTS + (i as usize & (self.slots - 1)) * self.stride)
        }
    }

    // The ring, a step at a time: the producer's `wait_for_room(i)`,
    // `write(i)`, `publish(i)`; the consumer's `wait_for_data(i)`,
    // `read(i)`, `free_to(i + 1)`. Each side keeps its own position and
    // its cached copy of the other's counter, so that a loop over the steps
    // holds them in registers.

    /// The producer's wait for the slot of position `i`: spins until the
    /// consumer is past `i - slots`. `cached_head` is the producer's copy of
    /// `head`, read again only when it says the ring is full.
    #[inline(always)]
    pub(crate) fn wait_for_room(&self, i: u64, cached_head: &mut u64) {
        let cap = self.slots as u64;
        while i - *cached_head >= cap {
            // Acquire pairs with the consumer's Release of head (`free_to`):
            // it has finished reading the slot we are about to reuse.
            *cached_head = self.counter(HEAD).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
    }

    /// Copies `payload` into the slot of position `i` with plain stores.
    ///
    /// # Safety
    ///
    /// Position `i` is the caller's to write: its `wait_for_room` returned
    /// and it is not published yet. `payload` fits in a slot.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, i: u64, payload: &[u8]) {
        let slot = self.slot(i, payload.len());
        // SAFETY: the consumer is past i - slots and reads the slot only
        // after `publish(i)` (the caller's contract); it holds
        // `stride >= payload.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), slot, payload.len()) }
    }

    /// Publishes position `i` to the consumer.
    #[inline(always)]
    pub(crate) fn publish(&self, i: u64) {
        // Release pairs with the consumer's Acquire of tail
        // (`wait_for_data`): the slot's bytes come first.
        self.counter(TAIL).store(i + 1, Ordering::Release);
    }

    /// The consumer's wait for position `i`: spins until it is published.
    /// `cached_tail` is the consumer's copy of `tail`, read again only when
    /// it says the ring is empty.
    #[inline(always)]
    pub(crate) fn wait_for_data(&self, i: u64, cached_tail: &mut u64) {
        while *cached_tail <= i {
            // Acquire pairs with the producer's Release of tail (`publish`):
            // the slot's bytes are visible. The pause after every refresh:
            // when both processes share one physical core (SMT siblings),
            // it leaves the core to the producer while the consumer is
            // behind anyway.
            *cached_tail = self.counter(TAIL).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
    }

    /// Copies the slot of position `i` into `buf` (whose length is the
    /// payload size).
    ///
    /// # Safety
    ///
    /// Position `i` is the caller's to read: its `wait_for_data` returned
    /// and it is not freed yet. `buf` fits in a slot.
    #[inline(always)]
    pub(crate) unsafe fn read(&self, i: u64, buf: &mut [u8]) {
        let slot = self.slot(i, buf.len());
        // SAFETY: slot i was published (tail > i, Acquire) and the
        // producer does not reuse it before `free_to` passes it (the
        // caller's contract); it holds `stride >= buf.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(slot, buf.as_mut_ptr(), buf.len()) }
    }

    /// The consumer's release of the positions before `next`: their slots
    /// are the producer's again.
    #[inline(always)]
    pub(crate) fn free_to(&self, next: u64) {
        // Release pairs with the producer's Acquire of head
        // (`wait_for_room`): our reads of the slots come first.
        self.counter(HEAD).store(next, Ordering::Release);
    }

    /// The pinging side of the cache-line ping-pong, `count` round trips:
    /// stores 2k+1, spins until the other side stored 2k+2, and hands `each`
    /// k and the round trip in ns.
    pub(crate) fn ping(&self, count: u64, mut each: impl FnMut(u64, u64)) {
        let word = self.counter(PING);
        for k in 0..count {
            let t0 = Instant::now();
            // Release pairs with the pong side's Acquire load (and its
            // Release store with our Acquire): the hand-off is what is
            // measured.
            word.store(2 * k + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * k + 2 {
                std::hint::spin_loop();
            }
            each(k, t0.elapsed().as_nanos() as u64);
        }
    }

    /// The pinging side of the bare hand-off of `size` bytes each way (a
    /// region of two slots of `size`): writes slot 0 whole (unless not
    /// `touch`), stores 2k+1, spins until the other side stored 2k+2, and
    /// reads slot 1 whole (unless not `touch`); hands `each` k and the round
    /// trip in ns. What a queue's hand-off of a payload costs at least.
    pub(crate) fn ping_bytes(
        &self,
        count: u64,
        size: usize,
        touch: bool,
        mut each: impl FnMut(u64, u64),
    ) {
        let word = self.counter(PING);
        let payload = vec![1u8; size];
        let mut buf = vec![0u8; size];
        for k in 0..count {
            let t0 = Instant::now();
            if touch {
                // SAFETY: slot 0 is ours to write until we store 2k+1 (the
                // other side reads it only between that and its 2k+2); it
                // holds `size` bytes (`open` checked the region's size).
                unsafe {
                    std::ptr::copy_nonoverlapping(payload.as_ptr(), self.slot(0, size), size)
                };
            }
            // Release/Acquire pairs as in `ping`: the bytes come first.
            word.store(2 * k + 1, Ordering::Release);
            while word.load(Ordering::Acquire) != 2 * k + 2 {
                std::hint::spin_loop();
            }
            if touch {
                // SAFETY: slot 1 was written before the other side's 2k+2
                // (Acquire above) and is not written again before our next
                // 2k+3.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.slot(1, size), buf.as_mut_ptr(), size)
                };
            }
            each(k, t0.elapsed().as_nanos() as u64);
        }
        std::hint::black_box(&buf);
    }

    /// The answering side of [`ping_bytes`](Self::ping_bytes): reads slot
    /// 0 whole, writes slot 1 whole (unless not `touch`), answers.
    pub(crate) fn pong_bytes(&self, count: u64, size: usize, touch: bool) {
        let word = self.counter(PING);
        let mut buf = vec![0u8; size];
        for k in 0..count {
            while word.load(Ordering::Acquire) != 2 * k + 1 {
                std::hint::spin_loop();
            }
            if touch {
                // SAFETY: slot 0 was written before 2k+1 (Acquire above)
                // and is not written again before our 2k+2; slot 1 is ours
                // to write until then. Both hold `size` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.slot(0, size), buf.as_mut_ptr(), size);
                    std::ptr::copy_nonoverlapping(buf.as_ptr(), self.slot(1, size), size);
                }
            }
            word.store(2 * k + 2, Ordering::Release);
        }
        std::hint::black_box(&buf);
    }

    /// The answering side of the cache-line ping-pong.
    pub(crate) fn pong(&self, count: u64) {
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
