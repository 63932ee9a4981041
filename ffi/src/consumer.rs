//! The consumer handle: receive messages in place, one at a time or in
//! batches, and end each delivery with an ack (or, with ack=manual, a
//! nack).
//!
//! A Rust `Delivery` borrows its `Consumer` mutably: while it lives, the
//! payload's slot is held for the group and the consumer cannot receive
//! again. The C handle keeps that delivery (or batch) as its "current"
//! one; `shmq_ack`, `shmq_nack`, `shmq_ack_all`, the next receive, a seek
//! or `shmq_consumer_free` ends it, and only then are its payload pointers
//! released. With ack=manual, a delivery ended without ack or nack is
//! dropped, which gives the message back to the group at once (as
//! dropping a Rust `Delivery` does).

use std::ffi::c_char;
use std::ptr::NonNull;
use std::time::Duration;

use shmq::{Batch, Consumer, Delivery, Message};

use crate::boundary::{
    OutBuf, bytes, free_handle, guard, handle, handle_ref, input, invalid_argument, out, out_opt,
    text,
};
use crate::options::{
    SHMQ_ACK_AUTO, SHMQ_ACK_MANUAL, Wait, shmq_ack_mode, shmq_consumer_options, shmq_header,
    shmq_nack_kind, shmq_seek,
};
use crate::queue::shmq_queue;
use crate::readiness::{self, Waitable, Waiter};
use crate::status::{CallError, shmq_status};

/// The consumer of one group. Not thread-safe: use it from one thread at a
/// time (it may move between threads). With ack auto a group has at most
/// one live consumer at a time; with `SHMQ_ACK_MANUAL` any number of them
/// compete for its messages. Not to be used in a child after `fork`.
pub struct shmq_consumer {
    /// The delivery or batch handed out last and not yet ended. It borrows
    /// `*consumer`, so it is declared (and dropped) first, and `consumer`
    /// is only touched after it is ended.
    current: CurrentDelivery,
    /// Owned (from `Box::leak`); freed in `Drop` after `current`.
    consumer: NonNull<Consumer>,
    /// Its group's name and ack mode, kept here so that they can be read
    /// while a delivery borrows the consumer.
    group: Box<str>,
    ack: shmq_ack_mode,
    /// The readiness handle's fd, once `shmq_consumer_fd` made it: the
    /// same number for the consumer's life.
    fd: Option<i32>,
}

/// What a consumer has handed out and not yet ended.
enum CurrentDelivery {
    /// Nothing: the consumer is free to receive.
    None,
    /// One message (`shmq_receive`).
    One(Delivery<'static>),
    /// A batch (`shmq_receive_batch`).
    Many(Batch<'static>),
}

impl Drop for shmq_consumer {
    fn drop(&mut self) {
        self.current = CurrentDelivery::None;
        // SAFETY: from `Box::leak` in `shmq_consumer_new`; the current
        // delivery, its only borrower, was just ended.
        drop(unsafe { Box::from_raw(self.consumer.as_ptr()) });
    }
}

impl shmq_consumer {
    /// Ends the current delivery or batch and hands out the consumer for a
    /// borrow that may be stored in `current` again.
    fn release(&mut self) -> &'static mut Consumer {
        self.current = CurrentDelivery::None;
        // SAFETY: owned by this handle, which outlives anything stored in
        // `current` (dropped first); the previous borrower was just ended,
        // so this is the only reference.
        unsafe { &mut *self.consumer.as_ptr() }
    }
}

impl Waitable for shmq_consumer {
    fn waiter(&mut self) -> Result<Waiter<'_>, CallError> {
        Ok(Waiter::Consumer(self.release()))
    }

    fn kept_fd(&mut self) -> Option<&mut Option<i32>> {
        Some(&mut self.fd)
    }
}

/// A received message: `len` bytes at `data` in shared memory, and its
/// metadata. `data` stays valid until the delivery ends: `shmq_ack`,
/// `shmq_nack`, `shmq_ack_all`, the next receive or seek on the same
/// consumer, or `shmq_consumer_free`. Do not write through it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmq_message {
    /// The payload, in place.
    pub data: *const u8,
    /// Its length in bytes.
    pub len: usize,
    /// Position in the queue (strictly increasing, never reused).
    pub seq: u64,
    /// Publish time, CLOCK_REALTIME nanoseconds.
    pub timestamp_ns: u64,
    /// The producer's correlation id.
    pub correlation_id: u64,
    /// The producer's type tag.
    pub type_id: u32,
    /// Delivery attempt, 1 for the first.
    pub attempt: u32,
    /// Its ordering key (`shmq_meta.ordering_key`), in place and valid as
    /// long as `data`; NULL if it has none.
    pub ordering_key: *const u8,
    /// Length of `ordering_key` in bytes (0 if none).
    pub ordering_key_len: usize,
    /// How many headers it has (`shmq_meta.headers`): read them with
    /// `shmq_message_header` and `shmq_message_header_find`.
    pub headers_len: usize,
}

impl From<&Message<'_>> for shmq_message {
    fn from(m: &Message<'_>) -> shmq_message {
        let payload = m.payload();
        shmq_message {
            data: payload.as_ptr(),
            len: payload.len(),
            seq: m.seq(),
            timestamp_ns: m.timestamp_ns(),
            correlation_id: m.correlation_id(),
            type_id: m.type_id(),
            attempt: m.attempt(),
            ordering_key: m.ordering_key().map_or(std::ptr::null(), <[u8]>::as_ptr),
            ordering_key_len: m.ordering_key().map_or(0, <[u8]>::len),
            headers_len: m.headers().count(),
        }
    }
}

impl From<(&str, &[u8])> for shmq_header {
    fn from((name, value): (&str, &[u8])) -> shmq_header {
        shmq_header {
            name: name.as_ptr().cast(),
            name_len: name.len(),
            value: value.as_ptr(),
            value_len: value.len(),
        }
    }
}

/// Makes the consumer of group `group` (created at `opts->start` if it does
/// not exist) and writes it to `consumer_out`. `opts` may be NULL for the
/// defaults. With ack auto a group has one live consumer at a time
/// (`SHMQ_BUSY` otherwise); with `SHMQ_ACK_MANUAL` any number of consumers
/// compete for its messages (all of a group's live consumers use the same
/// mode).
///
/// # Safety
/// `queue` is NULL or a live queue; `group` NULL or NUL-terminated; `opts`
/// NULL or readable; `consumer_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_new(
    queue: *const shmq_queue,
    group: *const c_char,
    opts: *const shmq_consumer_options,
    consumer_out: *mut *mut shmq_consumer,
) -> shmq_status {
    guard(|| {
        let consumer_out = out(consumer_out, "consumer_out")?;
        // SAFETY: per the contract.
        let q = unsafe { handle_ref(queue, "queue") }?;
        // SAFETY: per the contract.
        let group = unsafe { text(group, "group") }?;
        // SAFETY: per the contract.
        let opts = unsafe { input(opts, "opts") }?
            .unwrap_or_else(|| crate::options::shmq_consumer_options_default())
            .to_rust()?;
        let c = q.queue.consumer(group, opts)?;
        let ack = match c.ack_mode() {
            shmq::Ack::Auto => SHMQ_ACK_AUTO,
            shmq::Ack::Manual => SHMQ_ACK_MANUAL,
        };
        let group = c.group().into();
        let consumer = NonNull::from(Box::leak(Box::new(c)));
        let h = Box::into_raw(Box::new(shmq_consumer {
            current: CurrentDelivery::None,
            consumer,
            group,
            ack,
            fd: None,
        }));
        // SAFETY: checked writable out-parameter.
        unsafe { consumer_out.write(h) };
        Ok(())
    })
}

/// Frees `*consumer` (ending its current delivery and detaching it from its
/// group, which keeps its cursor) and sets it to NULL. `consumer == NULL`
/// or `*consumer == NULL` is a no-op.
///
/// # Safety
/// `consumer` is NULL or points to NULL or a handle from
/// `shmq_consumer_new` that was not freed; no other thread uses it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_free(consumer: *mut *mut shmq_consumer) {
    // SAFETY: the caller's contract is this one's.
    unsafe { free_handle(consumer) }
}

/// Receives the next message of the group into `*msg_out`. `timeout_ns`: 0
/// polls (no system call; `SHMQ_TIMEOUT` if none is ready),
/// `SHMQ_WAIT_FOREVER` waits as long as it takes, anything else waits at
/// most that long (`SHMQ_TIMEOUT`). The previous delivery of this consumer
/// ends first, whatever the result: with ack manual, one not acked or
/// nacked is given back to the group (delivered again at once, its attempt
/// counted). With ack auto the message is committed for the group on
/// receipt; with ack manual it is leased to this consumer (`lease_ms`)
/// until `shmq_ack`, and `msg_out->attempt` counts its deliveries.
///
/// # Safety
/// `consumer` is NULL or a live consumer not used by another thread;
/// `msg_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_receive(
    consumer: *mut shmq_consumer,
    timeout_ns: u64,
    msg_out: *mut shmq_message,
) -> shmq_status {
    guard(|| {
        let msg_out = out(msg_out, "msg_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        let c = h.release();
        let delivery = match Wait::from_ns(timeout_ns) {
            Wait::Poll => c.try_receive()?.ok_or(shmq::Error::Timeout)?,
            Wait::For(d) => c.receive_timeout(d)?,
            Wait::Forever => c.receive()?,
        };
        let msg = shmq_message::from(&*delivery);
        h.current = CurrentDelivery::One(delivery);
        // SAFETY: checked writable out-parameter.
        unsafe { msg_out.write(msg) };
        Ok(())
    })
}

/// Receives up to `capacity` ready messages into `msgs_out[0 .. *count_out]`,
/// waiting as `shmq_receive` does for the first (`SHMQ_TIMEOUT` if none
/// came). They stay valid until `shmq_ack_all`, the next receive or seek,
/// or `shmq_consumer_free`; the group's cursor moves once for all of them.
/// Ack auto only: `SHMQ_INVALID_OPTION` for an ack manual consumer.
///
/// # Safety
/// `consumer` as for `shmq_receive`; `msgs_out` NULL or writable for
/// `capacity` elements; `count_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_receive_batch(
    consumer: *mut shmq_consumer,
    msgs_out: *mut shmq_message,
    capacity: usize,
    timeout_ns: u64,
    count_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let count_out = out(count_out, "count_out")?;
        out(msgs_out, "msgs_out")?;
        if capacity == 0 || capacity > isize::MAX as usize / std::mem::size_of::<shmq_message>() {
            return Err(invalid_argument(format!(
                "capacity {capacity} must be at least 1 and a size"
            )));
        }
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        let batch = match Wait::from_ns(timeout_ns) {
            Wait::Poll => h.release().receive_batch(capacity, Duration::ZERO)?,
            Wait::For(d) => h.release().receive_batch(capacity, d)?,
            Wait::Forever => loop {
                // `receive_batch` takes a finite timeout; an hour at a time
                // is forever in slices. An empty batch is dropped (ending
                // its borrow) before the next `release`.
                let b = h
                    .release()
                    .receive_batch(capacity, Duration::from_secs(3600))?;
                if !b.is_empty() {
                    break b;
                }
            },
        };
        let mut n = 0;
        for (i, m) in batch.iter().take(capacity).enumerate() {
            // SAFETY: `i < capacity`; `msgs_out` is non-NULL, aligned and
            // writable for `capacity` elements per the contract.
            unsafe { msgs_out.add(i).write(shmq_message::from(&m)) };
            n = i + 1;
        }
        h.current = CurrentDelivery::Many(batch);
        if n == 0 {
            return Err(shmq::Error::Timeout.into());
        }
        // SAFETY: checked writable out-parameter.
        unsafe { count_out.write(n) };
        Ok(())
    })
}

/// Why `seq` is not `current`'s single delivery.
fn not_current(current: &CurrentDelivery, seq: u64) -> CallError {
    invalid_argument(match current {
        CurrentDelivery::One(d) => format!(
            "message seq {} is not this consumer's current delivery (seq {})",
            seq,
            d.seq()
        ),
        CurrentDelivery::Many(_) => {
            format!("message seq {seq} is part of a batch: end it with shmq_ack_all")
        }
        CurrentDelivery::None => format!(
            "message seq {seq} is not pending on this consumer (already acked or nacked, or not received by it)"
        ),
    })
}

/// Takes the current delivery out of `h` if it is the message `msg`
/// (checked non-NULL); otherwise leaves everything as it was.
fn take_current(h: &mut shmq_consumer, msg: &shmq_message) -> Result<Delivery<'static>, CallError> {
    match std::mem::replace(&mut h.current, CurrentDelivery::None) {
        CurrentDelivery::One(d) if d.seq() == msg.seq => Ok(d),
        other => {
            let fail = not_current(&other, msg.seq);
            h.current = other;
            Err(fail)
        }
    }
}

/// Runs `read` on the message `msg` (checked non-NULL) if it is `h`'s
/// current delivery or part of its current batch.
fn read_current<T>(
    h: &shmq_consumer,
    msg: &shmq_message,
    read: impl FnOnce(&Message<'_>) -> Result<T, CallError>,
) -> Result<T, CallError> {
    match &h.current {
        CurrentDelivery::One(d) if d.seq() == msg.seq => read(d),
        CurrentDelivery::Many(b) => match b.iter().find(|m| m.seq() == msg.seq) {
            Some(m) => read(&m),
            None => Err(invalid_argument(format!(
                "message seq {} is not part of this consumer's current batch",
                msg.seq
            ))),
        },
        other => Err(not_current(other, msg.seq)),
    }
}

/// Writes header `index` (0 for the first, in the order they were
/// published) of the message `msg` to `header_out`: its name and value,
/// in place in the message's slot and valid as long as `msg->data` (the
/// name is UTF-8 and not NUL-terminated: use `name_len`).
/// `SHMQ_INVALID_ARGUMENT` if `index >= msg->headers_len`, or if `msg` is
/// not this consumer's current delivery or part of its current batch (its
/// headers are no longer readable).
///
/// # Safety
/// `consumer` is NULL or a live consumer not used by another thread
/// meanwhile; `msg` NULL or readable; `header_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_message_header(
    consumer: *const shmq_consumer,
    msg: *const shmq_message,
    index: usize,
    header_out: *mut shmq_header,
) -> shmq_status {
    guard(|| {
        let header_out = out(header_out, "header_out")?;
        // SAFETY: per the contract.
        let msg = unsafe { input(msg, "msg") }?.ok_or(CallError::Null("msg"))?;
        // SAFETY: per the contract.
        let h = unsafe { handle_ref(consumer, "consumer") }?;
        let header = read_current(h, &msg, |m| {
            let mut all = m.headers();
            let count = all.clone().count();
            all.nth(index).map(shmq_header::from).ok_or_else(|| {
                invalid_argument(format!(
                    "header index {index} of message seq {}, which has {count} headers",
                    msg.seq
                ))
            })
        })?;
        // SAFETY: checked writable out-parameter.
        unsafe { header_out.write(header) };
        Ok(())
    })
}

/// Writes the first header of the message `msg` called `name` (`name_len`
/// bytes of UTF-8, not NUL-terminated) to `header_out`, as
/// `shmq_message_header` does. `SHMQ_NOT_FOUND` if it has none of that
/// name; `SHMQ_INVALID_ARGUMENT` if `name` is not UTF-8 or `msg` is not
/// current (see `shmq_message_header`); `SHMQ_NULL_ARGUMENT` if `name` is
/// NULL with `name_len > 0`.
///
/// # Safety
/// As for `shmq_message_header`; `name` is NULL or readable for
/// `name_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_message_header_find(
    consumer: *const shmq_consumer,
    msg: *const shmq_message,
    name: *const c_char,
    name_len: usize,
    header_out: *mut shmq_header,
) -> shmq_status {
    guard(|| {
        let header_out = out(header_out, "header_out")?;
        // SAFETY: per the contract.
        let msg = unsafe { input(msg, "msg") }?.ok_or(CallError::Null("msg"))?;
        // SAFETY: `name` is NULL or readable for `name_len` bytes per the
        // contract.
        let name = unsafe { bytes(name.cast(), name_len, "name") }?;
        let name = std::str::from_utf8(name).map_err(|e| {
            invalid_argument(format!(
                "header name {:?} is not UTF-8 ({e})",
                String::from_utf8_lossy(name)
            ))
        })?;
        // SAFETY: per the contract.
        let h = unsafe { handle_ref(consumer, "consumer") }?;
        let header = read_current(h, &msg, |m| {
            m.headers()
                .find(|(n, _)| *n == name)
                .map(shmq_header::from)
                .ok_or_else(|| {
                    shmq::Error::NotFound(format!("header {name:?} of message seq {}", msg.seq))
                        .into()
                })
        })?;
        // SAFETY: checked writable out-parameter.
        unsafe { header_out.write(header) };
        Ok(())
    })
}

/// Acknowledges the message `msg` received last by `shmq_receive` and ends
/// its delivery: its payload pointer is no longer valid. With ack auto the
/// message was committed on receipt; this releases its slot at once. With
/// ack manual this finishes it for the group; `SHMQ_LEASE_EXPIRED` if the
/// lease was taken away first (it ran out: see `shmq_extend_lease`; the
/// message was or will be delivered again) — the delivery ends either way.
/// `SHMQ_INVALID_ARGUMENT` if `msg` is not this consumer's current
/// delivery (nothing changes; use `shmq_ack_all` for a batch).
///
/// # Safety
/// `consumer` as for `shmq_receive`; `msg` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_ack(
    consumer: *mut shmq_consumer,
    msg: *const shmq_message,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let msg = unsafe { input(msg, "msg") }?.ok_or(CallError::Null("msg"))?;
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        take_current(h, &msg)?.ack()?;
        Ok(())
    })
}

/// Gives the message `msg` (this consumer's current delivery, ack manual)
/// back and ends its delivery: `SHMQ_NACK_REQUEUE` delivers it again as
/// soon as possible (to any consumer of the group, `attempt` + 1),
/// `SHMQ_NACK_REQUEUE_AFTER` not before `delay_ns` from now (ignored for
/// the other kinds), `SHMQ_NACK_DEAD_LETTER` moves it to the dead-letter
/// queue. A message delivered `max_deliveries` times is dead-lettered
/// instead of delivered again.
///
/// The delivery ends (`msg->data` becomes invalid) whatever the result,
/// except for `SHMQ_NULL_ARGUMENT`, an unknown `kind`
/// (`SHMQ_INVALID_OPTION`) and a `msg` that is not the current delivery
/// (`SHMQ_INVALID_ARGUMENT`), which change nothing. Errors:
/// `SHMQ_LEASE_EXPIRED` (the lease was taken away first);
/// `SHMQ_DLQ_FULL` (no room in the dead-letter queue: the message stays
/// leased to this consumer until its lease runs out, then is delivered
/// again); `SHMQ_INVALID_OPTION` for an ack auto consumer (nothing to give
/// back: the message was finished on receipt).
///
/// # Safety
/// `consumer` as for `shmq_receive`; `msg` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_nack(
    consumer: *mut shmq_consumer,
    msg: *const shmq_message,
    kind: shmq_nack_kind,
    delay_ns: u64,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let msg = unsafe { input(msg, "msg") }?.ok_or(CallError::Null("msg"))?;
        let how = crate::options::nack(kind, delay_ns)?;
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        take_current(h, &msg)?.nack(how)?;
        Ok(())
    })
}

/// Extends the lease of `msg` (this consumer's current delivery, ack
/// manual) to `extension_ns` from now, so that a long piece of work is not
/// delivered to another consumer meanwhile. The delivery stays current.
/// `SHMQ_LEASE_EXPIRED` if the lease was already taken away (`shmq_ack`
/// will then report it too). A no-op with ack auto.
/// `SHMQ_INVALID_ARGUMENT` if `msg` is not the current delivery.
///
/// # Safety
/// `consumer` as for `shmq_receive`; `msg` NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_extend_lease(
    consumer: *mut shmq_consumer,
    msg: *const shmq_message,
    extension_ns: u64,
) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let msg = unsafe { input(msg, "msg") }?.ok_or(CallError::Null("msg"))?;
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        match &mut h.current {
            CurrentDelivery::One(d) if d.seq() == msg.seq => {
                d.extend_lease(Duration::from_nanos(extension_ns))?;
                Ok(())
            }
            other => Err(not_current(other, msg.seq)),
        }
    })
}

/// Ends the current delivery or batch of `consumer`, if any (acknowledging
/// it, as `shmq_ack` does: `SHMQ_LEASE_EXPIRED` with ack manual if its
/// lease was taken away); its payload pointers are no longer valid.
///
/// # Safety
/// `consumer` as for `shmq_receive`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_ack_all(consumer: *mut shmq_consumer) -> shmq_status {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        match std::mem::replace(&mut h.current, CurrentDelivery::None) {
            CurrentDelivery::One(d) => d.ack()?,
            CurrentDelivery::Many(b) => drop(b),
            CurrentDelivery::None => {}
        }
        Ok(())
    })
}

/// Moves this consumer's group to `whence`/`value` (replay within what the
/// queue retains, or skip ahead) and writes the seq it will receive next to
/// `next_out` (may be NULL). Ends the current delivery first.
///
/// # Safety
/// `consumer` as for `shmq_receive`; `next_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_seek(
    consumer: *mut shmq_consumer,
    whence: shmq_seek,
    value: u64,
    next_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let next_out = out_opt(next_out, "next_out")?;
        let to = crate::options::seek(whence, value)?;
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        let next = h.release().seek(to)?;
        if let Some(o) = next_out {
            // SAFETY: checked writable out-parameter.
            unsafe { o.write(next) };
        }
        Ok(())
    })
}

/// Writes the seq this consumer will look at next to `position_out` (its
/// cursor, also with a delivery or batch pending; a redelivery of an older
/// message does not move it).
///
/// # Safety
/// `consumer` as for `shmq_receive`; `position_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_position(
    consumer: *mut shmq_consumer,
    position_out: *mut u64,
) -> shmq_status {
    guard(|| {
        let position_out = out(position_out, "position_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle(consumer, "consumer") }?;
        let pos = match &h.current {
            // SAFETY: owned by the handle and, with no delivery pending,
            // borrowed by nothing else.
            CurrentDelivery::None => unsafe { h.consumer.as_ref() }.position(),
            // The pending delivery holds the consumer's only (`&mut`)
            // borrow: read through it, not beside it.
            CurrentDelivery::One(d) => d.consumer_position(),
            CurrentDelivery::Many(b) => b.consumer_position(),
        };
        // SAFETY: checked writable out-parameter.
        unsafe { position_out.write(pos) };
        Ok(())
    })
}

/// Copies the name of this consumer's group into `buf` (see
/// `shmq_queue_name` for `buf`, `capacity` and `len_out`; a group name has
/// at most 48 bytes, so `SHMQ_GROUP_NAME_CAP` bytes always suffice).
///
/// # Safety
/// `consumer` is NULL or a live consumer handle that no other thread uses
/// meanwhile; `buf` is NULL or writable for `capacity` bytes; `len_out` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_group(
    consumer: *const shmq_consumer,
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> shmq_status {
    guard(|| {
        let dest = OutBuf::new(buf.cast(), capacity, len_out)?;
        // SAFETY: per the contract.
        let h = unsafe { handle_ref(consumer, "consumer") }?;
        // SAFETY: `buf` and `len_out` per the contract.
        unsafe { dest.write_text(h.group.as_bytes()) };
        Ok(())
    })
}

/// Writes this consumer's ack mode (`SHMQ_ACK_AUTO` or `SHMQ_ACK_MANUAL`)
/// to `ack_out`.
///
/// # Safety
/// `consumer` is NULL or a live consumer handle that no other thread uses
/// meanwhile; `ack_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_ack_mode(
    consumer: *const shmq_consumer,
    ack_out: *mut shmq_ack_mode,
) -> shmq_status {
    guard(|| {
        let ack_out = out(ack_out, "ack_out")?;
        // SAFETY: per the contract.
        let h = unsafe { handle_ref(consumer, "consumer") }?;
        // SAFETY: checked writable out-parameter.
        unsafe { ack_out.write(h.ack) };
        Ok(())
    })
}

/// Writes the consumer's readiness fd to `*fd_out`: a file descriptor for
/// epoll, poll, libuv or any event loop, readable (`POLLIN`) once
/// `shmq_consumer_arm` armed it and a message may have come. The loop:
/// `shmq_receive(c, 0, &m)` until `SHMQ_TIMEOUT`; `shmq_consumer_arm`; if
/// it armed, wait for the fd (at most `*recheck_ns_out` when that is not
/// `SHMQ_WAIT_FOREVER`); `shmq_consumer_drain`; again. It stays readable
/// until drained, one arm brings at most one wake-up, edge- and
/// level-triggered polling both work, and a wake-up may be spurious.
///
/// The fd belongs to the consumer (do not close it; it closes with
/// `shmq_consumer_free`) and is the same at every call. The first call
/// makes it (a socket, and an entry of the queue's table of async waiters:
/// `SHMQ_BUSY` past 64 per queue) and ends the current delivery, as a
/// receive does: call it before the first receive.
///
/// # Safety
/// `consumer` as for `shmq_receive`; `fd_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_fd(
    consumer: *mut shmq_consumer,
    fd_out: *mut i32,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::fd(consumer, "consumer", fd_out) }
}

/// Arms the readiness fd for the next message (call it after a receive
/// with timeout 0 returned `SHMQ_TIMEOUT`). `*armed_out`: 1 armed (wait
/// for the fd), 0 a message may be there already (receive again now).
/// `*recheck_ns_out` (may be NULL): when armed, the longest wait before
/// receiving again anyway, or `SHMQ_WAIT_FOREVER` when only a ring can
/// bring a message (an idle queue needs no timer). Ends the current
/// delivery, as a receive does; makes the fd if `shmq_consumer_fd` has
/// not.
///
/// # Safety
/// `consumer` as for `shmq_receive`; `armed_out` NULL or writable;
/// `recheck_ns_out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_arm(
    consumer: *mut shmq_consumer,
    armed_out: *mut i32,
    recheck_ns_out: *mut u64,
) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::arm(consumer, "consumer", 1, armed_out, recheck_ns_out) }
}

/// Reads every wake-up waiting on the readiness fd, so it stops being
/// readable (call it when the fd was readable, before receiving again),
/// or takes back an arm that will not be waited for (`shmq_consumer_disarm`).
/// Ends the current delivery, as a receive does.
///
/// # Safety
/// `consumer` as for `shmq_receive`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_drain(consumer: *mut shmq_consumer) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::drain(consumer, "consumer") }
}

/// Takes back an arm that will not be waited for (the loop stops
/// watching the fd). Ends the current delivery, as a receive does.
///
/// # Safety
/// `consumer` as for `shmq_receive`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmq_consumer_disarm(consumer: *mut shmq_consumer) -> shmq_status {
    // SAFETY: the caller's contract is this one's.
    unsafe { readiness::disarm(consumer, "consumer") }
}
