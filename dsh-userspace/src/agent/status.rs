//! `dsh status`: what the agent costs and how it is doing, in one report.
use super::Agent;
use crate::{
    api::{FailureCount, MapFill, StatusReport},
    report::chain,
};

impl Agent {
    pub(super) fn status(&self) -> StatusReport {
        let journal = self.journal.status();
        let block_entries = self.probe.block_stats().map_or(0, |m| m.len()) as u64;
        let (churn_entries, main_entries) = self.probe.churn_fill().unwrap_or_default();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            cgroup_layout: format!("{:?}", self.layout.kind).to_lowercase(),
            interval_ms: self.cfg.interval.as_millis() as u64,
            containers: self.model.len(),
            agent_cpu_percent: self.meter.cpu_percent,
            agent_rss_bytes: self.meter.rss_bytes,
            history_bytes: self.history.bytes() as u64,
            sample_lag_ms: self.sample_lag_ms,
            sample_duration_ms: self.sample_duration_ms,
            syscall_accounting: self.cfg.syscalls.accounting,
            syscall_window_ms: self
                .syscalls
                .as_ref()
                .map(|_| self.cfg.syscalls.window.as_millis() as u64),
            syscall_period_ms: self
                .syscalls
                .as_ref()
                .map(|_| self.cfg.syscalls.period.as_millis() as u64),
            syscall_windows: self.syscalls.as_ref().map_or(0, |s| s.windows),
            programs: self.meter.programs.clone(),
            channels: self.meter.channels.clone(),
            syscall_counters: self.probe.syscall_counters().as_str().to_owned(),
            psi: crate::cgroup::stats::host_psi().to_owned(),
            tcp_sockets: self.probe.tcp_sockets_counted().to_owned(),
            maps: vec![
                MapFill {
                    name: "BLOCK_STATS".to_owned(),
                    entries: block_entries,
                    capacity: dsh_ebpf::MAX_BLOCK_CGROUPS as u64,
                },
                MapFill {
                    name: "CHURN".to_owned(),
                    entries: churn_entries as u64,
                    capacity: dsh_ebpf::MAX_CHURN_KEYS as u64,
                },
                MapFill {
                    name: "MAIN_PROCESSES".to_owned(),
                    entries: main_entries as u64,
                    capacity: dsh_ebpf::MAX_MAIN_PROCESSES as u64,
                },
            ]
            .into_iter()
            .chain(
                self.probe
                    .syscall_counter_fill()
                    .map(|(entries, capacity)| MapFill {
                        name: "SYSCALL_COUNTS".to_owned(),
                        entries,
                        capacity,
                    }),
            )
            .collect(),
            kernel_failures: self.kernel_failures(),
            undecodable_events: self.undecodable,
            late_events: self.held.late,
            ordering_margin_ms: self.held.margin_ns() / 1_000_000,
            cgroups_found_by_id: self.on_demand.found,
            journal_path: self.journal.path().display().to_string(),
            journal_bytes: self.journal.size_bytes(),
            journal_entries: self.journal.entry_count(),
            journal_errors: journal.health.write_errors,
            journal,
            runtimes: self.runtimes.statuses(),
            node: self.cfg.node_name.clone(),
            metrics_addr: self.metrics.as_ref().map(|m| m.addr.to_string()),
            fds: Some(self.sampler.budget.status(self.cfg.interval)),
        }
    }

    /// What the programs could not do, by kind; empty when the counters
    /// cannot be read (logged).
    fn kernel_failures(&self) -> Vec<FailureCount> {
        match self.probe.failure_counts() {
            Ok(counts) => dsh_ebpf::failure::NAMES
                .iter()
                .zip(counts)
                .map(|(name, count)| FailureCount {
                    name: (*name).to_owned(),
                    count,
                })
                .collect(),
            Err(e) => {
                log::warn!("reading the kernel failure counters: {}", chain(&e));
                Vec::new()
            }
        }
    }
}
