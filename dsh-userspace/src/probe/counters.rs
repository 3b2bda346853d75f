//! Counter tables in kernel hash maps, read whole and pruned by key (the
//! churn and signal counters).
use aya::{
    Pod,
    maps::{HashMap, MapData, MapError},
};

use super::{Probe, ProbeError};

impl Probe {
    /// Every entry of hash map `name`. An entry deleted between listing and
    /// reading is skipped.
    pub(super) fn counter_entries<K: Pod, V: Pod>(
        &self,
        name: &'static str,
    ) -> Result<Vec<(K, V)>, ProbeError> {
        let map: HashMap<&MapData, K, V> =
            HashMap::try_from(self.map(name)?).map_err(|e| ProbeError::Map(name, e))?;
        let mut out = Vec::new();
        for item in map.iter() {
            match item {
                Ok(kv) => out.push(kv),
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(ProbeError::Map(name, e)),
            }
        }
        Ok(out)
    }

    /// Deletes `keys` from hash map `name`; keys already gone are fine.
    pub(super) fn forget_counters<K: Pod, V: Pod>(
        &mut self,
        name: &'static str,
        keys: &[K],
    ) -> Result<(), ProbeError> {
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(ProbeError::MissingMap(name))?;
        let mut map: HashMap<&mut MapData, K, V> =
            HashMap::try_from(map).map_err(|e| ProbeError::Map(name, e))?;
        for k in keys {
            match map.remove(k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(ProbeError::Map(name, e)),
            }
        }
        Ok(())
    }
}
