//! Signals from outside a cgroup, counted in the kernel (see
//! `dsh-ebpf/src/programs/signal.rs`).
use aya::maps::{HashMap, MapData, MapError};
use dsh_ebpf::{SignalCount, SignalKey};

use super::{Probe, ProbeError};

const SIGNAL_COUNTS: &str = "SIGNAL_COUNTS";

impl Probe {
    /// Every signal counter, cumulative since its entry was created.
    pub fn signal_counts(&self) -> Result<Vec<(SignalKey, SignalCount)>, ProbeError> {
        let map: HashMap<&MapData, SignalKey, SignalCount> =
            HashMap::try_from(self.map(SIGNAL_COUNTS)?)
                .map_err(|e| ProbeError::Map(SIGNAL_COUNTS, e))?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok(kv) => out.push(kv),
                // Deleted between listing and reading.
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(ProbeError::Map(SIGNAL_COUNTS, e)),
            }
        }
        Ok(out)
    }

    /// Deletes counters the agent has read for the last time (idle ones:
    /// a signal counted between the last read and the delete is lost).
    pub fn forget_signals(&mut self, keys: &[SignalKey]) -> Result<(), ProbeError> {
        let map = self
            .ebpf
            .map_mut(SIGNAL_COUNTS)
            .ok_or(ProbeError::MissingMap(SIGNAL_COUNTS))?;
        let mut map: HashMap<&mut MapData, SignalKey, SignalCount> =
            HashMap::try_from(map).map_err(|e| ProbeError::Map(SIGNAL_COUNTS, e))?;
        for k in keys {
            match map.remove(k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(ProbeError::Map(SIGNAL_COUNTS, e)),
            }
        }
        Ok(())
    }
}
