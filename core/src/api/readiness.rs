//! The runtime-agnostic readiness handle: a file descriptor an event loop
//! (epoll, tokio, asyncio, libuv, ...) watches for a consumer's next
//! message or a producer's free room, and the rules that make it safe.
//!
//! The loop is always the same:
//!
//! 1. try (`try_receive`, a publish that would not block); done if it went;
//! 2. [`Consumer::arm`](crate::Consumer::arm) (or
//!    [`Producer::arm`](crate::Producer::arm)): [`Arm::Ready`] means try
//!    again now; [`Arm::Waiting`] means wait until the fd is readable, or
//!    until `recheck_after` if it says so;
//! 3. [`Readiness::drain`] once it is readable, and go to 1.
//!
//! The rules: the fd stays readable until drained; one arm brings at most
//! one ring; it is correct with level- and edge-triggered polling (the fd
//! goes from not readable to readable at each ring, and `drain` empties
//! it); a wake-up may be spurious (a ring for an arm already satisfied),
//! and trying again costs nothing. No timer runs while a queue is idle:
//! `recheck_after` is `None` unless something only time can change is
//! pending (a lease of the group's that may run out, a producer that may
//! have died mid-publish, a spill or a journal to tend).
//!
//! Nothing here costs the fast path: a producer makes a system call per
//! publish only while some waiter is armed, one `sendto(2)` per armed
//! waiter. See `protocol/doorbell.rs` for the protocol and `os/doorbell.rs`
//! for the doorbell itself.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::DOORBELLS;
use crate::open_queue::OpenQueue;
use crate::os;
use crate::protocol::doorbell;

/// What an arm found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// There may be something already: try again now (the handle is not
    /// armed).
    Ready,
    /// Armed: wait until the handle's fd is readable, then
    /// [`Readiness::drain`] and try again. If `recheck_after` is set, try
    /// again after it even if nothing rang: something only time changes
    /// is pending.
    Waiting {
        /// Longest wait before trying again anyway (`None`: no timer).
        recheck_after: Option<Duration>,
    },
}

/// Which condition a handle waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum For {
    /// A message (a consumer).
    Data,
    /// Free room in the ring (a producer).
    Space,
}

/// A readiness handle: a file descriptor readable when its consumer may
/// have a message (or its producer room), once armed. Get one from
/// [`Consumer::readiness`](crate::Consumer::readiness) or
/// [`Producer::readiness`](crate::Producer::readiness); the module
/// documentation above gives the loop.
///
/// With async-io (smol), for example:
///
/// ```no_run
/// # async fn f(mut consumer: shmq::Consumer) -> Result<(), Box<dyn std::error::Error>> {
/// # struct Async<T>(T);
/// # impl<T> Async<T> { fn new(t: T) -> std::io::Result<Self> { Ok(Async(t)) }
/// #   async fn readable(&self) -> std::io::Result<()> { Ok(()) } }
/// let fd = Async::new(consumer.readiness()?.as_fd().try_clone_to_owned()?)?;
/// loop {
///     if let Some(m) = consumer.try_receive()? {
///         println!("{:?}", m.payload());
///         continue;
///     }
///     if let shmq::Arm::Waiting { .. } = consumer.arm()? {
///         fd.readable().await?; // (with a timer for `recheck_after`)
///         consumer.readiness()?.drain();
///     }
/// }
/// # }
/// # use std::os::fd::AsFd;
/// ```
pub struct Readiness {
    bell: os::doorbell::Doorbell,
    index: usize,
    what: For,
    shared: Arc<OpenQueue>,
}

impl Readiness {
    /// A doorbell bound and entered in the queue's table for `what`.
    pub(crate) fn new(shared: &Arc<OpenQueue>, what: For) -> Result<Readiness> {
        let bell =
            os::doorbell::Doorbell::bind(&shared.bells, os::process::pid()).map_err(|e| {
                Error::io(
                    "making an async waiter's doorbell (a unix socket in the queue's directory)",
                    e,
                )
            })?;
        let (entries, armed) = table(shared, what);
        // An entry's owner is dead when its doorbell is gone: asked by
        // ringing it (a spurious wake-up for a live one), which holds in
        // any PID namespace. Asked only when the table is full.
        let index = doorbell::claim(entries, armed, bell.id(), |v| {
            !os::doorbell::ring(&shared.bells, v)
        })
        .ok_or_else(|| {
            Error::Busy(format!(
                "queue {:?} has {DOORBELLS} async waiters of this kind already (live \
                 processes' consumers or producers with a readiness handle); drop one",
                shared.name
            ))
        })?;
        Ok(Readiness {
            bell,
            index,
            what,
            shared: shared.clone(),
        })
    }

    /// Reads every ring waiting, so the fd stops being readable, and
    /// returns how many there were. Call it once the fd was readable,
    /// before trying again.
    pub fn drain(&self) -> usize {
        self.bell.drain()
    }

    /// Arms it unless `ready` (SeqCst loads of what its waiter waits for)
    /// already holds: the doorbell protocol's waiter half.
    pub(crate) fn arm(&self, ready: impl FnOnce() -> bool) -> bool {
        let (_, armed) = table(&self.shared, self.what);
        doorbell::arm(armed, self.index, || ready().then_some(())).is_none()
    }

    /// Takes the arm back (a wait given up). `true` if no ring was taken
    /// for it.
    pub(crate) fn disarm(&self) -> bool {
        let (_, armed) = table(&self.shared, self.what);
        doorbell::disarm(armed, self.index)
    }
}

fn table(
    shared: &OpenQueue,
    what: For,
) -> (
    &[crate::loom::AtomicU64; DOORBELLS],
    &crate::loom::AtomicU64,
) {
    let hdr = shared.header();
    match what {
        For::Data => (&hdr.doorbells.data, &hdr.ring.data_armed),
        For::Space => (&hdr.doorbells.space, &hdr.ring.space_armed),
    }
}

impl AsFd for Readiness {
    /// Readable once rung; see the type's documentation.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.bell.as_fd()
    }
}

impl std::os::fd::AsRawFd for Readiness {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.bell.as_fd())
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("queue", &self.shared.name)
            .field("for", &self.what)
            .field("fd", &std::os::fd::AsRawFd::as_raw_fd(self))
            .finish()
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        let (entries, armed) = table(&self.shared, self.what);
        doorbell::release(entries, armed, self.index, self.bell.id());
    }
}
