//! Why a publish finds no room: the words every face uses when a
//! publisher waits for room, times out or is refused
//! ([`Queue::why_full`](crate::Queue::why_full),
//! [`Producer::why_full`](crate::Producer::why_full)).

use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::options::Overflow;
use crate::protocol::group::GroupInfo;
use crate::protocol::spill::spilling;

/// What holds the ring full (the group furthest behind, or the lack of a
/// group) and, for a spilling queue, what holds the spill full (its
/// `spill_max_bytes` budget, its disk, or a directory this process may not
/// write), with the option or command that helps.
pub(crate) fn why_full(shared: &OpenQueue) -> String {
    why_full_with(shared, &shared.group_infos())
}

/// [`why_full`] with the groups already at hand.
pub(crate) fn why_full_with(shared: &OpenQueue, groups: &[GroupInfo]) -> String {
    let ring = ring_reason(shared, groups);
    if shared.overflow() != Overflow::Spill
        || !spilling(shared.header().ring.tail.load(Ordering::Acquire))
    {
        return ring;
    }
    if let Some(why) = &shared.stores_refused {
        return format!("{ring}; and this process may not write the queue's spill: {why}");
    }
    let sp = &shared.header().spill;
    let on_disk = sp.bytes_on_disk.load(Ordering::Relaxed);
    let max = shared.config.spill_max_bytes;
    let segment = shared.config.spill_segment_size;
    let then = match Overflow::from_raw(shared.config.spill_fallback) {
        Some(Overflow::Reject) => "spill_fallback=reject: publishes fail with SpillFull",
        _ => "spill_fallback=block: publishers wait for it to drain",
    };
    if on_disk.saturating_add(segment) > max {
        return format!(
            "the spill is full: its {on_disk} bytes on disk ({} segments) reach its budget, \
             spill_max_bytes = {max} ({then}); consume faster, or give the queue a larger \
             spill_max_bytes (Options::spill_max_bytes, shmq create --spill-max-bytes) — \
             behind the spill, {ring}",
            sp.segments.load(Ordering::Relaxed)
        );
    }
    if let Some(dir) = shared.spill_dir() {
        if crate::os::file::free_space(&dir).is_ok_and(|free| free < segment) {
            return format!(
                "the spill's disk is full: no room in {} for another {segment}-byte segment \
                 ({then}); free space there, or consume faster — behind the spill, {ring}",
                dir.display()
            );
        }
        return format!("the ring is full and spills to {}: {ring}", dir.display());
    }
    ring
}

/// What holds the ring full: the group furthest behind, or no group.
fn ring_reason(shared: &OpenQueue, groups: &[GroupInfo]) -> String {
    match groups.iter().max_by_key(|g| g.lag) {
        None => format!(
            "the queue has no consumer group, and without one it keeps every message for the \
             first group to come, so its {} slots are full; create a group (shmq group-create) \
             or consume",
            shared.geo.slots
        ),
        Some(g) => format!(
            "group {:?} holds the ring: it is {} messages behind (committed seq {}){}",
            g.name,
            g.lag,
            g.committed,
            if g.consumer_attached {
                ""
            } else {
                ", with no consumer attached"
            }
        ),
    }
}
