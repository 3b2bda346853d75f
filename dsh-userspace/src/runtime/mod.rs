//! Container runtimes: names, images, ports and restart counts for the
//! containers discovered from cgroups. Each runtime is one file feeding the
//! agent `RuntimeUpdate`s; the model does not care which runtime spoke.
pub mod docker;

use crate::model::container::RuntimeMeta;

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
