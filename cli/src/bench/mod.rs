//! `shmq bench`: producers and consumers as separate processes, pinned to
//! separate cores, busy-polling, with the bare baselines measured in the
//! same run (interleaved round by round, because these machines switch
//! between fast and slow modes from one run to the next).
//!
//! This module holds the arguments, the entry points (`run` for the bench,
//! `worker` for each process it spawns) and what the benches share:
//! pinning, spawning and joining the workers, their JSON output, and the
//! tables' number format. Each bench kind is a module of its own, with the
//! worker roles it spawns.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Wait};

use crate::{CliError, CliResult};

mod baseline;
mod idle;
mod latency;
mod plot;
mod throughput;

/// A worker that has not finished by then is killed and the bench fails.
const WORKER_TIMEOUT: Duration = Duration::from_secs(300);

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
            AckMode::Auto => ConsumerOptions::new().create(true),
            AckMode::Manual => ConsumerOptions::new().ack(Ack::Manual).create(true),
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
    /// No spinning: the readiness fd (`Consumer::arm`, then poll(2) on the
    /// doorbell), as an event loop waits.
    Async,
}

impl WaitArg {
    const ALL: [WaitArg; 4] = [
        WaitArg::Busy,
        WaitArg::Yield,
        WaitArg::Futex,
        WaitArg::Async,
    ];

    fn wait(self) -> Wait {
        match self {
            WaitArg::Busy => Wait::BusySpin,
            WaitArg::Yield => Wait::SpinYield,
            // The async side never calls a waiting receive.
            WaitArg::Futex | WaitArg::Async => Wait::SpinFutex,
        }
    }

    fn name(self) -> &'static str {
        match self {
            WaitArg::Busy => "busy",
            WaitArg::Yield => "yield",
            WaitArg::Futex => "futex",
            WaitArg::Async => "async",
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
    /// Throughput: publish every message with one of this many ordering
    /// keys, round robin (0: unkeyed). With --ack manual the consumers
    /// keep each key's order.
    #[arg(long, default_value_t = 0)]
    keys: u64,
    /// Latency: the two sides wait in `receive` with this strategy instead
    /// of busy-polling `try_receive`. Idle: measure only this strategy.
    #[arg(long, value_enum)]
    wait: Option<WaitArg>,
    /// Latency: the pinging side sleeps this many microseconds before each
    /// ping and busy-polls for the echo, so that only the echoing side's
    /// wait is measured, from asleep (with --wait futex or async: the
    /// wake-up's cost).
    #[arg(long, default_value_t = 0)]
    gap_us: u64,
    /// Idle: seconds each idle consumer waits.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Latency: the receiving sides do not read the payload (a consumer
    /// that looks at the metadata only, as the Python benchmark's do).
    #[arg(long)]
    no_read: bool,
    /// Latency: neither side touches the payload: the sender reserves
    /// `--size` bytes and commits them unwritten, the receiver looks at the
    /// metadata only (a loan, as iceoryx2 measures its large samples). The
    /// baseline then hands off a flag alone.
    #[arg(long)]
    loan: bool,
    /// Latency: slots of each of the two rings (default 64, or enough for
    /// a message of `--size` with `--slot-size`).
    #[arg(long)]
    slots: Option<u64>,
    /// Latency: the queues' slot size (default `--size`: a message takes
    /// one slot). Smaller, a message takes as many slots as it needs.
    #[arg(long)]
    slot_size: Option<usize>,
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
    #[arg(long, default_value_t = 0)]
    keys: u64,
    #[arg(long, value_enum, default_value = "auto")]
    ack: AckMode,
    #[arg(long, value_enum)]
    wait: Option<WaitArg>,
    #[arg(long)]
    no_read: bool,
    #[arg(long)]
    loan: bool,
    #[arg(long, default_value_t = 0)]
    gap_us: u64,
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
        Kind::Latency => latency::run(&args, &cores),
        Kind::Throughput => throughput::run(&args, &cores),
        Kind::Idle => idle::run(&args, &cores),
    }
}

/// The cache hints a bench's producers took, for `--json`.
fn hints_json(h: shmq::CacheHints) -> serde_json::Value {
    serde_json::json!({
        "demote": h.demote,
        "cpu_has_cldemote": h.cpu_has_cldemote,
        "prefetch_slots": h.prefetch_slots,
        "lines_per_slot": h.lines_per_slot,
        "text": h.to_string(),
    })
}

/// Waits until `fd` is readable, at most `timeout` (`None`: no bound):
/// poll(2), as an event loop would.
fn poll_readable(fd: &shmq::Readiness, timeout: Option<Duration>) {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: one valid pollfd and its count; EINTR or a timeout only
    // bring the caller back to try again.
    unsafe { libc::poll(&mut p, 1, ms) };
}

/// The rounds done so far, on a bar while a person watches (never with
/// --json).
fn rounds_progress(args: &BenchArgs) -> crate::progress::Progress {
    crate::progress::Progress::new(
        match args.kind {
            Kind::Latency => "bench latency",
            Kind::Throughput => "bench throughput",
            Kind::Idle => "bench idle",
        },
        Some(u64::from(args.rounds)),
        "rounds",
        !args.json,
    )
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

/// One process of a benchmark; prints one JSON line.
pub(crate) fn worker(a: WorkerArgs) -> CliResult {
    if let Some(c) = a.core {
        pin(c);
    }
    let out = match a.role.as_str() {
        "base-ping" => latency::base_ping(&a)?,
        "base-pong" => latency::base_pong(&a)?,
        "base-write" => throughput::base_write(&a)?,
        "base-map" => throughput::base_map(&a)?,
        "base-produce" => throughput::base_produce(&a)?,
        "base-consume" => throughput::base_consume(&a)?,
        "ping" => latency::ping(&a)?,
        "pong" => latency::pong(&a)?,
        "idle" => idle::idle(&a)?,
        "produce" => throughput::produce(&a)?,
        "consume" => throughput::consume(&a)?,
        "consume-manual" => throughput::consume_manual(&a)?,
        other => return Err(CliError::Other(format!("unknown bench role {other}"))),
    };
    println!("{out}");
    Ok(())
}
