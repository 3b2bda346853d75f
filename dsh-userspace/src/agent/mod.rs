//! `dsh agent`: joins kernel events and counters (probe) with cgroup files
//! and runtime metadata into the model, writes the journal, serves the CLI.
mod budget;
mod churn;
mod discovery;
mod history;
mod lifecycle;
mod publish;
mod reorder;
mod runtimes;
mod sample;
mod sample_tcp;
mod server;
mod signals;
mod status;
mod syscalls;
mod trace;

pub use server::{MAX_CONNECTIONS, REQUEST_TIMEOUT, WRITE_TIMEOUT};

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use jiff::{SignedDuration, Timestamp};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{broadcast, oneshot},
};

use crate::{
    api::{self, Reply},
    cgroup::{self, CgroupId, layout::CgroupLayout},
    clock::BootClock,
    journal::{Journal, Retention},
    model::{
        self, Model,
        cause::{ExternalSignal, OomAtDeath},
        entry::LogEntry,
        health::HealthRules,
        row::ContainerRow,
    },
    probe::{
        Probe, SyscallCounters,
        event::{Event, EventKind, VictimMemory},
    },
    report::chain,
    runtime::RuntimeUpdate,
};
use discovery::Hierarchies;
pub use runtimes::{
    RuntimeSockets, default_crio_socket, default_podman_socket, probe_containerd_socket,
};
use server::Ask;
pub use syscalls::{DEFAULT_PERIOD, DEFAULT_WINDOW, SyscallSchedule};

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    pub interval: Duration,
    /// The runtimes to follow, by socket.
    pub sockets: RuntimeSockets,
    pub rules: HealthRules,
    pub forget_after: SignedDuration,
    pub retention: Retention,
    pub syscall_latency: bool,
    pub syscalls: SyscallSchedule,
    pub syscall_counters: SyscallCounters,
    /// Serve Prometheus metrics here (`--metrics-addr`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The `node` label and the fleet view's name for this host.
    pub node_name: String,
    /// One history sample (`dsh top`'s sparklines) every this long.
    pub history_every: Duration,
}

/// Called after every sampling tick with the current table (the no-argument
/// `dsh` draws it).
pub type OnTick = Box<dyn FnMut(&[ContainerRow])>;

struct Agent {
    cfg: AgentConfig,
    trace: Option<trace::PendingTrace>,
    churn: churn::ChurnReader,
    signals: signals::SignalReader,
    /// Sampled syscall accounting's windows (None: exact or off).
    syscalls: Option<syscalls::SyscallSampling>,
    model: Model,
    probe: Probe,
    layout: CgroupLayout,
    hierarchies: Hierarchies,
    on_demand: discovery::OnDemand,
    /// Who made each new cgroup, judged as its mkdir arrives.
    vetting: discovery::Vetting,
    clock: BootClock,
    journal: Arc<Journal>,
    lines: broadcast::Sender<LogEntry>,
    meter: sample::SelfMeter,
    sampler: sample::Sampler,
    started: Instant,
    sample_lag_ms: f64,
    sample_duration_ms: f64,
    undecodable: u64,
    /// OOM victims' memory as read when their event arrived, until the
    /// event's turn comes (by victim cgroup and tgid).
    oom_at_arrival: HashMap<(CgroupId, u32), OomAtDeath>,
    /// Events waiting to be applied in kernel time order.
    held: reorder::Reorder,
    runtimes: runtimes::Runtimes,
    /// Where each tick's metrics snapshot goes, when metrics are served.
    metrics: Option<publish::Publisher>,
    /// Sampling ticks so far (housekeeping runs every so many).
    ticks: u64,
    history: history::History,
}

/// The socket and journal are root's: nobody else may even look.
pub fn prepare_state_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    Ok(api::state_dir::prepare(dir)?)
}

/// Raises the open-files limit before anything is opened, and says so.
fn raise_nofile() -> crate::fds::NofileLimit {
    match crate::fds::raise_soft_limit() {
        Ok(l) => {
            match l.raised_from {
                Some(from) => log::info!(
                    "dsh agent: open-files limit raised from {from} to {} (the hard limit)",
                    l.soft
                ),
                None => log::info!("dsh agent: open-files limit {}", l.soft),
            }
            l
        }
        Err(e) => {
            let l = crate::fds::nofile_limit().unwrap_or_default();
            log::warn!(
                "dsh agent: cannot raise the open-files limit ({e}); working within {}",
                l.soft
            );
            l
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM: each arm of the `select!` is one
/// kind of event, handled by one `Agent` method.
pub async fn run(cfg: AgentConfig, mut on_tick: Option<OnTick>) -> anyhow::Result<()> {
    let lifecycle::Started {
        mut agent,
        mut events,
        mut runtime_updates,
        mut asks,
        mut metrics_refreshes,
        tasks,
    } = lifecycle::start(cfg).await?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(agent.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            batch = events.next_batch() => agent.on_batch(batch, &events),
            scheduled = tick.tick() => agent.on_tick(scheduled, &events, &mut on_tick),
            _ = flush.tick() => agent.on_flush_tick(),
            Some(update) = runtime_updates.recv() => agent.on_runtime(update),
            Some((q, reply)) = asks.recv() => agent.ask(q, reply),
            Some(done) = metrics_refreshes.recv() => agent.on_metrics_refresh(done),
            _ = tokio::time::sleep_until(trace::deadline(&agent.trace)), if agent.trace.is_some() => {
                agent.finish_trace();
            }
            _ = tokio::time::sleep_until(syscalls::SyscallSampling::deadline(&agent.syscalls)), if agent.syscalls.is_some() => {
                agent.syscall_window_step();
            }
        }
    }
    agent.shutdown(events, tasks);
    Ok(())
}

impl Agent {
    fn on_event(&mut self, ev: Event) {
        let ts = self.clock.to_timestamp(ev.boot_ns);
        self.on_demand
            .ensure_for(&ev, &mut self.model, &self.layout, ts);
        let task = ev.task;
        let m = &mut self.model;
        match ev.kind {
            EventKind::CgroupMkdir {
                id,
                hierarchy_id,
                path,
                ..
            } => {
                let added = self
                    .vetting
                    .on_mkdir(m, &self.layout, id, hierarchy_id, &path, ts);
                if let Some(identity) = added.filter(|i| i.claims_an_id()) {
                    let key = self.model.key_for(&identity.runtime_id);
                    if self.model.get(key).is_some_and(|c| c.meta.is_none()) {
                        self.runtimes.lookup(&identity);
                    }
                }
            }
            EventKind::CgroupRmdir {
                id, hierarchy_id, ..
            } => {
                discovery::on_rmdir(m, self.hierarchies, id, hierarchy_id, ts);
                // Only these two hierarchies' ids key the kernel's maps.
                if hierarchy_id == self.hierarchies.attribution
                    || hierarchy_id == self.hierarchies.blkcg
                {
                    self.probe.forget_cgroup(id);
                }
            }
            EventKind::Exec { ref filename, .. }
                if model::container::is_runtime_reexec(&task.comm, filename) => {}
            EventKind::Exec { .. } => m.exec(task.cgroup_id, task.tgid, &task.comm, ts),
            EventKind::Exit {
                status, outside, ..
            } => {
                // The exit line's summary: CPU and memory peak now if the
                // cgroup still exists (else as read on arrival, or sampled).
                if self.model.is_main(task.cgroup_id, task.tgid)
                    && let Some(stats) = self.stats_now(task.cgroup_id)
                {
                    self.model.final_stats(task.cgroup_id, stats);
                }
                let by = outside
                    .into_iter()
                    .map(|s| ExternalSignal {
                        signal: s.signal,
                        sender_pid: s.pid,
                        sender_comm: s.comm,
                    })
                    .collect();
                self.model
                    .signalled_from_outside(task.cgroup_id, task.tgid, by);
                self.model
                    .exit(task.cgroup_id, task.tgid, &task.comm, status, ts);
            }
            EventKind::Oom {
                victim_tgid,
                victim_cgroup_id,
                memory,
                ..
            } => {
                let at_death = self
                    .oom_at_arrival
                    .remove(&(victim_cgroup_id, victim_tgid))
                    .unwrap_or_else(|| self.memory_at_kill(victim_cgroup_id, memory));
                self.model
                    .oom_kill(victim_cgroup_id, victim_tgid, at_death, ts);
            }
            EventKind::Listen {
                addr,
                port,
                listening,
            } => m.listen(task.cgroup_id, port, addr.to_string(), listening),
        }
    }

    /// As an event arrives, before it waits to be put in order: a main
    /// process's exit has its container's CPU and memory peak read now, as
    /// the runtime removes the cgroup within milliseconds.
    fn on_arrival(&mut self, ev: &Event) {
        self.vetting.on_arrival(ev, &self.layout);
        match ev.kind {
            EventKind::Exit { .. } if self.model.is_main(ev.task.cgroup_id, ev.task.tgid) => {
                if let Some(stats) = self.stats_now(ev.task.cgroup_id) {
                    self.model.final_stats(ev.task.cgroup_id, stats);
                }
            }
            // Without the kernel's figures, the victim's memory is read
            // now, not when the event's turn comes: by then the runtime has
            // often removed the cgroup.
            EventKind::Oom {
                victim_tgid,
                victim_cgroup_id,
                memory,
                ..
            } => {
                let at_death = self.memory_at_kill(victim_cgroup_id, memory);
                self.oom_at_arrival
                    .insert((victim_cgroup_id, victim_tgid), at_death);
            }
            _ => {}
        }
    }

    /// Memory use and limit of an OOM victim's container: the kernel's
    /// figures, read at the kill, when it has them; else read now.
    fn memory_at_kill(&self, cgroup_id: CgroupId, memory: Option<VictimMemory>) -> OomAtDeath {
        match memory {
            Some(m) => OomAtDeath {
                mem_used: Some(m.used_bytes),
                mem_limit: m.limit_bytes,
                sampled: false,
            },
            None => self.memory_now(cgroup_id),
        }
    }

    /// Memory use and limit of a container right now (at an OOM kill the
    /// cgroup still exists: the victim has not exited yet). A cgroup already
    /// gone gives its last sample, which is a lower bound of the use.
    fn memory_now(&self, cgroup_id: CgroupId) -> OomAtDeath {
        if let Some(s) = self.stats_now(cgroup_id) {
            return OomAtDeath::read_after_kill(&s);
        }
        let last = self
            .model
            .key_of_cgroup(cgroup_id)
            .and_then(|k| self.model.get(k))
            .and_then(|c| c.sample.stats.as_ref());
        OomAtDeath {
            mem_used: last.map(|s| s.mem_used_bytes()),
            mem_limit: last.and_then(|s| s.mem_limit_bytes),
            sampled: last.is_some(),
        }
    }

    /// A container's cgroup statistics read now.
    fn stats_now(&self, cgroup_id: CgroupId) -> Option<cgroup::stats::CgroupStats> {
        let c = self
            .model
            .key_of_cgroup(cgroup_id)
            .and_then(|k| self.model.get(k))?;
        cgroup::stats::read(&cgroup::stats_source(&self.layout, &c.identity.cgroup)).ok()
    }

    fn tick(&mut self) {
        let now = Timestamp::now();
        self.sampler
            .sample(&mut self.model, &self.probe, &self.layout, now);
        self.read_churn(now);
        self.read_signals(now);
        self.history.on_tick(&self.model, Instant::now());
        self.meter.update(&self.probe);
        if let Ok(chans) = self.probe.channel_stats() {
            for (name, c) in ["critical", "chatty"].iter().zip(chans.iter()) {
                let seen = self.meter.channels.iter().find(|s| s.name == *name);
                if c.lost > 0 && seen.is_some_and(|s| s.lost != c.lost) {
                    log::warn!("{name} channel: {} events lost so far", c.lost);
                }
            }
        }
    }

    /// Commits new log lines and container state (or has the journal hold
    /// them while it cannot write); then tells followers.
    fn flush(&mut self) {
        let mut entries = self.model.take_log();
        let changes = self.model.take_changes();
        self.journal.append(&mut entries, changes);
        for e in entries {
            let _ = self.lines.send(e);
        }
    }

    fn enforce_retention(&mut self) {
        match self.journal.enforce_retention(Timestamp::now()) {
            Ok(0) => {}
            Ok(n) => log::info!("journal: {n} old entries dropped"),
            Err(e) => log::warn!("journal retention: {}", chain(&e)),
        }
    }

    fn on_runtime(&mut self, update: RuntimeUpdate) {
        let was_connected = |rt: &runtimes::Runtimes, name| rt.is_connected(name);
        match update {
            RuntimeUpdate::Connected { runtime, .. } => {
                self.runtimes.on_update(&update);
                // Ask about what it may own (CRI-O cannot list).
                for c in self.model.containers() {
                    if c.cgroup_id.is_some()
                        && c.meta.is_none()
                        && runtimes::owned_by(&c.identity, runtime)
                    {
                        self.runtimes.lookup(&c.identity);
                    }
                }
            }
            RuntimeUpdate::Disconnected {
                runtime, ref error, ..
            } => {
                if crate::fds::exhausted_text(error) {
                    self.sampler.budget.failed(runtime, error.clone());
                }
                if was_connected(&self.runtimes, runtime) {
                    self.model.clear_meta(runtime);
                }
                self.runtimes.on_update(&update);
            }
            RuntimeUpdate::Container { id, meta } => {
                self.model.set_meta(&id, meta.map(|m| *m), Timestamp::now())
            }
        }
    }

    fn ask(&mut self, q: Ask, reply: oneshot::Sender<Reply>) {
        // A client that went away is not the agent's problem: sends may fail.
        match q {
            Ask::Trace { name, duration } => self.start_trace(&name, duration, reply),
            q => {
                let _ = reply.send(self.answer(q));
            }
        }
    }

    fn answer(&mut self, q: Ask) -> Reply {
        let now = Timestamp::now();
        match q {
            Ask::Ps { all } => {
                let mut rows = self.model.rows(all, now);
                rows.sort_by(|a, b| a.id.cmp(&b.id));
                Reply::Rows(rows)
            }
            Ask::Notes => match self.sampler.note(self.cfg.interval) {
                Some(note) => Reply::Warning(note),
                None => Reply::End,
            },
            Ask::Resolve { name } => match self.model.resolve(&name) {
                Ok(key) => match self.model.get(&key) {
                    Some(c) => Reply::Resolved(Box::new(ContainerRow::of(
                        c,
                        &self.model.rules,
                        self.model.syscall_accounting,
                        now,
                    ))),
                    None => Reply::Error(format!("container {name} vanished")),
                },
                Err(e) => Reply::Error(e.to_string()),
            },
            Ask::Incarnations { name } => match self.resolve_for_log(&name) {
                Ok(key) => Reply::Incarnations {
                    earlier: self.earlier_incarnations(&name, &key),
                    current: key,
                },
                Err(e) => Reply::Error(e),
            },
            Ask::Status => Reply::Status(Box::new(self.status())),
            Ask::Names => Reply::Names(self.model.names()),
            Ask::History { name } => match self.model.resolve(&name) {
                Ok(key) => Reply::History(Box::new(self.history.report(&key))),
                Err(e) => Reply::Error(e.to_string()),
            },
            Ask::Trace { .. } => Reply::Error("internal: trace asked the wrong way".into()),
        }
    }

    /// A name for `dsh log`: as `ps` knows it, else a container the agent
    /// has forgotten whose lines the journal still holds (by its last name,
    /// newest first, or a unique id prefix).
    fn resolve_for_log(&self, name: &str) -> Result<String, String> {
        let err = match self.model.resolve(name) {
            Ok(key) => return Ok(key),
            Err(e @ model::ResolveError::Ambiguous { .. }) => return Err(e.to_string()),
            Err(e) => e,
        };
        let known = self.journal.known();
        if let Some((key, _)) = known.iter().rev().find(|(k, n)| n == name || k == name) {
            return Ok(key.clone());
        }
        let hex = name.len() >= 4 && name.bytes().all(|b| b.is_ascii_hexdigit());
        let prefixed: Vec<&String> = known
            .iter()
            .map(|(k, _)| k)
            .filter(|k| hex && k.starts_with(name))
            .collect();
        match prefixed.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(err.to_string()),
        }
    }

    /// Earlier containers that bore `name`: those the journal alone still
    /// knows (forgotten by the agent), then those the agent knows.
    fn earlier_incarnations(&self, name: &str, key: &str) -> Vec<String> {
        let in_model = self.model.earlier_incarnations(name, key);
        let mut out: Vec<String> = self
            .journal
            .known()
            .into_iter()
            .filter(|(k, n)| n == name && k != key && self.model.get(k).is_none())
            .map(|(k, _)| k)
            .collect();
        out.extend(in_model);
        out
    }
}
