//! What lives on disk beside the queue file: segment files (the spill's,
//! the journal's and the dead-letter overflow's format), their damage-
//! tolerant scan and the per-process handles on them.

pub(crate) mod access;
pub(crate) mod owner;
pub(crate) mod schedule;
pub(crate) mod segment;
