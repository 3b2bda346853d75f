//! `dsh top`: the health table, live in the terminal, with a filter and a
//! detail pane per container (`render::top` draws it).
//!
//! Everything that talks to the agent runs on threads of its own and sends
//! its answer back over a channel, so a slow agent (or a 3 s trace) never
//! freezes the keys. The terminal is restored on every way out: a guard,
//! and a panic hook.
use std::{
    collections::VecDeque,
    io::{IsTerminal as _, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::mpsc,
    time::{Duration, Instant},
};

use crossterm::{
    cursor,
    event::{self, Event},
    execute, terminal,
};
use dsh::{
    api::{History, Reply, Request, client},
    model::row::ContainerRow,
    render::{
        self, table,
        top::{AgentCost, App, SortKey, View, keys::Effect, layout, sort_rows},
    },
};
use ratatui::{Terminal, backend::CrosstermBackend};

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

/// How long `t` traces.
const TRACE_FOR: Duration = Duration::from_secs(3);
/// The agent's status (its own cost) is asked for every this many refreshes.
const STATUS_EVERY: u64 = 10;
/// State-change lines the detail pane keeps.
const DETAIL_LOG_LINES: usize = 200;
/// Lines `l` keeps (the newest); the older ones are counted, not shown.
const LOG_VIEW_LINES: usize = 50_000;

/// An answer from one of the fetching threads.
enum Update {
    Rows(Result<Vec<ContainerRow>, String>),
    Agent(AgentCost),
    Detail {
        key: String,
        /// Boxed: the history is the largest answer by far.
        history: Box<Result<History, String>>,
        log: Vec<String>,
    },
    Text {
        title: String,
        lines: Result<Vec<String>, String>,
    },
}

fn fetch(state_dir: &Path, all: bool) -> Result<Vec<ContainerRow>, String> {
    match client::call(state_dir, &Request::Ps { all }) {
        Ok(Reply::Rows(rows)) => Ok(rows),
        Ok(_) => Err("the agent answered `ps` with something else".to_owned()),
        Err(e) => Err(dsh::report::chain(&e)),
    }
}

fn agent_cost(state_dir: &Path) -> Option<AgentCost> {
    match client::call(state_dir, &Request::Status) {
        Ok(Reply::Status(s)) => Some(AgentCost {
            cpu_percent: s.agent_cpu_percent,
            rss_bytes: s.agent_rss_bytes,
        }),
        _ => None,
    }
}

fn history(state_dir: &Path, name: &str) -> Result<History, String> {
    let req = Request::History {
        container: name.to_owned(),
    };
    match client::call(state_dir, &req) {
        Ok(Reply::History(h)) => Ok(*h),
        Ok(_) => Err("the agent answered `history` with something else".to_owned()),
        Err(e) => Err(dsh::report::chain(&e)),
    }
}

/// A container's log lines as `dsh log` prints them, the newest `keep`
/// (with a line counting those left out).
fn log_lines(state_dir: &Path, name: &str, all: bool, keep: usize) -> Result<Vec<String>, String> {
    let req = Request::Log {
        container: Some(name.to_owned()),
        all,
        since_ms: None,
        follow: false,
    };
    let fail = |e: client::ClientError| dsh::report::chain(&e);
    let mut conn = client::Connection::open(state_dir, &req).map_err(fail)?;
    let tz = jiff::tz::TimeZone::system();
    let mut lines = VecDeque::new();
    let mut dropped = 0u64;
    loop {
        let text = match conn.recv().map_err(fail)? {
            Reply::Entry(e) => render::log::line(&e, &tz),
            Reply::Warning(w) => format!("dsh: {w}"),
            Reply::Incarnations { .. } => continue,
            Reply::End => break,
            _ => return Err("the agent answered `log` with something else".to_owned()),
        };
        if lines.len() == keep {
            lines.pop_front();
            dropped += 1;
        }
        lines.push_back(text);
    }
    if dropped > 0 {
        lines.push_front(format!("({dropped} older lines not shown)"));
    }
    Ok(lines.into())
}

fn trace(state_dir: &Path, name: &str) -> Result<Vec<String>, String> {
    let req = Request::Trace {
        container: name.to_owned(),
        duration_ms: TRACE_FOR.as_millis() as u64,
    };
    match client::call(state_dir, &req) {
        Ok(Reply::Trace(report)) => Ok(render::trace::report(&report)
            .lines()
            .map(str::to_owned)
            .collect()),
        Ok(_) => Err("the agent answered `trace` with something else".to_owned()),
        Err(e) => Err(dsh::report::chain(&e)),
    }
}

/// Raw mode and the alternate screen, undone on drop.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Self> {
        terminal::enable_raw_mode()?;
        // Made before anything else can fail: its drop undoes raw mode.
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        Ok(screen)
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

/// `NO_COLOR` set to anything but empty turns colour off (no-color.org).
fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
    let (tx, rx) = mpsc::channel();
    poll_agent(state_dir.to_owned(), args.all, args.interval, tx.clone());
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous_hook(info);
    }));
    let mut app = App::new(rows, args.sort, color_wanted());
    let mut screen = Some(Screen::enter()?);
    let mut term = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    term.clear()?;
    let mut dirty = true;
    loop {
        while let Ok(update) = rx.try_recv() {
            apply(&mut app, update, state_dir, &tx);
            dirty = true;
        }
        if dirty {
            term.draw(|f| layout::draw(f, &app))?;
            dirty = false;
        }
        let until = Instant::now() + Duration::from_millis(100);
        while event::poll(until.saturating_duration_since(Instant::now()))? {
            dirty = true;
            let Event::Key(k) = event::read()? else {
                continue; // a resize: redrawn below
            };
            if k.kind != event::KeyEventKind::Press {
                continue;
            }
            match app.on_key(k) {
                Effect::None => {}
                Effect::Quit => {
                    drop(screen.take());
                    return Ok(ExitCode::SUCCESS);
                }
                Effect::LoadDetail { name, key } => load_detail(state_dir, name, key, &tx),
                Effect::LoadLog { name } => {
                    let (dir, tx) = (state_dir.to_owned(), tx.clone());
                    std::thread::spawn(move || {
                        let lines = log_lines(&dir, &name, true, LOG_VIEW_LINES);
                        let title = format!("log of {name}");
                        let _ = tx.send(Update::Text { title, lines });
                    });
                }
                Effect::Trace { name } => {
                    let (dir, tx) = (state_dir.to_owned(), tx.clone());
                    std::thread::spawn(move || {
                        let lines = trace(&dir, &name);
                        let title = format!("trace of {name}, {} s", TRACE_FOR.as_secs());
                        let _ = tx.send(Update::Text { title, lines });
                    });
                }
                Effect::Ssh { name } => {
                    drop(screen.take());
                    app.notice = Some(ssh(state_dir, &name));
                    screen = Some(Screen::enter()?);
                    term.clear()?;
                }
            }
        }
    }
}

/// Asks for the table every `interval` (and the agent's cost now and then).
fn poll_agent(dir: PathBuf, all: bool, interval: Duration, tx: mpsc::Sender<Update>) {
    std::thread::spawn(move || {
        for n in 0u64.. {
            if n.is_multiple_of(STATUS_EVERY)
                && let Some(cost) = agent_cost(&dir)
                && tx.send(Update::Agent(cost)).is_err()
            {
                return;
            }
            std::thread::sleep(interval);
            if tx.send(Update::Rows(fetch(&dir, all))).is_err() {
                return;
            }
        }
    });
}

fn load_detail(state_dir: &Path, name: String, key: String, tx: &mpsc::Sender<Update>) {
    let (dir, tx) = (state_dir.to_owned(), tx.clone());
    std::thread::spawn(move || {
        let history = history(&dir, &name);
        let log = log_lines(&dir, &name, false, DETAIL_LOG_LINES).unwrap_or_else(|e| vec![e]);
        let _ = tx.send(Update::Detail {
            key,
            history: Box::new(history),
            log,
        });
    });
}

fn apply(app: &mut App, update: Update, state_dir: &Path, tx: &mpsc::Sender<Update>) {
    match update {
        Update::Rows(Ok(rows)) => {
            app.set_rows(rows);
            app.error = None;
            // The open pane follows the agent too.
            if app.view == View::Detail
                && let Some(r) = app.selected_row()
                && r.key == app.detail.key
            {
                load_detail(state_dir, r.id.clone(), r.key.clone(), tx);
            }
        }
        Update::Rows(Err(e)) => app.error = Some(e),
        Update::Agent(cost) => app.agent = Some(cost),
        Update::Detail { key, history, log } => {
            // An answer for a pane since closed or moved on is dropped.
            if key == app.detail.key {
                match *history {
                    Ok(h) => {
                        app.detail.history = Some(h);
                        app.detail.error = None;
                    }
                    Err(e) => app.detail.error = Some(e),
                }
                app.detail.log = log;
            }
        }
        Update::Text { title, lines } => {
            // Only into the text view that asked (still open).
            if matches!(app.view, View::Text { .. }) {
                let lines = lines.unwrap_or_else(|e| vec![format!("failed: {e}")]);
                app.text(title, lines);
            }
        }
    }
}

/// Runs `dsh ssh NAME` on the real terminal; what to tell the user after.
fn ssh(state_dir: &Path, name: &str) -> String {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return format!("cannot find the dsh binary: {e}"),
    };
    let _ = writeln!(
        std::io::stdout(),
        "dsh top: a shell in {name}; exit it to return"
    );
    let status = std::process::Command::new(exe)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("ssh")
        .arg("--")
        .arg(name)
        .status();
    match status {
        Ok(s) if s.success() => format!("back from the shell in {name}"),
        Ok(s) => format!("dsh ssh {name}: {s}"),
        Err(e) => format!("dsh ssh {name}: {e}"),
    }
}
