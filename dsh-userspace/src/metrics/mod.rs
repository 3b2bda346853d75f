//! Prometheus metrics: a read-only view of the model.
//!
//! The agent publishes a [`Snapshot`] (plain data, built by [`snapshot`])
//! after every sampling tick; a scrape encodes the latest one on a
//! blocking thread ([`server`]), so a scrape never holds up sampling and
//! sampling never waits for a scraper. The snapshot types, the sample
//! names and the encoder live in the `dsh-metrics` crate.
pub mod server;
pub mod snapshot;

pub use dsh_metrics::{AgentFigures, ContainerFigures, Snapshot, exposition, names};
