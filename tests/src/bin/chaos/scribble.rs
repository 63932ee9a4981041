//! The scribble phase (`chaos scribble`): while producers, an ack=auto
//! consumer and ack=manual workers run, the runner writes random bytes
//! into the live queue file, then checks that no process crashed or hung
//! and that none went on reporting success for publishes into a queue
//! that a new opener refuses as corrupt. (Scribbled payloads are not
//! checked: no checksum covers a ring slot, by design — what is checked
//! is that the queue's own words are never trusted when impossible.)

use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmq::{Error, Queue};
use shmq_tests::Rng;
use shmq_tests::chaos::history;

use crate::setup::{self, Phase, QUEUE};

/// What one round saw.
#[derive(Default)]
struct Round {
    /// A new opener's verdict after the scribbling: None if it opened.
    refused: Option<String>,
    /// Client processes that died of a signal or a panic.
    crashed: Vec<String>,
    /// Client processes still running 20 s after they were told to stop.
    hung: Vec<String>,
    /// Publishes that returned ok well after an opener refused the queue.
    ok_after: Vec<String>,
}

pub fn run(args: &[String]) -> i32 {
    let mut rounds = 8u64;
    let mut seed = history::now_ns() | 1;
    let mut base: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--rounds" => rounds = v().parse().unwrap_or(rounds),
            "--seed" => seed = v().parse().unwrap_or(seed),
            "--dir" => base = Some(PathBuf::from(v())),
            other => {
                eprintln!("chaos scribble: unknown argument {other}");
                return 64;
            }
        }
    }
    let made = base.is_none();
    let base = base.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("shmq-scribble-{}-{seed}", std::process::id()))
    });
    println!(
        "chaos scribble: seed {seed}, {rounds} rounds, in {}",
        base.display()
    );
    let mut rng = Rng(seed);
    let (mut refused, mut anomalies) = (0, 0);
    for k in 0..rounds {
        let dir = base.join(format!("round-{k}"));
        let r = round(&dir, &mut rng);
        let verdict = r.refused.as_deref().unwrap_or("opens");
        println!("round {k}: a new opener: {verdict}");
        refused += u64::from(r.refused.is_some());
        for (what, list) in [
            ("crashed", &r.crashed),
            ("hung", &r.hung),
            ("published ok into it after it was refused", &r.ok_after),
        ] {
            for c in list.iter() {
                println!("  anomaly: {c} {what}");
                anomalies += 1;
            }
        }
    }
    println!(
        "chaos scribble: {rounds} rounds, {refused} queues refused as corrupt, {anomalies} anomalies"
    );
    if anomalies > 0 {
        println!(
            "the rounds are in {}; reproduce: chaos scribble --rounds {rounds} --seed {seed}",
            base.display()
        );
        return 1;
    }
    if made {
        let _ = std::fs::remove_dir_all(&base);
    }
    0
}

fn spawn(dir: &Path, role: &str, id: u16, seed: u64) -> (String, Child) {
    let name = format!("{role}-{id}-0");
    let err = std::fs::File::create(setup::stderr_file(dir, &name)).expect("stderr");
    let child = Command::new(std::env::current_exe().expect("the chaos binary"))
        .args(["client", role, &id.to_string(), "0"])
        .arg(dir)
        .arg(seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .env_remove("SHMQ_FAULT")
        .spawn()
        .expect("starting a client");
    (name, child)
}

fn round(dir: &Path, rng: &mut Rng) -> Round {
    for sub in ["history", "stderr", "queue"] {
        std::fs::create_dir_all(dir.join(sub)).expect("the round's directory");
    }
    std::fs::write(dir.join(setup::SCRIBBLED), b"").expect("the marker");
    setup::set_phase(dir, Phase::Run);
    let opts = setup::options(dir);
    let q = Queue::create(QUEUE, &opts).expect("creating the queue");
    for g in ["auto", "work"] {
        q.create_group(g, shmq::Start::Earliest).expect("a group");
    }
    let path = q.path().to_path_buf();
    drop(q);
    let seed = rng.next();
    let mut clients: Vec<(String, Child)> = [
        ("prod", 0),
        ("prod", 1),
        ("auto", 0),
        ("work", 0),
        ("work", 1),
    ]
    .iter()
    .map(|(r, i)| spawn(dir, r, *i, seed))
    .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // Scribble: a few bytes at a time, mostly over the control words at
    // the front of the file, now and then anywhere.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("the queue file");
    let len = file.metadata().expect("its size").len();
    let writes = 1 + rng.next() % 40;
    for _ in 0..writes {
        let span = match rng.next() % 10 {
            0..=4 => len.min(4 << 10),
            5..=7 => len.min(64 << 10),
            _ => len,
        };
        let at = rng.next() % span;
        let n = (1 + rng.next() % 8).min(len - at) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = file.write_at(&bytes, at);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut r = Round::default();
    let refused_at = history::now_ns();
    match Queue::open_with(QUEUE, &opts) {
        Ok(_) => {}
        Err(e @ Error::Corrupt { .. }) => r.refused = Some(format!("refused: {e}")),
        Err(e) => r.refused = Some(format!("refused with another error: {e}")),
    }
    std::thread::sleep(Duration::from_millis(2000));
    setup::set_phase(dir, Phase::Stop);
    let bound = Instant::now() + Duration::from_secs(20);
    for (name, child) in &mut clients {
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                _ if Instant::now() > bound => break None,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        match status {
            None => {
                let at = where_stuck(dir, name, child.id());
                let _ = child.kill();
                let _ = child.wait();
                r.hung.push(format!("{name} ({at})"));
            }
            Some(s) if s.signal().is_some() || s.code() == Some(101) => {
                let err =
                    std::fs::read_to_string(setup::stderr_file(dir, name)).unwrap_or_default();
                let tail: String = err.lines().rev().take(6).collect::<Vec<_>>().join(" | ");
                r.crashed.push(format!("{name} ({s}: {tail})"));
            }
            Some(_) => {}
        }
    }
    if r.refused.is_some() {
        // A producer checks once a ring's worth of claims: a second is
        // many rings here.
        let grace = refused_at + 1_000_000_000;
        for (name, _) in clients.iter().filter(|(n, _)| n.starts_with("prod")) {
            let read = history::read(&dir.join("history").join(format!("{name}.log")));
            let late = read
                .map(|r| {
                    r.events
                        .iter()
                        .filter(|e| e.kind() == "po" && e.t > grace)
                        .count()
                })
                .unwrap_or(0);
            if late > 0 {
                r.ok_after.push(format!("{name} ({late} publishes)"));
            }
        }
    }
    r
}

/// Where hung client `pid` waits, for the report: each thread's kernel
/// wait channel and, if `gdb` is there, every thread's stack, written to
/// `stderr/NAME.hung.txt` in the round's directory (a hang seen once in
/// CI could not be told from its history alone).
fn where_stuck(dir: &Path, name: &str, pid: u32) -> String {
    let mut channels = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
            channels.push(format!(
                "{}:{}",
                t.file_name().to_string_lossy(),
                wchan.trim()
            ));
        }
    }
    let stacks = Command::new("gdb")
        .args([
            "-batch",
            "-p",
            &pid.to_string(),
            "-ex",
            "thread apply all bt 30",
        ])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(no gdb: {e})"));
    let file = dir.join("stderr").join(format!("{name}.hung.txt"));
    let _ = std::fs::write(&file, format!("wait channels: {channels:?}\n\n{stacks}"));
    format!(
        "waiting in {}; stacks in {}",
        channels.join(", "),
        file.display()
    )
}
