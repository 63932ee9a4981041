//! The readiness calls, one body for both handles: a consumer's fd turns
//! readable when a message may have come, a producer's when consumers may
//! have freed room. `shmq_consumer_fd`/`_arm`/`_drain`/`_disarm` and
//! `shmq_producer_fd`/`_arm`/`_drain`/`_disarm` stay where their handles
//! are (their C documentation is there) and call [`fd`], [`arm`],
//! [`drain`] and [`disarm`] here, which differ by handle only in what
//! [`Waitable`] says.

use std::os::fd::AsRawFd;

use shmq::{Arm, Readiness};

use crate::boundary::{Out, guard, handle, out, out_opt};
use crate::status::{CallError, shmq_status};

/// The core handle a readiness call goes to.
pub(crate) enum Waiter<'a> {
    /// Waits for a message.
    Consumer(&'a mut shmq::Consumer),
    /// Waits for room.
    Producer(&'a mut shmq::Producer),
}

impl Waiter<'_> {
    /// The readiness handle (made by the first call).
    fn readiness(&mut self) -> shmq::Result<&Readiness> {
        match self {
            Waiter::Consumer(c) => c.readiness(),
            Waiter::Producer(p) => p.readiness(),
        }
    }

    /// Arms the fd: for the next message, or until the ring has room for
    /// `count` messages (a consumer waits for one).
    fn arm(&mut self, count: u64) -> shmq::Result<Arm> {
        match self {
            Waiter::Consumer(c) => c.arm(),
            Waiter::Producer(p) => p.arm(count),
        }
    }

    /// Takes back an arm that will not be waited for.
    fn disarm(&mut self) {
        match self {
            Waiter::Consumer(c) => c.disarm(),
            Waiter::Producer(p) => p.disarm(),
        }
    }
}

/// A C handle with a readiness fd: `shmq_consumer`, `shmq_producer`.
pub(crate) trait Waitable {
    /// The core handle, made ready for a readiness call: the consumer ends
    /// its current delivery (as a receive does), the producer refuses
    /// while a reservation is pending (`SHMQ_BUSY`).
    fn waiter(&mut self) -> Result<Waiter<'_>, CallError>;

    /// Where the handle keeps its fd once it is made, if it keeps it (the
    /// consumer: asking again then leaves its delivery alone); `None` for
    /// a handle that asks its core handle at every call (the producer).
    fn kept_fd(&mut self) -> Option<&mut Option<i32>>;
}

/// The handle's fd: the one it keeps, else its core handle's (made on the
/// first call, and kept by a handle that keeps it).
fn fd_of(h: &mut impl Waitable) -> Result<i32, CallError> {
    if let Some(Some(fd)) = h.kept_fd() {
        return Ok(*fd);
    }
    let fd = h.waiter()?.readiness()?.as_raw_fd();
    if let Some(kept) = h.kept_fd() {
        *kept = Some(fd);
    }
    Ok(fd)
}

/// The body of `shmq_consumer_fd` and `shmq_producer_fd`.
///
/// # Safety
/// `ptr` is NULL or a live handle not used by another thread; `fd_out`
/// NULL or writable.
pub(crate) unsafe fn fd<H: Waitable>(
    ptr: *mut H,
    name: &'static str,
    fd_out: *mut i32,
) -> shmq_status {
    guard(|| {
        let fd_out = out(fd_out, "fd_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle(ptr, name) }?;
        let fd = fd_of(h)?;
        // SAFETY: checked writable out-parameter.
        unsafe { fd_out.write(fd) };
        Ok(())
    })
}

/// The body of `shmq_consumer_arm` and `shmq_producer_arm` (`count`: the
/// messages' room a producer waits for).
///
/// # Safety
/// As for [`fd`]; `armed_out` NULL or writable; `recheck_ns_out` NULL or
/// writable.
pub(crate) unsafe fn arm<H: Waitable>(
    ptr: *mut H,
    name: &'static str,
    count: u64,
    armed_out: *mut i32,
    recheck_ns_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let armed_out = out(armed_out, "armed_out")?;
        let recheck_out = out_opt(recheck_ns_out, "recheck_ns_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle(ptr, name) }?;
        let arm = h.waiter()?.arm(count)?;
        // A handle that keeps its fd makes it now if it has not, so that
        // asking for it later does not end what the next receive gets.
        if h.kept_fd().is_some() {
            fd_of(h)?;
        }
        write_arm(arm, armed_out, recheck_out);
        Ok(())
    })
}

/// Writes an arm's result as the C calls give it: `*armed_out` 1 or 0,
/// `*recheck_ns_out` (if asked for) the longest wait or
/// `SHMQ_WAIT_FOREVER`.
fn write_arm(arm: Arm, armed_out: Out<i32>, recheck_out: Option<Out<u64>>) {
    let (armed, recheck) = match arm {
        Arm::Ready => (0, 0),
        Arm::Waiting { recheck_after } => (
            1,
            recheck_after.map_or(crate::options::SHMQ_WAIT_FOREVER, |d| {
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
            }),
        ),
    };
    if let Some(o) = recheck_out {
        // SAFETY: checked writable out-parameter (`out_opt`).
        unsafe { o.write(recheck) };
    }
    // SAFETY: checked writable out-parameter (`out`).
    unsafe { armed_out.write(armed) };
}

/// The body of `shmq_consumer_drain` and `shmq_producer_drain`: reads
/// every wake-up waiting on the fd.
///
/// # Safety
/// As for [`fd`].
pub(crate) unsafe fn drain<H: Waitable>(ptr: *mut H, name: &'static str) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(ptr, name) }?;
        h.waiter()?.readiness()?.drain();
        Ok(())
    })
}

/// The body of `shmq_consumer_disarm` and `shmq_producer_disarm`.
///
/// # Safety
/// As for [`fd`].
pub(crate) unsafe fn disarm<H: Waitable>(ptr: *mut H, name: &'static str) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(ptr, name) }?;
        h.waiter()?.disarm();
        Ok(())
    })
}
