//! `dsh top`'s screen: what it shows (`App`), how keys change it (`keys`),
//! and how it is drawn with ratatui (`layout` for the table, `detail` for
//! one container). Pure: the CLI fetches from the agent, runs `dsh ssh`
//! and owns the terminal; this module only turns state into a frame.
pub mod detail;
pub mod keys;
pub mod layout;

use ratatui::style::{Color, Style};

use crate::{api::History, model::row::ContainerRow};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    Cpu,
    Mem,
    Restarts,
    Syscalls,
    Io,
    /// Network receive plus transmit bytes/s.
    Net,
}

/// Descending by the key, ties by id (so equal rows keep a stable order).
pub fn sort_rows(rows: &mut [ContainerRow], key: SortKey) {
    let value = |r: &ContainerRow| match key {
        SortKey::Cpu => r.cpu_used_cores,
        SortKey::Mem => r.mem_used_bytes as f64,
        SortKey::Restarts => r.restart as f64,
        SortKey::Syscalls => r.syscalls_per_s,
        SortKey::Io => r.block_read_bytes_per_s + r.block_write_bytes_per_s,
        SortKey::Net => r.net_rx_bytes_per_s.unwrap_or(0.0) + r.net_tx_bytes_per_s.unwrap_or(0.0),
    };
    rows.sort_by(|a, b| value(b).total_cmp(&value(a)).then_with(|| a.id.cmp(&b.id)));
}

/// The agent's own cost, as its status reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AgentCost {
    pub cpu_percent: f64,
    pub rss_bytes: u64,
}

/// What fills the screen.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    Table,
    /// The selected container's detail pane.
    Detail,
    /// A scrollable text: the whole log, or a trace report.
    Text {
        title: String,
        lines: Vec<String>,
        scroll: usize,
    },
    Help,
}

/// What the detail pane shows besides the row: fetched on Enter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DetailData {
    /// The container the data is for (row key).
    pub key: String,
    pub history: Option<History>,
    /// Its last state-change lines, oldest first.
    pub log: Vec<String>,
    pub error: Option<String>,
}

pub struct App {
    /// Every row as last fetched, sorted by `sort`.
    pub rows: Vec<ContainerRow>,
    pub sort: SortKey,
    /// `/`'s text: rows whose name, health or state contain it.
    pub filter: String,
    /// Typing a filter: keys go to it.
    pub filtering: bool,
    /// The selected row's key (kept across refreshes and re-sorting).
    pub selected: Option<String>,
    pub view: View,
    pub detail: DetailData,
    /// The last error talking to the agent.
    pub error: Option<String>,
    pub agent: Option<AgentCost>,
    /// False under `NO_COLOR`: no colour at all (reverse video marks the
    /// selection).
    pub color: bool,
    /// A one-line message (e.g. what `dsh ssh` said), until the next key.
    pub notice: Option<String>,
}

impl App {
    pub fn new(rows: Vec<ContainerRow>, sort: SortKey, color: bool) -> Self {
        let mut app = Self {
            rows: Vec::new(),
            sort,
            filter: String::new(),
            filtering: false,
            selected: None,
            view: View::Table,
            detail: DetailData::default(),
            error: None,
            agent: None,
            color,
            notice: None,
        };
        app.set_rows(rows);
        app
    }

    pub fn set_rows(&mut self, mut rows: Vec<ContainerRow>) {
        sort_rows(&mut rows, self.sort);
        self.rows = rows;
        self.keep_selection();
    }

    pub fn set_sort(&mut self, sort: SortKey) {
        self.sort = sort;
        sort_rows(&mut self.rows, sort);
    }

    /// The rows the filter lets through, in order.
    pub fn visible(&self) -> Vec<&ContainerRow> {
        let needle = self.filter.to_lowercase();
        self.rows
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.id.to_lowercase().contains(&needle)
                    || r.health.to_lowercase().contains(&needle)
                    || r.state.as_str().to_lowercase().contains(&needle)
            })
            .collect()
    }

    /// The selected row's index among the visible ones.
    pub fn selected_index(&self) -> Option<usize> {
        let visible = self.visible();
        let key = self.selected.as_deref()?;
        visible.iter().position(|r| r.key == key)
    }

    pub fn selected_row(&self) -> Option<&ContainerRow> {
        let key = self.selected.as_deref()?;
        self.visible().into_iter().find(|r| r.key == key)
    }

    /// A selection the filter or a refresh removed moves to the first row.
    pub fn keep_selection(&mut self) {
        if self.selected_index().is_none() {
            self.selected = self.visible().first().map(|r| r.key.clone());
        }
    }

    /// Moves the selection by `by` rows, stopping at either end.
    pub fn move_by(&mut self, by: isize) {
        let visible = self.visible();
        if visible.is_empty() {
            self.selected = None;
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + by).clamp(0, visible.len() as isize - 1) as usize;
        self.selected = Some(visible[to].key.clone());
    }

    /// Counts per health, in the order the header shows them.
    pub fn health_counts(&self) -> [(&'static str, usize); 3] {
        let count = |h: &str| self.rows.iter().filter(|r| r.health == h).count();
        [
            ("UnHealthy", count("UnHealthy")),
            ("Warning", count("Warning")),
            ("Good", count("Good")),
        ]
    }
}

/// A row's style: UnHealthy red, Warning yellow, Good plain.
pub fn health_style(health: &str, color: bool) -> Style {
    match health {
        _ if !color => Style::default(),
        "UnHealthy" => Style::default().fg(Color::Red),
        "Warning" => Style::default().fg(Color::Yellow),
        _ => Style::default(),
    }
}

/// The state without the CRI prefix: `Running`, `Exited`.
pub fn short_state(r: &ContainerRow) -> &'static str {
    let s = r.state.as_str();
    s.strip_prefix("kContainer").unwrap_or(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(id: &str, health: &str, cpu: f64) -> ContainerRow {
        serde_json::from_value(serde_json::json!({
            "id": id, "key": format!("key-{id}"), "runtime": "cgroup", "runtime_id": id,
            "cgroup": format!("/sys/fs/cgroup/{id}"), "pod_uid": null,
            "image": null, "endpoint": "-", "state": "kContainerRunning", "main_pid": null,
            "rtime_s": 5, "btime_s": null, "cpu_used_cores": cpu, "cpu_limit_cores": null,
            "mem_used_bytes": 1 << 20, "mem_limit_bytes": null, "restart": 0, "health": health,
            "health_reasons": [], "oom_kills": 0, "core_dumps": 0, "process_exits": 0,
            "pids": null, "syscalls_per_s": 0.0, "syscall_errors_per_s": 0.0,
            "block_read_bytes_per_s": 0.0, "block_write_bytes_per_s": 0.0,
            "cpu_throttled_ratio": null
        }))
        .unwrap()
    }

    #[test]
    fn sorts_descending_with_ties_by_id() {
        let mut rows = vec![
            row("b", "Good", 0.5),
            row("a", "Good", 0.5),
            row("c", "Good", 1.0),
        ];
        rows[1].mem_used_bytes = 30;
        rows[1].restart = 2;
        rows[2].restart = 1;
        sort_rows(&mut rows, SortKey::Cpu);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        sort_rows(&mut rows, SortKey::Restarts);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "c", "b"]);
        rows[2].net_rx_bytes_per_s = Some(10.0);
        rows[1].net_tx_bytes_per_s = Some(5.0);
        sort_rows(&mut rows, SortKey::Net);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["b", "c", "a"]);
    }

    #[test]
    fn filter_by_name_health_or_state_and_selection_follows() {
        let mut app = App::new(
            vec![
                row("web", "Good", 0.3),
                row("db", "UnHealthy", 0.2),
                row("cache", "Warning", 0.1),
            ],
            SortKey::Cpu,
            true,
        );
        assert_eq!(app.selected.as_deref(), Some("key-web"));
        app.move_by(5);
        assert_eq!(app.selected.as_deref(), Some("key-cache"));
        app.move_by(-1);
        assert_eq!(app.selected.as_deref(), Some("key-db"));
        app.filter = "unhealthy".into();
        assert_eq!(app.visible().len(), 1);
        app.filter = "WE".into();
        app.keep_selection();
        assert_eq!(app.selected.as_deref(), Some("key-web"));
        app.filter = "running".into();
        assert_eq!(app.visible().len(), 3);
        app.filter = "nothing".into();
        app.keep_selection();
        assert_eq!(app.selected, None);
        assert_eq!(app.health_counts()[0], ("UnHealthy", 1));
    }
}
