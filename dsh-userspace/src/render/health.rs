//! Health reasons as text, and the health table as `dsh ps --json` prints
//! it (the contract has `health_reasons` as an array of strings).
use crate::{
    model::{
        health::{HealthReason, StallResource},
        row::ContainerRow,
        tcp::ConnectFailure,
    },
    units::{duration, thousands},
};

pub fn reason(r: &HealthReason) -> String {
    match r {
        HealthReason::State(s) => format!("state {s}"),
        HealthReason::OomKills { count, window } => {
            format!("{count} oom kill(s) in the last {}", duration(*window))
        }
        HealthReason::CoreDumps { count, window } => {
            format!("{count} core dump(s) in the last {}", duration(*window))
        }
        HealthReason::CrashLoop { restarts, window } => {
            format!(
                "crash loop: {restarts} restarts in the last {}",
                duration(*window)
            )
        }
        HealthReason::Memory { ratio } => {
            format!("memory at {:.0}% of its limit", ratio * 100.0)
        }
        HealthReason::Throttled { ratio, window } => format!(
            "cpu throttled in {:.0}% of periods over the last {}",
            ratio * 100.0,
            duration(*window)
        ),
        HealthReason::Restarts { count, window } => {
            format!("{count} restart(s) in the last {}", duration(*window))
        }
        HealthReason::PidsRefused {
            count,
            limit,
            window,
        } => format!(
            "forks refused at pids limit{} ({} in the last {})",
            limit.map(|l| format!(" {l}")).unwrap_or_default(),
            thousands(*count),
            duration(*window)
        ),
        HealthReason::FdLimit {
            count,
            limit,
            window,
        } => format!(
            "open files at limit{} ({} EMFILE/ENFILE seen in the last {})",
            limit.map(|l| format!(" {l}")).unwrap_or_default(),
            thousands(*count),
            duration(*window)
        ),
        HealthReason::Stalled {
            resource: StallResource::Io,
            some,
            memory,
            ..
        } => format!(
            "io stalled {:.0}% (memory {:.0}%)",
            some * 100.0,
            memory * 100.0
        ),
        HealthReason::Stalled {
            resource: StallResource::Memory,
            some,
            full,
            ..
        } => format!(
            "memory stalled {:.0}% (full {:.0}%)",
            some * 100.0,
            full * 100.0
        ),
        HealthReason::ConnectsFailing {
            per_s,
            share,
            how,
            to,
        } => {
            let how = match how {
                None => "failing",
                Some(ConnectFailure::Refused) => "refused",
                Some(ConnectFailure::TimedOut) => "timing out",
                Some(ConnectFailure::Unreachable) => "unreachable",
                Some(ConnectFailure::Reset) => "reset",
            };
            let rate = per_second(*per_s);
            let share = share * 100.0;
            // A formatted address, never text from the container.
            match to {
                Some(to) => format!("connects {how} {rate} (to {to}), {share:.0}% of attempts"),
                None => format!("connects {how} {rate} ({share:.0}% of attempts)"),
            }
        }
        HealthReason::Retransmits { ratio } => {
            format!("{:.0}% of segments retransmitted", ratio * 100.0)
        }
        HealthReason::ListenOverflows { per_s, port } => match port {
            Some(p) => format!("listen :{p} queue overflowed {}", per_second(*per_s)),
            None => format!("listen queue overflowed {}", per_second(*per_s)),
        },
    }
}

/// A rate as `20/s`, or `0.5/s` below one.
fn per_second(r: f64) -> String {
    if r >= 1.0 {
        format!("{r:.0}/s")
    } else {
        format!("{r:.1}/s")
    }
}

/// The rows for `--json`, each reason as its text.
pub fn rows_json(rows: &[ContainerRow]) -> serde_json::Result<serde_json::Value> {
    let mut v = serde_json::to_value(rows)?;
    if let Some(list) = v.as_array_mut() {
        for (obj, row) in list.iter_mut().zip(rows) {
            if let Some(obj) = obj.as_object_mut() {
                let reasons: Vec<String> = row.health_reasons.iter().map(reason).collect();
                obj.insert("health_reasons".into(), reasons.into());
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::model::state::State;

    #[test]
    fn reasons_read_as_before() {
        let mins = SignedDuration::from_mins;
        let cases = [
            (HealthReason::State(State::Error), "state kContainerError"),
            (
                HealthReason::OomKills {
                    count: 2,
                    window: mins(10),
                },
                "2 oom kill(s) in the last 10m",
            ),
            (
                HealthReason::CoreDumps {
                    count: 1,
                    window: mins(10),
                },
                "1 core dump(s) in the last 10m",
            ),
            (
                HealthReason::CrashLoop {
                    restarts: 3,
                    window: mins(10),
                },
                "crash loop: 3 restarts in the last 10m",
            ),
            (
                HealthReason::Memory { ratio: 0.95 },
                "memory at 95% of its limit",
            ),
            (
                HealthReason::Throttled {
                    ratio: 0.5,
                    window: mins(1),
                },
                "cpu throttled in 50% of periods over the last 1m",
            ),
            (
                HealthReason::Restarts {
                    count: 1,
                    window: mins(60),
                },
                "1 restart(s) in the last 1h",
            ),
            (
                HealthReason::ConnectsFailing {
                    per_s: 20.2,
                    share: 1.0,
                    how: None,
                    to: None,
                },
                "connects failing 20/s (100% of attempts)",
            ),
            (
                HealthReason::ConnectsFailing {
                    per_s: 20.2,
                    share: 0.5,
                    how: Some(ConnectFailure::Refused),
                    to: None,
                },
                "connects refused 20/s (50% of attempts)",
            ),
            (
                HealthReason::ConnectsFailing {
                    per_s: 20.2,
                    share: 1.0,
                    how: Some(ConnectFailure::Refused),
                    to: Some("127.0.0.1:9".parse().unwrap()),
                },
                "connects refused 20/s (to 127.0.0.1:9), 100% of attempts",
            ),
            (
                HealthReason::ConnectsFailing {
                    per_s: 3.0,
                    share: 1.0,
                    how: Some(ConnectFailure::TimedOut),
                    to: Some("[2001:db8::1]:443".parse().unwrap()),
                },
                "connects timing out 3/s (to [2001:db8::1]:443), 100% of attempts",
            ),
            (
                HealthReason::Retransmits { ratio: 0.09 },
                "9% of segments retransmitted",
            ),
            (
                HealthReason::ListenOverflows {
                    per_s: 64.0,
                    port: Some(7000),
                },
                "listen :7000 queue overflowed 64/s",
            ),
            (
                HealthReason::ListenOverflows {
                    per_s: 0.5,
                    port: None,
                },
                "listen queue overflowed 0.5/s",
            ),
        ];
        for (r, text) in cases {
            assert_eq!(reason(&r), text);
        }
    }
}
