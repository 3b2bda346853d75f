//! `dsh top`'s keys: a key changes the screen's state and may ask the CLI
//! for something only it can do (fetch from the agent, run `dsh ssh`).
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, DetailData, SortKey, View};

/// What the CLI must do after a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    /// Fetch the detail pane's history and log lines (by name and key).
    LoadDetail {
        name: String,
        key: String,
    },
    /// Fetch the whole log into a text view.
    LoadLog {
        name: String,
    },
    /// Trace the container for a few seconds, then show the report.
    Trace {
        name: String,
    },
    /// Leave the screen, run `dsh ssh NAME`, come back.
    Ssh {
        name: String,
    },
}

/// The key list `?` shows.
pub const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move the selection (PgUp PgDn Home End too)"),
    (
        "/",
        "filter by name, health or state as you type; Enter keeps it, Esc clears",
    ),
    (
        "Enter",
        "detail: history sparklines, health reasons, log, identity",
    ),
    (
        "l",
        "the selected container's whole log (scroll with ↑ ↓ PgUp PgDn)",
    ),
    ("t", "trace its syscalls for a few seconds"),
    ("e", "a shell in it (dsh ssh); exit the shell to come back"),
    (
        "c m r s i n",
        "sort by cpu, memory, restarts, syscalls, block I/O, network",
    ),
    ("?", "this help"),
    ("Esc", "back (from the table: quit)"),
    ("q  Ctrl-C", "quit"),
];

/// Rows a page key moves.
const PAGE: isize = 10;

impl App {
    pub fn on_key(&mut self, k: KeyEvent) -> Effect {
        self.notice = None;
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            return Effect::Quit;
        }
        if self.filtering {
            self.filter_key(k);
            return Effect::None;
        }
        match &mut self.view {
            View::Text { scroll, lines, .. } => {
                let last = lines.len().saturating_sub(1);
                match k.code {
                    KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                    KeyCode::Down | KeyCode::Char('j') => *scroll = (*scroll + 1).min(last),
                    KeyCode::PageUp => *scroll = scroll.saturating_sub(PAGE as usize),
                    KeyCode::PageDown | KeyCode::Char(' ') => {
                        *scroll = (*scroll + PAGE as usize).min(last)
                    }
                    KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
                    KeyCode::End | KeyCode::Char('G') => *scroll = last,
                    KeyCode::Char('q') => return Effect::Quit,
                    KeyCode::Esc | KeyCode::Backspace | KeyCode::Enter => self.back(),
                    _ => {}
                }
                return Effect::None;
            }
            View::Help => {
                match k.code {
                    KeyCode::Char('q') => return Effect::Quit,
                    _ => self.view = View::Table,
                }
                return Effect::None;
            }
            View::Table | View::Detail => {}
        }
        let in_detail = self.view == View::Detail;
        let selected = self.selected_row().map(|r| (r.id.clone(), r.key.clone()));
        match k.code {
            KeyCode::Char('q') => return Effect::Quit,
            KeyCode::Esc if in_detail => self.view = View::Table,
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                self.keep_selection();
            }
            KeyCode::Esc => return Effect::Quit,
            KeyCode::Char('?') => self.view = View::Help,
            KeyCode::Char('/') => {
                self.filtering = true;
                self.view = View::Table;
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::PageUp => self.move_by(-PAGE),
            KeyCode::PageDown => self.move_by(PAGE),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::Char('c') => self.set_sort(SortKey::Cpu),
            KeyCode::Char('m') => self.set_sort(SortKey::Mem),
            KeyCode::Char('r') => self.set_sort(SortKey::Restarts),
            KeyCode::Char('s') => self.set_sort(SortKey::Syscalls),
            KeyCode::Char('i') => self.set_sort(SortKey::Io),
            KeyCode::Char('n') => self.set_sort(SortKey::Net),
            KeyCode::Enter if !in_detail => {
                if let Some((name, key)) = selected {
                    self.view = View::Detail;
                    self.detail = DetailData {
                        key: key.clone(),
                        ..DetailData::default()
                    };
                    return Effect::LoadDetail { name, key };
                }
            }
            KeyCode::Char('l') => {
                if let Some((name, _)) = selected {
                    self.text(format!("log of {name} (loading…)"), Vec::new());
                    return Effect::LoadLog { name };
                }
            }
            KeyCode::Char('t') => {
                if let Some((name, _)) = selected {
                    self.text(format!("trace of {name} (tracing…)"), Vec::new());
                    return Effect::Trace { name };
                }
            }
            KeyCode::Char('e') => {
                if let Some((name, _)) = selected {
                    return Effect::Ssh { name };
                }
            }
            _ => {}
        }
        if in_detail && self.view == View::Detail {
            // The selection moved: the pane follows it.
            if let Some(r) = self.selected_row()
                && r.key != self.detail.key
            {
                let (name, key) = (r.id.clone(), r.key.clone());
                self.detail = DetailData {
                    key: key.clone(),
                    ..DetailData::default()
                };
                return Effect::LoadDetail { name, key };
            }
        }
        Effect::None
    }

    fn filter_key(&mut self, k: KeyEvent) {
        match k.code {
            KeyCode::Esc => {
                self.filter.clear();
                self.filtering = false;
            }
            KeyCode::Enter => self.filtering = false,
            KeyCode::Backspace => {
                self.filter.pop();
            }
            // Bounded: a held key cannot grow it without end.
            KeyCode::Char(c) if !c.is_control() && self.filter.chars().count() < 64 => {
                self.filter.push(c)
            }
            _ => {}
        }
        self.keep_selection();
    }

    /// Opens a text view, or replaces the one open (a fetch finished).
    pub fn text(&mut self, title: String, lines: Vec<String>) {
        self.view = View::Text {
            title,
            lines,
            scroll: 0,
        };
    }

    /// From a text view: to the detail pane if it was open for the
    /// selected row, else the table.
    fn back(&mut self) {
        let detail_open = self
            .selected_row()
            .is_some_and(|r| r.key == self.detail.key);
        self.view = if detail_open {
            View::Detail
        } else {
            View::Table
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::top::tests::row;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn keys_filter_open_and_quit() {
        let mut app = App::new(
            vec![row("web", "Good", 0.3), row("db", "UnHealthy", 0.2)],
            SortKey::Cpu,
            true,
        );
        assert_eq!(app.on_key(key(KeyCode::Char('/'))), Effect::None);
        for c in "db".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.visible().len(), 1);
        // `q` while typing is part of the filter, not a quit.
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Effect::None);
        app.on_key(key(KeyCode::Backspace));
        app.on_key(key(KeyCode::Enter));
        assert!(!app.filtering);
        assert_eq!(
            app.on_key(key(KeyCode::Enter)),
            Effect::LoadDetail {
                name: "db".into(),
                key: "key-db".into()
            }
        );
        assert_eq!(app.view, View::Detail);
        assert_eq!(
            app.on_key(key(KeyCode::Char('l'))),
            Effect::LoadLog { name: "db".into() }
        );
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.view, View::Detail, "back to the pane it came from");
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.view, View::Table);
        app.on_key(key(KeyCode::Esc));
        assert!(app.filter.is_empty(), "Esc clears the filter first");
        // The selection stays on the row the filter found.
        assert_eq!(
            app.on_key(key(KeyCode::Char('e'))),
            Effect::Ssh { name: "db".into() }
        );
        app.on_key(key(KeyCode::Char('m')));
        assert_eq!(app.sort, SortKey::Mem);
        assert_eq!(app.on_key(key(KeyCode::Esc)), Effect::Quit);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        app.filtering = true;
        assert_eq!(app.on_key(ctrl_c), Effect::Quit);
    }
}
