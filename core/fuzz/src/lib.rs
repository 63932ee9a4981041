//! The bodies of the fuzz targets in `fuzz_targets/`, here so that the
//! targets stay one line each and the corpus generator (`examples/`) uses
//! the same queues.
//!
//! A finding is a panic (or a sanitizer report, or a hang): opening a file
//! that is damaged, truncated, foreign or hostile must give an error, never
//! a crash. Beyond that the targets check what holds whatever the bytes:
//! a drained queue hands out increasing seqs below the end of the log, each
//! one exactly once, and every other seq is counted as lost.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use shmq::{ConsumerOptions, Error, Options, Overflow, Queue, Start};

/// Messages the segment templates hold beyond the ring.
const SLOTS: u64 = 16;
/// The queue's slot_size: the largest payload.
pub const SLOT_SIZE: u64 = 256;
/// The spill's segment size.
pub const SEGMENT_SIZE: u64 = 64 << 10;

/// The payload of message `i` in the templates.
pub fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("message {i} ").into_bytes();
    v.resize(20 + (i * 37 % 230) as usize, b'x');
    v
}

/// Options of the overflow=spill queue `open_segment` uses, under `dir`.
pub fn spill_options(dir: &Path) -> Options {
    Options::new()
        .dir(dir.join("q"))
        .slots(SLOTS)
        .slot_size(SLOT_SIZE as usize)
        .overflow(Overflow::Spill)
        .spill_dir(dir.join("spill"))
        .spill_segment_size(SEGMENT_SIZE)
        .max_groups(2)
        .dlq_slots(8)
        .dedup_window(16)
}

/// The segment files under `spill`, sorted by name (= first seq).
pub fn segment_files(spill: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(spill)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    v.sort();
    v
}

/// Creates queue `name` under `dir` (group "a" from the start) and publishes
/// `n` messages, most of which spill; everything is closed on return.
pub fn make_spilled_queue(dir: &Path, name: &str, n: u64) -> shmq::Result<()> {
    fs::create_dir_all(dir.join("q")).map_err(|source| Error::Io {
        context: "creating the queue dir".into(),
        source,
    })?;
    let q = Queue::create(name, &spill_options(dir))?;
    q.create_group("a", Start::Earliest)?;
    let mut p = q.producer()?;
    for i in 0..n {
        p.publish(&payload(i))?;
    }
    Ok(())
}

/// A queue with a spilled backlog, as files, to be laid down again before
/// every run.
struct Template {
    dir: tempfile::TempDir,
    queue_file: (PathBuf, Vec<u8>),
    segments: Vec<(PathBuf, Vec<u8>)>,
}

impl Template {
    fn new(n: u64) -> Template {
        let dir = tempfile::tempdir().expect("temp dir");
        make_spilled_queue(dir.path(), "t", n).expect("template queue");
        let qf = dir.path().join("q").join("t.shmq");
        let queue_file = (qf.clone(), fs::read(&qf).expect("queue file"));
        let segments = segment_files(&dir.path().join("spill"))
            .into_iter()
            .map(|p| {
                let b = fs::read(&p).expect("segment");
                (p, b)
            })
            .collect();
        Template {
            dir,
            queue_file,
            segments,
        }
    }

    /// The template's files again, the first segment replaced by `seg`.
    fn lay_down(&self, seg: &[u8]) {
        for p in segment_files(&self.dir.path().join("spill")) {
            let _ = fs::remove_file(p);
        }
        fs::write(&self.queue_file.0, &self.queue_file.1).expect("queue file");
        for (i, (p, b)) in self.segments.iter().enumerate() {
            if i == 0 {
                fs::write(p, restamp(seg, b)).expect("segment");
            } else {
                fs::write(p, b).expect("segment");
            }
        }
    }
}

/// A segment header carries the creation id of its queue, which differs
/// from one template to the next: an input whose header is intact (magic
/// and crc) gets the template's id and a crc to match, so that seeds taken
/// from another queue reach the records.
fn restamp(input: &[u8], template: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    if v.len() >= 64
        && v[..8] == template[..8]
        && crc32c::crc32c(&v[..60]).to_le_bytes() == v[60..64]
    {
        v[16..24].copy_from_slice(&template[16..24]);
        let crc = crc32c::crc32c(&v[..60]);
        v[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    v
}

/// Drains group "a" of the queue: every message comes once, in increasing
/// seq order, below the end of the log; the other seqs are counted lost.
/// The end of the log is read after opening: recovery adopts intact
/// records past the write position (a process killed mid-append wrote
/// them), so a segment from a longer log makes the log longer.
fn drain(q: &Queue) {
    let Ok(mut c) = q.consumer("a", ConsumerOptions::new()) else {
        return;
    };
    let n = q.stats().next_seq;
    let mut received = 0u64;
    let mut last = None;
    let mut drained = false;
    // try_receive copies spilled messages back into the ring when it finds
    // it empty, and lost ones take ring positions too, so an empty poll
    // means "drained" only once nothing is left on disk.
    // Bounded: a poll hands out a message or moves the spill on.
    for _ in 0..8 * n + 64 {
        match c.try_receive() {
            Ok(Some(m)) => {
                let seq = m.seq();
                assert!(seq < n, "seq {seq} past the end of the log ({n})");
                assert!(last < Some(seq), "seq {seq} after {last:?}");
                assert!(m.payload().len() as u64 <= SLOT_SIZE);
                last = Some(seq);
                received += 1;
                drained = false;
            }
            // The poll that refilled the last of the spill found the ring
            // empty before it did: poll once more.
            Ok(None) if q.stats().spill_depth == 0 => {
                if drained {
                    break;
                }
                drained = true;
            }
            Ok(None) => {}
            Err(e) => panic!("receive: {e}"),
        }
    }
    let s = q.stats();
    assert!(
        received + s.spill_lost == n,
        "received {received} + lost {} != published {n} (spill depth {})",
        s.spill_lost,
        s.spill_depth
    );
}

/// Fuzz target `open_segment`: the input replaces the first segment of a
/// queue with a spilled backlog; the queue is reopened and drained. Run
/// against two queues: one of two segments (the input is read back,
/// after recovery looked at the other) and one of one (the input is also
/// the segment that recovery scans for a torn tail).
pub fn open_segment(data: &[u8]) {
    static TEMPLATES: OnceLock<[Template; 2]> = OnceLock::new();
    let templates = TEMPLATES.get_or_init(|| {
        let two = Template::new(SLOTS + 600);
        assert!(two.segments.len() >= 2, "{} segments", two.segments.len());
        let one = Template::new(SLOTS + 100);
        assert_eq!(one.segments.len(), 1);
        [two, one]
    });
    for t in templates {
        t.lay_down(data);
        let o = spill_options(t.dir.path());
        match Queue::open_with("t", &o) {
            Ok(q) => drain(&q),
            Err(e) => {
                let name = t.segments[0].0.file_name().unwrap().to_string_lossy();
                let msg = e.to_string();
                assert!(
                    matches!(e, Error::Corrupt { .. } | Error::Incompatible { .. }),
                    "{msg}"
                );
                assert!(msg.contains(&*name), "the error names the file: {msg}");
            }
        }
    }
}

/// Fuzz target `open_queue_file`: the input as a queue file. If it opens,
/// every group's consumer receives once (without waiting) and the stats
/// are read.
pub fn open_queue_file(data: &[u8]) {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let mut data = data.to_vec();
    // An opener waits 2 s for a file whose creator has not marked it ready
    // (core/tests/corrupt.rs covers that): mark every input ready, so that
    // the fuzzer spends its time past that check.
    // The ready word follows the 272-byte config (`layout::Header`).
    let ready = 272;
    if data.len() >= ready + 4 {
        data[ready..ready + 4].copy_from_slice(&READY.to_le_bytes());
    }
    let path = dir.path().join("f.shmq");
    fs::write(&path, &data).expect("writing the input");
    let o = Options::new().dir(dir.path());
    if let Ok(q) = Queue::open_with("f", &o) {
        let s = q.stats();
        let mut groups: Vec<String> = s.groups.into_iter().map(|g| g.name).take(4).collect();
        groups.push("fuzz".into());
        for g in groups {
            if let Ok(mut c) = q.consumer(&g, ConsumerOptions::new()) {
                let _ = c.receive_timeout(Duration::ZERO);
            }
        }
        let _ = q.stats();
    }
}

/// The queue file's ready word ("READY" as the creator stores it last).
const READY: u32 = 0x5245_4459;

/// Fuzz target `scan_segment`: the input as segment bytes, scanned, with
/// slot_size 256 and with no limit below the file's size.
pub fn scan_segment(data: &[u8]) {
    for max_len in [SLOT_SIZE, u32::MAX as u64] {
        let (msgs, _end) = shmq::fuzzing::scan_segment(data, max_len);
        for (_, p) in &msgs {
            assert!(p.len() as u64 <= max_len);
        }
    }
    let _ = shmq::fuzzing::check_segment_header(data, 1, 16, SEGMENT_SIZE);
    for off in (0..data.len().min(256) as u64).step_by(8) {
        let _ = shmq::fuzzing::parse_record(data, off, SLOT_SIZE);
    }
}

/// The input as the records of a schedule segment (behind a valid
/// header): the rebuild after a crash, then every message read back as a
/// mover reads it. Every id it finds is one the input holds, once.
pub fn rebuild_schedule(data: &[u8]) {
    let found = shmq::fuzzing::rebuild_schedule(data);
    let mut ids: Vec<u64> = found.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "an id read twice: {ids:?}");
}
