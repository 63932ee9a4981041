//! The NATS JetStream engine, on `async-nats`: JetStream publishes with a
//! `Nats-Msg-Id` as the [`Sink`](crate::engine::Sink) ([`NatsSink`],
//! `to-nats`), a durable pull consumer with explicit acks as the
//! [`Source`](crate::engine::Source) ([`NatsSource`], `from-nats`).
//!
//! Each runs the client on a one-worker tokio runtime of its own, so the
//! client's connection, pings and reconnects go on while the bridge's
//! synchronous loop works. This module connects and sets up; the parts:
//!
//! - `headers.rs`: a record's key and headers as NATS headers and back,
//!   and its `Nats-Msg-Id` (the mapping, README "Past one host");
//! - `stream.rs`: the stream that stores `to-nats`'s subject, found or
//!   made;
//! - `sink.rs`: `to-nats`'s pipelined publishes and their PubAcks;
//! - `source.rs`: `from-nats`'s durable pull consumer and its acks;
//! - `dead_letters.rs`: the messages JetStream gives up on (a durable's
//!   `max_deliver`), read back for shmq's dead-letter queue.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio::runtime::Runtime;

use crate::engine::Fatal;

/// Retries `$op` while it fails for a passing reason (`$transient`: a
/// request that timed out while a stream or meta leader is being elected,
/// a node coming back) until `$deadline`; any other failure, or the last
/// one, is `$what` and the error.
// Defined before the modules below: they use it.
macro_rules! setup_retry {
    ($deadline:expr, $what:expr, $op:expr, $transient:expr) => {{
        loop {
            match $op.await {
                Ok(v) => break Ok(v),
                Err(e) if $transient(&e) && Instant::now() < $deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => break Err(Fatal(format!("{}: {e}", $what))),
            }
        }
    }};
}

mod dead_letters;
mod headers;
mod sink;
mod source;
mod stream;

pub use sink::NatsSink;
pub use source::NatsSource;

/// Where and how to reach NATS.
#[derive(Clone, Debug)]
pub struct Conn {
    /// `nats://HOST:PORT[,nats://HOST:PORT...]`.
    pub servers: String,
    /// How long connecting (and setting up the stream or consumer) may
    /// take.
    pub connect_timeout: Duration,
    /// How long a publish waits for its PubAck before it counts as failed
    /// and is sent again (the same `Nats-Msg-Id`: stored once).
    pub ack_timeout: Duration,
}

fn runtime() -> Result<Runtime, Fatal> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shmq-bridge-nats")
        .enable_all()
        .build()
        .map_err(|e| Fatal(format!("a tokio runtime for the NATS client: {e}")))
}

/// Connects, trying again while no server answers, for at most
/// `connect_timeout`. Once connected, the client reconnects by itself
/// (for ever) whenever it loses its server.
async fn connect(conn: &Conn) -> Result<async_nats::Client, Fatal> {
    let servers: Vec<async_nats::ServerAddr> = conn
        .servers
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .map_err(|e| Fatal(format!("--server {s:?} is not a NATS URL: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + conn.connect_timeout;
    loop {
        let attempt = async_nats::ConnectOptions::new()
            .name("shmq-bridge")
            .max_reconnects(None)
            .connection_timeout(conn.connect_timeout.min(Duration::from_secs(5)))
            .request_timeout(Some(SETUP_REQUEST))
            .connect(servers.clone());
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, attempt).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e)) if Instant::now() + Duration::from_millis(250) < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(Err(e)) => {
                return Err(Fatal(format!(
                    "cannot reach NATS at {} in {:?}: {e}",
                    conn.servers, conn.connect_timeout
                )));
            }
            Err(_) => {
                return Err(Fatal(format!(
                    "cannot reach NATS at {} in {:?} (is a server running there?)",
                    conn.servers, conn.connect_timeout
                )));
            }
        }
    }
}

/// How long one JetStream request made while setting up may take; the
/// setup as a whole retries a timed-out request until `connect_timeout`.
const SETUP_REQUEST: Duration = Duration::from_secs(5);

/// Connects for setting up: a JetStream context whose requests wait at
/// most [`SETUP_REQUEST`], and the deadline (`connect_timeout` from now)
/// until which the setup retries one that timed out.
async fn set_up(conn: &Conn) -> Result<(jetstream::Context, Instant), Fatal> {
    let client = connect(conn).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(SETUP_REQUEST)
        .build(client);
    Ok((js, Instant::now() + conn.connect_timeout))
}
