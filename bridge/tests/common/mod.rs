//! What the bridge's tests against real engines share: the cluster a test
//! runs against (or is skipped without), queues in a private directory,
//! the bridge as a child process, the test stream (keys, headers, ids) and
//! its check (once each, metadata intact, key order).

#![allow(dead_code)] // each test file uses its own part

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Meta, Options, Queue, Start};

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_shmq-bridge");

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A real cluster the tests run against: the environment that names a
/// running one (`.ci/run bridge` sets it) and the script that runs one
/// on loopback.
pub struct Cluster {
    /// The engine, as a skipped test names it.
    pub engine: &'static str,
    /// The variable with the running cluster's address.
    pub address_var: &'static str,
    /// The variable that makes a missing cluster a failure, not a skip.
    pub require_var: &'static str,
    /// The variable with the copies of each topic or stream (1 unless set).
    pub replicas_var: &'static str,
    /// `scripts/<script>` runs a cluster on loopback.
    pub script: &'static str,
}

impl Cluster {
    /// The running cluster's address, or `None` (skipped) without one.
    pub fn address(&self) -> Option<String> {
        match std::env::var(self.address_var) {
            Ok(a) if !a.is_empty() => Some(a),
            _ => {
                assert!(
                    std::env::var_os(self.require_var).is_none(),
                    "{} is set but {} is not: start scripts/{}",
                    self.require_var,
                    self.address_var,
                    self.script
                );
                eprintln!(
                    "skipped: no {} ({}; see scripts/{})",
                    self.engine, self.address_var, self.script
                );
                None
            }
        }
    }

    /// Copies of each topic or stream a test makes: 3 on a 3-node cluster.
    pub fn replicas(&self) -> u32 {
        std::env::var(self.replicas_var)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(1)
    }

    /// Runs `scripts/<script> ARGS...` on the cluster: its stdout.
    pub fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(repo().join("scripts").join(self.script))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.script,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A topic name no other test (or run) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmq-test-{what}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )
}

pub fn queue(dir: &Path, name: &str, slots: u64, dedup: u64) -> Queue {
    Queue::create(
        name,
        &Options::new()
            .dir(dir)
            .slots(slots)
            .slot_size(512)
            .ordering_lanes(256)
            .dedup_window(dedup),
    )
    .unwrap()
}

/// A bridge process; killed if still running when dropped.
pub struct Bridge(pub Child);

impl Bridge {
    pub fn spawn(args: &[&str]) -> Bridge {
        Bridge::spawn_to(args, Stdio::null())
    }

    /// With its stdout (the `--stats-json` lines, if asked for) to `out`.
    pub fn spawn_to(args: &[&str], out: impl Into<Stdio>) -> Bridge {
        Bridge(
            Command::new(BRIDGE)
                .args(args)
                .args(["--stats-interval", "1"])
                .stdout(out)
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    }

    /// Waits for it to exit by itself (`--exit-idle`), at most `limit`.
    pub fn finish(mut self, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                assert!(st.success(), "shmq-bridge exited with {st}");
                return;
            }
            assert!(
                Instant::now() < end,
                "shmq-bridge did not finish in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks it to stop (SIGTERM: it commits and gives back what is in
    /// flight) and waits for a clean exit.
    pub fn stop(self, limit: Duration) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        self.finish(limit);
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A bridge running `direction` (`to-kafka`, `from-nats`, ...) on queue
/// `q` in `dir`, with the engine's arguments `engine`, then `extra`.
pub fn bridge(direction: &str, dir: &Path, q: &str, engine: &[&str], extra: &[&str]) -> Bridge {
    let d = dir.to_str().unwrap();
    Bridge::spawn(&[&[direction, "--dir", d, "--queue", q], engine, extra].concat())
}

/// Message `i` of the test stream: key `k<i % keys>`, headers, ids.
pub fn publish_stream(q: &Queue, from: u64, to: u64, keys: u64) {
    let mut p = q.producer().unwrap();
    for i in from..to {
        let key = format!("k{}", i % keys);
        let payload = format!("message-{i}");
        let trace = format!("trace-{i}");
        let meta = Meta::new()
            .ordering_key(&key)
            .header("traceparent", &trace)
            .header("lang", "rust")
            .header("lang", "again")
            .type_id(7)
            .correlation_id(i);
        p.publish_with_timeout(payload.as_bytes(), &meta, Duration::from_secs(60))
            .unwrap();
    }
}

/// Reads queue `q` as a fresh group until `want` messages came (or `limit`
/// passed) and checks each against `publish_stream`: exactly once,
/// byte-identical with its metadata, each key in order.
pub fn check_stream(q: &Queue, want: u64, keys: u64, limit: Duration) {
    check_stream_with(q, want, keys, limit, false)
}

/// [`check_stream`]; with `per_name`, the headers' order is checked only
/// among values of one name (an engine whose headers are a map).
pub fn check_stream_with(q: &Queue, want: u64, keys: u64, limit: Duration, per_name: bool) {
    let mut c = q
        .consumer("check", ConsumerOptions::new().start(Start::Earliest))
        .unwrap();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut last_of_key: BTreeMap<String, u64> = BTreeMap::new();
    let end = Instant::now() + limit;
    while (seen.len() as u64) < want {
        assert!(
            Instant::now() < end,
            "only {} of {want} messages arrived in {limit:?}",
            seen.len()
        );
        let Some(m) = c.poll(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        let payload = std::str::from_utf8(m.payload()).unwrap();
        let i: u64 = payload.strip_prefix("message-").unwrap().parse().unwrap();
        let key = format!("k{}", i % keys);
        assert_eq!(m.ordering_key(), Some(key.as_bytes()), "{payload}");
        let mut headers: Vec<(&str, &[u8])> = m.headers().collect();
        let trace = format!("trace-{i}");
        let mut expected = vec![
            ("traceparent", trace.as_bytes()),
            ("lang", &b"rust"[..]),
            ("lang", &b"again"[..]),
        ];
        if per_name {
            // Stable: values of one name keep their order.
            headers.sort_by_key(|h| h.0);
            expected.sort_by_key(|h| h.0);
        }
        assert_eq!(headers, expected, "{payload}");
        assert_eq!((m.type_id(), m.correlation_id()), (7, i));
        *seen.entry(i).or_default() += 1;
        assert_eq!(seen[&i], 1, "{payload} twice");
        if let Some(&before) = last_of_key.get(&key) {
            assert!(before < i, "key {key}: {i} after {before}");
        }
        last_of_key.insert(key, i);
    }
    // And nothing more.
    assert!(
        c.poll(Duration::from_millis(500)).unwrap().is_none(),
        "a message too many"
    );
}

pub fn count() -> u64 {
    std::env::var("SHMQ_BRIDGE_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20_000)
}

/// Runs the bridge expecting a failure; returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = Command::new(BRIDGE).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// The two queues of a round trip of `n` messages: `a` (group `bridge`),
/// and `b` (group `check`) with room and a dedup window for all of them.
pub fn round_trip_queues(dir: &Path, n: u64) -> (Queue, Queue) {
    let a = queue(dir, "a", 8192, 1024);
    a.create_group("bridge", Start::Earliest).unwrap();
    let b = queue(dir, "b", 65536, n.max(1024));
    b.create_group("check", Start::Earliest).unwrap();
    (a, b)
}

/// The two queues of a fault test: `a` (group `bridge`) with room for the
/// whole stream before any bridge runs, and `b` (group `check`) with a
/// dedup window for its replays.
pub fn fault_queues(dir: &Path) -> (Queue, Queue) {
    let a = queue(dir, "a", 32768, 1024);
    a.create_group("bridge", Start::Earliest).unwrap();
    let b = queue(dir, "b", 32768, 65536);
    b.create_group("check", Start::Earliest).unwrap();
    (a, b)
}

/// Every one of the `n` messages of `a` was acked by the bridge's group.
pub fn assert_all_acked(a: &Queue, n: u64) {
    let g = a.groups().into_iter().find(|g| g.name == "bridge").unwrap();
    assert_eq!((g.committed, g.in_flight), (n, 0), "everything acked in a");
}

/// A xorshift generator: the fault tests' pseudo-random moments, the same
/// from run to run.
pub struct XorShift(pub u64);

impl XorShift {
    /// A number below `m`.
    pub fn below(&mut self, m: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % m
    }
}

/// SIGKILLs both bridges of a fault round a pseudo-random moment apart,
/// `out` first in even rounds, `inb` first in odd ones.
pub fn kill_both(out: &mut Bridge, inb: &mut Bridge, round: u32, rng: &mut XorShift) {
    let (first, second) = if round.is_multiple_of(2) {
        (out, inb)
    } else {
        (inb, out)
    };
    first.kill();
    std::thread::sleep(Duration::from_millis(rng.below(300)));
    second.kill();
}
