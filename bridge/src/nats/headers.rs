//! A record's key and headers as NATS headers, and back (README "Past one
//! host").
//!
//! The payload is the message's payload; the ordering key travels in the
//! header `shmq-ordering-key`; the user's headers and shmq's own
//! (`record::SHMQ_*`) are NATS headers. NATS headers are text: a name or
//! value that is not (not UTF-8, a CR or LF, a name NATS refuses) travels
//! hex-encoded as `shmq-hex-<hex name>: <hex value>`, and comes back as it
//! was. Values of one name keep their order; the order between different
//! names is not kept (a NATS header block is a map). `Nats-Msg-Id` is
//! `shmq:<origin>:<seq>`, the idempotency key `from-*` uses, so
//! JetStream's duplicate window drops a message a restarted bridge sends
//! again. Coming in, the idempotency key is `nats:<stream>:<stream
//! sequence>` unless the message carries shmq's origin and seq.

use async_nats::HeaderMap;

use crate::engine::Outgoing;
use crate::record;

/// The header that carries the ordering key.
pub const ORDERING_KEY: &str = "shmq-ordering-key";
/// The prefix of a hex-encoded header's name.
const HEX: &str = "shmq-hex-";
/// JetStream's own headers, not handed to shmq ...
const NATS_PREFIX: &str = "Nats-";
/// ... but for a message's time to live (JetStream's per-message TTL,
/// nats-server 2.11+), which comes in as shmq's `shmq-expires-ns`.
const NATS_TTL: &str = "Nats-TTL";

/// A `Nats-TTL` value: a number of seconds, or a Go duration (`30s`,
/// `1h30m`, `500ms`); `never` (or garbage) is none.
fn nats_ttl(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = v;
    while !rest.is_empty() {
        let at = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..at].parse().ok()?;
        rest = &rest[at..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// Headers as shmq holds them: names and values, in order.
pub type Headers = Vec<(String, Vec<u8>)>;

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
pub fn headers_out(rec: &Outgoing, msg_id: &str, ttl: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    if let Some(secs) = ttl.then(|| ttl_secs(rec)).flatten() {
        h.insert(NATS_TTL, format!("{secs}s").as_str());
    }
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

/// What is left of `rec`'s time to live, in whole seconds rounded up (at
/// least 1: JetStream's `Nats-TTL` has no smaller unit that every server
/// takes), if it carries an expiry (`shmq-expires-ns`).
fn ttl_secs(rec: &Outgoing) -> Option<u64> {
    let at: u64 = rec
        .headers
        .iter()
        .rev()
        .find(|(n, _)| n == record::SHMQ_EXPIRES_NS)
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_nanos() as u64);
    Some(at.saturating_sub(now).div_ceil(1_000_000_000).max(1))
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
        if name.eq_ignore_ascii_case(NATS_TTL) {
            if let Some(d) = values.iter().next().and_then(|v| nats_ttl(v.as_str())) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_nanos() as u64);
                let at = now.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
                out.push((
                    record::SHMQ_EXPIRES_NS.to_string(),
                    at.to_string().into_bytes(),
                ));
            }
            continue;
        }
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

/// The `Nats-Msg-Id` of `rec`: `shmq:<origin>:<seq>` from shmq's headers.
pub(super) fn msg_id(rec: &Outgoing) -> String {
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

/// Where message `seq` of `stream` is, `nats:<stream>:<seq>`: its
/// idempotency key, and a dead letter's source.
pub(super) fn id_of(stream: &str, seq: u64) -> String {
    format!("nats:{stream}:{seq}")
}

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
        let h = headers_out(&rec, &msg_id(&rec), false);
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
    fn an_expiry_goes_out_as_a_jetstream_ttl_where_the_stream_takes_one() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mut rec = Outgoing {
            key: None,
            payload: b"p".to_vec(),
            headers: vec![(
                record::SHMQ_EXPIRES_NS.into(),
                (now + 90_500_000_000).to_string().into_bytes(),
            )],
            timestamp_ms: 0,
        };
        let ttl = |h: &HeaderMap| h.get(NATS_TTL).map(|v| v.as_str().to_string());
        // Rounded up to whole seconds.
        let got = ttl(&headers_out(&rec, "id", true)).unwrap();
        assert!(got == "91s" || got == "90s", "{got}");
        // A stream that does not take them gets none (it would refuse).
        assert_eq!(ttl(&headers_out(&rec, "id", false)), None);
        // Past its time already: the shortest JetStream takes.
        rec.headers[0].1 = b"5".to_vec();
        assert_eq!(ttl(&headers_out(&rec, "id", true)).as_deref(), Some("1s"));
        rec.headers.clear();
        assert_eq!(ttl(&headers_out(&rec, "id", true)), None);
    }

    #[test]
    fn a_jetstream_ttl_comes_in_as_an_expiry() {
        assert_eq!(nats_ttl("30"), Some(std::time::Duration::from_secs(30)));
        assert_eq!(
            nats_ttl("1h30m"),
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            nats_ttl("500ms"),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(nats_ttl("never"), None);
        assert_eq!(nats_ttl("5x"), None);
        let mut h = HeaderMap::new();
        h.insert("Nats-TTL", "1h");
        h.insert("Nats-Msg-Id", "x");
        let (_, out) = headers_in(Some(&h));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0, record::SHMQ_EXPIRES_NS);
        let at: u64 = String::from_utf8(out[0].1.clone())
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(at > now + 3_500_000_000_000 && at <= now + 3_600_000_000_000);
    }
}
