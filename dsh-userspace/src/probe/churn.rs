//! Process churn counted in the kernel, and the table of each cgroup's main
//! process the programs consult (see `dsh-ebpf/src/programs/churn.rs`).
use aya::maps::{HashMap, MapData};
use dsh_ebpf::{ChurnCounts, ChurnKey, MainProcess};

use super::{Probe, ProbeError};
use crate::cgroup::CgroupId;

const CHURN: &str = "CHURN";
const MAIN_PROCESSES: &str = "MAIN_PROCESSES";

impl Probe {
    /// Every churn counter, cumulative since its entry was created.
    pub fn churn_counts(&self) -> Result<Vec<(ChurnKey, ChurnCounts)>, ProbeError> {
        self.counter_entries(CHURN)
    }

    /// Deletes counters the agent has read for the last time. A counter
    /// the programs touch between the agent's last read and this delete
    /// loses that count, so only long-idle ones are forgotten.
    pub fn forget_churn(&mut self, keys: &[ChurnKey]) -> Result<(), ProbeError> {
        self.forget_counters::<ChurnKey, ChurnCounts>(CHURN, keys)
    }

    /// Tells the programs a running cgroup's main process (`None`: running,
    /// but which process is main is not known), so its other processes'
    /// execs and exits are counted and its main process's exit is sent. For
    /// containers found running at start-up; afterwards the programs follow
    /// starts and exits themselves.
    pub fn set_main_process(
        &mut self,
        cgroup_id: CgroupId,
        tgid: Option<u32>,
    ) -> Result<(), ProbeError> {
        let map = self
            .ebpf
            .map_mut(MAIN_PROCESSES)
            .ok_or(ProbeError::MissingMap(MAIN_PROCESSES))?;
        let mut map: HashMap<&mut MapData, u64, MainProcess> =
            HashMap::try_from(map).map_err(|e| ProbeError::Map(MAIN_PROCESSES, e))?;
        let main = MainProcess {
            tgid: tgid.unwrap_or(0),
            claimable: 0,
        };
        map.insert(cgroup_id.get(), main, 0)
            .map_err(|e| ProbeError::Map(MAIN_PROCESSES, e))
    }

    /// How many entries the churn and main-process tables hold now.
    pub fn churn_fill(&self) -> Result<(usize, usize), ProbeError> {
        let churn: HashMap<&MapData, ChurnKey, ChurnCounts> =
            HashMap::try_from(self.map(CHURN)?).map_err(|e| ProbeError::Map(CHURN, e))?;
        let main: HashMap<&MapData, u64, MainProcess> =
            HashMap::try_from(self.map(MAIN_PROCESSES)?)
                .map_err(|e| ProbeError::Map(MAIN_PROCESSES, e))?;
        Ok((
            churn.keys().filter(Result::is_ok).count(),
            main.keys().filter(Result::is_ok).count(),
        ))
    }
}
