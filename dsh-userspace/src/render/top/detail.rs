//! The detail pane: one container's identity, health reasons, the last
//! minutes as sparklines (CPU and memory against their limits, network,
//! syscalls) and its last state-change log lines.
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Sparkline},
};

use super::{App, health_style};
use crate::{
    api::History,
    model::row::ContainerRow,
    render::health::reason,
    units::{bytes_short, per_s},
    untrusted,
};

/// Width of a sparkline's label.
const LABEL: u16 = 26;
/// Sparklines, one a line.
const SPARKLINES: usize = 7;

pub fn draw(f: &mut Frame, area: Rect, app: &App) {
    let Some(r) = app.selected_row() else {
        f.render_widget(Paragraph::new("no container selected (Esc: back)"), area);
        return;
    };
    let [who, health, spark_title, sparks, log] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(SPARKLINES as u16),
        Constraint::Min(0),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(identity(r)), who);
    f.render_widget(Paragraph::new(health_line(r, app.color)), health);
    let history = app.detail.history.as_ref().filter(|h| h.key == r.key);
    let title = match history {
        Some(h) if !h.cpu_cores.is_empty() => format!(
            "last {} (one sample every {})",
            span_text(h.interval_ms * h.cpu_cores.len() as u64),
            span_text(h.interval_ms)
        ),
        Some(_) => "no history yet: the agent samples every few seconds".to_owned(),
        None => match &app.detail.error {
            Some(e) => format!("history: {}", untrusted::line(e)),
            None => "history: loading…".to_owned(),
        },
    };
    f.render_widget(
        Paragraph::new(title).style(Style::default().add_modifier(Modifier::BOLD)),
        spark_title,
    );
    if let Some(h) = history {
        sparklines(f, sparks, r, h);
    }
    log_lines(f, log, app);
}

fn identity(r: &ContainerRow) -> Vec<Line<'static>> {
    let name = |s: &str| untrusted::name(s).into_owned();
    let pod = match (&r.namespace, &r.pod, &r.container) {
        (Some(ns), Some(pod), Some(c)) => format!("{}/{}/{}", name(ns), name(pod), name(c)),
        _ => r.pod_uid.as_deref().map_or("-".to_owned(), name),
    };
    vec![
        Line::from(vec![
            Span::styled(name(&r.id), Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                "  {} {}  image {}",
                name(&r.runtime),
                name(&r.runtime_id),
                r.image.as_deref().map_or("-".to_owned(), name)
            )),
        ]),
        Line::raw(format!("cgroup {}", name(&r.cgroup))),
        Line::raw(format!(
            "pod {pod}  state {}  pid {}  restarts {}  endpoint {}",
            r.state,
            r.main_pid.map_or("-".to_owned(), |p| p.to_string()),
            r.restart,
            name(&r.endpoint)
        )),
    ]
}

fn health_line(r: &ContainerRow, color: bool) -> Line<'static> {
    let reasons: Vec<String> = r.health_reasons.iter().map(reason).collect();
    let why = if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", untrusted::line(&reasons.join("; ")))
    };
    Line::styled(
        format!("health {}{why}", untrusted::name(&r.health)),
        health_style(&r.health, color),
    )
}

/// `90s`, `15m`: a span of the history.
fn span_text(ms: u64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 120_000 => format!("{}s", ms / 1_000),
        ms => format!("{}m", ms / 60_000),
    }
}

fn last(series: &[f32]) -> f64 {
    series.last().copied().unwrap_or(0.0) as f64
}

fn sparklines(f: &mut Frame, area: Rect, r: &ContainerRow, h: &History) {
    let cpu_limit = h.cpu_limit_cores.or(r.cpu_limit_cores);
    let mem_limit = h.mem_limit_bytes.or(r.mem_limit_bytes);
    let rows: [(String, &[f32], f64, Option<f64>); SPARKLINES] = [
        (
            format!(
                "cpu {:.2}/{} cores",
                last(&h.cpu_cores),
                cpu_limit.map_or("-".to_owned(), |l| format!("{l:.2}"))
            ),
            &h.cpu_cores,
            1000.0,
            cpu_limit,
        ),
        (
            format!(
                "mem {}/{}",
                bytes_short(last(&h.mem_bytes) as u64),
                mem_limit.map_or("-".to_owned(), bytes_short)
            ),
            &h.mem_bytes,
            1.0 / 1024.0,
            mem_limit.map(|l| l as f64),
        ),
        (
            format!(
                "net rx {}/s",
                bytes_short(last(&h.net_rx_bytes_per_s) as u64)
            ),
            &h.net_rx_bytes_per_s,
            1.0,
            None,
        ),
        (
            format!(
                "net tx {}/s",
                bytes_short(last(&h.net_tx_bytes_per_s) as u64)
            ),
            &h.net_tx_bytes_per_s,
            1.0,
            None,
        ),
        (
            format!("syscalls {}", per_s(last(&h.syscalls_per_s))),
            &h.syscalls_per_s,
            1.0,
            None,
        ),
        (
            format!(
                "tcp connect fails {}/s",
                per_s(last(&h.tcp_connect_fails_per_s))
            ),
            &h.tcp_connect_fails_per_s,
            // Tenths: a failure every few seconds still shows.
            10.0,
            None,
        ),
        (
            format!(
                "tcp retransmits {}/s",
                per_s(last(&h.tcp_retransmits_per_s))
            ),
            &h.tcp_retransmits_per_s,
            10.0,
            None,
        ),
    ];
    let lines = Layout::vertical([Constraint::Length(1); SPARKLINES]).split(area);
    for ((label, series, scale, limit), line) in rows.into_iter().zip(lines.iter()) {
        let [l, s] =
            Layout::horizontal([Constraint::Length(LABEL), Constraint::Min(0)]).areas(*line);
        f.render_widget(Paragraph::new(label), l);
        // The newest samples that fit, scaled to integers; the top of the
        // scale is the limit when there is one, else the largest sample.
        let from = series.len().saturating_sub(s.width as usize);
        let data: Vec<u64> = series[from..]
            .iter()
            .map(|v| (f64::from(*v) * scale).max(0.0) as u64)
            .collect();
        let mut spark = Sparkline::default().data(&data);
        if let Some(l) = limit {
            let top = (l * scale) as u64;
            let seen = data.iter().copied().max().unwrap_or(0);
            spark = spark.max(top.max(seen).max(1));
        }
        f.render_widget(spark, s);
    }
}

fn log_lines(f: &mut Frame, area: Rect, app: &App) {
    let [title_area, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    f.render_widget(
        Paragraph::new("last state changes (l: the whole log)")
            .style(Style::default().add_modifier(Modifier::BOLD)),
        title_area,
    );
    let d = &app.detail;
    let shown: Vec<Line> = d
        .log
        .iter()
        .skip(d.log.len().saturating_sub(body.height as usize))
        .map(|l| Line::raw(untrusted::line(l).into_owned()))
        .collect();
    f.render_widget(Paragraph::new(shown), body);
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::render::top::{DetailData, SortKey, View, tests::row};

    #[test]
    fn detail_at_80x24_has_sparklines_identity_and_log() {
        let mut r = row("web", "UnHealthy", 0.5);
        r.cpu_limit_cores = Some(1.0);
        let mut app = App::new(vec![r], SortKey::Cpu, true);
        app.view = View::Detail;
        let n = 180;
        app.detail = DetailData {
            key: "key-web".into(),
            history: Some(History {
                key: "key-web".into(),
                interval_ms: 5000,
                newest_at_ms: 0,
                cpu_limit_cores: Some(1.0),
                mem_limit_bytes: None,
                cpu_cores: (0..n).map(|i| (i % 10) as f32 / 10.0).collect(),
                mem_bytes: vec![1e6; n],
                net_rx_bytes_per_s: vec![0.0; n],
                net_tx_bytes_per_s: vec![10.0; n],
                syscalls_per_s: vec![5.0; n],
                tcp_connect_fails_per_s: (0..n).map(|i| (i % 2) as f32 * 20.0).collect(),
                tcp_retransmits_per_s: vec![0.0; n],
            }),
            log: (0..30)
                .map(|i| format!("12:00:{i:02} web started"))
                .collect(),
            error: None,
        };
        let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
        // Where the frame puts the pane: below the header and status lines.
        let area = Rect::new(0, 2, 80, 21);
        t.draw(|f| draw(f, area, &app)).unwrap();
        let buf = t.backend().buffer();
        let lines: Vec<String> = (0..24)
            .map(|y| (0..80).map(|x| buf[(x, y)].symbol()).collect())
            .collect();
        assert!(lines[2].starts_with("web  cgroup web"), "{}", lines[2]);
        assert!(lines[3].contains("cgroup /sys/fs/cgroup/web"));
        assert!(lines[5].starts_with("health UnHealthy"));
        assert!(
            lines[6].contains("last 15m (one sample every 5s)"),
            "{}",
            lines[6]
        );
        assert!(lines[7].starts_with("cpu 0.90/1.00 cores"), "{}", lines[7]);
        let bars = |l: &str| l.chars().filter(|c| ('▁'..='█').contains(c)).count();
        let cpu_bars = bars(&lines[7]);
        assert!(
            cpu_bars > 30 && cpu_bars < 80 - LABEL as usize,
            "{}",
            lines[7]
        );
        assert_eq!(bars(&lines[8]), 80 - LABEL as usize, "memory: flat, full");
        assert_eq!(bars(&lines[9]), 0, "nothing received");
        assert!(
            lines[12].starts_with("tcp connect fails 20/s"),
            "{}",
            lines[12]
        );
        assert_eq!(
            bars(&lines[12]),
            (80 - LABEL as usize) / 2,
            "every other sample"
        );
        assert!(
            lines[13].starts_with("tcp retransmits 0/s"),
            "{}",
            lines[13]
        );
        assert_eq!(bars(&lines[13]), 0, "none retransmitted");
        assert!(lines[14].starts_with("last state changes"));
        // The newest lines that fit (8 rows), the last at the bottom.
        assert!(lines[15].contains("12:00:22"), "{}", lines[15]);
        assert!(lines[22].contains("12:00:29"), "{}", lines[22]);
    }
}
