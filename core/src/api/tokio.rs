//! The async API on tokio (cargo feature `tokio`): a consumer awaits its
//! next message and a producer awaits room, without blocking a runtime
//! thread. Both are the loop of [`Readiness`](crate::Readiness) (try, arm,
//! await the doorbell's fd, drain), with the fd registered with tokio's
//! reactor only for the wait itself: a consumer that finds a message
//! makes no system call.
//!
//! They must be awaited within a tokio runtime (with its I/O and time
//! drivers: `Runtime::new()`, `#[tokio::main]`, or a builder's
//! `enable_all()`), like tokio's own sockets.
//!
//! There is no `Stream` adapter: a [`Delivery`] borrows its consumer (the
//! payload stays in the slot until it is finished), which a `Stream`'s
//! items cannot do; `while let` over `receive_async` is the loop.
//!
//! One waiter per handle: these take `&mut self`, so two tasks cannot
//! await one consumer (or one producer) at once — the borrow checker
//! refuses it. Tasks that share work take a consumer each (ack=manual
//! consumers of one group compete for its messages) or a producer each
//! (producers are cheap); behind an `Arc<tokio::sync::Mutex<..>>` they
//! wait in turn. (Python's `receive_async` lets several tasks await one
//! handle, each woken in turn.)
//!
//! Cancel-safe: dropping one of these futures (a `select!` branch that
//! lost, a `timeout` that ran out) loses no message and takes the arm
//! back; the next call starts afresh.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::api::consumer::{Batch, Consumer, Delivery};
use crate::api::producer::Producer;
use crate::api::readiness::{Arm, Readiness};
use crate::error::{Error, Result};
use crate::options::Meta;

/// A readiness handle's fd, borrowed for one registration with tokio's
/// reactor.
struct Fd<'a>(BorrowedFd<'a>);

impl AsRawFd for Fd<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Takes the arm back if the wait is dropped before its ring came.
struct Disarm<'a>(&'a Readiness);

impl Drop for Disarm<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

/// What an async loop does with an arm's answer, `readiness` being the
/// handle armed. [`Arm::Waiting`]: awaits its ring (or its
/// `recheck_after`, cut to `at_most`), then drains it. [`Arm::Ready`]:
/// tries again, but lets the runtime run its other tasks and timers once
/// this task has had its share: a loop whose try and arm disagree (a
/// queue changing under it, or a garbled one) must not hold the
/// runtime's thread, where the consumer that would end the disagreement,
/// or the `timeout` around this future, may be waiting. Free while the
/// task's budget lasts (tokio's cooperative budget).
async fn after_arm(arm: Arm, readiness: &Readiness, at_most: Option<Duration>) -> Result<()> {
    match arm {
        Arm::Waiting { recheck_after } => {
            let d = match at_most {
                None => recheck_after,
                Some(cap) => Some(recheck_after.map_or(cap, |r| r.min(cap))),
            };
            wait(readiness, d).await
        }
        Arm::Ready => {
            tokio::task::consume_budget().await;
            Ok(())
        }
    }
}

/// Awaits the ring of the armed `readiness` (or `recheck_after`), then
/// drains it.
async fn wait(readiness: &Readiness, recheck_after: Option<Duration>) -> Result<()> {
    let _disarm = Disarm(readiness);
    // SAFETY: the fd is the readiness handle's socket, borrowed for the
    // `AsyncFd`'s whole life (it is dropped at the end of this function,
    // and `readiness` outlives the call): it stays open and the same.
    let fd = unsafe { AsyncFd::register_with_interest(Fd(readiness.as_fd()), Interest::READABLE) }
        .map_err(|e| Error::io("registering a readiness handle with tokio", e.into()))?;
    let readable = fd.readable();
    match recheck_after {
        Some(d) => {
            let _ = tokio::time::timeout(d, readable).await;
        }
        None => {
            readable
                .await
                .map_err(|e| Error::io("waiting on a readiness handle", e))?
                .clear_ready();
        }
    }
    readiness.drain();
    Ok(())
}

impl Consumer {
    /// Waits for the next message without blocking the runtime: the
    /// async [`receive`](Consumer::receive). Cancel-safe (see the module
    /// documentation).
    ///
    /// ```no_run
    /// # async fn f(queue: shmq::Queue) -> shmq::Result<()> {
    /// let mut consumer = queue.consumer("billing", Default::default())?;
    /// loop {
    ///     let m = consumer.receive_async().await?;
    ///     println!("{} {:?}", m.seq(), m.payload());
    /// }
    /// # }
    /// ```
    #[inline]
    pub fn receive_async(&mut self) -> ReceiveAsync<'_> {
        ReceiveAsync(Step::Start(self))
    }

    /// The waiting half of [`receive_async`](Consumer::receive_async): made
    /// only when its first poll found nothing.
    async fn receive_waiting(&mut self) -> Result<Delivery<'_>> {
        let got = loop {
            if let Some(got) = self.poll_for_async()? {
                break got;
            }
            let arm = self.arm()?;
            after_arm(arm, self.readiness()?, None).await?;
        };
        self.deliver_got(got)
    }

    /// [`receive_async`](Consumer::receive_async) for at most `timeout`:
    /// `None` when nothing came.
    pub async fn receive_async_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Delivery<'_>>> {
        let deadline = std::time::Instant::now() + timeout;
        let got = loop {
            if let Some(got) = self.poll_for_async()? {
                break Some(got);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break None;
            }
            let arm = self.arm()?;
            after_arm(arm, self.readiness()?, Some(left)).await?;
        };
        match got {
            Some(got) => self.deliver_got(got).map(Some),
            None => Ok(None),
        }
    }

    /// Waits for at least one message, then takes up to `max` ready ones
    /// at once: the async [`receive_batch`](Consumer::receive_batch)
    /// (ack=auto; the same errors). Cancel-safe.
    pub async fn receive_batch_async(&mut self, max: usize) -> Result<Batch<'_>> {
        while !self.has_message() {
            let arm = self.arm_for(false)?;
            after_arm(arm, self.readiness()?, None).await?;
        }
        self.receive_batch(max, Duration::ZERO)
    }
}

/// The future of [`Consumer::receive_async`]. Its first poll is
/// `try_receive`'s own fast path (no allocation, no system call); only if
/// nothing is there does it make the waiting half (boxed: one allocation
/// per wait, on the way to sleep). Cancel-safe: dropped, it takes its arm
/// back.
#[must_use = "futures do nothing unless awaited"]
pub struct ReceiveAsync<'a>(Step<'a>);

type Waiting<'a> = Pin<Box<dyn Future<Output = Result<Delivery<'a>>> + Send + 'a>>;

enum Step<'a> {
    Start(&'a mut Consumer),
    Waiting(Waiting<'a>),
    Done,
}

impl<'a> Future for ReceiveAsync<'a> {
    type Output = Result<Delivery<'a>>;

    // Inline: the ready case is `try_receive`'s fast path and should cost
    // what it does, in the caller's frame.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unpin: the state is a reference or a box.
        let this = self.get_mut();
        if let Step::Waiting(f) = &mut this.0 {
            let r = f.as_mut().poll(cx);
            if r.is_ready() {
                this.0 = Step::Done;
            }
            return r;
        }
        match std::mem::replace(&mut this.0, Step::Done) {
            // The ack=auto fast path first, as `try_receive` takes it.
            Step::Start(c) => match c.poll_ready_auto() {
                Some(pos) => Poll::Ready(c.deliver_auto(pos)),
                None => this.poll_slow(c, cx),
            },
            Step::Waiting(_) => unreachable!("handled above"),
            Step::Done => panic!("ReceiveAsync polled after it completed"),
        }
    }
}

impl<'a> ReceiveAsync<'a> {
    /// The first poll past the ack=auto fast path: ack=manual, a replay,
    /// redriven dead letters, or nothing there yet.
    #[inline(never)]
    fn poll_slow(
        &mut self,
        c: &'a mut Consumer,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Delivery<'a>>> {
        match c.poll_for_async() {
            Err(e) => Poll::Ready(Err(e)),
            Ok(Some(got)) => Poll::Ready(c.deliver_got(got)),
            Ok(None) => self.start_waiting(c, cx),
        }
    }

    /// Nothing was there: the waiting half, boxed, polled once.
    #[cold]
    #[inline(never)]
    fn start_waiting(
        &mut self,
        c: &'a mut Consumer,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Delivery<'a>>> {
        let mut f: Waiting<'a> = Box::pin(c.receive_waiting());
        let r = f.as_mut().poll(cx);
        if r.is_pending() {
            self.0 = Step::Waiting(f);
        }
        r
    }
}

impl Producer {
    /// Publishes `payload`, waiting for room without blocking the runtime:
    /// the async [`publish`](Producer::publish). Cancel-safe: dropped while
    /// waiting, nothing was published.
    pub async fn publish_async(&mut self, payload: &[u8]) -> Result<u64> {
        self.publish_with_async(payload, &Meta::NONE).await
    }

    /// [`publish_async`](Producer::publish_async) with metadata.
    pub async fn publish_with_async(&mut self, payload: &[u8], meta: &Meta<'_>) -> Result<u64> {
        loop {
            match self.try_publish_with(payload, meta) {
                Err(Error::Timeout) => {}
                other => return other,
            }
            let arm = self.arm(1)?;
            after_arm(arm, self.readiness()?, None).await?;
        }
    }
}
