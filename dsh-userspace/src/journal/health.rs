//! The journal's own condition, for `dsh status`: what it holds, what it
//! evicted, and whether it can write (since when not, the last error, lines
//! waiting in memory, lines dropped).
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{JournalError, Retention, tables::Counts};
use crate::report::chain;

/// A damaged journal the agent moved aside at start-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MovedAside {
    pub path: String,
    pub reason: String,
    pub at: Timestamp,
}

/// The journal's write condition and what it lost or let go since start:
/// kept by `Health` as things happen, and reported as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalHealth {
    /// Set while writes fail (then lines wait in memory).
    pub failing_since: Option<Timestamp>,
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
    /// Chatty lines evicted for the budget or to make room.
    pub chatty_evicted: u64,
    /// Critical lines evicted for the per-container bound.
    #[serde(default)]
    pub critical_evicted: u64,
    /// Lines dropped for age.
    pub expired: u64,
    pub moved_aside: Option<MovedAside>,
    /// Container records that did not decode at start-up, skipped; the
    /// last one's error.
    #[serde(default)]
    pub skipped_records: u64,
    #[serde(default)]
    pub last_skipped: Option<String>,
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
    #[serde(default)]
    pub max_critical_per_container: u64,
    pub retention_days: f64,
    /// False while writes fail; then `pending` critical lines wait in memory.
    pub writable: bool,
    pub pending: usize,
    /// Flattened: the JSON keeps one flat object.
    #[serde(flatten)]
    pub health: JournalHealth,
}

#[derive(Debug, Default)]
pub struct Health {
    pub current: JournalHealth,
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
        let h = &mut self.current;
        h.write_errors += 1;
        h.last_error = Some(chain(e));
        h.last_error_at = Some(now);
        h.failing_since.get_or_insert(now);
    }

    pub fn skipped_record(&mut self, e: &JournalError) {
        self.current.skipped_records += 1;
        self.current.last_skipped = Some(chain(e));
    }

    pub fn recovered(&mut self, _written: usize) {
        self.current.failing_since = None;
        self.current.recovered_at = Some(Timestamp::now());
        self.queue_full_said = false;
    }

    pub fn dropped(&self) -> u64 {
        self.current.dropped_critical + self.current.dropped_chatty
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
            max_critical_per_container: f.limits.max_critical_per_container,
            retention_days: f.limits.max_age.as_secs_f64() / 86_400.0,
            writable: self.current.failing_since.is_none(),
            pending: f.pending,
            health: self.current.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{JournalHealth, JournalStatus};

    /// `dsh status --json` keeps one flat journal object, as before the
    /// health fields had a type of their own, and reads back the same.
    #[test]
    fn status_json_is_flat_and_round_trips() {
        let s = JournalStatus {
            critical_entries: 2,
            writable: false,
            pending: 3,
            health: JournalHealth {
                failing_since: Some("2026-01-01T00:00:00Z".parse().unwrap()),
                write_errors: 4,
                dropped_chatty: 5,
                ..JournalHealth::default()
            },
            ..JournalStatus::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["failing_since"], "2026-01-01T00:00:00Z");
        assert_eq!(v["write_errors"], 4);
        assert_eq!(v["dropped_chatty"], 5);
        assert_eq!(v["pending"], 3);
        assert!(v["last_error"].is_null(), "{v}");
        assert!(v.get("health").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<JournalStatus>(v).unwrap(), s);
    }
}
