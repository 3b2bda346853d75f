//! dsh: per-container tracing and health, fed by the kernel.
//!
//! Events flow one way: kernel → `probe` → agent → CLI.
pub mod clock;
pub mod probe;
