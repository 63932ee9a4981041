//! The plain structs and constants C passes in: queue options, consumer
//! options, message metadata, and the enumerations (as integer typedefs, so
//! that any value C passes is defined behaviour and an unknown one is an
//! error, not UB).

use std::ffi::{CStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, UNIX_EPOCH};

use shmq::{
    Ack, ConsumerOptions, Headers, MAX_HEADERS, Meta, Nack, OnExpiry, Options, Overflow, Retention,
    Seek, Start, SyncMode,
};

use crate::boundary::{bytes, guard_or, invalid_argument};
use crate::status::CallError;

/// What a publish does when the ring is full: `SHMQ_OVERFLOW_BLOCK`,
/// `SHMQ_OVERFLOW_REJECT` or `SHMQ_OVERFLOW_SPILL`.
pub type shmq_overflow = u32;
/// Wait for room (bounded by the publish's timeout). The default.
pub const SHMQ_OVERFLOW_BLOCK: shmq_overflow = 0;
/// Fail at once with `SHMQ_FULL`.
pub const SHMQ_OVERFLOW_REJECT: shmq_overflow = 1;
/// Append to segment files on disk (`spill_dir`) and carry on; the messages
/// come back into the ring, in order, as consumers free it.
pub const SHMQ_OVERFLOW_SPILL: shmq_overflow = 2;

/// What happens to a message whose time to live ran out before a group
/// finished it: `SHMQ_ON_EXPIRY_DEAD_LETTER` or `SHMQ_ON_EXPIRY_DISCARD`.
pub type shmq_on_expiry = u32;
/// It goes to the group's dead-letter queue (`SHMQ_DLQ_REASON_EXPIRED`).
/// The default. With the dead-letter queue full, it is delivered instead.
pub const SHMQ_ON_EXPIRY_DEAD_LETTER: shmq_on_expiry = 0;
/// It is dropped for the group and counted
/// (`shmq_group_info.messages_expired`).
pub const SHMQ_ON_EXPIRY_DISCARD: shmq_on_expiry = 1;

/// When spilled records are flushed to disk (`msync`): `SHMQ_SYNC_NEVER`,
/// `SHMQ_SYNC_EVERY_N` (with `sync_every` beside it) or `SHMQ_SYNC_ALWAYS`.
/// A process crash loses nothing in any mode (the page cache keeps it);
/// the mode decides what survives a machine crash.
pub type shmq_sync = u32;
/// Leave it to the kernel's writeback. The default, and the fastest.
pub const SHMQ_SYNC_NEVER: shmq_sync = 0;
/// Flush after every `sync_every` records.
pub const SHMQ_SYNC_EVERY_N: shmq_sync = 1;
/// Flush every record before its publish returns.
pub const SHMQ_SYNC_ALWAYS: shmq_sync = 2;

/// Where a new group starts: `SHMQ_START_EARLIEST`, `SHMQ_START_LATEST` or
/// `SHMQ_START_SEQ` (with a seq beside it).
pub type shmq_start = u32;
/// The oldest message the queue still retains.
pub const SHMQ_START_EARLIEST: shmq_start = 0;
/// Only messages published from now on.
pub const SHMQ_START_LATEST: shmq_start = 1;
/// From a given seq (clamped to what is retained and what exists).
pub const SHMQ_START_SEQ: shmq_start = 2;

/// Where a seek moves a group: `SHMQ_SEEK_EARLIEST`, `SHMQ_SEEK_LATEST`,
/// `SHMQ_SEEK_SEQ` (value: a seq) or `SHMQ_SEEK_TIME` (value: CLOCK_REALTIME
/// nanoseconds).
pub type shmq_seek = u32;
/// The oldest retained message.
pub const SHMQ_SEEK_EARLIEST: shmq_seek = 0;
/// After the newest message.
pub const SHMQ_SEEK_LATEST: shmq_seek = 1;
/// The given seq (clamped to the retained range).
pub const SHMQ_SEEK_SEQ: shmq_seek = 2;
/// The first retained message published at or after the given time.
pub const SHMQ_SEEK_TIME: shmq_seek = 3;

/// How a consumer acknowledges: `SHMQ_ACK_AUTO` (committed on receive,
/// at-most-once) or `SHMQ_ACK_MANUAL` (leased until acked, at-least-once).
pub type shmq_ack_mode = u32;
/// Committed for the group when received. One consumer per group at a time.
pub const SHMQ_ACK_AUTO: shmq_ack_mode = 0;
/// At-least-once: each message is leased to one of any number of competing
/// consumers of the group until `shmq_ack`; `shmq_nack`, a lease that runs
/// out (`lease_ms`), a delivery released without ack, or the death of the
/// consumer's process delivers it again; after `max_deliveries` it goes to
/// the dead-letter queue.
pub const SHMQ_ACK_MANUAL: shmq_ack_mode = 1;

/// What `shmq_nack` does with a message: `SHMQ_NACK_REQUEUE`,
/// `SHMQ_NACK_REQUEUE_AFTER` (with a delay) or `SHMQ_NACK_DEAD_LETTER`.
pub type shmq_nack_kind = u32;
/// Deliver it again as soon as possible (to any consumer of the group).
pub const SHMQ_NACK_REQUEUE: shmq_nack_kind = 0;
/// Deliver it again, not before `delay_ns` nanoseconds from now.
pub const SHMQ_NACK_REQUEUE_AFTER: shmq_nack_kind = 1;
/// Move it to the dead-letter queue now.
pub const SHMQ_NACK_DEAD_LETTER: shmq_nack_kind = 2;

/// How a consumer's blocking receive waits (`shmq_consumer_options.wait`):
/// `SHMQ_WAIT_STRATEGY_SPIN_FUTEX` (the default), `..._SPIN_YIELD` or
/// `..._BUSY_SPIN`. A receive with timeout 0 never waits, whatever this
/// says.
pub type shmq_wait_strategy = u32;
/// Spin, yield, then sleep on a futex until a producer wakes it: an idle
/// consumer uses next to no CPU; the first message after a sleep pays for
/// a wake-up.
pub const SHMQ_WAIT_STRATEGY_SPIN_FUTEX: shmq_wait_strategy = 0;
/// Spin a little, then give the core away (`sched_yield`) between polls:
/// near busy-spin latency while nothing else wants the core.
pub const SHMQ_WAIT_STRATEGY_SPIN_YIELD: shmq_wait_strategy = 1;
/// Poll without pause: the lowest latency, and a whole core while waiting.
pub const SHMQ_WAIT_STRATEGY_BUSY_SPIN: shmq_wait_strategy = 2;

/// Whether a consumer creates a group that does not exist
/// (`shmq_consumer_options.create`): `SHMQ_CREATE_GROUP_UNSAID` (0, the
/// default for now: create it and say so on stderr; deprecated, a later
/// version will refuse), `SHMQ_CREATE_GROUP` (create it, at `start`) or
/// `SHMQ_GROUP_MUST_EXIST` (refuse a missing one with `SHMQ_NOT_FOUND`,
/// so that a typo makes no group to hold the ring full).
pub type shmq_create_group = u32;
/// Create a missing group, and warn on stderr that it did (deprecated).
pub const SHMQ_CREATE_GROUP_UNSAID: shmq_create_group = 0;
/// Create a missing group, on purpose.
pub const SHMQ_CREATE_GROUP: shmq_create_group = 1;
/// Refuse a missing group with `SHMQ_NOT_FOUND`.
pub const SHMQ_GROUP_MUST_EXIST: shmq_create_group = 2;

/// A timeout meaning "as long as it takes" (`UINT64_MAX`). A timeout of 0
/// means "do not wait".
pub const SHMQ_WAIT_FOREVER: u64 = u64::MAX;

/// Options of a queue. Start from `shmq_options_default()` and change what
/// you need. The fields that shape the file (all but `dir`) apply when it is
/// created and are read from the file afterwards. Plain data: copy freely.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_options {
    /// The C ABI these options were laid out for: `shmq_options_default()`
    /// sets it to the header's `SHMQ_ABI_VERSION`, and every function that
    /// takes options refuses another value with `SHMQ_INCOMPATIBLE` (a
    /// struct not made by `shmq_options_default()`, or from another
    /// version's header). Always first, whatever the version.
    pub abi_version: u32,
    /// Directory of the queue file; NULL means `$SHMQ_DIR`, else `/dev/shm`.
    /// Read during the call only.
    pub dir: *const c_char,
    /// Ring capacity in messages, a power of two (default 4096).
    pub slots: u64,
    /// Largest payload in bytes (default 1024).
    pub slot_size: u64,
    /// How many consumer groups the queue can hold (default 16).
    pub max_groups: u32,
    /// A `shmq_overflow` (default `SHMQ_OVERFLOW_BLOCK`).
    pub overflow: shmq_overflow,
    /// Visibility timeout of a manual-ack delivery in ms (default 30000).
    pub lease_ms: u64,
    /// Deliveries before a message is dead-lettered (default 5).
    pub max_deliveries: u32,
    /// Capacity of the dead-letter region, in entries of `slot_size` bytes
    /// (a dead letter takes as many in a row as it needs). 0, the default:
    /// 1024, or enough for two messages of `max_message_size` if that is
    /// more. The entries take memory only once a dead letter uses them.
    pub dlq_slots: u32,
    /// How many idempotency keys the queue remembers (default 1024; 0 turns
    /// keyed publishing off). See `shmq_meta.key`.
    pub dedup_window: u64,
    /// How long a claimed position may stay uncommitted before consumers
    /// abort it, in ms (default 5000).
    pub unblock_timeout_ms: u64,
    /// File mode of the queue file (default 0600; must include 0600).
    pub mode: u32,
    /// How long an idempotency key is remembered, in ms (default 300000:
    /// 5 minutes). See `shmq_meta.key`.
    pub dedup_ttl_ms: u64,
    /// Directory of the spill's segment files (`SHMQ_OVERFLOW_SPILL`), and
    /// of the journal's in its subdirectory `journal`; NULL means
    /// `/var/tmp/shmq-<uid>/<name>` (`<name>-<hash of the queue's
    /// directory>` for a queue outside `/dev/shm`). Created if missing
    /// (mode 0700).
    /// Read during the call only; stored in the queue file at create.
    pub spill_dir: *const c_char,
    /// Most bytes of segment files the spill may hold (default 1 GiB); at
    /// least one segment. Past it, `spill_fallback` applies.
    pub spill_max_bytes: u64,
    /// Bytes of one segment file (default 64 MiB; from 64 KiB to 4 GiB,
    /// and room for a largest message). Segments are preallocated, so a
    /// full disk shows when one is made, as `SHMQ_SPILL_FULL`.
    pub spill_segment_size: u64,
    /// What a publish does when the ring and the spill are both full: a
    /// `shmq_overflow`, `SHMQ_OVERFLOW_BLOCK` (the default: wait, bounded
    /// by the publish's timeout) or `SHMQ_OVERFLOW_REJECT` (fail with
    /// `SHMQ_SPILL_FULL`).
    pub spill_fallback: shmq_overflow,
    /// A `shmq_sync` (default `SHMQ_SYNC_NEVER`).
    pub sync: shmq_sync,
    /// With `SHMQ_SYNC_EVERY_N`: flush after this many records (more than
    /// 0). Ignored with the other modes (default 0).
    pub sync_every: u32,
    /// Keep a journal of every message for this many ms (0, the default:
    /// no journal), in segment files of `spill_segment_size` under
    /// `<spill_dir>/journal`, so that a group can seek below what the ring
    /// holds and replay (ack=auto). Stored in the queue file at create.
    pub journal_max_age_ms: u64,
    /// Most bytes of journal segment files, the oldest deleted first
    /// (default 1 GiB; at least two segments). Used only with a journal
    /// (`journal_max_age_ms` > 0).
    pub journal_max_bytes: u64,
    /// A user id trusted besides this user and root (default -1: none): a
    /// queue file, spill, journal or DLQ directory it owns is used, where
    /// another user's is refused (`SHMQ_IO`, naming the path and owner).
    /// For a queue shared between users on purpose through `mode`.
    pub trust_owner: i64,
    /// A group id trusted the same way (default -1: none); its files and
    /// directories may also be group-writable.
    pub trust_group: i64,
    /// Ordering lanes per ack=manual group (default 1024; a power of two):
    /// a key's messages wait for the key's earlier ones, and keys sharing
    /// a lane wait for each other.
    pub ordering_lanes: u64,
    /// The largest message (payload, ordering key and headers) the queue
    /// takes, in bytes; 0 (the default) for as much as half the ring holds
    /// (and, spilling or journaling, one spill segment). A message longer
    /// than `slot_size` takes consecutive slots and is still one slice for
    /// its reader. Added in ABI 3.
    pub max_message_size: u64,
    /// The ring's size in bytes (0, the default: `slots` decides it). More
    /// than 0: the ring is the most slots of `slot_size` that fit in it, a
    /// power of two (between half of it and all of it), and `slots` must
    /// be left at its default (`SHMQ_INVALID_OPTION` otherwise). Messages of any length up to `max_message_size` share it:
    /// with a `slot_size` of 32, 64 MiB hold a million 16-byte events or
    /// one frame of up to 32 MiB. `slot_size` stays the grain (a message
    /// up to it takes one slot). Added in ABI 3.
    pub capacity: u64,
    /// How far an ack=manual group's dispatch may run ahead of its oldest
    /// unfinished message, in slots (0, the default: 65536, or the ring's
    /// slots if fewer; at most the ring's slots). When that many are out,
    /// receives wait for the oldest to be acked, nacked or dead-lettered.
    /// A leasing group's table takes 48 bytes per slot of it. Added in
    /// ABI 3.
    pub max_in_flight: u64,
    /// Every message's time to live in milliseconds (0, the default: none;
    /// at most 2^32 - 1): a group that has not finished a message this
    /// long after its publish is not given it; `on_expiry` says what
    /// becomes of it. `shmq_meta.ttl_ms` may set a shorter one per message.
    /// Added in ABI 3.
    pub message_ttl_ms: u64,
    /// `SHMQ_ON_EXPIRY_DEAD_LETTER` (the default) or
    /// `SHMQ_ON_EXPIRY_DISCARD`. Added in ABI 3.
    pub on_expiry: shmq_on_expiry,
    /// The delay every message is published with, in milliseconds (0, the
    /// default: none; at most 10 years): a message reaches no group before
    /// it has passed, unless its own `shmq_meta.delay_ms` or
    /// `deliver_at_ms` says otherwise. Scheduled messages wait in the
    /// queue's store directory (`spill_dir`, `<spill_dir>/schedule`), and a
    /// publish returns a *schedule id*, not a seq (see `shmq_meta.delay_ms`).
    /// A batch is scheduled message by message (`shmq_publish_batch`
    /// writes the first one's schedule id); a reservation is refused
    /// (`SHMQ_INVALID_OPTION`: it is written in the ring). Added in ABI 3.
    pub delivery_delay_ms: u64,
}

/// The defaults of every queue option (the same as the Rust
/// `Options::new()`); `dir` and `spill_dir` are NULL.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_options_default() -> shmq_options {
    guard_or(DEFAULT_OPTIONS, || DEFAULT_OPTIONS)
}

/// Kept equal to `shmq::Options::default()` by the test `defaults_match`.
const DEFAULT_OPTIONS: shmq_options = shmq_options {
    abi_version: crate::version::SHMQ_ABI_VERSION,
    dir: std::ptr::null(),
    slots: 4096,
    slot_size: 1024,
    max_groups: 16,
    overflow: SHMQ_OVERFLOW_BLOCK,
    lease_ms: 30_000,
    max_deliveries: 5,
    dlq_slots: 0,
    dedup_window: 1024,
    unblock_timeout_ms: 5_000,
    mode: 0o600,
    dedup_ttl_ms: 300_000,
    spill_dir: std::ptr::null(),
    spill_max_bytes: 1 << 30,
    spill_segment_size: 64 << 20,
    spill_fallback: SHMQ_OVERFLOW_BLOCK,
    sync: SHMQ_SYNC_NEVER,
    sync_every: 0,
    journal_max_age_ms: 0,
    journal_max_bytes: 1 << 30,
    trust_owner: -1,
    trust_group: -1,
    ordering_lanes: 1024,
    max_message_size: 0,
    capacity: 0,
    max_in_flight: 0,
    message_ttl_ms: 0,
    on_expiry: SHMQ_ON_EXPIRY_DEAD_LETTER,
    delivery_delay_ms: 0,
};

impl shmq_options {
    /// The Rust options these stand for.
    ///
    /// # Safety
    /// A non-NULL `dir` or `spill_dir` must be a NUL-terminated string.
    pub(crate) unsafe fn to_rust(self) -> Result<Options, CallError> {
        let abi = crate::version::SHMQ_ABI_VERSION;
        if self.abi_version != abi {
            return Err(CallError::AbiMismatch(format!(
                "shmq_options.abi_version is {}, this library's C ABI is {abi}: start from shmq_options_default(), and build against the shmq.h of this library (SHMQ_ABI_VERSION {abi})",
                self.abi_version
            )));
        }
        let slot_size = usize::try_from(self.slot_size).map_err(|_| {
            CallError::InvalidOption(format!("slot_size {} is too large", self.slot_size))
        })?;
        let overflow = match self.overflow {
            SHMQ_OVERFLOW_BLOCK => Overflow::Block,
            SHMQ_OVERFLOW_REJECT => Overflow::Reject,
            SHMQ_OVERFLOW_SPILL => Overflow::Spill,
            other => {
                return Err(CallError::InvalidOption(format!(
                    "overflow must be SHMQ_OVERFLOW_BLOCK (0), SHMQ_OVERFLOW_REJECT (1) or SHMQ_OVERFLOW_SPILL (2), got {other}"
                )));
            }
        };
        let spill_fallback = match self.spill_fallback {
            SHMQ_OVERFLOW_BLOCK => Overflow::Block,
            SHMQ_OVERFLOW_REJECT => Overflow::Reject,
            other => {
                return Err(CallError::InvalidOption(format!(
                    "spill_fallback must be SHMQ_OVERFLOW_BLOCK (0) or SHMQ_OVERFLOW_REJECT (1), got {other}"
                )));
            }
        };
        let sync = match (self.sync, self.sync_every) {
            (SHMQ_SYNC_NEVER, _) => SyncMode::Never,
            (SHMQ_SYNC_EVERY_N, 0) => {
                return Err(CallError::InvalidOption(
                    "sync_every must be more than 0 with SHMQ_SYNC_EVERY_N".into(),
                ));
            }
            (SHMQ_SYNC_EVERY_N, n) => SyncMode::EveryN(n),
            (SHMQ_SYNC_ALWAYS, _) => SyncMode::Always,
            (other, _) => {
                return Err(CallError::InvalidOption(format!(
                    "sync must be SHMQ_SYNC_NEVER (0), SHMQ_SYNC_EVERY_N (1) or SHMQ_SYNC_ALWAYS (2), got {other}"
                )));
            }
        };
        let mut opts = Options::new().slot_size(slot_size);
        // `slots` left at its default is "not given", as `capacity` needs.
        if self.slots != DEFAULT_OPTIONS.slots {
            opts = opts.slots(self.slots);
        }
        if self.capacity > 0 {
            opts = opts.capacity(self.capacity);
        }
        let mut opts = opts
            .max_groups(self.max_groups)
            .overflow(overflow)
            .lease(Duration::from_millis(self.lease_ms))
            .max_deliveries(self.max_deliveries)
            .dedup_window(self.dedup_window)
            .dedup_ttl(Duration::from_millis(self.dedup_ttl_ms))
            .unblock_timeout(Duration::from_millis(self.unblock_timeout_ms))
            .mode(self.mode)
            .spill_max_bytes(self.spill_max_bytes)
            .spill_segment_size(self.spill_segment_size)
            .spill_fallback(spill_fallback)
            .sync(sync)
            .ordering_lanes(self.ordering_lanes);
        if self.max_message_size > 0 {
            opts = opts.max_message_size(self.max_message_size);
        }
        if self.max_in_flight > 0 {
            opts = opts.max_in_flight(self.max_in_flight);
        }
        if self.message_ttl_ms > 0 {
            opts = opts.message_ttl(Duration::from_millis(self.message_ttl_ms));
        }
        opts = opts.on_expiry(match self.on_expiry {
            SHMQ_ON_EXPIRY_DEAD_LETTER => OnExpiry::DeadLetter,
            SHMQ_ON_EXPIRY_DISCARD => OnExpiry::Discard,
            other => {
                return Err(CallError::InvalidOption(format!(
                    "on_expiry must be SHMQ_ON_EXPIRY_DEAD_LETTER (0) or SHMQ_ON_EXPIRY_DISCARD (1), got {other}"
                )));
            }
        });
        if self.delivery_delay_ms > 0 {
            opts = opts.delivery_delay(Duration::from_millis(self.delivery_delay_ms));
        }
        if self.dlq_slots > 0 {
            opts = opts.dlq_slots(self.dlq_slots);
        }
        if self.journal_max_age_ms > 0 {
            opts = opts.journal(Retention::new(
                Duration::from_millis(self.journal_max_age_ms),
                self.journal_max_bytes,
            ));
        }
        // SAFETY: NULL or NUL-terminated per the contract.
        if let Some(dir) = unsafe { dir_option(self.dir, "dir") }? {
            opts = opts.dir(dir);
        }
        let id = |v: i64, what: &str| -> Result<Option<u32>, CallError> {
            match v {
                -1 => Ok(None),
                v => u32::try_from(v).map(Some).map_err(|_| {
                    CallError::InvalidOption(format!("{what} must be -1 (none) or an id, got {v}"))
                }),
            }
        };
        if let Some(uid) = id(self.trust_owner, "trust_owner")? {
            opts = opts.trust_owner(uid);
        }
        if let Some(gid) = id(self.trust_group, "trust_group")? {
            opts = opts.trust_group(gid);
        }
        // SAFETY: NULL or NUL-terminated per the contract.
        if let Some(dir) = unsafe { dir_option(self.spill_dir, "spill_dir") }? {
            opts = opts.spill_dir(dir);
        }
        Ok(opts)
    }
}

/// A directory option: NULL for the default, else a non-empty path (any
/// bytes but NUL, as Unix paths are).
///
/// # Safety
/// A non-NULL `ptr` must be a NUL-terminated string that lives for `'a`.
unsafe fn dir_option<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<Option<&'a std::ffi::OsStr>, CallError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    if s.is_empty() {
        return Err(CallError::InvalidOption(format!(
            "{name} is an empty string (use NULL for the default)"
        )));
    }
    Ok(Some(std::ffi::OsStr::from_bytes(s.to_bytes())))
}

/// Options of a consumer. Start from `shmq_consumer_options_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_consumer_options {
    /// Where the group starts if this consumer creates it (a `shmq_start`,
    /// default `SHMQ_START_EARLIEST`). Ignored for a group that exists.
    pub start: shmq_start,
    /// How messages are acknowledged (a `shmq_ack_mode`, default
    /// `SHMQ_ACK_AUTO`).
    pub ack: shmq_ack_mode,
    /// The seq to start at with `SHMQ_START_SEQ`.
    pub start_seq: u64,
    /// How a blocking receive waits (a `shmq_wait_strategy`, default
    /// `SHMQ_WAIT_STRATEGY_SPIN_FUTEX`, which is 0).
    pub wait: shmq_wait_strategy,
    /// Whether a missing group is created (a `shmq_create_group`, default
    /// `SHMQ_CREATE_GROUP_UNSAID`, which is 0).
    pub create: shmq_create_group,
}

/// The consumer defaults: start earliest, ack auto, wait spin-futex (all
/// zero, so a zeroed struct is the defaults too).
#[unsafe(no_mangle)]
pub extern "C" fn shmq_consumer_options_default() -> shmq_consumer_options {
    shmq_consumer_options {
        start: SHMQ_START_EARLIEST,
        ack: SHMQ_ACK_AUTO,
        start_seq: 0,
        wait: SHMQ_WAIT_STRATEGY_SPIN_FUTEX,
        create: SHMQ_CREATE_GROUP_UNSAID,
    }
}

impl shmq_consumer_options {
    pub(crate) fn to_rust(self) -> Result<ConsumerOptions, CallError> {
        let ack = match self.ack {
            SHMQ_ACK_AUTO => Ack::Auto,
            SHMQ_ACK_MANUAL => Ack::Manual,
            other => {
                return Err(CallError::InvalidOption(format!(
                    "ack must be SHMQ_ACK_AUTO (0) or SHMQ_ACK_MANUAL (1), got {other}"
                )));
            }
        };
        let wait = match self.wait {
            SHMQ_WAIT_STRATEGY_SPIN_FUTEX => shmq::Wait::SpinFutex,
            SHMQ_WAIT_STRATEGY_SPIN_YIELD => shmq::Wait::SpinYield,
            SHMQ_WAIT_STRATEGY_BUSY_SPIN => shmq::Wait::BusySpin,
            other => {
                return Err(CallError::InvalidOption(format!(
                    "wait must be SHMQ_WAIT_STRATEGY_SPIN_FUTEX (0), SHMQ_WAIT_STRATEGY_SPIN_YIELD (1) or SHMQ_WAIT_STRATEGY_BUSY_SPIN (2), got {other}"
                )));
            }
        };
        let mut o = ConsumerOptions::new()
            .start(start(self.start, self.start_seq)?)
            .ack(ack)
            .wait(wait);
        o.create = match self.create {
            SHMQ_CREATE_GROUP_UNSAID => None,
            SHMQ_CREATE_GROUP => Some(true),
            SHMQ_GROUP_MUST_EXIST => Some(false),
            other => {
                return Err(CallError::InvalidOption(format!(
                    "create must be SHMQ_CREATE_GROUP_UNSAID (0), SHMQ_CREATE_GROUP (1) or SHMQ_GROUP_MUST_EXIST (2), got {other}"
                )));
            }
        };
        Ok(o)
    }
}

/// A `shmq_start` and its seq.
pub(crate) fn start(kind: shmq_start, seq: u64) -> Result<Start, CallError> {
    Ok(match kind {
        SHMQ_START_EARLIEST => Start::Earliest,
        SHMQ_START_LATEST => Start::Latest,
        SHMQ_START_SEQ => Start::Seq(seq),
        other => {
            return Err(CallError::InvalidOption(format!(
                "start must be SHMQ_START_EARLIEST (0), SHMQ_START_LATEST (1) or SHMQ_START_SEQ (2), got {other}"
            )));
        }
    })
}

/// A `shmq_seek` and its value.
pub(crate) fn seek(kind: shmq_seek, value: u64) -> Result<Seek, CallError> {
    Ok(match kind {
        SHMQ_SEEK_EARLIEST => Seek::Earliest,
        SHMQ_SEEK_LATEST => Seek::Latest,
        SHMQ_SEEK_SEQ => Seek::Seq(value),
        SHMQ_SEEK_TIME => Seek::Time(value),
        other => {
            return Err(CallError::InvalidOption(format!(
                "seek must be SHMQ_SEEK_EARLIEST (0), SHMQ_SEEK_LATEST (1), SHMQ_SEEK_SEQ (2) or SHMQ_SEEK_TIME (3), got {other}"
            )));
        }
    })
}

/// A `shmq_nack_kind` and its delay.
pub(crate) fn nack(kind: shmq_nack_kind, delay_ns: u64) -> Result<Nack, CallError> {
    Ok(match kind {
        SHMQ_NACK_REQUEUE => Nack::Requeue,
        SHMQ_NACK_REQUEUE_AFTER => Nack::RequeueAfter(Duration::from_nanos(delay_ns)),
        SHMQ_NACK_DEAD_LETTER => Nack::DeadLetter,
        other => {
            return Err(CallError::InvalidOption(format!(
                "nack kind must be SHMQ_NACK_REQUEUE (0), SHMQ_NACK_REQUEUE_AFTER (1) or SHMQ_NACK_DEAD_LETTER (2), got {other}"
            )));
        }
    })
}

/// Metadata a producer attaches to a message. Zero-initialize it
/// (`shmq_meta m = {0}` or designated initializers) so that fields added
/// later, like `key`, start empty.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_meta {
    /// The user's schema/type tag.
    pub type_id: u32,
    /// The user's id, for tracing.
    pub correlation_id: u64,
    /// An idempotency key of `key_len` bytes, or NULL for none (then
    /// `key_len` must be 0). Publishing again with a key the queue still
    /// remembers (the last `dedup_window` keys, for `dedup_ttl_ms`)
    /// enqueues nothing and returns the first message's seq. Read during
    /// the call only. Not for reservations (`shmq_reservation_set_meta`
    /// refuses a key).
    pub key: *const u8,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// An ordering key of `ordering_key_len` bytes (1 to
    /// `SHMQ_MAX_ORDERING_KEY`), or NULL for none (then `ordering_key_len`
    /// must be 0). Stored with the message (counted against `slot_size`)
    /// and read back by every consumer (`shmq_message.ordering_key`); in
    /// an ack=manual group, messages of one key are leased in order. Not
    /// the idempotency `key`. Read during the call only.
    pub ordering_key: *const u8,
    /// Length of `ordering_key` in bytes.
    pub ordering_key_len: usize,
    /// `headers_len` headers (at most `SHMQ_MAX_HEADERS`), kept in order
    /// (names may repeat), or NULL for none (then `headers_len` must be
    /// 0). Stored with the message (counted against `slot_size`). Read
    /// during the call only.
    pub headers: *const shmq_header,
    /// Number of elements of `headers`.
    pub headers_len: usize,
    /// The message's time to live in milliseconds (0: none, or the
    /// queue's `message_ttl_ms`): a group that has not finished it this
    /// long after its publish is not given it (see
    /// `shmq_options.on_expiry`). Not for batches and reservations (the
    /// queue's applies to them). Added in ABI 3.
    pub ttl_ms: u64,
    /// Deliver the message this many milliseconds after its publish (0:
    /// not delayed by its own meta; the queue's `delivery_delay_ms`
    /// applies). Until then it waits in the queue's schedule, on disk in
    /// the queue's store directory, and reaches no group; the publish
    /// writes its *schedule id* (for `shmq_queue_scheduled` and
    /// `shmq_queue_cancel_scheduled`) to `seq_out`, not a seq: it gets its
    /// seq when it is due and enters the ring, and its `ttl_ms` counts from
    /// then. Not for reservations. Added in ABI 3.
    pub delay_ms: u64,
    /// Deliver the message at this time, in milliseconds since the Unix
    /// epoch (CLOCK_REALTIME; 0: none), as `delay_ms` does; a time already
    /// past publishes at once. `delay_ms` wins if both are set. Added in
    /// ABI 3.
    pub deliver_at_ms: u64,
}

/// One header: a name of `name_len` bytes of UTF-8 (1 to
/// `SHMQ_MAX_HEADER_NAME`; not NUL-terminated) and a value of `value_len`
/// bytes. In a `shmq_meta`, the caller's memory (NULL is allowed only with
/// length 0). Written by `shmq_message_header`, it points into the
/// message's slot and is valid as long as the message's `data`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_header {
    /// The name (UTF-8, not NUL-terminated).
    pub name: *const c_char,
    /// Length of `name` in bytes.
    pub name_len: usize,
    /// The value.
    pub value: *const u8,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

// Literals, so that cbindgen can write them (`limits_match` checks them
// against core's).
/// Longest ordering key, in bytes (`shmq_meta.ordering_key_len`).
pub const SHMQ_MAX_ORDERING_KEY: usize = 1024;
/// Most headers on one message (`shmq_meta.headers_len`).
pub const SHMQ_MAX_HEADERS: usize = 16;
/// Longest header name, in bytes.
pub const SHMQ_MAX_HEADER_NAME: usize = 255;

impl shmq_meta {
    /// The Rust metadata these stand for, borrowing the ordering key and
    /// the headers from the caller's memory for `'a`.
    ///
    /// # Safety
    /// A non-NULL `key` must be readable for `key_len` bytes, a non-NULL
    /// `ordering_key` for `ordering_key_len` bytes, a non-NULL `headers`
    /// for `headers_len` elements and each of their non-NULL `name` and
    /// `value` for their lengths, all unchanged for `'a`.
    pub(crate) unsafe fn to_rust<'a>(self) -> Result<Meta<'a>, CallError> {
        let mut meta = Meta::new()
            .type_id(self.type_id)
            .correlation_id(self.correlation_id);
        if self.key.is_null() {
            if self.key_len != 0 {
                return Err(CallError::Null("meta->key"));
            }
        } else {
            // SAFETY: non-NULL and readable for `key_len` bytes per the
            // contract.
            let key = unsafe { bytes(self.key, self.key_len, "meta->key") }?;
            meta = meta.key(key);
        }
        if self.ordering_key.is_null() {
            if self.ordering_key_len != 0 {
                return Err(CallError::Null("meta->ordering_key"));
            }
        } else {
            // SAFETY: non-NULL and readable for `ordering_key_len` bytes
            // for `'a` per the contract. An empty key is a key (refused
            // by the queue, naming the limit).
            let key = unsafe {
                bytes(
                    self.ordering_key,
                    self.ordering_key_len,
                    "meta->ordering_key",
                )
            }?;
            meta.ordering_key = Some(key);
        }
        // SAFETY: per the contract.
        meta.headers = unsafe { headers(self.headers, self.headers_len) }?;
        if self.ttl_ms > 0 {
            meta = meta.ttl(Duration::from_millis(self.ttl_ms));
        }
        if self.delay_ms > 0 {
            meta = meta.delay(Duration::from_millis(self.delay_ms));
        } else if self.deliver_at_ms > 0 {
            let at = UNIX_EPOCH
                .checked_add(Duration::from_millis(self.deliver_at_ms))
                .ok_or_else(|| {
                    CallError::InvalidOption(format!(
                        "meta->deliver_at_ms {} is past what the clock counts",
                        self.deliver_at_ms
                    ))
                })?;
            meta = meta.deliver_at(at);
        }
        Ok(meta)
    }

    /// Whether it schedules the message for later (which reservations
    /// cannot: they are written in the ring).
    pub(crate) fn scheduled(&self) -> bool {
        self.delay_ms != 0 || self.deliver_at_ms != 0
    }

    /// Whether it has an ordering key, headers or a time to live (which
    /// batches and reservations cannot carry).
    pub(crate) fn enveloped(&self) -> bool {
        !self.ordering_key.is_null()
            || self.ordering_key_len != 0
            || !self.headers.is_null()
            || self.headers_len != 0
            || self.ttl_ms != 0
    }
}

/// The headers of a `shmq_meta`, each checked: count, NULLs, UTF-8 names.
///
/// # Safety
/// As for [`shmq_meta::to_rust`].
unsafe fn headers<'a>(ptr: *const shmq_header, len: usize) -> Result<Headers<'a>, CallError> {
    let mut out = Headers::new();
    if len == 0 {
        return Ok(out);
    }
    if ptr.is_null() {
        return Err(CallError::Null("meta->headers"));
    }
    if len > MAX_HEADERS {
        // Checked before reading the array, which may be as long as it says.
        return Err(shmq::Error::InvalidOption(format!(
            "a message may have at most {MAX_HEADERS} headers (SHMQ_MAX_HEADERS), got meta->headers_len {len}"
        ))
        .into());
    }
    if !ptr.is_aligned() {
        return Err(invalid_argument("argument `meta->headers` is misaligned"));
    }
    // SAFETY: non-NULL, aligned, `len <= MAX_HEADERS` elements readable
    // for `'a` per the contract; `shmq_header` is plain integers and
    // pointers, valid for any bits.
    let array = unsafe { std::slice::from_raw_parts(ptr, len) };
    for (i, h) in array.iter().enumerate() {
        // SAFETY: `name` is NULL or readable for `name_len` bytes per the
        // contract.
        let name = unsafe { bytes(h.name.cast(), h.name_len, "meta->headers[i].name") }?;
        let name = std::str::from_utf8(name).map_err(|e| {
            shmq::Error::InvalidOption(format!(
                "meta->headers[{i}].name is not UTF-8 ({e}): {:?}",
                String::from_utf8_lossy(name)
            ))
        })?;
        // SAFETY: `value` is NULL or readable for `value_len` bytes per
        // the contract.
        let value = unsafe { bytes(h.value, h.value_len, "meta->headers[i].value") }?;
        out.push(name, value);
    }
    Ok(out)
}

/// How long a call may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all (timeout 0).
    Poll,
    /// At most this long.
    For(Duration),
    /// As long as it takes (`SHMQ_WAIT_FOREVER`, or a timeout so long that
    /// its deadline is not representable).
    Forever,
}

impl Wait {
    pub(crate) fn from_ns(ns: u64) -> Wait {
        match ns {
            0 => Wait::Poll,
            SHMQ_WAIT_FOREVER => Wait::Forever,
            ns => {
                let d = Duration::from_nanos(ns);
                // Core adds the timeout to `Instant::now()`; a sum that does
                // not fit would panic there. A century is forever enough.
                if d > Duration::from_secs(100 * 365 * 86_400)
                    || Instant::now().checked_add(d).is_none()
                {
                    Wait::Forever
                } else {
                    Wait::For(d)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::CallError::InvalidOption;

    #[test]
    fn limits_match() {
        assert_eq!(SHMQ_MAX_ORDERING_KEY, shmq::MAX_ORDERING_KEY);
        assert_eq!(SHMQ_MAX_HEADERS, shmq::MAX_HEADERS);
        assert_eq!(SHMQ_MAX_HEADER_NAME, shmq::MAX_HEADER_NAME);
    }

    #[test]
    fn defaults_match() {
        let d = shmq_options_default();
        assert!(d.dir.is_null() && d.spill_dir.is_null());
        // SAFETY: `dir` and `spill_dir` are NULL.
        let ours = unsafe { d.to_rust() }.unwrap();
        // `Options`' Debug lists every field, spill ones included.
        let (ours, theirs) = (format!("{ours:?}"), format!("{:?}", Options::new()));
        assert_eq!(ours, theirs);
        for field in [
            "spill_dir: None",
            "spill_max_bytes: 1073741824",
            "spill_segment_size: 67108864",
            "spill_fallback: Block",
            "sync: Never",
            "journal: None",
        ] {
            assert!(theirs.contains(field), "{field} not in {theirs}");
        }
        // No journal by default; its budget is only read with one.
        assert_eq!((d.journal_max_age_ms, d.journal_max_bytes), (0, 1 << 30));
    }

    #[test]
    fn trusted_owner_and_group_reach_rust() {
        let mut o = shmq_options_default();
        assert_eq!((o.trust_owner, o.trust_group), (-1, -1));
        // SAFETY: `dir` and `spill_dir` are NULL.
        let none = unsafe { o.to_rust() }.unwrap();
        assert_eq!(format!("{none:?}"), format!("{:?}", Options::new()));
        (o.trust_owner, o.trust_group) = (4242, 7);
        // SAFETY: as above.
        let ours = unsafe { o.to_rust() }.unwrap();
        let theirs = Options::new().trust_owner(4242).trust_group(7);
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        for bad in [-2, 1 << 40] {
            o.trust_owner = bad;
            // SAFETY: as above.
            assert!(matches!(unsafe { o.to_rust() }, Err(InvalidOption(_))));
        }
    }

    #[test]
    fn journal_options_reach_rust() {
        let mut o = shmq_options_default();
        o.journal_max_bytes = 1 << 20;
        // SAFETY: `dir` and `spill_dir` are NULL.
        let ours = unsafe { o.to_rust() }.unwrap();
        // Without an age there is no journal, whatever the budget.
        assert_eq!(format!("{ours:?}"), format!("{:?}", Options::new()));
        o.journal_max_age_ms = 90_000;
        // SAFETY: as above.
        let ours = unsafe { o.to_rust() }.unwrap();
        let theirs = Options::new().journal(Retention::new(Duration::from_secs(90), 1 << 20));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        o.journal_max_age_ms = u64::MAX;
        // SAFETY: as above.
        let ours = unsafe { o.to_rust() }.unwrap();
        let theirs =
            Options::new().journal(Retention::new(Duration::from_millis(u64::MAX), 1 << 20));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    }

    #[test]
    fn spill_options_reach_rust() {
        let mut o = shmq_options_default();
        o.spill_dir = c"/tmp/x".as_ptr();
        o.spill_max_bytes = 1 << 20;
        o.spill_segment_size = 64 << 10;
        o.spill_fallback = SHMQ_OVERFLOW_REJECT;
        o.sync = SHMQ_SYNC_EVERY_N;
        o.sync_every = 8;
        // SAFETY: `spill_dir` is a static C string, `dir` NULL.
        let ours = unsafe { o.to_rust() }.unwrap();
        let theirs = Options::new()
            .spill_dir("/tmp/x")
            .spill_max_bytes(1 << 20)
            .spill_segment_size(64 << 10)
            .spill_fallback(Overflow::Reject)
            .sync(SyncMode::EveryN(8));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        o.sync = SHMQ_SYNC_ALWAYS;
        o.sync_every = 0;
        // SAFETY: as above.
        let ours = unsafe { o.to_rust() }.unwrap();
        assert_eq!(
            format!("{ours:?}"),
            format!("{:?}", theirs.sync(SyncMode::Always))
        );
    }

    #[test]
    fn delivery_delay_reaches_rust() {
        let mut o = shmq_options_default();
        o.delivery_delay_ms = 1500;
        // SAFETY: `dir` and `spill_dir` are NULL.
        let ours = unsafe { o.to_rust() }.unwrap();
        let theirs = Options::new().delivery_delay(Duration::from_millis(1500));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    }

    #[test]
    fn a_meta_delay_wins_over_its_time() {
        let m = shmq_meta {
            type_id: 0,
            correlation_id: 0,
            key: std::ptr::null(),
            key_len: 0,
            ordering_key: std::ptr::null(),
            ordering_key_len: 0,
            headers: std::ptr::null(),
            headers_len: 0,
            ttl_ms: 0,
            delay_ms: 0,
            deliver_at_ms: 1_700_000_000_123,
        };
        assert!(m.scheduled());
        // SAFETY: every pointer is NULL.
        let at = unsafe { m.to_rust() }.unwrap();
        assert_eq!(
            (at.delay, at.deliver_at),
            (
                None,
                Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
            )
        );
        let both = shmq_meta { delay_ms: 250, ..m };
        // SAFETY: as above.
        let delayed = unsafe { both.to_rust() }.unwrap();
        assert_eq!(
            (delayed.delay, delayed.deliver_at),
            (Some(Duration::from_millis(250)), None)
        );
        let none = shmq_meta {
            deliver_at_ms: 0,
            ..m
        };
        assert!(!none.scheduled());
    }

    #[test]
    fn waits() {
        assert_eq!(Wait::from_ns(0), Wait::Poll);
        assert_eq!(Wait::from_ns(u64::MAX), Wait::Forever);
        assert_eq!(Wait::from_ns(u64::MAX - 1), Wait::Forever);
        assert_eq!(Wait::from_ns(5), Wait::For(Duration::from_nanos(5)));
    }

    #[test]
    fn bad_enums_are_errors() {
        let mut o = shmq_options_default();
        o.overflow = 7;
        // SAFETY: `dir` is NULL.
        assert!(matches!(unsafe { o.to_rust() }, Err(InvalidOption(_))));
        for bad in [
            shmq_options {
                spill_fallback: SHMQ_OVERFLOW_SPILL,
                ..shmq_options_default()
            },
            shmq_options {
                sync: 3,
                ..shmq_options_default()
            },
            shmq_options {
                sync: SHMQ_SYNC_EVERY_N,
                sync_every: 0,
                ..shmq_options_default()
            },
            shmq_options {
                spill_dir: c"".as_ptr(),
                ..shmq_options_default()
            },
        ] {
            // SAFETY: `dir` is NULL, `spill_dir` NULL or a static C string.
            assert!(matches!(unsafe { bad.to_rust() }, Err(InvalidOption(_))));
        }
        let mut c = shmq_consumer_options_default();
        c.ack = SHMQ_ACK_MANUAL;
        assert!(c.to_rust().is_ok());
        c.ack = 2;
        assert!(matches!(c.to_rust(), Err(InvalidOption(_))));
        assert!(nack(3, 0).is_err());
        assert_eq!(
            nack(SHMQ_NACK_REQUEUE_AFTER, 5).unwrap(),
            Nack::RequeueAfter(Duration::from_nanos(5))
        );
        assert!(start(9, 0).is_err());
        assert!(seek(9, 0).is_err());
    }
}
