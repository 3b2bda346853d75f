//! The journal on a real file: append, query, reopen, retention.
use jiff::{SignedDuration, Timestamp};

use super::{Journal, Query, Retention};
use crate::{
    model::{
        Changes,
        cause::{ExitCause, Message},
        entry::{LogEntry, LogKind},
        state::State,
    },
    signal::Signal,
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
fn pages_cover_everything_once() {
    let path = temp_db("pages");
    let j = Journal::open(&path, Retention::default()).unwrap();
    let mut batch: Vec<LogEntry> = (0..25)
        .map(|i| entry(i, if i % 3 == 0 { "a" } else { "b" }, i % 2 == 0))
        .collect();
    j.append(&mut batch, &Changes::default()).unwrap();
    for (key, changes_only) in [(None, false), (Some("b"), false), (Some("a"), true)] {
        let want = j
            .query(&Query {
                key,
                state_changes_only: changes_only,
                ..Default::default()
            })
            .unwrap();
        let mut got = Vec::new();
        let mut after_seq = 0;
        loop {
            let page = j
                .query(&Query {
                    key,
                    state_changes_only: changes_only,
                    after_seq,
                    limit: Some(4),
                    ..Default::default()
                })
                .unwrap();
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            after_seq = last.seq;
            got.extend(page);
        }
        assert_eq!(got, want, "{key:?} {changes_only}");
        assert!(!want.is_empty());
    }
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

/// Entries of every shape, encoded as the journal stores them: the
/// `journal_entry` fuzz target's seeds; and they decode to themselves.
#[test]
fn entries_round_trip_and_seed_the_fuzzer() {
    let mut change = entry(1, "07c561cc06f3", true);
    change.seq = 42;
    let mut exit = entry(2, "/evil\x1b]0;t\x07", false);
    exit.kind = LogKind::Coredump;
    exit.from = Some(State::Running);
    exit.to = Some(State::Error);
    exit.msg = Message::Exit {
        cause: ExitCause::Coredump {
            signal: Signal::from_raw(11),
            core_written: true,
        },
        child: false,
    };
    exit.pid = Some(7);
    exit.comm = Some("sh\u{9b}".into());
    exit.signal = Some("SIGSEGV".into());
    exit.exit_code = Some(139);
    exit.core_dumped = Some(true);
    for (name, e) in [("state-change", change), ("coredump", exit)] {
        let bytes = super::encode_entry(&e).unwrap();
        assert_eq!(super::decode_entry(e.seq, &bytes).unwrap(), e);
        crate::fuzz_seeds::seed("journal_entry", name, &bytes);
    }
}
