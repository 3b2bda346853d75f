//! The fleet table: `dsh ps`'s columns behind a `node` column.
use unicode_width::UnicodeWidthStr as _;

use super::table;
use crate::{api::fleet::FleetRow, untrusted};

pub fn table(rows: &[FleetRow], wide: bool, headers: bool) -> String {
    // Node names come from whatever Prometheus scrapes: through the gate,
    // then measured in display columns (they have no fixed length).
    let nodes: Vec<_> = rows.iter().map(|r| untrusted::name(&r.node)).collect();
    let width = nodes
        .iter()
        .map(|n| n.width())
        .max()
        .unwrap_or(0)
        .max("node".len())
        + 2;
    let pad = |s: &str| " ".repeat(width.saturating_sub(s.width()));
    let mut out = String::new();
    if headers {
        out.push_str(&format!("node{}{}\n", pad("node"), table::header(wide)));
    }
    for (r, node) in rows.iter().zip(&nodes) {
        let reasons = if wide && !r.reasons.is_empty() {
            format!("  # {}", untrusted::text(&r.reasons.join(", ")))
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{node}{}{}{reasons}\n",
            pad(node),
            table::row(&r.row, wide)
        ));
    }
    out
}

/// One line per row that several series claim (for stderr, after the
/// table): the table shows one of them and cannot say so in its columns.
pub fn duplicates(rows: &[FleetRow]) -> String {
    let mut out = String::new();
    for r in rows {
        if let Some(said) = &r.duplicate {
            out.push_str(&format!(
                "warning: node {} id {}: {}\n",
                untrusted::name(&r.node),
                untrusted::name(&r.row.id),
                untrusted::text(said)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{row::ContainerRow, state::State};

    fn row(node: &str, id: &str) -> FleetRow {
        let json = serde_json::json!({
            "node": node, "id": id, "runtime": "docker", "runtime_id": "07c5",
            "cgroup": "/docker/07c5", "pod_uid": null, "image": null, "endpoint": "-",
            "state": State::Running, "main_pid": null, "rtime_s": 5, "btime_s": 0.5,
            "cpu_used_cores": 0.0, "cpu_limit_cores": null, "mem_used_bytes": 0,
            "mem_limit_bytes": null, "restart": 0, "health": "Good", "health_reasons": [],
            "oom_kills": 0, "core_dumps": 0, "process_exits": 0, "pids": null,
            "syscalls_per_s": 0.0, "syscall_errors_per_s": 0.0,
            "block_read_bytes_per_s": 0.0, "block_write_bytes_per_s": 0.0,
            "cpu_throttled_ratio": null
        });
        let r: FleetRow = serde_json::from_value(json).unwrap();
        let _: &ContainerRow = &r.row;
        r
    }

    #[test]
    fn node_column_comes_first_and_lines_up() {
        let rows = [row("a", "web"), row("node-long", "db")];
        let text = table(&rows, false, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("node       id "), "{text}");
        assert!(lines[1].starts_with("a          web "), "{text}");
        assert!(lines[2].starts_with("node-long  db "), "{text}");
        let at = lines[0].find("health").unwrap();
        assert!(lines[1][at..].starts_with("Good"), "{text}");
        assert_eq!(table(&rows, false, false).lines().count(), 2);
    }

    #[test]
    fn node_names_and_health_from_prometheus_pass_the_gate() {
        let mut evil = row("n\x1b]0;t\x07\u{202e}", "web");
        evil.row.health = "Good\x1b[2J".into();
        let rows = [evil, row("好好", "db")];
        let text = table(&rows, false, true);
        assert!(
            !text.chars().any(|c| c != '\n' && untrusted::is_unsafe(c)),
            "{text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with(r"n\x1b]0;t\x07\u{202e}  web "),
            "{text}"
        );
        assert!(lines[1].ends_with(r"Good\x1b[2J"), "{text}");
        // Display columns: the wide name is padded as two columns each.
        let at = lines[1].find("web").unwrap();
        let pad = lines[2].find("db").unwrap() - "好好".len();
        assert_eq!(at, pad + "好好".chars().count() * 2, "{text}");
    }

    #[test]
    fn rows_claimed_twice_are_said_after_the_table() {
        let mut twice = row("a", "web");
        twice.duplicate =
            Some("2 different series claim this node and id (instances: h\x1b)".into());
        let said = duplicates(&[row("a", "db"), twice]);
        assert_eq!(
            said,
            "warning: node a id web: 2 different series claim this node and id (instances: h\\x1b)\n"
        );
    }
}
