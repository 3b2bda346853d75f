//! The durable event log: every state change and event, with the
//! containers' state, in one embedded crash-safe database (redb:
//! copy-on-write B-trees, checksummed commits; a torn write rolls back to the
//! last commit). Log lines and container state are committed in one
//! transaction, so a restarted agent never repeats or misses a line.
//!
//! It keeps what matters: critical lines (state changes and what explains
//! them) for the retention period; chatty ones within a count and byte
//! budget, evicted first. When the disk is full or the file fails, critical
//! lines wait in memory (shown by queries, marked not durable), chatty lines
//! make room, the database is re-opened and the lines written once it can.
//! A file that cannot be opened is moved aside and a new one started.
pub mod block;
mod bound;
mod error;
mod health;
mod msg;
mod msg_health;
mod read;
mod store;
mod tables;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, RwLock},
    time::{Duration, Instant},
};

use jiff::{SignedDuration, Timestamp};
use redb::{Database, backends::FileBackend};

use crate::{
    model::{
        Changes,
        container::Container,
        entry::{LogClass, LogEntry},
    },
    report::chain,
};
pub use error::JournalError;
use error::db;
pub use health::{JournalHealth, JournalStatus, MovedAside};

/// How much history is kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Every line older than this goes; critical lines only then.
    pub max_age: SignedDuration,
    /// Chatty lines beyond this many are evicted, oldest first.
    pub max_chatty_entries: u64,
    /// Chatty lines are evicted while all stored lines take more than this.
    pub max_bytes: u64,
    /// A container's critical lines beyond this many are evicted, its
    /// oldest first (see `bound`).
    pub max_critical_per_container: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: SignedDuration::from_hours(24 * 7),
            max_chatty_entries: 1_000_000,
            max_bytes: 256 << 20,
            max_critical_per_container: DEFAULT_MAX_CRITICAL_PER_CONTAINER,
        }
    }
}

/// A week of a container restarting every two minutes (four critical lines
/// a restart): far more than a container's history normally holds, and
/// about 600 KiB of journal.
pub const DEFAULT_MAX_CRITICAL_PER_CONTAINER: u64 = 20_000;

/// Critical lines held in memory while the journal cannot take them.
pub const MAX_PENDING: usize = 10_000;
/// How often a failing journal is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Room made (in chatty lines' bytes) at each retry after a full disk.
const ROOM: u64 = 256 << 10;

/// What to read back.
#[derive(Clone, Debug, Default)]
pub struct Query<'a> {
    pub key: Option<&'a str>,
    pub since: Option<Timestamp>,
    /// Only entries after this seq (for following).
    pub after_seq: u64,
    pub state_changes_only: bool,
    /// At most this many entries, the first in seq order (a page; None:
    /// all). Readers page through a large journal so that memory does not
    /// grow with its size.
    pub limit: Option<usize>,
}

/// Lines read back; `unavailable` says why only lines held in memory are
/// there.
#[derive(Debug, Default)]
pub struct Lines {
    pub entries: Vec<LogEntry>,
    pub unavailable: Option<String>,
}

pub struct Journal {
    path: PathBuf,
    limits: Retention,
    /// None while the file cannot be opened.
    db: RwLock<Option<Arc<Database>>>,
    side: Mutex<Side>,
}

/// The writer's state, with what waits to be written.
#[derive(Default)]
struct Side {
    /// Present while the database is open.
    writer: Option<store::Writer>,
    next_seq: u64,
    pending: VecDeque<LogEntry>,
    pending_updated: BTreeMap<String, Container>,
    pending_forgotten: BTreeSet<String>,
    retry_at: Option<Instant>,
    no_space: bool,
    health: health::Health,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Journal {
    /// Opens (or creates) the journal. A file that cannot be opened because
    /// it is damaged is moved aside and a new one started; one that cannot
    /// be opened for another reason (a full disk, permissions) is tried
    /// again while lines wait in memory.
    pub fn open(path: &Path, limits: Retention) -> Self {
        let j = Journal {
            path: path.to_owned(),
            limits,
            db: RwLock::new(None),
            side: Mutex::new(Side {
                next_seq: 1,
                ..Side::default()
            }),
        };
        {
            let mut side = lock(&j.side);
            match j.reopen(&mut side) {
                Ok(()) => {}
                Err(e) if e.is_damage() => j.move_aside(&mut side, &e),
                Err(e) => j.failed(&mut side, &e),
            }
        }
        j
    }

    fn open_db(&self) -> Result<(Database, store::Writer), JournalError> {
        // A small page cache: the agent's memory must stay flat as the
        // journal grows (redb's default cache is sized for databases).
        // Checking every page's checksum at open finds damage anywhere in
        // the file before a query trips on it (a fraction of a second for
        // the default budget).
        let database = Database::builder()
            .set_cache_size(8 << 20)
            .set_check_integrity_on_open(true)
            .create_with_backend(FileBackend::new(self.open_file()?).map_err(db("open"))?)
            .map_err(db("open"))?;
        match store::init(&database)? {
            Ok(w) => Ok((database, w)),
            Err(foreign) => Err(JournalError::Db {
                op: "layout",
                source: redb::Error::Corrupted(foreign.0),
            }),
        }
    }

    /// The file, root's alone (0600, also when an older dsh made it with
    /// the umask's mode), through no symbolic link: a link there is not
    /// the journal (ELOOP, moved aside as damage).
    fn open_file(&self) -> Result<std::fs::File, JournalError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let io = |e: std::io::Error| db::<redb::Error>("open")(e.into());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path)
            .map_err(io)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        Ok(file)
    }

    /// (Re)opens the database, dropping the handle of a failed one first.
    fn reopen(&self, side: &mut Side) -> Result<(), JournalError> {
        side.writer = None;
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = None;
        let (database, w) = self.open_db()?;
        side.next_seq = side.next_seq.max(w.next_seq);
        side.writer = Some(w);
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(database));
        Ok(())
    }

    /// A damaged file: keep it for inspection, start a new one.
    fn move_aside(&self, side: &mut Side, e: &JournalError) {
        let now = Timestamp::now();
        let aside = PathBuf::from(format!(
            "{}.corrupt-{}",
            self.path.display(),
            now.strftime("%Y%m%dT%H%M%SZ")
        ));
        let reason = chain(e);
        if let Err(mv) = std::fs::rename(&self.path, &aside) {
            log::error!(
                "journal {} is damaged ({reason}) and could not be moved aside: {mv}",
                self.path.display()
            );
            self.failed(side, e);
            return;
        }
        log::error!(
            "journal {} is damaged ({reason}): moved aside to {}; starting a new journal",
            self.path.display(),
            aside.display()
        );
        side.health.current.moved_aside = Some(MovedAside {
            path: aside.display().to_string(),
            reason,
            at: now,
        });
        if let Err(e) = self.reopen(side) {
            self.failed(side, &e);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn database(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Container state saved by the last run (none if the file is not open).
    /// A record that does not decode is skipped, counted and said in
    /// `dsh status`: one bad row must not keep the agent from starting.
    /// It stays on disk (for a look at it) until its container is written
    /// again.
    pub fn load_containers(&self) -> Result<Vec<Container>, JournalError> {
        let Some(database) = self.database() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (key, record) in read::load_containers(&database)? {
            match serde_json::from_slice(&record) {
                Ok(c) => out.push(c),
                Err(source) => {
                    let e = JournalError::Decode { what: key, source };
                    log::error!("{}; skipped", chain(&e));
                    lock(&self.side).health.skipped_record(&e);
                }
            }
        }
        Ok(out)
    }

    /// Every container with lines in the journal: (key, last name).
    pub fn known(&self) -> Vec<(String, String)> {
        self.database()
            .and_then(|d| read::known(&d).ok())
            .unwrap_or_default()
    }

    /// Assigns seqs to new lines and writes them with the changed containers
    /// in one durable transaction. If that fails, critical lines wait in
    /// memory (`durable` false) and chatty ones are dropped, counted.
    pub fn append(&self, entries: &mut [LogEntry], changes: Changes) {
        let mut side = lock(&self.side);
        for e in entries.iter_mut() {
            e.seq = side.next_seq;
            side.next_seq += 1;
            // The journal keeps microseconds: followers see what readers will.
            if let Ok(ts) = Timestamp::from_microsecond(block::micros(e.ts)) {
                e.ts = ts;
            }
        }
        let changed = !changes.updated.is_empty() || !changes.forgotten.is_empty();
        if entries.is_empty() && !changed {
            return;
        }
        hold_changes(&mut side, changes);
        let due = side.retry_at.is_none_or(|t| Instant::now() >= t);
        if due && let Err(e) = self.write_pending(&mut side, entries) {
            hold(&mut side, entries);
            self.failed(&mut side, &e);
            return;
        }
        if !due {
            hold(&mut side, entries);
        }
    }

    /// Retries a failing journal when due (call it often).
    pub fn maintain(&self) {
        let mut side = lock(&self.side);
        if side.retry_at.is_some_and(|t| Instant::now() >= t)
            && let Err(e) = self.write_pending(&mut side, &[])
        {
            self.failed(&mut side, &e);
        }
    }

    /// At shutdown: one last try for what waits, and a word about what is
    /// lost if that fails too.
    pub fn close(&self) {
        let mut side = lock(&self.side);
        if side.pending.is_empty() && side.pending_updated.is_empty() {
            return;
        }
        if let Err(e) = self.write_pending(&mut side, &[]) {
            log::error!(
                "journal {}: {}; {} critical lines held in memory are lost at exit",
                self.path.display(),
                chain(&e),
                side.pending.len()
            );
        }
    }

    /// Writes what waits plus `new` (re-opening and making room first if
    /// needed).
    fn write_pending(&self, side: &mut Side, new: &[LogEntry]) -> Result<(), JournalError> {
        if side.writer.is_none() {
            match self.reopen(side) {
                Ok(()) => side.health.current.reopened += 1,
                // Damaged since it was last opened: start a new one.
                Err(e) if e.is_damage() => {
                    self.move_aside(side, &e);
                    if side.writer.is_none() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let Some(database) = self.database() else {
            return Err(JournalError::Db {
                op: "open",
                source: redb::Error::DatabaseClosed,
            });
        };
        let Some(mut writer) = side.writer.take() else {
            return Ok(());
        };
        let result = write_all(side, &database, &mut writer, new, &self.limits);
        side.writer = Some(writer);
        let was_pending = result?;
        if side.retry_at.take().is_some() {
            side.health.recovered(was_pending);
            log::warn!(
                "journal: writable again; {was_pending} held lines written to {}",
                self.path.display()
            );
        }
        Ok(())
    }

    fn failed(&self, side: &mut Side, e: &JournalError) {
        side.health.failed(e);
        side.retry_at = Some(Instant::now() + RETRY);
        side.no_space |= e.is_no_space();
        if e.needs_reopen() {
            // redb refuses every later write until the file is opened again.
            side.writer = None;
            *self.db.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
        log::error!(
            "journal {}: {:#}; {} critical lines held in memory, {} lines dropped so far",
            self.path.display(),
            chain(e),
            side.pending.len(),
            side.health.dropped()
        );
    }

    /// Lines matching `q`: durable ones and those waiting in memory.
    pub fn query(&self, q: &Query<'_>) -> Lines {
        let keep = |e: &LogEntry| {
            (!q.state_changes_only || e.is_state_change()) && q.since.is_none_or(|s| e.ts >= s)
        };
        // Pending first: a line written meanwhile is then read from disk.
        let pending: Vec<LogEntry> = lock(&self.side)
            .pending
            .iter()
            .filter(|e| e.seq > q.after_seq && q.key.is_none_or(|k| k == e.key) && keep(e))
            .cloned()
            .collect();
        let (mut entries, unavailable) = match self.database() {
            Some(d) => match read::read(&d, q.key, q.after_seq, q.limit, keep) {
                Ok(v) => (v, None),
                Err(e) => (Vec::new(), Some(chain(&e))),
            },
            None => (Vec::new(), Some("the journal is not open".to_owned())),
        };
        let last = entries.last().map_or(0, |e| e.seq);
        entries.extend(pending.into_iter().filter(|e| e.seq > last));
        if let Some(limit) = q.limit {
            entries.truncate(limit);
        }
        Lines {
            entries,
            unavailable,
        }
    }

    /// Lines kept (durable ones).
    pub fn entry_count(&self) -> u64 {
        lock(&self.side)
            .writer
            .as_ref()
            .map_or(0, |w| w.counts.total_lines())
    }

    /// Drops lines older than the retention period.
    pub fn enforce_retention(&self, now: Timestamp) -> Result<u64, JournalError> {
        let mut side = lock(&self.side);
        let (Some(database), Some(writer)) = (self.database(), side.writer.as_mut()) else {
            return Ok(0);
        };
        // A retention longer than jiff's timestamps reach keeps everything.
        let cutoff = now
            .checked_sub(self.limits.max_age)
            .unwrap_or(Timestamp::MIN);
        let n = store::expire(&database, writer, cutoff)?;
        side.health.current.expired += n;
        Ok(n)
    }

    pub fn status(&self) -> JournalStatus {
        let side = lock(&self.side);
        let counts = side.writer.as_ref().map(|w| w.counts).unwrap_or_default();
        let bytes = self.size_bytes();
        side.health.status(health::Figures {
            counts,
            file_bytes: bytes,
            pending: side.pending.len(),
            limits: self.limits,
        })
    }
}

/// Makes room if the disk was full, then writes what waits plus `new`;
/// returns how many lines had been waiting.
fn write_all(
    side: &mut Side,
    database: &Database,
    writer: &mut store::Writer,
    new: &[LogEntry],
    limits: &Retention,
) -> Result<usize, JournalError> {
    if side.no_space {
        let room = ROOM.max(side.pending.len() as u64 * 200);
        let n = store::make_room(database, writer, limits, room)?;
        side.health.current.chatty_evicted += n;
        if n > 0 {
            log::warn!("journal: {n} chatty lines evicted to make room");
        }
    }
    let mut lines: Vec<LogEntry> = side.pending.iter().cloned().collect();
    lines.extend(new.iter().cloned());
    let changes = Changes {
        updated: side.pending_updated.values().cloned().collect(),
        forgotten: side.pending_forgotten.iter().cloned().collect(),
    };
    let written = store::write(database, writer, &lines, &changes, limits)?;
    side.health.current.chatty_evicted += written.evicted_chatty;
    side.health.current.critical_evicted += written.evicted_critical;
    if written.evicted_critical > 0 {
        log::warn!(
            "journal: {} critical lines evicted: a container reached its bound of {}",
            written.evicted_critical,
            limits.max_critical_per_container
        );
    }
    let was_pending = side.pending.len();
    side.pending.clear();
    side.pending_updated.clear();
    side.pending_forgotten.clear();
    side.no_space = false;
    Ok(was_pending)
}

fn hold_changes(side: &mut Side, changes: Changes) {
    for c in changes.updated {
        side.pending_forgotten.remove(c.key());
        side.pending_updated.insert(c.key().to_owned(), c);
    }
    for k in changes.forgotten {
        side.pending_updated.remove(&k);
        side.pending_forgotten.insert(k);
    }
}

/// Lines the journal could not take: critical ones wait (up to
/// MAX_PENDING), chatty ones are dropped; both counted.
fn hold(side: &mut Side, entries: &mut [LogEntry]) {
    for e in entries.iter_mut() {
        e.durable = false;
        match e.class() {
            LogClass::Critical if side.pending.len() < MAX_PENDING => {
                side.pending.push_back(e.clone());
            }
            LogClass::Critical => side.health.current.dropped_critical += 1,
            LogClass::Chatty => side.health.current.dropped_chatty += 1,
        }
    }
    if side.pending.len() >= MAX_PENDING {
        side.health.queue_full();
    }
}

#[cfg(test)]
mod tests;
