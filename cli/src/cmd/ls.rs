//! `shmq ls`: every queue in a directory, one line each, and the files
//! there that look like queues but are not (or are damaged), with why.

use shmq::{Options, Queue};

use crate::CliResult;

/// `shmq ls` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// What a scan found for one `*.shmq` file.
pub(crate) enum Entry {
    Queue(Box<shmq::Stats>),
    Unusable { name: String, why: String },
}

/// Every `*.shmq` file in the options' directory, by name, opened and
/// read, or with why it could not be: the listing of `ls`, `top` and the
/// exporter.
pub(crate) fn scan(opts: &Options) -> CliResult<Vec<Entry>> {
    let dir = opts.get_dir();
    let read = std::fs::read_dir(&dir)
        .map_err(|e| crate::CliError::Other(format!("listing {}: {e}", dir.display())))?;
    let mut names: Vec<String> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|f| f.strip_suffix(".shmq").map(str::to_string))
        .collect();
    names.sort();
    Ok(names.into_iter().map(|name| open(name, opts)).collect())
}

/// Queue `name` opened and read, or why it could not be.
pub(crate) fn open(name: String, opts: &Options) -> Entry {
    match Queue::open_with(&name, opts) {
        Ok(q) => Entry::Queue(Box::new(q.stats())),
        // Not a queue, damaged, another version, not ours: said, and the
        // listing goes on.
        Err(e) => Entry::Unusable {
            name,
            why: e.to_string(),
        },
    }
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let dir = opts.get_dir();
    let entries = scan(&opts)?;
    if args.json {
        for e in &entries {
            println!("{}", json(e));
        }
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no queues in {}", dir.display());
        return Ok(());
    }
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for e in &entries {
        match e {
            Entry::Queue(s) => rows.push(vec![
                s.name.clone(),
                crate::human::human(s.file_size),
                s.slots.to_string(),
                s.depth.to_string(),
                s.groups.len().to_string(),
                worst_lag(s)
                    .map(|(g, lag)| format!("{lag} ({g})"))
                    .unwrap_or_else(|| "-".into()),
                s.dlq_depth.to_string(),
                s.spill_bytes_on_disk.to_string(),
            ]),
            Entry::Unusable { name, why } => bad.push(format!("{name}: {why}")),
        }
    }
    if !rows.is_empty() {
        print!(
            "{}",
            super::table(
                &[
                    "queue",
                    "size",
                    "slots",
                    "depth",
                    "groups",
                    "worst lag",
                    "dlq",
                    "spill bytes"
                ],
                &rows
            )
        );
    }
    for b in bad {
        println!("not usable: {b}");
    }
    Ok(())
}

/// The group furthest behind, and by how much.
fn worst_lag(s: &shmq::Stats) -> Option<(&str, u64)> {
    s.groups
        .iter()
        .max_by_key(|g| g.lag)
        .map(|g| (g.name.as_str(), g.lag))
}

fn json(e: &Entry) -> serde_json::Value {
    match e {
        Entry::Queue(s) => {
            let worst = worst_lag(s);
            serde_json::json!({
            "name": s.name,
            "path": s.path,
            "file_size": s.file_size,
            "slots": s.slots,
            "depth": s.depth,
            "groups": s.groups.len(),
            "worst_lag": worst.map(|(_, lag)| lag),
            "worst_lag_group": worst.map(|(g, _)| g),
            "dlq_depth": s.dlq_depth,
            "spill_bytes_on_disk": s.spill_bytes_on_disk,
            })
        }
        Entry::Unusable { name, why } => serde_json::json!({
            "name": name,
            "error": why,
        }),
    }
}
