//! Prometheus metrics: a read-only view of the model.
//!
//! The agent publishes a [`Snapshot`] (plain data, built by [`snapshot`])
//! after every sampling tick; the first scrape of a tick encodes it on a
//! blocking thread and the others share those bytes ([`server`]), so a
//! scrape never holds up sampling and sampling never waits for a scraper. The snapshot types, the sample
//! names and the encoder live in the `dsh-metrics` crate.
pub mod server;
pub mod snapshot;
mod write_deadline;

pub use dsh_metrics::{AgentFigures, ContainerFigures, SickFigures, Snapshot, exposition, names};
