//! The chaos run's client processes: producers, the ack=auto consumer, the
//! ack=manual workers, the replaying consumer and the DLQ admin. Each
//! writes its history (`shmq_tests::chaos::history`) before and after
//! every call, and keeps going until the run's phase file says stop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Error, Message, Meta, Nack, Queue, Seek};
use shmq_tests::Rng;
use shmq_tests::chaos::history::{Log, fnv};
use shmq_tests::chaos::payload::{mid, mid_in, payload};

use crate::setup::{self, MAX_PAYLOAD, Phase, QUEUE};

/// One client process: `chaos client ROLE ID INCARNATION DIR SEED`.
pub fn run(args: &[String]) -> ! {
    // Gone with the runner (killed or interrupted): no client left behind,
    // stopped or not.
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG and a signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let role = args[0].as_str();
    let id: u16 = args[1].parse().expect("client id");
    let inc: u64 = args[2].parse().expect("incarnation");
    let dir = PathBuf::from(&args[3]);
    let seed: u64 = args[4].parse().expect("seed");
    let name = format!("{role}-{id}-{inc}");
    let log = Log::open(&dir.join("history").join(format!("{name}.log"))).expect("history file");
    let opts = setup::options(&dir);
    let q = Queue::open_with(QUEUE, &opts).unwrap_or_else(|e| {
        eprintln!("{name}: open: {e}");
        std::process::exit(2)
    });
    let rng = Rng(seed ^ (u64::from(id) << 40) ^ (inc << 8) ^ role.len() as u64 | 1);
    let mut c = Client {
        log,
        rng,
        dir,
        q,
        id,
        inc,
        plant: Plant::from_env(),
        tokio: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    };
    match role {
        "prod" => c.produce(),
        "auto" => c.auto(),
        "work" => c.work(),
        "replay" => c.replay(),
        "admin" => c.admin(),
        other => panic!("no client role {other}"),
    }
    std::process::exit(0)
}

/// The checker's self-check (`CHAOS_PLANT=KIND@N`): the ack=auto consumer
/// writes its N-th delivery down wrong, as a broken queue would deliver
/// it: `drop` (not at all), `dup` (twice), `flip` (a payload byte
/// flipped), `swap` (after the next delivery of the same ordering key).
struct Plant {
    kind: String,
    at: u64,
    seen: u64,
    held: Option<Held>,
}

/// A delivery the swap plant writes down late.
struct Held {
    seq: u64,
    id: u64,
    bytes: Vec<u8>,
    key: Vec<u8>,
}

impl Plant {
    fn from_env() -> Plant {
        let spec = std::env::var("CHAOS_PLANT").unwrap_or_default();
        let (kind, at) = spec.split_once('@').unwrap_or((&spec, "0"));
        Plant {
            kind: kind.to_string(),
            at: at.parse().unwrap_or(0),
            seen: 0,
            held: None,
        }
    }
}

struct Client {
    log: Log,
    rng: Rng,
    dir: PathBuf,
    q: Queue,
    id: u16,
    inc: u64,
    plant: Plant,
    tokio: tokio::runtime::Runtime,
}

/// Errors a rule allows a call to fail with, under these faults.
fn allowed(e: &Error) -> bool {
    matches!(
        e,
        Error::Timeout
            | Error::Full
            | Error::SpillFull(_)
            | Error::Aborted
            | Error::LeaseExpired
            // The DLQ and its overflow full (a full disk): a clear error,
            // the message stays where it was.
            | Error::DlqFull(_)
    )
}

/// An error as one history field.
fn field(e: &Error) -> String {
    format!("{e:?}").replace(['\t', '\n'], " ")
}

impl Client {
    fn phase(&self) -> Phase {
        setup::phase(&self.dir)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.next() % 100 < percent
    }

    /// Writes an error no rule allows (the checker reports it).
    fn unexpected(&mut self, what: &str, e: &Error) {
        self.log.event("x", &[&what, &field(e)]);
    }

    // ---- producers -------------------------------------------------------

    fn produce(&mut self) {
        let mut p = match self.q.producer() {
            Ok(p) => p,
            Err(e) => {
                self.unexpected("producer", &e);
                return;
            }
        };
        // A keyed publish the last incarnation died inside: retry it, as a
        // user retries after a crash, with the same id and key.
        let mut retry = self.in_doubt_keyed();
        let mut n = self.inc << 24;
        let mut ops = 0u64;
        loop {
            ops += 1;
            if ops % 32 == 0 {
                match self.phase() {
                    Phase::Run => {}
                    Phase::Lull => {
                        std::thread::sleep(Duration::from_millis(50));
                        ops -= 1;
                        continue;
                    }
                    Phase::Drain | Phase::Stop => return,
                }
            }
            let okey = (self.rng.next() % 3 == 0).then(|| format!("k{}", self.rng.next() % 12));
            if let Some((m, okey)) = retry.take() {
                if !self.publish_keyed(&mut p, m, okey.as_deref()) {
                    retry = Some((m, okey));
                }
                continue;
            }
            n += 1;
            let m = mid(self.id, n);
            let op = self.rng.next() % 100;
            if op < 15 {
                if !self.publish_keyed(&mut p, m, okey.as_deref()) {
                    retry = Some((m, okey));
                }
            } else if op < 40 {
                self.publish_one(&mut p, m, okey.as_deref(), "one");
            } else if op < 45 {
                self.publish_one(&mut p, m, okey.as_deref(), "sched");
            } else if op < 60 {
                self.publish_one(&mut p, m, okey.as_deref(), "async");
            } else if op < 64 {
                // Rarely: a reservation needs a ring slot, so it waits while
                // the queue spills (documented), most of this run.
                self.publish_reserved(&mut p, m);
            } else {
                let k = 2 + self.rng.next() % 7;
                let mids: Vec<u64> = (0..k).map(|i| mid(self.id, n + i)).collect();
                n += k - 1;
                self.publish_batch(&mut p, &mids);
            }
        }
    }

    /// The keyed publish the previous incarnation invoked and never saw
    /// complete, if its last event is one.
    fn in_doubt_keyed(&self) -> Option<(u64, Option<String>)> {
        let prev = format!("prod-{}-{}", self.id, self.inc.checked_sub(1)?);
        let path = self.dir.join("history").join(format!("{prev}.log"));
        let read = shmq_tests::chaos::history::read(&path).ok()?;
        let last = read.events.last()?;
        (last.kind() == "pi" && last.f(2) == "1").then(|| {
            let okey = (last.f(3) != "-").then(|| last.f(3).to_string());
            (last.f(0).parse().unwrap_or(0), okey)
        })
    }

    fn invoke(&mut self, mids: &str, how: &str, idem: bool, okey: Option<&str>) {
        let idem = if idem { "1" } else { "0" };
        self.log
            .event("pi", &[&mids, &how, &idem, &okey.unwrap_or("-")]);
    }

    fn completed(&mut self, r: Result<(u64, usize)>, what: &str) -> bool {
        match r {
            Ok((seq, n)) => {
                self.log.event("po", &[&seq, &n]);
                true
            }
            Err(Error::PartlyPublished {
                first_seq,
                published,
                cause,
                ..
            }) => {
                self.log.event("po", &[&first_seq, &published]);
                if !allowed(&cause) {
                    self.unexpected(what, &cause);
                }
                true
            }
            Err(e) => {
                self.log.event("pf", &[&field(&e)]);
                if !allowed(&e) {
                    self.unexpected(what, &e);
                }
                false
            }
        }
    }

    /// Returns whether it went in (a keyed one failed is retried).
    fn publish_keyed(&mut self, p: &mut shmq::Producer, m: u64, okey: Option<&str>) -> bool {
        let body = payload(m, MAX_PAYLOAD);
        self.invoke(&m.to_string(), "one", true, okey);
        let key = m.to_le_bytes();
        let mut meta = Meta::new().key(key).header("chaos", "keyed");
        if let Some(k) = okey {
            meta = meta.ordering_key(k);
        }
        let r = p
            .publish_with_timeout(&body, &meta, Duration::from_millis(500))
            .map(|s| (s, 1));
        self.completed(r, "keyed publish")
    }

    fn publish_one(&mut self, p: &mut shmq::Producer, m: u64, okey: Option<&str>, how: &str) {
        let body = payload(m, MAX_PAYLOAD);
        self.invoke(&m.to_string(), how, false, okey);
        let mut meta = Meta::new().correlation_id(m).header("chaos", how);
        if let Some(k) = okey {
            meta = meta.ordering_key(k);
        }
        if how == "sched" {
            // Due in up to 40 ms: it waits in the schedule meanwhile, and
            // gets its seq when it is moved into the ring.
            meta = meta.delay(Duration::from_millis(1 + self.rng.next() % 40));
        }
        let r = if how == "async" {
            // Waits (asynchronously) for room, as an async producer does,
            // under a deadline: dropped while waiting (cancel-safe),
            // nothing was published.
            let wait = async {
                tokio::time::timeout(
                    Duration::from_millis(500),
                    p.publish_with_async(&body, &meta),
                )
                .await
            };
            self.tokio.block_on(wait).unwrap_or(Err(Error::Timeout))
        } else {
            p.publish_with_timeout(&body, &meta, Duration::from_millis(500))
        };
        self.completed(r.map(|s| (s, 1)), how);
    }

    /// A reservation takes no ordering key or headers: it is unkeyed.
    fn publish_reserved(&mut self, p: &mut shmq::Producer, m: u64) {
        let body = payload(m, MAX_PAYLOAD);
        self.invoke(&m.to_string(), "resv", false, None);
        let r = match p.reserve_timeout(body.len(), Duration::from_millis(20)) {
            Ok(mut slot) => {
                slot.copy_from_slice(&body);
                slot.set_meta(Meta::new().correlation_id(m));
                slot.commit()
            }
            Err(e) => Err(e),
        };
        self.completed(r.map(|s| (s, 1)), "reservation");
    }

    fn publish_batch(&mut self, p: &mut shmq::Producer, mids: &[u64]) {
        let bodies: Vec<Vec<u8>> = mids.iter().map(|m| payload(*m, MAX_PAYLOAD)).collect();
        let list: Vec<String> = mids.iter().map(u64::to_string).collect();
        self.invoke(&list.join(","), "batch", false, None);
        let r = p.publish_batch_timeout(&bodies, Duration::from_millis(500));
        let r = match r {
            Ok((_, 0)) => Err(Error::Timeout),
            other => other,
        };
        self.completed(r, "batch");
    }

    // ---- consumers -------------------------------------------------------

    fn delivered(&mut self, group: &str, m: &Message<'_>) {
        let bytes = m.payload();
        let id = mid_in(bytes).unwrap_or(0);
        let (seq, attempt) = (m.seq(), u64::from(m.attempt()));
        self.log
            .event("d", &[&group, &seq, &attempt, &id, &fnv(bytes)]);
    }

    /// The ack=auto consumer's record of a delivery, with the plant.
    fn auto_delivered(&mut self, m: &Message<'_>) {
        let bytes = m.payload().to_vec();
        let id = mid_in(&bytes).unwrap_or(0);
        let (seq, attempt) = (m.seq(), u64::from(m.attempt()));
        let key = m.ordering_key().map(<[u8]>::to_vec);
        let write = |log: &mut Log, seq: u64, id: u64, bytes: &[u8]| {
            log.event("d", &[&"auto", &seq, &attempt, &id, &fnv(bytes)]);
        };
        // A held delivery (swap) goes down after the next of its key.
        if let Some(held) = self.plant.held.take() {
            if key.as_ref() == Some(&held.key) {
                write(&mut self.log, seq, id, &bytes);
                write(&mut self.log, held.seq, held.id, &held.bytes);
                return;
            }
            self.plant.held = Some(held);
        }
        self.plant.seen += 1;
        let planted = self.plant.at != 0 && self.plant.seen == self.plant.at;
        match (planted, self.plant.kind.as_str()) {
            (true, "drop") => {}
            (true, "dup") => {
                write(&mut self.log, seq, id, &bytes);
                write(&mut self.log, seq, id, &bytes);
            }
            (true, "flip") => {
                let mut b = bytes.clone();
                let last = b.len() - 1;
                b[last] ^= 0x20;
                write(&mut self.log, seq, id, &b);
            }
            (true, "swap") => match key {
                Some(key) => {
                    self.plant.held = Some(Held {
                        seq,
                        id,
                        bytes,
                        key,
                    })
                }
                None => {
                    // Not keyed: plant at the next one.
                    self.plant.at += 1;
                    write(&mut self.log, seq, id, &bytes);
                }
            },
            _ => write(&mut self.log, seq, id, &bytes),
        }
    }

    /// A consumer of `group` (made by the runner); an error no rule
    /// allows is written down, and the client has nothing to do.
    fn attach(&mut self, group: &str, ack: Ack) -> Option<shmq::Consumer> {
        match self
            .q
            .consumer(group, ConsumerOptions::new().ack(ack).create(false))
        {
            Ok(c) => Some(c),
            Err(e) => {
                self.unexpected(&format!("{group} consumer"), &e);
                None
            }
        }
    }

    fn auto(&mut self) {
        let Some(mut c) = self.attach("auto", Ack::Auto) else {
            return;
        };
        // Every other incarnation waits asynchronously.
        let async_waits = self.inc % 2 == 1;
        let wait = Duration::from_millis(200);
        let mut polled = Instant::now();
        loop {
            if polled.elapsed() > Duration::from_millis(50) {
                if self.phase() == Phase::Stop {
                    return;
                }
                polled = Instant::now();
            }
            if async_waits {
                match self.tokio.block_on(c.receive_async_timeout(wait)) {
                    Ok(Some(d)) => self.auto_delivered(&d),
                    Ok(None) => {}
                    Err(e) => self.unexpected("receive_async", &e),
                }
            } else if self.chance(50) {
                match c.receive_batch(8, wait) {
                    Ok(batch) => {
                        for m in batch.iter() {
                            self.auto_delivered(&m);
                        }
                    }
                    Err(Error::Timeout) => {}
                    Err(e) => self.unexpected("receive_batch", &e),
                }
            } else {
                match c.receive_timeout(wait) {
                    Ok(d) => self.auto_delivered(&d),
                    Err(Error::Timeout) => {}
                    Err(e) => self.unexpected("receive", &e),
                }
            }
        }
    }

    fn work(&mut self) {
        let Some(mut c) = self.attach("work", Ack::Manual) else {
            return;
        };
        let lease = setup::LEASE;
        // Worker 2 waits asynchronously.
        let async_waits = self.id == 2;
        let wait = Duration::from_millis(200);
        let mut slow_at = Instant::now() + Duration::from_millis(self.rng.next() % 3000);
        let mut polled = Instant::now();
        let mut phase = self.phase();
        loop {
            if polled.elapsed() > Duration::from_millis(50) {
                phase = self.phase();
                polled = Instant::now();
            }
            if phase == Phase::Stop {
                return;
            }
            let got = if async_waits {
                self.tokio.block_on(c.receive_async_timeout(wait))
            } else {
                match c.receive_timeout(wait) {
                    Ok(d) => Ok(Some(d)),
                    Err(Error::Timeout) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            let mut d = match got {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    // LeaseExpired: stopped past the lease inside receive.
                    if !allowed(&e) {
                        self.unexpected("receive (manual)", &e);
                    }
                    continue;
                }
            };
            self.delivered("work", &d);
            let seq = d.seq();
            // Once draining, only acks: the run must come to rest.
            let op = if matches!(phase, Phase::Run | Phase::Lull) {
                self.rng.next() % 1000
            } else {
                0
            };
            let nack = match op {
                900..=939 => Some((Nack::Requeue, "requeue")),
                940..=969 => Some((Nack::RequeueAfter(Duration::from_millis(30)), "later")),
                970..=979 => Some((Nack::DeadLetter, "dead")),
                _ => None,
            };
            if let Some((how, name)) = nack {
                self.log.event("ni", &[&seq, &name]);
                match d.nack(how) {
                    Ok(()) => self.log.event("no", &[&seq]),
                    Err(e) => {
                        self.log.event("nf", &[&seq, &field(&e)]);
                        if !allowed(&e) {
                            self.unexpected("nack", &e);
                        }
                    }
                }
                continue;
            }
            // Now and then (by time, so that the rate stays up) a handling
            // longer than the lease: extended, or left to run out.
            if matches!(phase, Phase::Run | Phase::Lull) && Instant::now() >= slow_at {
                slow_at = Instant::now() + Duration::from_millis(2000 + self.rng.next() % 6000);
                if self.chance(60) {
                    std::thread::sleep(lease / 2);
                    if let Err(e) = d.extend_lease(lease) {
                        if !allowed(&e) {
                            self.unexpected("extend_lease", &e);
                        }
                    }
                    std::thread::sleep(lease * 3 / 4);
                } else {
                    // Past the lease: it is someone else's now.
                    std::thread::sleep(lease * 2);
                }
            }
            self.log.event("ai", &[&seq]);
            match d.ack() {
                Ok(()) => self.log.event("ao", &[&seq]),
                Err(e) => {
                    self.log.event("af", &[&seq, &field(&e)]);
                    if !allowed(&e) {
                        self.unexpected("ack", &e);
                    }
                }
            }
        }
    }

    /// Reads forward and now and then seeks back, by seq or by time, into
    /// what only the journal still holds.
    fn replay(&mut self) {
        let Some(mut c) = self.attach("replay", Ack::Auto) else {
            return;
        };
        let mut seen: Vec<(u64, u64)> = Vec::new();
        while self.phase() != Phase::Stop {
            let until = Instant::now() + Duration::from_millis(300 + self.rng.next() % 1500);
            while Instant::now() < until {
                match c.receive_timeout(Duration::from_millis(100)) {
                    Ok(d) => {
                        self.delivered("replay", &d);
                        if self.rng.next() % 16 == 0 {
                            seen.push((d.seq(), d.timestamp_ns()));
                        }
                    }
                    Err(Error::Timeout) => break,
                    Err(e) => {
                        self.unexpected("replay receive", &e);
                        break;
                    }
                }
            }
            if seen.is_empty() || !matches!(self.phase(), Phase::Run | Phase::Lull) {
                continue;
            }
            // A pause between replays: re-reading is the workload's most
            // CPU-hungry part, and the workers need the CPU.
            std::thread::sleep(Duration::from_millis(300 + self.rng.next() % 700));
            let (seq, ts) = seen[(self.rng.next() % seen.len() as u64) as usize];
            let (target, to) = if self.chance(50) {
                (format!("seq:{seq}"), Seek::Seq(seq))
            } else {
                (format!("time:{ts}"), Seek::Time(ts))
            };
            self.log.event("si", &[&target]);
            match c.seek(to) {
                Ok(pos) => self.log.event("so", &[&pos]),
                Err(e) => {
                    self.log.event("sf", &[&field(&e)]);
                    self.unexpected("seek", &e);
                }
            }
            if seen.len() > 256 {
                seen.drain(..128);
            }
        }
    }

    /// Redrives the DLQ now and then while the run is on.
    fn admin(&mut self) {
        while matches!(self.phase(), Phase::Run | Phase::Lull) {
            std::thread::sleep(Duration::from_millis(200 + self.rng.next() % 1500));
            self.log.event("ri", &[]);
            match self
                .q
                .dlq()
                .redrive_timeout(None, Duration::from_millis(200))
            {
                Ok(n) => self.log.event("ro", &[&n]),
                Err(e @ Error::PartlyRedriven { .. }) => self.log.event("rf", &[&field(&e)]),
                Err(e) => {
                    self.log.event("rf", &[&field(&e)]);
                    if !allowed(&e) {
                        self.unexpected("redrive", &e);
                    }
                }
            }
        }
    }
}

type Result<T> = shmq::Result<T>;
