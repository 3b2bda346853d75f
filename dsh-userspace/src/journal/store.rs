//! The journal's tables in redb and the transactions over them: appending
//! lines to the open block of their class, evicting chatty blocks past the
//! budget, expiring old blocks, reading a container's lines back.
use std::collections::HashMap;

use jiff::Timestamp;
use redb::{Database, Durability, ReadableTable as _, Table, TableDefinition, WriteTransaction};

use super::{
    JournalError, Retention,
    block::{Block, ContainerNo},
    bound, db,
    tables::{CHATTY, CONTAINER_BY_NO, CONTAINERS, CRITICAL, Counts, INDEX, NO_BY_KEY},
};
use crate::model::{
    Changes,
    entry::{LogClass, LogEntry},
};

/// Counters and the format version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The table of the journal's first format (one JSON document per line).
const OLD_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

/// Version of the tables' layout: a journal of another version is moved
/// aside, not misread (3: blocks of format 2, typed messages).
const LAYOUT: u64 = 3;

fn table(class: LogClass) -> TableDefinition<'static, u64, &'static [u8]> {
    match class {
        LogClass::Critical => CRITICAL,
        LogClass::Chatty => CHATTY,
    }
}

fn class_no(class: LogClass) -> u8 {
    match class {
        LogClass::Critical => 0,
        LogClass::Chatty => 1,
    }
}

const CLASSES: [LogClass; 2] = [LogClass::Critical, LogClass::Chatty];

/// The writer's view of the tables, kept in memory between transactions and
/// changed only once a transaction commits.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    who: HashMap<String, (ContainerNo, String)>,
    next_cno: ContainerNo,
    pub next_seq: u64,
    pub counts: Counts,
    /// Critical lines stored per container (see `bound`).
    pub critical_of: HashMap<ContainerNo, u64>,
}

/// What one write transaction did besides writing.
#[derive(Debug, Default)]
pub struct Written {
    pub evicted_chatty: u64,
    /// Critical lines evicted for the per-container bound.
    pub evicted_critical: u64,
}

/// Not this journal's layout: move it aside rather than misread it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ForeignLayout(pub String);

fn who_value(key: &str, name: &str) -> Vec<u8> {
    postcard::to_allocvec(&(key, name)).unwrap_or_default()
}

fn meta(t: &Table<&str, u64>, k: &str) -> Result<u64, JournalError> {
    Ok(t.get(k).map_err(db("read meta"))?.map_or(0, |v| v.value()))
}

/// Creates the tables (a new journal) or checks their layout, and loads the
/// writer's state.
pub fn init(database: &Database) -> Result<Result<Writer, ForeignLayout>, JournalError> {
    let tx = database.begin_write().map_err(db("begin"))?;
    let mut w = Writer::default();
    {
        let mut m = tx.open_table(META).map_err(db("open meta"))?;
        let layout = meta(&m, "layout")?;
        if layout == 0 {
            let old = tx.open_table(OLD_LOG).map_err(db("open"))?;
            if old.first().map_err(db("read"))?.is_some() {
                return Ok(Err(ForeignLayout(
                    "it is in the first, one-JSON-document-per-line format".into(),
                )));
            }
            drop(old);
            tx.delete_table(OLD_LOG).map_err(db("delete table"))?;
            m.insert("layout", LAYOUT).map_err(db("write meta"))?;
        } else if layout != LAYOUT {
            return Ok(Err(ForeignLayout(format!(
                "its layout {layout} is not this dsh's ({LAYOUT})"
            ))));
        }
        w.next_seq = meta(&m, "next_seq")?.max(1);
        w.next_cno = ContainerNo(u32::try_from(meta(&m, "next_cno")?).unwrap_or(u32::MAX));
        for (i, class) in ["critical", "chatty"].iter().enumerate() {
            w.counts.lines[i] = meta(&m, &format!("{class}_lines"))?;
            w.counts.bytes[i] = meta(&m, &format!("{class}_bytes"))?;
        }
        for class in CLASSES {
            tx.open_table(table(class)).map_err(db("open blocks"))?;
        }
        tx.open_table(INDEX).map_err(db("open index"))?;
        tx.open_table(CONTAINERS).map_err(db("open containers"))?;
        w.critical_of = bound::load(&tx)?;
        tx.open_table(NO_BY_KEY).map_err(db("open who"))?;
        let who = tx.open_table(CONTAINER_BY_NO).map_err(db("open who"))?;
        for row in who.iter().map_err(db("read who"))? {
            let (cno, v) = row.map_err(db("read who"))?;
            let Ok((key, name)) = postcard::from_bytes::<(String, String)>(v.value()) else {
                return Ok(Err(ForeignLayout(format!(
                    "container record {} is undecodable",
                    cno.value()
                ))));
            };
            w.who.insert(key, (ContainerNo(cno.value()), name));
        }
    }
    tx.commit().map_err(db("commit"))?;
    Ok(Ok(w))
}

/// Lines of one class to add to their table, with the container numbers
/// the writer assigned.
fn append_class(
    tx: &WriteTransaction,
    class: LogClass,
    lines: &[(&LogEntry, ContainerNo)],
    counts: &mut Counts,
) -> Result<(), JournalError> {
    if lines.is_empty() {
        return Ok(());
    }
    let c = class_no(class) as usize;
    let mut blocks = tx.open_table(table(class)).map_err(db("open blocks"))?;
    let mut index = tx.open_table(INDEX).map_err(db("open index"))?;
    // Continue the class's newest block while it has room.
    let mut current = match blocks.last().map_err(db("last block"))? {
        Some((_, v)) => {
            let b = Block::decode(v.value()).map_err(|e| JournalError::Block {
                what: "the newest block",
                source: e,
            })?;
            if b.is_full() {
                Block::default()
            } else {
                counts.bytes[c] = counts.bytes[c].saturating_sub(v.value().len() as u64);
                b
            }
        }
        None => Block::default(),
    };
    let mut store = |b: &Block, counts: &mut Counts| -> Result<(), JournalError> {
        let bytes = b.encode();
        blocks
            .insert(b.first_seq(), bytes.as_slice())
            .map_err(db("write block"))?;
        counts.bytes[c] += bytes.len() as u64;
        for &cno in &b.who {
            index
                .insert((cno.0, c as u8, b.first_seq()), ())
                .map_err(db("index"))?;
        }
        Ok(())
    };
    for &(e, cno) in lines {
        if current.is_full() {
            store(&current, counts)?;
            current = Block::default();
        }
        current.push(e, cno);
        counts.lines[c] += 1;
    }
    store(&current, counts)
}

/// Removes one block and its index rows; forgets containers left with no
/// line. Returns the block's line count.
fn remove_block(
    tx: &WriteTransaction,
    class: LogClass,
    first_seq: u64,
    w: &mut Writer,
) -> Result<u64, JournalError> {
    let c = class_no(class);
    let mut blocks = tx.open_table(table(class)).map_err(db("open blocks"))?;
    let Some(v) = blocks.remove(first_seq).map_err(db("remove block"))? else {
        return Ok(0);
    };
    let bytes = v.value().len() as u64;
    // A block that cannot be decoded is dropped all the same (its index rows
    // then point nowhere, which readers skip).
    let block = Block::decode(v.value()).unwrap_or_default();
    drop(v);
    w.counts.bytes[c as usize] = w.counts.bytes[c as usize].saturating_sub(bytes);
    let n = block.len() as u64;
    w.counts.lines[c as usize] = w.counts.lines[c as usize].saturating_sub(n);
    if class == LogClass::Critical {
        for &cno in &block.who {
            let left = w
                .critical_of
                .get(&cno)
                .copied()
                .unwrap_or(0)
                .saturating_sub(block.lines_of(cno));
            w.critical_of.insert(cno, left);
            bound::save(tx, cno, left)?;
        }
    }
    let mut index = tx.open_table(INDEX).map_err(db("open index"))?;
    for cno in block.who {
        index.remove((cno.0, c, first_seq)).map_err(db("unindex"))?;
        let left = index
            .range((cno.0, 0, 0)..=(cno.0, u8::MAX, u64::MAX))
            .map_err(db("index range"))?
            .next()
            .is_some();
        if !left {
            let mut who = tx.open_table(CONTAINER_BY_NO).map_err(db("open who"))?;
            let key = who
                .remove(cno.0)
                .map_err(db("forget who"))?
                .and_then(|v| postcard::from_bytes::<(String, String)>(v.value()).ok())
                .map(|(k, _)| k);
            w.critical_of.remove(&cno);
            bound::save(tx, cno, 0)?;
            if let Some(key) = key {
                tx.open_table(NO_BY_KEY)
                    .map_err(db("open who"))?
                    .remove(key.as_str())
                    .map_err(db("forget who"))?;
                w.who.remove(&key);
            }
        }
    }
    Ok(n)
}

/// The oldest block of a class: its first seq and, if it decodes, the time
/// of its newest line.
fn first_block(
    tx: &WriteTransaction,
    class: LogClass,
) -> Result<Option<(u64, Option<Timestamp>)>, JournalError> {
    let blocks = tx.open_table(table(class)).map_err(db("open blocks"))?;
    let first = blocks.first().map_err(db("first block"))?;
    Ok(first.map(|(k, v)| {
        let newest = Block::decode(v.value()).ok().and_then(|b| b.newest());
        (k.value(), newest)
    }))
}

/// Evicts the oldest chatty blocks while the chatty lines exceed the count
/// budget or all stored lines exceed the byte budget; then at least
/// `at_least_bytes` more (to make room after a full disk).
fn evict_chatty(
    tx: &WriteTransaction,
    limits: &Retention,
    w: &mut Writer,
    mut at_least_bytes: u64,
) -> Result<u64, JournalError> {
    let mut evicted = 0;
    loop {
        let over = w.counts.lines[1] > limits.max_chatty_entries
            || w.counts.total_bytes() > limits.max_bytes
            || at_least_bytes > 0;
        if !over {
            return Ok(evicted);
        }
        let Some((first, _)) = first_block(tx, LogClass::Chatty)? else {
            return Ok(evicted);
        };
        let before = w.counts.bytes[1];
        evicted += remove_block(tx, LogClass::Chatty, first, w)?;
        at_least_bytes = at_least_bytes.saturating_sub(before - w.counts.bytes[1]);
    }
}

fn save_meta(tx: &WriteTransaction, w: &Writer) -> Result<(), JournalError> {
    let mut m = tx.open_table(META).map_err(db("open meta"))?;
    let mut put = |k: &str, v: u64| m.insert(k, v).map(|_| ()).map_err(db("write meta"));
    put("next_seq", w.next_seq)?;
    put("next_cno", u64::from(w.next_cno.0))?;
    put("critical_lines", w.counts.lines[0])?;
    put("chatty_lines", w.counts.lines[1])?;
    put("critical_bytes", w.counts.bytes[0])?;
    put("chatty_bytes", w.counts.bytes[1])
}

/// Writes lines (seqs assigned) and container changes in one durable
/// transaction, then evicts chatty lines past the budget. On success the
/// writer's state is updated; on failure it is left as it was.
pub fn write(
    database: &Database,
    writer: &mut Writer,
    lines: &[LogEntry],
    changes: &Changes,
    limits: &Retention,
) -> Result<Written, JournalError> {
    let mut w = writer.clone();
    let mut tx = database.begin_write().map_err(db("begin"))?;
    tx.set_durability(Durability::Immediate)
        .map_err(db("set durability"))?;
    let mut numbered: [Vec<(&LogEntry, ContainerNo)>; 2] = [Vec::new(), Vec::new()];
    {
        let mut who = tx.open_table(CONTAINER_BY_NO).map_err(db("open who"))?;
        let mut by_key = tx.open_table(NO_BY_KEY).map_err(db("open who"))?;
        for e in lines {
            let cno = match w.who.get_mut(&e.key) {
                Some((cno, name)) => {
                    if *name != e.id {
                        name.clone_from(&e.id);
                        who.insert(cno.0, who_value(&e.key, &e.id).as_slice())
                            .map_err(db("write who"))?;
                    }
                    *cno
                }
                None => {
                    let cno = w.next_cno;
                    w.next_cno.0 += 1;
                    who.insert(cno.0, who_value(&e.key, &e.id).as_slice())
                        .map_err(db("write who"))?;
                    by_key
                        .insert(e.key.as_str(), cno.0)
                        .map_err(db("write who"))?;
                    w.who.insert(e.key.clone(), (cno, e.id.clone()));
                    cno
                }
            };
            numbered[class_no(e.class()) as usize].push((e, cno));
            w.next_seq = w.next_seq.max(e.seq + 1);
        }
    }
    for class in CLASSES {
        append_class(
            &tx,
            class,
            &numbered[class_no(class) as usize],
            &mut w.counts,
        )?;
    }
    let mut touched: Vec<ContainerNo> = numbered[class_no(LogClass::Critical) as usize]
        .iter()
        .map(|&(_, cno)| cno)
        .collect();
    for &cno in &touched {
        *w.critical_of.entry(cno).or_default() += 1;
    }
    touched.sort_unstable();
    touched.dedup();
    for &cno in &touched {
        bound::save(&tx, cno, w.critical_of.get(&cno).copied().unwrap_or(0))?;
    }
    let evicted_critical = bound::enforce(
        &tx,
        &mut w.critical_of,
        &mut w.counts,
        touched,
        limits.max_critical_per_container,
    )?;
    {
        let mut containers = tx.open_table(CONTAINERS).map_err(db("open containers"))?;
        for c in &changes.updated {
            let bytes = serde_json::to_vec(c).map_err(|source| JournalError::Encode {
                what: format!("container {}", c.key()),
                source,
            })?;
            containers
                .insert(c.key(), bytes.as_slice())
                .map_err(db("save container"))?;
        }
        for k in &changes.forgotten {
            containers
                .remove(k.as_str())
                .map_err(db("forget container"))?;
        }
    }
    let evicted_chatty = evict_chatty(&tx, limits, &mut w, 0)?;
    save_meta(&tx, &w)?;
    tx.commit().map_err(db("commit"))?;
    *writer = w;
    Ok(Written {
        evicted_chatty,
        evicted_critical,
    })
}

/// Frees at least `bytes` of chatty lines (oldest first), in a transaction
/// of its own: the room a full disk needs. Returns the lines evicted.
pub fn make_room(
    database: &Database,
    writer: &mut Writer,
    limits: &Retention,
    bytes: u64,
) -> Result<u64, JournalError> {
    let mut w = writer.clone();
    let mut tx = database.begin_write().map_err(db("begin"))?;
    tx.set_durability(Durability::Immediate)
        .map_err(db("set durability"))?;
    let n = evict_chatty(&tx, limits, &mut w, bytes)?;
    save_meta(&tx, &w)?;
    tx.commit().map_err(db("commit"))?;
    *writer = w;
    Ok(n)
}

/// Drops blocks whose newest line is older than `cutoff`, both classes.
pub fn expire(
    database: &Database,
    writer: &mut Writer,
    cutoff: Timestamp,
) -> Result<u64, JournalError> {
    let mut w = writer.clone();
    let tx = database.begin_write().map_err(db("begin"))?;
    let mut removed = 0;
    for class in CLASSES {
        while let Some((first, newest)) = first_block(&tx, class)? {
            // An undecodable block has no time: it goes too.
            if newest.is_some_and(|t| t >= cutoff) {
                break;
            }
            removed += remove_block(&tx, class, first, &mut w)?;
        }
    }
    save_meta(&tx, &w)?;
    tx.commit().map_err(db("commit"))?;
    *writer = w;
    Ok(removed)
}
