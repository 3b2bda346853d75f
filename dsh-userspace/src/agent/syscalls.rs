//! Syscall accounting in the agent (`dsh agent --syscalls`): the counting
//! programs attached always (exact), never (off), or for a short window out
//! of every period (sampled, the default).
//!
//! Any program on a syscall hook costs every syscall of every task on the
//! host, whatever it does (an empty one included); with no program attached
//! the kernel takes its fast path and costs nothing. Sampling pays that
//! floor for `window / period` of the time. Counters only move while
//! attached, so a container's counts at the end of one window minus those at
//! the end of the one before are exactly what this window counted.
use std::{collections::HashMap, time::Duration};

use tokio::time::Instant;

use super::Agent;
use crate::{
    cgroup::CgroupId,
    model::syscalls::{SyscallAccounting, SyscallWindow},
    report::chain,
};

/// The default window and period: 500 ms in 10 s. Half a second averages
/// over a service's request bursts (thousands of syscalls each); one
/// twentieth of the time costs a twentieth of exact counting (which takes
/// 13-18% of a syscall-heavy service's throughput here: 1 s in 10 came to
/// 1.8%, too near the 2% budget) and keeps rates at most ten seconds old.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(500);
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

/// `--syscalls MODE --syscall-window W --syscall-period P`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallSchedule {
    pub accounting: SyscallAccounting,
    pub window: Duration,
    pub period: Duration,
}

impl Default for SyscallSchedule {
    fn default() -> Self {
        Self {
            accounting: SyscallAccounting::default(),
            window: DEFAULT_WINDOW,
            period: DEFAULT_PERIOD,
        }
    }
}

/// The sampled mode's state between windows.
pub(super) struct SyscallSampling {
    window: Duration,
    period: Duration,
    /// When the open window's programs were attached; None between windows.
    opened: Option<std::time::Instant>,
    /// When the next window opens.
    next_open: Instant,
    /// Each container's counters when the last window closed: calls,
    /// errors, EMFILE/ENFILE.
    baseline: HashMap<String, (CgroupId, [u64; 3])>,
    /// Windows closed so far.
    pub(super) windows: u64,
}

impl SyscallSampling {
    /// Sampling state for `schedule`, None unless it samples. The first
    /// window opens at once, so rates are known within one window.
    pub(super) fn new(schedule: SyscallSchedule) -> Option<Self> {
        (schedule.accounting == SyscallAccounting::Sampled).then(|| Self {
            window: schedule.window,
            period: schedule.period,
            opened: None,
            next_open: Instant::now(),
            baseline: HashMap::new(),
            windows: 0,
        })
    }

    /// When the sampler next has something to do (open or close a window).
    pub(super) fn deadline(s: &Option<Self>) -> Instant {
        match s {
            Some(s) => match s.opened {
                Some(at) => Instant::from_std(at) + s.window,
                None => s.next_open,
            },
            None => Instant::now() + Duration::from_secs(3600),
        }
    }
}

/// What the counters moved by since `base` (a new incarnation starts at 0).
fn delta(base: Option<&(CgroupId, [u64; 3])>, id: CgroupId, now: [u64; 3]) -> [u64; 3] {
    match base {
        Some(&(base_id, old)) if base_id == id => [0, 1, 2].map(|i| now[i].saturating_sub(old[i])),
        _ => now,
    }
}

/// The soft open-files limit of `pid` (None: unlimited, or the process is
/// gone). Read only when a window saw EMFILE/ENFILE.
fn soft_nofile(pid: u32) -> Option<u64> {
    let limits = procfs::process::Process::new(pid.try_into().ok()?)
        .ok()?
        .limits()
        .ok()?;
    match limits.max_open_files.soft_limit {
        procfs::process::LimitValue::Value(v) => Some(v),
        procfs::process::LimitValue::Unlimited => None,
    }
}

impl Agent {
    /// Opens or closes a sampling window (called at `SyscallSampling::deadline`).
    pub(super) fn syscall_window_step(&mut self) {
        let Some(s) = self.syscalls.as_mut() else {
            return;
        };
        match s.opened {
            None => {
                // Periods are kept on their own schedule, whatever a late
                // wake-up costs one window.
                s.next_open += s.period;
                if s.next_open < Instant::now() {
                    s.next_open = Instant::now() + s.period;
                }
                match self.probe.set_syscall_counting(true) {
                    Ok(()) => s.opened = Some(std::time::Instant::now()),
                    Err(e) => {
                        let why = chain(&e);
                        if crate::fds::exhausted_text(&why) {
                            self.sampler
                                .budget
                                .failed("syscall sampling window", why.clone());
                        }
                        log::warn!("syscall sampling window: {why}");
                    }
                }
            }
            Some(opened) => {
                let attached = opened.elapsed();
                s.opened = None;
                if let Err(e) = self.probe.set_syscall_counting(false) {
                    log::warn!("closing the syscall sampling window: {}", chain(&e));
                }
                s.windows += 1;
                let (window, period) = (attached, s.period);
                let counts = self
                    .sampler
                    .syscall_counts(&self.model, &self.probe, &self.layout);
                let Some(s) = self.syscalls.as_mut() else {
                    return;
                };
                let mut baseline = HashMap::with_capacity(counts.len());
                let now = jiff::Timestamp::now();
                for (key, id, counts) in counts {
                    let [calls_in, errors_in, fds_in] = delta(s.baseline.get(&key), id, counts);
                    let w = SyscallWindow {
                        calls: calls_in,
                        errors: errors_in,
                        attached: window,
                        period,
                    };
                    self.model.record_syscall_window(&key, w);
                    if fds_in > 0 {
                        let limit = self
                            .model
                            .get(&key)
                            .and_then(|c| c.main_tgid)
                            .and_then(soft_nofile);
                        let estimated = w.scale(fds_in);
                        self.model
                            .record_fd_limit(&key, fds_in, estimated, limit, now);
                    }
                    baseline.insert(key, (id, counts));
                }
                s.baseline = baseline;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_restart_with_a_new_incarnation() {
        let a = CgroupId::new(7);
        let b = CgroupId::new(8);
        assert_eq!(delta(Some(&(a, [100, 4, 1])), a, [150, 5, 3]), [50, 1, 2]);
        assert_eq!(delta(Some(&(a, [100, 4, 1])), b, [30, 0, 0]), [30, 0, 0]);
        assert_eq!(delta(None, a, [30, 2, 1]), [30, 2, 1]);
    }
}
