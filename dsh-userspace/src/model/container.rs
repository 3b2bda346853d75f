//! One container's state machine: incarnations, the main process, exit causes.
use std::collections::{BTreeMap, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{
    entry::{LogEntry, LogKind},
    state::{State, dumps_core, is_stop_signal, signal_name},
};
use crate::cgroup::{identity::Identity, stats::CgroupStats};

/// What the container runtime says about a container (names, ports, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeMeta {
    pub name: String,
    pub image: String,
    /// The container's address on its network, if it has its own.
    pub ip: Option<String>,
    /// Container-side TCP ports the runtime publishes.
    pub ports: Vec<u16>,
    /// The runtime's own restart count.
    pub restart_count: u64,
}

/// Why the victim of an OOM kill died, kept until its exit arrives.
#[derive(Clone, Copy, Debug)]
pub struct OomAtDeath {
    pub mem_used: Option<u64>,
    pub mem_limit: Option<u64>,
}

/// A signal sent to one of the container's processes from outside it.
#[derive(Clone, Debug)]
pub struct ExternalSignal {
    pub signal: u32,
    pub sender_pid: u32,
    pub sender_comm: String,
}

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
    /// Previous cumulative counters and when they were read.
    pub prev: Option<Counters>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub at: Option<Timestamp>,
    pub cpu_ns: u64,
    pub syscalls: u64,
    pub syscall_errors: u64,
    pub block_read: u64,
    pub block_write: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    pub identity: Identity,
    /// Live metadata from the runtime; None while the runtime is unreachable.
    #[serde(skip)]
    pub meta: Option<RuntimeMeta>,
    /// The last name the runtime gave, kept so `dsh log NAME` still resolves.
    pub last_name: Option<String>,
    /// The runtime said this container no longer exists (`docker rm`).
    #[serde(default)]
    pub removed_from_runtime: bool,
    pub state: State,
    /// The current incarnation's cgroup id (attribution hierarchy); None once removed.
    pub cgroup_id: Option<u64>,
    pub created_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub btime: Option<SignedDuration>,
    pub main_tgid: Option<u32>,
    /// A user process has run at least once (so the next start is a restart).
    pub ever_started: bool,
    pub restarts: u64,
    pub restart_times: Vec<Timestamp>,
    pub oom_kills: u64,
    pub oom_times: Vec<Timestamp>,
    pub core_dumps: u64,
    pub core_times: Vec<Timestamp>,
    /// Processes of this container that ended, as the kernel reported them.
    #[serde(default)]
    pub process_exits: u64,
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
    #[serde(skip)]
    pub pending_oom: HashMap<u32, OomAtDeath>,
    #[serde(skip)]
    pub external_signals: HashMap<u32, ExternalSignal>,
}

impl Container {
    pub fn new(identity: Identity, now: Timestamp) -> Self {
        Self {
            identity,
            meta: None,
            last_name: None,
            removed_from_runtime: false,
            state: State::Booting,
            cgroup_id: None,
            created_at: None,
            started_at: None,
            btime: None,
            main_tgid: None,
            ever_started: false,
            restarts: 0,
            restart_times: Vec::new(),
            oom_kills: 0,
            oom_times: Vec::new(),
            core_dumps: 0,
            core_times: Vec::new(),
            process_exits: 0,
            last_exit_code: None,
            listening: BTreeMap::new(),
            last_change: now,
            sample: Sample::default(),
            pending_oom: HashMap::new(),
            external_signals: HashMap::new(),
        }
    }

    pub fn key(&self) -> &str {
        &self.identity.runtime_id
    }

    /// The name shown in `id`: the runtime's name; the last one it gave if
    /// the runtime has since removed the container; else the cgroup path
    /// (also while the runtime is unreachable: its names are not current).
    pub fn display_id(&self) -> &str {
        match (&self.meta, &self.last_name) {
            (Some(m), _) if !m.name.is_empty() => &m.name,
            (None, Some(last)) if self.removed_from_runtime => last,
            _ => &self.identity.cgroup,
        }
    }

    /// Restarts: the kernel's count, reconciled with the runtime's (the
    /// larger: the agent may have been down for some).
    pub fn restart_count(&self) -> u64 {
        let runtime = self.meta.as_ref().map_or(0, |m| m.restart_count);
        self.restarts.max(runtime)
    }

    fn entry(&self, ts: Timestamp, kind: LogKind, msg: String) -> LogEntry {
        LogEntry::new(ts, self.key(), self.display_id(), kind, msg)
    }

    fn change(&mut self, ts: Timestamp, to: State, kind: LogKind, msg: String) -> LogEntry {
        let mut e = self.entry(ts, kind, msg);
        e.from = Some(self.state);
        e.to = Some(to);
        self.state = to;
        self.last_change = ts;
        e
    }

    /// A new cgroup for this container: its first, or a restart's.
    pub fn cgroup_created(&mut self, id: u64, ts: Timestamp) -> Vec<LogEntry> {
        self.cgroup_id = Some(id);
        self.created_at = Some(ts);
        self.main_tgid = None;
        self.pending_oom.clear();
        self.external_signals.clear();
        self.last_change = ts;
        let msg = format!("create cgroup {}", self.identity.cgroup);
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
            format!("remove cgroup {}", self.identity.cgroup),
        )];
        if self.state.is_live() {
            out.push(self.change(
                ts,
                State::Exited,
                LogKind::Exit,
                "cgroup removed".to_owned(),
            ));
        }
        self.last_change = ts;
        out
    }

    pub fn exec(&mut self, ts: Timestamp, tgid: u32, comm: &str, filename: &str) -> Vec<LogEntry> {
        if self.main_tgid.is_none() && self.cgroup_id.is_some() && self.state != State::Running {
            return self.start(ts, tgid, comm);
        }
        vec![
            self.entry(ts, LogKind::Exec, format!("exec {filename}"))
                .with_task(tgid, comm),
        ]
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
                "start user process ok".to_owned(),
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
        msg: &str,
    ) -> Vec<LogEntry> {
        self.main_tgid = main;
        self.started_at = started_at.or(Some(ts));
        if self.ever_started {
            self.restarts += 1;
            self.restart_times.push(ts);
        }
        self.ever_started = true;
        vec![self.change(ts, State::Running, LogKind::Start, msg.to_owned())]
    }

    pub fn oom_kill(&mut self, ts: Timestamp, tgid: u32, at_death: OomAtDeath) {
        self.oom_kills += 1;
        self.oom_times.push(ts);
        self.pending_oom.insert(tgid, at_death);
        self.last_change = ts;
    }

    pub fn external_signal(
        &mut self,
        ts: Timestamp,
        target_tgid: u32,
        sig: ExternalSignal,
    ) -> Vec<LogEntry> {
        let msg = format!(
            "receive signal {} from pid {} ({})",
            signal_name(sig.signal),
            sig.sender_pid,
            sig.sender_comm
        );
        let mut e = self
            .entry(ts, LogKind::Signal, msg)
            .with_task(sig.sender_pid, &sig.sender_comm);
        e.signal = Some(signal_name(sig.signal));
        self.external_signals.insert(target_tgid, sig);
        vec![e]
    }

    /// A process of this container ended; decides the cause and, for the
    /// main process, the new state.
    pub fn exit(
        &mut self,
        ts: Timestamp,
        tgid: u32,
        comm: &str,
        exit_code: Option<u8>,
        signal: Option<u8>,
        core_dumped: bool,
    ) -> Vec<LogEntry> {
        self.process_exits += 1;
        let is_main = self.main_tgid == Some(tgid);
        let oom = self.pending_oom.remove(&tgid);
        let external = self.external_signals.remove(&tgid);
        let sig = signal.map(u32::from);
        let (to, kind, msg) = if let Some(oom) = oom {
            (State::Error, LogKind::Oom, oom_msg(oom))
        } else if let Some(s) = sig {
            if dumps_core(s) {
                self.core_dumps += 1;
                self.core_times.push(ts);
                let written = if core_dumped {
                    "core written"
                } else {
                    "no core written"
                };
                let msg = format!(
                    "receive signal {}, seems coredump ({written})",
                    signal_name(s)
                );
                (State::Error, LogKind::Coredump, msg)
            } else if let Some(ext) = external.filter(|e| e.signal == s) {
                let to = if is_stop_signal(s) {
                    State::Exited
                } else {
                    State::Error
                };
                let msg = format!(
                    "receive signal {} from pid {} ({})",
                    signal_name(s),
                    ext.sender_pid,
                    ext.sender_comm
                );
                (to, LogKind::Signal, msg)
            } else {
                (
                    State::Error,
                    LogKind::Signal,
                    format!("receive signal {}", signal_name(s)),
                )
            }
        } else if let (Some(c), Some(ext)) =
            (exit_code, external.filter(|e| is_stop_signal(e.signal)))
        {
            // It handled the stop signal and exited: a stop, with who asked.
            let msg = format!(
                "exit code {c} after receive signal {} from pid {} ({})",
                signal_name(ext.signal),
                ext.sender_pid,
                ext.sender_comm
            );
            (State::Exited, LogKind::Exit, msg)
        } else {
            match exit_code {
                Some(0) => (State::Exited, LogKind::Exit, "exit code 0".to_owned()),
                Some(c) => (State::Error, LogKind::Exit, format!("exit code {c}")),
                None => (State::Error, LogKind::Exit, "exit".to_owned()),
            }
        };
        let mut e = if is_main {
            self.main_tgid = None;
            self.last_exit_code = sig.map(|s| 128 + s as i32).or(exit_code.map(i32::from));
            self.change(ts, to, kind, msg)
        } else if matches!(kind, LogKind::Oom | LogKind::Coredump) {
            // A child's crash or OOM kill: worth a line, not a state change.
            self.entry(ts, kind, format!("child process {msg}"))
        } else {
            return Vec::new();
        };
        e.pid = Some(tgid);
        e.comm = Some(comm.to_owned());
        e.signal = sig.map(signal_name);
        e.exit_code = exit_code;
        e.core_dumped = sig.map(|_| core_dumped);
        vec![e]
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

fn oom_msg(oom: OomAtDeath) -> String {
    match (oom.mem_used, oom.mem_limit) {
        (Some(u), Some(l)) => format!(
            "oom (memory {} of limit {})",
            crate::render::bytes(u),
            crate::render::bytes(l)
        ),
        (Some(u), None) => format!("oom (memory {}, no limit)", crate::render::bytes(u)),
        _ => "oom".to_owned(),
    }
}
