//! The agent's socket protocol: one JSON request line from the CLI (at most
//! `MAX_REQUEST_BYTES`), JSON reply lines back. Shared by the agent (server)
//! and the CLI (client).
pub mod client;
pub mod filter;
pub mod fleet;
pub mod state_dir;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{entry::LogEntry, row::ContainerRow, syscalls::SyscallAccounting};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/dsh";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("dsh.sock")
}

pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.redb")
}

/// The largest request the agent reads, in bytes (without the newline).
/// Real requests are a few hundred bytes; a longer line is refused unread.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("bad request: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The agent's decoder for one request line (the newline optional).
pub fn decode_request(line: &[u8]) -> Result<Request, RequestError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge);
    }
    Ok(serde_json::from_slice(line)?)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ps {
        all: bool,
    },
    Log {
        container: Option<String>,
        all: bool,
        since_ms: Option<i64>,
        follow: bool,
    },
    Status,
    /// Name → container (for commands that act on one container).
    Resolve {
        name: String,
    },
    /// Per-syscall detail for one container, for `duration_ms`.
    Trace {
        container: String,
        duration_ms: u64,
    },
    /// One container's recent figures (`dsh top`'s detail pane).
    History {
        container: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Rows(Vec<ContainerRow>),
    Status(Box<StatusReport>),
    Entry(Box<LogEntry>),
    /// The end of a non-following log reply.
    End,
    Resolved(Box<ContainerRow>),
    Trace(Box<crate::trace::TraceReport>),
    History(Box<History>),
    /// Container key → current name (the agent's own use, for log lines
    /// written before the runtime had named the container).
    Names(std::collections::HashMap<String, String>),
    /// Before a log's lines: the container the name resolves to now and the
    /// earlier ones that bore it (oldest first), all by row key (the
    /// first incarnation's runtime id).
    Incarnations {
        current: String,
        earlier: Vec<String>,
    },
    /// Something the user should know about the answer (printed on stderr).
    Warning(String),
    Error(String),
}

/// A container's figures over the last minutes, one sample every
/// `interval_ms`, oldest first; the newest was taken at `newest_at_ms` (Unix
/// ms). Every series has the same length. Rates are per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub key: String,
    pub interval_ms: u64,
    pub newest_at_ms: i64,
    /// Limits as last sampled (None: unlimited).
    pub cpu_limit_cores: Option<f64>,
    pub mem_limit_bytes: Option<u64>,
    pub cpu_cores: Vec<f32>,
    pub mem_bytes: Vec<f32>,
    pub net_rx_bytes_per_s: Vec<f32>,
    pub net_tx_bytes_per_s: Vec<f32>,
    pub syscalls_per_s: Vec<f32>,
    /// Failed TCP connects and retransmits per second (the kernel's
    /// counts for the cgroup where it has them, else the namespace's).
    #[serde(default)]
    pub tcp_connect_fails_per_s: Vec<f32>,
    #[serde(default)]
    pub tcp_retransmits_per_s: Vec<f32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub uptime_s: u64,
    pub kernel: String,
    pub cgroup_layout: String,
    pub interval_ms: u64,
    pub containers: usize,
    pub agent_cpu_percent: f64,
    pub agent_rss_bytes: u64,
    /// What the per-container history rings hold (`dsh top`'s sparklines).
    #[serde(default)]
    pub history_bytes: u64,
    /// How late the last sampling tick ran, and how long it took.
    pub sample_lag_ms: f64,
    pub sample_duration_ms: f64,
    /// `dsh agent --syscalls`: exact, sampled or off.
    #[serde(default)]
    pub syscall_accounting: SyscallAccounting,
    /// Sampled mode: the counting programs are attached for this long out
    /// of every period.
    #[serde(default)]
    pub syscall_window_ms: Option<u64>,
    #[serde(default)]
    pub syscall_period_ms: Option<u64>,
    /// Sampling windows closed so far.
    #[serde(default)]
    pub syscall_windows: u64,
    pub programs: Vec<ProgramStatus>,
    pub channels: Vec<ChannelStatus>,
    /// Where per-cgroup syscall counters live: `cgroup-storage` or `hash`.
    #[serde(default)]
    pub syscall_counters: String,
    /// Pressure stall information: `on`, or why not (the kernel has none,
    /// or was booted with psi=0); empty from an agent older than PSI.
    #[serde(default)]
    pub psi: String,
    /// Where retransmits and resets are counted: `per socket's cgroup`, or
    /// why only per network namespace; empty from an older agent.
    #[serde(default)]
    pub tcp_sockets: String,
    pub maps: Vec<MapFill>,
    /// What the kernel programs could not do, by kind (`dsh_ebpf::failure`).
    #[serde(default)]
    pub kernel_failures: Vec<FailureCount>,
    pub undecodable_events: u64,
    /// Events read behind later ones already applied (applied anyway), and
    /// the re-ordering margin now (`agent::reorder`).
    #[serde(default)]
    pub late_events: u64,
    #[serde(default)]
    pub ordering_margin_ms: u64,
    /// Cgroups an event named before their mkdir was read, found by id.
    #[serde(default)]
    pub cgroups_found_by_id: u64,
    pub journal_path: String,
    pub journal_bytes: u64,
    pub journal_entries: u64,
    pub journal_errors: u64,
    /// Classes, budget, and whether the journal can write (pending lines,
    /// last error, since when).
    pub journal: crate::journal::JournalStatus,
    pub runtimes: Vec<RuntimeStatus>,
    /// The agent's `--node-name`.
    #[serde(default)]
    pub node: String,
    /// Where it serves Prometheus metrics (the bound address), if it does.
    #[serde(default)]
    pub metrics_addr: Option<String>,
    /// Its file descriptors: limit, use, and what it reads less often.
    #[serde(default)]
    pub fds: Option<FdStatus>,
}

/// The agent's file descriptors (`agent::budget`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FdStatus {
    pub open: u64,
    pub soft_limit: u64,
    pub hard_limit: u64,
    /// The soft limit it was started with, when it raised it.
    pub raised_from: Option<u64>,
    /// Kept free for clients and everything but container files.
    pub reserve: u64,
    /// What container files may hold, and hold.
    pub container_budget: u64,
    pub held_for_containers: u64,
    pub most_held_by_one: u64,
    pub containers_kept_open: usize,
    /// Over budget: read once per `slow_every_ms`, files opened each time.
    pub containers_read_slowly: usize,
    pub slow_every_ms: u64,
    /// Clients told the agent was out of descriptors, and closed.
    pub clients_refused: u64,
    /// What failed for want of a descriptor, per source.
    pub failures: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    pub attached: bool,
    pub runs_per_s: f64,
    pub avg_ns_per_run: f64,
    pub runs_total: u64,
    /// Time spent in the program since it was loaded, in ns.
    #[serde(default)]
    pub run_time_ns_total: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub name: String,
    pub events: u64,
    pub lost: u64,
    pub events_per_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailureCount {
    pub name: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MapFill {
    pub name: String,
    pub entries: u64,
    pub capacity: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeStatus {
    pub name: String,
    pub connected: bool,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_oversize_is_refused() {
        let req = Request::Log {
            container: Some("web\x1b".into()),
            all: true,
            since_ms: Some(60_000),
            follow: false,
        };
        let mut line = serde_json::to_vec(&req).unwrap();
        line.push(b'\n');
        assert_eq!(decode_request(&line).unwrap(), req);
        let huge = format!(
            r#"{{"op":"resolve","name":"{}"}}"#,
            "x".repeat(MAX_REQUEST_BYTES)
        );
        assert!(matches!(
            decode_request(huge.as_bytes()),
            Err(RequestError::TooLarge)
        ));
        assert!(matches!(
            decode_request(b"{\"op\":\"nope\"}"),
            Err(RequestError::Malformed(_))
        ));
    }

    /// Every request the CLI sends: the `socket_request` fuzz target's seeds.
    #[test]
    fn fuzz_seeds() {
        let requests = [
            Request::Ps { all: true },
            Request::Log {
                container: Some("web".into()),
                all: false,
                since_ms: Some(600_000),
                follow: true,
            },
            Request::Log {
                container: None,
                all: true,
                since_ms: None,
                follow: false,
            },
            Request::Status,
            Request::Resolve {
                name: "/evil\x1b]0;t\x07".into(),
            },
            Request::Trace {
                container: "07c5".into(),
                duration_ms: 5000,
            },
            Request::History {
                container: "web".into(),
            },
        ];
        for (i, req) in requests.iter().enumerate() {
            let mut line = serde_json::to_vec(req).unwrap();
            line.push(b'\n');
            assert_eq!(&decode_request(&line).unwrap(), req);
            crate::fuzz_seeds::seed("socket_request", &format!("request-{i}"), &line);
        }
    }
}
