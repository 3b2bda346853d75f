//! The per-container bound on critical lines: besides their age, no
//! container keeps more than `Retention::max_critical_per_container` of
//! them. Whatever a container does (a crash loop, a cgroup re-created in a
//! loop), it cannot fill the disk with lines kept for the retention period,
//! nor crowd out another container's. Past the bound its oldest critical
//! lines are evicted, down to 90% of it (so eviction runs once per tenth,
//! not at every line), counted and said in `dsh status`.
//!
//! Lines written before the count table existed are not counted: they age
//! out as before.
use std::collections::HashMap;

use redb::{ReadableTable as _, WriteTransaction};

use super::{
    JournalError,
    block::{Block, ContainerNo},
    db,
    tables::{CRITICAL, CRITICAL_PER_WHO, Counts, INDEX},
};

/// The count saved for `cno` (0: none).
pub(super) fn save(tx: &WriteTransaction, cno: ContainerNo, n: u64) -> Result<(), JournalError> {
    let mut t = tx
        .open_table(CRITICAL_PER_WHO)
        .map_err(db("open critical counts"))?;
    if n == 0 {
        t.remove(cno.0).map_err(db("write critical counts"))?;
    } else {
        t.insert(cno.0, n).map_err(db("write critical counts"))?;
    }
    Ok(())
}

/// Every container's count.
pub(super) fn load(tx: &WriteTransaction) -> Result<HashMap<ContainerNo, u64>, JournalError> {
    let t = tx
        .open_table(CRITICAL_PER_WHO)
        .map_err(db("open critical counts"))?;
    let mut out = HashMap::new();
    for row in t.iter().map_err(db("read critical counts"))? {
        let (cno, n) = row.map_err(db("read critical counts"))?;
        out.insert(ContainerNo(cno.value()), n.value());
    }
    Ok(out)
}

/// Evicts the oldest critical lines of each of `cnos` that is past `max`;
/// returns how many lines went.
pub(super) fn enforce(
    tx: &WriteTransaction,
    critical_of: &mut HashMap<ContainerNo, u64>,
    counts: &mut Counts,
    cnos: impl IntoIterator<Item = ContainerNo>,
    max: u64,
) -> Result<u64, JournalError> {
    let mut evicted = 0;
    for cno in cnos {
        let have = critical_of.get(&cno).copied().unwrap_or(0);
        if have <= max {
            continue;
        }
        let gone = evict_oldest(tx, counts, cno, have - (max - max / 10))?;
        let left = have.saturating_sub(gone);
        critical_of.insert(cno, left);
        save(tx, cno, left)?;
        evicted += gone;
    }
    Ok(evicted)
}

/// Removes up to `n` of `cno`'s oldest critical lines, block by block
/// through the index; returns how many went.
fn evict_oldest(
    tx: &WriteTransaction,
    counts: &mut Counts,
    cno: ContainerNo,
    n: u64,
) -> Result<u64, JournalError> {
    let mut index = tx.open_table(INDEX).map_err(db("open index"))?;
    let mut blocks = tx.open_table(CRITICAL).map_err(db("open blocks"))?;
    let firsts: Vec<u64> = index
        .range((cno.0, 0, 0)..=(cno.0, 0, u64::MAX))
        .map_err(db("index range"))?
        .map(|r| r.map(|(k, _)| k.value().2))
        .collect::<Result<_, _>>()
        .map_err(db("index range"))?;
    let mut removed = 0;
    for first in firsts {
        if removed >= n {
            break;
        }
        let Some(v) = blocks.get(first).map_err(db("read block"))? else {
            index.remove((cno.0, 0, first)).map_err(db("unindex"))?;
            continue;
        };
        let old_bytes = v.value().len() as u64;
        // An undecodable block is left for age to take: what it holds
        // cannot be told apart.
        let Ok(mut block) = Block::decode(v.value()) else {
            continue;
        };
        drop(v);
        let gone = block.remove_oldest_of(cno, n - removed);
        removed += gone;
        counts.lines[0] = counts.lines[0].saturating_sub(gone);
        counts.bytes[0] = counts.bytes[0].saturating_sub(old_bytes);
        if block.is_empty() {
            blocks.remove(first).map_err(db("remove block"))?;
        } else {
            let bytes = block.encode();
            counts.bytes[0] += bytes.len() as u64;
            blocks
                .insert(first, bytes.as_slice())
                .map_err(db("write block"))?;
        }
        if !block.who.contains(&cno) {
            index.remove((cno.0, 0, first)).map_err(db("unindex"))?;
        }
    }
    Ok(removed)
}
