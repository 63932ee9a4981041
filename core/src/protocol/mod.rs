//! The lock-free protocols, written against the layouts (`layout/`) and
//! the `loom` facade only, so that the same code runs on the queue file's
//! mapping and, under `--cfg loom`, on heap-built twins of the same layouts
//! (`protocol/loom_models/`). Nothing here touches the OS, a file or the API.

pub(crate) mod announcement;
pub(crate) mod dead_letter_entry;
pub(crate) mod dedup_table;
pub(crate) mod doorbell;
pub(crate) mod group;
pub(crate) mod lanes;
pub(crate) mod lease;
pub(crate) mod lock;
pub(crate) mod registry;
pub(crate) mod ring;
pub(crate) mod schedule;
pub(crate) mod signal;
pub(crate) mod spill;

#[cfg(all(test, loom))]
mod loom_models;
