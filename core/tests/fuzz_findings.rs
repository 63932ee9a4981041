//! Regression tests for what the fuzz targets (`core/fuzz/`) and the
//! corruption proptests found. Each names the input or the steps.

use std::time::Duration;

use shmq::{ConsumerOptions, Error, Options, Overflow, Queue, Start};

/// Found by `open_segment` on its own seed corpus (fixed in consumer.rs,
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
