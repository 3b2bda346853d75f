//! dsh: per-container tracing and health, fed by the kernel.
//!
//! Events flow one way: kernel → `probe` → `agent` (joining `cgroup` files
//! and `runtime` metadata) → `model` → `journal` → `api` → `render`;
//! `metrics` is a read-only view of `model` (Prometheus exposition);
//! `untrusted` is a leaf every layer may use: the gate between strings
//! containers control and the terminal.
pub mod agent;
pub mod api;
pub mod cgroup;
pub mod clock;
pub mod enter;
pub mod fds;
pub mod journal;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod model;
pub mod probe;
pub mod render;
pub mod report;
pub mod runtime;
pub mod signal;
pub mod trace;
pub mod units;
pub mod untrusted;

#[cfg(test)]
mod fuzz_seeds;
