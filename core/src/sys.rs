//! Everything that talks to the operating system: queue files, the shared
//! mapping, futexes, process identity and clocks. The rest of the crate sees
//! only safe functions and one raw pointer (the mapping's base).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
