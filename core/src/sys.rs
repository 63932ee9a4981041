//! Everything that talks to the operating system: queue files, the shared
//! mapping, futexes, process identity and clocks. The rest of the crate sees
//! only safe functions and one raw pointer (the mapping's base).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use memmap2::MmapRaw;
use rustix::thread::futex;

/// Creates `path` exclusively (`O_EXCL`), never through a symlink
/// (`O_NOFOLLOW`), with exactly `mode` (the umask is undone by `fchmod`),
/// and sizes it to `len` bytes of zeros.
pub(crate) fn create_file(path: &Path, mode: u32, len: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Err(e) = file.set_len(len) {
        // Leave nothing half-made behind.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Opens an existing queue file for reading and writing, never through a
/// symlink.
pub(crate) fn open_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)
}

/// Creates segment file `path` in `dir` (made, mode 0700, if missing)
/// exclusively and never through a symlink, mode 0600, and preallocates
/// `len` bytes (`fallocate`), so that a full disk is an error here and not
/// a fault later when the mapping is written.
pub(crate) fn create_segment_file(dir: &Path, path: &Path, len: u64) -> io::Result<File> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)?;
    if let Err(e) = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len) {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(file)
}

/// The open flags we need, from rustix so that we do not depend on libc.
mod libc_flags {
    pub(super) const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    pub(super) const O_CLOEXEC: i32 = rustix::fs::OFlags::CLOEXEC.bits() as i32;
}

/// A shared, read-write mapping of a whole queue file.
///
/// `MmapRaw` hands out raw pointers only: other processes write this memory
/// at any time, so no `&mut [u8]` over all of it may ever exist.
pub(crate) struct Mapping {
    map: MmapRaw,
}

impl Mapping {
    /// Maps all of `file`, which must be exactly `len` bytes long.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Mapping> {
        let usize_len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        let map = memmap2::MmapOptions::new().len(usize_len).map_raw(file)?;
        Ok(Mapping { map })
    }

    /// First byte of the mapping. Page-aligned.
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Flushes the mapping to its file (only meaningful on a disk path).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// Flushes bytes `off .. off + len` to the file and waits (`msync`).
    pub(crate) fn flush_range(&self, off: usize, len: usize) -> io::Result<()> {
        let len = len.min(self.map.len().saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        self.map.flush_range(off, len)
    }
}

/// Sleeps on `word` while it holds `expected`, for at most `timeout`.
/// Not the PRIVATE variant: the waker is usually another process.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // EAGAIN (value changed), EINTR (signal) and ETIMEDOUT are all normal
    // returns for a caller that re-checks its condition.
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every sleeper on `word`, in any process that maps it.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

/// This process's id.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or 0 if it cannot be read. With the pid it names one
/// process for the life of the machine: pids are reused, start times of
/// one pid are not.
pub(crate) fn process_start_time(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses itself: parse from the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    // After ')' come fields 3, 4, ...; start time is field 22.
    rest.split_whitespace()
        .nth(22 - 3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether process `pid` is alive. `start_time`, when not 0, must match too,
/// so that a reused pid is not taken for the old process.
pub(crate) fn process_alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 {
        return false;
    }
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => {}
        // EPERM: it exists but belongs to someone else.
        Err(e) if e == rustix::io::Errno::PERM => {}
        Err(_) => return false,
    }
    // A zombie (exited, not yet reaped by its parent) still answers
    // kill(2) but will never write again.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if matches!(state, Some("Z" | "X")) {
            return false;
        }
    }
    if start_time == 0 {
        return true;
    }
    let now = process_start_time(pid);
    // 0: it exited between the two checks, or /proc is unreadable; in the
    // latter case trust kill(2).
    now == start_time || (now == 0 && std::fs::metadata("/proc/self").is_err())
}

/// Monotonic clock in nanoseconds (system-wide, so comparable across
/// processes). A vDSO call, not a system call.
pub(crate) fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME).
pub(crate) fn realtime_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether the time-stamp counter ticks at a constant rate in every
/// power state (`constant_tsc` and `nonstop_tsc`), read once per process.
#[cfg(target_arch = "x86_64")]
fn tsc_is_steady() -> bool {
    static STEADY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STEADY.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| {
                s.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
                    let mut f = l.split_whitespace();
                    let has = |name: &str| l.split_whitespace().any(|w| w == name);
                    f.next().is_some() && has("constant_tsc") && has("nonstop_tsc")
                })
            })
            .unwrap_or(false)
    })
}

/// CLOCK_REALTIME for the publish path. `clock_gettime` costs ~35–40 ns on
/// these VMs, as much as the rest of a publish. Where the TSC is steady,
/// the clock is read for real only every `EXTRAPOLATE_TICKS` (~80 µs at
/// 2.6 GHz) and extrapolated in between with the TSC's rate, which the
/// clock measures itself over every `CALIBRATE_NS` (so a step of the wall
/// clock spoils at most one period's rate, and an implausible rate is not
/// used); until it has one, a reading is reused for the next
/// `REFRESH_TICKS` (under a microsecond at 2 GHz or more). So a timestamp is at most about a microsecond older than
/// its publish (extrapolated: off by the rate's error over 80 µs, a few
/// ns), and never goes backwards for one producer. Extrapolating took the
/// clock off the ping-pong's critical path: 85 → 75 ns one-way p50 (fast
/// mode, docs/performance.md).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// TSC and CLOCK_REALTIME of the last real reading.
    base_tsc: u64,
    base_ns: u64,
    /// The real reading the rate is being measured from.
    cal_tsc: u64,
    cal_ns: u64,
    /// Nanoseconds per TSC tick × 2^32; 0 until measured.
    ns_per_tick: u64,
    /// The last value handed out.
    last_ns: u64,
}

impl Clock {
    /// Without a measured rate: reuse a reading for this many ticks.
    #[cfg(target_arch = "x86_64")]
    const REFRESH_TICKS: u64 = 2_000;
    /// With a measured rate: read the clock for real this often.
    #[cfg(target_arch = "x86_64")]
    const EXTRAPOLATE_TICKS: u64 = 200_000;
    /// How long the rate is measured over.
    #[cfg(target_arch = "x86_64")]
    const CALIBRATE_NS: u64 = 10_000_000;
    /// The rates believed (ns per tick × 2^32): a TSC of 0.5 to 10 GHz.
    #[cfg(target_arch = "x86_64")]
    const PLAUSIBLE: std::ops::RangeInclusive<u64> = (1 << 32) / 10..=2 << 32;

    /// Nanoseconds since the Unix epoch, at most ~1 µs stale.
    #[inline]
    pub(crate) fn now_ns(&mut self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if tsc_is_steady() {
            // SAFETY: rdtsc has no preconditions on x86_64; it reads a
            // counter.
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            let dt = tsc.wrapping_sub(self.base_tsc);
            if self.ns_per_tick != 0 && dt < Self::EXTRAPOLATE_TICKS {
                let ns = self.base_ns + ((dt as u128 * self.ns_per_tick as u128) >> 32) as u64;
                return self.hand_out(ns);
            }
            if self.ns_per_tick == 0 && dt < Self::REFRESH_TICKS {
                return self.last_ns;
            }
            return self.read(tsc);
        }
        let ns = realtime_ns();
        self.hand_out(ns)
    }

    /// A real reading at TSC `tsc`; the rate is measured again once the
    /// reading it is measured from is `CALIBRATE_NS` old.
    #[cfg(target_arch = "x86_64")]
    #[cold]
    fn read(&mut self, tsc: u64) -> u64 {
        let ns = realtime_ns();
        (self.base_tsc, self.base_ns) = (tsc, ns);
        if self.cal_ns == 0 || ns < self.cal_ns {
            // The first reading, or the wall clock went back.
            (self.cal_tsc, self.cal_ns) = (tsc, ns);
        } else if ns - self.cal_ns >= Self::CALIBRATE_NS {
            let ticks = tsc.wrapping_sub(self.cal_tsc).max(1);
            let rate = (((ns - self.cal_ns) as u128) << 32) / ticks as u128;
            let rate = u64::try_from(rate).unwrap_or(u64::MAX);
            self.ns_per_tick = if Self::PLAUSIBLE.contains(&rate) {
                rate
            } else {
                0
            };
            (self.cal_tsc, self.cal_ns) = (tsc, ns);
        }
        self.hand_out(ns)
    }

    /// `ns`, or the last value handed out if that is later.
    #[inline(always)]
    fn hand_out(&mut self, ns: u64) -> u64 {
        let ns = ns.max(self.last_ns);
        self.last_ns = ns;
        ns
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_publish_clock_follows_the_real_one() {
        let mut clock = Clock::default();
        let mut last = 0;
        let start = realtime_ns();
        // Past the calibration, well into the extrapolated readings.
        while realtime_ns() - start < 3 * 10_000_000 {
            let before = realtime_ns();
            let t = clock.now_ns();
            let after = realtime_ns();
            assert!(t >= last, "went back: {t} after {last}");
            // At most ~1 µs stale (the reuse window), and never ahead of
            // the real clock by more than the rate's error could make it.
            assert!(t + 2_000 >= before, "{} ns stale", before - t);
            assert!(t <= after + 2_000, "{} ns ahead", t - after);
            last = t;
        }
        #[cfg(target_arch = "x86_64")]
        if tsc_is_steady() {
            assert_ne!(clock.ns_per_tick, 0, "the TSC rate was never measured");
        }
    }
}

/// Asks the CPU to move the cache line at `ptr` from this core's private
/// caches to the shared last-level cache (CLDEMOTE), so that the next core
/// to read it finds it there rather than snooping it out of ours. A hint:
/// it never faults and never changes memory, and it is a NOP on CPUs
/// without it (its encoding, `0F 1C /0`, is in the reserved-NOP space).
#[inline(always)]
pub(crate) fn demote(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: CLDEMOTE does not access memory architecturally and never
    // faults; on CPUs without it the same bytes are a NOP. It touches no
    // register but the address operand, no flags and no stack.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1c, 0x00", in("rax") ptr, options(nostack, preserves_flags))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Asks the CPU to fetch the cache line at `ptr` for writing (PREFETCHW),
/// so that a later store does not wait for other cores to give it up. A
/// hint: it never faults and never changes memory.
#[inline(always)]
pub(crate) fn prefetch_write(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch instructions do not access memory architecturally;
    // any address, valid or not, is allowed.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_ET0 }>(ptr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}
