//! The cache hints a producer gives the CPU on its fast path, chosen once
//! per producer from the slot geometry and what the CPU says it has
//! (`docs/performance.md`, "On the Intel Xeon: where the time goes").

use crate::os;

/// How many cache lines ahead of the one it writes a publish asks for
/// (PREFETCHW): half the 16 L1 fill buffers of an Intel core since Golden
/// Cove (AMD Zen 4 has 24), so the prefetches never crowd out the misses
/// the publish itself takes. Counted in lines, not slots: a 1 KiB slot
/// is 17 lines, a 64 B one 2.
const PREFETCH_LINES: u64 = 8;

/// The cache hints a [`Producer`](crate::Producer)'s publishes give the
/// CPU, as chosen for its queue on this CPU ([`Producer::cache_hints`]).
/// `shmq bench` prints them. Hints never change what is published, only
/// how fast.
///
/// [`Producer::cache_hints`]: crate::Producer::cache_hints
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheHints {
    /// Whether each publish moves the slot's second cache line to the
    /// shared cache after commit (CLDEMOTE): on where the CPU has
    /// CLDEMOTE and the slot is two lines (payloads of 33–96 bytes).
    /// There a waiting consumer reads the second line right after the
    /// first says committed, and finds it in the shared cache instead of
    /// snooping it out of the producer's core (64 B one-way ~400 → ~290 ns
    /// on a Xeon). Off for longer slots: the line it would demote is one
    /// of many the consumer streams, and on a Xeon demoting it cut 1 KiB
    /// throughput four-fold. `SHMQ_DEMOTE=on|off` in the environment
    /// overrides the choice (for measuring it).
    pub demote: bool,
    /// Whether the CPU reports CLDEMOTE (CPUID leaf 7, ECX bit 25).
    pub cpu_has_cldemote: bool,
    /// How many slots ahead of the one it writes a publish asks for the
    /// lines of (PREFETCHW): the lines a consumer read a lap ago, taken
    /// back while nothing waits on them. 0: the ring is too small for it
    /// (the slot that far ahead is one a caught-up consumer reads).
    pub prefetch_slots: u64,
    /// Cache lines per slot (header and payload): each prefetch asks for
    /// all of them.
    pub lines_per_slot: u64,
}

impl CacheHints {
    /// The hints for a ring of `slots` slots of `slot_stride` bytes on
    /// this CPU; `demote_override` is `SHMQ_DEMOTE`'s value, if set.
    pub(crate) fn choose(slots: u64, slot_stride: u64, demote_override: Option<bool>) -> Self {
        let lines_per_slot = slot_stride.div_ceil(64).max(1);
        let cpu_has_cldemote = os::cpu::has_cldemote();
        let demote = demote_override.unwrap_or(cpu_has_cldemote && lines_per_slot == 2);
        let ahead = (PREFETCH_LINES / lines_per_slot).max(1);
        // In a ring of `ahead` slots or fewer (powers of two) that slot is
        // the one being written or one a consumer is about to read.
        let prefetch_slots = if slots > ahead { ahead } else { 0 };
        CacheHints {
            demote,
            cpu_has_cldemote,
            prefetch_slots,
            lines_per_slot,
        }
    }

    /// `SHMQ_DEMOTE` from the environment: `on`/`1` or `off`/`0`; anything
    /// else (or unset) leaves the choice to the CPU and the geometry.
    pub(crate) fn demote_from_env() -> Option<bool> {
        match std::env::var("SHMQ_DEMOTE").ok()?.as_str() {
            "on" | "1" => Some(true),
            "off" | "0" => Some(false),
            _ => None,
        }
    }
}

impl std::fmt::Display for CacheHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpu = if self.cpu_has_cldemote {
            "CPU has CLDEMOTE"
        } else {
            "no CLDEMOTE on this CPU"
        };
        write!(
            f,
            "demote {} ({cpu}, {}-line slots); prefetch ",
            if self.demote { "on" } else { "off" },
            self.lines_per_slot
        )?;
        if self.prefetch_slots == 0 {
            write!(f, "off (ring too small)")
        } else {
            write!(
                f,
                "{} slot(s) ahead, {} line(s) each",
                self.prefetch_slots, self.lines_per_slot
            )
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_geometry_chooses_the_hints() {
        // 64 B payloads: 128 B slots, two lines, 4 slots ahead.
        let h = CacheHints::choose(4096, 128, None);
        assert_eq!((h.lines_per_slot, h.prefetch_slots), (2, 4));
        assert_eq!(h.demote, h.cpu_has_cldemote);
        // 1 KiB payloads: 17 lines, one slot ahead, never demoted.
        let h = CacheHints::choose(4096, 1088, None);
        assert_eq!(
            (h.lines_per_slot, h.prefetch_slots, h.demote),
            (17, 1, false)
        );
        // 8 B payloads: one line (nothing to demote), 8 slots ahead.
        let h = CacheHints::choose(4096, 64, None);
        assert_eq!(
            (h.lines_per_slot, h.prefetch_slots, h.demote),
            (1, 8, false)
        );
        // A ring of 4 slots of two lines: the slot 4 ahead is this one.
        assert_eq!(CacheHints::choose(4, 128, None).prefetch_slots, 0);
        assert_eq!(CacheHints::choose(8, 128, None).prefetch_slots, 4);
        // The override wins either way.
        assert!(CacheHints::choose(4096, 1088, Some(true)).demote);
        assert!(!CacheHints::choose(4096, 128, Some(false)).demote);
    }

    #[test]
    fn the_hints_say_what_they_chose() {
        let h = CacheHints::choose(4096, 1088, Some(false));
        let s = h.to_string();
        assert!(s.starts_with("demote off ("), "{s}");
        assert!(s.contains("17-line slots"), "{s}");
        assert!(
            s.ends_with("prefetch 1 slot(s) ahead, 17 line(s) each"),
            "{s}"
        );
        assert!(
            CacheHints::choose(2, 128, None)
                .to_string()
                .ends_with("prefetch off (ring too small)")
        );
    }
}
