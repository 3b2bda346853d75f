//! The frame: a header (counts per health, the agent's cost), a line for
//! the filter or an error, the body (table, detail, text or help) and the
//! keys at the bottom. Fits 80x24; wider screens get more columns.
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Table, TableState},
};

use super::{App, View, health_style, keys::HELP, short_state};
use crate::{
    model::row::ContainerRow,
    render::table::cut,
    units::{bytes_short, per_s},
    untrusted,
};

/// A column: title, width, and its text for a row.
struct Column {
    title: &'static str,
    width: u16,
    cell: fn(&ContainerRow) -> String,
}

fn cores(c: f64) -> String {
    format!("{c:.2}")
}

const BASE: [Column; 5] = [
    Column {
        title: "health",
        width: 9,
        cell: |r| untrusted::name(&r.health).into_owned(),
    },
    Column {
        title: "state",
        width: 9,
        cell: |r| short_state(r).to_owned(),
    },
    Column {
        title: "cpu(u/l)",
        width: 10,
        cell: |r| {
            let limit = r.cpu_limit_cores.map_or("-".to_owned(), cores);
            format!("{}/{limit}", cores(r.cpu_used_cores))
        },
    },
    Column {
        title: "mem(u/l)",
        width: 12,
        cell: |r| {
            let limit = r.mem_limit_bytes.map_or("-".to_owned(), bytes_short);
            format!("{}/{limit}", bytes_short(r.mem_used_bytes))
        },
    },
    Column {
        title: "restart",
        width: 7,
        cell: |r| r.restart.to_string(),
    },
];

/// Added, in this order, while the name keeps `NAME_MIN` columns.
const EXTRA: [Column; 4] = [
    Column {
        title: "sys/s",
        width: 8,
        cell: |r| per_s(r.syscalls_per_s),
    },
    Column {
        title: "net rx/tx",
        width: 15,
        cell: |r| match (r.net_rx_bytes_per_s, r.net_tx_bytes_per_s) {
            (Some(rx), Some(tx)) => {
                format!("{}/{}", bytes_short(rx as u64), bytes_short(tx as u64))
            }
            _ if r.net_shared_with.is_some() => "shared".to_owned(),
            _ => "-".to_owned(),
        },
    },
    Column {
        title: "rtime",
        width: 7,
        cell: |r| {
            r.rtime_s.map_or("-".to_owned(), |s| {
                crate::units::duration(jiff::SignedDuration::from_secs(s))
            })
        },
    },
    Column {
        title: "endpoint",
        width: 22,
        cell: |r| untrusted::name(&r.endpoint).into_owned(),
    },
];

const NAME_MIN: u16 = 20;

/// The columns after the name that fit in `width`.
fn columns(width: u16) -> Vec<&'static Column> {
    let mut out: Vec<&Column> = BASE.iter().collect();
    let used = |cols: &[&Column]| cols.iter().map(|c| c.width + 1).sum::<u16>();
    for c in &EXTRA {
        if used(&out) + c.width + 1 + NAME_MIN <= width {
            out.push(c);
        }
    }
    out
}

pub fn draw(f: &mut Frame, app: &App) {
    let [head, status, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(header(app)), head);
    f.render_widget(Paragraph::new(status_line(app)), status);
    match &app.view {
        View::Table => table(f, body, app),
        View::Detail => super::detail::draw(f, body, app),
        View::Text {
            title,
            lines,
            scroll,
        } => text(f, body, title, lines, *scroll),
        View::Help => help(f, body),
    }
    let keys = match app.view {
        View::Table if app.filtering => "type to filter  Enter keep  Esc clear",
        View::Table => "↑↓ move  Enter detail  / filter  l log  t trace  e shell  ? help  q quit",
        View::Detail => "↑↓ next  l log  t trace  e shell  Esc back  q quit",
        View::Text { .. } => "↑↓ PgUp PgDn scroll  Esc back  q quit",
        View::Help => "any key: back",
    };
    f.render_widget(
        Paragraph::new(keys).style(Style::default().add_modifier(Modifier::DIM)),
        foot,
    );
}

fn header(app: &App) -> Line<'static> {
    let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
    let mut spans = vec![
        Span::styled("dsh top", Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!("  {now}  {} containers:", app.rows.len())),
    ];
    for (health, n) in app.health_counts() {
        spans.push(Span::raw(" "));
        let style = if n > 0 {
            health_style(health, app.color)
        } else {
            Style::default()
        };
        spans.push(Span::styled(format!("{n} {health}"), style));
    }
    if let Some(a) = app.agent {
        spans.push(Span::raw(format!(
            "  agent {:.1}% cpu {}",
            a.cpu_percent,
            bytes_short(a.rss_bytes)
        )));
    }
    spans.push(Span::raw(format!("  sort {:?}", app.sort).to_lowercase()));
    Line::from(spans)
}

fn status_line(app: &App) -> Line<'static> {
    if let Some(e) = &app.error {
        let style = if app.color {
            Style::default().fg(Color::Red)
        } else {
            Style::default()
        };
        return Line::styled(format!("agent: {}", untrusted::line(e)), style);
    }
    if let Some(n) = &app.notice {
        return Line::raw(untrusted::line(n).into_owned());
    }
    if app.filtering || !app.filter.is_empty() {
        let cursor = if app.filtering { "_" } else { "" };
        return Line::raw(format!(
            "/{}{cursor}  ({} of {} shown)",
            untrusted::name(&app.filter),
            app.visible().len(),
            app.rows.len()
        ));
    }
    Line::raw("")
}

fn table(f: &mut Frame, area: Rect, app: &App) {
    let cols = columns(area.width);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut titles = vec![Cell::from("name")];
    titles.extend(cols.iter().map(|c| Cell::from(c.title)));
    let used: u16 = cols.iter().map(|c| c.width + 1).sum();
    let name_width = area.width.saturating_sub(used).max(NAME_MIN);
    let visible = app.visible();
    // Only the rows on screen are formatted (a host may have thousands):
    // the window scrolls to keep the selection in it.
    let fit = (area.height as usize).saturating_sub(1).max(1);
    let selected = visible
        .iter()
        .position(|r| app.selected.as_deref() == Some(r.key.as_str()));
    let first = selected.map_or(0, |s| (s + 1).saturating_sub(fit));
    let rows = visible.iter().skip(first).take(fit).map(|r| {
        let name = untrusted::name(&r.id);
        let mut cells = vec![Cell::from(cut(&name, name_width as usize).into_owned())];
        cells.extend(cols.iter().map(|c| Cell::from((c.cell)(r))));
        Row::new(cells).style(health_style(&r.health, app.color))
    });
    let mut widths = vec![Constraint::Length(name_width)];
    widths.extend(cols.iter().map(|c| Constraint::Length(c.width)));
    let t = Table::new(rows, widths)
        .header(Row::new(titles).style(bold))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(selected.map(|s| s - first));
    f.render_stateful_widget(t, area, &mut state);
}

fn text(f: &mut Frame, area: Rect, title: &str, lines: &[String], scroll: usize) {
    let [top, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let shown = if lines.is_empty() {
        String::new()
    } else {
        format!(
            "  lines {}-{} of {}",
            scroll + 1,
            (scroll + rest.height as usize).min(lines.len()),
            lines.len()
        )
    };
    f.render_widget(
        Paragraph::new(format!("{}{shown}", untrusted::line(title)))
            .style(Style::default().add_modifier(Modifier::BOLD)),
        top,
    );
    let body: Vec<Line> = lines
        .iter()
        .skip(scroll)
        .take(rest.height as usize)
        .map(|l| Line::raw(untrusted::line(l).into_owned()))
        .collect();
    f.render_widget(Paragraph::new(body), rest);
}

fn help(f: &mut Frame, area: Rect) {
    let mut lines = vec![Line::styled(
        "dsh top keys",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    lines.extend(
        HELP.iter()
            .map(|(k, what)| Line::raw(format!("  {k:<12} {what}"))),
    );
    f.render_widget(Paragraph::new(lines), area);
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::render::top::{SortKey, tests::row};

    fn screen(app: &App, w: u16, h: u16) -> (Vec<String>, ratatui::buffer::Buffer) {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        let lines = (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect();
        (lines, buf)
    }

    fn many(n: usize) -> Vec<ContainerRow> {
        (0..n)
            .map(|i| {
                let h = ["Good", "Warning", "UnHealthy"][i % 3];
                row(
                    &format!("container-with-a-long-name-{i:02}"),
                    h,
                    i as f64 / 100.0,
                )
            })
            .collect()
    }

    #[test]
    fn table_at_80x24() {
        let app = App::new(many(40), SortKey::Cpu, true);
        let (lines, buf) = screen(&app, 80, 24);
        assert!(lines[0].starts_with("dsh top"), "{}", lines[0]);
        assert!(lines[0].contains("40 containers: 13 UnHealthy 13 Warning 14 Good"));
        for title in ["name", "health", "state", "cpu(u/l)", "mem(u/l)", "restart"] {
            assert!(lines[2].contains(title), "{title} in {}", lines[2]);
        }
        assert!(!lines[2].contains("endpoint"), "no room at 80 columns");
        // Sorted by cpu: the busiest (39, Good) first, selected.
        assert!(
            lines[3].starts_with("container-with-a-lo… Good"),
            "{}",
            lines[3]
        );
        assert!(buf[(0, 3)].modifier.contains(Modifier::REVERSED));
        // 20 rows fit between the header line and the keys.
        assert!(lines[23].contains("q quit"), "{}", lines[23]);
        let health_col = lines[2].find("health").unwrap();
        let unhealthy = (4..23).find(|&y| lines[y].contains("UnHealthy")).unwrap();
        assert_eq!(buf[(health_col as u16, unhealthy as u16)].fg, Color::Red);
        let good = (4..23).find(|&y| lines[y].contains("Good")).unwrap();
        assert_eq!(buf[(health_col as u16, good as u16)].fg, Color::Reset);
    }

    #[test]
    fn the_table_scrolls_to_the_selection() {
        let mut app = App::new(many(40), SortKey::Cpu, true);
        app.move_by(30);
        let (lines, buf) = screen(&app, 80, 24);
        // 20 rows fit: the 31st (cpu 0.09, row 9) is the last one shown.
        assert!(
            lines[22].starts_with("container-with-a-lo… Good"),
            "{}",
            lines[22]
        );
        assert!(lines[22].contains("0.09/-"), "{}", lines[22]);
        assert!(buf[(0, 22)].modifier.contains(Modifier::REVERSED));
        assert!(lines[3].contains("0.28/-"), "{}", lines[3]);
    }

    #[test]
    fn no_color_has_none_and_wide_screens_get_more_columns() {
        let app = App::new(many(6), SortKey::Cpu, false);
        let (lines, buf) = screen(&app, 140, 40);
        assert!(lines[2].contains("endpoint") && lines[2].contains("sys/s"));
        assert!(
            buf.content()
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
        );
        let (lines, _) = screen(&app, 40, 10);
        assert!(lines[0].starts_with("dsh top"), "tiny screens draw, cut");
    }

    #[test]
    fn help_and_text_views_fit() {
        let mut app = App::new(many(3), SortKey::Cpu, true);
        app.view = View::Help;
        let (lines, _) = screen(&app, 80, 24);
        assert!(lines.iter().any(|l| l.contains("filter by name")));
        app.text(
            "log of x".into(),
            (0..100).map(|i| format!("line {i}")).collect(),
        );
        if let View::Text { scroll, .. } = &mut app.view {
            *scroll = 50;
        }
        let (lines, _) = screen(&app, 80, 24);
        assert!(lines[2].contains("lines 51-70 of 100"), "{}", lines[2]);
        assert!(lines[3].starts_with("line 50"));
    }
}
