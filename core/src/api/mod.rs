//! The public API: [`Queue`](queue::Queue), [`Producer`](producer::Producer),
//! [`Consumer`](consumer::Consumer) and its deliveries, the dead-letter
//! handle. Built on the mapped queue (`open_queue/`); nothing beneath imports
//! from here.

pub(crate) mod cache_hints;
pub(crate) mod consumer;
pub(crate) mod dlq;
pub(crate) mod producer;
pub(crate) mod queue;
pub(crate) mod readiness;
pub(crate) mod room;
pub(crate) mod scheduled;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;
