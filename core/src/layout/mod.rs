//! What lives in the queue file, byte for byte.
//!
//! ```text
//! offset 0            Header (4 KiB): Config (immutable, checksummed), ready
//!                     word, RingControl (tail, head, wake-up words), the
//!                     admin lock, counters
//! groups_offset       max_groups × GroupRecord (256 B each)
//! producers_offset    MAX_PRODUCERS × ProducerRecord (128 B each)
//! slots_offset        slots × slot_stride bytes: SlotHeader (32 B) + payload,
//!                     rounded up to `geometry::slot_grain` (8 to 64 bytes)
//! total_size          (page-aligned)
//! ```
//!
//! Every type here is `#[repr(C)]`, holds plain integers and atomics only
//! (offsets, never pointers), has its size and field offsets asserted at
//! compile time, and derives zerocopy's `FromBytes + IntoBytes + KnownLayout`
//! as the proof that it has no padding and that all-zero bytes (a fresh
//! `ftruncate`d file) are a valid value. Under loom the atomics are loom's,
//! so those proofs and assertions apply to the std build only.

use crate::error::{Error, Result};
use crate::loom::{AtomicU32, AtomicU64};
#[cfg(not(loom))]
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

mod geometry;
mod schedule;
mod spill;
pub(crate) use geometry::{Geometry, slots_for_capacity};
pub(crate) use schedule::ScheduleControl;
pub(crate) use spill::{MAX_SPILL_PATH, SPILLING, SpillControl, SpillPath};

/// "SHMQRING" in little-endian: the first 8 bytes of every queue file.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMQRING");
/// Layout version written by this build. Bumped on any incompatible change.
pub(crate) const VERSION: u32 = 7;
/// Value of [`Header::ready`] once the creator has written everything.
pub(crate) const READY: u32 = 0x5245_4459; // "READ" + "Y"
/// Size of the header region.
pub(crate) const HEADER_SIZE: u64 = 4096;
/// Bytes of [`SlotHeader`] in front of every payload.
pub(crate) const SLOT_HEADER_SIZE: u64 = 32;
/// Bytes of one [`GroupRecord`].
pub(crate) const GROUP_RECORD_SIZE: u64 = 256;
/// Bytes of one [`ProducerRecord`]: two cache lines of its own, since its
/// producer writes `announce` and `committing` on every publish.
pub(crate) const PRODUCER_RECORD_SIZE: u64 = 128;
/// Producer registry size: live producer handles counted in `stats()`.
pub(crate) const MAX_PRODUCERS: u32 = 256;
/// Consumer registry size: live ack=manual consumers, all groups together.
pub(crate) const MAX_CONSUMERS: u32 = 256;
/// Bytes of one [`ConsumerRecord`].
pub(crate) const CONSUMER_RECORD_SIZE: u64 = 64;
/// Bytes of one [`LeaseRecord`].
pub(crate) const LEASE_RECORD_SIZE: u64 = 48;
/// Release hints per group (`GroupRecord::released`).
pub(crate) const RELEASED_HINTS: usize = 4;
/// Bytes of one lane word.
pub(crate) const LANE_SIZE: u64 = 8;
/// Largest `ordering_lanes`.
pub(crate) const MAX_ORDERING_LANES: u64 = 1 << 16;
/// Bytes of [`DeadLetterHeader`] in front of every dead letter's payload.
pub(crate) const DEAD_LETTER_HEADER_SIZE: u64 = 96;
/// Largest `dlq_slots`.
pub(crate) const MAX_DLQ_SLOTS: u64 = 1 << 20;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 48;
/// Largest `slots`.
pub(crate) const MAX_SLOTS: u64 = 1 << 30;
/// Largest `slot_size`.
pub(crate) const MAX_SLOT_SIZE: u64 = 64 << 20;
/// Largest `max_groups`.
pub(crate) const MAX_GROUPS: u32 = 1024;
/// Largest queue file we agree to create or map.
pub(crate) const MAX_TOTAL_SIZE: u64 = 1 << 40;

/// The options a queue was created with, and where its regions are.
/// Written once by the creator before `ready`; checksummed (crc32c in
/// [`Header::config_crc`]) so a garbled file is caught before any of it is
/// used.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout, Immutable))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub magic: u64,
    pub version: u32,
    pub header_size: u32,
    /// Ring capacity in messages; a power of two.
    pub slots: u64,
    /// Largest payload in bytes.
    pub slot_size: u32,
    /// Bytes from one slot to the next: `SLOT_HEADER_SIZE + slot_size`
    /// rounded up to `geometry::slot_grain` (8 to 64 bytes).
    pub slot_stride: u32,
    pub max_groups: u32,
    pub max_producers: u32,
    /// `Overflow` as a number (0 block, 1 reject, 2 spill).
    pub overflow: u32,
    pub max_deliveries: u32,
    pub lease_ns: u64,
    pub unblock_timeout_ns: u64,
    pub dedup_window: u64,
    pub dlq_slots: u32,
    /// File mode bits the queue was created with.
    pub mode: u32,
    pub slots_offset: u64,
    pub groups_offset: u64,
    pub producers_offset: u64,
    pub total_size: u64,
    /// Random id of this incarnation of the queue: a queue removed and
    /// created again under the same name gets a new one.
    pub creation_id: u64,
    /// CLOCK_REALTIME at creation.
    pub created_ns: u64,
    pub consumers_offset: u64,
    pub leases_offset: u64,
    pub dlq_offset: u64,
    pub max_consumers: u32,
    /// Bytes from one dead letter to the next.
    pub dlq_stride: u32,
    pub dedup_offset: u64,
    /// How long a publish key is remembered, in ns.
    pub dedup_ttl_ns: u64,
    /// overflow=spill: most bytes of segment files on disk.
    pub spill_max_bytes: u64,
    /// overflow=spill: bytes of one segment file.
    pub spill_segment_size: u64,
    /// overflow=spill: what a publish does when the spill is full too
    /// (`Overflow` as a number: 0 block, 1 reject).
    pub spill_fallback: u32,
    /// When segment writes are flushed: 0 never, 1 every `sync_every`
    /// records, 2 always.
    pub sync_mode: u32,
    pub sync_every: u32,
    /// `OnExpiry` as a number (0 dead-letter, 1 discard).
    pub on_expiry: u32,
    /// Journal retention by age in ns (0 with no journal).
    pub journal_max_age_ns: u64,
    /// Journal retention by bytes of segment files (0: no journal).
    pub journal_max_bytes: u64,
    /// Ordering lanes per ack=manual group (a power of two): a key's lane
    /// is its hash modulo this (see `protocol/lanes.rs`).
    pub ordering_lanes: u64,
    /// Where the lanes region starts.
    pub lanes_offset: u64,
    /// The largest message body (envelope and payload) the queue takes.
    pub max_message_size: u64,
    /// How far an ack=manual group's dispatch may run ahead of its
    /// `committed` cursor, in slots (`Options::max_in_flight`): its lease
    /// table has this many records, rounded up to a power of two.
    pub max_in_flight: u64,
    /// Every message's time to live in ns (`Options::message_ttl`; 0:
    /// none), judged from its timestamp.
    pub message_ttl_ns: u64,
    /// The delay every message is published with unless its own says
    /// otherwise (`Options::delivery_delay`; 0: none), in ns.
    pub delivery_delay_ns: u64,
}

/// A futex word and the number of processes/threads asleep on it.
///
/// Protocol (no lost wake-up; loom model `wake_up_is_never_lost`):
/// - a sleeper increments `waiters` (SeqCst), loads `word`, re-checks its
///   condition (SeqCst load), and only then sleeps while `word` is unchanged;
/// - a waker makes its change (a SeqCst RMW), loads `waiters` (SeqCst) and,
///   only if it is not 0, bumps `word` and issues FUTEX_WAKE.
///
/// The SeqCst total order puts either the waker's load after the sleeper's
/// increment (the waker wakes it) or the sleeper's re-check after the
/// waker's change (it does not sleep). So the fast path makes no system call
/// while nobody sleeps.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct Signal {
    pub word: AtomicU32,
    /// Bit i set: the sleeper in slot i of this signal's [`Sleepers`]
    /// table is (about to be) asleep on `word`. Wakers only ask whether it
    /// is 0; a sleeper killed in its sleep leaves its bit, which
    /// `protocol::signal::repair_sleepers` clears once its key is dead.
    pub waiters: AtomicU32,
}

/// Sleeper slots of a signal: at most this many registered sleepers (one
/// bit each in `Signal::waiters`); more sleep unregistered, polling every
/// millisecond. Two under loom, to keep the models small.
pub(crate) const SLEEPERS: usize = if cfg!(loom) { 2 } else { 32 };

/// Who sleeps on the ring's two signals: entry i is 0 (free) or the
/// liveness key (`os/liveness.rs`) of the process whose thread sleeps
/// with bit i of the signal's `waiters`.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct Sleepers {
    /// Consumers asleep for data (`RingControl::data`).
    pub data: [AtomicU64; SLEEPERS],
    /// Producers asleep for space (`RingControl::space`).
    pub space: [AtomicU64; SLEEPERS],
}

/// The contended words of the ring, each on its own cache line.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct RingControl {
    /// Next position to claim (= the seq the next message gets). Producers
    /// CAS it forward; it never goes back.
    pub tail: AtomicU64,
    _pad0: [u8; 56],
    /// Oldest retained position: no group's committed cursor is below it,
    /// and producers may claim only positions `< head + slots`. Moves
    /// forward only, and only under the admin lock.
    pub head: AtomicU64,
    /// Producer records whose `revoked` word is set: stalled writers a
    /// consumer aborted while they may still be writing their record
    /// (`protocol/ring/`). On `head`'s line, which every begin reads.
    pub revoked: AtomicU64,
    /// The end of the furthest record of more than one slot ever begun
    /// (a position). The slots after such a record's first hold payload
    /// bytes where a state word would be; `head`, moving below this,
    /// clears them first (`Ring::clear_passed`), so that a later lap never
    /// takes payload for a state word. Raised (`fetch_max`) by writers of
    /// long records only.
    pub long_until: AtomicU64,
    _pad1: [u8; 40],
    /// Producers bump this when they commit while consumers sleep.
    pub data: Signal,
    /// Bit i set: the async waiter of `Header::doorbells.data[i]` is armed
    /// for data (see `protocol/doorbell.rs`). Beside `data` on its line,
    /// so the waker reads both with one cache miss.
    pub data_armed: AtomicU64,
    _pad2: [u8; 48],
    /// Consumers bump this when they free space while producers sleep.
    pub space: Signal,
    /// As `data_armed`, for producers waiting for room.
    pub space_armed: AtomicU64,
    _pad3: [u8; 48],
}

/// Entries of a doorbell table: at most this many async waiters per
/// signal and queue (a bit each in `RingControl::data_armed` /
/// `space_armed`). Two under loom, to keep the models small.
pub(crate) const DOORBELLS: usize = if cfg!(loom) { 2 } else { 64 };

/// The async waiters' doorbells (see `protocol/doorbell.rs`): entry i is
/// 0 (free) or its owner's pid (high 32 bits) and a nonzero nonce (low 32
/// bits), which name the owner's doorbell socket.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct Doorbells {
    /// Consumers waiting for a message.
    pub data: [AtomicU64; DOORBELLS],
    /// Producers waiting for room.
    pub space: [AtomicU64; DOORBELLS],
}

/// A lock for the rare operations that change who gates the ring: group
/// create/delete/seek and advancing `head`. Robust: it stores the holder's
/// pid and start time, and a waiter takes it over from a dead holder.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct AdminLock {
    /// The holder's pid, written after it took the lock (0 until then,
    /// and when free): for a liveness check where the key cannot be
    /// asked.
    pub holder: AtomicU32,
    _pad: u32,
    /// The lock word: 0 when free, else the holder's liveness key
    /// (`os/liveness.rs`), taken by one CAS (`protocol/lock.rs`).
    pub holder_key: AtomicU64,
    _pad1: [u8; 48],
}

/// Counters of rare events, bumped on slow paths only.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct Counters {
    /// Publishes refused with `Full` (overflow=reject).
    pub rejected: AtomicU64,
    /// Positions aborted (stuck or dead producer, or dropped reservation).
    pub aborted: AtomicU64,
    /// Keyed publishes not enqueued because their key was remembered.
    pub deduplicated: AtomicU64,
    /// Slots claimed past the first of each record: `tail` less this is
    /// the records claimed (messages longer than a slot take several).
    /// Bumped only for such messages.
    pub extra_slots: AtomicU64,
    _pad: [u8; 32],
}

/// The first 4 KiB of a queue file.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct Header {
    pub config: Config,
    /// [`READY`] once the creator has written the whole file; stored last,
    /// with Release (pairs with the opener's Acquire load).
    pub ready: AtomicU32,
    /// crc32c of `config`'s bytes.
    pub config_crc: u32,
    _pad0: [u8; 40],
    pub ring: RingControl,
    pub admin: AdminLock,
    pub counters: Counters,
    /// Dead letters appended so far: the order stamp of the next one.
    pub dlq_order: AtomicU64,
    /// Keys remembered so far: the next dedup entry to (re)use is this
    /// modulo `dedup_window`. Written under the admin lock.
    pub dedup_next: AtomicU64,
    /// Keyed publishes in flight: producer records whose `keyed_pos` is
    /// set (`open_queue/dedup.rs`). 0 lets `head` move without looking at the
    /// producer records; a producer killed mid-publish leaves it above 0
    /// until its record is taken over.
    pub keyed_in_flight: AtomicU64,
    /// 1 once a message was published with a time to live of its own
    /// (`Meta::ttl`); never 0 again. With no `message_ttl` either, no
    /// message can expire, and a producer held by a full ring does not
    /// look for expired ones (`open_queue/expiry.rs`).
    pub ttl_seen: AtomicU64,
    _pad1: [u8; 32],
    /// Where the spill stands (overflow=spill); see `protocol/spill.rs`.
    pub spill: SpillControl,
    /// The spill directory (overflow=spill or a journal), written once
    /// before `ready`; the journal lives in its `journal/` subdirectory.
    pub spill_path: SpillPath,
    /// Where the journal stands (see `open_queue/journal.rs`); the same words as the
    /// spill's: `end_seq` is the next seq to journal (it gates `head`),
    /// `read_seq` the oldest retained, `read_seg` the oldest segment.
    pub journal: SpillControl,
    /// Where the dead-letter queue's overflow stands (overflow=spill; see
    /// `open_queue/dead_letters.rs`): `end_seq` counts dead letters appended to its segments,
    /// `read_seq` those moved back into the region; `full` is the index
    /// below which every one is redriven when it comes back.
    pub dlq_spill: SpillControl,
    /// The async waiters' doorbells; their armed bits are in `ring`.
    pub doorbells: Doorbells,
    /// Who sleeps on the ring's signals (see [`Sleepers`]).
    pub sleepers: Sleepers,
    /// Messages scheduled for later (`Meta::delay`, `Meta::deliver_at`):
    /// see [`ScheduleControl`].
    pub schedule: ScheduleControl,
}

/// States of a ring slot, in the low 2 bits of [`SlotHeader::state`].
pub(crate) mod slot_state {
    /// Never used.
    pub const EMPTY: u64 = 0;
    /// The message is complete and may be read.
    pub const COMMITTED: u64 = 2;
    /// The position carries no message; consumers skip it.
    pub const ABORTED: u64 = 3;
}

/// What sits in front of every payload in the ring.
///
/// `state` bit layout (see `protocol/ring/`): bits 0..2 are the
/// [`slot_state`], then the record's span in slots (log2(slots) bits), then
/// the lap of the last position that used the slot. The other
/// fields are plain data written by the claimer before its commit and read
/// by consumers only after an Acquire load of COMMITTED.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct SlotHeader {
    pub state: AtomicU64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    /// Bytes of the body (the payload, after an envelope if the top bit,
    /// `envelope::ENVELOPED`, is set: see `record/envelope.rs`).
    pub len: u32,
    pub type_id: u32,
}

/// A durable consumer group.
///
/// All fields are atomics (or padding never written), so shared references
/// to a record are sound while other processes change it.
/// Line 0 (identity) is written only under the admin lock; line 1 says who
/// consumes; line 2 is written by the group's consumers; line 3 is read by
/// producers when they recompute `head`.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct GroupRecord {
    /// 0 free, 1 active. Written under the admin lock (Release), read with
    /// Acquire.
    pub state: AtomicU32,
    /// Bumped whenever the record is created, deleted or seeked, so an
    /// attached consumer notices that its view is stale.
    pub generation: AtomicU32,
    pub name_len: AtomicU32,
    /// 1 once the group's lease table (and lanes) are allocated and
    /// zeroed, by its first ack=manual consumer, under the admin lock;
    /// never 0 again. Until then the table's pages are holes nobody reads
    /// (a read would allocate them: `OpenQueue::leases_in_use`).
    pub leases_allocated: AtomicU32,
    /// The name's bytes, 8 to a word (atomics only, so that a `&GroupRecord`
    /// over memory another process writes is sound).
    pub name: [AtomicU64; MAX_GROUP_NAME / 8],
    /// The attached ack=auto consumer: `pid << 32 | per-process token`, 0
    /// if none.
    pub owner: AtomicU64,
    /// The last owner's liveness key (`os/liveness.rs`; 0 if none yet),
    /// stored before `owner` (under the admin lock), so a consumer killed
    /// between them reads dead.
    pub owner_key: AtomicU64,
    pub created_ns: AtomicU64,
    /// Redeliveries waiting (nacks, dropped deliveries, reclaimed leases)
    /// since the count was last looked at: a hint for ack=manual consumers
    /// to scan their in-flight window now rather than at the next interval.
    pub redeliver_hint: AtomicU64,
    /// Messages acked (ack=manual).
    pub acked: AtomicU64,
    /// Messages nacked (ack=manual).
    pub nacked: AtomicU64,
    /// Leases taken away because they ran out or their consumer died.
    pub expired: AtomicU64,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// Next position to hand out (the durable cursor: a restarted
    /// consumer resumes here). In range `head ..= tail`.
    pub next: AtomicU64,
    /// Messages delivered to this group (first deliveries).
    pub delivered: AtomicU64,
    /// Deliveries after the first (attempt > 1).
    pub redelivered: AtomicU64,
    /// Dead letters redriven to this group and not yet finished by it.
    pub redrive: AtomicU64,
    /// Keyed messages their lane just released (seq + 1, 0: empty): where
    /// the next receive looks first, so a release costs no scan of the
    /// in-flight window (see `protocol/lanes.rs`).
    pub released: [AtomicU64; RELEASED_HINTS],
    /// Every position below it is finished by this group (its payload is
    /// no longer borrowed), so producers may reuse its slot. `<= next`.
    pub committed: AtomicU64,
    /// Messages whose time to live ran out before the group finished
    /// them (`Meta::ttl`, `Options::message_ttl`): dead-lettered or
    /// dropped. Rare, so it shares `committed`'s line.
    pub messages_expired: AtomicU64,
    _pad3: [u8; 48],
}

/// The delivery state of one position for one ack=manual group. `word`
/// packs (see `protocol/lease/`) the position's low 32 bits, a state, the attempt
/// count, the holding consumer's registry index and an epoch; the other
/// fields are written only by whoever owns the word's current state.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct LeaseRecord {
    pub word: AtomicU64,
    /// CLOCK_MONOTONIC ns: when a lease runs out, or when a requeued
    /// message may be delivered again.
    pub deadline_ns: AtomicU64,
    /// CLOCK_REALTIME ns of the first and the latest delivery.
    pub first_ns: AtomicU64,
    pub last_ns: AtomicU64,
    /// A keyed position's link to the next message of its lane, or that
    /// it finished (see `protocol/lanes.rs`); tagged with the position.
    pub link: AtomicU64,
    /// A keyed position's predecessor in its lane, as seq + 1 (0: none).
    /// Written only by its indexer.
    pub prev: AtomicU64,
}

/// A live ack=manual consumer: where leases name their holder, so that a
/// dead holder's leases are redelivered without waiting for them to run
/// out.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct ConsumerRecord {
    /// `pid << 32 | per-process token`, 0 if free.
    pub owner: AtomicU64,
    /// The owner's liveness key (`os/liveness.rs`; 0 if free). Taken
    /// first, by one CAS: the claim (`protocol/registry.rs`).
    pub owner_key: AtomicU64,
    /// CLOCK_REALTIME ns of the consumer's last receive call.
    pub heartbeat_ns: AtomicU64,
    /// Index of its group + 1 (0 while being set up).
    pub group: AtomicU64,
    _pad: [u8; 32],
}

/// A remembered idempotency key (see `open_queue/dedup.rs`). Written under the admin
/// lock, except `state`'s last store by the publishing producer.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct DedupEntry {
    /// 0 free, `key | 1` being published by the process of liveness key
    /// `key` (`os/liveness.rs`), 2 published.
    pub state: AtomicU64,
    /// 64-bit hash of the key (never 0 for a used entry).
    pub key: AtomicU64,
    /// The seq the keyed message got (or is getting).
    pub seq: AtomicU64,
    /// CLOCK_REALTIME ns when the key was first published.
    pub time_ns: AtomicU64,
}

/// Bytes of one [`DedupEntry`].
pub(crate) const DEDUP_ENTRY_SIZE: u64 = 32;
/// Largest `dedup_window`.
pub(crate) const MAX_DEDUP_WINDOW: u64 = 1 << 20;

/// What sits in front of a dead letter's payload. Its state word is
/// apart, in the DLQ's table of state words (`Geometry::dlq_offset`), so
/// that a dead letter may take several entries in a row (a run: its
/// header, then its payload, one slice); the fields here are plain data
/// owned by whoever moved the state away from ready/free.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct DeadLetterHeader {
    /// Entries its run takes (1 up to `dlq_slots`).
    pub span: u64,
    pub seq: u64,
    pub group: u32,
    pub attempts: u32,
    pub reason: u32,
    pub type_id: u32,
    /// Bytes of the body; top bit: it starts with an envelope (as
    /// [`SlotHeader::len`]).
    pub len: u32,
    /// Its redrive history: the times it was redriven (low 16 bits) and
    /// its deliveries since the last redrive (high 16 bits). Zero for a
    /// dead letter never redriven.
    pub redrive: u32,
    pub first_ns: u64,
    pub last_ns: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub dead_ns: u64,
    /// Order of dead-lettering (from `Header::dlq_order`).
    pub order: u64,
    /// `created_ns` of the group it came from: a group deleted and made
    /// again in the same record is not the same group.
    pub group_created_ns: u64,
}

/// A live producer handle: counted in `stats().producers`, and where it
/// announces the position it is writing (see `protocol/ring/`).
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct ProducerRecord {
    /// `pid << 32 | per-process token`, 0 if free.
    pub owner: AtomicU64,
    /// The owner's liveness key (`os/liveness.rs`; 0 if free). Taken
    /// first, by one CAS: the claim (`protocol/registry.rs`).
    pub owner_key: AtomicU64,
    pub registered_ns: AtomicU64,
    /// Position being written + 1, or 0. Written only by the owner: SeqCst
    /// before it looks at the slot, Release (to 0) after its last write.
    pub announce: AtomicU64,
    /// The keyed publish in flight: its position (ring position or spill
    /// seq) + 1, or 0. Written only by the owner (Release, before the
    /// dedup entry learns the position and before the position is
    /// written); read under the admin lock by whoever moves `head` past
    /// it or cancels a dead spiller's seq (see `open_queue/dedup.rs`). Zero in
    /// files made before it existed: the same as "none".
    pub keyed_pos: AtomicU64,
    /// Index of the dedup entry of that keyed publish.
    pub keyed_entry: AtomicU64,
    /// The end (exclusive) of the record being written: the span of the
    /// record `announce` names (a batch: of its current record). Written
    /// only by the owner (Release) before it looks at the record's slot.
    pub announce_end: AtomicU64,
    /// Position + 1 of our record a consumer aborted while we may still
    /// have been writing it (0: none); counted in `RingControl::revoked`.
    /// Set by the aborter, cleared by whoever finds us no longer writing
    /// it (`protocol/ring/`).
    pub revoked: AtomicU64,
    /// Position + 1 of the record whose asymmetric commit has begun (0:
    /// none): stored before the producer reads `revoked` for the last
    /// time, cleared after its store of the state word. A settler that
    /// revoked us reads it after its heavy fence (`protocol/ring/`).
    pub committing: AtomicU64,
    /// How this producer commits, fixed for its life: [`commit_mode`]
    /// `CAS` (0, also every record of an older file) or `ASYMMETRIC`.
    pub mode: AtomicU64,
    pub _pad: [u64; 6],
}

/// Values of [`ProducerRecord::mode`].
pub(crate) mod commit_mode {
    /// The commit is a CAS of the state word; the announcement a SeqCst
    /// store. For processes that cannot make the heavy fence.
    pub(crate) const CAS: u64 = 0;
    /// Plain stores and light fences on the publish path; the rare side
    /// makes the heavy fence (`membarrier`).
    pub(crate) const ASYMMETRIC: u64 = 1;
}

#[cfg(not(loom))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Config>() == 272);
    assert!(offset_of!(Header, ring) == 320);
    assert!(offset_of!(Config, spill_max_bytes) == 176);
    assert!(offset_of!(Config, sync_mode) == 196);
    assert!(offset_of!(Config, journal_max_bytes) == 216);
    assert!(offset_of!(Config, ordering_lanes) == 224);
    assert!(offset_of!(Config, lanes_offset) == 232);
    assert!(offset_of!(Config, max_message_size) == 240);
    assert!(offset_of!(Config, max_in_flight) == 248);
    assert!(offset_of!(LeaseRecord, link) == 32);
    assert!(offset_of!(Header, journal) == 1984);
    assert!(offset_of!(Header, dlq_spill) == 2176);
    assert!(size_of::<SpillControl>() == 192);
    assert!(offset_of!(SpillControl, end_seq) == 64);
    assert!(offset_of!(SpillControl, checked_ns) == 168);
    assert!(size_of::<SpillPath>() == 1024);
    assert!(offset_of!(Header, spill) == 768);
    assert!(offset_of!(Header, spill_path) == 960);
    assert!(offset_of!(Config, consumers_offset) == 128);
    assert!(offset_of!(Config, max_consumers) == 152);
    assert!(offset_of!(Config, slots) == 16);
    assert!(offset_of!(Config, slots_offset) == 80);
    assert!(offset_of!(Config, created_ns) == 120);
    assert!(size_of::<Signal>() == 8);
    assert!(size_of::<RingControl>() == 256);
    assert!(offset_of!(RingControl, head) == 64);
    assert!(offset_of!(RingControl, data) == 128);
    assert!(offset_of!(RingControl, space) == 192);
    assert!(offset_of!(RingControl, data_armed) == 136);
    assert!(offset_of!(RingControl, space_armed) == 200);
    assert!(size_of::<Doorbells>() == 1024);
    assert!(offset_of!(Header, doorbells) == 2368);
    assert!(offset_of!(Header, sleepers) == 3392);
    assert!(size_of::<Sleepers>() == 512);
    assert!(offset_of!(Header, schedule) == 3904);
    assert!(size_of::<ScheduleControl>() == 192);
    assert!(offset_of!(ScheduleControl, next_due_ns) == 64);
    assert!(offset_of!(ScheduleControl, cancelled) == 120);
    assert!(size_of::<AdminLock>() == 64);
    assert!(size_of::<Counters>() == 64);
    assert!(size_of::<Header>() as u64 == HEADER_SIZE);
    assert!(offset_of!(Header, ready) == 272);
    assert!(offset_of!(Header, ring) == 320);
    assert!(offset_of!(Header, admin) == 576);
    assert!(offset_of!(Header, counters) == 640);
    assert!(offset_of!(Header, dlq_order) == 704);
    assert!(offset_of!(Header, dedup_next) == 712);
    assert!(size_of::<DedupEntry>() as u64 == DEDUP_ENTRY_SIZE);
    assert!(offset_of!(Config, dedup_offset) == 160);
    assert!(align_of::<Header>() == 8);
    assert!(size_of::<SlotHeader>() as u64 == SLOT_HEADER_SIZE);
    assert!(size_of::<GroupRecord>() as u64 == GROUP_RECORD_SIZE);
    assert!(offset_of!(GroupRecord, leases_allocated) == 12);
    assert!(offset_of!(GroupRecord, owner) == 64);
    assert!(offset_of!(GroupRecord, dead_lettered) == 120);
    assert!(offset_of!(GroupRecord, next) == 128);
    assert!(offset_of!(GroupRecord, committed) == 192);
    assert!(offset_of!(GroupRecord, released) == 160);
    assert!(size_of::<LeaseRecord>() as u64 == LEASE_RECORD_SIZE);
    assert!(size_of::<ConsumerRecord>() as u64 == CONSUMER_RECORD_SIZE);
    assert!(size_of::<DeadLetterHeader>() as u64 == DEAD_LETTER_HEADER_SIZE);
    assert!(offset_of!(DeadLetterHeader, redrive) == 36);
    assert!(offset_of!(DeadLetterHeader, first_ns) == 40);
    assert!(offset_of!(DeadLetterHeader, order) == 80);
    assert!(size_of::<ProducerRecord>() as u64 == PRODUCER_RECORD_SIZE);
    assert!(offset_of!(ProducerRecord, announce) == 24);
    assert!(offset_of!(ProducerRecord, keyed_pos) == 32);
    assert!(offset_of!(ProducerRecord, keyed_entry) == 40);
    assert!(offset_of!(ProducerRecord, announce_end) == 48);
    assert!(offset_of!(ProducerRecord, revoked) == 56);
    assert!(offset_of!(ProducerRecord, committing) == 64);
    assert!(offset_of!(ProducerRecord, mode) == 72);
    assert!(offset_of!(RingControl, revoked) == 72);
    assert!(offset_of!(RingControl, long_until) == 80);
};

// Heap twins of the shared layouts, for tests and loom models (all-zero,
// exactly what a fresh file holds).
#[cfg(any(test, loom))]
impl Signal {
    pub(crate) fn new() -> Signal {
        Signal {
            word: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        }
    }
}

#[cfg(any(test, loom))]
impl RingControl {
    pub(crate) fn new() -> RingControl {
        RingControl {
            tail: AtomicU64::new(0),
            _pad0: [0; 56],
            head: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            long_until: AtomicU64::new(0),
            _pad1: [0; 40],
            data: Signal::new(),
            data_armed: AtomicU64::new(0),
            _pad2: [0; 48],
            space: Signal::new(),
            space_armed: AtomicU64::new(0),
            _pad3: [0; 48],
        }
    }
}

#[cfg(any(test, loom))]
impl ProducerRecord {
    pub(crate) fn new() -> ProducerRecord {
        ProducerRecord {
            owner: AtomicU64::new(0),
            owner_key: AtomicU64::new(0),
            registered_ns: AtomicU64::new(0),
            announce: AtomicU64::new(0),
            keyed_pos: AtomicU64::new(0),
            keyed_entry: AtomicU64::new(0),
            announce_end: AtomicU64::new(0),
            revoked: AtomicU64::new(0),
            committing: AtomicU64::new(0),
            mode: AtomicU64::new(0),
            _pad: [0; 6],
        }
    }
}

#[cfg(any(test, loom))]
impl Doorbells {
    pub(crate) fn new() -> Doorbells {
        Doorbells {
            data: std::array::from_fn(|_| AtomicU64::new(0)),
            space: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[cfg(loom)]
impl Sleepers {
    pub(crate) fn new() -> Sleepers {
        Sleepers {
            data: std::array::from_fn(|_| AtomicU64::new(0)),
            space: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

#[cfg(any(test, loom))]
impl AdminLock {
    pub(crate) fn new() -> AdminLock {
        AdminLock {
            holder: AtomicU32::new(0),
            _pad: 0,
            holder_key: AtomicU64::new(0),
            _pad1: [0; 48],
        }
    }
}

#[cfg(loom)]
impl ConsumerRecord {
    pub(crate) fn new() -> ConsumerRecord {
        ConsumerRecord {
            owner: AtomicU64::new(0),
            owner_key: AtomicU64::new(0),
            heartbeat_ns: AtomicU64::new(0),
            group: AtomicU64::new(0),
            _pad: [0; 32],
        }
    }
}

#[cfg(any(test, loom))]
impl GroupRecord {
    pub(crate) fn new() -> GroupRecord {
        GroupRecord {
            state: AtomicU32::new(0),
            generation: AtomicU32::new(0),
            name_len: AtomicU32::new(0),
            leases_allocated: AtomicU32::new(0),
            name: std::array::from_fn(|_| AtomicU64::new(0)),
            owner: AtomicU64::new(0),
            owner_key: AtomicU64::new(0),
            created_ns: AtomicU64::new(0),
            redeliver_hint: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            next: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            redrive: AtomicU64::new(0),
            released: std::array::from_fn(|_| AtomicU64::new(0)),
            committed: AtomicU64::new(0),
            messages_expired: AtomicU64::new(0),
            _pad3: [0; 48],
        }
    }
}

#[cfg(any(test, loom))]
impl DedupEntry {
    pub(crate) fn new() -> DedupEntry {
        DedupEntry {
            state: AtomicU64::new(0),
            key: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            time_ns: AtomicU64::new(0),
        }
    }
}

#[cfg(any(test, loom))]
impl LeaseRecord {
    pub(crate) fn new() -> LeaseRecord {
        LeaseRecord {
            word: AtomicU64::new(0),
            deadline_ns: AtomicU64::new(0),
            first_ns: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
            link: AtomicU64::new(0),
            prev: AtomicU64::new(0),
        }
    }
}

/// crc32c of a config's bytes.
#[cfg(not(loom))]
pub(crate) fn config_crc(config: &Config) -> u32 {
    crc32c::crc32c(config.as_bytes())
}
