//! What the bridge asks of an engine (Kafka, NATS JetStream): a [`Sink`] that
//! takes records and confirms each one later, and a [`Source`] that hands
//! records over and is told when shmq has accepted them. The loops that
//! move messages (`outbound.rs`, `inbound.rs`) know only these.

use std::time::Duration;

/// A record on its way out of shmq.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outgoing {
    /// The ordering key: Kafka's record key, a header in NATS.
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// The user's headers, then shmq's own (`record::SHMQ_*`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Publish time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A record on its way into shmq.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where it is in the engine (`kafka:<topic>:<partition>:<offset>`,
    /// `nats:<stream>:<stream sequence>`): its idempotency key unless it
    /// carries shmq's own.
    pub id: String,
    /// The engine's handle for [`Source::accepted`]: Kafka's partition
    /// and offset; for NATS, 0 and the stream sequence.
    pub partition: i32,
    pub offset: i64,
}

/// What [`Sink::send`] did with a record.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Queued: a [`Confirm`] with its token comes later.
    Queued,
    /// The engine's queue is full: back-pressure. Serve it
    /// ([`Sink::poll`]) and send again; nothing was queued.
    Full,
}

/// The engine's word on one record sent.
#[derive(Debug, PartialEq, Eq)]
pub struct Confirm {
    pub token: u64,
    /// `Err` with the engine's reason: not stored (send it again later).
    pub result: Result<(), String>,
}

/// An error the bridge cannot go on from by itself, with what to do.
#[derive(Debug)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where `to-*` sends records.
pub trait Sink {
    /// Queues `rec`; its [`Confirm`] carries `token`.
    fn send(&mut self, rec: &Outgoing, token: u64) -> Result<Sent, Fatal>;
    /// Serves the engine for at most `timeout`, appending the
    /// confirmations that came. After the engine's client failed for
    /// good, it is rebuilt here, and every record it had not confirmed is
    /// confirmed as failed (so it is sent again).
    fn poll(&mut self, timeout: Duration, done: &mut Vec<Confirm>) -> Result<(), Fatal>;
    /// Records queued and not confirmed yet.
    fn in_flight(&self) -> usize;
}

/// Where `from-*` takes records.
pub trait Source {
    /// The next record, waiting at most `timeout`.
    fn poll(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal>;
    /// shmq accepted `rec` (and every earlier one of its partition): the
    /// engine may forget it.
    fn accepted(&mut self, rec: &Incoming) -> Result<(), Fatal>;
    /// While paused with a record it cannot place yet: serve the engine
    /// (Kafka: keep the group membership and the statistics alive;
    /// JetStream: keep what the bridge holds from being delivered again).
    /// A record that comes meanwhile is kept for [`poll`](Self::poll), in
    /// order.
    fn serve(&mut self) -> Result<(), Fatal>;
    /// Back-pressure: stop fetching (and resume) without leaving the group.
    fn pause(&mut self) -> Result<(), Fatal>;
    fn resume(&mut self) -> Result<(), Fatal>;
    /// Records the engine holds that we have not read (lag), if known.
    fn lag(&mut self) -> Option<u64>;
    /// Commits what was accepted, before exiting.
    fn close(&mut self) -> Result<(), Fatal>;
    /// Records the engine gave up delivering (JetStream's `max_deliver`)
    /// since last asked: they go to shmq's dead-letter queue. Kafka never
    /// gives up on a record.
    fn given_up(&mut self) -> Result<Vec<GivenUp>, Fatal> {
        Ok(Vec::new())
    }
    /// Whether the engine may give records up (so `from-*` needs a group
    /// to own their dead letters).
    fn gives_up(&self) -> Option<String> {
        None
    }
}

/// A record the engine stopped delivering without an ack: its content
/// (with the engine's reason in its headers) and the deliveries it had.
#[derive(Debug)]
pub struct GivenUp {
    pub rec: Incoming,
    pub attempts: u32,
}
