//! The metadata a producer attaches to a message: its type, correlation
//! id, idempotency key, ordering key, headers and time to live.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::record::envelope::Headers;

/// Metadata a producer attaches to a message. It borrows the ordering
/// key and the headers from the caller (`'a`): building one allocates
/// nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta<'a> {
    /// The user's schema/type tag.
    pub type_id: u32,
    /// The user's id, for tracing.
    pub correlation_id: u64,
    /// A 64-bit hash of the idempotency key, if any (see [`Meta::key`]).
    pub key: Option<u64>,
    /// The ordering key, if any (see [`Meta::ordering_key`]).
    pub ordering_key: Option<&'a [u8]>,
    /// The headers (see [`Meta::header`]).
    pub headers: Headers<'a>,
    /// How long the message lives (see [`Meta::ttl`]).
    pub ttl: Option<Duration>,
    /// How long after its publish the message is delivered (see
    /// [`Meta::delay`]).
    pub delay: Option<Duration>,
    /// When the message is delivered (see [`Meta::deliver_at`]).
    pub deliver_at: Option<SystemTime>,
}

/// The longest delay a message may be scheduled with, and the furthest
/// ahead a [`Meta::deliver_at`] may be: ten years.
pub const MAX_DELAY: Duration = Duration::from_secs(3650 * 86_400);

impl Meta<'static> {
    /// Empty metadata, as a constant: the unkeyed publishes pass a
    /// reference to it rather than build the (header-sized) value on
    /// every call.
    pub(crate) const NONE: Meta<'static> = Meta {
        type_id: 0,
        correlation_id: 0,
        key: None,
        ordering_key: None,
        headers: Headers::new(),
        ttl: None,
        delay: None,
        deliver_at: None,
    };
}

impl<'a> Meta<'a> {
    /// Empty metadata.
    pub fn new() -> Meta<'a> {
        Meta::default()
    }
    /// Sets the type tag.
    pub fn type_id(mut self, type_id: u32) -> Meta<'a> {
        self.type_id = type_id;
        self
    }
    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: u64) -> Meta<'a> {
        self.correlation_id = id;
        self
    }
    /// Sets the ordering key (1 to [`MAX_ORDERING_KEY`](crate::MAX_ORDERING_KEY) bytes): in an
    /// ack=manual group, a message with a key is leased only when no
    /// earlier message with the same key is unfinished in that group, so
    /// competing consumers keep each key's order while different keys go
    /// in parallel. The key is stored with the message (in its slot,
    /// counted against `slot_size`) and read back by every consumer
    /// ([`Message::ordering_key`](crate::Message::ordering_key)). It is not
    /// the idempotency key ([`Meta::key`]).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Meta, Options, Queue};
    /// let q = Queue::create("doc-okeys", &Options::new().dir(dir.path()).slots(8))?;
    /// q.create_group("g", shmq::Start::Earliest)?;
    /// let mut p = q.producer()?;
    /// p.publish_with(b"paid", &Meta::new().ordering_key("customer-7"))?;
    /// let mut c = q.consumer("g", shmq::ConsumerOptions::new())?;
    /// assert_eq!(c.receive()?.ordering_key(), Some(&b"customer-7"[..]));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ordering_key<K: AsRef<[u8]> + ?Sized>(mut self, key: &'a K) -> Meta<'a> {
        self.ordering_key = Some(key.as_ref());
        self
    }
    /// Appends a header: a name (1 to [`MAX_HEADER_NAME`](crate::MAX_HEADER_NAME) bytes of UTF-8)
    /// and a value of bytes, kept in order (names may repeat), at most
    /// [`MAX_HEADERS`](crate::MAX_HEADERS) per message. Headers are stored in the slot with
    /// the payload (counted against `slot_size`), read in place by every
    /// consumer ([`Message::headers`](crate::Message::headers)), and kept
    /// by the spill, the journal and the dead-letter queue.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Meta, Options, Queue};
    /// let q = Queue::create("doc-headers", &Options::new().dir(dir.path()).slots(8))?;
    /// q.create_group("g", shmq::Start::Earliest)?;
    /// let mut p = q.producer()?;
    /// let meta = Meta::new()
    ///     .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    ///     .header("content-type", "application/json");
    /// p.publish_with(br#"{"total": 42}"#, &meta)?;
    /// let mut c = q.consumer("g", shmq::ConsumerOptions::new())?;
    /// let m = c.receive()?;
    /// assert_eq!(m.header("content-type"), Some(&b"application/json"[..]));
    /// assert_eq!(m.headers().count(), 2);
    /// assert_eq!(m.payload(), br#"{"total": 42}"#);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn header<V: AsRef<[u8]> + ?Sized>(mut self, name: &'a str, value: &'a V) -> Meta<'a> {
        self.headers.push(name, value.as_ref());
        self
    }
    /// Sets the message's time to live: a group that has not finished it
    /// `ttl` after its publish is not given it any more. It goes to that
    /// group's dead-letter queue with reason `expired`, or, where the queue
    /// says [`OnExpiry::Discard`](super::OnExpiry::Discard), is dropped and counted in the group's
    /// `messages_expired` — never silently. A message already being
    /// processed when it expires is not taken back from its worker. With a
    /// queue default too ([`Options::message_ttl`](super::Options::message_ttl)), the shorter applies.
    /// The expiry travels with the message (in its envelope, as an ordering
    /// key does), so it is kept by the spill, the journal and the
    /// dead-letter queue; a journal replay and a redriven dead letter are
    /// delivered whatever their expiry says.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use shmq::{Meta, Options, Queue};
    /// let q = Queue::create("doc-ttl", &Options::new().dir(dir.path()).slots(8))?;
    /// q.create_group("g", shmq::Start::Earliest)?;
    /// let mut p = q.producer()?;
    /// p.publish_with(b"stale soon", &Meta::new().ttl(Duration::from_millis(1)))?;
    /// p.publish(b"fresh")?;
    /// std::thread::sleep(Duration::from_millis(5));
    /// let mut c = q.consumer("g", shmq::ConsumerOptions::new())?;
    /// assert_eq!(c.receive()?.payload(), b"fresh");
    /// assert_eq!(q.dlq().list()?[0].reason, shmq::Reason::Expired);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Meta<'a> {
        self.ttl = Some(ttl);
        self
    }
    /// Delays the message: it reaches no group until `delay` after its
    /// publish (SQS's `DelaySeconds`, Pulsar's `deliverAfter`). Until then
    /// it waits in the queue's schedule, on disk in the queue's store
    /// directory (the spill directory; made on first use), so it survives
    /// the crash of every process. The publish returns the message's
    /// *schedule id* (see [`Queue::scheduled`](crate::Queue::scheduled),
    /// [`Queue::cancel_scheduled`](crate::Queue::cancel_scheduled)); the
    /// message gets its seq when it is due and enters the ring, like a
    /// message published at that moment — so an ack=auto group's order is
    /// the order messages became due, a delayed keyed message holds its
    /// ordering key only from then on, and its time to live ([`Meta::ttl`])
    /// counts from then. It is moved into the ring by whichever process
    /// passes by first (a consumer waiting on the queue wakes for it; no
    /// process is dedicated to it). A delay of zero publishes at once.
    /// Replaces a [`deliver_at`](Self::deliver_at) given before.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::{Duration, Instant};
    /// use shmq::{ConsumerOptions, Meta, Options, Queue};
    /// let q = Queue::create("doc-delay", &Options::new().dir(dir.path()).slots(8).spill_dir(dir.path().join("store")))?;
    /// let mut c = q.consumer("g", ConsumerOptions::new())?;
    /// let mut p = q.producer()?;
    /// let t = Instant::now();
    /// let id = p.publish_with(b"later", &Meta::new().delay(Duration::from_millis(50)))?;
    /// p.publish(b"now")?;
    /// assert_eq!(q.stats().scheduled, 1);
    /// assert_eq!(c.receive()?.payload(), b"now");
    /// assert_eq!(c.receive()?.payload(), b"later");
    /// assert!(t.elapsed() >= Duration::from_millis(50));
    /// # let _ = id;
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn delay(mut self, delay: Duration) -> Meta<'a> {
        self.delay = Some(delay);
        self.deliver_at = None;
        self
    }
    /// Schedules the message for a time: it reaches no group before `at`
    /// (Pulsar's `deliverAt`, Service Bus's scheduled messages). A time
    /// already past publishes at once. See [`delay`](Self::delay), which
    /// this replaces if given before.
    pub fn deliver_at(mut self, at: SystemTime) -> Meta<'a> {
        self.deliver_at = Some(at);
        self.delay = None;
        self
    }
    /// When the message is due (CLOCK_REALTIME ns), if it is scheduled:
    /// its own delay or time, else the queue's `default_delay_ns` (0:
    /// none). `None`: publish now.
    #[inline(always)]
    pub(crate) fn due_ns(&self, now: u64, default_delay_ns: u64) -> Option<u64> {
        let due = match (self.delay, self.deliver_at) {
            (Some(d), _) => now.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
            (None, Some(at)) => at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64),
            (None, None) if default_delay_ns > 0 => now.saturating_add(default_delay_ns),
            (None, None) => return None,
        };
        (due > now).then_some(due)
    }
    /// Whether the message is scheduled by its own metadata.
    #[inline(always)]
    pub(crate) fn scheduled(&self) -> bool {
        self.delay.is_some() || self.deliver_at.is_some()
    }
    /// Whether the message needs an envelope (an ordering key, headers or
    /// a time to live).
    #[inline(always)]
    pub(crate) fn enveloped(&self) -> bool {
        self.ordering_key.is_some() || !self.headers.is_empty() || self.ttl.is_some()
    }
    /// The CLOCK_REALTIME ns after which the message expires, if it has a
    /// time to live: from `now`, saturating.
    pub(crate) fn expires_ns(&self, now: u64) -> Option<u64> {
        self.ttl
            .map(|t| now.saturating_add(t.as_nanos().min(u64::MAX as u128) as u64))
    }
    /// Sets an idempotency key: publishing again with a key the queue
    /// remembers (see [`Options::dedup_window`](super::Options::dedup_window)) enqueues nothing and
    /// returns the first message's seq — an exactly-once effect for a
    /// producer that retries after a crash or a timeout.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Meta, Options, Queue};
    /// let q = Queue::create("doc-keys", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut p = q.producer()?;
    /// let first = p.publish_with(b"charge #42", &Meta::new().key("order-42"))?;
    /// let again = p.publish_with(b"charge #42", &Meta::new().key("order-42"))?;
    /// assert_eq!(first, again);
    /// assert_eq!(q.stats().published, 1);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Meta<'a> {
        self.key = Some(key_hash(key.as_ref()));
        self
    }
}

/// The 64-bit hash an idempotency key is remembered by (never 0).
pub(crate) fn key_hash(k: &[u8]) -> u64 {
    let hi = crc32c::crc32c(k) as u64;
    let lo = crc32c::crc32c_append(0x9e37_79b9, k) as u64;
    (hi << 32 | lo).max(1)
}
