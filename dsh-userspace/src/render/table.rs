//! `dsh ps`: the health table with the contract's header and column widths.
use std::fmt::Write as _;

use jiff::SignedDuration;

use super::{bytes_short, duration, sanitize};
use crate::model::row::ContainerRow;

/// Column titles and widths exactly as the contract prints them.
const COLUMNS: [(&str, usize); 9] = [
    ("id", 25),
    ("endpoint", 19),
    ("state", 20),
    ("rtime", 7),
    ("btime", 7),
    ("cpu(u/l)", 10),
    ("mem(u/l)", 11),
    ("restart", 9),
    ("health", 0),
];

const WIDE: [(&str, usize); 10] = [
    ("runtime_id", 14),
    ("image", 24),
    ("pids", 6),
    ("ooms", 6),
    ("cores", 7),
    ("sys/s", 9),
    ("err/s", 8),
    ("rd/s", 10),
    ("wr/s", 10),
    ("throttled", 0),
];

/// Pads a cell to its column; a cell wider than its column pushes the rest
/// of the line right (as `ps` does) rather than being cut.
fn push_cell(line: &mut String, value: &str, width: usize) {
    line.push_str(value);
    let used = value.chars().count();
    if width == 0 {
        return;
    }
    let pad = if used + 1 > width { 1 } else { width - used };
    line.extend(std::iter::repeat_n(' ', pad));
}

pub fn header(wide: bool) -> String {
    let mut line = String::new();
    for (title, width) in COLUMNS {
        push_cell(&mut line, title, if wide && width == 0 { 9 } else { width });
    }
    if wide {
        for (title, width) in WIDE {
            push_cell(&mut line, title, width);
        }
    }
    line
}

fn opt_dur(secs: Option<f64>) -> String {
    secs.map_or("-".to_owned(), |s| {
        duration(SignedDuration::from_secs_f64(s.max(0.0)))
    })
}

fn cores(c: f64) -> String {
    format!("{c:.2}")
}

fn per_s(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

pub fn row(r: &ContainerRow, wide: bool) -> String {
    let cells = [
        sanitize(&r.id),
        sanitize(&r.endpoint),
        r.state.to_string(),
        opt_dur(r.rtime_s.map(|s| s as f64)),
        opt_dur(r.btime_s),
        format!(
            "{}/{}",
            cores(r.cpu_used_cores),
            r.cpu_limit_cores.map_or("-".to_owned(), cores)
        ),
        format!(
            "{}/{}",
            bytes_short(r.mem_used_bytes),
            r.mem_limit_bytes.map_or("-".to_owned(), bytes_short)
        ),
        r.restart.to_string(),
        r.health.clone(),
    ];
    let mut line = String::new();
    for (cell, (_, width)) in cells.iter().zip(COLUMNS) {
        push_cell(&mut line, cell, if wide && width == 0 { 9 } else { width });
    }
    if wide {
        let short_id: String = r.runtime_id.chars().take(12).collect();
        let wide_cells = [
            sanitize(&short_id),
            sanitize(r.image.as_deref().unwrap_or("-")),
            r.pids.map_or("-".to_owned(), |p| p.to_string()),
            r.oom_kills.to_string(),
            r.core_dumps.to_string(),
            per_s(r.syscalls_per_s),
            per_s(r.syscall_errors_per_s),
            bytes_short(r.block_read_bytes_per_s as u64),
            bytes_short(r.block_write_bytes_per_s as u64),
            r.cpu_throttled_ratio
                .map_or("-".to_owned(), |t| format!("{:.0}%", t * 100.0)),
        ];
        for (cell, (_, width)) in wide_cells.iter().zip(WIDE) {
            push_cell(&mut line, cell, width);
        }
        if !r.health_reasons.is_empty() {
            let _ = write!(line, "  # {}", sanitize(&r.health_reasons.join("; ")));
        }
    }
    line
}

pub fn table(rows: &[ContainerRow], wide: bool) -> String {
    let mut out = header(wide);
    out.push('\n');
    out.push_str(&body(rows, wide));
    out
}

/// The rows without the header (`--no-headers`).
pub fn body(rows: &[ContainerRow], wide: bool) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&row(r, wide));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::state::State;

    /// The header operators' scripts and eyes rely on, byte for byte.
    const CONTRACT_HEADER: &str = "id                       endpoint           state               rtime  btime  cpu(u/l)  mem(u/l)   restart  health";

    fn sample() -> ContainerRow {
        ContainerRow {
            id: "web".into(),
            runtime: "docker".into(),
            runtime_id: "07c561cc06f3bd45".into(),
            cgroup: "/docker/07c5".into(),
            pod_uid: None,
            image: Some("busybox".into()),
            endpoint: "172.17.0.2:{6379}".into(),
            state: State::Running,
            main_pid: Some(42),
            rtime_s: Some(45),
            btime_s: Some(0.3),
            cpu_used_cores: 0.25,
            cpu_limit_cores: None,
            mem_used_bytes: 12 << 20,
            mem_limit_bytes: Some(32 << 20),
            restart: 2,
            health: "Warning".into(),
            health_reasons: vec!["2 restart(s) in the last 1h".into()],
            oom_kills: 0,
            core_dumps: 1,
            process_exits: 7,
            pids: Some(3),
            syscalls_per_s: 12_345.0,
            syscall_errors_per_s: 3.0,
            block_read_bytes_per_s: 0.0,
            block_write_bytes_per_s: 4096.0,
            cpu_throttled_ratio: None,
        }
    }

    #[test]
    fn header_is_the_contracts() {
        assert_eq!(header(false), CONTRACT_HEADER);
        assert!(header(true).starts_with("id                       endpoint"));
    }

    #[test]
    fn rows_line_up_under_the_header() {
        let line = row(&sample(), false);
        assert_eq!(
            line,
            "web                      172.17.0.2:{6379}  kContainerRunning   45s    0s     0.25/-    12Mi/32Mi  2        Warning"
        );
        let h = CONTRACT_HEADER;
        for col in ["endpoint", "state", "rtime", "health"] {
            let at = h.find(col).unwrap();
            assert_ne!(
                line.as_bytes()[at],
                b' ',
                "{col} column starts at {at}: {line}"
            );
        }
    }

    #[test]
    fn wide_rows_carry_reasons_and_rates() {
        let line = row(&sample(), true);
        assert!(
            line.contains("12.3k") && line.contains("# 2 restart(s)"),
            "{line}"
        );
    }

    #[test]
    fn hostile_names_are_sanitized() {
        let mut r = sample();
        r.id = "evil\x1b]0;pwned\x07".into();
        assert!(row(&r, false).starts_with("evil?]0;pwned? "));
    }
}
