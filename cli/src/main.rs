//! `shmq`: create, inspect, publish to, consume from and benchmark queues.

#![recursion_limit = "256"]

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shmq::{Ack, ConsumerOptions, Error, Meta, Options, Overflow, Queue, Seek, Start, SyncMode};

mod baseline;
mod bench;
mod plot;

/// shmq: a broker-less, zero-copy message queue for processes on one host.
#[derive(Parser, Debug)]
#[command(name = "shmq", version, about)]
struct Cli {
    /// Directory of queue files (default: $SHMQ_DIR, else /dev/shm).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a queue.
    Create {
        /// Queue name: [A-Za-z0-9._-]{1,200}.
        name: String,
        /// Ring capacity in messages (a power of two).
        #[arg(long, default_value_t = 4096)]
        slots: u64,
        /// Largest payload in bytes.
        #[arg(long, default_value_t = 1024)]
        slot_size: usize,
        /// What a publish does when the ring is full: block, reject, or
        /// spill (to segment files on disk, read back in order).
        #[arg(long, default_value = "block")]
        overflow: String,
        /// overflow=spill: directory of the segment files [default:
        /// /var/tmp/shmq/NAME].
        #[arg(long)]
        spill_dir: Option<PathBuf>,
        /// overflow=spill: most bytes of segment files on disk.
        #[arg(long, default_value_t = 1 << 30)]
        spill_max_bytes: u64,
        /// overflow=spill: bytes of one segment file.
        #[arg(long, default_value_t = 64 << 20)]
        spill_segment_size: u64,
        /// overflow=spill: what a publish does when the spill is full too:
        /// block or reject.
        #[arg(long, default_value = "block")]
        spill_fallback: String,
        /// overflow=spill: when spilled records are flushed to disk: never,
        /// always or every-N.
        #[arg(long, default_value = "never")]
        sync: String,
        /// Keep a journal of every message (in SPILL_DIR/journal), this many
        /// seconds (with --journal-bytes, whichever comes first), so that
        /// groups can seek back to any retained seq or time.
        #[arg(long)]
        journal_age: Option<f64>,
        /// Most bytes of journal segment files.
        #[arg(long, default_value_t = 1 << 30)]
        journal_bytes: u64,
        /// How many consumer groups the queue can hold.
        #[arg(long, default_value_t = 16)]
        max_groups: u32,
        /// File mode, in octal.
        #[arg(long, default_value = "600")]
        mode: String,
        /// Seconds before consumers abort a claimed but uncommitted message.
        #[arg(long, default_value_t = 5.0)]
        unblock_timeout: f64,
        /// Seconds an ack=manual consumer holds a message before it is
        /// delivered again (the visibility timeout).
        #[arg(long, default_value_t = 30.0)]
        lease: f64,
        /// Deliveries of a message before it goes to the dead-letter queue.
        #[arg(long, default_value_t = 5)]
        max_deliveries: u32,
        /// Entries of the dead-letter queue.
        #[arg(long, default_value_t = 1024)]
        dlq_slots: u32,
    },
    /// Publish one message per line of stdin (newline not included), or
    /// --count synthetic messages of --size bytes.
    Publish {
        /// Queue name.
        name: String,
        /// Publish this many synthetic messages instead of reading stdin.
        #[arg(long)]
        count: Option<u64>,
        /// Size of each synthetic message.
        #[arg(long, default_value_t = 64, requires = "count")]
        size: usize,
        /// Type tag put on every message.
        #[arg(long, default_value_t = 0)]
        type_id: u32,
        /// Give up if the queue stays full this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Write each payload and a newline to stdout, in order.
    Consume {
        /// Queue name.
        name: String,
        /// Consumer group (created if it does not exist).
        #[arg(long)]
        group: String,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Exit after this many seconds without a message.
        #[arg(long)]
        timeout: Option<f64>,
        /// Acknowledgement mode (auto: committed on receive).
        #[arg(long, value_enum, default_value_t = AckArg::Auto)]
        ack: AckArg,
        /// Where a new group starts.
        #[arg(long, value_enum, default_value_t = StartArg::Earliest)]
        start: StartArg,
    },
    /// Show depth, groups, lag and counters.
    Stat {
        /// Queue name.
        name: String,
        /// One JSON object.
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Prometheus text exposition format.
        #[arg(long)]
        prometheus: bool,
    },
    /// Create a consumer group, so it retains messages before any consumer runs.
    GroupCreate {
        /// Queue name.
        name: String,
        /// Group name: [A-Za-z0-9._-]{1,48}.
        group: String,
        /// Where it starts.
        #[arg(long, value_enum, default_value_t = StartArg::Earliest, conflicts_with = "seq")]
        start: StartArg,
        /// Start at this seq.
        #[arg(long)]
        seq: Option<u64>,
    },
    /// List consumer groups.
    Groups {
        /// Queue name.
        name: String,
    },
    /// Move a group (with no consumer attached) to replay or skip.
    Seek {
        /// Queue name.
        name: String,
        /// Group to move.
        #[arg(long)]
        group: String,
        /// To this seq.
        #[arg(long, group = "to")]
        seq: Option<u64>,
        /// To the first message published at or after this time: Unix
        /// seconds (fractions allowed) or relative, like -30s, -5m, -2h.
        #[arg(long, group = "to", allow_hyphen_values = true)]
        time: Option<String>,
        /// To the oldest retained message.
        #[arg(long, group = "to")]
        earliest: bool,
        /// Past the newest message.
        #[arg(long, group = "to")]
        latest: bool,
    },
    /// Inspect the dead-letter queue, send dead letters back to their
    /// group, or delete them.
    Dlq {
        /// Queue name.
        name: String,
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Delete a consumer group (with no consumer attached).
    GroupDelete {
        /// Queue name.
        name: String,
        /// Group name.
        group: String,
    },
    /// Remove a queue's file.
    Rm {
        /// Queue name.
        name: String,
    },
    /// Measure latency or throughput between processes, against bare
    /// baselines measured in the same run.
    Bench(bench::BenchArgs),
    /// Internal: one process of a benchmark.
    #[command(hide = true, name = "__bench-worker")]
    BenchWorker(bench::WorkerArgs),
}

#[derive(Subcommand, Debug)]
enum DlqAction {
    /// One line per dead letter, oldest first (`--json`: one object per line).
    List {
        /// JSON lines, payloads as strings (lossy UTF-8).
        #[arg(long)]
        json: bool,
    },
    /// Deliver dead letters again to the group that dead-lettered them, and
    /// only to it.
    Redrive {
        /// Only the dead letter of this seq.
        #[arg(long)]
        seq: Option<u64>,
    },
    /// Delete every dead letter that is not being redriven.
    Purge,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AckArg {
    /// At-most-once: committed on receive.
    Auto,
    /// At-least-once: each message is acked after it was written out.
    Manual,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StartArg {
    Earliest,
    Latest,
}

impl From<StartArg> for Start {
    fn from(s: StartArg) -> Start {
        match s {
            StartArg::Earliest => Start::Earliest,
            StartArg::Latest => Start::Latest,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut opts = Options::new();
    if let Some(d) = &cli.dir {
        opts = opts.dir(d);
    }
    match run(cli.command, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmq: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors of the CLI: the queue's, or its own.
#[derive(Debug)]
pub(crate) enum CliError {
    Queue(Error),
    Other(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Queue(e) => e.fmt(f),
            CliError::Other(s) => f.write_str(s),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> CliError {
        CliError::Queue(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::Other(e.to_string())
    }
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

fn secs(s: f64, what: &str) -> CliResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| CliError::Other(format!("bad {what}: {s}")))
}

fn run(command: Command, opts: Options) -> CliResult {
    match command {
        Command::Create {
            name,
            slots,
            slot_size,
            overflow,
            max_groups,
            mode,
            unblock_timeout,
            lease,
            max_deliveries,
            dlq_slots,
            spill_dir,
            spill_max_bytes,
            spill_segment_size,
            spill_fallback,
            sync,
            journal_age,
            journal_bytes,
        } => {
            let overflow: Overflow = overflow.parse()?;
            let spill_fallback: Overflow = spill_fallback.parse()?;
            let sync: SyncMode = sync.parse()?;
            let mut opts = opts
                .spill_max_bytes(spill_max_bytes)
                .spill_segment_size(spill_segment_size)
                .spill_fallback(spill_fallback)
                .sync(sync);
            if let Some(d) = spill_dir {
                opts = opts.spill_dir(d);
            }
            if let Some(age) = journal_age {
                opts = opts.journal(shmq::Retention::new(
                    secs(age, "--journal-age")?,
                    journal_bytes,
                ));
            }
            let mode = u32::from_str_radix(&mode, 8).map_err(|_| {
                CliError::Other(format!("bad --mode {mode:?}: give octal bits like 600"))
            })?;
            let q = Queue::create(
                &name,
                &opts
                    .slots(slots)
                    .slot_size(slot_size)
                    .overflow(overflow)
                    .max_groups(max_groups)
                    .mode(mode)
                    .unblock_timeout(secs(unblock_timeout, "--unblock-timeout")?)
                    .lease(secs(lease, "--lease")?)
                    .max_deliveries(max_deliveries)
                    .dlq_slots(dlq_slots),
            )?;
            eprintln!(
                "created {} ({} slots of {} bytes, overflow={})",
                q.path().display(),
                q.slots(),
                q.slot_size(),
                q.overflow()
            );
            let st = q.stats();
            if let Some(d) = st.spill_dir {
                eprintln!("spill directory {}", d.display());
            }
            if let (Some(_), Some(age)) = (st.journal, journal_age) {
                eprintln!("journal keeps {age} s, at most {journal_bytes} bytes");
            }
            Ok(())
        }
        Command::Publish {
            name,
            count,
            size,
            type_id,
            timeout,
        } => {
            let q = Queue::open_with(&name, &opts)?;
            let mut p = q.producer()?;
            let meta = Meta::new().type_id(type_id);
            let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
            let mut publish = |payload: &[u8]| -> CliResult<u64> {
                Ok(match timeout {
                    Some(t) => p.publish_with_timeout(payload, &meta, t)?,
                    None => p.publish_with(payload, &meta)?,
                })
            };
            let mut n = 0u64;
            if let Some(count) = count {
                let mut payload = vec![0u8; size];
                for i in 0..count {
                    let k = payload.len().min(8);
                    payload[..k].copy_from_slice(&i.to_le_bytes()[..k]);
                    publish(&payload)?;
                    n += 1;
                }
            } else {
                let stdin = std::io::stdin();
                let mut input = stdin.lock();
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if input.read_until(b'\n', &mut line)? == 0 {
                        break;
                    }
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    publish(&line)?;
                    n += 1;
                }
            }
            eprintln!("published {n} messages to {name}");
            Ok(())
        }
        Command::Consume {
            name,
            group,
            count,
            timeout,
            ack: AckArg::Manual,
            start,
        } => {
            let q = Queue::open_with(&name, &opts)?;
            let mut c = q.consumer(
                &group,
                ConsumerOptions::new().start(start.into()).ack(Ack::Manual),
            )?;
            let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let limit = count.unwrap_or(u64::MAX);
            let mut n = 0u64;
            while n < limit {
                let m = match timeout {
                    Some(t) => match c.receive_timeout(t) {
                        Ok(m) => m,
                        Err(Error::Timeout) => break,
                        Err(e) => return Err(e.into()),
                    },
                    None => c.receive()?,
                };
                // Written and flushed before the ack: at-least-once.
                out.write_all(m.payload())?;
                out.write_all(b"\n")?;
                out.flush()?;
                match m.ack() {
                    Ok(()) => n += 1,
                    // Another consumer has it now; it will be written again.
                    Err(Error::LeaseExpired) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
        Command::Consume {
            name,
            group,
            count,
            timeout,
            ack: AckArg::Auto,
            start,
        } => {
            let q = Queue::open_with(&name, &opts)?;
            let mut c = q.consumer(&group, ConsumerOptions::new().start(start.into()))?;
            let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let mut n = 0u64;
            let limit = count.unwrap_or(u64::MAX);
            while n < limit {
                // Write what is ready without flushing; flush before waiting.
                let got = match c.try_receive()? {
                    Some(m) => {
                        out.write_all(m.payload())?;
                        out.write_all(b"\n")?;
                        true
                    }
                    None => false,
                };
                if got {
                    n += 1;
                    continue;
                }
                out.flush()?;
                let m = match timeout {
                    Some(t) => match c.receive_timeout(t) {
                        Ok(m) => m,
                        Err(Error::Timeout) => break,
                        Err(e) => return Err(e.into()),
                    },
                    None => c.receive()?,
                };
                out.write_all(m.payload())?;
                out.write_all(b"\n")?;
                n += 1;
            }
            out.flush()?;
            Ok(())
        }
        Command::Stat {
            name,
            json,
            prometheus,
        } => {
            let q = Queue::open_with(&name, &opts)?;
            let s = q.stats();
            if json {
                println!("{}", stats_json(&s));
            } else if prometheus {
                print!("{}", stats_prometheus(&s));
            } else {
                print!("{}", stats_table(&s));
            }
            Ok(())
        }
        Command::GroupCreate {
            name,
            group,
            start,
            seq,
        } => {
            let q = Queue::open_with(&name, &opts)?;
            let start = seq.map(Start::Seq).unwrap_or(start.into());
            q.create_group(&group, start)?;
            let g = q.groups().into_iter().find(|g| g.name == group);
            eprintln!(
                "created group {group} at seq {}",
                g.map(|g| g.next).unwrap_or_default()
            );
            Ok(())
        }
        Command::Groups { name } => {
            let q = Queue::open_with(&name, &opts)?;
            println!(
                "{:<24} {:>12} {:>12} {:>10} {:>12}  consumer",
                "group", "next", "committed", "lag", "delivered"
            );
            for g in q.groups() {
                println!(
                    "{:<24} {:>12} {:>12} {:>10} {:>12}  {}",
                    g.name,
                    g.next,
                    g.committed,
                    g.lag,
                    g.delivered,
                    if g.consumer_attached { "attached" } else { "-" }
                );
            }
            Ok(())
        }
        Command::Seek {
            name,
            group,
            seq,
            time,
            earliest,
            latest,
        } => {
            let to = if let Some(s) = seq {
                Seek::Seq(s)
            } else if let Some(t) = time {
                Seek::Time(parse_time(&t)?)
            } else if earliest {
                Seek::Earliest
            } else if latest {
                Seek::Latest
            } else {
                return Err(CliError::Other(
                    "say where to: --seq N, --time T, --earliest or --latest".into(),
                ));
            };
            let q = Queue::open_with(&name, &opts)?;
            let pos = q.seek_group(&group, to)?;
            eprintln!("group {group} will receive seq {pos} next");
            Ok(())
        }
        Command::Dlq { name, action } => {
            let q = Queue::open_with(&name, &opts)?;
            let dlq = q.dlq();
            match action {
                DlqAction::List { json } => {
                    let list = dlq.list()?;
                    if json {
                        for d in &list {
                            println!("{}", dead_letter_json(d));
                        }
                    } else if list.is_empty() {
                        eprintln!("no dead letters in {name}");
                    } else {
                        println!(
                            "{:>12} {:<16} {:>8} {:<15} {:>8}  payload",
                            "seq", "group", "attempts", "reason", "bytes"
                        );
                        for d in &list {
                            println!(
                                "{:>12} {:<16} {:>8} {:<15} {:>8}  {}",
                                d.seq,
                                if d.group.is_empty() {
                                    "(deleted)"
                                } else {
                                    &d.group
                                },
                                d.attempts,
                                if d.redriven {
                                    "redriven"
                                } else {
                                    d.reason.as_str()
                                },
                                d.payload.len(),
                                preview(&d.payload)
                            );
                        }
                    }
                }
                DlqAction::Redrive { seq } => {
                    let n = dlq.redrive(seq)?;
                    eprintln!("redrove {n} dead letter(s) to their groups");
                }
                DlqAction::Purge => {
                    let n = dlq.purge()?;
                    eprintln!("purged {n} dead letter(s)");
                }
            }
            Ok(())
        }
        Command::GroupDelete { name, group } => {
            Queue::open_with(&name, &opts)?.delete_group(&group)?;
            eprintln!("deleted group {group}");
            Ok(())
        }
        Command::Rm { name } => {
            Queue::remove(&name, &opts)?;
            eprintln!("removed {name}");
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
        Command::BenchWorker(args) => bench::worker(args),
    }
}

/// `--time`: Unix seconds, or relative to now (`-30s`, `-5m`, `-2h`).
fn parse_time(t: &str) -> CliResult<u64> {
    let bad = || {
        CliError::Other(format!(
            "bad --time {t:?}: give Unix seconds or -30s, -5m, -2h"
        ))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_nanos() as u64;
    if let Some(rel) = t.strip_prefix('-') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: f64 = num.parse().map_err(|_| bad())?;
        let mul = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        return Ok(now.saturating_sub((n * mul * 1e9) as u64));
    }
    let secs: f64 = t.parse().map_err(|_| bad())?;
    if !(0.0..1e11).contains(&secs) {
        return Err(bad());
    }
    Ok((secs * 1e9) as u64)
}

/// A payload as one printable line: UTF-8 text (control characters
/// escaped), cut at 60 characters.
fn preview(p: &[u8]) -> String {
    let text = String::from_utf8_lossy(p);
    let mut out: String = text.chars().take(60).flat_map(char::escape_debug).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

fn dead_letter_json(d: &shmq::DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "seq": d.seq,
        "group": d.group,
        "attempts": d.attempts,
        "reason": d.reason.as_str(),
        "redriven": d.redriven,
        "first_delivery_ns": d.first_delivery_ns,
        "last_delivery_ns": d.last_delivery_ns,
        "dead_lettered_ns": d.dead_lettered_ns,
        "timestamp_ns": d.timestamp_ns,
        "type_id": d.type_id,
        "correlation_id": d.correlation_id,
        "payload": String::from_utf8_lossy(&d.payload),
    })
}

fn stats_json(s: &shmq::Stats) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "path": s.path,
        "slots": s.slots,
        "slot_size": s.slot_size,
        "overflow": s.overflow.to_string(),
        "next_seq": s.next_seq,
        "oldest_seq": s.oldest_seq,
        "depth": s.depth,
        "published": s.published,
        "delivered": s.groups.iter().map(|g| g.delivered).sum::<u64>(),
        "rejected": s.rejected,
        "aborted": s.aborted,
        "producers": s.producers,
        "consumers": s.consumers,
        "dlq_depth": s.dlq_depth,
        "acked": s.groups.iter().map(|g| g.acked).sum::<u64>(),
        "nacked": s.groups.iter().map(|g| g.nacked).sum::<u64>(),
        "redelivered": s.groups.iter().map(|g| g.redelivered).sum::<u64>(),
        "dead_lettered": s.groups.iter().map(|g| g.dead_lettered).sum::<u64>(),
        "expired": s.groups.iter().map(|g| g.expired).sum::<u64>(),
        "spilled": s.spilled,
        "spilled_bytes": s.spilled_bytes,
        "spill_depth": s.spill_depth,
        "spill_segments": s.spill_segments,
        "spill_bytes_on_disk": s.spill_bytes_on_disk,
        "spill_full": s.spill_full,
        "spill_lost": s.spill_lost,
        "spill_dir": s.spill_dir,
        "journal": s.journal.as_ref().map(|j| serde_json::json!({
            "first_seq": j.first_seq,
            "first_ns": j.first_ns,
            "next_seq": j.next_seq,
            "journaled": j.journaled,
            "journaled_bytes": j.journaled_bytes,
            "segments": j.segments,
            "bytes_on_disk": j.bytes_on_disk,
            "expired": j.expired,
        })),
        "groups": s.groups.iter().map(|g| serde_json::json!({
            "name": g.name,
            "next": g.next,
            "committed": g.committed,
            "lag": g.lag,
            "delivered": g.delivered,
            "redelivered": g.redelivered,
            "acked": g.acked,
            "nacked": g.nacked,
            "expired": g.expired,
            "dead_lettered": g.dead_lettered,
            "in_flight": g.in_flight,
            "oldest_unacked_age_ns": g.oldest_unacked_age_ns,
            "consumers": g.consumers,
            "consumer_attached": g.consumer_attached,
            "created_ns": g.created_ns,
        })).collect::<Vec<_>>(),
    })
}

fn stats_prometheus(s: &shmq::Stats) -> String {
    let q = &s.name;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
        out += &format!("# HELP shmq_{name} {help}\n# TYPE shmq_{name} {kind}\n");
        for (labels, v) in rows {
            out += &format!("shmq_{name}{{{labels}}} {v}\n");
        }
    };
    let ql = format!("queue=\"{q}\"");
    metric(
        "depth",
        "gauge",
        "Messages not yet finished by the slowest group.",
        vec![(ql.clone(), s.depth)],
    );
    metric(
        "capacity",
        "gauge",
        "Ring capacity in messages.",
        vec![(ql.clone(), s.slots)],
    );
    metric(
        "published_total",
        "counter",
        "Messages published.",
        vec![(ql.clone(), s.published)],
    );
    metric(
        "rejected_total",
        "counter",
        "Publishes refused because the queue was full.",
        vec![(ql.clone(), s.rejected)],
    );
    metric(
        "aborted_total",
        "counter",
        "Positions aborted (stuck or dead producers).",
        vec![(ql.clone(), s.aborted)],
    );
    metric(
        "producers",
        "gauge",
        "Live producers.",
        vec![(ql.clone(), s.producers)],
    );
    metric(
        "consumers",
        "gauge",
        "Live consumers.",
        vec![(ql.clone(), s.consumers)],
    );
    let per_group = |f: fn(&shmq::GroupInfo) -> u64| {
        s.groups
            .iter()
            .map(|g| (format!("{ql},group=\"{}\"", g.name), f(g)))
            .collect::<Vec<_>>()
    };
    metric(
        "group_lag",
        "gauge",
        "Messages published that the group has not finished.",
        per_group(|g| g.lag),
    );
    metric(
        "group_delivered_total",
        "counter",
        "Messages delivered to the group.",
        per_group(|g| g.delivered),
    );
    metric(
        "group_next_seq",
        "gauge",
        "Next seq the group will receive.",
        per_group(|g| g.next),
    );
    metric(
        "group_acked_total",
        "counter",
        "Messages acked by the group's consumers (ack=manual).",
        per_group(|g| g.acked),
    );
    metric(
        "group_nacked_total",
        "counter",
        "Messages nacked by the group's consumers.",
        per_group(|g| g.nacked),
    );
    metric(
        "group_redelivered_total",
        "counter",
        "Deliveries after the first.",
        per_group(|g| g.redelivered),
    );
    metric(
        "group_expired_total",
        "counter",
        "Leases that ran out or whose consumer died.",
        per_group(|g| g.expired),
    );
    metric(
        "group_dead_lettered_total",
        "counter",
        "Messages the group moved to the dead-letter queue.",
        per_group(|g| g.dead_lettered),
    );
    metric(
        "group_in_flight",
        "gauge",
        "Messages leased to the group's consumers right now.",
        per_group(|g| g.in_flight),
    );
    metric(
        "group_oldest_unacked_age_seconds",
        "gauge",
        "Age of the group's oldest unfinished message.",
        per_group(|g| g.oldest_unacked_age_ns / 1_000_000_000),
    );
    metric(
        "dlq_depth",
        "gauge",
        "Dead letters waiting.",
        vec![(ql.clone(), s.dlq_depth)],
    );
    for (name, kind, help, v) in [
        (
            "spilled_total",
            "counter",
            "Messages spilled to disk.",
            s.spilled,
        ),
        (
            "spilled_bytes_total",
            "counter",
            "Payload bytes spilled to disk.",
            s.spilled_bytes,
        ),
        (
            "spill_depth",
            "gauge",
            "Messages on disk waiting to come back into the ring.",
            s.spill_depth,
        ),
        (
            "spill_segments",
            "gauge",
            "Segment files on disk.",
            s.spill_segments,
        ),
        (
            "spill_bytes_on_disk",
            "gauge",
            "Bytes of segment files on disk.",
            s.spill_bytes_on_disk,
        ),
        (
            "spill_full_total",
            "counter",
            "Publishes that found the spill full.",
            s.spill_full,
        ),
        (
            "spill_lost_total",
            "counter",
            "Spilled messages found damaged when read back.",
            s.spill_lost,
        ),
    ] {
        metric(name, kind, help, vec![(ql.clone(), v)]);
    }
    out
}

fn stats_table(s: &shmq::Stats) -> String {
    let mut out = format!(
        "queue      {} ({})\nslots      {} x {} bytes, overflow={}\nseq        next {}, oldest retained {}\ndepth      {}\npublished  {}\nrejected   {}\naborted    {}\nproducers  {}\nconsumers  {}\ndlq        {}\n",
        s.name,
        s.path.display(),
        s.slots,
        s.slot_size,
        s.overflow,
        s.next_seq,
        s.oldest_seq,
        s.depth,
        s.published,
        s.rejected,
        s.aborted,
        s.producers,
        s.consumers,
        s.dlq_depth
    );
    if let Some(d) = &s.spill_dir {
        out += &format!(
            "spill      {} messages on disk ({} segments, {} bytes) in {}\n           spilled {} messages / {} bytes so far, full {} times, lost {}\n",
            s.spill_depth,
            s.spill_segments,
            s.spill_bytes_on_disk,
            d.display(),
            s.spilled,
            s.spilled_bytes,
            s.spill_full,
            s.spill_lost
        );
    }
    if let Some(j) = &s.journal {
        out += &format!(
            "journal    seqs {} .. {} retained ({} segments, {} bytes){}; {} expired\n",
            j.first_seq,
            j.next_seq,
            j.segments,
            j.bytes_on_disk,
            j.first_ns
                .map(|t| format!(", oldest from {:.3} (Unix s)", t as f64 / 1e9))
                .unwrap_or_default(),
            j.expired
        );
    }
    if s.groups.is_empty() {
        out += "groups     (none: every message is retained until a group consumes it)\n";
    } else {
        out += &format!(
            "\n{:<20} {:>10} {:>8} {:>10} {:>9} {:>7} {:>7} {:>7} {:>6} {:>9} {:>9}\n",
            "group",
            "next",
            "lag",
            "delivered",
            "acked",
            "nacked",
            "redeliv",
            "expired",
            "dead",
            "inflight",
            "oldest"
        );
        for g in &s.groups {
            out += &format!(
                "{:<20} {:>10} {:>8} {:>10} {:>9} {:>7} {:>7} {:>7} {:>6} {:>9} {:>8.1}s  {}\n",
                g.name,
                g.next,
                g.lag,
                g.delivered,
                g.acked,
                g.nacked,
                g.redelivered,
                g.expired,
                g.dead_lettered,
                g.in_flight,
                g.oldest_unacked_age_ns as f64 / 1e9,
                match g.consumers {
                    0 => "-".to_string(),
                    1 => "1 consumer".to_string(),
                    n => format!("{n} consumers"),
                }
            );
        }
    }
    out
}
