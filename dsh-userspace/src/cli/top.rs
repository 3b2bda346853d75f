//! `dsh top`: the health table, refreshed live in the terminal.
//!
//! Snapshots come from the agent on a separate thread, so a slow agent never
//! freezes the keys; the screen is redrawn from the latest one. The terminal
//! is restored on every way out (a guard, and a panic hook).
use std::{
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::mpsc,
    time::{Duration, Instant},
};

use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEvent, KeyModifiers},
    execute, queue,
    terminal::{self, ClearType},
};
use dsh::{
    api::{Reply, Request, client},
    model::row::ContainerRow,
    render::table,
    untrusted,
};

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

#[derive(clap::Args)]
pub struct TopArgs {
    /// Sort by (descending; the keys c m r s i n change it live).
    #[arg(long, value_enum, default_value = "cpu")]
    sort: SortKey,
    /// Refresh interval (e.g. 1s, 500ms; at least 100ms).
    #[arg(long, default_value = "1s", value_parser = super::duration::interval)]
    interval: Duration,
    /// Also list containers that are no longer running.
    #[arg(short, long)]
    all: bool,
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

fn fetch(state_dir: &Path, all: bool) -> Result<Vec<ContainerRow>, String> {
    match client::call(state_dir, &Request::Ps { all }) {
        Ok(Reply::Rows(rows)) => Ok(rows),
        Ok(_) => Err("the agent answered `ps` with something else".to_owned()),
        Err(e) => Err(dsh::report::chain(&e)),
    }
}

/// Raw mode and the alternate screen, undone on drop.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(Screen)
    }
}

fn restore() {
    let _ = execute!(
        std::io::stdout(),
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    let _ = terminal::disable_raw_mode();
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

pub fn run(args: TopArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    // Fail (not root, no agent) before touching the terminal.
    let mut rows = fetch(state_dir, args.all).map_err(|e| anyhow::anyhow!(e))?;
    if !std::io::stdout().is_terminal() {
        sort_rows(&mut rows, args.sort);
        // Written, not print!ed: a closed pipe is an error to return, not a panic.
        std::io::stdout()
            .lock()
            .write_all(table::table(&rows, false).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let interval = args.interval;
    let (tx, rx) = mpsc::channel();
    let dir: PathBuf = state_dir.to_owned();
    let all = args.all;
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(interval);
            if tx.send(fetch(&dir, all)).is_err() {
                return;
            }
        }
    });
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous_hook(info);
    }));
    let _screen = Screen::enter()?;
    let mut sort = args.sort;
    let mut error: Option<String> = None;
    let mut dirty = true;
    loop {
        while let Ok(update) = rx.try_recv() {
            match update {
                Ok(r) => {
                    rows = r;
                    error = None;
                }
                Err(e) => error = Some(e),
            }
            dirty = true;
        }
        if dirty {
            sort_rows(&mut rows, sort);
            draw(&rows, sort, error.as_deref())?;
            dirty = false;
        }
        let until = Instant::now() + Duration::from_millis(100);
        while event::poll(until.saturating_duration_since(Instant::now()))? {
            match event::read()? {
                Event::Key(k) => match action(k) {
                    Action::Quit => return Ok(ExitCode::SUCCESS),
                    Action::Sort(key) => {
                        sort = key;
                        dirty = true;
                    }
                    Action::None => {}
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
    }
}

enum Action {
    Quit,
    Sort(SortKey),
    None,
}

fn action(k: KeyEvent) -> Action {
    match (k.code, k.modifiers) {
        (KeyCode::Char('c'), KeyModifiers::CONTROL) => Action::Quit,
        (KeyCode::Char('q'), _) | (KeyCode::Esc, _) => Action::Quit,
        (KeyCode::Char('c'), _) => Action::Sort(SortKey::Cpu),
        (KeyCode::Char('m'), _) => Action::Sort(SortKey::Mem),
        (KeyCode::Char('r'), _) => Action::Sort(SortKey::Restarts),
        (KeyCode::Char('s'), _) => Action::Sort(SortKey::Syscalls),
        (KeyCode::Char('i'), _) => Action::Sort(SortKey::Io),
        (KeyCode::Char('n'), _) => Action::Sort(SortKey::Net),
        _ => Action::None,
    }
}

/// The screen's lines: status, header, rows (cut to fit).
pub fn lines(
    rows: &[ContainerRow],
    sort: SortKey,
    error: Option<&str>,
    height: usize,
) -> Vec<String> {
    let count = |h: &str| rows.iter().filter(|r| r.health == h).count();
    let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
    let mut out = vec![format!(
        "dsh top  {now}  {} containers, {} UnHealthy, {} Warning  sort: {sort:?}  keys: c m r s i n sort, q quit",
        rows.len(),
        count("UnHealthy"),
        count("Warning"),
    )];
    if let Some(e) = error {
        out.push(format!("agent: {}", untrusted::text(e)));
    }
    out.push(table::header(false));
    let room = height.saturating_sub(out.len());
    let shown = if rows.len() > room {
        room.saturating_sub(1)
    } else {
        rows.len()
    };
    out.extend(rows[..shown].iter().map(|r| table::row(r, false)));
    if shown < rows.len() {
        out.push(format!("… {} more", rows.len() - shown));
    }
    out
}

fn draw(rows: &[ContainerRow], sort: SortKey, error: Option<&str>) -> std::io::Result<()> {
    let (width, height) = terminal::size().unwrap_or((80, 24));
    let mut out = std::io::stdout().lock();
    queue!(out, cursor::MoveTo(0, 0), terminal::Clear(ClearType::All))?;
    for (i, line) in lines(rows, sort, error, height as usize).iter().enumerate() {
        // By display width: a wide name must not wrap onto the next line.
        let cut = table::cut(line, width as usize);
        queue!(out, cursor::MoveTo(0, i as u16))?;
        out.write_all(cut.as_bytes())?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, cpu: f64, mem: u64, restart: u64) -> ContainerRow {
        let mut r: ContainerRow = serde_json::from_value(serde_json::json!({
            "id": id, "runtime": "cgroup", "runtime_id": id, "cgroup": id, "pod_uid": null,
            "image": null, "endpoint": "-", "state": "kContainerRunning", "main_pid": null,
            "rtime_s": 5, "btime_s": null, "cpu_used_cores": 0.0, "cpu_limit_cores": null,
            "mem_used_bytes": 0, "mem_limit_bytes": null, "restart": 0, "health": "Good",
            "health_reasons": [], "oom_kills": 0, "core_dumps": 0, "process_exits": 0,
            "pids": null, "syscalls_per_s": 0.0, "syscall_errors_per_s": 0.0,
            "block_read_bytes_per_s": 0.0, "block_write_bytes_per_s": 0.0,
            "cpu_throttled_ratio": null
        }))
        .unwrap();
        r.cpu_used_cores = cpu;
        r.mem_used_bytes = mem;
        r.restart = restart;
        r
    }

    #[test]
    fn sorts_descending_with_ties_by_id() {
        let mut rows = vec![
            row("b", 0.5, 10, 0),
            row("a", 0.5, 30, 2),
            row("c", 1.0, 20, 1),
        ];
        sort_rows(&mut rows, SortKey::Cpu);
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        sort_rows(&mut rows, SortKey::Mem);
        assert_eq!(rows[0].id, "a");
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
    fn rows_beyond_the_screen_are_counted() {
        let rows: Vec<ContainerRow> = (0..10).map(|i| row(&format!("r{i}"), 0.0, 0, 0)).collect();
        let l = lines(&rows, SortKey::Cpu, None, 6);
        assert_eq!(l.len(), 6);
        assert!(l[1].starts_with("id "));
        assert_eq!(l[5], "… 7 more");
        let l = lines(&rows[..2], SortKey::Cpu, Some("down"), 10);
        assert_eq!(l.len(), 5);
        assert!(l[0].contains("2 containers"));
    }

    #[test]
    fn keys() {
        let k = |c, m| action(KeyEvent::new(c, m));
        assert!(matches!(
            k(KeyCode::Char('q'), KeyModifiers::NONE),
            Action::Quit
        ));
        assert!(matches!(
            k(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Action::Quit
        ));
        assert!(matches!(
            k(KeyCode::Char('c'), KeyModifiers::NONE),
            Action::Sort(SortKey::Cpu)
        ));
        assert!(matches!(
            k(KeyCode::Char('i'), KeyModifiers::NONE),
            Action::Sort(SortKey::Io)
        ));
    }
}
