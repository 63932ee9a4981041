//! Thin wrappers over internal functions for the fuzz targets in
//! `core/fuzz/`, built with the `fuzzing` cargo feature only (the fuzz
//! crate turns it on). **Not part of the API**: hidden from the docs, may
//! change or go away in any release.

use zerocopy::IntoBytes;

use crate::store::segment::{self, Parsed};

/// Scans segment bytes as the spill's reader does (`segment::scan` from
/// the first record, just past the 64-byte header), and returns every
/// intact message as `(seq, payload)`, in file order, with the END
/// record's next seq if one was found. Never panics, whatever the bytes.
pub fn scan_segment(bytes: &[u8], max_len: u64) -> (Vec<(u64, Vec<u8>)>, Option<u64>) {
    let s = segment::scan(bytes, segment::SEGMENT_HEADER_SIZE, max_len);
    let messages = s
        .messages
        .iter()
        .map(|&(seq, off)| match segment::parse_at(bytes, off, max_len) {
            Parsed::Message(rec, _) => (seq, rec.payload.to_vec()),
            other => panic!("scan returned a record that does not parse: {other:?}"),
        })
        .collect();
    (messages, s.end)
}

/// Parses the record at `off` (`segment::parse_at`): `Some((seq, len))`
/// for an intact message, `None` otherwise.
pub fn parse_record(bytes: &[u8], off: u64, max_len: u64) -> Option<(u64, usize)> {
    match segment::parse_at(bytes, off, max_len) {
        Parsed::Message(rec, _) => Some((rec.seq, rec.payload.len())),
        _ => None,
    }
}

/// Checks a segment header (`segment::check_header`) as belonging to a
/// queue of `creation_id`, first seq `first_seq`, segments of `size`.
pub fn check_segment_header(
    bytes: &[u8],
    creation_id: u64,
    first_seq: u64,
    size: u64,
) -> crate::error::Result<()> {
    segment::check_header(
        bytes,
        std::path::Path::new("fuzz.seg"),
        creation_id,
        first_seq,
        size,
    )
}

/// Rebuilds a schedule (`store/schedule.rs`) from one segment whose
/// records are `records` (behind a valid header, as the queue of creation
/// id 42 with 256-byte bodies and 64 KiB segments would have made it; cut
/// to fit), then reads back every message the rebuild found, as a mover
/// does. Returns `(id, body)` for each one read whole. Never panics,
/// whatever the bytes: damage is stepped over by the rebuild, or read as
/// damaged.
pub fn rebuild_schedule(records: &[u8]) -> Vec<(u64, Vec<u8>)> {
    use crate::store::schedule::{Found, ScheduleFiles};
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shmq-fuzz-schedule-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let seg_size = 64 << 10;
    let mut files = ScheduleFiles::open(&dir, 42, 256, seg_size, false).expect("a new schedule");
    let mut bytes = segment::new_header(42, 1, seg_size, 0).as_bytes().to_vec();
    bytes.extend_from_slice(&records[..records.len().min(seg_size as usize - bytes.len())]);
    bytes.resize(seg_size as usize, 0);
    std::fs::write(segment::segment_path(&dir, 1), &bytes).expect("writing the segment");
    let mut out = Vec::new();
    if files.rebuild().is_ok() {
        let entries = files.entries().map(<[_]>::to_vec).unwrap_or_default();
        for e in entries {
            if let Ok(Found::Whole(s)) = files.read(&e) {
                assert!(s.body.len() <= 256, "a body longer than the queue takes");
                out.push((s.id, s.body));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
