//! A queue's scheduled messages (published with `shmq_meta.delay_ms`,
//! `deliver_at_ms` or under `shmq_options.delivery_delay_ms`): list them
//! (metadata, then payloads one at a time, as the dead-letter queue's),
//! cancel them by schedule id or by idempotency key.

use shmq::{Queue, Scheduled};

use crate::boundary::{OutBuf, bytes, guard, handle_ref, invalid_argument, out, out_opt};
use crate::queue::shmq_queue;
use crate::status::{CallError, shmq_status};

/// A copy of one scheduled message's metadata (`shmq_queue_scheduled`).
/// Its payload is read with `shmq_queue_scheduled_payload(queue, id,
/// ...)`. Plain data.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_scheduled_message {
    /// Its schedule id: what its publish wrote to `seq_out`, and what
    /// `shmq_queue_cancel_scheduled` takes.
    pub id: u64,
    /// When it is due, CLOCK_REALTIME nanoseconds.
    pub due_ns: u64,
    /// When it was published, CLOCK_REALTIME nanoseconds.
    pub published_ns: u64,
    /// The producer's type tag.
    pub type_id: u32,
    /// Whether it was published with an idempotency key
    /// (`shmq_meta.key`): `shmq_queue_cancel_scheduled_key` cancels it by
    /// that key.
    pub keyed: bool,
    /// The producer's correlation id.
    pub correlation_id: u64,
    /// Length of its payload in bytes.
    pub len: usize,
    /// Length in bytes of its ordering key (0: it has none). Read the key
    /// with `shmq_queue_scheduled_ordering_key`.
    pub ordering_key_len: usize,
    /// How many headers it has. Read them with
    /// `shmq_queue_scheduled_header`.
    pub headers_len: usize,
}

impl From<&Scheduled> for shmq_scheduled_message {
    fn from(s: &Scheduled) -> shmq_scheduled_message {
        shmq_scheduled_message {
            id: s.id,
            due_ns: s.due_ns,
            published_ns: s.published_ns,
            type_id: s.type_id,
            keyed: s.keyed,
            correlation_id: s.correlation_id,
            len: s.payload.len(),
            ordering_key_len: s.ordering_key.as_deref().map_or(0, <[u8]>::len),
            headers_len: s.headers.len(),
        }
    }
}

/// Copies the metadata of the first `capacity` scheduled messages,
/// earliest due first, into `messages_out` and writes how many are
/// scheduled in all to `count_out` (which may exceed `capacity`).
/// `messages_out` may be NULL when `capacity` is 0 (to ask for the count).
/// The schedule is read under its lock, payloads included: list what you
/// need (with a million scheduled, all of them is a second's work). A
/// snapshot: other processes may schedule, cancel or move messages into
/// the ring meanwhile.
///
/// # Safety
/// `queue` is NULL or live; `messages_out` is NULL or writable for
/// `capacity` elements; `count_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_scheduled(
    queue: *const shmq_queue,
    messages_out: *mut shmq_scheduled_message,
    capacity: usize,
    count_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let count_out = out(count_out, "count_out")?;
        if capacity > 0 {
            out(messages_out, "messages_out")?;
        }
        if capacity > isize::MAX as usize / std::mem::size_of::<shmq_scheduled_message>() {
            return Err(invalid_argument(format!(
                "capacity {capacity} is not a size"
            )));
        }
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let listed = if capacity > 0 {
            q.queue.scheduled(capacity)?
        } else {
            Vec::new()
        };
        // Fewer than asked for: that is all of them. Otherwise the count,
        // read after the listing, is at least what was listed.
        let total = if listed.len() < capacity {
            listed.len()
        } else {
            usize::try_from(q.queue.stats().scheduled)
                .unwrap_or(usize::MAX)
                .max(listed.len())
        };
        for (i, s) in listed.iter().enumerate() {
            // SAFETY: `i < listed.len() <= capacity`; `messages_out` is
            // non-NULL (checked above when capacity > 0), aligned and
            // writable for `capacity` elements per the contract.
            unsafe { messages_out.add(i).write(s.into()) };
        }
        // SAFETY: checked writable out-parameter.
        unsafe { count_out.write(total) };
        Ok(())
    })
}

/// The scheduled message of schedule id `id`, looked for among the
/// earliest due first (in growing steps: one due far behind many others
/// costs reading those).
fn find_scheduled(q: &Queue, id: u64) -> Result<Scheduled, CallError> {
    let mut limit = 64usize;
    loop {
        let mut listed = q.scheduled(limit)?;
        if let Some(i) = listed.iter().position(|s| s.id == id) {
            return Ok(listed.swap_remove(i));
        }
        if listed.len() < limit {
            return Err(shmq::Error::NotFound(format!(
                "scheduled message of id {id} (it is not scheduled: it came due and went into \
                 the ring, or was cancelled)"
            ))
            .into());
        }
        limit = limit.saturating_mul(8);
    }
}

/// Copies `field` of the scheduled message of id `id` as
/// `shmq_queue_scheduled_payload` documents.
///
/// # Safety
/// As for `shmq_queue_scheduled_payload`.
unsafe fn copy_scheduled_field(
    queue: *const shmq_queue,
    id: u64,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
    field: impl FnOnce(&Scheduled) -> &[u8],
) -> shmq_status {
    guard(|| {
        let dest = OutBuf::new(buf, capacity, len_out)?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let s = find_scheduled(&q.queue, id)?;
        // SAFETY: `buf` and `len_out` per the contract.
        unsafe { dest.write_bytes(field(&s)) };
        Ok(())
    })
}

/// Copies the payload of the scheduled message of schedule id `id` into
/// `buf`: its first `min(len, capacity)` bytes. Writes its full length to
/// `len_out`, so `len_out > capacity` means `buf` was too small (`buf` may
/// be NULL with `capacity` 0 to ask for the length). `SHMQ_NOT_FOUND` if no
/// message of that id is scheduled (it came due and went into the ring, or
/// was cancelled).
///
/// # Safety
/// `queue` is NULL or live; `buf` is NULL or writable for `capacity` bytes;
/// `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_scheduled_payload(
    queue: *const shmq_queue,
    id: u64,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe { copy_scheduled_field(queue, id, buf, capacity, len_out, |s| &s.payload) }
}

/// Copies the ordering key of the scheduled message of schedule id `id`
/// into `buf`, as `shmq_queue_scheduled_payload` copies the payload (its
/// length to `len_out`: 0 if it has no key). `SHMQ_NOT_FOUND` if no
/// message of that id is scheduled.
///
/// # Safety
/// As for `shmq_queue_scheduled_payload`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_scheduled_ordering_key(
    queue: *const shmq_queue,
    id: u64,
    buf: *mut u8,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    // SAFETY: per the contract.
    unsafe {
        copy_scheduled_field(queue, id, buf, capacity, len_out, |s| {
            s.ordering_key.as_deref().unwrap_or_default()
        })
    }
}

/// Copies header `index` (0 for the first, in the order they were
/// published) of the scheduled message of schedule id `id`: its name
/// (UTF-8, not NUL-terminated) into `name_buf` and its value into
/// `value_buf`, as `shmq_dlq_header` does for a dead letter.
/// `SHMQ_NOT_FOUND` if no message of that id is scheduled;
/// `SHMQ_INVALID_ARGUMENT` if `index >= headers_len`.
///
/// # Safety
/// `queue` is NULL or live; `name_buf` is NULL or writable for
/// `name_capacity` bytes and `value_buf` for `value_capacity` bytes;
/// `name_len_out` and `value_len_out` are NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn shmq_queue_scheduled_header(
    queue: *const shmq_queue,
    id: u64,
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
        let q = unsafe { handle_ref(queue, "queue") }?;
        let s = find_scheduled(&q.queue, id)?;
        let of = || format!("the scheduled message of id {id}");
        // SAFETY: the buffers and lengths per the contract.
        unsafe { crate::boundary::write_header(&s.headers, index, of, name_dest, value_dest) }
    })
}

/// Cancels the scheduled message of schedule id `id` (what its publish
/// wrote to `seq_out`): it will not be delivered. Writes to
/// `cancelled_out` (may be NULL) whether it was: `false` if no message of
/// that id is scheduled (it came due and went into the ring, or was
/// cancelled before), which is not an error.
///
/// # Safety
/// `queue` is NULL or live; `cancelled_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_cancel_scheduled(
    queue: *const shmq_queue,
    id: u64,
    cancelled_out: *mut bool,
) -> shmq_status {
    guard(|| {
        let cancelled_out = out_opt(cancelled_out, "cancelled_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let cancelled = q.queue.cancel_scheduled(id)?;
        if let Some(o) = cancelled_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(cancelled) };
        }
        Ok(())
    })
}

/// Cancels the scheduled message published with idempotency key `key`
/// (`key_len` bytes; `shmq_meta.key`), the earliest due if several are,
/// and writes to `cancelled_out` (may be NULL) whether one was. The key
/// stays remembered: a publish with it again is still a duplicate while
/// the queue remembers it.
///
/// # Safety
/// `queue` is NULL or live; `key` is NULL or readable for `key_len` bytes;
/// `cancelled_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_queue_cancel_scheduled_key(
    queue: *const shmq_queue,
    key: *const u8,
    key_len: usize,
    cancelled_out: *mut bool,
) -> shmq_status {
    guard(|| {
        let cancelled_out = out_opt(cancelled_out, "cancelled_out")?;
        // SAFETY: per the contract.
        let key = unsafe { bytes(key, key_len, "key") }?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let cancelled = q.queue.cancel_scheduled_key(key)?;
        if let Some(o) = cancelled_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(cancelled) };
        }
        Ok(())
    })
}
