//! `dsh top` in a real terminal (tmux), and as a one-shot snapshot in a pipe.
use std::{process::Command, time::Duration};

use serde_json::Value;

use crate::agentkit::{Agent, CONTRACT_HEADER as HEADER, Container, Tmux, dsh_bin, wait_until};

#[test]
fn top_draws_the_table_live_and_quits_on_q() {
    let agent = Agent::fresh("top", &[]);
    let c = Container::run("top", &[], &["sleep", "1000"]);
    wait_until(Duration::from_secs(20), "the container's name", || {
        agent.row(&c.name)
    });
    let tmux = Tmux::new("top");
    let stty = std::env::temp_dir().join(format!("dsh-it-top-stty-{}", std::process::id()));
    let _ = std::fs::remove_file(&stty);
    // After dsh top, the terminal's settings: raw mode must be undone.
    let line = format!(
        "{} --state-dir {} top --interval 300ms; stty -a > {}",
        dsh_bin(),
        agent.state_dir.display(),
        stty.display()
    );
    tmux.start(&line);
    // The host may have many containers: the filter finds this one.
    wait_pane(&tmux, false, 15, "the table", |p| p.contains("cpu(u/l)"));
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "--", &c.name]);
    tmux.keys(&["Enter"]);
    let pane = wait_pane(&tmux, false, 15, "the container's row", |p| {
        p.contains("(1 of") && p.lines().filter(|l| l.contains(&c.name)).count() == 2
    });
    assert!(pane.contains("dsh top"), "{pane}");
    // Sort keys redraw; q quits and the session (dsh top was its only
    // process) ends.
    tmux.cmd(&["send-keys", "-t", "it", "m"]);
    wait_until(Duration::from_secs(5), "sort mem", || {
        tmux.pane().contains("sort mem").then_some(())
    });
    tmux.cmd(&["send-keys", "-t", "it", "q"]);
    wait_until(Duration::from_secs(5), "dsh top to quit", || {
        (!tmux.alive()).then_some(())
    });
    let settings = std::fs::read_to_string(&stty).expect("stty output");
    let _ = std::fs::remove_file(&stty);
    let flags: Vec<&str> = settings.split_whitespace().collect();
    assert!(
        flags.contains(&"icanon") && flags.contains(&"echo"),
        "terminal left in raw mode: {settings}"
    );
}

#[test]
fn top_in_a_pipe_prints_one_snapshot() {
    let agent = Agent::fresh("toppipe", &[]);
    let out = Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["top", "--sort", "mem"])
        .output()
        .expect("dsh top");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().next(), Some(HEADER));
    // No escape sequences when stdout is not a terminal.
    assert!(!text.contains('\x1b'), "{text:?}");
}

/// Waits for the pane (with escapes when `escaped`) to satisfy `ok`; on
/// timeout, fails showing it.
fn wait_pane(
    tmux: &Tmux,
    escaped: bool,
    secs: u64,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let pane = if escaped {
            tmux.pane_escaped()
        } else {
            tmux.pane()
        };
        if ok(&pane) {
            return pane;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}; the pane:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The colour parameters (30-49, 90-107; 38/48 extended) of the SGR
/// escapes in `s`; 39 and 49 (back to the default colours) are no colour.
fn colour_escapes(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in s.split("\x1b[").skip(1) {
        let Some(end) = part.find(|c: char| !(c.is_ascii_digit() || c == ';')) else {
            continue;
        };
        if !part[end..].starts_with('m') {
            continue;
        }
        let colour = part[..end].split(';').any(|p| {
            p.parse::<u32>().is_ok_and(|n| {
                n != 39 && n != 49 && ((30..=49).contains(&n) || (90..=107).contains(&n))
            })
        });
        if colour {
            out.push(part[..end].to_owned());
        }
    }
    out
}

fn line_with<'a>(pane: &'a str, needle: &str) -> &'a str {
    pane.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle} in:\n{pane}"))
}

/// Sparkline bars (U+2581..U+2588) on the screen.
fn bars(pane: &str) -> usize {
    pane.chars()
        .filter(|c| ('\u{2581}'..='\u{2588}').contains(c))
        .count()
}

#[test]
fn top_colours_filters_details_and_restores_the_terminal() {
    // One history sample a second, so a few seconds make a sparkline.
    let agent = Agent::fresh(
        "topui",
        &["--history-every", "1s", "--unhealthy-window", "10m"],
    );
    let good = Container::run("topgood", &[], &["sleep", "1000"]);
    let oom = Container::run(
        "topoom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    wait_until(Duration::from_secs(30), "the OOM kill, UnHealthy", || {
        agent.row(&oom.name).filter(|r| r["health"] == "UnHealthy")
    });
    let good_row: Value = wait_until(Duration::from_secs(20), "the sleeper, Good", || {
        agent.row(&good.name).filter(|r| r["health"] == "Good")
    });
    let tmux = Tmux::new("topui");
    let line = format!(
        "{} --state-dir {} top --interval 500ms; echo TOP-DONE; sleep 60",
        dsh_bin(),
        agent.state_dir.display()
    );
    tmux.start_sized(&line, 140, 40);
    // The host may have many more containers: `/` and this test's pid
    // (both names end with it) narrow the table to these two.
    let both = format!("-{}", std::process::id());
    wait_pane(&tmux, false, 15, "the table", |p| p.contains("cpu(u/l)"));
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "--", &both]);
    tmux.keys(&["Enter"]);
    let pane = wait_pane(&tmux, true, 15, "both rows", |p| {
        p.contains(&good.name) && p.contains(&oom.name) && p.contains("(2 of")
    });
    assert_eq!(
        tmux.display("#{alternate_on}"),
        "1",
        "drawn on the alternate screen"
    );
    // Red for UnHealthy; the Good row has no colour (it may be the selected,
    // reverse-video row, which is not a colour).
    let red = |e: &String| e == "31" || e.ends_with("38;5;1") || e.contains("38;5;1;");
    let bad = colour_escapes(line_with(&pane, &oom.name));
    assert!(bad.iter().any(red), "{bad:?} in {pane}");
    let plain = colour_escapes(line_with(&pane, &good.name));
    assert_eq!(plain, Vec::<String>::new(), "{pane}");
    // Esc clears the filter.
    tmux.keys(&["Escape"]);
    wait_pane(&tmux, false, 5, "the filter cleared", |p| {
        !p.contains("(2 of")
    });

    // `/` and a name narrow the table to it.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "--", &good.name]);
    tmux.keys(&["Enter"]);
    wait_pane(&tmux, false, 5, "the filtered table", |p| {
        p.contains("(1 of") && !p.contains(&oom.name)
    });
    // Enter: the detail pane, with sparklines once a few samples are in.
    std::thread::sleep(Duration::from_secs(5));
    tmux.keys(&["Enter"]);
    let pane = wait_pane(&tmux, false, 15, "sparklines and log lines", |p| {
        p.contains("one sample every 1s") && bars(p) >= 5 && p.contains("start user process")
    });
    let cgroup = good_row["cgroup"].as_str().unwrap();
    assert!(pane.contains(&format!("cgroup {cgroup}")), "{pane}");
    assert!(pane.contains("health Good"), "{pane}");
    let runtime_id = good_row["runtime_id"].as_str().unwrap();
    assert!(pane.contains(runtime_id), "{pane}");

    // `l`: the whole log, and back.
    tmux.keys(&["l"]);
    let title = format!("log of {}", good.name);
    wait_pane(&tmux, false, 10, "the whole log", |p| {
        p.contains(&title) && p.contains("lines 1-") && p.contains("start user process")
    });
    tmux.keys(&["Escape"]);
    wait_pane(&tmux, false, 5, "back to the detail pane", |p| {
        p.contains("last state changes")
    });
    // `t`: a few seconds of trace, its report, and back.
    tmux.keys(&["t"]);
    let report = format!("trace of {} (", good.name);
    let pane = wait_pane(&tmux, false, 20, "the trace report", |p| {
        (p.contains(&report) && p.contains("syscalls,")) || p.contains("failed:")
    });
    assert!(!pane.contains("failed:"), "{pane}");
    tmux.keys(&["Escape"]);
    wait_pane(&tmux, false, 5, "back from the trace", |p| {
        p.contains("last state changes")
    });
    // `e`: a shell in the container on the real terminal, then the TUI again.
    tmux.keys(&["e"]);
    wait_until(
        Duration::from_secs(15),
        "the shell, off the alternate screen",
        || (tmux.display("#{alternate_on}") == "0").then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    tmux.keys(&["-l", "--", "echo IN-$((40+2)) $(hostname)"]);
    tmux.keys(&["Enter"]);
    let hostname = format!("IN-42 {}", &good.id[..12]);
    wait_pane(
        &tmux,
        false,
        10,
        "the command's output in the container",
        |p| p.contains(&hostname),
    );
    tmux.keys(&["-l", "--", "exit"]);
    tmux.keys(&["Enter"]);
    wait_pane(&tmux, false, 10, "the TUI again", |p| {
        p.contains("back from the shell") && p.contains("last state changes")
    });
    assert_eq!(tmux.display("#{alternate_on}"), "1");
    // `q` (after Esc back to the table): the terminal as it was.
    tmux.keys(&["Escape"]);
    tmux.keys(&["q"]);
    let pane = wait_pane(&tmux, false, 5, "dsh top to quit", |p| {
        p.contains("TOP-DONE")
    });
    assert_eq!(tmux.display("#{alternate_on}"), "0", "{pane}");
    assert_eq!(
        tmux.display("#{cursor_flag}"),
        "1",
        "cursor hidden after quit"
    );
}

#[test]
fn top_with_no_color_draws_no_colour() {
    let agent = Agent::fresh("tnc", &["--unhealthy-window", "10m"]);
    // A short name: 80 columns leave it 20.
    let oom = Container::run(
        "tnc",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    wait_until(Duration::from_secs(30), "the OOM kill, UnHealthy", || {
        agent.row(&oom.name).filter(|r| r["health"] == "UnHealthy")
    });
    let tmux = Tmux::new("tnc");
    let line = format!(
        "NO_COLOR=1 {} --state-dir {} top --interval 500ms; sleep 60",
        dsh_bin(),
        agent.state_dir.display()
    );
    tmux.start_sized(&line, 80, 24);
    wait_pane(&tmux, false, 15, "the table", |p| p.contains("cpu(u/l)"));
    // The host may have many containers: the filter (this test's pid ends
    // the name) finds this one.
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "--", &format!("-{}", std::process::id())]);
    tmux.keys(&["Enter"]);
    let pane = wait_pane(&tmux, true, 15, "the UnHealthy row", |p| {
        p.contains(&oom.name) && p.contains("(1 of")
    });
    assert!(line_with(&pane, &oom.name).contains("UnHealthy"), "{pane}");
    assert_eq!(colour_escapes(&pane), Vec::<String>::new(), "{pane:?}");
    tmux.keys(&["q"]);
}
