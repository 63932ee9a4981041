//! `shmq rm`: remove a queue's file.

use shmq::{Options, Queue};

use crate::CliResult;

/// `shmq rm` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// Remove it even while consumers are attached (they go on reading the
    /// removed file and never see a queue made again under its name).
    /// Without it, rm refuses and names their pids.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args { name, force } = args;
    if force {
        Queue::remove_forced(&name, &opts)?;
    } else {
        Queue::remove(&name, &opts)?;
    }
    eprintln!("removed {name}");
    Ok(())
}
