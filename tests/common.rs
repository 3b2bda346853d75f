//! Shared harness: one loaded probe for the whole test binary, test cgroups
//! that clean up after themselves, and waiting for events.
use std::{
    io::Write as _,
    sync::{Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use dsh::probe::{
    EventRings, Probe, ProbeOptions, SyscallCounterLayout, SyscallCounters,
    event::{Event, EventKind},
};
pub use dsh_testkit::{TestCgroup, tracefs_mounted};

pub struct Loaded {
    pub probe: Probe,
    stream: EventRings,
    /// Every event drained so far.
    pub events: Vec<Event>,
    /// Whether tracefs was mounted when the programs were loaded.
    pub tracefs_mounted_at_load: bool,
}

// SAFETY: the probe and stream are only ever used under the mutex below, by
// one test thread at a time; nothing in them is tied to the creating thread.
unsafe impl Send for Loaded {}

/// The shared probe, loaded on first use.
pub fn probe() -> MutexGuard<'static, Loaded> {
    static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let tracefs_mounted_at_load = tracefs_mounted();
            // `DSH_SYSCALL_COUNTERS=hash` runs the whole suite (agents
            // included) on the hash layout.
            let syscall_counters = std::env::var("DSH_SYSCALL_COUNTERS")
                .map(|v| v.parse().expect("DSH_SYSCALL_COUNTERS"))
                .unwrap_or_default();
            let opts = ProbeOptions {
                syscall_counters,
                ..ProbeOptions::default()
            };
            let mut probe = Probe::load(opts)
                .unwrap_or_else(|e| panic!("loading dsh's programs failed: {e:#}"));
            let stream = probe.event_rings().expect("event rings");
            Mutex::new(Loaded {
                probe,
                stream,
                events: Vec::new(),
                tracefs_mounted_at_load,
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl Loaded {
    /// Moves every event waiting in the ring buffers into `events`.
    pub fn collect(&mut self) {
        let new = self.stream.drain();
        self.events.extend(new);
    }

    /// Waits up to `timeout` for an event matching `pred`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            self.collect();
            if let Some(e) = self.events.iter().find(|e| pred(e)) {
                return Some(e.clone());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// All events so far matching `pred` (after collecting).
    pub fn matching(&mut self, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.collect();
        self.events.iter().filter(|e| pred(e)).cloned().collect()
    }
}

/// Reads a line from a child's stdout (workloads print "ready").
pub fn wait_ready(child: &mut std::process::Child) {
    use std::io::BufRead as _;
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .expect("read ready");
    assert_eq!(line.trim(), "ready", "workload did not start");
}

pub fn is_exit_of(e: &Event, pid: u32) -> bool {
    matches!(e.kind, EventKind::Exit { .. }) && e.task.tgid == pid
}

pub const WAIT: Duration = Duration::from_secs(10);

/// Flushes stdout so a test's progress notes show up in order.
pub fn note(msg: &str) {
    let mut o = std::io::stdout();
    let _ = writeln!(o, "{msg}");
    let _ = o.flush();
}

/// Loads the programs (once) before a test starts its processes, and
/// drains what earlier tests left in the rings: a ring left full would
/// lose this test's events.
pub fn ensure_loaded() {
    probe().collect();
}

/// A probe with only one syscall counter layout's counting program
/// attached, loaded once per layout. `None` (with a note) when this kernel
/// lacks the layout: the cgroup-storage one needs 6.2.
pub fn counter_probe(layout: SyscallCounterLayout) -> Option<MutexGuard<'static, Probe>> {
    static STORAGE: OnceLock<Option<Mutex<Probe>>> = OnceLock::new();
    static HASH: OnceLock<Option<Mutex<Probe>>> = OnceLock::new();
    let (cell, counters) = match layout {
        SyscallCounterLayout::CgroupStorage => (&STORAGE, SyscallCounters::CgroupStorage),
        SyscallCounterLayout::Hash => (&HASH, SyscallCounters::Hash),
    };
    let loaded = cell.get_or_init(|| {
        let opts = ProbeOptions {
            syscall_counters: counters,
            ..ProbeOptions::default()
        };
        match Probe::load_unattached(opts) {
            Ok(mut probe) => {
                assert_eq!(probe.syscall_counters(), layout);
                probe
                    .set_syscall_counting(true)
                    .expect("attach the counting program");
                Some(Mutex::new(probe))
            }
            Err(dsh::probe::ProbeError::NoCgroupStorage) => None,
            Err(e) => panic!("loading dsh's programs ({layout} layout) failed: {e:#}"),
        }
    });
    match loaded {
        Some(m) => Some(m.lock().unwrap_or_else(|p| p.into_inner())),
        None => {
            note(&format!(
                "this kernel has no cgroup local storage: the {layout} layout is not tested"
            ));
            None
        }
    }
}

/// The syscall counter layouts every test of counting runs against.
pub const COUNTER_LAYOUTS: [SyscallCounterLayout; 2] = [
    SyscallCounterLayout::CgroupStorage,
    SyscallCounterLayout::Hash,
];
