//! `dsh log` lines in the contract's format, local time.
use jiff::tz::TimeZone;

use super::sanitize;
use crate::model::entry::LogEntry;

pub fn line(e: &LogEntry, tz: &TimeZone) -> String {
    let ts = e.ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S");
    let id = sanitize(&e.id);
    let msg = sanitize(&e.msg);
    match e.to {
        Some(to) => {
            let from = e.from.map_or("-", |f| f.as_str());
            format!("{ts} {id} change state from {from} to {to} with msg {msg}")
        }
        None => {
            format!("{ts} {id} {} with msg {msg}", e.kind.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{entry::LogKind, state::State};

    #[test]
    fn state_change_line_matches_the_contract() {
        let mut e = LogEntry::new(
            "2016-02-24T23:28:47Z".parse().unwrap(),
            "k",
            "web",
            LogKind::Start,
            "start user process ok".into(),
        );
        e.from = Some(State::Booting);
        e.to = Some(State::Running);
        assert_eq!(
            line(&e, &TimeZone::UTC),
            "2016-02-24 23:28:47 web change state from kContainerBooting to kContainerRunning with msg start user process ok"
        );
        e.from = None;
        e.to = None;
        e.kind = LogKind::Signal;
        e.msg = "receive signal SIGTERM from pid 7 (x\x1b)".into();
        assert_eq!(
            line(&e, &TimeZone::UTC),
            "2016-02-24 23:28:47 web signal with msg receive signal SIGTERM from pid 7 (x?)"
        );
    }
}
