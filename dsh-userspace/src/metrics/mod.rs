//! Prometheus metrics: a read-only view of the model.
//!
//! The agent publishes a [`snapshot::Snapshot`] (plain data) after every
//! sampling tick; a scrape encodes the latest one on a blocking thread, so a
//! scrape never holds up sampling and sampling never waits for a scraper.
//! Sample names are defined once, in [`names`], for the exposition and for
//! the fleet view that reads them back from Prometheus.
pub mod exposition;
pub mod names;
pub mod server;
pub mod snapshot;

pub use snapshot::{AgentFigures, ContainerFigures, Snapshot};

#[cfg(test)]
mod tests;
