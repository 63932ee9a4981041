//! shmq → Kafka → shmq end-to-end latency, one message at a time (what
//! Kafka's `EndToEndLatency` tool measures for Kafka alone): publishes a
//! message into queue `--from`, waits until it comes out of queue `--to`
//! (carried by `shmq-bridge to-kafka` and `from-kafka`, running beside),
//! and only then sends the next. Prints p50/p99/p99.9 in milliseconds.
//!
//! The payload starts with its send time (CLOCK_REALTIME nanoseconds,
//! both ends are on this host) and its index, so a late or foreign
//! message is told apart. `scripts/bridge-latency.sh` sets everything up.
//!
//! ```sh
//! cargo run --release -p shmq-bridge --example e2e_latency -- \
//!     --dir D --from a --to b --group check --count 2000 --size 1024
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shmq::{ConsumerOptions, Options, Queue};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn need(name: &str) -> String {
    arg(name).unwrap_or_else(|| {
        eprintln!("e2e_latency: {name} is needed (see the comment at the top of the example)");
        std::process::exit(2)
    })
}

fn number(name: &str, default: usize) -> usize {
    arg(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| {
            eprintln!("e2e_latency: {name} {v:?} is not a count");
            std::process::exit(2)
        })
    })
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = Options::new().dir(need("--dir"));
    let count = number("--count", 2000);
    let warmup = number("--warmup", 100);
    let size = number("--size", 1024).max(16);
    let from = Queue::open_with(&need("--from"), &opts)?;
    let to = Queue::open_with(&need("--to"), &opts)?;
    let mut producer = from.producer()?;
    let mut consumer = to.consumer(&need("--group"), ConsumerOptions::new())?;
    let mut payload = vec![0u8; size];
    let mut lat = Vec::with_capacity(count);
    for i in 0..(warmup + count) as u64 {
        let sent = now_ns();
        payload[..8].copy_from_slice(&sent.to_le_bytes());
        payload[8..16].copy_from_slice(&i.to_le_bytes());
        producer.publish(&payload)?;
        loop {
            let m = consumer.receive_timeout(Duration::from_secs(60))?;
            let p = m.payload();
            if p.len() >= 16 && p[8..16] == i.to_le_bytes() {
                if i >= warmup as u64 {
                    lat.push(now_ns().saturating_sub(sent));
                }
                break;
            }
            // An earlier run's message: not ours, read past it.
        }
    }
    lat.sort_unstable();
    let ms = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    println!(
        "{count} messages of {size} B, one at a time: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0)
    );
    Ok(())
}
