//! Consumer groups: `shmq group-create`, `group-delete`, `groups` and
//! `seek` (with its `--time` parser).

use shmq::{Options, Queue, Seek, Start};

use super::StartArg;
use crate::{CliError, CliResult};

/// `shmq group-create` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct CreateArgs {
    /// Queue name.
    name: String,
    /// Group name: [A-Za-z0-9._-]{1,48}.
    group: String,
    /// Where it starts.
    #[arg(long, value_enum, default_value_t = StartArg::Earliest, conflicts_with = "seq")]
    start: StartArg,
    /// Start at this seq.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    seq: Option<u64>,
}

/// `shmq groups` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Queue name.
    name: String,
}

/// `shmq seek` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct SeekArgs {
    /// Queue name.
    name: String,
    /// Group to move.
    #[arg(long)]
    group: String,
    /// To this seq.
    #[arg(long, group = "to", allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    seq: Option<u64>,
    /// To the first message published at or after this time: Unix
    /// seconds (fractions allowed) or relative, like -30s, -5m, -2h.
    #[arg(long, group = "to", allow_hyphen_values = true)]
    time: Option<String>,
    /// To the oldest retained message.
    #[arg(long, group = "to")]
    earliest: bool,
    /// Past the newest message.
    #[arg(long, group = "to")]
    latest: bool,
}

/// `shmq group-delete` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct DeleteArgs {
    /// Queue name.
    name: String,
    /// Group name.
    group: String,
}

pub(crate) fn create(args: CreateArgs, opts: Options) -> CliResult {
    let CreateArgs {
        name,
        group,
        start,
        seq,
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    let start = seq.map(Start::Seq).unwrap_or(start.into());
    q.create_group(&group, start)?;
    let g = q.groups().into_iter().find(|g| g.name == group);
    eprintln!(
        "created group {group} at seq {}",
        g.map(|g| g.next).unwrap_or_default()
    );
    Ok(())
}

pub(crate) fn list(args: ListArgs, opts: Options) -> CliResult {
    let ListArgs { name } = args;
    let q = Queue::open_with(&name, &opts)?;
    let rows: Vec<Vec<String>> = q
        .groups()
        .into_iter()
        .map(|g| {
            vec![
                g.name,
                g.next.to_string(),
                g.committed.to_string(),
                g.lag.to_string(),
                g.delivered.to_string(),
                g.consumers.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        super::table(
            &[
                "group",
                "next",
                "committed",
                "lag",
                "delivered",
                "consumers"
            ],
            &rows
        )
    );
    Ok(())
}

pub(crate) fn seek(args: SeekArgs, opts: Options) -> CliResult {
    let SeekArgs {
        name,
        group,
        seq,
        time,
        earliest,
        latest,
    } = args;
    let to = if let Some(s) = seq {
        Seek::Seq(s)
    } else if let Some(t) = time {
        Seek::Time(parse_time(&t)?)
    } else if earliest {
        Seek::Earliest
    } else if latest {
        Seek::Latest
    } else {
        return Err(CliError::Other(
            "say where to: --seq N, --time T, --earliest or --latest".into(),
        ));
    };
    let q = Queue::open_with(&name, &opts)?;
    let pos = q.seek_group(&group, to)?;
    eprintln!("group {group} will receive seq {pos} next");
    if let Seek::Seq(asked) = to {
        if pos > asked {
            eprintln!(
                "note: seq {asked} is no longer retained (the oldest is {pos}): without a \
                 journal a group can seek back only within what the ring still holds (see \
                 `shmq stat`, oldest retained)"
            );
        } else if pos < asked {
            eprintln!(
                "note: seq {asked} is not published yet (the next is {pos}): the group \
                 receives from the next message published"
            );
        }
    }
    Ok(())
}

pub(crate) fn delete(args: DeleteArgs, opts: Options) -> CliResult {
    let DeleteArgs { name, group } = args;
    Queue::open_with(&name, &opts)?.delete_group(&group)?;
    eprintln!("deleted group {group}");
    Ok(())
}

/// `--time`: Unix seconds, or relative to now (`-30s`, `-5m`, `-2h`).
fn parse_time(t: &str) -> CliResult<u64> {
    let bad = || {
        CliError::Other(format!(
            "bad --time {t:?}: give Unix seconds or -30s, -5m, -2h"
        ))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_nanos() as u64;
    if let Some(rel) = t.strip_prefix('-') {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: f64 = num.parse().map_err(|_| bad())?;
        let mul = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        return Ok(now.saturating_sub((n * mul * 1e9) as u64));
    }
    let secs: f64 = t.parse().map_err(|_| bad())?;
    if !(0.0..1e11).contains(&secs) {
        return Err(bad());
    }
    Ok((secs * 1e9) as u64)
}
