//! Segment files: how the spill lays messages out on disk.
//!
//! ```text
//! <spill_dir>/<first seq, 20 digits>.seg     (preallocated, `segment_size` bytes)
//! offset 0    SegmentHeader (64 B): magic, version, the queue's creation id,
//!             first seq, size, creation time, crc32c of the above
//! offset 64   records, each 8-byte aligned:
//!             RecordHeader (40 B): crc32c, len, seq, timestamp, correlation
//!             id, type id, kind (message | end) — then `len` payload bytes
//!             ...
//!             an END record (seq = the next segment's first seq) once rolled
//!             zeros (no record yet)
//! ```
//!
//! A record's crc covers its header after the crc field and its payload, so
//! a torn write (a process killed mid-append, a machine that lost power
//! with the record half on disk) fails the check and is cut off. Nothing
//! read from a segment is trusted: every length and offset is checked
//! against the segment's size and the queue's `slot_size` before it is
//! used, and a reader that meets damage looks for the next intact record
//! (records are aligned, checksummed and seq-stamped) instead of giving up
//! on the rest of the file. [`scan`] is that reader; the fuzz target and
//! the proptests drive it with random damage.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{Error, Result};
use crate::layout::SpillControl;
use crate::options::SyncMode;
use crate::os;
use crate::protocol::spill::{Log, Read};
use crate::sync::Ordering;

/// "SHMQSEG1" in little-endian: the first 8 bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: u64 = u64::from_le_bytes(*b"SHMQSEG1");
/// Segment format version written by this build.
pub(crate) const SEGMENT_VERSION: u32 = 1;
/// Bytes of [`SegmentHeader`].
pub(crate) const SEGMENT_HEADER_SIZE: u64 = 64;
/// Bytes of [`RecordHeader`].
pub(crate) const RECORD_HEADER_SIZE: u64 = 40;
/// Smallest segment size accepted.
pub(crate) const MIN_SEGMENT_SIZE: u64 = 64 << 10;
/// Largest segment size accepted.
pub(crate) const MAX_SEGMENT_SIZE: u64 = 1 << 32;

const KIND_MESSAGE: u32 = 1;
const KIND_END: u32 = 2;
/// A message whose body starts with an envelope (`envelope.rs`).
const KIND_ENVELOPED: u32 = 3;

/// The first 64 bytes of a segment file.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
pub(crate) struct SegmentHeader {
    pub magic: u64,
    pub version: u32,
    pub _pad: u32,
    /// `Config::creation_id` of the queue the segment belongs to.
    pub creation_id: u64,
    /// Seq of the segment's first record (also its file name).
    pub first_seq: u64,
    /// The file's size in bytes.
    pub size: u64,
    /// CLOCK_REALTIME at creation.
    pub created_ns: u64,
    pub _reserved: [u8; 12],
    /// crc32c of the 60 bytes before it.
    pub crc: u32,
}

/// What precedes every record's payload.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default)]
pub(crate) struct RecordHeader {
    /// crc32c of the 36 header bytes after it and the payload.
    pub crc: u32,
    pub len: u32,
    /// The message's seq; for an END record, the next segment's first seq.
    pub seq: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub type_id: u32,
    pub kind: u32,
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<SegmentHeader>() as u64 == SEGMENT_HEADER_SIZE);
    assert!(offset_of!(SegmentHeader, crc) == 60);
    assert!(size_of::<RecordHeader>() as u64 == RECORD_HEADER_SIZE);
    assert!(offset_of!(RecordHeader, seq) == 8);
    assert!(offset_of!(RecordHeader, kind) == 36);
};

pub(crate) use crate::protocol::spill::Record;

/// Bytes a record of `len` payload bytes takes, header and alignment
/// included.
pub(crate) fn record_size(len: u64) -> u64 {
    (RECORD_HEADER_SIZE + len).div_ceil(8) * 8
}

fn record_crc(hdr: &RecordHeader, payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&hdr.as_bytes()[4..]);
    crc32c::crc32c_append(c, payload)
}

/// The header of a new segment.
pub(crate) fn new_header(creation_id: u64, first_seq: u64, size: u64, now: u64) -> SegmentHeader {
    let mut h = SegmentHeader {
        magic: SEGMENT_MAGIC,
        version: SEGMENT_VERSION,
        _pad: 0,
        creation_id,
        first_seq,
        size,
        created_ns: now,
        _reserved: [0; 12],
        crc: 0,
    };
    h.crc = crc32c::crc32c(&h.as_bytes()[..60]);
    h
}

/// Checks a segment's first bytes: a segment file of this format, of this
/// queue, starting at `first_seq`, of `size` bytes.
pub(crate) fn check_header(
    bytes: &[u8],
    path: &Path,
    creation_id: u64,
    first_seq: u64,
    size: u64,
) -> Result<()> {
    let bad = |why: String| Err(Error::corrupt(path, why));
    let Ok((h, _)) = SegmentHeader::read_from_prefix(bytes) else {
        return bad(format!(
            "segment file is {} bytes, shorter than a segment header",
            bytes.len()
        ));
    };
    if h.magic != SEGMENT_MAGIC {
        return bad("not a shmq segment file (bad magic)".into());
    }
    if h.version != SEGMENT_VERSION {
        return Err(Error::Incompatible {
            path: path.to_path_buf(),
            found: h.version,
            expected: SEGMENT_VERSION,
        });
    }
    if crc32c::crc32c(&h.as_bytes()[..60]) != h.crc {
        return bad("segment header checksum mismatch (garbled file)".into());
    }
    if h.creation_id != creation_id {
        return bad("segment belongs to another queue (creation id differs)".into());
    }
    if h.first_seq != first_seq {
        return bad(format!(
            "segment header says first seq {}, its name says {first_seq}",
            h.first_seq
        ));
    }
    if h.size != size {
        return bad(format!(
            "segment header says {} bytes, the queue's segments are {size}",
            h.size
        ));
    }
    Ok(())
}

/// What [`parse_at`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found<'a> {
    /// An intact message; the next record starts at the offset given.
    Message(Record<'a>, u64),
    /// An intact END record: the log goes on in the segment starting at
    /// this seq.
    End(u64),
    /// Zeros: nothing written here (yet).
    Empty,
    /// Damage: a torn or garbled record, or a length out of bounds.
    Bad,
}

/// Parses the record at `off`, trusting nothing: the header must lie
/// inside `bytes`, the length must be at most `max_len` and inside
/// `bytes`, and the crc must match.
pub(crate) fn parse_at(bytes: &[u8], off: u64, max_len: u64) -> Found<'_> {
    let Some(start) = usize::try_from(off).ok().filter(|&s| s % 8 == 0) else {
        return Found::Bad;
    };
    let Some(head) = bytes
        .get(start..)
        .and_then(|b| b.get(..RECORD_HEADER_SIZE as usize))
    else {
        return Found::Bad;
    };
    let Ok(hdr) = RecordHeader::read_from_bytes(head) else {
        return Found::Bad;
    };
    if head.iter().all(|&b| b == 0) {
        return Found::Empty;
    }
    match hdr.kind {
        KIND_END if hdr.len == 0 => {
            if record_crc(&hdr, &[]) == hdr.crc {
                Found::End(hdr.seq)
            } else {
                Found::Bad
            }
        }
        KIND_MESSAGE | KIND_ENVELOPED if (hdr.len as u64) <= max_len => {
            let from = start + RECORD_HEADER_SIZE as usize;
            let Some(payload) = bytes.get(from..from + hdr.len as usize) else {
                return Found::Bad;
            };
            if record_crc(&hdr, payload) != hdr.crc {
                return Found::Bad;
            }
            Found::Message(
                Record {
                    seq: hdr.seq,
                    timestamp_ns: hdr.timestamp_ns,
                    correlation_id: hdr.correlation_id,
                    type_id: hdr.type_id,
                    enveloped: hdr.kind == KIND_ENVELOPED,
                    payload,
                },
                off + record_size(hdr.len as u64),
            )
        }
        _ => Found::Bad,
    }
}

/// Writes a message record at `off` of `buf` (which must have room:
/// `off + record_size(len) <= buf.len()`). The crc is written last, so a
/// record cut short anywhere fails its check.
pub(crate) fn write_record(buf: &mut [u8], off: usize, rec: &Record<'_>) {
    let hdr = RecordHeader {
        crc: 0,
        len: rec.payload.len() as u32,
        seq: rec.seq,
        timestamp_ns: rec.timestamp_ns,
        correlation_id: rec.correlation_id,
        type_id: rec.type_id,
        kind: if rec.enveloped {
            KIND_ENVELOPED
        } else {
            KIND_MESSAGE
        },
    };
    let crc = record_crc(&hdr, rec.payload);
    let h = RECORD_HEADER_SIZE as usize;
    buf[off + h..off + h + rec.payload.len()].copy_from_slice(rec.payload);
    buf[off + 4..off + h].copy_from_slice(&hdr.as_bytes()[4..]);
    buf[off..off + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Writes an END record at `off`: the log continues in segment `next`.
pub(crate) fn write_end(buf: &mut [u8], off: usize, next: u64) {
    let hdr = RecordHeader {
        seq: next,
        kind: KIND_END,
        ..RecordHeader::default()
    };
    let crc = record_crc(&hdr, &[]);
    let h = RECORD_HEADER_SIZE as usize;
    buf[off + 4..off + h].copy_from_slice(&hdr.as_bytes()[4..]);
    buf[off..off + 4].copy_from_slice(&crc.to_le_bytes());
}

/// What [`scan`] found in a segment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Every intact message, in file order: (seq, offset).
    pub messages: Vec<(u64, u64)>,
    /// The END record's next seq, if the segment was rolled.
    pub end: Option<u64>,
    /// Offset just past the last intact record: where an append goes.
    pub tail: u64,
    /// Bytes skipped over as damaged.
    pub damaged: u64,
}

/// Reads every intact record from `off` on. Damage is stepped over 8
/// bytes at a time until the next intact record; an all-zero header ends
/// the scan only if nothing intact follows it (a torn record may have
/// left zeros in the middle of its payload).
pub(crate) fn scan(bytes: &[u8], mut off: u64, max_len: u64) -> Scan {
    let mut s = Scan {
        tail: off,
        ..Scan::default()
    };
    let mut skipping_since: Option<u64> = None;
    while off + RECORD_HEADER_SIZE <= bytes.len() as u64 {
        match parse_at(bytes, off, max_len) {
            Found::Message(rec, next) => {
                if let Some(from) = skipping_since.take() {
                    s.damaged += off - from;
                }
                s.messages.push((rec.seq, off));
                s.tail = next;
                off = next;
            }
            Found::End(next) => {
                if let Some(from) = skipping_since.take() {
                    s.damaged += off - from;
                }
                s.end = Some(next);
                s.tail = off;
                return s;
            }
            Found::Empty | Found::Bad => {
                skipping_since.get_or_insert(off);
                off += 8;
            }
        }
    }
    if let Some(from) = skipping_since {
        // Damage (or a torn tail) before the zeros at the end: count only
        // what was not zero.
        let end = (bytes.len() as u64).min(off);
        let nonzero = bytes[from as usize..end as usize]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1);
        s.damaged += nonzero.div_ceil(8) * 8;
    }
    s
}

/// A segment file, mapped.
pub(crate) struct Segment {
    pub path: PathBuf,
    map: os::map::Mapping,
    _file: File,
}

impl Segment {
    /// The whole file.
    ///
    /// Only the admin lock's holder writes segments. Spill and DLQ
    /// segments are also read only under the lock, so nothing changes them
    /// meanwhile. Journal segments are read without it by replaying
    /// consumers (`mapped/journal.rs`): they interpret only records below the
    /// journal's `end_seq` (loaded with Acquire), which are complete and
    /// never written again; the bytes past the last such record may be
    /// being appended by another process, and a reader that looks at them
    /// (to find where the records end) trusts nothing there that did not
    /// pass a record's length and crc checks.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `map.len()` bytes at `base`, alive as long
        // as `self`. The bytes are plain `u8`s (any value is valid); the
        // admin lock's Acquire/Release, or the journal's `end_seq`
        // Release/Acquire, orders every write a reader relies on before its
        // read (see above), and no `&mut` to them exists in this process
        // while the slice lives (`bytes_mut` takes `&mut self`).
        unsafe { std::slice::from_raw_parts(self.map.base(), self.map.len()) }
    }

    /// The bytes `off .. off + len`, for writing a record.
    fn bytes_mut(&mut self, off: u64, len: u64) -> &mut [u8] {
        assert!(
            off + len <= self.map.len() as u64,
            "record inside the segment"
        );
        // SAFETY: in bounds (asserted); written only by the admin lock's
        // holder (see `bytes`), and `&mut self` keeps this process's other
        // views of the segment from being used meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.map.base().add(off as usize), len as usize) }
    }

    fn flush(&self, off: u64, len: u64) -> Result<()> {
        self.map
            .flush_range(off as usize, len as usize)
            .map_err(|e| Error::io(format!("flushing {}", self.path.display()), e))
    }
}

/// Path of the segment whose first seq is `first`.
pub(crate) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// The first seq a segment file's name says, if it is one.
pub(crate) fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// This process's handles on one queue's segment files.
pub(crate) struct Segments {
    pub dir: PathBuf,
    pub creation_id: u64,
    pub segment_size: u64,
    /// Largest payload (the queue's `slot_size`).
    pub max_len: u64,
    /// Most bytes of segment files on disk.
    pub max_bytes: u64,
    pub sync: SyncMode,
    open: BTreeMap<u64, Segment>,
    /// The offset after the record `write_record` wrote last, until
    /// `record_written` makes it the write position.
    written: Option<u64>,
}

/// Whether the segment file at `path` has an all-zero header: made, and
/// never written (its maker was killed before the header).
fn never_written(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; SEGMENT_HEADER_SIZE as usize];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head.iter().all(|&b| b == 0))
}

impl Segments {
    pub(crate) fn new(
        dir: PathBuf,
        creation_id: u64,
        segment_size: u64,
        max_len: u64,
        max_bytes: u64,
        sync: SyncMode,
    ) -> Segments {
        Segments {
            dir,
            creation_id,
            segment_size,
            max_len,
            max_bytes,
            sync,
            open: BTreeMap::new(),
            written: None,
        }
    }

    /// Creates segment `first` if the budget allows another one.
    fn roll_to(&mut self, ctl: &SpillControl, first: u64) -> Result<()> {
        let on_disk = ctl.bytes_on_disk.load(Ordering::Relaxed);
        if on_disk + self.segment_size > self.max_bytes {
            return Err(Error::SpillFull(format!(
                "spill_max_bytes of {} reached ({} bytes in {} segments under {})",
                self.max_bytes,
                on_disk,
                ctl.segments.load(Ordering::Relaxed),
                self.dir.display()
            )));
        }
        self.create(first)?;
        ctl.segments.fetch_add(1, Ordering::Relaxed);
        ctl.bytes_on_disk
            .fetch_add(self.segment_size, Ordering::Relaxed);
        Ok(())
    }

    /// Finds where to go on from damage at `off` of segment `seg`: the
    /// next intact record of that segment (message or END), else the next
    /// segment file on disk. None if nothing intact is left anywhere.
    fn resync(&mut self, seg: u64, off: u64) -> Result<Option<(u64, u64)>> {
        let max_len = self.max_len;
        let found = {
            let bytes = self.get(seg)?.bytes();
            let s = scan(bytes, off + 8, max_len);
            match (s.messages.first(), s.end) {
                (Some(&(_, at)), _) => Some(at),
                (None, Some(_)) => Some(s.tail),
                (None, None) => None,
            }
        };
        if let Some(at) = found {
            return Ok(Some((seg, at)));
        }
        Ok(self
            .list()?
            .into_iter()
            .find(|&id| id > seg)
            .map(|id| (id, SEGMENT_HEADER_SIZE)))
    }

    /// Creates segment `first` (preallocated, so a full disk shows here
    /// as [`Error::SpillFull`] rather than later as a fault). An existing
    /// file of that name left by a process that died while rolling is
    /// checked and reused.
    pub(crate) fn create(&mut self, first: u64) -> Result<&mut Segment> {
        let path = segment_path(&self.dir, first);
        os::fault::point("segment.creating");
        match os::file::create_segment(&self.dir, &path, self.segment_size) {
            Ok(file) => {
                let map = os::map::Mapping::new(&file, self.segment_size)
                    .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
                let mut seg = Segment {
                    path,
                    map,
                    _file: file,
                };
                let h = new_header(
                    self.creation_id,
                    first,
                    self.segment_size,
                    os::clock::realtime_ns(),
                );
                os::fault::point("segment.created");
                seg.bytes_mut(0, SEGMENT_HEADER_SIZE)
                    .copy_from_slice(h.as_bytes());
                self.open.insert(first, seg);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.open.remove(&first);
                if let Err(err) = self.get(first) {
                    // A roller killed after it made the file and before it
                    // wrote the header leaves one that is all zeros there:
                    // nothing was ever written to it, so it is made again.
                    // (Before, every later roll failed on it: "bad magic".)
                    if !never_written(&path) {
                        return Err(err);
                    }
                    os::fault::point("segment.remade");
                    std::fs::remove_file(&path)
                        .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                    return self.create(first);
                }
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) => {
                return Err(Error::SpillFull(format!(
                    "no space left on the disk of {} for a {} byte segment",
                    self.dir.display(),
                    self.segment_size
                )));
            }
            Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
        }
        Ok(self.open.get_mut(&first).expect("just inserted"))
    }

    /// Segment `first`, opened and checked on first use. A file shorter
    /// than the queue's segment size (truncated) is extended with zeros,
    /// so what it still holds can be read and the rest counts as lost.
    pub(crate) fn get(&mut self, first: u64) -> Result<&mut Segment> {
        if !self.open.contains_key(&first) {
            let path = segment_path(&self.dir, first);
            let file = os::file::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::corrupt(
                    &path,
                    "spill segment is missing (deleted by hand?); the messages in it are lost",
                ),
                _ => Error::io(format!("opening {}", path.display()), e),
            })?;
            let len = file
                .metadata()
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
                .len();
            if len < SEGMENT_HEADER_SIZE {
                return Err(Error::corrupt(
                    &path,
                    format!("segment file is {len} bytes, shorter than a segment header"),
                ));
            }
            if len != self.segment_size {
                if len > self.segment_size {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "segment file is {len} bytes, longer than the queue's {} byte segments",
                            self.segment_size
                        ),
                    ));
                }
                file.set_len(self.segment_size)
                    .map_err(|e| Error::io(format!("extending {}", path.display()), e))?;
            }
            let map = os::map::Mapping::new(&file, self.segment_size)
                .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
            let seg = Segment {
                path,
                map,
                _file: file,
            };
            check_header(
                seg.bytes(),
                &seg.path,
                self.creation_id,
                first,
                self.segment_size,
            )?;
            self.open.insert(first, seg);
        }
        Ok(self.open.get_mut(&first).expect("just inserted"))
    }

    /// Writes a message record at `off` of segment `seg`.
    pub(crate) fn write(&mut self, seg: u64, off: u64, rec: &Record<'_>) -> Result<()> {
        let size = record_size(rec.payload.len() as u64);
        let s = self.get(seg)?;
        write_record(s.bytes_mut(off, size), 0, rec);
        Ok(())
    }

    /// Writes an END record at `off` of segment `seg`.
    pub(crate) fn write_end(&mut self, seg: u64, off: u64, next: u64) -> Result<()> {
        let s = self.get(seg)?;
        write_end(s.bytes_mut(off, RECORD_HEADER_SIZE), 0, next);
        Ok(())
    }

    /// Zeros `off .. off + len` of segment `seg` (cuts a torn tail off).
    pub(crate) fn zero(&mut self, seg: u64, off: u64, len: u64) -> Result<()> {
        let s = self.get(seg)?;
        let len = len.min((s.map.len() as u64).saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        s.bytes_mut(off, len).fill(0);
        Ok(())
    }

    /// Flushes `off .. off + len` of segment `seg` to disk.
    pub(crate) fn flush(&mut self, seg: u64, off: u64, len: u64) -> Result<()> {
        self.get(seg)?.flush(off, len)
    }

    /// Deletes segment `first`'s file (a missing file is fine: a process
    /// that died after deleting it had not yet recorded that).
    pub(crate) fn delete(&mut self, first: u64) -> Result<()> {
        self.open.remove(&first);
        let path = segment_path(&self.dir, first);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("deleting {}", path.display()), e)),
        }
    }

    /// Deletes segment `first` and takes it off `ctl`'s accounting (which
    /// `roll_to` put it on).
    pub(crate) fn retire(&mut self, ctl: &SpillControl, first: u64) -> Result<()> {
        self.delete(first)?;
        let less = |by: u64| move |v: u64| Some(v.saturating_sub(by));
        // Saturating: the counts come from shared memory.
        let _ = ctl
            .segments
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, less(1));
        let _ = ctl.bytes_on_disk.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            less(self.segment_size),
        );
        Ok(())
    }

    /// Forgets this process's handles on segments before `first` (another
    /// process deleted them).
    pub(crate) fn forget_before(&mut self, first: u64) {
        self.open = self.open.split_off(&first);
    }

    /// The first seqs of every segment file in the directory, sorted.
    pub(crate) fn list(&self) -> Result<Vec<u64>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("listing {}", self.dir.display()), e)),
        };
        let mut ids: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(segment_id))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

impl Segments {
    /// Appends `rec` at the write position and moves the write position
    /// past it (the journal's and the dead-letter overflow's appends).
    pub(crate) fn append(&mut self, ctl: &SpillControl, rec: &Record<'_>) -> Result<()> {
        let end = self.write_unrecorded(ctl, rec)?;
        ctl.write_off.store(end, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `rec` at the write position (rolling to a new segment when
    /// needed) and returns the offset after it, without moving the write
    /// position: the caller records it when the record counts.
    fn write_unrecorded(&mut self, ctl: &SpillControl, rec: &Record<'_>) -> Result<u64> {
        let need = record_size(rec.payload.len() as u64);
        if ctl.segments.load(Ordering::Relaxed) == 0 {
            self.roll_to(ctl, rec.seq)?;
            for (seg, off) in [
                (&ctl.write_seg, &ctl.write_off),
                (&ctl.read_seg, &ctl.read_off),
            ] {
                seg.store(rec.seq, Ordering::Relaxed);
                off.store(SEGMENT_HEADER_SIZE, Ordering::Relaxed);
            }
        }
        let mut seg = ctl.write_seg.load(Ordering::Relaxed);
        let mut off = ctl.write_off.load(Ordering::Relaxed);
        if off + need + RECORD_HEADER_SIZE > self.segment_size {
            // Roll: the new segment first, then the END record that points
            // to it, then the write position. A holder killed in between
            // leaves a file that the next roll checks and reuses.
            self.roll_to(ctl, rec.seq)?;
            self.write_end(seg, off, rec.seq)?;
            if self.sync != SyncMode::Never {
                self.flush(seg, 0, self.segment_size)?;
            }
            seg = rec.seq;
            off = SEGMENT_HEADER_SIZE;
            ctl.write_seg.store(seg, Ordering::Relaxed);
            ctl.write_off.store(off, Ordering::Relaxed);
        }
        self.write(seg, off, rec)?;
        os::fault::point("spill.record_written");
        match self.sync {
            SyncMode::Never => {}
            SyncMode::Always => self.flush(seg, off, need)?,
            SyncMode::EveryN(n) => {
                if ctl.unsynced.fetch_add(1, Ordering::Relaxed) + 1 >= n as u64 {
                    self.flush(seg, 0, off + need)?;
                    ctl.unsynced.store(0, Ordering::Relaxed);
                }
            }
        }
        Ok(off + need)
    }

    /// Repairs a write position left behind by a holder killed after it
    /// recorded `end_seq` and before it moved the write position: the
    /// record of seq `end_seq - 1` lies whole at the write position, and
    /// the next append would write over it.
    fn repair_write_position(&mut self, ctl: &SpillControl) -> Result<()> {
        let end = ctl.end_seq.load(Ordering::Relaxed);
        if end == 0
            || ctl.segments.load(Ordering::Relaxed) == 0
            || ctl.read_seq.load(Ordering::Relaxed) >= end
        {
            // Nothing counted is left to read (the segments may be gone
            // already: a clear cut short, which the refill finishes).
            return Ok(());
        }
        let seg = ctl.write_seg.load(Ordering::Relaxed);
        let off = ctl.write_off.load(Ordering::Relaxed);
        let max_len = self.max_len;
        if let Found::Message(rec, next) = parse_at(self.get(seg)?.bytes(), off, max_len)
            && rec.seq == end - 1
        {
            ctl.write_off.store(next, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Log for Segments {
    fn write_record(&mut self, ctl: &SpillControl, rec: &Record<'_>) -> Result<()> {
        let end = self.write_unrecorded(ctl, rec)?;
        self.written = Some(end);
        Ok(())
    }

    fn record_written(&mut self, ctl: &SpillControl) {
        os::fault::point("spill.counted");
        if let Some(end) = self.written.take() {
            ctl.write_off.store(end, Ordering::Relaxed);
        }
    }

    fn repair(&mut self, ctl: &SpillControl) -> Result<()> {
        self.written = None;
        self.repair_write_position(ctl)
    }

    fn read(&mut self, ctl: &SpillControl, f: &mut dyn FnMut(&Record<'_>)) -> Result<Read> {
        let want = ctl.read_seq.load(Ordering::Relaxed);
        let max_len = self.max_len;
        loop {
            let seg = ctl.read_seg.load(Ordering::Relaxed);
            let off = ctl.read_off.load(Ordering::Relaxed);
            let at_write = (seg, off)
                == (
                    ctl.write_seg.load(Ordering::Relaxed),
                    ctl.write_off.load(Ordering::Relaxed),
                );
            if at_write {
                // Everything up to the write position was read, yet the
                // record wanted is not there: it was lost.
                return Ok(Read::Lost);
            }
            let next = match self.get(seg) {
                Ok(s) => match parse_at(s.bytes(), off, max_len) {
                    Found::Message(rec, next) if rec.seq == want => {
                        f(&rec);
                        return Ok(Read::Done { seg, off: next });
                    }
                    // Records lost before this one: it is read later.
                    Found::Message(rec, _) if rec.seq > want => return Ok(Read::Lost),
                    // An older record (a batch undone and written over
                    // only in part): step over it.
                    Found::Message(_, next) => Some((seg, next)),
                    Found::End(next_seg) => {
                        ctl.read_seg.store(next_seg, Ordering::Relaxed);
                        ctl.read_off.store(SEGMENT_HEADER_SIZE, Ordering::Relaxed);
                        self.retire(ctl, seg)?;
                        continue;
                    }
                    Found::Empty | Found::Bad => self.resync(seg, off)?,
                },
                // A missing or unusable segment: go on with the next one.
                Err(Error::Corrupt { .. }) | Err(Error::Incompatible { .. }) => self
                    .list()?
                    .into_iter()
                    .find(|&id| id > seg)
                    .map(|id| (id, SEGMENT_HEADER_SIZE)),
                Err(e) => return Err(e),
            };
            match next {
                Some((s, o)) => {
                    if s != seg {
                        self.retire(ctl, seg)?;
                    }
                    ctl.read_seg.store(s, Ordering::Relaxed);
                    ctl.read_off.store(o, Ordering::Relaxed);
                }
                None => {
                    // Nothing intact is left: go to the write position.
                    ctl.read_seg
                        .store(ctl.write_seg.load(Ordering::Relaxed), Ordering::Relaxed);
                    ctl.read_off
                        .store(ctl.write_off.load(Ordering::Relaxed), Ordering::Relaxed);
                    return Ok(Read::Lost);
                }
            }
        }
    }

    fn clear(&mut self, ctl: &SpillControl) -> Result<()> {
        for id in self.list()? {
            self.delete(id)?;
        }
        os::fault::point("spill.clearing");
        self.open.clear();
        ctl.segments.store(0, Ordering::Relaxed);
        ctl.bytes_on_disk.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn truncate(&mut self, ctl: &SpillControl, to: Option<(u64, u64)>) -> Result<()> {
        let Some((seg, off)) = to else {
            // Everything in the spill was the undone batch.
            return self.clear(ctl);
        };
        let cur = ctl.write_seg.load(Ordering::Relaxed);
        let cur_off = ctl.write_off.load(Ordering::Relaxed);
        // Zero what the undone records left, so that nothing reads them
        // back (recovery adopts intact records past the write position).
        if cur == seg {
            self.zero(seg, off, cur_off - off)?;
        } else {
            self.zero(seg, off, self.segment_size - off)?;
            self.zero(cur, SEGMENT_HEADER_SIZE, cur_off - SEGMENT_HEADER_SIZE)?;
        }
        ctl.write_seg.store(seg, Ordering::Relaxed);
        ctl.write_off.store(off, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, payload: &[u8]) -> Record<'_> {
        Record {
            seq,
            timestamp_ns: seq * 10,
            correlation_id: seq + 1,
            type_id: 7,
            enveloped: false,
            payload,
        }
    }

    /// A segment's bytes holding `n` records of `len` bytes from seq 100.
    fn filled(n: u64, len: usize) -> (Vec<u8>, Vec<u64>) {
        let mut buf = vec![0u8; 4096];
        let mut off = SEGMENT_HEADER_SIZE;
        let mut offs = Vec::new();
        for i in 0..n {
            let payload = vec![i as u8; len];
            write_record(&mut buf, off as usize, &rec(100 + i, &payload));
            offs.push(off);
            off += record_size(len as u64);
        }
        (buf, offs)
    }

    #[test]
    fn records_round_trip() {
        let (buf, offs) = filled(3, 13);
        match parse_at(&buf, offs[1], 64) {
            Found::Message(r, next) => {
                assert_eq!(r, rec(101, &[1u8; 13]));
                assert_eq!(next, offs[2]);
            }
            other => panic!("{other:?}"),
        }
        let s = scan(&buf, SEGMENT_HEADER_SIZE, 64);
        assert_eq!(
            s.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
            [100, 101, 102]
        );
        assert_eq!((s.end, s.damaged), (None, 0));
        assert_eq!(s.tail, offs[2] + record_size(13));
        assert_eq!(parse_at(&buf, s.tail, 64), Found::Empty);
    }

    #[test]
    fn a_torn_record_is_cut_and_later_ones_kept() {
        let (mut buf, offs) = filled(4, 20);
        // A flipped payload byte in record 1.
        buf[offs[1] as usize + RECORD_HEADER_SIZE as usize + 3] ^= 0x40;
        assert_eq!(parse_at(&buf, offs[1], 64), Found::Bad);
        let s = scan(&buf, SEGMENT_HEADER_SIZE, 64);
        assert_eq!(
            s.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
            [100, 102, 103]
        );
        assert_eq!(s.damaged, offs[2] - offs[1]);
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let (mut buf, offs) = filled(1, 8);
        // A length larger than slot_size, and one past the end of the file.
        buf[offs[0] as usize + 4..offs[0] as usize + 8].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(parse_at(&buf, offs[0], 64), Found::Bad);
        buf[offs[0] as usize + 4..offs[0] as usize + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_at(&buf, offs[0], u32::MAX as u64), Found::Bad);
        assert_eq!(parse_at(&buf, u64::MAX - 7, 64), Found::Bad);
        assert_eq!(parse_at(&buf, 3, 64), Found::Bad, "unaligned");
    }

    #[test]
    fn end_records_name_the_next_segment() {
        let (mut buf, offs) = filled(2, 8);
        let end = offs[1] + record_size(8);
        write_end(&mut buf, end as usize, 102);
        let s = scan(&buf, SEGMENT_HEADER_SIZE, 64);
        assert_eq!((s.end, s.tail, s.messages.len()), (Some(102), end, 2));
    }

    #[test]
    fn headers_are_checked() {
        let p = Path::new("/x/00000000000000000005.seg");
        let h = new_header(9, 5, 1 << 20, 1);
        let b = h.as_bytes();
        check_header(b, p, 9, 5, 1 << 20).unwrap();
        let e = check_header(b, p, 8, 5, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("another queue") && e.contains("0005.seg"), "{e}");
        assert!(check_header(b, p, 9, 6, 1 << 20).is_err());
        assert!(check_header(b, p, 9, 5, 1 << 21).is_err());
        assert!(check_header(&b[..10], p, 9, 5, 1 << 20).is_err());
        let mut garbled = b.to_vec();
        garbled[20] ^= 1;
        assert!(check_header(&garbled, p, 9, 5, 1 << 20).is_err());
        let mut newer = h;
        newer.version = 2;
        newer.crc = crc32c::crc32c(&newer.as_bytes()[..60]);
        assert!(matches!(
            check_header(newer.as_bytes(), p, 9, 5, 1 << 20),
            Err(Error::Incompatible { found: 2, .. })
        ));
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_id("00000000000000000042.seg"), Some(42));
        assert_eq!(segment_id("42.seg"), None);
        assert_eq!(segment_id("0000000000000000004x.seg"), None);
        assert_eq!(
            segment_path(Path::new("/d"), 7),
            Path::new("/d/00000000000000000007.seg")
        );
    }
}

/// Properties of the reader under random damage: whatever the bytes, it
/// never panics, never returns a record that was not written, and keeps
/// every record that the damage did not touch.
#[cfg(test)]
mod props {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    const MAX_LEN: u64 = 256;

    /// A record as written: its offset and owned fields.
    #[derive(Debug, Clone)]
    struct Written {
        off: u64,
        seq: u64,
        timestamp_ns: u64,
        correlation_id: u64,
        type_id: u32,
        payload: Vec<u8>,
    }

    impl Written {
        fn record(&self) -> Record<'_> {
            Record {
                seq: self.seq,
                timestamp_ns: self.timestamp_ns,
                correlation_id: self.correlation_id,
                type_id: self.type_id,
                enveloped: false,
                payload: &self.payload,
            }
        }
        /// Bytes the record's crc covers: header and payload.
        fn span(&self) -> std::ops::Range<u64> {
            self.off..self.off + RECORD_HEADER_SIZE + self.payload.len() as u64
        }
    }

    /// Random records (lengths up to MAX_LEN, increasing seqs with gaps),
    /// then an END record or not, then zeros.
    fn segment() -> impl Strategy<Value = (Vec<u8>, Vec<Written>, Option<(u64, u64)>)> {
        let rec = (
            1u64..4,
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..=MAX_LEN as usize),
                1 => proptest::collection::vec(Just(0u8), 0..=MAX_LEN as usize),
            ],
        );
        (
            any::<u32>(),
            proptest::collection::vec(rec, 0..24),
            any::<bool>(),
            0usize..600,
        )
            .prop_map(|(first, recs, with_end, zeros)| {
                let mut seq = first as u64;
                let mut off = SEGMENT_HEADER_SIZE;
                let mut written = Vec::new();
                for (gap, ts, corr, ty, payload) in recs {
                    written.push(Written {
                        off,
                        seq,
                        timestamp_ns: ts,
                        correlation_id: corr,
                        type_id: ty,
                        payload,
                    });
                    off += record_size(written.last().unwrap().payload.len() as u64);
                    seq += gap;
                }
                let end = with_end.then_some((off, seq));
                let size = off + if with_end { RECORD_HEADER_SIZE } else { 0 } + zeros as u64;
                let mut buf = vec![0u8; size as usize];
                buf[..SEGMENT_HEADER_SIZE as usize]
                    .copy_from_slice(new_header(1, first as u64, size, 0).as_bytes());
                for w in &written {
                    write_record(&mut buf, w.off as usize, &w.record());
                }
                if let Some((at, next)) = end {
                    write_end(&mut buf, at as usize, next);
                }
                (buf, written, end)
            })
    }

    /// Byte flips (index taken modulo the length, a non-zero xor mask) and
    /// maybe a truncation (a fraction of the length, in 1/1000).
    fn damage() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<u32>)> {
        (
            proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
            proptest::option::of(0u32..=1000),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn scan_keeps_every_intact_record_and_invents_none(
            (mut buf, written, end) in segment(),
            (flips, cut) in damage(),
        ) {
            let mut touched = BTreeSet::new();
            for &(i, mask) in &flips {
                let i = SEGMENT_HEADER_SIZE as usize + i % (buf.len() - SEGMENT_HEADER_SIZE as usize).max(1);
                if i < buf.len() {
                    buf[i] ^= mask;
                    touched.insert(i as u64);
                }
            }
            // Two flips of one byte may cancel out: "touched" stays
            // conservative (a record counted as damaged may come back).
            let len = match cut {
                Some(c) => buf.len() * c as usize / 1000,
                None => buf.len(),
            } as u64;
            buf.truncate(len as usize);

            let s = scan(&buf, SEGMENT_HEADER_SIZE, MAX_LEN);

            // Only records that were written, byte for byte, in order.
            let by_seq: HashMap<u64, &Written> = written.iter().map(|w| (w.seq, w)).collect();
            let mut last = None;
            for &(seq, off) in &s.messages {
                let w = by_seq.get(&seq);
                prop_assert!(w.is_some(), "seq {seq} at {off} was never written");
                let w = w.unwrap();
                prop_assert_eq!(off, w.off);
                match parse_at(&buf, off, MAX_LEN) {
                    Found::Message(r, next) => {
                        prop_assert_eq!(r, w.record());
                        prop_assert_eq!(next, off + record_size(w.payload.len() as u64));
                    }
                    other => prop_assert!(false, "scan returned {off}, which parses as {other:?}"),
                }
                prop_assert!(last < Some(seq), "seqs increase: {last:?} then {seq}");
                last = Some(seq);
            }
            if let Some(next) = s.end {
                prop_assert_eq!(Some(next), end.map(|e| e.1), "END invented");
            }
            // Aligned: a record cut short of its padding ends past the cut.
            prop_assert!(s.tail <= len.max(SEGMENT_HEADER_SIZE).div_ceil(8) * 8);

            // Every record the damage did not touch, before the cut.
            let intact = |r: std::ops::Range<u64>| r.end <= len && touched.range(r).next().is_none();
            let found: BTreeSet<u64> = s.messages.iter().map(|m| m.0).collect();
            for w in &written {
                if intact(w.span()) {
                    prop_assert!(found.contains(&w.seq), "intact record {} at {} lost", w.seq, w.off);
                }
            }
            if let Some((at, next)) = end {
                if intact(at..at + RECORD_HEADER_SIZE) {
                    prop_assert_eq!(s.end, Some(next));
                    prop_assert_eq!(s.tail, at);
                }
            }
            if flips.is_empty() && cut.is_none() {
                prop_assert_eq!(s.damaged, 0);
                prop_assert_eq!(s.messages.len(), written.len());
            }
        }

        #[test]
        fn parse_at_takes_any_bytes_and_offset(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            off in prop_oneof![0u64..600, any::<u64>(), (u64::MAX - 64)..=u64::MAX],
            max_len in prop_oneof![0u64..1024, any::<u64>()],
        ) {
            match parse_at(&bytes, off, max_len) {
                Found::Message(r, next) => {
                    prop_assert!(r.payload.len() as u64 <= max_len);
                    prop_assert!(next <= (bytes.len() as u64).div_ceil(8) * 8);
                    prop_assert!(next > off);
                }
                Found::End(_) | Found::Empty | Found::Bad => {}
            }
            let s = scan(&bytes, off.min(1024), max_len);
            prop_assert!(s.tail >= off.min(1024));
        }

        #[test]
        fn check_header_rejects_every_flipped_header(
            creation_id in any::<u64>(),
            first_seq in any::<u64>(),
            size in any::<u64>(),
            now in any::<u64>(),
            at in 0usize..SEGMENT_HEADER_SIZE as usize,
            mask in 1u8..=255,
            cut in 0usize..SEGMENT_HEADER_SIZE as usize,
        ) {
            let p = Path::new("/x/00000000000000000001.seg");
            let h = new_header(creation_id, first_seq, size, now);
            let mut b = h.as_bytes().to_vec();
            b.extend_from_slice(&[0u8; 16]);
            prop_assert!(check_header(&b, p, creation_id, first_seq, size).is_ok());
            prop_assert!(check_header(&b[..cut], p, creation_id, first_seq, size).is_err());
            b[at] ^= mask;
            let e = check_header(&b, p, creation_id, first_seq, size);
            prop_assert!(e.is_err(), "flip of byte {at} by {mask:#x} accepted");
            prop_assert!(e.unwrap_err().to_string().contains("0001.seg"));
        }

        #[test]
        fn check_header_takes_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
            creation_id in any::<u64>(),
            first_seq in any::<u64>(),
            size in any::<u64>(),
        ) {
            let _ = check_header(&bytes, Path::new("x.seg"), creation_id, first_seq, size);
        }
    }
}

/// Roll-over, where peers have had their worst bugs: a writer killed in
/// the middle of a roll, and the next writer (another process: new
/// handles) carrying on, with every record read back in order.
#[cfg(test)]
mod roll {
    use super::*;
    use crate::protocol::spill::{Log, Read};

    const SIZE: u64 = MIN_SEGMENT_SIZE;

    fn segments(dir: &Path) -> Segments {
        Segments::new(dir.to_path_buf(), 77, SIZE, 512, 16 * SIZE, SyncMode::Never)
    }

    fn payload(seq: u64) -> Vec<u8> {
        vec![seq as u8; 100 + (seq % 300) as usize]
    }

    fn append(segs: &mut Segments, ctl: &SpillControl, seq: u64) {
        let p = payload(seq);
        let rec = Record {
            seq,
            timestamp_ns: seq,
            correlation_id: 0,
            type_id: 0,
            enveloped: false,
            payload: &p,
        };
        segs.append(ctl, &rec).unwrap();
        ctl.end_seq.store(seq + 1, Ordering::Relaxed);
    }

    /// Appends until the next record of `seq` would roll; returns that seq.
    fn fill_to_roll(segs: &mut Segments, ctl: &SpillControl, mut seq: u64) -> u64 {
        loop {
            let need = record_size(payload(seq).len() as u64);
            if ctl.segments.load(Ordering::Relaxed) > 0
                && ctl.write_off.load(Ordering::Relaxed) + need + RECORD_HEADER_SIZE > SIZE
            {
                return seq;
            }
            append(segs, ctl, seq);
            seq += 1;
        }
    }

    fn read_all(dir: &Path, ctl: &SpillControl, until: u64) -> Vec<u64> {
        let mut segs = segments(dir);
        let mut got = Vec::new();
        while ctl.read_seq.load(Ordering::Relaxed) < until {
            let want = ctl.read_seq.load(Ordering::Relaxed);
            match segs.read(ctl, &mut |r| {
                assert_eq!(r.payload, payload(r.seq), "seq {}", r.seq);
                got.push(r.seq);
            }) {
                Ok(Read::Done { seg, off }) => {
                    ctl.read_seg.store(seg, Ordering::Relaxed);
                    ctl.read_off.store(off, Ordering::Relaxed);
                }
                other => panic!("seq {want}: {other:?}"),
            }
            ctl.read_seq.store(want + 1, Ordering::Relaxed);
        }
        got
    }

    #[test]
    fn a_writer_killed_after_making_the_next_segment_is_carried_on() {
        let dir = tempfile::tempdir().unwrap();
        let ctl = SpillControl::new();
        let mut a = segments(dir.path());
        let at = fill_to_roll(&mut a, &ctl, 0);
        // The roll's first step, then the writer dies: the new file exists,
        // no END record points to it, the control still says the old one.
        a.create(at).unwrap();
        drop(a);
        let mut b = segments(dir.path());
        for seq in at..at + 500 {
            append(&mut b, &ctl, seq);
        }
        assert!(ctl.segments.load(Ordering::Relaxed) >= 2);
        assert_eq!(
            read_all(dir.path(), &ctl, at + 500),
            (0..at + 500).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_writer_killed_after_the_end_record_is_carried_on() {
        let dir = tempfile::tempdir().unwrap();
        let ctl = SpillControl::new();
        let mut a = segments(dir.path());
        let at = fill_to_roll(&mut a, &ctl, 0);
        let (seg, off) = (
            ctl.write_seg.load(Ordering::Relaxed),
            ctl.write_off.load(Ordering::Relaxed),
        );
        a.create(at).unwrap();
        a.write_end(seg, off, at).unwrap();
        drop(a);
        // The next writer finds no room at the write position, rolls again
        // (reusing the file, rewriting the same END) and goes on.
        let mut b = segments(dir.path());
        for seq in at..at + 300 {
            append(&mut b, &ctl, seq);
        }
        assert_eq!(
            read_all(dir.path(), &ctl, at + 300),
            (0..at + 300).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_reader_at_the_boundary_follows_the_roll() {
        let dir = tempfile::tempdir().unwrap();
        let ctl = SpillControl::new();
        let mut w = segments(dir.path());
        let at = fill_to_roll(&mut w, &ctl, 0);
        // The reader reads everything written so far, and stands exactly
        // at the boundary when the writer rolls.
        let first = read_all(dir.path(), &ctl, at);
        assert_eq!(first.len() as u64, at);
        append(&mut w, &ctl, at);
        append(&mut w, &ctl, at + 1);
        let mut r = segments(dir.path());
        let mut got = Vec::new();
        for _ in 0..2 {
            let want = ctl.read_seq.load(Ordering::Relaxed);
            match r.read(&ctl, &mut |rec| got.push(rec.seq)).unwrap() {
                Read::Done { seg, off } => {
                    ctl.read_seg.store(seg, Ordering::Relaxed);
                    ctl.read_off.store(off, Ordering::Relaxed);
                }
                Read::Lost => panic!("seq {want} lost at the roll"),
            }
            ctl.read_seq.store(want + 1, Ordering::Relaxed);
        }
        assert_eq!(got, [at, at + 1]);
        // The spill reader deleted the segment it finished.
        assert_eq!(ctl.segments.load(Ordering::Relaxed), 1);
        assert!(!segment_path(dir.path(), 0).exists());
    }
}
