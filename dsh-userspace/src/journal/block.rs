//! The journal's on-disk form of log lines: blocks of lines of one class,
//! each block with its own string table (names, paths, commands repeat
//! from line to line), postcard-encoded (varints, no field names); the
//! typed message is stored by `msg::Msg`, its strings in that table. A
//! container is a small number (`ContainerNo`) kept in the `who` table, not its
//! 64-hex id. A typical line costs a few dozen bytes instead of a JSON
//! document of a few hundred.
use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::msg::Msg;
use crate::model::{
    entry::{LogEntry, LogKind},
    state::State,
};

/// A container's number in the journal: blocks and the index name a
/// container by it (the `who` table maps it to the key), not by its key.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ContainerNo(pub u32);

impl std::fmt::Display for ContainerNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Format of a block's bytes: bump on any change to `Block`, `Line` or
/// `Msg` (2: typed messages).
const FORMAT: u8 = 2;

/// A block is closed once it holds this many lines or encodes to about this
/// many bytes: one block then fills one 4 KiB B-tree page.
pub const MAX_LINES: usize = 512;
pub const MAX_BYTES: usize = 3_800;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Block {
    /// The first line's seq and time (µs since the epoch): lines store deltas.
    base_seq: u64,
    base_us: i64,
    strings: Vec<String>,
    /// Every container with a line here (for the index, and for eviction).
    pub who: Vec<ContainerNo>,
    lines: Vec<Line>,
    #[serde(skip)]
    interned: HashMap<String, u32>,
    /// Approximate encoded size, kept as lines are added.
    #[serde(skip)]
    approx_bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Line {
    seq: u64,
    us: i64,
    cno: ContainerNo,
    name: u32,
    kind: LogKind,
    from: Option<State>,
    to: Option<State>,
    msg: Msg,
    pid: Option<u32>,
    comm: Option<u32>,
    signal: Option<u32>,
    exit_code: Option<u8>,
    core_dumped: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("unknown block format {0}")]
    Format(u8),
    #[error("undecodable block")]
    Decode(#[source] postcard::Error),
    #[error("a line refers to string {0}, which the block lacks")]
    String(u32),
    #[error("a line's seq or time is out of range")]
    Range,
}

/// Time as the journal keeps it: microseconds.
pub fn micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

impl Block {
    pub fn decode(bytes: &[u8]) -> Result<Self, BlockError> {
        let (&format, body) = bytes.split_first().ok_or(BlockError::Format(0))?;
        if format != FORMAT {
            return Err(BlockError::Format(format));
        }
        let mut b: Block = postcard::from_bytes(body).map_err(BlockError::Decode)?;
        b.interned = b
            .strings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        b.approx_bytes = bytes.len();
        Ok(b)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        // Only Vec-backed output, which cannot fail for want of room.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn first_seq(&self) -> u64 {
        self.base_seq
    }

    pub fn last_seq(&self) -> u64 {
        // Saturating: a damaged block's deltas must not wrap (or panic).
        self.lines
            .last()
            .map_or(self.base_seq, |l| self.base_seq.saturating_add(l.seq))
    }

    /// The newest line's time: the block expires with it.
    pub fn newest(&self) -> Option<Timestamp> {
        let us = self.lines.iter().map(|l| l.us).max()?;
        Timestamp::from_microsecond(self.base_us.checked_add(us)?).ok()
    }

    /// Room for more lines?
    pub fn is_full(&self) -> bool {
        self.lines.len() >= MAX_LINES || self.approx_bytes >= MAX_BYTES
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.interned.get(s) {
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.push(s.to_owned());
        self.interned.insert(s.to_owned(), i);
        self.approx_bytes += s.len() + 1;
        i
    }

    /// Adds a line (its seq already assigned) of container `cno`.
    pub fn push(&mut self, e: &LogEntry, cno: ContainerNo) {
        let us = micros(e.ts);
        if self.lines.is_empty() {
            self.base_seq = e.seq;
            self.base_us = us;
        }
        if !self.who.contains(&cno) {
            self.who.push(cno);
            self.approx_bytes += 3;
        }
        let line = Line {
            seq: e.seq - self.base_seq,
            us: us - self.base_us,
            cno,
            name: self.intern(&e.id),
            kind: e.kind,
            from: e.from,
            to: e.to,
            msg: Msg::store(&e.msg, &mut |s| self.intern(s)),
            pid: e.pid,
            comm: e.comm.as_deref().map(|c| self.intern(c)),
            signal: e.signal.as_deref().map(|s| self.intern(s)),
            exit_code: e.exit_code,
            core_dumped: e.core_dumped,
        };
        self.approx_bytes += postcard::experimental::serialized_size(&line).unwrap_or(32);
        self.lines.push(line);
    }

    /// How many lines container `cno` has here.
    pub fn lines_of(&self, cno: ContainerNo) -> u64 {
        self.lines.iter().filter(|l| l.cno == cno).count() as u64
    }

    /// Removes the oldest `n` lines of container `cno` (all of them if it
    /// has fewer) and returns how many went. The block keeps its first seq
    /// (its key in the table; lines store deltas from it); an emptied block
    /// is for the caller to delete.
    pub fn remove_oldest_of(&mut self, cno: ContainerNo, n: u64) -> u64 {
        let mut removed = 0;
        self.lines.retain(|l| {
            if l.cno == cno && removed < n {
                removed += 1;
                return false;
            }
            true
        });
        if !self.lines.iter().any(|l| l.cno == cno) {
            self.who.retain(|&c| c != cno);
        }
        removed
    }

    /// The lines, with `key_of` naming each container number.
    pub fn entries<'a>(
        &'a self,
        mut key_of: impl FnMut(ContainerNo) -> Option<String> + 'a,
    ) -> impl Iterator<Item = Result<(ContainerNo, LogEntry), BlockError>> + 'a {
        let s = |i: u32| {
            self.strings
                .get(i as usize)
                .cloned()
                .ok_or(BlockError::String(i))
        };
        self.lines.iter().map(move |l| {
            let us = self.base_us.checked_add(l.us).ok_or(BlockError::Range)?;
            let seq = self.base_seq.checked_add(l.seq).ok_or(BlockError::Range)?;
            let ts = Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH);
            let key = key_of(l.cno).unwrap_or_else(|| l.cno.to_string());
            let mut e = LogEntry::new(ts, &key, &s(l.name)?, l.kind, l.msg.load(&s)?);
            e.seq = seq;
            e.from = l.from;
            e.to = l.to;
            e.pid = l.pid;
            e.comm = l.comm.map(s).transpose()?;
            e.signal = l.signal.map(s).transpose()?;
            e.exit_code = l.exit_code;
            e.core_dumped = l.core_dumped;
            Ok((l.cno, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{
            cause::{
                ChurnSummary, ExitCause, ExitUsage, ExternalSignal, Message, OomAtDeath,
                OtherSignalsReceived, SignalsReceived, Start,
            },
            health::{Health, HealthReason, StallResource},
        },
        signal::Signal,
    };

    fn exec(seq: u64, s: i64) -> LogEntry {
        let mut e = LogEntry::new(
            Timestamp::from_second(1_800_000_000 + s).unwrap(),
            "k",
            "web",
            LogKind::Exec,
            Message::Exec {
                filename: "/bin/true".into(),
            },
        )
        .with_task(1000 + seq as u32, "true");
        e.seq = seq;
        e
    }

    /// A damaged block whose deltas overflow: an error for that line, not
    /// a wrapped seq (release) or a panic (debug).
    #[test]
    fn deltas_that_overflow_are_errors() {
        let mut b = Block::default();
        b.push(&exec(10, 0), ContainerNo(7));
        b.push(&exec(13, 1), ContainerNo(7));
        b.base_seq = u64::MAX - 1;
        b.base_us = i64::MAX - 10;
        let back = Block::decode(&b.encode()).unwrap();
        assert_eq!(back.last_seq(), u64::MAX);
        assert_eq!(back.newest(), None);
        let lines: Vec<_> = back.entries(|_| Some("k".to_owned())).collect();
        assert!(matches!(&lines[0], Ok((ContainerNo(7), e)) if e.seq == u64::MAX - 1));
        assert!(matches!(lines[1], Err(BlockError::Range)));
    }

    #[test]
    fn lines_round_trip_and_stay_small() {
        let mut b = Block::default();
        for i in 0..100 {
            b.push(&exec(10 + i, i as i64 / 10), ContainerNo(7));
        }
        let mut exit = exec(110, 11);
        exit.kind = LogKind::Exit;
        exit.from = Some(State::Running);
        exit.to = Some(State::Error);
        exit.msg = Message::Exit {
            cause: ExitCause::Exited { code: 3 },
            child: false,
            usage: Some(ExitUsage {
                run_time_s: 134.0,
                cpu_s: Some(3.2),
                peak_mem_bytes: Some(41 << 20),
            }),
        };
        exit.exit_code = Some(3);
        b.push(&exit, ContainerNo(7));
        let bytes = b.encode();
        assert!(
            bytes.len() < 101 * 24,
            "{} bytes for 101 lines",
            bytes.len()
        );
        let back = Block::decode(&bytes).unwrap();
        assert_eq!(
            (back.first_seq(), back.last_seq(), back.len()),
            (10, 110, 101)
        );
        let lines: Vec<LogEntry> = back
            .entries(|c| (c == ContainerNo(7)).then(|| "k".to_owned()))
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(lines[0], exec(10, 0));
        assert_eq!(lines[100], exit);
        assert_eq!(back.newest(), Some(exit.ts));
    }

    /// Every kind of message comes back from a block as it went in.
    #[test]
    fn every_message_round_trips() {
        let runc = ExternalSignal {
            signal: Signal::from_raw(15),
            sender_pid: 812,
            sender_comm: "runc".into(),
        };
        let exit = |cause, child, usage| Message::Exit {
            cause,
            child,
            usage,
        };
        let msgs = [
            Message::CgroupCreated {
                cgroup: "/docker/abc".into(),
            },
            Message::CgroupRemoved {
                cgroup: "/docker/abc".into(),
            },
            Message::CgroupGone,
            Message::Exec {
                filename: "/bin/sh".into(),
            },
            Message::Started(Start::Exec),
            Message::Started(Start::FoundRunning),
            Message::Started(Start::RestartedWhileDown),
            Message::SignalFromOutside(runc.clone()),
            exit(
                ExitCause::Oom(OomAtDeath {
                    mem_used: Some(32 << 20),
                    mem_limit: None,
                    sampled: false,
                }),
                true,
                None,
            ),
            exit(
                ExitCause::Oom(OomAtDeath {
                    mem_used: Some(20 << 20),
                    mem_limit: Some(32 << 20),
                    sampled: true,
                }),
                false,
                None,
            ),
            exit(
                ExitCause::Coredump {
                    signal: Signal::from_raw(11),
                    core_written: true,
                },
                false,
                Some(ExitUsage {
                    run_time_s: 0.25,
                    cpu_s: None,
                    peak_mem_bytes: Some(1 << 20),
                }),
            ),
            exit(ExitCause::SignalFromOutside(runc.clone()), false, None),
            exit(
                ExitCause::Signal {
                    signal: Signal::from_raw(40),
                },
                false,
                None,
            ),
            exit(
                ExitCause::ExitAfterSignal {
                    code: 143,
                    by: runc,
                },
                false,
                None,
            ),
            exit(ExitCause::Exited { code: 0 }, false, None),
            Message::Text("exit code 3".into()),
            Message::Churn(ChurnSummary {
                execs: 1670,
                commands: vec![("cat".into(), 1600), ("sh".into(), 60)],
                other_commands: 2,
                other_execs: 10,
                exits_ok: 1660,
                exits_failed: 9,
                exits_killed: 1,
            }),
            Message::SignalsReceived(SignalsReceived {
                signal: Signal::from_raw(1),
                count: 31_002,
                sender_pid: 812,
                sender_comm: "bash".into(),
            }),
            Message::OtherSignalsReceived(OtherSignalsReceived {
                count: 500,
                senders: 499,
                signals: vec![Signal::from_raw(10), Signal::from_raw(64)],
            }),
            Message::Health {
                from: Health::Good,
                to: Health::Warning,
                started: vec![
                    HealthReason::PidsRefused {
                        count: 226,
                        limit: Some(12),
                        window: jiff::SignedDuration::from_mins(1),
                    },
                    HealthReason::FdLimit {
                        count: 9,
                        limit: None,
                        window: jiff::SignedDuration::from_secs(30),
                    },
                ],
                ended: vec![HealthReason::Stalled {
                    resource: StallResource::Io,
                    some: 0.69,
                    full: 0.5,
                    memory: 0.05,
                }],
            },
            Message::Health {
                from: Health::Warning,
                to: Health::UnHealthy,
                started: vec![
                    HealthReason::ConnectsFailing {
                        per_s: 18.25,
                        share: 1.0,
                        how: Some(crate::model::tcp::ConnectFailure::Refused),
                        to: Some("127.0.0.1:9".parse().unwrap()),
                    },
                    HealthReason::ConnectsFailing {
                        per_s: 2.0,
                        share: 0.5,
                        how: None,
                        to: None,
                    },
                    HealthReason::ListenOverflows {
                        per_s: 58.0,
                        port: Some(7000),
                    },
                ],
                ended: vec![HealthReason::Retransmits { ratio: 0.07 }],
            },
        ];
        let mut b = Block::default();
        let mut lines = Vec::new();
        for (i, msg) in msgs.into_iter().enumerate() {
            let mut e = exec(i as u64 + 1, 0);
            e.msg = msg;
            b.push(&e, ContainerNo(1));
            lines.push(e);
        }
        let back: Vec<LogEntry> = Block::decode(&b.encode())
            .unwrap()
            .entries(|_| Some("k".to_owned()))
            .map(|r| r.unwrap().1)
            .collect();
        assert_eq!(back, lines);
    }

    #[test]
    fn a_containers_oldest_lines_come_out_and_the_rest_stay() {
        let mut b = Block::default();
        for seq in 1..=6 {
            b.push(&exec(seq, 0), ContainerNo((seq % 2) as u32));
        }
        assert_eq!(
            (b.lines_of(ContainerNo(0)), b.lines_of(ContainerNo(1))),
            (3, 3)
        );
        assert_eq!(b.remove_oldest_of(ContainerNo(1), 2), 2);
        let back = Block::decode(&b.encode()).unwrap();
        assert_eq!(back.first_seq(), 1, "the key stays");
        let seqs: Vec<u64> = back
            .entries(|_| Some("k".to_owned()))
            .map(|r| r.unwrap().1.seq)
            .collect();
        assert_eq!(seqs, [2, 4, 5, 6]);
        assert_eq!(b.who, [ContainerNo(1), ContainerNo(0)]);
        assert_eq!(b.remove_oldest_of(ContainerNo(1), 10), 1);
        assert_eq!(
            b.who,
            [ContainerNo(0)],
            "no line left: no longer in the block"
        );
        assert_eq!(b.remove_oldest_of(ContainerNo(7), 10), 0);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut b = Block::default();
        b.push(&exec(1, 0), ContainerNo(1));
        let bytes = b.encode();
        assert!(matches!(
            Block::decode(&[9, 1, 2]),
            Err(BlockError::Format(9))
        ));
        assert!(Block::decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(Block::decode(&[]).is_err());
    }
}
