//! Options of a queue and the names of queues and groups; a consumer's
//! options (`consumer.rs`) and a message's metadata (`meta.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::MAX_GROUP_NAME;

mod consumer;
mod meta;

pub use consumer::{Ack, ConsumerOptions, Nack, Seek, Start, Wait};
pub(crate) use meta::key_hash;
pub use meta::{MAX_DELAY, Meta};

/// What a publish does when the ring is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Wait for space (bounded by `publish_timeout`). The default.
    #[default]
    Block,
    /// Fail at once with [`Error::Full`]; nothing is claimed.
    Reject,
    /// Append to segment files on disk (`spill_dir`) and carry on; the
    /// messages come back into the ring, in order, as consumers free it.
    /// When the spill is full too, [`Options::spill_fallback`] applies.
    Spill,
}

impl Overflow {
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            Overflow::Block => 0,
            Overflow::Reject => 1,
            Overflow::Spill => 2,
        }
    }

    pub(crate) fn from_raw(raw: u32) -> Option<Overflow> {
        match raw {
            0 => Some(Overflow::Block),
            1 => Some(Overflow::Reject),
            2 => Some(Overflow::Spill),
            _ => None,
        }
    }
}

/// What happens to a message whose time to live ran out before a group
/// finished it ([`Meta::ttl`], [`Options::message_ttl`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnExpiry {
    /// It goes to the group's dead-letter queue with reason
    /// [`Reason::Expired`](crate::Reason::Expired) (as RabbitMQ's
    /// dead-letter exchange does). The default. Where the dead-letter
    /// queue refuses it (full), it is delivered instead: late, not lost.
    #[default]
    DeadLetter,
    /// It is dropped for the group and counted in its `messages_expired`.
    Discard,
}

impl OnExpiry {
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            OnExpiry::DeadLetter => 0,
            OnExpiry::Discard => 1,
        }
    }

    pub(crate) fn from_raw(raw: u32) -> Option<OnExpiry> {
        match raw {
            0 => Some(OnExpiry::DeadLetter),
            1 => Some(OnExpiry::Discard),
            _ => None,
        }
    }
}

impl std::str::FromStr for OnExpiry {
    type Err = Error;
    fn from_str(s: &str) -> Result<OnExpiry> {
        match s {
            "dead-letter" | "dead_letter" => Ok(OnExpiry::DeadLetter),
            "discard" => Ok(OnExpiry::Discard),
            other => Err(Error::InvalidOption(format!(
                "on_expiry must be dead-letter or discard, got {other:?}"
            ))),
        }
    }
}

impl std::fmt::Display for OnExpiry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnExpiry::DeadLetter => "dead-letter",
            OnExpiry::Discard => "discard",
        })
    }
}

impl std::str::FromStr for Overflow {
    type Err = Error;
    fn from_str(s: &str) -> Result<Overflow> {
        match s {
            "block" => Ok(Overflow::Block),
            "reject" => Ok(Overflow::Reject),
            "spill" => Ok(Overflow::Spill),
            other => Err(Error::InvalidOption(format!(
                "overflow must be block, reject or spill, got {other:?}"
            ))),
        }
    }
}

impl std::fmt::Display for Overflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Overflow::Block => "block",
            Overflow::Reject => "reject",
            Overflow::Spill => "spill",
        })
    }
}

/// Options of a queue. Those that shape the file (`slots`, `slot_size`,
/// `max_groups`, `overflow`, timeouts) apply when it is created and are
/// then read from the file; `dir` applies to every call.
///
/// ```
/// use shmq::{Options, Overflow};
/// let opts = Options::new().slots(1024).slot_size(256).overflow(Overflow::Reject);
/// assert_eq!(opts.get_slots(), 1024);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) dir: Option<PathBuf>,
    /// None: the default (4096), or what `capacity` makes.
    pub(crate) slots: Option<u64>,
    pub(crate) slot_size: u64,
    /// The ring's bytes, which then decide `slots`.
    pub(crate) capacity: Option<u64>,
    pub(crate) max_message_size: Option<u64>,
    pub(crate) max_groups: u32,
    pub(crate) overflow: Overflow,
    pub(crate) lease: Duration,
    pub(crate) max_deliveries: u32,
    /// None: the default (see `Options::dlq_slots`).
    pub(crate) dlq_slots: Option<u32>,
    pub(crate) dedup_window: u64,
    pub(crate) ordering_lanes: u64,
    /// None: the default (`DEFAULT_MAX_IN_FLIGHT`, at most the ring).
    pub(crate) max_in_flight: Option<u64>,
    /// None: messages live until they are finished.
    pub(crate) message_ttl: Option<Duration>,
    pub(crate) on_expiry: OnExpiry,
    pub(crate) delivery_delay: Option<Duration>,
    pub(crate) dedup_ttl: Duration,
    pub(crate) unblock_timeout: Duration,
    pub(crate) mode: u32,
    pub(crate) spill_dir: Option<PathBuf>,
    pub(crate) spill_max_bytes: u64,
    pub(crate) spill_segment_size: u64,
    pub(crate) spill_fallback: Overflow,
    pub(crate) sync: SyncMode,
    pub(crate) journal: Option<Retention>,
    pub(crate) trust: Trust,
}

/// Owners and groups trusted besides this user and root: a queue file or
/// spill directory they own (or, for a group, may write) is used although
/// this user did not make it. See [`Options::trust_owner`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Trust {
    pub owner: Option<u32>,
    pub group: Option<u32>,
}

/// How long a journal keeps messages: by age and by bytes of segment files,
/// whichever is reached first (the oldest segment goes first).
///
/// ```
/// use std::time::Duration;
/// let r = shmq::Retention::new(Duration::from_secs(3600), 1 << 30);
/// assert_eq!(r.max_bytes, 1 << 30);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Messages older than this are deleted (a segment at a time).
    pub max_age: Duration,
    /// Most bytes of journal segment files on disk.
    pub max_bytes: u64,
}

impl Retention {
    /// Keeps messages for `max_age`, in at most `max_bytes` of segments.
    pub fn new(max_age: Duration, max_bytes: u64) -> Retention {
        Retention { max_age, max_bytes }
    }
}

/// When spilled records are flushed to disk (`msync`): the trade-off
/// between publish speed and what survives a machine crash (a process
/// crash loses nothing in any mode: the page cache keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Leave it to the kernel's writeback (the default, fastest).
    #[default]
    Never,
    /// Flush after every n records.
    EveryN(u32),
    /// Flush every record before its publish returns.
    Always,
}

impl SyncMode {
    pub(crate) fn to_raw(self) -> (u32, u32) {
        match self {
            SyncMode::Never => (0, 0),
            SyncMode::EveryN(n) => (1, n),
            SyncMode::Always => (2, 0),
        }
    }

    pub(crate) fn from_raw(mode: u32, every: u32) -> Option<SyncMode> {
        match mode {
            0 => Some(SyncMode::Never),
            1 if every > 0 => Some(SyncMode::EveryN(every)),
            2 => Some(SyncMode::Always),
            _ => None,
        }
    }
}

impl std::str::FromStr for SyncMode {
    type Err = Error;
    /// `never`, `always` or `every-N` (e.g. `every-64`).
    fn from_str(s: &str) -> Result<SyncMode> {
        match s {
            "never" => Ok(SyncMode::Never),
            "always" => Ok(SyncMode::Always),
            other => match other.strip_prefix("every-").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Ok(SyncMode::EveryN(n)),
                _ => Err(Error::InvalidOption(format!(
                    "sync must be never, always or every-N (N > 0), got {other:?}"
                ))),
            },
        }
    }
}

impl std::fmt::Display for SyncMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncMode::Never => f.write_str("never"),
            SyncMode::EveryN(n) => write!(f, "every-{n}"),
            SyncMode::Always => f.write_str("always"),
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dir: None,
            slots: None,
            slot_size: 1024,
            capacity: None,
            max_message_size: None,
            max_groups: 16,
            overflow: Overflow::Block,
            lease: Duration::from_secs(30),
            max_deliveries: 5,
            dlq_slots: None,
            dedup_window: 1024,
            ordering_lanes: 1024,
            max_in_flight: None,
            message_ttl: None,
            on_expiry: OnExpiry::DeadLetter,
            delivery_delay: None,
            dedup_ttl: Duration::from_secs(300),
            unblock_timeout: Duration::from_secs(5),
            mode: 0o600,
            spill_dir: None,
            spill_max_bytes: 1 << 30,
            spill_segment_size: 64 << 20,
            spill_fallback: Overflow::Block,
            sync: SyncMode::Never,
            journal: None,
            trust: Trust::default(),
        }
    }
}

/// The ring's slots when neither `slots` nor `capacity` is given.
const DEFAULT_SLOTS: u64 = 4096;

/// An ack=manual group's in-flight window when none is given (or the
/// ring's slots, if fewer): 3 MiB of lease records a leasing group.
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u64 = 1 << 16;

/// Where spill directories go by default: `/var/tmp/shmq-<uid>`, this
/// user's own (as tmux keeps `/tmp/tmux-<uid>`), so that no other user can
/// have made it, and one user's spill never blocks another's.
pub(crate) fn default_spill_root() -> PathBuf {
    PathBuf::from(format!("/var/tmp/shmq-{}", crate::os::process::uid()))
}

/// The directory used when no `dir` is given: `$SHMQ_DIR`, else `/dev/shm`.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("SHMQ_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from("/dev/shm"),
    }
}

impl Options {
    /// Checks the options that need no file or directory to judge (the
    /// geometry and the spill's are checked where they are used, when the
    /// queue file is made).
    pub(crate) fn check(&self) -> Result<()> {
        self.ring_slots()?;
        if self.mode & !0o777 != 0 || self.mode & 0o600 != 0o600 {
            return Err(Error::InvalidOption(format!(
                "mode must be permission bits including owner read/write (0o600), got {:o}",
                self.mode
            )));
        }
        if !(1..=254).contains(&self.max_deliveries) {
            return Err(Error::InvalidOption(format!(
                "max_deliveries must be from 1 to 254, got {}",
                self.max_deliveries
            )));
        }
        if self.lease.is_zero() {
            return Err(Error::InvalidOption("lease must be more than 0".into()));
        }
        if let Some(t) = self.message_ttl {
            if t < Duration::from_millis(1) || t.as_millis() > u32::MAX as u128 {
                return Err(Error::InvalidOption(format!(
                    "message_ttl must be from 1 ms to {} ms (about 49 days), got {t:?}",
                    u32::MAX
                )));
            }
        }
        if let Some(d) = self.delivery_delay {
            if d.is_zero() || d > crate::options::MAX_DELAY {
                return Err(Error::InvalidOption(format!(
                    "delivery_delay must be more than 0 and at most {} days, got {d:?}",
                    crate::options::MAX_DELAY.as_secs() / 86_400
                )));
            }
        }
        if self.unblock_timeout.is_zero() {
            return Err(Error::InvalidOption(
                "unblock_timeout must be more than 0".into(),
            ));
        }
        if let Some(r) = self.journal {
            if r.max_age.is_zero() {
                return Err(Error::InvalidOption(
                    "journal retention max_age must be more than 0".into(),
                ));
            }
            if r.max_bytes < 2 * self.spill_segment_size {
                return Err(Error::InvalidOption(format!(
                    "journal retention max_bytes ({}) must be at least two segments ({} bytes each)",
                    r.max_bytes, self.spill_segment_size
                )));
            }
        }
        Ok(())
    }

    /// The defaults: 4096 slots of 1024 bytes, 16 groups, overflow block,
    /// unblock_timeout 5 s, mode 0600, dir `$SHMQ_DIR` or `/dev/shm`.
    pub fn new() -> Options {
        Options::default()
    }
    /// Directory of the queue file (default `$SHMQ_DIR`, else `/dev/shm`).
    /// A disk path makes the queue survive a reboot.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Options {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }
    /// Ring capacity in messages, a power of two (default 4096), each of
    /// up to `slot_size` bytes (a longer one takes several). Or give the
    /// ring's size in bytes instead: [`capacity`](Options::capacity).
    pub fn slots(mut self, slots: u64) -> Options {
        self.slots = Some(slots);
        self
    }
    /// The ring's size in bytes: what the messages in flight may take,
    /// each with its 32-byte header, rounded up to the slot's 8 bytes. It
    /// decides [`slots`](Options::slots) (which may then not be given):
    /// the most slots of `slot_size` that fit in it, a power of two, so
    /// the ring takes between half of `capacity` and all of it. Messages
    /// of any length up to [`max_message_size`](Options::max_message_size)
    /// share it, each taking what it needs: with a `slot_size` of 32, 64
    /// MiB hold a million 16-byte events, or one frame of up to 32 MiB (half
    /// the ring, less a header), or a mix.
    ///
    /// `slot_size` stays the grain (default 1024: a 16-byte event then
    /// takes a whole KiB); a small one packs small messages, and a long
    /// message takes as many slots as it needs either way.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{ConsumerOptions, Options, Queue};
    /// let opts = Options::new().dir(dir.path()).capacity(1 << 20).slot_size(32);
    /// let q = Queue::create("doc-capacity", &opts)?;
    /// assert_eq!((q.slots(), q.stats().capacity), (16384, 1 << 20));
    /// let mut c = q.consumer("g", ConsumerOptions::new().create(true))?;
    /// let mut p = q.producer()?;
    /// for i in 0..16384u32 {
    ///     p.publish(&i.to_le_bytes())?; // 16384 small events fill it
    /// }
    /// for _ in 0..16384 {
    ///     c.receive()?;
    /// }
    /// p.publish(&vec![7u8; 400_000])?; // one frame takes what it needs
    /// assert_eq!(c.receive()?.payload().len(), 400_000);
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn capacity(mut self, bytes: u64) -> Options {
        self.capacity = Some(bytes);
        self
    }
    /// Bytes of payload one slot holds (default 1024): the ring's grain.
    /// A message up to this long takes one slot; a longer one (up to
    /// [`max_message_size`](Options::max_message_size)) takes as many
    /// slots in a row as it needs.
    ///
    /// The queue file holds `slots` slots of `slot_size + 32` bytes,
    /// rounded up to 8 (rings of 512 slots or more; 16, 32 or 64 in
    /// smaller ones, so that the ring is whole pages), allocated when the
    /// queue is created; each group's lease table (48 bytes a slot),
    /// allocated when its first ack=manual consumer attaches; and
    /// `dlq_slots` dead-letter entries of `slot_size + 96` bytes, allocated
    /// as dead letters use them: 4096 slots of 1 KiB make a ~4.5 MB ring.
    /// `Queue::create` fails with `Io` (`ENOSPC`, naming the bytes needed
    /// and free) where the directory has no room for it;
    /// `Queue::file_size` and `Stats::file_size` tell it.
    pub fn slot_size(mut self, bytes: usize) -> Options {
        self.slot_size = bytes as u64;
        self
    }
    /// The largest message (payload, with its ordering key and headers)
    /// the queue takes; longer ones are refused with `TooLarge`. A message
    /// longer than `slot_size` takes as many consecutive slots as it
    /// needs (its seq is its first slot's: seqs then skip the others), and
    /// is still one slice for its reader. At most half the ring (`slots ×
    /// (slot_size + 32)` bytes, less a header); by default that, or, on a
    /// queue that spills or journals, what one spill segment holds if that
    /// is less. Messages longer than a slot need a ring of whole pages
    /// (`slots × (slot_size + 32)` a multiple of 4096 bytes, which every
    /// ring of 128 or more slots is).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{ConsumerOptions, Options, Queue};
    /// // 64 slots of 1 KiB: messages of up to 8 KiB.
    /// let opts = Options::new().dir(dir.path()).slots(64).max_message_size(8192);
    /// let q = Queue::create("doc-max", &opts)?;
    /// let mut c = q.consumer("g", ConsumerOptions::new().create(true))?;
    /// let mut p = q.producer()?;
    /// let frame = vec![7u8; 5000];
    /// let seq = p.publish(&frame)?; // five slots
    /// assert_eq!(p.publish(b"next")?, seq + 5);
    /// assert_eq!(c.receive()?.payload(), &frame[..]);
    /// assert!(matches!(p.publish(&[0u8; 8193]), Err(shmq::Error::TooLarge { .. })));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn max_message_size(mut self, bytes: u64) -> Options {
        self.max_message_size = Some(bytes);
        self
    }
    /// How many consumer groups the queue can hold (default 16).
    pub fn max_groups(mut self, n: u32) -> Options {
        self.max_groups = n;
        self
    }
    /// What a publish does when the ring is full (default block).
    pub fn overflow(mut self, overflow: Overflow) -> Options {
        self.overflow = overflow;
        self
    }
    /// Visibility timeout of a manual-ack delivery (default 30 s). Stored in
    /// the queue file for the delivery protocol.
    pub fn lease(mut self, lease: Duration) -> Options {
        self.lease = lease;
        self
    }
    /// Deliveries before a message is dead-lettered (default 5). Stored in
    /// the queue file for the delivery protocol.
    pub fn max_deliveries(mut self, n: u32) -> Options {
        self.max_deliveries = n;
        self
    }
    /// Capacity of the dead-letter queue, in entries of `slot_size` bytes
    /// (default: 1024, or enough for two messages of `max_message_size`
    /// if that is more). A dead letter takes as many entries in a row as
    /// its bytes need, so the region holds `dlq_slots` short dead letters
    /// or fewer long ones, and none longer than the whole region
    /// ([`Error::DlqTooLarge`](crate::Error::DlqTooLarge)). The region's
    /// pages are allocated as dead letters first use them, not at create:
    /// a big DLQ costs memory only once it holds something (and keeps the
    /// pages its fullest moment used).
    pub fn dlq_slots(mut self, n: u32) -> Options {
        self.dlq_slots = Some(n);
        self
    }
    /// How many idempotency keys the queue remembers (default 1024; 0
    /// turns keyed publishing off). A publish with a key seen among the
    /// last `n` keys, within [`dedup_ttl`](Self::dedup_ttl), is not
    /// enqueued again: the first message's seq is returned.
    pub fn dedup_window(mut self, n: u64) -> Options {
        self.dedup_window = n;
        self
    }
    /// Ordering lanes per ack=manual group (a power of two up to 65536,
    /// default 1024): messages with an ordering key ([`Meta::ordering_key`])
    /// are kept in order within their lane, the key's hash modulo this.
    /// Two keys in one lane (a hash collision) share its order: less
    /// parallelism, never a broken order. 8 bytes per lane and group.
    pub fn ordering_lanes(mut self, n: u64) -> Options {
        self.ordering_lanes = n;
        self
    }
    /// How far an ack=manual group's dispatch may run ahead of its oldest
    /// unfinished message, in slots (default 65536, or the ring's slots if
    /// fewer; at most the ring's slots): at most this many messages are
    /// leased, or acked out of order behind an unfinished one, at a time,
    /// as SQS caps a queue's in-flight messages and Kafka a poll's
    /// records. A message of several slots counts its slots, and one
    /// message is always dispatched however long it is. When the window is
    /// full, receives wait for the oldest message to be acked, nacked back
    /// or dead-lettered. Each leasing group's table takes 48 bytes per
    /// slot of this (rounded up to a power of two), allocated when the
    /// group's first ack=manual consumer attaches.
    pub fn max_in_flight(mut self, slots: u64) -> Options {
        self.max_in_flight = Some(slots);
        self
    }
    /// Every message's time to live (default: none; at most 2^32 - 1 ms,
    /// about 49 days, as RabbitMQ's `x-message-ttl`): a group that has not
    /// finished a message this long after its publish is not given it any
    /// more (see [`Meta::ttl`], which may set a shorter one per message, and
    /// [`on_expiry`](Self::on_expiry)). Judged from the message's
    /// timestamp: it costs a message nothing to carry.
    pub fn message_ttl(mut self, ttl: Duration) -> Options {
        self.message_ttl = Some(ttl);
        self
    }
    /// What happens to an expired message: dead-lettered with reason
    /// `expired` (the default), or dropped and counted
    /// ([`OnExpiry::Discard`]).
    pub fn on_expiry(mut self, what: OnExpiry) -> Options {
        self.on_expiry = what;
        self
    }
    /// The delay every message is published with (default: none), as
    /// SQS's queue `DelaySeconds`: a message reaches no group before it
    /// has passed, unless the message says otherwise ([`Meta::delay`],
    /// [`Meta::deliver_at`]). The queue's scheduled messages wait in its
    /// store directory (see [`Meta::delay`]); a batch is scheduled message
    /// by message, and a reservation (written in the ring) is refused.
    pub fn delivery_delay(mut self, delay: Duration) -> Options {
        self.delivery_delay = Some(delay);
        self
    }
    /// How long a key is remembered (default 5 minutes).
    pub fn dedup_ttl(mut self, ttl: Duration) -> Options {
        self.dedup_ttl = ttl;
        self
    }
    /// How long a claimed position may stay uncommitted before consumers
    /// abort it (default 5 s). A claim whose process is dead is aborted at
    /// once.
    pub fn unblock_timeout(mut self, t: Duration) -> Options {
        self.unblock_timeout = t;
        self
    }
    /// File mode of the queue file (default 0o600).
    pub fn mode(mut self, mode: u32) -> Options {
        self.mode = mode;
        self
    }
    /// Trusts files and directories owned by user `uid` (besides this
    /// user and root). Without it, a queue file, spill, journal or DLQ
    /// directory owned by another user is refused: someone else could have
    /// made it, to read or forge messages. For a queue shared between users
    /// on purpose (its `mode`), the other users name its owner here, or its
    /// group with [`trust_group`](Options::trust_group).
    pub fn trust_owner(mut self, uid: u32) -> Options {
        self.trust.owner = Some(uid);
        self
    }
    /// Trusts group `gid`: files and directories of that group are used
    /// whoever owns them, and may be group-writable.
    pub fn trust_group(mut self, gid: u32) -> Options {
        self.trust.group = Some(gid);
        self
    }
    /// Directory of the spill's segment files (overflow=spill, and the
    /// journal's; default `/var/tmp/shmq-<uid>/<name>`, or `<name>-<hash>`
    /// for a queue outside `/dev/shm` ([`get_spill_dir`](Self::get_spill_dir)),
    /// this user's own).
    /// Created if missing, mode 0700. Refused (an `Io` error,
    /// `PermissionDenied`, naming the path and its owner) if it, or a
    /// directory above it, is owned by another user or writable by others
    /// (a sticky directory like `/var/tmp` excepted above it), unless
    /// [`trust_owner`](Options::trust_owner) or
    /// [`trust_group`](Options::trust_group) says so.
    pub fn spill_dir(mut self, dir: impl AsRef<Path>) -> Options {
        self.spill_dir = Some(dir.as_ref().to_path_buf());
        self
    }
    /// Most bytes of segment files the spill may hold (default 1 GiB);
    /// past it [`spill_fallback`](Self::spill_fallback) applies.
    pub fn spill_max_bytes(mut self, bytes: u64) -> Options {
        self.spill_max_bytes = bytes;
        self
    }
    /// Bytes of one segment file (default 64 MiB; at least 64 KiB and
    /// room for two largest messages). Segments are preallocated, so a
    /// full disk is found when one is made, not in the middle of a write.
    pub fn spill_segment_size(mut self, bytes: u64) -> Options {
        self.spill_segment_size = bytes;
        self
    }
    /// What a publish does when the ring is full and the spill is full
    /// too (its budget or its disk): `Block` (the default) or `Reject`.
    pub fn spill_fallback(mut self, fallback: Overflow) -> Options {
        self.spill_fallback = fallback;
        self
    }
    /// When spilled and journaled records are flushed to disk (default
    /// never).
    pub fn sync(mut self, sync: SyncMode) -> Options {
        self.sync = sync;
        self
    }
    /// Also appends every message to a journal of segment files (in
    /// `<spill_dir>/journal`), kept by `retention`, so that a group can
    /// [`seek`](crate::Consumer::seek) to any retained seq or time and
    /// replay it, far beyond what the ring holds (default: no journal).
    pub fn journal(mut self, retention: Retention) -> Options {
        self.journal = Some(retention);
        self
    }

    /// The directory these options resolve to.
    pub fn get_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(default_dir)
    }
    /// The ring capacity set, in slots (with [`capacity`](Self::capacity),
    /// the slots it makes, or 0 if it is out of range).
    pub fn get_slots(&self) -> u64 {
        self.ring_slots().unwrap_or(0)
    }
    /// The ring's size in bytes set with [`capacity`](Self::capacity).
    pub fn get_capacity(&self) -> Option<u64> {
        self.capacity
    }
    /// An ack=manual group's in-flight window, in slots: what
    /// [`max_in_flight`](Self::max_in_flight) set, else the default
    /// (65536, or the ring's slots if fewer).
    pub fn get_max_in_flight(&self) -> u64 {
        self.max_in_flight
            .unwrap_or_else(|| DEFAULT_MAX_IN_FLIGHT.min(self.get_slots().max(1)))
    }
    /// The ring's slots: `slots`, or what `capacity` makes.
    pub(crate) fn ring_slots(&self) -> Result<u64> {
        match self.capacity {
            None => Ok(self.slots.unwrap_or(DEFAULT_SLOTS)),
            Some(_) if self.slots.is_some() => Err(Error::InvalidOption(
                "capacity and slots both say how big the ring is: give one of them".into(),
            )),
            Some(bytes) => crate::layout::slots_for_capacity(bytes, self.slot_size),
        }
    }
    /// The spill directory these options resolve to for queue `name`.
    ///
    /// The default is `/var/tmp/shmq-UID/NAME` for a queue in `/dev/shm`,
    /// and `/var/tmp/shmq-UID/NAME-HASH` for one in any other directory
    /// (HASH: 8 hex digits of the directory's path), so that two queues of
    /// one name in two directories never share a spill directory.
    pub fn get_spill_dir(&self, name: &str) -> PathBuf {
        self.spill_dir.clone().unwrap_or_else(|| {
            let dir = self.get_dir();
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            if dir == Path::new("/dev/shm") {
                default_spill_root().join(name)
            } else {
                let hash = crc32c::crc32c(dir.as_os_str().as_encoded_bytes());
                default_spill_root().join(format!("{name}-{hash:08x}"))
            }
        })
    }
}

/// Checks a queue name: `[A-Za-z0-9._-]{1,200}`, not `.` or `..`.
pub(crate) fn check_queue_name(name: &str) -> Result<()> {
    check_name(name, 200)
}

/// Checks a group name: `[A-Za-z0-9._-]{1,48}`.
pub(crate) fn check_group_name(name: &str) -> Result<()> {
    check_name(name, MAX_GROUP_NAME)
}

fn check_name(name: &str, max: usize) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a name may not be empty");
    }
    if name.len() > max {
        return bad(if max == 200 {
            "a queue name may have at most 200 characters"
        } else {
            "a group name may have at most 48 characters"
        });
    }
    if name == "." || name == ".." {
        return bad("a name may not be . or ..");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("a name may contain only A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_queue_name("orders.v1_a-b").is_ok());
        for bad in ["", "a/b", "..", ".", "a b", "é"] {
            assert!(
                matches!(check_queue_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(check_queue_name(&"x".repeat(200)).is_ok());
        assert!(check_queue_name(&"x".repeat(201)).is_err());
        assert!(check_group_name(&"g".repeat(48)).is_ok());
        assert!(check_group_name(&"g".repeat(49)).is_err());
    }

    #[test]
    fn overflow_parses() {
        assert_eq!("block".parse::<Overflow>().unwrap(), Overflow::Block);
        assert_eq!("reject".parse::<Overflow>().unwrap(), Overflow::Reject);
        assert!("drop".parse::<Overflow>().is_err());
    }
}
