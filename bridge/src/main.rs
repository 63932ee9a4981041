//! `shmq-bridge`: carries a shmq queue's messages to Kafka and Kafka's
//! records into a shmq queue, at-least-once, nothing lost (README, "Past
//! one host").

mod engine;
mod inbound;
mod kafka;
mod outbound;
mod record;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmq::{Options, Queue};

use crate::engine::Fatal;
use crate::stats::Stats;

/// shmq-bridge: a shmq queue to Kafka, and Kafka to a shmq queue.
#[derive(Parser, Debug)]
#[command(name = "shmq-bridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read group G of queue Q (ack=manual: instances on one group share
    /// the work) and produce each message to topic T; ack it in shmq once
    /// Kafka confirmed it.
    ToKafka(ToKafka),
    /// Consume topic T as Kafka group KG and publish each record into
    /// queue Q; commit its offset once shmq accepted it.
    FromKafka(FromKafka),
}

/// What both directions share.
#[derive(Args, Debug)]
struct Common {
    /// Directory of queue files (default: $SHMQ_DIR, else /dev/shm).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT")]
    brokers: String,
    /// The Kafka topic.
    #[arg(long, value_name = "T")]
    topic: String,
    /// A librdkafka property, NAME=VALUE (repeatable; wins over the
    /// bridge's defaults), e.g. -X security.protocol=SASL_SSL.
    #[arg(short = 'X', value_name = "NAME=VALUE", value_parser = kafka::property)]
    props: Vec<(String, String)>,
    /// Seconds the first look at the cluster may take before the bridge
    /// gives up saying it cannot reach it.
    #[arg(long, default_value_t = 15.0, value_name = "S")]
    connect_timeout: f64,
    /// Also print the progress as one JSON object per line on stdout.
    #[arg(long)]
    stats_json: bool,
    /// Seconds between progress reports.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    stats_interval: f64,
    /// Exit after this many seconds with nothing to move (default: run
    /// until SIGINT/SIGTERM).
    #[arg(long, value_name = "S")]
    exit_idle: Option<f64>,
}

#[derive(Args, Debug)]
struct ToKafka {
    /// The queue to read.
    #[arg(long, value_name = "Q")]
    queue: String,
    /// The consumer group to read it as (ack=manual).
    #[arg(long, value_name = "G")]
    group: String,
    /// Most messages sent and not yet confirmed by Kafka.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_in_flight: usize,
    /// Seconds each in-flight message's lease is kept ahead (renewed
    /// every third of it): a bridge killed mid-flight has its messages
    /// delivered again after at most this long.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    lease: f64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct FromKafka {
    /// The Kafka consumer group.
    #[arg(long, value_name = "KG")]
    kafka_group: String,
    /// The queue to publish into.
    #[arg(long, value_name = "Q")]
    queue: String,
    #[command(flatten)]
    common: Common,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM asked us to stop.
pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn open(c: &Common, queue: &str) -> Result<Queue, Fatal> {
    let mut opts = Options::new();
    if let Some(d) = &c.dir {
        opts = opts.dir(d);
    }
    Queue::open_with(queue, &opts).map_err(|e| Fatal(format!("shmq: opening queue {queue:?}: {e}")))
}

fn conn(c: &Common) -> Result<kafka::Conn, Fatal> {
    Ok(kafka::Conn {
        brokers: c.brokers.clone(),
        topic: c.topic.clone(),
        props: c.props.clone(),
        connect_timeout: secs(c.connect_timeout, "--connect-timeout")?,
    })
}

fn secs(s: f64, what: &str) -> Result<Duration, Fatal> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Fatal(format!("{what}: {s} is not a duration in seconds")))
}

fn run(cli: Cli) -> Result<(), Fatal> {
    match cli.command {
        Command::ToKafka(a) => {
            let c = &a.common;
            let q = open(c, &a.queue)?;
            let mut sink = kafka::KafkaSink::new(conn(c)?)?;
            let lease = secs(a.lease, "--lease")?;
            if lease < Duration::from_millis(300) {
                return Err(Fatal("--lease must be at least 0.3 s".into()));
            }
            outbound::run(
                &q,
                &mut sink,
                outbound::Options {
                    group: a.group,
                    max_in_flight: a.max_in_flight.max(1),
                    lease,
                    exit_idle: c.exit_idle.map(|s| secs(s, "--exit-idle")).transpose()?,
                    stats: Stats::new(
                        "to-kafka",
                        c.stats_json,
                        secs(c.stats_interval, "--stats-interval")?,
                    ),
                },
            )
        }
        Command::FromKafka(a) => {
            let c = &a.common;
            let q = open(c, &a.queue)?;
            let mut source = kafka::KafkaSource::new(conn(c)?, &a.kafka_group)?;
            inbound::run(
                &q,
                &mut source,
                inbound::Options {
                    exit_idle: c.exit_idle.map(|s| secs(s, "--exit-idle")).transpose()?,
                    stats: Stats::new(
                        "from-kafka",
                        c.stats_json,
                        secs(c.stats_interval, "--stats-interval")?,
                    ),
                },
            )
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmq-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
