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

use std::path::Path;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{Error, Result};

mod segments;
#[cfg(test)]
mod tests;

#[cfg(test)]
use segments::segment_id;
pub(crate) use segments::{Segments, segment_path};

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
pub(crate) enum Parsed<'a> {
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
pub(crate) fn parse_at(bytes: &[u8], off: u64, max_len: u64) -> Parsed<'_> {
    let Some(start) = usize::try_from(off).ok().filter(|&s| s % 8 == 0) else {
        return Parsed::Bad;
    };
    let Some(head) = bytes
        .get(start..)
        .and_then(|b| b.get(..RECORD_HEADER_SIZE as usize))
    else {
        return Parsed::Bad;
    };
    let Ok(hdr) = RecordHeader::read_from_bytes(head) else {
        return Parsed::Bad;
    };
    if head.iter().all(|&b| b == 0) {
        return Parsed::Empty;
    }
    match hdr.kind {
        KIND_END if hdr.len == 0 => {
            if record_crc(&hdr, &[]) == hdr.crc {
                Parsed::End(hdr.seq)
            } else {
                Parsed::Bad
            }
        }
        KIND_MESSAGE | KIND_ENVELOPED if (hdr.len as u64) <= max_len => {
            let from = start + RECORD_HEADER_SIZE as usize;
            let Some(payload) = bytes.get(from..from + hdr.len as usize) else {
                return Parsed::Bad;
            };
            if record_crc(&hdr, payload) != hdr.crc {
                return Parsed::Bad;
            }
            Parsed::Message(
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
        _ => Parsed::Bad,
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
            Parsed::Message(rec, next) => {
                if let Some(from) = skipping_since.take() {
                    s.damaged += off - from;
                }
                s.messages.push((rec.seq, off));
                s.tail = next;
                off = next;
            }
            Parsed::End(next) => {
                if let Some(from) = skipping_since.take() {
                    s.damaged += off - from;
                }
                s.end = Some(next);
                s.tail = off;
                return s;
            }
            Parsed::Empty | Parsed::Bad => {
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
