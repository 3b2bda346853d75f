//! The main object: every program that loads from 5.8. One module per
//! concern; all share `maps`, `kernel` and `failures`. The cgroup-storage
//! syscall counters are a second object (`src/cgrp_storage.rs`).
mod block;
mod cgroup;
mod churn;
mod events;
mod failures;
pub mod kernel;
mod maps;
mod net;
mod oom;
mod runtime;
mod sched;
mod signal;
mod syscall_start;
mod syscalls;
mod tcp;
mod tcp_sock;
mod trace;
mod wakeup;
