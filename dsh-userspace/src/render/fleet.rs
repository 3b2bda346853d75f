//! The fleet table: `dsh ps`'s columns behind a `node` column.
use super::{sanitize, table};
use crate::api::fleet::FleetRow;

pub fn table(rows: &[FleetRow], wide: bool, headers: bool) -> String {
    // As wide as the longest node name: node names have no fixed length.
    let width = rows
        .iter()
        .map(|r| r.node.chars().count())
        .max()
        .unwrap_or(0)
        .max("node".len())
        + 2;
    let mut out = String::new();
    if headers {
        out.push_str(&format!("{:<width$}{}\n", "node", table::header(wide)));
    }
    for r in rows {
        let node = sanitize(&r.node);
        out.push_str(&format!("{node:<width$}{}\n", table::row(&r.row, wide)));
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
}
