//! One module per subcommand (or per family of them): its `clap` arguments
//! and the code that runs it.

use clap::ValueEnum;
use shmq::Start;

pub(crate) mod consume;
pub(crate) mod create;
pub(crate) mod dlq;
pub(crate) mod group;
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
