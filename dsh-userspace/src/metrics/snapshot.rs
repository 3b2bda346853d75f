//! What one scrape shows: plain figures copied out of the model once per
//! sampling tick, so encoding needs nothing the agent holds. Counters
//! restart from zero with a new incarnation's cgroup (Prometheus' `rate`
//! reads that as a counter reset).
use std::collections::HashMap;

use jiff::Timestamp;

use super::{AgentFigures, ContainerFigures, SickFigures, Snapshot};
use crate::cgroup::stats::{CgroupStats, Psi};
use crate::{
    model::{
        Model,
        container::Container,
        health::{Health, HealthReason, HealthRules},
        row,
        state::State,
        syscalls::SyscallAccounting,
    },
    runtime::kube::KubeName,
};

/// `dsh_container_health`'s value: 0 Good, 1 Warning, 2 UnHealthy.
pub fn health_level(h: Health) -> u8 {
    match h {
        Health::Good => 0,
        Health::Warning => 1,
        Health::UnHealthy => 2,
    }
}

/// One container's figures. `syscalls`: how the agent counts them (no
/// syscall series when it does not; estimated totals when it samples).
pub fn figures(
    c: &Container,
    rules: &HealthRules,
    syscalls: SyscallAccounting,
    now: Timestamp,
) -> ContainerFigures {
    let (health, reasons) = rules.evaluate(c, now);
    let id = c.display_id().to_owned();
    // The Kubernetes names as the runtime gives them (empty elsewhere).
    let kube = c.meta.as_ref().and_then(|m| m.kube.as_ref());
    let kube_name = |f: fn(&KubeName) -> &String| kube.map(f).cloned().unwrap_or_default();
    let stats = c.sample.stats.as_ref();
    // Gauges describe the cgroup as it is: none once it is gone.
    let live_stats = stats.filter(|_| c.cgroup_id.is_some());
    let counters = c.sample.prev.as_ref();
    let syscall_counters = counters.filter(|_| syscalls != SyscallAccounting::Off);
    // Network counters while it runs, for the container that reports its
    // namespace (a pod's traffic once).
    let net = c.sample.net.counters.filter(|_| c.state == State::Running);
    ContainerFigures {
        key: c.key().to_owned(),
        namespace: kube_name(|k| &k.namespace),
        pod: kube_name(|k| &k.pod),
        container: kube_name(|k| &k.container),
        runtime: c.identity.runtime.as_str().to_owned(),
        runtime_id: c.identity.runtime_id.clone(),
        image: c.meta.as_ref().map(|m| m.image.clone()).unwrap_or_default(),
        cgroup: c.identity.cgroup.clone(),
        endpoint: row::endpoint(c),
        state: c.state.as_str(),
        health: health.as_str(),
        health_level: health_level(health),
        restarts: c.restart_count(),
        oom_kills: c.oom_kills,
        core_dumps: c.core_dumps,
        last_exit_code: c.last_exit_code,
        start_time_seconds: c.started_at.map(seconds),
        boot_seconds: c.btime.map(|d| d.as_secs_f64()),
        cpu_usage_seconds: stats.map(|s| s.cpu_usage_ns as f64 / 1e9),
        cpu_limit_cores: live_stats.and_then(|s| s.cpu_limit_cores),
        cpu_periods: stats.map(|s| s.cpu_periods),
        cpu_throttled_periods: stats.map(|s| s.cpu_throttled_periods),
        memory_usage_bytes: live_stats.map(|s| {
            if s.mem_usage_bytes > 0 {
                s.mem_usage_bytes
            } else {
                s.mem_working_set_bytes()
            }
        }),
        memory_working_set_bytes: live_stats.map(|s| s.mem_used_bytes()),
        memory_rss_bytes: live_stats.map(|s| s.mem_anon_bytes),
        memory_cache_bytes: live_stats.map(|s| s.mem_file_bytes),
        memory_limit_bytes: live_stats.and_then(|s| s.mem_limit_bytes),
        process_execs: c.process_execs,
        process_exits: c.process_exits,
        syscalls: syscall_counters.map(|c| c.syscalls),
        syscall_errors: syscall_counters.map(|c| c.syscall_errors),
        block_read_bytes: counters.map(|c| c.block_read),
        block_write_bytes: counters.map(|c| c.block_write),
        network_receive_bytes: net.map(|n| n.rx_bytes),
        network_transmit_bytes: net.map(|n| n.tx_bytes),
        sick: sick_figures(
            live_stats,
            c,
            reasons.iter().map(HealthReason::kind).collect(),
        ),
        tcp: c
            .sample
            .tcp
            .last()
            .filter(|_| c.state == State::Running)
            .map(|t| dsh_metrics::TcpFigures {
                connects: t.active_opens,
                connect_failures: t.attempt_fails,
                segments_sent: t.out_segs,
                retransmits: t.retrans_segs,
                resets_sent: t.out_rsts,
                established_resets: t.estab_resets,
                listen_overflows: t.listen_overflows,
                listen_drops: t.listen_drops,
            }),
        tcp_connect_results: c
            .sample
            .tcp
            .last_connects()
            .map(|k| dsh_metrics::ConnectResults {
                ok: k.ok,
                refused: k.refused,
                timed_out: k.timed_out,
                unreachable: k.unreachable,
                reset: k.reset,
                other: k.other_error,
                aborted: k.aborted,
            }),
        tcp_sockets: c
            .sample
            .tcp
            .sockets
            .last()
            .map(|k| dsh_metrics::TcpSocketFigures {
                retransmits: k.retransmits,
                resets_sent: k.resets_sent,
                resets_received: k.resets_received,
            }),
        id,
    }
}

/// Limit and pressure counters while the cgroup lives; the reasons always.
fn sick_figures(
    stats: Option<&CgroupStats>,
    c: &Container,
    health_reasons: Vec<&'static str>,
) -> SickFigures {
    let psi = stats.and_then(|s| s.pressure).unwrap_or_default();
    let each = |f: fn(&Psi) -> f64| [psi.cpu, psi.memory, psi.io].map(|p| p.as_ref().map(f));
    SickFigures {
        pids_refused: stats.filter(|s| s.pids.is_some()).map(|s| s.pids_refused),
        fd_limit_errors: stats.map(|_| c.sample.sick.fd_limit_errors),
        memory_high_events: stats.map(|s| s.mem_high_events),
        memory_max_events: stats.map(|s| s.mem_max_events),
        pressure_some_seconds: each(|p| p.some.total_us as f64 / 1e6),
        pressure_full_seconds: each(|p| p.full.total_us as f64 / 1e6),
        health_reasons,
    }
}

fn seconds(t: Timestamp) -> f64 {
    t.as_nanosecond() as f64 / 1e9
}

/// Every row the model still lists (the exited ones too, until the agent
/// forgets them; pod sandboxes are not rows). A row is one series however
/// many incarnations it has (a kubelet restart continues it). Two rows that
/// show the same id (a name reused after `docker rm`) would give two
/// identical label sets, which Prometheus rejects: the current one is kept
/// (running, else the one that changed last), as name resolution does.
pub fn build(model: &Model, node: &str, agent: AgentFigures, now: Timestamp) -> Snapshot {
    let mut by_id: HashMap<&str, &Container> = HashMap::with_capacity(model.len());
    for c in model.containers().filter(|c| !c.sandbox) {
        let slot = by_id.entry(c.display_id()).or_insert(c);
        let rank = |c: &Container| (c.state.is_live(), c.last_change);
        if rank(c) > rank(slot) {
            *slot = c;
        }
    }
    let mut containers: Vec<ContainerFigures> = by_id
        .into_values()
        .map(|c| figures(c, &model.rules, model.syscall_accounting, now))
        .collect();
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    Snapshot {
        node: node.to_owned(),
        containers,
        agent,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::SignedDuration;

    use super::*;
    use crate::{
        cgroup::{
            CgroupId,
            identity::{Identity, Runtime},
            stats::CgroupStats,
        },
        model::{
            container::{Counters, NetSample},
            syscalls::SyscallWindow,
        },
        runtime::RuntimeMeta,
        signal::{ExitStatus, Signal},
    };

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn identity(runtime: Runtime, id: &str) -> Identity {
        Identity {
            runtime,
            runtime_id: id.to_owned(),
            pod_uid: None,
            cgroup: format!("/docker/{id}"),
        }
    }

    /// A container that booted at t(0), started at t(1) and was sampled.
    fn running(m: &mut Model, id: &str, cg: u64) {
        let ident = identity(Runtime::Docker, id);
        let path = ident.cgroup.clone();
        m.cgroup_created(ident, &path, CgroupId::new(cg), t(0));
        m.exec(CgroupId::new(cg), 100 + cg as u32, "sh", t(1));
        let stats = CgroupStats {
            mem_anon_bytes: 10,
            mem_file_bytes: 5,
            mem_limit_bytes: Some(100),
            cpu_usage_ns: 1_500_000_000,
            cpu_periods: 7,
            cpu_throttled_periods: 2,
            ..Default::default()
        };
        let counters = Counters {
            syscalls: 40,
            syscall_errors: 3,
            block_read: 4096,
            ..Default::default()
        };
        m.record_sample(id, stats, counters, NetSample::default(), t(2));
    }

    fn killed(signal: u32) -> ExitStatus {
        ExitStatus::Killed {
            signal: Signal::from_raw(signal),
            core_dumped: false,
        }
    }

    fn model() -> Model {
        Model::new(HealthRules::default(), SignedDuration::from_hours(1))
    }

    #[test]
    fn figures_come_from_the_model() {
        let mut m = model();
        m.syscall_accounting = SyscallAccounting::Exact;
        running(&mut m, "a1", 11);
        let s = build(&m, "n1", AgentFigures::default(), t(3));
        assert_eq!(s.node, "n1");
        let [c] = &s.containers[..] else {
            panic!("{:?}", s.containers)
        };
        assert_eq!(c.id, "/docker/a1");
        assert_eq!(c.runtime, "docker");
        assert_eq!(c.state, "kContainerRunning");
        assert_eq!(c.health, "Good");
        assert_eq!(c.start_time_seconds, Some(1_800_000_001.0));
        assert_eq!(c.boot_seconds, Some(1.0));
        assert_eq!(c.cpu_usage_seconds, Some(1.5));
        assert_eq!(c.memory_usage_bytes, Some(15));
        assert_eq!(c.memory_rss_bytes, Some(10));
        assert_eq!(c.memory_cache_bytes, Some(5));
        assert_eq!(c.memory_limit_bytes, Some(100));
        assert_eq!(c.cpu_limit_cores, None, "no CPU limit: no series");
        assert_eq!((c.cpu_periods, c.cpu_throttled_periods), (Some(7), Some(2)));
        assert_eq!((c.syscalls, c.syscall_errors), (Some(40), Some(3)));
        assert_eq!(c.block_read_bytes, Some(4096));
        assert_eq!(c.last_exit_code, None);
        assert_eq!((c.process_execs, c.process_exits), (1, 0));
        assert_eq!((c.namespace.as_str(), c.pod.as_str()), ("", ""));
    }

    #[test]
    fn syscall_series_follow_the_accounting() {
        let syscalls = |mode| {
            let mut m = model();
            m.syscall_accounting = mode;
            running(&mut m, "a1", 11);
            m.record_syscall_window(
                "a1",
                SyscallWindow {
                    calls: 100,
                    errors: 10,
                    attached: Duration::from_secs(1),
                    period: Duration::from_secs(10),
                },
            );
            // The next sample takes the estimate in.
            m.record_sample(
                "a1",
                CgroupStats::default(),
                Counters::default(),
                NetSample::default(),
                t(3),
            );
            let c = &build(&m, "n1", AgentFigures::default(), t(4)).containers[0];
            (c.syscalls, c.syscall_errors)
        };
        assert_eq!(
            syscalls(SyscallAccounting::Sampled),
            (Some(1000), Some(100)),
            "estimated totals: the window scaled to its period"
        );
        assert_eq!(
            syscalls(SyscallAccounting::Off),
            (None, None),
            "not counted: no series"
        );
    }

    #[test]
    fn churn_counts_execs_and_exits() {
        let mut m = model();
        running(&mut m, "a1", 11);
        m.exec(CgroupId::new(11), 300, "cat", t(2));
        m.exit(CgroupId::new(11), 300, "cat", ExitStatus::Exited(0), t(2));
        m.record_churn(
            CgroupId::new(11),
            "sed",
            &dsh_ebpf::ChurnCounts {
                execs: 5,
                exits_ok: 4,
                exits_failed: 1,
                ..Default::default()
            },
        );
        let c = &build(&m, "n1", AgentFigures::default(), t(3)).containers[0];
        assert_eq!((c.process_execs, c.process_exits), (7, 6));
    }

    #[test]
    fn exits_set_the_code_and_gauges_leave_with_the_cgroup() {
        let mut m = model();
        running(&mut m, "a1", 11);
        m.exit(CgroupId::new(11), 111, "sh", killed(9), t(4));
        m.cgroup_removed(CgroupId::new(11), t(5));
        let s = build(&m, "n1", AgentFigures::default(), t(6));
        let c = &s.containers[0];
        assert_eq!(c.last_exit_code, Some(137), "128 + SIGKILL");
        assert_eq!(c.state, "kContainerError");
        assert_eq!(c.health, "UnHealthy");
        assert_eq!(c.memory_usage_bytes, None);
        assert_eq!(c.memory_limit_bytes, None);
        assert_eq!(c.cpu_usage_seconds, Some(1.5), "counters stay");
    }

    #[test]
    fn a_reused_name_shows_only_the_current_container() {
        let mut m = model();
        running(&mut m, "old", 11);
        m.exit(CgroupId::new(11), 111, "sh", ExitStatus::Exited(0), t(4));
        m.cgroup_removed(CgroupId::new(11), t(5));
        running(&mut m, "new", 12);
        let meta = |name: &str| RuntimeMeta {
            name: name.to_owned(),
            image: "img".to_owned(),
            ..Default::default()
        };
        m.set_meta("new", Some(meta("web")), t(6));
        m.set_meta("old", Some(meta("web")), t(6));
        let s = build(&m, "n1", AgentFigures::default(), t(6));
        assert_eq!(s.containers.len(), 1, "{:?}", s.containers);
        assert_eq!(s.containers[0].runtime_id, "new");
        assert_eq!(s.containers[0].image, "img");
    }

    #[test]
    fn forgotten_containers_leave_the_snapshot() {
        let mut m = model();
        running(&mut m, "gone", 11);
        running(&mut m, "stays", 12);
        m.exit(CgroupId::new(11), 111, "sh", ExitStatus::Exited(0), t(4));
        m.cgroup_removed(CgroupId::new(11), t(5));
        let ids = |m: &Model, at| -> Vec<String> {
            build(m, "n1", AgentFigures::default(), at)
                .containers
                .into_iter()
                .map(|c| c.runtime_id)
                .collect()
        };
        assert_eq!(
            ids(&m, t(6)),
            ["gone", "stays"],
            "exited, not yet forgotten"
        );
        let later = t(5) + m.forget_after + SignedDuration::from_secs(1);
        m.housekeep(later);
        assert_eq!(ids(&m, later), ["stays"]);
    }

    #[test]
    fn kubernetes_names_label_one_series_across_kubelet_restarts() {
        let mut m = model();
        let uid = "8712f785-1a3e-41ec-a00b-e2dcc77431cb";
        let kube = |n: u64| Identity {
            runtime: Runtime::Kubernetes,
            runtime_id: format!("c{n}"),
            pod_uid: Some(uid.to_owned()),
            cgroup: format!("/kubepods/besteffort/pod{uid}/c{n}"),
        };
        let meta = || {
            let k = KubeName {
                namespace: "shop".into(),
                pod: "web-5d".into(),
                container: "nginx".into(),
                pod_uid: uid.into(),
            };
            RuntimeMeta {
                runtime: "containerd".into(),
                name: k.display(),
                kube: Some(k),
                ..Default::default()
            }
        };
        let start = |m: &mut Model, n: u64, at: i64| {
            let i = kube(n);
            let path = i.cgroup.clone();
            m.set_meta(&i.runtime_id.clone(), Some(meta()), t(at));
            m.cgroup_created(i, &path, CgroupId::new(n), t(at));
            m.exec(CgroupId::new(n), 100 + n as u32, "nginx", t(at + 1));
        };
        start(&mut m, 1, 0);
        m.exit(CgroupId::new(1), 101, "nginx", killed(9), t(3));
        m.cgroup_removed(CgroupId::new(1), t(4));
        // The kubelet: a new container id, same pod and container name.
        start(&mut m, 2, 5);
        let s = build(&m, "n1", AgentFigures::default(), t(7));
        let [c] = &s.containers[..] else {
            panic!("one row, one series: {:?}", s.containers)
        };
        assert_eq!(c.id, "shop/web-5d/nginx");
        assert_eq!(
            (c.namespace.as_str(), c.pod.as_str(), c.container.as_str()),
            ("shop", "web-5d", "nginx")
        );
        assert_eq!((c.key.as_str(), c.runtime_id.as_str()), ("c1", "c2"));
        assert_eq!(c.restarts, 1);
        assert_eq!(c.state, "kContainerRunning");
    }

    #[test]
    fn outside_kubernetes_the_pod_labels_are_empty() {
        let mut m = model();
        running(&mut m, "a1", 11);
        let c = &build(&m, "n1", AgentFigures::default(), t(3)).containers[0];
        assert_eq!(
            (c.namespace.as_str(), c.pod.as_str(), c.container.as_str()),
            ("", "", "")
        );
        assert_eq!(c.key, "a1");
    }
}
