//! # shmq — a broker-less, zero-copy message queue for processes on one host
//!
//! A queue is a file in shared memory (`/dev/shm` by default) holding a
//! lock-free multi-producer ring and a table of durable consumer groups.
//! Producers in any number of processes claim positions with one CAS and
//! write messages in place; every group reads every message, in seq order,
//! borrowing payloads straight from the mapping. A full queue blocks or
//! rejects — it never drops.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! use shmq::{ConsumerOptions, Meta, Options, Queue, Start};
//!
//! let opts = Options::new().dir(dir.path()).slots(1024).slot_size(256);
//! let queue = Queue::create("orders", &opts)?;
//! queue.create_group("billing", Start::Earliest)?; // retains from now on
//!
//! let mut producer = queue.producer()?;
//! let seq = producer.publish_with(b"order #1", &Meta::new().type_id(7))?;
//!
//! let mut billing = queue.consumer("billing", ConsumerOptions::new())?;
//! let msg = billing.receive()?;
//! assert_eq!(msg.payload(), b"order #1");
//! assert_eq!((msg.seq(), msg.type_id()), (seq, 7));
//! # drop(msg);
//! # Queue::remove("orders", &opts)?;
//! # Ok::<(), shmq::Error>(())
//! ```
//!
//! The design (file layout, every protocol and its memory orderings) is in
//! `docs/design.md` of the repository.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
#![cfg_attr(loom, allow(dead_code, unused_imports))]

// The layers, bottom to top: os; loom and error; layout; options and
// record; protocol; store; open_queue; api (rustfmt lists them
// alphabetically below). A module imports only from its own layer or the
// ones beneath it (docs/design.md; checked by core/tests/layers.rs).
#[cfg(not(loom))]
mod api; // Queue, Producer, Consumer, Delivery, DeadLetters
mod error;
mod layout; // every byte of the queue file
mod loom;
#[cfg(not(loom))]
mod open_queue; // one open queue file and the services that run on it
mod options; // the vocabulary: what a user asks for
mod os; // the kernel and the CPU: files, mapping, futex, processes, clocks
mod protocol; // the lock-free protocols, on any memory (loom-checked)
mod record; // a message in its slot: header, envelope (ordering key, headers), payload
#[cfg(not(loom))]
mod store; // segment files on disk // the one switch between std and loom atomics (tokio's name)

/// Internals for the fuzz targets (`core/fuzz/`), built with the `fuzzing`
/// feature only: not part of the API.
#[cfg(all(feature = "fuzzing", not(loom)))]
#[doc(hidden)]
pub mod fuzzing;

/// Sets this process's schedule clock `by` ahead of the real one:
/// messages scheduled with [`Meta::delay`] or [`Meta::deliver_at`] fall
/// due as if that much time had passed (and a delay counts from the
/// clock as set). For tests of long delays (hours in milliseconds); not
/// part of the API. Zero puts it back.
#[cfg(not(loom))]
#[doc(hidden)]
pub fn set_schedule_clock_ahead(by: std::time::Duration) {
    os::clock::set_schedule_clock_ahead(by.as_nanos().min(u64::MAX as u128) as u64);
}

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

#[cfg(not(loom))]
pub use api::cache_hints::CacheHints;
#[cfg(not(loom))]
pub use api::consumer::{Batch, Consumer, Delivery, Message, Receipt};
#[cfg(not(loom))]
pub use api::dlq::DeadLetters;
#[cfg(not(loom))]
pub use api::producer::{Producer, Reservation};
#[cfg(not(loom))]
pub use api::queue::{JournalStats, Peeked, Queue, Stats};
#[cfg(not(loom))]
pub use api::readiness::{Arm, Readiness};
#[cfg(not(loom))]
pub use api::scheduled::Scheduled;
#[cfg(all(not(loom), feature = "tokio"))]
pub use api::tokio::ReceiveAsync;

pub use error::{Error, Result};
pub use layout::MAX_GROUP_NAME;
#[cfg(not(loom))]
pub use open_queue::dead_letters::{DeadLetter, Reason};
pub use options::{
    Ack, ConsumerOptions, MAX_DELAY, Meta, Nack, OnExpiry, Options, Overflow, Retention, Seek,
    Start, SyncMode, Wait, default_dir,
};
pub use protocol::group::GroupInfo;
pub use record::envelope::{HeaderIter, Headers, MAX_HEADER_NAME, MAX_HEADERS, MAX_ORDERING_KEY};
/// The zerocopy crate this shmq is built with, for
/// [`Producer::publish_value`] and [`Message::value`]: derive its traits
/// with `#[zerocopy(crate = "shmq::zerocopy")]` and no dependency of your
/// own.
pub use zerocopy;
