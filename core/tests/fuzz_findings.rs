//! Regression tests for what the fuzz targets (`core/fuzz/`) and the
//! corruption proptests found. Each names the input or the steps.

use std::time::Duration;

use shmq::{ConsumerOptions, Error, Options, Overflow, Queue, Start};

/// Parsed by `open_segment` on its own seed corpus (fixed in api/consumer.rs,
/// `wait`): a zero-timeout receive
/// (`receive_timeout(Duration::ZERO)`, documented as a poll, "as
/// `try_receive` does") never copies spilled messages back into the ring,
/// so a consumer polling that way sees `Timeout` forever while thousands
/// of messages wait on disk. `try_receive` does refill (`nothing_yet`);
/// `Consumer::wait`'s early return for a passed deadline does not.
#[test]
fn a_zero_timeout_receive_reads_through_the_spill() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options::new()
        .dir(dir.path())
        .slots(16)
        .slot_size(256)
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(64 << 10);
    let q = Queue::create("zero", &o).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..40u64 {
        p.publish(&i.to_le_bytes()).unwrap();
    }
    let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
    for i in 0..40u64 {
        match c.receive_timeout(Duration::ZERO) {
            Ok(m) => assert_eq!(m.seq(), i),
            Err(Error::Timeout) => panic!("seq {i}: Timeout with {} spilled", 40 - i),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Parsed by `open_queue_file` in under a minute (the input is
/// `core/fuzz/findings/open_queue_file-timeout-group-next.shmq`: the seed
/// `plain.shmq` with the top bytes of group "g"'s `next` cursor set to
/// 0xff). The file opens; `stats()` (so `shmq stat`) then never returns:
/// `groups()` counts a group's leases with `Leases::in_flight`, a loop over
/// `committed .. next` straight from the file, ~2^63 steps here. Nothing
/// checks a group's cursors against the ring's (`committed <= next <=
/// tail`, `tail - committed <= slots`) before they are used. Fixed: every
/// walk over a group's in-flight window is bounded by `slots`
/// (`Leases::window`).
#[test]
fn a_garbled_group_cursor_does_not_hang_stats() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    let o = Options::new().dir(dir.path()).slots(8).slot_size(64);
    {
        let q = Queue::create("cur", &o).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
        q.producer().unwrap().publish(b"m").unwrap();
    }
    let path = dir.path().join("cur.shmq");
    let file = std::fs::read(&path).unwrap();
    // Config::groups_offset is at byte 88; GroupRecord::next at +128 of the
    // first group's record (layout v3).
    let groups_offset = u64::from_le_bytes(file[88..96].try_into().unwrap());
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(groups_offset + 128)).unwrap();
    f.write_all(&(u64::MAX >> 1).to_le_bytes()).unwrap();
    drop(f);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Opening may refuse the file (a clear error is fine); if it opens,
        // stats must come back.
        let r = Queue::open_with("cur", &o).map(|q| q.stats().groups.len());
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(r) => eprintln!("{r:?}"),
        Err(_) => panic!("Queue::open_with + stats() still running after 10 s"),
    }
}
