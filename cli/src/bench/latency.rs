//! `shmq bench latency`: one-way latency (ping-pong round trip / 2)
//! between two processes over two queues, against a bare cache-line
//! ping-pong.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hdrhistogram::Histogram;
use shmq::{Options, Queue, Start};

use super::baseline::Region;
use super::plot::{self, Series};
use super::{BenchArgs, Scratch, WaitArg, WorkerArgs, fmt_ns, join, parse_json, spawn};
use crate::{CliError, CliResult};

fn quantiles(h: &Histogram<u64>) -> [u64; 4] {
    [
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
}

pub(super) fn run(args: &BenchArgs, cores: &[usize]) -> CliResult {
    let count = args.count.unwrap_or(200_000);
    let warmup = count / 10;
    let (c0, c1) = (cores[0], cores[cores.len().min(2) - 1]);
    let mut shmq_h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut base_h = shmq_h.clone();
    let mut hints = None;
    let scratch = Scratch::new()?;
    let progress = super::rounds_progress(args);
    let base = baseline_of(args);
    let slot_size = args.slot_size.unwrap_or(args.size);
    for round in 0..args.rounds {
        progress.set(round as u64);
        // Baseline: bare cache-line ping-pong, or for payloads of more
        // than a slot's usual size, the bare hand-off of the same bytes.
        let region = scratch.dir.join(format!("pingpong-{round}"));
        let extra = |skip: u64| vec!["--skip".to_string(), skip.to_string()];
        let (slots, bytes) = if base == Baseline::CacheLine {
            (1, 1)
        } else {
            (2, args.size)
        };
        Region::create(&region, slots, bytes)?;
        let mut base_args = Vec::new();
        if args.loan {
            base_args.push("--loan".to_string());
        }
        let pong = spawn("base-pong", &region, count + warmup, bytes, c1, &base_args)?;
        base_args.extend(extra(warmup));
        let ping = spawn("base-ping", &region, count + warmup, bytes, c0, &base_args)?;
        let out = join(vec![ping, pong])?;
        record(&mut base_h, &out[0])?;
        // shmq: two queues, one each way.
        let dir = scratch.dir.join(format!("shmq-{round}"));
        std::fs::create_dir(&dir)?;
        let opts = Options::new()
            .dir(&dir)
            .slots(
                args.slots
                    .unwrap_or_else(|| ring_slots(args.size, slot_size)),
            )
            .slot_size(slot_size);
        for (name, group) in [("ping", "pong"), ("pong", "ping")] {
            let q = Queue::create(name, &opts)?;
            q.create_group(group, Start::Earliest)?;
            // The workers' producers choose the same (same queue, CPU and
            // environment).
            hints.get_or_insert(q.producer()?.cache_hints());
        }
        let mut ack = vec![
            "--ack".to_string(),
            format!("{:?}", args.ack).to_lowercase(),
        ];
        if let Some(w) = args.wait {
            ack.extend(["--wait".to_string(), w.name().to_string()]);
        }
        if args.no_read {
            ack.push("--no-read".to_string());
        }
        if args.loan {
            ack.push("--loan".to_string());
        }
        let pong = spawn("pong", &dir, count + warmup, args.size, c1, &ack)?;
        let mut ping_args = extra(warmup);
        ping_args.extend(ack);
        if args.gap_us > 0 {
            ping_args.extend(["--gap-us".to_string(), args.gap_us.to_string()]);
        }
        let ping = spawn("ping", &dir, count + warmup, args.size, c0, &ping_args)?;
        let out = join(vec![ping, pong])?;
        record(&mut shmq_h, &out[0])?;
    }
    drop(progress);
    let s = quantiles(&shmq_h);
    let b = quantiles(&base_h);
    let ratio = |i: usize| s[i] as f64 / b[i].max(1) as f64;
    let waiting = match (args.wait, args.gap_us) {
        (Some(WaitArg::Async), 0) => "the readiness fd (arm, poll(2), drain)".to_string(),
        (Some(w), 0) => format!("receive() with wait={}", w.name()),
        (None, 0) => "busy polling".to_string(),
        (w, gap) => format!(
            "the echo side woken from asleep ({}) after a {gap} us gap, the ping side busy-polling",
            match w {
                Some(WaitArg::Async) => "the readiness fd".to_string(),
                Some(w) => format!("receive() with wait={}", w.name()),
                None => "busy polling".to_string(),
            }
        ),
    };
    if let Some(path) = &args.plot {
        let title = format!(
            "one-way latency, {} B, 2 processes on cores {c0} and {c1}, {waiting}, {} x {} round trips",
            args.size, args.rounds, count
        );
        let svg = plot::percentile_svg(
            &title,
            &[
                Series {
                    name: "shmq",
                    color: "#d62728",
                    hist: &shmq_h,
                },
                Series {
                    name: match base {
                        Baseline::CacheLine => "cache-line ping-pong (baseline)",
                        Baseline::Bytes => "bare hand-off of the bytes (baseline)",
                    },
                    color: "#1f77b4",
                    hist: &base_h,
                },
            ],
        );
        std::fs::write(path, svg)
            .map_err(|e| CliError::Other(format!("writing {}: {e}", path.display())))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "latency",
                "size": args.size,
                "read": !args.no_read && !args.loan,
                "loan": args.loan,
                "slot_size": slot_size,
                "baseline": base.name(),
                "count": count * args.rounds as u64,
                "rounds": args.rounds,
                "p50_ns": s[0], "p99_ns": s[1], "p999_ns": s[2], "max_ns": s[3],
                "baseline_p50_ns": b[0], "baseline_p99_ns": b[1],
                "baseline_p999_ns": b[2], "baseline_max_ns": b[3],
                "ratio_p50": ratio(0), "ratio_p99": ratio(1), "ratio_p999": ratio(2),
                "wait": args.wait.map(WaitArg::name),
                "cache_hints": hints.map(super::hints_json),
            })
        );
    } else {
        println!(
            "shmq bench latency: one-way (round trip / 2), {} B payload{}{}, {} round trips x {} rounds, 2 processes on cores {c0} and {c1}, {waiting}",
            args.size,
            if args.loan {
                " (a loan: not written, not read)"
            } else if args.no_read {
                " (not read)"
            } else {
                ""
            },
            if slot_size < args.size {
                format!(" in slots of {slot_size} B")
            } else {
                String::new()
            },
            count,
            args.rounds
        );
        println!(
            "{:<31} {:>10} {:>10} {:>10} {:>10}",
            "", "p50", "p99", "p99.9", "max"
        );
        println!(
            "{:<31} {:>10} {:>10} {:>10} {:>10}",
            format!("baseline ({})", base.name()),
            fmt_ns(b[0]),
            fmt_ns(b[1]),
            fmt_ns(b[2]),
            fmt_ns(b[3])
        );
        println!(
            "{:<31} {:>10} {:>10} {:>10} {:>10}",
            "shmq",
            fmt_ns(s[0]),
            fmt_ns(s[1]),
            fmt_ns(s[2]),
            fmt_ns(s[3])
        );
        println!(
            "{:<31} {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x",
            "shmq / baseline",
            ratio(0),
            ratio(1),
            ratio(2),
            ratio(3)
        );
        if let Some(h) = hints {
            println!("cache hints: {h}");
        }
    }
    Ok(())
}

/// What shmq's latency is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Baseline {
    /// One word bounced between the cores.
    CacheLine,
    /// `--size` bytes written, a flag, the bytes read, each way: the least
    /// a hand-off of the payload costs.
    Bytes,
}

/// The baseline of a run: the cache line up to 1 KiB (and for a loan:
/// nothing but a flag moves), else the bare hand-off of the same bytes.
fn baseline_of(args: &BenchArgs) -> Baseline {
    if args.size <= 1024 || args.loan {
        Baseline::CacheLine
    } else {
        Baseline::Bytes
    }
}

impl Baseline {
    fn name(self) -> &'static str {
        match self {
            Baseline::CacheLine => "cache-line ping-pong",
            Baseline::Bytes => "bare hand-off of the bytes",
        }
    }
}

/// Slots of a latency ring of messages of `size` bytes in slots of
/// `slot_size`: 64, or the least power of two that takes a message of
/// that size (two messages' worth: a message is at most half the ring)
/// where a message takes more than one slot. A ping-pong has one message
/// in flight each way; a larger ring only spreads the messages over more
/// memory.
fn ring_slots(size: usize, slot_size: usize) -> u64 {
    let stride = (slot_size + 32).div_ceil(64) * 64;
    let span = if size <= slot_size {
        1
    } else {
        (32 + size).div_ceil(stride)
    };
    (2 * span as u64).next_power_of_two().max(64)
}

fn record(h: &mut Histogram<u64>, out: &str) -> CliResult {
    let v = parse_json(out)?;
    let path = v["samples"]
        .as_str()
        .ok_or_else(|| CliError::Other("worker gave no samples".into()))?;
    let bytes = std::fs::read(path)?;
    for chunk in bytes.chunks_exact(8) {
        // One-way = round trip / 2.
        let rtt = u64::from_le_bytes(chunk.try_into().unwrap());
        h.saturating_record((rtt / 2).max(1));
    }
    Ok(())
}

/// Worker role `base-ping`: the timing side of the bare cache-line
/// ping-pong; writes its round trips to a samples file.
/// With a `--size` of more than 1: the bare hand-off of that many bytes.
pub(super) fn base_ping(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let mut rtts = Vec::with_capacity(a.count as usize);
    if a.size > 1 {
        let r = Region::open(&a.dir, 2, a.size)?;
        r.ping_bytes(a.count, a.size, !a.loan, |_, rtt| rtts.push(rtt));
    } else {
        Region::open(&a.dir, 1, 1)?.ping(a.count, |_, rtt| rtts.push(rtt));
    }
    samples(&a.dir, &rtts[a.skip as usize..])
}

/// Worker role `base-pong`: the echoing side of the bare ping-pong.
pub(super) fn base_pong(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    if a.size > 1 {
        Region::open(&a.dir, 2, a.size)?.pong_bytes(a.count, a.size, !a.loan);
    } else {
        Region::open(&a.dir, 1, 1)?.pong(a.count);
    }
    Ok(serde_json::json!({}))
}

/// Worker role `ping`: publishes to queue `ping`, waits for the echo on
/// `pong`, and writes the round trips to a samples file.
pub(super) fn ping(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let opts = Options::new().dir(&a.dir);
    let mut p = Queue::open_with("ping", &opts)?.producer()?;
    let mut c = Queue::open_with("pong", &opts)?.consumer("ping", a.consumer_options())?;
    let payload = vec![1u8; a.size];
    let mut buf = vec![0u8; a.size];
    let mut rtts = Vec::with_capacity(a.count as usize);
    // With a gap, the echo side has gone to sleep by the time the ping
    // comes, and the ping side busy-polls so that only that wake-up counts.
    let (gap, wait) = match a.gap_us {
        0 => (None, a.wait),
        us => (Some(std::time::Duration::from_micros(us)), None),
    };
    for _ in 0..a.count {
        if let Some(g) = gap {
            std::thread::sleep(g);
        }
        let t0 = Instant::now();
        send(&mut p, &payload, a.loan)?;
        receive_into(&mut c, &mut buf, wait, !a.no_read && !a.loan)?;
        rtts.push(t0.elapsed().as_nanos() as u64);
    }
    samples(&a.dir, &rtts[a.skip as usize..])
}

/// Worker role `pong`: echoes each message of queue `ping` to `pong`.
pub(super) fn pong(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let opts = Options::new().dir(&a.dir);
    let mut p = Queue::open_with("pong", &opts)?.producer()?;
    let mut c = Queue::open_with("ping", &opts)?.consumer("pong", a.consumer_options())?;
    let mut buf = vec![0u8; a.size];
    for _ in 0..a.count {
        receive_into(&mut c, &mut buf, a.wait, !a.no_read && !a.loan)?;
        send(&mut p, &buf, a.loan)?;
    }
    Ok(serde_json::json!({}))
}

/// Publishes `payload`, or with `loan` reserves its length in place and
/// commits it unwritten.
#[inline(always)]
fn send(p: &mut shmq::Producer, payload: &[u8], loan: bool) -> CliResult {
    if loan {
        p.reserve(payload.len())?.commit()?;
    } else {
        p.publish(payload)?;
    }
    Ok(())
}

/// Receives one message, copies it into `buf` if `read`, and acks it:
/// with `receive` (the consumer's wait strategy), through the readiness
/// fd (`async`), or by busy-polling `try_receive`.
#[inline(always)]
fn receive_into(
    c: &mut shmq::Consumer,
    buf: &mut [u8],
    wait: Option<WaitArg>,
    read: bool,
) -> CliResult {
    match wait {
        Some(WaitArg::Async) => return receive_by_fd(c, buf, read),
        Some(_) => return receive_waiting(c, buf, read),
        None => {}
    }
    loop {
        if let Some(m) = c.try_receive()? {
            if read {
                buf.copy_from_slice(m.payload());
            }
            m.ack()?;
            return Ok(());
        }
        std::hint::spin_loop();
    }
}

/// `receive_into` with `receive`, kept out of line: merged into the
/// polling loop, its delivery and the loop's shared a stack slot, and the
/// loop paid for moving them there (~20 ns a round trip).
#[inline(never)]
fn receive_waiting(c: &mut shmq::Consumer, buf: &mut [u8], read: bool) -> CliResult {
    let m = c.receive()?;
    if read {
        buf.copy_from_slice(m.payload());
    }
    m.ack()?;
    Ok(())
}

/// `receive_into` through the readiness fd, as an event loop does: try,
/// arm, poll(2) the fd, drain, try again. No spinning.
#[inline(never)]
fn receive_by_fd(c: &mut shmq::Consumer, buf: &mut [u8], read: bool) -> CliResult {
    loop {
        if let Some(m) = c.try_receive()? {
            if read {
                buf.copy_from_slice(m.payload());
            }
            m.ack()?;
            return Ok(());
        }
        if let shmq::Arm::Waiting { recheck_after } = c.arm()? {
            super::poll_readable(c.readiness()?, recheck_after);
            c.readiness()?.drain();
        }
    }
}

/// Writes samples next to the region/queue dir and returns where.
fn samples(dir: &Path, rtts: &[u64]) -> CliResult<serde_json::Value> {
    let path = PathBuf::from(format!("{}.samples", dir.display()));
    let bytes: Vec<u8> = rtts.iter().flat_map(|r| r.to_le_bytes()).collect();
    std::fs::write(&path, bytes)?;
    Ok(serde_json::json!({"samples": path}))
}
