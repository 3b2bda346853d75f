//! Sample names as they appear in the exposition and in PromQL: base units,
//! `_total` on counters (the product contract's list).

pub const CONTAINER_INFO: &str = "dsh_container_info";
pub const CONTAINER_HEALTH: &str = "dsh_container_health";
pub const CONTAINER_RESTARTS: &str = "dsh_container_restarts_total";
pub const CONTAINER_OOM_KILLS: &str = "dsh_container_oom_kills_total";
pub const CONTAINER_CORE_DUMPS: &str = "dsh_container_core_dumps_total";
pub const CONTAINER_LAST_EXIT_CODE: &str = "dsh_container_last_exit_code";
pub const CONTAINER_START_TIME: &str = "dsh_container_start_time_seconds";
pub const CONTAINER_BOOT: &str = "dsh_container_boot_seconds";
pub const CONTAINER_CPU_USAGE: &str = "dsh_container_cpu_usage_seconds_total";
pub const CONTAINER_CPU_LIMIT: &str = "dsh_container_cpu_limit_cores";
pub const CONTAINER_CPU_THROTTLED_PERIODS: &str = "dsh_container_cpu_throttled_periods_total";
pub const CONTAINER_CPU_PERIODS: &str = "dsh_container_cpu_periods_total";
pub const CONTAINER_MEMORY_USAGE: &str = "dsh_container_memory_usage_bytes";
pub const CONTAINER_MEMORY_WORKING_SET: &str = "dsh_container_memory_working_set_bytes";
pub const CONTAINER_MEMORY_RSS: &str = "dsh_container_memory_rss_bytes";
pub const CONTAINER_MEMORY_CACHE: &str = "dsh_container_memory_cache_bytes";
pub const CONTAINER_MEMORY_LIMIT: &str = "dsh_container_memory_limit_bytes";
pub const CONTAINER_PROCESS_EXECS: &str = "dsh_container_process_execs_total";
pub const CONTAINER_PROCESS_EXITS: &str = "dsh_container_process_exits_total";
pub const CONTAINER_SYSCALLS: &str = "dsh_container_syscalls_total";
pub const CONTAINER_SYSCALL_ERRORS: &str = "dsh_container_syscall_errors_total";
pub const CONTAINER_BLOCK_READ: &str = "dsh_container_block_read_bytes_total";
pub const CONTAINER_BLOCK_WRITE: &str = "dsh_container_block_write_bytes_total";
pub const CONTAINER_NETWORK_RECEIVE: &str = "dsh_container_network_receive_bytes_total";
pub const CONTAINER_NETWORK_TRANSMIT: &str = "dsh_container_network_transmit_bytes_total";
pub const CONTAINER_HEALTH_REASON: &str = "dsh_container_health_reason";
pub const CONTAINER_PIDS_REFUSED: &str = "dsh_container_pids_refused_total";
pub const CONTAINER_FD_LIMIT_ERRORS: &str = "dsh_container_fd_limit_errors_total";
pub const CONTAINER_MEMORY_HIGH_EVENTS: &str = "dsh_container_memory_high_events_total";
pub const CONTAINER_MEMORY_MAX_EVENTS: &str = "dsh_container_memory_max_events_total";
/// PSI `some` (a task waited) per resource, cpu, memory, io.
pub const CONTAINER_PRESSURE: [&str; 3] = [
    "dsh_container_pressure_cpu_seconds_total",
    "dsh_container_pressure_memory_seconds_total",
    "dsh_container_pressure_io_seconds_total",
];
/// PSI `full` (every non-idle task waited).
pub const CONTAINER_PRESSURE_FULL: [&str; 3] = [
    "dsh_container_pressure_cpu_full_seconds_total",
    "dsh_container_pressure_memory_full_seconds_total",
    "dsh_container_pressure_io_full_seconds_total",
];
pub const CONTAINER_TCP_CONNECTS: &str = "dsh_container_tcp_connects_total";
pub const CONTAINER_TCP_SEGMENTS_SENT: &str = "dsh_container_tcp_segments_sent_total";
pub const CONTAINER_TCP_RETRANSMITS: &str = "dsh_container_tcp_retransmits_total";
pub const CONTAINER_TCP_RESETS_SENT: &str = "dsh_container_tcp_resets_sent_total";
pub const CONTAINER_TCP_ESTABLISHED_RESETS: &str = "dsh_container_tcp_established_resets_total";
pub const CONTAINER_TCP_LISTEN_OVERFLOWS: &str = "dsh_container_tcp_listen_overflows_total";
pub const CONTAINER_TCP_LISTEN_DROPS: &str = "dsh_container_tcp_listen_drops_total";
/// The kernel programs' figures of the container's own cgroup (the ones
/// above are its network namespace's, which a pod's containers share).
pub const CONTAINER_TCP_CONNECT_RESULTS: &str = "dsh_container_tcp_connect_results_total";
pub const CONTAINER_TCP_SOCKET_RETRANSMITS: &str = "dsh_container_tcp_socket_retransmits_total";
pub const CONTAINER_TCP_SOCKET_RESETS_SENT: &str = "dsh_container_tcp_socket_resets_sent_total";
pub const CONTAINER_TCP_SOCKET_RESETS_RECEIVED: &str =
    "dsh_container_tcp_socket_resets_received_total";

pub const AGENT_EVENTS: &str = "dsh_agent_events_total";
pub const AGENT_EVENTS_LOST: &str = "dsh_agent_events_lost_total";
pub const BPF_PROGRAM_RUNS: &str = "dsh_bpf_program_runs_total";
pub const BPF_PROGRAM_RUN_TIME: &str = "dsh_bpf_program_run_seconds_total";
pub const AGENT_SYSCALL_ACCOUNTING: &str = "dsh_agent_syscall_accounting";
pub const JOURNAL_WRITE_ERRORS: &str = "dsh_journal_write_errors_total";
pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
pub const PROCESS_MAX_FDS: &str = "process_max_fds";
pub const AGENT_CONTAINER_FDS: &str = "dsh_agent_container_fds";
pub const AGENT_CONTAINERS_READ_SLOWLY: &str = "dsh_agent_containers_read_slowly";
pub const AGENT_CLIENTS_REFUSED: &str = "dsh_agent_clients_refused_total";

/// The labels every container series carries, in this order.
pub const CONTAINER_LABELS: [&str; 5] = ["node", "id", "namespace", "pod", "container"];
