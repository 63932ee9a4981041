//! The producer handle: publish, publish with metadata, with a timeout, in
//! batches, and reserve/commit/abort to write in place.

use std::ptr::NonNull;

use shmq::{Meta, Producer, Reservation};

use crate::boundary::{
    bytes, free_handle, guard, handle, handle_ref, input, invalid_argument, out, out_opt,
};
use crate::options::{Wait, shmq_meta};
use crate::queue::shmq_queue;
use crate::readiness::{self, Waitable, Waiter};
use crate::status::{CallError, shmq_status};

/// Publishes messages. Not thread-safe: use it from one thread at a time
/// (it may move between threads); make one producer per thread, they are
/// cheap. Not to be used in a child after `fork`.
///
/// A producer holds at most one pending reservation: while one is pending,
/// the producer's other calls fail with `SHMQ_BUSY`.
pub struct shmq_producer {
    /// The pending reservation. It borrows `*producer`, so it is declared
    /// (and dropped) first, and `producer` is not touched while it is set.
    pending: Option<Reservation<'static>>,
    /// Owned (from `Box::into_raw`); freed in `Drop` after `pending`.
    producer: NonNull<Producer>,
    /// Its largest payload, kept here so that it can be read while a
    /// reservation borrows the producer.
    max_payload: usize,
}

/// A slot reserved by `shmq_reserve`, being written in place. It belongs to
/// its producer: `shmq_commit` or `shmq_abort` ends it, and freeing the
/// producer aborts it. Same thread rules as its producer.
///
/// (A `shmq_reservation*` is its producer's address under another type; the
/// producer tracks whether a reservation is pending, so a second commit or
/// abort of the same reservation is an error, not a use-after-free.)
pub struct shmq_reservation {
    _private: [u8; 0],
}

impl Drop for shmq_producer {
    fn drop(&mut self) {
        // Abort before the producer it borrows goes away.
        self.pending = None;
        // SAFETY: `producer` came from `Box::into_raw` in
        // `shmq_producer_new` and nothing borrows it any more.
        drop(unsafe { Box::from_raw(self.producer.as_ptr()) });
    }
}

impl shmq_producer {
    /// The producer, for a call that needs no reservation pending.
    fn idle(&mut self) -> Result<&mut Producer, CallError> {
        if self.pending.is_some() {
            return Err(CallError::Busy(
                "this producer has a reservation pending: shmq_commit or shmq_abort it first",
            ));
        }
        // SAFETY: owned by this handle; no reservation borrows it, and the
        // `&mut self` makes this the only access.
        Ok(unsafe { self.producer.as_mut() })
    }
}

impl Waitable for shmq_producer {
    fn waiter(&mut self) -> Result<Waiter<'_>, CallError> {
        Ok(Waiter::Producer(self.idle()?))
    }

    fn kept_fd(&mut self) -> Option<&mut Option<i32>> {
        None
    }
}

/// Makes a producer of `queue` and writes it to `producer_out`.
/// `SHMQ_BUSY` if the queue's table of producers is full.
///
/// # Safety
/// `queue` is NULL or a live queue handle; `producer_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_new(
    queue: *const shmq_queue,
    producer_out: *mut *mut shmq_producer,
) -> shmq_status {
    guard(|| {
        let producer_out = out(producer_out, "producer_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        let p = q.queue.producer()?;
        let max_payload = p.max_payload();
        let producer = NonNull::from(Box::leak(Box::new(p)));
        let h = Box::into_raw(Box::new(shmq_producer {
            pending: None,
            producer,
            max_payload,
        }));
        // SAFETY: checked writable out-parameter.
        unsafe { producer_out.write(h) };
        Ok(())
    })
}

/// Frees `*producer` (aborting a pending reservation) and sets it to NULL.
/// `producer == NULL` or `*producer == NULL` is a no-op.
///
/// # Safety
/// `producer` is NULL or points to NULL or a handle from
/// `shmq_producer_new` that was not freed; no other thread uses it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_free(producer: *mut *mut shmq_producer) {
    // SAFETY: the caller's contract is this one's.
    unsafe { free_handle(producer) }
}

/// Shared body of the publish calls.
///
/// # Safety
/// `producer` NULL or live and unshared; `data` NULL or readable for `len`;
/// `meta` NULL or readable, with `meta->key` NULL or readable for
/// `meta->key_len` bytes and its ordering key and headers as
/// `shmq_publish_with` says; `seq_out` NULL or writable.
unsafe fn publish(
    producer: *mut shmq_producer,
    data: *const u8,
    len: usize,
    meta: *const shmq_meta,
    meta_required: bool,
    timeout_ns: u64,
    seq_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let seq_out = out_opt(seq_out, "seq_out")?;
        // SAFETY: per the contract.
        let p = unsafe { handle(producer, "producer") }?.idle()?;
        // SAFETY: per the contract.
        let payload = unsafe { bytes(data, len, "data") }?;
        // SAFETY: per the contract.
        let meta = match unsafe { input(meta, "meta") }? {
            // SAFETY: `meta.key`, `meta.ordering_key` and `meta.headers`
            // are NULL or readable for the call per the contract.
            Some(m) => unsafe { m.to_rust() }?,
            None if meta_required => return Err(CallError::Null("meta")),
            None => Meta::new(),
        };
        let seq = match Wait::from_ns(timeout_ns) {
            Wait::Forever => p.publish_with(payload, &meta)?,
            Wait::Poll => p.publish_with_timeout(payload, &meta, std::time::Duration::ZERO)?,
            Wait::For(d) => match p.publish_with_timeout(payload, &meta, d) {
                // It waited: say what holds the ring.
                Err(shmq::Error::Timeout) => return Err(CallError::StayedFull(p.why_full())),
                r => r?,
            },
        };
        if let Some(o) = seq_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(seq) };
        }
        Ok(())
    })
}

/// Publishes the `len` bytes at `data` and writes its seq to `seq_out` (may
/// be NULL). When the queue is full: waits (overflow block) or fails with
/// `SHMQ_FULL` (overflow reject). `SHMQ_TOO_LARGE` if `len` exceeds the
/// queue's slot_size. `data` may be NULL when `len` is 0.
///
/// # Safety
/// `producer` is NULL or a live producer not used by another thread;
/// `data` is NULL or readable for `len` bytes; `seq_out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_publish(
    producer: *mut shmq_producer,
    data: *const u8,
    len: usize,
    seq_out: *mut u64,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe {
        publish(
            producer,
            data,
            len,
            std::ptr::null(),
            false,
            u64::MAX,
            seq_out,
        )
    }
}

/// Like `shmq_publish`, with metadata (`meta` must not be NULL). With
/// `meta->key` set, publishing a key the queue still remembers enqueues
/// nothing and writes the first message's seq to `seq_out` (counted in
/// `shmq_queue_stats.deduplicated`). `meta->ordering_key` and
/// `meta->headers` are stored with the message, in front of the payload:
/// `SHMQ_TOO_LARGE` if they and the payload exceed slot_size;
/// `SHMQ_INVALID_OPTION` (naming the limit) for an ordering key of 0 or
/// more than `SHMQ_MAX_ORDERING_KEY` bytes, more than `SHMQ_MAX_HEADERS`
/// headers, or a header name that is empty, longer than
/// `SHMQ_MAX_HEADER_NAME` bytes or not UTF-8; `SHMQ_NULL_ARGUMENT` for a
/// NULL pointer with a nonzero length. Nothing is published then.
///
/// With `meta->delay_ms` or `meta->deliver_at_ms` (or a queue of
/// `delivery_delay_ms`; so for `shmq_publish` too) the message is
/// scheduled for later: `seq_out` gets its schedule id, not a seq.
///
/// # Safety
/// As for `shmq_publish`; `meta` is NULL or readable, its `key` NULL or
/// readable for `key_len` bytes, its `ordering_key` NULL or readable for
/// `ordering_key_len` bytes, its `headers` NULL or readable for
/// `headers_len` elements whose `name` and `value` are NULL or readable
/// for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_publish_with(
    producer: *mut shmq_producer,
    data: *const u8,
    len: usize,
    meta: *const shmq_meta,
    seq_out: *mut u64,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { publish(producer, data, len, meta, true, u64::MAX, seq_out) }
}

/// Like `shmq_publish`, waiting at most `timeout_ns` for room in a full
/// queue (`SHMQ_TIMEOUT` after that; nothing was published). 0: do not
/// wait; `SHMQ_WAIT_FOREVER`: no limit.
///
/// # Safety
/// As for `shmq_publish`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_publish_timeout(
    producer: *mut shmq_producer,
    data: *const u8,
    len: usize,
    timeout_ns: u64,
    seq_out: *mut u64,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe {
        publish(
            producer,
            data,
            len,
            std::ptr::null(),
            false,
            timeout_ns,
            seq_out,
        )
    }
}

/// `shmq_publish_with` and `shmq_publish_timeout` in one.
///
/// # Safety
/// As for `shmq_publish_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_publish_with_timeout(
    producer: *mut shmq_producer,
    data: *const u8,
    len: usize,
    meta: *const shmq_meta,
    timeout_ns: u64,
    seq_out: *mut u64,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { publish(producer, data, len, meta, true, timeout_ns, seq_out) }
}

/// One message of a batch: `len` bytes at `data` (NULL allowed when `len`
/// is 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_buf {
    /// The bytes.
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

/// A `shmq_buf` checked by `shmq_publish_batch`: non-NULL or empty, with a
/// length that is a size.
#[repr(transparent)]
struct CheckedBuf(shmq_buf);

impl AsRef<[u8]> for CheckedBuf {
    fn as_ref(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: only made by `shmq_publish_batch` after checking that
        // `data` is non-NULL and `len <= isize::MAX`; readable for `len`
        // bytes during that call per its contract.
        unsafe { std::slice::from_raw_parts(self.0.data, self.0.len) }
    }
}

/// Publishes `count` messages with as few claims as possible and one
/// wake-up; writes the seq of the first to `first_seq_out` (may be NULL);
/// the others follow in order. Waits for room as long as it takes
/// (overflow block). Nothing is published if any message is too large, nor
/// on overflow reject when the batch fits in the ring and the ring has no
/// room for all of it (`SHMQ_FULL`).
///
/// A batch that went in only in part — larger than the ring and meeting a
/// full queue, a full spill or an aborted claim — fails with the status of
/// why the rest did not (`SHMQ_FULL`, `SHMQ_SPILL_FULL`, `SHMQ_ABORTED`),
/// and still writes the first seq to `first_seq_out`; `shmq_last_error`
/// says how many went in. `shmq_publish_batch_timeout` gives the count as
/// a number: retry only the rest, never the whole batch.
///
/// # Safety
/// `producer` as for `shmq_publish`; `msgs` is NULL or readable for `count`
/// elements whose buffers are readable; `first_seq_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_publish_batch(
    producer: *mut shmq_producer,
    msgs: *const shmq_buf,
    count: usize,
    first_seq_out: *mut u64,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe {
        publish_batch(
            producer,
            msgs,
            count,
            crate::options::SHMQ_WAIT_FOREVER,
            first_seq_out,
            std::ptr::null_mut(),
        )
    }
}

/// Like `shmq_publish_batch`, waiting at most `timeout_ns` for room (0: do
/// not wait; `SHMQ_WAIT_FOREVER`: no limit), and writing to
/// `published_out` (may be NULL) how many of the batch's messages were
/// published: its first ones, from the seq written to `first_seq_out`.
///
/// `SHMQ_OK` when all went in, or when the timeout passed after some did
/// (`*published_out < count`: publish the rest again later);
/// `SHMQ_TIMEOUT` when it passed before any did (`*published_out` is 0).
/// Any other failure after some went in returns its status with both
/// out-parameters written. On every return `*published_out` is the truth.
///
/// # Safety
/// As for `shmq_publish_batch`; `published_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_publish_batch_timeout(
    producer: *mut shmq_producer,
    msgs: *const shmq_buf,
    count: usize,
    timeout_ns: u64,
    first_seq_out: *mut u64,
    published_out: *mut usize,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe {
        publish_batch(
            producer,
            msgs,
            count,
            timeout_ns,
            first_seq_out,
            published_out,
        )
    }
}

/// Shared body of the batch publishes.
///
/// # Safety
/// As for `shmq_publish_batch_timeout`.
unsafe fn publish_batch(
    producer: *mut shmq_producer,
    msgs: *const shmq_buf,
    count: usize,
    timeout_ns: u64,
    first_seq_out: *mut u64,
    published_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let seq_out = out_opt(first_seq_out, "first_seq_out")?;
        let count_out = out_opt(published_out, "published_out")?;
        // SAFETY: forwarded contract.
        let (result, first, n) = unsafe { publish_batch_inner(producer, msgs, count, timeout_ns) };
        if let (Some(o), Some(first)) = (seq_out, first) {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(first) };
        }
        if let Some(o) = count_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(n) };
        }
        result
    })
}

/// The batch publish itself: its result, the first seq (if any went in)
/// and how many did, on every path (0 where the arguments were refused).
///
/// # Safety
/// As for `shmq_publish_batch_timeout`.
unsafe fn publish_batch_inner(
    producer: *mut shmq_producer,
    msgs: *const shmq_buf,
    count: usize,
    timeout_ns: u64,
) -> (Result<(), CallError>, Option<u64>, usize) {
    let checked = (|| {
        // SAFETY: per the contract.
        let p = unsafe { handle(producer, "producer") }?.idle()?;
        if count == 0 {
            return Err(invalid_argument("shmq_publish_batch of 0 messages"));
        }
        if msgs.is_null() {
            return Err(CallError::Null("msgs"));
        }
        if !msgs.is_aligned() || count > isize::MAX as usize / std::mem::size_of::<shmq_buf>() {
            return Err(invalid_argument(
                "msgs is misaligned or count is not a size",
            ));
        }
        // SAFETY: non-NULL, aligned, readable for `count` elements per the
        // contract, and `count * size` fits in isize.
        let raw = unsafe { std::slice::from_raw_parts(msgs, count) };
        for (i, m) in raw.iter().enumerate() {
            if m.len > 0 && m.data.is_null() {
                return Err(invalid_argument(format!(
                    "msgs[{i}].data is NULL with len {}",
                    m.len
                )));
            }
            if m.len > isize::MAX as usize {
                return Err(invalid_argument(format!("msgs[{i}].len is not a size")));
            }
        }
        // SAFETY: `CheckedBuf` is `repr(transparent)` over `shmq_buf`; every
        // element was checked just above.
        let checked: &[CheckedBuf] =
            unsafe { std::slice::from_raw_parts(raw.as_ptr().cast::<CheckedBuf>(), raw.len()) };
        Ok((p, checked))
    })();
    let (p, checked) = match checked {
        Ok(v) => v,
        Err(e) => return (Err(e), None, 0),
    };
    let done = match Wait::from_ns(timeout_ns) {
        Wait::Forever => p.publish_batch(checked).map(|first| (first, count)),
        Wait::Poll => p.publish_batch_timeout(checked, std::time::Duration::ZERO),
        Wait::For(d) => p.publish_batch_timeout(checked, d),
    };
    match done {
        Ok((first, n)) => (Ok(()), Some(first), n),
        Err(e) => match e {
            shmq::Error::PartlyPublished {
                first_seq,
                published,
                ..
            } => (Err(e.into()), Some(first_seq), published),
            e => (Err(e.into()), None, 0),
        },
    }
}

/// Shared body of the reserve calls.
///
/// # Safety
/// As for `shmq_reserve`.
unsafe fn reserve(
    producer: *mut shmq_producer,
    len: usize,
    timeout_ns: u64,
    data_out: *mut *mut u8,
    reservation_out: *mut *mut shmq_reservation,
) -> shmq_status {
    guard(|| {
        let data_out = out(data_out, "data_out")?;
        let reservation_out = out(reservation_out, "reservation_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle(producer, "producer") }?;
        h.idle()?;
        let p: *mut Producer = h.producer.as_ptr();
        // SAFETY: owned by the handle, which outlives the reservation (it
        // is stored in the handle and dropped first); no other reference to
        // the producer exists while `pending` is set (`idle` refuses).
        let p: &'static mut Producer = unsafe { &mut *p };
        let mut r = match Wait::from_ns(timeout_ns) {
            Wait::Forever => p.reserve(len)?,
            Wait::Poll => p.reserve_timeout(len, std::time::Duration::ZERO)?,
            Wait::For(d) => p.reserve_timeout(len, d)?,
        };
        // Points at the slot in the mapping, not into `r`: moving `r` into
        // the handle leaves it valid.
        let data = r.as_mut_ptr();
        h.pending = Some(r);
        // SAFETY: checked writable out-parameters.
        unsafe {
            data_out.write(data);
            reservation_out.write((h as *mut shmq_producer).cast::<shmq_reservation>());
        }
        Ok(())
    })
}

/// Claims a slot for a message of `len` bytes to be written in place: writes
/// the address of its payload (`len` writable bytes in shared memory) to
/// `data_out` and the reservation to `reservation_out`. Write the message,
/// then `shmq_commit` (publish) or `shmq_abort`; consumers wait for it in
/// between, so do not keep it long (after `unblock_timeout` consumers abort
/// it and the commit fails with `SHMQ_ABORTED`). Waits for room like
/// `shmq_publish`. `SHMQ_BUSY` if this producer already has one pending.
///
/// # Safety
/// `producer` as for `shmq_publish`; `data_out` and `reservation_out` NULL
/// or writable. The payload pointer is valid until commit, abort or the
/// producer's free.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_reserve(
    producer: *mut shmq_producer,
    len: usize,
    data_out: *mut *mut u8,
    reservation_out: *mut *mut shmq_reservation,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { reserve(producer, len, u64::MAX, data_out, reservation_out) }
}

/// Like `shmq_reserve`, waiting at most `timeout_ns` for room
/// (`SHMQ_TIMEOUT`).
///
/// # Safety
/// As for `shmq_reserve`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_reserve_timeout(
    producer: *mut shmq_producer,
    len: usize,
    timeout_ns: u64,
    data_out: *mut *mut u8,
    reservation_out: *mut *mut shmq_reservation,
) -> shmq_status {
    // SAFETY: forwarded contract.
    unsafe { reserve(producer, len, timeout_ns, data_out, reservation_out) }
}

/// The pending reservation behind `reservation`, if any.
///
/// # Safety
/// `reservation` is NULL or came from `shmq_reserve` on a producer that is
/// live and not used by another thread.
unsafe fn pending<'a>(
    reservation: *mut shmq_reservation,
) -> Result<&'a mut Option<Reservation<'static>>, CallError> {
    // SAFETY: a reservation pointer is its producer's handle address.
    let h = unsafe { handle(reservation.cast::<shmq_producer>(), "reservation") }?;
    if h.pending.is_none() {
        return Err(invalid_argument(
            "no reservation is pending on this producer (already committed or aborted)",
        ));
    }
    Ok(&mut h.pending)
}

/// Sets the metadata of the reserved message (its type_id and
/// correlation_id: a reservation takes no idempotency key, ordering key,
/// headers, ttl, delay or time, `SHMQ_INVALID_ARGUMENT`; use
/// `shmq_publish_with`).
///
/// # Safety
/// `reservation` is NULL or a reservation whose producer is live;
/// `meta` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_reservation_set_meta(
    reservation: *mut shmq_reservation,
    meta: *const shmq_meta,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let meta = unsafe { input(meta, "meta") }?.ok_or(CallError::Null("meta"))?;
        if !meta.key.is_null() || meta.key_len != 0 {
            return Err(invalid_argument(
                "an idempotency key (meta->key) is for shmq_publish_with, not for a reservation: \
                 set key = NULL, key_len = 0",
            ));
        }
        if meta.enveloped() {
            return Err(invalid_argument(
                "an ordering key or headers (meta->ordering_key, meta->headers) are for \
                 shmq_publish_with, not for a reservation: set them NULL, lengths 0",
            ));
        }
        if meta.scheduled() {
            return Err(invalid_argument(
                "a delay or a time (meta->delay_ms, meta->deliver_at_ms) is for \
                 shmq_publish_with, not for a reservation (it is written in the ring): set them 0",
            ));
        }
        // SAFETY: `key`, `ordering_key` and `headers` are NULL (checked
        // above).
        let meta = unsafe { meta.to_rust() }?;
        // SAFETY: per the contract.
        let r = unsafe { pending(reservation) }?;
        if let Some(r) = r.as_mut() {
            r.set_meta(meta);
        }
        Ok(())
    })
}

/// Shrinks the reserved message to `len` bytes (at most the reserved
/// length: `SHMQ_INVALID_ARGUMENT` if larger).
///
/// # Safety
/// `reservation` is NULL or a reservation whose producer is live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_reservation_truncate(
    reservation: *mut shmq_reservation,
    len: usize,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let r = unsafe { pending(reservation) }?;
        if let Some(r) = r.as_mut() {
            if len > r.len() {
                return Err(invalid_argument(format!(
                    "truncate to {len} bytes: larger than the reserved {} bytes",
                    r.len()
                )));
            }
            r.truncate(len);
        }
        Ok(())
    })
}

/// Writes the seq the reserved message will have to `seq_out`.
///
/// # Safety
/// `reservation` is NULL or a reservation whose producer is live and not
/// used by another thread; `seq_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_reservation_seq(
    reservation: *mut shmq_reservation,
    seq_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let seq_out = out(seq_out, "seq_out")?;
        // SAFETY: per the contract.
        let r = unsafe { pending(reservation) }?;
        let seq = r.as_ref().map_or(0, |r| r.seq());
        // SAFETY: checked writable out-parameter.
        unsafe { seq_out.write(seq) };
        Ok(())
    })
}

/// Writes the largest payload this producer publishes (the queue's
/// `max_message_size`, less the key and headers a message carries) to
/// `len_out`.
///
/// # Safety
/// `producer` is NULL or a live producer handle not used by another
/// thread; `len_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_max_payload(
    producer: *const shmq_producer,
    len_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let len_out = out(len_out, "len_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle_ref(producer, "producer") }?;
        // SAFETY: checked writable out-parameter.
        unsafe { len_out.write(h.max_payload) };
        Ok(())
    })
}

/// Publishes the reserved message and writes its seq to `seq_out` (may be
/// NULL). The reservation ends whatever the result: `SHMQ_ABORTED` means
/// consumers gave up on it (held longer than `unblock_timeout`) and it was
/// not published.
///
/// # Safety
/// `reservation` is NULL or a reservation whose producer is live and not
/// used by another thread; `seq_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_commit(
    reservation: *mut shmq_reservation,
    seq_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let seq_out = out_opt(seq_out, "seq_out")?;
        // SAFETY: per the contract.
        let r = unsafe { pending(reservation) }?.take();
        if let Some(r) = r {
            let seq = r.commit()?;
            if let Some(o) = seq_out {
                // SAFETY: checked writable out-parameter.
                unsafe { o.write(seq) };
            }
        }
        Ok(())
    })
}

/// Aborts the reservation: nothing is published and consumers skip its
/// position.
///
/// # Safety
/// As for `shmq_commit`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_abort(reservation: *mut shmq_reservation) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let r = unsafe { pending(reservation) }?.take();
        drop(r);
        Ok(())
    })
}

/// Writes the producer's readiness fd to `*fd_out`: readable once
/// `shmq_producer_arm` armed it and consumers may have freed room. The
/// loop: publish with timeout 0 until `SHMQ_TIMEOUT` (`SHMQ_FULL` with
/// overflow reject); `shmq_producer_arm`; if it armed, wait for the fd (at
/// most `*recheck_ns_out`); `shmq_producer_drain`; again. The rules of
/// `shmq_consumer_fd` hold. The fd belongs to the producer (it closes with
/// `shmq_producer_free`). `SHMQ_BUSY` while a reservation is pending, or
/// past 64 async producers per queue.
///
/// # Safety
/// `producer` NULL or a live producer not used by another thread; `fd_out`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_fd(
    producer: *mut shmq_producer,
    fd_out: *mut i32,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::fd(producer, "producer", fd_out) }
}

/// Arms the readiness fd until the ring has room for `count` messages
/// (call it after a publish with timeout 0 found no room), and for the
/// message that publish refused, however many slots it takes (a message
/// longer than `slot_size` takes several). `*armed_out`: 1
/// armed, 0 there may be room already (publish again now);
/// `*recheck_ns_out` (may be NULL) as for `shmq_consumer_arm`.
///
/// # Safety
/// `producer` as for `shmq_producer_fd`; `armed_out` NULL or writable;
/// `recheck_ns_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_arm(
    producer: *mut shmq_producer,
    count: u64,
    armed_out: *mut i32,
    recheck_ns_out: *mut u64,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe {
        readiness::arm(
            producer,
            "producer",
            count.max(1),
            armed_out,
            recheck_ns_out,
        )
    }
}

/// Reads every wake-up waiting on the producer's readiness fd.
///
/// # Safety
/// `producer` as for `shmq_producer_fd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_drain(producer: *mut shmq_producer) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::drain(producer, "producer") }
}

/// Takes back an arm that will not be waited for.
///
/// # Safety
/// `producer` as for `shmq_producer_fd`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_producer_disarm(producer: *mut shmq_producer) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::disarm(producer, "producer") }
}
