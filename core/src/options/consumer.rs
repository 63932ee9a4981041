//! A consumer's options, and where a group starts or seeks to.

use std::time::Duration;

/// Where a new group, or a seek, starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Start {
    /// The oldest message the queue still retains.
    #[default]
    Earliest,
    /// Only messages published from now on.
    Latest,
    /// From this seq (clamped to what is retained and what exists).
    Seq(u64),
}

/// Where [`Consumer::seek`](crate::Consumer::seek) moves a group.
///
/// **What can be sought back to.** Without a journal, the ring retains
/// the messages from `stats().oldest_seq` (the slowest group's cursor when
/// a producer last needed room) to `next_seq`: a slot below it may be
/// written again as soon as a producer needs it, so once every group has
/// read a message it is not kept for replay, and after a busy stretch a
/// caught-up queue retains only a few (as few as an eighth of the ring).
/// A group that must be able to replay keeps its own cursor back (a group
/// created and never read retains everything for it), or the queue gets a
/// journal ([`Options::journal`](crate::Options::journal)), whose window
/// is its retention. A seek to a seq or time before the window is clamped
/// to `oldest_seq`: the call returns the seq the group will really receive
/// next, so a caller compares it with what it asked (the CLI says so on
/// stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seek {
    /// The oldest retained message.
    Earliest,
    /// After the newest message.
    Latest,
    /// This seq (clamped to the retained range: see above).
    Seq(u64),
    /// The first retained message published at or after this CLOCK_REALTIME
    /// time in nanoseconds.
    Time(u64),
}

/// How a consumer acknowledges messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ack {
    /// At-most-once: a message is finished for the group when it is
    /// received. One consumer per group at a time; the fastest path.
    #[default]
    Auto,
    /// At-least-once: each message is leased to one of any number of
    /// competing consumers until it is acked; a nack, a lease that runs out
    /// or the death of the consumer's process delivers it again; after
    /// `max_deliveries` it goes to the dead-letter queue.
    Manual,
}

/// What a nack does with a message (ack=manual).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nack {
    /// Deliver it again as soon as possible (to any consumer of the group).
    Requeue,
    /// Deliver it again, not before this delay.
    RequeueAfter(Duration),
    /// Move it to the dead-letter queue now.
    DeadLetter,
}

/// Options of a consumer.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConsumerOptions {
    /// Where the group starts if this consumer creates it (default
    /// earliest). Ignored for a group that exists.
    pub start: Start,
    /// Auto (default) or manual acknowledgement. A group's live consumers
    /// all use the same mode.
    pub ack: Ack,
    /// How `receive`, `receive_timeout` and `receive_batch` wait when
    /// nothing is ready (default [`Wait::SpinFutex`]).
    pub wait: Wait,
    /// Whether a group that does not exist is created (at `start`):
    /// `Some(true)` creates it; `Some(false)` refuses it with `NotFound`,
    /// so that a typo makes no group (a new group keeps every message
    /// until it reads it, and may hold the ring full). `None`, the default
    /// for now, creates it and says so on stderr: creating a group without
    /// being asked is deprecated, and a later version will refuse a
    /// missing group unless `create(true)`.
    pub create: Option<bool>,
}

/// How a consumer waits for a message. `try_receive` never waits: a loop
/// around it is a busy poll whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// Poll without pause: the lowest latency, and a whole core while
    /// waiting, however long.
    BusySpin,
    /// Spin a little, then give the core away (`sched_yield`) between
    /// polls: near busy-spin latency while nothing else wants the core, but
    /// a waiting consumer still shows as busy.
    SpinYield,
    /// Spin, yield, then sleep on a futex until a producer wakes it (the
    /// default): an idle consumer uses next to no CPU; the first message
    /// after a sleep pays for a wake-up.
    #[default]
    SpinFutex,
}

impl ConsumerOptions {
    /// Defaults: start earliest, ack=auto, wait spin-then-futex.
    pub fn new() -> ConsumerOptions {
        ConsumerOptions::default()
    }
    /// Where the group starts if it does not exist yet.
    pub fn start(mut self, start: Start) -> ConsumerOptions {
        self.start = start;
        self
    }
    /// Auto or manual acknowledgement.
    pub fn ack(mut self, ack: Ack) -> ConsumerOptions {
        self.ack = ack;
        self
    }
    /// How to wait for a message (default [`Wait::SpinFutex`]).
    pub fn wait(mut self, wait: Wait) -> ConsumerOptions {
        self.wait = wait;
        self
    }
    /// Create the group if it does not exist (`true`), or refuse a
    /// missing group with `NotFound` (`false`); see [`create`](Self::create).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{ConsumerOptions, Error, Options, Queue};
    /// let q = Queue::create("doc-create", &Options::new().dir(dir.path()).slots(8))?;
    /// let strict = ConsumerOptions::new().create(false);
    /// assert!(matches!(q.consumer("audti", strict), Err(Error::NotFound(_))));
    /// q.consumer("audit", ConsumerOptions::new().create(true))?; // on purpose
    /// assert_eq!(q.groups().len(), 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn create(mut self, create: bool) -> ConsumerOptions {
        self.create = Some(create);
        self
    }
}
