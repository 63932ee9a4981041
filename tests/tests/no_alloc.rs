//! The publish/receive fast path allocates nothing in steady state: a
//! counting global allocator, armed per thread, over publish, try_receive
//! (full and empty), receive, receive_batch, publish_batch, and the end of
//! ack=auto deliveries (drop and `ack`).
//!
//! This file is its own test binary, so its `#[global_allocator]` serves
//! only these tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmq::{ConsumerOptions, Options, Queue, Start};

/// The system allocator, counting the allocations made by threads that
/// armed it.
struct Counting;

/// Allocations (alloc, alloc_zeroed, realloc) seen while armed, all threads.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations are counted. `const`-initialized,
    /// so reading it never allocates itself.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

impl Counting {
    fn note(&self) {
        // `try_with`: the slot may be gone while the thread exits.
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            // Relaxed: a plain counter, read by the same thread after the
            // measured code.
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; `note` only bumps a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note();
        // SAFETY: as in `alloc`; `ptr` came from this allocator (= System).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`. Tests run on
/// threads of their own, and only this thread is armed; the counter is
/// global, so the tests of this file that count take `SERIAL` first.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SLOTS: u64 = 256;
const BATCH: usize = 16;

/// One lap of everything the fast path does, checking what it delivers.
fn fast_path(p: &mut shmq::Producer, c: &mut shmq::Consumer, laps: u64, buf: &mut [u8; 64]) {
    let payload = [5u8; 64];
    let batch: [&[u8]; BATCH] = [&payload[..8]; BATCH];
    for i in 0..laps {
        // publish + try_receive, the delivery dropped.
        p.publish(&payload).unwrap();
        let m = c.try_receive().unwrap().expect("a message was published");
        buf.copy_from_slice(m.payload());
        drop(m);
        // An empty poll.
        assert!(c.try_receive().unwrap().is_none());
        // publish + receive (ready at once), ended with `ack`.
        p.publish(&payload[..32]).unwrap();
        let m = c.receive().unwrap();
        assert_eq!(m.payload().len(), 32);
        m.ack().unwrap();
        // publish_batch + receive_batch.
        let first = p.publish_batch(&batch).unwrap();
        let b = c.receive_batch(BATCH, Duration::ZERO).unwrap();
        assert_eq!(b.len(), BATCH);
        for (k, m) in b.iter().enumerate() {
            assert_eq!(m.seq(), first + k as u64);
            buf[..8].copy_from_slice(m.payload());
        }
        drop(b);
        assert_eq!(c.position(), first + BATCH as u64, "lap {i}");
    }
}

#[test]
fn publish_and_receive_allocate_nothing_in_steady_state() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new().dir(dir.path()).slots(SLOTS).slot_size(64);
    let q = Queue::create("noalloc", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut buf = [0u8; 64];
    // Warm-up: several laps of the ring, so every slot has been used and
    // anything lazily made on first use exists.
    let laps = 4 * SLOTS / (BATCH as u64 + 2);
    fast_path(&mut p, &mut c, laps, &mut buf);
    // Steady state: many more laps (past the consumer's periodic checks
    // for stuck producers), counted.
    let n = allocations_in(|| fast_path(&mut p, &mut c, 20 * laps, &mut buf));
    assert_eq!(
        n, 0,
        "{n} heap allocations on the publish/receive fast path"
    );
    assert_eq!(buf[0], 5);
}

/// The counter does see allocations: without this, a broken allocator
/// hook would make the test above pass whatever the queue did.
#[test]
fn the_counting_allocator_counts() {
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(100));
        std::hint::black_box(&v);
    });
    assert_eq!(n, 1);
}

/// Keyed publishes with headers, received by competing ack=manual
/// consumers (the lane protocol's dispatch, hand-on and release), allocate
/// nothing either (the ordering key and headers are borrowed by `Meta` and
/// written in the slot).
#[test]
fn keyed_publish_and_receive_allocate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new().dir(dir.path()).slots(SLOTS).slot_size(128);
    let q = Queue::create("noalloc-keyed", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let manual = ConsumerOptions::new().ack(shmq::Ack::Manual);
    let mut a = q.consumer("g", manual).unwrap();
    let mut b = q.consumer("g", manual).unwrap();
    let keys = [&b"alice"[..], b"bob", b"carol"];
    let lap = |p: &mut shmq::Producer, a: &mut shmq::Consumer, b: &mut shmq::Consumer| {
        for i in 0..3 * SLOTS {
            let meta = shmq::Meta::new()
                .ordering_key(keys[(i % 3) as usize])
                .header(
                    "traceparent",
                    b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                );
            p.publish_with(b"event", &meta).unwrap();
            p.publish_with(b"event", &meta).unwrap();
            // Two of one key: the second waits until the first is acked.
            let m = a.try_receive().unwrap().expect("the first of its key");
            assert_eq!(m.ordering_key(), Some(keys[(i % 3) as usize]));
            assert!(m.header("traceparent").is_some());
            assert!(b.try_receive().unwrap().is_none(), "its key is busy");
            m.ack().unwrap();
            let m = b.receive_timeout(Duration::from_secs(5)).unwrap();
            m.ack().unwrap();
        }
    };
    lap(&mut p, &mut a, &mut b);
    let n = allocations_in(|| lap(&mut p, &mut a, &mut b));
    assert_eq!(n, 0, "{n} heap allocations on the keyed path");
}
