//! Clocks: the monotonic and wall clocks, and the publish path's cheap
//! wall clock extrapolated from the TSC.

/// Monotonic clock in nanoseconds (system-wide, so comparable across
/// processes). A vDSO call, not a system call.
pub(crate) fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME).
pub(crate) fn realtime_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// How far this process's schedule clock runs ahead of the real one (a
/// test moves it to see hours pass in milliseconds).
static SCHEDULE_SKEW_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The clock scheduled messages are due by: CLOCK_REALTIME ns, plus what
/// a test set it ahead by ([`set_schedule_clock_ahead`]).
pub(crate) fn schedule_now_ns() -> u64 {
    realtime_ns().saturating_add(SCHEDULE_SKEW_NS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Sets this process's schedule clock `ns` ahead of the real one (tests
/// only).
pub(crate) fn set_schedule_clock_ahead(ns: u64) {
    SCHEDULE_SKEW_NS.store(ns, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the time-stamp counter ticks at a constant rate in every
/// power state (`constant_tsc` and `nonstop_tsc`), read once per process.
#[cfg(target_arch = "x86_64")]
fn tsc_is_steady() -> bool {
    static STEADY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STEADY.get_or_init(|| {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| {
                s.lines().find(|l| l.starts_with("flags")).is_some_and(|l| {
                    let mut f = l.split_whitespace();
                    let has = |name: &str| l.split_whitespace().any(|w| w == name);
                    f.next().is_some() && has("constant_tsc") && has("nonstop_tsc")
                })
            })
            .unwrap_or(false)
    })
}

/// CLOCK_REALTIME for the publish path. `clock_gettime` costs ~35–40 ns on
/// these VMs, as much as the rest of a publish. Where the TSC is steady,
/// the clock is read for real only every `EXTRAPOLATE_TICKS` (~80 µs at
/// 2.6 GHz) and extrapolated in between with the TSC's rate, which the
/// clock measures itself over every `CALIBRATE_NS` (so a step of the wall
/// clock spoils at most one period's rate, and an implausible rate is not
/// used); until it has one, a reading is reused for the next
/// `REFRESH_TICKS` (under a microsecond at 2 GHz or more). So a timestamp is at most about a microsecond older than
/// its publish (extrapolated: off by the rate's error over 80 µs, a few
/// ns), and never goes backwards for one producer. Extrapolating took the
/// clock off the ping-pong's critical path: 85 → 75 ns one-way p50 (fast
/// mode, docs/performance.md).
#[derive(Debug, Default)]
// Without a TSC (not x86-64) every reading is a real one: only `last_ns`
// is used.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Clock {
    /// TSC and CLOCK_REALTIME of the last real reading.
    base_tsc: u64,
    base_ns: u64,
    /// The real reading the rate is being measured from.
    cal_tsc: u64,
    cal_ns: u64,
    /// Nanoseconds per TSC tick × 2^32; 0 until measured.
    ns_per_tick: u64,
    /// The last value handed out.
    last_ns: u64,
}

impl Clock {
    /// Without a measured rate: reuse a reading for this many ticks.
    #[cfg(target_arch = "x86_64")]
    const REFRESH_TICKS: u64 = 2_000;
    /// With a measured rate: read the clock for real this often.
    #[cfg(target_arch = "x86_64")]
    const EXTRAPOLATE_TICKS: u64 = 200_000;
    /// How long the rate is measured over.
    #[cfg(target_arch = "x86_64")]
    const CALIBRATE_NS: u64 = 10_000_000;
    /// The rates believed (ns per tick × 2^32): a TSC of 0.5 to 10 GHz.
    #[cfg(target_arch = "x86_64")]
    const PLAUSIBLE: std::ops::RangeInclusive<u64> = (1 << 32) / 10..=2 << 32;

    /// Nanoseconds since the Unix epoch, at most ~1 µs stale.
    #[inline]
    pub(crate) fn now_ns(&mut self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if tsc_is_steady() {
            // SAFETY: rdtsc has no preconditions on x86_64; it reads a
            // counter.
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            let dt = tsc.wrapping_sub(self.base_tsc);
            if self.ns_per_tick != 0 && dt < Self::EXTRAPOLATE_TICKS {
                let ns = self.base_ns + ((dt as u128 * self.ns_per_tick as u128) >> 32) as u64;
                return self.hand_out(ns);
            }
            if self.ns_per_tick == 0 && dt < Self::REFRESH_TICKS {
                return self.last_ns;
            }
            return self.read(tsc);
        }
        let ns = realtime_ns();
        self.hand_out(ns)
    }

    /// A real reading at TSC `tsc`; the rate is measured again once the
    /// reading it is measured from is `CALIBRATE_NS` old.
    #[cfg(target_arch = "x86_64")]
    #[cold]
    fn read(&mut self, tsc: u64) -> u64 {
        let (mut tsc, mut ns) = (tsc, realtime_ns());
        for _ in 0..3 {
            // SAFETY: as in `now_ns`.
            let after = unsafe { core::arch::x86_64::_rdtsc() };
            if after.wrapping_sub(tsc) <= Self::REFRESH_TICKS {
                break;
            }
            // Preempted between the two readings (seen on a busy VM): the
            // pair would put every extrapolation off by the gap. Again.
            (tsc, ns) = (after, realtime_ns());
        }
        (self.base_tsc, self.base_ns) = (tsc, ns);
        if self.cal_ns == 0 || ns < self.cal_ns {
            // The first reading, or the wall clock went back.
            (self.cal_tsc, self.cal_ns) = (tsc, ns);
        } else if ns - self.cal_ns >= Self::CALIBRATE_NS {
            let ticks = tsc.wrapping_sub(self.cal_tsc).max(1);
            let rate = (((ns - self.cal_ns) as u128) << 32) / ticks as u128;
            let rate = u64::try_from(rate).unwrap_or(u64::MAX);
            self.ns_per_tick = if Self::PLAUSIBLE.contains(&rate) {
                rate
            } else {
                0
            };
            (self.cal_tsc, self.cal_ns) = (tsc, ns);
        }
        self.hand_out(ns)
    }

    /// `ns`, or the last value handed out if that is later.
    #[inline(always)]
    fn hand_out(&mut self, ns: u64) -> u64 {
        let ns = ns.max(self.last_ns);
        self.last_ns = ns;
        ns
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_publish_clock_follows_the_real_one() {
        let mut clock = Clock::default();
        let mut last = 0;
        let start = realtime_ns();
        // Past the calibration, well into the extrapolated readings.
        while realtime_ns() - start < 3 * 10_000_000 {
            let before = realtime_ns();
            let t = clock.now_ns();
            let after = realtime_ns();
            assert!(t >= last, "went back: {t} after {last}");
            // At most ~1 µs stale (the reuse window), and never ahead of
            // the real clock by more than the rate's error could make it.
            assert!(t + 2_000 >= before, "{} ns stale", before - t);
            assert!(t <= after + 2_000, "{} ns ahead", t - after);
            last = t;
        }
        #[cfg(target_arch = "x86_64")]
        if tsc_is_steady() {
            assert_ne!(clock.ns_per_tick, 0, "the TSC rate was never measured");
        }
    }
}
