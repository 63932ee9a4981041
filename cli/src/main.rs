//! `shmq`: create, inspect, publish to, consume from and benchmark queues.

#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shmq::{Error, Options};

mod bench;
mod cmd;
mod human;
mod metrics;
mod progress;
mod time;

/// shmq: a broker-less, zero-copy message queue for processes on one host.
#[derive(Parser, Debug)]
#[command(name = "shmq", version, about)]
struct Cli {
    /// Directory of queue files (default: $SHMQ_DIR, else /dev/shm).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Trust queue files and spill directories of this user id too (a
    /// queue shared between users on purpose); without it another user's
    /// are refused.
    #[arg(long, global = true, value_name = "UID")]
    trust_owner: Option<u32>,
    /// Trust queue files and spill directories of this group id too.
    #[arg(long, global = true, value_name = "GID")]
    trust_group: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a queue.
    Create(cmd::create::Args),
    /// Publish one message per line of stdin (newline not included), or
    /// --count synthetic messages of --size bytes.
    Publish(cmd::publish::Args),
    /// Write each payload and a newline to stdout, in order.
    Consume(cmd::consume::Args),
    /// Show depth, groups, lag and counters.
    Stat(cmd::stat::Args),
    /// List the queues in the directory (and files there that are not
    /// usable queues, with why).
    Ls(cmd::ls::Args),
    /// Print retained messages with their metadata, without a group (no
    /// cursor or lease moves).
    Peek(cmd::peek::Args),
    /// A live view of the queues: rates, depth, lag and their history,
    /// per queue and per group (q quits).
    Top(cmd::top::Args),
    /// Serve every queue in the directory's metrics over HTTP at /metrics,
    /// for Prometheus to scrape (the text of `stat --prometheus`).
    Exporter(cmd::exporter::Args),
    /// Create a consumer group, so it retains messages before any consumer runs.
    GroupCreate(cmd::group::CreateArgs),
    /// List consumer groups.
    Groups(cmd::group::ListArgs),
    /// Move a group (with no consumer attached) to replay or skip.
    Seek(cmd::group::SeekArgs),
    /// Inspect the dead-letter queue, send dead letters back to their
    /// group, or delete them.
    Dlq(cmd::dlq::Args),
    /// List the messages scheduled for later (publish --delay,
    /// --deliver-at), or cancel one.
    Scheduled(cmd::scheduled::Args),
    /// Delete a consumer group (with no consumer attached).
    GroupDelete(cmd::group::DeleteArgs),
    /// Remove a queue's file.
    Rm(cmd::rm::Args),
    /// Measure latency or throughput between processes, against bare
    /// baselines measured in the same run.
    Bench(bench::BenchArgs),
    /// Internal: one process of a benchmark.
    #[command(hide = true, name = "__bench-worker")]
    BenchWorker(bench::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut opts = Options::new();
    if let Some(d) = &cli.dir {
        opts = opts.dir(d);
    }
    if let Some(uid) = cli.trust_owner {
        opts = opts.trust_owner(uid);
    }
    if let Some(gid) = cli.trust_group {
        opts = opts.trust_group(gid);
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
    if s < 0.0 {
        return Err(CliError::Other(format!(
            "{what} must be ≥ 0 seconds, got {s}"
        )));
    }
    Duration::try_from_secs_f64(s).map_err(|_| CliError::Other(format!("bad {what}: {s}")))
}

/// A length of time: a number and a unit, `ms`, `s`, `m`, `h` or `d`
/// (`30s`, `5m`, `1.5h`), or a number of seconds alone (`0.25`).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => t.split_at(at),
        None => (t, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => {
            return Err(format!(
                "{s:?} is not a length of time (30s, 5m, 100ms, 1h, 2d)"
            ));
        }
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a length of time (30s, 5m, 100ms, 1h, 2d)"))?;
    if !n.is_finite() || n < 0.0 {
        return Err(format!("must be ≥ 0, got {s}"));
    }
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("{s:?} is too long"))
}

/// A count, size or seq option: a whole number, and a plain "must be ≥ 0"
/// for a negative one (clap's own tip about `-- -1` does not work for an
/// option's value).
pub(crate) fn whole<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    if s.trim_start().starts_with('-') {
        return Err(format!("must be ≥ 0, got {s}"));
    }
    s.parse().map_err(|e: T::Err| e.to_string())
}

/// A count of bytes: a whole number, or one with a binary suffix (`K`,
/// `M`, `G`, `T`, alone or with `iB` or `B`: `64M`, `64MiB`, `1g`), as
/// Docker's `--shm-size` takes it.
pub(crate) fn byte_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("must be ≥ 0, got {s}"));
    }
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = whole(n).map_err(|e| format!("{e} (in {s:?})"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "{s:?} is not a size: give bytes, or a number with K, M, G or T"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is more bytes than 64 bits count"))
}

fn run(command: Command, opts: Options) -> CliResult {
    match command {
        Command::Create(args) => cmd::create::run(args, opts),
        Command::Publish(args) => cmd::publish::run(args, opts),
        Command::Consume(args) => cmd::consume::run(args, opts),
        Command::Stat(args) => cmd::stat::run(args, opts),
        Command::Ls(args) => cmd::ls::run(args, opts),
        Command::Peek(args) => cmd::peek::run(args, opts),
        Command::Top(args) => cmd::top::run(args, opts),
        Command::Exporter(args) => cmd::exporter::run(args, opts),
        Command::GroupCreate(args) => cmd::group::create(args, opts),
        Command::Groups(args) => cmd::group::list(args, opts),
        Command::Seek(args) => cmd::group::seek(args, opts),
        Command::Dlq(args) => cmd::dlq::run(args, opts),
        Command::Scheduled(args) => cmd::scheduled::run(args, opts),
        Command::GroupDelete(args) => cmd::group::delete(args, opts),
        Command::Rm(args) => cmd::rm::run(args, opts),
        Command::Bench(args) => bench::run(args),
        Command::BenchWorker(args) => bench::worker(args),
    }
}
