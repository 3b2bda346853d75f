//! The durable event log: every state change and event, with the
//! containers' state, in one embedded crash-safe database (redb:
//! copy-on-write B-trees, checksummed commits; a torn write rolls back to the
//! last commit). Log lines and container state are committed in one
//! transaction, so a restarted agent never repeats or misses a line.
use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use jiff::{SignedDuration, Timestamp};
use redb::{
    Database, Durability, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _,
    TableDefinition,
};

use crate::model::{Changes, container::Container, entry::LogEntry};

/// seq → JSON log entry.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// (container key, seq) → (): the per-container index.
const BY_CONTAINER: TableDefinition<(&str, u64), ()> = TableDefinition::new("log_by_container");
/// container key → JSON container state.
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("opening the journal {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("journal {op}")]
    Db {
        op: &'static str,
        #[source]
        source: redb::Error,
    },
    #[error("journal record {what} is corrupt")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

fn db<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> JournalError {
    move |e| JournalError::Db {
        op,
        source: e.into(),
    }
}

/// How much history is kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub max_age: SignedDuration,
    pub max_entries: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: SignedDuration::from_hours(24 * 7),
            max_entries: 1_000_000,
        }
    }
}

/// What to read back.
#[derive(Clone, Debug, Default)]
pub struct Query<'a> {
    pub key: Option<&'a str>,
    pub since: Option<Timestamp>,
    /// Only entries after this seq (for following).
    pub after_seq: u64,
    pub state_changes_only: bool,
}

pub struct Journal {
    db: Database,
    path: PathBuf,
    next_seq: AtomicU64,
    pub retention: Retention,
}

impl Journal {
    pub fn open(path: &Path, retention: Retention) -> Result<Self, JournalError> {
        // A small page cache: the agent's memory must stay flat as the
        // journal grows (redb's default cache is sized for databases).
        let database = Database::builder()
            .set_cache_size(8 << 20)
            .create(path)
            .map_err(|source| JournalError::Open {
                path: path.to_owned(),
                source,
            })?;
        // Create the tables so readers never see them missing.
        let tx = database.begin_write().map_err(db("begin"))?;
        let last = {
            let log = tx.open_table(LOG).map_err(db("open log"))?;
            tx.open_table(BY_CONTAINER).map_err(db("open index"))?;
            tx.open_table(CONTAINERS).map_err(db("open containers"))?;
            log.last()
                .map_err(db("last"))?
                .map_or(0, |(k, _)| k.value())
        };
        tx.commit().map_err(db("commit"))?;
        Ok(Self {
            db: database,
            path: path.to_owned(),
            next_seq: AtomicU64::new(last + 1),
            retention,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    pub fn load_containers(&self) -> Result<Vec<Container>, JournalError> {
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let table = tx.open_table(CONTAINERS).map_err(db("open containers"))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db("iterate containers"))? {
            let (k, v) = row.map_err(db("read container"))?;
            let c = serde_json::from_slice(v.value()).map_err(|source| JournalError::Decode {
                what: format!("container {}", k.value()),
                source,
            })?;
            out.push(c);
        }
        Ok(out)
    }

    /// Appends log entries (assigning their seq) and saves changed
    /// containers, in one durable transaction.
    pub fn append(&self, entries: &mut [LogEntry], changes: &Changes) -> Result<(), JournalError> {
        if entries.is_empty() && changes.updated.is_empty() && changes.forgotten.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().map_err(db("begin"))?;
        tx.set_durability(Durability::Immediate)
            .map_err(db("set durability"))?;
        let mut seq = self.next_seq.load(Ordering::Relaxed);
        {
            let mut log = tx.open_table(LOG).map_err(db("open log"))?;
            let mut index = tx.open_table(BY_CONTAINER).map_err(db("open index"))?;
            let mut containers = tx.open_table(CONTAINERS).map_err(db("open containers"))?;
            for e in entries.iter_mut() {
                e.seq = seq;
                let bytes = serde_json::to_vec(e).map_err(|source| JournalError::Decode {
                    what: format!("entry {seq}"),
                    source,
                })?;
                log.insert(seq, bytes.as_slice()).map_err(db("insert"))?;
                index
                    .insert((e.key.as_str(), seq), ())
                    .map_err(db("index"))?;
                seq += 1;
            }
            for c in &changes.updated {
                let bytes = serde_json::to_vec(c).map_err(|source| JournalError::Decode {
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
        tx.commit().map_err(db("commit"))?;
        self.next_seq.store(seq, Ordering::Relaxed);
        Ok(())
    }

    pub fn query(&self, q: &Query<'_>) -> Result<Vec<LogEntry>, JournalError> {
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let log = tx.open_table(LOG).map_err(db("open log"))?;
        let keep = |e: &LogEntry| {
            (!q.state_changes_only || e.is_state_change()) && q.since.is_none_or(|s| e.ts >= s)
        };
        let decode = |seq: u64, bytes: &[u8]| {
            serde_json::from_slice::<LogEntry>(bytes).map_err(|source| JournalError::Decode {
                what: format!("entry {seq}"),
                source,
            })
        };
        let mut out = Vec::new();
        match q.key {
            Some(key) => {
                let index = tx.open_table(BY_CONTAINER).map_err(db("open index"))?;
                let range = index
                    .range((key, q.after_seq.saturating_add(1))..=(key, u64::MAX))
                    .map_err(db("range"))?;
                for row in range {
                    let (k, _) = row.map_err(db("read index"))?;
                    let seq = k.value().1;
                    if let Some(v) = log.get(seq).map_err(db("get"))? {
                        let e = decode(seq, v.value())?;
                        if keep(&e) {
                            out.push(e);
                        }
                    }
                }
            }
            None => {
                for row in log
                    .range(q.after_seq.saturating_add(1)..)
                    .map_err(db("range"))?
                {
                    let (k, v) = row.map_err(db("read"))?;
                    let e = decode(k.value(), v.value())?;
                    if keep(&e) {
                        out.push(e);
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn entry_count(&self) -> Result<u64, JournalError> {
        let tx = self.db.begin_read().map_err(db("begin read"))?;
        let log = tx.open_table(LOG).map_err(db("open log"))?;
        log.len().map_err(db("len"))
    }

    /// Drops the oldest entries beyond the retention's age and count.
    pub fn enforce_retention(&self, now: Timestamp) -> Result<u64, JournalError> {
        // A retention longer than jiff's timestamps reach keeps everything.
        let cutoff = now
            .checked_sub(self.retention.max_age)
            .unwrap_or(Timestamp::MIN);
        let tx = self.db.begin_write().map_err(db("begin"))?;
        let mut removed = 0;
        {
            let mut log = tx.open_table(LOG).map_err(db("open log"))?;
            let mut index = tx.open_table(BY_CONTAINER).map_err(db("open index"))?;
            let mut len = log.len().map_err(db("len"))?;
            loop {
                let Some((seq, key, ts)) = log.first().map_err(db("first"))?.map(|(k, v)| {
                    let e: Option<LogEntry> = serde_json::from_slice(v.value()).ok();
                    (
                        k.value(),
                        e.as_ref().map(|e| e.key.clone()),
                        e.map(|e| e.ts),
                    )
                }) else {
                    break;
                };
                let too_old = ts.is_none_or(|t| t < cutoff);
                if !too_old && len <= self.retention.max_entries {
                    break;
                }
                log.remove(seq).map_err(db("remove"))?;
                if let Some(key) = key {
                    index.remove((key.as_str(), seq)).map_err(db("unindex"))?;
                }
                len -= 1;
                removed += 1;
            }
        }
        tx.commit().map_err(db("commit"))?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
