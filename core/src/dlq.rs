//! The dead-letter queue: a region of `dlq_slots` entries in the queue
//! file, each a [`DeadLetterHeader`] and a payload.
//!
//! An entry's `state` word walks
//!
//! ```text
//!  FREE ─append─▶ WRITING(pid) ─▶ READY ─redrive─▶ REDRIVE(group) ─take─▶ DELIVERING(pid)
//!    ▲                 │ (writer died)  │                 ▲                 │
//!    └─────────────────┴──── purge ◀────┘                 └─ nack / drop ───┤
//!    ▲                                                                      │
//!    └──────────────────────────────── ack ─────────────────────────────────┘
//! ```
//!
//! Every transition is a CAS, so two consumers dead-lettering at once take
//! two different entries, and a redriven entry goes to one consumer of its
//! group. The header fields and payload belong to whoever moved the state
//! away from FREE (the writer) and are published by its Release store of
//! READY; readers load the state with Acquire. A message is marked DEAD for
//! its group only after its entry is READY, so a crash in between leaves it
//! leased (and redelivered), never lost.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::group::load_group_name;
use crate::layout::{DEAD_LETTER_HEADER_SIZE, DeadLetterHeader};
use crate::queue::Shared;
use crate::sync::{AtomicU64, Ordering};
use crate::sys;

use crate::tables::claim_dead_letter;
use crate::tables::dead_letter::{
    DELIVERING, FREE, READY, REDRIVE, WRITING, arg_of, state_of, word,
};

/// Why a message was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The consumer nacked it with `Nack::DeadLetter`.
    Nacked,
    /// It was delivered `max_deliveries` times without an ack.
    MaxDeliveries,
}

impl Reason {
    fn to_raw(self) -> u32 {
        match self {
            Reason::Nacked => 1,
            Reason::MaxDeliveries => 2,
        }
    }
    fn from_raw(r: u32) -> Option<Reason> {
        match r {
            1 => Some(Reason::Nacked),
            2 => Some(Reason::MaxDeliveries),
            _ => None,
        }
    }
    /// The reason's name, as the CLI prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nacked => "nacked",
            Reason::MaxDeliveries => "max-deliveries",
        }
    }
}

/// A copy of one dead letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message's original seq.
    pub seq: u64,
    /// The group that dead-lettered it (empty if that group was deleted).
    pub group: String,
    /// Deliveries it had.
    pub attempts: u32,
    /// Why it is here.
    pub reason: Reason,
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
}

/// What a dead-lettering writes, besides the payload.
pub(crate) struct Entry<'a> {
    pub seq: u64,
    pub group: usize,
    pub group_created_ns: u64,
    pub attempts: u32,
    pub reason: Reason,
    pub first_ns: u64,
    pub last_ns: u64,
    pub timestamp_ns: u64,
    pub type_id: u32,
    pub correlation_id: u64,
    pub payload: &'a [u8],
}

/// The dead-letter queue of a queue: `queue.dlq()`.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{Ack, ConsumerOptions, Nack, Options, Queue};
/// let q = Queue::create("doc-dlq", &Options::new().dir(dir.path()).slots(8))?;
/// let mut c = q.consumer("work", ConsumerOptions::new().ack(Ack::Manual))?;
/// q.producer()?.publish(b"poison")?;
/// c.receive()?.nack(Nack::DeadLetter)?;
/// let dead = q.dlq().list()?;
/// assert_eq!((dead[0].seq, dead[0].payload.as_slice()), (0, &b"poison"[..]));
/// assert_eq!(q.dlq().redrive(None)?, 1); // back to "work", and only to it
/// assert_eq!(c.receive()?.payload(), b"poison");
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queue", &self.shared.name)
            .finish()
    }
}

/// A pointer to entry `i`'s header.
fn header(shared: &Shared, i: usize) -> *mut DeadLetterHeader {
    shared.dead_letter(i) as *mut DeadLetterHeader
}

/// Entry `i`'s state word.
pub(crate) fn state(shared: &Shared, i: usize) -> &AtomicU64 {
    // SAFETY: the entry is inside the mapping (`Shared::dead_letter`),
    // 64-byte aligned (page-aligned region, stride a multiple of 64), and
    // its first 8 bytes are only ever accessed atomically.
    unsafe { &*(shared.dead_letter(i) as *const AtomicU64) }
}

/// Appends a dead letter: `Err(Error::DlqFull)` if every entry is taken.
pub(crate) fn append(shared: &Shared, e: &Entry<'_>) -> Result<()> {
    let states = (0..shared.geo.dlq_slots as usize).map(|i| state(shared, i));
    let Some(i) = claim_dead_letter(states, shared.me.pid, |pid| sys::process_alive(pid, 0)) else {
        return Err(Error::DlqFull(shared.geo.dlq_slots));
    };
    {
        let st = state(shared, i);
        let len = e.payload.len().min(shared.geo.slot_size as usize);
        let order = shared.header().dlq_order.fetch_add(1, Ordering::Relaxed);
        // SAFETY: entry `i` is ours (WRITING by us) until we store READY;
        // its header and `slot_size` payload bytes are inside the mapping.
        unsafe {
            let h = header(shared, i);
            std::ptr::addr_of_mut!((*h).seq).write(e.seq);
            std::ptr::addr_of_mut!((*h).group).write(e.group as u32);
            std::ptr::addr_of_mut!((*h).attempts).write(e.attempts);
            std::ptr::addr_of_mut!((*h).reason).write(e.reason.to_raw());
            std::ptr::addr_of_mut!((*h).type_id).write(e.type_id);
            std::ptr::addr_of_mut!((*h).len).write(len as u32);
            std::ptr::addr_of_mut!((*h).first_ns).write(e.first_ns);
            std::ptr::addr_of_mut!((*h).last_ns).write(e.last_ns);
            std::ptr::addr_of_mut!((*h).timestamp_ns).write(e.timestamp_ns);
            std::ptr::addr_of_mut!((*h).correlation_id).write(e.correlation_id);
            std::ptr::addr_of_mut!((*h).dead_ns).write(sys::realtime_ns());
            std::ptr::addr_of_mut!((*h).order).write(order);
            std::ptr::addr_of_mut!((*h).group_created_ns).write(e.group_created_ns);
            std::ptr::copy_nonoverlapping(
                e.payload.as_ptr(),
                (h as *mut u8).add(DEAD_LETTER_HEADER_SIZE as usize),
                len,
            );
        }
        // Release: the entry's fields are visible to whoever loads READY.
        st.store(word(READY, 0), Ordering::Release);
    }
    Ok(())
}

/// The fields of entry `i` as raw values, and its payload location.
pub(crate) struct Raw {
    pub seq: u64,
    pub group: u32,
    pub attempts: u32,
    pub reason: u32,
    pub type_id: u32,
    pub len: usize,
    pub first_ns: u64,
    pub last_ns: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub dead_ns: u64,
    pub order: u64,
    pub group_created_ns: u64,
    pub payload: *const u8,
}

/// Reads entry `i`'s header (the caller saw its state with Acquire). The
/// length is checked against `slot_size`: the file may be garbled.
pub(crate) fn read(shared: &Shared, i: usize) -> Result<Raw> {
    let h = header(shared, i);
    // SAFETY: inside the mapping; plain integers (any bit pattern is a
    // value). Another process may rewrite them only after moving the state
    // away from what the caller saw; callers that copy without owning the
    // entry re-check the state and order afterwards (seqlock-style).
    let raw = unsafe {
        Raw {
            seq: std::ptr::read_volatile(std::ptr::addr_of!((*h).seq)),
            group: std::ptr::read_volatile(std::ptr::addr_of!((*h).group)),
            attempts: std::ptr::read_volatile(std::ptr::addr_of!((*h).attempts)),
            reason: std::ptr::read_volatile(std::ptr::addr_of!((*h).reason)),
            type_id: std::ptr::read_volatile(std::ptr::addr_of!((*h).type_id)),
            len: std::ptr::read_volatile(std::ptr::addr_of!((*h).len)) as usize,
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
    if raw.len > shared.geo.slot_size as usize || raw.group as u64 >= shared.geo.max_groups {
        return Err(Error::corrupt(
            &shared.path,
            format!(
                "dead letter {i} claims {} bytes and group {} (slot_size {}, max_groups {})",
                raw.len, raw.group, shared.geo.slot_size, shared.geo.max_groups
            ),
        ));
    }
    Ok(raw)
}

/// Takes a redriven entry of group `group` for delivery. Returns the entry
/// index.
pub(crate) fn take_redriven(shared: &Shared, group: usize) -> Option<usize> {
    let me = shared.me.pid as u64;
    for i in 0..shared.geo.dlq_slots as usize {
        let st = state(shared, i);
        let w = st.load(Ordering::Acquire);
        let mine = match state_of(w) {
            REDRIVE => arg_of(w) == group as u64,
            // A consumer died delivering it: give it to us.
            DELIVERING => {
                let pid = (arg_of(w) & 0xffff_ffff) as u32;
                (arg_of(w) >> 32) == group as u64 && !sys::process_alive(pid, 0)
            }
            _ => false,
        };
        if mine
            && st
                .compare_exchange(
                    w,
                    word(DELIVERING, ((group as u64) << 32) | me),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(i);
        }
    }
    None
}

/// Ends the delivery of redriven entry `i` of `group`: `done` frees it
/// (acked); otherwise it waits for its group again (`back_to_dlq`: as a
/// dead letter).
/// Ends the delivery of redriven entry `i` of `group`: `done` frees it
/// (acked); otherwise it waits for its group again — or, once it has been
/// delivered `max_deliveries` times since its redrive (or `back_to_dlq`),
/// it is a dead letter again. Returns whether it went back to the DLQ.
pub(crate) fn end_redriven(
    shared: &Shared,
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
            let a = std::ptr::addr_of_mut!((*h).attempts);
            let attempts = a.read().saturating_add(1);
            a.write(attempts);
            std::ptr::addr_of_mut!((*h).last_ns).write(sys::realtime_ns());
            if attempts >= shared.config.max_deliveries && !back_to_dlq {
                std::ptr::addr_of_mut!((*h).reason).write(Reason::MaxDeliveries.to_raw());
                dead = true;
            }
        }
    }
    let next = if done {
        word(FREE, 0)
    } else if dead {
        word(READY, 0)
    } else {
        word(REDRIVE, group as u64)
    };
    st.store(next, Ordering::Release);
    if done || dead {
        shared.group_records()[group]
            .redrive
            .fetch_sub(1, Ordering::AcqRel);
    }
    dead
}

impl DeadLetters {
    /// Every dead letter (READY, or redriven and not yet finished), oldest
    /// first.
    pub fn list(&self) -> Result<Vec<DeadLetter>> {
        let shared = &*self.shared;
        let mut out = Vec::new();
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let before = st.load(Ordering::Acquire);
            if !matches!(state_of(before), READY | REDRIVE | DELIVERING) {
                continue;
            }
            let raw = read(shared, i)?;
            let mut payload = vec![0u8; raw.len];
            // SAFETY: `raw.len <= slot_size` (checked by `read`), inside
            // the entry; a concurrent rewrite is detected below and the
            // copy discarded.
            unsafe {
                std::ptr::copy_nonoverlapping(raw.payload, payload.as_mut_ptr(), raw.len);
            }
            // Acquire fence + reload: the entry did not change while we
            // copied it (a purge + append in between changes the order).
            std::sync::atomic::fence(Ordering::Acquire);
            let again = read(shared, i)?;
            if st.load(Ordering::Relaxed) != before || again.order != raw.order {
                continue;
            }
            let rec = &shared.group_records()[raw.group as usize];
            let group = if rec.created_ns.load(Ordering::Acquire) == raw.group_created_ns {
                load_group_name(rec).unwrap_or_default()
            } else {
                String::new()
            };
            out.push((
                raw.order,
                DeadLetter {
                    seq: raw.seq,
                    group,
                    attempts: raw.attempts,
                    reason: Reason::from_raw(raw.reason).ok_or_else(|| {
                        Error::corrupt(&shared.path, format!("dead letter {i}: bad reason"))
                    })?,
                    first_delivery_ns: raw.first_ns,
                    last_delivery_ns: raw.last_ns,
                    dead_lettered_ns: raw.dead_ns,
                    timestamp_ns: raw.timestamp_ns,
                    type_id: raw.type_id,
                    correlation_id: raw.correlation_id,
                    redriven: state_of(before) != READY,
                    payload,
                },
            ));
        }
        out.sort_by_key(|(order, _)| *order);
        Ok(out.into_iter().map(|(_, d)| d).collect())
    }

    /// Dead letters waiting (not redriven).
    pub fn len(&self) -> u64 {
        let shared = &*self.shared;
        (0..shared.geo.dlq_slots as usize)
            .filter(|&i| state_of(state(shared, i).load(Ordering::Relaxed)) == READY)
            .count() as u64
    }

    /// Whether no dead letter is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends dead letters back to the group that dead-lettered them, and
    /// only to it: all of them (`None`) or those of one seq. Returns how
    /// many. A redriven message starts a fresh count of deliveries: after
    /// `max_deliveries` more without an ack it is a dead letter again. A dead letter whose group was deleted stays (it is listed
    /// with an empty group name; purge it).
    pub fn redrive(&self, seq: Option<u64>) -> Result<u64> {
        let shared = &*self.shared;
        let mut n = 0;
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let w = st.load(Ordering::Acquire);
            if state_of(w) != READY {
                continue;
            }
            let raw = read(shared, i)?;
            if seq.is_some_and(|s| s != raw.seq) {
                continue;
            }
            let rec = &shared.group_records()[raw.group as usize];
            if rec.state.load(Ordering::Acquire) != 1
                || rec.created_ns.load(Ordering::Acquire) != raw.group_created_ns
            {
                continue;
            }
            // Own it (as a writer) to give it a fresh delivery budget, as
            // an SQS redrive does; then hand it to its group. Count first:
            // a consumer that takes it decrements.
            if st
                .compare_exchange(
                    w,
                    word(WRITING, shared.me.pid as u64),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            // SAFETY: entry `i` is ours (WRITING by us) until we store
            // REDRIVE; its header is inside the mapping.
            unsafe { std::ptr::addr_of_mut!((*header(shared, i)).attempts).write(0) };
            rec.redrive.fetch_add(1, Ordering::AcqRel);
            // Release: the reset count is seen by whoever takes it.
            st.store(word(REDRIVE, raw.group as u64), Ordering::Release);
            n += 1;
        }
        if n > 0 {
            shared.ring().notify_data();
        }
        if n == 0 && seq.is_some() {
            return Err(Error::NotFound(format!(
                "dead letter with seq {} (whose group still exists)",
                seq.unwrap_or_default()
            )));
        }
        Ok(n)
    }

    /// Deletes every waiting dead letter (not those redriven). Returns how
    /// many.
    pub fn purge(&self) -> Result<u64> {
        let shared = &*self.shared;
        let mut n = 0;
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let w = st.load(Ordering::Acquire);
            if state_of(w) == READY
                && st
                    .compare_exchange(w, word(FREE, 0), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }
}
