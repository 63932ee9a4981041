//! What the runner and its clients agree on: the queue's options, and the
//! run's phase (a file the runner writes and the clients read).

use std::path::Path;
use std::time::Duration;

use shmq::{Options, Overflow, Retention};

/// The queue's name.
pub const QUEUE: &str = "chaos";
/// The largest payload the producers publish (a slot holds 256 bytes;
/// one payload in eight is of any length up to this, so records of many
/// slots). At this length the run found four bugs, all fixed: a long
/// record's payload taken for a later lap's state word, the spill's
/// recovery stepping one seq past a long record, the admin lock wedged by
/// a holder killed as it took it, and an ack=manual worker stopped past
/// its lease that found a later lap's long record in its slot and called
/// it corrupt.
pub const MAX_PAYLOAD: usize = 2048;
/// ack=manual's lease: short, so that stops outlast it.
pub const LEASE: Duration = Duration::from_millis(500);
/// How long a claim may stay uncommitted before consumers abort it.
pub const UNBLOCK: Duration = Duration::from_secs(1);
/// Deliveries before a message is dead-lettered.
pub const MAX_DELIVERIES: u32 = 4;
/// The most one ack=auto receive takes (`receive_batch`).
pub const BATCH: u64 = 8;

/// The queue's options: every feature on, and small, so that the ring
/// fills, spills and refills all the time and the DLQ overflows to disk.
pub fn options(dir: &Path) -> Options {
    if dir.join(SCRIBBLED).exists() {
        // The scribble phase's queue: the ring alone.
        return Options::new()
            .dir(dir.join("queue"))
            .slots(256)
            .slot_size(256)
            .overflow(Overflow::Block)
            .lease(LEASE)
            .max_deliveries(MAX_DELIVERIES)
            .dlq_slots(8)
            .unblock_timeout(UNBLOCK);
    }
    Options::new()
        .dir(dir.join("queue"))
        .slots(256)
        .slot_size(256)
        .overflow(Overflow::Spill)
        .spill_dir(dir.join("spill"))
        .spill_segment_size(256 * 1024)
        .spill_fallback(Overflow::Block)
        .lease(LEASE)
        .max_deliveries(MAX_DELIVERIES)
        .dlq_slots(8)
        .dedup_window(1 << 16)
        .unblock_timeout(UNBLOCK)
        .journal(Retention::new(Duration::from_secs(120), 2 << 20))
}

/// Where client `name`'s standard error goes (the runner reads the fault
/// point it died or stopped at there, and shows it when it crashed).
pub fn stderr_file(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("stderr").join(format!("{name}.txt"))
}

/// A file in a run's directory that marks the scribble phase's runs.
pub const SCRIBBLED: &str = "scribbled";

/// Where the run is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Faults, and every client at work.
    Run,
    /// Faults, every client at work but the producers, which pause: the
    /// queue drains back into its ring, so that the windows of the spill's
    /// end (its last refill, its clearing) and of the ring come round.
    Lull,
    /// No faults; producers stop, consumers finish what is there.
    Drain,
    /// Everyone exits.
    Stop,
}

/// The run's phase.
pub fn phase(dir: &Path) -> Phase {
    match std::fs::read_to_string(dir.join("phase")).as_deref() {
        Ok("drain") => Phase::Drain,
        Ok("lull") => Phase::Lull,
        Ok("stop") => Phase::Stop,
        _ => Phase::Run,
    }
}

/// Sets the run's phase (written whole, then renamed into place).
pub fn set_phase(dir: &Path, phase: Phase) {
    let text = match phase {
        Phase::Run => "run",
        Phase::Lull => "lull",
        Phase::Drain => "drain",
        Phase::Stop => "stop",
    };
    let tmp = dir.join("phase.new");
    std::fs::write(&tmp, text).expect("writing the phase");
    std::fs::rename(&tmp, dir.join("phase")).expect("writing the phase");
}
