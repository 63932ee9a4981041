//! The journal (`Options::journal(retention)`): every message is also
//! appended to segment files, kept by age and by bytes, so that a group can
//! seek to any retained seq or time and replay it — far beyond what the
//! ring holds.
//!
//! **Writing.** The journal is a cursor over the ring, like a group's:
//! `journal.end_seq` is the next seq to append, and `head` never passes it,
//! so a message's slot is not reused before it is journaled. Whoever holds
//! the admin lock copies committed ring messages from `end_seq` on into the
//! journal's segments (the spill's format, in `<spill_dir>/journal`),
//! skipping aborted positions, then stores `end_seq` (Release). Producers do
//! it every 256 seqs and when the ring looks full, consumers when they find
//! nothing to read; all of them only if the lock is free, except a producer
//! that needs room. So a journaled record is complete before `end_seq`
//! passes it, and a reader that loaded `end_seq` (Acquire) may read every
//! record below it without the lock: records are never rewritten, and a
//! segment that retention deletes stays mapped for a reader that has it.
//!
//! **Retention.** The oldest segment is deleted when the journal's bytes
//! would pass `max_bytes`, or when every record in it is older than
//! `max_age` (the next segment's first record is). `read_seq` is then the
//! first seq of the oldest segment left: what `Start::Earliest` and
//! `Seek::Earliest` mean on a journaled queue.
//!
//! **Replaying.** A group whose cursor is below `head` (a seek into the
//! journal) reads from the journal, one record after another, and is left
//! out of `head`'s minimum meanwhile (it holds no ring slot). When its
//! cursor reaches `head` it joins the ring again under the admin lock, so
//! no `head` computation can pass it in between. Replay is ack=auto
//! (at-most-once): an ack=manual group seeking below `head` is moved to it.

use std::sync::MutexGuard;

use crate::error::{Error, Result};
use crate::layout::SpillControl;
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::os;
use crate::protocol::lock::AdminGuard;
use crate::protocol::ring::Peek;
use crate::protocol::spill::{Record, ring_tail};
use crate::store::segment::{Parsed, SEGMENT_HEADER_SIZE, Segments, parse_at};

/// Journal the ring every this many seqs (a power of two), from the
/// producer whose publish got such a seq.
const PUMP_EVERY: u64 = 256;

/// How often (at most) retention by age is looked at.
const AGE_CHECK_NS: u64 = 1_000_000_000;

impl OpenQueue {
    fn journal_segments(&self) -> MutexGuard<'_, Segments> {
        let m = self.journal.as_ref().expect("a journaled queue");
        let mut segs = m.lock().unwrap_or_else(|p| p.into_inner());
        // Segments retention deleted, unmapped in every process (see
        // `OpenQueue::segments`); a replaying reader has its own handles.
        segs.forget_before(self.header().journal.read_seg.load(Ordering::Relaxed));
        segs
    }

    /// After a publish of `pos` to a journaled queue: every
    /// [`PUMP_EVERY`] seqs, journals the ring if nobody else holds the
    /// admin lock. An error is left for the publish that needs room to
    /// report (`Producer::claim_slow`).
    #[inline(always)]
    pub(crate) fn journal_now_and_then(&self, pos: u64) {
        if pos % PUMP_EVERY == PUMP_EVERY - 1 {
            self.journal_if_free();
        }
    }

    /// Journals the ring if nobody else holds the admin lock (an error
    /// is left for a publish that needs room to report).
    #[cold]
    #[inline(never)]
    pub(crate) fn journal_if_free(&self) {
        let _ = self.help_journal(false);
    }

    /// Journals what the ring holds, if the admin lock is free (`wait`:
    /// take it anyway). Returns the messages journaled.
    pub(crate) fn help_journal(&self, wait: bool) -> Result<u64> {
        if self.journal.is_none() {
            return Ok(0);
        }
        let Some(g) = self.lock_unless_busy(wait) else {
            return Ok(0);
        };
        self.pump_journal(&g)
    }

    /// Appends committed ring messages from `journal.end_seq` on. Under
    /// the admin lock.
    pub(crate) fn pump_journal(&self, _g: &AdminGuard<'_>) -> Result<u64> {
        if self.stores_refused.is_some() {
            // Our view of the journal's directory is not the queue's
            // (`store/owner.rs`): the queue's other processes journal.
            return Ok(0);
        }
        let Some(max_age) = (self.journal.is_some()).then_some(self.config.journal_max_age_ns)
        else {
            return Ok(0);
        };
        let mut segs = self.journal_segments();
        let jc = &self.header().journal;
        let ring = self.ring();
        let tail = ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        let mut pos = jc.end_seq.load(Ordering::Relaxed);
        let start = pos;
        while pos < tail {
            let span = match ring.peek(pos) {
                Peek::Ready(span) => {
                    // SAFETY: committed (Acquire in `peek`) and retained:
                    // `head <= journal.end_seq <= pos`, so nobody rewrites
                    // the slot.
                    if let Some(rec) = unsafe { self.committed_record(pos) } {
                        self.journal_append(jc, &mut segs, &rec)?;
                    }
                    // A garbled length is not journaled: consumers get
                    // `Corrupt` for it and move on, and so does the journal.
                    span
                }
                Peek::Skip(span) => span,
                // Not settled: its producer may still commit it.
                Peek::Settling => match self.settle_abort(pos) {
                    Some(span) => span,
                    None => break,
                },
                Peek::NotYet(_) => break,
            };
            pos += span;
            // Release: the record before the cursor that lets readers and
            // `head` past it.
            jc.end_seq.store(pos, Ordering::Release);
        }
        let now = os::clock::monotonic_ns();
        if now.saturating_sub(jc.checked_ns.load(Ordering::Relaxed)) >= AGE_CHECK_NS {
            jc.checked_ns.store(now, Ordering::Relaxed);
            self.retire_by_age(jc, &mut segs, max_age)?;
        }
        Ok(pos - start)
    }

    fn journal_append(
        &self,
        jc: &SpillControl,
        segs: &mut Segments,
        rec: &Record<'_>,
    ) -> Result<()> {
        if jc.segments.load(Ordering::Relaxed) == 0 {
            jc.read_seq.store(rec.seq, Ordering::Release);
        }
        if segs.takes_disk_for_full(os::clock::monotonic_ns()) {
            // The disk was full a moment ago: skip without trying again.
            jc.full.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut r = segs.append(jc, rec);
        // Over `max_bytes`, or the disk is full: the oldest segment goes,
        // as long as there is one besides the one being written.
        while let Err(Error::SpillFull(_)) = r {
            if !self.retire_oldest(jc, segs)? {
                break;
            }
            r = segs.append(jc, rec);
        }
        if let Err(Error::SpillFull(_)) = r {
            // Not one segment's room left on the disk (the spill took it):
            // the journal skips this record, counted, rather than hold the
            // ring — `end_seq` holds `head`, so a journal that waited for
            // room would stop the refill that frees the disk, and the
            // queue for good (found by the chaos run). Until the pause
            // `roll_to` set runs out, records are skipped without a look
            // at the disk (each look lists the directory, under the lock).
            jc.full.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if r.is_ok() {
            jc.spilled.fetch_add(1, Ordering::Relaxed);
            jc.spilled_bytes
                .fetch_add(rec.payload.len() as u64, Ordering::Relaxed);
        }
        r
    }

    /// Deletes the oldest journal segment (never the one being written).
    fn retire_oldest(&self, jc: &SpillControl, segs: &mut Segments) -> Result<bool> {
        let ids = segs.list()?;
        let write = jc.write_seg.load(Ordering::Relaxed);
        let [oldest, next, ..] = ids[..] else {
            return Ok(false);
        };
        if oldest == write {
            return Ok(false);
        }
        // The new oldest first, so a reader that looks meanwhile jumps to
        // a segment that exists.
        jc.read_seq.store(next, Ordering::Release);
        jc.read_seg.store(next, Ordering::Relaxed);
        segs.retire(jc, oldest)?;
        jc.lost.fetch_add(next - oldest, Ordering::Relaxed);
        Ok(true)
    }

    fn retire_by_age(&self, jc: &SpillControl, segs: &mut Segments, max_age: u64) -> Result<()> {
        let cutoff = os::clock::realtime_ns().saturating_sub(max_age);
        loop {
            let ids = segs.list()?;
            let Some(&next) = ids.get(1) else {
                return Ok(());
            };
            // Every record of the oldest segment is older than the first
            // record of the next.
            match first_timestamp(segs, next)? {
                Some(ts) if ts < cutoff => {
                    if !self.retire_oldest(jc, segs)? {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The first retained seq at or after CLOCK_REALTIME `t` in the
    /// journal, if the journal reaches that far back. Under the admin
    /// lock (it journals the ring first).
    pub(crate) fn journal_seek_time(&self, g: &AdminGuard<'_>, t: u64) -> Result<Option<u64>> {
        if self.journal.is_none() {
            return Ok(None);
        }
        self.pump_journal(g)?;
        let mut segs = self.journal_segments();
        let ids = segs.list()?;
        // The last segment whose first record is before t (records are in
        // time order per producer; across producers nearly so).
        let mut from = 0;
        for (i, &id) in ids.iter().enumerate() {
            match first_timestamp(&mut segs, id)? {
                Some(ts) if ts < t => from = i,
                _ => break,
            }
        }
        let max_len = segs.max_len;
        for &id in &ids[from.min(ids.len())..] {
            let seg = segs.get(id)?;
            let mut off = SEGMENT_HEADER_SIZE;
            while let Parsed::Message(rec, next) = parse_at(seg.bytes(), off, max_len) {
                if rec.timestamp_ns >= t {
                    return Ok(Some(rec.seq));
                }
                off = next;
            }
        }
        Ok(None)
    }

    /// The journal's first retained seq and time, and its next seq:
    /// brought up to date first if `g` (the admin lock) is given, else as
    /// the journal's words say now (a look that could not have the lock).
    pub(crate) fn journal_range(
        &self,
        g: Option<&AdminGuard<'_>>,
    ) -> Option<(u64, Option<u64>, u64)> {
        self.journal.as_ref()?;
        if let Some(g) = g {
            let _ = self.pump_journal(g);
        }
        let jc = &self.header().journal;
        let first = jc.read_seq.load(Ordering::Acquire);
        let mut segs = self.journal_segments();
        let ts = segs
            .list()
            .ok()
            .and_then(|ids| ids.first().copied())
            .and_then(|id| first_timestamp(&mut segs, id).ok().flatten());
        Some((first, ts, jc.end_seq.load(Ordering::Acquire)))
    }
}

impl OpenQueue {
    /// The time and ordering key of the first journaled message at or
    /// after `seq`: the oldest unfinished message of a group replaying
    /// from the journal. None if the journal has none (or no journal).
    /// The seq of the first journaled message at or after `seq`, if there
    /// is one.
    pub(crate) fn journal_seq_at_or_after(&self, seq: u64) -> Option<u64> {
        let mut r = JournalReader::new(self)?;
        r.find(seq, &self.header().journal).ok()?.map(|rec| rec.seq)
    }

    pub(crate) fn journal_message_at(&self, seq: u64) -> Option<(u64, Option<Vec<u8>>)> {
        let mut r = JournalReader::new(self)?;
        let rec = r.find(seq, &self.header().journal).ok()??;
        // SAFETY: the reader `r` holds the record's segment until it is
        // dropped, after the key was copied out.
        let body = unsafe { rec.stored() };
        let key = crate::record::envelope::owned(body, rec.enveloped).ordering_key;
        Some((rec.timestamp_ns, key))
    }
}

/// The timestamp of segment `id`'s first record.
fn first_timestamp(segs: &mut Segments, id: u64) -> Result<Option<u64>> {
    let max_len = segs.max_len;
    let seg = segs.get(id)?;
    Ok(match parse_at(seg.bytes(), SEGMENT_HEADER_SIZE, max_len) {
        Parsed::Message(rec, _) => Some(rec.timestamp_ns),
        _ => None,
    })
}

/// A consumer's reading position in the journal, with its own handles on
/// the segment files (a delivery borrows its payload from them).
pub(crate) struct JournalReader {
    segs: Segments,
    /// Segment and offset of the next record to look at.
    at: Option<(u64, u64)>,
}

/// A journal record found for a replaying consumer: its payload is in the
/// reader's mapping of its segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JournalRecord {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub type_id: u32,
    pub ptr: *const u8,
    pub len: usize,
    /// The body starts with an envelope.
    pub enveloped: bool,
}

impl JournalRecord {
    /// Its stored body, envelope unparsed.
    ///
    /// # Safety
    /// The reader that found it still holds its segment (until its next
    /// read), for the slice's lifetime `'a`.
    pub(crate) unsafe fn stored<'a>(&self) -> &'a [u8] {
        // SAFETY: `find` checked `len` against the segment; per the
        // contract the bytes stay mapped.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Its stored body if it starts with an envelope (what routing looks
    /// at); `None` for a plain message.
    ///
    /// # Safety
    /// As [`stored`](Self::stored).
    pub(crate) unsafe fn enveloped_body<'a>(&self) -> Option<&'a [u8]> {
        // SAFETY: per the contract.
        self.enveloped.then(|| unsafe { self.stored() })
    }
}

impl JournalReader {
    pub(crate) fn new(shared: &OpenQueue) -> Option<JournalReader> {
        let m = shared.journal.as_ref()?;
        let s = m.lock().unwrap_or_else(|p| p.into_inner());
        Some(JournalReader {
            segs: Segments::new(
                s.dir.clone(),
                s.creation_id,
                s.segment_size,
                s.max_len,
                s.max_bytes,
                s.sync,
            ),
            at: None,
        })
    }

    /// The first journaled message at or after `want` (and below the
    /// journal's `end_seq`); None if there is none yet.
    pub(crate) fn find(&mut self, want: u64, jc: &SpillControl) -> Result<Option<JournalRecord>> {
        // Acquire: pairs with the journal writer's Release stores; every
        // record below `end` is complete.
        let end = jc.end_seq.load(Ordering::Acquire);
        let first = jc.read_seq.load(Ordering::Acquire);
        if want >= end {
            return Ok(None);
        }
        let want = want.max(first);
        let max_len = self.segs.max_len;
        for _ in 0..4 {
            let (seg, off) = match self.at {
                Some(at) => at,
                None => {
                    let ids = self.segs.list()?;
                    let Some(&id) = ids.iter().rev().find(|&&id| id <= want).or(ids.first()) else {
                        return Ok(None);
                    };
                    (id, SEGMENT_HEADER_SIZE)
                }
            };
            let (s_id, mut o) = (seg, off);
            let s = match self.segs.get(s_id) {
                Ok(s) => s,
                // Deleted by retention before we opened it: look again.
                Err(Error::Corrupt { .. }) => {
                    self.at = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                match parse_at(s.bytes(), o, max_len) {
                    Parsed::Message(rec, next) if rec.seq >= end => {
                        self.at = Some((s_id, o));
                        let _ = next;
                        return Ok(None);
                    }
                    Parsed::Message(rec, next) if rec.seq >= want => {
                        self.at = Some((s_id, next));
                        return Ok(Some(JournalRecord {
                            seq: rec.seq,
                            timestamp_ns: rec.timestamp_ns,
                            correlation_id: rec.correlation_id,
                            type_id: rec.type_id,
                            ptr: rec.payload.as_ptr(),
                            len: rec.payload.len(),
                            enveloped: rec.enveloped,
                        }));
                    }
                    Parsed::Message(_, next) => o = next,
                    Parsed::End(next) => {
                        self.at = Some((next, SEGMENT_HEADER_SIZE));
                        break;
                    }
                    // Damage before the writer's position: step over it to
                    // the next intact record.
                    Parsed::Empty | Parsed::Bad
                        if s_id < jc.write_seg.load(Ordering::Relaxed)
                            || o < jc.write_off.load(Ordering::Relaxed) =>
                    {
                        let sc = crate::store::segment::scan(s.bytes(), o + 8, max_len);
                        match (sc.messages.first(), sc.end) {
                            (Some(&(_, at)), _) => o = at,
                            (None, Some(_)) => o = sc.tail,
                            (None, None) => {
                                let ids = self.segs.list()?;
                                match ids.iter().find(|&&id| id > s_id) {
                                    Some(&n) => {
                                        self.at = Some((n, SEGMENT_HEADER_SIZE));
                                        break;
                                    }
                                    None => return Ok(None),
                                }
                            }
                        }
                    }
                    // Nothing (yet) past here: the writer is still on this
                    // segment, or has moved on to the next one.
                    Parsed::Empty | Parsed::Bad => {
                        let ids = self.segs.list()?;
                        match ids.iter().find(|&&id| id > s_id) {
                            Some(&n) => {
                                self.at = Some((n, SEGMENT_HEADER_SIZE));
                                break;
                            }
                            None => {
                                self.at = Some((s_id, o));
                                return Ok(None);
                            }
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}
