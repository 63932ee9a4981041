//! `shmq`: create, inspect, publish to, consume from and benchmark queues.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shmq::{ConsumerOptions, Error, Meta, Options, Overflow, Queue, Seek, Start};

mod baseline;
mod bench;

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
        /// What a publish does when the ring is full: block or reject.
        #[arg(long, default_value = "block")]
        overflow: String,
        /// How many consumer groups the queue can hold.
        #[arg(long, default_value_t = 16)]
        max_groups: u32,
        /// File mode, in octal.
        #[arg(long, default_value = "600")]
        mode: String,
        /// Seconds before consumers abort a claimed but uncommitted message.
        #[arg(long, default_value_t = 5.0)]
        unblock_timeout: f64,
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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AckArg {
    /// At-most-once: committed on receive.
    Auto,
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
        } => {
            let overflow: Overflow = overflow.parse()?;
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
                    .unblock_timeout(secs(unblock_timeout, "--unblock-timeout")?),
            )?;
            eprintln!(
                "created {} ({} slots of {} bytes, overflow={})",
                q.path().display(),
                q.slots(),
                q.slot_size(),
                q.overflow()
            );
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
        "groups": s.groups.iter().map(|g| serde_json::json!({
            "name": g.name,
            "next": g.next,
            "committed": g.committed,
            "lag": g.lag,
            "delivered": g.delivered,
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
    out
}

fn stats_table(s: &shmq::Stats) -> String {
    let mut out = format!(
        "queue      {} ({})\nslots      {} x {} bytes, overflow={}\nseq        next {}, oldest retained {}\ndepth      {}\npublished  {}\nrejected   {}\naborted    {}\nproducers  {}\nconsumers  {}\n",
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
        s.consumers
    );
    if s.groups.is_empty() {
        out += "groups     (none: every message is retained until a group consumes it)\n";
    } else {
        out += &format!(
            "\n{:<24} {:>12} {:>10} {:>12}  consumer\n",
            "group", "next", "lag", "delivered"
        );
        for g in &s.groups {
            out += &format!(
                "{:<24} {:>12} {:>10} {:>12}  {}\n",
                g.name,
                g.next,
                g.lag,
                g.delivered,
                if g.consumer_attached { "attached" } else { "-" }
            );
        }
    }
    out
}
