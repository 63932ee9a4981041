//! The schedule's words in the queue header (`Header::schedule`).

use super::AdminLock;
use crate::loom::AtomicU64;
#[cfg(not(loom))]
use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// Where the schedule stands (`open_queue/schedule.rs`): the messages
/// published for later wait in segment files beside the queue, indexed by
/// due time; these words are what every process needs without opening
/// them. All but `next_due_ns` (and the lock word itself) are written
/// only by the schedule lock's holder.
#[repr(C)]
#[cfg_attr(not(loom), derive(FromBytes, IntoBytes, KnownLayout))]
pub(crate) struct ScheduleControl {
    /// The schedule lock: taken like the admin lock (robust, by liveness
    /// key), never by a publish of an unscheduled message, and never
    /// while the admin lock is held (a holder of this one may take that).
    pub lock: AdminLock,
    /// When the earliest scheduled message is due (CLOCK_REALTIME ns),
    /// 0 when nothing is scheduled: what a passer-by compares the clock
    /// with, and what a sleeping consumer caps its sleep by.
    pub next_due_ns: AtomicU64,
    /// Messages scheduled and neither moved into the ring nor cancelled.
    pub count: AtomicU64,
    /// The next schedule id (ids start at 1; 0 until the first schedule).
    pub next_id: AtomicU64,
    /// The schedule id being moved into the ring, 0 when none: a holder
    /// that dies mid-move leaves it for the next one to resolve.
    pub moving_id: AtomicU64,
    /// The ring position (or spill seq) claimed for `moving_id`, plus 1;
    /// 0 until claimed.
    pub moving_pos: AtomicU64,
    /// `moving_id`, once `head` passed its position committed (written
    /// under the admin lock just before `head` moves: after that the ring
    /// no longer knows the position's fate).
    pub moving_landed: AtomicU64,
    /// 1 once the schedule's directory was made and recorded as this
    /// queue's: a sharer that then finds it missing or another queue's
    /// sees another directory (a container's own mount) and refuses.
    pub made: AtomicU64,
    /// Scheduled messages cancelled so far.
    pub cancelled: AtomicU64,
    /// Scheduled messages found damaged or missing on disk when due (or
    /// listed, or cancelled): reported, never delivered as read.
    pub lost: AtomicU64,
    _reserved: [u64; 7],
}

#[cfg(loom)]
impl ScheduleControl {
    pub(crate) fn new() -> ScheduleControl {
        ScheduleControl {
            lock: AdminLock::new(),
            next_due_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            moving_id: AtomicU64::new(0),
            moving_pos: AtomicU64::new(0),
            moving_landed: AtomicU64::new(0),
            made: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            _reserved: [0; 7],
        }
    }
}
