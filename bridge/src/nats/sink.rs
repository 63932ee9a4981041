//! `to-nats`'s [`Sink`]: pipelined JetStream publishes whose PubAcks come
//! back on one inbox subscription.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::headers::{headers_out, msg_id};
use super::stream::make_stream;
use super::{Conn, runtime, set_up};
use crate::engine::{Confirm, Fatal, Outgoing, Sent, Sink};

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
    /// The stream takes per-message TTLs: a message with an expiry goes
    /// out with `Nats-TTL`.
    ttl: bool,
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
        let (inbox, ttl) = rt.block_on(async {
            let (js, deadline) = set_up(&conn).await?;
            let ttl = make_stream(&js, subject, stream, replicas, deadline).await?;
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
            Ok::<_, Fatal>((inbox, ttl))
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
            ttl,
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

impl Sink for NatsSink {
    fn send(&mut self, rec: &Outgoing, token: u64) -> Result<Sent, Fatal> {
        if self.pending.len() >= self.max_in_flight {
            return Ok(Sent::Full);
        }
        let headers = headers_out(rec, &msg_id(rec), self.ttl);
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
