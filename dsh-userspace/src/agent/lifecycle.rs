//! The agent's start, its sampling tick with housekeeping, and its shutdown:
//! the long arms of `run`'s `select!`, so that it reads as a table of events.
use std::{collections::HashMap, sync::Arc, time::Instant};

use jiff::Timestamp;
use tokio::{
    sync::{broadcast, mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    Agent, AgentConfig, OnTick, churn, discovery, discovery::Hierarchies, prepare_state_dir,
    publish, raise_nofile, reorder, runtimes, sample, server, server::Ask, signals, syscalls,
};
use crate::{
    api::{self, Reply},
    clock::BootClock,
    journal::Journal,
    model::{Model, syscalls::SyscallAccounting},
    probe::{EventStream, Probe, ProbeError, ProbeOptions, event::Event},
    report::chain,
    runtime::RuntimeUpdate,
};

/// What `start` hands the loop: the agent and the sources it waits on.
pub(super) struct Started {
    pub agent: Agent,
    pub events: EventStream,
    pub runtime_updates: mpsc::Receiver<RuntimeUpdate>,
    pub asks: mpsc::Receiver<(Ask, oneshot::Sender<Reply>)>,
    /// Scrapes that found the metrics snapshot stale.
    pub metrics_refreshes: mpsc::Receiver<publish::Refresh>,
    pub tasks: Tasks,
}

/// Tasks spawned at start, stopped at shutdown.
pub(super) struct Tasks {
    server: JoinHandle<()>,
    metrics: Option<JoinHandle<()>>,
}

/// Loads the kernel programs, opens the journal and the socket, restores
/// and scans the containers, and starts the servers and runtime clients.
pub(super) async fn start(cfg: AgentConfig) -> anyhow::Result<Started> {
    let nofile = raise_nofile();
    let mut probe = Probe::load(ProbeOptions {
        syscall_latency: cfg.syscall_latency,
        syscalls_detached: cfg.syscalls.accounting != SyscallAccounting::Exact,
        syscall_counters: cfg.syscall_counters,
        ..ProbeOptions::default()
    })?;
    // Before the socket: a port in use stops the start with nothing left behind.
    let metrics_listener = match cfg.metrics_addr {
        Some(addr) => Some(publish::bind(addr).await?),
        None => None,
    };
    prepare_state_dir(&cfg.state_dir)?;
    let journal = Arc::new(Journal::open(
        &api::journal_path(&cfg.state_dir),
        cfg.retention,
    ));
    let listener = server::bind(&api::socket_path(&cfg.state_dir))?;
    let events = probe.event_rings()?.into_stream()?;
    let layout = probe.layout().clone();
    let mut model = Model::new(cfg.rules.clone(), cfg.forget_after);
    model.restore(journal.load_containers()?);
    model.syscall_accounting = cfg.syscalls.accounting;
    let (lines, _) = broadcast::channel(4096);
    let meter = sample::SelfMeter::new(&probe);
    let (rt_tx, runtime_updates) = mpsc::channel(256);
    let hierarchies = Hierarchies::of(&layout);
    let mut agent = Agent {
        trace: None,
        churn: churn::ChurnReader::default(),
        signals: signals::SignalReader::default(),
        syscalls: syscalls::SyscallSampling::new(cfg.syscalls),
        hierarchies,
        on_demand: discovery::OnDemand::default(),
        vetting: discovery::Vetting::new(hierarchies),
        clock: BootClock::now(),
        model,
        probe,
        layout,
        journal: journal.clone(),
        lines: lines.clone(),
        meter,
        sampler: sample::Sampler::new(nofile),
        started: Instant::now(),
        sample_lag_ms: 0.0,
        sample_duration_ms: 0.0,
        undecodable: 0,
        oom_at_arrival: HashMap::new(),
        held: reorder::Reorder::default(),
        runtimes: runtimes::Runtimes::start(&cfg.sockets, &rt_tx),
        metrics: None,
        history: super::history::History::new(cfg.history_every),
        ticks: 0,
        cfg,
    };
    discovery::startup_scan(&mut agent.model, &agent.layout, Timestamp::now());
    agent.seed_main_processes();
    agent.flush();
    // Loading parsed the kernel's BTF (megabytes) twice; hand those freed
    // pages back now, or the allocator keeps them in the agent's RSS forever.
    // SAFETY: malloc_trim only releases free memory; no pointer is touched.
    unsafe { libc::malloc_trim(0) };

    let (ask_tx, asks) = mpsc::channel(64);
    let server = tokio::spawn(server::serve(listener, ask_tx, journal, lines));
    let (refresh_tx, metrics_refreshes) = mpsc::channel(64);
    let metrics = metrics_listener.map(|l| agent.serve_metrics(l, refresh_tx));
    log::info!(
        "dsh agent: programs attached; {} containers; socket {}",
        agent.model.len(),
        api::socket_path(&agent.cfg.state_dir).display()
    );
    Ok(Started {
        agent,
        events,
        runtime_updates,
        asks,
        metrics_refreshes,
        tasks: Tasks { server, metrics },
    })
}

impl Agent {
    /// Every drain tick or wake-up: the rings' new records wait in `held`
    /// until both rings have been read past them.
    pub(super) fn on_batch(&mut self, batch: Result<Vec<Event>, ProbeError>, events: &EventStream) {
        match batch {
            Ok(batch) => {
                for ev in batch {
                    self.on_arrival(&ev);
                    self.held.push(ev);
                }
                for ev in self.held.ready(events.read_up_to(), false) {
                    self.on_event(ev);
                }
            }
            Err(e) => log::warn!("{}", chain(&e)),
        }
    }

    /// The sampling tick, then housekeeping: every ~10 s stale containers
    /// are forgotten, every ~10 min the journal's retention is enforced.
    pub(super) fn on_tick(
        &mut self,
        scheduled: tokio::time::Instant,
        events: &EventStream,
        on_tick: &mut Option<OnTick>,
    ) {
        self.sample_lag_ms = scheduled.elapsed().as_secs_f64() * 1e3;
        let t0 = Instant::now();
        self.undecodable = events.undecodable;
        self.stop_abandoned_trace();
        self.tick();
        self.sample_duration_ms = t0.elapsed().as_secs_f64() * 1e3;
        self.publish_metrics();
        self.ticks += 1;
        let per_10s = (10_000 / self.cfg.interval.as_millis().max(1) as u64).max(1);
        if self.ticks.is_multiple_of(per_10s) {
            self.model.housekeep(Timestamp::now());
            // Give memory freed by forgotten containers back to the
            // system, so churn leaves no lasting footprint.
            // SAFETY: releases free memory only; no pointer is touched.
            unsafe { libc::malloc_trim(0) };
        }
        if self.ticks % (per_10s * 60) == 1 {
            self.enforce_retention();
        }
        self.flush();
        if let Some(f) = on_tick.as_mut() {
            f(&self.model.rows(false, Timestamp::now()));
        }
    }

    /// Between ticks: the journal's upkeep and new lines committed.
    pub(super) fn on_flush_tick(&mut self) {
        self.journal.maintain();
        self.flush();
    }

    /// Ends a running trace, stops the servers, applies the events still in
    /// the rings, closes the journal and detaches the programs.
    pub(super) fn shutdown(mut self, mut events: EventStream, tasks: Tasks) {
        if self.trace.is_some() {
            self.finish_trace();
        }
        log::info!("dsh agent: stopping");
        self.runtimes.stop();
        tasks.server.abort();
        if let Some(t) = tasks.metrics {
            t.abort();
        }
        for ev in events.drain() {
            self.held.push(ev);
        }
        for ev in self.held.ready(0, true) {
            self.on_event(ev);
        }
        self.flush();
        log::info!(
            "dsh agent: {} events arrived behind later ones (ordering margin {} ms); \
             {} cgroups found from events ahead of their mkdir; \
             {} cgroups shaped like a container or unit but not made by root, listed as themselves",
            self.held.late,
            self.held.margin_ns() / 1_000_000,
            self.on_demand.found,
            self.vetting.not_root_made
        );
        self.journal.close();
        let socket = api::socket_path(&self.cfg.state_dir);
        self.probe.detach_all();
        let _ = std::fs::remove_file(socket);
    }
}
