//! `dsh log` lines in the contract's format, local time; the text of each
//! typed message (exit causes, signals, starts) is written here.
use jiff::tz::TimeZone;

use crate::untrusted;
use crate::{
    model::{
        cause::{
            CgroupChurnSummary, ChurnSummary, ExitCause, ExitUsage, ExternalSignal, Message,
            OomAtDeath, OtherSignalsReceived, SignalsReceived, Start,
        },
        entry::LogEntry,
    },
    units,
};

/// The `msg` of a line, as the contract spells it.
pub fn msg(m: &Message) -> String {
    match m {
        Message::CgroupCreated { cgroup } => format!("create cgroup {cgroup}"),
        Message::CgroupRemoved { cgroup } => format!("remove cgroup {cgroup}"),
        Message::CgroupGone => "cgroup removed".to_owned(),
        Message::Exec { filename } => format!("exec {filename}"),
        Message::Started(how) => match how {
            Start::Exec => "start user process ok",
            Start::FoundRunning => "start user process ok (found running at agent start)",
            Start::RestartedWhileDown => {
                "start user process ok (restarted while the agent was down)"
            }
        }
        .to_owned(),
        Message::SignalFromOutside(s) => from_outside(s),
        Message::Exit {
            cause,
            child,
            usage,
        } => {
            let mut text = exit_cause(cause);
            if *child {
                text.insert_str(0, "child process ");
            }
            if let Some(u) = usage {
                text.push_str(&format!(" ({})", exit_usage(u)));
            }
            text
        }
        Message::Churn(s) => churn(s),
        Message::SignalsReceived(s) => signals_received(s),
        Message::OtherSignalsReceived(o) => other_signals_received(o),
        Message::CgroupChurn(c) => cgroup_churn(c),
        Message::Health {
            from,
            to,
            started,
            ended,
        } => health_change(*from, *to, started, ended),
        Message::Text(text) => text.clone(),
    }
}

/// `480 cgroups created and removed under /user.slice/u.service without
/// running a process; 12 more create/destroy lines not written`
fn cgroup_churn(c: &CgroupChurnSummary) -> String {
    let mut parts = Vec::new();
    if c.vanished > 0 {
        let plural = if c.vanished == 1 { "" } else { "s" };
        parts.push(format!(
            "{} cgroup{plural} created and removed under {} without running a process",
            units::thousands(c.vanished),
            c.parent
        ));
    }
    if c.lines_not_written > 0 {
        let under = if c.vanished > 0 {
            String::new()
        } else {
            format!(" under {}", c.parent)
        };
        parts.push(format!(
            "{} more create/destroy lines{under} not written",
            units::thousands(c.lines_not_written)
        ));
    }
    parts.join("; ")
}

/// `health Good -> Warning: forks refused at pids limit 12 (226 in the last 1m)`;
/// a condition that ended is told as `ended: ...`.
fn health_change(
    from: crate::model::health::Health,
    to: crate::model::health::Health,
    started: &[crate::model::health::HealthReason],
    ended: &[crate::model::health::HealthReason],
) -> String {
    let mut parts: Vec<String> = started.iter().map(super::health::reason).collect();
    parts.extend(
        ended
            .iter()
            .map(|r| format!("ended: {}", super::health::reason(r))),
    );
    format!(
        "health {} -> {}: {}",
        from.as_str(),
        to.as_str(),
        parts.join("; ")
    )
}

/// `receive signal SIGHUP x 31,002 from pid 812 (bash)`; one alone has no count.
fn signals_received(s: &SignalsReceived) -> String {
    let times = if s.count == 1 {
        String::new()
    } else {
        format!(" x {}", units::thousands(s.count))
    };
    format!(
        "receive signal {}{times} from pid {} ({})",
        s.signal, s.sender_pid, s.sender_comm
    )
}

/// `receive 500 more signals (SIGHUP, SIGTERM) from 499 other senders`
fn other_signals_received(o: &OtherSignalsReceived) -> String {
    let names: Vec<String> = o.signals.iter().map(|s| s.name()).collect();
    let plural = |n: u64, one: &str, many: &str| if n == 1 { one } else { many }.to_owned();
    format!(
        "receive {} more {} ({}) from {} other {}",
        units::thousands(o.count),
        plural(o.count, "signal", "signals"),
        names.join(", "),
        units::thousands(o.senders),
        plural(o.senders, "sender", "senders"),
    )
}

/// `exec 1670 processes (cat 1600, sh 60, 3 others 10); 1670 exited (1669 ok, 1 failed)`
fn churn(s: &ChurnSummary) -> String {
    let mut parts = Vec::new();
    if s.execs > 0 {
        let mut named: Vec<String> = s
            .commands
            .iter()
            .map(|(comm, n)| format!("{comm} {n}"))
            .collect();
        if s.other_commands > 0 {
            named.push(format!("{} others {}", s.other_commands, s.other_execs));
        }
        let plural = if s.execs == 1 { "" } else { "es" };
        parts.push(format!(
            "exec {} process{plural} ({})",
            s.execs,
            named.join(", ")
        ));
    }
    let exits = s.exits_ok + s.exits_failed + s.exits_killed;
    if exits > 0 {
        let classes: Vec<String> = [
            (s.exits_ok, "ok"),
            (s.exits_failed, "failed"),
            (s.exits_killed, "killed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        let lead = if s.execs > 0 {
            format!("{exits} exited")
        } else if exits == 1 {
            "1 process exited".to_owned()
        } else {
            format!("{exits} processes exited")
        };
        parts.push(format!("{lead} ({})", classes.join(", ")));
    }
    parts.join("; ")
}

fn from_outside(s: &ExternalSignal) -> String {
    format!(
        "receive signal {} from pid {} ({})",
        s.signal, s.sender_pid, s.sender_comm
    )
}

pub fn exit_cause(c: &ExitCause) -> String {
    match c {
        ExitCause::Oom(at_death) => oom_msg(*at_death),
        ExitCause::Coredump {
            signal,
            core_written,
        } => {
            let written = if *core_written {
                "core written"
            } else {
                "no core written"
            };
            format!("receive signal {signal}, seems coredump ({written})")
        }
        ExitCause::SignalFromOutside(by) => from_outside(by),
        ExitCause::Signal { signal } => format!("receive signal {signal}"),
        ExitCause::ExitAfterSignal { code, by } => {
            format!("exit code {code} after {}", from_outside(by))
        }
        ExitCause::Exited { code } => format!("exit code {code}"),
    }
}

/// `ran 2m14s, cpu 3.2s, peak mem 41MiB` (what is known of it).
pub fn exit_usage(u: &ExitUsage) -> String {
    let mut parts = vec![format!("ran {}", units::duration_precise(u.run_time_s))];
    if let Some(cpu) = u.cpu_s {
        parts.push(format!("cpu {}", units::duration_precise(cpu)));
    }
    if let Some(peak) = u.peak_mem_bytes {
        parts.push(format!("peak mem {}", units::bytes_compact(peak)));
    }
    parts.join(", ")
}

fn oom_msg(oom: OomAtDeath) -> String {
    let at_least = if oom.sampled { "at least " } else { "" };
    match (oom.mem_used, oom.mem_limit) {
        (Some(u), Some(l)) => format!(
            "oom (memory {at_least}{} of limit {})",
            units::bytes(u),
            units::bytes(l)
        ),
        (Some(u), None) => format!("oom (memory {at_least}{}, no limit)", units::bytes(u)),
        _ => "oom".to_owned(),
    }
}

/// One `dsh log --json` line: the entry with `ts` in RFC 3339, `msg` as
/// text, and an exit's summary as its own fields (`run_time_s`, `cpu_s`,
/// `peak_mem_bytes`).
pub fn json(e: &LogEntry) -> serde_json::Result<serde_json::Value> {
    let mut v = serde_json::to_value(e)?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("ts".into(), e.ts.to_string().into());
        obj.insert("msg".into(), msg(&e.msg).into());
        if let Message::Exit { usage: Some(u), .. } = &e.msg
            && let serde_json::Value::Object(fields) = serde_json::to_value(u)?
        {
            obj.extend(fields);
        }
    }
    Ok(v)
}

pub fn line(e: &LogEntry, tz: &TimeZone) -> String {
    let ts = e.ts.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S");
    let id = untrusted::name(&e.id);
    let msg = untrusted::line(&msg(&e.msg)).into_owned();
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

/// Before the lines of one of several containers that bore a name:
/// `--- web: container 4f7a1c2b3d4e (earlier incarnation)`.
pub fn heading(e: &LogEntry, which: &str) -> String {
    let short: String = e.key.chars().take(12).collect();
    format!(
        "--- {}: container {} ({which})",
        untrusted::name(&e.id),
        untrusted::name(&short)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{entry::LogKind, state::State},
        signal::Signal,
    };

    #[test]
    fn state_change_line_matches_the_contract() {
        let mut e = LogEntry::new(
            "2016-02-24T23:28:47Z".parse().unwrap(),
            "k",
            "web",
            LogKind::Start,
            Message::Started(Start::Exec),
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
        e.msg = Message::SignalFromOutside(ExternalSignal {
            signal: Signal::from_raw(15),
            sender_pid: 7,
            sender_comm: "x\x1b".into(),
        });
        assert_eq!(
            line(&e, &TimeZone::UTC),
            "2016-02-24 23:28:47 web signal with msg receive signal SIGTERM from pid 7 (x\\x1b)"
        );
    }

    #[test]
    fn signal_summaries_say_the_count_once_it_repeats() {
        let sig = Signal::from_raw;
        let one = |count| {
            msg(&Message::SignalsReceived(SignalsReceived {
                signal: sig(1),
                count,
                sender_pid: 812,
                sender_comm: "bash".into(),
            }))
        };
        assert_eq!(
            one(31_002),
            "receive signal SIGHUP x 31,002 from pid 812 (bash)"
        );
        assert_eq!(one(1), "receive signal SIGHUP from pid 812 (bash)");
        let other = |count, senders| {
            msg(&Message::OtherSignalsReceived(OtherSignalsReceived {
                count,
                senders,
                signals: vec![sig(1), sig(40)],
            }))
        };
        assert_eq!(
            other(1_500, 499),
            "receive 1,500 more signals (SIGHUP, SIG40) from 499 other senders"
        );
        assert_eq!(
            other(1, 1),
            "receive 1 more signal (SIGHUP, SIG40) from 1 other sender"
        );
    }

    #[test]
    fn exit_causes_read_as_the_contract_says() {
        let sig = Signal::from_raw;
        let runc = |signal| ExternalSignal {
            signal: sig(signal),
            sender_pid: 9,
            sender_comm: "runc".into(),
        };
        let oom = |mem_used, mem_limit| {
            ExitCause::Oom(OomAtDeath {
                mem_used,
                mem_limit,
                sampled: false,
            })
        };
        let cases = [
            (
                oom(Some(32 << 20), Some(32 << 20)),
                "oom (memory 32.0MiB of limit 32.0MiB)",
            ),
            (oom(Some(3 << 30), None), "oom (memory 3.0GiB, no limit)"),
            (oom(None, None), "oom"),
            (
                ExitCause::Oom(OomAtDeath {
                    mem_used: Some(20 << 20),
                    mem_limit: Some(32 << 20),
                    sampled: true,
                }),
                "oom (memory at least 20.0MiB of limit 32.0MiB)",
            ),
            (
                ExitCause::Coredump {
                    signal: sig(11),
                    core_written: true,
                },
                "receive signal SIGSEGV, seems coredump (core written)",
            ),
            (
                ExitCause::Coredump {
                    signal: sig(6),
                    core_written: false,
                },
                "receive signal SIGABRT, seems coredump (no core written)",
            ),
            (
                ExitCause::SignalFromOutside(runc(15)),
                "receive signal SIGTERM from pid 9 (runc)",
            ),
            (
                ExitCause::Signal { signal: sig(9) },
                "receive signal SIGKILL",
            ),
            (
                ExitCause::ExitAfterSignal {
                    code: 143,
                    by: runc(15),
                },
                "exit code 143 after receive signal SIGTERM from pid 9 (runc)",
            ),
            (ExitCause::Exited { code: 3 }, "exit code 3"),
        ];
        for (cause, text) in cases {
            assert_eq!(exit_cause(&cause), text);
        }
        let child = Message::Exit {
            cause: oom(None, None),
            child: true,
            usage: None,
        };
        assert_eq!(msg(&child), "child process oom");
    }

    #[test]
    fn churn_reads_as_one_summary_line() {
        let s = |execs, commands: &[(&str, u64)], others: (u64, u64), exits: (u64, u64, u64)| {
            msg(&Message::Churn(ChurnSummary {
                execs,
                commands: commands.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
                other_commands: others.0,
                other_execs: others.1,
                exits_ok: exits.0,
                exits_failed: exits.1,
                exits_killed: exits.2,
            }))
        };
        assert_eq!(
            s(1670, &[("cat", 1670)], (0, 0), (1670, 0, 0)),
            "exec 1670 processes (cat 1670); 1670 exited (1670 ok)"
        );
        assert_eq!(
            s(1, &[("sh", 1)], (0, 0), (0, 0, 0)),
            "exec 1 process (sh 1)"
        );
        assert_eq!(
            s(20, &[("cat", 10), ("sh", 5), ("tr", 3)], (2, 2), (17, 2, 1)),
            "exec 20 processes (cat 10, sh 5, tr 3, 2 others 2); 20 exited (17 ok, 2 failed, 1 killed)"
        );
        assert_eq!(
            s(0, &[], (0, 0), (0, 3, 0)),
            "3 processes exited (3 failed)"
        );
    }

    #[test]
    fn the_main_exit_says_what_the_incarnation_used() {
        let mut e = LogEntry::new(
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "k",
            "web",
            LogKind::Exit,
            Message::Exit {
                cause: ExitCause::Exited { code: 3 },
                child: false,
                usage: Some(ExitUsage {
                    run_time_s: 134.0,
                    cpu_s: Some(3.2),
                    peak_mem_bytes: Some(41 << 20),
                }),
            },
        );
        assert_eq!(
            msg(&e.msg),
            "exit code 3 (ran 2m14s, cpu 3.2s, peak mem 41MiB)"
        );
        let v = json(&e).unwrap();
        assert_eq!(
            v["msg"],
            "exit code 3 (ran 2m14s, cpu 3.2s, peak mem 41MiB)"
        );
        assert_eq!(v["run_time_s"], 134.0);
        assert_eq!(v["cpu_s"], 3.2);
        assert_eq!(v["peak_mem_bytes"], 41u64 << 20);
        // What is not known is left out, of the text and of the JSON.
        e.msg = Message::Exit {
            cause: ExitCause::Exited { code: 0 },
            child: false,
            usage: Some(ExitUsage {
                run_time_s: 0.34,
                cpu_s: None,
                peak_mem_bytes: None,
            }),
        };
        assert_eq!(msg(&e.msg), "exit code 0 (ran 0.3s)");
        let v = json(&e).unwrap();
        assert_eq!(v["run_time_s"], 0.34);
        assert!(
            v.get("cpu_s").is_none() && v.get("peak_mem_bytes").is_none(),
            "{v}"
        );
        // The typed message, summary included, survives the socket's JSON.
        let back: LogEntry = serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn other_messages_and_lines_journaled_as_text() {
        let cg = "/docker/abc".to_owned();
        assert_eq!(
            msg(&Message::CgroupCreated { cgroup: cg.clone() }),
            "create cgroup /docker/abc"
        );
        assert_eq!(
            msg(&Message::CgroupRemoved { cgroup: cg }),
            "remove cgroup /docker/abc"
        );
        assert_eq!(msg(&Message::CgroupGone), "cgroup removed");
        assert_eq!(
            msg(&Message::Started(Start::RestartedWhileDown)),
            "start user process ok (restarted while the agent was down)"
        );
        assert_eq!(
            msg(&Message::Started(Start::FoundRunning)),
            "start user process ok (found running at agent start)"
        );
        // A journal line written before messages were typed reads back as its text.
        let old = r#"{"seq":3,"ts":"2026-01-01T00:00:00Z","key":"k","id":"web","kind":"exit",
            "from":"kContainerRunning","to":"kContainerError","msg":"exit code 3","exit_code":3}"#;
        let e: LogEntry = serde_json::from_str(old).unwrap();
        assert_eq!(e.msg, Message::Text("exit code 3".into()));
        let v = json(&e).unwrap();
        assert_eq!(v["msg"], "exit code 3");
        assert_eq!(v["ts"], "2026-01-01T00:00:00Z");
        // And a typed one survives the journal's round trip.
        let mut typed = e.clone();
        typed.msg = Message::Exit {
            cause: ExitCause::Exited { code: 3 },
            child: false,
            usage: None,
        };
        let back: LogEntry = serde_json::from_slice(&serde_json::to_vec(&typed).unwrap()).unwrap();
        assert_eq!(back, typed);
        assert_eq!(json(&typed).unwrap()["msg"], "exit code 3");
        typed.msg = Message::CgroupGone;
        let back: LogEntry = serde_json::from_slice(&serde_json::to_vec(&typed).unwrap()).unwrap();
        assert_eq!(back.msg, Message::CgroupGone);
    }
}
