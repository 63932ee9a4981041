//! Where every region of the queue file lies, computed from the options
//! alone (checked arithmetic: the inputs may come from a hostile file), so
//! that an opener can recompute it and compare with what the file claims.

use super::*;

/// Where everything is, computed from the options alone, so an opener can
/// recompute it and compare with what the file claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub slots: u64,
    pub slot_size: u64,
    pub slot_stride: u64,
    pub max_groups: u64,
    pub max_producers: u64,
    pub max_consumers: u64,
    pub dlq_slots: u64,
    pub dlq_stride: u64,
    pub dedup_window: u64,
    pub ordering_lanes: u64,
    /// How far an ack=manual group's dispatch may run ahead of its
    /// `committed` cursor, in slots (`Options::max_in_flight`) ...
    pub max_in_flight: u64,
    /// ... and its lease table's records: that, rounded up to a power of
    /// two (position `p`'s record is `p & (lease_records - 1)`).
    pub lease_records: u64,
    pub groups_offset: u64,
    pub producers_offset: u64,
    pub consumers_offset: u64,
    pub leases_offset: u64,
    /// The DLQ's state words (one `u64` per entry) start here, ...
    pub dlq_offset: u64,
    /// ... and its entries here: left unallocated at create, so a big DLQ
    /// costs the file's pages only once it holds something.
    pub dlq_entries_offset: u64,
    pub dedup_offset: u64,
    pub lanes_offset: u64,
    pub slots_offset: u64,
    pub total_size: u64,
    /// The slots area is whole pages and ends the file: it is mapped twice
    /// in a row (`os/map.rs`), so records may run past its end.
    pub mirrored: bool,
}

fn round_up(x: u64, to: u64) -> Option<u64> {
    x.checked_add(to - 1).map(|v| v / to * to)
}

/// What a slot's stride is rounded up to in a ring of `slots` slots: no
/// more than the ring needs to be whole pages (so that it can be mapped
/// twice and take long records), and at least 8 bytes (the state word's
/// alignment), at most a cache line. Rings of 512 slots or more pack
/// small slots back to back on 8 bytes (a 16-byte payload takes 48 bytes,
/// not a 64-byte line); smaller rings round to 16, 32 or 64 bytes.
pub(crate) fn slot_grain(slots: u64) -> u64 {
    (4096 / slots.max(1)).clamp(8, 64)
}

/// The slots of `slot_size` bytes that a ring of `capacity` bytes holds:
/// the most that fit, a power of two (so the ring is between half of
/// `capacity` and all of it).
pub(crate) fn slots_for_capacity(capacity: u64, slot_size: u64) -> Result<u64> {
    let stride = |slots: u64| round_up(SLOT_HEADER_SIZE + slot_size, slot_grain(slots));
    let fit = stride(MAX_SLOTS).map_or(0, |s| capacity / s);
    let mut slots = if fit == 0 {
        0
    } else {
        (1u64 << fit.ilog2()).min(MAX_SLOTS)
    };
    // Smaller rings round their slots up further (`slot_grain`).
    while slots >= 2 && stride(slots).is_none_or(|s| slots * s > capacity) {
        slots /= 2;
    }
    if slots < 2 {
        return Err(Error::InvalidOption(format!(
            "a capacity of {capacity} bytes holds fewer than two slots of {slot_size} bytes \
             (and their {SLOT_HEADER_SIZE}-byte headers): give more capacity or a smaller slot_size"
        )));
    }
    Ok(slots)
}

impl Geometry {
    /// Slots a record of `body` bytes (envelope and payload) takes: as
    /// many strides as its header and body need (one up to `slot_size`).
    #[inline(always)]
    pub(crate) fn span_of(&self, body: usize) -> u64 {
        if body as u64 <= self.slot_size {
            1
        } else {
            (SLOT_HEADER_SIZE + body as u64)
                .div_ceil(self.slot_stride)
                .max(1)
        }
    }

    /// The longest record, in slots: half the ring (`protocol/ring/`)
    /// where the ring is mapped twice, else one slot.
    #[inline(always)]
    pub(crate) fn max_span(&self) -> u64 {
        if self.mirrored {
            (self.slots / 2).max(1)
        } else {
            1
        }
    }

    /// The largest message body the ring itself allows: half the ring
    /// where it is mapped twice, else `slot_size`; never 2 GiB or more (a
    /// header's `len` word has 31 bits for it).
    pub(crate) fn max_body(&self) -> u64 {
        let ring = if self.mirrored {
            self.body_room(self.max_span()) as u64
        } else {
            self.slot_size
        };
        ring.min((1 << 31) - 1)
    }

    /// The most body bytes a record of `span` slots holds (one slot holds
    /// its stride less the header: `slot_size` and the rounding up to
    /// [`slot_grain`]).
    #[inline(always)]
    pub(crate) fn body_room(&self, span: u64) -> usize {
        (span.max(1) * self.slot_stride - SLOT_HEADER_SIZE) as usize
    }

    /// Bytes of every group's lease table (48 a record per group):
    /// allocated group by group, by a group's first ack=manual consumer.
    pub(crate) fn lease_tables_size(&self) -> u64 {
        self.max_groups * self.lease_table_size()
    }

    /// Bytes of one group's lease table: 48 a record, one record per slot
    /// of the in-flight window.
    pub(crate) fn lease_table_size(&self) -> u64 {
        self.lease_records * LEASE_RECORD_SIZE
    }

    /// Where group `idx`'s lease table starts in the file, and its bytes.
    pub(crate) fn lease_table(&self, idx: usize) -> (u64, u64) {
        let bytes = self.lease_table_size();
        (self.leases_offset + idx as u64 * bytes, bytes)
    }

    /// Bytes of the file allocated when the queue is made: all but the
    /// lease tables and the dead-letter entries (allocated as used).
    pub(crate) fn allocated_at_create(&self) -> u64 {
        self.total_size - self.lease_tables_size() - self.dlq_slots * self.dlq_stride
    }

    /// Entries a dead letter of `body` bytes takes (a run: its header and
    /// body, one slice).
    pub(crate) fn dlq_span_of(&self, body: usize) -> u64 {
        (DEAD_LETTER_HEADER_SIZE + body as u64)
            .div_ceil(self.dlq_stride)
            .max(1)
    }

    /// The most body bytes a run of `span` dead-letter entries holds.
    pub(crate) fn dlq_room(&self, span: u64) -> u64 {
        span.max(1) * self.dlq_stride - DEAD_LETTER_HEADER_SIZE
    }

    /// Computes the layout, refusing values out of range. Uses checked
    /// arithmetic: the inputs may come from a hostile file.
    // One argument per dimension of the file, each named at both callers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn compute(
        slots: u64,
        slot_size: u64,
        max_groups: u64,
        max_producers: u64,
        max_consumers: u64,
        dlq_slots: u64,
        dedup_window: u64,
        ordering_lanes: u64,
        max_in_flight: u64,
    ) -> Result<Geometry> {
        let bad = |m: String| Err(Error::InvalidOption(m));
        if !slots.is_power_of_two() || !(2..=MAX_SLOTS).contains(&slots) {
            return bad(format!(
                "slots must be a power of two from 2 to {MAX_SLOTS}, got {slots}"
            ));
        }
        if !(1..=MAX_SLOT_SIZE).contains(&slot_size) {
            return bad(format!(
                "slot_size must be from 1 to {MAX_SLOT_SIZE} bytes, got {slot_size}"
            ));
        }
        if !(1..=MAX_GROUPS as u64).contains(&max_groups) {
            return bad(format!(
                "max_groups must be from 1 to {MAX_GROUPS}, got {max_groups}"
            ));
        }
        if max_producers != MAX_PRODUCERS as u64 {
            return bad(format!("max_producers must be {MAX_PRODUCERS}"));
        }
        if max_consumers != MAX_CONSUMERS as u64 {
            return bad(format!("max_consumers must be {MAX_CONSUMERS}"));
        }
        if !(1..=MAX_DLQ_SLOTS).contains(&dlq_slots) {
            return bad(format!(
                "dlq_slots must be from 1 to {MAX_DLQ_SLOTS}, got {dlq_slots}"
            ));
        }
        if dedup_window > MAX_DEDUP_WINDOW {
            return bad(format!(
                "dedup_window must be at most {MAX_DEDUP_WINDOW} keys, got {dedup_window}"
            ));
        }
        if !ordering_lanes.is_power_of_two() || ordering_lanes > MAX_ORDERING_LANES {
            return bad(format!(
                "ordering_lanes must be a power of two from 1 to {MAX_ORDERING_LANES}, got {ordering_lanes}"
            ));
        }
        if !(1..=slots).contains(&max_in_flight) {
            return bad(format!(
                "max_in_flight must be from 1 to the ring's {slots} slots, got {max_in_flight}"
            ));
        }
        let lease_records = max_in_flight.next_power_of_two();
        let overflow = || Error::InvalidOption("queue too large".into());
        let slot_stride =
            round_up(SLOT_HEADER_SIZE + slot_size, slot_grain(slots)).ok_or_else(overflow)?;
        let dlq_stride = round_up(DEAD_LETTER_HEADER_SIZE + slot_size, 64).ok_or_else(overflow)?;
        let groups_offset = HEADER_SIZE;
        let producers_offset = groups_offset + max_groups * GROUP_RECORD_SIZE;
        let consumers_offset = producers_offset + max_producers * PRODUCER_RECORD_SIZE;
        let consumers_end = consumers_offset + max_consumers * CONSUMER_RECORD_SIZE;
        let leases_offset = round_up(consumers_end, 4096).ok_or_else(overflow)?;
        let dlq_offset = max_groups
            .checked_mul(lease_records)
            .and_then(|n| n.checked_mul(LEASE_RECORD_SIZE))
            .and_then(|n| n.checked_add(leases_offset))
            .and_then(|n| round_up(n, 4096))
            .ok_or_else(overflow)?;
        let dlq_entries_offset = dlq_offset
            .checked_add(dlq_slots * 8)
            .and_then(|n| round_up(n, 4096))
            .ok_or_else(overflow)?;
        let dedup_offset = dlq_slots
            .checked_mul(dlq_stride)
            .and_then(|n| n.checked_add(dlq_entries_offset))
            .and_then(|n| round_up(n, 4096))
            .ok_or_else(overflow)?;
        let lanes_offset =
            round_up(dedup_offset + dedup_window * DEDUP_ENTRY_SIZE, 4096).ok_or_else(overflow)?;
        let slots_offset = round_up(lanes_offset + max_groups * ordering_lanes * LANE_SIZE, 4096)
            .ok_or_else(overflow)?;
        let total_size = slots
            .checked_mul(slot_stride)
            .and_then(|r| r.checked_add(slots_offset))
            .and_then(|t| round_up(t, 4096))
            .ok_or_else(overflow)?;
        if total_size > MAX_TOTAL_SIZE {
            return bad(format!(
                "slots × slot_size is {total_size} bytes, more than the {MAX_TOTAL_SIZE} allowed"
            ));
        }
        Ok(Geometry {
            slots,
            slot_size,
            slot_stride,
            max_groups,
            max_producers,
            max_consumers,
            dlq_slots,
            dlq_stride,
            dedup_window,
            ordering_lanes,
            max_in_flight,
            lease_records,
            groups_offset,
            producers_offset,
            consumers_offset,
            leases_offset,
            dlq_offset,
            dlq_entries_offset,
            dedup_offset,
            lanes_offset,
            slots_offset,
            total_size,
            mirrored: (slots * slot_stride) % 4096 == 0,
        })
    }
}
