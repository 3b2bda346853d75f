//! The journal on a real file: append, query, reopen, the two retention
//! classes, the size of a line on disk, damaged files.
use jiff::{SignedDuration, Timestamp};

use super::{Journal, Query, Retention};
use crate::model::{
    Changes,
    cause::{ExitCause, ExitUsage, Message},
    entry::{LogEntry, LogKind},
    state::State,
};

fn temp_db(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dsh-journal-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("journal.redb")
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn entry(s: i64, key: &str, change: bool) -> LogEntry {
    let mut e = LogEntry::new(
        at(s),
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

fn exec(s: i64, key: &str, pid: u32) -> LogEntry {
    let msg = Message::Exec {
        filename: "/bin/true".into(),
    };
    LogEntry::new(at(s), key, key, LogKind::Exec, msg).with_task(pid, "true")
}

fn exited(code: u8, usage: Option<ExitUsage>) -> Message {
    Message::Exit {
        cause: ExitCause::Exited { code },
        child: false,
        usage,
    }
}

fn seqs(lines: &[LogEntry]) -> Vec<u64> {
    lines.iter().map(|e| e.seq).collect()
}

fn all(j: &Journal, key: Option<&str>) -> Vec<LogEntry> {
    let l = j.query(&Query {
        key,
        ..Default::default()
    });
    assert_eq!(l.unavailable, None);
    l.entries
}

#[test]
fn appends_survive_reopen_without_duplicates() {
    let path = temp_db("reopen");
    {
        let j = Journal::open(&path, Retention::default());
        let mut batch = vec![
            entry(1, "a", true),
            entry(2, "b", false),
            entry(3, "a", false),
        ];
        j.append(&mut batch, Changes::default());
        assert_eq!(seqs(&batch), [1, 2, 3]);
        assert!(batch.iter().all(|e| e.durable));
    }
    let j = Journal::open(&path, Retention::default());
    let mut more = vec![entry(4, "a", true)];
    j.append(&mut more, Changes::default());
    assert_eq!(more[0].seq, 4, "seq continues after reopen");

    assert_eq!(seqs(&all(&j, None)), [1, 2, 3, 4]);
    assert_eq!(all(&j, None)[1], {
        let mut e = entry(2, "b", false);
        e.seq = 2;
        e
    });
    assert_eq!(seqs(&all(&j, Some("a"))), [1, 3, 4]);
    let a_changes = j.query(&Query {
        key: Some("a"),
        state_changes_only: true,
        after_seq: 1,
        ..Default::default()
    });
    assert_eq!(seqs(&a_changes.entries), [4]);
    let since = j.query(&Query {
        since: Some(at(3)),
        ..Default::default()
    });
    assert_eq!(since.entries.len(), 2);
    assert!(all(&j, Some("nobody")).is_empty());
    let mut known = j.known();
    known.sort();
    assert_eq!(known, [("a".into(), "a".into()), ("b".into(), "b".into())]);
}

#[test]
fn chatty_lines_are_evicted_first_and_critical_ones_stay() {
    let path = temp_db("classes");
    let limits = Retention {
        max_chatty_entries: 1000,
        ..Retention::default()
    };
    let j = Journal::open(&path, limits);
    let mut crash = entry(0, "crasher", true);
    crash.kind = LogKind::Exit;
    crash.msg = exited(3, None);
    j.append(&mut [crash], Changes::default());
    // A flood of churn from a neighbour, many flushes' worth.
    for round in 0..40 {
        let mut batch: Vec<LogEntry> = (0..250)
            .map(|i| exec(1 + round, "noisy", 1000 + i))
            .collect();
        j.append(&mut batch, Changes::default());
    }
    let s = j.status();
    assert_eq!(s.critical_entries, 1);
    assert!(
        (1000 - super::block::MAX_LINES as u64..=1000).contains(&s.chatty_entries),
        "chatty lines within the budget: {s:?}"
    );
    assert_eq!(s.health.chatty_evicted + s.chatty_entries, 10_000);
    let kept = all(&j, Some("crasher"));
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].msg, exited(3, None));
    // Reading the noisy container gives its newest lines, in order.
    let noisy = all(&j, Some("noisy"));
    assert_eq!(noisy.len() as u64, s.chatty_entries);
    assert_eq!(noisy.last().map(|e| e.seq), Some(10_001));
    assert!(noisy.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// A container's critical lines are bounded, oldest first; its
/// neighbours' are untouched, and the count survives a reopen.
#[test]
fn one_containers_critical_lines_are_bounded_and_its_neighbours_kept() {
    let path = temp_db("critical-bound");
    let limits = Retention {
        max_critical_per_container: 1000,
        ..Retention::default()
    };
    let j = Journal::open(&path, limits);
    let mut quiet = entry(0, "quiet", true);
    quiet.kind = LogKind::Exit;
    quiet.msg = exited(3, None);
    j.append(&mut [quiet], Changes::default());
    // A crash loop, many flushes' worth, mixed with the neighbour's lines.
    for round in 0..30 {
        let mut batch: Vec<LogEntry> = (0..100)
            .map(|i| entry(1 + round * 100 + i, "loop", true))
            .collect();
        batch.push(entry(1 + round * 100, "quiet", true));
        j.append(&mut batch, Changes::default());
    }
    let s = j.status();
    let looped = all(&j, Some("loop"));
    assert!(
        (900..=1000).contains(&looped.len()),
        "within the bound: {} ({s:?})",
        looped.len()
    );
    assert_eq!(s.health.critical_evicted + looped.len() as u64, 3000);
    // The newest stay, in order.
    assert_eq!(
        looped.last().map(|e| e.msg.clone()),
        Some(entry(3000, "loop", true).msg)
    );
    assert!(looped.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        all(&j, Some("quiet")).len(),
        31,
        "the neighbour keeps every line"
    );
    assert_eq!(s.critical_entries, looped.len() as u64 + 31);
    assert_eq!(s.max_critical_per_container, 1000);
    // Reopened: the count is the stored one, so the bound holds on.
    drop(j);
    let j = Journal::open(&path, limits);
    let mut more: Vec<LogEntry> = (0..200).map(|i| entry(4000 + i, "loop", true)).collect();
    j.append(&mut more, Changes::default());
    let looped = all(&j, Some("loop"));
    assert!((900..=1000).contains(&looped.len()), "{}", looped.len());
}

#[test]
fn the_byte_budget_evicts_chatty_lines() {
    let path = temp_db("bytes");
    let limits = Retention {
        max_bytes: 64 << 10,
        ..Retention::default()
    };
    let j = Journal::open(&path, limits);
    for round in 0..100 {
        let mut batch: Vec<LogEntry> = (0..100)
            .map(|i| exec(round, &format!("c{}", i % 7), 1000 + i as u32))
            .collect();
        j.append(&mut batch, Changes::default());
    }
    let s = j.status();
    assert!(s.stored_bytes <= 64 << 10, "{s:?}");
    assert!(s.health.chatty_evicted > 0);
}

#[test]
fn age_retention_drops_old_lines_of_both_classes() {
    let path = temp_db("age");
    let limits = Retention {
        max_age: SignedDuration::from_secs(100),
        ..Retention::default()
    };
    let j = Journal::open(&path, limits);
    let max = super::block::MAX_LINES as i64;
    for s in [0, 200] {
        let mut batch: Vec<LogEntry> = (0..2 * max)
            .flat_map(|i| [entry(s, &format!("k{i}"), true), exec(s, "k", i as u32)])
            .collect();
        j.append(&mut batch, Changes::default());
    }
    let before = j.entry_count();
    let removed = j.enforce_retention(at(250)).unwrap();
    // Blocks go whole, when their newest line is too old: at most the one
    // block per class that straddles the cutoff keeps older lines.
    let left = all(&j, None);
    let old = left.iter().filter(|e| e.ts < at(200)).count() as i64;
    assert!(old <= 2 * max, "{old} old lines left");
    assert_eq!(removed as i64 + old, 4 * max, "{removed} of {before}");
    assert_eq!(
        left.iter().filter(|e| e.ts == at(200)).count() as i64,
        4 * max
    );
    assert_eq!(j.status().health.expired, removed);
}

/// A journal of typical lines (process churn from a few containers, with
/// their starts, exits and signals) costs at most 200 bytes per line on disk.
#[test]
fn a_typical_line_takes_under_200_bytes_on_disk() {
    let path = temp_db("size");
    let j = Journal::open(&path, Retention::default());
    let keys: Vec<String> = (0..20).map(|i| format!("{i:064x}")).collect();
    for round in 0..100i64 {
        let mut batch = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            for p in 0..10 {
                batch.push(exec(round, k, (round * 1000 + p) as u32));
            }
            if round % 10 == i as i64 % 10 {
                let mut e = entry(round, k, true);
                e.kind = LogKind::Exit;
                let usage = ExitUsage {
                    run_time_s: 134.0,
                    cpu_s: Some(3.2),
                    peak_mem_bytes: Some(41 << 20),
                };
                e.msg = exited(i as u8, Some(usage));
                batch.push(e);
            }
        }
        j.append(&mut batch, Changes::default());
    }
    let s = j.status();
    eprintln!("{:.1} bytes per line on disk", s.bytes_per_line);
    assert_eq!(s.critical_entries + s.chatty_entries, 100 * 200 + 200);
    assert!(
        s.bytes_per_line <= 200.0,
        "{:.1} bytes per line on disk",
        s.bytes_per_line
    );
}

fn damage(tag: &str, how: impl FnOnce(&std::path::Path)) {
    let path = temp_db(tag);
    {
        let j = Journal::open(&path, Retention::default());
        let mut lines: Vec<LogEntry> = (0..2000).map(|i| exec(i, "k", i as u32)).collect();
        j.append(&mut lines, Changes::default());
    }
    how(&path);
    let j = Journal::open(&path, Retention::default());
    let s = j.status();
    let moved = s
        .health
        .moved_aside
        .expect("the damaged file is moved aside");
    assert!(moved.path.contains("journal.redb.corrupt-"), "{moved:?}");
    assert!(std::path::Path::new(&moved.path).exists());
    assert!(s.writable);
    // A fresh journal that takes lines.
    j.append(&mut [entry(1, "k", true)], Changes::default());
    assert_eq!(all(&j, Some("k")).len(), 1);
    drop(j);
    // A healthy journal is kept as it is.
    let j = Journal::open(&path, Retention::default());
    assert_eq!(j.status().health.moved_aside, None);
    assert_eq!(all(&j, Some("k")).len(), 1);
}

#[test]
fn a_truncated_journal_is_moved_aside() {
    damage("truncated", |p| {
        let len = std::fs::metadata(p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len / 3).unwrap();
    });
}

#[test]
fn an_overwritten_journal_is_moved_aside() {
    damage("overwritten", |p| {
        let len = std::fs::metadata(p).unwrap().len() as usize;
        let junk: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
        std::fs::write(p, junk).unwrap();
    });
}

/// Readers page through the journal (`Query::limit`): pages of critical and
/// chatty lines, of one container or all, together give every line once,
/// in seq order.
#[test]
fn pages_cover_everything_once() {
    let path = temp_db("pages");
    let j = Journal::open(&path, Retention::default());
    let mut batch: Vec<LogEntry> = (0..40)
        .map(|i| {
            let key = if i % 3 == 0 { "a" } else { "b" };
            if i % 4 == 0 {
                entry(i, key, true)
            } else {
                exec(i, key, 100 + i as u32)
            }
        })
        .collect();
    j.append(&mut batch, Changes::default());
    for (key, changes_only) in [(None, false), (Some("b"), false), (Some("a"), true)] {
        let q = |after_seq, limit| Query {
            key,
            state_changes_only: changes_only,
            after_seq,
            limit,
            ..Default::default()
        };
        let want = j.query(&q(0, None)).entries;
        assert!(!want.is_empty());
        let mut got = Vec::new();
        let mut after_seq = 0;
        loop {
            let page = j.query(&q(after_seq, Some(4))).entries;
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            after_seq = last.seq;
            got.extend(page);
        }
        assert_eq!(seqs(&got), seqs(&want), "{key:?} {changes_only}");
    }
}

/// Lines of every shape, hostile strings included, through a block's
/// encoding and back (exact: times in µs and usage in ms are the journal's
/// precision); the block is the `journal_block` fuzz target's seed.
#[test]
fn blocks_round_trip_and_seed_the_fuzzer() {
    use super::block::{Block, ContainerNo};
    let key = |no: ContainerNo| Some(format!("key{}", no.0));
    let mut lines = vec![entry(1, "key0", true), exec(2, "key1", 42), {
        let mut e = LogEntry::new(
            at(3),
            "key1",
            "/evil\x1b]0;t\x07\u{9b}",
            LogKind::Exit,
            exited(
                3,
                Some(ExitUsage {
                    run_time_s: 134.25,
                    cpu_s: Some(3.2),
                    peak_mem_bytes: Some(41 << 20),
                }),
            ),
        )
        .with_task(7, "sh\u{202e}");
        e.from = Some(State::Running);
        e.to = Some(State::Error);
        e.exit_code = Some(3);
        e
    }];
    let mut block = Block::default();
    for (i, e) in lines.iter_mut().enumerate() {
        e.seq = 10 + i as u64;
        block.push(e, ContainerNo(if e.key == "key0" { 0 } else { 1 }));
    }
    let bytes = block.encode();
    let back: Vec<LogEntry> = Block::decode(&bytes)
        .unwrap()
        .entries(key)
        .map(|l| l.unwrap().1)
        .collect();
    assert_eq!(back, lines);
    crate::fuzz_seeds::seed("journal_block", "three-lines", &bytes);
}

/// One container record that does not decode (a bug, a downgrade, a bad
/// sector): the others load, it is skipped, counted and its error kept for
/// `dsh status`.
#[test]
fn an_undecodable_container_record_is_skipped_and_counted() {
    use crate::{cgroup::identity::identify, model::container::Container};
    let path = temp_db("badrecord");
    {
        let j = Journal::open(&path, Retention::default());
        let good = Container::new(identify("/good").expect("a plain cgroup"), at(0));
        let changes = Changes {
            updated: vec![good],
            forgotten: Vec::new(),
        };
        j.append(&mut [entry(1, "/good", true)], changes);
        let database = j.database().expect("open");
        let tx = database.begin_write().unwrap();
        {
            let mut t = tx.open_table(super::tables::CONTAINERS).unwrap();
            t.insert("/bad", &b"{\"key\": 7, \"cut off"[..]).unwrap();
        }
        tx.commit().unwrap();
    }
    let j = Journal::open(&path, Retention::default());
    let loaded = j.load_containers().expect("the good records load");
    let keys: Vec<&str> = loaded.iter().map(|c| c.key()).collect();
    assert_eq!(keys, ["/good"]);
    let s = j.status();
    assert_eq!(s.health.skipped_records, 1);
    let said = s.health.last_skipped.expect("the error is kept");
    assert!(said.contains("container record /bad is damaged"), "{said}");
    assert_eq!(s.health.moved_aside, None, "the file itself is fine");
}
