//! Reading the journal back: a container's lines (through the block index)
//! or everyone's, and the containers it knows.
use std::collections::HashMap;

use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase as _, ReadableTable as _};

use super::{
    JournalError,
    block::{Block, ContainerNo},
    db,
    tables::{CHATTY, CONTAINER_BY_NO, CONTAINERS, CRITICAL, INDEX, NO_BY_KEY},
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
    let by_no = tx.open_table(CONTAINER_BY_NO).map_err(db("open who"))?;
    let mut out = Vec::new();
    for row in by_no.iter().map_err(db("read who"))? {
        let (_, v) = row.map_err(db("read who"))?;
        if let Ok(pair) = postcard::from_bytes::<(String, String)>(v.value()) {
            out.push(pair);
        }
    }
    Ok(out)
}

/// What a read asks for: lines with seq > `after_seq` that `keep` accepts,
/// at most `limit` of them (the first in seq order).
struct Wanted<K> {
    after_seq: u64,
    limit: Option<usize>,
    keep: K,
}

impl<K: FnMut(&LogEntry) -> bool> Wanted<K> {
    /// Whether `n` lines of one class are enough: each class's blocks are
    /// in seq order, so the first `limit` of both classes are among the
    /// first `limit` of each.
    fn enough(&self, n: usize) -> bool {
        self.limit.is_some_and(|l| n >= l)
    }
}

/// One read transaction's tables, and the keys of the container numbers
/// met so far.
struct Reader {
    tx: ReadTransaction,
    /// Block tables by class number (critical, chatty).
    blocks: [ReadOnlyTable<u64, &'static [u8]>; 2],
    by_no: ReadOnlyTable<u32, &'static [u8]>,
    keys: HashMap<ContainerNo, Option<String>>,
}

impl Reader {
    fn open(database: &Database) -> Result<Self, JournalError> {
        let tx = database.begin_read().map_err(db("begin read"))?;
        Ok(Self {
            blocks: [
                tx.open_table(CRITICAL).map_err(db("open blocks"))?,
                tx.open_table(CHATTY).map_err(db("open blocks"))?,
            ],
            by_no: tx.open_table(CONTAINER_BY_NO).map_err(db("open who"))?,
            keys: HashMap::new(),
            tx,
        })
    }

    /// Decodes one block and adds the wanted lines (of `only`, if given).
    fn take_block(
        &mut self,
        bytes: &[u8],
        only: Option<ContainerNo>,
        wanted: &mut Wanted<impl FnMut(&LogEntry) -> bool>,
        out: &mut Vec<LogEntry>,
    ) -> Result<(), JournalError> {
        let block = Block::decode(bytes).map_err(|e| JournalError::Block {
            what: "a block",
            source: e,
        })?;
        if block.last_seq() <= wanted.after_seq {
            return Ok(());
        }
        let (by_no, keys) = (&self.by_no, &mut self.keys);
        let key_of = |no: ContainerNo| {
            keys.entry(no)
                .or_insert_with(|| {
                    by_no
                        .get(no.0)
                        .ok()
                        .flatten()
                        .and_then(|v| postcard::from_bytes::<(String, String)>(v.value()).ok())
                        .map(|(key, _name)| key)
                })
                .clone()
        };
        for line in block.entries(key_of) {
            let (no, e) = line.map_err(|e| JournalError::Block {
                what: "a line",
                source: e,
            })?;
            if only.is_none_or(|o| o == no) && e.seq > wanted.after_seq && (wanted.keep)(&e) {
                out.push(e);
            }
        }
        Ok(())
    }

    /// One container's lines, through the block index.
    fn of_container(
        &mut self,
        key: &str,
        wanted: &mut Wanted<impl FnMut(&LogEntry) -> bool>,
    ) -> Result<Vec<LogEntry>, JournalError> {
        let mut out = Vec::new();
        let no_by_key = self.tx.open_table(NO_BY_KEY).map_err(db("open who"))?;
        let Some(no) = no_by_key
            .get(key)
            .map_err(db("read who"))?
            .map(|v| v.value())
        else {
            return Ok(out);
        };
        let no = ContainerNo(no);
        let index = self.tx.open_table(INDEX).map_err(db("open index"))?;
        // The class being read, and where its lines start in `out`.
        let mut class_at: Option<(u8, usize)> = None;
        for row in index
            .range((no.0, 0, 0)..=(no.0, u8::MAX, u64::MAX))
            .map_err(db("index range"))?
        {
            let (k, _) = row.map_err(db("read index"))?;
            let (_, class, first_seq) = k.value();
            let start = match class_at {
                Some((c, start)) if c == class => start,
                _ => {
                    class_at = Some((class, out.len()));
                    out.len()
                }
            };
            if wanted.enough(out.len() - start) {
                continue;
            }
            let block = match self.blocks.get(class as usize) {
                Some(table) => table.get(first_seq).map_err(db("read block"))?,
                None => None,
            };
            if let Some(block) = block {
                self.take_block(block.value(), Some(no), wanted, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Everyone's lines, each class from the block holding `after_seq + 1`.
    fn of_everyone(
        &mut self,
        wanted: &mut Wanted<impl FnMut(&LogEntry) -> bool>,
    ) -> Result<Vec<LogEntry>, JournalError> {
        let mut out = Vec::new();
        for class in 0..self.blocks.len() {
            // The block holding after_seq + 1 starts at or before it.
            let start = self.blocks[class]
                .range(..=wanted.after_seq.saturating_add(1))
                .map_err(db("range"))?
                .next_back()
                .transpose()
                .map_err(db("range"))?
                .map_or(0, |(k, _)| k.value());
            let class_start = out.len();
            let blocks: Vec<_> = self.blocks[class]
                .range(start..)
                .map_err(db("range"))?
                .collect();
            for row in blocks {
                if wanted.enough(out.len() - class_start) {
                    break;
                }
                let (_, block) = row.map_err(db("read block"))?;
                self.take_block(block.value(), None, wanted, &mut out)?;
            }
        }
        Ok(out)
    }
}

/// Durable lines with seq > `after_seq`, of one container or all, in seq
/// order; `keep` filters; at most `limit`, the first in seq order.
pub fn read(
    database: &Database,
    key: Option<&str>,
    after_seq: u64,
    limit: Option<usize>,
    keep: impl FnMut(&LogEntry) -> bool,
) -> Result<Vec<LogEntry>, JournalError> {
    let mut wanted = Wanted {
        after_seq,
        limit,
        keep,
    };
    let mut reader = Reader::open(database)?;
    let mut out = match key {
        Some(key) => reader.of_container(key, &mut wanted)?,
        None => reader.of_everyone(&mut wanted)?,
    };
    out.sort_by_key(|e| e.seq);
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    Ok(out)
}
