//! The dead-letter queue of a queue: count, list (metadata, then payloads
//! one at a time), redrive to the group that dead-lettered, purge.

use std::ffi::c_char;

use shmq::{DeadLetter, Reason};

use crate::boundary::{OutBuf, fill_array, guard, handle_ref, input, out, out_opt, text};
use crate::options::Wait;
use crate::queue::{SHMQ_GROUP_NAME_CAP, group_name, shmq_queue};
use crate::status::{CallError, shmq_status};

/// Why a message was dead-lettered: `SHMQ_DLQ_REASON_NACKED`,
/// `SHMQ_DLQ_REASON_MAX_DELIVERIES`, `SHMQ_DLQ_REASON_EXPIRED`, or
/// `SHMQ_DLQ_REASON_OTHER` for a reason this version of the C API has no
/// value for.
pub type shmq_dlq_reason = u32;
/// A reason newer than this header.
pub const SHMQ_DLQ_REASON_OTHER: shmq_dlq_reason = 0;
/// A consumer nacked it with `SHMQ_NACK_DEAD_LETTER`.
pub const SHMQ_DLQ_REASON_NACKED: shmq_dlq_reason = 1;
/// It was delivered `max_deliveries` times without an ack.
pub const SHMQ_DLQ_REASON_MAX_DELIVERIES: shmq_dlq_reason = 2;
/// Its time to live ran out before the group finished it
/// (`shmq_meta.ttl_ms`, `shmq_options.message_ttl_ms`).
pub const SHMQ_DLQ_REASON_EXPIRED: shmq_dlq_reason = 3;

/// A copy of one dead letter's metadata (`shmq_dlq_list`). Its payload is
/// read with `shmq_dlq_payload(queue, seq, group, ...)`. Plain data.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_dead_letter {
    /// The message's original seq.
    pub seq: u64,
    /// The group that dead-lettered it, NUL-terminated (empty if that
    /// group was deleted since).
    pub group: [c_char; SHMQ_GROUP_NAME_CAP],
    /// Whether it was redriven and is waiting for (or being delivered to)
    /// its group.
    pub redriven: bool,
    /// Why it is here (a `shmq_dlq_reason`).
    pub reason: shmq_dlq_reason,
    /// Deliveries it had when it was dead-lettered (kept by a redrive).
    pub attempts: u32,
    /// The producer's type tag.
    pub type_id: u32,
    /// The producer's correlation id.
    pub correlation_id: u64,
    /// Publish time, CLOCK_REALTIME nanoseconds.
    pub timestamp_ns: u64,
    /// CLOCK_REALTIME nanoseconds of its first delivery.
    pub first_delivery_ns: u64,
    /// CLOCK_REALTIME nanoseconds of its last delivery.
    pub last_delivery_ns: u64,
    /// CLOCK_REALTIME nanoseconds when it was dead-lettered.
    pub dead_lettered_ns: u64,
    /// Length of its payload in bytes.
    pub len: usize,
    /// How many times it was redriven. `attempts` and `reason` are those of
    /// its dead-lettering and stay through a redrive; a redriven message's
    /// deliveries count from attempt 1 again (a fresh budget).
    pub redrives: u32,
    /// Length in bytes of its ordering key (0: it has none). Read the key
    /// with `shmq_dlq_ordering_key`.
    pub ordering_key_len: usize,
    /// How many headers it has. Read them with `shmq_dlq_header`.
    pub headers_len: usize,
}

impl From<&DeadLetter> for shmq_dead_letter {
    fn from(d: &DeadLetter) -> shmq_dead_letter {
        shmq_dead_letter {
            seq: d.seq,
            group: group_name(&d.group),
            redriven: d.redriven,
            reason: match d.reason {
                Reason::Nacked => SHMQ_DLQ_REASON_NACKED,
                Reason::MaxDeliveries => SHMQ_DLQ_REASON_MAX_DELIVERIES,
                Reason::Expired => SHMQ_DLQ_REASON_EXPIRED,
                _ => SHMQ_DLQ_REASON_OTHER,
            },
            attempts: d.attempts,
            redrives: d.redrives,
            type_id: d.type_id,
            correlation_id: d.correlation_id,
            timestamp_ns: d.timestamp_ns,
            first_delivery_ns: d.first_delivery_ns,
            last_delivery_ns: d.last_delivery_ns,
            dead_lettered_ns: d.dead_lettered_ns,
            len: d.payload.len(),
            ordering_key_len: d.ordering_key.as_deref().map_or(0, <[u8]>::len),
            headers_len: d.headers.len(),
        }
    }
}

/// Writes the number of dead letters waiting (not redriven) to `len_out`.
///
/// # Safety
/// `queue` is NULL or live; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_len(queue: *const shmq_queue, len_out: *mut u64) -> shmq_status {
    guard(|| {
        let len_out = out(len_out, "len_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let n = q.queue.dlq().len();
        // SAFETY: checked writable out-parameter.
        unsafe { len_out.write(n) };
        Ok(())
    })
}

/// Copies the metadata of up to `capacity` dead letters (waiting, or
/// redriven and not yet finished), oldest first, into `letters_out` and
/// writes how many there are in all to `count_out` (which may exceed
/// `capacity`: call again with more room). `letters_out` may be NULL when
/// `capacity` is 0. A snapshot: other processes may change the DLQ
/// meanwhile.
///
/// # Safety
/// `queue` is NULL or live; `letters_out` is NULL or writable for
/// `capacity` elements; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_list(
    queue: *const shmq_queue,
    letters_out: *mut shmq_dead_letter,
    capacity: usize,
    count_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let snapshot = || {
            // SAFETY: `queue` per the contract.
            let q = unsafe { handle_ref(queue, "queue") }?;
            Ok(q.queue.dlq().list()?)
        };
        // SAFETY: `letters_out` and `count_out` per the contract.
        unsafe { fill_array(letters_out, "letters_out", capacity, count_out, snapshot) }
    })
}

/// Copies the payload of the dead letter of seq `seq` (and of group
/// `group`; NULL: of any group — with fan-out, several groups may have
/// dead-lettered the same seq) into `buf`: its first `min(len, capacity)`
/// bytes. Writes its full length to `len_out`, so `len_out > capacity`
/// means `buf` was too small (`buf` may be NULL with `capacity` 0 to ask
/// for the length). `SHMQ_NOT_FOUND` if there is no such dead letter.
///
/// # Safety
/// `queue` is NULL or live; `group` is NULL or NUL-terminated; `buf` is
/// NULL or writable for `capacity` bytes; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_payload(
    queue: *const shmq_queue,
    seq: u64,
    group: *const c_char,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe { copy_letter_field(queue, seq, group, buf, capacity, len_out, |d| &d.payload) }
}

/// The dead letter of seq `seq` and of group `group` (NULL: of any group).
///
/// # Safety
/// `queue` is NULL or live; `group` is NULL or NUL-terminated.
unsafe fn find_letter(
    queue: *const shmq_queue,
    seq: u64,
    group: *const c_char,
) -> Result<DeadLetter, CallError> {
    let group = if group.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the contract.
        Some(unsafe { text(group, "group") }?)
    };
    // SAFETY: per the contract.
    let q = unsafe { handle_ref(queue, "queue") }?;
    let letters = q.queue.dlq().list()?;
    let found = letters
        .into_iter()
        .find(|d| d.seq == seq && group.is_none_or(|g| g == d.group));
    Ok(found.ok_or_else(|| {
        shmq::Error::NotFound(match group {
            Some(g) => format!("dead letter of seq {seq} and group {g:?}"),
            None => format!("dead letter of seq {seq}"),
        })
    })?)
}

/// Copies `field` of the dead letter of seq `seq` (and group `group`) as
/// `shmq_dlq_payload` documents.
///
/// # Safety
/// As for `shmq_dlq_payload`.
unsafe fn copy_letter_field(
    queue: *const shmq_queue,
    seq: u64,
    group: *const c_char,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
    field: impl FnOnce(&DeadLetter) -> &[u8],
) -> shmq_status {
    guard(|| {
        let dest = OutBuf::new(buf, capacity, len_out)?;
        // SAFETY: per the contract.
        let d = unsafe { find_letter(queue, seq, group) }?;
        // SAFETY: `buf` and `len_out` per the contract.
        unsafe { dest.write_bytes(field(&d)) };
        Ok(())
    })
}

/// Copies the ordering key of the dead letter of seq `seq` (and of group
/// `group`, NULL for any, as in `shmq_dlq_payload`) into `buf`, as
/// `shmq_dlq_payload` copies the payload: its first `min(len, capacity)`
/// bytes, and its length to `len_out` (0 if it has no key; keys are 1 to
/// `SHMQ_MAX_ORDERING_KEY` bytes). `SHMQ_NOT_FOUND` if there is no such
/// dead letter.
///
/// # Safety
/// As for `shmq_dlq_payload`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_ordering_key(
    queue: *const shmq_queue,
    seq: u64,
    group: *const c_char,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe {
        copy_letter_field(queue, seq, group, buf, capacity, len_out, |d| {
            d.ordering_key.as_deref().unwrap_or_default()
        })
    }
}

/// Copies header `index` (0 for the first, in the order they were
/// published) of the dead letter of seq `seq` (and of group `group`, NULL
/// for any): its name (UTF-8, not NUL-terminated) into `name_buf` and its
/// value into `value_buf`, each as `shmq_dlq_payload` copies a payload
/// (the first `min(len, capacity)` bytes, the full length to
/// `name_len_out` / `value_len_out`; a name is at most
/// `SHMQ_MAX_HEADER_NAME` bytes). `SHMQ_NOT_FOUND` if there is no such dead
/// letter; `SHMQ_INVALID_ARGUMENT` if `index >= headers_len`.
///
/// # Safety
/// `queue` is NULL or live; `group` is NULL or NUL-terminated; `name_buf`
/// is NULL or writable for `name_capacity` bytes and `value_buf` for
/// `value_capacity` bytes; `name_len_out` and `value_len_out` are NULL or
/// writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn shmq_dlq_header(
    queue: *const shmq_queue,
    seq: u64,
    group: *const c_char,
    index: usize,
    name_buf: *mut u8,
    name_capacity: usize,
    name_len_out: *mut usize,
    value_buf: *mut u8,
    value_capacity: usize,
    value_len_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let name_dest = OutBuf::new(name_buf, name_capacity, name_len_out)?;
        let value_dest = OutBuf::new(value_buf, value_capacity, value_len_out)?;
        // SAFETY: per the contract.
        let d = unsafe { find_letter(queue, seq, group) }?;
        let of = || format!("the dead letter of seq {seq}");
        // SAFETY: the buffers and lengths per the contract.
        unsafe { crate::boundary::write_header(&d.headers, index, of, name_dest, value_dest) }
    })
}

/// Sends dead letters back to the group that dead-lettered them, and only
/// to it: all of them (`seq == NULL`) or those of seq `*seq`. Writes how
/// many to `count_out` (may be NULL). Its consumers receive them (one at a
/// time, with `shmq_receive`) before new messages. `SHMQ_NOT_FOUND` if
/// `*seq` has no dead letter (whose group still exists). A dead letter
/// whose group was deleted stays (purge it).
///
/// A keyed dead letter goes back through the ring (to the end of its key)
/// and needs room there; this call does not wait for it (see
/// `shmq_dlq_redrive_timeout`). Those without room stay in the DLQ and the
/// call fails with `SHMQ_TIMEOUT` (or the queue's `SHMQ_FULL` /
/// `SHMQ_SPILL_FULL`); `shmq_last_error` says how many went, how many
/// stayed and which group holds the ring, and `count_out` still gets how
/// many went (on any other error it is left as it was).
///
/// # Safety
/// `queue` is NULL or live; `seq` is NULL or readable; `count_out` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_redrive(
    queue: *const shmq_queue,
    seq: *const u64,
    count_out: *mut u64,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { shmq_dlq_redrive_timeout(queue, seq, 0, count_out) }
}

/// `shmq_dlq_redrive`, waiting up to `timeout_ns` (`SHMQ_WAIT_FOREVER`:
/// as long as it takes) for ring room for the keyed dead letters.
///
/// # Safety
/// As for `shmq_dlq_redrive`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_redrive_timeout(
    queue: *const shmq_queue,
    seq: *const u64,
    timeout_ns: u64,
    count_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let count_out = out_opt(count_out, "count_out")?;
        // SAFETY: per the contract.
        let seq = unsafe { input(seq, "seq") }?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let timeout = match Wait::from_ns(timeout_ns) {
            Wait::Poll => std::time::Duration::ZERO,
            Wait::For(d) => d,
            Wait::Forever => std::time::Duration::MAX,
        };
        let r = q.queue.dlq().redrive_timeout(seq, timeout);
        let n = match &r {
            Ok(n) => Some(*n),
            Err(shmq::Error::PartlyRedriven { redriven, .. }) => Some(*redriven),
            Err(_) => None,
        };
        if let (Some(o), Some(n)) = (count_out, n) {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(n) };
        }
        r.map(|_| ()).map_err(CallError::from)
    })
}

/// Deletes every waiting dead letter (not those redriven) and writes how
/// many to `count_out` (may be NULL).
///
/// # Safety
/// `queue` is NULL or live; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_dlq_purge(
    queue: *const shmq_queue,
    count_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let count_out = out_opt(count_out, "count_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let n = q.queue.dlq().purge()?;
        if let Some(o) = count_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(n) };
        }
        Ok(())
    })
}
