//! The NATS JetStream engine, on `async-nats` (on a one-worker tokio
//! runtime of its own, so the client's connection, pings and reconnects
//! go on while the bridge's loop works): JetStream publishes with a
//! `Nats-Msg-Id` as the [`Sink`], a durable pull consumer with explicit
//! acks as the [`Source`].
//!
//! The mapping (README "Past one host"): the payload is the message's
//! payload; the ordering key travels in the header `shmq-ordering-key`;
//! the user's headers and shmq's own (`record::SHMQ_*`) are NATS headers.
//! NATS headers are text: a name or value that is not (not UTF-8, a CR or
//! LF, a name NATS refuses) travels hex-encoded as `shmq-hex-<hex name>:
//! <hex value>`, and comes back as it was. Values of one name keep their
//! order; the order between different names is not kept (a NATS header
//! block is a map). `Nats-Msg-Id` is `shmq:<origin>:<seq>`, the idempotency
//! key `from-*` uses, so JetStream's duplicate window drops a message a
//! restarted bridge sends again. Coming in, the idempotency key is
//! `nats:<stream>:<stream sequence>` unless the message carries shmq's
//! origin and seq.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamByNameErrorKind, GetStreamErrorKind,
};
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::{FutureExt, StreamExt};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::engine::{Confirm, Fatal, GivenUp, Incoming, Outgoing, Sent, Sink, Source};
use crate::record;

/// The header that carries the ordering key.
pub const ORDERING_KEY: &str = "shmq-ordering-key";
/// The prefix of a hex-encoded header's name.
const HEX: &str = "shmq-hex-";
/// JetStream's own headers, not handed to shmq.
const NATS_PREFIX: &str = "Nats-";

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

/// Retries `$op` while it fails for a passing reason (`$transient`: a
/// request that timed out while a stream or meta leader is being elected,
/// a node coming back) until `$deadline`; any other failure, or the last
/// one, is `$what` and the error.
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A text NATS takes as a header name: visible ASCII but ':'.
fn plain_name(n: &str) -> bool {
    !n.is_empty() && !n.starts_with(HEX) && n.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// The NATS headers of `rec`, with `Nats-Msg-Id` set to `msg_id`.
pub fn headers_out(rec: &Outgoing, msg_id: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    let mut put = |name: &str, value: &[u8]| match std::str::from_utf8(value) {
        Ok(v) if plain_name(name) && !v.contains(['\r', '\n']) => h.append(name, v),
        _ => h.append(
            format!("{HEX}{}", hex(name.as_bytes())).as_str(),
            hex(value),
        ),
    };
    if let Some(k) = &rec.key {
        put(ORDERING_KEY, k);
    }
    for (n, v) in &rec.headers {
        put(n, v);
    }
    h
}

/// The ordering key and headers carried by NATS headers `h` (JetStream's
/// own `Nats-*` left out).
pub fn headers_in(h: Option<&HeaderMap>) -> (Option<Vec<u8>>, Headers) {
    let (mut key, mut out) = (None, Vec::new());
    let Some(h) = h else { return (key, out) };
    let mut names: Vec<_> = h.iter().collect();
    // A stable order between names (a NATS header block is a map).
    names.sort_by(|a, b| AsRef::<str>::as_ref(a.0).cmp(AsRef::<str>::as_ref(b.0)));
    for (name, values) in names {
        let name: &str = AsRef::<str>::as_ref(name);
        if name.starts_with(NATS_PREFIX) {
            continue;
        }
        for v in values {
            let v: &str = v.as_str();
            let (n, v) = match name.strip_prefix(HEX) {
                Some(hn) => match (unhex(hn).map(String::from_utf8), unhex(v)) {
                    (Some(Ok(n)), Some(v)) => (n, v),
                    // Not ours after all: as it came.
                    _ => (name.to_string(), v.as_bytes().to_vec()),
                },
                None => (name.to_string(), v.as_bytes().to_vec()),
            };
            if n == ORDERING_KEY {
                key = Some(v);
            } else {
                out.push((n, v));
            }
        }
    }
    (key, out)
}

/// Headers as shmq holds them: names and values, in order.
pub type Headers = Vec<(String, Vec<u8>)>;

/// The `Nats-Msg-Id` of `rec`: `shmq:<origin>:<seq>` from shmq's headers.
fn msg_id(rec: &Outgoing) -> String {
    let get = |name: &str| {
        rec.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    format!(
        "shmq:{}:{}",
        get(record::SHMQ_ORIGIN).unwrap_or_default(),
        get(record::SHMQ_SEQ).unwrap_or_default()
    )
}

/// `to-nats`'s sink: JetStream's asynchronous publish, pipelined as
/// natscli's `js pub async` does it. Each record is a core NATS publish
/// whose reply subject is `<inbox>.<token>`; one subscription on
/// `<inbox>.*` takes every PubAck (or a stream's error, or "no
/// responders") and confirms the token it names. One task sends, one
/// collects, so a send never waits for an ack; a record with no PubAck
/// within `ack_timeout` is confirmed as failed (and sent again with the
/// same `Nats-Msg-Id`: stored once).
pub struct NatsSink {
    rt: Runtime,
    /// The inbox whose `.<token>` each PubAck comes back on.
    inbox: String,
    send_tx: mpsc::UnboundedSender<Publish>,
    done_rx: mpsc::UnboundedReceiver<Confirm>,
    /// Tokens sent and not confirmed yet.
    pending: HashSet<u64>,
    /// When each token sent is due, in the order sent (so in deadline
    /// order): the oldest first.
    deadlines: VecDeque<(Instant, u64)>,
    ack_timeout: Duration,
    max_in_flight: usize,
}

/// One record for the sending task: the reply subject, headers, payload.
type Publish = (String, HeaderMap, bytes::Bytes);

impl NatsSink {
    /// Connects and checks that `subject` is stored by a stream: `stream`
    /// if given (made if missing, with `replicas` copies), else whichever
    /// stream already takes it.
    pub fn new(
        conn: Conn,
        subject: &str,
        stream: Option<&str>,
        replicas: usize,
        max_in_flight: usize,
    ) -> Result<NatsSink, Fatal> {
        let rt = runtime()?;
        let (send_tx, mut send_rx) = mpsc::unbounded_channel::<Publish>();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let inbox = rt.block_on(async {
            let (js, deadline) = set_up(&conn).await?;
            make_stream(&js, subject, stream, replicas, deadline).await?;
            let client = js.client();
            let inbox = client.new_inbox();
            let mut acks = client
                .subscribe(format!("{inbox}.*"))
                .await
                .map_err(|e| Fatal(format!("nats: subscribing to PubAcks: {e}")))?;
            let subject = async_nats::Subject::from(subject);
            let (sender, failed) = (client.clone(), done_tx.clone());
            tokio::spawn(async move {
                while let Some((reply, headers, payload)) = send_rx.recv().await {
                    let sent = sender
                        .publish_with_reply_and_headers(
                            subject.clone(),
                            reply.clone(),
                            headers,
                            payload,
                        )
                        .await;
                    if let Err(e) = sent {
                        let _ = failed.send(Confirm {
                            token: token_of(&reply).unwrap_or(0),
                            result: Err(e.to_string()),
                        });
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(m) = acks.next().await {
                    let Some(token) = token_of(&m.subject) else {
                        continue;
                    };
                    // The bridge is gone if nobody receives: nothing to tell.
                    let _ = done_tx.send(Confirm {
                        token,
                        result: pub_ack(&m),
                    });
                }
            });
            Ok::<_, Fatal>(inbox)
        })?;
        Ok(NatsSink {
            rt,
            inbox,
            send_tx,
            done_rx,
            pending: HashSet::new(),
            deadlines: VecDeque::new(),
            ack_timeout: conn.ack_timeout,
            max_in_flight: max_in_flight.max(1),
        })
    }

    /// Takes `c` if its token is still waiting (a PubAck that comes after
    /// its record timed out, or a second one, is not news).
    fn take(&mut self, c: Confirm, done: &mut Vec<Confirm>) {
        if self.pending.remove(&c.token) {
            done.push(c);
        }
    }
}

/// The token at the end of a PubAck's subject `<inbox>.<token>`.
fn token_of(subject: &str) -> Option<u64> {
    subject.rsplit_once('.')?.1.parse().ok()
}

/// What a reply to a JetStream publish says: stored, or why not.
fn pub_ack(m: &async_nats::Message) -> Result<(), String> {
    if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Err("no responders: no JetStream stream stores the subject (now)".into());
    }
    use jetstream::response::Response;
    match serde_json::from_slice::<Response<jetstream::publish::PublishAck>>(&m.payload) {
        Ok(Response::Ok(_)) => Ok(()),
        Ok(Response::Err { error }) => Err(format!("JetStream: {error}")),
        Err(e) => Err(format!(
            "not a PubAck ({e}): {:?}",
            String::from_utf8_lossy(&m.payload)
        )),
    }
}

/// Makes sure `subject` is stored by a stream: `stream` if given (made if
/// missing), else whichever stream already takes it.
async fn make_stream(
    js: &jetstream::Context,
    subject: &str,
    stream: Option<&str>,
    replicas: usize,
    deadline: Instant,
) -> Result<(), Fatal> {
    match stream {
        Some(name) => {
            let cfg = jetstream::stream::Config {
                name: name.to_string(),
                subjects: vec![subject.to_string()],
                num_replicas: replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            let mut s = setup_retry!(
                deadline,
                format!("cannot get or create the stream {name:?}"),
                js.get_or_create_stream(cfg.clone()),
                |e: &jetstream::context::CreateStreamError| matches!(
                    e.kind(),
                    CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable
                )
            )?;
            let info = s
                .info()
                .await
                .map_err(|e| Fatal(format!("stream {name:?}: {e}")))?;
            if !info
                .config
                .subjects
                .iter()
                .any(|s| subject_matches(s, subject))
            {
                return Err(Fatal(format!(
                    "stream {name:?} does not take subject {subject:?} (its subjects: {:?})",
                    info.config.subjects
                )));
            }
        }
        None => {
            setup_retry!(
                deadline,
                format!(
                    "no JetStream stream stores subject {subject:?} (create one, or name it with --stream)"
                ),
                js.stream_by_subject(subject),
                |e: &jetstream::context::GetStreamByNameError| matches!(
                    e.kind(),
                    GetStreamByNameErrorKind::Request
                )
            )?;
        }
    }
    Ok(())
}

/// Whether subject filter `filter` (with `*` and `>` wildcards) takes
/// `subject`.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let (mut f, mut s) = (filter.split('.'), subject.split('.'));
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl Sink for NatsSink {
    fn send(&mut self, rec: &Outgoing, token: u64) -> Result<Sent, Fatal> {
        if self.pending.len() >= self.max_in_flight {
            return Ok(Sent::Full);
        }
        let headers = headers_out(rec, &msg_id(rec));
        let payload = bytes::Bytes::copy_from_slice(&rec.payload);
        let reply = format!("{}.{token}", self.inbox);
        if self.send_tx.send((reply, headers, payload)).is_err() {
            return Err(Fatal("nats: the sending task ended".into()));
        }
        self.pending.insert(token);
        self.deadlines
            .push_back((Instant::now() + self.ack_timeout, token));
        Ok(Sent::Queued)
    }

    fn poll(&mut self, timeout: Duration, done: &mut Vec<Confirm>) -> Result<(), Fatal> {
        let before = done.len();
        while let Ok(c) = self.done_rx.try_recv() {
            self.take(c, done);
        }
        if done.len() == before && !timeout.is_zero() && !self.pending.is_empty() {
            // Wait for a PubAck, but not past the oldest record's deadline.
            let until = self.deadlines.front().map_or(timeout, |(due, _)| {
                due.saturating_duration_since(Instant::now()).min(timeout)
            });
            let rx = &mut self.done_rx;
            // The timer is made inside the runtime (it needs its clock).
            let got = self
                .rt
                .block_on(async { tokio::time::timeout(until, rx.recv()).await });
            if let Ok(Some(c)) = got {
                self.take(c, done);
            }
            while let Ok(c) = self.done_rx.try_recv() {
                self.take(c, done);
            }
        }
        // Records whose PubAck did not come in time: failed (sent again).
        let now = Instant::now();
        while let Some(&(due, token)) = self.deadlines.front() {
            if !self.pending.contains(&token) {
                self.deadlines.pop_front();
            } else if due <= now {
                self.deadlines.pop_front();
                self.take(
                    Confirm {
                        token,
                        result: Err(format!("no PubAck within {:?}", self.ack_timeout)),
                    },
                    done,
                );
            } else {
                break;
            }
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

/// `from-nats`'s source: a durable pull consumer with explicit acks. A
/// message is acked only once shmq accepted it; unacked, JetStream
/// delivers it again after `ack_wait` (shmq's dedup window absorbs it).
pub struct NatsSource {
    rt: Runtime,
    stream: String,
    consumer: PullConsumer,
    messages: jetstream::consumer::pull::Stream,
    /// Delivered and not yet accepted by shmq, by stream sequence.
    unacked: HashMap<u64, jetstream::Message>,
    /// Messages that came while paused, for `poll`.
    held: std::collections::VecDeque<Incoming>,
    last_progress: Instant,
    ack_wait: Duration,
    /// Messages shmq accepted, for the task that acks them.
    ack_tx: mpsc::UnboundedSender<jetstream::Message>,
    /// The durable's `max_deliver`, if it has one (then JetStream gives
    /// messages up, and says so in advisories we subscribe to).
    max_deliver: Option<i64>,
    durable: String,
    js_stream: jetstream::stream::Stream,
    advisories: Option<async_nats::Subscriber>,
    /// Stream sequences given up: a copy still buffered is not delivered.
    given_up: HashSet<u64>,
    /// The last [`RECENT`] stream sequences shmq accepted (an advisory for
    /// one of them came after the ack was sent: no dead letter).
    recent: (HashSet<u64>, VecDeque<u64>),
}

/// Where message `seq` of `stream` is, `nats:<stream>:<seq>`: its
/// idempotency key, and a dead letter's source.
fn id_of(stream: &str, seq: u64) -> String {
    format!("nats:{stream}:{seq}")
}

/// How many accepted stream sequences `from-nats` remembers.
const RECENT: usize = 100_000;

/// JetStream's `max_deliver` advisory (the fields we use).
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

impl MaxDeliveries {
    fn parse(payload: &[u8]) -> Result<MaxDeliveries, String> {
        let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let field = |n: &str| v[n].as_u64().ok_or_else(|| format!("no {n:?} in {v}"));
        Ok(MaxDeliveries {
            stream_seq: field("stream_seq")?,
            deliveries: field("deliveries")?,
        })
    }
}

impl NatsSource {
    /// Connects and binds durable consumer `durable` of `stream` (made if
    /// missing: explicit acks, from the start of the stream).
    pub fn new(
        conn: Conn,
        stream: &str,
        durable: &str,
        ack_wait: Duration,
    ) -> Result<NatsSource, Fatal> {
        let rt = runtime()?;
        let (consumer, messages, js_stream, max_deliver, advisories, ack_wait) =
            rt.block_on(async {
                let (js, deadline) = set_up(&conn).await?;
                let s = setup_retry!(
                    deadline,
                    format!("no JetStream stream {stream:?}"),
                    js.get_stream(stream),
                    |e: &jetstream::context::GetStreamError| matches!(
                        e.kind(),
                        GetStreamErrorKind::Request
                    )
                )?;
                let config = jetstream::consumer::pull::Config {
                    durable_name: Some(durable.to_string()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_ack_pending: 20_000,
                    ..Default::default()
                };
                let consumer: PullConsumer = setup_retry!(
                    deadline,
                    format!("durable consumer {durable:?} of {stream:?}"),
                    s.get_or_create_consumer(durable, config.clone()),
                    |e: &jetstream::stream::ConsumerError| matches!(
                        e.kind(),
                        ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request
                    )
                )?;
                let max_deliver =
                    Some(consumer.cached_info().config.max_deliver).filter(|&m| m > 0);
                // A durable made before keeps its own ack_wait: progress is
                // sent within it.
                let ack_wait = consumer.cached_info().config.ack_wait;
                // Messages delivered to a bridge that died before shmq took
                // them are delivered again only once their ack_wait runs
                // out; pulling at once would put newer messages of their
                // keys into the queue ahead of them. Waiting out ack_wait
                // first lets JetStream hand them over before anything new
                // (its redeliveries go first), so per-key order holds.
                let left = consumer.cached_info().num_ack_pending;
                if left > 0 {
                    eprintln!(
                        "from-nats: {left} message(s) of durable {durable:?} were delivered and not \
                         acked (a bridge stopped or killed, or one sharing the durable): waiting \
                         out its ack_wait ({ack_wait:?}) so that they come back before newer ones"
                    );
                    // (A tenth more: the server moves them to its
                    // redelivery queue on a timer of its own.)
                    tokio::time::sleep(ack_wait + ack_wait / 10).await;
                }
                // One bridge of those sharing the durable takes each advisory.
                let advisories = match max_deliver {
                    Some(_) => Some(
                        js.client()
                            .queue_subscribe(
                                format!(
                                    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}"
                                ),
                                format!("shmq-bridge.{stream}.{durable}"),
                            )
                            .await
                            .map_err(|e| Fatal(format!("nats: subscribing to advisories: {e}")))?,
                    ),
                    None => None,
                };
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(1000)
                    .heartbeat(Duration::from_secs(5))
                    .expires(Duration::from_secs(30))
                    .messages()
                    .await
                    .map_err(|e| Fatal(format!("pulling from {durable:?}: {e}")))?;
                Ok::<_, Fatal>((consumer, messages, s, max_deliver, advisories, ack_wait))
            })?;
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<jetstream::Message>();
        rt.spawn(async move {
            while let Some(m) = ack_rx.recv().await {
                if let Err(e) = m.ack().await {
                    let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                    eprintln!("nats: acking stream seq {seq}: {e}");
                }
            }
        });
        Ok(NatsSource {
            ack_tx,
            max_deliver,
            durable: durable.to_string(),
            js_stream,
            advisories,
            given_up: HashSet::new(),
            recent: Default::default(),
            rt,
            stream: stream.to_string(),
            consumer,
            messages,
            unacked: HashMap::new(),
            held: Default::default(),
            last_progress: Instant::now(),
            ack_wait,
        })
    }

    fn incoming(&self, m: &jetstream::Message) -> Result<Incoming, Fatal> {
        let info = m
            .info()
            .map_err(|e| Fatal(format!("a JetStream message without its metadata: {e}")))?;
        let seq = info.stream_sequence;
        let (key, headers) = headers_in(m.headers.as_ref());
        Ok(Incoming {
            key,
            payload: m.payload.to_vec(),
            headers,
            id: id_of(&self.stream, seq),
            partition: 0,
            offset: seq as i64,
        })
    }

    /// The next message within `timeout`, kept for its ack.
    fn next(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal> {
        let messages = &mut self.messages;
        // One already here is taken without a timer; else wait for one.
        let ready = {
            let _in_runtime = self.rt.enter();
            messages.next().now_or_never()
        };
        let next = match ready {
            Some(m) => Ok(m),
            None => self
                .rt
                .block_on(async { tokio::time::timeout(timeout, messages.next()).await }),
        };
        match next {
            Err(_) | Ok(None) => Ok(None),
            Ok(Some(Ok(m))) => {
                let rec = self.incoming(&m)?;
                if self.given_up.contains(&(rec.offset as u64)) {
                    // A copy that waited in the client while JetStream gave
                    // it up: it is in the DLQ already.
                    return Ok(None);
                }
                self.unacked.insert(rec.offset as u64, m);
                Ok(Some(rec))
            }
            // A missed heartbeat, a server away: the client reconnects
            // and the stream goes on by itself.
            Ok(Some(Err(e))) => {
                eprintln!("nats: {e}");
                Ok(None)
            }
        }
    }
}

impl Source for NatsSource {
    fn poll(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal> {
        if let Some(r) = self.held.pop_front() {
            return Ok(Some(r));
        }
        self.next(timeout)
    }

    fn accepted(&mut self, rec: &Incoming) -> Result<(), Fatal> {
        if self.max_deliver.is_some() {
            let (set, order) = &mut self.recent;
            if set.insert(rec.offset as u64) {
                order.push_back(rec.offset as u64);
            }
            if order.len() > RECENT {
                let old = order.pop_front().expect("not empty");
                set.remove(&old);
            }
        }
        if let Some(m) = self.unacked.remove(&(rec.offset as u64)) {
            // A lost ack is a redelivery after ack_wait, which shmq's dedup
            // window absorbs: no need to wait for the server's word.
            // The acking task sends it (not waited for here).
            if self.ack_tx.send(m).is_err() {
                return Err(Fatal("nats: the acking task ended".into()));
            }
        }
        Ok(())
    }

    fn serve(&mut self) -> Result<(), Fatal> {
        // Paused: tell JetStream we are still working on what we hold,
        // so it does not deliver it again meanwhile.
        if self.last_progress.elapsed() >= self.ack_wait / 3 {
            self.last_progress = Instant::now();
            for m in self.unacked.values() {
                let _ = self.rt.block_on(m.ack_with(AckKind::Progress));
            }
        }
        Ok(())
    }

    fn pause(&mut self) -> Result<(), Fatal> {
        // The pull stream holds at most a batch; not reading it is the
        // pause (its messages are kept alive by `serve`, or delivered
        // again after ack_wait and absorbed by the dedup window).
        Ok(())
    }

    fn resume(&mut self) -> Result<(), Fatal> {
        Ok(())
    }

    fn lag(&mut self) -> Option<u64> {
        let consumer = &self.consumer;
        let info = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(500), consumer.get_info()).await
        });
        match info {
            Ok(Ok(i)) => Some(i.num_pending),
            _ => None,
        }
    }

    fn close(&mut self) -> Result<(), Fatal> {
        Ok(())
    }

    fn gives_up(&self) -> Option<String> {
        self.max_deliver.map(|m| {
            format!(
                "durable {:?} gives a message up after {m} deliveries (max_deliver)",
                self.durable
            )
        })
    }

    fn given_up(&mut self) -> Result<Vec<GivenUp>, Fatal> {
        let mut out = Vec::new();
        let Some(sub) = self.advisories.as_mut() else {
            return Ok(out);
        };
        loop {
            let next = {
                let _in_runtime = self.rt.enter();
                sub.next().now_or_never()
            };
            let Some(Some(m)) = next else { break };
            let a = match MaxDeliveries::parse(&m.payload) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("nats: an advisory that makes no sense ({e}); ignored");
                    continue;
                }
            };
            if self.recent.0.contains(&a.stream_seq)
                || self.unacked.contains_key(&a.stream_seq)
                || !self.given_up.insert(a.stream_seq)
            {
                // shmq has it (the ack came too late), or the bridge holds
                // it and is placing it in the queue (a copy that comes
                // again is absorbed by the dedup window), or told twice.
                continue;
            }
            let source = id_of(&self.stream, a.stream_seq);
            let why = format!(
                "JetStream consumer {:?} gave it up after {} deliveries (max_deliver)",
                self.durable, a.deliveries
            );
            let js_stream = &self.js_stream;
            let got = self.rt.block_on(async {
                tokio::time::timeout(SETUP_REQUEST, js_stream.get_raw_message(a.stream_seq)).await
            });
            let (key, mut headers, payload) = match got {
                Ok(Ok(sm)) => {
                    let (key, headers) = headers_in(Some(&sm.headers));
                    (key, headers, sm.payload.to_vec())
                }
                // Gone from the stream (limits, a purge) or unreachable:
                // the dead letter says so, and what it was.
                Ok(Err(e)) => (
                    None,
                    vec![(DEAD_ERROR.into(), e.to_string().into_bytes())],
                    Vec::new(),
                ),
                Err(_) => (
                    None,
                    vec![(
                        DEAD_ERROR.into(),
                        b"the stream did not answer in time".to_vec(),
                    )],
                    Vec::new(),
                ),
            };
            headers.push((DEAD_SOURCE.into(), source.clone().into_bytes()));
            headers.push((DEAD_REASON.into(), why.into_bytes()));
            out.push(GivenUp {
                rec: Incoming {
                    key,
                    payload,
                    headers,
                    id: source,
                    partition: 0,
                    offset: a.stream_seq as i64,
                },
                attempts: u32::try_from(a.deliveries).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }
}

/// Headers of a dead letter JetStream gave up on: where it was
/// (`nats:<stream>:<stream sequence>`), why, and (if its content could
/// not be read back) the error.
pub const DEAD_SOURCE: &str = "shmq-dead-letter-source";
/// See [`DEAD_SOURCE`].
pub const DEAD_REASON: &str = "shmq-dead-letter-reason";
/// See [`DEAD_SOURCE`].
pub const DEAD_ERROR: &str = "shmq-dead-letter-error";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_text_or_hex() {
        let rec = Outgoing {
            key: Some(b"customer\n7".to_vec()),
            payload: b"p".to_vec(),
            headers: vec![
                ("traceparent".into(), b"00-abc".to_vec()),
                ("traceparent".into(), b"second".to_vec()),
                ("bin".into(), vec![0, 159, 146, 150]),
                ("has space".into(), b"v".to_vec()),
                (record::SHMQ_SEQ.into(), b"41".to_vec()),
                (record::SHMQ_ORIGIN.into(), b"h/q/g".to_vec()),
            ],
            timestamp_ms: 0,
        };
        let h = headers_out(&rec, &msg_id(&rec));
        assert_eq!(
            h.get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str()),
            Some("shmq:h/q/g:41")
        );
        let (key, back) = headers_in(Some(&h));
        assert_eq!(key.as_deref(), Some(&b"customer\n7"[..]));
        // Values of one name keep their order.
        let trace: Vec<_> = back.iter().filter(|(n, _)| n == "traceparent").collect();
        assert_eq!(
            (&trace[0].1[..], &trace[1].1[..]),
            (&b"00-abc"[..], &b"second"[..])
        );
        let (mut want, mut back) = (rec.headers.clone(), back);
        want.sort();
        back.sort();
        assert_eq!(back, want);
    }

    #[test]
    fn subjects_match_with_wildcards() {
        assert!(subject_matches("orders.>", "orders.eu.new"));
        assert!(subject_matches("orders.*", "orders.new"));
        assert!(!subject_matches("orders.*", "orders.eu.new"));
        assert!(subject_matches("orders", "orders"));
        assert!(!subject_matches("orders", "orders.new"));
    }
}
