//! The README's Rust example: one queue, two groups (fan-out), a producer
//! and two consumers, in one process for brevity — the same calls work
//! across processes, since the queue is a file.
//!
//! `cargo run --release -p shmq --example quickstart`

use std::time::Duration;

use shmq::{ConsumerOptions, Meta, Options, Queue, Start};

fn main() -> Result<(), shmq::Error> {
    // A private directory; by default queues live in /dev/shm.
    let dir = std::env::temp_dir().join(format!("shmq-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| shmq::Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let opts = Options::new().dir(&dir).slots(1024).slot_size(256);
    let queue = Queue::create("orders", &opts)?;

    // Groups made up front retain every message from now on, even before
    // their consumers run.
    queue.create_group("billing", Start::Earliest)?;
    queue.create_group("shipping", Start::Earliest)?;

    let mut producer = queue.producer()?;
    for i in 1..=3u64 {
        let body = format!("order #{i}");
        let seq =
            producer.publish_with(body.as_bytes(), &Meta::new().type_id(1).correlation_id(i))?;
        println!("published seq {seq}: {body}");
    }
    // Write in place: reserve a slot, fill it, commit.
    let mut slot = producer.reserve(9)?;
    slot.copy_from_slice(b"order #4!");
    slot.commit()?;

    for group in ["billing", "shipping"] {
        let mut consumer = queue.consumer(group, ConsumerOptions::new())?;
        while let Ok(msg) = consumer.receive_timeout(Duration::from_millis(100)) {
            // `payload()` borrows the bytes in shared memory: no copy.
            println!(
                "{group}: seq {} type {} corr {}: {}",
                msg.seq(),
                msg.type_id(),
                msg.correlation_id(),
                String::from_utf8_lossy(msg.payload())
            );
        }
    }
    let stats = queue.stats();
    println!("published {}, depth {}", stats.published, stats.depth);

    Queue::remove("orders", &opts)?;
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}
