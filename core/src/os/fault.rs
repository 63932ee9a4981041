//! Named fault points: places inside the library where a test makes the
//! process kill or stop itself, so that the rare windows of a protocol
//! (after a claim and before its commit, inside a spill append, between a
//! commit and the dedup entry's update) are hit on purpose, every run.
//!
//! Built only with the `fault-points` cargo feature (the tests crate turns
//! it on); without it [`point`] is an empty inline function and costs
//! nothing. With it, a point does nothing unless the environment variable
//! `SHMQ_FAULT` names it, read once per process:
//!
//! ```text
//! SHMQ_FAULT=NAME[@N][=ACTION][,NAME[@N][=ACTION]...]
//! ```
//!
//! `N` (default 1) is which hit of the point fires, counted per process;
//! `ACTION` is `kill` (SIGKILL, the default) or `stop` (SIGSTOP: the
//! process stays stopped until someone sends SIGCONT). Before it fires the
//! point writes `shmq fault point NAME` to standard error, so a test can
//! tell that the process died there and not elsewhere. The names are
//! listed in `docs/design.md` ("Fault points").

/// A fault point named `name`: see the module doc.
#[cfg(not(feature = "fault-points"))]
#[inline(always)]
pub(crate) fn point(_name: &'static str) {}

/// A fault point named `name`: see the module doc.
#[cfg(feature = "fault-points")]
pub(crate) fn point(name: &'static str) {
    armed::point(name)
}

#[cfg(feature = "fault-points")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// One armed point: its name, which hit fires, what it does, and the
    /// hits so far.
    struct Armed {
        name: String,
        nth: u64,
        stop: bool,
        hits: AtomicU64,
    }

    fn armed() -> &'static [Armed] {
        static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
        ARMED.get_or_init(|| {
            std::env::var("SHMQ_FAULT")
                .map(|spec| parse(&spec))
                .unwrap_or_default()
        })
    }

    fn parse(spec: &str) -> Vec<Armed> {
        spec.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|one| {
                let (rest, action) = match one.trim().split_once('=') {
                    Some((r, a)) => (r, a),
                    None => (one.trim(), "kill"),
                };
                let (name, nth) = match rest.split_once('@') {
                    Some((n, k)) => (n, k.parse().unwrap_or(1)),
                    None => (rest, 1),
                };
                Armed {
                    name: name.to_string(),
                    nth: nth.max(1),
                    stop: action == "stop",
                    hits: AtomicU64::new(0),
                }
            })
            .collect()
    }

    pub(super) fn point(name: &'static str) {
        for a in armed() {
            if a.name != name {
                continue;
            }
            // Relaxed: a per-process counter; which thread's hit is the
            // n-th does not matter.
            if a.hits.fetch_add(1, Ordering::Relaxed) + 1 != a.nth {
                continue;
            }
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "shmq fault point {name}");
            let me = rustix::process::getpid();
            let sig = if a.stop {
                rustix::process::Signal::STOP
            } else {
                rustix::process::Signal::KILL
            };
            let _ = rustix::process::kill_process(me, sig);
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_spec_names_points_their_hit_and_action() {
            let a = super::parse("spill.append@3=stop, keyed.after_claimed,x@0=kill");
            assert_eq!(a.len(), 3);
            assert_eq!(
                (a[0].name.as_str(), a[0].nth, a[0].stop),
                ("spill.append", 3, true)
            );
            assert_eq!(
                (a[1].name.as_str(), a[1].nth, a[1].stop),
                ("keyed.after_claimed", 1, false)
            );
            assert_eq!((a[2].name.as_str(), a[2].nth, a[2].stop), ("x", 1, false));
        }
    }
}
