//! An async receive with the message already there against `try_receive`,
//! interleaved: the two run in alternating blocks in one loop, so a VM's
//! drift (which on a noisy 2-vCPU guest exceeds the gap being measured)
//! falls on both alike and cancels in each round's ratio.
//!
//! Each round publishes `block` messages (untimed), receives them all with
//! one method (timed), then does the same with the other; which goes first
//! alternates from round to round. Only the receives are timed, so the
//! ratio is receive against receive, with no publish cost to dilute it.
//! The async receive is `Consumer::receive_async` polled once by hand with
//! a no-op waker: with a message there it completes at its first poll,
//! touching no runtime and no fd (what a busy consumer on tokio sees).
//!
//! ```sh
//! cargo bench -p shmq-benches --bench async_interleaved [-- --rounds 400 --block 2048]
//! ```
//!
//! Prints the per-round ratios' median and quartiles and the two methods'
//! median ns per receive.

use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use shmq::{ConsumerOptions, Options, Queue, Start};

/// `--name value` from the command line, or `default`. Cargo's own
/// `--bench` flag (passed to every bench binary) is ignored.
fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} {v:?}: not a count"))
        })
        .unwrap_or(default)
}

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let rounds = arg("--rounds", 400);
    let block = arg("--block", 2048);
    assert!(
        rounds > 0 && block > 0,
        "--rounds and --block must be positive"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let slots = (block as u64).next_power_of_two().max(64);
    let opts = Options::new().dir(dir.path()).slots(slots).slot_size(64);
    let q = Queue::create("interleaved", &opts).expect("create");
    q.create_group("g", Start::Earliest).expect("group");
    let mut p = q.producer().expect("producer");
    let mut cons = q.consumer("g", ConsumerOptions::new()).expect("consumer");
    let payload = [7u8; 64];
    let mut cx = Context::from_waker(Waker::noop());

    // ns per receive of one block with each method.
    let by_try = |p: &mut shmq::Producer, cons: &mut shmq::Consumer| {
        for _ in 0..block {
            p.publish(&payload).expect("publish");
        }
        let t = Instant::now();
        for _ in 0..block {
            let m = cons.try_receive().expect("receive").expect("a message");
            std::hint::black_box(m.payload()[0]);
        }
        t.elapsed().as_nanos() as f64 / block as f64
    };
    let mut by_async = |p: &mut shmq::Producer, cons: &mut shmq::Consumer| {
        for _ in 0..block {
            p.publish(&payload).expect("publish");
        }
        let t = Instant::now();
        for _ in 0..block {
            let mut f = std::pin::pin!(cons.receive_async());
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(m) => std::hint::black_box(m.expect("receive").payload()[0]),
                Poll::Pending => panic!("a message was there"),
            };
        }
        t.elapsed().as_nanos() as f64 / block as f64
    };

    // Warm-up: caches, branch predictors, the CPU's clock.
    for _ in 0..(rounds / 10).max(4) {
        by_try(&mut p, &mut cons);
        by_async(&mut p, &mut cons);
    }
    let (mut tries, mut asyncs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (t, a) = if round % 2 == 0 {
            let t = by_try(&mut p, &mut cons);
            (t, by_async(&mut p, &mut cons))
        } else {
            let a = by_async(&mut p, &mut cons);
            (by_try(&mut p, &mut cons), a)
        };
        tries.push(t);
        asyncs.push(a);
        ratios.push(a / t);
    }
    for v in [&mut tries, &mut asyncs, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "{rounds} rounds of {block} receives of a 64 B message already there, alternating order"
    );
    println!(
        "try_receive:          median {:.1} ns (quartiles {:.1}-{:.1})",
        quantile(&tries, 0.5),
        quantile(&tries, 0.25),
        quantile(&tries, 0.75)
    );
    println!(
        "receive_async, 1 poll: median {:.1} ns (quartiles {:.1}-{:.1})",
        quantile(&asyncs, 0.5),
        quantile(&asyncs, 0.25),
        quantile(&asyncs, 0.75)
    );
    println!(
        "async / try, per round: median {:.3}x (quartiles {:.3}-{:.3}, p10-p90 {:.3}-{:.3})",
        quantile(&ratios, 0.5),
        quantile(&ratios, 0.25),
        quantile(&ratios, 0.75),
        quantile(&ratios, 0.1),
        quantile(&ratios, 0.9)
    );
}
