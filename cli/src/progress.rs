//! Progress for long runs a person watches (`publish`, `consume --count`,
//! `bench` rounds): an indicatif bar on stderr, drawn only when stderr is a
//! terminal, so pipes, logs and `--json` output never see it.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// A bar, or nothing when nobody is watching.
pub(crate) struct Progress(Option<ProgressBar>);

/// How many items pass between two updates of the bar: a publish is a few
/// hundred nanoseconds and the bar need not be touched for each.
const EVERY: u64 = 256;

impl Progress {
    /// A bar of `total` `unit`s (a spinner with a count and a rate when the
    /// total is unknown), if stderr is a terminal and `wanted`.
    pub(crate) fn new(what: &str, total: Option<u64>, unit: &str, wanted: bool) -> Progress {
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let template = match total {
            Some(_) if unit == "bytes" => {
                "{msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}".to_string()
            }
            Some(_) => format!(
                "{{msg}} [{{bar:24}}] {{human_pos}}/{{human_len}} {unit} {{rate}} eta {{eta}}"
            ),
            None => format!("{{spinner}} {{msg}} {{human_pos}} {unit} {{rate}}"),
        };
        let style = ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> ")
            .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", crate::human::rate(s.per_sec()));
            });
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        }
        .with_style(style);
        bar.set_message(what.to_string());
        Progress(Some(bar))
    }

    /// `done` items so far: the bar moves every [`EVERY`] items.
    pub(crate) fn at(&self, done: u64) {
        if done % EVERY == 0 {
            self.set(done);
        }
    }

    /// Sets the position now (a round finished, a line of bytes read).
    pub(crate) fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    /// Writes `line` to stderr above the bar (or plainly without one).
    pub(crate) fn say(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for Progress {
    /// The bar leaves no trace: the command's own last line follows.
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
