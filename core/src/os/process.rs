//! Process identity and liveness: a pid with its start time names one
//! process for the life of the machine.

/// This process's id.
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), or 0 if it cannot be read. With the pid it names one
/// process for the life of the machine: pids are reused, start times of
/// one pid are not.
pub(crate) fn start_time(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses itself: parse from the last ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    // After ')' come fields 3, 4, ...; start time is field 22.
    rest.split_whitespace()
        .nth(22 - 3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Whether process `pid` is alive. `start_time`, when not 0, must match too,
/// so that a reused pid is not taken for the old process.
pub(crate) fn alive(pid: u32, start_time: u64) -> bool {
    if pid == 0 {
        return false;
    }
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => {}
        // EPERM: it exists but belongs to someone else.
        Err(e) if e == rustix::io::Errno::PERM => {}
        Err(_) => return false,
    }
    // A zombie (exited, not yet reaped by its parent) still answers
    // kill(2) but will never write again.
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if matches!(state, Some("Z" | "X")) {
            return false;
        }
    }
    if start_time == 0 {
        return true;
    }
    let now = self::start_time(pid);
    // 0: it exited between the two checks, or /proc is unreadable; in the
    // latter case trust kill(2).
    now == start_time || (now == 0 && std::fs::metadata("/proc/self").is_err())
}

/// This process's effective user id.
pub(crate) fn uid() -> u32 {
    rustix::process::geteuid().as_raw()
}
