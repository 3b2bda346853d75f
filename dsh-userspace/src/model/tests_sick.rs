//! Running-but-failing conditions through the model: one log line when a
//! condition starts, one when it ends, none per event in between.
use super::{
    cause::Message,
    container::{Counters, NetSample},
    entry::LogKind,
    health::Health,
    tests::{ID, boot, model, t},
};
use crate::cgroup::stats::CgroupStats;

#[test]
fn refused_forks_write_one_line_when_they_start_and_one_when_they_end() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.take_log();
    let sample = |m: &mut super::Model, refused: u64, at: i64| {
        let stats = CgroupStats {
            pids: Some(12),
            pids_max: Some(12),
            pids_refused: refused,
            ..Default::default()
        };
        m.record_sample(ID, stats, Counters::default(), NetSample::default(), t(at));
    };
    sample(&mut m, 0, 1);
    assert!(m.take_log().is_empty());
    // Refused forks every second for half a minute: one line.
    for s in 2..32 {
        sample(&mut m, 10 * s as u64, s);
    }
    let lines = m.take_log();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].kind, LogKind::Health);
    let Message::Health {
        from,
        to,
        started,
        ended,
    } = &lines[0].msg
    else {
        panic!("{:?}", lines[0].msg)
    };
    assert_eq!(
        (*from, *to, started.len(), ended.len()),
        (Health::Good, Health::Warning, 1, 0)
    );
    assert_eq!(started[0].kind(), "pids_refused");
    // It stops; a minute after the last refusal the condition ends: one line.
    for s in 32..100 {
        sample(&mut m, 310, s);
    }
    let lines = m.take_log();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        matches!(&lines[0].msg, Message::Health { from: Health::Warning, to: Health::Good, started, ended }
            if started.is_empty() && ended.len() == 1),
        "{:?}",
        lines[0].msg
    );
}
