//! The queue handle: create, open, close, remove; groups and stats.

use std::ffi::c_char;

use shmq::{GroupInfo, Options, Overflow, Queue};

use crate::boundary::{
    OutBuf, fill_array, free_handle, guard, handle_ref, input, out, out_opt, text,
};
use crate::options::{
    SHMQ_OVERFLOW_BLOCK, SHMQ_OVERFLOW_REJECT, SHMQ_OVERFLOW_SPILL, shmq_options, shmq_overflow,
    shmq_seek, shmq_start,
};
use crate::status::{CallError, shmq_status};

/// An open queue: a mapping of its file. Thread-safe: any number of
/// threads may use one `shmq_queue` at once (except `shmq_queue_close`,
/// which must be the last call). Producers and consumers made from it keep
/// the mapping alive, so it may be closed before them.
pub struct shmq_queue {
    pub(crate) queue: Queue,
}

/// Bytes of `shmq_group_info.name`: the longest group name (48) and its
/// NUL.
pub const SHMQ_GROUP_NAME_CAP: usize = 49;
const _: () = assert!(shmq::MAX_GROUP_NAME + 1 == SHMQ_GROUP_NAME_CAP);

/// A snapshot of one consumer group.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_group_info {
    /// Its name, NUL-terminated.
    pub name: [c_char; SHMQ_GROUP_NAME_CAP],
    /// Whether a live consumer is attached.
    pub consumer_attached: bool,
    /// Next seq it will be handed.
    pub next: u64,
    /// Every seq below this one is finished by the group.
    pub committed: u64,
    /// Messages published that it has not finished.
    pub lag: u64,
    /// Messages delivered to it.
    pub delivered: u64,
    /// CLOCK_REALTIME nanoseconds when it was created.
    pub created_ns: u64,
    /// Deliveries after the first (ack manual: nacked, released unacked,
    /// lease run out, consumer died).
    pub redelivered: u64,
    /// Messages acked (ack manual).
    pub acked: u64,
    /// Messages nacked (ack manual).
    pub nacked: u64,
    /// Leases that ran out or whose consumer died.
    pub expired: u64,
    /// Messages this group moved to the dead-letter queue.
    pub dead_lettered: u64,
    /// Messages leased to a consumer right now (ack manual).
    pub in_flight: u64,
    /// Age in nanoseconds of its oldest unfinished message (0 if none).
    pub oldest_unacked_age_ns: u64,
    /// Live consumers: 1 for an ack auto consumer, any number with ack
    /// manual.
    pub consumers: u64,
    /// Ordering lanes with an unfinished message right now (ack manual).
    /// Keys hash into a group's lanes, so this is about how many keys are
    /// busy (two keys that share a lane count once).
    pub busy_lanes: u64,
    /// Length in bytes of the ordering key of its oldest unfinished message
    /// (0: that message has no key, or there is none). Read the key with
    /// `shmq_group_oldest_unacked_key`.
    pub oldest_unacked_key_len: usize,
    /// Messages whose time to live ran out before it finished them
    /// (dead-lettered with `SHMQ_DLQ_REASON_EXPIRED`, or dropped with
    /// `SHMQ_ON_EXPIRY_DISCARD`). Added in ABI 3.
    pub messages_expired: u64,
}

/// A group name as a NUL-terminated C array.
pub(crate) fn group_name(g: &str) -> [c_char; SHMQ_GROUP_NAME_CAP] {
    let mut name = [0 as c_char; SHMQ_GROUP_NAME_CAP];
    // Names are checked ASCII of at most 48 bytes; `take` keeps the NUL
    // even if a future core allowed longer ones.
    for (dst, src) in name.iter_mut().zip(g.bytes().take(SHMQ_GROUP_NAME_CAP - 1)) {
        *dst = src as c_char;
    }
    name
}

impl From<&GroupInfo> for shmq_group_info {
    fn from(g: &GroupInfo) -> shmq_group_info {
        shmq_group_info {
            name: group_name(&g.name),
            consumer_attached: g.consumer_attached,
            next: g.next,
            committed: g.committed,
            lag: g.lag,
            delivered: g.delivered,
            created_ns: g.created_ns,
            redelivered: g.redelivered,
            acked: g.acked,
            nacked: g.nacked,
            expired: g.expired,
            dead_lettered: g.dead_lettered,
            in_flight: g.in_flight,
            oldest_unacked_age_ns: g.oldest_unacked_age_ns,
            consumers: g.consumers,
            busy_lanes: g.busy_lanes,
            oldest_unacked_key_len: g.oldest_unacked_key.as_deref().map_or(0, <[u8]>::len),
            messages_expired: g.messages_expired,
        }
    }
}

/// A counters-and-cursors snapshot of a queue (`shmq_stats`). The groups
/// themselves are read with `shmq_groups` or `shmq_group_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct shmq_queue_stats {
    /// Slots in the ring: its capacity in messages of up to `slot_size`.
    pub slots: u64,
    /// Bytes of payload a slot holds (a longer message takes several:
    /// `max_message_size`).
    pub slot_size: u64,
    /// Seq the next message will get.
    pub next_seq: u64,
    /// Oldest seq still retained.
    pub oldest_seq: u64,
    /// Slots not yet finished by the slowest group (with no group: every
    /// slot retained); a message longer than a slot counts each of its.
    pub depth: u64,
    /// Messages published.
    pub published: u64,
    /// Publishes refused with `SHMQ_FULL`.
    pub rejected: u64,
    /// Positions aborted (stuck or dead producers, aborted reservations).
    pub aborted: u64,
    /// Live producer handles.
    pub producers: u64,
    /// Live consumers.
    pub consumers: u64,
    /// Number of groups.
    pub groups: u64,
    /// The overflow policy (a `shmq_overflow`).
    pub overflow: shmq_overflow,
    /// Keyed publishes that enqueued nothing (the key was remembered).
    pub deduplicated: u64,
    /// Dead letters waiting (not redriven); see `shmq_dlq_len`.
    pub dlq_depth: u64,
    /// Messages spilled to disk so far (`SHMQ_OVERFLOW_SPILL`).
    pub spilled: u64,
    /// Payload bytes spilled to disk so far.
    pub spilled_bytes: u64,
    /// Messages on disk now, waiting to come back into the ring.
    pub spill_depth: u64,
    /// Segment files on disk now.
    pub spill_segments: u64,
    /// Bytes of segment files on disk now.
    pub spill_bytes_on_disk: u64,
    /// Publishes that found the spill full (its budget or its disk).
    pub spill_full: u64,
    /// Spilled messages found damaged or missing when read back (their
    /// seqs were skipped).
    pub spill_lost: u64,
    /// 1 if the queue keeps a journal (`journal_max_age_ms` > 0 at
    /// create), else 0 and every `journal_` field below is 0.
    pub journal_enabled: u32,
    /// Oldest seq the journal retains: `SHMQ_SEEK_EARLIEST` goes here.
    pub journal_first_seq: u64,
    /// CLOCK_REALTIME ns of the oldest retained message; 0 if the journal
    /// holds none.
    pub journal_first_ns: u64,
    /// Seq of the next message to be journaled: everything retained below
    /// it (from `journal_first_seq` on) is in the journal.
    pub journal_next_seq: u64,
    /// Messages journaled so far.
    pub journal_journaled: u64,
    /// Payload bytes journaled so far.
    pub journal_journaled_bytes: u64,
    /// Journal segment files on disk now.
    pub journal_segments: u64,
    /// Bytes of journal segment files on disk now.
    pub journal_bytes_on_disk: u64,
    /// Seqs whose retention ran out (their segment was deleted).
    pub journal_expired: u64,
    /// Records the journal left out on a full disk (counted: never
    /// silently). Added in ABI 3.
    pub journal_skipped: u64,
    /// Dead letters found damaged or missing when read back from the
    /// dead-letter queue's overflow on disk. Added in ABI 3.
    pub dlq_lost: u64,
    /// The largest message the queue takes (`max_message_size`). Added in
    /// ABI 3.
    pub max_message_size: u64,
    /// Bytes of the ring the slowest group has not finished: the bytes in
    /// flight (`depth` counts slots). Added in ABI 3.
    pub depth_bytes: u64,
    /// Bytes of the ring: `slots` slots of `slot_size` and a 32-byte
    /// header, rounded up to 8 (`depth_bytes` of it are taken). Added in
    /// ABI 3.
    pub capacity: u64,
    /// Messages scheduled for later (`shmq_meta.delay_ms`,
    /// `deliver_at_ms`, `shmq_options.delivery_delay_ms`) and not yet due
    /// and moved into the ring, nor cancelled. Added in ABI 3.
    pub scheduled: u64,
    /// When the earliest scheduled message is due, CLOCK_REALTIME
    /// nanoseconds (0: nothing is scheduled). In the past: due, and moved
    /// in by the next consumer or producer that passes by. Added in ABI 3.
    pub next_due_ns: u64,
    /// Scheduled messages cancelled so far (`shmq_queue_cancel_scheduled`,
    /// `shmq_queue_cancel_scheduled_key`). Added in ABI 3.
    pub scheduled_cancelled: u64,
}

/// Reads `opts` (NULL: the defaults).
///
/// # Safety
/// A non-NULL `opts` must point to a `shmq_options` whose `dir` is NULL or
/// NUL-terminated.
unsafe fn queue_options(opts: *const shmq_options) -> Result<Options, CallError> {
    // SAFETY: per this function's contract.
    match unsafe { input(opts, "opts") }? {
        // SAFETY: `dir` is NULL or NUL-terminated per the contract.
        Some(o) => unsafe { o.to_rust() },
        None => Ok(Options::new()),
    }
}

/// Shared body of create / open / open_or_create.
///
/// # Safety
/// As for `shmq_queue_create`.
unsafe fn open_with(
    name: *const c_char,
    opts: *const shmq_options,
    queue_out: *mut *mut shmq_queue,
    how: fn(&str, &Options) -> shmq::Result<Queue>,
) -> shmq_status {
    guard(|| {
        let queue_out = out(queue_out, "queue_out")?;
        // SAFETY: NUL-terminated per the contract.
        let name = unsafe { text(name, "name") }?;
        // SAFETY: per the contract.
        let opts = unsafe { queue_options(opts) }?;
        let queue = how(name, &opts)?;
        let handle = Box::into_raw(Box::new(shmq_queue { queue }));
        // SAFETY: checked writable out-parameter.
        unsafe { queue_out.write(handle) };
        Ok(())
    })
}

/// Creates queue `name` (file `<dir>/<name>.shmq`, created exclusively with
/// `opts->mode`, never through a symlink) and opens it. `opts` may be NULL
/// for the defaults. Fails with `SHMQ_EXISTS` if it exists.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `opts` is NULL or points to a
/// `shmq_options`; `queue_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_create(
    name: *const c_char,
    opts: *const shmq_options,
    queue_out: *mut *mut shmq_queue,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { open_with(name, opts, queue_out, Queue::create) }
}

/// Opens the existing queue `name`. Only `opts->dir` is used (NULL opts:
/// `$SHMQ_DIR` or `/dev/shm`); the rest is read from the file. Fails with
/// `SHMQ_NOT_FOUND`, `SHMQ_CORRUPT` or `SHMQ_INCOMPATIBLE`.
///
/// # Safety
/// As for `shmq_queue_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_open(
    name: *const c_char,
    opts: *const shmq_options,
    queue_out: *mut *mut shmq_queue,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { open_with(name, opts, queue_out, Queue::open_with) }
}

/// Opens queue `name`, creating it with `opts` if it does not exist. An
/// existing queue keeps the options it was created with.
///
/// # Safety
/// As for `shmq_queue_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_open_or_create(
    name: *const c_char,
    opts: *const shmq_options,
    queue_out: *mut *mut shmq_queue,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { open_with(name, opts, queue_out, Queue::open_or_create) }
}

/// Closes `*queue` and sets it to NULL. `queue == NULL` or `*queue == NULL`
/// is a no-op. Producers and consumers made from it stay usable.
///
/// # Safety
/// `queue` is NULL or points to a handle pointer that is NULL or came from
/// `shmq_queue_create/open/open_or_create` and was not closed; no other
/// thread uses the queue during or after the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_close(queue: *mut *mut shmq_queue) {
    // SAFETY: the caller's contract is this one's.
    unsafe { free_handle(queue) }
}

/// Removes queue `name`'s file (in `opts->dir`; NULL opts: the default
/// directory). `SHMQ_BUSY` (the last error names their pids) while
/// consumers are attached: they would go on reading the removed file and
/// never see a queue made again under the name; `shmq_queue_remove_forced`
/// removes it anyway.
///
/// # Safety
/// `name` is NULL or NUL-terminated; `opts` is NULL or a `shmq_options`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_remove(
    name: *const c_char,
    opts: *const shmq_options,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { remove_with(name, opts, Queue::remove) }
}

/// `shmq_queue_remove` even while consumers are attached: processes that
/// have the queue open keep using their mapping.
///
/// # Safety
/// As for `shmq_queue_remove`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_remove_forced(
    name: *const c_char,
    opts: *const shmq_options,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { remove_with(name, opts, Queue::remove_forced) }
}

/// Shared body of remove / remove_forced.
///
/// # Safety
/// As for `shmq_queue_remove`.
unsafe fn remove_with(
    name: *const c_char,
    opts: *const shmq_options,
    how: fn(&str, &Options) -> shmq::Result<()>,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let name = unsafe { text(name, "name") }?;
        // SAFETY: per the contract.
        let opts = unsafe { queue_options(opts) }?;
        how(name, &opts)?;
        Ok(())
    })
}

/// Writes the mapping back to its file and waits (for a queue on disk).
///
/// # Safety
/// `queue` is NULL or a live queue handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_flush(queue: *const shmq_queue) -> shmq_status {
    guard(|| {
        // SAFETY: live handle per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        q.queue.flush()?;
        Ok(())
    })
}

/// Creates group `group` at `start` (`SHMQ_START_SEQ`: at `seq`), so it
/// retains messages before any consumer runs. `SHMQ_EXISTS` if it exists.
///
/// # Safety
/// `queue` is NULL or a live queue handle; `group` is NULL or
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_group_create(
    queue: *const shmq_queue,
    group: *const c_char,
    start: shmq_start,
    seq: u64,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        // SAFETY: per the contract.
        let group = unsafe { text(group, "group") }?;
        q.queue
            .create_group(group, crate::options::start(start, seq)?)?;
        Ok(())
    })
}

/// Deletes group `group`: it stops retaining messages. `SHMQ_BUSY` while a
/// consumer is attached.
///
/// # Safety
/// As for `shmq_group_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_group_delete(
    queue: *const shmq_queue,
    group: *const c_char,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        // SAFETY: per the contract.
        let group = unsafe { text(group, "group") }?;
        q.queue.delete_group(group)?;
        Ok(())
    })
}

/// Moves group `group` (with no consumer attached) to `whence`/`value`
/// (replay or skip, clamped to what the queue retains) and writes the seq
/// it will receive next to `next_out` (may be NULL).
///
/// # Safety
/// As for `shmq_group_create`; `next_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_group_seek(
    queue: *const shmq_queue,
    group: *const c_char,
    whence: shmq_seek,
    value: u64,
    next_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let next_out = out_opt(next_out, "next_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        // SAFETY: per the contract.
        let group = unsafe { text(group, "group") }?;
        let next = q
            .queue
            .seek_group(group, crate::options::seek(whence, value)?)?;
        if let Some(o) = next_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(next) };
        }
        Ok(())
    })
}

/// Lists the groups: writes the first `min(capacity, n)` of them to
/// `groups_out` and their total number `n` to `count_out`. With
/// `capacity == 0`, `groups_out` may be NULL (to ask for the count).
///
/// # Safety
/// `queue` is NULL or live; `groups_out` is NULL or writable for `capacity`
/// elements; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_groups(
    queue: *const shmq_queue,
    groups_out: *mut shmq_group_info,
    capacity: usize,
    count_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let snapshot = || {
            // SAFETY: `queue` per the contract.
            let q = unsafe { handle_ref(queue, "queue") }?;
            Ok(q.queue.groups())
        };
        // SAFETY: `groups_out` and `count_out` per the contract.
        unsafe { fill_array(groups_out, "groups_out", capacity, count_out, snapshot) }
    })
}

/// Writes a snapshot of group `group` to `info_out`; `SHMQ_NOT_FOUND` if
/// there is no such group.
///
/// # Safety
/// As for `shmq_group_create`; `info_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_group_stats(
    queue: *const shmq_queue,
    group: *const c_char,
    info_out: *mut shmq_group_info,
) -> shmq_status {
    guard(|| {
        let info_out = out(info_out, "info_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        // SAFETY: per the contract.
        let group = unsafe { text(group, "group") }?;
        let info = group_snapshot(q, group)?;
        // SAFETY: checked writable out-parameter.
        unsafe { info_out.write((&info).into()) };
        Ok(())
    })
}

/// The snapshot of group `group`, or `NotFound`.
fn group_snapshot(q: &shmq_queue, group: &str) -> Result<GroupInfo, CallError> {
    let found = q.queue.groups().into_iter().find(|g| g.name == group);
    Ok(found.ok_or_else(|| shmq::Error::NotFound(format!("group {group:?}")))?)
}

/// Copies the ordering key of the oldest unfinished message of group
/// `group` into `buf` (its first `min(len, capacity)` bytes) and writes its
/// length to `len_out`: 0 if that message has no key or the group has
/// nothing unfinished. The "which key is stuck" of `shmq_group_stats`,
/// from a fresh snapshot (it may differ from an earlier one's
/// `oldest_unacked_key_len`). `SHMQ_NOT_FOUND` if there is no such group.
///
/// # Safety
/// As for `shmq_group_create`; `buf` is NULL or writable for `capacity`
/// bytes; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_group_oldest_unacked_key(
    queue: *const shmq_queue,
    group: *const c_char,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let dest = OutBuf::new(buf, capacity, len_out)?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        // SAFETY: per the contract.
        let group = unsafe { text(group, "group") }?;
        let info = group_snapshot(q, group)?;
        // SAFETY: `buf` and `len_out` per the contract.
        unsafe { dest.write_bytes(info.oldest_unacked_key.as_deref().unwrap_or_default()) };
        Ok(())
    })
}

/// Copies the queue's name into `buf`: its first `min(len, capacity - 1)`
/// bytes and a NUL (nothing if `capacity` is 0, when `buf` may be NULL),
/// and writes its full length `len` (without the NUL) to `len_out`, so
/// `*len_out >= capacity` means `buf` was too small. The other name and
/// path getters (`shmq_queue_path`, `shmq_queue_spill_dir`,
/// `shmq_consumer_group`, `shmq_default_dir`) work the same way.
///
/// # Safety
/// `queue` is NULL or live; `buf` is NULL or writable for `capacity` bytes;
/// `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_name(
    queue: *const shmq_queue,
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe {
        queue_text(queue, buf, capacity, len_out, |q| {
            Ok(q.name().as_bytes().to_vec())
        })
    }
}

/// A queue getter of the "copy a string out" convention: `text` of the
/// queue into `buf`.
///
/// # Safety
/// As for `shmq_queue_name`.
unsafe fn queue_text(
    queue: *const shmq_queue,
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
    text: impl FnOnce(&Queue) -> Result<Vec<u8>, CallError>,
) -> shmq_status {
    guard(|| {
        let dest = OutBuf::new(buf.cast(), capacity, len_out)?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let text = text(&q.queue)?;
        // SAFETY: `buf` and `len_out` per the contract.
        unsafe { dest.write_text(&text) };
        Ok(())
    })
}

/// Copies the path of the queue's file into `buf` (as `shmq_queue_name`).
///
/// # Safety
/// As for `shmq_queue_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_path(
    queue: *const shmq_queue,
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe {
        queue_text(queue, buf, capacity, len_out, |q| {
            Ok(q.path().as_os_str().as_encoded_bytes().to_vec())
        })
    }
}

/// Copies the queue's spill directory (where overflow=spill writes its
/// segment files) into `buf` (as `shmq_queue_name`). `SHMQ_NOT_FOUND` if
/// the queue does not spill.
///
/// # Safety
/// As for `shmq_queue_name`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_spill_dir(
    queue: *const shmq_queue,
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe {
        queue_text(queue, buf, capacity, len_out, |q| {
            let dir = q.spill_dir().ok_or_else(|| {
                shmq::Error::NotFound(format!(
                    "spill directory of queue {:?}: its overflow is not spill",
                    q.name()
                ))
            })?;
            Ok(dir.into_os_string().into_encoded_bytes())
        })
    }
}

/// Copies the directory queues live in when `shmq_options.dir` is NULL
/// (`$SHMQ_DIR`, else `/dev/shm`, read at each call) into `buf` (as
/// `shmq_queue_name`).
///
/// # Safety
/// `buf` is NULL or writable for `capacity` bytes; `len_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_default_dir(
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let dest = OutBuf::new(buf.cast(), capacity, len_out)?;
        let dir = shmq::default_dir();
        // SAFETY: `buf` and `len_out` per the contract.
        unsafe { dest.write_text(dir.as_os_str().as_encoded_bytes()) };
        Ok(())
    })
}

/// Writes a snapshot of the queue's counters and cursors to `stats_out`.
///
/// # Safety
/// `queue` is NULL or live; `stats_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_stats(
    queue: *const shmq_queue,
    stats_out: *mut shmq_queue_stats,
) -> shmq_status {
    guard(|| {
        let stats_out = out(stats_out, "stats_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let s = q.queue.stats();
        let j = s.journal.as_ref();
        let stats = shmq_queue_stats {
            slots: s.slots,
            slot_size: s.slot_size,
            next_seq: s.next_seq,
            oldest_seq: s.oldest_seq,
            depth: s.depth,
            published: s.published,
            rejected: s.rejected,
            aborted: s.aborted,
            producers: s.producers,
            consumers: s.consumers,
            groups: s.groups.len() as u64,
            overflow: match s.overflow {
                Overflow::Block => SHMQ_OVERFLOW_BLOCK,
                Overflow::Reject => SHMQ_OVERFLOW_REJECT,
                Overflow::Spill => SHMQ_OVERFLOW_SPILL,
            },
            deduplicated: s.deduplicated,
            dlq_depth: s.dlq_depth,
            spilled: s.spilled,
            spilled_bytes: s.spilled_bytes,
            spill_depth: s.spill_depth,
            spill_segments: s.spill_segments,
            spill_bytes_on_disk: s.spill_bytes_on_disk,
            spill_full: s.spill_full,
            spill_lost: s.spill_lost,
            journal_enabled: u32::from(j.is_some()),
            journal_first_seq: j.map_or(0, |j| j.first_seq),
            journal_first_ns: j.and_then(|j| j.first_ns).unwrap_or(0),
            journal_next_seq: j.map_or(0, |j| j.next_seq),
            journal_journaled: j.map_or(0, |j| j.journaled),
            journal_journaled_bytes: j.map_or(0, |j| j.journaled_bytes),
            journal_segments: j.map_or(0, |j| j.segments),
            journal_bytes_on_disk: j.map_or(0, |j| j.bytes_on_disk),
            journal_expired: j.map_or(0, |j| j.expired),
            journal_skipped: j.map_or(0, |j| j.skipped),
            dlq_lost: s.dlq_lost,
            max_message_size: s.max_message_size,
            depth_bytes: s.depth_bytes,
            capacity: s.capacity,
            scheduled: s.scheduled,
            next_due_ns: s.next_due_ns.unwrap_or(0),
            scheduled_cancelled: s.scheduled_cancelled,
        };
        // SAFETY: checked writable out-parameter.
        unsafe { stats_out.write(stats) };
        Ok(())
    })
}
