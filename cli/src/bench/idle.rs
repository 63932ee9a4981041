//! `shmq bench idle`: the CPU a consumer uses while it waits on an empty
//! queue, per wait strategy.

use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Options, Queue, Start};

use super::{BenchArgs, Scratch, WaitArg, WorkerArgs, fmt_ns, join, parse_json, spawn};
use crate::{CliError, CliResult};

/// Each wait strategy's consumer waits `--seconds` on an empty queue,
/// pinned like the latency consumer; its own CPU time (user + system,
/// getrusage) over that wall time is the share of a core it used.
pub(super) fn run(args: &BenchArgs, cores: &[usize]) -> CliResult {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(CliError::Other("--seconds must be in (0, 3600]".into()));
    }
    let core = cores[cores.len().min(2) - 1];
    let millis = (args.seconds * 1e3) as u64;
    let scratch = Scratch::new()?;
    let mut rows = Vec::new();
    let strategies = match args.wait {
        Some(w) => vec![w],
        None => WaitArg::ALL.to_vec(),
    };
    for w in strategies {
        let dir = scratch.dir.join(format!("idle-{}", w.name()));
        std::fs::create_dir(&dir)?;
        Queue::create("idle", &Options::new().dir(&dir).slots(64).slot_size(64))?
            .create_group("g", Start::Earliest)?;
        let extra = ["--wait".to_string(), w.name().to_string()];
        let out = join(vec![spawn("idle", &dir, millis, 64, core, &extra)?])?;
        let v = parse_json(&out[0])?;
        let (cpu, wall) = (
            v["cpu_ns"].as_u64().unwrap_or(0),
            v["wall_ns"].as_u64().unwrap_or(1).max(1),
        );
        rows.push((w, cpu, wall, cpu as f64 / wall as f64 * 100.0));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(w, cpu, wall, pct)| {
                serde_json::json!({"wait": w.name(), "cpu_ns": cpu, "wall_ns": wall, "cpu_percent": pct})
            })
            .collect();
        println!("{}", serde_json::json!({"kind": "idle", "consumers": list}));
    } else {
        println!(
            "shmq bench idle: one consumer in receive_timeout({:.1} s) on an empty queue, pinned to core {core}; CPU = user + system time (getrusage) / wall time",
            args.seconds
        );
        println!(
            "{:<8} {:>12} {:>12} {:>12}",
            "wait", "cpu", "wall", "of a core"
        );
        for (w, cpu, wall, pct) in rows {
            println!(
                "{:<8} {:>12} {:>12} {:>11.2}%",
                w.name(),
                fmt_ns(cpu),
                fmt_ns(wall),
                pct
            );
        }
    }
    Ok(())
}

/// This process's CPU time so far (user + system), ns.
fn cpu_time_ns() -> u64 {
    // SAFETY: `usage` is a plain C struct for which zeroes are valid, and
    // getrusage writes only inside it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// Worker role `idle`: waits `--count` ms on the empty queue `idle` and
/// reports its own CPU and wall time.
pub(super) fn idle(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let q = Queue::open_with("idle", &Options::new().dir(&a.dir))?;
    let wait = a.wait.unwrap_or(WaitArg::Futex).wait();
    let mut c = q.consumer("g", ConsumerOptions::new().wait(wait).create(true))?;
    let (cpu0, t0) = (cpu_time_ns(), Instant::now());
    let until = t0 + Duration::from_millis(a.count);
    if a.wait == Some(WaitArg::Async) {
        // An event loop's wait: arm, then poll(2) the fd until the end.
        c.readiness()?;
        while Instant::now() < until {
            if c.try_receive()?.is_some() {
                return Err(CliError::Other("idle: a message in an empty queue".into()));
            }
            if let shmq::Arm::Waiting { recheck_after } = c.arm()? {
                let left = until.saturating_duration_since(Instant::now());
                super::poll_readable(
                    c.readiness()?,
                    Some(recheck_after.map_or(left, |r| r.min(left))),
                );
                c.readiness()?.drain();
            }
        }
    } else {
        match c.receive_timeout(Duration::from_millis(a.count)) {
            Err(shmq::Error::Timeout) => {}
            Ok(_) => return Err(CliError::Other("idle: a message in an empty queue".into())),
            Err(e) => return Err(e.into()),
        }
    }
    let (cpu, wall) = (cpu_time_ns() - cpu0, t0.elapsed().as_nanos() as u64);
    Ok(serde_json::json!({"cpu_ns": cpu, "wall_ns": wall}))
}
