//! A single-host Jepsen for shmq (issue #35): a workload with every
//! feature on, across processes, under faults, checked from its history.
//!
//! ```text
//! cargo run --release -p shmq-tests --bin chaos -- [--duration SECS] [--seed N]
//!     [--dir DIR] [--keep] [--no-faults] [--plant drop|dup|swap|flip@N] [--tmpfs-mb M]
//! cargo run --release -p shmq-tests --bin chaos -- check DIR
//! cargo run --release -p shmq-tests --bin chaos -- scribble [--rounds N] [--seed N] [--dir DIR]
//! ```
//!
//! The runner makes a queue (a 64-slot ring that spills to a small tmpfs,
//! a journal, a DLQ of 8 slots), starts its clients — producers (single,
//! keyed, reserved, batched and async publishes), one ack=auto consumer
//! (blocking and async by turns), three ack=manual workers (one async) that
//! ack, nack, dead-letter, extend and outlive their leases, a consumer that
//! replays from the journal by seq and by time, and an admin that redrives
//! the DLQ — and, while they run, kills and stops them at random and
//! restarts the dead, each new process armed with a fault point
//! (`SHMQ_FAULT`) where it kills or stops itself inside the library. Then it
//! drains the queue, stops everyone and checks the history
//! (`shmq_tests::chaos::check`): any anomaly fails the run (exit 1), and
//! the report says the seed that reproduces it. `docs/reliability.md`
//! tells the rest.

mod client;
mod scribble;
mod setup;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmq::Queue;
use shmq_tests::Rng;
use shmq_tests::chaos::check;
use shmq_tests::chaos::history::Log;
use shmq_tests::chaos::payload::mid_in;

use setup::{Phase, QUEUE};

/// How often the producers pause (`Phase::Lull`), and for how long at most.
const LULL_EVERY: Duration = Duration::from_secs(240);
const LULL_MAX: Duration = Duration::from_secs(150);

/// Fault points each role's calls pass (docs/design.md, "Fault points").
const POINTS_PRODUCE: &[&str] = &[
    "producer.registering",
    "publish.before_commit",
    "producer.committing",
    "publish.after_commit",
    "batch.before_commit",
    "keyed.reserved",
    "keyed.before_claimed",
    "keyed.after_claimed",
    "keyed.before_published",
    "keyed.settle_passed",
    "spill.switched",
    "spill.record_written",
    "spill.counted",
    "segment.creating",
    "segment.created",
    "segment.rolling",
    "schedule.before_append",
    "schedule.before_settle",
    "schedule.appended",
    "schedule.moving",
    "schedule.moved",
];
const POINTS_RING: &[&str] = &[
    "publish.before_commit",
    "producer.committing",
    "batch.before_commit",
    "publish.after_commit",
];
const POINTS_CONSUME: &[&str] = &[
    "refill.copied",
    "refill.committed",
    "refill.recorded",
    "refill.cleared",
    "spill.clearing",
    "consumer.attaching",
    "consumer.attaching_owner",
    "keyed.settle_passed",
    "schedule.moving",
    "schedule.moved",
    "schedule.note_landed",
    "unstick.watching",
];
const POINTS_WORK: &[&str] = &[
    "unstick.watching",
    "lease.taking",
    "lease.passed",
    "receive.leased",
    "ack.before",
    "ack.acked",
    "dead_letter.moving",
    "dead_letter.claimed",
    "dead_letter.appended",
    "dead_letter.giving_back",
    "refill.copied",
    "refill.committed",
    "consumer.attaching",
    "consumer.registering",
    "segment.creating",
    "segment.created",
];
const POINTS_ADMIN: &[&str] = &[
    "redrive.rerouting",
    "redrive.taking",
    "redrive.taken",
    "dead_letter.giving_back",
    "segment.creating",
    "segment.rolling",
    "admin.taken",
];

struct Args {
    duration: Duration,
    seed: u64,
    dir: Option<PathBuf>,
    keep: bool,
    faults: bool,
    plant: Option<String>,
    tmpfs_mb: u64,
}

fn parse_args(args: &[String]) -> Args {
    let mut a = Args {
        duration: Duration::from_secs(60),
        seed: (std::process::id() as u64) << 20 ^ shmq_tests::chaos::history::now_ns(),
        dir: None,
        keep: false,
        faults: true,
        plant: None,
        tmpfs_mb: 4,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--duration" => a.duration = Duration::from_secs_f64(num(value())),
            "--seed" => a.seed = num(value()) as u64,
            "--dir" => a.dir = Some(PathBuf::from(value())),
            "--keep" => a.keep = true,
            "--no-faults" => a.faults = false,
            "--plant" => a.plant = Some(value().clone()),
            "--tmpfs-mb" => a.tmpfs_mb = num(value()) as u64,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a.seed = a.seed.max(1);
    a
}

fn num(s: &str) -> f64 {
    s.parse()
        .unwrap_or_else(|_| usage(&format!("{s} is not a number")))
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: chaos [--duration SECS] [--seed N] [--dir DIR] [--keep] [--no-faults] \
         [--plant drop|dup|swap|flip@N] [--tmpfs-mb M]\n       chaos check DIR\n       \
         chaos scribble [--rounds N] [--seed N] [--dir DIR]"
    );
    std::process::exit(64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("client") => client::run(&args[1..]),
        Some("scribble") => std::process::exit(scribble::run(&args[1..])),
        // Checks a run kept with --keep (or left by a failed one) again.
        Some("check") => {
            let dir = args
                .get(1)
                .unwrap_or_else(|| usage("check needs the run's directory"));
            match check::check(std::path::Path::new(dir)) {
                Ok(r) => {
                    println!("{}", r.render());
                    std::process::exit(i32::from(r.total() > 0));
                }
                Err(e) => {
                    eprintln!("chaos: reading the history in {dir}: {e}");
                    std::process::exit(2);
                }
            }
        }
        _ => {}
    }
    let a = parse_args(&args);
    // A tmpfs for the spill needs a mount namespace of our own (root):
    // the run re-executes itself inside one, and the mount goes with it.
    if a.tmpfs_mb > 0 && std::env::var_os("CHAOS_IN_NS").is_none() && is_root() {
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .arg(std::env::current_exe().expect("the chaos binary"))
            .args(&args)
            .env("CHAOS_IN_NS", "1")
            .status();
        match status {
            Ok(s) => std::process::exit(s.code().unwrap_or(1)),
            Err(e) => eprintln!("chaos: unshare: {e}; the spill stays on the disk"),
        }
    }
    std::process::exit(Run::new(a).go())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// One client process the runner keeps alive.
struct Slot {
    role: &'static str,
    id: u16,
    inc: u64,
    /// The incarnation the next start gets.
    next_inc: u64,
    child: Option<Child>,
    restart_at: Option<Instant>,
    stopped_until: Option<Instant>,
    /// The runner sent it SIGKILL.
    killed: bool,
}

impl Slot {
    fn name(&self) -> String {
        format!("{}-{}-{}", self.role, self.id, self.inc)
    }
}

struct Run {
    a: Args,
    dir: PathBuf,
    made_dir: bool,
    rng: Rng,
    log: Log,
    slots: Vec<Slot>,
    q: Queue,
    tmpfs: bool,
    shared: Arc<Shared>,
    /// Fault points hit so far.
    hit: std::collections::HashSet<String>,
}

impl Run {
    fn new(a: Args) -> Run {
        let (dir, made_dir) = match &a.dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("shmq-chaos-{}-{}", std::process::id(), a.seed)),
                true,
            ),
        };
        for sub in ["history", "stderr", "queue", "spill"] {
            std::fs::create_dir_all(dir.join(sub)).expect("making the run's directory");
        }
        let tmpfs = std::env::var_os("CHAOS_IN_NS").is_some()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={}m,mode=0700", a.tmpfs_mb))
                .arg("chaos-spill")
                .arg(dir.join("spill"))
                .status()
                .is_ok_and(|s| s.success());
        setup::set_phase(&dir, Phase::Run);
        let q = Queue::create(QUEUE, &setup::options(&dir)).expect("creating the chaos queue");
        for g in ["auto", "work", "replay"] {
            q.create_group(g, shmq::Start::Earliest)
                .expect("creating a group");
        }
        let mut log = Log::open(&dir.join("history").join("runner-0-0.log")).expect("history");
        log.event("cfg", &[&"max_payload", &setup::MAX_PAYLOAD]);
        log.event("cfg", &[&"max_deliveries", &setup::MAX_DELIVERIES]);
        log.event("cfg", &[&"batch", &setup::BATCH]);
        let mut slots = Vec::new();
        let mut add = |role, n: u16| {
            for id in 0..n {
                slots.push(Slot {
                    role,
                    id,
                    inc: 0,
                    next_inc: 0,
                    child: None,
                    restart_at: Some(Instant::now()),
                    stopped_until: None,
                    killed: false,
                });
            }
        };
        add("prod", 3);
        add("auto", 1);
        add("work", 3);
        add("replay", 1);
        add("admin", 1);
        let rng = Rng(a.seed);
        Run {
            a,
            dir,
            made_dir,
            rng,
            log,
            slots,
            q,
            tmpfs,
            shared: Arc::default(),
            hit: Default::default(),
        }
    }

    fn go(&mut self) -> i32 {
        println!(
            "chaos: seed {}, {} s, faults {}, spill on {}, in {}",
            self.a.seed,
            self.a.duration.as_secs(),
            if self.a.faults { "on" } else { "off" },
            if self.tmpfs {
                format!("a {} MiB tmpfs", self.a.tmpfs_mb)
            } else {
                "the disk".into()
            },
            self.dir.display()
        );
        let start = Instant::now();
        let mut next_fault = start + Duration::from_millis(300);
        let watcher = watch(self.dir.clone(), self.shared.clone());
        // Every four minutes a lull of up to 150 s (the producers
        // pause, faults go on) until the queue is back in its ring.
        let mut lull: Option<(Instant, u64)> = None;
        // A short run has one, half-way.
        let every = LULL_EVERY.min(self.a.duration / 2);
        let mut next_lull = start + every;
        while start.elapsed() < self.a.duration {
            let now = Instant::now();
            match lull {
                None if now >= next_lull => {
                    setup::set_phase(&self.dir, Phase::Lull);
                    self.log.event("phase", &[&"lull"]);
                    lull = Some((now, self.shared.round.load(Relaxed)));
                }
                Some((began, round)) => {
                    let drained = self.shared.round.load(Relaxed) > round + 1
                        && self.shared.drained.load(Relaxed);
                    if drained || now - began > LULL_MAX {
                        setup::set_phase(&self.dir, Phase::Run);
                        self.log.event("phase", &[&"run"]);
                        lull = None;
                        next_lull = now + every;
                    }
                }
                None => {}
            }
            self.tend(Phase::Run);
            if self.a.faults && Instant::now() >= next_fault {
                self.nemesis();
                next_fault = Instant::now() + Duration::from_millis(100 + self.rng.next() % 600);
            }
            self.note_stops();
            std::thread::sleep(Duration::from_millis(20));
        }
        self.drain();
        self.shared.quit.store(true, Relaxed);
        let _ = watcher.join();
        self.report()
    }

    /// Reaps the dead, restarts them, and wakes what is due.
    fn tend(&mut self, phase: Phase) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            if let Some(child) = s.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let name = s.name();
                    let fault = self.fault_point(&name);
                    let s = &mut self.slots[i];
                    let how = match (status.code(), status.signal()) {
                        (Some(0), _) => "ok".to_string(),
                        (_, Some(9)) if s.killed || fault.is_some() => "killed".into(),
                        (_, Some(sig)) => format!("signal {sig}"),
                        (Some(code), _) => format!("code {code}"),
                        _ => "unknown".into(),
                    };
                    if how.starts_with("signal") || how.starts_with("code") {
                        let err = std::fs::read_to_string(setup::stderr_file(&self.dir, &name))
                            .unwrap_or_default();
                        eprintln!("chaos: {name} ended with {how}; its stderr:\n{err}");
                    }
                    if let Some(point) = fault {
                        self.log.event("fault", &[&name, &point]);
                        self.hit.insert(point);
                    }
                    self.log.event("exit", &[&name, &how]);
                    let s = &mut self.slots[i];
                    s.child = None;
                    s.stopped_until = None;
                    let again = match phase {
                        Phase::Run | Phase::Lull => true,
                        Phase::Drain => !matches!(s.role, "prod" | "admin"),
                        Phase::Stop => false,
                    };
                    if again {
                        let delay = 20 + self.rng.next() % 200;
                        self.slots[i].restart_at = Some(now + Duration::from_millis(delay));
                    }
                }
                continue;
            }
            if s.restart_at.is_some_and(|t| now >= t) {
                self.spawn(i, phase);
            }
        }
        // Stops that are over, and stops a fault point made.
        for i in 0..self.slots.len() {
            let Some(pid) = self.slots[i].child.as_ref().map(Child::id) else {
                continue;
            };
            match self.slots[i].stopped_until {
                Some(t) if now >= t => {
                    signal(pid, libc::SIGCONT);
                    self.log.event("cont", &[&self.slots[i].name()]);
                    self.slots[i].stopped_until = None;
                }
                None if stopped(pid) => {
                    let name = self.slots[i].name();
                    if let Some(point) = self.fault_point(&name) {
                        self.log.event("fault", &[&name, &point]);
                        self.hit.insert(point);
                    }
                    let long = 1500 + self.rng.next() % 1500;
                    self.slots[i].stopped_until = Some(now + Duration::from_millis(long));
                }
                _ => {}
            }
        }
    }

    /// Tells the watcher whether any client is stopped.
    fn note_stops(&self) {
        let any = self.slots.iter().any(|s| s.stopped_until.is_some());
        self.shared.any_stopped.store(any, Relaxed);
    }

    fn fault_point(&self, name: &str) -> Option<String> {
        let err = std::fs::read_to_string(setup::stderr_file(&self.dir, name)).ok()?;
        err.lines()
            .find_map(|l| l.strip_prefix("shmq fault point "))
            .map(str::to_string)
    }

    fn spawn(&mut self, i: usize, phase: Phase) {
        let faults = self.a.faults && phase == Phase::Run;
        let fault = faults.then(|| {
            let points = match self.slots[i].role {
                "prod" => POINTS_PRODUCE,
                "work" => POINTS_WORK,
                "admin" => POINTS_ADMIN,
                _ => POINTS_CONSUME,
            };
            // Half the time a point not hit yet: the rare windows get their
            // turn in every run.
            let unhit: Vec<&str> = points
                .iter()
                .copied()
                .filter(|p| !self.hit.contains(*p))
                .collect();
            let from = if !unhit.is_empty() && self.rng.next() % 2 == 0 {
                &unhit[..]
            } else {
                points
            };
            let mut point = from[(self.rng.next() % from.len() as u64) as usize];
            // The queue starts in its ring and soon spills for good (its
            // consumers are slower than its producers under these faults):
            // the first producers get the ring's own windows.
            if self.slots[i].role == "prod" && self.slots[i].next_inc == 0 {
                point = POINTS_RING[self.slots[i].id as usize % POINTS_RING.len()];
            }
            let nth = 1 + self.rng.next() % 12;
            let action = if self.rng.next() % 4 == 0 {
                "stop"
            } else {
                "kill"
            };
            format!("{point}@{nth}={action}")
        });
        let s = &mut self.slots[i];
        if s.child.is_some() || s.restart_at.is_none() {
            return;
        }
        s.inc = s.next_inc;
        s.next_inc += 1;
        let name = s.name();
        let stderr = File::create(setup::stderr_file(&self.dir, &name)).expect("stderr file");
        let mut cmd = Command::new(std::env::current_exe().expect("the chaos binary"));
        cmd.arg("client")
            .args([s.role.to_string(), s.id.to_string(), s.inc.to_string()])
            .arg(&self.dir)
            .arg(self.a.seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .env_remove("SHMQ_FAULT")
            .env_remove("CHAOS_PLANT");
        if let Some(f) = &fault {
            cmd.env("SHMQ_FAULT", f);
        }
        if s.role == "auto" {
            if let Some(p) = &self.a.plant {
                cmd.env("CHAOS_PLANT", p);
            }
        }
        self.log
            .event("start", &[&name, &fault.as_deref().unwrap_or("-")]);
        let child = cmd.spawn().expect("starting a chaos client");
        s.child = Some(child);
        s.restart_at = None;
        s.killed = false;
        s.stopped_until = None;
    }

    /// One fault: SIGKILL (most often), a short stop, or a stop longer
    /// than the lease and `unblock_timeout`.
    fn nemesis(&mut self) {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|i| self.slots[*i].child.is_some() && self.slots[*i].stopped_until.is_none())
            .collect();
        if live.is_empty() {
            return;
        }
        let i = live[(self.rng.next() % live.len() as u64) as usize];
        let pid = self.slots[i].child.as_ref().unwrap().id();
        let name = self.slots[i].name();
        let roll = self.rng.next() % 100;
        if roll < 65 {
            self.slots[i].killed = true;
            signal(pid, libc::SIGKILL);
            self.log.event("kill", &[&name]);
        } else {
            let ms = if roll < 88 {
                20 + self.rng.next() % 400
            } else {
                let past = setup::UNBLOCK.max(setup::LEASE).as_millis() as u64;
                past + 200 + self.rng.next() % 1500
            };
            signal(pid, libc::SIGSTOP);
            self.log.event("stop", &[&name, &ms]);
            self.slots[i].stopped_until = Some(Instant::now() + Duration::from_millis(ms));
        }
    }

    /// No more faults: wake everyone, let the producers finish, let the
    /// consumers drain the queue, then stop them all.
    fn drain(&mut self) {
        setup::set_phase(&self.dir, Phase::Drain);
        self.shared.draining.store(true, Relaxed);
        self.shared.drained.store(false, Relaxed);
        self.log.event("phase", &[&"drain"]);
        for s in &mut self.slots {
            if let (Some(c), Some(_)) = (&s.child, s.stopped_until) {
                signal(c.id(), libc::SIGCONT);
                s.stopped_until = Some(Instant::now());
            }
            if matches!(s.role, "prod" | "admin") && s.child.is_none() {
                s.restart_at = None;
            }
        }
        let bound = Instant::now() + Duration::from_secs(60);
        let mut writers_gone = None;
        loop {
            self.tend(Phase::Drain);
            let writers = self
                .slots
                .iter()
                .any(|s| matches!(s.role, "prod" | "admin") && s.child.is_some());
            // Drained, as seen by a watcher round that began after the
            // last writer was gone.
            let round = self.shared.round.load(Relaxed);
            match writers_gone {
                None if !writers => writers_gone = Some(round),
                Some(r) if round > r + 1 && self.shared.drained.load(Relaxed) => break,
                _ => {}
            }
            if Instant::now() > bound {
                let last = self.shared.last.lock().unwrap().clone();
                self.log.event(
                    "stuck",
                    &[&"drain", &format!("not drained in 60 s: {last}")],
                );
                break;
            }
            self.note_stops();
            std::thread::sleep(Duration::from_millis(20));
        }
        setup::set_phase(&self.dir, Phase::Stop);
        self.log.event("phase", &[&"stop"]);
        let bound = Instant::now() + Duration::from_secs(20);
        while self.slots.iter().any(|s| s.child.is_some()) {
            self.tend(Phase::Stop);
            if Instant::now() > bound {
                for s in &mut self.slots {
                    if let Some(c) = &s.child {
                        self.log.event(
                            "stuck",
                            &[&s.role, &format!("{} did not stop in 20 s", s.name())],
                        );
                        signal(c.id(), libc::SIGKILL);
                        s.killed = true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the DLQ holds: dead-lettered, so finished by its group.
        match self.q.dlq().list() {
            Ok(list) => {
                for d in list {
                    let m = mid_in(&d.payload).unwrap_or(0);
                    let redriven = u8::from(d.redriven);
                    self.log.event("dl", &[&d.group, &d.seq, &m, &redriven]);
                }
            }
            Err(e) => self
                .log
                .event("stuck", &[&"dlq", &format!("listing the DLQ: {e}")]),
        }
        self.log.event("end", &[]);
    }

    fn report(&mut self) -> i32 {
        let r = match check::check(&self.dir) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("chaos: reading the history: {e}");
                return 2;
            }
        };
        println!("{}", r.render());
        if self.a.faults {
            let mut missed: Vec<&str> = [POINTS_PRODUCE, POINTS_CONSUME, POINTS_WORK, POINTS_ADMIN]
                .concat()
                .into_iter()
                .filter(|p| !r.counts.contains_key(&format!("fault point {p}")))
                .collect();
            missed.sort_unstable();
            missed.dedup();
            println!(
                "fault points not hit: {}",
                if missed.is_empty() {
                    "none".into()
                } else {
                    missed.join(", ")
                }
            );
        }
        let rerun = format!(
            "cargo run --release -p shmq-tests --bin chaos -- --duration {} --seed {}{}",
            self.a.duration.as_secs(),
            self.a.seed,
            self.a
                .plant
                .as_ref()
                .map_or(String::new(), |p| format!(" --plant {p}"))
        );
        if r.total() > 0 {
            println!(
                "chaos: {} anomalies; the run is in {}; reproduce: {rerun}",
                r.total(),
                self.dir.display()
            );
            return 1;
        }
        println!("chaos: no anomalies (seed {})", self.a.seed);
        if self.made_dir && !self.a.keep {
            self.cleanup();
        }
        0
    }

    fn cleanup(&self) {
        let _ = Queue::remove_forced(QUEUE, &setup::options(&self.dir));
        if self.tmpfs {
            let _ = Command::new("umount").arg(self.dir.join("spill")).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the runner's loop and its watcher thread share.
#[derive(Default)]
struct Shared {
    /// A client is stopped (by the nemesis or a fault point).
    any_stopped: AtomicBool,
    /// The run is draining (a longer stuck window: restarts without faults).
    draining: AtomicBool,
    /// Groups auto and work have nothing left (lag 0, nothing leased).
    drained: AtomicBool,
    quit: AtomicBool,
    /// The watcher's rounds: `drained` is from a round that began after
    /// the round read here.
    round: AtomicU64,
    /// The last stats, as the stuck report says them.
    last: Mutex<String>,
}

/// The watcher, on a thread of its own so that a queue call that waits
/// (behind a lock a stopped client holds) never holds up the runner, which
/// is the one that sends SIGCONT. It checks for a group stuck: work
/// waiting and its committed cursor still for longer than
/// `unblock_timeout` plus the lease plus a margin, while no process was
/// stopped; and logs the queue's figures once a second.
fn watch(dir: PathBuf, shared: Arc<Shared>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let q = Queue::open_with(QUEUE, &setup::options(&dir)).expect("the watcher's handle");
        let mut log = Log::open(&dir.join("history").join("runner-1-0.log")).expect("history");
        let mut since: HashMap<String, (u64, Instant)> = HashMap::new();
        let mut logged = Instant::now() - Duration::from_secs(2);
        while !shared.quit.load(Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let now = Instant::now();
            let margin = if shared.draining.load(Relaxed) { 10 } else { 5 };
            let window = setup::UNBLOCK + setup::LEASE + Duration::from_secs(margin);
            let stats = q.stats();
            let lags: Vec<String> = stats
                .groups
                .iter()
                .map(|g| format!("{}={}/{}", g.name, g.lag, g.in_flight))
                .collect();
            let figures = format!(
                "next_seq {} depth {} spill_depth {} spill_full {} dlq {} dlq_lost {} spill_lost {} lag/in_flight {}",
                stats.next_seq,
                stats.depth,
                stats.spill_depth,
                stats.spill_full,
                stats.dlq_depth,
                stats.dlq_lost,
                stats.spill_lost,
                lags.join(",")
            );
            if now - logged >= Duration::from_secs(1) {
                logged = now;
                log.event(
                    "stat",
                    &[&figures, &stats.why_full.as_deref().unwrap_or("-")],
                );
            }
            *shared.last.lock().unwrap() = figures;
            let mut drained = true;
            // Read after the stats: a stop that began meanwhile excuses.
            let any_stopped = shared.any_stopped.load(Relaxed);
            for g in stats.groups {
                if !matches!(g.name.as_str(), "auto" | "work") {
                    continue;
                }
                drained &= g.lag == 0 && g.in_flight == 0;
                let e = since.entry(g.name.clone()).or_insert((g.committed, now));
                if g.lag == 0 || g.committed != e.0 || any_stopped {
                    *e = (g.committed, now);
                    continue;
                }
                if now - e.1 > window {
                    let what = format!(
                        "committed {} for {:?} with lag {}",
                        g.committed,
                        now - e.1,
                        g.lag
                    );
                    log.event("stuck", &[&g.name, &what]);
                    *e = (g.committed, now);
                }
            }
            // Dead letters redriven to a group wait in the DLQ, where the
            // group's lag and leases do not count them: drained only once
            // the group took them too. (A drain that ended 200 ms after a
            // redrive of ten left them there, and the checker saw them
            // unfinished.) Looked at while draining only: `list` may wait
            // for the admin lock, which a stopped process holds meanwhile.
            if drained && shared.draining.load(Relaxed) {
                drained = match q.dlq().list() {
                    Ok(list) => !list.iter().any(|d| d.redriven),
                    Err(_) => false,
                };
            }
            shared.drained.store(drained, Relaxed);
            shared.round.fetch_add(1, Relaxed);
        }
    })
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child's pid, which we have not reaped yet (so
    // it cannot have been reused).
    unsafe { libc::kill(pid as i32, sig) };
}

/// Whether process `pid` is stopped (state `T` in /proc).
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
        .unwrap_or(false)
}
