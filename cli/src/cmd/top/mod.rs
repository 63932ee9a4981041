//! `shmq top`: a live view of the queues in a directory (or the ones
//! named), refreshed every second: per queue and per group the publish
//! and delivery rates, depth and lag with their recent history, in-flight,
//! redeliveries, the DLQ and the spill. Keys select a queue, change the
//! order and quit. It fits an 80×24 terminal, over SSH too.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use shmq::Options;

use crate::{CliError, CliResult};

mod model;
mod view;

/// `shmq top` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queues to show (default: every queue in the directory, as they are
    /// created and removed).
    names: Vec<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value = "1", value_name = "SECONDS")]
    interval: f64,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let interval = crate::secs(args.interval, "--interval")?;
    if interval < Duration::from_millis(100) {
        return Err(CliError::Other(format!(
            "--interval must be at least 0.1 seconds, got {}",
            args.interval
        )));
    }
    if !std::io::stdout().is_terminal() {
        return Err(CliError::Other(
            "shmq top draws on a terminal and stdout is not one; for scripts use \
             `shmq stat --json`, `shmq ls --json` or `shmq exporter`"
                .into(),
        ));
    }
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &args, interval, &opts);
    let restored = ratatui::try_restore();
    result?;
    restored?;
    Ok(())
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    args: &Args,
    interval: Duration,
    opts: &Options,
) -> CliResult {
    let dir = opts.get_dir().display().to_string();
    let mut model = model::Model::new();
    let mut scan_error = None;
    let mut next_refresh = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_refresh {
            let entries = if args.names.is_empty() {
                super::ls::scan(opts)
            } else {
                Ok(args
                    .names
                    .iter()
                    .map(|n| super::ls::open(n.clone(), opts))
                    .collect())
            };
            match entries {
                Ok(entries) => {
                    model.refresh(entries, now);
                    scan_error = None;
                }
                Err(e) => scan_error = Some(e.to_string()),
            }
            next_refresh = now + interval;
        }
        let cx = view::Context {
            dir: &dir,
            interval: args.interval,
            scan_error: scan_error.as_deref(),
        };
        terminal.draw(|f| view::draw(f, &model, &cx))?;
        // Keys until the next refresh; a resize redraws at once.
        let wait = next_refresh.saturating_duration_since(Instant::now());
        if !event::poll(wait)? {
            continue;
        }
        match event::read()? {
            Event::Key(k) if k.kind != KeyEventKind::Release => match k.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok(());
                }
                KeyCode::Up | KeyCode::Char('k') => model.move_selection(-1),
                KeyCode::Down | KeyCode::Char('j') => model.move_selection(1),
                KeyCode::Char('s') => model.cycle_sort(),
                _ => {}
            },
            _ => {}
        }
    }
}
