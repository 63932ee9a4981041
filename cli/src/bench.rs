//! `shmq bench`: producers and consumers as separate processes, pinned to
//! separate cores, busy-polling, with the bare baselines measured in the
//! same run (interleaved round by round, because these machines switch
//! between fast and slow modes from one run to the next).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shmq::{Ack, ConsumerOptions, Options, Overflow, Queue, Start, Wait};

use crate::baseline::Region;
use crate::plot::{self, Series};
use crate::{CliError, CliResult};

/// A worker that has not finished by then is killed and the bench fails.
const WORKER_TIMEOUT: Duration = Duration::from_secs(300);
/// Ring size for the throughput runs (shmq and the bare ring alike).
const TP_SLOTS: u64 = 4096;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckMode {
    /// At-most-once: the fast path.
    Auto,
    /// At-least-once: lease, then ack every message.
    Manual,
}

impl AckMode {
    fn consumer_options(self) -> ConsumerOptions {
        match self {
            AckMode::Auto => ConsumerOptions::new(),
            AckMode::Manual => ConsumerOptions::new().ack(Ack::Manual),
        }
    }
}

/// A consumer's wait strategy (`ConsumerOptions::wait`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitArg {
    /// Wait::BusySpin.
    Busy,
    /// Wait::SpinYield.
    Yield,
    /// Wait::SpinFutex (the default).
    Futex,
}

impl WaitArg {
    const ALL: [WaitArg; 3] = [WaitArg::Busy, WaitArg::Yield, WaitArg::Futex];

    fn wait(self) -> Wait {
        match self {
            WaitArg::Busy => Wait::BusySpin,
            WaitArg::Yield => Wait::SpinYield,
            WaitArg::Futex => Wait::SpinFutex,
        }
    }

    fn name(self) -> &'static str {
        match self {
            WaitArg::Busy => "busy",
            WaitArg::Yield => "yield",
            WaitArg::Futex => "futex",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One-way latency: ping-pong round trip / 2.
    Latency,
    /// Messages per second from producers to each group.
    Throughput,
    /// CPU use of a consumer waiting on an empty queue, per wait strategy.
    Idle,
}

/// `shmq bench` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    kind: Kind,
    /// Payload bytes (written and read whole).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Round trips (latency) or messages (throughput) per round.
    #[arg(long)]
    count: Option<u64>,
    /// Producer processes (throughput).
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consumer groups, one consumer process each (throughput).
    #[arg(long, default_value_t = 1)]
    groups: u32,
    /// Messages per publish_batch / receive_batch call (throughput; 1 =
    /// single publish and receive).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Acknowledgement mode of the consumers: auto, or manual (each
    /// message leased and acked).
    #[arg(long, value_enum, default_value = "auto")]
    ack: AckMode,
    /// Competing consumer processes per group (throughput, --ack manual).
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Latency: the two sides wait in `receive` with this strategy instead
    /// of busy-polling `try_receive`. Idle: measure only this strategy.
    #[arg(long, value_enum)]
    wait: Option<WaitArg>,
    /// Idle: seconds each idle consumer waits.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Latency: the receiving sides do not read the payload (a consumer
    /// that looks at the metadata only, as the Python benchmark's do).
    #[arg(long)]
    no_read: bool,
    /// Latency: slots of each of the two rings (default 64).
    #[arg(long)]
    slots: Option<u64>,
    /// Latency: also draw the distribution (percentile plot, shmq against
    /// the baseline) to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Throughput through the spill: an overflow=spill queue with a small
    /// ring; the producer publishes everything with no consumer running
    /// (so almost all of it goes to segment files), then a consumer is
    /// started and drains it. The baseline copies the same bytes into a
    /// preallocated, mapped file in the same directory (what the spill
    /// does, without the queue); `write(2)` of them is shown too.
    #[arg(long)]
    spill: bool,
    /// --spill: the segment files' directory (default: a scratch directory
    /// under /var/tmp).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// --spill: when spilled records are flushed: never, always, every-N.
    #[arg(long, default_value = "never")]
    sync: String,
    /// Rounds; shmq and the baseline alternate, and the figures merge all
    /// rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Internal worker arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct WorkerArgs {
    role: String,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    count: u64,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    core: Option<usize>,
    #[arg(long, default_value = "")]
    group: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    skip: u64,
    #[arg(long, value_enum, default_value = "auto")]
    ack: AckMode,
    #[arg(long, value_enum)]
    wait: Option<WaitArg>,
    #[arg(long)]
    no_read: bool,
}

impl WorkerArgs {
    /// The consumer options of a latency side: its ack mode and wait.
    fn consumer_options(&self) -> ConsumerOptions {
        let wait = self.wait.map_or(Wait::SpinFutex, WaitArg::wait);
        self.ack.consumer_options().wait(wait)
    }
}

/// Cores this process may run on.
fn allowed_cores() -> Vec<usize> {
    // SAFETY: `set` is a plain C struct, zero-initialized is valid, and we
    // pass its exact size to sched_getaffinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn pin(core: usize) {
    // SAFETY: as above; CPU_SET writes inside the zeroed set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        // Best effort: a failure only makes the figures noisier.
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> CliResult<Scratch> {
        let base = shmq::default_dir();
        let dir = base.join(format!("shmq-bench-{}", std::process::id()));
        std::fs::create_dir(&dir)
            .map_err(|e| CliError::Other(format!("creating {}: {e}", dir.display())))?;
        Ok(Scratch { dir })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(
    role: &str,
    dir: &Path,
    count: u64,
    size: usize,
    core: usize,
    extra: &[String],
) -> CliResult<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("__bench-worker")
        .arg(role)
        .arg("--dir")
        .arg(dir)
        .arg("--count")
        .arg(count.to_string())
        .arg("--size")
        .arg(size.to_string())
        .arg("--core")
        .arg(core.to_string())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    Ok(cmd.spawn()?)
}

/// Waits for every child (killing them all past the timeout) and returns
/// each one's stdout.
fn join(children: Vec<Child>) -> CliResult<Vec<String>> {
    let deadline = Instant::now() + WORKER_TIMEOUT;
    let mut children = children;
    let mut outputs = Vec::new();
    for i in 0..children.len() {
        loop {
            match children[i].try_wait()? {
                Some(status) => {
                    let mut out = String::new();
                    if let Some(mut so) = children[i].stdout.take() {
                        so.read_to_string(&mut out)?;
                    }
                    if !status.success() {
                        for c in children.iter_mut() {
                            let _ = c.kill();
                        }
                        return Err(CliError::Other(format!("bench worker failed: {status}")));
                    }
                    outputs.push(out);
                    break;
                }
                None if Instant::now() > deadline => {
                    for c in children.iter_mut() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    return Err(CliError::Other("bench worker timed out".into()));
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
    Ok(outputs)
}

fn parse_json(s: &str) -> CliResult<serde_json::Value> {
    serde_json::from_str(s.trim())
        .map_err(|e| CliError::Other(format!("bad worker output {s:?}: {e}")))
}

pub(crate) fn run(args: BenchArgs) -> CliResult {
    if args.size == 0
        || args.rounds == 0
        || args.producers == 0
        || args.groups == 0
        || args.batch == 0
        || args.consumers == 0
    {
        return Err(CliError::Other(
            "--size, --rounds, --producers, --groups, --consumers and --batch must be at least 1"
                .into(),
        ));
    }
    if args.ack == AckMode::Manual && args.batch > 1 {
        return Err(CliError::Other(
            "--batch is for --ack auto: ack=manual consumers receive one message at a time".into(),
        ));
    }
    if args.ack == AckMode::Auto && args.consumers > 1 {
        return Err(CliError::Other(
            "--consumers > 1 needs --ack manual (an ack=auto group has one consumer)".into(),
        ));
    }
    if args.plot.is_some() && args.kind != Kind::Latency {
        return Err(CliError::Other("--plot is for bench latency".into()));
    }
    let cores = allowed_cores();
    match args.kind {
        Kind::Latency => latency(&args, &cores),
        Kind::Throughput => throughput(&args, &cores),
        Kind::Idle => idle(&args, &cores),
    }
}

fn quantiles(h: &Histogram<u64>) -> [u64; 4] {
    [
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
}

fn latency(args: &BenchArgs, cores: &[usize]) -> CliResult {
    let count = args.count.unwrap_or(200_000);
    let warmup = count / 10;
    let (c0, c1) = (cores[0], cores[cores.len().min(2) - 1]);
    let mut shmq_h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut base_h = shmq_h.clone();
    let scratch = Scratch::new()?;
    for round in 0..args.rounds {
        // Baseline: bare cache-line ping-pong.
        let region = scratch.dir.join(format!("pingpong-{round}"));
        Region::create(&region, 1, 1)?;
        let extra = |skip: u64| vec!["--skip".to_string(), skip.to_string()];
        let pong = spawn("base-pong", &region, count + warmup, 1, c1, &[])?;
        let ping = spawn("base-ping", &region, count + warmup, 1, c0, &extra(warmup))?;
        let out = join(vec![ping, pong])?;
        record(&mut base_h, &out[0])?;
        // shmq: two queues, one each way.
        let dir = scratch.dir.join(format!("shmq-{round}"));
        std::fs::create_dir(&dir)?;
        let opts = Options::new()
            .dir(&dir)
            .slots(args.slots.unwrap_or(64))
            .slot_size(args.size);
        for (name, group) in [("ping", "pong"), ("pong", "ping")] {
            Queue::create(name, &opts)?.create_group(group, Start::Earliest)?;
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
        let pong = spawn("pong", &dir, count + warmup, args.size, c1, &ack)?;
        let mut ping_args = extra(warmup);
        ping_args.extend(ack);
        let ping = spawn("ping", &dir, count + warmup, args.size, c0, &ping_args)?;
        let out = join(vec![ping, pong])?;
        record(&mut shmq_h, &out[0])?;
    }
    let s = quantiles(&shmq_h);
    let b = quantiles(&base_h);
    let ratio = |i: usize| s[i] as f64 / b[i].max(1) as f64;
    let waiting = match args.wait {
        Some(w) => format!("receive() with wait={}", w.name()),
        None => "busy polling".to_string(),
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
                    name: "cache-line ping-pong (baseline)",
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
                "read": !args.no_read,
                "count": count * args.rounds as u64,
                "rounds": args.rounds,
                "p50_ns": s[0], "p99_ns": s[1], "p999_ns": s[2], "max_ns": s[3],
                "baseline_p50_ns": b[0], "baseline_p99_ns": b[1],
                "baseline_p999_ns": b[2], "baseline_max_ns": b[3],
                "ratio_p50": ratio(0), "ratio_p99": ratio(1), "ratio_p999": ratio(2),
                "wait": args.wait.map(WaitArg::name),
            })
        );
    } else {
        println!(
            "shmq bench latency: one-way (round trip / 2), {} B payload{}, {} round trips x {} rounds, 2 processes on cores {c0} and {c1}, {waiting}",
            args.size,
            if args.no_read { " (not read)" } else { "" },
            count,
            args.rounds
        );
        println!(
            "{:<28} {:>10} {:>10} {:>10} {:>10}",
            "", "p50", "p99", "p99.9", "max"
        );
        println!(
            "{:<28} {:>10} {:>10} {:>10} {:>10}",
            "baseline (cache-line ping-pong)",
            fmt_ns(b[0]),
            fmt_ns(b[1]),
            fmt_ns(b[2]),
            fmt_ns(b[3])
        );
        println!(
            "{:<28} {:>10} {:>10} {:>10} {:>10}",
            "shmq",
            fmt_ns(s[0]),
            fmt_ns(s[1]),
            fmt_ns(s[2]),
            fmt_ns(s[3])
        );
        println!(
            "{:<28} {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x",
            "shmq / baseline",
            ratio(0),
            ratio(1),
            ratio(2),
            ratio(3)
        );
    }
    Ok(())
}

/// Each wait strategy's consumer waits `--seconds` on an empty queue,
/// pinned like the latency consumer; its own CPU time (user + system,
/// getrusage) over that wall time is the share of a core it used.
fn idle(args: &BenchArgs, cores: &[usize]) -> CliResult {
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

fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

fn throughput(args: &BenchArgs, cores: &[usize]) -> CliResult {
    if args.spill {
        return spill_throughput(args, cores);
    }
    let count = args.count.unwrap_or(5_000_000);
    let core = |i: usize| cores[i % cores.len()];
    let scratch = Scratch::new()?;
    let (mut shmq_rates, mut base_rates) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        // Baseline: bare single-producer ring of plain stores.
        let region = scratch.dir.join(format!("ring-{round}"));
        Region::create(&region, TP_SLOTS as usize, args.size)?;
        let cons = spawn("base-consume", &region, count, args.size, core(1), &[])?;
        let prod = spawn("base-produce", &region, count, args.size, core(0), &[])?;
        let out = join(vec![cons, prod])?;
        let elapsed = parse_json(&out[0])?["elapsed_ns"].as_u64().unwrap_or(0);
        base_rates.push(count as f64 / (elapsed.max(1) as f64 / 1e9));
        // shmq: P producers, G groups with one consumer each.
        let dir = scratch.dir.join(format!("shmq-{round}"));
        std::fs::create_dir(&dir)?;
        let opts = Options::new()
            .dir(&dir)
            .slots(TP_SLOTS)
            .slot_size(args.size)
            .overflow(Overflow::Block);
        let q = Queue::create("tp", &opts)?;
        for g in 0..args.groups {
            q.create_group(&format!("g{g}"), Start::Earliest)?;
        }
        let batch = vec!["--batch".to_string(), args.batch.to_string()];
        let mut children = Vec::new();
        let consumers = args.groups * args.consumers;
        for i in 0..consumers {
            let g = i / args.consumers;
            let mut extra = batch.clone();
            extra.extend(["--group".to_string(), format!("g{g}")]);
            let role = match args.ack {
                AckMode::Auto => "consume",
                AckMode::Manual => "consume-manual",
            };
            children.push(spawn(
                role,
                &dir,
                count,
                args.size,
                core(1 + i as usize),
                &extra,
            )?);
        }
        let per = count / args.producers as u64;
        for p in 0..args.producers {
            let n = if p == 0 {
                count - per * (args.producers as u64 - 1)
            } else {
                per
            };
            children.push(spawn(
                "produce",
                &dir,
                n,
                args.size,
                core(p as usize),
                &batch,
            )?);
        }
        let out = join(children)?;
        let mut slowest = 0;
        for group in out[..consumers as usize].chunks(args.consumers as usize) {
            // A group's time runs from its first delivery to its last ack,
            // over all its consumers (CLOCK_REALTIME, comparable across
            // processes).
            let (mut first, mut last) = (u64::MAX, 0);
            for o in group {
                let v = parse_json(o)?;
                first = first.min(v["first_ns"].as_u64().unwrap_or(u64::MAX));
                last = last.max(v["last_ns"].as_u64().unwrap_or(0));
            }
            slowest = slowest.max(last.saturating_sub(first));
        }
        shmq_rates.push(count as f64 / (slowest.max(1) as f64 / 1e9));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let spread = |v: &[f64]| (v[0], v[v.len() - 1]);
    let (s, b) = (median(&mut shmq_rates), median(&mut base_rates));
    let mb = |r: f64| r * args.size as f64 / 1e6;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "throughput",
                "size": args.size,
                "count": count,
                "rounds": args.rounds,
                "producers": args.producers,
                "groups": args.groups,
                "consumers": args.consumers,
                "ack": format!("{:?}", args.ack).to_lowercase(),
                "batch": args.batch,
                "msgs_per_s": s,
                "mb_per_s": mb(s),
                "baseline_msgs_per_s": b,
                "baseline_mb_per_s": mb(b),
                "ratio": s / b,
                "msgs_per_s_min": spread(&shmq_rates).0,
                "msgs_per_s_max": spread(&shmq_rates).1,
            })
        );
    } else {
        println!(
            "shmq bench throughput: {} B payload, {} messages x {} rounds, {} producer(s), {} group(s) x {} consumer(s), ack={:?}, batch {}, cores {:?}",
            args.size,
            count,
            args.rounds,
            args.producers,
            args.groups,
            args.consumers,
            args.ack,
            args.batch,
            cores
        );
        println!(
            "{:<34} {:>14} {:>10}   (min .. max over rounds)",
            "", "msgs/s", "MB/s"
        );
        let (bl, bh) = spread(&base_rates);
        let (sl, sh) = spread(&shmq_rates);
        println!(
            "{:<34} {:>14.0} {:>10.1}   ({bl:.0} .. {bh:.0})",
            "baseline (bare SPSC ring)",
            b,
            mb(b)
        );
        println!(
            "{:<34} {:>14.0} {:>10.1}   ({sl:.0} .. {sh:.0})",
            "shmq (per group)",
            s,
            mb(s)
        );
        println!("{:<34} {:>13.2}x", "shmq / baseline", s / b);
    }
    drop(scratch);
    Ok(())
}

/// `bench throughput --spill`: publish with no consumer (into the spill),
/// then drain with a consumer started afterwards; against copying the same
/// bytes into a mapped file in the same directory.
fn spill_throughput(args: &BenchArgs, cores: &[usize]) -> CliResult {
    let count = args.count.unwrap_or(1_000_000);
    let sync: shmq::SyncMode = args.sync.parse()?;
    let core = |i: usize| cores[i % cores.len()];
    let scratch = Scratch::new()?;
    let spill_base = match &args.spill_dir {
        Some(d) => d.join(format!("shmq-bench-spill-{}", std::process::id())),
        None => PathBuf::from(format!("/var/tmp/shmq-bench-spill-{}", std::process::id())),
    };
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    std::fs::create_dir_all(&spill_base)?;
    let _cleanup = Cleanup(spill_base.clone());
    let bytes = count * args.size as u64;
    let (mut into, mut out_of, mut base, mut written) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let file = spill_base.join(format!("baseline-{round}"));
        let t0 = Instant::now();
        join(vec![spawn(
            "base-map",
            &file,
            count,
            args.size,
            core(0),
            &[],
        )?])?;
        base.push(bytes as f64 / t0.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&file);
        let t0 = Instant::now();
        join(vec![spawn(
            "base-write",
            &file,
            count,
            args.size,
            core(0),
            &[],
        )?])?;
        written.push(bytes as f64 / t0.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&file);

        let dir = scratch.dir.join(format!("spill-{round}"));
        std::fs::create_dir(&dir)?;
        let segment = 64u64 << 20;
        let need = count * (args.size as u64 + 48);
        let opts = Options::new()
            .dir(&dir)
            .slots(1024)
            .slot_size(args.size)
            .overflow(Overflow::Spill)
            .spill_dir(spill_base.join(format!("spill-{round}")))
            .spill_segment_size(segment)
            .spill_max_bytes((need / segment + 2) * segment)
            .sync(sync);
        let q = Queue::create("tp", &opts)?;
        q.create_group("g0", Start::Earliest)?;
        let t0 = Instant::now();
        join(vec![spawn(
            "produce",
            &dir,
            count,
            args.size,
            core(0),
            &[],
        )?])?;
        into.push(bytes as f64 / t0.elapsed().as_secs_f64());
        let spilled = q.stats().spilled;
        let t0 = Instant::now();
        let extra = ["--group".to_string(), "g0".to_string()];
        join(vec![spawn(
            "consume",
            &dir,
            count,
            args.size,
            core(1),
            &extra,
        )?])?;
        out_of.push(bytes as f64 / t0.elapsed().as_secs_f64());
        if spilled < count / 2 {
            return Err(CliError::Other(format!(
                "only {spilled} of {count} messages were spilled"
            )));
        }
        drop(q);
        Queue::remove("tp", &opts)?;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (i, o, b) = (median(&mut into), median(&mut out_of), median(&mut base));
    let w = median(&mut written);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "throughput-spill",
                "size": args.size,
                "count": count,
                "rounds": args.rounds,
                "sync": sync.to_string(),
                "spill_mb_per_s": i / 1e6,
                "drain_mb_per_s": o / 1e6,
                "msgs_per_s": i / args.size as f64,
                "mb_per_s": i / 1e6,
                "drain_msgs_per_s": o / args.size as f64,
                "baseline_mb_per_s": b / 1e6,
                "write_mb_per_s": w / 1e6,
                "ratio": i / b,
                "drain_ratio": o / b,
            })
        );
    } else {
        println!(
            "shmq bench throughput --spill: {} B payload, {} messages ({:.0} MB) x {} rounds, sync {}, spill under {}",
            args.size,
            count,
            bytes as f64 / 1e6,
            args.rounds,
            sync,
            spill_base.display()
        );
        println!("{:<50} {:>10} {:>14}", "", "MB/s", "msgs/s");
        let row = |name: &str, r: f64| {
            println!(
                "{name:<50} {:>10.0} {:>14.0}",
                r / 1e6,
                r / args.size as f64
            )
        };
        row(
            "baseline (memcpy into mapped, preallocated 64 MiB files)",
            b,
        );
        row("write(2) of the same bytes, 1 MiB calls", w);
        row("shmq publish into the spill", i);
        row("shmq consumer draining the spill", o);
        println!("{:<50} {:>9.2}x", "publish / baseline", i / b);
        println!("{:<50} {:>9.2}x", "drain / baseline", o / b);
    }
    Ok(())
}

/// One process of a benchmark; prints one JSON line.
pub(crate) fn worker(a: WorkerArgs) -> CliResult {
    if let Some(c) = a.core {
        pin(c);
    }
    let out = match a.role.as_str() {
        "base-ping" => {
            let r = Region::open(&a.dir, 1, 1)?;
            let rtts = r.ping(a.count);
            samples(&a.dir, &rtts[a.skip as usize..])?
        }
        "base-pong" => {
            Region::open(&a.dir, 1, 1)?.pong(a.count);
            serde_json::json!({})
        }
        "base-write" => {
            // `--dir` is the file to write: `count` records of `size` bytes
            // in 1 MiB writes.
            use std::io::Write;
            let mut f = std::fs::File::create(&a.dir)?;
            let chunk = vec![7u8; (1 << 20) / a.size.max(1) * a.size.max(1)];
            let mut left = a.count * a.size as u64;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            serde_json::json!({})
        }
        "base-map" => {
            // `--dir` names the files: 64 MiB ones (as the spill's
            // segments), preallocated and mapped, `count` records of
            // `size` bytes copied in.
            const FILE: u64 = 64 << 20;
            let payload = vec![7u8; a.size.max(1)];
            let mut left = a.count;
            let mut n = 0;
            while left > 0 {
                let path = a.dir.with_extension(format!("{n}"));
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, FILE)
                    .map_err(std::io::Error::from)?;
                // SAFETY: the file is ours (just created, private to this
                // run) and FILE bytes long; nothing else maps it.
                let mut map = unsafe { memmap2::MmapMut::map_mut(&f)? };
                for rec in map.chunks_exact_mut(payload.len()) {
                    if left == 0 {
                        break;
                    }
                    rec.copy_from_slice(&payload);
                    left -= 1;
                }
                drop(map);
                let _ = std::fs::remove_file(&path);
                n += 1;
            }
            serde_json::json!({})
        }
        "base-produce" => {
            let r = Region::open(&a.dir, TP_SLOTS as usize, a.size)?;
            r.produce(a.count, &vec![7u8; a.size]);
            serde_json::json!({})
        }
        "base-consume" => {
            let r = Region::open(&a.dir, TP_SLOTS as usize, a.size)?;
            let (elapsed, sum) = r.consume(a.count, a.size);
            serde_json::json!({"elapsed_ns": elapsed, "sum": sum})
        }
        "ping" => {
            let opts = Options::new().dir(&a.dir);
            let mut p = Queue::open_with("ping", &opts)?.producer()?;
            let mut c = Queue::open_with("pong", &opts)?.consumer("ping", a.consumer_options())?;
            let payload = vec![1u8; a.size];
            let mut buf = vec![0u8; a.size];
            let mut rtts = Vec::with_capacity(a.count as usize);
            for _ in 0..a.count {
                let t0 = Instant::now();
                p.publish(&payload)?;
                receive_into(&mut c, &mut buf, a.wait.is_some(), !a.no_read)?;
                rtts.push(t0.elapsed().as_nanos() as u64);
            }
            samples(&a.dir, &rtts[a.skip as usize..])?
        }
        "pong" => {
            let opts = Options::new().dir(&a.dir);
            let mut p = Queue::open_with("pong", &opts)?.producer()?;
            let mut c = Queue::open_with("ping", &opts)?.consumer("pong", a.consumer_options())?;
            let mut buf = vec![0u8; a.size];
            for _ in 0..a.count {
                receive_into(&mut c, &mut buf, a.wait.is_some(), !a.no_read)?;
                p.publish(&buf)?;
            }
            serde_json::json!({})
        }
        "idle" => {
            let q = Queue::open_with("idle", &Options::new().dir(&a.dir))?;
            let wait = a.wait.unwrap_or(WaitArg::Futex).wait();
            let mut c = q.consumer("g", ConsumerOptions::new().wait(wait))?;
            let (cpu0, t0) = (cpu_time_ns(), Instant::now());
            match c.receive_timeout(Duration::from_millis(a.count)) {
                Err(shmq::Error::Timeout) => {}
                Ok(_) => return Err(CliError::Other("idle: a message in an empty queue".into())),
                Err(e) => return Err(e.into()),
            }
            let (cpu, wall) = (cpu_time_ns() - cpu0, t0.elapsed().as_nanos() as u64);
            serde_json::json!({"cpu_ns": cpu, "wall_ns": wall})
        }
        "produce" => {
            let q = Queue::open_with("tp", &Options::new().dir(&a.dir))?;
            let mut p = q.producer()?;
            let payload = vec![7u8; a.size];
            if a.batch <= 1 {
                for _ in 0..a.count {
                    p.publish(&payload)?;
                }
            } else {
                let msgs: Vec<&[u8]> = vec![&payload[..]; a.batch];
                let mut left = a.count;
                while left > 0 {
                    let n = left.min(a.batch as u64) as usize;
                    p.publish_batch(&msgs[..n])?;
                    left -= n as u64;
                }
            }
            serde_json::json!({})
        }
        "consume" => {
            let q = Queue::open_with("tp", &Options::new().dir(&a.dir))?;
            let mut c = q.consumer(&a.group, ConsumerOptions::new())?;
            let mut buf = vec![0u8; a.size];
            let mut sum = 0u64;
            let mut got = 0;
            let mut start = None;
            while got < a.count {
                if a.batch <= 1 {
                    if let Some(m) = c.try_receive()? {
                        start.get_or_insert_with(Instant::now);
                        buf.copy_from_slice(m.payload());
                        // black_box: the whole copy counts (the compiler may not drop the
                        // bytes that nothing reads).
                        sum = sum.wrapping_add(std::hint::black_box(&mut buf)[0] as u64);
                        got += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                } else {
                    let b = c.receive_batch(a.batch, Duration::ZERO)?;
                    for m in b.iter() {
                        start.get_or_insert_with(Instant::now);
                        buf.copy_from_slice(m.payload());
                        // black_box: the whole copy counts (the compiler may not drop the
                        // bytes that nothing reads).
                        sum = sum.wrapping_add(std::hint::black_box(&mut buf)[0] as u64);
                        got += 1;
                    }
                }
            }
            let elapsed = start.map(|s| s.elapsed().as_nanos() as u64).unwrap_or(0);
            let last_ns = realtime_ns();
            serde_json::json!({
                "elapsed_ns": elapsed,
                "sum": sum,
                "first_ns": last_ns - elapsed,
                "last_ns": last_ns,
            })
        }
        "consume-manual" => {
            // Competing consumers: each leases, copies and acks until the
            // group has nothing more for a while (the idle tail is not
            // counted).
            let q = Queue::open_with("tp", &Options::new().dir(&a.dir))?;
            let mut c = q.consumer(&a.group, AckMode::Manual.consumer_options())?;
            let mut buf = vec![0u8; a.size];
            let (mut first, mut last, mut got) = (None, 0u64, 0u64);
            let mut idle_since = Instant::now();
            loop {
                match c.try_receive()? {
                    Some(m) => {
                        first.get_or_insert_with(realtime_ns);
                        buf.copy_from_slice(m.payload());
                        m.ack()?;
                        last = realtime_ns();
                        got += 1;
                        idle_since = Instant::now();
                    }
                    None => {
                        let idle = idle_since.elapsed();
                        if (first.is_some() && idle > Duration::from_millis(200))
                            || idle > WORKER_TIMEOUT
                        {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            }
            serde_json::json!({"first_ns": first.unwrap_or(u64::MAX), "last_ns": last, "got": got})
        }
        other => return Err(CliError::Other(format!("unknown bench role {other}"))),
    };
    println!("{out}");
    Ok(())
}

/// Receives one message, copies it into `buf` if `read`, and acks it:
/// with `receive` (the consumer's wait strategy) or by busy-polling
/// `try_receive`.
#[inline(always)]
fn receive_into(c: &mut shmq::Consumer, buf: &mut [u8], wait: bool, read: bool) -> CliResult {
    if wait {
        return receive_waiting(c, buf, read);
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

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Writes samples next to the region/queue dir and returns where.
fn samples(dir: &Path, rtts: &[u64]) -> CliResult<serde_json::Value> {
    let path = PathBuf::from(format!("{}.samples", dir.display()));
    let bytes: Vec<u8> = rtts.iter().flat_map(|r| r.to_le_bytes()).collect();
    std::fs::write(&path, bytes)?;
    Ok(serde_json::json!({"samples": path}))
}
