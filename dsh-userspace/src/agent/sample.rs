//! One sampling tick: cgroup files and kernel counters for every live
//! container (no process spawned, no directory walked), and the agent's own
//! cost for `dsh status`.
use std::{
    collections::{HashMap, HashSet},
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
        stats::{CgroupStats, StatsError, StatsReader, StatsSource},
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

/// A container's statistics this tick: its CPU time, then every other
/// file only if that moved; if it did not (none of its tasks ran), what
/// changes without running is read again every `IDLE_REFRESH_EVERY` ticks
/// and the rest kept (`StatsReader::refresh_idle`).
fn read_stats(
    reader: &mut StatsReader,
    known: &mut Known,
    keep: bool,
    tick: u64,
) -> Result<CgroupStats, StatsError> {
    let cpu = reader.read_cpu(&known.src, keep)?;
    if let Some(last) = &known.stats
        && cpu.is_some_and(|ns| ns == last.cpu_usage_ns)
    {
        if tick < known.refresh_by {
            return Ok(last.clone());
        }
        let stats = reader.refresh_idle(&known.src, keep, last)?;
        known.stats = Some(stats.clone());
        known.refresh_by = tick + IDLE_REFRESH_EVERY;
        return Ok(stats);
    }
    let stats = reader.read_keeping(&known.src, keep)?;
    known.stats = Some(stats.clone());
    known.refresh_by = tick + IDLE_REFRESH_EVERY;
    Ok(stats)
}

/// A container's fixed offset in 0..n, so containers' periodic work is
/// spread over ticks rather than all on one.
fn spread(key: &str, n: u64) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() % n.max(1)
}

/// A source's directories, each once (v1 `cpu` and `cpuacct` are often one).
fn dedup_dirs(src: &StatsSource) -> Vec<&std::path::Path> {
    let mut dirs = src.dirs();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

/// What can change in an idle container (memory: reclaim; limits; block
/// I/O: write-back; pressure) is read again this often (ticks). Every
/// other file is read whenever its CPU time moved.
const IDLE_REFRESH_EVERY: u64 = 10;

/// Which containers keep their files open is decided again this often
/// (ticks), and descriptors are measured as often.
const REPLAN_EVERY: u64 = 10;

/// Files no longer read are let go at least this often (ticks), besides
/// whenever the set of live containers changes.
const RETAIN_EVERY: u64 = 30;

/// A running container's namespace figures this tick.
enum NetUpdate {
    /// Not running, or its namespace not read: no figures.
    None,
    /// As last sampled (the host's namespace).
    Unchanged,
    New(Box<NetSample>),
}

/// What the sampler keeps of a container between ticks.
struct Known {
    cgroup_id: CgroupId,
    /// Where its files are (built once, not per tick).
    src: StatsSource,
    /// The statistics of the last read, and the tick by which an idle
    /// container's changing figures are read again.
    stats: Option<CgroupStats>,
    refresh_by: u64,
}

/// Reads every live container's statistics into the model, keeping the
/// files and cgroup directories it reads open between ticks (an open costs
/// more than the read itself on cgroupfs), as far as the descriptor budget
/// allows (`budget`).
///
/// A container whose CPU time has not moved since the last tick ran
/// nothing: its other figures are those of its last read; what changes
/// without running (memory, limits, block I/O, pressure) is read again
/// every `IDLE_REFRESH_EVERY` ticks, the counters only running moves
/// (throttling, pids, memory peak and limit hits, OOM kills) when its CPU
/// moves again. An idle container then costs one small read a tick.
pub struct Sampler {
    stats: StatsReader,
    /// The live containers' keys of the last tick, updated in place when
    /// the model's `live_epoch` (here as of then) moved.
    live: Vec<String>,
    live_epoch: Option<u64>,
    known: HashMap<String, Known>,
    /// The live set when files were last let go (its size, the sum of its
    /// cgroup ids), and when.
    retained: (usize, u64, u64),
    /// Descriptors container files held when last measured (all, most by
    /// one, containers measured).
    held: (u64, u64, usize),
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
            live: Vec::new(),
            live_epoch: None,
            known: HashMap::new(),
            retained: (0, 0, 0),
            held: (0, 0, 0),
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
        let mut live = std::mem::take(&mut self.live);
        // Walking every row for its cgroup costs a cache miss a row.
        if self.live_epoch != Some(model.live_epoch()) {
            model.live_keys_into(&mut live);
            self.live_epoch = Some(model.live_epoch());
        }
        // Planned again every few ticks (a sort and a set of every key), or
        // as soon as the containers no longer fit.
        let per = self.budget.per_container();
        let outgrown =
            self.plan == Plan::All && live.len() as u64 * per > self.budget.for_containers();
        let replan = self.ticks % REPLAN_EVERY == 1 || outgrown;
        if replan {
            let busy: Vec<(&str, f64)> = live
                .iter()
                .filter_map(|k| Some((k.as_str(), model.get(k)?.sample.cpu_used_cores)))
                .collect();
            self.plan = plan(&busy, self.budget.for_containers(), per);
        }
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
        match probe.tcp_connects() {
            Ok(stats) => {
                for (id, s) in stats {
                    if let Some(key) = model.key_of_cgroup(id).map(str::to_owned) {
                        model.record_tcp_connects(&key, s, now);
                    }
                }
            }
            Err(e) => log::warn!("reading TCP connect counters: {}", chain(&e)),
        }
        super::sample_tcp::record(model, probe, &live, now);
        let mut nets = self.net_samples(model, &live);
        // Descriptors are measured every few ticks (a dozen look-ups each).
        let measure = self.ticks % REPLAN_EVERY == 1;
        let (mut held, mut most_held, mut kept) = (0, 0, 0);
        let mut fingerprint = (0usize, 0u64);
        for (i, key) in live.iter().enumerate() {
            let Some(c) = model.get(key) else { continue };
            let cgroup_id = c.cgroup_id.unwrap_or(CgroupId::new(0));
            fingerprint = (
                fingerprint.0 + 1,
                fingerprint.1.wrapping_add(cgroup_id.get()),
            );
            let keep = self.plan.keeps(key);
            if !self.plan.due(key, self.ticks) {
                continue;
            }
            let known = match self.known.get_mut(key) {
                Some(k) if k.cgroup_id == cgroup_id => k,
                _ => {
                    let first_refresh = self.ticks + 1 + spread(key, IDLE_REFRESH_EVERY);
                    self.known.entry(key.clone()).insert_entry(Known {
                        cgroup_id,
                        src: cgroup::stats_source(layout, &c.identity.cgroup),
                        stats: None,
                        refresh_by: first_refresh,
                    });
                    match self.known.get_mut(key) {
                        Some(k) => k,
                        None => continue,
                    }
                }
            };
            let read = read_stats(&mut self.stats, known, keep, self.ticks);
            if keep && measure {
                kept += 1;
                let src = known.src.clone();
                let mine = self.held_by(key, &src);
                held += mine;
                most_held = most_held.max(mine);
            }
            let stats = match read {
                Ok(s) => s,
                Err(StatsError::Vanished(_)) => {
                    self.known.remove(key);
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
            let (syscalls, syscall_errors, fd_limit_errors) =
                if model.syscall_accounting == SyscallAccounting::Exact {
                    let path = c.identity.cgroup.clone();
                    self.syscalls_of(key, cgroup_id, layout, &path, probe)
                } else {
                    (0, 0, 0)
                };
            let (block_read, block_write) = block.get(key).copied().unwrap_or_default();
            let counters = Counters {
                at: None,
                cpu_ns: 0,
                syscalls,
                syscall_errors,
                fd_limit_errors,
                block_read,
                block_write,
                net: None,
            };
            let net = match std::mem::replace(&mut nets[i], NetUpdate::None) {
                NetUpdate::None => Some(NetSample::default()),
                NetUpdate::Unchanged => None,
                NetUpdate::New(n) => Some(*n),
            };
            model.record_sample(key, stats, counters, net, now);
        }
        // Let go of cgroups no longer live (an open file pins a removed
        // cgroup) and of those over the budget: when the live set changed,
        // when over budget (those read slowly open theirs for one read
        // only) and every `RETAIN_EVERY` ticks.
        let (n, sum, at) = self.retained;
        if (n, sum) != fingerprint || replan || self.ticks >= at + RETAIN_EVERY {
            self.let_go(&live, fingerprint);
        }
        let slow = match &self.plan {
            Plan::All => 0,
            Plan::Only(keys) => live.len().saturating_sub(keys.len()),
        };
        if measure {
            self.held = (held, most_held, kept);
        }
        let (held, most_held, kept) = self.held;
        self.budget.after_tick(held, most_held, kept, slow);
        self.live = live;
    }

    /// Closes the files of containers no longer live or over the budget.
    fn let_go(&mut self, live: &[String], fingerprint: (usize, u64)) {
        self.retained = (fingerprint.0, fingerprint.1, self.ticks);
        let plan = &self.plan;
        let live: HashSet<&String> = live.iter().collect();
        self.known.retain(|k, _| live.contains(k));
        let kept_dirs: HashSet<&std::ffi::OsStr> = self
            .known
            .iter()
            .filter(|(k, _)| plan.keeps(k))
            .flat_map(|(_, known)| known.src.dirs())
            .map(std::path::Path::as_os_str)
            .collect();
        self.stats.retain(|dir| kept_dirs.contains(dir.as_os_str()));
        self.dirs.retain(|k, _| live.contains(k) && plan.keeps(k));
        self.net.retain(|k| plan.keeps(k));
    }

    /// Descriptors held for one container: its cgroup files, its
    /// directory, its namespace's files.
    fn held_by(&self, key: &str, src: &StatsSource) -> u64 {
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

    /// Every live container's syscall counters: (key, cgroup id, [calls,
    /// errors, EMFILE/ENFILE]).
    pub fn syscall_counts(
        &mut self,
        model: &Model,
        probe: &Probe,
        layout: &CgroupLayout,
    ) -> Vec<(String, CgroupId, [u64; 3])> {
        let mut out = Vec::new();
        for key in model.live_keys() {
            let Some(c) = model.get(&key) else { continue };
            let Some(cgroup_id) = c.cgroup_id else {
                continue;
            };
            let path = c.identity.cgroup.clone();
            let (calls, errors, fds) = self.syscalls_of(&key, cgroup_id, layout, &path, probe);
            out.push((key, cgroup_id, [calls, errors, fds]));
        }
        let plan = &self.plan;
        self.dirs.retain(|k, _| plan.keeps(k));
        out
    }

    /// One container's cumulative (calls, errors, EMFILE/ENFILE); zero
    /// before its first counted syscall.
    fn syscalls_of(
        &mut self,
        key: &str,
        cgroup_id: CgroupId,
        layout: &CgroupLayout,
        path: &str,
        probe: &Probe,
    ) -> (u64, u64, u64) {
        self.dir(key, cgroup_id, layout, path)
            .and_then(|dir| probe.syscall_stats_of(dir).ok().flatten())
            .map_or((0, 0, 0), |s| (s.count, s.errors, s.fd_limit_errors))
    }

    /// Every running container's network namespace, through its main
    /// process. A namespace several containers share (a pod, `--network
    /// container:X`) is read once and reported under one of them, the
    /// earliest created (sandboxes aside); the host's namespace is never read
    /// (it is no container's: hundreds of plain cgroups live in it).
    fn net_samples(&mut self, model: &Model, live: &[String]) -> Vec<NetUpdate> {
        let host = host_netns();
        // Each running container's namespace: a stat, not a read; and
        // whether its figures are the host's already.
        let mut members: Vec<(usize, &String, u32, u64)> = Vec::new();
        let mut host_sampled: Vec<bool> = Vec::new();
        for (i, key) in live.iter().enumerate() {
            let Some(c) = model.get(key) else { continue };
            let Some(pid) = c.main_tgid.filter(|_| c.state == State::Running) else {
                continue;
            };
            match self.net_ids.of(key, pid) {
                Ok(ns) => {
                    members.push((i, key, pid, ns));
                    host_sampled.push(c.sample.net.is_host());
                }
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
        for &(_, key, pid, ns) in &members {
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
            .filter(|(_, k, ..)| self.plan.due(k, self.ticks))
            .map(|&(.., ns)| ns)
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
        let running: HashSet<&str> = members.iter().map(|(_, k, ..)| k.as_str()).collect();
        self.net_ids.retain(|k| running.contains(k));
        let readers: HashSet<&str> = owner.values().map(|(k, _)| k.as_str()).collect();
        self.net.retain(|k| readers.contains(k));
        let mut out: Vec<NetUpdate> = live.iter().map(|_| NetUpdate::None).collect();
        for (&(i, key, _, ns), &host_sampled) in members.iter().zip(&host_sampled) {
            out[i] = if Some(ns) == host {
                // The host's namespace: a sample of its own once, then kept
                // as it is (no copy, nor look-up, per container per tick).
                match host_sampled {
                    true => NetUpdate::Unchanged,
                    false => NetUpdate::New(Box::new(NetSample::host())),
                }
            } else {
                self.net_update(model, key, ns, &views, &owner, &sharers)
            };
        }
        out
    }

    /// One running container's namespace figures (`net_samples`).
    fn net_update(
        &self,
        model: &Model,
        key: &String,
        ns: u64,
        views: &HashMap<u64, NetnsView>,
        owner: &HashMap<u64, (&String, u32)>,
        sharers: &HashMap<u64, usize>,
    ) -> NetUpdate {
        let (Some(v), Some((o, _))) = (views.get(&ns), owner.get(&ns)) else {
            return NetUpdate::None;
        };
        let own = *o == key;
        NetUpdate::New(Box::new(NetSample {
            counters: own.then_some(v.counters),
            shared_with: (!own)
                .then(|| model.get(o).map(|c| c.display_id().to_owned()))
                .flatten(),
            addrs: v.addrs.kept.clone(),
            addrs_not_kept: v.addrs.not_kept,
            // Listening sockets are the namespace's: one container's
            // only when no other container shares it.
            listen_ports: if own && sharers.get(&ns) == Some(&1) {
                v.listen_ports.clone()
            } else {
                Vec::new()
            },
            tcp: if own { v.tcp } else { None },
            listen_queues: if own {
                v.listen_queues.clone()
            } else {
                Vec::new()
            },
        }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_container_costs_one_read_until_its_refresh_is_due() {
        let dir = std::env::temp_dir().join(format!("dsh-sample-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let put = |f: &str, v: &str| std::fs::write(dir.join(f), v).expect("write");
        put("cpu.stat", "usage_usec 10\nnr_throttled 1\n");
        put("memory.current", "4096\n");
        put("memory.events", "oom_kill 0\n");
        let mut reader = StatsReader::default();
        let mut known = Known {
            cgroup_id: CgroupId::new(1),
            src: StatsSource::V2(dir.clone()),
            stats: None,
            refresh_by: 0,
        };
        let first = read_stats(&mut reader, &mut known, true, 1).expect("read");
        assert_eq!((first.cpu_usage_ns, first.mem_usage_bytes), (10_000, 4096));
        // Memory moved but the CPU did not: the last read stands...
        put("memory.current", "8192\n");
        put("memory.events", "oom_kill 1\n");
        put("cpu.stat", "usage_usec 10\nnr_throttled 2\n");
        let idle = read_stats(&mut reader, &mut known, true, 2).expect("read");
        assert_eq!(idle.mem_usage_bytes, 4096);
        // ...until the idle refresh is due: memory is read again, counters
        // only running moves are kept,
        let due = read_stats(&mut reader, &mut known, true, 1 + IDLE_REFRESH_EVERY).expect("read");
        assert_eq!(due.mem_usage_bytes, 8192);
        assert_eq!((due.oom_kills, due.cpu_throttled_periods), (0, 1));
        // until the container runs: then everything is read.
        put("memory.current", "12288\n");
        put("cpu.stat", "usage_usec 11\nnr_throttled 2\n");
        let busy =
            read_stats(&mut reader, &mut known, false, 2 + IDLE_REFRESH_EVERY).expect("read");
        assert_eq!((busy.cpu_usage_ns, busy.mem_usage_bytes), (11_000, 12288));
        assert_eq!((busy.oom_kills, busy.cpu_throttled_periods), (1, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
