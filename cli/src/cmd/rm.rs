//! `shmq rm`: remove a queue's file.

use shmq::{Options, Queue};

use crate::CliResult;

/// `shmq rm` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args { name } = args;
    Queue::remove(&name, &opts)?;
    eprintln!("removed {name}");
    Ok(())
}
