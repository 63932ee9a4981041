//! Scheduled delivery (issue #37), two figures, each against a baseline of
//! the same run:
//!
//! - **lateness**: how long after its due time a delayed message is in a
//!   waiting consumer's hands (p50, p99), with 1 and with 1 M other
//!   messages scheduled, against how late a thread that sleeps until the
//!   same due time wakes (`std::thread::sleep`: the kernel's timer slack,
//!   the floor for anything woken by time);
//! - **the publish path**: unscheduled publishes per second with nothing
//!   scheduled and with 1 M messages scheduled, in alternating rounds.
//!
//! ```text
//! cargo bench -p shmq-benches --bench schedule            # 1 M scheduled
//! SHMQ_BENCH_SCHEDULED=10000 cargo bench -p shmq-benches --bench schedule
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shmq::{ConsumerOptions, Meta, Options, Queue, Start};

/// Delayed messages timed per figure.
const SAMPLES: usize = 400;
/// How far ahead each timed message is due.
const AHEAD: Duration = Duration::from_millis(3);
/// Unscheduled publishes per round of the publish figure.
const PUBLISHES: u64 = 2_000_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn percentile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn queue(dir: &std::path::Path, name: &str) -> Queue {
    let q = Queue::create(
        name,
        &Options::new()
            .dir(dir)
            .slots(1 << 16)
            .slot_size(64)
            .spill_dir(dir.join(format!("{name}-store"))),
    )
    .unwrap();
    q.create_group("g", Start::Latest).unwrap();
    q
}

/// Schedules `n` messages a day ahead (they never come due here).
fn fill(q: &Queue, n: u64) {
    let mut p = q.producer().unwrap();
    let day = Duration::from_secs(86_400);
    for i in 0..n {
        p.publish_with(
            &i.to_le_bytes(),
            &Meta::new().delay(day + Duration::from_nanos(i)),
        )
        .unwrap();
    }
}

/// Lateness of SAMPLES delayed messages, each received by a consumer
/// already asleep on the queue, in ns.
fn lateness(q: &Queue) -> Vec<u64> {
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    let mut late = Vec::with_capacity(SAMPLES);
    std::thread::scope(|s| {
        let taker = s.spawn(move || {
            let mut late = Vec::with_capacity(SAMPLES);
            for _ in 0..SAMPLES {
                let m = c.receive_timeout(Duration::from_secs(10)).unwrap();
                let got = now_ns();
                let due = u64::from_le_bytes(m.payload().try_into().unwrap());
                late.push(got.saturating_sub(due));
            }
            late
        });
        for _ in 0..SAMPLES {
            let due = SystemTime::now() + AHEAD;
            let due_ns = due.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
            p.publish_with(&due_ns.to_le_bytes(), &Meta::new().deliver_at(due))
                .unwrap();
            // The next one after this one is in: one at a time.
            std::thread::sleep(AHEAD + Duration::from_millis(2));
        }
        late = taker.join().unwrap();
    });
    late
}

/// How late `std::thread::sleep` wakes for the same due times, in ns.
fn sleep_lateness() -> Vec<u64> {
    (0..SAMPLES)
        .map(|_| {
            let due = now_ns() + AHEAD.as_nanos() as u64;
            std::thread::sleep(Duration::from_nanos(due - now_ns()));
            now_ns().saturating_sub(due)
        })
        .collect()
}

/// Unscheduled publishes per second to a consumer in another thread,
/// one round.
fn publish_rate(q: &Queue) -> f64 {
    let mut p = q.producer().unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let msg = [7u8; 64];
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..PUBLISHES {
                c.receive_timeout(Duration::from_secs(10)).unwrap();
            }
        });
        for _ in 0..PUBLISHES {
            p.publish(&msg).unwrap();
        }
    });
    PUBLISHES as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; a filter is not supported.
    let many: u64 = std::env::var("SHMQ_BENCH_SCHEDULED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let one = queue(dir.path(), "one");
    fill(&one, 1);
    let full = queue(dir.path(), "many");
    let t = Instant::now();
    fill(&full, many);
    eprintln!(
        "scheduled {many} in {:.1} s ({:.0} per second)",
        t.elapsed().as_secs_f64(),
        many as f64 / t.elapsed().as_secs_f64()
    );

    println!("unscheduled publishes (64 B, to a consumer), alternating rounds:");
    let empty = queue(dir.path(), "empty");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        a.push(publish_rate(&empty));
        b.push(publish_rate(&full));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (med(&mut a), med(&mut b));
    println!(
        "  nothing scheduled: {:.1} M/s; {many} scheduled: {:.1} M/s; ratio {:.3}",
        ma / 1e6,
        mb / 1e6,
        mb / ma
    );

    println!("lateness of a due message (p50, p99), {SAMPLES} samples each:");
    for round in 0..2 {
        let mut base = sleep_lateness();
        let mut l1 = lateness(&one);
        let mut lm = lateness(&full);
        let (b50, b99) = (percentile(&mut base, 0.5), percentile(&mut base, 0.99));
        for (what, v) in [
            ("1 scheduled", &mut l1),
            (&*format!("{many} scheduled"), &mut lm),
        ] {
            let (p50, p99) = (percentile(v, 0.5), percentile(v, 0.99));
            println!(
                "  round {round}: {what:>18}: p50 {:>7.1} µs ({:.2}× sleep's {:.1} µs), p99 {:>7.1} µs ({:.2}× sleep's {:.1} µs)",
                p50 as f64 / 1e3,
                p50 as f64 / b50.max(1) as f64,
                b50 as f64 / 1e3,
                p99 as f64 / 1e3,
                p99 as f64 / b99.max(1) as f64,
                b99 as f64 / 1e3,
            );
        }
    }
}
