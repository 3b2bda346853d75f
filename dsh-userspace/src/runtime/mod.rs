//! Container runtimes: names, images, ports and restart counts for the
//! containers discovered from cgroups. Each runtime is one file feeding the
//! agent `RuntimeUpdate`s; the model does not care which runtime spoke.
pub mod docker;

use serde::{Deserialize, Serialize};

/// What the container runtime says about a container (names, ports, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeMeta {
    pub name: String,
    pub image: String,
    /// The container's address on its network, if it has its own.
    pub ip: Option<String>,
    /// Container-side TCP ports the runtime publishes.
    pub ports: Vec<u16>,
    /// The runtime's own restart count.
    pub restart_count: u64,
}

#[derive(Debug)]
pub enum RuntimeUpdate {
    Connected {
        runtime: &'static str,
        version: String,
    },
    /// The runtime is unreachable; its metadata is no longer trusted.
    Disconnected {
        runtime: &'static str,
        error: String,
    },
    /// Metadata for one container (by runtime id); None: the runtime has no
    /// such container any more.
    Container {
        id: String,
        meta: Option<RuntimeMeta>,
    },
}
