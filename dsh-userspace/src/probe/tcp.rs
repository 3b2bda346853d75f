//! TCP connects per cgroup as the kernel programs counted them (`TCP_CONNECTS`).
use std::collections::HashMap;

use aya::maps::{MapData, PerCpuHashMap};
use dsh_ebpf::TcpConnectStats;

use super::{Probe, ProbeError};
use crate::cgroup::CgroupId;

impl Probe {
    /// Connect counters of every cgroup that began one, summed over CPUs.
    pub fn tcp_connects(&self) -> Result<HashMap<CgroupId, TcpConnectStats>, ProbeError> {
        let map: PerCpuHashMap<&MapData, u64, TcpConnectStats> =
            PerCpuHashMap::try_from(self.map("TCP_CONNECTS")?)
                .map_err(|e| ProbeError::Map("TCP_CONNECTS", e))?;
        let mut out = HashMap::new();
        for item in map.iter() {
            let (id, per_cpu) = match item {
                Ok(kv) => kv,
                // The cgroup was forgotten between listing and reading.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(ProbeError::Map("TCP_CONNECTS", e)),
            };
            let mut sum = TcpConnectStats::default();
            for s in per_cpu.iter() {
                sum.add(s);
            }
            out.insert(CgroupId::new(id), sum);
        }
        Ok(out)
    }
}
