//! The README's tokio example: a consumer task awaits its messages while a
//! producer (a thread here; any process in practice) publishes them now
//! and then. No runtime thread blocks: the consumer's readiness handle is
//! a socket tokio's reactor watches, rung by the producer's publish.
//!
//! `cargo run --release -p shmq --features tokio --example tokio_consumer`

use std::time::Duration;

use shmq::{ConsumerOptions, Options, Queue, Start};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), shmq::Error> {
    let dir = std::env::temp_dir().join(format!("shmq-tokio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| shmq::Error::Io {
        context: format!("creating {}", dir.display()),
        source: e,
    })?;
    let opts = Options::new().dir(&dir).slots(1024).slot_size(256);
    let queue = Queue::create("events", &opts)?;
    queue.create_group("audit", Start::Earliest)?;

    let mut producer = queue.producer()?;
    let publisher = std::thread::spawn(move || {
        for i in 1..=5u32 {
            std::thread::sleep(Duration::from_millis(50));
            producer.publish(format!("event {i}").as_bytes()).unwrap();
        }
    });

    let mut audit = queue.consumer("audit", ConsumerOptions::new())?;
    for _ in 0..5 {
        // Awaits without blocking the runtime; cancel-safe, so a timeout
        // (or a lost select! branch) loses nothing.
        let m = tokio::time::timeout(Duration::from_secs(10), audit.receive_async())
            .await
            .expect("a message within 10 s")?;
        println!("{} {}", m.seq(), String::from_utf8_lossy(m.payload()));
    }
    publisher.join().unwrap();
    drop(audit);
    Queue::remove("events", &opts)?;
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}
