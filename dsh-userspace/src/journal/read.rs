//! Reading the journal back: a container's lines (through the block index)
//! or everyone's, and the containers it knows.
use std::collections::HashMap;

use redb::{Database, ReadableDatabase as _, ReadableTable as _};

use super::{
    JournalError,
    block::{Block, Cno},
    db,
    tables::{CHATTY, CONTAINERS, CRITICAL, INDEX, WHO, WHO_BY_KEY},
};
use crate::model::entry::LogEntry;

pub fn load_containers(database: &Database) -> Result<Vec<(String, Vec<u8>)>, JournalError> {
    let tx = database.begin_read().map_err(db("begin read"))?;
    let table = tx.open_table(CONTAINERS).map_err(db("open containers"))?;
    let mut out = Vec::new();
    for row in table.iter().map_err(db("iterate containers"))? {
        let (k, v) = row.map_err(db("read container"))?;
        out.push((k.value().to_owned(), v.value().to_vec()));
    }
    Ok(out)
}

/// Every container with lines in the journal: (key, last name).
pub fn known(database: &Database) -> Result<Vec<(String, String)>, JournalError> {
    let tx = database.begin_read().map_err(db("begin read"))?;
    let who = tx.open_table(WHO).map_err(db("open who"))?;
    let mut out = Vec::new();
    for row in who.iter().map_err(db("read who"))? {
        let (_, v) = row.map_err(db("read who"))?;
        if let Ok(pair) = postcard::from_bytes::<(String, String)>(v.value()) {
            out.push(pair);
        }
    }
    Ok(out)
}

/// Durable lines with seq > `after_seq`, of one container or all, in seq
/// order; `keep` filters; at most `limit`, the first in seq order. Each
/// class's blocks are in seq order, so reading stops in each once it has
/// `limit` lines: the first `limit` of both are among them.
pub fn read(
    database: &Database,
    key: Option<&str>,
    after_seq: u64,
    limit: Option<usize>,
    mut keep: impl FnMut(&LogEntry) -> bool,
) -> Result<Vec<LogEntry>, JournalError> {
    let enough = |n: usize| limit.is_some_and(|l| n >= l);
    let tx = database.begin_read().map_err(db("begin read"))?;
    let who = tx.open_table(WHO).map_err(db("open who"))?;
    let mut keys: HashMap<Cno, Option<String>> = HashMap::new();
    let mut key_of = |cno: Cno| {
        keys.entry(cno)
            .or_insert_with(|| {
                who.get(cno)
                    .ok()
                    .flatten()
                    .and_then(|v| postcard::from_bytes::<(String, String)>(v.value()).ok())
                    .map(|(k, _)| k)
            })
            .clone()
    };
    let tables = [
        tx.open_table(CRITICAL).map_err(db("open blocks"))?,
        tx.open_table(CHATTY).map_err(db("open blocks"))?,
    ];
    let mut out = Vec::new();
    let mut take = |bytes: &[u8], only: Option<Cno>, out: &mut Vec<LogEntry>| {
        let b = Block::decode(bytes).map_err(|e| JournalError::Block {
            what: "a block",
            source: e,
        })?;
        if b.last_seq() <= after_seq {
            return Ok::<(), JournalError>(());
        }
        for line in b.entries(&mut key_of) {
            let (cno, e) = line.map_err(|e| JournalError::Block {
                what: "a line",
                source: e,
            })?;
            if only.is_none_or(|c| c == cno) && e.seq > after_seq && keep(&e) {
                out.push(e);
            }
        }
        Ok(())
    };
    match key {
        Some(key) => {
            let by_key = tx.open_table(WHO_BY_KEY).map_err(db("open who"))?;
            let Some(cno) = by_key.get(key).map_err(db("read who"))?.map(|v| v.value()) else {
                return Ok(out);
            };
            let index = tx.open_table(INDEX).map_err(db("open index"))?;
            // (class, where its lines start in `out`)
            let mut current: Option<(u8, usize)> = None;
            for row in index
                .range((cno, 0, 0)..=(cno, u8::MAX, u64::MAX))
                .map_err(db("index range"))?
            {
                let (k, _) = row.map_err(db("read index"))?;
                let (_, class, first) = k.value();
                let start = match current {
                    Some((c, start)) if c == class => start,
                    _ => {
                        current = Some((class, out.len()));
                        out.len()
                    }
                };
                if enough(out.len() - start) {
                    continue;
                }
                if let Some(t) = tables.get(class as usize)
                    && let Some(v) = t.get(first).map_err(db("read block"))?
                {
                    take(v.value(), Some(cno), &mut out)?;
                }
            }
        }
        None => {
            for t in &tables {
                // The block holding after_seq + 1 starts at or before it.
                let start = t
                    .range(..=after_seq.saturating_add(1))
                    .map_err(db("range"))?
                    .next_back()
                    .transpose()
                    .map_err(db("range"))?
                    .map_or(0, |(k, _)| k.value());
                let class_start = out.len();
                for row in t.range(start..).map_err(db("range"))? {
                    if enough(out.len() - class_start) {
                        break;
                    }
                    let (_, v) = row.map_err(db("read block"))?;
                    take(v.value(), None, &mut out)?;
                }
            }
        }
    }
    out.sort_by_key(|e| e.seq);
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    Ok(out)
}
