//! The schedule on disk: where messages published for later wait
//! (`Meta::delay`, `Meta::deliver_at`) until they are due.
//!
//! ```text
//! <store dir>/schedule/index                the index, mapped:
//!   offset 0      IndexHeader (16 KiB): magic, version, the queue's
//!                 creation id, the heap's length and capacity, `dirty`,
//!                 the segment being appended to and its end, and the
//!                 live messages of each segment
//!   offset 16384  ScheduleEntry × capacity: a binary min-heap by due
//!                 time (`protocol/schedule.rs`)
//! <store dir>/schedule/<first id, 20 digits>.seg
//!   SegmentHeader (64 B), then records, 8-byte aligned: RecordHeader
//!   (seq = the schedule id, kind SCHEDULED or DONE), then due_ns, key
//!   hash, flags (bit 0: the body starts with an envelope), the body
//! ```
//!
//! The segments are the truth; the index is a cache of them that finds
//! the next due message in O(log n). Everything here is done under the
//! schedule lock (`open_queue/schedule.rs`). A holder sets `dirty` before
//! it changes the index and clears it after; a holder that finds `dirty`
//! set (its predecessor died mid-change) rebuilds the index from the
//! segments ([`ScheduleFiles::rebuild`]). A message moved into the ring
//! or cancelled is marked DONE in its segment (its kind, which the crc
//! does not cover, so the record still reads whole and a rebuild steps
//! over it), and a segment whose messages are all done is deleted.
//!
//! Nothing read is trusted: a record must lie inside its segment, pass
//! its crc and carry the id and offset the index says; a damaged one is
//! reported as corruption and dropped from the index, never followed.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::error::{Error, Result};
use crate::os;
use crate::protocol::schedule::{self as heap, SCHEDULE_ENTRY_SIZE, ScheduleEntry};
use crate::store::segment::{
    RECORD_HEADER_SIZE, RecordHeader, SEGMENT_HEADER_SIZE, check_header, new_header, record_size,
    segment_path,
};

/// "SHMQSIX1": the first 8 bytes of a schedule index.
const INDEX_MAGIC: u64 = u64::from_le_bytes(*b"SHMQSIX1");
const INDEX_VERSION: u32 = 1;
/// Bytes of [`IndexHeader`]; the heap starts here.
const INDEX_HEADER_SIZE: usize = 16384;
/// Segments the index counts live messages for: at most this many hold
/// scheduled messages at once.
pub(crate) const MAX_SCHEDULE_SEGMENTS: usize = 1016;
/// Heap entries a new index has room for (it doubles as needed).
const FIRST_CAPACITY: u64 = 1024;
/// Largest schedule segment (made whole, with `fallocate`, when the
/// first message goes in).
const MAX_SEGMENT: u64 = 8 << 20;

/// A scheduled message's record.
const KIND_SCHEDULED: u32 = 4;
/// A record whose message was moved into the ring or cancelled.
const KIND_DONE: u32 = 5;
/// Bytes between a record's header and its body: due_ns, key, flags.
const PREFIX: usize = 24;
/// Flag: the body starts with an envelope.
const ENVELOPED: u64 = 1;

/// One segment's count of live (scheduled, not done) messages.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default)]
struct SegLive {
    /// The segment's first id (its name); 0: the row is free.
    first: u64,
    live: u64,
}

#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
struct IndexHeader {
    magic: u64,
    version: u32,
    _pad: u32,
    creation_id: u64,
    /// Entries in the heap.
    len: u64,
    /// Entries the file has room for.
    capacity: u64,
    /// 1 while a holder changes the index.
    dirty: u64,
    /// The segment appended to (0: none yet) and where its next record
    /// goes.
    tail_seg: u64,
    tail_off: u64,
    _reserved: [u64; 8],
    segs: [SegLive; MAX_SCHEDULE_SEGMENTS],
}

const _: () = {
    assert!(std::mem::size_of::<IndexHeader>() == INDEX_HEADER_SIZE);
    assert!(std::mem::offset_of!(IndexHeader, segs) == 128);
};

/// A scheduled message read back from its segment.
#[derive(Debug)]
pub(crate) struct Stored {
    pub id: u64,
    pub due_ns: u64,
    pub key: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub type_id: u32,
    pub enveloped: bool,
    pub body: Vec<u8>,
}

/// What [`ScheduleFiles::read`] found where an entry points.
#[derive(Debug)]
pub(crate) enum Found {
    /// The message, whole.
    Whole(Stored),
    /// Its record says done: moved or cancelled, the index not told.
    Done,
    /// Missing, cut short or failing its checks: never delivered as read.
    Damaged(Error),
}

/// What a scheduled publish hands the schedule.
pub(crate) struct ToSchedule<'a> {
    pub id: u64,
    pub due_ns: u64,
    pub key: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub type_id: u32,
    pub enveloped: bool,
    pub body: &'a [u8],
}

/// What a rebuild found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rebuilt {
    pub messages: u64,
    pub segments: u64,
    /// Bytes stepped over as damaged.
    pub damaged: u64,
    /// The largest id found (0: none).
    pub last_id: u64,
}

/// This process's handle on a queue's schedule files. Used only under the
/// schedule lock.
pub(crate) struct ScheduleFiles {
    pub dir: PathBuf,
    creation_id: u64,
    seg_size: u64,
    max_body: u64,
    sync: bool,
    index_file: File,
    map: os::map::Mapping,
    segs: BTreeMap<u64, File>,
}

/// Bytes of a record with a body of `len` bytes.
fn stored_size(len: usize) -> u64 {
    record_size((PREFIX + len) as u64)
}

/// The crc of a schedule record: its header after the crc field, but for
/// the kind (marking a record done leaves it whole), and its bytes.
fn crc_of(hdr: &RecordHeader, rest: &[u8]) -> u32 {
    let c = crc32c::crc32c(&hdr.as_bytes()[4..36]);
    crc32c::crc32c_append(c, rest)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), e)
}

impl ScheduleFiles {
    /// Opens (or makes) the schedule in `dir` for the queue of
    /// `creation_id`, whose bodies are at most `max_body` bytes.
    /// Its segments are the queue's `spill_segment_size`, at most
    /// 8 MiB, and at least two of the largest messages.
    pub(crate) fn open(
        dir: &Path,
        creation_id: u64,
        max_body: u64,
        segment_size: u64,
        sync: bool,
    ) -> Result<Self> {
        let path = dir.join("index");
        let seg_size = segment_size
            .min(MAX_SEGMENT)
            .max(SEGMENT_HEADER_SIZE + 2 * stored_size(max_body as usize))
            .div_ceil(4096)
            * 4096;
        let (index_file, fresh) = match os::file::open(&path) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let size = INDEX_HEADER_SIZE as u64 + FIRST_CAPACITY * SCHEDULE_ENTRY_SIZE as u64;
                // A stale index of another queue was cleared with its
                // directory; a half-made one (killed here) is made again.
                let tmp = dir.join(format!(".index.{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                let f = os::file::create_segment(dir, &tmp, size)
                    .map_err(|e| io("creating", &tmp, e))?;
                f.set_len(size).map_err(|e| io("sizing", &tmp, e))?;
                let mut h = IndexHeader::new_zeroed();
                h.magic = INDEX_MAGIC;
                h.version = INDEX_VERSION;
                h.creation_id = creation_id;
                h.capacity = FIRST_CAPACITY;
                // Dirty until proven otherwise: segments may be there.
                h.dirty = 1;
                f.write_all_at(h.as_bytes(), 0)
                    .map_err(|e| io("writing", &tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| io("placing", &path, e))?;
                (f, true)
            }
            Err(e) => return Err(io("opening", &path, e)),
        };
        let len = index_file
            .metadata()
            .map_err(|e| io("reading", &path, e))?
            .len();
        let mut head = [0u8; 64];
        if len < INDEX_HEADER_SIZE as u64 {
            return Err(Error::corrupt(
                &path,
                format!("schedule index is {len} bytes, shorter than its header"),
            ));
        }
        index_file
            .read_exact_at(&mut head, 0)
            .map_err(|e| io("reading", &path, e))?;
        let magic = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let owner = u64::from_le_bytes(head[16..24].try_into().expect("8 bytes"));
        if magic != INDEX_MAGIC {
            return Err(Error::corrupt(
                &path,
                "not a shmq schedule index (bad magic)",
            ));
        }
        if version != INDEX_VERSION {
            return Err(Error::Incompatible {
                path,
                found: version,
                expected: INDEX_VERSION,
            });
        }
        if owner != creation_id {
            return Err(Error::corrupt(
                &path,
                "schedule index belongs to another queue (creation id differs)",
            ));
        }
        let map = os::map::Mapping::new(&index_file, len).map_err(|e| io("mapping", &path, e))?;
        let _ = fresh;
        Ok(ScheduleFiles {
            dir: dir.to_path_buf(),
            creation_id,
            seg_size,
            max_body,
            sync,
            index_file,
            map,
            segs: BTreeMap::new(),
        })
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index")
    }

    fn header(&self) -> &IndexHeader {
        // SAFETY: the mapping is at least INDEX_HEADER_SIZE bytes
        // (checked at open, and it only grows), page-aligned; the header
        // is plain integers (any bytes are valid); it is written only by
        // the schedule lock's holder, which we are (the lock's Acquire
        // orders the last holder's writes before this read).
        unsafe { &*(self.map.base() as *const IndexHeader) }
    }

    fn header_mut(&mut self) -> &mut IndexHeader {
        // SAFETY: as in `header`; `&mut self` and the schedule lock keep
        // every other view of these bytes away meanwhile.
        unsafe { &mut *(self.map.base() as *mut IndexHeader) }
    }

    /// The entries the mapping has room for.
    fn mapped_capacity(&self) -> usize {
        (self.map.len() - INDEX_HEADER_SIZE) / SCHEDULE_ENTRY_SIZE
    }

    /// The heap, `len` entries (checked against the mapping).
    fn heap_mut(&mut self) -> Result<&mut [ScheduleEntry]> {
        let len = self.header().len;
        if len > self.mapped_capacity() as u64 {
            return Err(Error::corrupt(
                &self.index_path(),
                format!(
                    "schedule index says {len} entries, its file holds {}",
                    self.mapped_capacity()
                ),
            ));
        }
        // SAFETY: `len` entries fit the mapping (checked); they start
        // 8-aligned after the header; entries are plain integers; ours
        // alone under the schedule lock and `&mut self`.
        Ok(unsafe {
            std::slice::from_raw_parts_mut(
                self.map.base().add(INDEX_HEADER_SIZE) as *mut ScheduleEntry,
                len as usize,
            )
        })
    }

    /// The heap's entries, in heap order.
    pub(crate) fn entries(&mut self) -> Result<&[ScheduleEntry]> {
        self.heap_mut().map(|h| &*h)
    }

    /// Maps the index again if another process made it larger; returns
    /// whether the index is dirty (a holder died changing it).
    pub(crate) fn catch_up(&mut self) -> Result<bool> {
        let len = self
            .index_file
            .metadata()
            .map_err(|e| io("reading", &self.index_path(), e))?
            .len();
        if len as usize != self.map.len() {
            if len < INDEX_HEADER_SIZE as u64 {
                return Err(Error::corrupt(&self.index_path(), "schedule index shrank"));
            }
            self.map = os::map::Mapping::new(&self.index_file, len)
                .map_err(|e| io("mapping", &self.index_path(), e))?;
        }
        // Segments another process deleted: their blocks are freed only
        // once no process holds them open.
        let rows: Vec<u64> = self.header().segs.iter().map(|r| r.first).collect();
        self.segs.retain(|first, _| rows.contains(first));
        Ok(self.header().dirty != 0)
    }

    /// The earliest entry, if any.
    pub(crate) fn first(&mut self) -> Result<Option<ScheduleEntry>> {
        Ok(self.entries()?.first().copied())
    }

    /// Entries in the heap.
    pub(crate) fn len(&self) -> u64 {
        self.header().len
    }

    fn set_dirty(&mut self, dirty: bool) {
        self.header_mut().dirty = dirty as u64;
    }

    fn live_row(&mut self, first: u64) -> Option<&mut SegLive> {
        self.header_mut()
            .segs
            .iter_mut()
            .find(|r| r.first == first && first != 0)
    }

    /// The open file of segment `first`, checked on first use.
    fn segment(&mut self, first: u64) -> Result<&File> {
        if !self.segs.contains_key(&first) {
            let path = segment_path(&self.dir, first);
            let f = os::file::open(&path).map_err(|e| io("opening", &path, e))?;
            let mut head = [0u8; SEGMENT_HEADER_SIZE as usize];
            f.read_exact_at(&mut head, 0)
                .map_err(|e| io("reading", &path, e))?;
            check_header(&head, &path, self.creation_id, first, self.seg_size)?;
            self.segs.insert(first, f);
        }
        Ok(&self.segs[&first])
    }

    /// Appends message `m` to the tail segment (a new one if it is full)
    /// and adds it to the index. The index is left dirty until the caller
    /// calls [`settle`](Self::settle).
    pub(crate) fn append(&mut self, m: &ToSchedule<'_>) -> Result<ScheduleEntry> {
        if m.body.len() as u64 > self.max_body {
            return Err(Error::InvalidOption(format!(
                "a scheduled body of {} bytes is larger than the queue takes ({})",
                m.body.len(),
                self.max_body
            )));
        }
        let size = stored_size(m.body.len());
        // Room in the index first: nothing is written for a message the
        // index cannot take.
        self.grow_for_one()?;
        let (mut seg, mut off) = (self.header().tail_seg, self.header().tail_off);
        if seg != 0 && (off < SEGMENT_HEADER_SIZE || off % 8 != 0 || off > self.seg_size) {
            return Err(Error::corrupt(
                &self.index_path(),
                format!("schedule index says the next record goes at offset {off} of its segment"),
            ));
        }
        // The tail segment gone (deleted by hand): start another.
        let gone =
            seg != 0 && !self.segs.contains_key(&seg) && !segment_path(&self.dir, seg).exists();
        if seg == 0 || gone || off + size > self.seg_size {
            if !self.header().segs.iter().any(|r| r.first == 0) {
                return Err(Error::Busy(format!(
                    "the schedule holds messages in {MAX_SCHEDULE_SEGMENTS} segments, its most; \
                     cancel some, or wait for some to come due"
                )));
            }
            self.new_segment(m.id)?;
            (seg, off) = (m.id, SEGMENT_HEADER_SIZE);
        }
        let mut buf = vec![0u8; size as usize];
        let rest_len = PREFIX + m.body.len();
        {
            let rest =
                &mut buf[RECORD_HEADER_SIZE as usize..RECORD_HEADER_SIZE as usize + rest_len];
            rest[0..8].copy_from_slice(&m.due_ns.to_le_bytes());
            rest[8..16].copy_from_slice(&m.key.to_le_bytes());
            rest[16..24].copy_from_slice(&(if m.enveloped { ENVELOPED } else { 0 }).to_le_bytes());
            rest[PREFIX..].copy_from_slice(m.body);
        }
        let mut hdr = RecordHeader {
            crc: 0,
            len: rest_len as u32,
            seq: m.id,
            timestamp_ns: m.timestamp_ns,
            correlation_id: m.correlation_id,
            type_id: m.type_id,
            kind: KIND_SCHEDULED,
        };
        hdr.crc = crc_of(
            &hdr,
            &buf[RECORD_HEADER_SIZE as usize..RECORD_HEADER_SIZE as usize + rest_len],
        );
        buf[..RECORD_HEADER_SIZE as usize].copy_from_slice(hdr.as_bytes());
        let sync = self.sync;
        let path = segment_path(&self.dir, seg);
        let f = self.segment(seg)?;
        f.write_all_at(&buf, off)
            .map_err(|e| io("writing", &path, e))?;
        if sync {
            f.sync_data().map_err(|e| io("syncing", &path, e))?;
        }
        let e = ScheduleEntry {
            due_ns: m.due_ns,
            id: m.id,
            seg,
            off,
            key: m.key,
        };
        self.set_dirty(true);
        self.header_mut().tail_off = off + size;
        if let Some(r) = self.live_row(seg) {
            r.live += 1;
        }
        let len = self.header().len as usize;
        // `grow_for_one` left room for one more entry.
        let heap = self.heap_with_room()?;
        heap::push(heap, len, e);
        self.header_mut().len += 1;
        Ok(e)
    }

    /// The heap with room for one more entry after its `len`.
    fn heap_with_room(&mut self) -> Result<&mut [ScheduleEntry]> {
        let len = self.header().len as usize;
        if len >= self.mapped_capacity() {
            return Err(Error::corrupt(
                &self.index_path(),
                "schedule index has no room",
            ));
        }
        // SAFETY: as in `heap_mut`, for `len + 1` entries (checked).
        Ok(unsafe {
            std::slice::from_raw_parts_mut(
                self.map.base().add(INDEX_HEADER_SIZE) as *mut ScheduleEntry,
                len + 1,
            )
        })
    }

    /// Makes the index file larger (double) if the heap is full.
    fn grow_for_one(&mut self) -> Result<()> {
        let (len, cap) = (self.header().len, self.header().capacity);
        if len < cap && (len as usize) < self.mapped_capacity() {
            return Ok(());
        }
        let cap = cap
            .max(len)
            .max(self.mapped_capacity() as u64)
            .saturating_mul(2)
            .max(FIRST_CAPACITY);
        let size = cap
            .checked_mul(SCHEDULE_ENTRY_SIZE as u64)
            .and_then(|b| b.checked_add(INDEX_HEADER_SIZE as u64))
            .filter(|&b| b <= 1 << 40)
            .ok_or_else(|| {
                Error::corrupt(&self.index_path(), "schedule index capacity out of range")
            })?;
        let path = self.index_path();
        os::file::preallocate(&self.index_file, 0, size).map_err(|e| io("growing", &path, e))?;
        self.index_file
            .set_len(size)
            .map_err(|e| io("growing", &path, e))?;
        self.map =
            os::map::Mapping::new(&self.index_file, size).map_err(|e| io("mapping", &path, e))?;
        self.header_mut().capacity = cap;
        Ok(())
    }

    fn new_segment(&mut self, first: u64) -> Result<()> {
        let path = segment_path(&self.dir, first);
        // Ids are never given twice (each is taken before anything is
        // written): a file of this name is not ours to replace.
        self.segs.remove(&first);
        let f = os::file::create_segment(&self.dir, &path, self.seg_size).map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                Error::SpillFull(format!(
                    "no room on disk for a schedule segment of {} bytes in {}",
                    self.seg_size,
                    self.dir.display()
                ))
            } else {
                io("creating", &path, e)
            }
        })?;
        let h = new_header(
            self.creation_id,
            first,
            self.seg_size,
            os::clock::realtime_ns(),
        );
        f.write_all_at(h.as_bytes(), 0)
            .map_err(|e| io("writing", &path, e))?;
        self.segs.insert(first, f);
        self.set_dirty(true);
        // The old tail, if its messages are all done, goes now: no later
        // `finish` would look at it again.
        let old = self.header().tail_seg;
        if let Some(r) = self.live_row(old).filter(|r| r.live == 0) {
            *r = SegLive::default();
            self.drop_segment(old)?;
        }
        let hdr = self.header_mut();
        hdr.tail_seg = first;
        hdr.tail_off = SEGMENT_HEADER_SIZE;
        let row = hdr
            .segs
            .iter_mut()
            .find(|r| r.first == 0)
            .expect("a free row (checked by the caller)");
        *row = SegLive { first, live: 0 };
        Ok(())
    }

    /// The index is consistent again.
    pub(crate) fn settle(&mut self) -> Result<()> {
        if self.sync {
            self.map
                .flush()
                .map_err(|e| io("syncing", &self.index_path(), e))?;
        }
        self.set_dirty(false);
        Ok(())
    }

    /// Reads entry `e`'s message back from its segment, checking all of
    /// it: whole, already done (a move or cancel whose index change did
    /// not land), or damaged (a missing or short segment, a record that
    /// fails its checks, an entry pointing nowhere). Only an I/O error
    /// that says nothing about the data is an `Err`.
    pub(crate) fn read(&mut self, e: &ScheduleEntry) -> Result<Found> {
        let path = segment_path(&self.dir, e.seg);
        let seg_size = self.seg_size;
        let max = stored_size(self.max_body as usize);
        let damaged = |why: String| Ok(Found::Damaged(Error::corrupt(&path, why)));
        let in_segment =
            |off: u64, len: u64| off.checked_add(len).is_some_and(|end| end <= seg_size);
        if e.off < SEGMENT_HEADER_SIZE || e.off % 8 != 0 || !in_segment(e.off, RECORD_HEADER_SIZE) {
            return damaged(format!(
                "schedule entry {} points at offset {}",
                e.id, e.off
            ));
        }
        let short = |err: &std::io::Error| {
            matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
            )
        };
        let f = match self.segment(e.seg) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if short(&source) => {
                return damaged(format!("the segment of scheduled message {} is gone", e.id));
            }
            Err(err @ Error::Incompatible { .. }) => return Err(err),
            Err(err) => return Ok(Found::Damaged(err)),
        };
        let mut head = [0u8; RECORD_HEADER_SIZE as usize];
        match f.read_exact_at(&mut head, e.off) {
            Ok(()) => {}
            Err(err) if short(&err) => {
                return damaged(format!(
                    "the segment of scheduled message {} is cut short",
                    e.id
                ));
            }
            Err(err) => return Err(io("reading", &path, err)),
        }
        let hdr = RecordHeader::read_from_bytes(&head).expect("40 bytes");
        let rest_len = hdr.len as u64;
        if rest_len < PREFIX as u64
            || record_size(rest_len) > max
            || !in_segment(e.off, record_size(rest_len))
        {
            return damaged(format!(
                "scheduled message {} has a length of {rest_len} bytes",
                e.id
            ));
        }
        let mut rest = vec![0u8; rest_len as usize];
        match f.read_exact_at(&mut rest, e.off + RECORD_HEADER_SIZE) {
            Ok(()) => {}
            Err(err) if short(&err) => {
                return damaged(format!(
                    "the segment of scheduled message {} is cut short",
                    e.id
                ));
            }
            Err(err) => return Err(io("reading", &path, err)),
        }
        if crc_of(&hdr, &rest) != hdr.crc || hdr.seq != e.id {
            return damaged(format!(
                "scheduled message {} is damaged (its record fails its checks)",
                e.id
            ));
        }
        match hdr.kind {
            KIND_SCHEDULED => {}
            KIND_DONE => return Ok(Found::Done),
            _ => return damaged(format!("scheduled message {} is damaged (its kind)", e.id)),
        }
        let word = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().expect("8 bytes"));
        let (due_ns, key, flags) = (word(0), word(8), word(16));
        rest.drain(..PREFIX);
        Ok(Found::Whole(Stored {
            id: e.id,
            due_ns,
            key,
            timestamp_ns: hdr.timestamp_ns,
            correlation_id: hdr.correlation_id,
            type_id: hdr.type_id,
            enveloped: flags & ENVELOPED != 0,
            body: rest,
        }))
    }

    /// Takes entry `i` out of the index without touching its record (one
    /// [`read`](Self::read) found done or damaged). Leaves the index
    /// dirty until [`settle`](Self::settle).
    pub(crate) fn forget(&mut self, i: usize) -> Result<()> {
        let path = self.index_path();
        if i >= self.entries()?.len() {
            return Err(Error::corrupt(&path, "schedule entry out of range"));
        }
        self.set_dirty(true);
        let heap = self.heap_mut()?;
        heap::remove_at(heap, i);
        self.header_mut().len -= 1;
        Ok(())
    }

    /// Takes entry `i` out of the index and marks its record done (moved
    /// or cancelled); deletes its segment if that was its last live
    /// message and it is not the one appended to. The entry's record was
    /// found whole by [`read`](Self::read) under this hold of the lock.
    /// Leaves the index dirty until [`settle`](Self::settle).
    pub(crate) fn finish(&mut self, i: usize) -> Result<ScheduleEntry> {
        let path = self.index_path();
        let e = *self
            .entries()?
            .get(i)
            .ok_or_else(|| Error::corrupt(&path, "schedule entry out of range"))?;
        // Dirty, then done on disk: a holder killed anywhere below leaves
        // the next one to rebuild, which does not bring it back.
        self.set_dirty(true);
        self.mark_done(&e)?;
        let heap = self.heap_mut()?;
        heap::remove_at(heap, i);
        self.header_mut().len -= 1;
        let tail = self.header().tail_seg;
        let mut drop_it = false;
        if let Some(r) = self.live_row(e.seg) {
            r.live = r.live.saturating_sub(1);
            if r.live == 0 && e.seg != tail {
                *r = SegLive::default();
                drop_it = true;
            }
        }
        if drop_it {
            self.drop_segment(e.seg)?;
        }
        Ok(e)
    }

    /// Deletes segment `first` (its messages are all done).
    fn drop_segment(&mut self, first: u64) -> Result<()> {
        self.segs.remove(&first);
        let path = segment_path(&self.dir, first);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(io("deleting", &path, err))
            }
            _ => Ok(()),
        }
    }

    /// Marks `e`'s record done: its kind only, 4 bytes, which its crc does
    /// not cover.
    fn mark_done(&mut self, e: &ScheduleEntry) -> Result<()> {
        let path = segment_path(&self.dir, e.seg);
        let sync = self.sync;
        let f = match self.segment(e.seg) {
            Ok(f) => f,
            // Its segment is gone: nothing to mark.
            Err(Error::Io { .. }) if !path.exists() => return Ok(()),
            Err(err) => return Err(err),
        };
        f.write_all_at(&KIND_DONE.to_le_bytes(), e.off.saturating_add(36))
            .map_err(|err| io("writing", &path, err))?;
        if sync {
            f.sync_data().map_err(|err| io("syncing", &path, err))?;
        }
        Ok(())
    }

    /// Where entry `id` is in the heap.
    pub(crate) fn find(&mut self, id: u64) -> Result<Option<usize>> {
        Ok(self.entries()?.iter().position(|e| e.id == id))
    }

    /// Where the first-due entry of idempotency key hash `key` is.
    pub(crate) fn find_key(&mut self, key: u64) -> Result<Option<usize>> {
        let entries = self.entries()?;
        Ok(entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.key == key)
            .min_by_key(|(_, e)| (e.due_ns, e.id))
            .map(|(i, _)| i))
    }
}

mod rebuild;
#[cfg(test)]
mod tests;
