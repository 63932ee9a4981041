//! `layouts`: the three record layouts issue #36 chose between, measured
//! side by side as bare single-producer rings between two threads pinned
//! to two cores (busy polling), so that only the layout differs:
//!
//! - `slot64`: one record per slot of a fixed stride, rounded up to 64
//!   bytes (today's layout; a message longer than a slot would take
//!   consecutive slots): a commit word, then a 16-byte header (length,
//!   flags, timestamp), then the payload;
//! - `log`: records back to back in a byte log, each rounded up to 8 bytes
//!   (Aeron's log, with smaller alignment): the same 24-byte header; a
//!   record that would cross the end of the log leaves a padding record
//!   and starts again at its beginning;
//! - `arena`: a fixed ring of 16-byte index entries (commit word, the
//!   record's position in a byte arena) and the records (length, flags,
//!   timestamp, payload) back to back in the arena, rounded up to 8 bytes.
//!
//! Throughput: `count` messages, from the first received to the last; the
//! consumer copies each payload out whole and checks the order. Latency:
//! ping-pong through two rings, one-way = round trip / 2, p50. Each figure
//! is also given as a ratio to `slot64` measured just before it; `--runs`
//! alternate the layouts.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml --bin layouts -- \
//!     [--runs 3] [--count 2000000] [--sizes 16,64,256,1024,65536,1048576]
//! ```

#[path = "../link.rs"]
#[allow(dead_code)]
mod link;

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use link::{Res, Rx, Tx};

/// The header after the commit word: length (4), flags (4), timestamp (8).
const HEADER: usize = 24;
/// The commit word's low bit: this record is padding up to the log's end.
const PAD: u64 = 1;

/// Memory both threads use: a byte area, an index area (for `arena`) and
/// the consumer's two release counters on their own lines.
struct Area {
    bytes: *mut u8,
    cap: usize,
    index: *mut u8,
    entries: usize,
    /// Everything before it is the producer's again (records or slots).
    head: AtomicU64,
    _pad: [u64; 15],
    /// Arena bytes before it are the producer's again.
    arena_head: AtomicU64,
}

// SAFETY: the raw areas are shared between exactly one producer and one
// consumer thread, which hand each byte over through the Release/Acquire
// pairs described at each use.
unsafe impl Send for Area {}
// SAFETY: as above.
unsafe impl Sync for Area {}

impl Area {
    fn new(cap: usize, entries: usize) -> Area {
        let alloc = |len: usize| {
            // SAFETY: a non-zero size and a valid alignment.
            let p = unsafe { alloc_zeroed(Layout::from_size_align(len, 4096).expect("layout")) };
            assert!(!p.is_null(), "out of memory");
            p
        };
        Area {
            bytes: alloc(cap),
            cap,
            index: alloc(entries * 16),
            entries,
            head: AtomicU64::new(0),
            _pad: [0; 15],
            arena_head: AtomicU64::new(0),
        }
    }

    /// The 8-aligned word at byte `off` of `base`.
    fn word(base: *mut u8, off: usize) -> &'static AtomicU64 {
        // SAFETY: callers pass 8-aligned offsets inside the area, which
        // lives as long as both threads (the Arc); the word is only ever
        // accessed atomically while the ring hands it over.
        unsafe { &*(base.add(off) as *const AtomicU64) }
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts.
        unsafe {
            dealloc(
                self.bytes,
                Layout::from_size_align(self.cap, 4096).expect("layout"),
            );
            dealloc(
                self.index,
                Layout::from_size_align(self.entries * 16, 4096).expect("layout"),
            );
        }
    }
}

fn round(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Writes the 16-byte header (length, flags, timestamp) and the payload at
/// `at`, then nothing else: the commit is the caller's.
///
/// # Safety
///
/// `at .. at + 16 + payload.len()` is the producer's to write.
#[inline(always)]
unsafe fn put(at: *mut u8, payload: &[u8], stamp: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        (at as *mut u32).write_unaligned(payload.len() as u32);
        (at.add(4) as *mut u32).write_unaligned(0);
        (at.add(8) as *mut u64).write_unaligned(stamp);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), at.add(16), payload.len());
    }
}

/// Reads back what `put` wrote at `at` into `buf`; an error for a length
/// other than the one expected.
///
/// # Safety
///
/// `at .. at + 16 + buf.len()` was committed to the consumer.
#[inline(always)]
unsafe fn get(at: *const u8, buf: &mut [u8]) -> Res<()> {
    // SAFETY: the caller's contract.
    let len = unsafe { (at as *const u32).read_unaligned() } as usize;
    if len != buf.len() {
        return Err(format!("record of {len} bytes, {} expected", buf.len()).into());
    }
    // SAFETY: the caller's contract, and len checked.
    unsafe { std::ptr::copy_nonoverlapping(at.add(16), buf.as_mut_ptr(), len) };
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Slot64,
    Log,
    Arena,
}

struct Producer {
    kind: Kind,
    area: Arc<Area>,
    /// Slot index (slot64, arena) or byte position (log).
    next: u64,
    /// Byte position in the arena.
    arena_next: u64,
    cached_head: u64,
    cached_arena_head: u64,
}

struct Consumer {
    kind: Kind,
    area: Arc<Area>,
    next: u64,
}

impl Producer {
    /// Waits until `need` more units past `from` fit under `head + cap`.
    #[inline(always)]
    fn room(counter: &AtomicU64, cached: &mut u64, end: u64, cap: u64) {
        while end > *cached + cap {
            // Acquire pairs with the consumer's Release of the counter: its
            // reads of what it frees came first.
            *cached = counter.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
    }
}

impl Tx for Producer {
    #[inline(always)]
    fn send(&mut self, payload: &[u8]) -> Res<()> {
        let a = &*self.area;
        match self.kind {
            Kind::Slot64 => {
                let stride = round(HEADER + payload.len(), 64);
                let slots = (a.cap / stride) as u64;
                let i = self.next;
                Self::room(&a.head, &mut self.cached_head, i + 1, slots);
                let at = (i % slots) as usize * stride;
                // SAFETY: slot i is ours (the consumer freed i - slots) and
                // holds 8 + 16 + payload bytes.
                unsafe { put(a.bytes.add(at + 8), payload, i) };
                // Release pairs with the consumer's Acquire of the word.
                Area::word(a.bytes, at).store((i + 1) << 1, Ordering::Release);
                self.next = i + 1;
            }
            Kind::Log => {
                let len = round(HEADER + payload.len(), 8);
                let mut pos = self.next;
                let off = (pos % a.cap as u64) as usize;
                let skip = if off + len > a.cap { a.cap - off } else { 0 };
                Self::room(
                    &a.head,
                    &mut self.cached_head,
                    pos + (skip + len) as u64,
                    a.cap as u64,
                );
                if skip > 0 {
                    // A padding record to the end of the log.
                    Area::word(a.bytes, off).store(((pos + 1) << 1) | PAD, Ordering::Release);
                    pos += skip as u64;
                }
                let off = (pos % a.cap as u64) as usize;
                // SAFETY: bytes pos .. pos + len are ours (room) and inside
                // the log (no record crosses its end).
                unsafe { put(a.bytes.add(off + 8), payload, pos) };
                // Release pairs with the consumer's Acquire of the word.
                Area::word(a.bytes, off).store((pos + 1) << 1, Ordering::Release);
                self.next = pos + len as u64;
            }
            Kind::Arena => {
                let i = self.next;
                Self::room(&a.head, &mut self.cached_head, i + 1, a.entries as u64);
                let len = round(16 + payload.len(), 8);
                let mut at = self.arena_next;
                let off = (at % a.cap as u64) as usize;
                let skip = if off + len > a.cap { a.cap - off } else { 0 };
                Self::room(
                    &a.arena_head,
                    &mut self.cached_arena_head,
                    at + (skip + len) as u64,
                    a.cap as u64,
                );
                at += skip as u64;
                let off = (at % a.cap as u64) as usize;
                // SAFETY: the arena bytes are ours (room), inside the arena.
                unsafe { put(a.bytes.add(off), payload, i) };
                let e = (i % a.entries as u64) as usize * 16;
                Area::word(a.index, e + 8).store(at, Ordering::Relaxed);
                // Release pairs with the consumer's Acquire of the word: the
                // record and the entry's position come first.
                Area::word(a.index, e).store((i + 1) << 1, Ordering::Release);
                self.next = i + 1;
                self.arena_next = at + len as u64;
            }
        }
        Ok(())
    }
}

impl Rx for Consumer {
    #[inline(always)]
    fn recv(&mut self, buf: &mut [u8]) -> Res<()> {
        let a = &*self.area;
        match self.kind {
            Kind::Slot64 => {
                let stride = round(HEADER + buf.len(), 64);
                let slots = (a.cap / stride) as u64;
                let i = self.next;
                let at = (i % slots) as usize * stride;
                // Acquire pairs with the producer's Release of the word.
                while Area::word(a.bytes, at).load(Ordering::Acquire) != (i + 1) << 1 {
                    std::hint::spin_loop();
                }
                // SAFETY: committed, and not reused before we free it.
                unsafe { get(a.bytes.add(at + 8), buf)? };
                // Release pairs with the producer's Acquire: reads first.
                a.head.store(i + 1, Ordering::Release);
                self.next = i + 1;
            }
            Kind::Log => loop {
                let pos = self.next;
                let off = (pos % a.cap as u64) as usize;
                let w = loop {
                    // Acquire pairs with the producer's Release of the word.
                    let w = Area::word(a.bytes, off).load(Ordering::Acquire);
                    if w >> 1 == pos + 1 {
                        break w;
                    }
                    std::hint::spin_loop();
                };
                if w & PAD != 0 {
                    self.next = pos + (a.cap - off) as u64;
                    continue;
                }
                // SAFETY: committed, and not reused before we free it.
                unsafe { get(a.bytes.add(off + 8), buf)? };
                let next = pos + round(HEADER + buf.len(), 8) as u64;
                // Release pairs with the producer's Acquire: reads first.
                a.head.store(next, Ordering::Release);
                self.next = next;
                break;
            },
            Kind::Arena => {
                let i = self.next;
                let e = (i % a.entries as u64) as usize * 16;
                // Acquire pairs with the producer's Release of the word.
                while Area::word(a.index, e).load(Ordering::Acquire) != (i + 1) << 1 {
                    std::hint::spin_loop();
                }
                let at = Area::word(a.index, e + 8).load(Ordering::Relaxed);
                let off = (at % a.cap as u64) as usize;
                // SAFETY: committed, and not reused before we free it.
                unsafe { get(a.bytes.add(off), buf)? };
                let end = at + round(16 + buf.len(), 8) as u64;
                // Release pairs with the producer's Acquire: reads first.
                a.arena_head.store(end, Ordering::Release);
                a.head.store(i + 1, Ordering::Release);
                self.next = i + 1;
            }
        }
        Ok(())
    }
}

fn pin(core: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn ends(kind: Kind, size: usize) -> (Producer, Consumer) {
    // 256 KiB for small messages, room for 4 of the largest otherwise.
    let cap = (256 << 10).max(round(size + 64, 4096) * 4);
    let area = Arc::new(Area::new(cap, 16384));
    let p = Producer {
        kind,
        area: area.clone(),
        next: 0,
        arena_next: 0,
        cached_head: 0,
        cached_arena_head: 0,
    };
    (
        p,
        Consumer {
            kind,
            area,
            next: 0,
        },
    )
}

/// Messages per second through one ring of `kind`.
fn throughput(kind: Kind, size: usize, count: u64) -> Res<f64> {
    let (mut tx, mut rx) = ends(kind, size);
    let consumer = std::thread::spawn(move || {
        pin(1);
        link::consume(&mut rx, size, count).map_err(|e| e.to_string())
    });
    pin(0);
    link::produce(&mut tx, size, count)?;
    let s = consumer.join().map_err(|_| "consumer panicked")??;
    if s.disorder != 0 {
        return Err(format!("{kind:?}: {} messages out of order", s.disorder).into());
    }
    Ok((s.received - 1) as f64 / (s.elapsed_ns.max(1) as f64 / 1e9))
}

/// One-way p50 in ns through two rings of `kind`.
fn latency(kind: Kind, size: usize, count: u64) -> Res<u64> {
    let (mut tx_a, mut rx_a) = ends(kind, size);
    let (mut tx_b, mut rx_b) = ends(kind, size);
    let total = count + count / 10;
    let pong = std::thread::spawn(move || {
        pin(1);
        link::pong(&mut tx_b, &mut rx_a, size, total).map_err(|e| e.to_string())
    });
    pin(0);
    let h = link::ping(&mut tx_a, &mut rx_b, size, count, count / 10)?;
    pong.join().map_err(|_| "pong panicked")??;
    Ok(h.value_at_quantile(0.5))
}

/// A payload size and layout, and per run: msgs/s, its ratio, p50 ns, its
/// ratio.
type Seen = ((usize, Kind), Vec<[f64; 4]>);

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut count) = (3u32, 2_000_000u64);
    let mut sizes = vec![16usize, 64, 256, 1024, 65536, 1 << 20];
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or("a value after each flag");
        match flag.as_str() {
            "--runs" => runs = val()?.parse()?,
            "--count" => count = val()?.parse()?,
            "--sizes" => {
                sizes = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            _ => {
                let usage = "usage: layouts [--runs N] [--count N] [--sizes A,B,..]";
                return Err(format!("{usage}; not {flag}").into());
            }
        }
    }
    let kinds = [Kind::Slot64, Kind::Log, Kind::Arena];
    let mut seen: Vec<Seen> = Vec::new();
    for run in 0..runs {
        for &size in &sizes {
            let size = size.max(8);
            // Fewer messages for the large sizes: the same bytes at most.
            let n = count.min((8u64 << 30) / size as u64).max(1000);
            let base_t = throughput(Kind::Slot64, size, n)?;
            let base_l = latency(Kind::Slot64, size, n / 20)?;
            for kind in kinds {
                let (t, l) = if kind == Kind::Slot64 {
                    (base_t, base_l)
                } else {
                    (throughput(kind, size, n)?, latency(kind, size, n / 20)?)
                };
                let row = [t, t / base_t, l as f64, l as f64 / base_l as f64];
                eprintln!("run {run}: {size} B {kind:?}: {row:?}");
                match seen.iter_mut().find(|(k, _)| *k == (size, kind)) {
                    Some((_, v)) => v.push(row),
                    None => seen.push(((size, kind), vec![row])),
                }
            }
        }
    }
    println!(
        "layouts: {runs} runs, medians (min-max of the ratio); ratio to slot64 measured just before"
    );
    println!(
        "{:>8}  {:<7} {:>10} {:>17} {:>9} {:>17}",
        "size", "layout", "msgs/s", "x slot64", "p50 ns", "x slot64"
    );
    for ((size, kind), v) in &seen {
        let col = |i: usize| {
            let mut c: Vec<f64> = v.iter().map(|r| r[i]).collect();
            c.sort_by(|a, b| a.total_cmp(b));
            (c[c.len() / 2], c[0], c[c.len() - 1])
        };
        let (t, (r, rmin, rmax), l, (q, qmin, qmax)) = (col(0).0, col(1), col(2).0, col(3));
        println!(
            "{size:>8}  {:<7} {:>9.2}M {r:>5.2} ({rmin:.2}-{rmax:.2}) {l:>9.0} {q:>5.2} ({qmin:.2}-{qmax:.2})",
            format!("{kind:?}").to_lowercase(),
            t / 1e6
        );
    }
    Ok(())
}
