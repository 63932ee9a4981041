//! How a shmq message becomes an engine record and back: the mapping
//! every engine shares (README "Past one host" documents it).
//!
//! Out: the ordering key is the record key (a header in NATS:
//! `nats/headers.rs`); the payload is the value; the publish time is the
//! timestamp (ms; Kafka's record timestamp); the user's headers come first,
//! in order, then shmq's own, as text so that kcat and UIs show them:
//! `shmq-seq`, `shmq-type-id`, `shmq-correlation-id`, `shmq-origin`
//! (`host/queue/group`), and `shmq-expires-ns` (CLOCK_REALTIME ns) for a
//! message published with a time to live of its own (`Meta::ttl`).
//!
//! In: the key becomes the ordering key (an empty key: none); headers
//! become headers, except shmq's own, which give back the type id and the
//! correlation id, and `shmq-expires-ns` its time to live again (the time
//! left; already past: expired at once, so that the queue's groups
//! dead-letter or drop it as their queue says); the idempotency key is `shmq:<origin>:<seq>` for a
//! record that carries shmq's origin and seq (so a record sent twice by a
//! bridge that was killed before its ack is one message here), and the
//! engine's position otherwise (`kafka:<topic>:<partition>:<offset>`,
//! `nats:<stream>:<stream sequence>`).

use shmq::Meta;

use crate::engine::{Incoming, Outgoing};

pub const SHMQ_SEQ: &str = "shmq-seq";
pub const SHMQ_TYPE_ID: &str = "shmq-type-id";
pub const SHMQ_CORRELATION_ID: &str = "shmq-correlation-id";
pub const SHMQ_ORIGIN: &str = "shmq-origin";
pub const SHMQ_EXPIRES_NS: &str = "shmq-expires-ns";

/// Where messages come from: `host/queue/group`.
pub fn origin(queue: &str, group: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/{queue}/{group}")
}

/// The record for message `m` of `origin`, a queue whose messages live
/// `queue_ttl` (`Options::message_ttl`) if it says.
pub fn outgoing(
    m: &shmq::Message<'_>,
    origin: &str,
    queue_ttl: Option<std::time::Duration>,
) -> Outgoing {
    let mut headers: Vec<(String, Vec<u8>)> = m
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_vec()))
        .collect();
    headers.push((SHMQ_SEQ.into(), m.seq().to_string().into_bytes()));
    headers.push((SHMQ_TYPE_ID.into(), m.type_id().to_string().into_bytes()));
    headers.push((
        SHMQ_CORRELATION_ID.into(),
        m.correlation_id().to_string().into_bytes(),
    ));
    headers.push((SHMQ_ORIGIN.into(), origin.as_bytes().to_vec()));
    // Its expiry: its own, or its queue's from its timestamp, the earlier.
    let by_queue = queue_ttl.map(|t| {
        m.timestamp_ns()
            .saturating_add(t.as_nanos().min(u64::MAX as u128) as u64)
    });
    let expires = match (m.expires_ns(), by_queue) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(at) = expires {
        headers.push((SHMQ_EXPIRES_NS.into(), at.to_string().into_bytes()));
    }
    Outgoing {
        key: m.ordering_key().map(<[u8]>::to_vec),
        payload: m.payload().to_vec(),
        headers,
        timestamp_ms: (m.timestamp_ns() / 1_000_000) as i64,
    }
}

/// What an incoming record is published with.
#[derive(Debug, PartialEq, Eq)]
pub struct Inbound<'a> {
    pub ordering_key: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub type_id: u32,
    pub correlation_id: u64,
    pub idempotency_key: String,
    /// When it expires (CLOCK_REALTIME ns), if it carries an expiry.
    pub expires_ns: Option<u64>,
}

impl<'a> Inbound<'a> {
    /// The record's metadata as shmq takes it: ordering key, headers, type
    /// and correlation id (not the idempotency key, which a publish adds
    /// and a dead letter does not keep).
    pub fn meta(&self) -> Meta<'a> {
        let mut meta = Meta::new()
            .type_id(self.type_id)
            .correlation_id(self.correlation_id);
        meta.ordering_key = self.ordering_key;
        for (n, v) in &self.headers {
            meta.headers.push(n, v);
        }
        if let Some(at) = self.expires_ns {
            meta = meta.ttl(time_left(at, realtime_ns()));
        }
        meta
    }
}

/// CLOCK_REALTIME now, in ns.
fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The time to live that ends at `at`, from `now`: at least 1 ns (an
/// expiry already past is expired at once, never no expiry).
fn time_left(at: u64, now: u64) -> std::time::Duration {
    std::time::Duration::from_nanos(at.saturating_sub(now).max(1))
}

fn text<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Reads an incoming record's metadata (see the module documentation).
pub fn inbound(rec: &Incoming) -> Inbound<'_> {
    let mut out = Inbound {
        ordering_key: rec.key.as_deref().filter(|k| !k.is_empty()),
        headers: Vec::new(),
        type_id: 0,
        correlation_id: 0,
        idempotency_key: rec.id.clone(),
        expires_ns: None,
    };
    let (mut seq, mut origin) = (None, None);
    for (name, value) in &rec.headers {
        match name.as_str() {
            SHMQ_TYPE_ID => out.type_id = text(value).unwrap_or(0),
            SHMQ_CORRELATION_ID => out.correlation_id = text(value).unwrap_or(0),
            SHMQ_SEQ => seq = text::<u64>(value),
            SHMQ_ORIGIN => origin = std::str::from_utf8(value).ok(),
            SHMQ_EXPIRES_NS => out.expires_ns = text(value),
            _ => out.headers.push((name.as_str(), value.as_slice())),
        }
    }
    if let (Some(seq), Some(origin)) = (seq, origin) {
        out.idempotency_key = format!("shmq:{origin}:{seq}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shmqs_own_headers_come_back_as_metadata_and_the_origin_dedups() {
        let rec = Incoming {
            key: Some(b"customer-7".to_vec()),
            payload: b"x".to_vec(),
            headers: vec![
                ("traceparent".into(), b"00-ab-01".to_vec()),
                (SHMQ_SEQ.into(), b"42".to_vec()),
                (SHMQ_TYPE_ID.into(), b"7".to_vec()),
                (SHMQ_CORRELATION_ID.into(), b"9".to_vec()),
                (SHMQ_ORIGIN.into(), b"h/a/g".to_vec()),
                ("traceparent".into(), b"again".to_vec()),
            ],
            id: "kafka:t:0:5".into(),
            partition: 0,
            offset: 5,
        };
        let i = inbound(&rec);
        assert_eq!(i.ordering_key, Some(&b"customer-7"[..]));
        assert_eq!((i.type_id, i.correlation_id), (7, 9));
        assert_eq!(i.idempotency_key, "shmq:h/a/g:42");
        assert_eq!(i.expires_ns, None);
        assert_eq!(
            i.headers,
            vec![
                ("traceparent", &b"00-ab-01"[..]),
                ("traceparent", &b"again"[..])
            ]
        );
        // A foreign record: its position is its key; an empty key is none.
        let plain = Incoming {
            key: Some(Vec::new()),
            id: "kafka:t:1:9".into(),
            ..Incoming::default()
        };
        let i = inbound(&plain);
        assert_eq!(
            (i.ordering_key, i.idempotency_key.as_str()),
            (None, "kafka:t:1:9")
        );
    }

    #[test]
    fn an_expiry_comes_back_as_the_time_left() {
        let rec = Incoming {
            headers: vec![(SHMQ_EXPIRES_NS.into(), b"5000".to_vec())],
            id: "kafka:t:0:1".into(),
            ..Incoming::default()
        };
        let i = inbound(&rec);
        assert_eq!(i.expires_ns, Some(5000));
        assert!(i.headers.is_empty(), "shmq's own header is not a user's");
        assert_eq!(time_left(5000, 2000), std::time::Duration::from_nanos(3000));
        // Past already: expired at once, not kept for ever.
        assert_eq!(time_left(5000, 9000), std::time::Duration::from_nanos(1));
        assert!(i.meta().ttl.is_some());
        // Garbled: no expiry.
        let bad = Incoming {
            headers: vec![(SHMQ_EXPIRES_NS.into(), b"soon".to_vec())],
            ..Incoming::default()
        };
        assert_eq!(inbound(&bad).expires_ns, None);
    }
}
