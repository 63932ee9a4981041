//! The heavy half of an asymmetric fence: `membarrier(2)`.
//!
//! A producer's commit uses plain stores and a compiler barrier (the
//! *light* fence); the rare side of each of its Dekker pairs (a settle
//! after an abort, a sleeper's re-check) makes the *heavy* fence here:
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED`, which returns only after every
//! running thread of every process registered for it passed a full memory
//! barrier. So a light fence on one side and a heavy fence on the other
//! order as two full fences would (`protocol/ring.rs`).
//!
//! A process registers once (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`):
//! its threads' light fences count only then. Where the call is refused
//! (a seccomp filter, a kernel before 4.16) [`usable`] is false and the
//! callers keep the older protocol: the CAS commit and bounded sleeps.

use rustix::thread::{MembarrierCommand, membarrier};
use std::sync::OnceLock;

/// Whether this process can make the heavy fence: registered, and one
/// fence made. Asked once per process; the answer is kept.
pub(crate) fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        membarrier(MembarrierCommand::RegisterGlobalExpedited).is_ok()
            && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
    })
}

/// The heavy fence: every running thread of every registered process
/// passes a full barrier before this returns. False (and no fence) in a
/// process that cannot make it ([`usable`]).
pub(crate) fn heavy() -> bool {
    usable() && membarrier(MembarrierCommand::GlobalExpedited).is_ok()
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
