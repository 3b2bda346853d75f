//! A [`Snapshot`] in the OpenMetrics text format, written by the Prometheus
//! project's `prometheus-client` crate (escaping, number formatting, `# EOF`).
use std::sync::{Arc, LazyLock};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use crate::{ContainerFigures, Snapshot, names};

/// What a scrape answers with (the type Prometheus negotiates for the
/// OpenMetrics parser).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family: its full sample name, help, type and unit.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    unit: Option<BaseUnit>,
}

#[derive(Clone, Copy)]
enum BaseUnit {
    Seconds,
    Bytes,
    Cores,
}

impl BaseUnit {
    fn as_str(self) -> &'static str {
        self.unit().as_str()
    }

    fn unit(self) -> &'static Unit {
        static SECONDS: Unit = Unit::Seconds;
        static BYTES: Unit = Unit::Bytes;
        static CORES: LazyLock<Unit> = LazyLock::new(|| Unit::Other("cores".to_owned()));
        match self {
            BaseUnit::Seconds => &SECONDS,
            BaseUnit::Bytes => &BYTES,
            BaseUnit::Cores => &CORES,
        }
    }
}

const fn counter(name: &'static str, unit: Option<BaseUnit>, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Counter,
        unit,
    }
}

const fn gauge(name: &'static str, unit: Option<BaseUnit>, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Gauge,
        unit,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    U(u64),
    I(i64),
    F(f64),
}

type Value = fn(&ContainerFigures) -> Option<Num>;

const SECONDS: Option<BaseUnit> = Some(BaseUnit::Seconds);
const BYTES: Option<BaseUnit> = Some(BaseUnit::Bytes);
const CORES: Option<BaseUnit> = Some(BaseUnit::Cores);

/// Every per-container family but `dsh_container_info`, in exposition order.
const CONTAINER: &[(Family, Value)] = &[
    (
        gauge(
            names::CONTAINER_HEALTH,
            None,
            "Health level: 0 Good, 1 Warning, 2 UnHealthy.",
        ),
        |c| Some(Num::U(c.health_level.into())),
    ),
    (
        counter(
            names::CONTAINER_RESTARTS,
            None,
            "Restarts of the container on this host.",
        ),
        |c| Some(Num::U(c.restarts)),
    ),
    (
        counter(
            names::CONTAINER_OOM_KILLS,
            None,
            "Processes of the container killed by the OOM killer.",
        ),
        |c| Some(Num::U(c.oom_kills)),
    ),
    (
        counter(
            names::CONTAINER_CORE_DUMPS,
            None,
            "Processes of the container killed by a core-dumping signal.",
        ),
        |c| Some(Num::U(c.core_dumps)),
    ),
    (
        gauge(
            names::CONTAINER_LAST_EXIT_CODE,
            None,
            "Exit code of the main process's last exit (128 + signal if killed).",
        ),
        |c| c.last_exit_code.map(|v| Num::I(v.into())),
    ),
    (
        gauge(
            names::CONTAINER_START_TIME,
            SECONDS,
            "Unix time of the main process's last (re)start.",
        ),
        |c| c.start_time_seconds.map(Num::F),
    ),
    (
        gauge(
            names::CONTAINER_BOOT,
            SECONDS,
            "How long the last start took: cgroup creation to the first user exec.",
        ),
        |c| c.boot_seconds.map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_CPU_USAGE,
            SECONDS,
            "CPU time used by the container's current cgroup.",
        ),
        |c| c.cpu_usage_seconds.map(Num::F),
    ),
    (
        gauge(
            names::CONTAINER_CPU_LIMIT,
            CORES,
            "CPU limit in cores (CFS quota / period); absent when unlimited.",
        ),
        |c| c.cpu_limit_cores.map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_CPU_THROTTLED_PERIODS,
            None,
            "CFS periods in which the container was throttled.",
        ),
        |c| c.cpu_throttled_periods.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_CPU_PERIODS,
            None,
            "CFS periods in which the container was runnable.",
        ),
        |c| c.cpu_periods.map(Num::U),
    ),
    (
        gauge(
            names::CONTAINER_MEMORY_USAGE,
            BYTES,
            "Memory the kernel charges the container (rss, page cache, kernel memory).",
        ),
        |c| c.memory_usage_bytes.map(Num::U),
    ),
    (
        gauge(
            names::CONTAINER_MEMORY_WORKING_SET,
            BYTES,
            "The charge less inactive page cache, as dsh ps shows it and the kubelet evicts on.",
        ),
        |c| c.memory_working_set_bytes.map(Num::U),
    ),
    (
        gauge(
            names::CONTAINER_MEMORY_RSS,
            BYTES,
            "Anonymous memory (v2 anon, v1 total_rss).",
        ),
        |c| c.memory_rss_bytes.map(Num::U),
    ),
    (
        gauge(
            names::CONTAINER_MEMORY_CACHE,
            BYTES,
            "Page cache (v2 file, v1 total_cache).",
        ),
        |c| c.memory_cache_bytes.map(Num::U),
    ),
    (
        gauge(
            names::CONTAINER_MEMORY_LIMIT,
            BYTES,
            "Memory limit; absent when unlimited.",
        ),
        |c| c.memory_limit_bytes.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_PROCESS_EXECS,
            None,
            "Processes started (exec) in the container, short-lived ones included.",
        ),
        |c| Some(Num::U(c.process_execs)),
    ),
    (
        counter(
            names::CONTAINER_PROCESS_EXITS,
            None,
            "Processes of the container that ended.",
        ),
        |c| Some(Num::U(c.process_exits)),
    ),
    (
        counter(
            names::CONTAINER_SYSCALLS,
            None,
            "System calls made by the container's current cgroup; estimated from sampling windows when dsh_agent_syscall_accounting has mode sampled; absent when off.",
        ),
        |c| c.syscalls.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_SYSCALL_ERRORS,
            None,
            "System calls that returned an error; estimated or absent as dsh_container_syscalls_total.",
        ),
        |c| c.syscall_errors.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_BLOCK_READ,
            BYTES,
            "Bytes read from block devices.",
        ),
        |c| c.block_read_bytes.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_BLOCK_WRITE,
            BYTES,
            "Bytes written to block devices.",
        ),
        |c| c.block_write_bytes.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_NETWORK_RECEIVE,
            BYTES,
            "Bytes received in the container's network namespace (not lo); absent where another container reports it.",
        ),
        |c| c.network_receive_bytes.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_NETWORK_TRANSMIT,
            BYTES,
            "Bytes sent from the container's network namespace (not lo); absent where another container reports it.",
        ),
        |c| c.network_transmit_bytes.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_PIDS_REFUSED,
            None,
            "Forks refused at the cgroup's pids.max (pids.events max).",
        ),
        |c| c.sick.pids_refused.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_FD_LIMIT_ERRORS,
            None,
            "Syscalls that failed with EMFILE or ENFILE (estimates when syscalls are sampled).",
        ),
        |c| c.sick.fd_limit_errors.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_MEMORY_HIGH_EVENTS,
            None,
            "Times the cgroup went over memory.high and was throttled (v2).",
        ),
        |c| c.sick.memory_high_events.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_MEMORY_MAX_EVENTS,
            None,
            "Times usage reached the memory limit (v2 memory.events max, v1 memory.failcnt).",
        ),
        |c| c.sick.memory_max_events.map(Num::U),
    ),
    (
        counter(
            names::CONTAINER_PRESSURE[0],
            SECONDS,
            "Time some task of the container waited for CPU (PSI some).",
        ),
        |c| c.sick.pressure_some_seconds[0].map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_PRESSURE[1],
            SECONDS,
            "Time some task of the container waited for memory (PSI some).",
        ),
        |c| c.sick.pressure_some_seconds[1].map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_PRESSURE[2],
            SECONDS,
            "Time some task of the container waited for I/O (PSI some).",
        ),
        |c| c.sick.pressure_some_seconds[2].map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_PRESSURE_FULL[0],
            SECONDS,
            "Time every non-idle task of the container waited for CPU (PSI full).",
        ),
        |c| c.sick.pressure_full_seconds[0].map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_PRESSURE_FULL[1],
            SECONDS,
            "Time every non-idle task of the container waited for memory (PSI full).",
        ),
        |c| c.sick.pressure_full_seconds[1].map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_PRESSURE_FULL[2],
            SECONDS,
            "Time every non-idle task of the container waited for I/O (PSI full).",
        ),
        |c| c.sick.pressure_full_seconds[2].map(Num::F),
    ),
    (
        counter(
            names::CONTAINER_TCP_SEGMENTS_SENT,
            None,
            "TCP segments sent in the container's network namespace, retransmissions excluded (OutSegs).",
        ),
        |c| c.tcp.map(|t| Num::U(t.segments_sent)),
    ),
    (
        counter(
            names::CONTAINER_TCP_RETRANSMITS,
            None,
            "TCP segments retransmitted (RetransSegs).",
        ),
        |c| c.tcp.map(|t| Num::U(t.retransmits)),
    ),
    (
        counter(
            names::CONTAINER_TCP_RESETS_SENT,
            None,
            "TCP resets sent (OutRsts).",
        ),
        |c| c.tcp.map(|t| Num::U(t.resets_sent)),
    ),
    (
        counter(
            names::CONTAINER_TCP_ESTABLISHED_RESETS,
            None,
            "Established TCP connections reset (EstabResets).",
        ),
        |c| c.tcp.map(|t| Num::U(t.established_resets)),
    ),
    (
        counter(
            names::CONTAINER_TCP_LISTEN_OVERFLOWS,
            None,
            "Handshakes dropped at a full accept queue (ListenOverflows).",
        ),
        |c| c.tcp.map(|t| Num::U(t.listen_overflows)),
    ),
    (
        counter(
            names::CONTAINER_TCP_LISTEN_DROPS,
            None,
            "Handshakes dropped at a listener, overflows included (ListenDrops).",
        ),
        |c| c.tcp.map(|t| Num::U(t.listen_drops)),
    ),
    (
        counter(
            names::CONTAINER_TCP_SOCKET_RETRANSMITS,
            None,
            "TCP retransmissions of the container's own sockets, counted by the kernel programs for the socket's cgroup.",
        ),
        |c| c.tcp_sockets.map(|t| Num::U(t.retransmits)),
    ),
    (
        counter(
            names::CONTAINER_TCP_SOCKET_RESETS_SENT,
            None,
            "TCP resets sent by the container's own sockets (kernel programs).",
        ),
        |c| c.tcp_sockets.map(|t| Num::U(t.resets_sent)),
    ),
    (
        counter(
            names::CONTAINER_TCP_SOCKET_RESETS_RECEIVED,
            None,
            "TCP resets received by the container's own sockets (kernel programs).",
        ),
        |c| c.tcp_sockets.map(|t| Num::U(t.resets_received)),
    ),
];

const HEALTH_REASON: Family = gauge(
    names::CONTAINER_HEALTH_REASON,
    None,
    "Always 1; one series per reason the container is not Good (reason label).",
);

const INFO: Family = gauge(
    names::CONTAINER_INFO,
    None,
    "Always 1; the container's row key, runtime, ids, image, cgroup, endpoint, state and health as labels.",
);

/// The snapshot as the text a scrape answers with.
pub fn encode(snapshot: Arc<Snapshot>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug.
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("encoding into a String");
    out
}

#[derive(Debug)]
struct SnapshotCollector(Arc<Snapshot>);

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        let node = s.node.as_str();
        {
            let mut family = describe(&mut encoder, &INFO)?;
            for c in &s.containers {
                let labels = (
                    container_labels(node, c),
                    [
                        ("key", c.key.as_str()),
                        ("runtime", c.runtime.as_str()),
                        ("runtime_id", c.runtime_id.as_str()),
                        ("image", c.image.as_str()),
                        ("cgroup", c.cgroup.as_str()),
                        ("endpoint", c.endpoint.as_str()),
                        ("state", c.state),
                        ("health", c.health),
                    ],
                );
                family.encode_family(&labels)?.encode_gauge(&1u64)?;
            }
        }
        for (def, value) in CONTAINER {
            let mut family = describe(&mut encoder, def)?;
            for c in &s.containers {
                if let Some(v) = value(c) {
                    let labels = container_labels(node, c);
                    sample(&mut family.encode_family(&labels)?, def.kind, v)?;
                }
            }
        }
        {
            let mut family = describe(&mut encoder, &HEALTH_REASON)?;
            for c in &s.containers {
                for reason in &c.sick.health_reasons {
                    let labels = (container_labels(node, c), [("reason", *reason)]);
                    family.encode_family(&labels)?.encode_gauge(&1u64)?;
                }
            }
        }
        {
            let def = counter(
                names::CONTAINER_TCP_CONNECTS,
                None,
                "TCP connects begun in the container's network namespace, by result: failed (refused, timed out, unreachable: AttemptFails) or ok (ActiveOpens less those; connects still in progress included).",
            );
            let mut family = describe(&mut encoder, &def)?;
            for c in &s.containers {
                let Some(t) = c.tcp else { continue };
                for (result, n) in [
                    ("ok", t.connects.saturating_sub(t.connect_failures)),
                    ("failed", t.connect_failures),
                ] {
                    let labels = (container_labels(node, c), [("result", result)]);
                    sample(&mut family.encode_family(&labels)?, def.kind, Num::U(n))?;
                }
            }
        }
        {
            let def = counter(
                names::CONTAINER_TCP_CONNECT_RESULTS,
                None,
                "TCP connects begun by the container's own processes, by how they ended, as the kernel programs counted them: ok, refused, timed_out, unreachable, reset, other (another error), aborted (closed by the process before an answer).",
            );
            let mut family = describe(&mut encoder, &def)?;
            for c in &s.containers {
                let Some(r) = c.tcp_connect_results else {
                    continue;
                };
                for (result, n) in [
                    ("ok", r.ok),
                    ("refused", r.refused),
                    ("timed_out", r.timed_out),
                    ("unreachable", r.unreachable),
                    ("reset", r.reset),
                    ("other", r.other),
                    ("aborted", r.aborted),
                ] {
                    let labels = (container_labels(node, c), [("result", result)]);
                    sample(&mut family.encode_family(&labels)?, def.kind, Num::U(n))?;
                }
            }
        }
        let a = &s.agent;
        let channels = || a.channels.iter();
        labelled(
            &mut encoder,
            &counter(
                names::AGENT_EVENTS,
                None,
                "Events the kernel programs submitted, per ring-buffer channel.",
            ),
            "channel",
            channels().map(|(n, events, _)| (n.as_str(), Num::U(*events))),
        )?;
        labelled(
            &mut encoder,
            &counter(
                names::AGENT_EVENTS_LOST,
                None,
                "Events lost (ring buffer full), per channel.",
            ),
            "channel",
            channels().map(|(n, _, lost)| (n.as_str(), Num::U(*lost))),
        )?;
        labelled(
            &mut encoder,
            &counter(
                names::BPF_PROGRAM_RUNS,
                None,
                "Runs of each BPF program (kernel statistics).",
            ),
            "program",
            a.programs
                .iter()
                .map(|(n, runs, _)| (n.as_str(), Num::U(*runs))),
        )?;
        labelled(
            &mut encoder,
            &counter(
                names::BPF_PROGRAM_RUN_TIME,
                SECONDS,
                "Time spent running each BPF program (kernel statistics).",
            ),
            "program",
            a.programs
                .iter()
                .map(|(n, _, ns)| (n.as_str(), Num::F(*ns as f64 / 1e9))),
        )?;
        // One series, the mode in a label: `and on(node)` picks by mode.
        {
            let def = gauge(
                names::AGENT_SYSCALL_ACCOUNTING,
                None,
                "Always 1; how the agent counts syscalls (mode: exact, sampled or off).",
            );
            let mut family = describe(&mut encoder, &def)?;
            let labels = [("node", node), ("mode", a.syscall_accounting)];
            family.encode_family(&labels)?.encode_gauge(&1u64)?;
        }
        let plain = [
            (
                counter(
                    names::JOURNAL_WRITE_ERRORS,
                    None,
                    "Journal commits that failed.",
                ),
                Num::U(a.journal_write_errors),
            ),
            (
                counter(
                    names::PROCESS_CPU,
                    SECONDS,
                    "CPU time of the agent process.",
                ),
                Num::F(a.cpu_seconds),
            ),
            (
                gauge(
                    names::PROCESS_RSS,
                    BYTES,
                    "Resident memory of the agent process.",
                ),
                Num::U(a.resident_memory_bytes),
            ),
            (
                gauge(
                    names::PROCESS_OPEN_FDS,
                    None,
                    "File descriptors the agent holds.",
                ),
                Num::U(a.open_fds),
            ),
            (
                gauge(
                    names::PROCESS_MAX_FDS,
                    None,
                    "The agent's open-files limit (soft).",
                ),
                Num::U(a.max_fds),
            ),
            (
                gauge(
                    names::AGENT_CONTAINER_FDS,
                    None,
                    "File descriptors held open for containers' cgroup and namespace files.",
                ),
                Num::U(a.container_fds),
            ),
            (
                gauge(
                    names::AGENT_CONTAINERS_READ_SLOWLY,
                    None,
                    "Containers over the descriptor budget, read less often with their files opened on each read.",
                ),
                Num::U(a.containers_read_slowly),
            ),
            (
                counter(
                    names::AGENT_CLIENTS_REFUSED,
                    None,
                    "Clients (CLI, scrapes) turned away because the agent was out of file descriptors.",
                ),
                Num::U(a.clients_refused),
            ),
        ];
        for (def, v) in &plain {
            sample(&mut describe(&mut encoder, def)?, def.kind, *v)?;
        }
        Ok(())
    }
}

/// A family with one label (`channel`, `program`) besides none.
fn labelled<'a>(
    encoder: &mut DescriptorEncoder,
    def: &Family,
    key: &'static str,
    rows: impl Iterator<Item = (&'a str, Num)>,
) -> Result<(), std::fmt::Error> {
    let mut family = describe(encoder, def)?;
    for (value, v) in rows {
        sample(&mut family.encode_family(&[(key, value)])?, def.kind, v)?;
    }
    Ok(())
}

/// The labels of every container series (an array: no allocation per sample).
fn container_labels<'a>(node: &'a str, c: &'a ContainerFigures) -> [(&'static str, &'a str); 5] {
    let [n, i, ns, p, ct] = names::CONTAINER_LABELS;
    [
        (n, node),
        (i, c.id.as_str()),
        (ns, c.namespace.as_str()),
        (p, c.pod.as_str()),
        (ct, c.container.as_str()),
    ]
}

/// Writes a family's HELP/TYPE/UNIT lines. The crate appends the unit and,
/// for counters, `_total` itself, so both come off the sample name first.
fn describe<'s>(
    encoder: &'s mut DescriptorEncoder,
    def: &'s Family,
) -> Result<MetricEncoder<'s>, std::fmt::Error> {
    let mut base = def.name;
    if def.kind == Kind::Counter {
        base = base.strip_suffix("_total").unwrap_or(base);
    }
    if let Some(u) = def.unit {
        base = base
            .strip_suffix(u.as_str())
            .and_then(|b| b.strip_suffix('_'))
            .unwrap_or(base);
    }
    let kind = match def.kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
    };
    encoder.encode_descriptor(base, def.help, def.unit.map(|u| u.unit()), kind)
}

fn sample(m: &mut MetricEncoder, kind: Kind, v: Num) -> Result<(), std::fmt::Error> {
    match (kind, v) {
        (Kind::Counter, Num::U(v)) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (Kind::Counter, Num::F(v)) => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        (Kind::Counter, Num::I(v)) => {
            m.encode_counter::<NoLabelSet, _, u64>(&v.max(0).unsigned_abs(), None)
        }
        (Kind::Gauge, Num::U(v)) => m.encode_gauge(&v),
        (Kind::Gauge, Num::I(v)) => m.encode_gauge(&v),
        (Kind::Gauge, Num::F(v)) => m.encode_gauge(&v),
    }
}
