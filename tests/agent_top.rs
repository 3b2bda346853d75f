//! `dsh top` in a real terminal (tmux), and as a one-shot snapshot in a pipe.
use std::{process::Command, time::Duration};

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
    let pane = wait_until(Duration::from_secs(15), "the table in the terminal", || {
        let pane = tmux.pane();
        (pane.contains(HEADER) && pane.contains(&c.name)).then_some(pane)
    });
    assert!(pane.contains("dsh top"), "{pane}");
    // Sort keys redraw; q quits and the session (dsh top was its only
    // process) ends.
    tmux.cmd(&["send-keys", "-t", "it", "m"]);
    wait_until(Duration::from_secs(5), "sort: Mem", || {
        tmux.pane().contains("sort: Mem").then_some(())
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
