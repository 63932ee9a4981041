//! Progress: a line on stderr every interval (rates, in flight, lag on
//! both sides; on a terminal, one line redrawn in place), and with
//! `--stats-json` the same as one JSON object per line on stdout, for
//! scripts and tests.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// The counters of one bridge direction.
pub struct Stats {
    direction: &'static str,
    json: bool,
    /// stderr is a terminal: redraw one line instead of adding lines.
    live: bool,
    interval: Duration,
    started: Instant,
    last: Instant,
    last_moved: u64,
    /// Messages that reached the other side and were finished on this one.
    pub moved: u64,
    /// Sent and not yet confirmed (to-*), or 0.
    pub in_flight: u64,
    /// Sends the engine refused or lost, sent again.
    pub retried: u64,
    /// Times the bridge waited for room (back-pressure).
    pub paused: u64,
    /// Records shmq took as duplicates of ones it had (from-*).
    pub duplicates: u64,
    /// Records the engine gave up on, put into shmq's DLQ (from-nats).
    pub dead_lettered: u64,
    /// Lag in shmq (to-*: the group's unfinished messages; from-*: the
    /// queue's depth) and in the engine (to-*: records sent and not
    /// confirmed; from-*: records not read yet), when known.
    pub shmq_lag: Option<u64>,
    pub engine_lag: Option<u64>,
}

impl Stats {
    pub fn new(direction: &'static str, json: bool, interval: Duration) -> Stats {
        let now = Instant::now();
        Stats {
            direction,
            json,
            live: std::io::stderr().is_terminal(),
            interval,
            started: now,
            last: now,
            last_moved: 0,
            moved: 0,
            in_flight: 0,
            retried: 0,
            paused: 0,
            duplicates: 0,
            dead_lettered: 0,
            shmq_lag: None,
            engine_lag: None,
        }
    }

    /// Whether a report is due.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Reports now (the caller refreshed the lags).
    pub fn report(&mut self, last: bool) {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64().max(1e-9);
        let rate = (self.moved - self.last_moved) as f64 / secs;
        self.last = now;
        self.last_moved = self.moved;
        let lag = |l: Option<u64>| l.map_or("?".to_string(), |l| l.to_string());
        let text = format!(
            "{}: {} moved ({:.0}/s), {} in flight, shmq lag {}, engine lag {}, {} retried, {} paused, {} duplicates{}{}",
            self.direction,
            self.moved,
            rate,
            self.in_flight,
            lag(self.shmq_lag),
            lag(self.engine_lag),
            self.retried,
            self.paused,
            self.duplicates,
            match self.dead_lettered {
                0 => String::new(),
                n => format!(", {n} given up by the engine into the DLQ"),
            },
            if last { " (stopping)" } else { "" }
        );
        if self.live {
            // A terminal: one status line, redrawn in place (carriage
            // return, erase to the end of the line); the last one stays.
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{text}{}", if last { "\n" } else { "" });
            let _ = err.flush();
        } else {
            eprintln!("{text}");
        }
        if self.json {
            let line = serde_json::json!({
                "direction": self.direction,
                "elapsed_s": self.started.elapsed().as_secs_f64(),
                "moved": self.moved,
                "rate": rate,
                "in_flight": self.in_flight,
                "retried": self.retried,
                "paused": self.paused,
                "duplicates": self.duplicates,
                "dead_lettered": self.dead_lettered,
                "shmq_lag": self.shmq_lag,
                "engine_lag": self.engine_lag,
                "stopping": last,
            });
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}
