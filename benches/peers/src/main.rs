//! `shmq-peers`: shmq beside iceoryx2, a Unix domain socket, a pipe and the
//! bare baselines, all measured by one method in the same run.
//!
//! Every measurement is two processes pinned to two cores (0 and 1 unless
//! the affinity mask says otherwise), busy-polling:
//!
//! - latency: ping-pong, one link each way; one-way = round trip / 2 into
//!   an HDR histogram; p50, p99, p99.9; ratio to a cache-line ping-pong
//!   measured just before it;
//! - throughput: one producer, one consumer, messages/s from the first
//!   message received to the last; ratio to a bare ring measured just
//!   before it.
//!
//! Each payload is written whole by the sender and copied out whole by the
//! receiver. A run measures every peer once, in turn, each after its own
//! baseline (this machine switches between a fast and a slow mode now and
//! then, rarely between two adjacent measurements); `--runs` runs are made
//! (3 by default) and the table shows the median of each figure and of
//! each ratio with its spread (min–max over the runs).
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- \
//!     [--runs 3] [--large] [--json] [--save FILE.json] [--from FILE.json]
//! ```
//!
//! `--large` measures payloads of 64 KiB, 1 MiB and 4 MiB instead (shmq,
//! iceoryx2 and the bare ring, which is then the latency baseline too: the
//! same bytes written and read whole), in rings of 64 MiB (shmq's slots
//! 4064 bytes: a message takes many), with the counts cut to 4 GiB of
//! payload per figure.

mod bare;
mod link;
mod peers;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use link::Res;
use peers::slots_for;

/// A worker that has not finished by then is killed and the run fails.
const WORKER_TIMEOUT: Duration = Duration::from_secs(300);

/// What moves the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// One word bounced between the cores (latency baseline).
    CacheLine,
    /// The single-producer ring of plain stores (throughput baseline).
    Ring,
    /// The same ring with a sequence word per slot instead of `tail`.
    SlotRing,
    Shmq,
    Iceoryx2,
    Uds,
    Pipe,
}

const LATENCY_PEERS: [Peer; 7] = [
    Peer::CacheLine,
    Peer::Ring,
    Peer::SlotRing,
    Peer::Shmq,
    Peer::Iceoryx2,
    Peer::Uds,
    Peer::Pipe,
];
const THROUGHPUT_PEERS: [Peer; 6] = [
    Peer::Ring,
    Peer::SlotRing,
    Peer::Shmq,
    Peer::Iceoryx2,
    Peer::Uds,
    Peer::Pipe,
];
const LATENCY_SIZES: [usize; 3] = [8, 64, 1024];
const THROUGHPUT_SIZES: [usize; 2] = [64, 1024];
/// `--large`: payloads written and read whole, against the bare ring
/// (latency and throughput), shmq beside iceoryx2.
const LARGE_SIZES: [usize; 3] = [64 << 10, 1 << 20, 4 << 20];
const LARGE_PEERS: [Peer; 3] = [Peer::Ring, Peer::Shmq, Peer::Iceoryx2];
/// `--large`: the counts are cut to at most this many bytes of payload
/// per figure (each way), so that a 4 MiB figure takes seconds.
const LARGE_BYTES: u64 = 4 << 30;

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::CacheLine => "cache-line ping-pong",
            Peer::Ring => "bare SPSC ring",
            Peer::SlotRing => "bare ring, word per slot",
            Peer::Shmq => "shmq",
            Peer::Iceoryx2 => "iceoryx2 0.10.0",
            Peer::Uds => "Unix socket",
            Peer::Pipe => "pipe",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Peer::CacheLine => "cacheline",
            Peer::Ring => "ring",
            Peer::SlotRing => "slotring",
            Peer::Shmq => "shmq",
            Peer::Iceoryx2 => "iceoryx2",
            Peer::Uds => "uds",
            Peer::Pipe => "pipe",
        }
    }

    fn from_key(s: &str) -> Res<Peer> {
        LATENCY_PEERS
            .into_iter()
            .find(|p| p.key() == s)
            .ok_or_else(|| format!("unknown peer {s:?}").into())
    }
}

/// Command-line settings.
struct Args {
    runs: u32,
    latency_count: u64,
    throughput_count: u64,
    json: bool,
    /// Also write the JSON to this file (the table still printed).
    save: Option<PathBuf>,
    /// Measure nothing: print the table of a file `--save` wrote.
    from: Option<PathBuf>,
    /// The peers to measure (default all; the baselines are always
    /// measured, every ratio needs them).
    peers: Vec<Peer>,
    latency: bool,
    throughput: bool,
    /// The large payloads (`LARGE_SIZES`) instead.
    large: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: shmq-peers [--runs N] [--latency-count ROUND_TRIPS] [--throughput-count MESSAGES] [--peer shmq|iceoryx2|uds|pipe]... [--latency-only | --throughput-only] [--large] [--json] [--save FILE.json | --from FILE.json]"
    );
    std::process::exit(64)
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        runs: 3,
        latency_count: 100_000,
        throughput_count: 1_000_000,
        json: false,
        save: None,
        from: None,
        peers: Vec::new(),
        latency: true,
        throughput: true,
        large: false,
    };
    while let Some(flag) = it.next() {
        let mut num = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .unwrap_or_else(|| usage())
        };
        match flag.as_str() {
            "--runs" => a.runs = num() as u32,
            "--latency-count" => a.latency_count = num(),
            "--throughput-count" => a.throughput_count = num().max(2),
            "--json" => a.json = true,
            "--save" => a.save = Some(it.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "--from" => a.from = Some(it.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "--peer" => {
                let p = it.next().and_then(|k| Peer::from_key(&k).ok());
                a.peers.push(p.unwrap_or_else(|| usage()));
            }
            "--latency-only" => a.throughput = false,
            "--throughput-only" => a.latency = false,
            "--large" => a.large = true,
            _ => usage(),
        }
    }
    if a.peers.is_empty() {
        a.peers = LATENCY_PEERS.to_vec();
    }
    a.peers
        .extend([Peer::CacheLine, Peer::Ring, Peer::SlotRing]);
    a
}

fn main() {
    let mut argv = std::env::args().skip(1).peekable();
    let result = if argv.peek().map(String::as_str) == Some("__worker") {
        argv.next();
        worker(argv.collect())
    } else {
        run(parse_args(argv))
    };
    if let Err(e) = result {
        eprintln!("shmq-peers: {e}");
        std::process::exit(1);
    }
}

// ---- processes -------------------------------------------------------------

/// Cores this process may run on.
fn allowed_cores() -> Vec<usize> {
    // SAFETY: `set` is a plain C struct for which all zeroes is valid, and
    // its exact size is passed.
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

fn pin(core: usize) -> Res<()> {
    // SAFETY: as in `allowed_cores`; CPU_SET writes inside the zeroed set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "pinning to core {core}: {}",
                std::io::Error::last_os_error()
            )
            .into());
        }
    }
    Ok(())
}

/// One measurement's worker: `role` of `peer`, in `dir`.
struct Job<'a> {
    peer: Peer,
    role: &'a str,
    dir: &'a Path,
    size: usize,
    count: u64,
    warmup: u64,
    core: usize,
}

fn spawn(j: &Job) -> Res<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .arg("__worker")
        .args([j.peer.key(), j.role])
        .arg(j.dir)
        .args([
            j.size.to_string(),
            j.count.to_string(),
            j.warmup.to_string(),
            j.core.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?)
}

/// Waits for every child (killing them all past the timeout or when one
/// fails) and returns each one's stdout.
fn join(mut children: Vec<Child>) -> Res<Vec<String>> {
    let deadline = Instant::now() + WORKER_TIMEOUT;
    let mut outputs = Vec::new();
    let kill_all = |children: &mut Vec<Child>| {
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    for i in 0..children.len() {
        loop {
            match children[i].try_wait()? {
                Some(status) => {
                    let mut out = String::new();
                    if let Some(mut so) = children[i].stdout.take() {
                        so.read_to_string(&mut out)?;
                    }
                    if !status.success() {
                        kill_all(&mut children);
                        return Err(format!("worker failed: {status}").into());
                    }
                    outputs.push(out);
                    break;
                }
                None if Instant::now() > deadline => {
                    kill_all(&mut children);
                    return Err("worker timed out".into());
                }
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
    Ok(outputs)
}

/// A scratch directory in /dev/shm (or the temp dir), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Res<Scratch> {
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("shmq-peers-{}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- one measurement -------------------------------------------------------

/// What one measurement gave.
#[derive(Clone, Copy, Debug)]
enum Figure {
    /// One-way latency quantiles, ns: p50, p99, p99.9, max.
    Latency([u64; 4]),
    /// Messages per second, and the messages that arrived out of order
    /// or not at all (see [`link::Streamed`]).
    Throughput(f64, u64),
}

impl Figure {
    fn json(&self) -> serde_json::Value {
        match *self {
            Figure::Latency(q) => serde_json::json!({
                "p50_ns": q[0], "p99_ns": q[1], "p999_ns": q[2], "max_ns": q[3],
            }),
            Figure::Throughput(r, d) => serde_json::json!({"msgs_per_s": r, "disorder": d}),
        }
    }

    fn from_json(v: &serde_json::Value, latency: bool) -> Option<Figure> {
        let u = |k: &str| v[k].as_u64();
        Some(if latency {
            Figure::Latency([u("p50_ns")?, u("p99_ns")?, u("p999_ns")?, u("max_ns")?])
        } else {
            Figure::Throughput(v["msgs_per_s"].as_f64()?, u("disorder")?)
        })
    }
}

/// Makes what the workers of `peer` open (queues, region files, FIFOs).
fn prepare(peer: Peer, dir: &Path, size: usize) -> Res<()> {
    std::fs::create_dir(dir)?;
    match peer {
        Peer::CacheLine => Ok(bare::Region::create(&dir.join("a"), 1, 1)?),
        Peer::Ring => {
            bare::Region::create(&dir.join("a"), slots_for(size), size)?;
            Ok(bare::Region::create(&dir.join("b"), slots_for(size), size)?)
        }
        Peer::SlotRing => {
            bare::Region::create(&dir.join("a"), slots_for(size), size + 8)?;
            Ok(bare::Region::create(
                &dir.join("b"),
                slots_for(size),
                size + 8,
            )?)
        }
        Peer::Shmq => {
            peers::shmq_create(dir, "a", size)?;
            peers::shmq_create(dir, "b", size)
        }
        Peer::Pipe => {
            peers::fifo_create(&dir.join("a"))?;
            peers::fifo_create(&dir.join("b"))
        }
        Peer::Iceoryx2 | Peer::Uds => Ok(()),
    }
}

fn measure(peer: Peer, latency: bool, dir: &Path, size: usize, args: &Args) -> Res<Figure> {
    prepare(peer, dir, size)?;
    let cores = allowed_cores();
    let (c0, c1) = (cores[0], cores[cores.len().min(2) - 1]);
    let (count, warmup) = if latency {
        (args.latency_count, args.latency_count / 10)
    } else {
        (args.throughput_count, 0)
    };
    // Large payloads: at most LARGE_BYTES of them per figure.
    let cap = if args.large {
        (LARGE_BYTES / size as u64).max(10)
    } else {
        u64::MAX
    };
    let (count, warmup) = (count.min(cap), warmup.min(cap / 10));
    let job = |role, core| Job {
        peer,
        role,
        dir,
        size,
        count,
        warmup,
        core,
    };
    let (first, second) = if latency {
        ("ping", "pong")
    } else {
        ("produce", "consume")
    };
    // The answering / consuming side starts first (it listens, for the
    // Unix socket).
    let b = spawn(&job(second, c1))?;
    let a = spawn(&job(first, c0))?;
    let out = join(vec![a, b])?;
    let v: serde_json::Value = serde_json::from_str(out[usize::from(!latency)].trim())
        .map_err(|e| format!("bad worker output {:?}: {e}", out))?;
    let get = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("worker output without {k}: {v}"))
    };
    Ok(if latency {
        Figure::Latency([get("p50")?, get("p99")?, get("p999")?, get("max")?])
    } else {
        let ns = get("elapsed_ns")?.max(1);
        let (received, disorder) = (get("received")?, get("disorder")?);
        if disorder > 0 {
            eprintln!(
                "shmq-peers: {}: {disorder} of {count} messages out of order or lost ({received} received)",
                peer.name()
            );
        }
        Figure::Throughput(
            received.saturating_sub(1) as f64 / (ns as f64 / 1e9),
            disorder,
        )
    })
}

// ---- the worker ------------------------------------------------------------

fn worker(argv: Vec<String>) -> Res<()> {
    let [peer, role, dir, size, count, warmup, core] = argv.as_slice() else {
        return Err("worker: bad arguments".into());
    };
    let peer = Peer::from_key(peer)?;
    let dir = Path::new(dir);
    let (size, count, warmup): (usize, u64, u64) = (size.parse()?, count.parse()?, warmup.parse()?);
    pin(core.parse()?)?;
    let total = count + warmup;
    // The ping side sends on `a` and receives on `b`; the pong side the
    // other way round. A stream uses `a`.
    let out = match (peer, role.as_str()) {
        (Peer::CacheLine, "ping") => {
            let r = bare::Region::open(&dir.join("a"), 1, 1)?;
            latency_json(&bare::ping(&r, count, warmup)?)
        }
        (Peer::CacheLine, "pong") => {
            bare::Region::open(&dir.join("a"), 1, 1)?.pong(total);
            serde_json::json!({})
        }
        (Peer::Ring, _) => {
            let open = |n: &str| bare::Region::open(&dir.join(n), slots_for(size), size);
            match role.as_str() {
                "ping" => {
                    let (mut tx, mut rx) =
                        (bare::RingTx::new(open("a")?), bare::RingRx::new(open("b")?));
                    latency_json(&link::ping(&mut tx, &mut rx, size, count, warmup)?)
                }
                "pong" => {
                    let (mut tx, mut rx) =
                        (bare::RingTx::new(open("b")?), bare::RingRx::new(open("a")?));
                    link::pong(&mut tx, &mut rx, size, total)?;
                    serde_json::json!({})
                }
                "produce" => {
                    link::produce(&mut bare::RingTx::new(open("a")?), size, count)?;
                    serde_json::json!({})
                }
                _ => stream_json(link::consume(
                    &mut bare::RingRx::new(open("a")?),
                    size,
                    count,
                )?),
            }
        }
        (Peer::SlotRing, _) => {
            use bare::{SlotRx, SlotTx};
            let open = |n: &str| bare::Region::open(&dir.join(n), slots_for(size), size + 8);
            match role.as_str() {
                "ping" => {
                    let (mut tx, mut rx) = (SlotTx::new(open("a")?), SlotRx::new(open("b")?));
                    latency_json(&link::ping(&mut tx, &mut rx, size, count, warmup)?)
                }
                "pong" => {
                    let (mut tx, mut rx) = (SlotTx::new(open("b")?), SlotRx::new(open("a")?));
                    link::pong(&mut tx, &mut rx, size, total)?;
                    serde_json::json!({})
                }
                "produce" => {
                    link::produce(&mut SlotTx::new(open("a")?), size, count)?;
                    serde_json::json!({})
                }
                _ => stream_json(link::consume(&mut SlotRx::new(open("a")?), size, count)?),
            }
        }
        (Peer::Shmq, _) => {
            use peers::{ShmqRx, ShmqTx};
            match role.as_str() {
                "ping" => {
                    let (mut tx, mut rx) = (ShmqTx::open(dir, "a")?, ShmqRx::open(dir, "b")?);
                    latency_json(&link::ping(&mut tx, &mut rx, size, count, warmup)?)
                }
                "pong" => {
                    let (mut tx, mut rx) = (ShmqTx::open(dir, "b")?, ShmqRx::open(dir, "a")?);
                    link::pong(&mut tx, &mut rx, size, total)?;
                    serde_json::json!({})
                }
                "produce" => {
                    link::produce(&mut ShmqTx::open(dir, "a")?, size, count)?;
                    serde_json::json!({})
                }
                _ => stream_json(link::consume(&mut ShmqRx::open(dir, "a")?, size, count)?),
            }
        }
        (Peer::Iceoryx2, _) => {
            use peers::{IoxRx, IoxTx};
            // Service names unique to this measurement: the scratch
            // directory (one per parent process) and the measurement's.
            let tag = dir.file_name().and_then(|n| n.to_str()).unwrap_or("x");
            let base = format!("shmq-peers/{}/{tag}", scratch_tag(dir));
            let (sa, sb) = (format!("{base}/a"), format!("{base}/b"));
            let (ready_a, ready_b) = (dir.join("ready-a"), dir.join("ready-b"));
            let node = peers::iox_node()?;
            match role.as_str() {
                "ping" => {
                    let (mut tx, mut rx) = (
                        IoxTx::open(&node, &sa, size)?,
                        IoxRx::open(&node, &sb, size)?,
                    );
                    tx.connect(&ready_a)?;
                    rx.connect(&ready_b)?;
                    latency_json(&link::ping(&mut tx, &mut rx, size, count, warmup)?)
                }
                "pong" => {
                    let (mut tx, mut rx) = (
                        IoxTx::open(&node, &sb, size)?,
                        IoxRx::open(&node, &sa, size)?,
                    );
                    rx.connect(&ready_a)?;
                    tx.connect(&ready_b)?;
                    link::pong(&mut tx, &mut rx, size, total)?;
                    serde_json::json!({})
                }
                "produce" => {
                    let mut tx = IoxTx::open(&node, &sa, size)?;
                    tx.connect(&ready_a)?;
                    link::produce(&mut tx, size, count)?;
                    serde_json::json!({})
                }
                _ => {
                    let mut rx = IoxRx::open(&node, &sa, size)?;
                    rx.connect(&ready_a)?;
                    stream_json(link::consume(&mut rx, size, count)?)
                }
            }
        }
        (Peer::Uds, _) => {
            use peers::Stream;
            let path = dir.join("sock");
            let s = match role.as_str() {
                "ping" | "produce" => peers::uds_connect(&path)?,
                _ => peers::uds_accept(&path)?,
            };
            let mut rx = Stream(s.try_clone()?);
            let mut tx = Stream(s);
            match role.as_str() {
                "ping" => latency_json(&link::ping(&mut tx, &mut rx, size, count, warmup)?),
                "pong" => {
                    link::pong(&mut tx, &mut rx, size, total)?;
                    serde_json::json!({})
                }
                "produce" => {
                    link::produce(&mut tx, size, count)?;
                    serde_json::json!({})
                }
                _ => stream_json(link::consume(&mut rx, size, count)?),
            }
        }
        (Peer::Pipe, _) => {
            use peers::{Stream, fifo_open};
            let (a, b) = (dir.join("a"), dir.join("b"));
            match role.as_str() {
                "ping" => {
                    let (mut tx, mut rx) = (Stream(fifo_open(&a)?), Stream(fifo_open(&b)?));
                    latency_json(&link::ping(&mut tx, &mut rx, size, count, warmup)?)
                }
                "pong" => {
                    let (mut tx, mut rx) = (Stream(fifo_open(&b)?), Stream(fifo_open(&a)?));
                    link::pong(&mut tx, &mut rx, size, total)?;
                    serde_json::json!({})
                }
                "produce" => {
                    link::produce(&mut Stream(fifo_open(&a)?), size, count)?;
                    serde_json::json!({})
                }
                _ => stream_json(link::consume(&mut Stream(fifo_open(&a)?), size, count)?),
            }
        }
        (p, r) => return Err(format!("worker: no role {r:?} for {p:?}").into()),
    };
    println!("{out}");
    Ok(())
}

/// The scratch directory's name (unique per parent process), for naming
/// iceoryx2 services.
fn scratch_tag(dir: &Path) -> String {
    dir.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("x")
        .to_string()
}

fn latency_json(h: &hdrhistogram::Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50": h.value_at_quantile(0.50),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

fn stream_json(s: link::Streamed) -> serde_json::Value {
    serde_json::json!({
        "elapsed_ns": s.elapsed_ns,
        "received": s.received,
        "disorder": s.disorder,
    })
}

// ---- runs and the table ------------------------------------------------------

/// One figure of one run, with its baseline from the same run.
#[derive(Clone, Copy, Debug)]
struct Sample {
    run: u32,
    latency: bool,
    size: usize,
    peer: Peer,
    figure: Figure,
    /// The baseline (cache-line ping-pong, or bare ring for throughput)
    /// measured just before this figure, for its ratio: this machine can
    /// switch modes between two measurements of one run, rarely between
    /// two adjacent ones. `None` for a baseline itself.
    base: Option<Figure>,
}

/// The samples of a file that `--save` wrote; its settings into `args`.
fn load(path: &Path, args: &mut Args) -> Res<Vec<Sample>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let bad = || format!("{}: not a shmq-peers --save file", path.display());
    let mut samples = Vec::new();
    for s in v["samples"].as_array().ok_or_else(bad)? {
        let u = |k: &str| s[k].as_u64().ok_or_else(bad);
        let latency = s["kind"] == "latency";
        let base = &s["baseline"];
        samples.push(Sample {
            run: u("run")? as u32,
            latency,
            size: u("size")? as usize,
            peer: Peer::from_key(s["peer"].as_str().ok_or_else(bad)?)?,
            figure: Figure::from_json(&s["figure"], latency).ok_or_else(bad)?,
            base: match base.is_null() {
                true => None,
                false => Some(Figure::from_json(base, latency).ok_or_else(bad)?),
            },
        });
    }
    args.runs = v["runs"].as_u64().ok_or_else(bad)? as u32;
    args.latency_count = v["latency_round_trips"].as_u64().ok_or_else(bad)?;
    args.large = v["large"].as_bool().unwrap_or(false);
    args.throughput_count = v["throughput_messages"].as_u64().ok_or_else(bad)?;
    Ok(samples)
}

fn run(mut args: Args) -> Res<()> {
    if let Some(path) = args.from.clone() {
        let samples = load(&path, &mut args)?;
        Table::new(&samples, args.runs).print(&args);
        return Ok(());
    }
    let scratch = Scratch::new()?;
    let mut samples = Vec::new();
    for run in 0..args.runs {
        let kinds = if args.large {
            [
                (true, &LARGE_SIZES[..], &LARGE_PEERS[..], Peer::Ring),
                (false, &LARGE_SIZES[..], &LARGE_PEERS[..], Peer::Ring),
            ]
        } else {
            [
                (
                    true,
                    &LATENCY_SIZES[..],
                    &LATENCY_PEERS[..],
                    Peer::CacheLine,
                ),
                (
                    false,
                    &THROUGHPUT_SIZES[..],
                    &THROUGHPUT_PEERS[..],
                    Peer::Ring,
                ),
            ]
        };
        let kinds = kinds
            .into_iter()
            .filter(|k| if k.0 { args.latency } else { args.throughput });
        for (latency, sizes, peers, baseline) in kinds {
            let what = if latency { "latency" } else { "throughput" };
            for &size in sizes {
                for &peer in peers.iter().filter(|p| args.peers.contains(p)) {
                    let dir = |p: Peer, n: &str| {
                        scratch
                            .0
                            .join(format!("r{run}-{what}-{size}-{}{n}", p.key()))
                    };
                    let base = if peer == baseline {
                        None
                    } else {
                        Some(measure(
                            baseline,
                            latency,
                            &dir(baseline, peer.key()),
                            size,
                            &args,
                        )?)
                    };
                    let figure = measure(peer, latency, &dir(peer, ""), size, &args)?;
                    eprintln!(
                        "run {run}: {what} {size} B {}: {figure:?}, baseline {base:?}",
                        peer.name()
                    );
                    samples.push(Sample {
                        run,
                        latency,
                        size,
                        peer,
                        figure,
                        base,
                    });
                }
            }
        }
    }
    drop(scratch);
    let table = Table::new(&samples, args.runs);
    let json = table.json(&samples, &args);
    if let Some(path) = &args.save {
        std::fs::write(path, format!("{json:#}\n"))?;
    }
    if args.json {
        println!("{json}");
    } else {
        table.print(&args);
    }
    Ok(())
}

/// Median, min and max of some values.
#[derive(Clone, Copy, Debug)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// `None` for no values.
    fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

/// One row of the table: a peer at one payload size.
struct Row {
    size: usize,
    peer: Peer,
    /// p50, p99, p99.9 (ns) and each as a ratio to the cache-line
    /// ping-pong of the same run.
    latency: Option<[(Spread, Spread); 3]>,
    /// msgs/s and its ratio to the bare ring of the same run, and the
    /// messages out of order or lost over all runs.
    throughput: Option<(Spread, Spread, u64)>,
}

struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn new(samples: &[Sample], runs: u32) -> Table {
        // A figure and the baseline it is divided by: the one measured just
        // before it, or (for a baseline) itself.
        let find = |run, latency, size, peer| {
            samples
                .iter()
                .find(|s| s.run == run && s.latency == latency && s.size == size && s.peer == peer)
                .map(|s| (s.figure, s.base.unwrap_or(s.figure)))
        };
        let mut sizes: Vec<usize> = samples.iter().map(|s| s.size).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let mut rows = Vec::new();
        for size in sizes {
            for &peer in &LATENCY_PEERS {
                let latency = (0..3)
                    .map(|q| {
                        let (mut vals, mut ratios) = (Vec::new(), Vec::new());
                        for run in 0..runs {
                            if let Some((Figure::Latency(f), Figure::Latency(b))) =
                                find(run, true, size, peer)
                            {
                                vals.push(f[q] as f64);
                                ratios.push(f[q] as f64 / b[q].max(1) as f64);
                            }
                        }
                        Some((Spread::of(vals)?, Spread::of(ratios)?))
                    })
                    .collect::<Option<Vec<_>>>();
                let throughput = (peer != Peer::CacheLine).then(|| {
                    let (mut vals, mut ratios, mut disorder) = (Vec::new(), Vec::new(), 0);
                    for run in 0..runs {
                        if let Some((Figure::Throughput(f, d), Figure::Throughput(b, _))) =
                            find(run, false, size, peer)
                        {
                            vals.push(f);
                            ratios.push(f / b);
                            disorder += d;
                        }
                    }
                    Some((Spread::of(vals)?, Spread::of(ratios)?, disorder))
                });
                let throughput = throughput.flatten();
                let latency = latency.map(|l| [l[0], l[1], l[2]]);
                if latency.is_none() && throughput.is_none() {
                    continue;
                }
                rows.push(Row {
                    size,
                    peer,
                    latency,
                    throughput,
                });
            }
        }
        Table { rows }
    }

    fn row(&self, size: usize, peer: Peer) -> Option<&Row> {
        self.rows.iter().find(|r| r.size == size && r.peer == peer)
    }

    fn print(&self, args: &Args) {
        let base = if args.large {
            "the bare ring (the same bytes written and read whole)"
        } else {
            "a cache-line ping-pong"
        };
        let cut = if args.large {
            format!(" (at most {} GiB of payload per figure)", LARGE_BYTES >> 30)
        } else {
            String::new()
        };
        println!(
            "shmq-peers: {} runs; latency: one-way (round trip / 2), {} round trips per figure{cut}, ratio to {base} measured just before; throughput: {} messages{cut}, ratio to a bare ring measured just before; 2 processes pinned to 2 cores, busy polling",
            args.runs, args.latency_count, args.throughput_count
        );
        println!("each cell: median over the runs (min–max over the runs)\n");
        println!(
            "| payload | peer | p50 | p50 ratio | p99 | p99 ratio | p99.9 | p99.9 ratio | msgs/s | msgs/s ratio |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let mut line = format!("| {} | {} |", fmt_size(r.size), r.peer.name());
            match &r.latency {
                Some(l) => {
                    for (v, x) in l {
                        line += &format!(" {} | {} |", fmt_ns(v), fmt_ratio(x));
                    }
                }
                None => line += &" — | — |".repeat(3),
            }
            match &r.throughput {
                Some((v, x, 0)) => line += &format!(" {} | {} |", fmt_rate(v), fmt_ratio(x)),
                Some((v, x, d)) => {
                    line += &format!(
                        " {} (**{d} lost or out of order**) | {} |",
                        fmt_rate(v),
                        fmt_ratio(x)
                    )
                }
                None => line += " — | — |",
            }
            println!("{line}");
        }
        println!();
        for line in self.verdicts() {
            println!("{line}");
        }
    }

    /// The issue's targets at 64 B, from the medians of the same-run ratios
    /// (with `--large`: at 1 MiB and 4 MiB).
    fn verdicts(&self) -> Vec<String> {
        let large: Vec<String> = [1 << 20, 4 << 20]
            .into_iter()
            .filter_map(|size| {
                let l = self.row(size, Peer::Shmq)?.latency.as_ref()?;
                Some(verdict(
                    &format!("{} p50 <= 1.2x the bare ring", fmt_size(size)),
                    l[0].1.median,
                    l[0].1.median <= 1.2,
                ))
            })
            .collect();
        if !large.is_empty() {
            return large;
        }
        let (Some(s), Some(i)) = (self.row(64, Peer::Shmq), self.row(64, Peer::Iceoryx2)) else {
            return Vec::new();
        };
        let (Some(sl), Some(il)) = (&s.latency, &i.latency) else {
            return Vec::new();
        };
        let mut out = vec![
            verdict(
                "p50 <= 1.5x cache-line",
                sl[0].1.median,
                sl[0].1.median <= 1.5,
            ),
            verdict(
                "p99.9 <= 5x cache-line",
                sl[2].1.median,
                sl[2].1.median <= 5.0,
            ),
            verdict(
                "p50 below iceoryx2's (shmq/iceoryx2)",
                sl[0].0.median / il[0].0.median,
                sl[0].0.median < il[0].0.median,
            ),
            verdict(
                "p99 below iceoryx2's (shmq/iceoryx2)",
                sl[1].0.median / il[1].0.median,
                sl[1].0.median < il[1].0.median,
            ),
        ];
        if let (Some(st), Some(it)) = (&s.throughput, &i.throughput) {
            out.push(verdict(
                "throughput >= 0.5x bare ring",
                st.1.median,
                st.1.median >= 0.5,
            ));
            out.push(verdict(
                "throughput >= 10x iceoryx2's (shmq/iceoryx2)",
                st.0.median / it.0.median,
                st.0.median >= 10.0 * it.0.median,
            ));
        }
        out
    }

    fn json(&self, samples: &[Sample], args: &Args) -> serde_json::Value {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                let mut o = serde_json::json!({"size": r.size, "peer": r.peer.key()});
                if let Some(l) = &r.latency {
                    for (q, name) in ["p50", "p99", "p999"].iter().enumerate() {
                        o[format!("{name}_ns")] = l[q].0.json();
                        o[format!("{name}_ratio")] = l[q].1.json();
                    }
                }
                if let Some((v, x, d)) = &r.throughput {
                    o["msgs_per_s"] = v.json();
                    o["msgs_per_s_ratio"] = x.json();
                    o["disorder"] = (*d).into();
                }
                o
            })
            .collect();
        let raw: Vec<_> = samples
            .iter()
            .map(|s| {
                serde_json::json!({
                    "run": s.run, "size": s.size, "peer": s.peer.key(),
                    "kind": if s.latency { "latency" } else { "throughput" },
                    "figure": s.figure.json(),
                    "baseline": s.base.map(|b| b.json()),
                })
            })
            .collect();
        serde_json::json!({
            "runs": args.runs,
            "large": args.large,
            "latency_round_trips": args.latency_count,
            "throughput_messages": args.throughput_count,
            "rows": rows,
            "targets": self.verdicts(),
            "samples": raw,
        })
    }
}

fn verdict(what: &str, value: f64, met: bool) -> String {
    format!(
        "target {what}: {value:.2}x — {}",
        if met { "met" } else { "NOT met" }
    )
}

fn fmt_size(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn fmt_ns(s: &Spread) -> String {
    let one = |ns: f64| {
        if ns < 10_000.0 {
            format!("{ns:.0}")
        } else {
            format!("{:.1}k", ns / 1e3)
        }
    };
    format!("{} ns ({}–{})", one(s.median), one(s.min), one(s.max))
}

fn fmt_ratio(s: &Spread) -> String {
    format!("{:.2}× ({:.2}–{:.2})", s.median, s.min, s.max)
}

fn fmt_rate(s: &Spread) -> String {
    // Large payloads move thousands, not millions, a second.
    let (unit, div) = if s.median < 1e5 {
        ("k", 1e3)
    } else {
        ("M", 1e6)
    };
    format!(
        "{:.2} {unit} ({:.2}–{:.2})",
        s.median / div,
        s.min / div,
        s.max / div
    )
}
