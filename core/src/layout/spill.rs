//! The words of the spill, the journal and the DLQ overflow in the queue
//! header (`Header::spill`, `journal`, `dlq_spill`), and the store
//! directory's path (`Header::spill_path`).

use crate::loom::AtomicU64;
#[cfg(not(loom))]
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Set in [`RingControl::tail`] while the queue spills: producers' claims
/// then see a full ring and take the spill path, and `tail & !SPILLING` is
/// the next ring position to be refilled from the spill.
pub(crate) const SPILLING: u64 = 1 << 63;

/// The shared state of the spill (`protocol/spill.rs`): where the next record is
/// appended and where the next one is read back into the ring. Written
/// only under the admin lock; read without it only for stats.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct SpillControl {
    /// 1 while the queue spills, else 0: on a line of its own, which
    /// ring-mode publishes never write, so consumers may poll it freely.
    pub active: AtomicU64,
    _pad0: [u8; 56],
    /// Seq the next spilled message gets (while spilling).
    pub end_seq: AtomicU64,
    /// Next seq to copy back into the ring (while spilling).
    pub read_seq: AtomicU64,
    /// Segment (its first seq) and byte offset of the next append.
    pub write_seg: AtomicU64,
    pub write_off: AtomicU64,
    /// Segment and byte offset of the record `read_seq`.
    pub read_seg: AtomicU64,
    pub read_off: AtomicU64,
    /// Segment files on disk and their bytes.
    pub segments: AtomicU64,
    pub bytes_on_disk: AtomicU64,
    /// Messages and payload bytes spilled so far.
    pub spilled: AtomicU64,
    pub spilled_bytes: AtomicU64,
    /// Records appended since the last flush (sync every n).
    pub unsynced: AtomicU64,
    /// Publishes that found the spill full (budget or disk); in the
    /// journal's control, messages skipped for a full disk.
    pub full: AtomicU64,
    /// Spilled messages found damaged or missing when read back (lost;
    /// their positions are aborted, so consumers skip them).
    pub lost: AtomicU64,
    /// CLOCK_MONOTONIC ns of the journal's last look at retention by age
    /// (unused by the spill and the DLQ overflow).
    pub checked_ns: AtomicU64,
    _pad: [u8; 16],
}

/// Longest spill directory path, in bytes.
pub(crate) const MAX_SPILL_PATH: usize = 1016;

/// The spill directory as bytes, with its crc32c.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout, Immutable))]
pub(crate) struct SpillPath {
    pub len: u32,
    pub crc: u32,
    pub bytes: [u8; MAX_SPILL_PATH],
}

#[cfg(any(test, loom))]
impl SpillControl {
    pub(crate) fn new() -> SpillControl {
        let z = || AtomicU64::new(0);
        SpillControl {
            active: z(),
            _pad0: [0; 56],
            end_seq: z(),
            read_seq: z(),
            write_seg: z(),
            write_off: z(),
            read_seg: z(),
            read_off: z(),
            segments: z(),
            bytes_on_disk: z(),
            spilled: z(),
            spilled_bytes: z(),
            unsynced: z(),
            full: z(),
            lost: z(),
            checked_ns: z(),
            _pad: [0; 16],
        }
    }
}
