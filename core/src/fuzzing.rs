//! Thin wrappers over internal functions for the fuzz targets in
//! `core/fuzz/`, built with the `fuzzing` cargo feature only (the fuzz
//! crate turns it on). **Not part of the API**: hidden from the docs, may
//! change or go away in any release.

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
