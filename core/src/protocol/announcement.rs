//! A producer's announcement in its record, and the revocation of a
//! stalled writer: what the ring protocol (`protocol/ring/`) reads of
//! the producer records. An announcement names the record a producer is
//! writing (`announce`: its first position + 1, with [`RANGE`] for a
//! batch) and its end (`announce_end`); a consumer that aborts a record
//! whose writer is alive and announcing it *revokes* that writer (the
//! record's `revoked` word, counted in `RingControl::revoked`), and a later
//! lap keeps off the revoked writers' slots ([`held`]). The Dekker pairs
//! and the proofs are in `protocol/ring/`'s module doc.

use crate::layout::{ProducerRecord, RingControl};
use crate::loom::Ordering;

/// Flag of an announcement word for a batch: the producer announces the
/// batch's first position once, and `announce_end` names the end of the
/// record it is writing now. Positions are below 2^62, so the bit is
/// free.
pub(crate) const RANGE: u64 = 1 << 63;

/// The first position an announcement word names (`position + 1`, with
/// [`RANGE`] for a batch; 0 for none).
#[inline(always)]
fn announced_start(announced: u64) -> Option<u64> {
    (announced != 0).then(|| (announced & !RANGE).wrapping_sub(1))
}

/// Whether an announcement (word `announced`, record end `end`) says its
/// producer claimed `pos` as the start of the record it writes now or
/// will write: a single record's first position, or a batch's position
/// from its start up to the end of its current record.
#[inline]
pub(crate) fn announces(announced: u64, end: u64, pos: u64) -> bool {
    let Some(start) = announced_start(announced) else {
        return false;
    };
    if announced & RANGE != 0 {
        start <= pos && pos < end
    } else {
        start == pos
    }
}

/// Whether an announcement word says its producer claimed position `pos`
/// (a record it will write or is writing): a single record's first
/// position, or any position within a ring of a batch's start (the
/// batch's length is not announced; a batch is never longer than the
/// ring). For telling a dead claimer's positions, not spans.
#[inline]
pub(crate) fn claims(announced: u64, pos: u64, cap: u64) -> bool {
    let Some(start) = announced_start(announced) else {
        return false;
    };
    if announced & RANGE != 0 {
        pos >= start && pos - start < cap
    } else {
        start == pos
    }
}

/// Whether the ring slots of `[a, a + la)` and `[b, b + lb)` overlap, in a
/// ring of `cap` slots (a power of two; both lengths at most `cap`).
#[inline]
pub(crate) fn overlaps(a: u64, la: u64, b: u64, lb: u64, cap: u64) -> bool {
    let mask = cap - 1;
    (b.wrapping_sub(a) & mask) < la || (a.wrapping_sub(b) & mask) < lb
}

/// Reads producer `rec`'s announcement consistently: its word and the end
/// of the record it names, or `None` if it changed while read (the
/// producer moved on) or names nothing.
#[inline]
pub(crate) fn announcement(rec: &ProducerRecord) -> Option<(u64, u64)> {
    // SeqCst: the scanning half of the Dekker pairs in the module doc.
    let a = rec.announce.load(Ordering::SeqCst);
    if a == 0 {
        return None;
    }
    // Acquire pairs with the owner's Release store of the end, made
    // after its withdrawal of any earlier announcement: an end of a later
    // record is followed by another announcement word, caught below.
    let end = rec.announce_end.load(Ordering::Acquire);
    (rec.announce.load(Ordering::Acquire) == a).then_some((a, end))
}

/// Marks producer `rec`, which announces `pos` and may be writing it, as
/// a revoked stalled writer of that record: before `pos` is settled, so
/// before any group passes it (see the module doc).
pub(crate) fn revoke(ctl: &RingControl, rec: &ProducerRecord, pos: u64) {
    // AcqRel: a clearer's CAS of the old value either happened (we see 0
    // and count ourselves) or fails against ours.
    if rec.revoked.swap(pos + 1, Ordering::AcqRel) == 0 {
        // SeqCst: read by every later begin after `head`, which moves past
        // `pos` only after this (through the settle and the cursors).
        ctl.revoked.fetch_add(1, Ordering::SeqCst);
    }
}

/// Clears revocation `r` of producer `rec` (its writer no longer writes
/// that record), unless someone else did first, and uncounts it.
pub(crate) fn clear_revocation(ctl: &RingControl, rec: &ProducerRecord, r: u64) {
    // AcqRel: pairs with the revoker's swap.
    if rec
        .revoked
        .compare_exchange(r, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        ctl.revoked.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a revoked writer still writing may overlap the slots of the
/// record `[pos, pos + span)` in a ring of `cap` slots, clearing the
/// revocations that are over (their writer no longer announces that
/// record, or `alive` says it died). The scan is made only while some
/// revocation is counted.
pub(crate) fn held(
    ctl: &RingControl,
    records: &[ProducerRecord],
    pos: u64,
    span: u64,
    cap: u64,
    alive: impl Fn(&ProducerRecord) -> bool,
) -> bool {
    let mut held = false;
    for rec in records {
        // Acquire: pairs with the revoker's swap.
        let r = rec.revoked.load(Ordering::Acquire);
        if r == 0 {
            continue;
        }
        let at = r - 1;
        let (writing, end) = match announcement(rec) {
            Some((a, end)) => (announces(a, end, at) && end > at && alive(rec), end),
            None => (false, 0),
        };
        if !writing {
            clear_revocation(ctl, rec, r);
            continue;
        }
        if overlaps(pos, span, at, (end - at).min(cap), cap) {
            held = true;
        }
    }
    held
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn announcements_name_records_and_batch_positions() {
        // A single record at 4.
        assert!(announces(5, 7, 4) && !announces(5, 7, 5) && !announces(0, 7, 4));
        // A batch from 5, now writing the record that ends at 9.
        let a = RANGE | 6;
        for pos in 5..9 {
            assert!(announces(a, 9, pos), "{pos} may be in the batch");
        }
        assert!(!announces(a, 9, 4) && !announces(a, 9, 9));
        // A garbled word (the flag alone) does not overflow.
        assert!(!announces(RANGE, 0, 5));
    }

    #[test]
    fn ring_intervals_overlap_modulo_the_ring() {
        assert!(overlaps(9, 1, 1, 3, 8)); // slot 1 in 1..4
        assert!(overlaps(15, 3, 1, 3, 8)); // 7, 0, 1
        assert!(!overlaps(12, 3, 1, 3, 8)); // 4, 5, 6
        assert!(!overlaps(8, 1, 1, 3, 8)); // slot 0
        assert!(overlaps(0, 8, 5, 1, 8)); // a whole ring
    }
}
