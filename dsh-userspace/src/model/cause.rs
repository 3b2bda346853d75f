//! What a log line says, as typed data: why a process ended, who sent a
//! signal, how a start was noticed. `render::log` turns these into the
//! contract's text; the journal stores them as they are.
use serde::{Deserialize, Serialize};

use super::health::{Health, HealthReason};
use crate::{cgroup::stats::CgroupStats, signal::Signal};

/// Memory use and limit of the victim's container at an OOM kill, kept
/// until the victim's exit arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomAtDeath {
    pub mem_used: Option<u64>,
    pub mem_limit: Option<u64>,
    /// The figures are the container's last sample (its cgroup was gone
    /// when the kill was seen): the use is a lower bound.
    #[serde(default)]
    pub sampled: bool,
}

/// Pages a limit may be off by (limits are rounded to pages, and the peak
/// stops at the last charge that fit).
const AT_LIMIT_SLACK: u64 = 64 * 4096;

impl OomAtDeath {
    /// The figures of a cgroup read just after one of its processes was
    /// chosen to die: the reaper may already have freed the victim's
    /// memory, so a peak that reached the limit (an OOM kill at the limit)
    /// is the use at the kill; otherwise (the host ran out) the use now.
    pub fn read_after_kill(s: &CgroupStats) -> Self {
        let now = s.mem_used_bytes();
        let at_limit = match (s.mem_peak_bytes, s.mem_limit_bytes) {
            (Some(peak), Some(limit)) if peak.saturating_add(AT_LIMIT_SLACK) >= limit => Some(peak),
            _ => None,
        };
        Self {
            mem_used: Some(at_limit.map_or(now, |p| p.max(now))),
            mem_limit: s.mem_limit_bytes,
            sampled: false,
        }
    }
}

/// A signal sent to one of the container's processes from outside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalSignal {
    pub signal: Signal,
    pub sender_pid: u32,
    pub sender_comm: String,
}

/// Signals of one kind from one sender outside the container, summed over
/// a sample interval (a flood is one line, not one per signal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalsReceived {
    pub signal: Signal,
    /// Delivered in the interval (at least 1).
    pub count: u64,
    pub sender_pid: u32,
    pub sender_comm: String,
}

/// The signals of an interval beyond those named one sender each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherSignalsReceived {
    pub count: u64,
    /// How many (signal, sender) pairs they came as.
    pub senders: u64,
    /// Which signals, each once, in number order.
    pub signals: Vec<Signal>,
}

/// Why a process of the container ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCause {
    /// The OOM killer chose it.
    Oom(OomAtDeath),
    /// A signal whose default action dumps core killed it; the kernel says
    /// whether a core file was written.
    Coredump { signal: Signal, core_written: bool },
    /// A signal sent from outside the container killed it.
    SignalFromOutside(ExternalSignal),
    /// A signal killed it (sent from inside, or by a sender not seen).
    Signal { signal: Signal },
    /// It handled a stop signal sent from outside, then exited.
    ExitAfterSignal { code: u8, by: ExternalSignal },
    /// It exited by itself.
    Exited { code: u8 },
}

/// A container's use of the host over one incarnation, reported when its
/// main process exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitUsage {
    /// From the main process's start to its exit.
    pub run_time_s: f64,
    /// CPU time the container's cgroup used; None if never read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cpu_s: Option<f64>,
    /// The cgroup's memory high-water mark (v2 `memory.peak`, v1
    /// `memory.max_usage_in_bytes`); None where the kernel keeps none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub peak_mem_bytes: Option<u64>,
}

/// How a user process start was noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The kernel reported its exec.
    Exec,
    /// It was running when the agent started.
    FoundRunning,
    /// It started again while the agent was down.
    RestartedWhileDown,
}

/// What one churn line says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnSummary {
    pub execs: u64,
    /// The commands run most, with their exec counts.
    pub commands: Vec<(String, u64)>,
    /// The other commands: how many, and their execs together.
    pub other_commands: u64,
    pub other_execs: u64,
    pub exits_ok: u64,
    pub exits_failed: u64,
    pub exits_killed: u64,
}

/// Cgroups made and removed under one parent in a sample, not written
/// out one by one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupChurnSummary {
    pub parent: String,
    /// Created and removed within the sample without running a process.
    pub vanished: u64,
    /// Create and destroy lines past the parent's budget.
    pub lines_not_written: u64,
}

/// What one log line says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    CgroupCreated {
        cgroup: String,
    },
    CgroupRemoved {
        cgroup: String,
    },
    /// The container's cgroup went away while it was running.
    CgroupGone,
    Exec {
        filename: String,
    },
    Started(Start),
    SignalFromOutside(ExternalSignal),
    /// A process ended: the main one (a state change), or a child whose end
    /// is worth a line (an OOM kill, a core dump). The main one's line also
    /// says what the incarnation used.
    Exit {
        cause: ExitCause,
        child: bool,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        usage: Option<ExitUsage>,
    },
    /// Processes started and ended since the last summary (not one line each).
    Churn(ChurnSummary),
    /// Signals from outside, summed per sender over an interval.
    SignalsReceived(SignalsReceived),
    /// The rest of an interval's signals from outside, summed.
    OtherSignalsReceived(OtherSignalsReceived),
    /// Cgroups created and removed under one parent, summed over a sample.
    CgroupChurn(CgroupChurnSummary),
    /// Running-but-failing conditions started or ended: the health before
    /// and after, and which conditions.
    Health {
        from: Health,
        to: Health,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        started: Vec<HealthReason>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ended: Vec<HealthReason>,
    },
    /// A line journaled before messages were typed: its text as written.
    #[serde(untagged)]
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oom_kill_at_the_limit_reports_the_peak() {
        // Read after the reaper freed the victim: 328 KiB in use, the peak
        // at the 32 MiB limit.
        let s = CgroupStats {
            mem_usage_bytes: 328 << 10,
            mem_peak_bytes: Some((32 << 20) - 4096),
            mem_limit_bytes: Some(32 << 20),
            ..Default::default()
        };
        let at = OomAtDeath::read_after_kill(&s);
        assert_eq!(at.mem_used, Some((32 << 20) - 4096));
        assert_eq!(at.mem_limit, Some(32 << 20));
        // The host ran out, the container was far from its limit: its use now.
        let s = CgroupStats {
            mem_usage_bytes: 100 << 20,
            mem_peak_bytes: Some(200 << 20),
            mem_limit_bytes: Some(1 << 30),
            ..Default::default()
        };
        assert_eq!(OomAtDeath::read_after_kill(&s).mem_used, Some(100 << 20));
        // No limit: the use now.
        let s = CgroupStats {
            mem_usage_bytes: 5 << 20,
            mem_peak_bytes: Some(9 << 20),
            ..Default::default()
        };
        assert_eq!(OomAtDeath::read_after_kill(&s).mem_used, Some(5 << 20));
    }
}
