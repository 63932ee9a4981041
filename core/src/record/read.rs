//! Reading a message record: a committed slot's header and body, and a
//! stored body (from a slot, a journal record or a dead-letter entry)
//! split into its envelope and payload.

use super::envelope::{ENVELOPED, Envelope};
use crate::layout::{SLOT_HEADER_SIZE, SlotHeader};

// `Body::lens` packs two 32-bit lengths into a usize.
const _: () = assert!(usize::BITS == 64);

/// Where a stored message body lies, split past its envelope: what a
/// received message borrows. Made only by the unsafe [`Body::new`], whose
/// caller promises the bytes stay readable and unchanged for as long as
/// the `Body` (or a copy) is used; its readers are safe on that promise.
#[derive(Clone, Copy)]
pub(crate) struct Body {
    /// The payload: the body's start, or just past its envelope.
    payload: *const u8,
    /// The payload's bytes (low 32 bits) and the envelope's before it
    /// (high 32 bits; 0: none), packed so that a received message stays as
    /// small as it was before envelopes.
    lens: usize,
}

impl Body {
    /// The body of `len` bytes at `ptr` (starting with an envelope if
    /// `enveloped`); the reason if its envelope is garbled.
    ///
    /// # Safety
    /// `ptr .. ptr + len` is readable, and holds still, for as long as the
    /// returned `Body` or any copy of it is read; and `len < 2^32` (every
    /// stored length is a u32: a slot's `len` word, a record's or an
    /// entry's), so that it packs into `lens`.
    #[inline(always)]
    pub(crate) unsafe fn new(
        ptr: *const u8,
        len: usize,
        enveloped: bool,
    ) -> std::result::Result<Body, &'static str> {
        debug_assert!(len <= u32::MAX as usize);
        if !enveloped {
            return Ok(Body {
                payload: ptr,
                lens: len,
            });
        }
        // SAFETY: per the contract.
        let body = unsafe { std::slice::from_raw_parts(ptr, len) };
        let env = Envelope::parse(body)?;
        Ok(Body {
            // SAFETY: `env.size <= len` (checked by `parse`).
            payload: unsafe { ptr.add(env.size) },
            lens: (env.size << 32) | (len - env.size),
        })
    }

    /// Bytes of payload.
    #[inline(always)]
    pub(crate) fn payload_len(&self) -> usize {
        self.lens & 0xffff_ffff
    }

    /// Bytes of the envelope in front of the payload (0: none).
    #[inline(always)]
    fn envelope_len(&self) -> usize {
        self.lens >> 32
    }

    /// The payload, in place.
    #[inline(always)]
    pub(crate) fn payload(&self) -> &[u8] {
        // SAFETY: per `new`'s contract the body's bytes are readable while
        // `self` is used; the payload is its tail.
        unsafe { std::slice::from_raw_parts(self.payload, self.payload_len()) }
    }

    /// The whole body (envelope and payload) as stored, and whether it
    /// starts with an envelope.
    pub(crate) fn stored(&self) -> (&[u8], bool) {
        let env = self.envelope_len();
        // SAFETY: the envelope lies right before the payload in the same
        // body (`new`), readable as long as the payload.
        let body =
            unsafe { std::slice::from_raw_parts(self.payload.sub(env), env + self.payload_len()) };
        (body, env != 0)
    }

    /// Its envelope (ordering key, headers, redrive target), if it has one.
    pub(crate) fn envelope(&self) -> Option<Envelope<'_>> {
        match self.stored() {
            (body, true) => Envelope::parse(body).ok(),
            _ => None,
        }
    }
}

/// A committed slot's message: its header's fields and its body.
pub(crate) struct InSlot {
    pub timestamp_ns: u64,
    pub type_id: u32,
    pub correlation_id: u64,
    pub body: Body,
}

/// A committed slot's message as stored: its header's fields and its
/// body, envelope unparsed (what the spill and the journal copy).
pub(crate) struct Stored<'a> {
    pub timestamp_ns: u64,
    pub type_id: u32,
    pub correlation_id: u64,
    pub body: &'a [u8],
    /// The body starts with an envelope.
    pub enveloped: bool,
}

/// What is wrong with a garbled slot.
pub(crate) enum Garbled {
    /// Its `len` word claims more bytes than a slot holds.
    TooLong(usize),
    /// Its envelope does not parse: why.
    Envelope(&'static str),
}

/// The message in `slot` as stored; `Err(len)` if its `len` word claims
/// more than `slot_size` bytes.
///
/// # Safety
/// `slot` is a slot of the mapping that the caller saw committed (an
/// Acquire load of its state word, which pairs with the commit's Release,
/// so the header is complete), and nobody writes it again for `'a` (the
/// caller's group cursor, or the admin lock, stays at or below its
/// position).
#[inline(always)]
pub(crate) unsafe fn stored_in_slot<'a>(
    slot: *const u8,
    slot_size: usize,
) -> Result<Stored<'a>, usize> {
    let hdr = slot as *const SlotHeader;
    // SAFETY: per the contract the header is inside the mapping and
    // complete.
    let (word, timestamp_ns, type_id, correlation_id) = unsafe {
        (
            std::ptr::addr_of!((*hdr).len).read(),
            std::ptr::addr_of!((*hdr).timestamp_ns).read(),
            std::ptr::addr_of!((*hdr).type_id).read(),
            std::ptr::addr_of!((*hdr).correlation_id).read(),
        )
    };
    let len = (word & !ENVELOPED) as usize;
    if len > slot_size {
        return Err(len);
    }
    Ok(Stored {
        timestamp_ns,
        type_id,
        correlation_id,
        // SAFETY: `len <= slot_size` bytes of body follow the header
        // inside the slot, held still per the contract.
        body: unsafe { std::slice::from_raw_parts(slot.add(SLOT_HEADER_SIZE as usize), len) },
        enveloped: word & ENVELOPED != 0,
    })
}

/// Reads the message in `slot`, checking its length against `slot_size`
/// and its envelope.
///
/// # Safety
/// As [`stored_in_slot`], for as long as the returned body is read.
#[inline(always)]
pub(crate) unsafe fn read_slot(slot: *const u8, slot_size: usize) -> Result<InSlot, Garbled> {
    // SAFETY: per the contract.
    let s = unsafe { stored_in_slot(slot, slot_size) }.map_err(Garbled::TooLong)?;
    // SAFETY: the body lies in the slot, held still per the contract.
    let body = unsafe { Body::new(s.body.as_ptr(), s.body.len(), s.enveloped) }
        .map_err(Garbled::Envelope)?;
    Ok(InSlot {
        timestamp_ns: s.timestamp_ns,
        type_id: s.type_id,
        correlation_id: s.correlation_id,
        body,
    })
}

/// The stored body of the committed message in `slot` if it starts with
/// an envelope (an ordering key, headers or a redrive target), at most
/// `slot_size` bytes of it; `None` for a plain message: one flag test.
///
/// # Safety
/// As [`stored_in_slot`].
#[inline(always)]
pub(crate) unsafe fn enveloped_body<'a>(slot: *const u8, slot_size: usize) -> Option<&'a [u8]> {
    // SAFETY: per the contract the header is inside the mapping and
    // complete.
    let word = unsafe { std::ptr::addr_of!((*(slot as *const SlotHeader)).len).read() };
    if word & ENVELOPED == 0 {
        return None;
    }
    let len = ((word & !ENVELOPED) as usize).min(slot_size);
    // SAFETY: `len <= slot_size` bytes of body follow the header inside
    // the slot, held still per the contract.
    Some(unsafe { std::slice::from_raw_parts(slot.add(SLOT_HEADER_SIZE as usize), len) })
}

/// When the committed message in `slot`, whose envelope (if any) is
/// `env`, expires (CLOCK_REALTIME ns): the earlier of its envelope's
/// expiry (`Meta::ttl`) and its timestamp plus the queue's
/// `message_ttl` (`queue_ttl_ns`, 0: none). `None`: never.
///
/// # Safety
/// As [`stored_in_slot`].
#[inline]
pub(crate) unsafe fn expires_ns(
    slot: *const u8,
    env: Option<&Envelope<'_>>,
    queue_ttl_ns: u64,
) -> Option<u64> {
    let own = env.and_then(|e| e.expires_ns);
    if queue_ttl_ns == 0 {
        return own;
    }
    // SAFETY: per the contract the header is inside the mapping, complete
    // and held still.
    let ts = unsafe { std::ptr::addr_of!((*(slot as *const SlotHeader)).timestamp_ns).read() };
    let by_queue = ts.saturating_add(queue_ttl_ns);
    Some(own.map_or(by_queue, |e| e.min(by_queue)))
}

/// The publish time in `slot` as it is now: exact if the caller knows the
/// slot committed and held still; at worst a stale value (a plain u64:
/// any bit pattern is a value) if it is being reused right now.
///
/// # Safety
/// `slot` is a slot of the mapping.
pub(crate) unsafe fn timestamp_now(slot: *const u8) -> u64 {
    // SAFETY: per the contract the field is inside the mapping.
    unsafe {
        std::ptr::read_volatile(std::ptr::addr_of!(
            (*(slot as *const SlotHeader)).timestamp_ns
        ))
    }
}

/// A copy of the body in `slot` as it is now, if its `len` word says it
/// starts with an envelope: for stats, which do not hold the slot still
/// (at worst garbage, which the envelope's parser refuses).
///
/// # Safety
/// `slot` is a slot of the mapping, of `slot_size` bytes of body.
pub(crate) unsafe fn copy_enveloped_body(slot: *const u8, slot_size: usize) -> Option<Vec<u8>> {
    // SAFETY: inside the mapping; a plain u32 (any bit pattern is a value).
    let word =
        unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*(slot as *const SlotHeader)).len)) };
    if word & ENVELOPED == 0 {
        return None;
    }
    let len = ((word & !ENVELOPED) as usize).min(slot_size);
    let mut body = vec![0u8; len];
    // SAFETY: `len <= slot_size` bytes of body follow the header inside
    // the slot; copied into our own buffer.
    unsafe {
        std::ptr::copy_nonoverlapping(slot.add(SLOT_HEADER_SIZE as usize), body.as_mut_ptr(), len);
    }
    Some(body)
}
