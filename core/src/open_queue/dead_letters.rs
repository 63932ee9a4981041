//! The dead-letter queue: a region of `dlq_slots` entries in the queue
//! file, each `slot_size` bytes and a [`DeadLetterHeader`]'s worth. A dead
//! letter takes as many entries in a row as its bytes need (a run: its
//! header, then its payload, one slice), so the region keeps dead letters
//! by their size; its state words are a table apart
//! (`protocol/dead_letter_entry.rs` says how runs are taken and given
//! back). The entries' pages are left unallocated when the queue is made
//! and allocated (`fallocate`) when a run is first written, so a big DLQ
//! costs memory only once it holds something.
//!
//! An entry's `state` word walks
//!
//! ```text
//!  FREE ─append─▶ WRITING(key) ─▶ READY ─redrive─▶ REDRIVE(group) ─take─▶ DELIVERING(key)
//!    ▲                 │ (writer died)  │                 ▲                 │
//!    └─────────────────┴──── purge ◀────┘                 └─ nack / drop ───┤
//!    ▲                                                                      │
//!    └──────────────────────────────── ack ─────────────────────────────────┘
//! ```
//!
//! A redrive passes READY ─▶ DELIVERING(group, redriver) ─▶ REDRIVE: a
//! redriver that dies in between leaves the entry to its group's consumers,
//! as a consumer that dies delivering it does.
//!
//! Every transition is a CAS, so two consumers dead-lettering at once take
//! two different entries, and a redriven entry goes to one consumer of its
//! group. The header fields and payload belong to whoever moved the state
//! away from FREE (the writer) and are published by its Release store of
//! READY; readers load the state with Acquire. A message is marked DEAD for
//! its group only after its entry is READY, so a crash in between leaves it
//! leased (and redelivered), never lost.

use crate::error::{Error, Result};
use crate::layout::{DEAD_LETTER_HEADER_SIZE, DeadLetterHeader};
use crate::loom::{AtomicU64, Ordering};
use crate::open_queue::OpenQueue;
use crate::os;
use crate::protocol::group::load_group_name;
use crate::record::envelope::{ENVELOPED, owned};

use crate::protocol::dead_letter_entry;
use crate::protocol::dead_letter_entry::{
    DELIVERING, READY, REDRIVE, WRITING, arg_of, deliverer, deliverer_group, deliverer_key,
    state_of, word, writer, writer_key,
};

/// Why a message was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The consumer nacked it with `Nack::DeadLetter`.
    Nacked,
    /// It was delivered `max_deliveries` times without an ack.
    MaxDeliveries,
    /// Its time to live ran out before the group finished it
    /// (`Meta::ttl`, `Options::message_ttl`).
    Expired,
}

impl Reason {
    fn to_raw(self) -> u32 {
        match self {
            Reason::Nacked => 1,
            Reason::MaxDeliveries => 2,
            Reason::Expired => 3,
        }
    }
    pub(crate) fn from_raw(r: u32) -> Option<Reason> {
        match r {
            1 => Some(Reason::Nacked),
            2 => Some(Reason::MaxDeliveries),
            3 => Some(Reason::Expired),
            _ => None,
        }
    }
    /// The reason's name, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nacked => "nacked",
            Reason::MaxDeliveries => "max-deliveries",
            Reason::Expired => "expired",
        }
    }
}

/// A copy of one dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message's original seq ([`DeadLetter::ADDED`] for one added
    /// from outside the queue, which never had one).
    pub seq: u64,
    /// The group that dead-lettered it (empty if that group was deleted).
    pub group: String,
    /// Deliveries it had when it was dead-lettered. A redrive keeps it (and
    /// its reason); if it is dead-lettered again, the deliveries since the
    /// redrive are added.
    pub attempts: u32,
    /// Why it is here (why it was dead-lettered last).
    pub reason: Reason,
    /// How many times it was redriven. After a redrive a message starts a
    /// fresh delivery budget: its deliveries count from `attempt() == 1`
    /// again, and `max_deliveries` more send it back here.
    pub redrives: u32,
    /// CLOCK_REALTIME ns of its first and its last delivery.
    pub first_delivery_ns: u64,
    /// See `first_delivery_ns`.
    pub last_delivery_ns: u64,
    /// CLOCK_REALTIME ns when it was dead-lettered.
    pub dead_lettered_ns: u64,
    /// Publish time, type and correlation id of the message.
    pub timestamp_ns: u64,
    /// See `timestamp_ns`.
    pub type_id: u32,
    /// See `timestamp_ns`.
    pub correlation_id: u64,
    /// Whether it was redriven and is waiting for (or being delivered to)
    /// its group.
    pub redriven: bool,
    /// The payload.
    pub payload: Vec<u8>,
    /// The ordering key it was published with.
    pub ordering_key: Option<Vec<u8>>,
    /// The headers it was published with, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    /// The `seq` of a dead letter added from outside the queue
    /// ([`DeadLetters::add`](crate::DeadLetters::add)): it never had one
    /// here.
    pub const ADDED: u64 = u64::MAX;

    /// A dead letter of a stored body (the other fields empty): its
    /// payload, ordering key and headers.
    pub(crate) fn body(body: &[u8], enveloped: bool) -> DeadLetter {
        let o = owned(body, enveloped);
        DeadLetter {
            seq: 0,
            group: String::new(),
            attempts: 0,
            reason: Reason::Nacked,
            redrives: o.target.map_or(0, |t| u32::from(t.redrives)),
            first_delivery_ns: 0,
            last_delivery_ns: 0,
            dead_lettered_ns: 0,
            timestamp_ns: 0,
            type_id: 0,
            correlation_id: 0,
            redriven: false,
            payload: o.payload,
            ordering_key: o.ordering_key,
            headers: o.headers,
        }
    }
}

/// What a dead-lettering writes, besides the payload.
pub(crate) struct Entry<'a> {
    pub seq: u64,
    /// Times redriven before (0 for a first dead-lettering).
    pub redrives: u32,
    pub group: usize,
    pub group_created_ns: u64,
    pub attempts: u32,
    pub reason: Reason,
    pub first_ns: u64,
    pub last_ns: u64,
    pub timestamp_ns: u64,
    pub type_id: u32,
    pub correlation_id: u64,
    /// `payload` is a body that starts with an envelope.
    pub enveloped: bool,
    pub payload: &'a [u8],
}

/// A pointer to entry `i`'s header.
pub(crate) fn header(shared: &OpenQueue, i: usize) -> *mut DeadLetterHeader {
    shared.dead_letter(i) as *mut DeadLetterHeader
}

/// Entry `i`'s state word.
pub(crate) fn state(shared: &OpenQueue, i: usize) -> &AtomicU64 {
    shared.dead_letter_state(i)
}

/// Takes a run of free entries for a dead letter of `body` bytes (WRITING
/// by us, the rest PART of it), its pages allocated. `Ok(None)`: no run
/// that long is free, or the file's filesystem has no room for its pages
/// (a full `/dev/shm`: the entries are given back, nothing was written).
fn claim(shared: &OpenQueue, body: usize) -> Result<Option<usize>> {
    let span = shared.geo.dlq_span_of(body);
    let Some(i) = dead_letter_entry::claim_run(
        |i| state(shared, i),
        shared.geo.dlq_slots as usize,
        span as usize,
        writer(shared.me.key),
        |arg| shared.alive(0, writer_key(arg)),
    ) else {
        return Ok(None);
    };
    // Killed here, the run is a dead writer's: the next claimer gives it
    // back (`tests/tests/large.rs`).
    os::fault::point("dead_letter.claimed");
    let start = shared.geo.dlq_entries_offset + i as u64 * shared.geo.dlq_stride;
    if let Err(e) = os::file::preallocate(&shared.file, start, span * shared.geo.dlq_stride) {
        give_back(shared, i);
        if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
            return Ok(None);
        }
        return Err(Error::io(
            format!(
                "allocating dead-letter entries in {}",
                shared.path.display()
            ),
            e,
        ));
    }
    // SAFETY: entry `i` is ours (WRITING by us); its header is inside the
    // mapping.
    unsafe { std::ptr::addr_of_mut!((*header(shared, i)).span).write(span) };
    Ok(Some(i))
}

/// Gives back entry `i`'s run, which we own (in any state but FREE): it
/// says WRITING by us first, so that should we die part-way, the next
/// claimer gives back the rest.
pub(crate) fn give_back(shared: &OpenQueue, i: usize) {
    let me = writer(shared.me.key);
    // Release: our reads of the run happen before whoever takes it over
    // (from a dead us) reuses it.
    state(shared, i).store(word(WRITING, me), Ordering::Release);
    os::fault::point("dead_letter.giving_back");
    dead_letter_entry::give_back(&|k| state(shared, k), shared.geo.dlq_slots as usize, i, me);
}

/// Appends a dead letter. One longer than the whole region is refused
/// (`Err(Error::DlqTooLarge)`: it could never come back from the overflow
/// either). When no run of entries long enough is free: on an
/// overflow=spill queue it goes to the overflow segments; otherwise
/// `Err(Error::DlqFull)`.
pub(crate) fn append(shared: &OpenQueue, e: &Entry<'_>) -> Result<()> {
    let room = shared.geo.dlq_room(shared.geo.dlq_slots);
    if e.payload.len() as u64 > room {
        return Err(Error::DlqTooLarge {
            len: e.payload.len(),
            max: room as usize,
        });
    }
    // A run free now is taken, even while older dead letters wait in the
    // overflow: without the admin lock (a process stopped holding it would
    // hold up every dead-lettering while the overflow has anything). So a
    // short dead letter may pass a longer one that waits there for a
    // longer run.
    let Some(i) = claim(shared, e.payload.len())? else {
        if shared.dlq_spill.is_some() {
            return overflow::append(shared, e);
        }
        return Err(Error::DlqFull(shared.geo.dlq_slots));
    };
    write_entry(shared, i, e, None, os::clock::realtime_ns());
    Ok(())
}

/// Writes entry `i` (claimed: WRITING by us) and publishes it READY, or
/// REDRIVE to its group when `redrive` (the group's count is bumped).
fn write_entry(shared: &OpenQueue, i: usize, e: &Entry<'_>, redrive: Option<()>, dead_ns: u64) {
    {
        let st = state(shared, i);
        // SAFETY: entry `i` is ours (WRITING by us): `claim` wrote its span.
        let span = unsafe { std::ptr::addr_of!((*header(shared, i)).span).read() };
        let len = e.payload.len().min(shared.geo.dlq_room(span) as usize);
        let order = shared.header().dlq_order.fetch_add(1, Ordering::Relaxed);
        // SAFETY: entry `i` is ours (WRITING by us) until we store READY;
        // its header and the `len` payload bytes its run holds are inside
        // the mapping.
        unsafe {
            let h = header(shared, i);
            std::ptr::addr_of_mut!((*h).seq).write(e.seq);
            std::ptr::addr_of_mut!((*h).group).write(e.group as u32);
            std::ptr::addr_of_mut!((*h).attempts).write(e.attempts);
            std::ptr::addr_of_mut!((*h).reason).write(e.reason.to_raw());
            // Written back from the overflow as redriven: that redrive counts.
            let redrives = e.redrives + u32::from(redrive.is_some());
            std::ptr::addr_of_mut!((*h).redrive).write(redrives.min(0xffff));
            std::ptr::addr_of_mut!((*h).type_id).write(e.type_id);
            let flag = if e.enveloped { ENVELOPED } else { 0 };
            std::ptr::addr_of_mut!((*h).len).write(len as u32 | flag);
            std::ptr::addr_of_mut!((*h).first_ns).write(e.first_ns);
            std::ptr::addr_of_mut!((*h).last_ns).write(e.last_ns);
            std::ptr::addr_of_mut!((*h).timestamp_ns).write(e.timestamp_ns);
            std::ptr::addr_of_mut!((*h).correlation_id).write(e.correlation_id);
            std::ptr::addr_of_mut!((*h).dead_ns).write(dead_ns);
            std::ptr::addr_of_mut!((*h).order).write(order);
            std::ptr::addr_of_mut!((*h).group_created_ns).write(e.group_created_ns);
            std::ptr::copy_nonoverlapping(
                e.payload.as_ptr(),
                (h as *mut u8).add(DEAD_LETTER_HEADER_SIZE as usize),
                len,
            );
        }
        let next = match redrive {
            Some(()) => {
                shared.group_records()[e.group]
                    .redrive
                    .fetch_add(1, Ordering::AcqRel);
                word(REDRIVE, e.group as u64)
            }
            None => word(READY, 0),
        };
        // Release: the entry's fields are visible to whoever loads READY.
        st.store(next, Ordering::Release);
    }
}

/// The fields of entry `i` as raw values, and its payload location.
pub(crate) struct Raw {
    /// Entries its run takes.
    pub span: u64,
    pub seq: u64,
    pub group: u32,
    pub attempts: u32,
    pub reason: u32,
    /// As `DeadLetterHeader::redrive`.
    pub redrive: u32,
    pub type_id: u32,
    pub len: usize,
    /// The body starts with an envelope.
    pub enveloped: bool,
    pub first_ns: u64,
    pub last_ns: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub dead_ns: u64,
    pub order: u64,
    pub group_created_ns: u64,
    pub payload: *const u8,
}

impl Raw {
    /// Its stored body (envelope and payload).
    ///
    /// # Safety
    /// `self` came from [`read`] (its length checked), and the entry's
    /// bytes hold still while the slice lives: the caller owns the entry
    /// (its state word says so).
    pub(crate) unsafe fn stored<'a>(&self) -> &'a [u8] {
        // SAFETY: `len` is at most what its run holds, and the run lies in
        // the region (checked by `read`); held still per the contract.
        unsafe { std::slice::from_raw_parts(self.payload, self.len) }
    }

    /// A copy of its stored body, taken without owning the entry: the
    /// caller re-checks the entry's state and order afterwards and
    /// discards the copy if it changed (seqlock-style), or only chooses a
    /// path by it and reads the entry again once it owns it.
    ///
    /// # Safety
    /// `self` came from [`read`]: its `len` bytes lie inside the region.
    pub(crate) unsafe fn copy_stored(&self) -> Vec<u8> {
        let mut body = vec![0u8; self.len];
        // SAFETY: per the contract, inside the entry; a plain byte copy
        // into our own buffer (a concurrent rewrite is the caller's to
        // detect).
        unsafe { std::ptr::copy_nonoverlapping(self.payload, body.as_mut_ptr(), self.len) };
        body
    }
}

/// Restarts entry `i`'s count of deliveries since its last redrive and
/// counts one more redrive (saturating at 0xffff), keeping its history.
///
/// # Safety
/// Entry `i` is ours (DELIVERING by us, in a redrive): nobody else writes
/// its header.
pub(crate) unsafe fn count_redrive(shared: &OpenQueue, i: usize) {
    // SAFETY: per the contract; the header is inside the mapping.
    unsafe {
        let r = std::ptr::addr_of_mut!((*header(shared, i)).redrive);
        r.write((r.read() & 0xffff).saturating_add(1).min(0xffff));
    }
}

/// Reads entry `i`'s header (the caller saw its state with Acquire). The
/// span and length are checked against the region: the file may be
/// garbled, or (for a reader that does not own the entry) rewritten
/// meanwhile.
pub(crate) fn read(shared: &OpenQueue, i: usize) -> Result<Raw> {
    let h = header(shared, i);
    // SAFETY: inside the mapping; plain integers (any bit pattern is a
    // value). Another process may rewrite them only after moving the state
    // away from what the caller saw; callers that copy without owning the
    // entry re-check the state and order afterwards (seqlock-style).
    let raw = unsafe {
        Raw {
            span: std::ptr::read_volatile(std::ptr::addr_of!((*h).span)),
            seq: std::ptr::read_volatile(std::ptr::addr_of!((*h).seq)),
            group: std::ptr::read_volatile(std::ptr::addr_of!((*h).group)),
            attempts: std::ptr::read_volatile(std::ptr::addr_of!((*h).attempts)),
            reason: std::ptr::read_volatile(std::ptr::addr_of!((*h).reason)),
            redrive: std::ptr::read_volatile(std::ptr::addr_of!((*h).redrive)),
            type_id: std::ptr::read_volatile(std::ptr::addr_of!((*h).type_id)),
            len: (std::ptr::read_volatile(std::ptr::addr_of!((*h).len)) & !ENVELOPED) as usize,
            enveloped: std::ptr::read_volatile(std::ptr::addr_of!((*h).len)) & ENVELOPED != 0,
            first_ns: std::ptr::read_volatile(std::ptr::addr_of!((*h).first_ns)),
            last_ns: std::ptr::read_volatile(std::ptr::addr_of!((*h).last_ns)),
            timestamp_ns: std::ptr::read_volatile(std::ptr::addr_of!((*h).timestamp_ns)),
            correlation_id: std::ptr::read_volatile(std::ptr::addr_of!((*h).correlation_id)),
            dead_ns: std::ptr::read_volatile(std::ptr::addr_of!((*h).dead_ns)),
            order: std::ptr::read_volatile(std::ptr::addr_of!((*h).order)),
            group_created_ns: std::ptr::read_volatile(std::ptr::addr_of!((*h).group_created_ns)),
            payload: (h as *const u8).add(DEAD_LETTER_HEADER_SIZE as usize),
        }
    };
    let fits = raw.span >= 1
        && raw.span <= shared.geo.dlq_slots - i as u64
        && raw.len as u64 <= shared.geo.dlq_room(raw.span);
    if !fits || raw.group as u64 >= shared.geo.max_groups {
        return Err(Error::corrupt(
            &shared.path,
            format!(
                "dead letter {i} claims {} bytes in {} entries and group {} ({} entries, \
                 max_groups {})",
                raw.len, raw.span, raw.group, shared.geo.dlq_slots, shared.geo.max_groups
            ),
        ));
    }
    Ok(raw)
}

/// Takes a redriven entry of group `group` for delivery. Returns the entry
/// index.
pub(crate) fn take_redriven(shared: &OpenQueue, group: usize) -> Option<usize> {
    let me = deliverer(group as u64, shared.me.key);
    for i in 0..shared.geo.dlq_slots as usize {
        let st = state(shared, i);
        let w = st.load(Ordering::Acquire);
        let mine = match state_of(w) {
            REDRIVE => arg_of(w) == group as u64,
            // A consumer died delivering it: give it to us.
            DELIVERING => {
                deliverer_group(arg_of(w)) == group as u64
                    && !shared.alive(0, deliverer_key(arg_of(w)))
            }
            _ => false,
        };
        if mine
            && st
                .compare_exchange(w, word(DELIVERING, me), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(i);
        }
    }
    None
}

/// Ends the delivery of redriven entry `i` of `group`: `done` frees it
/// (acked); otherwise it waits for its group again — or, once it has been
/// delivered `max_deliveries` times since its redrive (or `back_to_dlq`),
/// it is a dead letter again. Returns whether it went back to the DLQ.
pub(crate) fn end_redriven(
    shared: &OpenQueue,
    i: usize,
    group: usize,
    done: bool,
    back_to_dlq: bool,
) -> bool {
    let st = state(shared, i);
    let mut dead = back_to_dlq;
    if !done {
        // We own it while DELIVERING: count the delivery.
        let h = header(shared, i);
        // SAFETY: entry `i` is DELIVERING by us: its header is ours.
        unsafe {
            let r = std::ptr::addr_of_mut!((*h).redrive);
            let word = r.read();
            let since = (word >> 16).saturating_add(1).min(0xffff);
            r.write((word & 0xffff) | (since << 16));
            std::ptr::addr_of_mut!((*h).last_ns).write(os::clock::realtime_ns());
            if since >= shared.config.max_deliveries && !back_to_dlq {
                std::ptr::addr_of_mut!((*h).reason).write(Reason::MaxDeliveries.to_raw());
                dead = true;
            }
            if dead {
                // Its history: the deliveries since the redrive are added.
                let a = std::ptr::addr_of_mut!((*h).attempts);
                a.write(a.read().saturating_add(since));
                r.write(word & 0xffff);
            }
        }
    }
    if done {
        give_back(shared, i);
    } else {
        let next = if dead {
            word(READY, 0)
        } else {
            word(REDRIVE, group as u64)
        };
        st.store(next, Ordering::Release);
    }
    if done || dead {
        shared.group_records()[group]
            .redrive
            .fetch_sub(1, Ordering::AcqRel);
    }
    dead
}

/// Bytes of dead-letter metadata in front of the payload in an overflow
/// record.
pub(crate) const OVERFLOW_META: usize = 64;

/// The dead-letter queue's overflow (overflow=spill): dead letters that
/// find every entry of the region taken go to segment files
/// `<spill_dir>/dlq` (the spill's format; a record holds the dead letter's
/// metadata, then its payload), and come back into the region, oldest
/// first, as entries free up — on every DLQ operation and when a redriven
/// dead letter is acked. So a full DLQ never drops and never refuses while
/// its overflow has room. `dlq_spill.full` is an index: overflowed dead
/// letters below it come back into the region already redriven.
pub(crate) mod overflow {
    use std::sync::MutexGuard;

    use super::*;
    use crate::protocol::lock::AdminGuard;
    use crate::protocol::spill::{Log, Read, Record};
    use crate::store::segment::{Parsed, SEGMENT_HEADER_SIZE, Segments, parse_at};

    const REDRIVE_FLAG: u32 = 1;
    /// The dead letter's body starts with an envelope.
    const ENVELOPED_FLAG: u32 = 2;

    fn segs(shared: &OpenQueue) -> MutexGuard<'_, Segments> {
        let m = shared.dlq_spill.as_ref().expect("an overflow=spill queue");
        let mut segs = m.lock().unwrap_or_else(|p| p.into_inner());
        // Segments read back and deleted, unmapped (see
        // `OpenQueue::segments`).
        segs.forget_before(shared.header().dlq_spill.read_seg.load(Ordering::Relaxed));
        segs
    }

    /// The metadata and payload of a dead letter, as an overflow record's
    /// payload (little-endian).
    fn encode(e: &Entry<'_>, dead_ns: u64, flags: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(OVERFLOW_META + e.payload.len());
        v.extend_from_slice(&(e.group as u32).to_le_bytes());
        v.extend_from_slice(&e.attempts.to_le_bytes());
        v.extend_from_slice(&e.reason.to_raw().to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        for x in [e.first_ns, e.last_ns, dead_ns, e.group_created_ns, e.seq] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&e.redrives.to_le_bytes());
        v.resize(OVERFLOW_META, 0);
        v.extend_from_slice(e.payload);
        v
    }

    /// Decodes an overflow record; None if its metadata makes no sense
    /// (the record passed its checksum, so only a bug or a foreign file
    /// gets here).
    fn decode<'a>(shared: &OpenQueue, rec: &Record<'a>) -> Option<(Entry<'a>, u64, u32)> {
        let b = rec.payload;
        let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
        let group = u32_at(0)? as usize;
        let payload = b.get(OVERFLOW_META..)?;
        if group as u64 >= shared.geo.max_groups
            || payload.len() as u64 > shared.geo.dlq_room(shared.geo.dlq_slots)
        {
            return None;
        }
        Some((
            Entry {
                seq: u64_at(48)?,
                redrives: u32_at(56)?,
                group,
                group_created_ns: u64_at(40)?,
                attempts: u32_at(4)?,
                reason: Reason::from_raw(u32_at(8)?)?,
                first_ns: u64_at(16)?,
                last_ns: u64_at(24)?,
                timestamp_ns: rec.timestamp_ns,
                type_id: rec.type_id,
                correlation_id: rec.correlation_id,
                enveloped: u32_at(12)? & ENVELOPED_FLAG != 0,
                payload,
            },
            u64_at(32)?,
            u32_at(12)?,
        ))
    }

    /// Appends `e` to the overflow (the region was full when looked at).
    pub(crate) fn append(shared: &OpenQueue, e: &Entry<'_>) -> Result<()> {
        let g = shared.lock();
        let mut segs = segs(shared);
        // Entries may have freed up since: the oldest dead letters first.
        refill_locked(shared, &g, &mut segs)?;
        let ctl = &shared.header().dlq_spill;
        if ctl.read_seq.load(Ordering::Relaxed) == ctl.end_seq.load(Ordering::Relaxed) {
            if let Some(i) = claim(shared, e.payload.len())? {
                write_entry(shared, i, e, None, os::clock::realtime_ns());
                return Ok(());
            }
        }
        if shared.stores_refused.is_some() {
            // Our view of the spill directory is not the queue's: an
            // overflowed dead letter there would be lost to the others.
            // The message stays leased, as with a full region.
            return Err(Error::DlqFull(shared.geo.dlq_slots));
        }
        let flags = if e.enveloped { ENVELOPED_FLAG } else { 0 };
        let bytes = encode(e, os::clock::realtime_ns(), flags);
        let rec = Record {
            seq: ctl.end_seq.load(Ordering::Relaxed),
            timestamp_ns: e.timestamp_ns,
            correlation_id: e.correlation_id,
            type_id: e.type_id,
            enveloped: false,
            payload: &bytes,
        };
        segs.append(ctl, &rec).map_err(|err| match err {
            // The overflow's budget or disk is full too: the message stays
            // leased, as with a full region and no overflow.
            Error::SpillFull(_) => Error::DlqFull(shared.geo.dlq_slots),
            other => other,
        })?;
        // Release: the record before the count that makes it pending.
        ctl.end_seq.store(rec.seq + 1, Ordering::Release);
        ctl.spilled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Moves overflowed dead letters back into free entries of the region,
    /// if the admin lock is free (`wait`: take it anyway).
    pub(crate) fn refill(shared: &OpenQueue, wait: bool) -> Result<u64> {
        if shared.dlq_spill.is_none() || pending(shared) == 0 {
            return Ok(0);
        }
        let Some(g) = shared.lock_unless_busy(wait) else {
            return Ok(0);
        };
        refill_locked(shared, &g, &mut segs(shared))
    }

    fn refill_locked(shared: &OpenQueue, _g: &AdminGuard<'_>, segs: &mut Segments) -> Result<u64> {
        if shared.stores_refused.is_some() {
            // Not the queue's directory as we see it: nothing of it is ours
            // to read (`store/owner.rs`).
            return Ok(0);
        }
        let ctl = &shared.header().dlq_spill;
        let mut n = 0;
        while ctl.read_seq.load(Ordering::Relaxed) < ctl.end_seq.load(Ordering::Relaxed) {
            let want = ctl.read_seq.load(Ordering::Relaxed);
            let redrive_below = ctl.full.load(Ordering::Relaxed);
            // What became of the record: written back, no run free for it
            // (it stays, the oldest, and nothing after it comes back
            // before it), or the claim failed.
            let mut wrote = false;
            let mut no_room = false;
            let mut failed = None;
            let read = segs.read(ctl, &mut |rec| {
                let Some((e, dead_ns, flags)) = decode(shared, rec) else {
                    return;
                };
                let i = match claim(shared, e.payload.len()) {
                    Ok(Some(i)) => i,
                    Ok(None) => {
                        no_room = true;
                        return;
                    }
                    Err(err) => {
                        failed = Some(err);
                        return;
                    }
                };
                let group = &shared.group_records()[e.group];
                let exists = group.state.load(Ordering::Acquire) == crate::protocol::group::ACTIVE
                    && group.created_ns.load(Ordering::Acquire) == e.group_created_ns;
                let redrive = (flags & REDRIVE_FLAG != 0 || want < redrive_below) && exists;
                write_entry(shared, i, &e, redrive.then_some(()), dead_ns);
                wrote = true;
            })?;
            if let Some(err) = failed {
                return Err(err);
            }
            if no_room {
                // Not read after all: the read position stays on it.
                break;
            }
            if let Read::Done { seg, off } = read {
                ctl.read_seg.store(seg, Ordering::Relaxed);
                ctl.read_off.store(off, Ordering::Relaxed);
            }
            if !wrote {
                // Damaged or missing.
                ctl.lost.fetch_add(1, Ordering::Relaxed);
            }
            ctl.read_seq.store(want + 1, Ordering::Release);
            n += 1;
        }
        if ctl.segments.load(Ordering::Relaxed) > 0
            && ctl.read_seq.load(Ordering::Relaxed) == ctl.end_seq.load(Ordering::Relaxed)
        {
            segs.clear(ctl)?;
        }
        if n > 0 {
            shared.ring().notify_data();
        }
        Ok(n)
    }

    /// Dead letters waiting in the overflow.
    pub(crate) fn pending(shared: &OpenQueue) -> u64 {
        let ctl = &shared.header().dlq_spill;
        ctl.end_seq
            .load(Ordering::Acquire)
            .saturating_sub(ctl.read_seq.load(Ordering::Acquire))
    }

    /// Calls `f(segment, offset, record)` for every pending overflow record,
    /// oldest first. Under the admin lock.
    fn walk(
        shared: &OpenQueue,
        segs: &mut Segments,
        f: &mut dyn FnMut(u64, u64, &Record<'_>) -> Result<()>,
    ) -> Result<()> {
        let ctl = &shared.header().dlq_spill;
        let end = ctl.end_seq.load(Ordering::Relaxed);
        let (mut seg, mut off) = (
            ctl.read_seg.load(Ordering::Relaxed),
            ctl.read_off.load(Ordering::Relaxed),
        );
        let max_len = segs.max_len;
        let mut left = pending(shared);
        while left > 0 {
            let s = segs.get(seg)?;
            match parse_at(s.bytes(), off, max_len) {
                Parsed::Message(rec, next) if rec.seq < end => {
                    f(seg, off, &rec)?;
                    off = next;
                    left -= 1;
                }
                Parsed::End(next) => {
                    seg = next;
                    off = SEGMENT_HEADER_SIZE;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The pending overflow records as dead letters (`order` after every
    /// entry of the region).
    pub(crate) fn list(shared: &OpenQueue) -> Result<Vec<DeadLetter>> {
        if shared.dlq_spill.is_none() || pending(shared) == 0 {
            return Ok(Vec::new());
        }
        let _g = shared.lock();
        let mut segs = segs(shared);
        let below = shared.header().dlq_spill.full.load(Ordering::Relaxed);
        let mut out = Vec::new();
        walk(shared, &mut segs, &mut |_, _, rec| {
            let Some((e, dead_ns, flags)) = decode(shared, rec) else {
                return Ok(());
            };
            let grec = &shared.group_records()[e.group];
            let group = if grec.created_ns.load(Ordering::Acquire) == e.group_created_ns {
                load_group_name(grec).unwrap_or_default()
            } else {
                String::new()
            };
            out.push(DeadLetter {
                seq: e.seq,
                group,
                attempts: e.attempts,
                redrives: e.redrives,
                reason: e.reason,
                first_delivery_ns: e.first_ns,
                last_delivery_ns: e.last_ns,
                dead_lettered_ns: dead_ns,
                timestamp_ns: e.timestamp_ns,
                type_id: e.type_id,
                correlation_id: e.correlation_id,
                redriven: flags & REDRIVE_FLAG != 0 || rec.seq < below,
                ..DeadLetter::body(e.payload, e.enveloped)
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Marks pending overflow records for redrive: all (`None`), or those
    /// of one original seq (their flag is rewritten in place). Returns how
    /// many. They reach their group as they come back into the region.
    pub(crate) fn redrive(shared: &OpenQueue, seq: Option<u64>) -> Result<u64> {
        if shared.dlq_spill.is_none() || pending(shared) == 0 {
            return Ok(0);
        }
        let _g = shared.lock();
        let mut segs = segs(shared);
        let ctl = &shared.header().dlq_spill;
        let Some(seq) = seq else {
            // Count those not redriven yet, then redrive everything below
            // the end.
            let below = ctl.full.load(Ordering::Relaxed);
            let mut n = 0;
            walk(shared, &mut segs, &mut |_, _, rec| {
                if let Some((_, _, flags)) = decode(shared, rec) {
                    n += u64::from(flags & REDRIVE_FLAG == 0 && rec.seq >= below);
                }
                Ok(())
            })?;
            ctl.full
                .store(ctl.end_seq.load(Ordering::Relaxed), Ordering::Relaxed);
            return Ok(n);
        };
        /// Segment, offset, then the record's seq, timestamp, correlation
        /// id, type id and new payload (its flag set): rewritten in place
        /// after the walk, same length, new checksum.
        type Rewrite = (u64, u64, u64, u64, u64, u32, Vec<u8>);
        let mut hits: Vec<Rewrite> = Vec::new();
        walk(shared, &mut segs, &mut |s, o, rec| {
            if let Some((e, dead_ns, flags)) = decode(shared, rec) {
                if e.seq == seq && flags & REDRIVE_FLAG == 0 {
                    let bytes = encode(&e, dead_ns, flags | REDRIVE_FLAG);
                    hits.push((
                        s,
                        o,
                        rec.seq,
                        rec.timestamp_ns,
                        rec.correlation_id,
                        rec.type_id,
                        bytes,
                    ));
                }
            }
            Ok(())
        })?;
        for (s, o, rseq, ts, corr, ty, bytes) in &hits {
            let rec = Record {
                seq: *rseq,
                timestamp_ns: *ts,
                correlation_id: *corr,
                type_id: *ty,
                enveloped: false,
                payload: bytes,
            };
            segs.write(*s, *o, &rec)?;
        }
        Ok(hits.len() as u64)
    }
}
