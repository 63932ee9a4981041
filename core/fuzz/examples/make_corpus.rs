//! Writes the seed corpus of the fuzz targets (`corpus/<target>/`): real
//! queue files and segments made by this build, and cut-down variants.
//! Run from `core/fuzz`: `cargo run --release --example make_corpus`.
//! Regenerate after a change of the file formats.

use std::fs;
use std::path::Path;

use shmq::{ConsumerOptions, Options, Queue, Start};
use shmq_fuzz::{SLOT_SIZE, make_spilled_queue, payload, segment_files};

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
    println!("corpus/{target}/{name}: {} bytes", bytes.len());
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();

    // Queue files: a plain one with a group, a message read and one not,
    // and one whose backlog spilled.
    let o = Options::new()
        .dir(tmp.path())
        .slots(8)
        .slot_size(64)
        .max_groups(2)
        .dlq_slots(8)
        .dedup_window(16);
    {
        let q = Queue::create("plain", &o).unwrap();
        q.create_group("g", Start::Earliest).unwrap();
        let mut p = q.producer().unwrap();
        p.publish(b"first").unwrap();
        p.publish(b"second").unwrap();
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        assert_eq!(c.receive().unwrap().payload(), b"first");
    }
    let plain = fs::read(tmp.path().join("plain.shmq")).unwrap();
    put("open_queue_file", "plain.shmq", &plain);
    put("open_queue_file", "plain-cut-4096.shmq", &plain[..4096]);
    put("open_queue_file", "plain-cut-100.shmq", &plain[..100]);

    let spilled = tmp.path().join("spilled");
    make_spilled_queue(&spilled, "s", 100).unwrap();
    let qf = fs::read(spilled.join("q").join("s.shmq")).unwrap();
    put("open_queue_file", "spilled.shmq", &qf);

    // Segments: the first of two (rolled: ends with an END record), the
    // only one of a queue (the write segment), cut-down variants.
    let two = tmp.path().join("two");
    make_spilled_queue(&two, "t", 16 + 600).unwrap();
    let segs = segment_files(&two.join("spill"));
    assert!(segs.len() >= 2);
    let first = fs::read(&segs[0]).unwrap();
    put("open_segment", "first-of-two.seg", &first);
    let only = fs::read(segment_files(&spilled.join("spill"))[0].clone()).unwrap();
    put("open_segment", "only.seg", &only);
    let used = only.iter().rposition(|&b| b != 0).unwrap() + 1;
    put("open_segment", "only-torn-tail.seg", &only[..used - 30]);
    put("open_segment", "only-cut-4096.seg", &only[..4096]);
    put("open_segment", "header-only.seg", &only[..64]);

    // The reader alone: small inputs run fast.
    put("scan_segment", "records-2048.seg", &only[..2048]);
    let end = first.iter().rposition(|&b| b != 0).unwrap() + 1;
    let tail_from = (end - 1024) / 8 * 8;
    let mut tail = first[..64].to_vec();
    tail.extend_from_slice(&first[tail_from..end.div_ceil(8) * 8]);
    put("scan_segment", "end-record-unaligned.seg", &tail);
    put("scan_segment", "header-only.seg", &only[..64]);
    assert!(payload(615).len() as u64 <= SLOT_SIZE);

    // A schedule's segment (its records, behind the header the target
    // writes): messages with and without an envelope, one cancelled
    // (marked done in place).
    let o = Options::new()
        .dir(tmp.path())
        .slots(8)
        .slot_size(256)
        .spill_segment_size(64 << 10)
        .spill_dir(tmp.path().join("s-store"));
    {
        let q = Queue::create("sched", &o).unwrap();
        let mut p = q.producer().unwrap();
        let later = std::time::Duration::from_secs(3600);
        for i in 0..12u64 {
            let mut meta = shmq::Meta::new().delay(later + std::time::Duration::from_secs(i));
            if i % 3 == 0 {
                meta = meta.ordering_key("k").header("h", "v");
            }
            let body = payload(i);
            p.publish_with(&body[..body.len().min(100)], &meta).unwrap();
        }
        assert!(q.cancel_scheduled(5).unwrap());
    }
    let seg = fs::read(tmp.path().join("s-store/schedule/00000000000000000001.seg")).unwrap();
    let end = seg.iter().rposition(|&b| b != 0).unwrap() + 1;
    let records = &seg[64..end.div_ceil(8) * 8];
    put("rebuild_schedule", "twelve-one-done.rec", records);
    put(
        "rebuild_schedule",
        "torn-tail.rec",
        &records[..records.len() - 30],
    );
    put("rebuild_schedule", "empty.rec", &[]);
}
