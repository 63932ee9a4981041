//! The README's at-least-once example: two competing workers share group
//! "work" of queue "jobs" with manual acks. Processing is idempotent (a
//! redelivered job is recognised by its seq); one job always fails, is
//! delivered `max_deliveries` times, and lands in the dead-letter queue,
//! where `shmq dlq jobs list` shows it.
//!
//! `SHMQ_DIR=$(mktemp -d) cargo run --release -p shmq --example worker`

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Nack, Options, Queue, Start};

fn main() -> Result<(), shmq::Error> {
    let opts = Options::new()
        .slots(64)
        .max_deliveries(3)
        .lease(Duration::from_secs(5));
    let queue = Queue::open_or_create("jobs", &opts)?;
    queue
        .create_group("work", Start::Earliest)
        .or_else(|e| match e {
            shmq::Error::Exists(_) => Ok(()),
            e => Err(e),
        })?;
    let mut producer = queue.producer()?;
    let first = producer.publish(b"resize photo 1")?;
    for job in ["resize photo 2", "poison: corrupt photo", "resize photo 3"] {
        producer.publish(job.as_bytes())?;
    }
    let last = first + 3;

    // What has been processed, by seq: a redelivery of a job that was
    // processed but whose ack was lost is recognised and not redone.
    let done = Arc::new(Mutex::new(HashSet::new()));
    let workers: Vec<_> = (1..=2)
        .map(|id| {
            let (queue, done) = (queue.clone(), done.clone());
            std::thread::spawn(move || -> Result<(), shmq::Error> {
                let mut c = queue.consumer("work", ConsumerOptions::new().ack(Ack::Manual))?;
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    let finished = done.lock().unwrap().len() == 3 && !queue.dlq().is_empty();
                    if finished {
                        break;
                    }
                    let Ok(m) = c.receive_timeout(Duration::from_millis(100)) else {
                        continue;
                    };
                    if m.seq() < first || m.seq() > last {
                        m.ack()?; // from an earlier run of this example
                        continue;
                    }
                    let job = String::from_utf8_lossy(m.payload()).into_owned();
                    if job.starts_with("poison") {
                        println!(
                            "worker {id}: seq {} attempt {}: failed, nack",
                            m.seq(),
                            m.attempt()
                        );
                        m.nack(Nack::Requeue)?;
                        continue;
                    }
                    if done.lock().unwrap().insert(m.seq()) {
                        println!(
                            "worker {id}: seq {} attempt {}: {job}",
                            m.seq(),
                            m.attempt()
                        );
                    }
                    m.ack()?;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked")?;
    }
    for d in queue.dlq().list()? {
        println!(
            "dead letter: seq {} from group {:?} after {} deliveries ({}): {}",
            d.seq,
            d.group,
            d.attempts,
            d.reason.as_str(),
            String::from_utf8_lossy(&d.payload)
        );
    }
    println!("see it with: shmq dlq jobs list");
    Ok(())
}
