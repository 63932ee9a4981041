//! Sleeping on a 32-bit word in shared memory, and waking its sleepers in
//! any process that maps it.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::thread::futex;

/// Sleeps on `word` while it holds `expected`, for at most `timeout`.
/// Not the PRIVATE variant: the waker is usually another process.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // EAGAIN (value changed), EINTR (signal) and ETIMEDOUT are all normal
    // returns for a caller that re-checks its condition.
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes every sleeper on `word`, in any process that maps it; returns how
/// many were woken (1 if the call failed: nothing is known then).
pub(crate) fn wake_all(word: &AtomicU32) -> usize {
    futex::wake(word, futex::Flags::empty(), i32::MAX as u32).unwrap_or(1)
}
