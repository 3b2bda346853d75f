//! dsh's Prometheus exposition: the plain figures one scrape shows, the
//! sample names (shared with the fleet view that reads them back), and
//! the OpenMetrics text encoder (the Prometheus project's
//! `prometheus-client`).
//!
//! A crate of its own so that it is optimized in dev builds too (see the
//! workspace `Cargo.toml`): generic encoder code is compiled where it is
//! used, and the agent the tests drive must scrape as fast as users see.
//! It knows nothing of how the figures are collected.
pub mod exposition;
pub mod names;

/// Everything a scrape encodes.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The `node` label of every container series (`--node-name`).
    pub node: String,
    pub containers: Vec<ContainerFigures>,
    pub agent: AgentFigures,
}

/// One container's series. `None` leaves a series out (not sampled yet,
/// no limit, cgroup gone).
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerFigures {
    /// The display id (`dsh ps`'s `id`).
    pub id: String,
    /// The row's stable key (`dsh ps --json`'s `key`): the first
    /// incarnation's runtime id, kept across a kubelet's restarts.
    pub key: String,
    /// Kubernetes names, empty elsewhere.
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub runtime: String,
    pub runtime_id: String,
    pub image: String,
    pub cgroup: String,
    pub endpoint: String,
    pub state: &'static str,
    /// `Good`, `Warning`, `UnHealthy`, and the gauge's 0, 1, 2.
    pub health: &'static str,
    pub health_level: u8,
    pub restarts: u64,
    pub oom_kills: u64,
    pub core_dumps: u64,
    pub last_exit_code: Option<i32>,
    pub start_time_seconds: Option<f64>,
    pub boot_seconds: Option<f64>,
    pub cpu_usage_seconds: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub cpu_periods: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
    /// What the kernel charges (v2 `memory.current`, v1 `usage_in_bytes`).
    pub memory_usage_bytes: Option<u64>,
    /// The charge less inactive page cache: `dsh ps`'s `mem(u)`.
    pub memory_working_set_bytes: Option<u64>,
    pub memory_rss_bytes: Option<u64>,
    pub memory_cache_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// Processes started (exec) and ended in the container, short-lived
    /// churn included.
    pub process_execs: u64,
    pub process_exits: u64,
    /// Absent when the agent does not count syscalls (`--syscalls off`);
    /// estimates when it samples them (see [`AgentFigures::syscall_accounting`]).
    pub syscalls: Option<u64>,
    pub syscall_errors: Option<u64>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    /// The container's network namespace, all interfaces but `lo`; absent
    /// when another container reports the namespace (a pod) or it is the
    /// host's.
    pub network_receive_bytes: Option<u64>,
    pub network_transmit_bytes: Option<u64>,
    /// Limits hit and pressure stalls.
    pub sick: SickFigures,
    /// The namespace's TCP counters (`/proc/PID/net/snmp`, `netstat`);
    /// absent as the network counters are.
    pub tcp: Option<TcpFigures>,
    /// The kernel programs' connects of the container's own cgroup, by
    /// result; absent until it has begun one.
    pub tcp_connect_results: Option<ConnectResults>,
    /// The kernel programs' retransmits and resets of the container's own
    /// sockets; absent where the kernel cannot say a socket's cgroup.
    pub tcp_sockets: Option<TcpSocketFigures>,
}

/// Cumulative connects of a cgroup by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConnectResults {
    pub ok: u64,
    pub refused: u64,
    pub timed_out: u64,
    pub unreachable: u64,
    pub reset: u64,
    pub other: u64,
    /// Closed by the connecting process before an answer.
    pub aborted: u64,
}

/// Cumulative retransmits and resets of a cgroup's sockets.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TcpSocketFigures {
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
}

/// A container's limit and pressure figures, and its health reasons.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SickFigures {
    /// Forks refused at pids.max (pids.events `max`).
    pub pids_refused: Option<u64>,
    /// EMFILE/ENFILE returns counted (estimates when syscalls are sampled).
    pub fd_limit_errors: Option<u64>,
    /// memory.events `high`; `max` (v1 memory.failcnt).
    pub memory_high_events: Option<u64>,
    pub memory_max_events: Option<u64>,
    /// PSI cumulative stall time, `some` and `full`, per resource (cpu,
    /// memory, io), in seconds.
    pub pressure_some_seconds: [Option<f64>; 3],
    pub pressure_full_seconds: [Option<f64>; 3],
    /// Machine names of the health reasons (`pids_refused`, `io_stalled`, ...).
    pub health_reasons: Vec<&'static str>,
}

/// Cumulative TCP counters of a container's network namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TcpFigures {
    /// Connects begun, and those of them that failed.
    pub connects: u64,
    pub connect_failures: u64,
    pub segments_sent: u64,
    pub retransmits: u64,
    pub resets_sent: u64,
    pub established_resets: u64,
    pub listen_overflows: u64,
    pub listen_drops: u64,
}

/// The agent's own series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentFigures {
    /// (channel, events, lost)
    pub channels: Vec<(String, u64, u64)>,
    /// (program, runs, run time in ns)
    pub programs: Vec<(String, u64, u64)>,
    pub journal_write_errors: u64,
    /// How the agent counts syscalls: `exact`, `sampled` or `off`
    /// (`dsh_agent_syscall_accounting{mode}`).
    pub syscall_accounting: &'static str,
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    /// Descriptors the agent holds, and its open-files (soft) limit.
    pub open_fds: u64,
    pub max_fds: u64,
    /// Descriptors held for containers' files (kept open between reads).
    pub container_fds: u64,
    /// Containers over the descriptor budget, read less often.
    pub containers_read_slowly: u64,
    /// Clients the agent turned away for want of a descriptor.
    pub clients_refused: u64,
}

#[cfg(test)]
mod tests;
