//! Integration tests: they load dsh's real programs into the running kernel,
//! run real processes in real cgroups, and assert on what the kernel
//! reported for those cgroups and no other. Root only; run them through
//! `cargo xtask test` (one test thread: they share the loaded programs).
mod agentkit;
mod common;
mod promkit;

mod agent_containerd;
mod agent_cost;
mod agent_deploy;
mod agent_docker;
mod agent_exec;
mod agent_floods;
mod agent_hostile;
mod agent_identity;
mod agent_journal;
mod agent_keeps;
mod agent_listed;
mod agent_metrics;
mod agent_metrics_load;
mod agent_net_mem;
mod agent_plain;
mod agent_podman;
mod agent_runtime;
mod agent_runtime_faults;
mod agent_scale;
mod agent_socket;
mod agent_state_dir;
mod agent_syscalls;
mod agent_tcp;
mod agent_top;
mod agent_trace;
mod block;
mod burst;
mod cgroups;
mod cli_docs;
mod fleet_hostile;
mod oom;
mod process;
mod signals;
mod syscalls;
mod tcp_connects;
