//! The bottom layer: everything that talks to the kernel or the CPU. Queue
//! and segment files and their modes, the shared mapping, futexes, the heavy fence
//! (`membarrier`), doorbell sockets, process identity and liveness, clocks, cache hints. The only OS-facing `unsafe`
//! in the crate is here; the layers above see safe functions and one raw
//! pointer (a mapping's base). Nothing here imports from the crate.

pub(crate) mod clock;
pub(crate) mod cpu;
pub(crate) mod doorbell;
pub(crate) mod fault;
pub(crate) mod fence;
pub(crate) mod file;
pub(crate) mod futex;
pub(crate) mod liveness;
pub(crate) mod map;
pub(crate) mod process;
