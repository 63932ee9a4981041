//! A directory of segment files: making, mapping, rolling over and
//! retiring them, and the spill's log (`protocol::spill::Log`) on top.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::SpillControl;
use crate::loom::Ordering;
use crate::options::SyncMode;
use crate::os;
use crate::protocol::spill::{Log, Read, Record};

use super::*;

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
    /// consumers (`open_queue/journal.rs`): they interpret only records below the
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
    /// How far a record's seq reaches: the ring's geometry for the spill,
    /// whose seqs are ring positions and a long record takes many of them
    /// (`Geometry::span_of`); `None` where seqs go one by one (the DLQ's
    /// overflow).
    pub spans: Option<crate::layout::Geometry>,
    open: BTreeMap<u64, Segment>,
    /// The offset after the record `write_record` wrote last, until
    /// `record_written` makes it the write position.
    written: Option<u64>,
    /// CLOCK_MONOTONIC ns until which this process takes the disk for full
    /// without trying (after a segment found no room: `roll_to`).
    no_room_until_ns: u64,
}

/// How long a process that found no room on the disk for a segment takes
/// the disk for full without trying again.
const NO_ROOM_PAUSE_NS: u64 = 50_000_000;

/// Whether the segment file at `path` was made and never written: its
/// maker was killed before the header (an all-zero one), or between
/// making the file and giving up on it because the disk was full (a file
/// shorter than a header, 0 bytes: found by the chaos run, after which
/// every spill failed with `Corrupt`).
fn never_written(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; SEGMENT_HEADER_SIZE as usize];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.metadata().is_ok_and(|m| m.len() < SEGMENT_HEADER_SIZE) {
        return true;
    }
    f.read_exact(&mut head)
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
            spans: None,
            open: BTreeMap::new(),
            written: None,
            no_room_until_ns: 0,
        }
    }

    /// Whether a segment found no room on the disk less than a pause ago
    /// (then `roll_to` fails at once, without a look at the disk).
    pub(crate) fn takes_disk_for_full(&self, now_ns: u64) -> bool {
        now_ns < self.no_room_until_ns
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
        let now = os::clock::monotonic_ns();
        if self.takes_disk_for_full(now) {
            return Err(Error::SpillFull(format!(
                "no space left on the disk of {} for another segment (looked {} ms ago)",
                self.dir.display(),
                (now + NO_ROOM_PAUSE_NS - self.no_room_until_ns) / 1_000_000
            )));
        }
        os::fault::point("segment.rolling");
        if let Err(e) = self.create(first) {
            if matches!(e, Error::SpillFull(_)) {
                // A full disk: every try is a file made and removed, under
                // the admin lock, which the consumers that would free the
                // disk need (found by the chaos run: the refill slowed to
                // tens of messages a second). Not tried again for a while.
                self.no_room_until_ns = now + NO_ROOM_PAUSE_NS;
            }
            return Err(e);
        }
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

    /// The seq after a record of `seq` with `len` bytes of body: the next
    /// one appended gets it.
    pub(crate) fn seq_after(&self, seq: u64, len: usize) -> u64 {
        seq + self.spans.map_or(1, |g| g.span_of(len))
    }

    /// Repairs a write position left behind by a holder killed after it
    /// recorded `end_seq` and before it moved the write position: the
    /// record that ends at `end_seq` (a long one starts several seqs
    /// before it) lies whole at the write position, and the next append
    /// would write over it.
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
        let at = match parse_at(self.get(seg)?.bytes(), off, max_len) {
            Parsed::Message(rec, next) => Some((rec.seq, rec.payload.len(), next)),
            _ => None,
        };
        if let Some((seq, len, next)) = at
            && self.seq_after(seq, len) == end
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
                    Parsed::Message(rec, next) if rec.seq == want => {
                        f(&rec);
                        return Ok(Read::Done { seg, off: next });
                    }
                    // Records lost before this one: it is read later.
                    Parsed::Message(rec, _) if rec.seq > want => return Ok(Read::Lost),
                    // An older record (a batch undone and written over
                    // only in part): step over it.
                    Parsed::Message(_, next) => Some((seg, next)),
                    Parsed::End(next_seg) => {
                        ctl.read_seg.store(next_seg, Ordering::Relaxed);
                        ctl.read_off.store(SEGMENT_HEADER_SIZE, Ordering::Relaxed);
                        self.retire(ctl, seg)?;
                        continue;
                    }
                    Parsed::Empty | Parsed::Bad => self.resync(seg, off)?,
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

    /// A writer killed between making the next segment's file and removing
    /// it when the disk had no room for it (`os::file::create_segment`)
    /// leaves an empty file: the next roll makes it again (found by the
    /// chaos run; every spill then failed with `Corrupt`).
    #[test]
    fn an_empty_file_left_by_a_writer_killed_on_a_full_disk_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let ctl = SpillControl::new();
        let mut a = segments(dir.path());
        let at = fill_to_roll(&mut a, &ctl, 0);
        drop(a);
        std::fs::File::create(segment_path(dir.path(), at)).unwrap();
        let mut b = segments(dir.path());
        for seq in at..at + 500 {
            append(&mut b, &ctl, seq);
        }
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
