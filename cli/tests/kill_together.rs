//! The run of the issue "Killing producers and workers together", as a
//! test: three `shmq publish --key` producers, each restarted from its
//! first line whenever it dies (the retry that idempotency keys make
//! safe), and three `shmq consume --ack manual` workers appending to
//! their files, restarted whenever they exit or die; every 0.1–0.3 s one
//! of the six, chosen by a seeded generator, gets SIGKILL. Then
//! everything drains. Every line must be in the union of the outputs
//! (duplicates allowed: at-least-once), and the group never stalls with
//! work waiting for longer than `unblock_timeout` plus the lease.
//!
//! `SHMQ_KILL_SECS` (default 12), `SHMQ_KILL_LINES` (default 20000) and
//! `SHMQ_KILL_SEED` (default 7) set the run; `docs/reliability.md` has
//! the 10-minute run and its figures.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64: the kill schedule from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn shmq(dir: &Path, args: &[&str]) {
    let out = Command::new(SHMQ)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn producer(dir: &Path, name: &str, n: usize) -> Child {
    Command::new(SHMQ)
        .arg("--dir")
        .arg(dir)
        .args([
            "publish",
            name,
            "--key",
            &format!("p{n}-"),
            "--timeout",
            "30",
        ])
        .stdin(File::open(dir.join(format!("in{n}"))).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn worker(dir: &Path, name: &str, n: usize) -> Child {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("out{n}")))
        .unwrap();
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("err{n}")))
        .unwrap();
    Command::new(SHMQ)
        .arg("--dir")
        .arg(dir)
        .args(["consume", name, "--group", "w", "--ack", "manual"])
        .args(["--timeout", "3"])
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

/// Bytes written to the workers' outputs so far.
fn output_len(dir: &Path) -> u64 {
    (0..3)
        .map(|n| {
            std::fs::metadata(dir.join(format!("out{n}")))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

/// Which lines the workers' outputs hold so far, read incrementally (only
/// what was appended since the last look, up to its last newline).
struct Seen {
    read: [u64; 3],
    have: Vec<Vec<bool>>,
    missing: u64,
}

impl Seen {
    fn new(lines: u64) -> Seen {
        Seen {
            read: [0; 3],
            have: (0..3).map(|_| vec![false; lines as usize + 1]).collect(),
            missing: 3 * lines,
        }
    }

    /// Reads what the outputs gained; returns the lines still missing.
    fn update(&mut self, dir: &Path) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        for n in 0..3 {
            let Ok(mut f) = File::open(dir.join(format!("out{n}"))) else {
                continue;
            };
            f.seek(SeekFrom::Start(self.read[n])).unwrap();
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            let Some(last) = buf.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            self.read[n] += last as u64 + 1;
            for line in buf[..last].split(|&b| b == b'\n') {
                let parsed = std::str::from_utf8(line).ok().and_then(|l| {
                    let (p, i) = l.strip_prefix('p')?.split_once('-')?;
                    Some((p.parse::<usize>().ok()?, i.parse::<usize>().ok()?))
                });
                let Some((p, i)) = parsed else {
                    panic!(
                        "a line nobody published: {:?}",
                        String::from_utf8_lossy(line)
                    );
                };
                let slot = self.have.get_mut(p).and_then(|v| v.get_mut(i));
                let Some(slot) = slot else {
                    panic!("a line nobody published: p{p}-{i}");
                };
                if !*slot {
                    *slot = true;
                    self.missing -= 1;
                }
            }
        }
        self.missing
    }

    /// The first few missing lines, for the failure message.
    fn first_missing(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (p, v) in self.have.iter().enumerate() {
            for (i, &h) in v.iter().enumerate().skip(1) {
                if !h && out.len() < 10 {
                    out.push(format!("p{p}-{i}"));
                }
            }
        }
        out
    }
}

#[test]
fn producers_and_workers_killed_together_lose_no_line() {
    let secs = env_or("SHMQ_KILL_SECS", 12);
    let lines = env_or("SHMQ_KILL_LINES", 20_000);
    let mut rng = Rng(env_or("SHMQ_KILL_SEED", 7).max(1));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let name = "killq";
    let spill = dir.join("spill");
    shmq(
        dir,
        &[
            "create",
            name,
            "--slots",
            "64",
            "--slot-size",
            "64",
            "--overflow",
            "spill",
            "--spill-dir",
            spill.to_str().unwrap(),
            "--dedup-window",
            "200000",
            "--dedup-ttl",
            "3600",
            "--journal-age",
            "3600",
        ],
    );
    shmq(dir, &["group-create", name, "w"]);
    for p in 0..3 {
        let mut f = File::create(dir.join(format!("in{p}"))).unwrap();
        for i in 1..=lines {
            writeln!(f, "p{p}-{i}").unwrap();
        }
    }
    let mut producers: Vec<Option<Child>> = (0..3).map(|n| Some(producer(dir, name, n))).collect();
    let mut done = [false; 3];
    let mut workers: Vec<Child> = (0..3).map(|n| worker(dir, name, n)).collect();
    let (mut kills, mut restarts) = (0u64, 0u64);
    // Restarts whatever exited: a producer that finished stays finished.
    let tend = |producers: &mut Vec<Option<Child>>,
                workers: &mut Vec<Child>,
                done: &mut [bool; 3],
                restarts: &mut u64| {
        for n in 0..3 {
            if let Some(c) = producers[n].as_mut()
                && let Some(st) = c.try_wait().unwrap()
            {
                if st.success() {
                    done[n] = true;
                    producers[n] = None;
                } else {
                    producers[n] = Some(producer(dir, name, n));
                    *restarts += 1;
                }
            }
            if workers[n].try_wait().unwrap().is_some() {
                workers[n] = worker(dir, name, n);
                *restarts += 1;
            }
        }
    };
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100 + rng.next() % 200));
        let victim = (rng.next() % 6) as usize;
        let child = if victim < 3 {
            producers[victim].as_mut()
        } else {
            Some(&mut workers[victim - 3])
        };
        if let Some(c) = child
            && c.try_wait().unwrap().is_none()
        {
            c.kill().unwrap();
            c.wait().unwrap();
            kills += 1;
        }
        tend(&mut producers, &mut workers, &mut done, &mut restarts);
    }
    // Drain: no more kills. The longest time the outputs did not grow
    // while lines were still missing is the worst stall.
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut last_len, mut last_growth, mut worst_stall) =
        (output_len(dir), Instant::now(), Duration::ZERO);
    let mut seen = Seen::new(lines);
    let mut miss = seen.update(dir);
    while miss != 0 || done.iter().any(|d| !d) {
        assert!(
            Instant::now() < deadline,
            "not drained in 300 s: {miss} lines missing (first: {:?}), producers done {done:?}",
            seen.first_missing()
        );
        std::thread::sleep(Duration::from_millis(200));
        tend(&mut producers, &mut workers, &mut done, &mut restarts);
        let len = output_len(dir);
        if len != last_len || done.iter().any(|d| !d) {
            // A producer still publishing is not the group stalling: the
            // clock runs once everything is in the queue.
            last_len = len;
            last_growth = Instant::now();
        }
        worst_stall = worst_stall.max(last_growth.elapsed());
        miss = seen.update(dir);
    }
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let mut errors = String::new();
    for n in 0..3 {
        let e = std::fs::read_to_string(dir.join(format!("err{n}"))).unwrap_or_default();
        errors.push_str(&e);
    }
    eprintln!(
        "kill-together: {secs} s, {lines} lines x 3, {kills} kills, {restarts} restarts, \
         worst stall {worst_stall:?}"
    );
    assert!(kills > secs * 2, "the schedule killed too little: {kills}");
    // unblock_timeout (5 s) plus the lease (30 s) is the bound; a healthy
    // run stays far below it.
    assert!(
        worst_stall < Duration::from_secs(35),
        "the group stalled for {worst_stall:?} with work waiting"
    );
    // Workers exit on their --timeout; no other complaint is expected
    // (a group reported deleted was a symptom of the issue).
    for line in errors.lines() {
        assert!(
            !line.contains("deleted or taken over"),
            "a worker saw its group as deleted: {line}"
        );
    }
}
