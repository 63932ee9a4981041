//! The payloads of a chaos run: each carries its message id (`mid`) in its
//! first 8 bytes and is otherwise a function of it (its length and every
//! byte), so that the checker regenerates what was published from the id
//! alone and tells a corrupted payload from a whole one by its digest.

use super::history::fnv;

/// A message id: the producer in the top 16 bits, its count below.
pub fn mid(producer: u16, n: u64) -> u64 {
    (u64::from(producer) << 48) | (n & ((1 << 48) - 1))
}

/// The producer of a message id.
pub fn producer_of(mid: u64) -> u16 {
    (mid >> 48) as u16
}

/// The payload of message `mid`: 8 to `max` bytes (at least 8).
pub fn payload(mid: u64, max: usize) -> Vec<u8> {
    let mut x = mid.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut step = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let span = max.saturating_sub(8) as u64 + 1;
    // Mostly small messages, now and then one of the largest.
    let extra = if step() % 8 == 0 {
        step() % span
    } else {
        step() % span.min(33)
    };
    let mut v = mid.to_le_bytes().to_vec();
    v.extend((0..extra).map(|_| step() as u8));
    v
}

/// The message id a payload says it carries (None under 8 bytes).
pub fn mid_in(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// The digest of message `mid`'s payload, as a client logs it.
pub fn digest(mid: u64, max: usize) -> u64 {
    fnv(&payload(mid, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_its_id_and_its_digest_sees_one_flipped_byte() {
        let m = mid(3, 77);
        assert_eq!(producer_of(m), 3);
        let p = payload(m, 100);
        assert!(p.len() >= 8 && p.len() <= 100);
        assert_eq!(p, payload(m, 100));
        assert_eq!(mid_in(&p), Some(m));
        let mut q = p.clone();
        let last = q.len() - 1;
        q[last] ^= 1;
        assert_ne!(fnv(&q), digest(m, 100));
        assert_eq!(fnv(&p), digest(m, 100));
    }
}
