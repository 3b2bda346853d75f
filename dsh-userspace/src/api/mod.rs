//! The agent's socket protocol: one JSON request line from the CLI, JSON
//! reply lines back. Shared by the agent (server) and the CLI (client).
pub mod client;
pub mod filter;
pub mod fleet;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{entry::LogEntry, row::ContainerRow};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/dsh";

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("dsh.sock")
}

pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.redb")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Ps {
        all: bool,
    },
    Log {
        container: Option<String>,
        all: bool,
        since_s: Option<i64>,
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
    /// Container key → current name (the agent's own use, for log lines
    /// written before the runtime had named the container).
    Names(std::collections::HashMap<String, String>),
    Error(String),
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
    /// How late the last sampling tick ran, and how long it took.
    pub sample_lag_ms: f64,
    pub sample_duration_ms: f64,
    pub programs: Vec<ProgramStatus>,
    pub channels: Vec<ChannelStatus>,
    pub maps: Vec<MapFill>,
    pub undecodable_events: u64,
    pub journal_path: String,
    pub journal_bytes: u64,
    pub journal_entries: u64,
    pub journal_errors: u64,
    pub runtimes: Vec<RuntimeStatus>,
    /// The agent's `--node-name`.
    #[serde(default)]
    pub node: String,
    /// Where it serves Prometheus metrics (the bound address), if it does.
    #[serde(default)]
    pub metrics_addr: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    pub attached: bool,
    pub runs_per_s: f64,
    pub avg_ns_per_run: f64,
    pub runs_total: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelStatus {
    pub name: String,
    pub events: u64,
    pub lost: u64,
    pub events_per_s: f64,
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
