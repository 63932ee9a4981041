//! # shmq-ffi — the C ABI of shmq
//!
//! `libshmq_ffi.so` / `libshmq_ffi.a` with the header `include/shmq.h`
//! (generated from this crate by a pinned cbindgen and checked in; the test
//! `tests/header.rs` fails when they drift). The conventions every function
//! follows are in `ffi/README.md`:
//!
//! - every name starts with `shmq_`; handles are opaque (`shmq_queue`,
//!   `shmq_producer`, `shmq_consumer`, `shmq_reservation`);
//! - `_open`/`_close` and `_new`/`_free` pairs; a close or free takes the
//!   address of the handle, ends it and sets it to NULL, so a later call
//!   through the same variable fails with `SHMQ_NULL_ARGUMENT` instead of
//!   touching freed memory; closing NULL is a no-op;
//! - every fallible function returns a [`shmq_status`] and writes its
//!   out-parameters only when it returns `SHMQ_OK`; a failure leaves a
//!   message for [`shmq_last_error`];
//! - every pointer and length is checked; a panic never unwinds into C (it
//!   becomes `SHMQ_PANIC`).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
// The C names are the contract (`shmq_queue`, `SHMQ_OK`).
#![allow(non_camel_case_types)]

mod boundary;
mod consumer;
mod dlq;
mod options;
mod producer;
mod queue;
mod readiness;
mod scheduled;
mod status;
mod version;

pub use consumer::{
    shmq_ack, shmq_ack_all, shmq_consumer, shmq_consumer_ack_mode, shmq_consumer_arm,
    shmq_consumer_disarm, shmq_consumer_drain, shmq_consumer_fd, shmq_consumer_free,
    shmq_consumer_group, shmq_consumer_new, shmq_consumer_position, shmq_consumer_seek,
    shmq_extend_lease, shmq_message, shmq_message_header, shmq_message_header_find, shmq_nack,
    shmq_receive, shmq_receive_batch,
};
pub use dlq::{
    SHMQ_DLQ_REASON_EXPIRED, SHMQ_DLQ_REASON_MAX_DELIVERIES, SHMQ_DLQ_REASON_NACKED,
    SHMQ_DLQ_REASON_OTHER, shmq_dead_letter, shmq_dlq_header, shmq_dlq_len, shmq_dlq_list,
    shmq_dlq_ordering_key, shmq_dlq_payload, shmq_dlq_purge, shmq_dlq_reason, shmq_dlq_redrive,
    shmq_dlq_redrive_timeout,
};
pub use options::{
    SHMQ_ACK_AUTO, SHMQ_ACK_MANUAL, SHMQ_CREATE_GROUP, SHMQ_CREATE_GROUP_UNSAID,
    SHMQ_GROUP_MUST_EXIST, SHMQ_MAX_HEADER_NAME, SHMQ_MAX_HEADERS, SHMQ_MAX_ORDERING_KEY,
    SHMQ_NACK_DEAD_LETTER, SHMQ_NACK_REQUEUE, SHMQ_NACK_REQUEUE_AFTER, SHMQ_ON_EXPIRY_DEAD_LETTER,
    SHMQ_ON_EXPIRY_DISCARD, SHMQ_OVERFLOW_BLOCK, SHMQ_OVERFLOW_REJECT, SHMQ_OVERFLOW_SPILL,
    SHMQ_SEEK_EARLIEST, SHMQ_SEEK_LATEST, SHMQ_SEEK_SEQ, SHMQ_SEEK_TIME, SHMQ_START_EARLIEST,
    SHMQ_START_LATEST, SHMQ_START_SEQ, SHMQ_SYNC_ALWAYS, SHMQ_SYNC_EVERY_N, SHMQ_SYNC_NEVER,
    SHMQ_WAIT_FOREVER, SHMQ_WAIT_STRATEGY_BUSY_SPIN, SHMQ_WAIT_STRATEGY_SPIN_FUTEX,
    SHMQ_WAIT_STRATEGY_SPIN_YIELD, shmq_ack_mode, shmq_consumer_options,
    shmq_consumer_options_default, shmq_create_group, shmq_header, shmq_meta, shmq_nack_kind,
    shmq_on_expiry, shmq_options, shmq_options_default, shmq_overflow, shmq_seek, shmq_start,
    shmq_sync, shmq_wait_strategy,
};
pub use producer::{
    shmq_abort, shmq_buf, shmq_commit, shmq_producer, shmq_producer_arm, shmq_producer_disarm,
    shmq_producer_drain, shmq_producer_fd, shmq_producer_free, shmq_producer_max_payload,
    shmq_producer_new, shmq_publish, shmq_publish_batch, shmq_publish_timeout, shmq_publish_with,
    shmq_publish_with_timeout, shmq_reservation, shmq_reservation_seq, shmq_reservation_set_meta,
    shmq_reservation_truncate, shmq_reserve, shmq_reserve_timeout,
};
pub use queue::{
    SHMQ_GROUP_NAME_CAP, shmq_default_dir, shmq_group_create, shmq_group_delete, shmq_group_info,
    shmq_group_oldest_unacked_key, shmq_group_seek, shmq_group_stats, shmq_groups, shmq_queue,
    shmq_queue_close, shmq_queue_create, shmq_queue_flush, shmq_queue_name, shmq_queue_open,
    shmq_queue_open_or_create, shmq_queue_path, shmq_queue_remove, shmq_queue_remove_forced,
    shmq_queue_spill_dir, shmq_queue_stats, shmq_stats,
};
pub use scheduled::{
    shmq_queue_cancel_scheduled, shmq_queue_cancel_scheduled_key, shmq_queue_scheduled,
    shmq_queue_scheduled_header, shmq_queue_scheduled_ordering_key, shmq_queue_scheduled_payload,
    shmq_scheduled_message,
};
pub use status::{shmq_last_error, shmq_status, shmq_status_str};
pub use version::shmq_version;
