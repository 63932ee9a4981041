//! The message record: how one message lies in a ring slot, and the only
//! code that reads or writes a slot's bytes.
//!
//! ```text
//!   slot (slot_stride bytes: 8-byte aligned, `layout::slot_grain`)
//!   +-------------------- SlotHeader (32 B, layout/) ---------------------+
//!   | state u64 | timestamp_ns u64 | correlation_id u64 | len | type_id   |
//!   |                                                     u32 | u32       |
//!   +---------------------------------------------------------------------+
//!   | body: len & !ENVELOPED bytes (at most slot_size)                    |
//!   |   [envelope: ordering key, headers, redrive target] payload         |
//!   +---------------------------------------------------------------------+
//! ```
//!
//! `state` belongs to the ring protocol (`protocol/ring/`); everything
//! else is written here ([`write`]) by the producer that began the slot,
//! before its commit, and read here ([`read`]) by whoever saw it
//! committed. The `len` word's top bit ([`envelope::ENVELOPED`]) says the
//! body starts with an [`envelope`]. The same body, with the same flag,
//! travels unchanged into the spill, the journal and the dead-letter
//! queue, whose own framings (`store/segment/`, `open_queue/dead_letters.rs`)
//! carry the header's fields beside it: [`read::Body`] reads a body from
//! any of them.

pub(crate) mod envelope;
#[cfg(not(loom))]
pub(crate) mod read;
#[cfg(not(loom))]
pub(crate) mod write;
