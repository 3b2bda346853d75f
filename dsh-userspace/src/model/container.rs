//! One container's state machine: incarnations, the main process, exit causes.
use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{
    cause::{ExitCause, ExitUsage, ExternalSignal, Message, OomAtDeath, Start},
    churn::ChurnTally,
    entry::{LogEntry, LogKind},
    signals::SignalTally,
    state::State,
};
use crate::{
    cgroup::{
        CgroupId,
        identity::{Identity, Runtime},
        listen::Listener,
        netns::NetCounters,
        snmp::TcpCounters,
        stats::CgroupStats,
    },
    runtime::RuntimeMeta,
    signal::{ExitStatus, Signal},
};

/// Figures from the latest samples (not persisted).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub stats: Option<CgroupStats>,
    pub cpu_used_cores: f64,
    /// (sample time, CFS periods, throttled periods), last minute or so.
    pub throttle_window: VecDeque<(Timestamp, u64, u64)>,
    pub syscalls_per_s: f64,
    pub syscall_errors_per_s: f64,
    pub block_read_bytes_per_s: f64,
    pub block_write_bytes_per_s: f64,
    /// Network receive/transmit rates; None when the namespace's figures
    /// are reported under another container (or are the host's).
    pub net_rx_bytes_per_s: Option<f64>,
    pub net_tx_bytes_per_s: Option<f64>,
    pub net: NetSample,
    /// Previous cumulative counters and when they were read.
    pub prev: Option<Counters>,
    /// The namespace's TCP counters over the last minute or so.
    pub tcp: super::tcp::TcpWindow,
    /// Sampled mode: estimated cumulative (calls, errors).
    pub syscalls_estimated: (u64, u64),
    /// Limits hit and pressure stalls: the running-but-failing conditions.
    pub sick: super::sick::SickSample,
}

/// The container's network namespace as last sampled.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetSample {
    /// Cumulative interface counters, for the one container of a shared
    /// namespace that reports them (so a pod's traffic is counted once).
    pub counters: Option<NetCounters>,
    /// Whose figures this namespace's are when not this container's: the
    /// display id of the container reporting them, or `host`.
    pub shared_with: Option<String>,
    /// The namespace's own addresses (not loopback), the lowest few.
    pub addrs: Vec<String>,
    /// Addresses beyond those: counted, not kept.
    pub addrs_not_kept: u64,
    /// TCP ports listening in the namespace.
    pub listen_ports: Vec<u16>,
    /// The namespace's cumulative TCP counters, for the container that
    /// reports the namespace.
    pub tcp: Option<TcpCounters>,
    /// Its listeners with connections waiting, fullest first (a few).
    pub listen_queues: Vec<Listener>,
}

impl NetSample {
    /// A container in the host's namespace: its figures are the host's.
    pub fn host() -> Self {
        Self {
            shared_with: Some("host".to_owned()),
            ..Self::default()
        }
    }

    /// Whether this is `host()` (compared without making one).
    pub fn is_host(&self) -> bool {
        self.shared_with.as_deref() == Some("host")
            && self.counters.is_none()
            && self.addrs.is_empty()
            && self.addrs_not_kept == 0
            && self.listen_ports.is_empty()
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub at: Option<Timestamp>,
    pub cpu_ns: u64,
    pub syscalls: u64,
    pub syscall_errors: u64,
    /// EMFILE/ENFILE returns (exact counting only).
    pub fd_limit_errors: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub net: Option<NetCounters>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    /// The row's stable key: the first incarnation's runtime id. A runtime's
    /// restart under a new id (the kubelet's) keeps the key.
    #[serde(default)]
    pub key: String,
    /// The current incarnation: runtime, runtime id, cgroup path.
    pub identity: Identity,
    /// What stays the same across a runtime's restarts under new ids
    /// (`k8s/<pod uid>/<container>`), when the runtime said.
    #[serde(default)]
    pub workload: Option<String>,
    /// Live metadata from the runtime; None while the runtime is unreachable.
    #[serde(skip)]
    pub meta: Option<RuntimeMeta>,
    /// The last name the runtime gave, kept so `dsh log NAME` still resolves.
    pub last_name: Option<String>,
    /// The runtime said this container no longer exists (`docker rm`).
    #[serde(default)]
    pub removed_from_runtime: bool,
    /// A pod's sandbox (pause) container: runtime plumbing, not listed.
    #[serde(default)]
    pub sandbox: bool,
    pub state: State,
    /// The current incarnation's cgroup id (attribution hierarchy); None once removed.
    pub cgroup_id: Option<CgroupId>,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub btime: Option<SignedDuration>,
    pub main_tgid: Option<u32>,
    /// A user process has run at least once (so the next start is a restart).
    pub ever_started: bool,
    /// This cgroup's main process has exited. A runtime starts a container
    /// again in a new cgroup, so what still runs or execs in this one (the
    /// orphans the kernel is killing) is no new main process.
    #[serde(default)]
    pub main_exited: bool,
    pub restarts: u64,
    pub restart_times: Vec<Timestamp>,
    pub oom_kills: u64,
    pub oom_times: Vec<Timestamp>,
    pub core_dumps: u64,
    pub core_times: Vec<Timestamp>,
    /// Processes of this container that ended, as the kernel reported them.
    #[serde(default)]
    pub process_exits: u64,
    /// Processes started (exec) in this container, short-lived churn and
    /// main processes alike.
    #[serde(default)]
    pub process_execs: u64,
    /// The main process's last exit: its code, or 128 + the signal that
    /// killed it (as shells and runtimes report it).
    #[serde(default)]
    pub last_exit_code: Option<i32>,
    /// Listening TCP ports seen from the kernel → the address they listen on.
    pub listening: BTreeMap<u16, String>,
    /// When the container was last seen changing (for forgetting old ones).
    pub last_change: Timestamp,
    #[serde(skip)]
    pub sample: Sample,
    /// Short-lived processes since the last churn summary.
    #[serde(skip)]
    pub churn: ChurnTally,
    /// Signals from outside since the last signal summary.
    #[serde(skip)]
    pub signals: SignalTally,
    #[serde(skip)]
    pub pending_oom: HashMap<u32, OomAtDeath>,
    /// Signals sent from outside to a process that could explain its end,
    /// by its pid (the kernel hands them over with the main process's exit).
    #[serde(skip)]
    pub external_signals: HashMap<u32, Vec<ExternalSignal>>,
}

/// runc (and crun) re-execute themselves from a sealed copy of their own
/// binary (`/dev/fd/N`, a memfd) inside the new cgroup before the user
/// process (CVE-2019-5736's fix): runtime plumbing, not the container's
/// first user process.
pub fn is_runtime_reexec(comm: &str, filename: &str) -> bool {
    let runtime = comm.starts_with("runc") || comm.starts_with("crun");
    let own_copy = ["/dev/fd/", "/proc/self/fd/", "/proc/self/exe", "/memfd:"]
        .iter()
        .any(|p| filename.starts_with(p));
    runtime && own_copy
}

impl Container {
    pub fn new(identity: Identity, now: Timestamp) -> Self {
        Self {
            key: identity.runtime_id.clone(),
            identity,
            workload: None,
            meta: None,
            last_name: None,
            removed_from_runtime: false,
            sandbox: false,
            state: State::Booting,
            cgroup_id: None,
            created_at: None,
            started_at: None,
            btime: None,
            main_tgid: None,
            ever_started: false,
            main_exited: false,
            restarts: 0,
            restart_times: Vec::new(),
            oom_kills: 0,
            oom_times: Vec::new(),
            core_dumps: 0,
            core_times: Vec::new(),
            process_exits: 0,
            process_execs: 0,
            last_exit_code: None,
            listening: BTreeMap::new(),
            last_change: now,
            sample: Sample::default(),
            churn: ChurnTally::default(),
            signals: SignalTally::default(),
            pending_oom: HashMap::new(),
            external_signals: HashMap::new(),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The name shown in `id`: the runtime's name; the last one it gave if
    /// the runtime has since removed the container or its cgroup is gone (a
    /// dead container's name cannot change); else the cgroup path (while the
    /// runtime is unreachable, a live container's name is not known to be
    /// current).
    pub fn display_id(&self) -> &str {
        match (&self.meta, &self.last_name) {
            (Some(m), _) if !m.name.is_empty() => &m.name,
            (None, Some(last)) if self.removed_from_runtime || self.cgroup_id.is_none() => last,
            _ => &self.identity.cgroup,
        }
    }

    /// Restarts: the kernel's count, reconciled with the runtime's (the
    /// larger: the agent may have been down for some).
    pub fn restart_count(&self) -> u64 {
        let runtime = self.meta.as_ref().map_or(0, |m| m.restart_count);
        self.restarts.max(runtime)
    }

    /// Before the runtime's word is replaced or lost: the restarts it
    /// counted (and `dsh ps` showed) become the container's own, so the
    /// count never goes down (`docker rm`, dockerd restarting). Later
    /// restarts are then counted from there by whichever saw them, the
    /// larger count winning as before: none is counted twice.
    /// True when the count changed (the container's saved state is then due).
    pub fn keep_runtime_restarts(&mut self) -> bool {
        let kept = self.restart_count();
        std::mem::replace(&mut self.restarts, kept) != kept
    }

    fn entry(&self, ts: Timestamp, kind: LogKind, msg: Message) -> LogEntry {
        LogEntry::new(ts, self.key(), self.display_id(), kind, msg)
    }

    fn change(&mut self, ts: Timestamp, to: State, kind: LogKind, msg: Message) -> LogEntry {
        let mut e = self.entry(ts, kind, msg);
        e.from = Some(self.state);
        e.to = Some(to);
        self.state = to;
        self.last_change = ts;
        e
    }

    /// A new cgroup for this container: its first, or a restart's.
    pub fn cgroup_created(&mut self, id: CgroupId, ts: Timestamp) -> Vec<LogEntry> {
        self.cgroup_id = Some(id);
        self.created_at = Some(ts);
        self.main_tgid = None;
        self.main_exited = false;
        self.pending_oom.clear();
        self.external_signals.clear();
        self.last_change = ts;
        let msg = Message::CgroupCreated {
            cgroup: self.identity.cgroup.clone(),
        };
        if self.ever_started {
            // A restart: the state stays Error/Exited until the user process runs.
            vec![self.entry(ts, LogKind::Create, msg)]
        } else {
            let mut e = self.entry(ts, LogKind::Create, msg);
            e.to = Some(State::Booting);
            self.state = State::Booting;
            vec![e]
        }
    }

    pub fn cgroup_removed(&mut self, ts: Timestamp) -> Vec<LogEntry> {
        self.cgroup_id = None;
        self.main_tgid = None;
        self.listening.clear();
        let mut out = vec![self.entry(
            ts,
            LogKind::Destroy,
            Message::CgroupRemoved {
                cgroup: self.identity.cgroup.clone(),
            },
        )];
        if self.state.is_live() {
            out.push(self.change(ts, State::Exited, LogKind::Exit, Message::CgroupGone));
        }
        self.last_change = ts;
        out
    }

    /// An exec the kernel sent one by one: the start of the user process,
    /// or (when the kernel could not count it) churn.
    pub fn exec(&mut self, ts: Timestamp, tgid: u32, comm: &str) -> Vec<LogEntry> {
        self.process_execs += 1;
        if self.main_tgid.is_none()
            && self.cgroup_id.is_some()
            && self.state != State::Running
            && !(self.main_exited && self.restarts_in_new_cgroup())
        {
            return self.start(ts, tgid, comm);
        }
        self.churn.exec(comm);
        Vec::new()
    }

    /// Whether this container's runtime starts it again only in a new cgroup
    /// (every container runtime does: runc creates the cgroup). A plain
    /// cgroup or a systemd unit may run a new main process in the same one.
    fn restarts_in_new_cgroup(&self) -> bool {
        !matches!(self.identity.runtime, Runtime::Cgroup | Runtime::Systemd)
    }

    /// The first user process of an incarnation started.
    fn start(&mut self, ts: Timestamp, tgid: u32, comm: &str) -> Vec<LogEntry> {
        self.main_tgid = Some(tgid);
        self.started_at = Some(ts);
        self.btime = self.created_at.map(|c| ts.duration_since(c));
        if self.ever_started {
            self.restarts += 1;
            self.restart_times.push(ts);
        }
        self.ever_started = true;
        vec![
            self.change(
                ts,
                State::Running,
                LogKind::Start,
                Message::Started(Start::Exec),
            )
            .with_task(tgid, comm),
        ]
    }

    /// Found already running (at agent start-up), or running again while the
    /// agent was down.
    pub fn found_running(
        &mut self,
        ts: Timestamp,
        started_at: Option<Timestamp>,
        main: Option<u32>,
        how: Start,
    ) -> Vec<LogEntry> {
        self.main_tgid = main;
        self.main_exited = false;
        self.started_at = started_at.or(Some(ts));
        if self.ever_started {
            self.restarts += 1;
            self.restart_times.push(ts);
        }
        self.ever_started = true;
        vec![self.change(ts, State::Running, LogKind::Start, Message::Started(how))]
    }

    pub fn oom_kill(&mut self, ts: Timestamp, tgid: u32, at_death: OomAtDeath) {
        self.oom_kills += 1;
        self.oom_times.push(ts);
        self.pending_oom.insert(tgid, at_death);
        self.last_change = ts;
    }

    /// Signals sent from outside to process `tgid` that may explain its
    /// end (no line of their own: the signal summary counts them).
    pub fn signalled_from_outside(&mut self, tgid: u32, by: Vec<ExternalSignal>) {
        if by.is_empty() {
            self.external_signals.remove(&tgid);
        } else {
            self.external_signals.insert(tgid, by);
        }
    }

    /// A process of this container ended; decides the cause and, for the
    /// main process, the new state.
    pub fn exit(
        &mut self,
        ts: Timestamp,
        tgid: u32,
        comm: &str,
        status: ExitStatus,
    ) -> Vec<LogEntry> {
        self.process_exits += 1;
        let is_main = self.main_tgid == Some(tgid);
        let oom = self.pending_oom.remove(&tgid);
        let external = self.external_signals.remove(&tgid).unwrap_or_default();
        let cause = match (oom, status) {
            (Some(oom), _) => ExitCause::Oom(oom),
            (
                None,
                ExitStatus::Killed {
                    signal,
                    core_dumped,
                },
            ) if signal.dumps_core() => {
                self.core_dumps += 1;
                self.core_times.push(ts);
                ExitCause::Coredump {
                    signal,
                    core_written: core_dumped,
                }
            }
            (None, ExitStatus::Killed { signal, .. }) => {
                match external.into_iter().find(|e| e.signal == signal) {
                    Some(by) => ExitCause::SignalFromOutside(by),
                    None => ExitCause::Signal { signal },
                }
            }
            // It handled the stop signal and exited: a stop, with who asked.
            (None, ExitStatus::Exited(code)) => {
                match external.into_iter().find(|e| e.signal.is_stop()) {
                    Some(by) => ExitCause::ExitAfterSignal { code, by },
                    None => ExitCause::Exited { code },
                }
            }
        };
        let (to, kind) = outcome(&cause);
        let mut e = if is_main {
            self.main_tgid = None;
            self.main_exited = true;
            self.last_exit_code = Some(status.shell_code());
            let usage = self.usage_at(ts);
            self.change(
                ts,
                to,
                kind,
                Message::Exit {
                    cause,
                    child: false,
                    usage,
                },
            )
        } else if matches!(kind, LogKind::Oom | LogKind::Coredump) {
            // A child's crash or OOM kill: worth a line, not a state change.
            self.entry(
                ts,
                kind,
                Message::Exit {
                    cause,
                    child: true,
                    usage: None,
                },
            )
        } else {
            self.churn.exit(status);
            return Vec::new();
        };
        e.pid = Some(tgid);
        e.comm = Some(comm.to_owned());
        e.signal = status.signal().map(Signal::name);
        e.exit_code = status.code();
        e.core_dumped = status.signal().map(|_| status.core_dumped());
        vec![e]
    }

    /// What this incarnation used, as its main process exits at `ts`: run
    /// time since its start, and the cgroup's CPU time and memory peak as
    /// last read (the agent reads them afresh at the exit when it can).
    fn usage_at(&self, ts: Timestamp) -> Option<ExitUsage> {
        let started = self.started_at?;
        let stats = self.sample.stats.as_ref();
        Some(ExitUsage {
            run_time_s: ts.duration_since(started).as_secs_f64().max(0.0),
            cpu_s: stats.map(|s| s.cpu_usage_ns as f64 / 1e9),
            peak_mem_bytes: stats.and_then(|s| s.mem_peak_bytes),
        })
    }

    /// Forgets event times older than `keep` (health only looks back that far).
    pub fn prune_times(&mut self, now: Timestamp, keep: SignedDuration) {
        let cutoff = now - keep;
        for v in [
            &mut self.restart_times,
            &mut self.oom_times,
            &mut self.core_times,
        ] {
            v.retain(|t| *t >= cutoff);
        }
    }
}

/// The state a container's main process leaves it in when it ends this
/// way, and the kind of its log line.
fn outcome(cause: &ExitCause) -> (State, LogKind) {
    match cause {
        ExitCause::Oom(_) => (State::Error, LogKind::Oom),
        ExitCause::Coredump { .. } => (State::Error, LogKind::Coredump),
        ExitCause::SignalFromOutside(by) if by.signal.is_stop() => (State::Exited, LogKind::Signal),
        ExitCause::SignalFromOutside(_) | ExitCause::Signal { .. } => {
            (State::Error, LogKind::Signal)
        }
        ExitCause::ExitAfterSignal { .. } | ExitCause::Exited { code: 0 } => {
            (State::Exited, LogKind::Exit)
        }
        ExitCause::Exited { .. } => (State::Error, LogKind::Exit),
    }
}
