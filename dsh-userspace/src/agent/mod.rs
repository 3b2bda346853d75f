//! `dsh agent`: joins kernel events and counters (probe) with cgroup files
//! and runtime metadata into the model, writes the journal, serves the CLI.
mod discovery;
mod reorder;
mod sample;
mod server;
mod trace;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{broadcast, mpsc, oneshot},
};

use crate::{
    api::{self, MapFill, Reply, RuntimeStatus, StatusReport},
    cgroup,
    clock::BootClock,
    journal::{Journal, Retention},
    model::{
        Model,
        container::{ExternalSignal, OomAtDeath},
        entry::LogEntry,
        health::HealthRules,
        row::ContainerRow,
    },
    probe::{
        Probe, ProbeOptions,
        event::{Event, EventKind},
        layout::CgroupLayout,
    },
    runtime::{RuntimeUpdate, docker},
};
use discovery::Hierarchies;
use server::Ask;

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub state_dir: PathBuf,
    pub interval: Duration,
    pub docker_socket: String,
    pub rules: HealthRules,
    pub forget_after: SignedDuration,
    pub retention: Retention,
    pub syscall_latency: bool,
}

/// Called after every sampling tick with the current table (the no-argument
/// `dsh` draws it).
pub type OnTick = Box<dyn FnMut(&[ContainerRow])>;

struct Agent {
    cfg: AgentConfig,
    trace: Option<trace::PendingTrace>,
    model: Model,
    probe: Probe,
    layout: CgroupLayout,
    hierarchies: Hierarchies,
    on_demand: discovery::OnDemand,
    clock: BootClock,
    journal: Arc<Journal>,
    journal_errors: u64,
    lines: broadcast::Sender<LogEntry>,
    meter: sample::SelfMeter,
    sampler: sample::Sampler,
    started: Instant,
    sample_lag_ms: f64,
    sample_duration_ms: f64,
    undecodable: u64,
    docker: RuntimeStatus,
}

pub fn prepare_state_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // The socket and journal are root's: nobody else may even look.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))?;
    Ok(())
}

pub async fn run(cfg: AgentConfig, mut on_tick: Option<OnTick>) -> anyhow::Result<()> {
    let probe = Probe::load(ProbeOptions {
        syscall_latency: cfg.syscall_latency,
    })?;
    prepare_state_dir(&cfg.state_dir)?;
    let journal = Arc::new(Journal::open(
        &api::journal_path(&cfg.state_dir),
        cfg.retention,
    )?);
    let listener = server::bind(&api::socket_path(&cfg.state_dir))?;
    let mut probe = probe;
    let mut events = probe.event_rings()?.into_stream()?;
    let layout = probe.layout().clone();
    let mut model = Model::new(cfg.rules.clone(), cfg.forget_after);
    model.restore(journal.load_containers()?);
    let (lines, _) = broadcast::channel(4096);
    let meter = sample::SelfMeter::new(&probe);
    let mut agent = Agent {
        trace: None,
        hierarchies: Hierarchies::of(&layout),
        on_demand: discovery::OnDemand::default(),
        clock: BootClock::now(),
        model,
        probe,
        layout,
        journal: journal.clone(),
        journal_errors: 0,
        lines: lines.clone(),
        meter,
        sampler: sample::Sampler::default(),
        started: Instant::now(),
        sample_lag_ms: 0.0,
        sample_duration_ms: 0.0,
        undecodable: 0,
        docker: RuntimeStatus {
            name: "docker".to_owned(),
            connected: false,
            detail: "connecting".to_owned(),
        },
        cfg,
    };
    discovery::startup_scan(&mut agent.model, &agent.layout, Timestamp::now());
    agent.flush();
    // Loading parsed the kernel's BTF (megabytes) twice; hand those freed
    // pages back now, or the allocator keeps them in the agent's RSS forever.
    // SAFETY: malloc_trim only releases free memory; no pointer is touched.
    unsafe { libc::malloc_trim(0) };

    let (ask_tx, mut ask_rx) = mpsc::channel(64);
    let server = tokio::spawn(server::serve(listener, ask_tx, journal, lines));
    let (rt_tx, mut rt_rx) = mpsc::channel(256);
    let docker_task = tokio::spawn(docker::watch(agent.cfg.docker_socket.clone(), rt_tx));

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(agent.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(Duration::from_millis(200));
    let mut held = reorder::Reorder::default();
    let mut release = tokio::time::interval(Duration::from_millis(25));
    let mut ticks: u64 = 0;
    log::info!(
        "dsh agent: programs attached; {} containers; socket {}",
        agent.model.len(),
        api::socket_path(&agent.cfg.state_dir).display()
    );
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            batch = events.next_batch(EVENT_BATCH) => match batch {
                Ok(batch) => {
                    for ev in batch {
                        held.push(ev);
                    }
                    for ev in held.ready(events.read_up_to(), false) {
                        agent.on_event(ev);
                    }
                }
                Err(e) => log::warn!("event stream: {e}"),
            },
            _ = release.tick(), if !held.is_empty() => {
                // A ring's read mark moves only when it is read: look again.
                for ev in events.poll(EVENT_BATCH) {
                    held.push(ev);
                }
                for ev in held.ready(events.read_up_to(), false) {
                    agent.on_event(ev);
                }
            }
            scheduled = tick.tick() => {
                agent.sample_lag_ms = scheduled.elapsed().as_secs_f64() * 1e3;
                let t0 = Instant::now();
                agent.undecodable = events.undecodable;
                agent.tick();
                agent.sample_duration_ms = t0.elapsed().as_secs_f64() * 1e3;
                ticks += 1;
                // Every ~10 s: forget stale containers; every ~10 min: retention.
                let per_10s = (10_000 / agent.cfg.interval.as_millis().max(1) as u64).max(1);
                if ticks.is_multiple_of(per_10s) {
                    agent.model.housekeep(Timestamp::now());
                    // Give memory freed by forgotten containers back to the
                    // system, so churn leaves no lasting footprint.
                    // SAFETY: releases free memory only; no pointer is touched.
                    unsafe { libc::malloc_trim(0) };
                }
                if ticks % (per_10s * 60) == 1 {
                    agent.enforce_retention();
                }
                agent.flush();
                if let Some(f) = on_tick.as_mut() {
                    f(&agent.model.rows(false, Timestamp::now()));
                }
            }
            _ = flush.tick() => agent.flush(),
            Some(update) = rt_rx.recv() => agent.on_runtime(update),
            Some((q, reply)) = ask_rx.recv() => agent.ask(q, reply),
            _ = tokio::time::sleep_until(trace::deadline(&agent.trace)), if agent.trace.is_some() => {
                agent.finish_trace();
            }
        }
    }
    if agent.trace.is_some() {
        agent.finish_trace();
    }
    log::info!("dsh agent: stopping");
    docker_task.abort();
    server.abort();
    for ev in events.drain() {
        held.push(ev);
    }
    for ev in held.ready(0, true) {
        agent.on_event(ev);
    }
    agent.flush();
    log::info!(
        "dsh agent: {} events arrived behind later ones (ordering margin {} ms); \
         {} cgroups found from events ahead of their mkdir",
        held.late,
        held.margin_ns() / 1_000_000,
        agent.on_demand.found
    );
    let socket = api::socket_path(&agent.cfg.state_dir);
    agent.probe.detach_all();
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Records taken from each ring per read: enough to keep up with a flood,
/// few enough that the other ring is looked at often.
const EVENT_BATCH: usize = 1024;

impl Agent {
    /// An event may name a cgroup whose creation the agent has not seen
    /// (its mkdir lost, or read later): find it now rather than drop it.
    fn discover(&mut self, ev: &Event, ts: Timestamp) {
        let ids = match &ev.kind {
            EventKind::Exec { .. } | EventKind::Exit { .. } | EventKind::Listen { .. } => {
                [ev.task.cgroup_id, 0]
            }
            EventKind::Oom {
                victim_cgroup_id, ..
            } => [*victim_cgroup_id, 0],
            EventKind::SignalGenerate {
                target_cgroup_id, ..
            } => [*target_cgroup_id, ev.task.cgroup_id],
            _ => return,
        };
        for id in ids {
            self.on_demand.ensure(&mut self.model, &self.layout, id, ts);
        }
    }

    fn on_event(&mut self, ev: Event) {
        let ts = self.clock.to_timestamp(ev.boot_ns);
        self.discover(&ev, ts);
        let task = ev.task;
        let m = &mut self.model;
        match ev.kind {
            EventKind::CgroupMkdir {
                id,
                hierarchy_id,
                path,
                ..
            } => discovery::on_mkdir(m, self.hierarchies, id, hierarchy_id, &path, ts),
            EventKind::CgroupRmdir {
                id, hierarchy_id, ..
            } => discovery::on_rmdir(m, self.hierarchies, id, hierarchy_id, ts),
            EventKind::Exec { filename, .. } => {
                m.exec(task.cgroup_id, task.tgid, &task.comm, &filename, ts);
            }
            EventKind::Exit {
                exit_code,
                signal,
                core_dumped,
                ..
            } => m.exit(
                task.cgroup_id,
                task.tgid,
                &task.comm,
                exit_code,
                signal,
                core_dumped,
                ts,
            ),
            EventKind::Oom {
                victim_tgid,
                victim_cgroup_id,
                ..
            } => {
                let at_death = self.memory_now(victim_cgroup_id);
                self.model
                    .oom_kill(victim_cgroup_id, victim_tgid, at_death, ts);
            }
            EventKind::SignalGenerate {
                signal,
                result: 0,
                target_tgid,
                target_cgroup_id,
                ..
            } => {
                let sender = ExternalSignal {
                    signal,
                    sender_pid: task.tgid,
                    sender_comm: task.comm,
                };
                m.signal(task.cgroup_id, sender, target_cgroup_id, target_tgid, ts);
            }
            EventKind::Listen {
                addr,
                port,
                listening,
            } => m.listen(task.cgroup_id, port, addr.to_string(), listening),
            _ => {}
        }
    }

    /// Memory use and limit of a container right now (at an OOM kill the
    /// cgroup still exists: the victim has not exited yet).
    fn memory_now(&self, cgroup_id: u64) -> OomAtDeath {
        let stats = self
            .model
            .key_of_cgroup(cgroup_id)
            .and_then(|k| self.model.get(k))
            .and_then(|c| {
                cgroup::stats::read(&cgroup::stats_source(&self.layout, &c.identity.cgroup)).ok()
            });
        OomAtDeath {
            mem_used: stats.as_ref().map(|s| s.mem_used_bytes()),
            mem_limit: stats.and_then(|s| s.mem_limit_bytes),
        }
    }

    fn tick(&mut self) {
        self.sampler
            .sample(&mut self.model, &self.probe, &self.layout, Timestamp::now());
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

    /// Commits pending log lines and container state; then tells followers.
    fn flush(&mut self) {
        let mut entries = self.model.take_log();
        let changes = self.model.take_changes();
        match self.journal.append(&mut entries, &changes) {
            Ok(()) => {
                for e in entries {
                    let _ = self.lines.send(e);
                }
            }
            Err(e) => {
                // Counted and shown by `dsh status`; the lines are lost.
                self.journal_errors += 1;
                log::error!("journal: {e}; {} lines not written", entries.len());
            }
        }
    }

    fn enforce_retention(&mut self) {
        match self.journal.enforce_retention(Timestamp::now()) {
            Ok(0) => {}
            Ok(n) => log::info!("journal: {n} old entries dropped"),
            Err(e) => log::warn!("journal retention: {e}"),
        }
    }

    fn on_runtime(&mut self, update: RuntimeUpdate) {
        match update {
            RuntimeUpdate::Connected { runtime, version } => {
                self.docker = RuntimeStatus {
                    name: runtime.to_owned(),
                    connected: true,
                    detail: format!("version {version}"),
                };
            }
            RuntimeUpdate::Disconnected { runtime, error } => {
                if self.docker.connected {
                    self.model.clear_meta();
                }
                self.docker = RuntimeStatus {
                    name: runtime.to_owned(),
                    connected: false,
                    detail: error,
                };
            }
            RuntimeUpdate::Container { id, meta } => self.model.set_meta(&id, meta),
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
            Ask::Resolve { name } => match self.model.resolve(&name) {
                Ok(key) => match self.model.get(&key) {
                    Some(c) => {
                        Reply::Resolved(Box::new(ContainerRow::of(c, &self.model.rules, now)))
                    }
                    None => Reply::Error(format!("container {name} vanished")),
                },
                Err(e) => Reply::Error(e.to_string()),
            },
            Ask::Status => Reply::Status(Box::new(self.status())),
            Ask::Names => Reply::Names(self.model.names()),
            Ask::Trace { .. } => Reply::Error("internal: trace asked the wrong way".into()),
        }
    }

    fn status(&self) -> StatusReport {
        let block_entries = self.probe.block_stats().map_or(0, |m| m.len()) as u64;
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
            sample_lag_ms: self.sample_lag_ms,
            sample_duration_ms: self.sample_duration_ms,
            programs: self.meter.programs.clone(),
            channels: self.meter.channels.clone(),
            maps: vec![MapFill {
                name: "BLOCK_STATS".to_owned(),
                entries: block_entries,
                capacity: dsh_ebpf::MAX_BLOCK_CGROUPS as u64,
            }],
            undecodable_events: self.undecodable,
            journal_path: self.journal.path().display().to_string(),
            journal_bytes: self.journal.size_bytes(),
            journal_entries: self.journal.entry_count().unwrap_or(0),
            journal_errors: self.journal_errors,
            runtimes: vec![self.docker.clone()],
        }
    }
}
