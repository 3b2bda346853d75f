//! What the fuzz targets share: property checks and generators.
use arbitrary::{Result, Unstructured};
use dsh::{
    cgroup::stats::{CgroupStats, StatsError},
    journal::block::ContainerNo,
    model::{
        cause::{
            CgroupChurnSummary, ChurnSummary, ExitCause, ExitUsage, ExternalSignal, Message,
            OomAtDeath, OtherSignalsReceived, SignalsReceived, Start,
        },
        entry::{LogEntry, LogKind},
        state::State,
    },
    signal::Signal,
};
use jiff::Timestamp;

/// Properties of the statistics parsers: a result is sane (no NaN or
/// negative limit, no overflowed sum), and a malformed file's error quotes
/// a line that is in that file.
pub fn check_stats(
    names: &[&str],
    files: &[Option<String>],
    result: &std::result::Result<CgroupStats, StatsError>,
) {
    match result {
        Ok(s) => {
            assert!(s.cpu_limit_cores.is_none_or(|c| c.is_finite() && c >= 0.0));
            let _ = s.mem_used_bytes();
        }
        Err(StatsError::Malformed { path, line }) => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let i = names
                .iter()
                .position(|n| *n == name)
                .unwrap_or_else(|| panic!("error names a file not read: {path:?}"));
            let text = files[i]
                .as_deref()
                .expect("an absent file is not malformed");
            assert!(text.contains(line.as_str()), "{line:?} is not in {text:?}");
        }
        Err(e) => panic!("parsing texts gave an I/O error: {e}"),
    }
}

/// A time at the journal's precision (µs), anywhere in jiff's range.
fn timestamp(u: &mut Unstructured<'_>) -> Result<Timestamp> {
    let (min, max) = (
        Timestamp::MIN.as_microsecond(),
        Timestamp::MAX.as_microsecond(),
    );
    Timestamp::from_microsecond(u.int_in_range(min..=max)?)
        .map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn state(u: &mut Unstructured<'_>) -> Result<State> {
    u.choose(&[
        State::Pulling,
        State::Booting,
        State::Running,
        State::Error,
        State::Exited,
    ])
    .copied()
}

fn signal(u: &mut Unstructured<'_>) -> Result<Signal> {
    Ok(Signal::from_raw(u.arbitrary::<u8>()?.into()))
}

fn external(u: &mut Unstructured<'_>) -> Result<ExternalSignal> {
    Ok(ExternalSignal {
        signal: signal(u)?,
        sender_pid: u.arbitrary()?,
        sender_comm: u.arbitrary()?,
    })
}

fn exit_cause(u: &mut Unstructured<'_>) -> Result<ExitCause> {
    Ok(match u.int_in_range(0..=5)? {
        0 => ExitCause::Oom(OomAtDeath {
            mem_used: u.arbitrary()?,
            mem_limit: u.arbitrary()?,
            sampled: u.arbitrary()?,
        }),
        1 => ExitCause::Coredump {
            signal: signal(u)?,
            core_written: u.arbitrary()?,
        },
        2 => ExitCause::SignalFromOutside(external(u)?),
        3 => ExitCause::Signal { signal: signal(u)? },
        4 => ExitCause::ExitAfterSignal {
            code: u.arbitrary()?,
            by: external(u)?,
        },
        _ => ExitCause::Exited {
            code: u.arbitrary()?,
        },
    })
}

/// Run and CPU time in whole milliseconds (the journal's precision).
fn usage(u: &mut Unstructured<'_>) -> Result<Option<ExitUsage>> {
    let ms = |u: &mut Unstructured<'_>| -> Result<f64> {
        Ok(u.int_in_range(0..=1u64 << 40)? as f64 / 1000.0)
    };
    if !u.arbitrary::<bool>()? {
        return Ok(None);
    }
    Ok(Some(ExitUsage {
        run_time_s: ms(u)?,
        cpu_s: if u.arbitrary()? { Some(ms(u)?) } else { None },
        peak_mem_bytes: u.arbitrary()?,
    }))
}

/// A message of any kind, with any strings (`Text` too: lines journaled
/// before messages were typed are rewritten as such).
fn message(u: &mut Unstructured<'_>) -> Result<Message> {
    Ok(match u.int_in_range(0..=11)? {
        0 => Message::CgroupCreated {
            cgroup: u.arbitrary()?,
        },
        1 => Message::CgroupRemoved {
            cgroup: u.arbitrary()?,
        },
        2 => Message::CgroupGone,
        3 => Message::Exec {
            filename: u.arbitrary()?,
        },
        4 => Message::Started(*u.choose(&[
            Start::Exec,
            Start::FoundRunning,
            Start::RestartedWhileDown,
        ])?),
        5 => Message::SignalFromOutside(external(u)?),
        6 => Message::Exit {
            cause: exit_cause(u)?,
            child: u.arbitrary()?,
            usage: usage(u)?,
        },
        7 => Message::Churn(ChurnSummary {
            execs: u.arbitrary()?,
            commands: u.arbitrary()?,
            other_commands: u.arbitrary()?,
            other_execs: u.arbitrary()?,
            exits_ok: u.arbitrary()?,
            exits_failed: u.arbitrary()?,
            exits_killed: u.arbitrary()?,
        }),
        8 => Message::SignalsReceived(SignalsReceived {
            signal: signal(u)?,
            count: u.arbitrary()?,
            sender_pid: u.arbitrary()?,
            sender_comm: u.arbitrary()?,
        }),
        9 => Message::OtherSignalsReceived(OtherSignalsReceived {
            count: u.arbitrary()?,
            senders: u.arbitrary()?,
            signals: (0..u.int_in_range(0..=4)?)
                .map(|_| signal(u))
                .collect::<Result<_>>()?,
        }),
        10 => Message::CgroupChurn(CgroupChurnSummary {
            parent: u.arbitrary()?,
            vanished: u.arbitrary()?,
            lines_not_written: u.arbitrary()?,
        }),
        _ => Message::Text(u.arbitrary()?),
    })
}

/// Lines of arbitrary values as the journal writes them into one block:
/// seqs rising, each with its container's number and the key that number
/// stands for.
pub fn block_lines(u: &mut Unstructured<'_>) -> Result<Vec<(ContainerNo, LogEntry)>> {
    let mut seq: u64 = u.int_in_range(1..=u64::MAX / 2)?;
    let n = u.int_in_range(1..=16)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let cno = ContainerNo(u.int_in_range(0..=3u32)?);
        let mut e = log_entry(u, &format!("container-{}", cno.0))?;
        seq += u.int_in_range(1..=1000u64)?;
        e.seq = seq;
        out.push((cno, e));
    }
    Ok(out)
}

/// A log entry of arbitrary values (any strings, any times) for `key`.
fn log_entry(u: &mut Unstructured<'_>, key: &str) -> Result<LogEntry> {
    // Every kind, so a kind added to the enum is fuzzed without a change here.
    let kind = *u.choose(&LogKind::ALL)?;
    let ts = timestamp(u)?;
    let id: String = u.arbitrary()?;
    let msg = message(u)?;
    let mut e = LogEntry::new(ts, key, &id, kind, msg);
    if u.arbitrary()? {
        e.from = Some(state(u)?);
        e.to = Some(state(u)?);
    }
    e.pid = u.arbitrary()?;
    e.comm = u.arbitrary()?;
    e.signal = u.arbitrary()?;
    e.exit_code = u.arbitrary()?;
    e.core_dumped = u.arbitrary()?;
    Ok(e)
}
