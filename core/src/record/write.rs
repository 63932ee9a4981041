//! Writing a message record into a slot the producer began (claimed and
//! announced, `protocol/ring/`) and has not yet committed: its body
//! and the header's fields, everything but the state word.

use super::envelope::{ENVELOPED, EnvelopePlan};
use crate::layout::{SLOT_HEADER_SIZE, SlotHeader};
use crate::options::Meta;

const _: () = assert!(SLOT_HEADER_SIZE < 64);

/// Payload bytes that share the cache line of the header's end, for a slot
/// at `slot`: 32 where the slot starts a line, none where the header ends
/// one (slots are 8-byte aligned: `layout::geometry::slot_grain`).
#[inline(always)]
fn header_line_payload(slot: *mut u8) -> usize {
    let body = slot as usize + SLOT_HEADER_SIZE as usize;
    (64 - body % 64) % 64
}

/// Writes a message into a slot.
///
/// The payload past the cache line where the header ends goes first, then
/// the header and the payload's head: the header's line — the one a
/// waiting consumer spins on when the slot starts a line, and the one the
/// commit then writes — is written last. A single copy straddling the two
/// lines made the two lines' ownership requests serial: on the Xeon VM in
/// `BENCHMARKS.md`, 64 B one-way latency over 4096-slot rings went
/// ~365 -> ~262 ns where the consumer does not read the payload (Python
/// busy polling 0.56 -> ~0.4 µs), ~380 -> ~290 ns where it does.
///
/// # Safety
/// `slot` points to a slot inside the mapping whose header (but its state
/// word) and body the caller alone may write until its commit: a slot it
/// began (`Ring::begin`; its announcement keeps a later lap out even if a
/// consumer aborts the position meanwhile), or one the spill's refill
/// holds under the admin lock; and the record's slots hold the payload
/// (`Geometry::body_room` of its span: the ring is mapped twice, so a
/// record that runs past its end is one slice).
/// `enveloped`: `payload` is a whole body that starts with an envelope
/// (from the spill).
#[inline(always)]
pub(crate) unsafe fn write_slot(
    slot: *mut u8,
    payload: &[u8],
    enveloped: bool,
    meta: &Meta,
    ts: u64,
) {
    // Slots are 8-byte aligned: the slots region is page-aligned and the
    // stride a multiple of 8 (layout/geometry.rs).
    debug_assert_eq!(slot as usize % 8, 0);
    let head = payload.len().min(header_line_payload(slot));
    // SAFETY: per the contract, nobody else reads or writes this slot's
    // header fields or payload until we commit, and they are in bounds
    // (the header, then `payload.len()` bytes, within the slot's stride).
    unsafe {
        if payload.len() > head {
            std::ptr::copy_nonoverlapping(
                payload.as_ptr().add(head),
                slot.add(SLOT_HEADER_SIZE as usize + head),
                payload.len() - head,
            );
        }
        let hdr = slot as *mut SlotHeader;
        std::ptr::addr_of_mut!((*hdr).timestamp_ns).write(ts);
        std::ptr::addr_of_mut!((*hdr).correlation_id).write(meta.correlation_id);
        let flag = if enveloped { ENVELOPED } else { 0 };
        std::ptr::addr_of_mut!((*hdr).len).write(payload.len() as u32 | flag);
        std::ptr::addr_of_mut!((*hdr).type_id).write(meta.type_id);
        std::ptr::copy_nonoverlapping(payload.as_ptr(), slot.add(SLOT_HEADER_SIZE as usize), head);
    }
}

/// Writes a message with an envelope (`plan`, for `meta`'s ordering key
/// and headers) into a slot: the envelope, the payload, then the header.
/// Off the hot path, so written plainly.
///
/// # Safety
/// As [`write_slot`], with `plan.size + payload.len()` bytes room.
#[cold]
pub(crate) unsafe fn write_slot_enveloped(
    slot: *mut u8,
    plan: &EnvelopePlan<'_>,
    payload: &[u8],
    meta: &Meta,
    ts: u64,
) {
    let body_len = plan.size + payload.len();
    // SAFETY: per the contract the record's body (`body_len` bytes after
    // the header, inside its slots) is ours alone until the commit.
    unsafe {
        let body = std::slice::from_raw_parts_mut(slot.add(SLOT_HEADER_SIZE as usize), body_len);
        plan.write(&mut body[..plan.size]);
        body[plan.size..].copy_from_slice(payload);
        let hdr = slot as *mut SlotHeader;
        std::ptr::addr_of_mut!((*hdr).timestamp_ns).write(ts);
        std::ptr::addr_of_mut!((*hdr).correlation_id).write(meta.correlation_id);
        std::ptr::addr_of_mut!((*hdr).len).write(body_len as u32 | ENVELOPED);
        std::ptr::addr_of_mut!((*hdr).type_id).write(meta.type_id);
    }
}

/// Writes the header of a message whose payload of `len` bytes was
/// written in place ([`payload_area`], a reservation).
///
/// # Safety
/// As [`write_slot`], with room for `len` bytes.
#[inline]
pub(crate) unsafe fn write_header(slot: *mut u8, len: usize, meta: &Meta, ts: u64) {
    // SAFETY: per the contract the slot's header is ours alone until the
    // commit, and inside the mapping.
    unsafe {
        let hdr = slot as *mut SlotHeader;
        std::ptr::addr_of_mut!((*hdr).timestamp_ns).write(ts);
        std::ptr::addr_of_mut!((*hdr).correlation_id).write(meta.correlation_id);
        std::ptr::addr_of_mut!((*hdr).len).write(len as u32);
        std::ptr::addr_of_mut!((*hdr).type_id).write(meta.type_id);
    }
}

/// The `len` bytes of payload of begun `slot`, to be written in place.
///
/// # Safety
/// As [`write_slot`], with room for `len` bytes; and the returned slice is
/// the only view of those bytes while it lives.
#[inline(always)]
pub(crate) unsafe fn payload_area<'a>(slot: *mut u8, len: usize) -> &'a mut [u8] {
    // SAFETY: per the contract: inside the slot, ours alone.
    unsafe { std::slice::from_raw_parts_mut(slot.add(SLOT_HEADER_SIZE as usize), len) }
}

/// [`payload_area`] to read: the `len` bytes of payload of begun `slot`.
///
/// # Safety
/// As [`write_slot`], with room for `len` bytes; and no `&mut` view of
/// those bytes lives while the returned slice does.
#[inline(always)]
pub(crate) unsafe fn payload_view<'a>(slot: *const u8, len: usize) -> &'a [u8] {
    // SAFETY: per the contract: inside the slot, not written meanwhile.
    unsafe { std::slice::from_raw_parts(slot.add(SLOT_HEADER_SIZE as usize), len) }
}
