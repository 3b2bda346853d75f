//! One sampling tick: cgroup files and kernel counters for every live
//! container (no process spawned, no directory walked), and the agent's own
//! cost for `dsh status`.
use std::{
    collections::{HashMap, HashSet},
    ffi::OsString,
    fs::File,
    time::Instant,
};

use jiff::Timestamp;

use crate::{
    api::{ChannelStatus, ProgramStatus},
    cgroup::{
        self, CgroupId,
        layout::CgroupLayout,
        netns::{NetnsIds, NetnsReader, NetnsView, host_netns},
        stats::{StatsError, StatsReader},
    },
    fds::{self, NofileLimit},
    model::{
        Model,
        container::{Counters, NetSample},
        state::State,
        syscalls::SyscallAccounting,
    },
    probe::{Probe, ProgramStats},
    report::chain,
};

use super::budget::{FdBudget, Plan, plan};

/// A source's directories, each once (v1 `cpu` and `cpuacct` are often one).
fn dedup_dirs(src: &cgroup::stats::StatsSource) -> Vec<&std::path::Path> {
    let mut dirs = src.dirs();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

/// Reads every live container's statistics into the model, keeping the
/// files and cgroup directories it reads open between ticks (an open costs
/// more than the read itself on cgroupfs), as far as the descriptor budget
/// allows (`budget`).
pub struct Sampler {
    stats: StatsReader,
    /// Container key → its attribution cgroup directory, for syscall counters.
    dirs: HashMap<String, (CgroupId, File)>,
    net: NetnsReader,
    net_ids: NetnsIds,
    pub budget: FdBudget,
    plan: Plan,
    ticks: u64,
}

impl Sampler {
    pub fn new(limit: NofileLimit) -> Self {
        Self {
            stats: StatsReader::default(),
            dirs: HashMap::new(),
            net: NetnsReader::default(),
            net_ids: NetnsIds::default(),
            budget: FdBudget::new(limit),
            plan: Plan::All,
            ticks: 0,
        }
    }

    pub fn sample(
        &mut self,
        model: &mut Model,
        probe: &Probe,
        layout: &CgroupLayout,
        now: Timestamp,
    ) {
        self.ticks += 1;
        let live = model.live_keys();
        let busy: Vec<(&str, f64)> = live
            .iter()
            .filter_map(|k| Some((k.as_str(), model.get(k)?.sample.cpu_used_cores)))
            .collect();
        self.plan = plan(
            &busy,
            self.budget.for_containers(),
            self.budget.per_container(),
        );
        drop(busy);
        let mut block: HashMap<String, (u64, u64)> = HashMap::new();
        match probe.block_stats() {
            Ok(stats) => {
                for (id, s) in stats {
                    let key = model.key_of_blkcg(id).or_else(|| model.key_of_cgroup(id));
                    if let Some(key) = key {
                        let e = block.entry(key.to_owned()).or_default();
                        e.0 += s.read_bytes;
                        e.1 += s.write_bytes;
                    }
                }
            }
            Err(e) => log::warn!("reading block counters: {}", chain(&e)),
        }
        let mut nets = self.net_samples(model, &live);
        let mut kept_dirs: HashSet<OsString> = HashSet::new();
        let (mut held, mut most_held, mut kept) = (0, 0, 0);
        for key in &live {
            let Some(c) = model.get(key) else { continue };
            let (path, cgroup_id) = (
                c.identity.cgroup.clone(),
                c.cgroup_id.unwrap_or(CgroupId::new(0)),
            );
            let keep = self.plan.keeps(key);
            if !self.plan.due(key, self.ticks) {
                continue;
            }
            let src = cgroup::stats_source(layout, &path);
            if keep {
                kept_dirs.extend(src.dirs().into_iter().map(|d| d.as_os_str().to_owned()));
            }
            let read = self.stats.read_keeping(&src, keep);
            if keep {
                kept += 1;
                let mine = self.held_by(key, &src);
                held += mine;
                most_held = most_held.max(mine);
            }
            let stats = match read {
                Ok(s) => s,
                Err(StatsError::Vanished(_)) => {
                    model.sample_vanished(key);
                    continue;
                }
                Err(e) => {
                    if let StatsError::Io { source, .. } = &e
                        && fds::exhausted(source)
                    {
                        self.budget.failed("cgroup files", chain(&e));
                    }
                    log::debug!("{}", chain(&e));
                    continue;
                }
            };
            // Exact counting only: sampled counters are read when a window
            // ends (`syscall_counts`), and counters that are off never move.
            let (syscalls, syscall_errors) = if model.syscall_accounting == SyscallAccounting::Exact
            {
                self.syscalls_of(key, cgroup_id, layout, &path, probe)
            } else {
                (0, 0)
            };
            let (block_read, block_write) = block.get(key).copied().unwrap_or_default();
            let counters = Counters {
                at: None,
                cpu_ns: 0,
                syscalls,
                syscall_errors,
                block_read,
                block_write,
                net: None,
            };
            let net = nets.remove(key).unwrap_or_default();
            model.record_sample(key, stats, counters, net, now);
        }
        // Let go of cgroups no longer live (an open file pins a removed
        // cgroup), and of those over the budget.
        self.stats.retain(|dir| kept_dirs.contains(dir.as_os_str()));
        let plan = &self.plan;
        let live: HashSet<&String> = live.iter().collect();
        self.dirs.retain(|k, _| live.contains(k) && plan.keeps(k));
        self.net.retain(|k| plan.keeps(k));
        let slow = match plan {
            Plan::All => 0,
            Plan::Only(keys) => live.len().saturating_sub(keys.len()),
        };
        self.budget.after_tick(held, most_held, kept, slow);
    }

    /// Descriptors held for one container: its cgroup files, its
    /// directory, its namespace's files.
    fn held_by(&self, key: &str, src: &cgroup::stats::StatsSource) -> u64 {
        let files: usize = dedup_dirs(src)
            .iter()
            .map(|d| self.stats.open_files_in(d))
            .sum();
        (files + usize::from(self.dirs.contains_key(key)) + self.net.held(key)) as u64
    }

    /// `dsh ps`'s note while containers are read less often.
    pub fn note(&self, interval: std::time::Duration) -> Option<String> {
        self.budget.note(interval)
    }

    /// Every live container's syscall counters: (key, cgroup id, calls, errors).
    pub fn syscall_counts(
        &mut self,
        model: &Model,
        probe: &Probe,
        layout: &CgroupLayout,
    ) -> Vec<(String, CgroupId, u64, u64)> {
        let mut out = Vec::new();
        for key in model.live_keys() {
            let Some(c) = model.get(&key) else { continue };
            let Some(cgroup_id) = c.cgroup_id else {
                continue;
            };
            let path = c.identity.cgroup.clone();
            let (calls, errors) = self.syscalls_of(&key, cgroup_id, layout, &path, probe);
            out.push((key, cgroup_id, calls, errors));
        }
        let plan = &self.plan;
        self.dirs.retain(|k, _| plan.keeps(k));
        out
    }

    /// One container's cumulative (calls, errors); zero before its first
    /// counted syscall.
    fn syscalls_of(
        &mut self,
        key: &str,
        cgroup_id: CgroupId,
        layout: &CgroupLayout,
        path: &str,
        probe: &Probe,
    ) -> (u64, u64) {
        self.dir(key, cgroup_id, layout, path)
            .and_then(|dir| probe.syscall_stats_of(dir).ok().flatten())
            .map_or((0, 0), |s| (s.count, s.errors))
    }

    /// Every running container's network namespace, through its main
    /// process. A namespace several containers share (a pod, `--network
    /// container:X`) is read once and reported under one of them, the
    /// earliest created (sandboxes aside); the host's namespace is never read
    /// (it is no container's: hundreds of plain cgroups live in it).
    fn net_samples(&mut self, model: &Model, live: &[String]) -> HashMap<String, NetSample> {
        let host = host_netns();
        // Each running container's namespace: a stat, not a read.
        let mut members: Vec<(&String, u32, u64)> = Vec::new();
        for key in live {
            let Some(c) = model.get(key) else { continue };
            let Some(pid) = c.main_tgid.filter(|_| c.state == State::Running) else {
                continue;
            };
            match self.net_ids.of(key, pid) {
                Ok(ns) => members.push((key, pid, ns)),
                Err(e) => log::debug!("netns of {key} (pid {pid}): {e}"),
            }
        }
        let rank = |k: &str| {
            model
                .get(k)
                .map(|c| (c.sandbox, c.created_at, k.to_owned()))
        };
        // Namespace → the container that reports it, and how many share it.
        let mut owner: HashMap<u64, (&String, u32)> = HashMap::new();
        let mut sharers: HashMap<u64, usize> = HashMap::new();
        for &(key, pid, ns) in &members {
            if Some(ns) == host {
                continue;
            }
            *sharers.entry(ns).or_default() += 1;
            let e = owner.entry(ns).or_insert((key, pid));
            if rank(key) < rank(e.0) {
                *e = (key, pid);
            }
        }
        // Over budget, a namespace is read on the ticks one of its
        // containers is.
        let due: HashSet<u64> = members
            .iter()
            .filter(|(k, ..)| self.plan.due(k, self.ticks))
            .map(|&(_, _, ns)| ns)
            .collect();
        let mut views: HashMap<u64, NetnsView> = HashMap::new();
        for (&ns, &(key, pid)) in owner.iter().filter(|(ns, _)| due.contains(ns)) {
            match self.net.read(key, pid, ns) {
                Ok(v) => {
                    views.insert(ns, v);
                }
                Err(e) => log::debug!("netns of {key} (pid {pid}): {e}"),
            }
        }
        let running: HashSet<&str> = members.iter().map(|(k, _, _)| k.as_str()).collect();
        self.net_ids.retain(|k| running.contains(k));
        let readers: HashSet<&str> = owner.values().map(|(k, _)| k.as_str()).collect();
        self.net.retain(|k| readers.contains(k));
        members
            .iter()
            .filter_map(|&(key, _, ns)| {
                if Some(ns) == host {
                    let sample = NetSample {
                        shared_with: Some("host".to_owned()),
                        ..NetSample::default()
                    };
                    return Some((key.clone(), sample));
                }
                let v = views.get(&ns)?;
                let (o, _) = owner.get(&ns)?;
                let own = *o == key;
                let sample = NetSample {
                    counters: own.then_some(v.counters),
                    shared_with: (!own)
                        .then(|| model.get(o).map(|c| c.display_id().to_owned()))
                        .flatten(),
                    addrs: v.addrs.clone(),
                    // Listening sockets are the namespace's: one container's
                    // only when no other container shares it.
                    listen_ports: if own && sharers.get(&ns) == Some(&1) {
                        v.listen_ports.clone()
                    } else {
                        Vec::new()
                    },
                };
                Some((key.clone(), sample))
            })
            .collect()
    }

    /// The container's cgroup directory, opened once per incarnation.
    fn dir(
        &mut self,
        key: &str,
        cgroup_id: CgroupId,
        layout: &CgroupLayout,
        path: &str,
    ) -> Option<&File> {
        if self.dirs.get(key).is_none_or(|(id, _)| *id != cgroup_id) {
            let dir = super::discovery::attribution_dir(layout, path)?;
            let file = File::open(dir).ok()?;
            self.dirs.insert(key.to_owned(), (cgroup_id, file));
        }
        self.dirs.get(key).map(|(_, f)| f)
    }
}

/// The agent's own CPU time (ns) and resident memory (bytes).
pub fn self_usage() -> (u64, u64) {
    let rss = procfs::process::Process::myself()
        .and_then(|p| p.statm())
        .map_or(0, |m| m.resident * procfs::page_size());
    let cpu = nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .map_or(0, |t| {
            t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
        });
    (cpu, rss)
}

/// Rates between two readings of the agent's own counters.
pub struct SelfMeter {
    prev_at: Instant,
    prev_cpu_ns: u64,
    prev_programs: Vec<ProgramStats>,
    prev_events: Vec<u64>,
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub programs: Vec<ProgramStatus>,
    pub channels: Vec<ChannelStatus>,
}

impl SelfMeter {
    pub fn new(probe: &Probe) -> Self {
        Self {
            prev_at: Instant::now(),
            prev_cpu_ns: self_usage().0,
            prev_programs: probe.program_stats(),
            prev_events: Vec::new(),
            cpu_percent: 0.0,
            rss_bytes: 0,
            programs: Vec::new(),
            channels: Vec::new(),
        }
    }

    /// Cumulative runs and run time per program, as of the last update.
    pub fn program_totals(&self) -> &[ProgramStats] {
        &self.prev_programs
    }

    /// Call once per tick; rates cover the time since the last call.
    pub fn update(&mut self, probe: &Probe) {
        let dt = self.prev_at.elapsed().as_secs_f64().max(1e-3);
        self.prev_at = Instant::now();
        let (cpu, rss) = self_usage();
        self.cpu_percent = cpu.saturating_sub(self.prev_cpu_ns) as f64 / 1e9 / dt * 100.0;
        self.prev_cpu_ns = cpu;
        self.rss_bytes = rss;
        let now = probe.program_stats();
        self.programs = now
            .iter()
            .map(|p| {
                let before = self.prev_programs.iter().find(|q| q.name == p.name);
                let runs = p.run_count - before.map_or(0, |b| b.run_count.min(p.run_count));
                let ns = p.run_time_ns - before.map_or(0, |b| b.run_time_ns.min(p.run_time_ns));
                ProgramStatus {
                    name: p.name.clone(),
                    attached: p.attached,
                    runs_per_s: runs as f64 / dt,
                    avg_ns_per_run: if runs > 0 {
                        ns as f64 / runs as f64
                    } else if p.run_count > 0 {
                        p.run_time_ns as f64 / p.run_count as f64
                    } else {
                        0.0
                    },
                    runs_total: p.run_count,
                    run_time_ns_total: p.run_time_ns,
                }
            })
            .collect();
        self.prev_programs = now;
        if let Ok(chans) = probe.channel_stats() {
            let names = ["critical", "chatty"];
            self.channels = chans
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let before = self.prev_events.get(i).copied().unwrap_or(c.events);
                    ChannelStatus {
                        name: names.get(i).copied().unwrap_or("other").to_owned(),
                        events: c.events,
                        lost: c.lost,
                        events_per_s: c.events.saturating_sub(before) as f64 / dt,
                    }
                })
                .collect();
            self.prev_events = chans.iter().map(|c| c.events).collect();
        }
    }
}
