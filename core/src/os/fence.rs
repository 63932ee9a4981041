//! The heavy half of an asymmetric fence: `membarrier(2)`.
//!
//! A producer's commit uses plain stores and a compiler barrier (the
//! *light* fence); the rare side of each of its Dekker pairs (a settle
//! after an abort, a sleeper's re-check) makes the *heavy* fence here:
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, which returns only after every
//! running thread of every process registered for it passed a full memory
//! barrier. So a light fence on one side and a heavy fence on the other
//! order as two full fences would (`protocol/ring/`).
//!
//! A process registers once (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`):
//! its threads' light fences count only then. Where the call is refused
//! (a seccomp filter, a kernel before 4.16) [`usable`] is false and the
//! callers keep the older protocol: the CAS commit and bounded sleeps.

use rustix::thread::{MembarrierCommand, membarrier};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when a heavy fence failed after registration worked (ENOMEM, a
/// seccomp filter installed since): from then on this process is treated
/// as one that cannot fence.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether this process can make the heavy fence: registered, one fence
/// made, and none refused since. Registration is tried once per process.
pub(crate) fn usable() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
            && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    }) && !REFUSED.load(Ordering::Relaxed)
}

/// The heavy fence: every running thread of every registered process
/// passes a full barrier before this returns. False in a process that
/// cannot make it ([`usable`]); a refusal is remembered. The caller's own
/// SeqCst fence is made either way.
pub(crate) fn heavy() -> bool {
    let made = usable() && membarrier(MembarrierCommand::GlobalExpedited).is_ok();
    if !made {
        REFUSED.store(true, Ordering::Relaxed);
    }
    std::sync::atomic::fence(Ordering::SeqCst);
    made
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_host_can_make_the_heavy_fence() {
        // The CI hosts and containers we support allow membarrier(2); a
        // host that does not runs the CAS commit (tested with a seccomp
        // filter in tests/tests/fenceless.rs).
        assert!(super::usable());
        assert!(super::heavy());
    }
}
