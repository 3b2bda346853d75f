//! A line's typed message as a block stores it: the model's `Message` with
//! every string an index into the block's string table (paths, file names
//! and commands repeat from line to line), signals as their numbers, times
//! in milliseconds. A mirror of its own, not `Message` itself, because
//! postcard cannot decode the API's serde shape (an untagged variant,
//! skipped fields), and because the disk format must not change when that
//! shape does: add variants at the end only, and bump the block format for
//! any other change.
use serde::{Deserialize, Serialize};

use crate::{
    model::cause::{
        CgroupChurnSummary, ChurnSummary, ExitCause, ExitUsage, ExternalSignal, Message,
        OomAtDeath, OtherSignalsReceived, SignalsReceived, Start,
    },
    signal::Signal,
};

use super::msg_health::{Condition, health_code, health_of};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Msg {
    CgroupCreated(u32),
    CgroupRemoved(u32),
    CgroupGone,
    Exec(u32),
    Started(Started),
    SignalFromOutside(Sender),
    Exit {
        cause: Cause,
        child: bool,
        usage: Option<Usage>,
    },
    Text(u32),
    /// Commands as string indexes, with their exec counts.
    Churn {
        execs: u64,
        commands: Vec<(u32, u64)>,
        other_commands: u64,
        other_execs: u64,
        exits_ok: u64,
        exits_failed: u64,
        exits_killed: u64,
    },
    /// Added after format 2's first variants: stored positions stay.
    SignalsReceived {
        by: Sender,
        count: u64,
    },
    OtherSignalsReceived {
        count: u64,
        senders: u64,
        signals: Vec<u8>,
    },
    CgroupChurn {
        parent: u32,
        vanished: u64,
        lines_not_written: u64,
    },
    /// Running-but-failing conditions started or ended (added last).
    Health {
        from: u8,
        to: u8,
        started: Vec<Condition>,
        ended: Vec<Condition>,
    },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) enum Started {
    Exec,
    FoundRunning,
    RestartedWhileDown,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Sender {
    signal: u8,
    pid: u32,
    comm: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Cause {
    Oom {
        mem_used: Option<u64>,
        mem_limit: Option<u64>,
    },
    Coredump {
        signal: u8,
        core_written: bool,
    },
    SignalFromOutside(Sender),
    Signal(u8),
    ExitAfterSignal {
        code: u8,
        by: Sender,
    },
    Exited(u8),
    /// An OOM kill whose figures are the container's last sample (added
    /// last: the disk format keeps its variants' numbers).
    OomSampled {
        mem_used: Option<u64>,
        mem_limit: Option<u64>,
    },
}

/// Run time and CPU time in milliseconds, memory peak in bytes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct Usage {
    run_ms: u64,
    cpu_ms: Option<u64>,
    peak_mem_bytes: Option<u64>,
}

impl Sender {
    fn store(s: &ExternalSignal, intern: &mut impl FnMut(&str) -> u32) -> Self {
        Sender {
            signal: s.signal.number(),
            pid: s.sender_pid,
            comm: intern(&s.sender_comm),
        }
    }
}

fn ms(secs: f64) -> u64 {
    (secs * 1e3).round() as u64
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1e3
}

impl Msg {
    /// The stored form of `m`, with `intern` giving each string's index.
    pub(super) fn store(m: &Message, intern: &mut impl FnMut(&str) -> u32) -> Self {
        match m {
            Message::CgroupCreated { cgroup } => Msg::CgroupCreated(intern(cgroup)),
            Message::CgroupRemoved { cgroup } => Msg::CgroupRemoved(intern(cgroup)),
            Message::CgroupGone => Msg::CgroupGone,
            Message::Exec { filename } => Msg::Exec(intern(filename)),
            Message::Started(how) => Msg::Started(match how {
                Start::Exec => Started::Exec,
                Start::FoundRunning => Started::FoundRunning,
                Start::RestartedWhileDown => Started::RestartedWhileDown,
            }),
            Message::SignalFromOutside(s) => Msg::SignalFromOutside(Sender::store(s, intern)),
            Message::Exit {
                cause,
                child,
                usage,
            } => Msg::Exit {
                cause: match cause {
                    ExitCause::Oom(at) if at.sampled => Cause::OomSampled {
                        mem_used: at.mem_used,
                        mem_limit: at.mem_limit,
                    },
                    ExitCause::Oom(at) => Cause::Oom {
                        mem_used: at.mem_used,
                        mem_limit: at.mem_limit,
                    },
                    ExitCause::Coredump {
                        signal,
                        core_written,
                    } => Cause::Coredump {
                        signal: signal.number(),
                        core_written: *core_written,
                    },
                    ExitCause::SignalFromOutside(by) => {
                        Cause::SignalFromOutside(Sender::store(by, intern))
                    }
                    ExitCause::Signal { signal } => Cause::Signal(signal.number()),
                    ExitCause::ExitAfterSignal { code, by } => Cause::ExitAfterSignal {
                        code: *code,
                        by: Sender::store(by, intern),
                    },
                    ExitCause::Exited { code } => Cause::Exited(*code),
                },
                child: *child,
                usage: usage.map(|u| Usage {
                    run_ms: ms(u.run_time_s),
                    cpu_ms: u.cpu_s.map(ms),
                    peak_mem_bytes: u.peak_mem_bytes,
                }),
            },
            Message::Text(text) => Msg::Text(intern(text)),
            Message::Churn(c) => Msg::Churn {
                execs: c.execs,
                commands: c
                    .commands
                    .iter()
                    .map(|(comm, n)| (intern(comm), *n))
                    .collect(),
                other_commands: c.other_commands,
                other_execs: c.other_execs,
                exits_ok: c.exits_ok,
                exits_failed: c.exits_failed,
                exits_killed: c.exits_killed,
            },
            Message::SignalsReceived(r) => Msg::SignalsReceived {
                by: Sender {
                    signal: r.signal.number(),
                    pid: r.sender_pid,
                    comm: intern(&r.sender_comm),
                },
                count: r.count,
            },
            Message::OtherSignalsReceived(o) => Msg::OtherSignalsReceived {
                count: o.count,
                senders: o.senders,
                signals: o.signals.iter().map(|s| s.number()).collect(),
            },
            Message::CgroupChurn(c) => Msg::CgroupChurn {
                parent: intern(&c.parent),
                vanished: c.vanished,
                lines_not_written: c.lines_not_written,
            },
            Message::Health {
                from,
                to,
                started,
                ended,
            } => Msg::Health {
                from: health_code(*from),
                to: health_code(*to),
                started: started.iter().filter_map(Condition::store).collect(),
                ended: ended.iter().filter_map(Condition::store).collect(),
            },
        }
    }

    /// The message back, with `s` giving the string at each index (or the
    /// block's error for an index it lacks).
    pub(super) fn load<E>(&self, s: &impl Fn(u32) -> Result<String, E>) -> Result<Message, E> {
        let sender = |x: &Sender| -> Result<ExternalSignal, E> {
            Ok(ExternalSignal {
                signal: Signal::from_raw(x.signal.into()),
                sender_pid: x.pid,
                sender_comm: s(x.comm)?,
            })
        };
        Ok(match self {
            Msg::CgroupCreated(i) => Message::CgroupCreated { cgroup: s(*i)? },
            Msg::CgroupRemoved(i) => Message::CgroupRemoved { cgroup: s(*i)? },
            Msg::CgroupGone => Message::CgroupGone,
            Msg::Exec(i) => Message::Exec { filename: s(*i)? },
            Msg::Started(how) => Message::Started(match how {
                Started::Exec => Start::Exec,
                Started::FoundRunning => Start::FoundRunning,
                Started::RestartedWhileDown => Start::RestartedWhileDown,
            }),
            Msg::SignalFromOutside(x) => Message::SignalFromOutside(sender(x)?),
            Msg::Exit {
                cause,
                child,
                usage,
            } => Message::Exit {
                cause: match cause {
                    Cause::Oom {
                        mem_used,
                        mem_limit,
                    } => ExitCause::Oom(OomAtDeath {
                        mem_used: *mem_used,
                        mem_limit: *mem_limit,
                        sampled: false,
                    }),
                    Cause::OomSampled {
                        mem_used,
                        mem_limit,
                    } => ExitCause::Oom(OomAtDeath {
                        mem_used: *mem_used,
                        mem_limit: *mem_limit,
                        sampled: true,
                    }),
                    Cause::Coredump {
                        signal,
                        core_written,
                    } => ExitCause::Coredump {
                        signal: Signal::from_raw((*signal).into()),
                        core_written: *core_written,
                    },
                    Cause::SignalFromOutside(by) => ExitCause::SignalFromOutside(sender(by)?),
                    Cause::Signal(signal) => ExitCause::Signal {
                        signal: Signal::from_raw((*signal).into()),
                    },
                    Cause::ExitAfterSignal { code, by } => ExitCause::ExitAfterSignal {
                        code: *code,
                        by: sender(by)?,
                    },
                    Cause::Exited(code) => ExitCause::Exited { code: *code },
                },
                child: *child,
                usage: usage.map(|u| ExitUsage {
                    run_time_s: secs(u.run_ms),
                    cpu_s: u.cpu_ms.map(secs),
                    peak_mem_bytes: u.peak_mem_bytes,
                }),
            },
            Msg::Text(i) => Message::Text(s(*i)?),
            Msg::Churn {
                execs,
                commands,
                other_commands,
                other_execs,
                exits_ok,
                exits_failed,
                exits_killed,
            } => Message::Churn(ChurnSummary {
                execs: *execs,
                commands: commands
                    .iter()
                    .map(|(i, n)| Ok((s(*i)?, *n)))
                    .collect::<Result<_, E>>()?,
                other_commands: *other_commands,
                other_execs: *other_execs,
                exits_ok: *exits_ok,
                exits_failed: *exits_failed,
                exits_killed: *exits_killed,
            }),
            Msg::SignalsReceived { by, count } => {
                let by = sender(by)?;
                Message::SignalsReceived(SignalsReceived {
                    signal: by.signal,
                    count: *count,
                    sender_pid: by.sender_pid,
                    sender_comm: by.sender_comm,
                })
            }
            Msg::OtherSignalsReceived {
                count,
                senders,
                signals,
            } => Message::OtherSignalsReceived(OtherSignalsReceived {
                count: *count,
                senders: *senders,
                signals: signals
                    .iter()
                    .map(|s| Signal::from_raw((*s).into()))
                    .collect(),
            }),
            Msg::CgroupChurn {
                parent,
                vanished,
                lines_not_written,
            } => Message::CgroupChurn(CgroupChurnSummary {
                parent: s(*parent)?,
                vanished: *vanished,
                lines_not_written: *lines_not_written,
            }),
            Msg::Health {
                from,
                to,
                started,
                ended,
            } => Message::Health {
                from: health_of(*from),
                to: health_of(*to),
                started: started.iter().map(Condition::load).collect(),
                ended: ended.iter().map(Condition::load).collect(),
            },
        })
    }
}
