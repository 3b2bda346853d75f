//! `dsh ps`: the health table with the contract's header and column widths.
//!
//! Written by hand rather than with a table crate: the contract fixes the
//! header byte for byte (fixed widths, no borders), and `dsh top` draws the
//! same lines one at a time. Widths are display columns (`unicode-width`),
//! so wide CJK and emoji names keep the columns aligned.
use std::{borrow::Cow, fmt::Write as _};

use jiff::SignedDuration;
use unicode_width::UnicodeWidthStr as _;

use crate::untrusted;
use crate::{
    model::{row::ContainerRow, syscalls::SyscallAccounting},
    units::{bytes_short, duration, per_s},
};

/// What a cell wider than its column does.
#[derive(Clone, Copy, PartialEq)]
enum Fit {
    /// Names and addresses are cut with an ellipsis (as docker shortens
    /// them), so the columns after them stay put; `--json` keeps them whole.
    Cut,
    /// Numbers push the rest of the line right (as `ps` does): a cut number
    /// would be a wrong number.
    Push,
}

/// Column titles and widths exactly as the contract prints them.
const COLUMNS: [(&str, usize, Fit); 9] = [
    ("id", 25, Fit::Cut),
    ("endpoint", 19, Fit::Cut),
    ("state", 20, Fit::Push),
    ("rtime", 7, Fit::Push),
    ("btime", 7, Fit::Push),
    ("cpu(u/l)", 10, Fit::Push),
    ("mem(u/l)", 11, Fit::Push),
    ("restart", 9, Fit::Push),
    ("health", 0, Fit::Push),
];

const WIDE: [(&str, usize, Fit); 12] = [
    ("runtime_id", 14, Fit::Cut),
    ("image", 24, Fit::Cut),
    ("pids", 6, Fit::Push),
    ("ooms", 6, Fit::Push),
    ("cores", 7, Fit::Push),
    ("sys/s", 9, Fit::Push),
    ("err/s", 8, Fit::Push),
    ("rd/s", 10, Fit::Push),
    ("wr/s", 10, Fit::Push),
    ("net rx/s", 10, Fit::Push),
    ("net tx/s", 10, Fit::Push),
    ("throttled", 0, Fit::Push),
];

/// `s` in at most `max` display columns, ending in `…` when it had to be cut.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.width() <= max {
        return Cow::Borrowed(s);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }
    // Measure whole prefixes, not char by char: the width of an emoji
    // sequence depends on its neighbours.
    let mut end = 0;
    for (i, c) in s.char_indices() {
        let next = i + c.len_utf8();
        if s[..next].width() + 1 > max {
            break;
        }
        end = next;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// An id too wide for its column, with the long hex container id in it (a
/// cgroup path's) cut to 12 characters as docker shows ids; the ellipsis
/// cut, if still needed, comes after.
pub fn short_ids(id: &str, max: usize) -> Cow<'_, str> {
    if id.width() <= max {
        return Cow::Borrowed(id);
    }
    let parts: Vec<String> = id
        .split('/')
        .map(|part| {
            // `docker-<64 hex>.scope` and bare ids alike.
            match part
                .split(|c: char| !c.is_ascii_hexdigit())
                .find(|run| run.len() >= 32)
            {
                Some(run) => part.replacen(run, &run[..12], 1),
                None => part.to_owned(),
            }
        })
        .collect();
    Cow::Owned(parts.join("/"))
}

/// Pads a cell to its column (`width` 0: the last column, no padding),
/// keeping at least one space before the next column.
fn push_cell(line: &mut String, value: &str, width: usize, fit: Fit) {
    let value = match fit {
        Fit::Cut if width > 0 => cut(value, width - 1),
        _ => Cow::Borrowed(value),
    };
    line.push_str(&value);
    if width == 0 {
        return;
    }
    let used = value.width();
    let pad = if used + 1 > width { 1 } else { width - used };
    line.extend(std::iter::repeat_n(' ', pad));
}

/// The last column gets a width in the wide table, where more follow it.
fn width_in(width: usize, wide: bool) -> usize {
    if wide && width == 0 { 9 } else { width }
}

pub fn header(wide: bool) -> String {
    let mut line = String::new();
    for (title, width, _) in COLUMNS {
        push_cell(&mut line, title, width_in(width, wide), Fit::Push);
    }
    if wide {
        for (title, width, _) in WIDE {
            push_cell(&mut line, title, width, Fit::Push);
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

/// A syscall rate as counted: `~` marks an estimate from sampling windows,
/// `-` a rate not counted at all (`dsh agent --syscalls off`).
fn syscall_rate(r: &ContainerRow, rate: f64) -> String {
    match r.syscall_accounting {
        SyscallAccounting::Exact => per_s(rate),
        SyscallAccounting::Sampled => format!("~{}", per_s(rate)),
        SyscallAccounting::Off => "-".to_owned(),
    }
}

/// A network rate; `shared` when the namespace is reported under another
/// container (or is the host's), so that a pod's traffic is counted once.
fn net_rate(r: &ContainerRow, rate: Option<f64>) -> String {
    match (rate, &r.net_shared_with) {
        (Some(v), _) => bytes_short(v as u64),
        (None, Some(_)) => "shared".to_owned(),
        (None, None) => "-".to_owned(),
    }
}

pub fn row(r: &ContainerRow, wide: bool) -> String {
    let cells = [
        short_ids(&untrusted::name(&r.id), COLUMNS[0].1 - 1).into_owned(),
        untrusted::name(&r.endpoint).into_owned(),
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
        // The fleet view reads it from a Prometheus label.
        untrusted::name(&r.health).into_owned(),
    ];
    let mut line = String::new();
    for (cell, (_, width, fit)) in cells.iter().zip(COLUMNS) {
        push_cell(&mut line, cell, width_in(width, wide), fit);
    }
    if wide {
        let short_id: String = r.runtime_id.chars().take(12).collect();
        let wide_cells = [
            untrusted::name(&short_id).into_owned(),
            untrusted::name(r.image.as_deref().unwrap_or("-")).into_owned(),
            r.pids.map_or("-".to_owned(), |p| p.to_string()),
            r.oom_kills.to_string(),
            r.core_dumps.to_string(),
            syscall_rate(r, r.syscalls_per_s),
            syscall_rate(r, r.syscall_errors_per_s),
            bytes_short(r.block_read_bytes_per_s as u64),
            bytes_short(r.block_write_bytes_per_s as u64),
            net_rate(r, r.net_rx_bytes_per_s),
            net_rate(r, r.net_tx_bytes_per_s),
            r.cpu_throttled_ratio
                .map_or("-".to_owned(), |t| format!("{:.0}%", t * 100.0)),
        ];
        for (cell, (_, width, fit)) in wide_cells.iter().zip(WIDE) {
            push_cell(&mut line, cell, width, fit);
        }
        if !r.health_reasons.is_empty() {
            let reasons: Vec<String> = r.health_reasons.iter().map(super::health::reason).collect();
            let _ = write!(line, "  # {}", untrusted::text(&reasons.join("; ")));
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
            key: "07c561cc06f3bd45".into(),
            runtime: "docker".into(),
            runtime_id: "07c561cc06f3bd45".into(),
            cgroup: "/docker/07c5".into(),
            pod_uid: None,
            namespace: None,
            pod: None,
            container: None,
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
            mem_usage_bytes: 14 << 20,
            mem_working_set_bytes: 12 << 20,
            mem_anon_bytes: 10 << 20,
            mem_file_bytes: 3 << 20,
            mem_kernel_bytes: 1 << 20,
            restart: 2,
            listed: true,
            health: "Warning".into(),
            health_reasons: vec![crate::model::health::HealthReason::Restarts {
                count: 2,
                window: SignedDuration::from_hours(1),
            }],
            oom_kills: 0,
            core_dumps: 1,
            process_exits: 7,
            pids: Some(3),
            pids_max: None,
            pids_refused_total: 0,
            fd_limit_errors_total: 0,
            mem_high_events_total: 0,
            mem_max_events_total: 0,
            pressure: None,
            syscalls_per_s: 12_345.0,
            syscall_errors_per_s: 3.0,
            syscall_accounting: SyscallAccounting::Exact,
            syscalls_sampled: false,
            block_read_bytes_per_s: 0.0,
            block_write_bytes_per_s: 4096.0,
            cpu_throttled_ratio: None,
            net_rx_bytes_per_s: Some(2048.0),
            net_tx_bytes_per_s: Some(0.0),
            net: None,
            net_shared_with: None,
            addrs_not_kept: 0,
            tcp: None,
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
            line.contains("12.3k") && line.contains("2.0Ki") && line.contains("# 2 restart(s)"),
            "{line}"
        );
        let mut r = sample();
        (r.net_rx_bytes_per_s, r.net_tx_bytes_per_s) = (None, None);
        r.net_shared_with = Some("web".into());
        assert_eq!(row(&r, true).matches(" shared ").count(), 2);
    }

    #[test]
    fn sampled_rates_are_marked_and_off_rates_absent() {
        let mut r = sample();
        r.syscall_accounting = SyscallAccounting::Sampled;
        r.syscalls_sampled = true;
        assert!(row(&r, true).contains(" ~12.3k "), "{}", row(&r, true));
        r.syscall_accounting = SyscallAccounting::Off;
        r.syscalls_sampled = false;
        let line = row(&r, true);
        assert!(!line.contains("12.3k"), "{line}");
    }

    /// The display column where `needle` starts in `line`.
    fn column_of(line: &str, needle: &str) -> usize {
        let at = line
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} in {line}"));
        line[..at].width()
    }

    #[test]
    fn wide_characters_and_long_names_keep_the_columns() {
        let h = CONTRACT_HEADER;
        for id in [
            "数据库",                                  // 3 chars, 6 columns
            "🐳whale🐳",                               // emoji: 2 columns each
            "データベース-プライマリ-東京-本番環境",   // wider than the column
            "a-very-long-container-name-that-goes-on", // longer than the column
            "/kubepods/burstable/pod8712f785-1a3e-41ec-a00b-e2dcc77431cb/b43d92bf1e5c",
        ] {
            let mut r = sample();
            r.id = id.into();
            r.endpoint = "172.17.0.2:{6379,8080,9090,9100}".into();
            let line = row(&r, false);
            for (col, cell) in [
                ("endpoint", "172.17.0.2:"),
                ("state", "kContainerRunning"),
                ("rtime", "45s"),
                ("health", "Warning"),
            ] {
                assert_eq!(
                    column_of(&line, cell),
                    column_of(h, col),
                    "{col} under its title for id {id:?}:\n{h}\n{line}"
                );
            }
            let shown = line[..line.find(" 172.17.0.2").unwrap()].trim_end();
            assert!(shown.width() <= 24, "{shown:?}");
        }
        let mut r = sample();
        r.id = "a-very-long-container-name-that-goes-on".into();
        assert!(row(&r, false).starts_with("a-very-long-container-n… 172.17.0.2"));
    }

    #[test]
    fn long_container_ids_are_cut_to_docker_short_ids() {
        let hex = "07c561cc06f3bd45658a4dec58468bc6d68032d6c4f168a2079b679f09c8233e";
        assert_eq!(
            short_ids(&format!("/docker/{hex}"), 24),
            "/docker/07c561cc06f3"
        );
        assert_eq!(short_ids("web", 24), "web");
        let mut r = sample();
        r.id = format!("/docker/{hex}");
        assert!(row(&r, false).starts_with("/docker/07c561cc06f3     172.17.0.2"));
        r.id = format!("/system.slice/docker-{hex}.scope");
        assert!(row(&r, false).starts_with("/system.slice/docker-07… 172.17.0.2"));
    }

    #[test]
    fn cut_counts_display_columns() {
        assert_eq!(cut("web", 24), "web");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("数据库服务", 6), "数据…"); // 4 + 1 columns: no half character
        assert_eq!(cut("数据库服务", 5), "数据…");
        assert_eq!(cut("🐳🐳🐳", 4), "🐳…");
        assert_eq!(cut("abc", 0), "");
        for max in 1..12 {
            assert!(cut("日本語のコンテナ名", max).width() <= max);
        }
    }

    #[test]
    fn hostile_names_are_sanitized() {
        let mut r = sample();
        r.id = "evil\x1b]0;pwned\x07".into();
        assert!(row(&r, false).starts_with(r"evil\x1b]0;pwned\x07 "));
    }
}
