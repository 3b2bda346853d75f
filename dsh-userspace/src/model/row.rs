//! The health table's rows: one plain snapshot shared by `dsh ps`, `--json` and `dsh top`.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{
    container::Container,
    health::{Health, HealthReason, HealthRules},
    state::State,
    syscalls::SyscallAccounting,
};
use crate::cgroup::{netns::NetCounters, stats::Pressure};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerRow {
    pub id: String,
    /// The row's stable key (its journal key): the first incarnation's
    /// runtime id, which `runtime_id` (the current one's) may no longer be.
    #[serde(default)]
    pub key: String,
    pub runtime: String,
    pub runtime_id: String,
    pub cgroup: String,
    pub pod_uid: Option<String>,
    /// Kubernetes namespace, pod and container names (None outside it).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub pod: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
    pub image: Option<String>,
    pub endpoint: String,
    pub state: State,
    /// Host pid of the container's main (first user) process, while it runs.
    pub main_pid: Option<u32>,
    pub rtime_s: Option<i64>,
    pub btime_s: Option<f64>,
    pub cpu_used_cores: f64,
    pub cpu_limit_cores: Option<f64>,
    /// The working set (charged usage less inactive page cache): `mem(u)`.
    pub mem_used_bytes: u64,
    pub mem_limit_bytes: Option<u64>,
    /// What the kernel charges against the limit, and its parts.
    #[serde(default)]
    pub mem_usage_bytes: u64,
    #[serde(default)]
    pub mem_working_set_bytes: u64,
    #[serde(default)]
    pub mem_anon_bytes: u64,
    #[serde(default)]
    pub mem_file_bytes: u64,
    #[serde(default)]
    pub mem_kernel_bytes: u64,
    pub restart: u64,
    /// Shown by plain `dsh ps`: live, about to be started again by its
    /// runtime, or dead UnHealthy within the unhealthy window (a crash loop
    /// between two starts, a fresh OOM kill).
    #[serde(default)]
    pub listed: bool,
    pub health: String,
    pub health_reasons: Vec<HealthReason>,
    pub oom_kills: u64,
    pub core_dumps: u64,
    /// Processes that ended in this container since dsh first saw it.
    pub process_exits: u64,
    pub pids: Option<u64>,
    /// pids.max (None: unlimited, or no pids controller).
    #[serde(default)]
    pub pids_max: Option<u64>,
    /// Forks refused at pids.max, as the cgroup counted them.
    #[serde(default)]
    pub pids_refused_total: u64,
    /// EMFILE/ENFILE returns counted (sampled mode: an estimate).
    #[serde(default)]
    pub fd_limit_errors_total: u64,
    /// Times the cgroup went over memory.high (v2), and times it reached
    /// its limit (v2 memory.events `max`, v1 `memory.failcnt`).
    #[serde(default)]
    pub mem_high_events_total: u64,
    #[serde(default)]
    pub mem_max_events_total: u64,
    /// Pressure stall information: shares over 10 s and 60 s, cumulative
    /// stall time (None without PSI).
    #[serde(default)]
    pub pressure: Option<Pressure>,
    pub syscalls_per_s: f64,
    pub syscall_errors_per_s: f64,
    /// How syscalls are counted: `exact`, `sampled` or `off`.
    #[serde(default)]
    pub syscall_accounting: SyscallAccounting,
    /// The syscall rates are estimates from sampling windows.
    #[serde(default)]
    pub syscalls_sampled: bool,
    pub block_read_bytes_per_s: f64,
    pub block_write_bytes_per_s: f64,
    /// Fraction of CFS periods throttled over the last minute.
    pub cpu_throttled_ratio: Option<f64>,
    /// Network namespace receive/transmit rates (None when shared, below).
    #[serde(default)]
    pub net_rx_bytes_per_s: Option<f64>,
    #[serde(default)]
    pub net_tx_bytes_per_s: Option<f64>,
    /// Cumulative counters of the container's network namespace.
    #[serde(default)]
    pub net: Option<NetCounters>,
    /// The namespace's figures are reported under this container (or are
    /// the `host`'s), so they are not counted twice.
    #[serde(default)]
    pub net_shared_with: Option<String>,
    /// Addresses of its network namespace beyond the few the agent keeps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub addrs_not_kept: u64,
    /// TCP counters and rates of its network namespace, for the container
    /// that reports the namespace, while it runs.
    #[serde(default)]
    pub tcp: Option<super::tcp::TcpRow>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ContainerRow {
    /// `syscalls`: how the agent counts syscalls (whether rates are estimates).
    pub fn of(
        c: &Container,
        rules: &HealthRules,
        syscalls: SyscallAccounting,
        now: Timestamp,
    ) -> Self {
        let (health, health_reasons) = rules.evaluate(c, now);
        let listed = listed(c, health, rules, now);
        let stats = c.sample.stats.as_ref();
        let live = c.state == State::Running;
        let kube = c.meta.as_ref().and_then(|m| m.kube.as_ref());
        Self {
            id: c.display_id().to_owned(),
            key: c.key().to_owned(),
            runtime: c.identity.runtime.as_str().to_owned(),
            runtime_id: c.identity.runtime_id.clone(),
            cgroup: c.identity.cgroup.clone(),
            pod_uid: c.identity.pod_uid.clone(),
            namespace: kube.map(|k| k.namespace.clone()),
            pod: kube.map(|k| k.pod.clone()),
            container: kube.map(|k| k.container.clone()),
            image: c.meta.as_ref().map(|m| m.image.clone()),
            endpoint: endpoint(c),
            state: c.state,
            main_pid: c.main_tgid.filter(|_| live),
            rtime_s: c
                .started_at
                .filter(|_| live)
                .map(|s| now.duration_since(s).as_secs().max(0)),
            btime_s: c.btime.map(|d| d.as_secs_f64()),
            cpu_used_cores: if live { c.sample.cpu_used_cores } else { 0.0 },
            cpu_limit_cores: stats.and_then(|s| s.cpu_limit_cores),
            mem_used_bytes: if c.cgroup_id.is_some() {
                stats.map_or(0, |s| s.mem_used_bytes())
            } else {
                0
            },
            mem_limit_bytes: stats.and_then(|s| s.mem_limit_bytes),
            mem_usage_bytes: stats.map_or(0, |s| s.mem_usage_bytes),
            mem_working_set_bytes: stats.map_or(0, |s| s.mem_working_set_bytes()),
            mem_anon_bytes: stats.map_or(0, |s| s.mem_anon_bytes),
            mem_file_bytes: stats.map_or(0, |s| s.mem_file_bytes),
            mem_kernel_bytes: stats.map_or(0, |s| s.mem_kernel_bytes),
            restart: c.restart_count(),
            listed,
            health: health.as_str().to_owned(),
            health_reasons,
            oom_kills: c.oom_kills,
            core_dumps: c.core_dumps,
            process_exits: c.process_exits,
            pids: stats.and_then(|s| s.pids),
            pids_max: stats.and_then(|s| s.pids_max),
            pids_refused_total: stats.map_or(0, |s| s.pids_refused),
            fd_limit_errors_total: c.sample.sick.fd_limit_errors,
            mem_high_events_total: stats.map_or(0, |s| s.mem_high_events),
            mem_max_events_total: stats.map_or(0, |s| s.mem_max_events),
            pressure: stats.and_then(|s| s.pressure).filter(|_| live),
            syscalls_per_s: c.sample.syscalls_per_s,
            syscall_errors_per_s: c.sample.syscall_errors_per_s,
            syscall_accounting: syscalls,
            syscalls_sampled: syscalls == SyscallAccounting::Sampled,
            block_read_bytes_per_s: c.sample.block_read_bytes_per_s,
            block_write_bytes_per_s: c.sample.block_write_bytes_per_s,
            cpu_throttled_ratio: super::health::throttled_ratio(c, now, rules.throttle_window),
            net_rx_bytes_per_s: c.sample.net_rx_bytes_per_s.filter(|_| live),
            net_tx_bytes_per_s: c.sample.net_tx_bytes_per_s.filter(|_| live),
            net: c.sample.net.counters.filter(|_| live),
            net_shared_with: c.sample.net.shared_with.clone().filter(|_| live),
            addrs_not_kept: c.sample.net.addrs_not_kept,
            tcp: super::tcp::TcpRow::of(&c.sample.tcp, &rules.tcp, now).filter(|_| live),
        }
    }
}

/// Whether plain `dsh ps` lists a container: `dsh ps | grep UnHealthy` must
/// find a crash loop between two of its starts (Docker's back-off leaves it
/// dead for seconds at a time) and a container OOM-killed a minute ago, so
/// a dead container stays listed while its runtime is about to start it
/// again, or while it is UnHealthy and died within the unhealthy window.
fn listed(c: &Container, health: Health, rules: &HealthRules, now: Timestamp) -> bool {
    c.state.is_live()
        || c.meta.as_ref().is_some_and(|m| m.restarting)
        || (health == Health::UnHealthy
            && now.duration_since(c.last_change) <= rules.unhealthy_window)
}

/// `172.17.0.2:{80,443}`: the container's address and its listening TCP
/// ports (kernel listen events, sockets listening in a namespace of its
/// own, and the runtime's published ports); `-` when it listens on nothing.
/// The address is the runtime's, else the one its own network namespace
/// holds, else the one it listens on.
pub fn endpoint(c: &Container) -> String {
    let mut ports: Vec<u16> = c.listening.keys().copied().collect();
    if let Some(m) = &c.meta {
        ports.extend(&m.ports);
    }
    ports.extend(&c.sample.net.listen_ports);
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return "-".to_owned();
    }
    let addr = c
        .meta
        .as_ref()
        .and_then(|m| m.ip.clone())
        .or_else(|| c.sample.net.addrs.first().cloned())
        .or_else(|| c.listening.values().next().cloned())
        .unwrap_or_else(|| "*".to_owned());
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{addr}:{{{}}}", list.join(","))
}
