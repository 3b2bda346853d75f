//! Integration tests: they load dsh's real programs into the running kernel,
//! run real processes in real cgroups, and assert on what the kernel
//! reported for those cgroups and no other. Root only; run them through
//! `cargo xtask test` (one test thread: they share the loaded programs), or
//! one at a time with `cargo xtask test --only integration -- NAME`.
//!
//! Where a test goes: "Kernel:" modules drive the programs through one
//! shared `Probe` (no agent); `agent_*` modules start the real `dsh agent`
//! and use its CLI. Each line below says what the module proves and what it
//! needs beyond root; `cargo xtask test` starts all of it (Docker,
//! containerd, podman, Prometheus) and installs tmux and groff. Tests the VM
//! matrix runs are listed in xtask/src/vm/matrix.rs: they need no Docker.
/// Kit: an agent process per test, the CLI against it, Docker containers that clean up.
mod agentkit;
/// Kit: one loaded probe for the whole binary, test cgroups, waiting for events.
mod common;
/// Kit: a real Prometheus on a loopback port (needs Debian's prometheus).
mod promkit;

/// Kubernetes-named containers on the tests' own containerd. Needs containerd.
mod agent_containerd;
/// Churn summed while critical events arrive one by one; the syscall modes. Plain cgroups.
mod agent_cost;
/// deploy/ manifests start a real, confined agent. Needs Docker.
mod agent_deploy;
/// States, health, restarts, endpoints and log lines of real containers. Needs Docker.
mod agent_docker;
/// `dsh exec`, `dsh ssh`, `dsh which` with the container's own powers. Needs Docker and tmux.
mod agent_exec;
/// A signal flood summed up, the exit line kept, the journal bounded. Needs Docker.
mod agent_floods;
/// Hostile names, comms and paths never reach the terminal raw. Plain cgroups.
mod agent_hostile;
/// Identity cannot be forged from a delegated subtree. Needs Docker.
mod agent_identity;
/// The journal under kill -9, the CLI's errors, readers that leave early.
mod agent_journal;
/// The journal keeps crashes through floods, a full disk and damage. Needs Docker.
mod agent_keeps;
/// Plain `dsh ps` lists crash loops and fresh OOM kills. Needs Docker.
mod agent_listed;
/// /metrics scraped by a real Prometheus; the fleet view. Needs Prometheus and Docker.
mod agent_metrics;
/// Scrapes never hold up sampling; stalled clients let go. Hundreds of plain cgroups.
mod agent_metrics_load;
/// Network per namespace and memory as the kernel charges it. Needs Docker.
mod agent_net_mem;
/// The agent with no runtime at all (as in the VMs): exits, OOM, SIGSEGV. Plain cgroups.
mod agent_plain;
/// podman through its Docker-compatible API. Needs podman.
mod agent_podman;
/// Docker going away and back, container churn, memory returning. Needs Docker.
mod agent_runtime;
/// Runtime sockets absent, refusing or hung. Needs containerd.
mod agent_runtime_faults;
/// Hundreds of containers under a 1,024 open-files limit. Plain cgroups (every v1 hierarchy).
mod agent_scale;
/// Running but failing: refused forks, open-files limits, stalls turn Warning and back. Needs Docker.
mod agent_sick;
/// The agent's socket under abuse: idle, excess, oversized, stalled clients.
mod agent_socket;
/// The state dir is root's alone; the CLI talks to no other socket.
mod agent_state_dir;
/// Per-container syscall counters through either kernel layout.
mod agent_syscalls;
/// TCP health: refused connects, retransmits, an overflowing listen queue; a healthy server stays Good. Needs Docker.
mod agent_tcp;
/// `dsh top` in a real terminal and as a snapshot in a pipe. Needs tmux.
mod agent_top;
/// `dsh trace` of a known syscall workload.
mod agent_trace;
/// Kernel: block I/O attributed to the issuing cgroup.
mod block;
/// Kernel: a storm of short-lived processes does not crowd out an OOM kill.
mod burst;
/// Kernel: cgroup mkdir/rmdir and TCP listens; no tracefs needed.
mod cgroups;
/// `dsh completions` and `dsh man` parse and render. Needs groff.
mod cli_docs;
/// The fleet view against a loopback server answering 1 GiB.
mod fleet_hostile;
/// Kernel: OOM kills name the victim and its cgroup.
mod oom;
/// Kernel: exec and exit, codes, signals, core dumps.
mod process;
/// Kernel: signals across cgroups counted when delivered.
mod signals;
/// Kernel: syscall counts, errors and latency per cgroup in each layout.
mod syscalls;
/// Kernel: TCP connects counted per cgroup by result.
mod tcp_connects;
/// Kernel: retransmits, resets and failed connects' destinations per
/// socket's cgroup.
mod tcp_sockets;
