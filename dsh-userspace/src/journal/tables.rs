//! The journal's tables in redb, and the line and byte counts kept of them.
use redb::TableDefinition;

/// Block's first seq → block, one table per class.
pub(super) const CRITICAL: TableDefinition<u64, &[u8]> = TableDefinition::new("critical_blocks");
pub(super) const CHATTY: TableDefinition<u64, &[u8]> = TableDefinition::new("chatty_blocks");
/// (container, class, block) → (): which blocks hold a container's lines.
pub(super) const INDEX: TableDefinition<(u32, u8, u64), ()> = TableDefinition::new("block_index");
/// Container number (`block::ContainerNo`) → its (key, last name), postcard;
/// and key → number. (On disk they keep their first names, "who".)
pub(super) const CONTAINER_BY_NO: TableDefinition<u32, &[u8]> = TableDefinition::new("who");
pub(super) const NO_BY_KEY: TableDefinition<&str, u32> = TableDefinition::new("who_by_key");
/// Container key → JSON container state.
pub(super) const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");
/// Container number → its critical lines stored (see `bound`).
pub(super) const CRITICAL_PER_WHO: TableDefinition<u32, u64> =
    TableDefinition::new("critical_per_container");

/// Lines and stored bytes per class (index: `class_no`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub lines: [u64; 2],
    pub bytes: [u64; 2],
}

impl Counts {
    pub fn total_lines(&self) -> u64 {
        self.lines[0] + self.lines[1]
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
}
