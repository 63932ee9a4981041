//! The schedule's index rebuilt from its segments, the truth it caches:
//! after a holder died changing it, or when it pointed at damage.

use super::*;

impl ScheduleFiles {
    /// Rebuilds the index from the segments (a holder died changing it):
    /// every intact SCHEDULED record is scheduled again; damage is
    /// stepped over 8 bytes at a time.
    pub(crate) fn rebuild(&mut self) -> Result<Rebuilt> {
        let mut firsts: Vec<u64> = std::fs::read_dir(&self.dir)
            .map_err(|e| io("listing", &self.dir, e))?
            .filter_map(|d| {
                let name = d.ok()?.file_name();
                let name = name.to_str()?;
                let digits = name.strip_suffix(".seg")?;
                (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| digits.parse().ok())
                    .flatten()
            })
            .collect();
        firsts.sort_unstable();
        self.segs.clear();
        let mut found = Vec::new();
        let mut report = Rebuilt::default();
        let mut rows = Vec::new();
        let mut tail = (0, 0);
        let mut empty = Vec::new();
        for &first in &firsts {
            let path = segment_path(&self.dir, first);
            let len = std::fs::metadata(&path)
                .map_err(|e| io("reading", &path, e))?
                .len();
            if len > self.seg_size {
                // Not one of ours (ours are made at their full size).
                report.damaged += len;
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| io("reading", &path, e))?;
            match check_header(&bytes, &path, self.creation_id, first, self.seg_size) {
                Ok(()) => {}
                // A newer shmq's: not ours to judge, nor to delete.
                Err(e @ Error::Incompatible { .. }) => return Err(e),
                // Made and killed before its header was written: nothing
                // in it was ever scheduled (a segment is made before its
                // first record is written).
                Err(_)
                    if bytes
                        .iter()
                        .take(SEGMENT_HEADER_SIZE as usize)
                        .all(|&b| b == 0) =>
                {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                // Garbled, or another queue's: left alone, not read.
                Err(_) => {
                    report.damaged += bytes.len() as u64;
                    continue;
                }
            }
            let (live, end, damaged) = scan(&bytes, first, self.max_body, &mut found, &mut report);
            report.damaged += damaged;
            report.segments += 1;
            tail = (first, end);
            if live > 0 {
                rows.push(SegLive { first, live });
            } else {
                empty.push(first);
            }
        }
        // Empty ones go, but the last whole one: appends go on there.
        for first in empty.into_iter().filter(|&f| f != tail.0) {
            let _ = std::fs::remove_file(segment_path(&self.dir, first));
        }
        if rows.len() > MAX_SCHEDULE_SEGMENTS {
            return Err(Error::corrupt(
                &self.dir,
                format!(
                    "{} schedule segments hold messages, at most {MAX_SCHEDULE_SEGMENTS} can",
                    rows.len()
                ),
            ));
        }
        report.messages = found.len() as u64;
        // Room for every entry found.
        let need = found.len() as u64;
        if need > self.mapped_capacity() as u64 {
            let cap = need.next_power_of_two().max(FIRST_CAPACITY);
            let size = INDEX_HEADER_SIZE as u64 + cap * SCHEDULE_ENTRY_SIZE as u64;
            let path = self.index_path();
            os::file::preallocate(&self.index_file, 0, size)
                .map_err(|e| io("growing", &path, e))?;
            self.index_file
                .set_len(size)
                .map_err(|e| io("growing", &path, e))?;
            self.map = os::map::Mapping::new(&self.index_file, size)
                .map_err(|e| io("mapping", &path, e))?;
        }
        let cap = self.mapped_capacity() as u64;
        self.header_mut().capacity = cap;
        heap::build(&mut found);
        let hdr = self.header_mut();
        hdr.len = 0;
        hdr.segs = [SegLive::default(); MAX_SCHEDULE_SEGMENTS];
        for (row, r) in hdr.segs.iter_mut().zip(rows) {
            *row = r;
        }
        if tail.0 != 0 && !hdr.segs.iter().any(|r| r.first == tail.0) {
            if let Some(row) = hdr.segs.iter_mut().find(|r| r.first == 0) {
                *row = SegLive {
                    first: tail.0,
                    live: 0,
                };
            }
        }
        hdr.tail_seg = tail.0;
        hdr.tail_off = tail.1;
        // SAFETY: the mapping has room for `found.len()` entries (made
        // above); ours alone under the schedule lock and `&mut self`.
        let heap = unsafe {
            std::slice::from_raw_parts_mut(
                self.map.base().add(INDEX_HEADER_SIZE) as *mut ScheduleEntry,
                found.len(),
            )
        };
        heap.copy_from_slice(&found);
        self.header_mut().len = found.len() as u64;
        debug_assert!(heap::is_heap(self.entries()?));
        Ok(report)
    }
}

/// Reads every record of a segment's `bytes` (its first id `first`):
/// pushes the live ones to `found` and returns (live, where the next
/// record goes, bytes stepped over as damaged).
fn scan(
    bytes: &[u8],
    first: u64,
    max_body: u64,
    found: &mut Vec<ScheduleEntry>,
    report: &mut Rebuilt,
) -> (u64, u64, u64) {
    let (mut off, mut live, mut end, mut damaged) =
        (SEGMENT_HEADER_SIZE, 0u64, SEGMENT_HEADER_SIZE, 0);
    let max = stored_size(max_body as usize);
    let mut skipping: Option<u64> = None;
    while off + RECORD_HEADER_SIZE <= bytes.len() as u64 {
        let at = off as usize;
        let hdr = RecordHeader::read_from_bytes(&bytes[at..at + RECORD_HEADER_SIZE as usize])
            .expect("40");
        let size = record_size(hdr.len as u64);
        let whole = hdr.len as u64 >= PREFIX as u64
            && size <= max
            && off + size <= bytes.len() as u64
            && matches!(hdr.kind, KIND_SCHEDULED | KIND_DONE)
            && hdr.seq >= first
            && crc_of(
                &hdr,
                &bytes[at + RECORD_HEADER_SIZE as usize
                    ..at + RECORD_HEADER_SIZE as usize + hdr.len as usize],
            ) == hdr.crc;
        if !whole {
            skipping.get_or_insert(off);
            off += 8;
            continue;
        }
        if let Some(from) = skipping.take() {
            damaged += off - from;
        }
        if hdr.kind == KIND_SCHEDULED {
            let rest = &bytes[at + RECORD_HEADER_SIZE as usize..];
            let word = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().expect("8"));
            found.push(ScheduleEntry {
                due_ns: word(0),
                id: hdr.seq,
                seg: first,
                off,
                key: word(8),
            });
            live += 1;
        }
        report.last_id = report.last_id.max(hdr.seq);
        off += size;
        end = off;
    }
    if let Some(from) = skipping {
        // Past the last whole record: zeros, or a torn tail. Count only
        // what was not zero.
        let tail = &bytes[from as usize..];
        damaged += tail
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| (i as u64 + 1).div_ceil(8) * 8);
    }
    (live, end, damaged)
}
