//! The chaos harness's shared parts (issue #35): the history its clients
//! write ([`history`]), the payloads they publish ([`payload`]) and the
//! checker that reads the history back against shmq's guarantees
//! ([`check`]). The runner and the clients are `src/bin/chaos/`;
//! `docs/reliability.md` says how to run it and what it found.

pub mod check;
pub mod history;
pub mod payload;
