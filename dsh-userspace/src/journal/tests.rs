//! The journal on a real file: append, query, reopen, retention.
use jiff::{SignedDuration, Timestamp};

use super::{Journal, Query, Retention};
use crate::model::{
    Changes,
    cause::Message,
    entry::{LogEntry, LogKind},
    state::State,
};

fn temp_db(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dsh-journal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("journal.redb")
}

fn entry(s: i64, key: &str, change: bool) -> LogEntry {
    let mut e = LogEntry::new(
        Timestamp::from_second(1_800_000_000 + s).unwrap(),
        key,
        key,
        LogKind::Start,
        Message::Exec {
            filename: format!("line {s}"),
        },
    );
    if change {
        e.from = Some(State::Booting);
        e.to = Some(State::Running);
    }
    e
}

#[test]
fn appends_survive_reopen_without_duplicates() {
    let path = temp_db("reopen");
    {
        let j = Journal::open(&path, Retention::default()).unwrap();
        let mut batch = vec![
            entry(1, "a", true),
            entry(2, "b", false),
            entry(3, "a", false),
        ];
        j.append(&mut batch, &Changes::default()).unwrap();
        assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    }
    let j = Journal::open(&path, Retention::default()).unwrap();
    let mut more = vec![entry(4, "a", true)];
    j.append(&mut more, &Changes::default()).unwrap();
    assert_eq!(more[0].seq, 4, "seq continues after reopen");

    let all = j.query(&Query::default()).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let a = j
        .query(&Query {
            key: Some("a"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3, 4]);
    let a_changes = j
        .query(&Query {
            key: Some("a"),
            state_changes_only: true,
            after_seq: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a_changes.iter().map(|e| e.seq).collect::<Vec<_>>(), [4]);
    let since = j
        .query(&Query {
            since: Some(Timestamp::from_second(1_800_000_003).unwrap()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(since.len(), 2);
}

#[test]
fn retention_drops_oldest_by_age_and_count() {
    let path = temp_db("retention");
    let retention = Retention {
        max_age: SignedDuration::from_secs(100),
        max_entries: 3,
    };
    let j = Journal::open(&path, retention).unwrap();
    let mut batch: Vec<LogEntry> = (0..6).map(|i| entry(i * 10, "k", true)).collect();
    j.append(&mut batch, &Changes::default()).unwrap();
    // Count: keep the newest 3.
    let now = Timestamp::from_second(1_800_000_060).unwrap();
    assert_eq!(j.enforce_retention(now).unwrap(), 3);
    assert_eq!(j.entry_count().unwrap(), 3);
    // Age: 1_800_000_030 and _040 are more than 100 s before now+75.
    let later = Timestamp::from_second(1_800_000_145).unwrap();
    assert_eq!(j.enforce_retention(later).unwrap(), 2);
    let left = j
        .query(&Query {
            key: Some("k"),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
}
