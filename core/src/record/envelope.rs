//! The envelope: a message's ordering key and headers, stored in its slot
//! in front of the payload, so they travel wherever the message does (the
//! ring, the spill, the journal, the dead-letter queue) with no allocation.
//!
//! A slot's `len` word carries [`ENVELOPED`] in its top bit when the body
//! starts with an envelope; its low 31 bits are then the bytes of envelope
//! and payload together, so both count against `slot_size`. A message
//! with neither key nor headers has no envelope and costs nothing.
//!
//! ```text
//!   u32  size        bytes of the envelope, a multiple of 8 (the payload
//!                    starts there, so it stays 8-byte aligned)
//!   u16  key_len     bytes of the ordering key (0: none)
//!   u16  count       headers; top bit (TARGETED): a redrive target follows;
//!                    next bit (EXPIRING): an expiry time follows
//!   u64  key_hash    hash64 of the ordering key (0: none)
//!   [if TARGETED: the group a redriven dead letter is for, 16 bytes:
//!    u32 group index, u16 redrives, u16 zero, u64 the group's created_ns]
//!   [if EXPIRING: u64 CLOCK_REALTIME ns after which no group that has not
//!    finished the message is given it (`Meta::ttl`)]
//!   key_len bytes    the ordering key
//!   count × { u16 name_len, u32 value_len, name (UTF-8), value }
//!   zero bytes up to size
//! ```
//!
//! All integers little-endian. A reader trusts none of it: [`Envelope::parse`]
//! checks every length against the bytes there are before it is used.

use crate::error::{Error, Result};

/// Top bit of a stored length word: the body starts with an envelope.
pub(crate) const ENVELOPED: u32 = 1 << 31;
/// Longest ordering key, in bytes.
pub const MAX_ORDERING_KEY: usize = 1024;
/// Most headers on one message.
pub const MAX_HEADERS: usize = 16;
/// Longest header name, in bytes (UTF-8; at least one byte).
pub const MAX_HEADER_NAME: usize = 255;
/// Bytes of the envelope's fixed part.
const FIXED: usize = 16;
/// Flag in the envelope's header count: a redrive [`Target`] follows the
/// fixed part.
const TARGETED: usize = 1 << 15;
/// Bytes of a redrive target.
const TARGET: usize = 16;
/// Flag in the envelope's header count: an expiry time follows the fixed
/// part (and the target, if any).
const EXPIRING: usize = 1 << 14;
/// Bytes of an expiry time.
const EXPIRES: usize = 8;

/// The one group a message is for: a keyed dead letter redriven through
/// the ring (so that it goes to the end of its key) is for the group that
/// dead-lettered it, and every other group passes it by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The group's index in the group table.
    pub group: u32,
    /// The group record's `created_ns` (a group deleted and made again
    /// under the same index is another group).
    pub created_ns: u64,
    /// How many times the message was redriven (this time included).
    pub redrives: u16,
}

/// The lane hash of an ordering key: the same in every process, language
/// and build (two crc32c of the key, one seeded; never `RandomState`).
/// Never 0.
pub fn hash64(key: &[u8]) -> u64 {
    let hi = crc32c::crc32c(key) as u64;
    let lo = crc32c::crc32c_append(0x9e37_79b9, key) as u64;
    (hi << 32 | lo).max(1)
}

/// The headers a producer attaches to a message: an ordered list of name
/// → bytes pairs (names need not be unique), at most [`MAX_HEADERS`],
/// borrowed from the caller (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    len: usize,
    pairs: [(&'a str, &'a [u8]); MAX_HEADERS],
}

impl Default for Headers<'_> {
    fn default() -> Self {
        Headers::new()
    }
}

impl std::fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Headers<'a> {
    /// No headers.
    pub const fn new() -> Headers<'a> {
        Headers {
            len: 0,
            pairs: [("", &[]); MAX_HEADERS],
        }
    }
    /// Appends a header. Past [`MAX_HEADERS`] the list remembers that it
    /// overflowed, and publishing it fails with `InvalidOption`.
    pub fn push(&mut self, name: &'a str, value: &'a [u8]) {
        if self.len < MAX_HEADERS {
            self.pairs[self.len] = (name, value);
        }
        self.len = self.len.saturating_add(1);
    }
    /// How many headers.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.pairs[..self.len.min(MAX_HEADERS)].iter().copied()
    }
}

/// What an envelope will hold, checked, with its size.
pub(crate) struct EnvelopePlan<'a> {
    pub key: Option<&'a [u8]>,
    pub headers: &'a Headers<'a>,
    pub size: usize,
    pub target: Option<Target>,
    /// CLOCK_REALTIME ns after which the message expires (`Meta::ttl`).
    pub expires_ns: Option<u64>,
}

/// [`Error::TooLarge`] for a payload of `payload` bytes behind the
/// envelope `plan`, in slots of `max` bytes.
pub(crate) fn too_large(payload: usize, plan: Option<&EnvelopePlan<'_>>, max: usize) -> Error {
    let envelope = plan.map_or(0, |p| p.size);
    Error::TooLarge {
        len: envelope.saturating_add(payload),
        max,
        payload,
        ordering_key: plan.and_then(|p| p.key).map_or(0, <[u8]>::len),
        headers: plan.map_or(0, |p| {
            p.headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
        }),
    }
}

/// Plans the envelope of a message with `key`, `headers` and an expiry
/// time; `None` if it needs none. Refuses what the format cannot hold,
/// with the limit named.
pub(crate) fn plan<'a>(
    key: Option<&'a [u8]>,
    headers: &'a Headers<'a>,
    expires_ns: Option<u64>,
) -> Result<Option<EnvelopePlan<'a>>> {
    if key.is_none() && headers.is_empty() && expires_ns.is_none() {
        return Ok(None);
    }
    let bad = |m: String| Err(Error::InvalidOption(m));
    if let Some(k) = key {
        if k.is_empty() || k.len() > MAX_ORDERING_KEY {
            return bad(format!(
                "an ordering key must have 1 to {MAX_ORDERING_KEY} bytes, got {}",
                k.len()
            ));
        }
    }
    if headers.len() > MAX_HEADERS {
        return bad(format!(
            "a message may have at most {MAX_HEADERS} headers, got {}",
            headers.len()
        ));
    }
    let mut size = FIXED + key.map_or(0, <[u8]>::len) + expires_ns.map_or(0, |_| EXPIRES);
    for (name, value) in headers.iter() {
        if name.is_empty() || name.len() > MAX_HEADER_NAME {
            return bad(format!(
                "a header name must have 1 to {MAX_HEADER_NAME} bytes, got {} ({name:?})",
                name.len()
            ));
        }
        if value.len() > u32::MAX as usize >> 1 {
            return bad(format!("header {name:?}'s value is too long"));
        }
        size = size.saturating_add(6 + name.len() + value.len());
    }
    Ok(Some(EnvelopePlan {
        key,
        headers,
        size: size.div_ceil(8).saturating_mul(8),
        target: None,
        expires_ns,
    }))
}

impl EnvelopePlan<'_> {
    /// The same envelope, for one group only (a redrive through the ring).
    pub(crate) fn for_group(mut self, target: Target) -> Self {
        if self.target.is_none() {
            self.size += TARGET;
        }
        self.target = Some(target);
        self
    }

    /// The whole body of a message with this envelope and `payload`, as
    /// the spill stores it.
    pub(crate) fn body_with(&self, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0; self.size + payload.len()];
        self.write(&mut b[..self.size]);
        b[self.size..].copy_from_slice(payload);
        b
    }

    /// Writes the envelope into `out` (exactly `self.size` bytes).
    pub(crate) fn write(&self, out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.size);
        let key = self.key.unwrap_or(&[]);
        out[0..4].copy_from_slice(&(self.size as u32).to_le_bytes());
        out[4..6].copy_from_slice(&(key.len() as u16).to_le_bytes());
        let flag = if self.target.is_some() { TARGETED } else { 0 }
            | if self.expires_ns.is_some() {
                EXPIRING
            } else {
                0
            };
        out[6..8].copy_from_slice(&((self.headers.len() | flag) as u16).to_le_bytes());
        let hash = self.key.map_or(0, hash64);
        out[8..16].copy_from_slice(&hash.to_le_bytes());
        let mut at = FIXED;
        if let Some(t) = self.target {
            out[at..at + 4].copy_from_slice(&t.group.to_le_bytes());
            out[at + 4..at + 6].copy_from_slice(&t.redrives.to_le_bytes());
            out[at + 6..at + 8].fill(0);
            out[at + 8..at + 16].copy_from_slice(&t.created_ns.to_le_bytes());
            at += TARGET;
        }
        if let Some(e) = self.expires_ns {
            out[at..at + EXPIRES].copy_from_slice(&e.to_le_bytes());
            at += EXPIRES;
        }
        out[at..at + key.len()].copy_from_slice(key);
        at += key.len();
        for (name, value) in self.headers.iter() {
            out[at..at + 2].copy_from_slice(&(name.len() as u16).to_le_bytes());
            out[at + 2..at + 6].copy_from_slice(&(value.len() as u32).to_le_bytes());
            at += 6;
            out[at..at + name.len()].copy_from_slice(name.as_bytes());
            at += name.len();
            out[at..at + value.len()].copy_from_slice(value);
            at += value.len();
        }
        out[at..].fill(0);
    }
}

/// An envelope read back from a message's body, every length checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    /// Bytes of the envelope: the payload starts there.
    pub size: usize,
    pub key: Option<&'a [u8]>,
    pub key_hash: u64,
    /// The one group it is for, if it was redriven through the ring.
    pub target: Option<Target>,
    /// CLOCK_REALTIME ns after which it expires (`Meta::ttl`), if set.
    pub expires_ns: Option<u64>,
    count: usize,
    /// The encoded headers (and the padding after them).
    headers: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

impl<'a> Envelope<'a> {
    /// Reads the envelope at the start of `body`; what is wrong if any
    /// length points past it or a header name is not UTF-8 (the caller
    /// makes it `Corrupt`, naming the file).
    pub(crate) fn parse(body: &'a [u8]) -> std::result::Result<Envelope<'a>, &'static str> {
        let corrupt = |what: &'static str| Err(what);
        if body.len() < FIXED {
            return corrupt("its envelope is shorter than its fixed part");
        }
        let size = u32_at(body, 0);
        if size < FIXED || size > body.len() || size % 8 != 0 {
            return corrupt("its envelope's size does not fit the message");
        }
        let key_len = u16_at(body, 4);
        let count = u16_at(body, 6) & !(TARGETED | EXPIRING);
        let targeted = u16_at(body, 6) & TARGETED != 0;
        let expiring = u16_at(body, 6) & EXPIRING != 0;
        let key_hash = u64::from_le_bytes(body[8..16].try_into().unwrap_or([0; 8]));
        let expires_at = FIXED + if targeted { TARGET } else { 0 };
        let key_at = expires_at + if expiring { EXPIRES } else { 0 };
        if key_at + key_len > size || count > MAX_HEADERS {
            return corrupt("its envelope's key or header count is out of range");
        }
        let expires_ns = expiring.then(|| {
            u64::from_le_bytes(
                body[expires_at..expires_at + EXPIRES]
                    .try_into()
                    .unwrap_or([0; 8]),
            )
        });
        let target = targeted.then(|| Target {
            group: u32_at(body, FIXED) as u32,
            redrives: u16_at(body, FIXED + 4) as u16,
            created_ns: u64::from_le_bytes(
                body[FIXED + 8..FIXED + 16].try_into().unwrap_or([0; 8]),
            ),
        });
        let key = (key_len > 0).then(|| &body[key_at..key_at + key_len]);
        let env = Envelope {
            size,
            key,
            key_hash,
            target,
            expires_ns,
            count,
            headers: &body[key_at + key_len..size],
        };
        // Walk the headers once, so the accessors meet no surprise.
        let mut n = 0;
        let mut it = env.headers_iter();
        for h in &mut it {
            h?;
            n += 1;
        }
        if n != count {
            return corrupt("its envelope has fewer headers than it says");
        }
        Ok(env)
    }

    pub(crate) fn headers_iter(&self) -> RawHeaders<'a> {
        RawHeaders {
            rest: self.headers,
            left: self.count,
        }
    }
}

/// The headers of an envelope, decoded as they are walked.
#[derive(Clone)]
pub(crate) struct RawHeaders<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for RawHeaders<'a> {
    type Item = std::result::Result<(&'a str, &'a [u8]), &'static str>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let corrupt = || Some(Err("a header runs past its envelope"));
        let r = self.rest;
        if r.len() < 6 {
            self.left = 0;
            return corrupt();
        }
        let (nl, vl) = (u16_at(r, 0), u32_at(r, 2));
        let Some(end) = 6usize.checked_add(nl).and_then(|x| x.checked_add(vl)) else {
            self.left = 0;
            return corrupt();
        };
        if end > r.len() || nl == 0 {
            self.left = 0;
            return corrupt();
        }
        let Ok(name) = std::str::from_utf8(&r[6..6 + nl]) else {
            self.left = 0;
            return Some(Err("a header name is not UTF-8"));
        };
        let value = &r[6 + nl..end];
        self.rest = &r[end..];
        Some(Ok((name, value)))
    }
}

/// The headers of a received message, in order: `(name, value)` pairs
/// borrowed from the message (zero-copy).
#[derive(Clone)]
pub struct HeaderIter<'a> {
    inner: Option<RawHeaders<'a>>,
}

impl<'a> HeaderIter<'a> {
    pub(crate) fn empty() -> HeaderIter<'a> {
        HeaderIter { inner: None }
    }
    pub(crate) fn of(env: &Envelope<'a>) -> HeaderIter<'a> {
        HeaderIter {
            inner: Some(env.headers_iter()),
        }
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        // A garbled header (checked at receive, so only if the memory
        // changed since) ends the walk.
        match self.inner.as_mut()?.next() {
            Some(Ok(h)) => Some(h),
            _ => {
                self.inner = None;
                None
            }
        }
    }
}

impl std::fmt::Debug for HeaderIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// Splits a stored body into its envelope (if `len_word` says there is
/// one) and its payload.
pub(crate) fn split(
    body: &[u8],
    enveloped: bool,
) -> std::result::Result<(Option<Envelope<'_>>, &[u8]), &'static str> {
    if !enveloped {
        return Ok((None, body));
    }
    let env = Envelope::parse(body)?;
    Ok((Some(env), &body[env.size..]))
}

/// A stored body copied out: payload, ordering key and headers.
pub(crate) struct Owned {
    pub payload: Vec<u8>,
    pub ordering_key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub target: Option<Target>,
    /// Its own expiry (`Meta::ttl`), CLOCK_REALTIME ns.
    pub expires_ns: Option<u64>,
}

/// Copies a stored body out (for listings: peek, the DLQ). A garbled
/// envelope leaves the whole body as the payload.
pub(crate) fn owned(body: &[u8], enveloped: bool) -> Owned {
    match split(body, enveloped) {
        Ok((Some(env), payload)) => Owned {
            payload: payload.to_vec(),
            ordering_key: env.key.map(<[u8]>::to_vec),
            headers: HeaderIter::of(&env)
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
            target: env.target,
            expires_ns: env.expires_ns,
        },
        _ => Owned {
            payload: body.to_vec(),
            ordering_key: None,
            headers: Vec::new(),
            target: None,
            expires_ns: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(key: Option<&[u8]>, h: &Headers<'_>, payload: &[u8]) -> Vec<u8> {
        let p = plan(key, h, None).unwrap().unwrap();
        let mut out = vec![0xAA; p.size];
        p.write(&mut out);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn round_trip() {
        let mut h = Headers::new();
        h.push("traceparent", b"00-abc-01");
        h.push("content-type", b"application/json");
        h.push("empty", b"");
        let body = encode(Some(b"customer-7"), &h, b"{}");
        let (env, payload) = split(&body, true).unwrap();
        let env = env.unwrap();
        assert_eq!(payload, b"{}");
        assert_eq!(env.size % 8, 0);
        assert_eq!(env.key, Some(&b"customer-7"[..]));
        assert_eq!(env.key_hash, hash64(b"customer-7"));
        let got: Vec<_> = HeaderIter::of(&env).collect();
        assert_eq!(got, h.iter().collect::<Vec<_>>());
        let (none, all) = split(b"plain", false).unwrap();
        assert!(none.is_none());
        assert_eq!(all, b"plain");
    }

    #[test]
    fn an_expiry_alone_is_an_envelope_of_its_own() {
        let h = Headers::new();
        let p = plan(None, &h, Some(0x1122_3344_5566_7788))
            .unwrap()
            .unwrap();
        assert_eq!(p.size, 24);
        let mut body = vec![0xAA; p.size];
        p.write(&mut body);
        body.extend_from_slice(b"pay");
        let (env, payload) = split(&body, true).unwrap();
        let env = env.unwrap();
        assert_eq!(payload, b"pay");
        assert_eq!(
            (env.key, env.target, env.expires_ns),
            (None, None, Some(0x1122_3344_5566_7788))
        );
        assert_eq!(HeaderIter::of(&env).count(), 0);
        // Without one, none is read back.
        let plain = encode(Some(b"k"), &h, b"pay");
        assert_eq!(split(&plain, true).unwrap().0.unwrap().expires_ns, None);
    }

    #[test]
    fn a_redrive_target_round_trips_beside_key_and_headers() {
        let mut h = Headers::new();
        h.push("a", b"1");
        let t = Target {
            group: 3,
            created_ns: 0x0102_0304_0506_0708,
            redrives: 2,
        };
        let p = plan(Some(b"k"), &h, Some(77))
            .unwrap()
            .unwrap()
            .for_group(t);
        let mut body = vec![0xAA; p.size];
        p.write(&mut body);
        body.extend_from_slice(b"pay");
        let (env, payload) = split(&body, true).unwrap();
        let env = env.unwrap();
        assert_eq!(payload, b"pay");
        assert_eq!((env.key, env.target), (Some(&b"k"[..]), Some(t)));
        assert_eq!(env.expires_ns, Some(77));
        assert_eq!(
            HeaderIter::of(&env).collect::<Vec<_>>(),
            vec![("a", &b"1"[..])]
        );
        // Untargeted: no target read back.
        let plain = encode(Some(b"k"), &h, b"pay");
        assert_eq!(split(&plain, true).unwrap().0.unwrap().target, None);
    }

    #[test]
    fn limits_are_refused_with_the_limit_named() {
        let h = Headers::new();
        assert!(plan(None, &h, None).unwrap().is_none());
        let long = vec![1u8; MAX_ORDERING_KEY + 1];
        let e = plan(Some(&long), &h, None).err().unwrap().to_string();
        assert!(e.contains("1024"), "{e}");
        assert!(plan(Some(b""), &h, None).is_err());
        let mut many = Headers::new();
        for _ in 0..=MAX_HEADERS {
            many.push("a", b"b");
        }
        assert_eq!(many.iter().count(), MAX_HEADERS);
        assert!(
            plan(None, &many, None)
                .err()
                .unwrap()
                .to_string()
                .contains("16")
        );
        let mut bad = Headers::new();
        bad.push("", b"x");
        assert!(plan(None, &bad, None).is_err());
        let name = "n".repeat(MAX_HEADER_NAME + 1);
        let mut bad = Headers::new();
        bad.push(&name, b"x");
        assert!(plan(None, &bad, None).is_err());
    }

    #[test]
    fn hostile_envelopes_are_corrupt_never_a_panic() {
        let mut h = Headers::new();
        h.push("k", b"value");
        let good = encode(Some(b"key"), &h, b"payload");
        // Every truncation and every single-byte change in the envelope
        // either parses within bounds or is Corrupt.
        for cut in 0..good.len() {
            let _ = split(&good[..cut], true);
        }
        let size = u32_at(&good, 0);
        for i in 0..size {
            for v in [0u8, 1, 7, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                if let Ok((Some(env), payload)) = split(&b, true) {
                    assert!(env.size + payload.len() == b.len());
                    let _ = HeaderIter::of(&env).count();
                }
            }
        }
        assert!(split(&[0; 8], true).is_err());
        let mut b = good.clone();
        b[0..4].copy_from_slice(&(u32::MAX).to_le_bytes());
        assert!(split(&b, true).is_err());
    }

    #[test]
    fn the_lane_hash_is_fixed() {
        // Pinned: the hash is part of the queue's format (every process
        // and language must agree on a key's lane).
        assert_eq!(hash64(b"customer-7"), hash64(b"customer-7"));
        assert_eq!(
            hash64(b"a"),
            (crc32c::crc32c(b"a") as u64) << 32 | crc32c::crc32c_append(0x9e37_79b9, b"a") as u64
        );
        assert_eq!(hash64(b"123456789") >> 32, 0xe306_9283);
    }
}
