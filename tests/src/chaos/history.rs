//! The history a chaos run is checked from: each client process appends
//! what it is about to do and what came of it to a file of its own, one
//! line per event, so that the record survives the process's SIGKILL.
//!
//! A line is `CHECK\tT_NS\tKIND\tFIELD...\n`, written with one `write(2)`
//! on a file opened with `O_APPEND`: a kill can cut off at most the line
//! being written, and `CHECK` (FNV-1a of the rest of the line) tells a
//! torn last line from a whole one. `T_NS` is `CLOCK_MONOTONIC`, one clock
//! for every process of the host, so that events of different processes
//! can be put in real-time order.
//!
//! An operation is an *invoke* line written before the call and a
//! *completion* line after it; an invoke with no completion in a file
//! whose process died is *in doubt*: it may or may not have taken effect.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// FNV-1a, 64 bits: the line check and the payload digest.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `CLOCK_MONOTONIC` in nanoseconds.
pub fn now_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; CLOCK_MONOTONIC always
    // exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// One client's history file, opened for appending.
pub struct Log {
    file: File,
}

impl Log {
    /// Creates (or appends to) `path`.
    pub fn open(path: &Path) -> std::io::Result<Log> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Log { file })
    }

    /// Appends one event: `kind` and its fields, stamped with the time.
    /// A history that cannot be written makes the run meaningless: it
    /// panics (the runner reports the client's exit).
    pub fn event(&mut self, kind: &str, fields: &[&dyn std::fmt::Display]) {
        let mut body = format!("{}\t{kind}", now_ns());
        for f in fields {
            body.push('\t');
            body.push_str(&f.to_string());
        }
        let line = format!("{:016x}\t{body}\n", fnv(body.as_bytes()));
        // One write(2) of the whole line: O_APPEND puts it at the end in
        // one piece, and a kill leaves either all of it or a torn tail.
        let n = self
            .file
            .write(line.as_bytes())
            .expect("writing the chaos history");
        assert_eq!(n, line.len(), "a short write to the chaos history");
    }
}

/// One event read back: its time, and its kind and fields as written
/// (one string, split when asked: a long run's history is tens of
/// millions of events).
#[derive(Clone, Debug)]
pub struct Event {
    /// Its `CLOCK_MONOTONIC` time.
    pub t: u64,
    body: Box<str>,
}

impl Event {
    /// Its kind.
    pub fn kind(&self) -> &str {
        self.body.split('\t').next().unwrap_or("")
    }
    /// Field `i`, or "" past the end.
    pub fn f(&self, i: usize) -> &str {
        self.body.split('\t').nth(i + 1).unwrap_or("")
    }
    /// Field `i` as a number (0 if it is not one).
    pub fn n(&self, i: usize) -> u64 {
        self.f(i).parse().unwrap_or(0)
    }
    /// Fields `i` and on, joined by spaces.
    pub fn from(&self, i: usize) -> String {
        self.body
            .split('\t')
            .skip(i + 1)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One history file read back: its events, and whether its last line was
/// torn (a kill in the middle of a write).
pub struct Read {
    /// The events of whole lines, in order.
    pub events: Vec<Event>,
    /// A line that failed its check (only the last may, after a kill).
    pub torn: Vec<String>,
}

/// Reads the history file `path`.
pub fn read(path: &Path) -> std::io::Result<Read> {
    let text = std::fs::read(path)?;
    let mut events = Vec::new();
    let mut torn = Vec::new();
    for raw in text.split(|b| *b == b'\n') {
        if raw.is_empty() {
            continue;
        }
        let line = String::from_utf8_lossy(raw);
        let parsed = line.split_once('\t').and_then(|(check, body)| {
            let ok = u64::from_str_radix(check, 16).ok()? == fnv(body.as_bytes());
            ok.then_some(body)
        });
        let Some(body) = parsed else {
            torn.push(line.into_owned());
            continue;
        };
        let (t, rest) = body.split_once('\t').unwrap_or((body, ""));
        events.push(Event {
            t: t.parse().unwrap_or(0),
            body: rest.into(),
        });
    }
    Ok(Read { events, torn })
}

/// The history files of a run directory (`DIR/history/*.log`), sorted.
pub fn files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("history"))? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "log") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_a_torn_one_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut log = Log::open(&path).unwrap();
        log.event("pi", &[&"1.2", &7]);
        log.event("po", &[&42]);
        drop(log);
        // A kill in the middle of the next line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"0123456789abcdef\t99\tpo\t4").unwrap();
        let r = read(&path).unwrap();
        assert_eq!(r.events.len(), 2);
        assert_eq!((r.events[0].kind(), r.events[0].f(0)), ("pi", "1.2"));
        assert_eq!(r.events[1].n(0), 42);
        assert_eq!(r.torn.len(), 1);
    }
}
