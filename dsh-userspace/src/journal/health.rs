//! The journal's own condition, for `dsh status`: what it holds, what it
//! evicted, and whether it can write (since when not, the last error, lines
//! waiting in memory, lines dropped).
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{JournalError, Retention, store::Counts};
use crate::report::chain;

/// A damaged journal the agent moved aside at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MovedAside {
    pub path: String,
    pub reason: String,
    pub at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Lines on disk, by class.
    pub critical_entries: u64,
    pub chatty_entries: u64,
    /// Bytes the lines take encoded, and the file's size per line kept.
    pub stored_bytes: u64,
    pub bytes_per_line: f64,
    pub max_chatty_entries: u64,
    pub max_bytes: u64,
    pub retention_days: f64,
    /// Chatty lines evicted for the budget or to make room (since start).
    pub chatty_evicted: u64,
    /// Lines dropped for age (since start).
    pub expired: u64,
    /// False while writes fail; then `pending` critical lines wait in memory.
    pub writable: bool,
    pub failing_since: Option<Timestamp>,
    pub pending: usize,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    /// When writes last succeeded again after failing.
    pub recovered_at: Option<Timestamp>,
    pub write_errors: u64,
    pub reopened: u64,
    /// Lines lost: critical ones when the memory queue was full, chatty ones
    /// that could not be written.
    pub dropped_critical: u64,
    pub dropped_chatty: u64,
    pub moved_aside: Option<MovedAside>,
}

#[derive(Debug, Default)]
pub struct Health {
    pub failing_since: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Timestamp>,
    pub recovered_at: Option<Timestamp>,
    pub write_errors: u64,
    pub reopened: u64,
    pub dropped_critical: u64,
    pub dropped_chatty: u64,
    pub chatty_evicted: u64,
    pub expired: u64,
    pub moved_aside: Option<MovedAside>,
    queue_full_said: bool,
}

/// What the journal measures at the moment of asking.
pub struct Figures {
    pub counts: Counts,
    pub file_bytes: u64,
    pub pending: usize,
    pub limits: Retention,
}

impl Health {
    pub fn failed(&mut self, e: &JournalError) {
        let now = Timestamp::now();
        self.write_errors += 1;
        self.last_error = Some(chain(e));
        self.last_error_at = Some(now);
        self.failing_since.get_or_insert(now);
    }

    pub fn recovered(&mut self, _written: usize) {
        self.failing_since = None;
        self.recovered_at = Some(Timestamp::now());
        self.queue_full_said = false;
    }

    pub fn dropped(&self) -> u64 {
        self.dropped_critical + self.dropped_chatty
    }

    /// Said once per episode: from now on critical lines are dropped.
    pub fn queue_full(&mut self) {
        if !self.queue_full_said {
            self.queue_full_said = true;
            log::error!(
                "journal: {} critical lines wait in memory, the most it holds; further ones are dropped (counted in dsh status)",
                super::MAX_PENDING
            );
        }
    }

    pub fn status(&self, f: Figures) -> JournalStatus {
        let lines = f.counts.total_lines();
        JournalStatus {
            critical_entries: f.counts.lines[0],
            chatty_entries: f.counts.lines[1],
            stored_bytes: f.counts.bytes[0] + f.counts.bytes[1],
            bytes_per_line: if lines > 0 {
                f.file_bytes as f64 / lines as f64
            } else {
                0.0
            },
            max_chatty_entries: f.limits.max_chatty_entries,
            max_bytes: f.limits.max_bytes,
            retention_days: f.limits.max_age.as_secs_f64() / 86_400.0,
            chatty_evicted: self.chatty_evicted,
            expired: self.expired,
            writable: self.failing_since.is_none(),
            failing_since: self.failing_since,
            pending: f.pending,
            last_error: self.last_error.clone(),
            last_error_at: self.last_error_at,
            recovered_at: self.recovered_at,
            write_errors: self.write_errors,
            reopened: self.reopened,
            dropped_critical: self.dropped_critical,
            dropped_chatty: self.dropped_chatty,
            moved_aside: self.moved_aside.clone(),
        }
    }
}
