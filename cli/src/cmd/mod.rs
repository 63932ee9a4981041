//! One module per subcommand (or per family of them): its `clap` arguments
//! and the code that runs it.

use clap::ValueEnum;
use shmq::Start;

pub(crate) mod consume;
pub(crate) mod create;
pub(crate) mod dlq;
pub(crate) mod group;
pub(crate) mod ls;
pub(crate) mod publish;
pub(crate) mod rm;
pub(crate) mod stat;

/// Where a new group starts (`consume --start`, `group-create --start`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StartArg {
    Earliest,
    Latest,
}

impl From<StartArg> for Start {
    fn from(s: StartArg) -> Start {
        match s {
            StartArg::Earliest => Start::Earliest,
            StartArg::Latest => Start::Latest,
        }
    }
}

/// Why the ring is full: no group (the ring keeps every message until a
/// group reads it), or the group furthest behind.
pub(crate) fn why_full(groups: &[shmq::GroupInfo], slots: u64) -> String {
    match groups.iter().max_by_key(|g| g.lag) {
        None => format!(
            "the queue has no consumer group, and without one it keeps every message for the \
             first group to come, so its {} slots are full; create a group (shmq group-create) \
             or consume",
            slots
        ),
        Some(g) => format!(
            "group {:?} holds the ring: it is {} messages behind (committed seq {}){}",
            g.name,
            g.lag,
            g.committed,
            if g.consumer_attached {
                ""
            } else {
                ", with no consumer attached"
            }
        ),
    }
}

/// Rows under a header, every column as wide as its widest cell (so a
/// 48-character group name moves nothing out of line): the first column
/// left-aligned, the others right-aligned, two spaces between.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&width).enumerate() {
            if i == 0 {
                out += &format!("{cell:<w$}");
            } else {
                out += &format!("  {cell:>w$}");
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}
