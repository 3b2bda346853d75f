//! Signals from outside a cgroup, counted in the kernel (see
//! `dsh-ebpf/src/programs/signal.rs`).
use dsh_ebpf::{SignalCount, SignalKey};

use super::{Probe, ProbeError};

const SIGNAL_COUNTS: &str = "SIGNAL_COUNTS";

impl Probe {
    /// Every signal counter, cumulative since its entry was created.
    pub fn signal_counts(&self) -> Result<Vec<(SignalKey, SignalCount)>, ProbeError> {
        self.counter_entries(SIGNAL_COUNTS)
    }

    /// Deletes counters the agent has read for the last time (idle ones:
    /// a signal counted between the last read and the delete is lost).
    pub fn forget_signals(&mut self, keys: &[SignalKey]) -> Result<(), ProbeError> {
        self.forget_counters::<SignalKey, SignalCount>(SIGNAL_COUNTS, keys)
    }
}
