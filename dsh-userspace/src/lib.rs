//! dsh: per-container tracing and health, fed by the kernel.
//!
//! Events flow one way: kernel → `probe` → `agent` (joining `cgroup` files
//! and `runtime` metadata) → `model` → `journal` → `api` → `render`;
//! `metrics` is a read-only view of `model` (Prometheus exposition).
pub mod agent;
pub mod api;
pub mod cgroup;
pub mod clock;
pub mod enter;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod probe;
pub mod render;
pub mod runtime;
pub mod trace;
