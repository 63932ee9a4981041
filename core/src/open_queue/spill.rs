//! The spill of a mapped queue: the spill protocol (`protocol/spill.rs`)
//! run over this queue's ring, its `SpillControl` and this process's
//! handles on its segment files: append, help, refill, recovery at open.

use crate::error::Result;
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::options::Meta;
use crate::protocol::lock::AdminGuard;
use crate::protocol::spill::{Log, Record, Refilled, append, refill, spilling};
use crate::record::write::write_slot;
use crate::store::segment::{Parsed, SEGMENT_HEADER_SIZE, Segments, parse_at, record_size};

impl OpenQueue {
    fn segments(&self) -> std::sync::MutexGuard<'_, Segments> {
        let m = self.spill.as_ref().expect("overflow=spill queue");
        // A panic while holding it leaves nothing half-done in the
        // process-local handles that the shared control does not redo.
        let mut segs = m.lock().unwrap_or_else(|p| p.into_inner());
        // Segments the refill has left (deleted, or about to be) are
        // unmapped here, in every process: one that only looks (`stats`,
        // an exporter) kept every segment it had read mapped, and a
        // deleted file's blocks free only when its last mapping goes (the
        // chaos run's observer held its 4 MiB disk full so).
        segs.forget_before(self.header().spill.read_seg.load(Ordering::Relaxed));
        segs
    }

    /// The spill directory (overflow=spill), where its segment files go.
    pub(crate) fn spill_dir(&self) -> Option<std::path::PathBuf> {
        self.spill
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).dir.clone())
    }

    /// Spills `recs` (the ring looked full). `None`: the ring had room
    /// after all; claim there.
    pub(crate) fn spill_append(
        &self,
        recs: &mut [Record<'_>],
        claimed: &mut dyn FnMut(u64),
    ) -> Result<Option<u64>> {
        if let Some(why) = &self.stores_refused {
            // Nothing is claimed or written: the caller claims in the ring
            // if it has room after all, else fails (or, with
            // spill_fallback=block, waits for ring room) and loses nothing.
            let head = self.advance_head();
            let ring = self.ring();
            let t = ring.ctl.tail.load(Ordering::Acquire);
            let n: u64 = recs.iter().map(|r| self.geo.span_of(r.payload.len())).sum();
            if !spilling(t) && t + n <= head + ring.capacity {
                return Ok(None);
            }
            return Err(crate::error::Error::SpillFull(why.clone()));
        }
        let g = self.lock();
        let mut segs = self.segments();
        self.refill_locked(&g, &mut segs)?;
        let ring = self.ring();
        let span = |r: &Record<'_>| self.geo.span_of(r.payload.len());
        let r = append(
            &ring,
            &self.header().spill,
            &mut *segs,
            recs,
            &span,
            claimed,
        );
        drop(segs);
        drop(g);
        r
    }

    /// Copies spilled messages back into the ring if the lock is free
    /// (`wait`: take it even if not). Returns whether anything moved.
    pub(crate) fn help_spill(&self, wait: bool) -> Result<bool> {
        let Some(g) = self.lock_unless_busy(wait) else {
            return Ok(false);
        };
        let mut segs = self.segments();
        let r = self.refill_locked(&g, &mut segs)?;
        Ok(r.copied + r.lost > 0 || r.back_to_ring)
    }

    fn refill_locked(&self, g: &AdminGuard<'_>, segs: &mut Segments) -> Result<Refilled> {
        if self.stores_refused.is_some() {
            // Our view of the spill directory is not the queue's: its
            // records are not there for us to read (we would take them
            // for lost). The queue's other processes refill.
            return Ok(Refilled::default());
        }
        let ring = self.ring();
        let ctl = &self.header().spill;
        segs.forget_before(ctl.read_seg.load(Ordering::Relaxed));
        segs.repair(ctl)?;
        // Both, always: a killed keyed spiller's and a killed mover's.
        let keyed = crate::open_queue::dedup::cancel_unfinished_spills(self) > 0;
        let moving = self.cancel_unfinished_schedule_spill();
        if (keyed || moving) && ctl.segments.load(Ordering::Relaxed) != 0 {
            // The killed spiller's record may lie whole past the write
            // position: cut it off, or an opener would adopt a message
            // whose key its retry was just told is free (or that moves
            // again from the schedule).
            let seg = ctl.write_seg.load(Ordering::Relaxed);
            let off = ctl.write_off.load(Ordering::Relaxed);
            // A write segment that is gone (a clear cut short) holds
            // nothing to adopt.
            let _ = segs.zero(seg, off, record_size(segs.max_len));
        }
        let held = |pos: u64, span: u64| self.held(pos, span);
        let span = |r: &Record<'_>| self.geo.span_of(r.payload.len());
        let slots = &ring.slots;
        let r = refill(
            &ring,
            ctl,
            segs,
            &mut || self.advance_head_locked(g) + self.geo.slots,
            &span,
            &held,
            &mut |pos, rec| {
                let meta = Meta::new()
                    .type_id(rec.type_id)
                    .correlation_id(rec.correlation_id);
                // SAFETY: `refill` calls this only for position `pos`,
                // which nobody else writes: `tail` is not past it, so no
                // consumer aborts it and no producer claims it, and its
                // slots are free (`pos + span <= head + slots`, not held),
                // inside the mapping (mapped twice: a record of at most
                // half the ring is one slice). The record's length was
                // checked against the queue's largest message when read.
                unsafe {
                    write_slot(
                        slots.slot(pos),
                        rec.payload,
                        rec.enveloped,
                        &meta,
                        rec.timestamp_ns,
                    )
                };
            },
        )?;
        if r.back_to_ring {
            ring.notify_space();
        }
        Ok(r)
    }

    /// The time and ordering key of the oldest spilled message (seq
    /// `read_seq`, the next to go back into the ring), if the queue
    /// spills and that record can be read where the spill says it is.
    /// Reads only: the refill is what moves the read position.
    pub(crate) fn spill_front(&self, _g: &AdminGuard<'_>) -> Option<(u64, Option<Vec<u8>>)> {
        if self.stores_refused.is_some() || self.spill.is_none() {
            return None;
        }
        if !spilling(self.ring().ctl.tail.load(Ordering::Acquire)) {
            return None;
        }
        let ctl = &self.header().spill;
        let want = ctl.read_seq.load(Ordering::Relaxed);
        let mut at = (
            ctl.read_seg.load(Ordering::Relaxed),
            ctl.read_off.load(Ordering::Relaxed),
        );
        let mut segs = self.segments();
        let max_len = segs.max_len;
        // At most one END record to step over: the read position is at
        // a record, or at the end of a segment the refill has not left.
        for _ in 0..2 {
            let seg = segs.get(at.0).ok()?;
            match parse_at(seg.bytes(), at.1, max_len) {
                Parsed::Message(rec, _) if rec.seq == want => {
                    let key =
                        crate::record::envelope::owned(rec.payload, rec.enveloped).ordering_key;
                    return Some((rec.timestamp_ns, key));
                }
                Parsed::End(next) => at = (next, SEGMENT_HEADER_SIZE),
                _ => return None,
            }
        }
        None
    }

    /// The seq of the first spilled message at or after `n` (a seq inside
    /// a long spilled message: the next one), walking the spill from its
    /// read position. None if the queue does not spill, nothing spilled
    /// is at or after `n`, or a record cannot be read where the walk
    /// expects it. Reads only, under the admin lock (the refill holds it
    /// to move the read position).
    pub(crate) fn spill_seq_at_or_after(&self, _g: &AdminGuard<'_>, n: u64) -> Option<u64> {
        if self.stores_refused.is_some() || self.spill.is_none() {
            return None;
        }
        let ctl = &self.header().spill;
        let mut left = ctl
            .end_seq
            .load(Ordering::Relaxed)
            .saturating_sub(ctl.read_seq.load(Ordering::Relaxed));
        let mut at = (
            ctl.read_seg.load(Ordering::Relaxed),
            ctl.read_off.load(Ordering::Relaxed),
        );
        let mut segs = self.segments();
        let max_len = segs.max_len;
        // Every step reads a message (at most the pending ones) or steps
        // over a segment's end (at most one per segment).
        let mut ends = segs.list().ok()?.len() + 1;
        while left > 0 {
            let seg = segs.get(at.0).ok()?;
            match parse_at(seg.bytes(), at.1, max_len) {
                Parsed::Message(rec, _) if rec.seq >= n => return Some(rec.seq),
                Parsed::Message(_, next) => {
                    at.1 = next;
                    left -= 1;
                }
                Parsed::End(next) if ends > 0 => {
                    at = (next, SEGMENT_HEADER_SIZE);
                    ends -= 1;
                }
                _ => return None,
            }
        }
        None
    }

    /// Checks the spill when a process opens the queue: forgets
    /// segments already read back, adopts records that a process
    /// killed mid-append wrote whole but did not record, and cuts off
    /// a torn tail, so the next append starts on clean bytes.
    pub(crate) fn recover_spill(&self) -> Result<()> {
        if self.stores_refused.is_some() {
            return Ok(()); // not our directory to repair (as in refill_locked)
        }
        let g = self.lock();
        let mut segs = self.segments();
        let ring = self.ring();
        let ctl = &self.header().spill;
        let t = ring.ctl.tail.load(Ordering::Acquire);
        let on_disk = segs.list()?;
        if !spilling(t) || ctl.segments.load(Ordering::Relaxed) == 0 {
            // Files left by a holder killed while it cleared the spill.
            for id in on_disk {
                segs.delete(id)?;
            }
            if !spilling(t) {
                ctl.segments.store(0, Ordering::Relaxed);
                ctl.bytes_on_disk.store(0, Ordering::Relaxed);
                ctl.active.store(0, Ordering::Release);
            }
            return Ok(());
        }
        if ctl.read_seq.load(Ordering::Relaxed) >= ctl.end_seq.load(Ordering::Relaxed) {
            // Everything spilled is back in the ring: a holder was killed
            // while it cleared the spill (its segments deleted, or some of
            // them). Finish the clear; the next refill goes back to the
            // ring. (Before, the write segment was looked for here and its
            // absence made every open fail.)
            for id in on_disk {
                segs.delete(id)?;
            }
            ctl.segments.store(0, Ordering::Relaxed);
            ctl.bytes_on_disk.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let read_seg = ctl.read_seg.load(Ordering::Relaxed);
        for &id in on_disk.iter().filter(|&&id| id < read_seg) {
            segs.delete(id)?;
        }
        // A holder killed after it counted its record and before it moved
        // the write position: move it now, or the record would be cut off
        // below as a torn tail.
        segs.repair(ctl)?;
        // Adopt intact records past the write position, in seq order,
        // following END records to segments that exist.
        let max_len = segs.max_len;
        loop {
            let seg = ctl.write_seg.load(Ordering::Relaxed);
            let off = ctl.write_off.load(Ordering::Relaxed);
            let mut end = ctl.end_seq.load(Ordering::Relaxed);
            let (adopted, tail, rolled) = {
                let bytes = segs.get(seg)?.bytes();
                let mut at = off;
                let mut n = 0;
                let mut rolled = None;
                loop {
                    match crate::store::segment::parse_at(bytes, at, max_len) {
                        crate::store::segment::Parsed::Message(rec, next) if rec.seq == end => {
                            // A long record takes the seqs of its slots.
                            end = rec.seq + self.geo.span_of(rec.payload.len());
                            n += 1;
                            at = next;
                        }
                        crate::store::segment::Parsed::End(next) if next == end => {
                            rolled = Some(next);
                            break;
                        }
                        _ => break,
                    }
                }
                (n, at, rolled)
            };
            ctl.write_off.store(tail, Ordering::Relaxed);
            ctl.end_seq.store(end, Ordering::Release);
            ctl.spilled.fetch_add(adopted, Ordering::Relaxed);
            match rolled {
                Some(next) if on_disk.contains(&next) => {
                    ctl.write_seg.store(next, Ordering::Relaxed);
                    ctl.write_off.store(SEGMENT_HEADER_SIZE, Ordering::Relaxed);
                    if ctl.segments.load(Ordering::Relaxed) < on_disk.len() as u64 {
                        ctl.segments.fetch_add(1, Ordering::Relaxed);
                        ctl.bytes_on_disk
                            .fetch_add(segs.segment_size, Ordering::Relaxed);
                    }
                }
                Some(_) => {
                    // The END points at a segment that was never made:
                    // undo it, the next append rolls again.
                    segs.zero(seg, tail, crate::store::segment::RECORD_HEADER_SIZE)?;
                    break;
                }
                None => {
                    // A torn record (or nothing) at the tail: cut it
                    // off. A record is at most this long.
                    segs.zero(seg, tail, record_size(max_len))?;
                    break;
                }
            }
        }
        drop(segs);
        drop(g);
        Ok(())
    }
}
