//! The open queue: one queue file as this process has it open
//! ([`OpenQueue`]: its mapping, config, geometry and segment handles; made
//! and checked in `queue_file.rs`), and the process-local services that run
//! the protocols over that memory and those stores: the spill, the journal,
//! the dead-letter queue, idempotent publish, seek and group info. Everything here
//! is beneath the API (`api/`) and above the protocols and the stores.

pub(crate) mod control_words;
pub(crate) mod dead_letters;
pub(crate) mod dedup;
pub(crate) mod expiry;
pub(crate) mod group_info;
pub(crate) mod journal;
pub(crate) mod queue_file;
pub(crate) mod schedule;
pub(crate) mod seek;
pub(crate) mod spill;

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicU32 as StdAtomicU32;

use crate::error::{Error, Result};
use crate::layout::{
    Config, ConsumerRecord, DedupEntry, Geometry, GroupRecord, Header, LANE_SIZE, LeaseRecord,
    ProducerRecord,
};
use crate::loom::{AtomicU64, Ordering};
use crate::options::{Overflow, Start};
use crate::os;
use crate::protocol::announcement::{self, RANGE};
use crate::protocol::dedup_table::DedupIndex;
use crate::protocol::group::{Groups, owner_pid};
use crate::protocol::lease::{Leases, Now};
use crate::protocol::lock::{AdminGuard, ThisProcess};
use crate::protocol::ring::{Peek, Ring, SlotStates};
use crate::protocol::spill::Record;
use crate::record::read;
use crate::store::segment::Segments;

/// The slots region of a mapping.
pub(crate) struct MappedSlots {
    base: *mut u8,
    stride: usize,
    mask: u64,
}

impl MappedSlots {
    /// Address of the slot holding `pos`.
    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> *mut u8 {
        // SAFETY: `(pos & mask) * stride` is below `slots * stride`, which
        // `validate` checked lies inside the mapping after `base`.
        unsafe { self.base.add((pos & self.mask) as usize * self.stride) }
    }
}

impl SlotStates for MappedSlots {
    #[inline(always)]
    fn state(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: the slot is inside the mapping (see `slot`), 8-byte
        // aligned (page-aligned region, stride a multiple of 8), and its
        // first 8 bytes are only ever accessed atomically, by every process.
        unsafe { &*(self.slot(pos) as *const AtomicU64) }
    }
}

/// One process's view of a queue file. Shared by the `Queue` and every
/// producer and consumer made from it.
pub(crate) struct OpenQueue {
    pub(crate) map: os::map::Mapping,
    pub(crate) file: File,
    pub path: PathBuf,
    pub name: String,
    pub config: Config,
    pub geo: Geometry,
    pub me: ThisProcess,
    /// overflow=spill: this process's handles on the segment files (used
    /// only under the admin lock).
    pub spill: Option<std::sync::Mutex<Segments>>,
    /// With a journal: this process's handles on its segment files (used
    /// only under the admin lock).
    pub journal: Option<std::sync::Mutex<Segments>>,
    /// overflow=spill: this process's handles on the dead-letter queue's
    /// overflow segments (used only under the admin lock).
    pub dlq_spill: Option<std::sync::Mutex<Segments>>,
    /// This process's index of the dedup table (used only under the admin
    /// lock; `open_queue/dedup.rs`).
    pub dedup_index: std::sync::Mutex<DedupIndex>,
    /// The last record a settle found held by its producer's commit
    /// (position + 1) and when (monotonic ns): it is asked again only
    /// after [`SETTLE_AGAIN_NS`], so a spinning consumer makes no storm
    /// of heavy fences while a stopped producer holds it.
    pub held_by_commit: [std::sync::atomic::AtomicU64; 2],
    /// CLOCK_MONOTONIC ns of this process's last look for idle groups'
    /// expired messages (`open_queue/expiry.rs`), so that a producer held
    /// by a full ring looks now and then, not on every try.
    pub expiry_looked: std::sync::atomic::AtomicU64,
    /// Why this process must not write the queue's segments (spill,
    /// journal, dead-letter overflow): the directory it sees at the
    /// queue's spill path is not the queue's (`store/owner.rs`).
    pub stores_refused: Option<String>,
    /// The queue's store directory as its creator recorded it (the
    /// spill's; the schedule's is its `schedule/`), if it has one.
    pub store_dir: Option<PathBuf>,
    /// Whose files this process was told to trust (`Options::trust_*`).
    pub trust: crate::options::Trust,
    /// This process's handle on the schedule's files, opened on first use
    /// (`open_queue/schedule.rs`); held while the schedule lock is.
    pub schedule: std::sync::Mutex<Option<crate::store::schedule::ScheduleFiles>>,
    /// Where this queue's async waiters' doorbells live (its directory),
    /// registered for wakers by the address of the doorbell tables
    /// (`os/doorbell.rs`) until this handle is dropped.
    pub bells: std::sync::Arc<os::doorbell::Place>,
}

/// How long a settle that found a record held by its producer's commit
/// is not asked again (`OpenQueue::settle_abort`): a heavy fence costs a
/// system call and an interrupt of every CPU running a producer.
const SETTLE_AGAIN_NS: u64 = 100_000;

impl OpenQueue {
    /// The address range of the doorbell tables in this mapping.
    fn bell_tables(&self) -> std::ops::Range<usize> {
        let start = &self.header().doorbells as *const crate::layout::Doorbells as usize;
        start..start + std::mem::size_of::<crate::layout::Doorbells>()
    }

    /// Lets this process's wakers find the doorbells of this mapping
    /// (called once the handle is made).
    pub(crate) fn register_bells(&self) {
        os::doorbell::register(self.bell_tables(), self.bells.clone());
    }
}

impl Drop for OpenQueue {
    fn drop(&mut self) {
        os::doorbell::unregister(self.bell_tables());
    }
}

// SAFETY: the mapping is shared memory that every process and thread
// accesses only through atomics, through raw pointers into slots that the
// ring protocol gives to one writer at a time, or as immutable config; the
// raw base pointer itself is never mutated.
unsafe impl Send for OpenQueue {}
// SAFETY: as above: `&OpenQueue` exposes nothing that is not safe to use from
// several threads at once.
unsafe impl Sync for OpenQueue {}

impl OpenQueue {
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `validate` checked the mapping holds a whole header at its
        // page-aligned base. Its fields are atomics, padding nobody writes,
        // and the config that is immutable once `ready` was seen.
        unsafe { &*(self.map.base() as *const Header) }
    }

    #[inline(always)]
    pub(crate) fn ring(&self) -> Ring<'_, MappedSlots> {
        Ring {
            ctl: &self.header().ring,
            slots: MappedSlots {
                // SAFETY: slots_offset + slots * stride <= total_size ==
                // mapping length (checked by `validate`).
                base: unsafe { self.map.base().add(self.geo.slots_offset as usize) },
                stride: self.geo.slot_stride as usize,
                mask: self.geo.slots - 1,
            },
            capacity: self.geo.slots,
            bells: &self.header().doorbells,
        }
    }

    pub(crate) fn group_records(&self) -> &[GroupRecord] {
        // SAFETY: `validate` checked that max_groups records of 256 bytes
        // fit at groups_offset (64-aligned); records are all atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base().add(self.geo.groups_offset as usize) as *const GroupRecord,
                self.geo.max_groups as usize,
            )
        }
    }

    pub(crate) fn producer_records(&self) -> &[ProducerRecord] {
        // SAFETY: as for group records, at producers_offset (64-aligned);
        // records are all atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base().add(self.geo.producers_offset as usize) as *const ProducerRecord,
                self.geo.max_producers as usize,
            )
        }
    }

    pub(crate) fn consumer_records(&self) -> &[ConsumerRecord] {
        // SAFETY: as for group records, at consumers_offset (64-aligned);
        // records are all atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base().add(self.geo.consumers_offset as usize) as *const ConsumerRecord,
                self.geo.max_consumers as usize,
            )
        }
    }

    /// The lease records of group `idx`, one per ring slot.
    pub(crate) fn lease_records(&self, idx: usize) -> &[LeaseRecord] {
        debug_assert!((idx as u64) < self.geo.max_groups);
        let (start, _) = self.geo.lease_table(idx);
        // SAFETY: `validate` checked that max_groups × lease_records
        // records of 48 bytes fit at leases_offset (page-aligned) and idx <
        // max_groups; records are all atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base().add(start as usize) as *const LeaseRecord,
                self.geo.lease_records as usize,
            )
        }
    }

    /// The table of remembered publish keys.
    pub(crate) fn dedup_entries(&self) -> &[DedupEntry] {
        // SAFETY: `validate` checked that dedup_window entries of 32 bytes
        // fit at dedup_offset (page-aligned) before slots_offset; entries
        // are all atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base().add(self.geo.dedup_offset as usize) as *const DedupEntry,
                self.geo.dedup_window as usize,
            )
        }
    }

    /// Address of dead-letter entry `i` (`i < dlq_slots`).
    pub(crate) fn dead_letter(&self, i: usize) -> *mut u8 {
        debug_assert!((i as u64) < self.geo.dlq_slots);
        // SAFETY: dlq_entries_offset + dlq_slots × dlq_stride <=
        // slots_offset, inside the mapping (checked by `validate`).
        unsafe {
            self.map
                .base()
                .add(self.geo.dlq_entries_offset as usize + i * self.geo.dlq_stride as usize)
        }
    }

    /// Dead-letter entry `i`'s state word (`i < dlq_slots`), in the DLQ's
    /// table of state words.
    pub(crate) fn dead_letter_state(&self, i: usize) -> &AtomicU64 {
        assert!(
            (i as u64) < self.geo.dlq_slots,
            "dead-letter entry {i} out of range"
        );
        // SAFETY: dlq_offset + dlq_slots × 8 <= dlq_entries_offset, inside
        // the mapping (checked by `validate`); 8-byte aligned (the table
        // starts on a page); these words are only ever accessed atomically.
        unsafe { &*(self.map.base().add(self.geo.dlq_offset as usize + i * 8) as *const AtomicU64) }
    }

    /// The ordering lanes of group `idx` (see `protocol/lanes.rs`).
    pub(crate) fn lane_words(&self, idx: usize) -> &[AtomicU64] {
        debug_assert!((idx as u64) < self.geo.max_groups);
        let lanes = self.geo.ordering_lanes;
        let start = self.geo.lanes_offset + idx as u64 * lanes * LANE_SIZE;
        // SAFETY: `validate` checked that max_groups × ordering_lanes words
        // fit at lanes_offset (page-aligned) before slots_offset, and
        // idx < max_groups; the words are atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.base().add(start as usize) as *const AtomicU64,
                lanes as usize,
            )
        }
    }

    /// The lease protocol over group `idx`'s records, for the group's
    /// ack=manual consumers: their attach allocated the table
    /// ([`allocate_leases`](Self::allocate_leases)).
    pub(crate) fn leases(&self, idx: usize) -> Leases<'_> {
        Leases {
            records: self.lease_records(idx),
            group: &self.group_records()[idx],
            lanes: self.lane_words(idx),
            max_in_flight: self.geo.max_in_flight,
        }
    }

    /// Group `idx`'s leases as anyone else sees them (stats, a dead
    /// holder's release, a seek's reset): none while the group has never
    /// had an ack=manual consumer. Its table's pages are then holes, and on
    /// a tmpfs even a read of one allocates it (and, with the filesystem
    /// full, kills the reader with SIGBUS).
    pub(crate) fn leases_in_use(&self, idx: usize) -> Option<Leases<'_>> {
        // Acquire: pairs with the Release store in `allocate_leases`, made
        // after the table was allocated and zeroed.
        let allocated = self.group_records()[idx]
            .leases_allocated
            .load(Ordering::Acquire);
        (allocated != 0).then(|| self.leases(idx))
    }

    /// Allocates group `idx`'s lease table (`fallocate`) and zeroes it, the
    /// first time an ack=manual consumer attaches to the group: a queue
    /// whose groups never lease costs no memory for leases. A full
    /// filesystem is an `Io` error (`ENOSPC`) here, never a fault later.
    pub(crate) fn allocate_leases(&self, _g: &AdminGuard<'_>, idx: usize) -> Result<()> {
        let rec = &self.group_records()[idx];
        // Relaxed: written only under the admin lock we hold.
        if rec.leases_allocated.load(Ordering::Relaxed) != 0 {
            return Ok(());
        }
        let (start, bytes) = self.geo.lease_table(idx);
        os::file::preallocate(&self.file, start, bytes).map_err(|e| {
            Error::io(
                format!(
                    "allocating the lease table of group {:?} ({bytes} bytes, 48 a slot of \
                     max_in_flight) in {}; give the queue a larger directory (Docker: \
                     --shm-size) or a smaller max_in_flight",
                    crate::protocol::group::load_group_name(rec).unwrap_or_default(),
                    self.path.display()
                ),
                e,
            )
        })?;
        self.leases(idx).reset();
        // Release: pairs with the Acquire load in `leases_in_use`.
        rec.leases_allocated.store(1, Ordering::Release);
        Ok(())
    }

    /// Creates a group (under the admin lock) with no lease left from an
    /// earlier group in the same record.
    pub(crate) fn create_group_locked(
        &self,
        g: &AdminGuard<'_>,
        name: &str,
        start: Start,
    ) -> Result<usize> {
        let start = self.snap_start(g, start);
        let idx = self
            .groups()
            .create(g, name, start, os::clock::realtime_ns())?;
        if let Some(leases) = self.leases_in_use(idx) {
            leases.reset();
        }
        Ok(idx)
    }

    /// Hands back, in every group, the leases held by registry index
    /// `holder`, whose previous owner died.
    pub(crate) fn release_holder(&self, holder: u32) {
        let now = Now {
            mono: os::clock::monotonic_ns(),
            real: os::clock::realtime_ns(),
        };
        for (i, rec) in self.group_records().iter().enumerate() {
            if rec.state.load(Ordering::Acquire) != crate::protocol::group::ACTIVE {
                continue;
            }
            if let Some(leases) = self.leases_in_use(i) {
                leases.release_holder(holder, now);
                rec.redeliver_hint.fetch_add(1, Ordering::Release);
            }
        }
        self.ring().notify_data();
    }

    pub(crate) fn groups(&self) -> Groups<'_> {
        Groups {
            records: self.group_records(),
            ctl: &self.header().ring,
            spill: self.spill.as_ref().map(|_| &self.header().spill),
            journal: self.journal.as_ref().map(|_| &self.header().journal),
        }
    }

    /// Whether the process of `pid` and liveness key `key` (a record's
    /// owner, the admin lock's holder) still has this queue open, in any
    /// PID namespace (`os/liveness.rs`).
    pub(crate) fn alive(&self, pid: u32, key: u64) -> bool {
        os::liveness::alive(&self.file, pid, key)
    }

    /// Clears the `waiters` bits of sleepers (on either signal) whose
    /// process died in its sleep (`protocol::signal::repair_sleepers`).
    /// Returns how many.
    #[cold]
    pub(crate) fn repair_sleepers(&self) -> u32 {
        let h = self.header();
        let alive = |key: u64| self.alive(0, key);
        crate::protocol::signal::repair_sleepers(&h.ring.data, &h.sleepers.data, alive)
            + crate::protocol::signal::repair_sleepers(&h.ring.space, &h.sleepers.space, alive)
    }

    pub(crate) fn lock(&self) -> AdminGuard<'_> {
        self.header().admin.lock(self.me, |p, k| self.alive(p, k))
    }

    /// The admin lock for work that others may do too (refilling from the
    /// spill, journaling): taken if it is free; `wait`: taken anyway.
    pub(crate) fn lock_unless_busy(&self, wait: bool) -> Option<AdminGuard<'_>> {
        if wait {
            return Some(self.lock());
        }
        let admin = &self.header().admin;
        if let Some(g) = admin.try_lock(self.me) {
            return Some(g);
        }
        // Busy: now and then (a liveness check is a system call) ask
        // whether its holder died, and take it over if so. Otherwise a
        // holder killed while only consumers run (they never wait for
        // the lock) would stop the spill's refill for good.
        static BUSY: StdAtomicU32 = StdAtomicU32::new(0);
        if BUSY.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 64 == 63 {
            admin.try_lock_or_take(self.me, |p, k| self.alive(p, k))
        } else {
            None
        }
    }

    /// The admin lock for a look that may do without it (stats, groups): taken if
    /// it comes free within `patience` (or its holder is dead); `None` if
    /// a live holder keeps it, such as a process stopped while holding it,
    /// so that an observer (`shmq stat`, `top`, the exporter) never hangs
    /// on one.
    pub(crate) fn lock_within(&self, patience: std::time::Duration) -> Option<AdminGuard<'_>> {
        let admin = &self.header().admin;
        let until = std::time::Instant::now() + patience;
        let mut tries: u32 = 0;
        loop {
            if let Some(g) = admin.try_lock(self.me) {
                return Some(g);
            }
            tries = tries.wrapping_add(1);
            // A liveness check is a system call: now and then.
            if tries % 16 == 0 {
                if let Some(g) = admin.try_lock_or_take(self.me, |p, k| self.alive(p, k)) {
                    return Some(g);
                }
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Moves `head` up to the slowest group (under the admin lock).
    pub(crate) fn advance_head(&self) -> u64 {
        let g = self.lock();
        self.advance_head_locked(&g)
    }

    /// [`advance_head`](Self::advance_head) under a lock the caller holds.
    /// Every move of `head` in a mapped queue goes through here: keyed
    /// positions it passes are written down in the dedup table first
    /// (`dedup::settle_passed`).
    pub(crate) fn advance_head_locked(&self, g: &AdminGuard<'_>) -> u64 {
        self.groups().advance_head_settling(g, |from, to| {
            // The dedup table and the schedule read the passed records'
            // words first.
            dedup::settle_passed(self, from, to);
            self.note_schedule_landed(from, to);
            self.ring().clear_passed(from, to);
        })
    }

    /// Moves a group's committed cursor over its finished records
    /// (`Leases::advance_committed`, each by its span in the ring) and, if
    /// it moved, wakes producers waiting for room, and the group's
    /// consumers if its in-flight window was full. Returns whether it
    /// moved.
    pub(crate) fn commit_finished(&self, leases: &Leases<'_>) -> bool {
        let ring = self.ring();
        let before = leases.group.committed.load(Ordering::Acquire);
        let moved = leases.advance_committed(|c| match ring.peek(c) {
            Peek::Ready(span) | Peek::Skip(span) => span,
            // Not a dispatched record's word: `c` is stale (the CAS
            // fails), or the word is garbled (one slot at a time).
            Peek::Settling | Peek::NotYet(_) => 1,
        });
        if moved {
            ring.notify_space();
            // The window was full at `next` (`Leases::may_dispatch`):
            // consumers may sleep on it (`Consumer::work_came`).
            let next = leases.group.next.load(Ordering::SeqCst);
            if self.geo.max_in_flight < self.geo.slots
                && next >= before.saturating_add(leases.max_in_flight)
            {
                ring.notify_data();
            }
        }
        moved
    }

    pub(crate) fn overflow(&self) -> Overflow {
        // Validated in `validate`.
        Overflow::from_raw(self.config.overflow).unwrap_or_default()
    }
}

static NEXT_TOKEN: StdAtomicU32 = StdAtomicU32::new(1);

/// How long a look at the queue (`Queue::stats`, `Queue::groups`) waits
/// for the admin lock before it looks without it.
pub(crate) const STATS_PATIENCE: std::time::Duration = std::time::Duration::from_millis(100);

/// A fresh owner word for a producer or consumer of this process.
pub(crate) fn new_owner(me: ThisProcess) -> u64 {
    let token = NEXT_TOKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ((me.pid as u64) << 32) | token.max(1) as u64
}

impl OpenQueue {
    /// Before the record of dead producer `rec` is taken over: its
    /// announcement is how consumers know that the record it claimed will
    /// never be written (and how long it is), and the new owner clears it.
    /// A single record still unwritten is aborted here, with its span, as
    /// a consumer would (and counted). A batch returns false while a record
    /// from its start on is still unwritten: which records were the
    /// batch's is not announced, so the record is left for the consumers,
    /// which abort them as they reach them.
    pub(crate) fn settle_dead_announcement(&self, rec: usize) -> bool {
        let rec = &self.producer_records()[rec];
        let announced = rec.announce.load(Ordering::Acquire);
        if announced == 0 {
            return true;
        }
        let ring = self.ring();
        // Acquire: pairs with the claimer's AcqRel CAS of tail.
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        let start = (announced & !RANGE).wrapping_sub(1);
        if announced & RANGE != 0 {
            let end = tail.min(start.saturating_add(self.geo.slots));
            return ring
                .records(start, end)
                .all(|(_, p)| matches!(p, Peek::Ready(_) | Peek::Skip(_)));
        }
        let end = rec.announce_end.load(Ordering::Acquire);
        let span = end.saturating_sub(start).clamp(1, ring.max_span());
        if start < tail && ring.peek(start) == Peek::Settling {
            // Aborted by a consumer and not settled (it found us inside
            // our commit, or could not fence): we are dead, and our
            // announcement, about to be cleared, is its span.
            ring.settle(start, span);
            return true;
        }
        if ring.abort_unwritten(start, span, tail) {
            self.header()
                .counters
                .aborted
                .fetch_add(1, Ordering::Relaxed);
            if ring.notify_data() {
                self.repair_sleepers();
            }
        }
        true
    }

    /// Whether a revoked stalled writer may still be writing a slot of the
    /// record `pos .. pos + span` (see `protocol/ring/`), asked by a
    /// begin only while some revocation is counted.
    pub(crate) fn held(&self, pos: u64, span: u64) -> bool {
        announcement::held(
            &self.header().ring,
            self.producer_records(),
            pos,
            span,
            self.geo.slots,
            |r| self.producer_alive(r),
        )
    }

    /// Whether the owner of producer record `r` is alive.
    pub(crate) fn producer_alive(&self, r: &ProducerRecord) -> bool {
        self.alive(
            owner_pid(r.owner.load(Ordering::Acquire)),
            r.owner_key.load(Ordering::Acquire),
        )
    }

    /// Settles the span of the record at `pos`, which someone aborted
    /// (`Ring::settle_abort` with this queue's producers and their
    /// liveness). Returns the span, or `None` if the record is not
    /// settled (its producer is inside its asymmetric commit, or committed
    /// it meanwhile): then wait for it as for a record not yet written.
    #[cold]
    pub(crate) fn settle_abort(&self, pos: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let [held_pos, held_ns] = &self.held_by_commit;
        let now = os::clock::monotonic_ns();
        if held_pos.load(Relaxed) == pos + 1
            && now.saturating_sub(held_ns.load(Relaxed)) < SETTLE_AGAIN_NS
        {
            return None;
        }
        let settled = self
            .ring()
            .settle_abort(self.producer_records(), pos, |r| self.producer_alive(r));
        if settled.is_none() {
            held_ns.store(now, Relaxed);
            held_pos.store(pos + 1, Relaxed);
        }
        settled
    }

    /// The message in committed position `pos`, borrowed from its slot;
    /// None if its header claims more than `slot_size` bytes (a garbled
    /// file).
    ///
    /// # Safety
    /// The caller saw `pos` committed (`Peek::Ready`, an Acquire load) and
    /// keeps its slot from being written again while the record lives:
    /// `head <= pos` holds (the admin lock, or a cursor at or below it).
    pub(crate) unsafe fn committed_record(&self, pos: u64) -> Option<Record<'_>> {
        // SAFETY: per the contract the slot is committed and not rewritten
        // while the record lives.
        let m = unsafe {
            let span = match self.ring().peek(pos) {
                Peek::Ready(span) => span,
                _ => 1,
            };
            // A span past the longest record is a garbled word: read no
            // further than the twice-mapped ring holds.
            let room = self.geo.body_room(span.min(self.geo.max_span()));
            read::stored_in_slot(self.ring().slots.slot(pos), room)
        }
        .ok()?;
        Some(Record {
            seq: pos,
            timestamp_ns: m.timestamp_ns,
            correlation_id: m.correlation_id,
            type_id: m.type_id,
            enveloped: m.enveloped,
            payload: m.body,
        })
    }
}
