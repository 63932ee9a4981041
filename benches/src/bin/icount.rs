//! Instructions per message, for callgrind: one thread publishes and
//! receives `N` messages in turn through functions that are never inlined,
//! so `valgrind --tool=callgrind --toggle-collect=<one of them>` counts just
//! that path. See docs/performance.md for the commands.
//!
//! ```text
//! icount [publish|receive|batch] [N]
//! ```

use std::time::Duration;

use shmq::{Consumer, ConsumerOptions, Options, Producer, Queue, Start};

/// One `publish` of a 64-byte payload.
#[inline(never)]
fn shmq_publish(p: &mut Producer, payload: &[u8; 64]) {
    p.publish(payload).expect("publish");
}

/// One `try_receive` that finds a message, the payload copied out, the
/// delivery dropped (ack=auto).
#[inline(never)]
fn shmq_receive(c: &mut Consumer, buf: &mut [u8; 64]) {
    let m = c.try_receive().expect("receive").expect("a message");
    buf.copy_from_slice(m.payload());
}

/// One empty `try_receive` (the busy-poll's cost per look).
#[inline(never)]
fn shmq_poll_empty(c: &mut Consumer) {
    assert!(c.try_receive().expect("receive").is_none());
}

/// `publish_batch` + `receive_batch` of 256 eight-byte payloads.
#[inline(never)]
fn shmq_batch(p: &mut Producer, c: &mut Consumer, payloads: &[[u8; 8]]) -> u64 {
    p.publish_batch(payloads).expect("publish_batch");
    let b = c
        .receive_batch(payloads.len(), Duration::ZERO)
        .expect("receive_batch");
    b.iter().map(|m| u64::from(m.payload()[0])).sum()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "publish".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().dir(dir.path()).slots(4096).slot_size(64);
    let q = Queue::create("icount", &opts).expect("create");
    q.create_group("g", Start::Earliest).expect("group");
    let mut p = q.producer().expect("producer");
    let mut c = q.consumer("g", ConsumerOptions::new()).expect("consumer");
    let payload = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut sum = 0u64;
    if mode == "batch" {
        let payloads: Vec<[u8; 8]> = (0..256u64).map(|i| i.to_le_bytes()).collect();
        for _ in 0..n / 256 {
            sum += shmq_batch(&mut p, &mut c, &payloads);
        }
    } else {
        for _ in 0..n {
            shmq_publish(&mut p, &payload);
            shmq_receive(&mut c, &mut buf);
            shmq_poll_empty(&mut c);
            sum += u64::from(buf[0]);
        }
    }
    println!("{mode}: {n} messages, checksum {sum}");
}
