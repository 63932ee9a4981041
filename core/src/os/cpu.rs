//! Cache hints to the CPU: they never fault and never change memory.

/// Asks the CPU to move the cache line at `ptr` from this core's private
/// caches to the shared last-level cache (CLDEMOTE), so that the next core
/// to read it finds it there rather than snooping it out of ours. A hint:
/// it never faults and never changes memory, and it is a NOP on CPUs
/// without it (its encoding, `0F 1C /0`, is in the reserved-NOP space).
#[inline(always)]
pub(crate) fn demote(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: CLDEMOTE does not access memory architecturally and never
    // faults; on CPUs without it the same bytes are a NOP. It touches no
    // register but the address operand, no flags and no stack.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1c, 0x00", in("rax") ptr, options(nostack, preserves_flags))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Asks the CPU to fetch the cache line at `ptr` for writing (PREFETCHW),
/// so that a later store does not wait for other cores to give it up. A
/// hint: it never faults and never changes memory.
#[inline(always)]
pub(crate) fn prefetch_write(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch instructions do not access memory architecturally;
    // any address, valid or not, is allowed.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_ET0 }>(ptr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Whether this CPU implements CLDEMOTE (CPUID leaf 7, sub-leaf 0, ECX
/// bit 25): Intel since Tremont and Sapphire Rapids; no AMD CPU so far.
/// Asked once per process.
pub(crate) fn has_cldemote() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0: not asked yet, 1: no, 2: yes. Relaxed: every thread computes
        // the same answer.
        static ANSWER: AtomicU8 = AtomicU8::new(0);
        match ANSWER.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                // Leaf 7 is asked only where leaf 0 says it exists.
                use core::arch::x86_64::{__cpuid, __cpuid_count};
                let yes = __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ecx & (1 << 25) != 0;
                ANSWER.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}
