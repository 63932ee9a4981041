//! `shmq-bridge`: carries a shmq queue's messages to Kafka or NATS
//! JetStream and their records into a shmq queue, at-least-once, nothing
//! lost (README, "Past one host").

mod engine;
mod inbound;
mod kafka;
mod nats;
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

/// shmq-bridge: a shmq queue to Kafka or NATS JetStream, and back.
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
    /// Read group G of queue Q (ack=manual) and publish each message to
    /// JetStream subject S; ack it in shmq once JetStream stored it.
    ToNats(ToNats),
    /// Read durable consumer D of JetStream stream NAME and publish each
    /// message into queue Q; ack it in JetStream once shmq accepted it.
    FromNats(FromNats),
}

/// What every direction and engine shares.
#[derive(Args, Debug)]
struct Run {
    /// Directory of queue files (default: $SHMQ_DIR, else /dev/shm).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
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

/// What both Kafka directions share: where they connect, the topic.
#[derive(Args, Debug)]
struct KafkaServer {
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
    #[command(flatten)]
    run: Run,
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
    kafka: KafkaServer,
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
    kafka: KafkaServer,
}

/// What both NATS directions share: where they connect.
#[derive(Args, Debug)]
struct NatsServer {
    /// NATS servers, nats://HOST:PORT[,nats://HOST:PORT...].
    #[arg(long, value_name = "URL")]
    server: String,
    /// Seconds a JetStream publish or request waits for its answer before
    /// it counts as failed (a publish is then sent again: the same
    /// Nats-Msg-Id, stored once). A stream leader's failover takes a few
    /// seconds.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    ack_timeout: f64,
    #[command(flatten)]
    run: Run,
}

#[derive(Args, Debug)]
struct ToNats {
    /// The queue to read.
    #[arg(long, value_name = "Q")]
    queue: String,
    /// The consumer group to read it as (ack=manual).
    #[arg(long, value_name = "G")]
    group: String,
    /// The JetStream subject to publish to.
    #[arg(long, value_name = "S")]
    subject: String,
    /// The stream that stores the subject: made if missing (file storage,
    /// --replicas copies, a 2-minute duplicate window). Without it, some
    /// stream must store the subject already.
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// Copies of a stream --stream makes (1 to 5).
    #[arg(long, default_value_t = 1, value_name = "N")]
    replicas: usize,
    /// Most messages sent and not yet stored by JetStream.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_in_flight: usize,
    /// Seconds each in-flight message's lease is kept ahead.
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    lease: f64,
    #[command(flatten)]
    server: NatsServer,
}

#[derive(Args, Debug)]
struct FromNats {
    /// The JetStream stream to read.
    #[arg(long, value_name = "NAME")]
    stream: String,
    /// The durable pull consumer to read it as (made if missing; bridge
    /// instances on one durable share the work).
    #[arg(long, value_name = "D")]
    durable: String,
    /// The queue to publish into.
    #[arg(long, value_name = "Q")]
    queue: String,
    /// Seconds JetStream waits for an ack before delivering again (for a
    /// durable this bridge makes).
    #[arg(long, default_value_t = 30.0, value_name = "S")]
    ack_wait: f64,
    /// The group of the queue that owns the dead letters of messages
    /// JetStream gives up on (a durable with a `max_deliver`; needed for
    /// one): they go into the queue's DLQ, and a redrive delivers them to
    /// this group.
    #[arg(long, value_name = "G")]
    dlq_group: Option<String>,
    #[command(flatten)]
    server: NatsServer,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM asked us to stop.
pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn open(c: &Run, queue: &str) -> Result<Queue, Fatal> {
    let mut opts = Options::new();
    if let Some(d) = &c.dir {
        opts = opts.dir(d);
    }
    Queue::open_with(queue, &opts).map_err(|e| Fatal(format!("shmq: opening queue {queue:?}: {e}")))
}

fn kafka_conn(c: &KafkaServer) -> Result<kafka::Conn, Fatal> {
    Ok(kafka::Conn {
        brokers: c.brokers.clone(),
        topic: c.topic.clone(),
        props: c.props.clone(),
        connect_timeout: secs(c.run.connect_timeout, "--connect-timeout")?,
    })
}

fn nats_conn(c: &NatsServer) -> Result<nats::Conn, Fatal> {
    Ok(nats::Conn {
        servers: c.server.clone(),
        connect_timeout: secs(c.run.connect_timeout, "--connect-timeout")?,
        ack_timeout: secs(c.ack_timeout, "--ack-timeout")?,
    })
}

fn stats(r: &Run, direction: &'static str) -> Result<Stats, Fatal> {
    Ok(Stats::new(
        direction,
        r.stats_json,
        secs(r.stats_interval, "--stats-interval")?,
    ))
}

fn exit_idle(r: &Run) -> Result<Option<Duration>, Fatal> {
    r.exit_idle.map(|s| secs(s, "--exit-idle")).transpose()
}

/// How a `to-*` direction runs, from its options.
fn outbound_options(
    r: &Run,
    group: String,
    max_in_flight: usize,
    lease_s: f64,
    direction: &'static str,
) -> Result<outbound::Options, Fatal> {
    let lease = secs(lease_s, "--lease")?;
    if lease < Duration::from_millis(300) {
        return Err(Fatal("--lease must be at least 0.3 s".into()));
    }
    Ok(outbound::Options {
        group,
        max_in_flight: max_in_flight.max(1),
        lease,
        exit_idle: exit_idle(r)?,
        stats: stats(r, direction)?,
    })
}

/// How a `from-*` direction runs, from its options.
fn inbound_options(
    r: &Run,
    direction: &'static str,
    dlq_group: Option<String>,
) -> Result<inbound::Options, Fatal> {
    Ok(inbound::Options {
        exit_idle: exit_idle(r)?,
        stats: stats(r, direction)?,
        dlq_group,
    })
}

fn secs(s: f64, what: &str) -> Result<Duration, Fatal> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Fatal(format!("{what}: {s} is not a duration in seconds")))
}

fn run(cli: Cli) -> Result<(), Fatal> {
    match cli.command {
        Command::ToKafka(a) => {
            let r = &a.kafka.run;
            let q = open(r, &a.queue)?;
            let mut sink = kafka::KafkaSink::new(kafka_conn(&a.kafka)?)?;
            let o = outbound_options(r, a.group, a.max_in_flight, a.lease, "to-kafka")?;
            outbound::run(&q, &mut sink, o)
        }
        Command::FromKafka(a) => {
            let r = &a.kafka.run;
            let q = open(r, &a.queue)?;
            let mut source = kafka::KafkaSource::new(kafka_conn(&a.kafka)?, &a.kafka_group)?;
            inbound::run(&q, &mut source, inbound_options(r, "from-kafka", None)?)
        }
        Command::ToNats(a) => {
            let r = &a.server.run;
            let q = open(r, &a.queue)?;
            if !(1..=5).contains(&a.replicas) {
                return Err(Fatal(format!("--replicas is 1 to 5, not {}", a.replicas)));
            }
            let mut sink = nats::NatsSink::new(
                nats_conn(&a.server)?,
                &a.subject,
                a.stream.as_deref(),
                a.replicas,
                a.max_in_flight,
            )?;
            let o = outbound_options(r, a.group, a.max_in_flight, a.lease, "to-nats")?;
            outbound::run(&q, &mut sink, o)
        }
        Command::FromNats(a) => {
            let r = &a.server.run;
            let q = open(r, &a.queue)?;
            let ack_wait = secs(a.ack_wait, "--ack-wait")?;
            if ack_wait < Duration::from_secs(1) {
                return Err(Fatal("--ack-wait must be at least 1 s".into()));
            }
            let mut source =
                nats::NatsSource::new(nats_conn(&a.server)?, &a.stream, &a.durable, ack_wait)?;
            let o = inbound_options(r, "from-nats", a.dlq_group)?;
            inbound::run(&q, &mut source, o)
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
